"""Writers of small data sets in the exact on-disk layouts the training data code reads.

Features are coded so a test can tell which rows it got: column 0 holds the frame number,
column 1 the clip's code, the rest a fixed pattern.
"""

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from engine.motion.features import FEATURE_DIM

MEAN = np.linspace(-1.0, 1.0, FEATURE_DIM).astype(np.float32)
STD = np.linspace(0.5, 2.0, FEATURE_DIM).astype(np.float32)


def coded_features(frames: int, code: float, dtype=np.float64) -> np.ndarray:
    """(frames, 263): column 0 = frame number, column 1 = code, others a smooth pattern."""
    grid = np.arange(frames)[:, None] * 0.01 + np.arange(FEATURE_DIM)[None] * 0.1
    features = np.sin(grid)
    features[:, 0] = np.arange(frames)
    features[:, 1] = code
    return features.astype(dtype)


def text_line(caption: str, start: float = 0.0, end: float = 0.0) -> str:
    tokens = " ".join(f"{w}/NOUN" for w in caption.split())
    return f"{caption}#{tokens}#{start}#{end}"


def write_humanml3d(
    root: Path,
    clips: Mapping[str, tuple[np.ndarray | None, Sequence[str] | None]],
    splits: Mapping[str, Sequence[str]],
) -> Path:
    """A HumanML3D folder: ``clips`` id -> (features or None for no file, text lines or None
    for no text file); ``splits`` name -> ids; Mean/Std are ``MEAN``/``STD``."""
    for sub in ("new_joint_vecs", "new_joints", "texts"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for clip_id, (features, lines) in clips.items():
        if features is not None:
            np.save(root / "new_joint_vecs" / f"{clip_id}.npy", features)
            joints = np.zeros((len(features) + 1, 22, 3), dtype=np.float32)
            np.save(root / "new_joints" / f"{clip_id}.npy", joints)
        if lines is not None:
            (root / "texts" / f"{clip_id}.txt").write_text("".join(f"{x}\n" for x in lines))
    np.save(root / "Mean.npy", MEAN)
    np.save(root / "Std.npy", STD)
    for split, ids in splits.items():
        (root / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


def write_labels_json(root: Path, labels: Mapping[str, Mapping[str, str]]) -> None:
    """``labels.json`` as ``python -m training build-dataset`` writes it."""
    table = {
        clip_id: {
            "source": f"clips/{clip_id.removeprefix('M')}.bvh",
            "frames": 0,
            "labels": dict(values),
            "mirror_of": clip_id[1:] if clip_id.startswith("M") else None,
        }
        for clip_id, values in labels.items()
    }
    (root / "labels.json").write_text(json.dumps(table, indent=2, sort_keys=True))
