"""Whether an SMPL body can be fitted now: the preferences' SMPL settings, whether
``smplx`` is installed and the model file found, and what to do about what is missing.

Read by the preferences (their status lines) and by the Fit Body operator (its checks), so
it lives apart from both; it never imports smplx or torch.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import bpy

from ..engine.body.smpl_body import find_model_file, smplx_installed
from ..engine.errors import MotionError
from . import deps

SMPLX_MISSING = (
    "SMPL bodies need the optional package smplx (non-commercial licence, not shipped with "
    "Kinetext): pip install smplx into Blender's Python, or into the folder set as "
    "'Existing site-packages' in Preferences > Add-ons > Kinetext"
)
NO_MODEL = (
    "No {stem} model file{where}: set 'SMPL model folder' in Preferences > Add-ons > Kinetext "
    "to the folder of your own SMPL / SMPL-X download"
)


@dataclasses.dataclass
class BodyStatus:
    """Whether a body can be fitted now, read from the preferences without importing smplx."""

    model_type: str  # "smpl" | "smplx"
    gender: str  # "neutral" | "female" | "male"
    folder: str
    correctives: bool
    smplx: bool
    model_file: Path | None
    problem: str | None  # why not, with the fix; None when ready

    @property
    def ready(self) -> bool:
        return self.problem is None

    def lines(self) -> list[tuple[str, bool]]:
        """Two status lines (text, ok) for the preferences."""
        smplx = "smplx: installed" if self.smplx else "smplx: not installed (pip install smplx)"
        found = f"Model file: {self.model_file}" if self.model_file else "Model file: not found"
        return [(smplx, self.smplx), (found, self.model_file is not None)]


def body_status(prefs: Any) -> BodyStatus:
    """The SMPL settings of the add-on's preferences (None: unregistered, the defaults),
    and what is missing for them."""
    model, gender, folder, correctives = "smpl", "neutral", "", True
    if prefs is not None:
        model, gender = prefs.smpl_model.lower(), prefs.smpl_gender.lower()
        folder = bpy.path.abspath(prefs.smpl_folder).strip() if prefs.smpl_folder.strip() else ""
        correctives = prefs.smpl_correctives
    try:
        model_file = find_model_file(folder, model, gender) if folder else None
    except MotionError:
        model_file = None
    installed, problem = smplx_installed(), None
    if not installed:
        problem = SMPLX_MISSING
    elif model_file is None:
        where = f" in {folder}" if folder else ""
        problem = NO_MODEL.format(stem=f"{model.upper()}_{gender.upper()}", where=where)
    elif deps.missing():
        problem = deps.missing_message(deps.missing())
    return BodyStatus(model, gender, folder, correctives, installed, model_file, problem)
