"""XManager 0.8.5's own unit tests for its xm package against ours (137 tests; one excluded in xmanager.toml)."""

import pytest
from peer_suites import assert_suite_passes

pytestmark = pytest.mark.integration


def test_xmanager_xm_suite_passes(peer_suite):
    assert_suite_passes(peer_suite("xmanager"), minimum_passed=136)
