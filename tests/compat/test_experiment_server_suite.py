"""experiment-server's own tests (test/ at the commit in experiment_server.toml) against our study layer.

They ship only in its repository: without a checkout in the cache (``python tests/support/peer_suites.py
import-repo experiment_server GIT_DIR``) the suite is skipped as needing the internet. Its client tests start our
server on port 5000, as they start experiment-server's.
"""

import pytest
from peer_suites import assert_suite_passes

pytestmark = pytest.mark.integration


def test_experiment_server_suite_passes(peer_suite):
    result = peer_suite("experiment_server")
    assert_suite_passes(result, minimum_passed=115)
    assert result.count("skipped") == 0 and not result.excluded
