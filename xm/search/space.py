"""Search spaces: a dict of parameter name to domain, checked once, sampled from the unit cube.

Domains: :func:`uniform`, :func:`loguniform`, :func:`randint` (both ends included), :func:`choice`,
and :func:`conditional` (a choice whose options bring parameters of their own). A plain list is a
choice; a psweep ``plist`` (``xm.plist("lr", [...])``: one-key dicts of that name) is a choice of its
values; any other value (a number, a string) is a constant passed to every trial.

Each domain maps a point of ``[0, 1)`` to a value, so random and quasi-random samplers share one
code path: a space has a fixed list of dimensions (conditional branches included, in order) and a
point of the unit cube gives one parameter set, with only the chosen branches' parameters in it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Union

import attrs


class SpaceError(ValueError):
    """A search space that cannot be sampled; the message names the parameter."""


@attrs.frozen
class Uniform:
    """Floats spread evenly over ``[lo, hi]``."""

    lo: float
    hi: float

    def value(self, u: float) -> float:
        return self.lo + (self.hi - self.lo) * u


@attrs.frozen
class LogUniform:
    """Floats whose logarithm is uniform over ``[log lo, log hi]`` (learning rates, regularisation)."""

    lo: float
    hi: float

    def value(self, u: float) -> float:
        return math.exp(math.log(self.lo) + (math.log(self.hi) - math.log(self.lo)) * u)


@attrs.frozen
class RandInt:
    """Integers from ``lo`` to ``hi``, both included."""

    lo: int
    hi: int

    def value(self, u: float) -> int:
        return min(self.hi, self.lo + int(u * (self.hi - self.lo + 1)))


@attrs.frozen
class Choice:
    """One of ``options`` (any JSON values), each equally likely."""

    options: tuple[Any, ...]

    def value(self, u: float) -> Any:
        return self.options[min(len(self.options) - 1, int(u * len(self.options)))]


@attrs.frozen
class Conditional:
    """A choice among ``branches``: the parameter takes a branch's key, and that branch's own parameters
    join the set (the other branches' do not)."""

    branches: tuple[tuple[Any, Space], ...]

    @property
    def options(self) -> tuple[Any, ...]:
        return tuple(key for key, _ in self.branches)

    def value(self, u: float) -> Any:
        return Choice(self.options).value(u)

    def branch(self, key: Any) -> Space:
        return dict(self.branches)[key]


Domain = Union[Uniform, LogUniform, RandInt, Choice, Conditional]


def uniform(lo: float, hi: float) -> Uniform:
    """A float between ``lo`` and ``hi``."""
    return Uniform(lo, hi)


def loguniform(lo: float, hi: float) -> LogUniform:
    """A float between ``lo`` and ``hi`` (both > 0), uniform on a log scale."""
    return LogUniform(lo, hi)


def randint(lo: int, hi: int) -> RandInt:
    """An integer from ``lo`` to ``hi``, both included."""
    return RandInt(lo, hi)


def choice(options: Sequence[Any]) -> Choice:
    """One of ``options``."""
    if isinstance(options, (str, bytes)) or not isinstance(options, Sequence):
        return Choice(options)  # type: ignore[arg-type]  # Refused with the parameter's name by Space.
    return Choice(tuple(options))


def conditional(branches: Mapping[Any, Mapping[str, Any]]) -> Conditional:
    """A choice of ``branches``' keys; the chosen key's space (a dict of name to domain) is sampled too,
    e.g. ``conditional({"svm": {"C": loguniform(1e-3, 1e3)}, "knn": {"k": randint(1, 30)}})``."""
    if not isinstance(branches, Mapping):
        return Conditional(branches)  # Refused with the parameter's name by Space.
    return Conditional(tuple((key, _Unchecked(value)) for key, value in branches.items()))  # type: ignore[misc]


@attrs.frozen
class _Unchecked:
    """A branch's space as given, checked with the whole space (so errors name the full path)."""

    given: Any


@attrs.frozen
class Dimension:
    """One axis of a space's unit cube: the parameter (a dotted path through conditional branches)."""

    path: str
    name: str
    domain: Domain


class Space:
    """A checked search space; ``Space(mapping)`` raises :class:`SpaceError` naming the bad parameter."""

    def __init__(self, given: Any, _path: str = "") -> None:
        if isinstance(given, Space):
            given = dict(given.given)
        if not isinstance(given, Mapping):
            raise SpaceError(f"search space{_where(_path)} must be a dict of parameter name to domain, "
                             f"got {type(given).__name__}")
        if not given and not _path:
            raise SpaceError("search space is empty: give at least one parameter")
        self.given: dict[str, Any] = dict(given)
        self.domains: dict[str, Domain] = {}
        self.constants: dict[str, Any] = {}
        for name, value in given.items():
            if not isinstance(name, str) or not name:
                raise SpaceError(f"search space{_where(_path)}: parameter names are non-empty strings, got {name!r}")
            path = f"{_path}{name}"
            domain = _domain(path, name, value)
            if domain is None:
                self.constants[name] = value
            else:
                self.domains[name] = domain
        self.dimensions: tuple[Dimension, ...] = tuple(self._dimensions())

    def _dimensions(self) -> Iterator[Dimension]:
        for name, domain in self.domains.items():
            yield Dimension(name, name, domain)
            if isinstance(domain, Conditional):
                for key, branch in domain.branches:
                    for dimension in branch.dimensions:
                        yield attrs.evolve(dimension, path=f"{name}={key}.{dimension.path}")

    def names(self) -> set[str]:
        """Every parameter a trial may have (all branches')."""
        names = set(self.constants) | set(self.domains)
        for domain in self.domains.values():
            if isinstance(domain, Conditional):
                for _, branch in domain.branches:
                    names |= branch.names()
        return names

    def params(self, point: Sequence[float]) -> dict[str, Any]:
        """The parameter set at ``point`` (one coordinate in ``[0, 1)`` per dimension, in order)."""
        values = dict(zip((dimension.path for dimension in self.dimensions), point))
        return self._params(values, "")

    def _params(self, values: Mapping[str, float], prefix: str) -> dict[str, Any]:
        params = dict(self.constants)
        for name, domain in self.domains.items():
            value = domain.value(values[f"{prefix}{name}"])
            params[name] = value
            if isinstance(domain, Conditional):
                params.update(domain.branch(value)._params(values, f"{prefix}{name}={value}."))
        return params

    def __repr__(self) -> str:
        return f"Space({self.given!r})"


def _where(path: str) -> str:
    return f" {path.rstrip('.')!r}" if path else ""


def _number(path: str, what: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpaceError(f"search space {path!r}: {what} must be a finite number, got {value!r}")
    return float(value)


def _domain(path: str, name: str, value: Any) -> Domain | None:
    """The checked domain for ``value``, or None for a constant."""
    if isinstance(value, (Uniform, LogUniform)):
        kind = "uniform" if isinstance(value, Uniform) else "loguniform"
        lo, hi = _number(path, f"{kind}'s lo", value.lo), _number(path, f"{kind}'s hi", value.hi)
        if not lo < hi:
            raise SpaceError(f"search space {path!r}: {kind}({value.lo!r}, {value.hi!r}) needs lo < hi")
        if kind == "loguniform" and lo <= 0:
            raise SpaceError(f"search space {path!r}: loguniform({value.lo!r}, {value.hi!r}) needs lo > 0")
        return type(value)(lo, hi)
    if isinstance(value, RandInt):
        for what, end in (("lo", value.lo), ("hi", value.hi)):
            if isinstance(end, bool) or not isinstance(end, int):
                raise SpaceError(f"search space {path!r}: randint's {what} must be an integer, got {end!r}")
        if value.lo > value.hi:
            raise SpaceError(f"search space {path!r}: randint({value.lo}, {value.hi}) needs lo <= hi")
        return value
    if isinstance(value, Choice):
        if not isinstance(value.options, tuple):
            raise SpaceError(f"search space {path!r}: choice takes a list of options, got "
                             f"{type(value.options).__name__}")
        return _choice(path, value.options)
    if isinstance(value, Conditional):
        if not isinstance(value.branches, tuple):
            raise SpaceError(f"search space {path!r}: conditional takes a dict of option to its space, got "
                             f"{type(value.branches).__name__}")
        if not value.branches:
            raise SpaceError(f"search space {path!r}: conditional needs at least one option")
        branches = []
        for key, branch in value.branches:
            given = branch.given if isinstance(branch, _Unchecked) else branch
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise SpaceError(f"search space {path!r}: conditional's options are plain values, got {key!r}")
            sub = Space(given, f"{path}={key}.")
            clash = sub.names() & {name}
            if clash:
                raise SpaceError(f"search space {path!r}: option {key!r} defines {name!r} again")
            branches.append((key, sub))
        return Conditional(tuple(branches))
    if isinstance(value, list):
        if value and all(isinstance(item, Mapping) for item in value):  # A psweep plist: [{"lr": 0.1}, ...].
            keys = {key for item in value for key in item}
            if keys != {name} or any(len(item) != 1 for item in value):
                raise SpaceError(
                    f"search space {path!r}: a plist here holds only {name!r} (xm.plist({name!r}, [...])), "
                    f"got keys {sorted(map(str, keys))}"
                )
            return _choice(path, tuple(item[name] for item in value))
        return _choice(path, tuple(value))
    if isinstance(value, (dict, set, tuple)) or callable(value):
        raise SpaceError(
            f"search space {path!r}: {type(value).__name__} is not a domain (use xm.search.uniform, "
            "loguniform, randint, choice, conditional, a list of values, or a constant)"
        )
    return None


def _choice(path: str, options: tuple[Any, ...]) -> Choice:
    if not options:
        raise SpaceError(f"search space {path!r}: choice needs at least one option")
    return Choice(options)


def grid(psets: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A psweep grid (``xm.pgrid(...)``: a list of parameter dicts) checked as a search's trials, in order."""
    trials = []
    for index, pset in enumerate(psets):
        if not isinstance(pset, Mapping):
            raise SpaceError(f"search grid[{index}] must be a dict of parameters, got {type(pset).__name__}")
        trials.append(dict(pset))
    if not trials:
        raise SpaceError("search grid is empty: give at least one parameter set")
    return trials
