"""image.utils.ImageArrayUInt8ToFloat32 (also re-exported by datasets.arrays)."""

import numpy as np
import pytest
from xmanager.xm.data.datasets import arrays
from xmanager.xm.data.image.utils import ImageArrayUInt8ToFloat32


def test_converts_only_what_is_indexed() -> None:
    x = np.array([[0, 255], [51, 102]], dtype=np.uint8)
    view = ImageArrayUInt8ToFloat32(x, val_lower=-1.0, val_upper=1.0)
    assert arrays.ImageArrayUInt8ToFloat32 is ImageArrayUInt8ToFloat32
    assert view.shape == (2, 2) and view.ndim == 2 and len(view) == 2 and view.dtype == np.float32
    np.testing.assert_allclose(view[0], [-1.0, 1.0])
    np.testing.assert_allclose(np.asarray(view), x / 127.5 - 1.0, rtol=1e-6)
    assert "shape=(2, 2)" in repr(view)


def test_without_a_shape() -> None:
    view = ImageArrayUInt8ToFloat32([np.uint8(3)] * 4)
    with pytest.raises(AttributeError, match="no shape"):
        _ = view.shape
    assert "len=4" in repr(view)
