"""Every fenced code block of README.md and docs/*.md runs, as a reader following a page would run it.

The rules (what a page's blocks may assume):

* **Languages.** Every block has a language tag. ``python``, ``bash``, ``console``, ``toml`` and ``ini``
  blocks are code and are run or loaded; ``text`` blocks (diagrams, output samples) are not code and
  are the only ones skipped. An untagged block fails.
* **One page, one reader.** A page's blocks run in order, in one fresh work folder (a temporary
  folder holding copies of the example files in ``SETUP_FILES``) with ``XM_DATA_DIR`` and ``HOME``
  in another temporary folder, so the store is the page's own (``~/.local/share/xmanager`` is
  ``$XM_DATA_DIR``). The page's ``python`` blocks run in *one* Python process and namespace, in page
  order, each as the ``__main__`` script of a file in the work folder: a block may use what an
  earlier block of the page defined. ``bash`` blocks run with ``bash -e -o pipefail`` (every command
  must succeed), ``.venv/bin`` first on ``PATH``, against the same store. If a block fails, the
  page's later blocks are reported as not run.
* **Placeholders.** In ``bash`` and ``console`` blocks the word ``ID`` is the newest experiment of the
  page's store (made by an earlier block). Anything else must be concrete, except the stand-ins of
  ``SUBSTITUTIONS`` (names of a site's cluster, registry or bucket that only a real site has), each
  replaced with this test set-up's equivalent; a substitution that no longer matches its page fails.
* **Services.** Pages in ``SERVICES`` run against real or local stand-ins started here with the suite's
  fixtures (``tests/support/``): a dev Slurm cluster, a private Docker engine and registry (holding the
  host-built Python image as ``python:3.X-slim``), the fake Kubernetes API server, the local Vertex AI
  JobService, the loopback dataset mirror. A service that cannot start here skips its page's blocks
  with the reason.
* **Excerpts.** A python block preceded by ``<!-- docs-test: excerpt of PATH -->`` quotes a source file:
  it must compile and its lines must appear in that file in order (lines starting with ``...`` stand
  for elided code). ``<!-- docs-test: cwd=repository -->`` runs a bash block from the repository root
  (commands about the repository itself). ``<!-- docs-test: set-up scripts -->`` marks the README's
  install commands, which install into ``./.venv`` and run this whole suite: they are checked for
  syntax and the quickstart's launch is run (CI runs ``setup_scripts/test.sh`` itself, as ``.ci/run``).
* **TOML.** A study config (``[configuration]``) is loaded with ``xmanager.xm.study.load_study`` and
  saved as ``study.toml`` in the work folder for the page's later blocks; an entry-point snippet must be
  contained in ``pyproject.toml``. **INI**: the datasets config file, read by ``xm.data.config``.
* **Checks.** ``CHECKS`` adds assertions run right after a block (Python in the page's namespace after a
  python block, bash after a bash block), where the block alone proves little (e.g. that a download
  really found its file, or that a backup holds the store's rows). ``PAGE_SETUP`` makes what a page
  takes for granted before its first block (a store with an experiment in it).
"""

from __future__ import annotations

import ast
import configparser
import json
import os
import re
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any, Optional

import attrs
import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
KERNEL = Path(__file__).with_name("kernel.py")
PAGES = ["README.md", *sorted(f"docs/{path.name}" for path in (REPO / "docs").glob("*.md"))]
CODE_LANGUAGES = ("python", "bash", "console", "toml", "ini")
NOT_CODE = ("text",)
BLOCK_TIMEOUT = 300.0

#: Example files copied into every page's work folder: {name there: file of examples/}.
SETUP_FILES = {"launcher.py": "launcher.py", "train.sh": "train.sh", "train.py": "docs/train.py",
               "trainer/train.py": "docs/train.py"}

#: Python run in a page's Python process before its first block (set-up a reader's machine would not need).
PRELUDES = {
    # The loaders check the loopback mirror's synthetic files against their own digests, not the published ones.
    "docs/datasets.md": "import dataset_mirror\nfrom xmanager.xm.data.datasets import base\n"
                        "base.load = dataset_mirror._trusting_synthetic_digests(base.load)\n",
}

