"""pytest plugin for a peer's suite run by ``peer_suites``: blocks the peer, records every outcome.

Loaded with ``-p peer_guard`` in the subprocess that runs the peer's tests. The peer's own
module names (``$XM_COMPAT_BLOCKED``) are set to None in ``sys.modules``, so an import that was
not rewritten raises ImportError instead of testing the peer. For XManager, whose name we share,
it checks that ``xmanager.xm`` is ours (``$XM_COMPAT_ROOT``). Each test's outcome is written to
``$XM_COMPAT_RESULTS`` as JSON when the session ends.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

_outcomes: dict[str, str] = {}

for _name in filter(None, os.environ.get("XM_COMPAT_BLOCKED", "").split(",")):
    sys.modules[_name] = None  # type: ignore[assignment]

_rewrite = json.loads(os.environ.get("XM_COMPAT_REWRITE", "{}"))
if _rewrite:
    # mock.patch("peer.module.name") imports "peer.module" by name (pkgutil.resolve_name): that string is an
    # import too, so it is mapped through the same [rewrite] table as the import lines. The peer stays blocked.
    import pkgutil

    from peer_suites import _map_module

    _resolve_name = pkgutil.resolve_name

    def _resolve_rewritten(name: str):
        module, colon, attribute = name.partition(":")
        return _resolve_name((_map_module(module, _rewrite) or module) + colon + attribute)

    pkgutil.resolve_name = _resolve_rewritten

_root = os.environ.get("XM_COMPAT_ROOT")
if _root:
    _spec = importlib.util.find_spec("xmanager.xm")
    _origin = Path(_spec.origin).resolve() if _spec and _spec.origin else None
    if _origin is None or Path(_root).resolve() not in _origin.parents:
        raise ImportError(f"xmanager.xm resolves to {_origin}, not to this repository ({_root})")


def _node(nodeid: str) -> str:
    """The node id with the run's work folder (which parametrized ids may contain) as ``<work>``."""
    workdir = os.environ.get("XM_COMPAT_WORKDIR")
    return nodeid.replace(workdir, "<work>") if workdir else nodeid


def pytest_runtest_logreport(report):
    node = _node(report.nodeid)
    if hasattr(report, "wasxfail"):
        if report.when == "call" or report.skipped:
            _outcomes[node] = "xfailed" if report.skipped else "xpassed"
    elif report.when == "call":
        _outcomes[node] = "passed" if report.passed else "skipped" if report.skipped else "failed"
    elif report.failed:
        _outcomes[node] = "error"
    elif report.skipped and report.when == "setup":
        _outcomes[node] = "skipped"


def pytest_collectreport(report):
    if report.failed:
        _outcomes[_node(report.nodeid) or "<collection>"] = "error"


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("XM_COMPAT_RESULTS")
    if path:
        Path(path).write_text(json.dumps(_outcomes, indent=1, sort_keys=True))
