"""The Kubernetes backend: create Jobs for a batch, poll them with one list call per namespace.

``launch`` builds every manifest first, then checks with the API server before anything is
created: a server-side dry run (``dryRun=All``) of one Job per distinct executor catches
an unreachable server, bad credentials, missing RBAC rights or namespace and an invalid
manifest; with an accelerator, a node list checks that some node carries the selected
labels. Then it creates the Jobs, one call each, with up to ``Kubernetes(max_concurrent_creates=8)``
calls in flight on one shared client; if one creation fails, no further one starts, and every
Job this call created (or may have created) is deleted, so a batch (and every JobGroup in it)
is all or nothing. Handles come back in the order of the units and jobs.

Every call is retried on 429 and 5xx answers (:mod:`.retry`). A create answered 409
AlreadyExists is ours when the existing Job carries this launch's :data:`.manifests.CREATE_TOKEN`
(an earlier attempt succeeded but its answer was lost), and a foreign Job otherwise.

``refresh`` lists the Jobs of the handles' experiments with one label-selector call per
(cluster, namespace); for Jobs that ended it lists their pods (one call) and reads each
one's log (one call per ended Job) into ``<work_dir>/pod.log``. The last
``XM_RESULTS_JSON:`` line of that log holds the job's results (see :mod:`.manifests`).
Lists are read in pages of :data:`LIST_PAGE_SIZE` (``limit`` + ``continue``).

``recover`` finds the Jobs of a launcher that died before their handles were stored: ``launch``
writes a record of every Job it is about to create before the first create (:mod:`.recovery`),
and ``recover`` lists the recorded namespaces by our labels (experiment, work unit) and matches
the recorded Job names. A job without a record was never sent. A recorded Job not found may be a
create the dead launcher still had in flight: ``recover`` looks once more after
:data:`RECOVER_GRACE` (longer than any create call may take), so a None stays final.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Optional, TypeVar

from xmanager.executors.api import (
    BackendSettings,
    ExecutorBackend,
    Handle,
    JobLaunch,
    JobRef,
    LogFiles,
    StatusSink,
    StatusUpdate,
    UnitLaunch,
)
from xmanager.executors.kubernetes import manifests, recovery, retry
from xmanager.executors.kubernetes.config import ClusterConfig, Connection, KubernetesError, connect, explain
from xmanager.executors.kubernetes.executor import DEFAULT_CONCURRENT_CREATES, Kubernetes, KubernetesImage
from xmanager.executors.retrying import bounded_map, create_all
from xmanager.xm.resources import resource_key
from xmanager.xm.status import Status

LOG_FILE = "pod.log"
_TIMEOUT = (10, 60)  # (connect, read) seconds for every API call.
#: Items per page of a Job or pod list; the server sends the rest through ``continue`` tokens.
LIST_PAGE_SIZE = 500
#: Deletions (cancel, rollback) and log reads kept in flight at once.
CONCURRENCY = DEFAULT_CONCURRENT_CREATES
#: Seconds after which a create a dead launcher had in flight has surely landed or failed: its timeout.
_sleep = time.sleep  # Tests replace it.
#: Up to this many work units, ``recover`` also selects Jobs by their work unit label.
_SELECTOR_UNITS = 100
RECOVER_GRACE = float(sum(_TIMEOUT))


class KubernetesBackend(ExecutorBackend[Kubernetes]):

    def __init__(self, sink: StatusSink, settings: BackendSettings) -> None:
        self._sink = sink
        self._connections: dict[ClusterConfig, Connection] = {}
        self._retired: list[Connection] = []  # Replaced by a client with a larger pool; closed with the backend.
        self._fresh: set[tuple[str, str]] = set()  # (namespace, name) created here and not yet seen started.
        self._checked: set[tuple[Any, ...]] = set()  # (executor, namespace) the server accepted in a dry run.
        self._lock = threading.Lock()

    def _connection(self, cluster: ClusterConfig, pool_size: int = CONCURRENCY) -> Connection:
        """The shared client of ``cluster``, with a connection pool of at least ``pool_size``."""
        with self._lock:
            connection = self._connections.get(cluster)
        if connection is not None and connection.pool_size >= pool_size:
            return connection
        fresh = connect(cluster, max(pool_size, CONCURRENCY))
        with self._lock:
            current = self._connections.get(cluster)
            if current is None or current.pool_size < fresh.pool_size:
                if current is not None:
                    self._retired.append(current)  # Other threads may still be using it.
                self._connections[cluster] = fresh
                return fresh
        fresh.api_client.close()  # Another thread got there first.
        return current

    # ---- launching ----------------------------------------------------------------------------
    def launch(self, units: Sequence[UnitLaunch[Kubernetes]]) -> list[Handle]:
        limit = min((job.executor.max_concurrent_creates for unit in units for job in unit.jobs),
                    default=DEFAULT_CONCURRENT_CREATES)
        planned = [self._plan(unit, job, limit) for unit in units for job in unit.jobs]
        self._check(planned)
        recovery.write((item.handle.data["work_dir"], item.handle.experiment_id, item.handle.work_unit_id,
                        item.handle.job_name, dict(item.handle.data)) for item in planned)
        self._create_all(planned, limit)
        return [item.handle for item in planned]

    def _create_all(self, planned: Sequence[_Planned], limit: int) -> None:
        """Creates every Job, ``limit`` at a time; on a failure starts no more and deletes what may exist."""
        done = create_all(lambda item, stop: self._create(item), planned, limit, _refused, "xm-kubernetes")
        if not done.failures:
            with self._lock:
                self._fresh.update((item.namespace, item.name) for item in planned)
            return
        failures = done.failures
        index, error = failures[0]
        item = planned[index]
        failure = error if isinstance(error, KubernetesError) else explain(
            error, item.connection, f"create Job {item.name} in namespace {item.namespace}")
        undo = [planned[i] for i in done.undo]
        undone, stuck = self._delete(undo, "Background", limit)
        others = f" ({len(failures) - 1} other create(s) in flight failed too)" if len(failures) > 1 else ""
        left = ""
        if stuck:
            names = " ".join(target.name for target, _ in stuck)
            left = (f"; could not delete {len(stuck)} ({stuck[0][1]}): delete them by hand with `kubectl delete job "
                    f"-n {stuck[0][0].namespace} {names}`")
        raise KubernetesError(
            f"work unit {item.handle.work_unit_id}, job {item.handle.job_name!r}: {failure}{others}; "
            f"deleted the {undone} Job(s) this launch had created{left}"
        )

    def _create(self, item: _Planned) -> None:
        """One create, retried; a 409 is success when the existing Job carries this launch's token."""
        from kubernetes.client.exceptions import ApiException

        api = self._batch(item.connection)
        try:
            retry.call(api.create_namespaced_job, item.namespace, item.manifest, _preload_content=False,
                       _request_timeout=_TIMEOUT)
            return
        except ApiException as error:
            if error.status != 409:
                raise
        response = retry.call(api.read_namespaced_job, item.name, item.namespace, _preload_content=False,
                              _request_timeout=_TIMEOUT)
        existing = json.loads(response.data)
        annotations = (existing.get("metadata") or {}).get("annotations") or {}
        if annotations.get(manifests.CREATE_TOKEN) != item.token:
            raise KubernetesError(
                f"could not create Job {item.name} in namespace {item.namespace}: a Job of that name already exists "
                f"and was not created by this launch (409 AlreadyExists); delete it (`kubectl delete job -n "
                f"{item.namespace} {item.name}`) and launch again"
            )
        # Ours: an earlier attempt was stored although its answer was lost (or said 5xx).

    def _plan(
        self, unit: UnitLaunch[Kubernetes], job: JobLaunch[Kubernetes], pool_size: int = CONCURRENCY
    ) -> _Planned:
        executor, executable = job.executor, job.executable
        if not isinstance(executable, KubernetesImage):
            where = f"work unit {unit.work_unit_id}, job {job.job_name!r}"
            raise TypeError(f"{where}: package it with xm_local.Kubernetes.Spec() (got {type(executable).__name__})")
        connection = self._connection(executor.cluster, pool_size)
        namespace = executor.namespace or connection.namespace
        name = manifests.job_name(unit.experiment_id, unit.work_unit_id, job.job_name, secrets.token_hex(3))
        token = secrets.token_hex(8)
        manifest = manifests.job_manifest(
            executor, name=name, namespace=namespace,
            job_labels=manifests.labels(unit.experiment_id, unit.work_unit_id, job.job_name),
            image=executable.image, command=executable.command, args=job.args, env=job.env, create_token=token,
        )
        handle = Handle(
            executor="kubernetes", experiment_id=unit.experiment_id, work_unit_id=unit.work_unit_id,
            job_name=job.job_name,
            data={"name": name, "namespace": namespace, "cluster": executor.cluster.to_json(), "work_dir": job.work_dir},
        )
        return _Planned(executor, connection, namespace, name, manifest, handle, token)

    def _check(self, planned: Sequence[_Planned]) -> None:
        """Asks the server about each distinct executor once per backend, before anything is created."""
        for item in planned:
            key = (item.executor, item.namespace)
            with self._lock:
                if key in self._checked:
                    continue
            action = f"create Jobs in namespace {item.namespace} (dry run)"
            api = self._batch(item.connection)
            try:
                retry.call(api.create_namespaced_job, item.namespace, item.manifest, dry_run="All",
                           _preload_content=False, _request_timeout=_TIMEOUT)
            except Exception as error:
                raise explain(error, item.connection, action) from None
            selector = item.manifest["spec"]["template"]["spec"].get("nodeSelector")
            kind = item.executor.requirements.accelerator
            if kind is not None and selector and item.executor.check_nodes:
                self._check_nodes(item.connection, selector, resource_key(kind))
            with self._lock:
                self._checked.add(key)

    def _check_nodes(self, connection: Connection, selector: dict[str, str], accelerator: str) -> None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        text = ",".join(f"{key}={value}" for key, value in sorted(selector.items()))
        api = client.CoreV1Api(connection.api_client)
        try:
            found = retry.call(api.list_node, label_selector=text, limit=1, _request_timeout=_TIMEOUT)
        except ApiException as error:
            if error.status == 403:
                return  # The account may not list nodes; the scheduler will tell.
            raise explain(error, connection, "list the cluster's nodes") from None
        except Exception as error:
            raise explain(error, connection, "list the cluster's nodes") from None
        if not found.items:
            raise KubernetesError(
                f"Kubernetes: no node of the cluster at {connection.host} carries {text}, which {accelerator} jobs "
                "need: add a node pool with that accelerator, or pass Kubernetes(check_nodes=False) if the cluster "
                "creates such nodes on demand"
            )

    @staticmethod
    def _batch(connection: Connection) -> Any:
        from kubernetes import client

        return client.BatchV1Api(connection.api_client)

    # ---- recovery ------------------------------------------------------------------------------
    def recover(self, jobs: Sequence[JobRef]) -> list[Optional[Handle]]:
        """The handles ``launch`` returned for these jobs, from its records and the cluster's Jobs (see above)."""
        records: dict[str, dict[tuple[int, int, str], dict[str, Any]]] = {}
        recorded: list[Optional[Handle]] = []
        for job in jobs:
            folder = recovery.experiment_folder(job.work_dir)
            if folder not in records:
                records[folder] = recovery.read(folder)
            data = records[folder].get((job.experiment_id, job.work_unit_id, job.job_name))
            recorded.append(None if data is None else Handle(
                executor="kubernetes", experiment_id=job.experiment_id, work_unit_id=job.work_unit_id,
                job_name=job.job_name, data=data))
        found = self._existing([handle for handle in recorded if handle is not None])
        missing = [handle for handle in recorded if handle is not None and handle.data["name"] not in found]
        if missing:  # A create in flight when the launcher died lands within its timeout: look once more after it.
            _sleep(RECOVER_GRACE)
            found |= self._existing(missing)
        return [handle if handle is not None and handle.data["name"] in found else None for handle in recorded]

    def _existing(self, handles: Sequence[Handle]) -> set[str]:
        """The names of the handles' Jobs the cluster has, one label-selector list per (cluster, namespace)."""
        names: set[str] = set()
        for (cluster, namespace), members in _by_namespace(handles).items():
            connection = self._connection(cluster)
            experiments = ",".join(sorted({str(h.experiment_id) for h in members}))
            units = sorted({h.work_unit_id for h in members})
            selector = f"{manifests.MANAGED_BY}=xmanager,{manifests.EXPERIMENT_LABEL} in ({experiments})"
            if len(units) <= _SELECTOR_UNITS:  # Narrower; a sweep's thousands of units would make too long a URL.
                selector += f",{manifests.WORK_UNIT_LABEL} in ({','.join(map(str, units))})"
            listed = self._list(connection, f"list Jobs in namespace {namespace}",
                                self._batch(connection).list_namespaced_job, namespace, selector)
            wanted = {h.data["name"] for h in members}
            names.update(item["metadata"]["name"] for item in listed if item["metadata"]["name"] in wanted)
        return names

    # ---- statuses ------------------------------------------------------------------------------
    def refresh(self, handles: Sequence[Handle]) -> list[StatusUpdate]:
        updates: list[StatusUpdate] = []
        for (cluster, namespace), members in _by_namespace(handles).items():
            connection = self._connection(cluster)
            experiments = sorted({str(h.experiment_id) for h in members})
            selector = f"{manifests.MANAGED_BY}=xmanager,{manifests.EXPERIMENT_LABEL} in ({','.join(experiments)})"
            listed = self._list(connection, f"list Jobs in namespace {namespace}",
                                self._batch(connection).list_namespaced_job, namespace, selector)
            jobs = {item["metadata"]["name"]: item for item in listed}
            ended: list[tuple[Handle, Status, str]] = []
            waiting: list[Handle] = []
            for handle in members:
                job = jobs.get(handle.data["name"])
                status, message = _job_status(job)
                if status.is_terminal and status is not Status.CANCELLED:
                    ended.append((handle, status, message))
                    continue
                if status is Status.PENDING and job is not None and (job.get("status") or {}).get("active"):
                    waiting.append(handle)  # A pod exists but does not run yet: its reason is worth showing.
                    continue
                if status is not Status.PENDING:
                    with self._lock:
                        self._fresh.discard((namespace, handle.data["name"]))
                updates.append(_update(handle, status, message))
            if ended or waiting:
                pods = self._pods(connection, namespace, selector)
                updates.extend(_update(handle, Status.PENDING, _waiting_reason(pods.get(handle.data["name"]) or []))
                               for handle in waiting)
                # One log read per ended Job, several at once.
                updates.extend(_run(functools.partial(self._finish, connection, namespace, pods), ended, CONCURRENCY))
        return updates

    @staticmethod
    def _list(connection: Connection, action: str, method: Any, namespace: str, selector: str) -> list[dict[str, Any]]:
        """The items of a label-selector list, page by page, as plain dicts (no model objects to build).

        A ``continue`` token that expired between pages (410 Gone) restarts the list once from the start.
        """
        from kubernetes.client.exceptions import ApiException

        items: list[dict[str, Any]] = []
        token: Optional[str] = None
        restarted = False
        while True:
            options: dict[str, Any] = {"label_selector": selector, "limit": LIST_PAGE_SIZE}
            if token:
                options["_continue"] = token
            try:
                response = retry.call(method, namespace, **options, _preload_content=False,
                                      _request_timeout=_TIMEOUT)
            except ApiException as error:
                if error.status == 410 and token and not restarted:
                    items, token, restarted = [], None, True
                    continue
                raise explain(error, connection, action) from None
            except Exception as error:
                raise explain(error, connection, action) from None
            page = json.loads(response.data)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue") or None
            if not token:
                return items

    def _pods(self, connection: Connection, namespace: str, selector: str) -> dict[str, list[dict[str, Any]]]:
        """The pods of ``selector``'s Jobs, by Job name, newest last."""
        from kubernetes import client

        items = self._list(connection, f"list pods in namespace {namespace}",
                           client.CoreV1Api(connection.api_client).list_namespaced_pod, namespace, selector)
        by_job: dict[str, list[dict[str, Any]]] = {}
        for pod in items:
            pod_labels = pod["metadata"].get("labels") or {}
            owner = pod_labels.get("batch.kubernetes.io/job-name") or pod_labels.get("job-name")
            if owner:
                by_job.setdefault(owner, []).append(pod)
        for pods in by_job.values():
            pods.sort(key=lambda pod: pod["metadata"].get("creationTimestamp") or "")
        return by_job

    def _finish(self, connection: Connection, namespace: str, pods: dict[str, list[dict[str, Any]]],
                ended: tuple[Handle, Status, str]) -> StatusUpdate:
        """The final update of an ended Job: its pod's log saved, exit code, node and results."""
        handle, status, message = ended
        with self._lock:
            self._fresh.discard((namespace, handle.data["name"]))
        candidates = pods.get(handle.data["name"]) or []
        if not candidates:
            return _update(handle, status, message or "no pod of the Job is left to read its log from")
        pod = candidates[-1]
        exit_code = _exit_code(pod)
        host = (pod.get("spec") or {}).get("nodeName")
        try:
            log = self._save_log(connection, namespace, pod["metadata"]["name"], handle)
        except KubernetesError as error:
            return _update(handle, status, f"{message}; {error}" if message else str(error), exit_code, host)
        results = None
        try:
            results = manifests.parse_results(log)
        except ValueError as error:
            status, message = Status.FAILED, f"the results line of the pod log is not a JSON object: {error}"
        if status is Status.COMPLETED and exit_code not in (None, 0):
            status = Status.FAILED
        return _update(handle, status, message, exit_code, host, results)

    def _save_log(self, connection: Connection, namespace: str, pod: str, handle: Handle) -> str:
        from kubernetes import client

        api = client.CoreV1Api(connection.api_client)
        try:
            response: Any = retry.call(  # Not preloaded: the raw HTTP response, its body undecoded.
                api.read_namespaced_pod_log, pod, namespace, container=manifests.CONTAINER, _preload_content=False,
                _request_timeout=_TIMEOUT,
            )
        except Exception as error:
            raise explain(error, connection, f"read the log of pod {pod}") from None
        text = response.data.decode("utf-8", errors="replace")
        path = _log_path(handle)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(tmp, path)
        return text

    # ---- cancel and logs -----------------------------------------------------------------------
    def cancel(self, handles: Sequence[Handle]) -> None:
        items = [_Target(self._connection(cluster), namespace, handle.data["name"])
                 for (cluster, namespace), members in _by_namespace(handles).items() for handle in members]
        self._delete(items, "Foreground", CONCURRENCY, strict=True)

    def _delete(self, items: Iterable[Any], propagation: str, limit: int,
                strict: bool = False) -> tuple[int, list[tuple[Any, KubernetesError]]]:
        """Deletes the Jobs (and, through ``propagation``, their pods), ``limit`` at a time; a Job already gone
        is fine. Returns how many existed and the failures; with ``strict``, raises the first failure after
        trying them all."""
        from kubernetes.client.exceptions import ApiException

        def delete(item: Any) -> tuple[bool, Optional[KubernetesError]]:
            api = self._batch(item.connection)
            try:
                retry.call(api.delete_namespaced_job, item.name, item.namespace, propagation_policy=propagation,
                           _request_timeout=_TIMEOUT)
            except ApiException as error:
                if error.status == 404:
                    return False, None
                return False, explain(error, item.connection, f"delete Job {item.name}")
            except Exception as error:
                return False, explain(error, item.connection, f"delete Job {item.name}")
            return True, None

        items = list(items)
        results = _run(delete, items, limit)
        failed = [(item, error) for item, (_, error) in zip(items, results) if error is not None]
        if strict and failed:
            more = f" ({len(failed) - 1} more deletion(s) failed)" if len(failed) > 1 else ""
            raise KubernetesError(f"{failed[0][1]}{more}")
        return sum(existed for existed, _ in results), failed

    def logs(self, handle: Handle) -> LogFiles:
        """``<work_dir>/pod.log``, refreshed from the API unless the Job was just created here.

        Kubernetes keeps one log per container (stdout and stderr interleaved), so ``stderr`` is None.
        """
        path = _log_path(handle)
        namespace, name = handle.data.get("namespace", ""), handle.data.get("name", "")
        with self._lock:
            fresh = (namespace, name) in self._fresh
        if not fresh and name:
            connection = self._connection(ClusterConfig.from_json(handle.data.get("cluster")))
            selector = f"job-name={name}"  # Set on pods by every Kubernetes version.
            from kubernetes import client

            pods = self._list(connection, f"list the pods of Job {name}",
                              client.CoreV1Api(connection.api_client).list_namespaced_pod, namespace, selector)
            if pods:
                pods.sort(key=lambda pod: pod["metadata"].get("creationTimestamp") or "")
                self._save_log(connection, namespace, pods[-1]["metadata"]["name"], handle)
        return LogFiles(stdout=path, stderr=None)

    def close(self) -> None:
        with self._lock:
            connections, self._connections = list(self._connections.values()) + self._retired, {}
            self._retired = []
        for connection in connections:
            connection.api_client.close()


