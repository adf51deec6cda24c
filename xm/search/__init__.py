"""Adaptive studies: search spaces, samplers and pruners for ``experiment.add_search``.

``from xmanager import xm`` then ``xm.search.uniform(1e-4, 1e-1)``, ``xm.search.RandomSampler(seed=0)``,
``xm.search.ASHAPruner()``, ... (``docs/search.md``). Pure: no I/O and no executor; the loop that
launches trials as work units is ``xmanager.xm_local.search``. Optuna is imported only by
:class:`OptunaSampler`, scipy only by :class:`SobolSampler`.
"""

from xmanager.xm.search.pruners import ASHAPruner, MedianPruner, Pruner
from xmanager.xm.search.samplers import GridSampler, OptunaSampler, RandomSampler, Sampler, SobolSampler
from xmanager.xm.search.space import (
    Choice,
    Conditional,
    LogUniform,
    RandInt,
    Space,
    SpaceError,
    Uniform,
    choice,
    conditional,
    loguniform,
    randint,
    uniform,
)
from xmanager.xm.search.study import Study
from xmanager.xm.search.trials import ObjectiveError, Trial, TrialState

__all__ = [
    "ASHAPruner", "Choice", "Conditional", "GridSampler", "LogUniform", "MedianPruner", "ObjectiveError",
    "OptunaSampler", "Pruner", "RandInt", "RandomSampler", "Sampler", "SobolSampler", "Space", "SpaceError",
    "Study", "Trial", "TrialState", "Uniform", "choice", "conditional", "loguniform", "randint", "uniform",
]
