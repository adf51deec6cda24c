"""Runs a peer's own test suite and examples against our layer, with only its import lines changed.

A peer (psweep, batchup, XManager, experiment-server) is described by ``tests/compat/<name>.toml``:
its released version, where its tests and examples come from, how its imports map onto our
modules, and the short list of excluded tests, each with its reason. This module

- downloads the peer's released sdist or wheel once (``pip download --no-deps``) into
  ``~/.cache/xmanager-compat`` and unpacks it; files that ship only in the peer's Git repository
  (some test suites and examples) are read from ``$XM_COMPAT_REPOS/<name>-<version>/`` when a
  checkout of the recorded commit is there (``python tests/support/peer_suites.py import-repo``);
- copies the files into a fresh work folder, normalises CRLF line endings, and rewrites only
  the import lines (``import psweep as ps`` -> ``import xmanager.xm_local.sweep as ps``); module names
  that tests hand to ``mock.patch`` as strings are mapped through the same table when resolved (peer_guard);
- makes the peer itself unimportable in that run, in the pytest process (``sys.modules[name] =
  None``) and in every subprocess it starts (a stub module first on ``PYTHONPATH`` that raises),
  so a missed rewrite fails instead of silently testing the peer;
- runs the peer's tests with pytest in a subprocess and returns every test's outcome.

The peer's code is never committed: it is fetched at test time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path
from typing import Any, Optional

import attrs

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC_DIR = REPO_ROOT / "tests" / "compat"
CACHE = Path(os.environ.get("XM_COMPAT_CACHE", Path.home() / ".cache" / "xmanager-compat"))
#: The reasons an excluded test may have (the only ones the project accepts).
REASONS = {
    "exact-hash": "asserts the peer's exact hash values",
    "internet": "needs the internet",
    "broken-upstream": "fails on the peer itself on Python 3.11",
    "internal": "tests XManager's internal mechanism, which we implement differently",
}


class PeerUnavailableError(Exception):
    """The peer's files cannot be had here (no registry, or no checkout of its repository)."""


@attrs.frozen
class Exclusion:
    test: str
    reason: str
    why: str
    #: A whole test file left out of the run (it cannot even be imported), rather than a deselected test.
    omitted_file: bool = False


@attrs.frozen
class Example:
    """One example of the peer, run as a command in a copy of its folder."""

    name: str
    path: str  # relative to the source tree
    command: list[str]
    #: "ok" (exit status 0) or "error" (non-zero, with ``error`` matched in the output's last line).
    expect: str = "ok"
    error: str = ""
    why: str = ""
    timeout: float = 300.0
    env: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class Peer:
    name: str
    version: str
    distribution: str  # "sdist" | "wheel"
    package: str  # the distribution's name on PyPI
    blocked: list[str]
    rewrite: dict[str, str]
    tests_from: str  # "release" | "repository"
    tests: list[str]  # files or folders (relative to the source tree) copied into tests/
    support: list[str]  # further files or folders copied keeping their relative path
    workdir_layout: dict[str, str]  # source path -> path in the work folder
    pytest_args: list[str]
    repository: str
    commit: str
    repository_paths: list[str]  # what the repository provides when tests come from the release
    exclusions: list[Exclusion]
    examples: list[Example]
    env: dict[str, str]

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"


def load_peer(name: str) -> Peer:
    """The peer described by ``tests/compat/<name>.toml``; a bad file raises naming the field."""
    path = SPEC_DIR / f"{name}.toml"
    data = tomllib.loads(path.read_text())
    try:
        exclusions = []
        for table, omitted in (("exclude", False), ("omit", True)):
            for test, entry in data.get(table, {}).items():
                if entry["reason"] not in REASONS:
                    raise ValueError(f"{path}: {table}.{test!r}: reason must be one of {sorted(REASONS)}")
                exclusions.append(Exclusion(test=test, reason=entry["reason"], why=entry["why"], omitted_file=omitted))
        examples = [
            Example(name=example_name, **entry) for example_name, entry in data.get("examples", {}).items()
        ]
        repo = data.get("repository", {})
        return Peer(
            name=data["name"],
            version=data["version"],
            distribution=data.get("distribution", "sdist"),
            package=data.get("package", data["name"]),
            blocked=list(data.get("blocked", [])),
            rewrite=dict(data.get("rewrite", {})),
            tests_from=data["suite"]["from"],
            tests=list(data["suite"]["tests"]),
            support=list(data["suite"].get("support", [])),
            workdir_layout=dict(data["suite"].get("layout", {})),
            pytest_args=list(data["suite"].get("pytest_args", [])),
            repository=repo.get("url", ""),
            commit=repo.get("commit", ""),
            repository_paths=list(repo.get("paths", [])),
            exclusions=exclusions,
            examples=examples,
            env=dict(data.get("env", {})),
        )
    except KeyError as error:
        raise ValueError(f"{path}: missing field {error}") from None
    except TypeError as error:
        raise ValueError(f"{path}: {error}") from None


