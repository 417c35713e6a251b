"""Bone twist from generated rotations (MoLingo's 272 representation) for retargeting.

Joint positions fix where each bone points but not how it turns about itself: a forearm's
roll or a wrist's turn leave the joints where they are. ``rig_pose.rotations_from_joints``
therefore guesses twist from bend planes. A 272 clip also carries every joint's rotation;
this module gives a rig's bones that generated twist while keeping the directions the
joints gave:

- a bone with one (mapped) child keeps its direction and takes the twist about it of
  ``G_j A``, the generated global rotation ``G_j`` after ``A``, the shortest arc from the
  rig's rest direction of the bone to its rest direction in the generating body. That rest
  direction is read off the clip itself: the joints and the rotations come from one SMPL
  body, so ``G_j^T (p_k - p_j)`` (k the joint's child towards the mapped one) is the same at
  every frame; its mean direction is taken, so no SMPL rest pose is needed;
- a mapped joint without a mapped child (wrists, toes, the head) takes the generated
  rotation relative to its mapped parent, expressed in that parent's rig frame
  (``A_p^T G_p^T G_j A_p`` after the parent's new global rotation);
- joints with several children (pelvis, upper spine) keep the rotation their children's
  positions fit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import MotionError
from ..motion.quaternion import axis_angle_to_quat, matrix_to_quat, qbetween, qfix, quat_to_matrix
from ..motion.skeleton import NUM_JOINTS, PARENTS


def generated_globals(local: np.ndarray) -> np.ndarray:
    """Local joint rotations (T, 22, 3, 3) -> global ones, down the SMPL tree."""
    local = np.asarray(local, dtype=np.float64)
    if local.ndim != 4 or local.shape[1:] != (NUM_JOINTS, 3, 3):
        raise MotionError(f"rotations must be (frames, {NUM_JOINTS}, 3, 3), got {local.shape}")
    out = np.empty_like(local)
    for j, p in enumerate(PARENTS):
        out[:, j] = local[:, j] if p < 0 else out[:, p] @ local[:, j]
    return out


def _path_child(joint: int, descendant: int) -> int:
    """The child of ``joint`` on the SMPL tree's path down to ``descendant``."""
    while PARENTS[descendant] != joint:
        descendant = PARENTS[descendant]
        if descendant < 0:
            raise MotionError(f"joint {joint} is not an ancestor of the mapped child")
    return descendant


def _rest_direction(generated: np.ndarray, joints: np.ndarray, j: int, k: int) -> np.ndarray:
    """Unit rest direction of bone j -> k in the generating body, from the clip (see doc)."""
    bone = joints[:, k] - joints[:, j]  # (T, 3)
    bone = bone / np.maximum(np.linalg.norm(bone, axis=-1, keepdims=True), 1e-9)
    rest = np.einsum("tji,tj->ti", generated[:, j], bone).mean(axis=0)  # G_j^T bone
    return rest / max(np.linalg.norm(rest), 1e-9)


def _twist_about(delta: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotations -> their twist about the unit ``axis`` (swing-twist), (T, 3, 3)."""
    q = matrix_to_quat(delta)  # (T, 4)
    angle = 2.0 * np.arctan2(q[:, 1:] @ axis, q[:, 0])
    return quat_to_matrix(axis_angle_to_quat(np.broadcast_to(axis, (len(q), 3)), angle))


def apply_generated_twist(
    glob: np.ndarray,
    local: np.ndarray,
    joints: np.ndarray,
    mapped: Sequence[int],
    rparents: Sequence[int],
    offsets: np.ndarray,
) -> np.ndarray:
    """Global rotations (T, M, 4) of a rig's mapped joints, with the generated twist.

    glob: what the positions gave (character frame). local: the generated local rotations
    (T, 22, 3, 3) and joints (T, 22, 3) the clip's joints, same frame and frame count.
    mapped: the joint of each reduced bone; rparents: its reduced parent (-1 for the root);
    offsets: (M, 3) the rig's rest offset of each mapped joint from its reduced parent,
    character frame.
    """
    generated = generated_globals(local)
    if generated.shape[0] != glob.shape[0] or len(joints) != glob.shape[0]:
        raise MotionError(
            f"{generated.shape[0]} frames of rotations for {glob.shape[0]} frames of joints"
        )
    rot = quat_to_matrix(np.asarray(glob, dtype=np.float64))  # (T, M, 3, 3)
    align = np.tile(np.eye(3), (len(mapped), 1, 1))  # rig rest frame -> SMPL rest frame
    for m, j in enumerate(mapped):
        kids = [c for c in range(len(mapped)) if rparents[c] == m]
        if len(kids) == 1:
            c = kids[0]
            rig_dir = offsets[c] / np.linalg.norm(offsets[c])
            body_dir = _rest_direction(generated, joints, j, _path_child(j, mapped[c]))
            align[m] = quat_to_matrix(qbetween(rig_dir, body_dir))
            target = generated[:, j] @ align[m]  # takes rig_dir to the generated bone
            delta = np.swapaxes(rot[:, m], -1, -2) @ target
            rot[:, m] = rot[:, m] @ _twist_about(delta, rig_dir)
        elif not kids and rparents[m] >= 0:
            p = rparents[m]
            relative = np.swapaxes(generated[:, mapped[p]], -1, -2) @ generated[:, j]
            rot[:, m] = rot[:, p] @ align[p].T @ relative @ align[p]
    return qfix(matrix_to_quat(rot))
