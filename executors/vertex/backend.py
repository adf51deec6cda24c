"""The Vertex AI backend: one CustomJob per work unit, created concurrently, polled in batches.

``launch`` first builds every unit's CustomJob (machine types and accelerators checked),
then resolves credentials and project, then asks each API server one cheap question
(``ListCustomJobs`` with one result) so an unreachable server, refused credentials or
a missing project are reported before any job exists. Only then are jobs created, up to
``Vertex(max_concurrent_creates=8)`` calls in flight on one shared ``JobServiceClient`` (its
gRPC channel is thread-safe and multiplexes the calls). If a creation fails, no further one
starts, and every CustomJob this call created (or may have created) is cancelled, so a batch
is all or nothing; the error names the unit. Handles come back in the order of the units.

Every call is retried on RESOURCE_EXHAUSTED and UNAVAILABLE (:mod:`.retry`; the GAPIC client
itself retries nothing). Vertex v1 has no client-chosen CustomJob ID, so each CustomJob carries
a random ``xm-create-token`` label: a create whose outcome is unknown (UNAVAILABLE or
DEADLINE_EXCEEDED) is only sent again after a ``ListCustomJobs`` on that label found nothing.

``refresh`` asks ``ListCustomJobs`` once per (server, project, region, experiment), with
a filter on our ``xm-experiment`` label, following ``next_page_token`` page by page, when it
follows more than a few jobs, and ``GetCustomJob`` per job otherwise (or for jobs the list no
longer shows). A server that does not answer leaves the statuses as they are (with a warning);
refused credentials raise.

``recover`` finds the CustomJobs of a launcher that died before their handles were stored:
``launch`` records every job it is about to send before the first create (:mod:`.recovery`), and
``recover`` lists the recorded targets' CustomJobs by experiment label and matches the create
tokens. A job without a record was never sent. A recorded one not found may be a create the dead
launcher still had in flight: ``recover`` looks once more after :data:`RECOVER_GRACE` (longer than
a create call may take), so a None stays final.

Vertex AI keeps a job's output in Cloud Logging, not in files; ``logs()`` gives a file
in the job's folder with the CustomJob's name, its console URL and every state change
this machine saw (appended on each refresh).
"""

from __future__ import annotations

import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from http import HTTPStatus
from typing import Any, Optional, TypeVar

import attrs
from xmanager.executors.api import (
    BackendSettings,
    ExecutorBackend,
    Handle,
    JobRef,
    LaunchError,
    LogFiles,
    StatusSink,
    StatusUpdate,
    UnitLaunch,
)
from xmanager.executors.retrying import bounded_map, create_all
from xmanager.executors.vertex import job_spec, recovery, retry
from xmanager.executors.vertex.client import CREDENTIALS_HINT, Clients, Target, VertexConfigError, location_of
from xmanager.executors.vertex.executor import DEFAULT_CONCURRENT_CREATES, Vertex, VertexExecutable
from xmanager.xm.status import Status

#: Vertex ``JobState`` names -> ours.
STATES: dict[str, Status] = {
    "JOB_STATE_UNSPECIFIED": Status.PENDING,
    "JOB_STATE_QUEUED": Status.PENDING,
    "JOB_STATE_PENDING": Status.PENDING,
    "JOB_STATE_PAUSED": Status.PENDING,
    "JOB_STATE_RUNNING": Status.RUNNING,
    "JOB_STATE_UPDATING": Status.RUNNING,
    "JOB_STATE_CANCELLING": Status.RUNNING,
    "JOB_STATE_SUCCEEDED": Status.COMPLETED,
    "JOB_STATE_FAILED": Status.FAILED,
    "JOB_STATE_EXPIRED": Status.FAILED,
    "JOB_STATE_PARTIALLY_SUCCEEDED": Status.FAILED,
    "JOB_STATE_CANCELLED": Status.CANCELLED,
}
EXPERIMENT_LABEL = "xm-experiment"
UNIT_LABEL = "xm-work-unit"
#: A random value per CustomJob, so a create whose answer was lost can be found instead of repeated.
TOKEN_LABEL = "xm-create-token"
#: Codes after which a create may or may not have been stored.
UNKNOWN_OUTCOME = ("UNAVAILABLE", "DEADLINE_EXCEEDED")
LOG_NAME = "vertex.log"
#: Above this many distinct jobs of one experiment, one List call replaces one Get per job.
GET_LIMIT = 3
CALL_TIMEOUT = 60.0
#: Seconds after which a create a dead launcher had in flight has surely landed or failed: its deadline, and some.
_sleep = time.sleep  # Tests replace it.
RECOVER_GRACE = CALL_TIMEOUT + 10.0
READ_MASK = ("name", "state", "error", "start_time", "end_time", "update_time")

