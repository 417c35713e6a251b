"""Fit SMPL / SMPL-X parameters to generated joints through ``smplx``'s forward pass.

Generated motion is 22 joint positions per frame (T, 22, 3), metres, Y up, in SMPL's body
joint order (engine/motion/skeleton.py), facing +Z like SMPL's rest pose, so no axis change is
needed. A skinned body needs rotations and a shape instead, so we optimise them:

1. one shape ``betas`` for the clip, from bone lengths alone (they do not depend on pose);
2. per frame the root orientation (started from a rigid fit of the torso), the 21 body
   joint rotations (axis-angle) and the translation, in chunks of frames optimised as one
   batch, each chunk warm-started from the last frame of the one before; the loss is joint
   position error + temporal smoothness + a penalty on implausible joint angles (beyond a
   bound, knees bending forwards) + a little pull towards rest for rotations that joint
   positions cannot see (twist about a bone, the wrists, feet and head).

``smplx`` and the model files are licensed for non-commercial research and are not shipped:
``smplx`` is an optional extra imported lazily here, and the model files are the user's own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import MotionError
from ..motion.quaternion import matrix_to_quat
from ..motion.skeleton import COLLARS, HIPS, PELVIS, SHOULDERS, SPINE1, SPINE2, SPINE3
from .smpl_body import GENDERS, INSTALL_HINT, MODEL_TYPES, find_model_file
from .smpl_model_file import read_model_arrays

NUM_JOINTS = 22
NUM_BODY_JOINTS = 21  # SMPL's 23 minus the two hands; SMPL-X's body joints
POSE_DIMS = {"smpl": 72, "smplx": 165}  # AMASS layout: root, body, (jaw, eyes, hands), hands
TORSO = (PELVIS, *HIPS, SPINE1, SPINE2, SPINE3, *COLLARS, *SHOULDERS)
"""Joints that move (almost) rigidly with the root."""
KNEES = (3, 4)  # body_pose indices (joint - 1) of the knees, which bend about +x only


@dataclasses.dataclass
class FitOptions:
    """Weights and schedule of the fit; the defaults suit 20 fps clips of a few seconds."""

    chunk: int = 64  # frames optimised together; the next chunk starts from the last frame
    root_steps: int = 30  # L-BFGS steps on root orientation + translation (torso joints)
    steps: int = 200  # L-BFGS steps on everything, per chunk
    shape_steps: int = 100  # L-BFGS steps fitting betas to the bone lengths
    smooth: float = 0.1  # joint acceleration (m^2) against joint error: damps jitter, not motion
    pose_smooth: float = 1e-4  # pose velocity (rad^2): keeps unseen twists continuous
    angle_bound: float = 2.6  # radians: rotations beyond this are penalised
    angle_weight: float = 10.0
    rest_weight: float = 1e-4  # pull to rest; settles what joint positions leave free
    betas_weight: float = 1e-4  # shape prior: keeps betas near the mean body


@dataclasses.dataclass
class SMPLFit:
    """Fitted parameters of one clip, laid out like AMASS.

    poses: (T, 72) for SMPL or (T, 165) for SMPL-X, axis-angle: root, body, then joints the
    fit does not drive (SMPL's hands; SMPL-X's jaw, eyes and fingers) left at zero.
    trans: (T, 3) metres; betas: (num_betas,); joint_error_m: mean joint distance in metres.
    """

    poses: np.ndarray
    trans: np.ndarray
    betas: np.ndarray
    joint_error_m: float
    model_type: str
    gender: str
    fps: float = 20.0


def import_smplx() -> Any:
    """The ``smplx`` module, or a MotionError saying how to install it."""
    try:
        import smplx
    except ImportError as error:
        raise MotionError(INSTALL_HINT) from error
    return smplx


def _check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise MotionError(f"unknown {what} {value!r}: use one of {', '.join(choices)}")
    return value


def _small_vertex_ids(smplx: Any, num_vertices: int) -> dict[str, int]:
    """smplx adds joints at fixed model vertices; a made-up model has fewer vertices.

    Only the first 22 joints are used, so the extra ones just need valid indices (the
    real models have every listed vertex, and keep their ids).
    """
    ids = smplx.vertex_ids.vertex_ids["smplh"]
    return {name: min(int(i), num_vertices - 1) for name, i in ids.items()}


def load_body_model(
    model: str | os.PathLike | Any,
    model_type: str = "smpl",
    gender: str = "neutral",
    device: torch.device | str = "cpu",
) -> torch.nn.Module:
    """An ``smplx`` body model from the user's folder, or from a data structure (tests).

    model: a folder holding SMPL_NEUTRAL.npz / SMPLX_NEUTRAL.npz / ... (or .pkl), or an
    object with the model arrays as attributes (v_template, shapedirs, posedirs,
    J_regressor, weights, kintree_table, f), which SMPL accepts instead of a file.
    """
    smplx = import_smplx()
    _check_choice(model_type, MODEL_TYPES, "body model")
    _check_choice(gender, GENDERS, "gender")
    common = dict(gender=gender, batch_size=1, create_transl=False)
    with contextlib.redirect_stdout(io.StringIO()):  # smplx prints notes about shape sizes
        body = _build(smplx, model, model_type, common)
    return body.to(device).eval()


def _build(smplx: Any, model: Any, model_type: str, common: dict) -> torch.nn.Module:
    if not isinstance(model, (str, os.PathLike)):
        if model_type != "smpl":
            raise MotionError("a model data structure is accepted for SMPL only")
        vertex_ids = _small_vertex_ids(smplx, len(model.v_template))
        return smplx.SMPL("", data_struct=model, vertex_ids=vertex_ids, **common)
    path = find_model_file(model, model_type, common["gender"])
    return _load_file(smplx, path, model_type, common)


def _load_file(smplx: Any, path: Path, model_type: str, common: dict) -> torch.nn.Module:
    """Build smplx's model from the arrays of ``path``, read without unpickling anything
    (``read_model_arrays``): smplx's own loaders, which unpickle, never see the user's file."""
    arrays = read_model_arrays(path)
    try:
        if model_type == "smplx":  # SMPLX reads a file only: hand it a copy of plain arrays
            with tempfile.TemporaryDirectory(prefix="kinetext-smplx-") as folder:
                plain = Path(folder) / "model.npz"
                np.savez(plain, **arrays)
                return smplx.SMPLX(str(plain), ext="npz", use_pca=False, **common)
        data = smplx.utils.Struct(**arrays)
        ids = _small_vertex_ids(smplx, len(data.v_template))
        return smplx.SMPL(str(path), data_struct=data, vertex_ids=ids, **common)
    except (OSError, ValueError, KeyError, AttributeError, TypeError, IndexError,
            AssertionError, RuntimeError) as error:  # fmt: skip
        raise MotionError(f"{path}: cannot load as a {model_type} model ({error})") from error


def _joints(body: torch.nn.Module, betas, root, pose, trans) -> torch.Tensor:
    """First 22 joints (B, 22, 3) of the model; SMPL's two hand joints stay at rest."""
    batch = root.shape[0]
    extra = body.NUM_BODY_JOINTS - NUM_BODY_JOINTS
    full = torch.cat([pose, pose.new_zeros(batch, 3 * extra)], dim=1)  # (B, NUM_BODY*3)
    kwargs = {}
    if hasattr(body, "jaw_pose"):  # SMPL-X: every other pose explicit, so any batch size works
        zeros3, hands = root.new_zeros(batch, 3), root.new_zeros(batch, 45)
        kwargs = dict(jaw_pose=zeros3, leye_pose=zeros3, reye_pose=zeros3,
                      left_hand_pose=hands, right_hand_pose=hands,
                      expression=root.new_zeros(batch, body.num_expression_coeffs))  # fmt: skip
    out = body(betas=betas.expand(batch, -1), global_orient=root, body_pose=full,
               transl=trans, return_verts=False, **kwargs)  # fmt: skip
    return out.joints[:, :NUM_JOINTS]


