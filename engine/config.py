"""Config dataclasses: one per network, serialised whole into the checkpoint's JSON.

Every model config derives from ``Config`` so that loading, overriding and saving reject
unknown keys and wrong types the same way everywhere (a typo in a checkpoint or on the
command line is an error, not a silently ignored setting).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Self

from .errors import MotionError


@dataclasses.dataclass
class Config:
    """Base of every model and training config.

    A model config's whole-number fields are taken to be sizes or counts, which loading
    bounds by the stored weights' shapes (``checkpoint._check_size_bounds``); a field that
    is neither (a period, a seed) is named in ``not_sizes``.
    """

    not_sizes: typing.ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "config") -> Self:
        """Build from a JSON dict; unknown keys or wrong types raise ``MotionError``."""
        if not isinstance(data, dict):
            kind = type(data).__name__
            raise MotionError(f"{where}: expected an object for {cls.__name__}, got {kind}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise MotionError(f"{where}: unknown {cls.__name__} keys {unknown}")
        hints = typing.get_type_hints(cls)
        values = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
        try:
            return cls(**values)
        except MotionError as error:  # a check in __post_init__: say where the values came from
            raise MotionError(f"{where}: {error}") from error

    def replace(self, **overrides: Any) -> Self:
        """A copy with ``overrides`` applied, checked like ``from_dict``."""
        merged = self.to_dict()
        merged.update(overrides)
        return type(self).from_dict(merged, where=f"{type(self).__name__} override")


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check ``value`` against a type hint; ints are accepted where floats are expected."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _coerce(value, option, where)
            except MotionError:
                continue
        raise MotionError(f"{where}: {value!r} is not {hint}")
    if hint is type(None):
        if value is None:
            return None
        raise MotionError(f"{where}: expected null, got {value!r}")
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if isinstance(value, hint):
            return value
        return hint.from_dict(value, where=where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise MotionError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(hint)
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise MotionError(f"{where}: expected an object, got {type(value).__name__}")
        return value
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool):
        if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
            return value
        raise MotionError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def check_ratio(config: Config, field: str) -> None:
    """Refuse a size ratio (e.g. ``mlp_ratio``) that is not a finite positive number."""
    value = getattr(config, field)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e6:
        name = type(config).__name__
        raise MotionError(f"{name}.{field} must be a positive number below 1e6, got {value!r}")


def check_sizes(
    config: Config,
    positive: tuple[str, ...] = (),
    non_negative: tuple[str, ...] = (),
    divisible: tuple[tuple[str, str], ...] = (),
) -> None:
    """Refuse sizes a network cannot be built with, naming the field.

    ``divisible`` pairs (a, b) require ``a % b == 0`` (e.g. width by heads). Called from
    model configs' ``__post_init__``, so a checkpoint's config.json with heads 0 or width -4
    is one clear error before any module is made. Upper bounds are checked against the
    weights' own shapes when a checkpoint loads (``checkpoint.load_checkpoint``).
    """
    name = type(config).__name__
    for field, low in [(f, 1) for f in positive] + [(f, 0) for f in non_negative]:
        value = getattr(config, field)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            need = "positive" if low else "non-negative"
            raise MotionError(f"{name}.{field} must be a {need} whole number, got {value!r}")
    for a, b in divisible:
        if getattr(config, a) % getattr(config, b):
            raise MotionError(
                f"{name}.{a} ({getattr(config, a)}) must be a multiple of {b} "
                f"({getattr(config, b)})"
            )
