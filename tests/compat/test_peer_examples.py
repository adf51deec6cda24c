"""Each peer's own examples (from ``[examples.*]`` in tests/compat/<peer>.toml) against our layer.

An example either runs (exit status 0) or, where the service it needs cannot exist here, fails
with our one-line error naming what is missing (``expect = "error"``). psweep's examples are
run by psweep's own test suite instead (its test_run_all_examples).
"""

import pytest
from peer_suites import SPEC_DIR, PeerUnavailableError, load_peer, repository_dir, run_example

pytestmark = pytest.mark.integration

_CASES = [
    pytest.param(peer.name, example, id=f"{peer.name}:{example.name}")
    for peer in (load_peer(path.stem) for path in sorted(SPEC_DIR.glob("*.toml")))
    for example in peer.examples
]


@pytest.mark.parametrize(("peer_name", "example"), _CASES)
def test_peer_example(peer_name, example, tmp_path):
    peer = load_peer(peer_name)
    try:
        repository_dir(peer)
    except PeerUnavailableError as error:
        pytest.skip(str(error))
    result = run_example(peer, example, tmp_path)
    assert result.passed, (
        f"{peer.key} example {example.name} (expect {example.expect}"
        f"{' ' + repr(example.error) if example.error else ''}): exit {result.returncode}\n{result.output[-5000:]}"
    )
