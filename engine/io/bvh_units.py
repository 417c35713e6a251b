"""The length unit of a BVH file: named by the user, or told from the skeleton's size.

BVH has no unit field. Files come in metres (Blender, our ``canonical_bvh``), centimetres
(Bandai Namco, most DCC exports, ``joints2bvh --scale 100``), millimetres (some mocap
systems) or inches, while everything downstream of the joint maps works in metres. A human
skeleton's rest pose is between half a metre (a child, a stylised character) and two and a
half metres high whatever the file's unit, and metres, centimetres and millimetres are a
factor of ten apart, so its height in file units names the unit without ambiguity. Inches
(2.54 cm) would overlap centimetres, so they are only used when asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import MotionError
from ..motion.rig_pose import forward_kinematics
from .bvh import BVH

UNITS_TO_METRES = {"m": 1.0, "cm": 0.01, "mm": 0.001, "in": 0.0254}
"""Metres per file unit for each unit name ``--units`` accepts."""
UNIT_NAMES = {"m": "metres", "cm": "centimetres", "mm": "millimetres", "in": "inches"}
AUTO_UNITS = ("m", "cm", "mm")
"""The units detection chooses between (a factor of ten apart, so never ambiguous)."""
HUMAN_HEIGHT_M = (0.5, 2.5)
"""Rest skeleton heights (metres, joints and End Sites) detection accepts as human."""
UNITS_HINT = "m, cm, mm, in or metres per file unit, e.g. 0.01"

UNITS_RANGE = (1e-6, 1e6)
"""Metres per file unit a number may give: micrometres to thousands of kilometres."""

Units = str | float
""""auto", a key of UNITS_TO_METRES, or a positive number of metres per file unit."""


@dataclass(frozen=True)
class FileUnits:
    """What the file's lengths are multiplied by to give metres, and how that was decided.

    name: a key of UNITS_TO_METRES, or "" for a number given by the user; height: the rest
    skeleton's size in file units (what detection measured); detected: True when chosen by
    size rather than named by the user.
    """

    to_metres: float
    name: str
    height: float
    detected: bool

    def describe(self) -> str:
        """One line for the user, e.g. "centimetres (skeleton 147 units high = 1.47 m)"."""
        unit = UNIT_NAMES.get(self.name, f"{self.to_metres:g} m per unit")
        how = "detected" if self.detected else "given"
        size = f"skeleton {self.height:.4g} units high = {self.height * self.to_metres:.3g} m"
        return f"{how}: {unit} ({size})"


def parse_units(value: str | float) -> Units:
    """A ``--units`` value: "auto", a unit name, or a positive number (metres per unit)."""
    key = value.strip().lower() if isinstance(value, str) else value
    if key == "auto" or key in UNITS_TO_METRES:
        return key
    try:
        factor = float(key)
    except (TypeError, ValueError):
        factor = float("nan")
    low, high = UNITS_RANGE
    if not low <= factor <= high:  # also False for NaN
        raise MotionError(
            f"units must be auto, {UNITS_HINT} (a number from {low:g} to {high:g}); got '{value}'"
        )
    return factor


def skeleton_height(bvh: BVH) -> float:
    """The rest skeleton's size in file units: the largest extent of its joints and End Sites.

    The largest extent over the three axes, so neither the up axis nor a T-pose (whose arm
    span is about the height) changes the answer much. The root joint is left out when it
    has children: many files root the body at a ground or world node far from it (Bandai
    Namco's joint_Root sits 4.5 m from the hips), while a pelvis root lies inside the body's
    extent anyway.
    """
    identity = np.tile([1.0, 0.0, 0.0, 0.0], (1, len(bvh.names), 1))  # (1, J, 4)
    offsets = np.asarray(bvh.offsets, dtype=np.float64)
    rest = forward_kinematics(identity, offsets[None, 0], bvh.parents, offsets)[0]  # (J, 3)
    tips = [rest[j] + np.asarray(end, dtype=np.float64) for j, end in bvh.end_sites.items()]
    body = rest[1:] if len(rest) > 1 else rest
    points = np.concatenate([body, np.reshape(tips, (-1, 3))])
    return float((points.max(axis=0) - points.min(axis=0)).max())


def detect_units(height: float) -> str | None:
    """The unit of AUTO_UNITS that makes ``height`` a human's, or None if none does."""
    low, high = HUMAN_HEIGHT_M
    for name in AUTO_UNITS:
        if low <= height * UNITS_TO_METRES[name] <= high:
            return name
    return None


def resolve_units(bvh: BVH, units: Units = "auto") -> FileUnits:
    """The file's unit: the one named (it always wins), or with "auto" the one its size says.

    Raises MotionError naming the measured height and the option to pass when "auto" finds
    no unit that gives a human-sized skeleton.
    """
    height = skeleton_height(bvh)
    units = parse_units(units)
    if isinstance(units, float):
        return FileUnits(units, "", height, detected=False)
    if units != "auto":
        return FileUnits(UNITS_TO_METRES[units], units, height, detected=False)
    name = detect_units(height)
    if name is None:
        low, high = HUMAN_HEIGHT_M
        raise MotionError(
            f"cannot tell the units: the rest skeleton is {height:.4g} units high, which is no "
            f"human height ({low:g}-{high:g} m) in {', '.join(AUTO_UNITS)}; pass the unit "
            f"(--units on the command line, units= in Python): {UNITS_HINT}"
        )
    return FileUnits(UNITS_TO_METRES[name], name, height, detected=True)