# ---------------------------------------------------------------------------------------- sources


def release_dir(peer: Peer) -> Path:
    """The unpacked released sdist or wheel, downloaded once into the cache."""
    target = CACHE / "releases" / f"{peer.key}-{peer.distribution}"
    if (target / ".complete").exists():
        return target
    downloads = CACHE / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    binary = ["--no-binary", ":all:"] if peer.distribution == "sdist" else ["--only-binary", ":all:"]
    found = _find_archive(downloads, peer)
    if found is None:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", *binary,
                   "-d", str(downloads), f"{peer.package}=={peer.version}"]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
        found = _find_archive(downloads, peer)
        if proc.returncode != 0 or found is None:
            raise PeerUnavailableError(f"pip download of {peer.package}=={peer.version} failed: {proc.stderr.strip()[-500:]}")
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if found.suffix == ".whl":
        with zipfile.ZipFile(found) as archive:
            archive.extractall(staging)
    else:
        with tarfile.open(found) as archive:
            archive.extractall(staging, filter="data")
        [top] = [child for child in staging.iterdir()]
        for child in top.iterdir():
            child.rename(staging / child.name)
        top.rmdir()
    (staging / ".complete").write_text(found.name)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def _find_archive(folder: Path, peer: Peer) -> Optional[Path]:
    stem = re.sub(r"[-_.]+", "[-_.]", peer.package)
    version = re.escape(peer.version)
    pattern = re.compile(rf"(?i)^{stem}-{version}(\.tar\.gz|\.zip|-.*\.whl)$")
    for candidate in sorted(folder.iterdir()):
        if pattern.match(candidate.name):
            return candidate
    return None


def repos_root() -> Path:
    return Path(os.environ.get("XM_COMPAT_REPOS", CACHE / "repos"))


def repository_dir(peer: Peer) -> Path:
    """A checkout of the peer's repository at the recorded commit, or PeerUnavailableError saying so."""
    target = repos_root() / peer.key
    if not peer.repository:
        raise PeerUnavailableError(f"{peer.name}: no repository recorded")
    marker = target / ".commit"
    if not marker.exists() or marker.read_text().strip() != peer.commit:
        raise PeerUnavailableError(
            f"needs the internet: these files ship only in {peer.repository} (commit {peer.commit[:12]}), "
            f"not in the {peer.distribution} on PyPI; put a checkout at {target} "
            f"(python tests/support/peer_suites.py import-repo {peer.name} GIT_DIR)"
        )
    return target