#: Services a page's blocks talk to.
SERVICES = {
    "docs/slurm.md": ("slurm",),
    "docs/containers.md": ("docker",),
    "docs/kubernetes.md": ("docker", "kubernetes"),
    "docs/vertex.md": ("docker", "vertex"),
    "docs/datasets.md": ("dataset mirror",),
}

#: Site-specific names in a page, replaced by this set-up's stand-ins: {page: [(text, key in the stand-ins)]}.
SUBSTITUTIONS = {
    # The dev cluster has one partition ("debug"), no GPUs and no Lmod; account and QoS are accepted as given.
    "docs/slurm.md": [('partition="gpu"', 'partition="debug"'), (", a100=1", ""),
                      ('"module load cuda", ', ""), ("~/venv/bin/activate", "{venv_activate}")],
    "docs/kubernetes.md": [("europe-docker.pkg.dev/my-project", "{registry}")],
    "docs/vertex.md": [("us-docker.pkg.dev/my-project/my-repo", "{registry}/my-repo")],
    "docs/datasets.md": [("https://example.org/usps.h5", "{mirror}/usps/usps.h5"),
                         ('sha256="ba768d9a..."', 'sha256="{usps_sha256}"')],
    # A private engine's socket path must stay under 108 bytes and be this test's own.
    "docs/containers.md": [("/tmp/xmdock", "{short_tmp}/xmdock")],
    # A port of this test's own for the study server.
    "docs/studies.md": [("5000", "{free_port}")],
    # Your executor's name: the example executor of the page.
    "docs/executors.md": [("-k your_executor", "-k in_process")],
}

#: Commands that make what a page takes for granted (a store with an experiment), run before its first block.
PAGE_SETUP = {
    "docs/store.md": "xmanager launch launcher.py",
}

#: Commands run after each bash block of a page, whether it passed or not (what a failed block left running).
CLEANUPS = {
    "docs/containers.md": ["[ ! -d {short_tmp}/xmdock ] || xmanager devcluster docker stop {short_tmp}/xmdock"],
}

#: Assertions after a block, in the page's namespace: {(page, text the block contains): code}.
CHECKS = {
    ("README.md", "ps.run(func"): "assert sorted(df.result_) == [77, 88, 154, 176, 231, 264], df",
    ("docs/datasets.md", "fetch_usps()"): "assert path is not None and os.path.isfile(path), path",
    ("docs/sweeps.md", "skip_completed=True"):
        "assert len(experiment.work_units) == 6 and set(experiment.to_dataframe()._status) == {'completed'}",
    ("docs/executors.md", "InProcess()"): "assert sorted(experiment.to_dataframe().square) == [0, 1, 4, 9]",
    ("docs/vector_engine.md", "VeBuffer"): "assert list(frame['return']) == [5, 5, 5]",
    ("docs/kubernetes.md", "Kubernetes("): "assert len(experiment.work_units) == 2",
    ("docs/vertex.md", "Vertex("): "assert len(experiment.work_units) == 2",
    ("docs/slurm.md", "Slurm("): "assert len(experiment.work_units) == 200",
    # bash blocks: a bash check.
    ("docs/store.md", "VACUUM INTO"): 'for copy in ~/backups/*.sqlite3; do\n'
        '  [ "$(sqlite3 "$copy" "SELECT count(*) FROM work_units")" = 2 ]\ndone\n',
}


@attrs.frozen
class Block:
    page: str
    line: int  # 1-based line of the opening fence.
    language: str
    text: str
    directive: str  # The ``<!-- docs-test: ... -->`` comment right above the fence, or "".

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}-{self.language or 'untagged'}"


def blocks_of(page: str) -> list[Block]:
    """The fenced blocks of ``page``, dedented (a block may sit in a list item)."""
    lines = (REPO / page).read_text().splitlines()
    found, index = [], 0
    while index < len(lines):
        opening = re.match(r"^(\s*)```(\S*)\s*$", lines[index])
        if not opening:
            index += 1
            continue
        indent, language = len(opening.group(1)), opening.group(2)
        end = index + 1
        while not re.match(r"^\s*```\s*$", lines[end]):
            end += 1
        above = [line.strip() for line in lines[max(0, index - 2) : index] if line.strip()]
        directive = ""
        if above and (match := re.fullmatch(r"<!-- docs-test: (.*) -->", above[-1])):
            directive = match.group(1)
        text = "\n".join(line[indent:] for line in lines[index + 1 : end]) + "\n"
        found.append(Block(page, index + 1, language, text, directive))
        index = end + 1
    return found


