"""A local Vertex AI ``JobService`` on loopback, over TLS, for the real GAPIC client.

No ``job_service_pb2_grpc`` ships with google-cloud-aiplatform, so the service is a
generic gRPC handler under ``google.cloud.aiplatform.v1.JobService`` using the
proto-plus messages' own (de)serialisers. It keeps CustomJobs in memory; their state
only changes when a test says so (:meth:`FakeJobService.set_state`) or on Cancel.
Every call is recorded with its metadata, so tests can check what the client sent.

Tests can also inject faults (:meth:`FakeJobService.fail`: a status code for the next calls of
a method, or "stored, then the answer lost"), fail the create of a chosen work unit
(``fail_units``), add latency to every call (``latency``), cap list pages (``max_page_size``),
and read the most creates that were in flight at once (``max_in_flight_creates``).
"""

from __future__ import annotations

import collections
import datetime
import json
import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any, Optional

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.cloud.aiplatform_v1 import types
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2, timestamp_pb2

SERVICE = "google.cloud.aiplatform.v1.JobService"
TERMINAL = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED",
            "JOB_STATE_PARTIALLY_SUCCEEDED"}


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_tls(folder: str) -> tuple[str, bytes, bytes]:
    """A test CA and a 'localhost' certificate it signed: (ca.pem path, server key, server cert chain)."""
    import ipaddress
    import os

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = _key(), _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "xm test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = os.path.join(folder, "ca.pem")
    with open(ca_path, "wb") as file:
        file.write(ca.public_bytes(serialization.Encoding.PEM))
    return ca_path, _pem(key), leaf.public_bytes(serialization.Encoding.PEM)


#: The project the tests' JobService knows.
PROJECT = "xm-test"


def write_key_file(folder: Any, project: Optional[str] = PROJECT) -> str:
    """A service account key file for ``project`` in ``folder`` (a ``pathlib.Path``); returns its path."""
    path = folder / "service-account.json"
    path.write_text(json.dumps(service_account_json(project)))
    return str(path)


def service_account_json(project: Optional[str]) -> dict[str, Any]:
    """A service account key file's content, with a fresh RSA key (never valid at Google)."""
    info = {
        "type": "service_account", "private_key_id": "test-key", "private_key": _pem(_key()).decode(),
        "client_email": "xm-test@example.iam.gserviceaccount.com", "client_id": "1",
        "token_uri": "https://127.0.0.1:1/token",
    }
    if project:
        info["project_id"] = project
    return info


