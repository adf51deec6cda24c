"""Build contexts for image specs, written as deterministic tarballs and hashed by content.

The same files with the same modes and the same Dockerfile always give the same bytes (no
mtimes, owners or ordering differences), so the SHA-256 of the tarball identifies the
image a build would make. That hash is the image cache key.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import os
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from typing import IO, Optional

import attrs
from xmanager.xm.executables import CommandList, Dockerfile, ModuleName, PythonContainer, command_lines

#: The Dockerfile a generated context carries (kept apart from any user file named Dockerfile).
GENERATED_DOCKERFILE = ".xm.Dockerfile"
#: Where a PythonContainer's folder goes in the image.
APP_ROOT = "/workdir"
_ALWAYS_SKIPPED = {"__pycache__", ".git", ".hg", ".svn", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
_HASH_VERSION = b"xm-context-1\n"


class ContextError(ValueError):
    """A spec's folder or Dockerfile is missing or unusable; the message names the path."""


def default_base_image() -> str:
    """The base for a PythonContainer without ``base_image``: ``$XM_PYTHON_BASE_IMAGE`` or python:X.Y-slim."""
    return os.environ.get("XM_PYTHON_BASE_IMAGE") or f"python:{sys.version_info.major}.{sys.version_info.minor}-slim"


@attrs.frozen
class BuildContext:
    """A build context ready for ``docker build``: the tarball (a temp file) and what is in it."""

    tarball: str
    dockerfile: str  # The Dockerfile's path inside the tarball.
    dockerfile_text: str
    content_hash: str  # sha256 hex of the tarball.
    base_images: tuple[str, ...]

    def open(self) -> IO[bytes]:
        return open(self.tarball, "rb")

    def remove(self) -> None:
        try:
            os.remove(self.tarball)
        except FileNotFoundError:
            pass


def _entrypoint(entrypoint: ModuleName | CommandList) -> list[str]:
    if isinstance(entrypoint, ModuleName):
        return ["python", "-m", entrypoint.module_name]
    if isinstance(entrypoint, CommandList):
        # The job's args reach the last line as "$@", like CommandList binaries.
        return ["sh", "-c", "\n".join(command_lines(entrypoint)) + ' "$@"', "entrypoint"]
    raise ContextError(
        f"PythonContainer.entrypoint must be xm.ModuleName or xm.CommandList, got {type(entrypoint).__name__}"
    )


def default_steps(directory: str, use_deep_module: bool) -> list[str]:
    """The default build steps of a PythonContainer whose folder is ``directory/`` in the context.

    The folder goes to ``/workdir/<directory>``; work happens there (or in ``/workdir`` with
    ``use_deep_module``, so imports name the folder); its ``requirements.txt``, when there is
    one, is installed. For ``docker_instructions`` that extend the defaults.
    """
    target = f"{APP_ROOT}/{directory}"
    return [
        f"COPY {directory}/ {target}",
        f"WORKDIR {APP_ROOT if use_deep_module else target}",
        f"RUN if [ -f {target}/requirements.txt ]; then python -m pip install --no-cache-dir "
        f"--disable-pip-version-check -r {target}/requirements.txt; fi",
    ]


def python_dockerfile(spec: PythonContainer, folder: str) -> str:
    """The Dockerfile for a PythonContainer whose folder sits at ``<basename>/`` in the context.

    Default steps: copy the folder to ``/workdir/<basename>``, work there, and ``pip install``
    its ``requirements.txt`` when there is one. ``docker_instructions`` replace those steps.
    """
    import json

    base = os.path.basename(os.path.normpath(folder))
    target = f"{APP_ROOT}/{base}"
    lines = [f"FROM {spec.base_image or default_base_image()}", "ENV PYTHONUNBUFFERED=1"]
    if spec.docker_instructions is not None:
        lines.extend(spec.docker_instructions)
    else:
        lines.append(f"COPY {base}/ {target}")
        lines.append(f"WORKDIR {APP_ROOT if spec.use_deep_module else target}")
        if os.path.isfile(os.path.join(folder, "requirements.txt")):
            lines.append(
                f"RUN python -m pip install --no-cache-dir --disable-pip-version-check -r {target}/requirements.txt"
            )
    lines.append(f"ENTRYPOINT {json.dumps(_entrypoint(spec.entrypoint))}")
    lines.append("CMD []")
    return "\n".join(lines) + "\n"


def from_images(dockerfile_text: str) -> tuple[str, ...]:
    """The external images a Dockerfile's FROM lines name (not stages, ``scratch`` or ``$ARG`` forms)."""
    stages: set[str] = set()
    images: list[str] = []
    for raw in dockerfile_text.splitlines():
        words = raw.strip().split()
        if len(words) < 2 or words[0].upper() != "FROM":
            continue
        rest = [w for w in words[1:] if not w.startswith("--")]
        if not rest:
            continue
        image = rest[0]
        if len(rest) >= 3 and rest[1].upper() == "AS":
            stages.add(rest[2].lower())
        if image.lower() in stages or image == "scratch" or "$" in image:
            continue
        if image not in images:
            images.append(image)
    return tuple(images)


def _ignore_patterns(root: str) -> list[str]:
    path = os.path.join(root, ".dockerignore")
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as handle:
        lines = [line.strip() for line in handle]
    return [line.rstrip("/").lstrip("/") for line in lines if line and not line.startswith("#")]


