"""Dockerfile steps for a TPU VM image (libtpu and a matching TensorFlow build).

They download from Google Cloud Storage while the image builds, so such an image can only be
built where that bucket is reachable.
"""

from __future__ import annotations

_ARTIFACTS = "https://storage.googleapis.com/cloud-tpu-tpuvm-artifacts"
_LIBTPU = f"{_ARTIFACTS}/libtpu/20210525/libtpu.so"
_TF_WHEEL = "tf_nightly-2.6.0-cp38-cp38-linux_x86_64.whl"


def tpuvm_docker_instructions() -> list[str]:
    """Steps that install ``/lib/libtpu.so`` and the TensorFlow wheel built against it."""
    return [
        f"RUN wget {_LIBTPU} -O /lib/libtpu.so",
        "RUN chmod 700 /lib/libtpu.so",
        f"RUN wget {_ARTIFACTS}/tensorflow/20210525/{_TF_WHEEL}",
        f"RUN pip3 install {_TF_WHEEL}",
        f"RUN rm {_TF_WHEEL}",
    ]
