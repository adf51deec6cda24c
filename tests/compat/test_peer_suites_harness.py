"""The harness itself: import rewriting and spec loading (no peer is downloaded here)."""

import textwrap
import tomllib

import pytest
from peer_suites import SPEC_DIR, load_peer, rewrite_imports

MAPPING = {"psweep": "xmanager.xm_local.sweep", "batchup.tests": "batchup_tests", "batchup": "xmanager.xm.data"}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("import psweep as ps", "import xmanager.xm_local.sweep as ps"),
        ("import psweep", "import xmanager.xm_local.sweep as psweep"),
        ("from psweep import run, plist", "from xmanager.xm_local.sweep import run, plist"),
        ("    from batchup import data_source", "    from xmanager.xm.data import data_source"),
        ("from batchup.datasets import mnist", "from xmanager.xm.data.datasets import mnist"),
        ("from batchup.tests.helpers import x", "from batchup_tests.helpers import x"),
        ("import batchup.config", "import xmanager.xm.data.config, xmanager.xm.data as batchup"),
        ("import os, psweep  # note", "import os, xmanager.xm_local.sweep as psweep  # note"),
        ("import psweepx", "import psweepx"),
        ("from psweepx import a", "from psweepx import a"),
        ("x = 'import psweep'", "x = 'import psweep'"),
    ],
)
def test_rewrites_only_import_lines(line, expected):
    assert rewrite_imports(line, MAPPING) == expected


def test_crlf_becomes_lf_and_other_lines_stay():
    source = "import psweep as ps\r\nps.run(f, params)\r\n"
    assert rewrite_imports(source, MAPPING) == "import xmanager.xm_local.sweep as ps\nps.run(f, params)\n"


def test_rewritten_code_binds_the_same_names():
    source = textwrap.dedent(
        """
        import batchup.config
        from batchup import sampling
        """
    )
    namespace: dict = {}
    exec(rewrite_imports(source, MAPPING), namespace)
    assert namespace["batchup"].__name__ == "xmanager.xm.data"
    assert namespace["sampling"].__name__ == "xmanager.xm.data.sampling"


@pytest.mark.parametrize("path", sorted(SPEC_DIR.glob("*.toml")), ids=lambda p: p.stem)
def test_every_spec_loads_with_allowed_reasons(path):
    peer = load_peer(path.stem)
    assert peer.version and peer.tests
    for exclusion in peer.exclusions:
        assert exclusion.why.strip(), f"{path.name}: {exclusion.test} has no why"
    for deviation in tomllib.loads(path.read_text()).get("deviation", []):
        assert set(deviation) == {"what", "why"} and all(v.strip() for v in deviation.values()), deviation
