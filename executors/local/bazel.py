"""``xm.BazelBinary`` and ``xm.BazelContainer`` for the local executor: ``bazel build`` in the launch script's workspace.

The build runs where the launch script is (Bazel finds the WORKSPACE upward from there) with
the command of ``--xm_bazel_command`` (default ``bazel``). Its outputs come from the build
event stream, so no output path is guessed: a binary runs from ``bazel-bin`` with its
runfiles beside it, and a container's ``.tar`` is loaded into the Docker engine like an
``xm.Container`` file. No Bazel, or a failed build, is one error naming what went wrong.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlparse

from xmanager.executors.api import LaunchError, ServiceUnavailableError
from xmanager.xm.executables import BazelBinary, BazelContainer, Container
from xmanager.xm.job_blocks import Executable, Packageable

BAZEL_SPECS = (BazelBinary, BazelContainer)
INSTALL_HINT = "install it (Debian: apt-get install bazel-bootstrap) or name it with --xm_bazel_command"


class BazelUnavailableError(ServiceUnavailableError):
    """The Bazel command is not installed here."""


class BazelBuildError(LaunchError):
    """``bazel build`` failed; ``log`` has its whole output."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log


def bazel_command() -> list[str]:
    """``--xm_bazel_command`` as an argv prefix: a program path as it is, otherwise split like a shell would."""
    from xmanager import xm_flags

    text = str(xm_flags.value(xm_flags.BAZEL_COMMAND) or "bazel")
    return [text] if os.path.isfile(text) else shlex.split(text)


_SUMMARIES = ("build aborted", "Build did NOT complete", "Target pattern parsing failed")


def _error_line(output: str) -> str:
    """The last ``ERROR:`` line of Bazel's output that carries a cause (not a summary); long ones elided."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    causes = [line for line in errors if not any(summary in line for summary in _SUMMARIES)]
    text = (causes or errors or lines or ["no output"])[-1]
    return text if len(text) <= 400 else f"{text[:200]} ... {text[-190:]}"


def _outputs(events_path: str) -> list[str]:
    """The files of every completed target in a build event JSON file, in order."""
    sets: dict[str, list[str]] = {}
    completed: list[list[str]] = []
    with open(events_path, encoding="utf-8") as events:
        for line in events:
            event = json.loads(line)
            ids = event.get("id", {})
            if "namedSet" in ids:
                files = event.get("namedSetOfFiles", {})
                paths = [unquote(urlparse(f["uri"]).path) for f in files.get("files", []) if "uri" in f]
                nested = [child["id"] for child in files.get("fileSets", [])]
                sets[ids["namedSet"]["id"]] = paths + [f"@set:{n}" for n in nested]
            elif "targetCompleted" in ids and event.get("completed", {}).get("success", True):
                groups = event.get("completed", {}).get("outputGroup", [])
                completed.append([f"@set:{s['id']}" for g in groups if g.get("name") == "default"
                                  for s in g.get("fileSets", [])])

    def expand(items: list[str], seen: set[str]) -> list[str]:
        out: list[str] = []
        for item in items:
            if item.startswith("@set:"):
                key = item[5:]
                if key not in seen:
                    seen.add(key)
                    out.extend(expand(sets.get(key, []), seen))
            else:
                out.append(item)
        return out

    return [path for group in completed for path in expand(group, set())]


def build(label: str, bazel_args: Sequence[str], what: str, workspace: str) -> list[str]:
    """Builds ``label`` in ``workspace``; returns its output files (absolute paths)."""
    command = bazel_command()
    if not command or shutil.which(command[0]) is None:
        program = command[0] if command else ""
        raise BazelUnavailableError(f"{what} needs Bazel, and {program!r} is not installed here: {INSTALL_HINT}")
    with tempfile.TemporaryDirectory(prefix="xm-bazel-") as folder:
        events = os.path.join(folder, "events.json")
        argv = [*command, "build", f"--build_event_json_file={events}", *bazel_args, label]
        try:
            proc = subprocess.run(argv, cwd=workspace, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        except OSError as error:
            raise BazelUnavailableError(f"{what}: cannot run {command[0]!r} ({error.strerror}): {INSTALL_HINT}") from None
        log = proc.stdout + proc.stderr
        if proc.returncode != 0:
            raise BazelBuildError(f"{what}: bazel build {label} failed in {workspace}: {_error_line(proc.stderr)}", log)
        if not os.path.exists(events):
            raise BazelBuildError(f"{what}: bazel build {label} wrote no build events ({_error_line(log)})", log)
        return _outputs(events)


def _target_name(label: str) -> str:
    name = label.rsplit(":", 1)[1] if ":" in label else label.rstrip("/").rsplit("/", 1)[-1]
    return name


def _pick_binary(label: str, outputs: list[str], what: str) -> str:
    name = _target_name(label)
    for path in outputs:
        if os.path.basename(path) == name:
            return path
    runnable = [path for path in outputs if os.path.isfile(path) and os.access(path, os.X_OK)]
    if len(runnable) == 1 or (runnable and len(outputs) == 1):
        return runnable[0]
    raise BazelBuildError(f"{what}: {label} built {len(outputs)} file(s) and none is its binary: {outputs[:5]}")


def package_bazel(packageable: Packageable, workspace: str) -> Executable:
    """A process executable for ``BazelBinary``, a container executable for ``BazelContainer``."""
    spec: Any = packageable.executable_spec
    what = f"xm.{type(spec).__name__}(label={spec.label!r})"
    outputs = build(spec.label, spec.bazel_args, what, workspace)
    if isinstance(spec, BazelBinary):
        from xmanager.executors.packaging import LocalExecutable

        binary = _pick_binary(spec.label, outputs, what)
        return LocalExecutable(command=(binary,), name=spec.name, args=packageable.args,
                               env_vars=packageable.env_vars)
    tars = [path for path in outputs if path.endswith(".tar")]
    if not tars:
        raise BazelBuildError(f"{what}: {spec.label} built no .tar image: {outputs[:5]}")
    from xmanager.executors.local.containers import package_container

    image = Packageable(Container(image_path=tars[0]), packageable.executor_spec, packageable.args,
                        packageable.env_vars)
    executable = package_container(image, launch_dir=workspace)
    executable.name = spec.name
    return executable
