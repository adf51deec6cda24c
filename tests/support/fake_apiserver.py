"""A small stand-in for the Kubernetes API server, on loopback, for the real ``kubernetes`` client.

No real API server can run on our machines (see docs/kubernetes.md), so the executor's tests
talk HTTP(S) to this one. It implements only what the executor uses -- batch/v1 Jobs
(create with ``dryRun``, list with ``labelSelector``, get, delete with ``propagationPolicy``),
pods (list by label, read log) and nodes (list by label) -- checks a bearer token, validates
every created Job against the official schema (``kubernetes-validate``, as the real server's
validation would refuse it), and lets a test move Jobs through their life
(:meth:`FakeApiServer.start_job`, :meth:`FakeApiServer.finish_job`).

For load behaviour it can also add a per-request delay (:attr:`FakeApiServer.latency`), answer
chosen requests with an error such as 429 with ``Retry-After`` or 503 (:meth:`FakeApiServer.inject`,
optionally after carrying the request out, as when an answer is lost), page Job and pod lists by
``limit``/``continue`` as the real server does, and count creates in flight at once
(:attr:`FakeApiServer.max_in_flight_creates`).
"""

from __future__ import annotations

import base64
import datetime
import json
import re
import ssl
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional
from urllib.parse import parse_qs, urlsplit

_JOBS = re.compile(r"^/apis/batch/v1/namespaces/([^/]+)/jobs(?:/([^/]+))?$")
_PODS = re.compile(r"^/api/v1/namespaces/([^/]+)/pods$")
_LOG = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/log$")
_NODES = re.compile(r"^/api/v1/nodes$")
_TERM = re.compile(r"^\s*([^\s!=]+)\s*(?:(==|=|!=)\s*(\S*)|\s+(in|notin)\s+\(([^)]*)\))\s*$")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_selector(text: str) -> list[tuple[str, str, set[str]]]:
    """``k=v,k2 in (a,b),k3!=c`` -> [(key, op, values)]; raises ValueError on anything else."""
    terms, depth, current = [], 0, ""
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    if current:
        terms.append(current)
    parsed = []
    for term in terms:
        match = _TERM.match(term)
        if not match:
            raise ValueError(f"unable to parse requirement: {term!r}")
        key, op, value, set_op, values = match.groups()
        if op:
            parsed.append((key, "!=" if op == "!=" else "=", {value}))
        else:
            parsed.append((key, set_op, {v.strip() for v in values.split(",")}))
    return parsed


def matches(selector: list[tuple[str, str, set[str]]], labels: dict[str, str]) -> bool:
    for key, op, values in selector:
        value = labels.get(key)
        if op in ("=", "in") and value not in values:
            return False
        if op in ("!=", "notin") and value in values:
            return False
    return True


