"""The Vertex AI executor: each work unit becomes a Vertex AI ``CustomJob``.

Jobs run container images (``xm.Container`` with a registry reference as it is;
``xm.PythonContainer`` and ``xm.Dockerfile`` built and pushed to ``VertexSpec(push_image_tag)``).
A JobGroup's jobs are the CustomJob's worker pools. Units keep running when the launch
script exits; ``xmanager show`` polls them and shows the console link. See ``docs/vertex.md``.

Names load lazily: ``google.cloud.aiplatform_v1`` (seconds to import) is only imported
when a Vertex job is launched, polled or cancelled.
"""

from __future__ import annotations

from typing import Any

_NAMES = ("TensorboardCapability", "Vertex", "VertexExecutable", "VertexPlugin", "VertexSpec", "plugin")


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        from xmanager.executors.vertex import executor

        return getattr(executor, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_NAMES)