ALL_BLOCKS = [block for page in PAGES for block in blocks_of(page)]


# ---- a page's run --------------------------------------------------------------------------------------------------
@attrs.define
class Outcome:
    ok: bool
    detail: str = ""
    skipped: str = ""


class Kernel:
    """The page's Python process (``kernel.py``), in its own process group, stopped by its id."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder = folder
        self.process = subprocess.Popen(
            [sys.executable, str(KERNEL)], cwd=folder, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, start_new_session=True,
        )

    def run(self, path: Path, out: Path, timeout: float) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"path": str(path), "out": str(out)}) + "\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            self.stop()
            return {"ok": False, "error": f"no answer after {timeout:.0f} s"}
        line = self.process.stdout.readline()
        if not line:
            return {"ok": False, "error": f"the Python process exited (status {self.process.wait()})"}
        return json.loads(line)

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=30)


class PageRun:
    """Runs a page's blocks in order in one work folder; ``outcomes`` by block line."""

    def __init__(self, page: str, folder: Path, env: dict[str, str], values: dict[str, str]) -> None:
        self.page, self.folder, self.env, self.values = page, folder, env, values
        self.kernel: Optional[Kernel] = None
        self.outcomes: dict[int, Outcome] = {}

    def run(self) -> None:
        failed: Optional[Block] = None
        try:
            if self.page in PAGE_SETUP:
                done = subprocess.run(["bash", "-e", "-c", PAGE_SETUP[self.page]], cwd=self.folder, env=self.env,
                                      capture_output=True, text=True, timeout=BLOCK_TIMEOUT)
                assert done.returncode == 0, f"the page's set-up failed: {done.stdout[-2000:]}{done.stderr[-4000:]}"
            for block in blocks_of(self.page):
                if block.language in NOT_CODE:
                    self.outcomes[block.line] = Outcome(True, skipped="not code")
                    continue
                if failed is not None:
                    self.outcomes[block.line] = Outcome(False, f"not run: the block at {failed.id} failed")
                    continue
                try:
                    outcome = self.run_block(block)
                except Exception as error:  # A check of this runner failing, reported on its block.
                    outcome = Outcome(False, f"{type(error).__name__}: {error}")
                self.outcomes[block.line] = outcome
                if not outcome.ok and not outcome.skipped:
                    failed = block
        finally:
            if self.kernel is not None:
                self.kernel.stop()

    def text_of(self, block: Block) -> str:
        text = block.text
        for old, new in SUBSTITUTIONS.get(self.page, ()):
            if old in text:
                text = text.replace(old, new.format(**self.values))
        return text

    def run_block(self, block: Block) -> Outcome:
        if block.language not in CODE_LANGUAGES:
            return Outcome(False, f"untagged or unknown language {block.language!r}: tag it "
                                  f"({', '.join(CODE_LANGUAGES + NOT_CODE)})")
        if block.directive.startswith("excerpt of "):
            return check_excerpt(block, REPO / block.directive.removeprefix("excerpt of "))
        if block.directive == "set-up scripts":
            return self.run_setup_scripts(block)
        text = self.text_of(block)
        run = getattr(self, f"run_{block.language}")
        outcome: Outcome = run(block, text)
        return outcome

    # -- python
    def run_python(self, block: Block, text: str) -> Outcome:
        if self.kernel is None:
            self.kernel = Kernel(self.folder, self.env)
            if self.page in PRELUDES:
                prelude = self.folder / "prelude.py"
                prelude.write_text(PRELUDES[self.page])
                reply = self.kernel.run(prelude, self.folder / "prelude.out", 120)
                assert reply["ok"], f"the page's prelude failed: {reply['error']}"
        stem = re.sub(r"\W", "_", Path(self.page).stem)
        path, out = self.folder / f"{stem}_{block.line}.py", self.folder / f"{stem}_{block.line}.out"
        checks = [code for (page, marker), code in CHECKS.items() if page == self.page and marker in block.text]
        path.write_text(text)
        reply = self.kernel.run(path, out, BLOCK_TIMEOUT)
        if reply["ok"] and checks:
            check = self.folder / f"{stem}_{block.line}_check.py"
            check.write_text("import os\n" + "\n".join(checks) + "\n")
            reply = self.kernel.run(check, self.folder / f"{stem}_{block.line}_check.out", 60)
        if reply["ok"]:
            return Outcome(True)
        return Outcome(False, f"{reply['error']}\n--- output:\n{_tail(out)}")

    # -- shells
    def shell_text(self, text: str) -> str:
        if re.search(r"\bID\b", text):
            text = re.sub(r"\bID\b", str(newest_experiment(self.env)), text)
        return text

    def run_bash(self, block: Block, text: str) -> Outcome:
        cwd = REPO if block.directive == "cwd=repository" else self.folder
        try:
            done = subprocess.run(["bash", "-e", "-o", "pipefail", "-x", "-c", self.shell_text(text)], cwd=cwd,
                                  env=self.env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT)
        finally:
            for command in CLEANUPS.get(self.page, ()):
                subprocess.run(["bash", "-c", command.format(**self.values)], env=self.env, capture_output=True,
                               timeout=120)
        if done.returncode != 0:
            return Outcome(False, f"exit status {done.returncode}\n--- stdout:\n{done.stdout[-4000:]}\n"
                                  f"--- stderr:\n{done.stderr[-6000:]}")
        for (page, marker), check in CHECKS.items():
            if page == self.page and marker in block.text:
                checked = subprocess.run(["bash", "-e", "-x", "-c", check], cwd=cwd, env=self.env, capture_output=True,
                                         text=True, timeout=120)
                if checked.returncode != 0:
                    return Outcome(False, f"the check after the block failed:\n{checked.stdout}{checked.stderr}")
        return Outcome(True)

    def run_console(self, block: Block, text: str) -> Outcome:
        """``$ command`` lines run in turn; the lines after each are its expected output (``...``: any lines)."""
        steps: list[tuple[str, list[str]]] = []
        for line in text.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif steps:
                steps[-1][1].append(line)
        for command, expected in steps:
            done = subprocess.run(["bash", "-o", "pipefail", "-c", self.shell_text(command)], cwd=self.folder,
                                  env=self.env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT)
            got = (done.stdout + done.stderr).splitlines()
            if not lines_match(expected, got):
                return Outcome(False, f"$ {command}\nexpected:\n" + "\n".join(expected) + "\ngot:\n" + "\n".join(got))
        return Outcome(True)

    def run_setup_scripts(self, block: Block) -> Outcome:
        for script in re.findall(r"^bash (\S+)", block.text, re.M):
            path = REPO / script
            if not path.is_file():
                return Outcome(False, f"{script} does not exist")
            syntax = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=60)
            if syntax.returncode != 0:
                return Outcome(False, f"{script}: {syntax.stderr}")
        assert "setup_scripts/test.sh" in (REPO / ".ci" / "run").read_text(), ".ci/run no longer runs test.sh"
        quickstart = (REPO / "setup_scripts" / "quickstart.sh").read_text()
        launch = re.search(r"^\.venv/bin/(xmanager launch \S+)$", quickstart, re.M)
        assert launch, "quickstart.sh no longer ends with an xmanager launch"
        return self.run_bash(attrs.evolve(block, directive="cwd=repository"), launch.group(1) + "\n")

    # -- configuration files
    def run_toml(self, block: Block, text: str) -> Outcome:
        data = tomllib.loads(text)
        if "configuration" in data:
            from xmanager.xm.study import load_study

            (self.folder / "study.toml").write_text(text)
            study = load_study(str(self.folder / "study.toml"))
            assert list(study.psets(range(1, 3))), "the study gives no psets"
            return Outcome(True)
        if "project" in data:
            real = tomllib.loads((REPO / "pyproject.toml").read_text())
            for group, points in data["project"]["entry-points"].items():
                for name, target in points.items():
                    assert real["project"]["entry-points"][group].get(name) == target, (group, name, target)
            return Outcome(True)
        return Outcome(False, "a toml block that is neither a study config nor a pyproject.toml snippet")

    def run_ini(self, block: Block, text: str) -> Outcome:
        config_file = self.folder / "datasets.cfg"
        config_file.write_text(text)
        configparser.ConfigParser().read_string(text)
        code = ("from xmanager.xm.data import config\n"
                "import os\nprint(os.path.abspath(config.get_base_dir()))\n")
        env = {**self.env, "XM_DATA_CONFIG": str(config_file)}
        for name in ("XM_DATASETS_DIR", "BATCHUP_DATA_DIR"):
            env.pop(name, None)
        done = subprocess.run([sys.executable, "-c", code], env=env, cwd=self.folder, capture_output=True, text=True,
                              timeout=120)
        wanted = configparser.ConfigParser()
        wanted.read_string(text)
        if done.returncode != 0 or done.stdout.strip() != wanted["paths"]["data_dir"]:
            return Outcome(False, f"config.get_base_dir() gave {done.stdout.strip()!r} {done.stderr}")
        return Outcome(True)


