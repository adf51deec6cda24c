"""XManager 0.8.5's own tests for xmanager.contrib against our compat/contrib."""

import pytest
from peer_suites import assert_suite_passes

pytestmark = pytest.mark.integration


def test_xmanager_contrib_suite_passes(peer_suite):
    assert_suite_passes(peer_suite("xmanager_contrib"), minimum_passed=60)