class _Planned:
    """One Job to create: its manifest, where, and the handle it will have."""

    def __init__(self, executor: Kubernetes, connection: Connection, namespace: str, name: str,
                 manifest: dict[str, Any], handle: Handle, token: str) -> None:
        self.executor, self.connection, self.namespace, self.name = executor, connection, namespace, name
        self.manifest, self.handle, self.token = manifest, handle, token


class _Target:
    def __init__(self, connection: Connection, namespace: str, name: str) -> None:
        self.connection, self.namespace, self.name = connection, namespace, name


T = TypeVar("T")
R = TypeVar("R")


def _run(fn: Callable[[T], R], items: Iterable[T], limit: int) -> list[R]:
    return bounded_map(fn, items, limit, "xm-kubernetes")


def _refused(error: BaseException) -> bool:
    """True when a failed create surely stored nothing: a 4xx answer, or our own error (a foreign 409)."""
    if isinstance(error, KubernetesError):
        return True
    status = retry.status_of(error)
    return status is not None and 400 <= status < 500


def _by_namespace(handles: Iterable[Handle]) -> dict[tuple[ClusterConfig, str], list[Handle]]:
    groups: dict[tuple[ClusterConfig, str], list[Handle]] = {}
    for handle in handles:
        key = (ClusterConfig.from_json(handle.data.get("cluster")), handle.data["namespace"])
        groups.setdefault(key, []).append(handle)
    return groups