def import_repo(name: str, git_dir: str) -> Path:
    """Copies the recorded commit of a local clone (or bare mirror) into the cache."""
    peer = load_peer(name)
    target = repos_root() / peer.key
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    archive = subprocess.run(["git", f"--git-dir={git_dir}", "archive", peer.commit], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    (target / ".commit").write_text(peer.commit + "\n")
    return target


# -------------------------------------------------------------------------------------- rewriting

_IMPORT = re.compile(r"^(?P<indent>[ \t]*)import[ \t]+(?P<names>[^#\n]+?)(?P<tail>[ \t]*(#.*)?)$", re.M)
_FROM = re.compile(r"^(?P<indent>[ \t]*)from[ \t]+(?P<module>[\w.]+)[ \t]+import\b", re.M)


def _map_module(module: str, mapping: dict[str, str]) -> Optional[str]:
    for old in sorted(mapping, key=len, reverse=True):
        if module == old or module.startswith(old + "."):
            return mapping[old] + module[len(old):]
    return None


def rewrite_imports(text: str, mapping: dict[str, str]) -> str:
    """``text`` with its import lines pointing at our modules; nothing but import lines changes.

    ``import a.b`` binds ``a``, so a bare dotted import of a mapped module becomes
    ``import a_new.b as a`` only when ``a`` itself is mapped whole; ``import a as x`` and
    ``from a.b import c`` map directly.
    """
    text = text.replace("\r\n", "\n")

    def from_line(match: re.Match[str]) -> str:
        new = _map_module(match["module"], mapping)
        if new is None:
            return match[0]
        return f"{match['indent']}from {new} import"

    def import_line(match: re.Match[str]) -> str:
        parts = []
        changed = False
        for item in match["names"].split(","):
            item = item.strip()
            module, _, alias = (piece.strip() for piece in item.partition(" as "))
            new = _map_module(module, mapping)
            if new is None:
                parts.append(item)
                continue
            changed = True
            if alias:
                parts.append(f"{new} as {alias}")
            elif "." not in module:
                parts.append(f"{new} as {module}")
            else:
                # `import batchup.config` binds `batchup`: bind it to the mapped parent package.
                head = module.split(".")[0]
                parts.append(f"{new}")
                parts.append(f"{_map_module(head, mapping)} as {head}")
        if not changed:
            return match[0]
        return f"{match['indent']}import {', '.join(parts)}{match['tail']}"

    return _IMPORT.sub(import_line, _FROM.sub(from_line, text))


# ------------------------------------------------------------------------------------- work folder


def prepare(peer: Peer, workdir: Path) -> dict[str, Any]:
    """Builds the work folder: the peer's tests (and repository files) with rewritten imports.

    Returns what it could not provide: ``{"missing_repository": reason-or-None}``.
    """
    tests_source = release_dir(peer) if peer.tests_from == "release" else repository_dir(peer)
    missing_repository = None
    repo: Optional[Path] = None
    if peer.repository_paths:
        try:
            repo = repository_dir(peer)
        except PeerUnavailableError as error:
            missing_repository = str(error)
    workdir.mkdir(parents=True, exist_ok=True)
    for relative in [*peer.tests, *peer.support]:
        _copy_rewritten(tests_source / relative, workdir / peer.workdir_layout.get(relative, relative), peer)
    for relative in peer.repository_paths:
        target = workdir / peer.workdir_layout.get(relative, relative)
        if repo is not None:
            _copy_rewritten(repo / relative, target, peer)
        else:
            # An empty folder where the peer's tests look for it, so the rest of the suite collects.
            target.mkdir(parents=True, exist_ok=True)
    (workdir / "pytest.ini").write_text("[pytest]\n")
    blocker = workdir / "_blocked_peers"
    blocker.mkdir(exist_ok=True)
    for name in peer.blocked:
        (blocker / f"{name}.py").write_text(
            f"raise ImportError({name!r} + ' is blocked in this compatibility run: an import was not rewritten')\n"
        )
    return {"missing_repository": missing_repository}


def _copy_rewritten(source: Path, target: Path, peer: Peer) -> None:
    if not source.exists():
        raise FileNotFoundError(f"{peer.key}: {source} is not in the peer's files")
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    for path in files:
        out = target if source.is_file() else target / path.relative_to(source)
        out.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix in {".py", ".sh", ""} and _is_text(path):
            out.write_text(rewrite_imports(path.read_text(), peer.rewrite))
        else:
            shutil.copyfile(path, out)
        shutil.copymode(path, out)


def _is_text(path: Path) -> bool:
    try:
        path.read_text()
    except UnicodeDecodeError:
        return False
    return True


def environment(peer: Peer, workdir: Path, results: Optional[Path] = None) -> dict[str, str]:
    """The environment of a peer run: the blocker first on PYTHONPATH, our venv first on PATH."""
    env = dict(os.environ)
    paths = [str(workdir / "_blocked_peers"), str(workdir)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["XM_COMPAT_BLOCKED"] = ",".join(peer.blocked)
    env["XM_COMPAT_REWRITE"] = json.dumps(peer.rewrite)  # peer_guard maps mock.patch("peer.x.y") names with it.
    env["XM_COMPAT_ROOT"] = str(REPO_ROOT)
    env["XM_COMPAT_WORKDIR"] = str(workdir)
    env.pop("PYTEST_ADDOPTS", None)
    env.update(peer.env)
    if results is not None:
        env["XM_COMPAT_RESULTS"] = str(results)
    return env


# ------------------------------------------------------------------------------------------ running


@attrs.frozen
class SuiteResult:
    peer: Peer
    outcomes: dict[str, str]  # nodeid -> passed | failed | skipped | error
    excluded: list[Exclusion]
    unavailable: list[Exclusion]  # tests that need the repository, which is not here
    stdout: str

    def count(self, outcome: str) -> int:
        return sum(1 for value in self.outcomes.values() if value == outcome)

    @property
    def failures(self) -> list[str]:
        return sorted(node for node, value in self.outcomes.items() if value in {"failed", "error"})


def run_suite(peer: Peer, workdir: Path, timeout: float = 1500.0) -> SuiteResult:
    """Runs the peer's tests in a subprocess; excluded tests are deselected, not run."""
    info = prepare(peer, workdir)
    results = workdir / "_outcomes.json"
    deselect: list[str] = []
    excluded: list[Exclusion] = []
    for exclusion in peer.exclusions:
        if not exclusion.omitted_file:
            deselect += ["--deselect", exclusion.test]
        excluded.append(exclusion)
    unavailable: list[Exclusion] = []
    if info["missing_repository"]:
        for node in _repository_dependent_tests(peer):
            deselect += ["--deselect", node]
            unavailable.append(Exclusion(test=node, reason="internet", why=info["missing_repository"]))
    command = [
        sys.executable, "-m", "pytest", "-p", "peer_guard", "-p", "no:cacheprovider", "-q", "-rfE",
        "--rootdir", str(workdir), "-c", str(workdir / "pytest.ini"), *peer.pytest_args, *deselect,
        *[str(workdir / peer.workdir_layout.get(t, t)) for t in peer.tests if _is_test_path(t)],
    ]
    env = environment(peer, workdir, results)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env["PYTHONPATH"]])
    proc = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if not results.exists():
        raise AssertionError(f"the {peer.key} suite did not run:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    outcomes = json.loads(results.read_text())
    return SuiteResult(peer=peer, outcomes=outcomes, excluded=excluded, unavailable=unavailable,
                       stdout=proc.stdout + proc.stderr)


def assert_suite_passes(result: SuiteResult, minimum_passed: int) -> None:
    """Every test that ran passed (or was skipped by the peer's own markers); none failed."""
    summary = (
        f"{result.peer.key}: {result.count('passed')} passed, {result.count('skipped')} skipped by the peer, "
        f"{len(result.excluded)} excluded, {len(result.unavailable)} not available here, "
        f"{len(result.failures)} failed"
    )
    print(summary)
    assert not result.failures, f"{summary}\n" + "\n".join(result.failures) + "\n" + result.stdout[-6000:]
    assert result.count("passed") >= minimum_passed, f"{summary}\n{result.stdout[-3000:]}"


def _is_test_path(relative: str) -> bool:
    name = Path(relative).name
    return not name.endswith(".py") or name.startswith("test_") or name.endswith("_test.py")


def _repository_dependent_tests(peer: Peer) -> list[str]:
    spec = tomllib.loads((SPEC_DIR / f"{peer.name}.toml").read_text())
    return list(spec.get("repository", {}).get("tests", []))


@attrs.frozen
class ExampleResult:
    example: Example
    passed: bool
    returncode: int
    output: str


def run_example(peer: Peer, example: Example, workdir: Path) -> ExampleResult:
    """Runs one example in a copy of its folder (imports rewritten) and checks the expected outcome."""
    repo = repository_dir(peer)
    source = repo / example.path
    folder = workdir / "examples" / example.name
    _copy_rewritten(source, folder if source.is_dir() else folder / source.name, peer)
    blocker = workdir / "_blocked_peers"
    blocker.mkdir(parents=True, exist_ok=True)
    for name in peer.blocked:
        (blocker / f"{name}.py").write_text(f"raise ImportError({name!r} + ' is blocked in this compatibility run')\n")
    env = environment(peer, workdir)
    env.update(example.env)
    env.setdefault("XM_DATA_DIR", str(workdir / "xm-data"))
    command = [sys.executable if part == "{python}" else part for part in example.command]
    try:
        proc = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True,
                              timeout=example.timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as error:
        return ExampleResult(example, False, -1, f"timed out after {example.timeout} s\n{error.stdout or ''}")
    output = proc.stdout + proc.stderr
    if example.expect == "ok":
        passed = proc.returncode == 0
    else:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        last = lines[-1] if lines else ""
        passed = (proc.returncode != 0 and re.search(example.error, last) is not None
                  and "Traceback (most recent call last)" not in proc.stderr)
    return ExampleResult(example, passed, proc.returncode, output)


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "import-repo":
        print(import_repo(argv[1], argv[2]))
        return 0
    print("usage: python tests/support/peer_suites.py import-repo PEER GIT_DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
