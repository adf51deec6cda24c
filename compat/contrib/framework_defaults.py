"""Default base images for ML frameworks (Google's Deep Learning Containers), by accelerator."""

from __future__ import annotations

import enum
import logging
from typing import Any, Optional, Union

_DLC = "gcr.io/deeplearning-platform-release"
#: One image per framework serves CPU, GPU and TPU, except PyTorch on TPU (XLA).
_IMAGES = {
    "jax": f"{_DLC}/base-cu113",
    "tf2": f"{_DLC}/tf2-gpu.2-6",
    "tf1": f"{_DLC}/tf-gpu.1-15",
    "pytorch": f"{_DLC}/pytorch-gpu.1-12",
    "pytorch_tpu": "us-central1-docker.pkg.dev/tpu-pytorch-releases/docker/xla:r2.7.0_3.10_tpuvm",
    "unknown": f"{_DLC}/base-cu113",
}


class MLFramework(enum.Enum):
    """The framework a job's code uses."""

    UNKNOWN = 0
    JAX = 1
    PYTORCH = 2
    TF2 = 3
    TF1 = 4  # Only an old image; no longer maintained upstream.


FrameworkSpec = Union[str, MLFramework]


def _get_framework(framework: str) -> MLFramework:
    """The framework a loose name means: ``jax``/``flax``, anything with ``torch``, ``tf``/``tensorflow`` [1|2]."""
    name = framework.strip().lower()
    if name in ("jax", "flax"):
        return MLFramework.JAX
    if "torch" in name:
        return MLFramework.PYTORCH
    if "tf" in name or "tensorflow" in name:
        return MLFramework.TF1 if "1" in name else MLFramework.TF2
    logging.getLogger(__name__).error("unrecognized framework %r", framework)
    return MLFramework.UNKNOWN


def _is_tpu(accelerator: Any) -> bool:
    return accelerator is not None and str(getattr(accelerator, "name", accelerator)).lower().startswith("tpu")


def base_image(framework: FrameworkSpec, accelerator: Optional[Any]) -> str:
    """A base image for ``xm.python_container`` (``accelerator``: an ``xm.ResourceType``, ``None`` for CPU)."""
    if isinstance(framework, str):
        framework = _get_framework(framework)
    if framework == MLFramework.JAX:
        return _IMAGES["jax"]
    if framework == MLFramework.TF2:
        return _IMAGES["tf2"]
    if framework == MLFramework.PYTORCH:
        return _IMAGES["pytorch_tpu" if _is_tpu(accelerator) else "pytorch"]
    if framework == MLFramework.TF1:
        logging.getLogger(__name__).warning("TensorFlow 1.x images are no longer maintained")
        return _IMAGES["tf1"]
    return _IMAGES["unknown"]
