"""Samplers: where a search's next parameter sets come from.

A sampler is bound to a space and a mode once, then asked for trial ``n``'s parameters and told
each trial's outcome. The search re-creates its state after a restart by telling it every trial the
store holds (in trial order) before it asks again, so a sampler needs no storage of its own.

- :class:`RandomSampler` and :class:`SobolSampler` are ours: trial ``n``'s point depends only on the
  seed and ``n``, so a resumed search asks for the same points a first run would have.
- :class:`OptunaSampler` drives any Optuna sampler (TPE, CMA-ES, GP, ...) through Optuna's
  ask-and-tell interface on an in-memory study; the store stays the record.
- :class:`GridSampler` walks a psweep grid (``xm.pgrid(...)``) in order; the search uses it when
  its space is a grid.
"""

from __future__ import annotations

import abc
import math
import random
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from xmanager.xm.search.space import Choice, Conditional, LogUniform, RandInt, Space, Uniform
from xmanager.xm.search.trials import Trial, TrialState


class Sampler(abc.ABC):
    """Suggests parameter sets; told how trials ended."""

    space: Optional[Space] = None
    mode: str = "min"

    def bind(self, space: Optional[Space], mode: str) -> None:
        """The space (None for a grid) and direction of the search; called once before :meth:`ask`."""
        self.space, self.mode = space, mode

    @abc.abstractmethod
    def ask(self, number: int) -> dict[str, Any]:
        """The parameters of trial ``number``."""

    def tell(self, trial: Trial) -> None:
        """A trial ended (completed, pruned or failed), in this run or before a restart."""
        del trial


class _PointSampler(Sampler):
    """Samplers that map a point of the unit cube to parameters."""

    def __init__(self, seed: Optional[int] = None) -> None:
        self.seed = secrets.randbits(63) if seed is None else seed

    def ask(self, number: int) -> dict[str, Any]:
        if self.space is None:
            raise RuntimeError(f"{type(self).__name__} is not bound to a space")
        return self.space.params(self._point(number, len(self.space.dimensions)))

    @abc.abstractmethod
    def _point(self, number: int, dimensions: int) -> Sequence[float]:
        ...


class RandomSampler(_PointSampler):
    """Independent uniform draws; trial ``n``'s parameters depend on ``seed`` and ``n`` only."""

    def _point(self, number: int, dimensions: int) -> Sequence[float]:
        rng = random.Random(f"{self.seed}:{number}")
        return [rng.random() for _ in range(dimensions)]

    def __repr__(self) -> str:
        return f"RandomSampler(seed={self.seed})"


class SobolSampler(_PointSampler):
    """A scrambled Sobol sequence (scipy's ``qmc.Sobol``): trial ``n`` takes its ``n``-th point, so the
    first 2^k trials cover the space more evenly than random draws."""

    def __init__(self, seed: Optional[int] = None, scramble: bool = True) -> None:
        super().__init__(seed)
        self.scramble = scramble
        self._engine: Any = None
        self._next = 0

    def _point(self, number: int, dimensions: int) -> Sequence[float]:
        if dimensions == 0:
            return []
        if self._engine is None or number < self._next:
            from scipy.stats import qmc

            self._engine, self._next = qmc.Sobol(dimensions, scramble=self.scramble, seed=self.seed), 0
        if number > self._next:
            self._engine.fast_forward(number - self._next)
        self._next = number + 1
        return [float(u) for u in self._engine.random(1)[0]]

    def __repr__(self) -> str:
        return f"SobolSampler(seed={self.seed})"


class GridSampler(Sampler):
    """The parameter sets of a grid, in order (trial ``n`` runs ``psets[n]``)."""

    def __init__(self, psets: Sequence[Mapping[str, Any]]) -> None:
        self.psets = [dict(pset) for pset in psets]

    def ask(self, number: int) -> dict[str, Any]:
        return dict(self.psets[number])


