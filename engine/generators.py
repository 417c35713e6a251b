"""The generators a checkpoint can hold, their sampling settings and the request limits.

Torch-free on purpose: the command line builds its parser and the Blender add-on its panel
from these names and limits without importing torch, and the pipeline checks requests
against the same numbers. Each generator has one typed settings class (the papers'
defaults; a checkpoint may override any of them in its metadata, and a call its guidance
and steps); ``settings_class`` finds it by name, so nothing else branches on the name.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, ClassVar

from .config import Config
from .errors import MotionError

MAX_FRAMES = 196  # HumanML3D's longest clip (9.8 s at 20 fps)
DEFAULT_SECONDS = 4.0
MIN_SECONDS = 1.0  # a clip is at least one second (one fps worth of frames)
MAX_SECONDS = 9.8  # MAX_FRAMES at HumanML3D's 20 fps: the panel's slider limit
MAX_VARIATIONS = 16
MAX_STEPS = 1000
GUIDANCE_RANGE = (1.0, 20.0)
ODE_METHODS = ("euler", "heun")
GUIDANCE_MODES = ("sink_ctrl", "cfg")  # MLA-Gen: sink-aware guidance, or plain CFG


@dataclasses.dataclass
class SamplingSettings(Config):
    """Base of the per-generator settings: ``guidance`` (CFG scale) and ``steps`` (ODE
    steps) are what every generator has and a caller may override per call."""

    generator: ClassVar[str]

    def checked(self) -> SamplingSettings:
        """Self, once guidance and steps are within the request limits."""
        guidance, steps = self.guidance, self.steps  # type: ignore[attr-defined]
        if isinstance(guidance, bool) or not isinstance(guidance, (int, float)):
            raise MotionError(f"guidance must be a number, got {guidance!r}")
        if not (math.isfinite(guidance) and GUIDANCE_RANGE[0] <= guidance <= GUIDANCE_RANGE[1]):
            low, high = GUIDANCE_RANGE
            raise MotionError(f"guidance must be between {low:g} and {high:g}, got {guidance}")
        if isinstance(steps, bool) or not isinstance(steps, int):
            raise MotionError(f"steps must be a whole number, got {steps!r}")
        if not 1 <= steps <= MAX_STEPS:
            raise MotionError(f"steps must be between 1 and {MAX_STEPS}, got {steps}")
        return dataclasses.replace(self, guidance=float(guidance))

    def record(self) -> dict[str, Any]:
        """The settings as plain values (fields left unset, None, are not written)."""
        return {k: v for k, v in self.to_dict().items() if v is not None}


@dataclasses.dataclass
class MoLingoSettings(SamplingSettings):
    """MoLingo's MAR sampling (the paper's settings): ``steps`` flow-head ODE steps per
    revealed token over ``ar_steps`` reveal steps; ``method`` "euler"/"heun" (a converted
    release: its own "stochastic"/"euler"). ``acc``: a converted release's token
    acceleration, recorded with its defaults (its model config already applies it)."""

    generator: ClassVar[str] = "molingo"
    guidance: float = 5.5
    steps: int = 32
    ar_steps: int = 16
    method: str = "euler"
    acc: int | None = None


@dataclasses.dataclass
class MLAGenSettings(SamplingSettings):
    """MLA-Gen's flow sampling (the paper's settings): ``steps`` ODE steps by ``method``
    under ``mode`` guidance ("sink_ctrl" or plain "cfg")."""

    generator: ClassVar[str] = "mlagen"
    guidance: float = 4.0
    steps: int = 100
    mode: str = "sink_ctrl"
    method: str = "euler"


SETTINGS: dict[str, type[SamplingSettings]] = {
    cls.generator: cls for cls in (MoLingoSettings, MLAGenSettings)
}
GENERATORS = tuple(SETTINGS)  # ("molingo", "mlagen"): a checkpoint's default comes first


def settings_class(name: str) -> type[SamplingSettings]:
    """The settings class of generator ``name``."""
    if name not in SETTINGS:
        raise MotionError(f"unknown generator {name!r}; expected one of {GENERATORS}")
    return SETTINGS[name]


def sampling_settings(
    name: str,
    *layers: Mapping[str, Any],
    guidance: float | None = None,
    steps: int | None = None,
    where: str = "sampling settings",
) -> SamplingSettings:
    """Generator ``name``'s defaults overridden by each mapping of ``layers`` in turn, then
    by a call's ``guidance`` and ``steps`` (None: not given); unknown keys or wrong types
    raise ``MotionError`` naming ``where``."""
    merged = settings_class(name)().to_dict()
    for layer in layers:
        merged.update(layer)
    if guidance is not None:
        merged["guidance"] = guidance
    if steps is not None:
        merged["steps"] = steps
    for key in ("guidance", "steps"):  # checked with the request's wording
        merged[key] = _plain(merged.get(key))
    settings = settings_class(name).from_dict(
        {k: v for k, v in merged.items() if k not in ("guidance", "steps")}, where=where
    )
    return dataclasses.replace(settings, guidance=merged["guidance"],
                               steps=merged["steps"]).checked()  # fmt: skip


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers (a script may pass ``np.float32(4.5)``)."""
    item = getattr(value, "item", None)
    return item() if callable(item) and not isinstance(value, (bool, int, float)) else value
