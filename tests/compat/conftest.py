"""Fixtures for the peers' suites: each runs once per session, in its own work folder."""

import pytest
from peer_suites import PeerUnavailableError, load_peer, run_suite


@pytest.fixture(scope="session")
def peer_suite(tmp_path_factory):
    """``peer_suite(name)`` runs that peer's tests once per session and returns the SuiteResult."""
    results = {}

    def run(name: str):
        if name not in results:
            peer = load_peer(name)
            try:
                results[name] = run_suite(peer, tmp_path_factory.mktemp(f"peer-{name}"))
            except PeerUnavailableError as error:
                results[name] = error
        result = results[name]
        if isinstance(result, PeerUnavailableError):
            pytest.skip(str(result))
        return result

    return run
