"""XManager's ``xmanager.cloud.vertex``: a client for TensorBoards and CustomJobs, and machine specs.

Launching goes through ``xm_local.Vertex`` (``executors/vertex``); :func:`register` is kept
for scripts that call it and does nothing. The client talks to Vertex AI with the
credentials and project ``executors/vertex`` finds (one error saying how to log in when
there are none). ``google.cloud.aiplatform_v1`` is imported only when the client is used.
"""

from __future__ import annotations

import asyncio
from typing import Any, Optional

from xmanager.executors.vertex import client as _vertex_client
from xmanager.executors.vertex.job_spec import machine_spec

_DEFAULT_LOCATION = _vertex_client.DEFAULT_LOCATION


class Client:
    """Vertex AI in one project and region (default: the credentials' project, ``us-central1``)."""

    def __init__(self, project: Optional[str] = None, location: str = _DEFAULT_LOCATION) -> None:
        self._project = project
        self.location = location
        self._credentials: Any = None

    @property
    def project(self) -> str:
        credentials, discovered = self._login()
        return _vertex_client.project_of(self._project, discovered)

    def _login(self) -> tuple[Any, Optional[str]]:
        if self._credentials is None:
            self._credentials = _vertex_client.default_credentials()
        return self._credentials

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.location}"

    def _service(self, kind: str) -> Any:
        from google.api_core.client_options import ClientOptions
        from google.cloud import aiplatform_v1

        credentials, _ = self._login()
        options = ClientOptions(api_endpoint=_vertex_client.endpoint_for(self.location))
        return getattr(aiplatform_v1, kind)(credentials=credentials, client_options=options)

    async def get_or_create_tensorboard(self, name: str) -> str:
        """The resource name of the TensorBoard whose display name is ``name``, created when there is none."""
        parent = self.parent
        service = self._service("TensorboardServiceClient")

        def find() -> Optional[str]:
            for board in service.list_tensorboards(parent=parent, filter=f'display_name="{name}"'):
                return str(board.name)
            return None

        found = await asyncio.get_running_loop().run_in_executor(None, find)
        return found if found is not None else await self.create_tensorboard(name)

    async def create_tensorboard(self, name: str) -> str:
        """Creates a TensorBoard with display name ``name``; returns its resource name."""
        from google.cloud import aiplatform_v1

        parent = self.parent
        service = self._service("TensorboardServiceClient")

        def create() -> str:
            operation = service.create_tensorboard(parent=parent, tensorboard=aiplatform_v1.Tensorboard(display_name=name))
            return str(operation.result().name)

        return await asyncio.get_running_loop().run_in_executor(None, create)

    def get_state(self, job_name: str) -> Any:
        """The ``JobState`` of CustomJob ``job_name`` (its resource name)."""
        return self._service("JobServiceClient").get_custom_job(name=job_name).state

    async def wait_for_job(self, job_name: str) -> None:
        """Polls ``job_name`` until it ends."""
        from google.cloud.aiplatform_v1 import JobState

        done = {JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED, JobState.JOB_STATE_CANCELLED,
                JobState.JOB_STATE_EXPIRED}
        while await asyncio.get_running_loop().run_in_executor(None, self.get_state, job_name) not in done:
            await asyncio.sleep(60)

    def cancel(self, job_name: str) -> None:
        """Asks Vertex AI to cancel CustomJob ``job_name``."""
        self._service("JobServiceClient").cancel_custom_job(name=job_name)


_default_client: Optional[Client] = None


def set_default_client(client: Client) -> None:
    global _default_client
    _default_client = client


def get_default_client() -> Client:
    """A shared :class:`Client` for the credentials' project (created on first use, nothing contacted yet)."""
    global _default_client
    if _default_client is None:
        _default_client = Client()
    return _default_client


def get_machine_spec(job: Any) -> dict[str, Any]:
    """The ``machine_spec`` Vertex AI gets for ``job`` (an ``xm.Job`` with a ``Vertex`` executor)."""
    executor = job.executor
    return machine_spec(executor.requirements, getattr(executor, "machine_type", None))


def cpu_ram_to_machine_type(cpu: Optional[int], ram: Optional[int]) -> str:
    """The smallest N1 machine with ``cpu`` vCPUs and ``ram`` bytes."""
    from xmanager.xm.resources import JobRequirements

    requirements = JobRequirements({key: value for key, value in (("cpu", cpu), ("memory", ram)) if value})
    return str(machine_spec(requirements)["machine_type"])


def register() -> None:
    """Kept for scripts that call it: the Vertex executor is a plugin, found without registration."""
