"""A fitted SMPL / SMPL-X body as plain arrays: its shaped rest template and its channels.

A skinned body in a 3D tool needs what ``smplx`` computes internally, split the other way:
the rest mesh of one shape (vertices, faces, skinning weights, joints, hierarchy) built
once, and per frame the joint rotations, the root translation and the pose-corrective
blend-shape weights. Linear blend skinning of that template with those rotations, plus the
correctives as relative shape keys, gives exactly ``smplx``'s vertices.

No torch at import time (the add-on draws its panel from ``find_model_file`` and
``smplx_installed`` without it); ``body_template`` loads the model lazily. Coordinates are
metres, Y up, facing +Z (the fit's); ``body_tracks`` converts to Blender's Z up.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MotionError
from ..motion.quaternion import axis_angle_to_quat, matrix_to_quat, qfix, quat_to_matrix
from ..motion.rig_pose import forward_kinematics
from ..motion.skeleton import JOINT_NAMES
from ..retarget.rig import Y_UP_FROM_Z_UP, PoseTracks

MODEL_TYPES = ("smpl", "smplx")
GENDERS = ("neutral", "female", "male")
INSTALL_HINT = (
    "SMPL fitting needs the optional package smplx: `pip install smplx` (or `pip install "
    "kinetext[smpl]`). The SMPL / SMPL-X model files are your own: download them from "
    "smpl.is.tue.mpg.de or smpl-x.is.tue.mpg.de under their licence and pass their folder"
)
_FINGERS = [f"{f}{i}" for f in ("index", "middle", "pinky", "ring", "thumb") for i in (1, 2, 3)]
EXTRA_JOINT_NAMES = {  # the joints after the 22 body joints, in each model's own order
    "smpl": ("left_hand", "right_hand"),
    "smplx": ("jaw", "left_eye", "right_eye", *(f"left_{f}" for f in _FINGERS),
              *(f"right_{f}" for f in _FINGERS)),
}  # fmt: skip
_TAIL_CHILD = {0: 3, 9: 12, 15: None}
"""Bones of branching joints point at this child (pelvis up the spine, spine3 at the neck);
None: the head continues the neck rather than pointing at the jaw and eyes."""
_C = Y_UP_FROM_Z_UP.T  # (3, 3) column vectors Y up -> Blender Z up: (x, y, z) -> (x, -z, y)


def smplx_installed() -> bool:
    """Whether ``smplx`` can be imported, without importing it (nor torch)."""
    try:
        return importlib.util.find_spec("smplx") is not None
    except (ImportError, ValueError):
        return False


def find_model_file(folder: str | os.PathLike, model_type: str, gender: str) -> Path:
    """``SMPL_NEUTRAL.npz`` etc. in ``folder`` or its ``smpl`` / ``smplx`` subfolder."""
    root = Path(folder)
    if not str(folder).strip() or not root.is_dir():
        raise MotionError(f"{root}: SMPL model folder not found. {INSTALL_HINT}")
    stem = f"{model_type.upper()}_{gender.upper()}"
    for where in (root, root / model_type):
        for ext in (".npz", ".pkl"):
            if (where / f"{stem}{ext}").is_file():
                return where / f"{stem}{ext}"
    raise MotionError(f"{root}: no {stem}.npz or {stem}.pkl in this folder. {INSTALL_HINT}")


@dataclasses.dataclass
class BodyTemplate:
    """The rest body of one shape, metres, Y up.

    vertices: (V, 3) shaped rest vertices; faces: (F, 3) vertex indices; weights: (V, J)
    skinning weights; joints: (J, 3) shaped rest joints; parents: (J,) -1 for the root;
    names: J joint names; posedirs: (P, V, 3) vertex offsets per pose feature, P = 9 (J-1);
    pose_mean: (J, 3) axis-angle added to every pose (SMPL-X's relaxed hands, else zero).
    """

    vertices: np.ndarray
    faces: np.ndarray
    weights: np.ndarray
    joints: np.ndarray
    parents: np.ndarray
    names: list[str]
    posedirs: np.ndarray
    pose_mean: np.ndarray
    model_type: str
    gender: str
    betas: np.ndarray

    @property
    def num_joints(self) -> int:
        return len(self.joints)


def joint_names(model_type: str, count: int) -> list[str]:
    """Names of a model's ``count`` joints: SMPL's (the canonical 22 first), else numbered."""
    names = [*JOINT_NAMES, *EXTRA_JOINT_NAMES.get(model_type, ())]
    return names[:count] if count == len(names) else [f"joint_{j:02d}" for j in range(count)]


def body_template(
    model: str | os.PathLike | Any, model_type: str, gender: str, betas: np.ndarray
) -> BodyTemplate:
    """The rest body of ``betas`` (num_betas,) from a model folder or data structure.

    The template is what smplx's forward pass starts from: v_template plus the shape blend
    shapes, joints regressed from those vertices, the model's skinning weights.
    """
    import torch

    from .smpl_fit import load_body_model

    body = load_body_model(model, model_type, gender, "cpu")
    betas = np.asarray(betas, dtype=np.float64).reshape(-1)
    if len(betas) != body.num_betas:
        raise MotionError(f"{len(betas)} betas given, the {model_type} model has {body.num_betas}")
    with torch.no_grad():
        shape = torch.as_tensor(betas, dtype=body.v_template.dtype)
        vertices = body.v_template + torch.einsum("l,vcl->vc", shape, body.shapedirs)  # (V, 3)
        joints = body.J_regressor @ vertices  # (J, 3)
        num_joints, num_vertices = joints.shape[0], vertices.shape[0]
        posedirs = body.posedirs.reshape(-1, num_vertices, 3)  # (P, V, 3)
        pose_mean = getattr(body, "pose_mean", torch.zeros(num_joints * 3))
    parents = body.parents.cpu().numpy().astype(np.int64)
    parents[0] = -1
    as_np = lambda t: t.cpu().numpy().astype(np.float64)  # noqa: E731
    return BodyTemplate(
        vertices=as_np(vertices), faces=np.asarray(body.faces, dtype=np.int64).reshape(-1, 3),
        weights=as_np(body.lbs_weights), joints=as_np(joints), parents=parents,
        names=joint_names(model_type, num_joints), posedirs=as_np(posedirs),
        pose_mean=as_np(pose_mean).reshape(num_joints, 3), model_type=model_type,
        gender=gender, betas=betas,
    )  # fmt: skip


def local_rotations(poses: np.ndarray, template: BodyTemplate) -> np.ndarray:
    """Axis-angle poses (T, >= 3J) in AMASS layout -> rotation matrices (T, J, 3, 3).

    Adds the model's pose mean, as smplx's forward pass does.
    """
    poses = np.asarray(poses, dtype=np.float64)
    count = template.num_joints
    if poses.ndim != 2 or poses.shape[1] < 3 * count:
        raise MotionError(f"poses {poses.shape} do not hold the {count} joints of the model")
    rotvec = poses[:, : 3 * count].reshape(len(poses), count, 3) + template.pose_mean
    angle = np.linalg.norm(rotvec, axis=-1)  # (T, J)
    axis = rotvec / np.maximum(angle, 1e-12)[..., None]
    return quat_to_matrix(axis_angle_to_quat(axis, angle))


def corrective_weights(rotations: np.ndarray) -> np.ndarray:
    """Pose-corrective blend-shape weights (T, 9 (J-1)): R - I of every joint but the root."""
    eye = np.eye(3)
    return (rotations[:, 1:] - eye).reshape(len(rotations), -1)


def posed_joints(rotations: np.ndarray, trans: np.ndarray, template: BodyTemplate) -> np.ndarray:
    """Joint positions (T, J, 3), metres, Y up, of local rotations (T, J, 3, 3) + trans (T, 3).

    As in smplx: each joint hangs off its parent by its rest offset, rotated by the parent's
    global rotation; the root stays at its rest place plus ``trans``.
    """
    parents = list(template.parents)
    offsets = template.joints - template.joints[np.maximum(parents, 0)]  # (J, 3); root unused
    root = template.joints[0] + trans  # (T, 3)
    return forward_kinematics(matrix_to_quat(rotations), root, parents, offsets)


def bone_layout(template: BodyTemplate, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Bone heads and tails (J, 3) for an armature: Blender Z up, ``scale`` units per metre.

    Heads are the rest joints (where skinning rotates about). Tails only set each bone's rest
    orientation, which ``body_tracks`` takes into account: bones point at their child; a leaf
    continues its parent's direction for half its length (at least 2 cm).
    """
    joints = template.joints
    children = [[c for c, p in enumerate(template.parents) if p == j] for j in range(len(joints))]
    tails = np.empty_like(joints)
    for j, kids in enumerate(children):
        child = _TAIL_CHILD.get(j, kids[0] if len(kids) == 1 else -1) if kids else None
        if child is not None and child >= 0:
            tails[j] = joints[child]
        elif child is not None:  # several children: their mean (a wrist's fingers)
            tails[j] = joints[kids].mean(axis=0)
        else:
            p = template.parents[j]
            along = joints[j] - joints[p] if p >= 0 else np.array([0.0, 0.1, 0.0])
            length = np.linalg.norm(along)
            tails[j] = joints[j] + along / max(length, 1e-9) * max(0.5 * length, 0.02)
        if np.linalg.norm(tails[j] - joints[j]) < 1e-3:  # coincident joints: a short stub up
            tails[j] = joints[j] + np.array([0.0, 0.02, 0.0])
    return joints @ _C.T * scale, tails @ _C.T * scale


def body_tracks(
    rotations: np.ndarray,
    trans: np.ndarray,
    template: BodyTemplate,
    rest_rotations: np.ndarray,
    scale: float = 1.0,
) -> PoseTracks:
    """Pose-bone channels that make an armature built from ``bone_layout`` follow the fit.

    rotations: (T, J, 3, 3) local model rotations (``local_rotations``); trans: (T, 3)
    metres; rest_rotations: (J, 3, 3) each bone's rest orientation in armature space
    (``Bone.matrix_local``), joint order. A pose bone's rotation is rest^-1 R' rest, where
    R' is the model rotation turned into Z up; the root bone's location carries ``trans``.
    """
    rest = np.asarray(rest_rotations, dtype=np.float64)
    rot_z = _C @ rotations @ _C.T  # (T, J, 3, 3) the same rotations seen in Z up
    basis = np.swapaxes(rest, -1, -2) @ rot_z @ rest  # rest^-1 R' rest
    quats = qfix(matrix_to_quat(basis))  # (T, J, 4), signs continuous in time
    root = int(np.flatnonzero(template.parents < 0)[0])
    location = (np.asarray(trans, dtype=np.float64) @ _C.T * scale) @ rest[root]  # (T, 3)
    heads = posed_joints(rotations, trans, template) @ _C.T * scale
    return PoseTracks(
        bone_names=list(template.names), rotations=quats,
        locations={template.names[root]: location}, heads=heads,
    )  # fmt: skip