def _tail(path: Path, size: int = 6000) -> str:
    return path.read_text(errors="replace")[-size:] if path.exists() else ""


def lines_match(expected: list[str], got: list[str]) -> bool:
    if not expected:
        return not got
    if expected[0] == "...":
        return any(lines_match(expected[1:], got[start:]) for start in range(len(got) + 1))
    return bool(got) and got[0].rstrip() == expected[0].rstrip() and lines_match(expected[1:], got[1:])


def newest_experiment(env: dict[str, str]) -> int:
    with sqlite3.connect(Path(env["XM_DATA_DIR"]) / "xmanager.sqlite3") as connection:
        (newest,) = connection.execute("SELECT max(experiment_id) FROM experiments").fetchone()
    assert newest is not None, "the page's bash block uses ID, but no earlier block made an experiment"
    return int(newest)


def check_excerpt(block: Block, source: Path) -> Outcome:
    ast.parse(block.text)
    def code(line: str) -> str:  # A line without its comment (the docs may comment a line differently).
        return line.split("  #")[0].strip()

    lines = [code(line) for line in source.read_text().splitlines()]
    position = 0
    for line in block.text.splitlines():
        if not code(line) or code(line).startswith("..."):
            continue
        try:
            position = next(i for i in range(position, len(lines)) if lines[i] == code(line)) + 1
        except StopIteration:
            return Outcome(False, f"{source.relative_to(REPO)} has no line {code(line)!r} (after line {position})")
    return Outcome(True)


