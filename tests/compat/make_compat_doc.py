"""Regenerates docs/compat.md from a fresh run of every peer's own tests and examples.

    .venv/bin/python tests/compat/make_compat_doc.py [--out docs/compat.md]

Each peer of ``tests/compat/*.toml`` is run by ``tests/support/peer_suites.py`` exactly as the
test suite runs it; the table says what ran, what passed, what was excluded and why. Files that
ship only in a peer's Git repository are used when a checkout is in the cache (see
``peer_suites.repository_dir``); otherwise the table says they could not run.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import tempfile
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

import peer_suites  # noqa: E402
from peer_suites import REASONS, SPEC_DIR, PeerUnavailableError, load_peer, repository_dir, run_example, run_suite  # noqa: E402

TITLES = {
    "psweep": "psweep",
    "batchup": "batchup",
    "xmanager": "DeepMind XManager",
    "xmanager_contrib": "DeepMind XManager (contrib)",
    "experiment_server": "experiment-server",
}


def _source(peer: peer_suites.Peer) -> str:
    if peer.tests_from == "release":
        return f"{peer.distribution} from PyPI"
    return f"repository {peer.repository} at {peer.commit[:12]}"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def peer_section(stem: str, workdir: Path) -> list[str]:
    peer = load_peer(stem)
    spec = tomllib.loads((SPEC_DIR / f"{stem}.toml").read_text())
    example_prefix = spec.get("suite", {}).get("example_nodes", "")
    title = TITLES.get(stem, stem)
    lines = [f"## {title} {peer.version}", ""]
    rewrites = ", ".join(f"`{old}` → `{new}`" for old, new in peer.rewrite.items()) or "none (same module names)"
    lines += [f"- Tests: {', '.join(f'`{t}`' for t in peer.tests)} ({_source(peer)}).", f"- Import rewrites: {rewrites}."]
    if peer.blocked:
        lines.append(f"- Made unimportable in the run: {', '.join(f'`{b}`' for b in peer.blocked)}.")
    try:
        result = run_suite(peer, workdir / "suite")
    except PeerUnavailableError as error:
        return [*lines, "", f"Not run here: {error}", ""]
    outcomes = result.outcomes
    examples = {node: value for node, value in outcomes.items() if example_prefix and node.startswith(example_prefix)}
    tests = {node: value for node, value in outcomes.items() if node not in examples}

    def count(values: dict[str, str], *kinds: str) -> int:
        return sum(1 for value in values.values() if value in kinds)

    lines += [
        "",
        "| | run | passed | skipped by the peer's own markers | expected failures (the peer's xfail) | failed |",
        "|---|---|---|---|---|---|",
        f"| tests | {len(tests)} | {count(tests, 'passed')} | {count(tests, 'skipped')} | {count(tests, 'xfailed')} "
        f"| {count(tests, 'failed', 'error', 'xpassed')} |",
    ]
    ran_examples = []
    for example in peer.examples:
        try:
            repository_dir(peer)
        except PeerUnavailableError:
            break
        ran_examples.append(run_example(peer, example, workdir / "examples"))
    if examples or ran_examples:
        passed = count(examples, "passed") + sum(r.passed for r in ran_examples)
        total = len(examples) + len(ran_examples)
        lines.append(f"| examples | {total} | {passed} | | | {total - passed} |")
    lines.append("")
    if result.excluded or result.unavailable:
        lines += [f"Excluded ({len(result.excluded)}):", ""]
        if result.excluded:
            lines += ["| test | reason | why |", "|---|---|---|"]
            lines += [f"| `{e.test}` | {REASONS[e.reason]} | {_escape(e.why)} |" for e in result.excluded]
        if result.unavailable:
            lines += ["", f"Not run here ({len(result.unavailable)}): {_escape(result.unavailable[0].why)}"]
            lines += [f"- `{e.test}`" for e in result.unavailable]
        lines.append("")
    else:
        lines += ["Excluded: none.", ""]
    failures = result.failures
    if failures:
        lines += [f"Failing ({len(failures)}):", "", *[f"- `{node}`" for node in failures], ""]
    deviations = spec.get("deviation", [])
    if deviations:
        lines += [f"Where we differ ({len(deviations)}), each named:", "", "| what | why |", "|---|---|"]
        lines += [f"| {_escape(d['what'])} | {_escape(d['why'])} |" for d in deviations]
        lines.append("")
    if ran_examples:
        lines += ["| example | expected | result |", "|---|---|---|"]
        for ex in ran_examples:
            expected = "runs" if ex.example.expect == "ok" else f"fails with `{_escape(ex.example.error)}`"
            why = f" ({_escape(ex.example.why)})" if ex.example.why else ""
            lines.append(f"| `{ex.example.path}` | {expected}{why} | {'as expected' if ex.passed else 'NOT as expected'} |")
        lines.append("")
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(peer_suites.REPO_ROOT / "docs" / "compat.md"))
    parser.add_argument("peers", nargs="*", help="spec names (default: every tests/compat/*.toml)")
    args = parser.parse_args(argv)
    stems = args.peers or sorted(path.stem for path in SPEC_DIR.glob("*.toml"))
    body = [
        "# Compatibility, proven by the peers' own tests",
        "",
        "Generated by `tests/compat/make_compat_doc.py` (do not edit by hand) on "
        f"{datetime.date.today().isoformat()}, Python {platform.python_version()}.",
        "",
        "Each peer's released test suite runs against our layer with only its import lines rewritten and the",
        "peer itself unimportable (`tests/support/peer_suites.py`; CI runs the same through `tests/compat/`).",
        "A test is excluded only because it asserts the peer's exact hash values, needs the internet, or",
        "fails on the peer itself on Python 3.11 (and, for XManager, because it tests an internal mechanism",
        "we implement differently, named per test). Files that ship only in a peer's Git repository (some",
        "suites and all examples) cannot be fetched in CI, which reaches only package registries: CI skips",
        "them with that reason, and this table shows the run with a checkout of the recorded commit.",
        "",
    ]
    with tempfile.TemporaryDirectory(prefix="compat-doc-") as tmp:
        for stem in stems:
            print(f"running {stem} ...", file=sys.stderr)
            body += peer_section(stem, Path(tmp) / stem)
    Path(args.out).write_text("\n".join(body).rstrip() + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