class OptunaSampler(Sampler):
    """An Optuna sampler (``optuna.samplers.TPESampler(seed=0)``, ``CmaEsSampler``, ...) driven through
    Optuna's ask-and-tell interface on an in-memory study; needs the ``search`` extra (optuna).

    :attr:`study` is that Optuna study: its ``trials`` are the sampler's history (trials restored from
    the store after a restart included)."""

    def __init__(self, sampler: Any = None) -> None:
        try:
            import optuna
        except ImportError:
            raise ImportError(
                "xm.search.OptunaSampler needs optuna: pip install 'xmanager-launcher[search]'"
            ) from None
        self.sampler = sampler if sampler is not None else optuna.samplers.TPESampler()
        self.study: Any = None
        self._asked: dict[int, Any] = {}

    def bind(self, space: Optional[Space], mode: str) -> None:
        import optuna

        if space is None:
            raise TypeError("xm.search.OptunaSampler samples a space of domains, not a grid of psets")
        super().bind(space, mode)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        direction = optuna.study.StudyDirection.MINIMIZE if mode == "min" else optuna.study.StudyDirection.MAXIMIZE
        self.study = optuna.create_study(direction=direction, sampler=self.sampler)

    def ask(self, number: int) -> dict[str, Any]:
        assert self.space is not None and self.study is not None, "bind() first"
        trial = self.study.ask()
        self._asked[number] = trial
        return _suggest(trial, self.space, "")

    def tell(self, trial: Trial) -> None:
        import optuna

        state = {TrialState.COMPLETED: optuna.trial.TrialState.COMPLETE,
                 TrialState.PRUNED: optuna.trial.TrialState.PRUNED}.get(trial.state, optuna.trial.TrialState.FAIL)
        reports = {step: value for step, value in trial.reports if not math.isnan(value)}
        asked = self._asked.pop(trial.number, None)
        if asked is not None:
            for step, value in reports.items():
                asked.report(value, step)
            if state is optuna.trial.TrialState.COMPLETE:
                self.study.tell(asked, trial.value)
            else:
                self.study.tell(asked, state=state)
            return
        # A trial of an earlier run of the search (read from the store): added to the history as it ended.
        assert self.space is not None
        params, distributions = _optuna_params(self.space, trial.params, "")
        self.study.add_trial(optuna.trial.create_trial(
            params=params, distributions=distributions, state=state, intermediate_values=reports,
            value=trial.value if state is optuna.trial.TrialState.COMPLETE else None,
        ))

    def __repr__(self) -> str:
        return f"OptunaSampler({type(self.sampler).__name__})"


def _categories(options: Sequence[Any]) -> tuple[list[Any], bool]:
    """Optuna's categories for ``options``: the values when they are plain, else their indices."""
    plain = all(option is None or isinstance(option, (bool, int, float, str)) for option in options)
    return (list(options), True) if plain else (list(range(len(options))), False)


def _distribution(domain: Any) -> Any:
    import optuna

    if isinstance(domain, (Uniform, LogUniform)):
        return optuna.distributions.FloatDistribution(domain.lo, domain.hi, log=isinstance(domain, LogUniform))
    if isinstance(domain, RandInt):
        return optuna.distributions.IntDistribution(domain.lo, domain.hi)
    return optuna.distributions.CategoricalDistribution(_categories(domain.options)[0])


def _suggest(trial: Any, space: Space, prefix: str) -> dict[str, Any]:
    params = dict(space.constants)
    for name, domain in space.domains.items():
        key = f"{prefix}{name}"
        if isinstance(domain, (Uniform, LogUniform)):
            internal = trial.suggest_float(key, domain.lo, domain.hi, log=isinstance(domain, LogUniform))
        elif isinstance(domain, RandInt):
            internal = trial.suggest_int(key, domain.lo, domain.hi)
        else:
            internal = trial.suggest_categorical(key, _categories(domain.options)[0])
        if isinstance(domain, (Choice, Conditional)):
            value = internal if _categories(domain.options)[1] else domain.options[internal]
        else:
            value = internal
        params[name] = value
        if isinstance(domain, Conditional):
            params.update(_suggest(trial, domain.branch(value), f"{key}={value}."))
    return params


def _optuna_params(space: Space, params: Mapping[str, Any], prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A stored trial's parameters as Optuna's (internal values by dimension path) with their distributions."""
    values: dict[str, Any] = {}
    distributions: dict[str, Any] = {}
    for name, domain in space.domains.items():
        if name not in params:
            continue
        key, value = f"{prefix}{name}", params[name]
        if isinstance(domain, (Choice, Conditional)) and not _categories(domain.options)[1]:
            if value not in domain.options:
                continue
            value = domain.options.index(value)
        values[key], distributions[key] = value, _distribution(domain)
        if isinstance(domain, Conditional) and params[name] in domain.options:
            sub_values, sub_distributions = _optuna_params(domain.branch(params[name]), params,
                                                           f"{key}={params[name]}.")
            values.update(sub_values)
            distributions.update(sub_distributions)
    return values, distributions
