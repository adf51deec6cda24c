"""``prep_batch``: a sweep whose psets run later as batch jobs (psweep's HPC template workflow).

Instead of calling a Python function per pset, ``prep_batch`` renders the templates in
``templates/calc`` and each machine's job script into ``<calc_dir>/<pset_id>/``, records
the psets with ``run`` (same database, ids, ``skip_dups``, ``backup``, ...), and writes
``<calc_dir>/run_<machine>.sh``, which submits the new psets' job scripts (earlier runs'
lines are kept, commented out). Copy ``calc/`` to the machine (``xmanager sweep push``),
run the script there, copy the results back (``xmanager sweep pull``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from xmanager.xm_local.sweep.files import file_write, pickle_write
from xmanager.xm_local.sweep.gitops import git_enter, git_exit
from xmanager.xm_local.sweep.templates import (
    TEMPLATE_MODES,
    FileTemplate,
    Machine,
    gather_calc_templates,
    gather_machines,
)

if TYPE_CHECKING:
    import pandas as pd

PSET_FILE = "pset.pk"
_CALC_DIR = "calc"
_DATABASE_BASENAME = "database.pk"
# Columns run() adds after the function returns; a pset rendered after the fact leaves them out.
_AFTER_FUNC_COLUMNS = frozenset({"_pset_runtime", "_logs", "_failed", "_exc_txt"})


class _Renderer:
    """The per-pset function ``run`` calls: render every template into ``<_calc_dir>/<_pset_id>/``.

    A class rather than a closure so it pickles for ``poolsize``/``dask_client`` workers.
    """

    def __init__(
        self, calc_templates: Sequence[FileTemplate], machines: Sequence[Machine], mode: str, write_pset: bool
    ) -> None:
        self.templates = [*calc_templates, *(machine.template for machine in machines)]
        self.mode = mode
        self.write_pset = write_pset

    def __call__(self, pset: dict[str, Any]) -> dict[str, Any]:
        folder = os.path.join(str(pset["_calc_dir"]), str(pset["_pset_id"]))
        for template in self.templates:
            try:
                text = template.fill(pset, mode=self.mode)
            except Exception as error:
                error.add_note(f"while filling {template.filename} for pset {pset['_pset_id']}")
                raise
            file_write(os.path.join(folder, template.targetname), text)
        if self.write_pset:
            pickle_write(os.path.join(folder, PSET_FILE), pset)
        return {}


def _nothing(pset: dict[str, Any]) -> dict[str, Any]:
    """The function for a simulated run, which never calls it; rendering happens afterwards."""
    return {}


def _check_targets(calc_templates: Sequence[FileTemplate], machines: Sequence[Machine], write_pset: bool) -> None:
    """Fail before any run if two templates (or a template and ``pset.pk``) would write the same file."""
    owners: dict[str, str] = {}
    if write_pset:
        owners[PSET_FILE] = "write_pset=True"
    for template in [*calc_templates, *(machine.template for machine in machines)]:
        target = os.path.normpath(template.targetname)
        if target in owners:
            raise ValueError(f"{template.filename} and {owners[target]} would both write <pset dir>/{target}")
        owners[target] = template.filename


def _old_pset_ids(run_kwds: dict[str, Any], calc_dir: str) -> set[Any]:
    """The pset ids that exist before this run: they are not rendered again and get commented-out lines."""
    df = run_kwds.get("df")
    if df is None:
        path = os.path.join(calc_dir, run_kwds.get("database_basename", _DATABASE_BASENAME))
        if not os.path.exists(path):
            return set()
        from xmanager.xm_local.sweep.database import df_read

        df = df_read(path)
    if len(df) == 0 or "_pset_id" not in df.columns:
        return set()
    return set(df["_pset_id"].tolist())


def _run_script(machine: Machine, rows: Sequence[tuple[Any, Any, Any, bool]]) -> str:
    """``run_<machine>.sh``: one submit line per pset in ``_pset_seq`` order, old ones commented out."""
    lines = ["#!/bin/sh", "here=$(readlink -f $(dirname $0))"]
    for pset_id, run_seq, pset_seq, is_new in rows:
        line = f"cd $here/{pset_id}; {machine.subcmd} {machine.template.targetname}  # run_seq={run_seq} pset_seq={pset_seq}"
        lines.append(line if is_new else f"# {line}")
    return "\n".join(lines) + "\n"


def prep_batch(
    params: Sequence[dict[str, Any]],
    *,
    calc_templ_dir: str = "templates/calc",
    machine_templ_dir: str = "templates/machines",
    git: bool = False,
    write_pset: bool = False,
    template_mode: str = "jinja",
    **run_kwds: Any,
) -> pd.DataFrame:
    """Render per-pset input files and job scripts, record the psets, write ``run_<machine>.sh``; return the database.

    ``run_kwds`` go to :func:`run` (``calc_dir``, ``skip_dups``, ``simulate``, ``backup``,
    ...). With ``simulate=True`` everything goes to ``<calc_dir>.simulate/`` and only the
    new psets' folders are rendered there. ``git=True`` requires a clean git tree before
    and commits the result after. ``write_pset=True`` also pickles each pset to
    ``<pset dir>/pset.pk``. Templates use jinja2 (``{{a}}``) or, with
    ``template_mode="dollar"``, ``string.Template`` (``$a``, a literal ``$`` is ``$$``).
    """
    from xmanager.xm_local.sweep.runner import ROW_SINK, run

    if template_mode not in TEMPLATE_MODES:
        raise ValueError(f"template_mode must be one of {TEMPLATE_MODES}, got {template_mode!r}")
    if "func" in run_kwds:
        raise TypeError("prep_batch() builds the function it passes to run(); do not pass 'func'")
    calc_templates = gather_calc_templates(calc_templ_dir)
    machines = gather_machines(machine_templ_dir)
    _check_targets(calc_templates, machines, write_pset)
    renderer = _Renderer(calc_templates, machines, template_mode, write_pset)
    calc_dir = run_kwds.get("calc_dir", _CALC_DIR)
    simulate = bool(run_kwds.get("simulate", False))

    git_enter(git)
    old_ids = _old_pset_ids(run_kwds, calc_dir)
    ran: list[dict[str, Any]] = []
    token = ROW_SINK.set(ran)
    try:
        df = run(_nothing if simulate else renderer, params, git=False, **run_kwds)
    finally:
        ROW_SINK.reset(token)

    if len(df):
        ordered = df.sort_values("_pset_seq", kind="stable") if not df["_pset_seq"].is_monotonic_increasing else df
        pset_ids = ordered["_pset_id"].tolist()
        is_new = [pset_id not in old_ids for pset_id in pset_ids]
        rows = list(zip(pset_ids, ordered["_run_seq"].tolist(), ordered["_pset_seq"].tolist(), is_new))
    else:
        ordered, is_new, rows = df, [], []
    if simulate:
        # run() does not call the function when simulating; render the new psets into the simulate folder
        # here, each as the function would have got it (before the database's own round trip).
        for pset in ran:
            renderer({key: value for key, value in pset.items() if key not in _AFTER_FUNC_COLUMNS})
    out_dir = f"{calc_dir}.simulate" if simulate else calc_dir  # where run() put the simulated study
    for machine in machines:
        path = os.path.join(out_dir, f"run_{machine.name}.sh")
        file_write(path, _run_script(machine, rows))
        os.chmod(path, 0o755)
    git_exit(git, df)
    return df


__all__ = ["prep_batch"]