class FakeApiServer:
    """Threaded HTTP(S) server on 127.0.0.1 with in-memory Jobs, pods and nodes."""

    def __init__(self, token: str = "test-token", tls: Optional[tuple[str, str]] = None, validate: bool = True):
        self.token = token
        self.validate = validate
        self.lock = threading.Lock()
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.logs: dict[tuple[str, str], str] = {}
        self.nodes: list[dict[str, Any]] = []
        self.namespaces = {"default"}
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []
        self.deletions: list[tuple[str, str, Optional[str]]] = []
        self.forbidden: set[tuple[str, str]] = set()  # (verb, resource), e.g. ("list", "nodes").
        self.fail_create_number: Optional[int] = None  # The n-th real create (1-based) answers fail_create_status.
        self.fail_create_status = 500
        self.creates = 0
        self.latency = 0.0  # Seconds every request waits before it is handled.
        self.faults: list[Fault] = []
        self.in_flight_creates = 0
        self.max_in_flight_creates = 0
        self.expire_continue = False  # The next request with a continue token answers 410 Gone.
        self._httpd = _Server(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
            scheme = "https"
        self.port = self._httpd.server_address[1]
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-apiserver", daemon=True)

    def start(self) -> FakeApiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    # ---- what tests look at -------------------------------------------------------------------
    def calls(self, method: str, kind: str) -> list[tuple[str, str, dict[str, list[str]]]]:
        """Requests of ``method`` whose path ends in ``kind`` (``jobs``, ``pods``, ``log``, ``nodes``)."""
        with self.lock:
            return [r for r in self.requests if r[0] == method and r[1].rstrip("/").split("/")[-1] == kind]

    def job(self, name: str, namespace: str = "default") -> dict[str, Any]:
        with self.lock:
            return json.loads(json.dumps(self.jobs[(namespace, name)]))

    def job_names(self, namespace: str = "default") -> list[str]:
        with self.lock:
            return sorted(name for ns, name in self.jobs if ns == namespace)

    # ---- moving Jobs through their life -------------------------------------------------------
    def start_job(self, name: str, namespace: str = "default", node: str = "node-1") -> str:
        """The Job gets a running pod (``active=1, ready=1``); returns the pod's name."""
        with self.lock:
            job = self.jobs[(namespace, name)]
            pod_name = f"{name}-{uuid.uuid4().hex[:5]}"
            template = job["spec"]["template"]
            labels = {**template["metadata"].get("labels", {}), "job-name": name,
                      "batch.kubernetes.io/job-name": name, "controller-uid": job["metadata"]["uid"]}
            self.pods[(namespace, pod_name)] = {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod_name, "namespace": namespace, "labels": labels, "creationTimestamp": _now()},
                "spec": {**template["spec"], "nodeName": node},
                "status": {"phase": "Running", "containerStatuses": [
                    {"name": c["name"], "ready": True, "restartCount": 0, "image": c["image"], "imageID": "",
                     "state": {"running": {"startedAt": _now()}}} for c in template["spec"]["containers"]]},
            }
            self.logs[(namespace, pod_name)] = ""
            job["status"] = {"active": 1, "ready": 1, "startTime": _now()}
            return pod_name

    def hold_job(self, name: str, namespace: str = "default", *, waiting: Optional[tuple[str, str]] = None,
                 unschedulable: Optional[str] = None) -> None:
        """The Job gets a pod that does not run: a container waiting for ``(reason, message)``, or unschedulable."""
        pod_name = self.start_job(name, namespace)
        with self.lock:
            pod = self.pods[(namespace, pod_name)]
            pod["status"] = {"phase": "Pending"}
            if waiting is not None:
                pod["status"]["containerStatuses"] = [{"name": "job", "ready": False, "restartCount": 0, "image": "",
                                                       "imageID": "", "state": {"waiting": dict(zip(("reason", "message"),
                                                                                                    waiting))}}]
            if unschedulable is not None:
                pod["spec"].pop("nodeName", None)
                pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                                "message": unschedulable}]
            self.jobs[(namespace, name)]["status"] = {"active": 1, "ready": 0}

    def finish_job(self, name: str, exit_code: int = 0, log: str = "", namespace: str = "default",
                   reason: str = "BackoffLimitExceeded", message: str = "Job has reached the specified backoff limit") -> None:
        """The Job's pod ends with ``exit_code`` and ``log``; the Job gets a Complete or Failed condition."""
        with self.lock:
            job = self.jobs[(namespace, name)]
            pods = [key for key, pod in self.pods.items() if key[0] == namespace
                    and pod["metadata"]["labels"].get("job-name") == name]
        if not pods:
            self.start_job(name, namespace)
            return self.finish_job(name, exit_code, log, namespace, reason, message)
        with self.lock:
            key = pods[-1]
            pod = self.pods[key]
            pod["status"]["phase"] = "Succeeded" if exit_code == 0 else "Failed"
            for container in pod["status"]["containerStatuses"]:
                container["ready"] = False
                container["state"] = {"terminated": {"exitCode": exit_code, "startedAt": _now(), "finishedAt": _now(),
                                                     "reason": "Completed" if exit_code == 0 else "Error"}}
            self.logs[key] = log
            condition = {"type": "Complete", "status": "True", "lastProbeTime": _now(), "lastTransitionTime": _now()}
            if exit_code == 0:
                job["status"] = {"succeeded": 1, "ready": 0, "conditions": [condition]}
            else:
                condition.update(type="Failed", reason=reason, message=message)
                job["status"] = {"failed": 1, "ready": 0, "conditions": [condition]}
        return None

    def inject(self, method: str, kind: str, status: int, *, times: int = 1, retry_after: Optional[str] = None,
               after: bool = False, dry_run: bool = False) -> Fault:
        """The next ``times`` requests of ``method`` on ``kind`` (``jobs``, ``pods``, ``log``, ``nodes``) answer
        ``status`` (with a ``Retry-After`` header if given). With ``after``, the request is carried out first and
        only its answer replaced, as when a response is lost. Job creates count only if their ``dryRun`` matches."""
        fault = Fault(method, kind, status, times, retry_after, after, dry_run)
        with self.lock:
            self.faults.append(fault)
        return fault

    def _take_fault(self, method: str, kind: str, dry_run: bool) -> Optional[Fault]:
        with self.lock:
            for fault in self.faults:
                if fault.left > 0 and (fault.method, fault.kind) == (method, kind) and fault.dry_run == dry_run:
                    fault.left -= 1
                    fault.hits += 1
                    return fault
        return None

    # ---- request handling ---------------------------------------------------------------------
    def handle(self, method: str, url: str, headers: Any, body: bytes) -> tuple[Any, ...]:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        path = parts.path
        with self.lock:
            self.requests.append((method, path, query))
        kind = ("jobs" if _JOBS.match(path) else "pods" if _PODS.match(path) else "log" if _LOG.match(path)
                else "nodes" if _NODES.match(path) else "")
        dry_run = "All" in query.get("dryRun", [])
        fault = self._take_fault(method, kind, dry_run)
        counting = method == "POST" and kind == "jobs" and not dry_run
        if counting:
            with self.lock:
                self.in_flight_creates += 1
                self.max_in_flight_creates = max(self.max_in_flight_creates, self.in_flight_creates)
        try:
            if self.latency:
                time.sleep(self.latency)
            if fault is not None and not fault.after:
                return fault.answer()
            answer = self._route(method, path, query, headers, body)
            return fault.answer() if fault is not None else answer
        finally:
            if counting:
                with self.lock:
                    self.in_flight_creates -= 1

    def _route(self, method: str, path: str, query: dict[str, list[str]], headers: Any, body: bytes) -> tuple[Any, ...]:
        scheme, _, presented = (headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or presented.strip() != self.token:  # The scheme is case-insensitive (RFC 7235).
            return 401, _status(401, "Unauthorized", "Unauthorized")
        selector: list[tuple[str, str, set[str]]] = []
        if "labelSelector" in query:
            try:
                selector = parse_selector(query["labelSelector"][0])
            except ValueError as error:
                return 400, _status(400, "BadRequest", str(error))
        if match := _JOBS.match(path):
            namespace, name = match.groups()
            if namespace not in self.namespaces:
                return 404, _status(404, "NotFound", f'namespaces "{namespace}" not found')
            verb = {"POST": "create", "GET": "get" if name else "list", "DELETE": "delete"}.get(method, method)
            if (verb, "jobs") in self.forbidden:
                return 403, _status(403, "Forbidden", f'jobs is forbidden: User "test" cannot {verb} resource "jobs" '
                                    f'in API group "batch" in the namespace "{namespace}"')
            if method == "POST" and not name:
                return self._create(namespace, json.loads(body or b"{}"), "All" in query.get("dryRun", []))
            if method == "GET" and not name:
                with self.lock:
                    items = [job for (ns, _), job in self.jobs.items()
                             if ns == namespace and matches(selector, job["metadata"].get("labels", {}))]
                return self._page("batch/v1", "JobList", items, query)
            with self.lock:
                job = self.jobs.get((namespace, name))
            if job is None:
                return 404, _status(404, "NotFound", f'jobs.batch "{name}" not found')
            if method == "GET":
                return 200, job
            if method == "DELETE":
                options = json.loads(body) if body else {}
                policy = query.get("propagationPolicy", [options.get("propagationPolicy")])[0]
                with self.lock:
                    self.deletions.append((namespace, name, policy))
                    del self.jobs[(namespace, name)]
                    if policy in ("Foreground", "Background"):
                        for key in [k for k, pod in self.pods.items()
                                    if k[0] == namespace and pod["metadata"]["labels"].get("job-name") == name]:
                            del self.pods[key]
                return 200, _status(200, "", "", success=True)
        if match := _PODS.match(path):
            (namespace,) = match.groups()
            if method == "GET":
                with self.lock:
                    items = [pod for (ns, _), pod in self.pods.items()
                             if ns == namespace and matches(selector, pod["metadata"]["labels"])]
                return self._page("v1", "PodList", items, query)
        if match := _LOG.match(path):
            key = match.groups()
            with self.lock:
                log = self.logs.get(key)
            if log is None:
                return 404, _status(404, "NotFound", f'pods "{key[1]}" not found')
            return 200, log
        if _NODES.match(path) and method == "GET":
            if ("list", "nodes") in self.forbidden:
                return 403, _status(403, "Forbidden", 'nodes is forbidden: User "test" cannot list resource "nodes"')
            items = [node for node in self.nodes if matches(selector, node["metadata"].get("labels", {}))]
            return 200, {"apiVersion": "v1", "kind": "NodeList", "metadata": {}, "items": items}
        return 404, _status(404, "NotFound", f"the server could not find the requested resource ({method} {path})")

    def _page(self, api_version: str, kind: str, items: list[dict[str, Any]],
              query: dict[str, list[str]]) -> tuple[int, Any]:
        """One page of a list, by name: ``limit`` items after the key in the ``continue`` token, as the API does."""
        items = sorted(items, key=lambda item: item["metadata"]["name"])
        metadata: dict[str, Any] = {"resourceVersion": "1"}
        token = query.get("continue", [""])[0]
        if token:
            with self.lock:
                expired, self.expire_continue = self.expire_continue, False
            if expired:
                return 410, _status(410, "Expired", "The provided continue parameter is too old to display a "
                                    "consistent list result. You can start a new list without the continue parameter.")
            try:
                after = json.loads(base64.urlsafe_b64decode(token.encode()))["after"]
            except (ValueError, KeyError, TypeError):
                return 400, _status(400, "BadRequest", f"continue key is not valid: {token!r}")
            items = [item for item in items if item["metadata"]["name"] > after]
        try:
            limit = int(query.get("limit", ["0"])[0] or 0)
        except ValueError:
            return 400, _status(400, "BadRequest", "limit must be an integer")
        if limit > 0 and len(items) > limit:
            metadata["remainingItemCount"] = len(items) - limit
            items = items[:limit]
            last = items[-1]["metadata"]["name"]
            metadata["continue"] = base64.urlsafe_b64encode(json.dumps({"after": last}).encode()).decode()
        return 200, {"apiVersion": api_version, "kind": kind, "metadata": metadata, "items": items}

    def _create(self, namespace: str, job: dict[str, Any], dry_run: bool) -> tuple[int, Any]:
        name = job.get("metadata", {}).get("name", "")
        if self.validate:
            import kubernetes_validate

            try:
                kubernetes_validate.validate(job, kubernetes_validate.latest_version(), strict=True)
            except kubernetes_validate.ValidationError as error:
                return 422, _status(422, "Invalid", f'Job.batch "{name}" is invalid: {error.message}')
        if job.get("metadata", {}).get("namespace", namespace) != namespace:
            return 400, _status(400, "BadRequest", "the namespace of the object does not match the request")
        with self.lock:
            if not dry_run:
                self.creates += 1
                if self.fail_create_number == self.creates:
                    if self.fail_create_status == 403:
                        return 403, _status(403, "Forbidden", f'jobs.batch "{name}" is forbidden: exceeded quota: '
                                            "jobs, requested: count/jobs.batch=1, used: count/jobs.batch=10, "
                                            "limited: count/jobs.batch=10")
                    return self.fail_create_status, _status(self.fail_create_status, "InternalError",
                                                            "etcdserver: request timed out")
            if (namespace, name) in self.jobs:
                return 409, _status(409, "AlreadyExists", f'jobs.batch "{name}" already exists')
            stored = json.loads(json.dumps(job))
            stored["metadata"].update(namespace=namespace, uid=str(uuid.uuid4()), creationTimestamp=_now())
            stored["status"] = {}
            if not dry_run:
                self.jobs[(namespace, name)] = stored
        return 201, stored


class Fault:
    """An injected error answer for the next ``left`` matching requests (see :meth:`FakeApiServer.inject`)."""

    _REASONS = {429: "TooManyRequests", 500: "InternalError", 502: "BadGateway", 503: "ServiceUnavailable",
                504: "Timeout", 409: "AlreadyExists", 400: "BadRequest", 422: "Invalid"}

    def __init__(self, method: str, kind: str, status: int, times: int, retry_after: Optional[str], after: bool,
                 dry_run: bool) -> None:
        self.method, self.kind, self.status, self.left = method, kind, status, times
        self.retry_after, self.after, self.dry_run = retry_after, after, dry_run
        self.hits = 0

    def answer(self) -> tuple[int, Any, dict[str, str]]:
        reason = self._REASONS.get(self.status, "InternalError")
        message = "the server has received too many requests and has asked us to try again later" \
            if self.status == 429 else f"injected {self.status} {reason}"
        headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
        return self.status, _status(self.status, reason, message), headers


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients closing idle keep-alive connections are normal; anything else is printed."""
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


def _status(code: int, reason: str, message: str, success: bool = False) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success" if success else "Failure",
            "message": message, "reason": reason, "code": code}


def _handler(server: FakeApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 1 << 16  # Headers and body leave in one segment (no Nagle/delayed-ACK stalls).

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            code, payload, *extra = server.handle(self.command, self.path, self.headers, body)
            if isinstance(payload, str):
                data, kind = payload.encode(), "text/plain"
            else:
                data, kind = json.dumps(payload).encode(), "application/json"
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            for key, value in (extra[0] if extra else {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _serve  # noqa: N815 - http.server's names.

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet.
            pass

    return Handler
