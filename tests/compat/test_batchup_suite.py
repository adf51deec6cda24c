"""batchup 0.2.3's own tests (batchup/tests in its sdist) against xmanager.xm.data."""

import pytest
from peer_suites import assert_suite_passes

pytestmark = pytest.mark.integration


def test_batchup_suite_passes(peer_suite):
    assert_suite_passes(peer_suite("batchup"), minimum_passed=90)
