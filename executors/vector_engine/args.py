"""Binding a job's args to a VE kernel's declared parameters (scalars and ``xm.VeBuffer``s).

``xm.VeBuffer`` itself is a spec and lives in :mod:`xmanager.xm.executables`; this module checks a
job's args against a :class:`~xmanager.xm.VeKernel` and converts them for the call.
"""

from __future__ import annotations

from typing import Any

from xmanager.xm.executables import VeBuffer

# ---- binding a job's args to a kernel's parameters -------------------------------------------------
_INT_BITS = {
    "char": (8, True), "short": (16, True), "int": (32, True), "long": (64, True),
    "unsigned char": (8, False), "unsigned short": (16, False), "unsigned int": (32, False),
    "unsigned long": (64, False), "int32_t": (32, True), "int64_t": (64, True),
    "uint32_t": (32, False), "uint64_t": (64, False),
}
_FLOATS = ("float", "double")


class BindingError(ValueError):
    """A job's args do not fit the kernel's declared parameters; the message names the argument."""


def _scalar(kernel: str, name: str, type_text: str, value: Any) -> Any:
    import numbers

    where = f"VeKernel {kernel!r}: argument {name!r} ({type_text})"
    if isinstance(value, VeBuffer):
        raise BindingError(f"{where} is a scalar; got {value!r} (a VeBuffer binds to a pointer parameter)")
    if type_text in _FLOATS:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise BindingError(f"{where} needs a number, got {type(value).__name__} {value!r}")
        return float(value)
    bits, signed = _INT_BITS[type_text]
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise BindingError(f"{where} needs an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not low <= value <= high:
        raise BindingError(f"{where}: {value} is outside the type's range [{low}, {high}]")
    return value


def bind(kernel: str, params: tuple[tuple[str, str], ...], kwargs: dict[str, Any]) -> list[Any]:
    """The job's values in parameter order: scalars converted and range-checked, ``VeBuffer`` for pointers.

    Raises :class:`BindingError` for a missing, unexpected or positional argument, a scalar of
    the wrong kind or out of range, or a pointer not bound to a ``VeBuffer`` (a raw address
    would point outside the memory this unit allocated).
    """
    positional = [key for key in kwargs if key.isdigit()]
    if positional:
        raise BindingError(
            f"VeKernel {kernel!r} binds args by name; got positional args {[kwargs[k] for k in positional]!r}"
        )
    names = [name for name, _ in params]
    missing = [name for name in names if name not in kwargs]
    extra = [key for key in kwargs if key not in names]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing argument{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}")
        if extra:
            parts.append(f"unexpected argument{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))}")
        signature = ", ".join(f"{name}: {type_text}" for name, type_text in params)
        raise BindingError(f"VeKernel {kernel!r}({signature}): {'; '.join(parts)}")
    values: list[Any] = []
    for name, type_text in params:
        value = kwargs[name]
        if type_text.endswith("*"):
            if not isinstance(value, VeBuffer):
                raise BindingError(
                    f"VeKernel {kernel!r}: argument {name!r} ({type_text}) is a pointer; bind an xm.VeBuffer, "
                    f"not {type(value).__name__} (a raw address is not inside memory allocated for the unit)"
                )
            values.append(value)
        else:
            values.append(_scalar(kernel, name, type_text, value))
    return values