class FakeJobService:
    """CustomJobs in memory. ``projects`` are the projects it knows (others: PERMISSION_DENIED)."""

    def __init__(self, projects: tuple[str, ...] = ("xm-test",)) -> None:
        self.projects = set(projects)
        self.lock = threading.Lock()
        self.jobs: dict[str, types.CustomJob] = {}
        self.calls: list[tuple[str, Any, dict[str, str]]] = []
        self.fail_create: dict[int, grpc.StatusCode] = {}  # n-th Create (1-based) -> error.
        #: Create of work unit (label value) -> error, every time, without the latency.
        self.fail_units: dict[str, grpc.StatusCode] = {}
        self.faults: dict[str, collections.deque[tuple[grpc.StatusCode, bool]]] = {}
        self.latency: dict[str, float] = {}  # Method (or "*" for all) -> seconds added to each call.
        self.max_page_size: Optional[int] = None  # Like a server cap: page_size above it is lowered.
        self.reject_credentials = False
        self.in_flight_creates = 0
        self.max_in_flight_creates = 0
        self._creates = 0
        self._next_id = 1000

    def reset(self) -> None:
        with self.lock:
            self.jobs.clear()
            self.calls.clear()
            self.fail_create.clear()
            self.fail_units.clear()
            self.faults.clear()
            self.latency.clear()
            self.max_page_size = None
            self.reject_credentials = False
            self.in_flight_creates = self.max_in_flight_creates = 0
            self._creates = 0

    # ---- test control ---------------------------------------------------------------------------
    def set_state(self, name: str, state: str, error: str = "") -> None:
        with self.lock:
            job = self.jobs[name]
            job.state = types.JobState[state]
            now = _now()
            if state == "JOB_STATE_RUNNING":
                job.start_time = now
            if state in TERMINAL:
                job.end_time = now
            if error:
                job.error = {"code": 13, "message": error}
            job.update_time = now

    def set_all(self, state: str) -> None:
        for name in list(self.jobs):
            self.set_state(name, state)

    def fail(self, method: str, code: grpc.StatusCode, times: int = 1, after: bool = False) -> None:
        """The next ``times`` calls of ``method`` fail with ``code``; with ``after`` (CreateCustomJob only),
        each create stores its job first and then fails: the answer is lost."""
        with self.lock:
            self.faults.setdefault(method, collections.deque()).extend([(code, after)] * times)

    def methods(self) -> list[str]:
        return [method for method, _, _ in self.calls]

    def created(self) -> list[types.CustomJob]:
        return [request.custom_job for method, request, _ in self.calls if method == "CreateCustomJob"]

    # ---- handlers ------------------------------------------------------------------------------
    def _enter(self, method: str, request: Any, context: grpc.ServicerContext,
               wait: bool = True) -> Optional[grpc.StatusCode]:
        """Records the call, waits its latency, applies an injected fault; returns a fault for after the work."""
        metadata = {key: value for key, value in context.invocation_metadata()}
        with self.lock:
            self.calls.append((method, request, metadata))
            delay = self.latency.get(method, self.latency.get("*", 0.0))
            queue = self.faults.get(method)
            fault = queue.popleft() if queue else None
        if delay and wait:
            time.sleep(delay)
        if self.reject_credentials or not metadata.get("authorization", "").startswith("Bearer "):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "Request had invalid authentication credentials.")
        if fault is not None and not fault[1]:
            context.abort(fault[0], _fault_message(fault[0]))
        return fault[0] if fault is not None else None

    def _check_parent(self, parent: str, context: grpc.ServicerContext) -> None:
        parts = parent.split("/")
        if len(parts) != 4 or parts[0] != "projects" or parts[2] != "locations":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad parent {parent!r}")
        if parts[1] not in self.projects:
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          f"Permission 'aiplatform.customJobs.create' denied on resource '//aiplatform.googleapis.com/"
                          f"projects/{parts[1]}/locations/{parts[3]}' (or it may not exist).")

    def create(self, request: types.CreateCustomJobRequest, context: grpc.ServicerContext) -> types.CustomJob:
        with self.lock:
            self.in_flight_creates += 1
            self.max_in_flight_creates = max(self.max_in_flight_creates, self.in_flight_creates)
        try:
            return self._create(request, context)
        finally:
            with self.lock:
                self.in_flight_creates -= 1

    def _create(self, request: types.CreateCustomJobRequest, context: grpc.ServicerContext) -> types.CustomJob:
        unit_failure = self.fail_units.get(request.custom_job.labels.get("xm-work-unit", ""))
        lost = self._enter("CreateCustomJob", request, context, wait=unit_failure is None)  # Those fail at once.
        self._check_parent(request.parent, context)
        with self.lock:
            self._creates += 1
            failure = self.fail_create.get(self._creates) or unit_failure
        if failure is not None:
            context.abort(failure, _fault_message(failure))
        if not request.custom_job.job_spec.worker_pool_specs:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "worker_pool_specs must be set")
        with self.lock:
            self._next_id += 1
            job = types.CustomJob(request.custom_job)
            job.name = f"{request.parent}/customJobs/{self._next_id}"
            job.state = types.JobState.JOB_STATE_PENDING
            job.create_time = job.update_time = _now()
            self.jobs[job.name] = job
            answer = types.CustomJob(job)
        if lost is not None:
            context.abort(lost, _fault_message(lost))
        return answer

    def get(self, request: types.GetCustomJobRequest, context: grpc.ServicerContext) -> types.CustomJob:
        self._enter("GetCustomJob", request, context)
        with self.lock:
            job = self.jobs.get(request.name)
            if job is not None:
                return types.CustomJob(job)
        context.abort(grpc.StatusCode.NOT_FOUND, f"CustomJob {request.name} is not found.")
        raise AssertionError("unreachable")

    def list(self, request: types.ListCustomJobsRequest, context: grpc.ServicerContext) -> types.ListCustomJobsResponse:
        self._enter("ListCustomJobs", request, context)
        self._check_parent(request.parent, context)
        try:
            keep = _label_filter(request.filter)
        except ValueError as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        with self.lock:
            jobs = [types.CustomJob(j) for name, j in sorted(self.jobs.items())
                    if name.startswith(request.parent + "/") and keep(j)]
        if request.read_mask.paths:  # Only the fields asked for, as Vertex does.
            jobs = [_masked(job, request.read_mask.paths) for job in jobs]
        start = int(request.page_token or 0)
        size = request.page_size or 100
        if self.max_page_size:
            size = min(size, self.max_page_size)
        page = jobs[start : start + size]
        token = str(start + size) if start + size < len(jobs) else ""
        return types.ListCustomJobsResponse(custom_jobs=page, next_page_token=token)

    def cancel(self, request: types.CancelCustomJobRequest, context: grpc.ServicerContext) -> empty_pb2.Empty:
        self._enter("CancelCustomJob", request, context)
        with self.lock:
            job = self.jobs.get(request.name)
            if job is None:
                context.abort(grpc.StatusCode.NOT_FOUND, f"CustomJob {request.name} is not found.")
            if job.state.name in TERMINAL:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"CustomJob {request.name} has already ended.")
        self.set_state(request.name, "JOB_STATE_CANCELLED")
        return empty_pb2.Empty()

    def delete(self, request: types.DeleteCustomJobRequest, context: grpc.ServicerContext) -> operations_pb2.Operation:
        self._enter("DeleteCustomJob", request, context)
        with self.lock:
            if self.jobs.pop(request.name, None) is None:
                context.abort(grpc.StatusCode.NOT_FOUND, f"CustomJob {request.name} is not found.")
        return operations_pb2.Operation(name=f"{request.name}/operations/1", done=True)

    def handler(self) -> grpc.GenericRpcHandler:
        def unary(fn: Callable[..., Any], request_type: Any, serialize: Callable[[Any], bytes]) -> Any:
            return grpc.unary_unary_rpc_method_handler(
                fn, request_deserializer=request_type.deserialize, response_serializer=serialize
            )

        return grpc.method_handlers_generic_handler(SERVICE, {
            "CreateCustomJob": unary(self.create, types.CreateCustomJobRequest, types.CustomJob.serialize),
            "GetCustomJob": unary(self.get, types.GetCustomJobRequest, types.CustomJob.serialize),
            "ListCustomJobs": unary(self.list, types.ListCustomJobsRequest, types.ListCustomJobsResponse.serialize),
            "CancelCustomJob": unary(self.cancel, types.CancelCustomJobRequest, empty_pb2.Empty.SerializeToString),
            "DeleteCustomJob": unary(self.delete, types.DeleteCustomJobRequest,
                                     operations_pb2.Operation.SerializeToString),
        })


