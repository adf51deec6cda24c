"""XManager 0.8.5's own tests for xmanager.contrib against our compat/contrib."""

import pytest
from peer_suites import assert_suite_passes

pytestmark = pytest.mark.integration


@pytest.mark.xfail(
    reason="28 of its 67 tests need xm names the xm package does not have yet: xm.TpuType (framework_defaults), "
    "xm.AuxiliaryUnitJob (tensorboard) and xm.Job taking any executable (mocks in xm_tensorflow, tensorboard)",
    strict=False,
)
def test_xmanager_contrib_suite_passes(peer_suite):
    assert_suite_passes(peer_suite("xmanager_contrib"), minimum_passed=60)
