"""The Kubernetes backend: create Jobs for a batch, poll them with one list call per namespace.

``launch`` builds every manifest first, then checks with the API server before anything is
created: a server-side dry run (``dryRun=All``) of one Job per distinct executor catches
an unreachable server, bad credentials, missing RBAC rights or namespace and an invalid
manifest; with an accelerator, a node list checks that some node carries the selected
labels. Then it creates the Jobs one call each; if one creation fails, the Jobs already
created by this call are deleted, so a batch (and every JobGroup in it) is all or nothing.

``refresh`` lists the Jobs of the handles' experiments with one label-selector call per
(cluster, namespace); for Jobs that ended it lists their pods (one call) and reads each
one's log (one call per ended Job) into ``<work_dir>/pod.log``. The last
``XM_RESULTS_JSON:`` line of that log holds the job's results (see :mod:`.manifests`).
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from collections.abc import Iterable, Sequence
from typing import Any, Optional

from xmanager.executors.api import (
    BackendSettings,
    ExecutorBackend,
    Handle,
    JobLaunch,
    LogFiles,
    StatusSink,
    StatusUpdate,
    UnitLaunch,
)
from xmanager.executors.kubernetes import manifests
from xmanager.executors.kubernetes.config import ClusterConfig, Connection, KubernetesError, connect, explain
from xmanager.executors.kubernetes.executor import Kubernetes, KubernetesImage
from xmanager.xm.status import Status

LOG_FILE = "pod.log"
_TIMEOUT = (10, 60)  # (connect, read) seconds for every API call.


class KubernetesBackend(ExecutorBackend):
    pushes_updates = False
    detached = True

    def __init__(self, sink: StatusSink, settings: BackendSettings) -> None:
        self._sink = sink
        self._connections: dict[ClusterConfig, Connection] = {}
        self._fresh: set[tuple[str, str]] = set()  # (namespace, name) created here and not yet seen started.
        self._checked: set[tuple[Any, ...]] = set()  # (executor, namespace) the server accepted in a dry run.
        self._lock = threading.Lock()

    def _connection(self, cluster: ClusterConfig) -> Connection:
        with self._lock:
            connection = self._connections.get(cluster)
        if connection is None:
            connection = connect(cluster)
            with self._lock:
                connection = self._connections.setdefault(cluster, connection)
        return connection

    # ---- launching ----------------------------------------------------------------------------
    def launch(self, units: Sequence[UnitLaunch]) -> list[Handle]:
        planned = [self._plan(unit, job) for unit in units for job in unit.jobs]
        self._check(planned)
        created: list[_Planned] = []
        for item in planned:
            try:
                self._batch(item.connection).create_namespaced_job(
                    item.namespace, item.manifest, _preload_content=False, _request_timeout=_TIMEOUT)
            except Exception as error:
                failure = explain(error, item.connection, f"create Job {item.name} in namespace {item.namespace}")
                undone = self._delete(created, "Background")
                raise KubernetesError(
                    f"work unit {item.handle.work_unit_id}, job {item.handle.job_name!r}: {failure}; "
                    f"deleted the {undone} Job(s) this launch had created"
                ) from None
            created.append(item)
            with self._lock:
                self._fresh.add((item.namespace, item.name))
        return [item.handle for item in planned]

    def _plan(self, unit: UnitLaunch, job: JobLaunch) -> _Planned:
        executor, executable = job.executor, job.executable
        where = f"work unit {unit.work_unit_id}, job {job.job_name!r}"
        if not isinstance(executor, Kubernetes):
            raise TypeError(f"{where}: the Kubernetes backend got a {type(executor).__name__} executor")
        if not isinstance(executable, KubernetesImage):
            raise TypeError(f"{where}: package it with xm_local.Kubernetes.Spec() (got {type(executable).__name__})")
        connection = self._connection(executor.cluster)
        namespace = executor.namespace or connection.namespace
        name = manifests.job_name(unit.experiment_id, unit.work_unit_id, job.job_name, secrets.token_hex(3))
        manifest = manifests.job_manifest(
            executor, name=name, namespace=namespace,
            job_labels=manifests.labels(unit.experiment_id, unit.work_unit_id, job.job_name),
            image=executable.image, command=executable.command, args=job.args, env=job.env,
        )
        handle = Handle(
            executor="kubernetes", experiment_id=unit.experiment_id, work_unit_id=unit.work_unit_id,
            job_name=job.job_name,
            data={"name": name, "namespace": namespace, "cluster": executor.cluster.to_json(), "work_dir": job.work_dir},
        )
        return _Planned(executor, connection, namespace, name, manifest, handle)

    def _check(self, planned: Sequence[_Planned]) -> None:
        """Asks the server about each distinct executor once per backend, before anything is created."""
        for item in planned:
            key = (item.executor, item.namespace)
            with self._lock:
                if key in self._checked:
                    continue
            action = f"create Jobs in namespace {item.namespace} (dry run)"
            try:
                self._batch(item.connection).create_namespaced_job(
                    item.namespace, item.manifest, dry_run="All", _preload_content=False, _request_timeout=_TIMEOUT)
            except Exception as error:
                raise explain(error, item.connection, action) from None
            selector = item.manifest["spec"]["template"]["spec"].get("nodeSelector")
            kind = item.executor.requirements.accelerator
            if kind is not None and selector and item.executor.check_nodes:
                self._check_nodes(item.connection, selector, kind.value)
            with self._lock:
                self._checked.add(key)

    def _check_nodes(self, connection: Connection, selector: dict[str, str], accelerator: str) -> None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        text = ",".join(f"{key}={value}" for key, value in sorted(selector.items()))
        try:
            found = client.CoreV1Api(connection.api_client).list_node(label_selector=text, limit=1,
                                                                      _request_timeout=_TIMEOUT)
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
                updates.extend(self._finish(connection, namespace, handle, status, message, pods)
                               for handle, status, message in ended)
        return updates

    @staticmethod
    def _list(connection: Connection, action: str, method: Any, namespace: str, selector: str) -> list[dict[str, Any]]:
        """One list call with a label selector; the items as plain dicts (no model objects to build)."""
        try:
            response = method(namespace, label_selector=selector, _preload_content=False, _request_timeout=_TIMEOUT)
        except Exception as error:
            raise explain(error, connection, action) from None
        return json.loads(response.data).get("items") or []

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

    def _finish(self, connection: Connection, namespace: str, handle: Handle, status: Status, message: str,
                pods: dict[str, list[dict[str, Any]]]) -> StatusUpdate:
        """The final update of an ended Job: its pod's log saved, exit code, node and results."""
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

        try:
            response = client.CoreV1Api(connection.api_client).read_namespaced_pod_log(
                pod, namespace, container=manifests.CONTAINER, _preload_content=False, _request_timeout=_TIMEOUT)
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
        self._delete(items, "Foreground", strict=True)

    def _delete(self, items: Iterable[Any], propagation: str, strict: bool = False) -> int:
        """Deletes the Jobs (and, through ``propagation``, their pods); a Job already gone counts as deleted."""
        from kubernetes.client.exceptions import ApiException

        deleted = 0
        for item in items:
            try:
                self._batch(item.connection).delete_namespaced_job(
                    item.name, item.namespace, propagation_policy=propagation, _request_timeout=_TIMEOUT)
            except ApiException as error:
                if error.status != 404:
                    if strict:
                        raise explain(error, item.connection, f"delete Job {item.name}") from None
                    continue
            except Exception as error:
                if strict:
                    raise explain(error, item.connection, f"delete Job {item.name}") from None
                continue
            deleted += 1
        return deleted

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
            connections, self._connections = list(self._connections.values()), {}
        for connection in connections:
            connection.api_client.close()


class _Planned:
    """One Job to create: its manifest, where, and the handle it will have."""

    def __init__(self, executor: Kubernetes, connection: Connection, namespace: str, name: str,
                 manifest: dict[str, Any], handle: Handle) -> None:
        self.executor, self.connection, self.namespace, self.name = executor, connection, namespace, name
        self.manifest, self.handle = manifest, handle


class _Target:
    def __init__(self, connection: Connection, namespace: str, name: str) -> None:
        self.connection, self.namespace, self.name = connection, namespace, name


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