def _log_path(handle: Handle) -> str:
    return os.path.join(handle.data.get("work_dir", ""), LOG_FILE)


def _job_status(job: Optional[dict[str, Any]]) -> tuple[Status, str]:
    """Our status of a Job object (None: the Job no longer exists)."""
    if job is None:
        return Status.CANCELLED, "Kubernetes: the Job was deleted from the cluster"
    if job["metadata"].get("deletionTimestamp"):
        return Status.CANCELLED, "Kubernetes: the Job is being deleted"
    status = job.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return Status.COMPLETED, ""
        if condition.get("type") == "Failed":
            reason = condition.get("reason") or "Failed"
            detail = condition.get("message") or ""
            return Status.FAILED, f"Kubernetes: {reason}" + (f" ({detail})" if detail else "")
    ready = status.get("ready")
    if status.get("active") and (ready is None or ready > 0):
        return Status.RUNNING, ""
    if status.get("succeeded") or status.get("failed"):
        return Status.RUNNING, ""  # Between pods (retries, replicas): still going.
    return Status.PENDING, ""


def _waiting_reason(pods: list[dict[str, Any]]) -> str:
    """Why the newest pod does not run yet: unschedulable, image pull back-off, ... ('' if unknown)."""
    if not pods:
        return ""
    status = pods[-1].get("status") or {}
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") and waiting["reason"] != "ContainerCreating":
            return f"Kubernetes: {waiting['reason']}" + (f" ({waiting['message']})" if waiting.get("message") else "")
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            reason = condition.get("reason") or "Unschedulable"
            return f"Kubernetes: {reason}" + (f" ({condition['message']})" if condition.get("message") else "")
    return ""


def _exit_code(pod: dict[str, Any]) -> Optional[int]:
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        if container.get("name") == manifests.CONTAINER:
            terminated = (container.get("state") or {}).get("terminated") or {}
            code = terminated.get("exitCode")
            return int(code) if code is not None else None
    return None


def _update(handle: Handle, status: Status, message: str = "", exit_code: Optional[int] = None,
            host: Optional[str] = None, results: Optional[dict[str, Any]] = None) -> StatusUpdate:
    return StatusUpdate(
        experiment_id=handle.experiment_id, work_unit_id=handle.work_unit_id, job_name=handle.job_name,
        status=status, message=message, exit_code=exit_code, host=host, results=results,
    )
