"""Templates for batch (HPC) studies: per-pset input files and per-machine job scripts.

``templates/calc/**`` holds files rendered once per pset; ``templates/machines/<name>/``
holds a ``jobscript`` template and an ``info.yaml`` whose keys (at least ``subcmd``, the
submit command) become attributes of a :class:`Machine`. A template is filled either by
jinja2 (``{{a}}``, a missing key raises ``jinja2.exceptions.UndefinedError``) or by
``string.Template`` (``$a``, a missing key raises ``KeyError``). jinja2 and PyYAML are
imported on first use.
"""

from __future__ import annotations

import os
import string
from functools import cache
from typing import Any

TEMPLATE_MODES = ("jinja", "dollar")
_RESERVED_MACHINE_KEYS = frozenset({"name", "template", "info"})


@cache
def _jinja_env() -> Any:
    import jinja2

    # StrictUndefined: an unfilled placeholder is an error, not an empty string. jinja's default of dropping
    # one trailing newline is kept: psweep renders files that way, and scripts written for it compare them.
    return jinja2.Environment(undefined=jinja2.StrictUndefined)


class FileTemplate:
    """One template file; ``fill(pset)`` returns its text with the pset's values filled in.

    ``targetname`` is the name the rendered file gets: the template's base name plus
    ``target_suffix``, or for calc templates found by :func:`gather_calc_templates` the
    path relative to the template folder.
    """

    def __init__(self, filename: str, target_suffix: str = "", *, targetname: str | None = None) -> None:
        self.filename = filename
        self.basename = os.path.basename(filename)
        self.dirname = os.path.dirname(filename)
        self.targetname = targetname if targetname is not None else self.basename + target_suffix
        self._text: str | None = None
        self._compiled: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"FileTemplate({self.filename!r}, targetname={self.targetname!r})"

    def __getstate__(self) -> dict[str, Any]:
        # Compiled jinja templates do not pickle; drop them (run() may ship a renderer to worker processes).
        state = self.__dict__.copy()
        state["_compiled"] = {}
        return state

    @property
    def text(self) -> str:
        """The template's text, read once."""
        if self._text is None:
            with open(self.filename, encoding="utf-8") as fd:
                self._text = fd.read()
        return self._text

    def _template(self, mode: str) -> Any:
        compiled = self._compiled.get(mode)
        if compiled is None:
            if mode == "jinja":
                compiled = _jinja_env().from_string(self.text)
            elif mode == "dollar":
                compiled = string.Template(self.text)
            else:
                raise ValueError(f"template_mode must be one of {TEMPLATE_MODES}, got {mode!r}")
            self._compiled[mode] = compiled
        return compiled

    def fill(self, pset: dict[str, Any], mode: str = "jinja") -> str:
        """The text with ``pset``'s values filled in; a placeholder the pset lacks is an error."""
        template = self._template(mode)
        if mode == "dollar":
            return template.substitute(pset)
        return template.render(pset)


class Machine:
    """A target machine: its job script template and the settings from its ``info.yaml``.

    ``name`` is the folder's name; the job script renders to ``jobscript_<name>``; every
    key of ``info.yaml`` becomes an attribute, and ``subcmd`` (how a job script is
    submitted there: ``sh``, ``sbatch``, ...) is required.
    """

    def __init__(self, machine_dir: str, jobscript_name: str = "jobscript") -> None:
        self.name = os.path.basename(os.path.normpath(machine_dir))
        jobscript = os.path.join(machine_dir, jobscript_name)
        if not os.path.isfile(jobscript):
            raise FileNotFoundError(f"machine {self.name!r}: no job script template {jobscript}")
        self.template = FileTemplate(jobscript, target_suffix=f"_{self.name}")
        self.info = _read_info(os.path.join(machine_dir, "info.yaml"))
        reserved = sorted(_RESERVED_MACHINE_KEYS.intersection(self.info))
        if reserved:
            raise ValueError(f"{os.path.join(machine_dir, 'info.yaml')}: keys {reserved} are reserved")
        for key, value in self.info.items():
            setattr(self, key, value)
        self.subcmd: str = self.info["subcmd"]

    def __repr__(self) -> str:
        return f"Machine({self.name!r}, subcmd={self.subcmd!r})"


def _read_info(path: str) -> dict[str, Any]:
    """A machine's ``info.yaml`` as a dict with string keys; every problem names the file."""
    import yaml

    if not os.path.isfile(path):
        raise FileNotFoundError(f"no machine info file {path} (a YAML mapping with at least 'subcmd: sh|sbatch|...')")
    try:
        with open(path, encoding="utf-8") as fd:
            info = yaml.safe_load(fd)
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: invalid YAML: {error}") from None
    if not isinstance(info, dict):
        raise ValueError(f"{path}: expected a YAML mapping (e.g. 'subcmd: sbatch'), got {type(info).__name__}")
    bad_keys = [key for key in info if not isinstance(key, str) or not key.isidentifier()]
    if bad_keys:
        raise ValueError(f"{path}: keys must be identifiers, got {bad_keys}")
    subcmd = info.get("subcmd")
    if not isinstance(subcmd, str) or not subcmd.strip():
        raise ValueError(f"{path}: missing 'subcmd' (the command that submits a job script, e.g. 'subcmd: sbatch')")
    return info


def gather_calc_templates(calc_templ_dir: str) -> list[FileTemplate]:
    """A template for every file under ``calc_templ_dir`` (recursively), targets keeping their relative paths."""
    if not os.path.isdir(calc_templ_dir):
        raise FileNotFoundError(f"no calc template folder {calc_templ_dir}")
    templates = []
    for root, dirs, files in os.walk(calc_templ_dir):
        dirs[:] = sorted(name for name in dirs if name != "__pycache__")
        for name in sorted(files):
            path = os.path.join(root, name)
            relative = os.path.relpath(path, calc_templ_dir)
            templates.append(FileTemplate(path, targetname=relative))
    return templates


def gather_machines(machine_templ_dir: str) -> list[Machine]:
    """A :class:`Machine` for every folder in ``machine_templ_dir``, sorted by name."""
    if not os.path.isdir(machine_templ_dir):
        raise FileNotFoundError(f"no machine template folder {machine_templ_dir}")
    return [
        Machine(os.path.join(machine_templ_dir, name))
        for name in sorted(os.listdir(machine_templ_dir))
        if os.path.isdir(os.path.join(machine_templ_dir, name))
    ]


__all__ = ["FileTemplate", "Machine", "gather_calc_templates", "gather_machines"]