# ---- the services ---------------------------------------------------------------------------------------------------
_RUNS: dict[str, PageRun] = {}


def _page_env(folder: Path, home: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("XM_", "SLURM_", "KUBE", "GOOGLE_", "DOCKER_", "PYTEST_"))}
    data_dir = home / ".local" / "share" / "xmanager"
    data_dir.mkdir(parents=True)
    env.update(HOME=str(home), XM_DATA_DIR=str(data_dir), PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
               XM_VE_BUILD_DIR=str(folder / "ve-build"), PYTHONDONTWRITEBYTECODE="1")
    return env


def _start_services(page: str, request: pytest.FixtureRequest, folder: Path, env: dict[str, str],
                    values: dict[str, str]) -> None:
    for service in SERVICES.get(page, ()):
        if service == "slurm":
            cluster = request.getfixturevalue("docs_slurm")
            env.update(cluster.env)
            env["SLURM_CONF"] = cluster.conf
            values["venv_activate"] = str(VENV_BIN / "activate")
        elif service == "docker":
            docker = request.getfixturevalue("docs_docker")
            env["DOCKER_HOST"] = docker.docker_host
            values["registry"] = docker.registry
        elif service == "kubernetes":
            server = request.getfixturevalue("docs_kubernetes")
            kubeconfig = folder / "kubeconfig"
            kubeconfig.write_text(
                "apiVersion: v1\nkind: Config\n"
                f"clusters:\n- name: fake\n  cluster:\n    server: {server.url}\n"
                "users:\n- name: tester\n  user:\n    token: docs\n"
                "contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: tester\n    namespace: research\n"
                "current-context: fake\n"
            )
            env["KUBECONFIG"] = str(kubeconfig)
        elif service == "vertex":
            env.update(request.getfixturevalue("docs_vertex"))
        elif service == "dataset mirror":
            mirror, digests = request.getfixturevalue("docs_dataset_mirror")
            env.update(mirror)
            values["mirror"] = mirror["XM_DATASETS_MIRROR"]
            values["usps_sha256"] = digests["usps.h5"]
            env["PYTHONPATH"] = str(REPO / "tests" / "support")  # For the page's prelude.