def _ignored(relative: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:  # Later patterns win; "!" re-includes, as .dockerignore does.
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        if fnmatch.fnmatch(relative, body) or fnmatch.fnmatch(relative, body + "/*"):
            ignored = not negate
    return ignored


def _walk(root: str, patterns: list[str]) -> Iterator[tuple[str, str]]:
    """(absolute, relative) paths of every file, link and folder under ``root``, sorted."""
    for current, dirs, files in os.walk(root):
        rel_dir = os.path.relpath(current, root)
        rel_dir = "" if rel_dir == "." else rel_dir
        kept = []
        for name in sorted(dirs):
            relative = os.path.join(rel_dir, name)
            if name in _ALWAYS_SKIPPED or _ignored(relative, patterns):
                continue
            kept.append(name)
            if os.path.islink(os.path.join(current, name)):
                yield os.path.join(current, name), relative
        dirs[:] = [d for d in kept if not os.path.islink(os.path.join(current, d))]
        for name in dirs:
            yield os.path.join(current, name), os.path.join(rel_dir, name)
        for name in sorted(files):
            relative = os.path.join(rel_dir, name)
            if name.endswith(".pyc") or _ignored(relative, patterns):
                continue
            yield os.path.join(current, name), relative


class _HashingWriter(io.RawIOBase):
    """A write-only file that hashes what passes through."""

    def __init__(self, target: IO[bytes]) -> None:
        self._target = target
        self.digest = hashlib.sha256(_HASH_VERSION)
        self.position = 0

    def tell(self) -> int:
        return self.position

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.digest.update(data)
        self.position += len(data)
        return self._target.write(data)


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if info.isdir():
        info.mode = 0o755
    elif info.isfile():
        info.mode = 0o755 if info.mode & 0o111 else 0o644
    return info


def _write(entries: list[tuple[str, str]], extra: dict[str, str]) -> tuple[str, str]:
    """Writes a deterministic tarball of ``entries`` plus ``extra`` text files; returns (path, sha256)."""
    handle, path = tempfile.mkstemp(prefix="xm-context-", suffix=".tar")
    try:
        with os.fdopen(handle, "wb") as raw:
            writer = _HashingWriter(raw)
            archive_file: IO[bytes] = writer  # type: ignore[assignment]
            with tarfile.open(fileobj=archive_file, mode="w", format=tarfile.PAX_FORMAT) as archive:
                for absolute, relative in entries:
                    archive.add(absolute, relative, recursive=False, filter=_normalise)
                for name, text in sorted(extra.items()):
                    data = text.encode()
                    info = _normalise(tarfile.TarInfo(name))
                    info.size = len(data)
                    archive.addfile(info, io.BytesIO(data))
        return path, writer.digest.hexdigest()
    except BaseException:
        os.remove(path)
        raise


def _existing_folder(path: str, what: str) -> str:
    if not os.path.exists(path):
        raise ContextError(f"{what}: no folder at {path!r}")
    if not os.path.isdir(path):
        raise ContextError(f"{what}: {path!r} is not a folder")
    return path


def _resolve(path: str, launch_dir: str) -> str:
    """A spec's path: absolute already when the spec was built; one assigned later may be relative."""
    path = os.path.expanduser(path)
    return os.path.normpath(path if os.path.isabs(path) else os.path.join(launch_dir, path))


def python_container_context(spec: PythonContainer, launch_dir: str) -> BuildContext:
    """The context of a PythonContainer: its folder under ``<basename>/`` and a generated Dockerfile.

    ``spec.path`` was resolved against the launch script when the spec was built; ``launch_dir``
    only serves a relative path assigned to the spec afterwards.
    """
    folder = _existing_folder(_resolve(spec.path, launch_dir), "xm.PythonContainer path")
    base = os.path.basename(folder)
    entries = [(folder, base)] + [(a, f"{base}/{r}") for a, r in _walk(folder, _ignore_patterns(folder))]
    text = python_dockerfile(spec, folder)
    tarball, digest = _write(entries, {GENERATED_DOCKERFILE: text})
    return BuildContext(tarball, GENERATED_DOCKERFILE, text, digest, from_images(text))


def dockerfile_context(spec: Dockerfile, launch_dir: str) -> BuildContext:
    """The context of an ``xm.Dockerfile``: its folder ``spec.path``, with the file ``spec.dockerfile``.

    Both were resolved against the launch script when the spec was built; ``launch_dir`` only
    serves relative paths assigned afterwards, and an emptied ``dockerfile`` means ``<path>/Dockerfile``.
    """
    folder = _existing_folder(_resolve(spec.path, launch_dir), "xm.Dockerfile path")
    dockerfile_path = _resolve(spec.dockerfile, launch_dir) if spec.dockerfile else os.path.join(folder, "Dockerfile")
    if not os.path.isfile(dockerfile_path):
        raise ContextError(f"xm.Dockerfile: no Dockerfile at {dockerfile_path!r}")
    with open(dockerfile_path, encoding="utf-8") as handle:
        text = handle.read()
    entries = list(_walk(folder, _ignore_patterns(folder)))
    relative: Optional[str] = os.path.relpath(dockerfile_path, folder)
    extra: dict[str, str] = {}
    if relative is None or relative.startswith(".."):  # A Dockerfile outside the context travels inside it.
        relative = GENERATED_DOCKERFILE
        extra[GENERATED_DOCKERFILE] = text
    elif all(r != relative for _, r in entries):  # Ignored by .dockerignore: Docker still reads it.
        entries.append((dockerfile_path, relative))
    tarball, digest = _write(entries, extra)
    return BuildContext(tarball, relative, text, digest, from_images(text))
