"""A tiny made-up SMPL / SMPL-X model that smplx accepts (no real model files needed).

Shared by the engine's fitting tests and the add-on's body tests; imported by plain name
(pytest's prepend import mode puts this folder on sys.path).
"""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import torch

from engine.motion.skeleton import CANONICAL_OFFSETS, PARENTS

SMPL_FIELDS = (
    "v_template",
    "shapedirs",
    "posedirs",
    "J_regressor",
    "weights",
    "kintree_table",
    "f",
)
SMPL_PARENTS = (*PARENTS, 20, 21)  # SMPL's 24 joints: the 22 plus two hands
PER_JOINT = 10  # vertices around each joint


def rest_joints() -> np.ndarray:
    """(24, 3) rest joints from the canonical offsets; the hands 8 cm past the wrists."""
    offsets = np.concatenate([CANONICAL_OFFSETS, CANONICAL_OFFSETS[[20, 21]] * 0.3])
    joints = np.zeros((24, 3))
    for j in range(1, 24):
        joints[j] = joints[SMPL_PARENTS[j]] + offsets[j]
    return joints + np.array([0.0, 0.9, 0.0])


def make_tiny_smpl(seed: int = 0, blend: float = 0.0) -> types.SimpleNamespace:
    """A valid SMPL data structure: 10 vertices per joint, J_regressor = their mean.

    shapedirs move whole clusters (so betas change bone lengths), posedirs are small noise,
    each vertex is skinned to its own joint, or with ``blend`` of its weight moved to its
    joint's parent (so skinning blends two joints, as a real body's does).
    """
    rng = np.random.default_rng(seed)
    joints = rest_joints()
    cluster = np.repeat(np.arange(24), PER_JOINT)  # (V,) the joint of each vertex
    jitter = rng.normal(0, 0.02, (24, PER_JOINT, 3))
    jitter -= jitter.mean(axis=1, keepdims=True)  # cluster means are the joints exactly
    v_template = joints[cluster] + jitter.reshape(-1, 3)
    shapedirs = rng.normal(0, 0.02, (24, 3, 10))[cluster]  # whole clusters move together
    shapedirs = shapedirs + rng.normal(0, 0.002, shapedirs.shape)
    regressor = np.zeros((24, 24 * PER_JOINT))
    regressor[cluster, np.arange(24 * PER_JOINT)] = 1.0 / PER_JOINT
    kintree = np.array([[-1 if p < 0 else p for p in SMPL_PARENTS], list(range(24))])
    return types.SimpleNamespace(
        v_template=v_template, shapedirs=shapedirs,
        posedirs=rng.normal(0, 1e-3, (24 * PER_JOINT, 3, 207)), J_regressor=regressor,
        weights=_weights(cluster, blend), kintree_table=kintree.astype(np.int64),
        f=_faces(rng, 24 * PER_JOINT, 100),
    )  # fmt: skip


def known_motion(body, frames: int, seed: int = 1):
    """Joints (T, 22, 3) of known smooth parameters (knees bent the natural way)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, frames)[:, None]
    width = 3 * body.NUM_BODY_JOINTS  # 69 for SMPL, 63 for SMPL-X
    pose = rng.normal(0, 0.25, (1, width)) + 0.3 * np.sin(4 * t + rng.uniform(0, 6, (1, width)))
    pose[:, 9:15] = np.abs(pose[:, 9:15])  # knees: body_pose joints 3, 4 bend about +x
    pose[:, 63:] = 0.0  # SMPL hands: not fitted
    root = np.array([[0.2, 1.0, -0.1]]) + 0.2 * t
    trans = np.array([[0.3, 0.0, -0.5]]) + np.array([[0.5, 0.05, 1.0]]) * t
    betas = rng.normal(0, 1.0, (1, 10))
    as_t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    rest = {}
    if hasattr(body, "jaw_pose"):  # SMPL-X: the face and hands at rest for every frame
        zero = torch.zeros(frames, 3)
        rest = dict(jaw_pose=zero, leye_pose=zero, reye_pose=zero, expression=torch.zeros(
            frames, 10), left_hand_pose=torch.zeros(frames, 45), right_hand_pose=torch.zeros(
            frames, 45))  # fmt: skip
    with torch.no_grad():
        out = body(betas=as_t(betas).expand(frames, -1), body_pose=as_t(pose),
                   global_orient=as_t(root), transl=as_t(trans), **rest)  # fmt: skip
    return out.joints[:, :22].numpy().astype(np.float64), betas[0], root, trans


def make_tiny_smplx_file(folder, seed: int = 0) -> None:
    """SMPLX_NEUTRAL.npz of a made-up SMPL-X: the tiny SMPL's body plus 33 face/hand joints."""
    rng = np.random.default_rng(seed)
    parents = [*PARENTS, 15, 15, 15] + [20, *range(25, 39)] + [21, *range(40, 54)]
    extra = rest_joints()[[15] * 3 + [20] * 15 + [21] * 15] + rng.normal(0, 0.03, (33, 3))
    joints = np.concatenate([rest_joints()[:22], extra])  # (55, 3)
    cluster = np.repeat(np.arange(55), PER_JOINT)
    vertices = len(cluster)
    jitter = rng.normal(0, 0.02, (55, PER_JOINT, 3))
    jitter -= jitter.mean(axis=1, keepdims=True)
    regressor = np.zeros((55, vertices))
    regressor[cluster, np.arange(vertices)] = 1.0 / PER_JOINT
    shapedirs = rng.normal(0, 0.02, (55, 3, 20))[cluster]
    np.savez(
        folder / "SMPLX_NEUTRAL.npz", v_template=joints[cluster] + jitter.reshape(-1, 3),
        shapedirs=shapedirs, posedirs=rng.normal(0, 1e-3, (vertices, 3, 54 * 9)),
        J_regressor=regressor, weights=np.eye(55)[cluster],
        kintree_table=np.array([[-1, *parents[1:]], list(range(55))]),
        f=_faces(rng, vertices, 200), lmk_faces_idx=np.arange(51),
        lmk_bary_coords=np.full((51, 3), 1 / 3), hands_componentsl=np.eye(45),
        hands_componentsr=np.eye(45), hands_meanl=np.zeros(45), hands_meanr=np.zeros(45),
    )  # fmt: skip


def _weights(cluster: np.ndarray, blend: float) -> np.ndarray:
    """(V, 24) skinning weights: 1 - blend on the vertex's joint, blend on its parent."""
    weights = np.eye(24)[cluster] * (1.0 - blend)
    parents = np.array([max(p, 0) for p in SMPL_PARENTS])[cluster]
    weights[np.arange(len(cluster)), parents] += blend
    return weights


def write_tiny_smpl_file(folder: Path, seed: int = 0, blend: float = 0.0) -> Path:
    """SMPL_NEUTRAL.npz of ``make_tiny_smpl`` in ``folder``, as a user's model folder holds."""
    model = make_tiny_smpl(seed, blend)
    path = Path(folder) / "SMPL_NEUTRAL.npz"
    np.savez(path, **{k: getattr(model, k) for k in SMPL_FIELDS})
    return path


def _faces(rng: np.random.Generator, num_vertices: int, count: int) -> np.ndarray:
    """(count, 3) triangles of three different vertices (a mesh tool accepts them as is)."""
    return np.stack([rng.permutation(num_vertices)[:3] for _ in range(count)])