def page_run(page: str, request: pytest.FixtureRequest) -> PageRun:
    if page not in _RUNS:
        folder = Path(tempfile.mkdtemp(prefix="xm-docs-"))
        request.config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))
        work, home = folder / "work", folder / "home"
        work.mkdir()
        for name, source in SETUP_FILES.items():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / "examples" / source, work / name)
        (work / "examples").symlink_to(REPO / "examples")
        env = _page_env(work, home)
        from xmanager.testing.loopback import free_port

        values = {"short_tmp": str(folder), "free_port": str(free_port())}
        _start_services(page, request, work, env, values)
        run = PageRun(page, work, env, values)
        _RUNS[page] = run
        run.run()
    return _RUNS[page]


@pytest.fixture(scope="session")
def docs_slurm(tmp_path_factory):
    from slurm_support import start_or_skip

    cluster = start_or_skip(tmp_path_factory, "docs-slurm", cpus=16, memory_mb=64000)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def docs_docker(request):
    import docker_support

    engine = docker_support.session_engine(request)
    base = engine.client.images.get(engine.python_image)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    base.tag("python", f"{version}-slim")  # What python_container's default base image names, without Docker Hub.
    return engine


@pytest.fixture(scope="session")
def docs_kubernetes():
    pytest.importorskip("kubernetes", reason="the Kubernetes executor needs the kubernetes client")
    import fake_apiserver

    server = fake_apiserver.FakeApiServer(token="docs").start()
    server.namespaces.add("research")
    # A GKE node pool with T4s, as the page's requirements ask for.
    server.nodes.append({"metadata": {"name": "t4-pool-1", "labels": {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}}})
    yield server
    server.stop()


@pytest.fixture(scope="session")
def docs_vertex(tmp_path_factory):
    pytest.importorskip("google.cloud.aiplatform_v1", reason="the Vertex executor needs google-cloud-aiplatform")
    import vertex_servicer

    folder = tmp_path_factory.mktemp("docs-vertex")
    ca_path, key, chain = vertex_servicer.make_tls(str(folder))
    server = vertex_servicer.Server(vertex_servicer.FakeJobService(projects=(vertex_servicer.PROJECT,)), key, chain)
    (folder / "gcloud").mkdir()
    yield {
        "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": ca_path, "GOOGLE_APPLICATION_CREDENTIALS": vertex_servicer.write_key_file(folder),
        "XM_VERTEX_API_ENDPOINT": server.endpoint, "CLOUDSDK_CONFIG": str(folder / "gcloud"),
        "NO_GCE_CHECK": "true", "GCE_METADATA_HOST": "127.0.0.1:1", "GCE_METADATA_IP": "127.0.0.1:1",
        "NO_PROXY": "localhost,127.0.0.1", "no_proxy": "localhost,127.0.0.1",
    }
    server.stop()


@pytest.fixture(scope="session")
def docs_dataset_mirror(tmp_path_factory):
    """The loopback dataset mirror of tests/support/dataset_mirror.py, served from this process."""
    import dataset_mirror

    saved = {name: os.environ.get(name) for name in dataset_mirror._ENV}
    dataset_mirror.pytest_configure(None)
    # Only the server is needed here: pages wrap their own loader (their prelude). This process's loader must
    # stay as it was, or later tests (tests/xm/data/datasets) would check their files against the mirror's digests.
    from xmanager.xm.data.datasets import base

    assert dataset_mirror._mirror is not None
    base.load, dataset_mirror._mirror.saved_load = dataset_mirror._mirror.saved_load, None
    mirror = {name: os.environ[name] for name in dataset_mirror._ENV}
    for name, value in saved.items():  # This process's own environment stays as it was.
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    digests = dataset_mirror.ensure_generated("usps")
    yield mirror, digests
    dataset_mirror.pytest_unconfigure(None)


