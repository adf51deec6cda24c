"""psweep-compatible parameter studies: ``from xmanager.xm_local import sweep as ps``.

Every name psweep 0.16 documents is here with the same keywords and observable
contracts (``run``, the ``df_*`` helpers, ``prep_batch``, the git helpers, ...), plus
``run_local`` (the name psweep's README uses). Differences, all additive: completed
psets survive a killed run, failed psets can be recorded (``on_error="record"``),
extending a study costs time linear in the new psets, and every saved run is an
experiment in the metadata store. See ``docs/sweeps.md``.

Names resolve lazily so that ``import`` stays cheap: pandas, numpy and jinja2 load
on first use, not here.
"""

from __future__ import annotations

import importlib
from typing import Any

#: The psweep API level this layer implements (psweep's own ``__version__`` string), not our package's version.
__version__ = "0.16.0"

CALC_DIR = "calc"
DATABASE_BASENAME = "database.pk"
PSET_HASH_ALG = "sha1"
PANDAS_DEFAULT_ORIENT = "records"
PANDAS_TIME_UNIT = "s"
GIT_ADD_ALL = "git add -A -v"

_PSETS = "xmanager.xm.psets"
_NAMES: dict[str, str] = {
    # Grids and hashes (pure, shared with launch scripts).
    **dict.fromkeys(
        (
            "plist", "pgrid", "stargrid", "itr2params", "merge_dicts", "filter_params_unique",
            "filter_params_dup_hash", "intspace", "logspace", "itr", "flatten", "flatten_dict",
            "is_seq", "pset_hash",
        ),
        _PSETS,
    ),
    # Running.
    **dict.fromkeys(
        ("run", "run_local", "func_wrapper", "capture_logs_wrapper", "wait_recorded"), "xmanager.xm_local.sweep.runner"
    ),
    # The database as a DataFrame.
    **dict.fromkeys(
        (
            "df_read", "df_write", "df_to_json", "df_print", "df_filter_conds", "df_extract_dicts",
            "df_extract_params", "df_extract_row", "df_extract_pset", "df_ensure_dtypes",
            "df_update_pset_hash", "df_update_pset_cols", "filter_cols", "check_calc_dir",
        ),
        "xmanager.xm_local.sweep.database",
    ),
    # Small file and process helpers.
    **dict.fromkeys(
        (
            "system", "makedirs", "fullpath", "file_read", "file_write", "pickle_read", "pickle_write",
            "json_read", "json_write", "get_uuid", "get_many_uuids",
        ),
        "xmanager.xm_local.sweep.files",
    ),
    **dict.fromkeys(("git_clean", "in_git_repo", "git_enter", "git_exit"), "xmanager.xm_local.sweep.gitops"),
    **dict.fromkeys(
        ("FileTemplate", "Machine", "gather_calc_templates", "gather_machines"), "xmanager.xm_local.sweep.templates"
    ),
    "prep_batch": "xmanager.xm_local.sweep.batch",
}
_ALIASES = {"PsweepHashError": (_PSETS, "PsetHashError")}


def __getattr__(name: str) -> Any:
    if name == "FILL_VALUE":
        import pandas as pd

        value: Any = pd.NA
    elif name in _ALIASES:
        module, attribute = _ALIASES[name]
        value = getattr(importlib.import_module(module), attribute)
    elif name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_NAMES, *_ALIASES, "FILL_VALUE"])


__all__ = sorted([
    *_NAMES, *_ALIASES, "FILL_VALUE", "CALC_DIR", "DATABASE_BASENAME", "PSET_HASH_ALG", "PANDAS_DEFAULT_ORIENT",
    "PANDAS_TIME_UNIT", "GIT_ADD_ALL",
])