def _fault_message(code: grpc.StatusCode) -> str:
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return "Quota exceeded for aiplatform.googleapis.com/custom_model_training_cpus"
    return f"injected {code.name}"


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


def _masked(job: types.CustomJob, paths: Any) -> types.CustomJob:
    masked = types.CustomJob()
    for path in paths:
        if path not in types.CustomJob.meta.fields:
            raise ValueError(f"read_mask: CustomJob has no field {path!r}")
        setattr(masked, path, getattr(job, path))
    return masked


def _label_filter(text: str) -> Callable[[types.CustomJob], bool]:
    """``labels.KEY="VALUE"`` terms joined by AND (the subset of Vertex's filter syntax we use)."""
    terms = []
    for term in filter(None, (t.strip() for t in text.split(" AND "))) if text else ():
        key, sep, value = term.partition("=")
        if not sep or not key.startswith("labels.") or not (value.startswith('"') and value.endswith('"')):
            raise ValueError(f"unsupported filter term {term!r}")
        terms.append((key[len("labels."):], value[1:-1]))
    return lambda job: all(job.labels.get(key) == value for key, value in terms)


class Server:
    """The servicer behind a TLS port on localhost."""

    def __init__(self, service: FakeJobService, key: bytes, chain: bytes, max_workers: int = 32) -> None:
        self.service = service
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers))
        self._server.add_generic_rpc_handlers((service.handler(),))
        self.port = self._server.add_secure_port("localhost:0", grpc.ssl_server_credentials([(key, chain)]))
        self.endpoint = f"localhost:{self.port}"
        self._server.start()

    def stop(self) -> None:
        self._server.stop(grace=None)