# ---- the tests ------------------------------------------------------------------------------------------------------
def test_every_page_is_found():
    assert "README.md" in PAGES and "docs/architecture.md" in PAGES
    assert any(block.language == "python" for block in ALL_BLOCKS)


@pytest.mark.integration
@pytest.mark.parametrize("block", ALL_BLOCKS, ids=[block.id for block in ALL_BLOCKS])
def test_code_block(block: Block, request: pytest.FixtureRequest) -> None:
    run = page_run(block.page, request)
    outcome = run.outcomes[block.line]
    if outcome.skipped:
        pytest.skip(f"{block.id}: {outcome.skipped}")
    assert outcome.ok, f"{block.id}:\n{outcome.detail}"


def test_substitutions_still_match_their_pages():
    for page, pairs in SUBSTITUTIONS.items():
        text = "".join(block.text for block in blocks_of(page))
        for old, _ in pairs:
            assert old in text, f"{page} no longer contains {old!r}: update SUBSTITUTIONS"
    for (page, marker), _ in CHECKS.items():
        assert any(marker in block.text for block in blocks_of(page)), f"{page}: no block contains {marker!r}"


# ---- what the pages name exists ------------------------------------------------------------------------------------
SOURCE_FOLDERS = ("xm", "xm_local", "executors", "testing", "compat")


def _repository_files(pattern: str) -> list[Path]:
    return [path for path in REPO.glob(pattern) if not {".venv", "build"} & set(path.relative_to(REPO).parts)]


def test_architecture_names_only_files_that_exist():
    """Every path in docs/architecture.md exists; a bare module name (``tracking.py``) exists in a source folder."""
    text = (REPO / "docs" / "architecture.md").read_text()
    cited = {token.split(" ")[0].split(":")[0] for token in re.findall(r"`([^`\n]+)`", text) + re.findall(r"\(([\w/]+\.py)\)", text)}
    checked = 0
    for token in sorted(cited):
        if re.fullmatch(r"[\w.*-]+(/[\w.*-]*)+", token) and token.split("/")[0] in (*SOURCE_FOLDERS, "tests", "docs", "bench", "examples", "setup_scripts"):
            assert _repository_files(token.rstrip("/")), f"docs/architecture.md cites {token}, which does not exist"
            checked += 1
        elif re.fullmatch(r"\w+\.py", token):
            assert any(_repository_files(f"{folder}/**/{token}") for folder in SOURCE_FOLDERS) or (REPO / token).exists(), \
                f"docs/architecture.md cites {token}, which is in no source folder"
            checked += 1
    assert checked > 20, "the paths of docs/architecture.md were not found"


def test_install_hints_name_our_distribution_and_its_extras():
    """``xmanager[...]`` is DeepMind's package: hints name ``xmanager-launcher[EXTRA]``, an extra pyproject.toml has."""
    extras = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    wrong, unknown, hints = [], [], 0
    for path in _repository_files("**/*.py") + _repository_files("**/*.md"):
        if "compat_modules" in path.parts or path == Path(__file__):  # Peers' own sources; this test's patterns.
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            where = f"{path.relative_to(REPO)}:{number}"
            if re.search(r"(?<![\w-])xmanager\[", line):
                wrong.append(where)
            for extra in re.findall(r"xmanager-launcher\[([\w,-]+)\]", line):
                hints += 1
                unknown += [f"{where}: {name}" for name in extra.split(",") if name not in extras]
    assert not wrong, f"install hints naming DeepMind's xmanager instead of xmanager-launcher: {wrong}"
    assert not unknown, f"install hints naming extras pyproject.toml does not have: {unknown}"
    assert hints > 3


def test_console_output_matching():
    """``console`` blocks: expected lines match exactly (trailing spaces aside), ``...`` stands for any lines."""
    assert lines_match(["$ x", "..."], ["$ x", "a", "b"]) and lines_match(["a", "...", "c"], ["a", "b", "b", "c"])
    assert lines_match(["a  "], ["a"]) and lines_match([], [])
    assert not lines_match(["a", "c"], ["a", "b", "c"]) and not lines_match(["a"], []) and not lines_match([], ["a"])
    assert not lines_match(["...", "d"], ["a", "b"])