Tick = Callable[[], None]
"""Called at every loss evaluation: progress reports, and a cancel that raises from it."""


def _minimise(params: list[torch.Tensor], loss_fn, steps: int, tick: Tick | None = None) -> None:
    """L-BFGS with a line search: the losses are smooth, and it reaches sub-millimetre fits
    in far fewer model evaluations than first-order steps."""
    if steps <= 0:
        return
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=steps, history_size=20,
                            tolerance_grad=1e-10, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")  # fmt: skip

    def closure() -> torch.Tensor:
        if tick is not None:
            tick()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        return loss

    opt.step(closure)


def fit_betas(
    body: torch.nn.Module, bone_lengths: torch.Tensor, opts: FitOptions, tick: Tick | None = None
) -> torch.Tensor:
    """Shape (1, num_betas) whose rest skeleton has the given bone lengths (21,) metres."""
    from ..motion.skeleton import PARENTS

    parents = torch.as_tensor(PARENTS[1:NUM_JOINTS], device=bone_lengths.device)
    betas = bone_lengths.new_zeros(1, body.num_betas, requires_grad=True)
    zero3 = bone_lengths.new_zeros(1, 3)
    zero_pose = bone_lengths.new_zeros(1, 3 * NUM_BODY_JOINTS)

    def loss() -> torch.Tensor:
        rest = _joints(body, betas, zero3, zero_pose, zero3)[0]  # (22, 3)
        lengths = (rest[1:] - rest[parents]).norm(dim=-1)
        return ((lengths - bone_lengths) ** 2).mean() + opts.betas_weight * betas.square().mean()

    _minimise([betas], loss, opts.shape_steps, tick)
    return betas.detach()


