"""AMASS-style ``.npz`` files of fitted SMPL / SMPL-X parameters.

The keys are AMASS's (``poses``, ``trans``, ``betas``, ``mocap_framerate``, ``gender``),
so tools that read AMASS read these; every value is a plain array (the gender a unicode
0-d array), so loading needs no pickle. Coordinates are the fit's: metres, Y up, facing +Z
(AMASS's own captures are Z up; rotate the root and translation if a tool expects that).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..body.smpl_fit import GENDERS, POSE_DIMS, SMPLFit
from ..errors import MotionError

KEYS = ("poses", "trans", "betas", "mocap_framerate", "gender")


def save_amass(path: str | os.PathLike, fit: SMPLFit) -> Path:
    """Write ``fit`` to ``path`` (.npz) atomically: a temporary name, then a rename."""
    target = Path(path)
    if target.suffix.lower() != ".npz":
        raise MotionError(f"{target}: AMASS files are .npz")
    tmp = target.with_name(f".{target.name}.partial-{os.getpid()}.npz")
    try:
        with open(tmp, "wb") as handle:
            np.savez(
                handle, poses=fit.poses.astype(np.float32), trans=fit.trans.astype(np.float32),
                betas=fit.betas.astype(np.float32), mocap_framerate=np.float64(fit.fps),
                gender=np.array(fit.gender), model_type=np.array(fit.model_type),
            )  # fmt: skip
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def load_amass(path: str | os.PathLike) -> SMPLFit:
    """Read an AMASS-style .npz (ours or AMASS's) back; the joint error is unknown (NaN)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in KEYS if key not in data.files]
            if missing:
                raise MotionError(f"{path}: not an AMASS file, missing {', '.join(missing)}")
            arrays = {key: data[key] for key in (*KEYS, "model_type") if key in data.files}
    except (OSError, ValueError) as error:
        raise MotionError(f"{path}: cannot read as .npz ({error})") from error
    poses = np.asarray(arrays["poses"], dtype=np.float32)
    by_width = {width: name for name, width in POSE_DIMS.items()}
    model_type = str(arrays.get("model_type", by_width.get(poses.shape[-1], "smpl")))
    gender = str(arrays["gender"])
    if poses.ndim != 2 or poses.shape[1] not in by_width or gender not in GENDERS:
        raise MotionError(f"{path}: poses {poses.shape} / gender {gender!r} not SMPL's")
    return SMPLFit(
        poses=poses, trans=np.asarray(arrays["trans"], dtype=np.float32),
        betas=np.asarray(arrays["betas"], dtype=np.float32), joint_error_m=float("nan"),
        model_type=model_type, gender=gender, fps=float(arrays["mocap_framerate"]),
    )  # fmt: skip