T = TypeVar("T")


def _flag_service_account() -> Optional[str]:
    """``--xm_gcp_service_account_name`` when it was given (XManager's per-launch service account)."""
    from xmanager import xm_flags

    holder = xm_flags.GCP_SERVICE_ACCOUNT_NAME
    if not xm_flags.is_present(holder):
        return None
    return str(xm_flags.value(holder)).split("@", 1)[0] or None


class VertexError(LaunchError):
    """The Vertex AI API refused or failed a request (its own message is kept)."""


class VertexUnreachableError(VertexConfigError):
    """The API server did not answer (network, region or endpoint)."""


def _api_error(error: Exception, target: Target, doing: str) -> Exception:
    """One error for a failed API call: what failed and how to fix it."""
    from google.api_core import exceptions as api

    where = f"Vertex AI at {target.endpoint} (project {target.project}, region {target.location})"
    text = str(getattr(error, "message", "") or error)
    tried = retry.gave_up(error)
    if retry.is_auth_failure(error):
        # gRPC reports a failed credential refresh as UNAVAILABLE: it is not the server's fault.
        return VertexConfigError(f"{doing}: the Google credentials do not work ({text}); {CREDENTIALS_HINT}")
    if isinstance(error, (api.ServiceUnavailable, api.DeadlineExceeded, api.RetryError)):
        return VertexUnreachableError(
            f"{doing}: cannot reach {where}: {text}{tried}; check the network, the region, "
            "or the endpoint (Vertex(api_endpoint=...) or XM_VERTEX_API_ENDPOINT)"
        )
    if isinstance(error, api.Unauthenticated):
        return VertexConfigError(f"{doing}: {where} refused the credentials ({text}); {CREDENTIALS_HINT}")
    if isinstance(error, api.PermissionDenied):
        return VertexConfigError(
            f"{doing}: {where} denied access ({text}); check the project id and that the account has "
            "the Vertex AI User role (roles/aiplatform.user)"
        )
    if isinstance(error, api.ResourceExhausted):
        return VertexError(
            f"{doing}: {where} answered RESOURCE_EXHAUSTED: {text}{tried}; the project's Vertex AI quota or request "
            "rate is used up: wait, lower Vertex(max_concurrent_creates=...), or ask for more quota "
            "(console: IAM & Admin > Quotas)"
        )
    if isinstance(error, api.GoogleAPICallError):
        return VertexError(f"{doing}: {where} answered {HTTPStatus(error.code).name if error.code else ''}: {text}")
    return error


def _status_text(state: str) -> str:
    return state.removeprefix("JOB_STATE_")


def _timestamp(value: Any) -> Optional[float]:
    if value is None:
        return None
    try:
        stamp = float(value.timestamp())
    except (AttributeError, ValueError, OverflowError):
        return None
    return stamp if stamp > 0 else None