def _kabsch(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotations (T, 3, 3) taking centred source (K, 3) onto centred targets (T, K, 3)."""
    src = source - source.mean(axis=0)
    tgt = target - target.mean(axis=1, keepdims=True)
    u, _, vt = np.linalg.svd(np.einsum("kc,tkd->tcd", src, tgt))
    d = np.sign(np.linalg.det(np.einsum("tab,tbc->tac", u, vt)))  # no reflections
    fix = np.stack([np.ones_like(d), np.ones_like(d), d], axis=-1)[:, :, None]  # (T, 3, 1)
    return np.einsum("tab,tbc->tca", u, fix * vt)


def matrix_to_axis_angle(matrix: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> axis-angle (..., 3), angle in [0, pi]."""
    q = matrix_to_quat(matrix)
    q = q * np.where(q[..., :1] < 0, -1.0, 1.0)  # w >= 0: the shorter way round
    sin_half = np.linalg.norm(q[..., 1:], axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(sin_half, q[..., :1])
    scale = np.where(sin_half > 1e-8, angle / np.maximum(sin_half, 1e-12), 2.0)
    return q[..., 1:] * scale


def _angle_penalty(pose: torch.Tensor, opts: FitOptions) -> torch.Tensor:
    """Rotations beyond the bound, knees bent forwards, and a faint pull to rest."""
    rot = pose.view(pose.shape[0], NUM_BODY_JOINTS, 3)
    beyond = torch.relu(rot.norm(dim=-1) - opts.angle_bound).square().mean()
    knees = torch.relu(-rot[:, KNEES, 0]).square().mean()
    return opts.angle_weight * (beyond + knees) + opts.rest_weight * rot.square().mean()


def _difference(x: torch.Tensor, previous: torch.Tensor | None, order: int) -> torch.Tensor:
    """Mean squared ``order``-th frame difference of x (B, ...), continued from ``previous``
    (the frames before the chunk, (P, ...)) so chunks join smoothly."""
    seq = x if previous is None else torch.cat([previous, x], dim=0)
    for _ in range(order):
        if seq.shape[0] < 2:
            return x.new_zeros(())
        seq = seq[1:] - seq[:-1]
    return seq.square().mean()


def _fit_chunk(body, betas, target, start, previous, opts: FitOptions, tick: Tick | None = None):
    """Optimise root (B,3), pose (B,63), trans (B,3) for target joints (B, 22, 3)."""
    root, pose, trans = (p.clone().requires_grad_(True) for p in start)
    prev_pose = None if previous is None else previous[1][-1:]  # (1, 63)
    prev_joints = None if previous is None else previous[3][-2:]  # (2, 22, 3)

    def joint_loss(joints, which) -> torch.Tensor:
        return (joints[:, which] - target[:, which]).square().sum(-1).mean()

    torso = list(TORSO)
    _minimise([root, trans], lambda: joint_loss(_joints(body, betas, root, pose, trans), torso),
              opts.root_steps, tick)  # fmt: skip

    def full_loss() -> torch.Tensor:
        joints = _joints(body, betas, root, pose, trans)
        smooth = opts.smooth * _difference(joints, prev_joints, 2)
        smooth = smooth + opts.pose_smooth * _difference(pose, prev_pose, 1)
        return joint_loss(joints, slice(None)) + smooth + _angle_penalty(pose, opts)

    _minimise([root, pose, trans], full_loss, opts.steps, tick)
    with torch.no_grad():
        joints = _joints(body, betas, root, pose, trans)
    return root.detach(), pose.detach(), trans.detach(), joints


def fit_smpl(
    joints: np.ndarray,
    model: str | os.PathLike | Any,
    model_type: str = "smpl",
    gender: str = "neutral",
    device: str | torch.device = "auto",
    fps: float = 20.0,
    options: FitOptions | None = None,
    progress: Callable[[float, int], None] | None = None,
) -> SMPLFit:
    """SMPL / SMPL-X parameters whose joints follow ``joints`` (T, 22, 3) metres Y up.

    model: the user's model folder, or a data structure of model arrays (see
    load_body_model). device: "auto" picks CUDA, then Apple MPS, then the CPU.
    progress(frames_done, frames) is called at every loss evaluation (frames_done a float
    estimate); an exception raised from it stops the fit (a cancel button).
    """
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3) or len(joints) == 0:
        raise MotionError(f"expected joints of shape (T, 22, 3), got {joints.shape}")
    if not np.isfinite(joints).all():
        raise MotionError("joints contain NaN or infinite values")
    opts = options or FitOptions()
    from ..pipeline import resolve_device

    dev = resolve_device(device)
    body = load_body_model(model, model_type, gender, dev)
    for p in body.parameters():
        p.requires_grad_(False)
    dtype = body.v_template.dtype
    target = torch.as_tensor(joints, dtype=dtype, device=dev)  # (T, 22, 3)

    from ..motion.skeleton import PARENTS

    bones = (target[:, 1:] - target[:, list(PARENTS[1:NUM_JOINTS])]).norm(dim=-1).mean(0)
    betas = fit_betas(body, bones, opts, _ticker(progress, 0, 0, len(joints), 1))
    zero3 = target.new_zeros(1, 3)
    rest = _joints(body, betas, zero3, target.new_zeros(1, 3 * NUM_BODY_JOINTS), zero3)[0]
    rest_np = rest.cpu().numpy().astype(np.float64)

    # Rigid torso fit per frame: the root orientation, and the translation that puts the
    # rotated rest pelvis on the target's (smplx rotates about the rest pelvis).
    rot = _kabsch(rest_np[list(TORSO)], joints[:, list(TORSO)])  # (T, 3, 3)
    roots0 = torch.as_tensor(matrix_to_axis_angle(rot), dtype=dtype, device=dev)
    torso_centre = joints[:, list(TORSO)].mean(1) - np.einsum(
        "tab,b->ta", rot, rest_np[list(TORSO)].mean(0) - rest_np[0]
    )
    trans0 = torch.as_tensor(torso_centre - rest_np[0], dtype=dtype, device=dev)

    results, previous = [], None
    for lo in range(0, len(joints), max(opts.chunk, 1)):
        hi = min(lo + max(opts.chunk, 1), len(joints))
        last_pose = target.new_zeros(3 * NUM_BODY_JOINTS) if previous is None else previous[1][-1]
        start = (roots0[lo:hi], last_pose.expand(hi - lo, -1), trans0[lo:hi])
        budget = 1.25 * (opts.root_steps + opts.steps)  # L-BFGS evaluates ~1.25x per step
        tick = _ticker(progress, lo, hi, len(joints), budget)
        root, pose, trans, fitted = _fit_chunk(
            body, betas, target[lo:hi], start, previous, opts, tick
        )
        results.append((root, pose, trans, fitted))
        previous = (root, pose, trans, fitted)

    root, pose, trans, fitted = (torch.cat(parts) for parts in zip(*results, strict=True))
    error = (fitted - target).norm(dim=-1).mean().item()
    poses = np.zeros((len(joints), POSE_DIMS[model_type]), dtype=np.float32)
    poses[:, :3] = root.cpu().numpy()
    poses[:, 3 : 3 + 3 * NUM_BODY_JOINTS] = pose.cpu().numpy()
    return SMPLFit(
        poses=poses, trans=trans.cpu().numpy().astype(np.float32),
        betas=betas[0].cpu().numpy().astype(np.float32), joint_error_m=float(error),
        model_type=model_type, gender=gender, fps=float(fps),
    )  # fmt: skip


def _ticker(progress, lo: int, hi: int, total: int, budget: float) -> Tick | None:
    """A tick that reports frames lo..hi as done in proportion to evaluations spent."""
    if progress is None:
        return None
    count = [0]

    def tick() -> None:
        count[0] += 1
        progress(lo + (hi - lo) * min(count[0] / max(budget, 1.0), 1.0), total)

    return tick
