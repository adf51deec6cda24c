"""batchup 0.2.3's own tests (batchup/tests in its sdist) against xmanager.xm.data.

The dataset tests download from a loopback mirror of synthetic files (tests/support/dataset_mirror.py); only STL-10's,
which batchup itself skips without ``--runbig``, are skipped.
"""

import pytest
from peer_suites import assert_suite_passes

pytestmark = pytest.mark.integration


def test_batchup_suite_passes(peer_suite):
    result = peer_suite("batchup")
    assert_suite_passes(result, minimum_passed=100)
    skipped = sorted(node for node, outcome in result.outcomes.items() if outcome == "skipped")
    assert skipped == [
        f"batchup_tests/test_stl.py::{name}" for name in ("test_train_test_split", "test_val_0", "test_val_1fold")
    ], skipped
