"""psweep 0.16.0's own tests/test_all.py (and, with its repository, its examples) against our layer."""

import pytest
from peer_suites import assert_suite_passes

pytestmark = pytest.mark.integration


def test_psweep_suite_passes(peer_suite):
    assert_suite_passes(peer_suite("psweep"), minimum_passed=60)