class VertexBackend(ExecutorBackend[Vertex]):

    def __init__(self, sink: StatusSink, settings: BackendSettings) -> None:
        self._sink = sink
        self._clients = Clients()
        self._last: dict[str, str] = {}  # Log path -> last state written there.
        self._checked: set[Target] = set()  # Targets that answered the preflight call.
        self._lock = threading.Lock()

    # ---- launching ----------------------------------------------------------------------------
    def launch(self, units: Sequence[UnitLaunch[Vertex]]) -> list[Handle]:
        from google.cloud.aiplatform_v1 import types

        # Pure checks first: nothing is contacted until every unit's CustomJob message is built.
        tokens = [secrets.token_hex(8) for _ in units]
        bodies = [types.CustomJob(self._body(unit, token)) for unit, token in zip(units, tokens)]
        targets: dict[tuple[Any, ...], Target] = {}
        unit_targets = []
        for unit in units:
            executor = unit.jobs[0].executor
            key = (executor.project, executor.location, executor.requirements.location, executor.api_endpoint)
            if key not in targets:
                targets[key] = self._clients.target(executor)
            unit_targets.append(targets[key])
        account = _flag_service_account()
        for body, target in zip(bodies, unit_targets):
            if account and not body.job_spec.service_account:
                body.job_spec.service_account = f"{account}@{target.project}.iam.gserviceaccount.com"
        for target in dict.fromkeys(targets.values()):
            self._preflight(target)
        limit = min((job.executor.max_concurrent_creates for unit in units for job in unit.jobs),
                    default=DEFAULT_CONCURRENT_CREATES)
        planned = [_Planned(unit, body, target, token)
                   for unit, body, target, token in zip(units, bodies, unit_targets, tokens)]
        recovery.write(
            (launch.work_dir, item.unit.experiment_id, item.unit.work_unit_id, launch.job_name,
             {"token": item.token, "endpoint": item.target.endpoint, "project": item.target.project,
              "location": item.target.location, "pool": index, "work_dir": launch.work_dir})
            for item in planned for index, launch in enumerate(item.unit.jobs)
        )
        jobs = self._create_all(planned, limit)
        handles: list[Handle] = []
        for item, job in zip(planned, jobs):
            handles.extend(self._handles(item.unit.experiment_id, item.unit.work_unit_id,
                                         [(launch.job_name, launch.work_dir) for launch in item.unit.jobs],
                                         item.target, job))
        return handles

    # ---- recovery ------------------------------------------------------------------------------
    def recover(self, jobs: Sequence[JobRef]) -> list[Optional[Handle]]:
        """The handles ``launch`` returned for these jobs, from its records and Vertex's CustomJobs (see above)."""
        records: dict[str, dict[tuple[int, int, str], dict[str, Any]]] = {}
        recorded: list[Optional[dict[str, Any]]] = []
        for job in jobs:
            folder = recovery.experiment_folder(job.work_dir)
            if folder not in records:
                records[folder] = recovery.read(folder)
            recorded.append(records[folder].get((job.experiment_id, job.work_unit_id, job.job_name)))
        wanted = [(job, data) for job, data in zip(jobs, recorded) if data is not None]
        found = self._by_token(wanted)
        missing = [(job, data) for job, data in wanted if data["token"] not in found]
        if missing:  # A create in flight when the launcher died lands within its deadline: look once more after it.
            _sleep(RECOVER_GRACE)
            found.update(self._by_token(missing))
        handles: list[Optional[Handle]] = []
        for job, data in zip(jobs, recorded):
            custom_job = None if data is None else found.get(data["token"])
            if data is None or custom_job is None:
                handles.append(None)
                continue
            target = Target(data["endpoint"], data["project"], data["location"])
            [handle] = self._handles(job.experiment_id, job.work_unit_id, [(job.job_name, job.work_dir)], target,
                                     custom_job, pool=int(data["pool"]), fresh=False)
            handles.append(handle)
        return handles

    def _by_token(self, wanted: Sequence[tuple[JobRef, dict[str, Any]]]) -> dict[str, Any]:
        """The recorded jobs' CustomJobs by create token: one filtered list (page by page) per target and experiment."""
        groups: dict[tuple[Target, int], set[str]] = {}
        for job, data in wanted:
            target = Target(data["endpoint"], data["project"], data["location"])
            groups.setdefault((target, job.experiment_id), set()).add(data["token"])
        found: dict[str, Any] = {}
        for (target, experiment_id), tokens in groups.items():
            found.update(self._list_tokens(target, experiment_id, tokens))
        return found

    def _list_tokens(self, target: Target, experiment_id: int, tokens: set[str]) -> dict[str, Any]:
        from google.cloud.aiplatform_v1 import types
        from google.protobuf import field_mask_pb2

        client = self._clients.client(target.endpoint)
        request = types.ListCustomJobsRequest(
            parent=target.parent, filter=f'labels.{EXPERIMENT_LABEL}="{experiment_id}"', page_size=1000,
            read_mask=field_mask_pb2.FieldMask(paths=["name", "state", "labels"]),
        )
        found: dict[str, Any] = {}
        try:
            while True:
                page = retry.call(client.list_custom_jobs, request=request, timeout=CALL_TIMEOUT,
                                  policy=retry.READ_POLICY)
                found.update((job.labels[TOKEN_LABEL], job) for job in page.custom_jobs
                             if job.labels.get(TOKEN_LABEL) in tokens)
                if not page.next_page_token:
                    return found
                request.page_token = page.next_page_token
        except Exception as error:
            raise _api_error(error, target, f"finding the CustomJobs of experiment {experiment_id}") from None

    def _create_all(self, planned: Sequence[_Planned], limit: int) -> list[Any]:
        """Creates every CustomJob, ``limit`` at a time, in input order; all or nothing.

        After a failure no further create starts (retries in progress stop too); every CustomJob
        this call created is cancelled, and so is any a create with an unknown outcome may have
        made (found by its create token).
        """
        done = create_all(self._create, planned, limit, _refused, "xm-vertex")
        if not done.failures:
            return done.results
        failures = done.failures
        index, error = failures[0]
        item = planned[index]
        failure = _api_error(error, item.target, f"creating the CustomJob of work unit {item.unit.work_unit_id}")
        undo = [(planned[i], done.results[i]) for i in done.undo]
        notes = self._undo(undo, limit)
        if len(failures) > 1:
            notes.insert(0, f"{len(failures) - 1} other create(s) in flight failed too")
        raise _with_note(failure, notes) from None

    def _create(self, item: _Planned, stop: Optional[threading.Event] = None) -> Any:
        """One CreateCustomJob, retried without risking a duplicate.

        RESOURCE_EXHAUSTED means the server refused the request (quota or rate): it is retried
        after a backoff. UNAVAILABLE and DEADLINE_EXCEEDED leave the outcome unknown (the job
        may have been stored and the answer lost): after the backoff, the CustomJob carrying
        this create's token label is looked up, and only if there is none is the create sent again.
        """
        from google.cloud.aiplatform_v1 import types

        client = self._clients.client(item.target.endpoint)
        request = types.CreateCustomJobRequest(parent=item.target.parent, custom_job=item.body)
        budget = retry.budget(retry.DEFAULT_POLICY, stop)
        while True:
            budget.attempts += 1
            try:
                return client.create_custom_job(request=request, timeout=CALL_TIMEOUT)
            except Exception as error:
                code = retry.code_of(error)
                if retry.is_auth_failure(error) or code not in ("RESOURCE_EXHAUSTED", *UNKNOWN_OUTCOME):
                    raise
                if not budget.pause(error):
                    raise
                if code in UNKNOWN_OUTCOME:
                    try:
                        existing = self._find(item.target, item.token)
                    except Exception:  # noqa: BLE001 - the outcome stays unknown; the rollback looks again.
                        raise error from None
                    if existing is not None:
                        return existing  # The earlier attempt was stored; its answer was lost.

    def _find(self, target: Target, token: str) -> Any:
        """The CustomJob a create with ``token`` made, or None."""
        from google.cloud.aiplatform_v1 import types

        client = self._clients.client(target.endpoint)
        request = types.ListCustomJobsRequest(parent=target.parent, filter=f'labels.{TOKEN_LABEL}="{token}"',
                                              page_size=10)
        page = retry.call(client.list_custom_jobs, request=request, timeout=CALL_TIMEOUT, policy=retry.READ_POLICY)
        found = [job for job in page.custom_jobs if job.labels.get(TOKEN_LABEL) == token]
        return found[0] if found else None

    def _body(self, unit: UnitLaunch[Vertex], token: str) -> dict[str, Any]:
        first = unit.jobs[0].executor
        pool_jobs = []
        for job in unit.jobs:
            executor, executable = job.executor, job.executable
            if not isinstance(executable, VertexExecutable):
                raise TypeError(f"work unit {unit.work_unit_id}, job {job.job_name!r}: not packaged for Vertex "
                                f"(package it with xm_local.Vertex.Spec())")
            if (executor.project, location_of(executor), executor.api_endpoint) != (
                first.project, location_of(first), first.api_endpoint
            ):
                raise job_spec.VertexSpecError(
                    f"work unit {unit.work_unit_id}: the jobs of a JobGroup run as one CustomJob and need the same "
                    "Vertex project, location and api_endpoint"
                )
            env = {**job.env}
            pool_jobs.append(job_spec.PoolJob(executable.image_uri, job.args, env, executor.requirements,
                                              executor.machine_type, executor.boot_disk_size_gb))
        try:
            pools = job_spec.worker_pools(pool_jobs)
        except job_spec.VertexSpecError as error:
            raise job_spec.VertexSpecError(f"work unit {unit.work_unit_id}: {error}") from None
        labels = {**first.labels, EXPERIMENT_LABEL: str(unit.experiment_id), UNIT_LABEL: str(unit.work_unit_id),
                  TOKEN_LABEL: token}
        names = "-".join(job.job_name for job in unit.jobs)
        return job_spec.custom_job(
            f"xm-{unit.experiment_id}-{unit.work_unit_id}-{names}", pools, labels=labels,
            service_account=first.service_account, network=first.network, tensorboard=first.tensorboard_name,
            base_output_directory=first.output_directory, timeout_seconds=first.timeout_seconds,
        )

    def _preflight(self, target: Target) -> None:
        """One small List call (once per target): the server answers, takes the credentials, knows the project."""
        from google.cloud.aiplatform_v1 import types

        if target in self._checked:
            return
        client = self._clients.client(target.endpoint)
        try:
            retry.call(client.list_custom_jobs, request=types.ListCustomJobsRequest(parent=target.parent, page_size=1),
                       timeout=CALL_TIMEOUT, policy=retry.READ_POLICY)
        except Exception as error:
            raise _api_error(error, target, "checking Vertex AI before submitting") from None
        self._checked.add(target)

    def _undo(self, undo: list[tuple[_Planned, Any]], limit: int) -> list[str]:
        """Cancels what a failed launch created (or may have: found by create token); notes for the error."""
        from google.api_core import exceptions as api

        undone: list[str] = []
        left: list[str] = []

        def cancel(entry: tuple[_Planned, Any]) -> None:
            item, job = entry
            try:
                if job is None:
                    job = self._find(item.target, item.token)
                    if job is None:
                        return  # The create that failed did not make one.
                client = self._clients.client(item.target.endpoint)
                try:
                    retry.call(client.cancel_custom_job, name=job.name, timeout=CALL_TIMEOUT)
                except api.FailedPrecondition:
                    pass  # Already ended.
                with self._lock:
                    undone.append(job.name)
            except Exception:  # noqa: BLE001 - reported by name below.
                with self._lock:
                    left.append(job.name if job is not None else f"the CustomJob of work unit {item.unit.work_unit_id}"
                                f" (label {TOKEN_LABEL}={item.token}), if it exists")

        _run(cancel, undo, limit)
        notes = []
        if undone:
            notes.append(f"cancelled the {len(undone)} CustomJob(s) this launch had created: "
                         f"{', '.join(sorted(undone))}")
        if left:
            notes.append(f"could not cancel: {', '.join(sorted(left))} (cancel them in the console)")
        return notes

    def _handles(self, experiment_id: int, work_unit_id: int, jobs: Sequence[tuple[str, str]], target: Target,
                 job: Any, pool: int = 0, fresh: bool = True) -> list[Handle]:
        """The handles of a unit's ``(job name, work_dir)`` pairs (worker pools ``pool``, ``pool + 1``, ...),
        with their log files started (``fresh``: written anew; else only where missing)."""
        url = job_spec.console_url(job.name, target.project)
        state = job.state.name
        handles = []
        for index, (job_name, work_dir) in enumerate(jobs, start=pool):
            log = os.path.join(work_dir, LOG_NAME)
            os.makedirs(work_dir, exist_ok=True)
            if fresh or not os.path.exists(log):
                with open(log, "w") as file:
                    file.write(f"Vertex AI CustomJob {job.name}\nconsole: {url}\n"
                               "(the job's own output is in Cloud Logging; this file lists the states seen here)\n")
            self._record(log, state, "", time.time())
            handles.append(Handle(
                executor="vertex", experiment_id=experiment_id, work_unit_id=work_unit_id,
                job_name=job_name,
                data={"name": job.name, "endpoint": target.endpoint, "project": target.project,
                      "location": target.location, "pool": index, "console_url": url, "log": log},
            ))
        return handles

    # ---- statuses ------------------------------------------------------------------------------
    def refresh(self, handles: Sequence[Handle]) -> list[StatusUpdate]:
        groups: dict[tuple[str, str, str, int], list[Handle]] = {}
        for handle in handles:
            data = handle.data
            groups.setdefault((data["endpoint"], data["project"], data["location"], handle.experiment_id), []).append(
                handle
            )
        updates = []
        for (endpoint, project, location, experiment_id), members in groups.items():
            target = Target(endpoint, project, location)
            try:
                jobs = self._fetch(target, experiment_id, {h.data["name"] for h in members})
            except VertexUnreachableError as error:
                # A poll that cannot get through changes nothing; the next one may.
                print(f"xmanager: warning: Vertex AI statuses not refreshed: {error}", file=sys.stderr)
                continue
            for handle in members:
                updates.append(self._update(handle, jobs.get(handle.data["name"])))
        return updates

    def _fetch(self, target: Target, experiment_id: int, names: set[str]) -> dict[str, Any]:
        """The CustomJobs named, by name (``None`` for jobs Vertex no longer has)."""
        from google.api_core import exceptions as api
        from google.cloud.aiplatform_v1 import types
        from google.protobuf import field_mask_pb2

        client = self._clients.client(target.endpoint)
        found: dict[str, Any] = {}
        try:
            if len(names) > GET_LIMIT:
                request = types.ListCustomJobsRequest(
                    parent=target.parent, filter=f'labels.{EXPERIMENT_LABEL}="{experiment_id}"', page_size=1000,
                    read_mask=field_mask_pb2.FieldMask(paths=list(READ_MASK)),
                )
                while True:  # Page by page, each page retried on its own.
                    page = retry.call(client.list_custom_jobs, request=request, timeout=CALL_TIMEOUT,
                                      policy=retry.READ_POLICY)
                    found.update((job.name, job) for job in page.custom_jobs if job.name in names)
                    if not page.next_page_token:
                        break
                    request.page_token = page.next_page_token
            for name in sorted(names - set(found)):
                try:
                    found[name] = retry.call(client.get_custom_job, name=name, timeout=CALL_TIMEOUT,
                                             policy=retry.READ_POLICY)
                except api.NotFound:
                    found[name] = None
        except Exception as error:
            raise _api_error(error, target, f"reading the CustomJobs of experiment {experiment_id}") from None
        return found

    def _update(self, handle: Handle, job: Any) -> StatusUpdate:
        url = handle.data.get("console_url", "")
        common: dict[str, Any] = {"experiment_id": handle.experiment_id, "work_unit_id": handle.work_unit_id,
                                  "job_name": handle.job_name}
        if job is None:
            message = f"Vertex AI no longer has CustomJob {handle.data['name']} (deleted?)"
            self._record(handle.data.get("log"), "NOT_FOUND", message, time.time())
            return StatusUpdate(status=Status.FAILED, message=message, **common)
        state = job.state.name
        status = STATES.get(state, Status.RUNNING)
        error = job.error.message if job.error and job.error.message else ""
        at = (_timestamp(job.end_time) if status.is_terminal else _timestamp(job.start_time)) or time.time()
        message = f"Vertex AI {_status_text(state)}" + (f": {error}" if error else "") + f" - {url}"
        self._record(handle.data.get("log"), state, error, at)
        return StatusUpdate(status=status, at=at, message=message, **common)

    def _record(self, log: Optional[str], state: str, message: str, at: float) -> None:
        """Appends a state change to the job's log file (once per change)."""
        if not log:
            return
        with self._lock:
            last = self._last.get(log)
            if last is None:
                last = self._last[log] = _last_state(log)
            if last == state:
                return
            self._last[log] = state
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
            try:
                with open(log, "a") as file:
                    file.write(f"{stamp} {state}" + (f" {message}" if message else "") + "\n")
            except OSError:
                pass  # The folder is on another machine: the status still reaches the store.

    def cancel(self, handles: Sequence[Handle]) -> None:
        from google.api_core import exceptions as api

        targets: dict[str, Target] = {}
        for handle in handles:
            name = handle.data.get("name")
            if name and name not in targets:
                targets[name] = Target(handle.data["endpoint"], handle.data["project"], handle.data["location"])
        errors: list[Exception] = []

        def cancel(name: str) -> None:
            target = targets[name]
            try:
                retry.call(self._clients.client(target.endpoint).cancel_custom_job, name=name, timeout=CALL_TIMEOUT)
            except (api.FailedPrecondition, api.NotFound):
                return  # Already finished, or gone.
            except Exception as error:
                with self._lock:
                    errors.append(_api_error(error, target, f"cancelling {name}"))

        _run(cancel, list(targets), DEFAULT_CONCURRENT_CREATES)
        if errors:
            raise errors[0]

    def logs(self, handle: Handle) -> LogFiles:
        return LogFiles(stdout=handle.data.get("log"), stderr=None)

    def close(self) -> None:
        self._clients.close()


@attrs.frozen
class _Planned:
    """One unit ready to create: its CustomJob message, where it goes, and its create token."""

    unit: UnitLaunch[Vertex]
    body: Any
    target: Target
    token: str


def _refused(error: BaseException) -> bool:
    """The server surely did not create the CustomJob (a definite refusal, or the request never left)."""
    code = retry.code_of(error)
    return retry.is_auth_failure(error) or (bool(code) and code not in (*UNKNOWN_OUTCOME, "INTERNAL", "UNKNOWN",
                                                                       "CANCELLED"))


def _run(fn: Callable[[T], None], items: Iterable[T], limit: int) -> None:
    bounded_map(fn, items, limit, "xm-vertex")


def _last_state(log: str) -> str:
    try:
        with open(log) as file:
            lines = [line.split() for line in file if line[:1].isdigit()]
    except OSError:
        return ""
    return lines[-1][1] if lines and len(lines[-1]) > 1 else ""


def _with_note(error: Exception, notes: Iterable[str]) -> Exception:
    notes = list(notes)
    if not notes:
        return error
    kind = type(error) if isinstance(error, (VertexError, VertexConfigError)) else VertexError
    return kind(f"{error}; {'; '.join(notes)}")
