"""Blender's own BVH importer poses our files where engine.io.bvh says the joints are.

This pins the conventions engine.io.bvh documents (channel order, position channels replacing
the OFFSET, metres) to the importer animators will use.
"""

import numpy as np
import pytest

from engine.io.bvh import canonical_bvh, read_bvh, write_bvh
from engine.motion.rig_pose import forward_kinematics
from engine.motion.skeleton import CANONICAL_OFFSETS, PARENTS

bpy = pytest.importorskip("bpy")


def imported_heads(path, num_frames: int, names: list[str]) -> np.ndarray:
    """(T, J, 3) pose-bone heads in Blender's world (Z up) after importing path at scale 1."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_anim.bvh(
        filepath=str(path), global_scale=1.0, rotate_mode="NATIVE", axis_forward="-Z", axis_up="Y"
    )
    armature = next(o for o in bpy.context.scene.objects if o.type == "ARMATURE")
    scene = bpy.context.scene
    heads = np.zeros((num_frames, len(names), 3))
    for t in range(num_frames):
        scene.frame_set(scene.frame_start + t)
        for i, name in enumerate(names):
            heads[t, i] = armature.matrix_world @ armature.pose.bones[name].head
    return heads


def test_blender_places_canonical_bvh_joints_in_metres(tmp_path):
    rng = np.random.default_rng(0)
    local = rng.normal(size=(4, 22, 4))
    local /= np.linalg.norm(local, axis=-1, keepdims=True)
    root = np.array([0.3, 0.9, -0.2]) + rng.normal(scale=0.1, size=(4, 3))
    joints = forward_kinematics(local, root, PARENTS, CANONICAL_OFFSETS)
    path = tmp_path / "canonical.bvh"
    write_bvh(path, canonical_bvh(joints))
    bvh = read_bvh(path)
    heads = imported_heads(path, 4, bvh.names)
    ours = bvh.world_positions()
    y_up_to_z_up = np.stack([ours[..., 0], -ours[..., 2], ours[..., 1]], axis=-1)
    np.testing.assert_allclose(heads, y_up_to_z_up, atol=1e-5)
