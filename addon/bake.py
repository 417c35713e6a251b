"""Baking a generated clip onto an armature: one new Action, keyframes in bulk.

``bake`` gathers the rig's rest pose, asks ``engine.retarget.rig`` for per-bone tracks (all
checks happen there, before the scene is touched), then writes one new Action through
Blender 5's slotted actions: a slot for the armature, its channelbag, and per channel
``keyframe_points.add`` + ``foreach_set``. The user's keys are never edited: an Action the
armature had is left as it is and, unless an NLA strip already uses it, stashed on a muted
NLA track named "[Action Stash]" (what Blender's Action editor does) so it is kept in the
file; the new Action is assigned, or pushed to its own NLA strip.

Pose bones rotating by quaternions (the canonical armature, most rigs) get quaternion keys;
bones set to an Euler order keep it and get Euler keys (unwrapped in time), so the rig's
other actions still play; axis-angle bones are switched to quaternions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np
from bpy_extras import anim_utils

from ..engine.edit.key_reduction import distance_cm, euler_degrees, quaternion_degrees, reduce_keys
from ..engine.errors import MotionError
from ..engine.motion.features import FOOT_CONTACT
from ..engine.motion.quaternion import (
    axis_angle_to_quat,
    matrix_to_quat,
    qfix,
    quat_to_euler,
    quat_to_matrix,
)
from ..engine.motion.rig_pose import forward_kinematics
from ..engine.motion.skeleton import CANONICAL_OFFSETS, FPS, PARENTS
from ..engine.retarget import presets
from ..engine.retarget.joint_map import resample
from ..engine.retarget.presets import SMPLX
from ..engine.retarget.rig import (
    ROOT_MOTION_MODES,
    BoneMap,
    PoseTracks,
    RestPose,
    retarget,
)
from . import rig_check
from .armature import (
    create_canonical_armature,
    is_canonical,
    units_per_metre,
)
from .paths import user_map_folder
from .properties import scene_fps

Report = Callable[[set[str], str], None]
# engine.motion.representation_272.FEATURE_DIM (not imported: that module needs torch): MoLingo's
# 272-dim features, which have no foot-contact channel.
FEATURE_DIM_272 = 272
STASH_TRACK = "[Action Stash]"
_EULER_ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")


def bake(
    context: bpy.types.Context,
    *,
    armature: bpy.types.Object,
    joints: np.ndarray,
    features: np.ndarray | None = None,
    contacts: np.ndarray | None = None,
    fps: float = FPS,
    preset: str | BoneMap | None = None,
    root_motion: str = "hips",
    foot_cleanup: bool = True,
    action_name: str = "Kinetext",
    push_to_nla: bool = False,
    report: Report | None = None,
    frame_start: int | None = None,
    key_tolerance: KeyTolerance | None = None,
) -> bpy.types.Action:
    """Key ``joints`` (T, 22, 3), metres, Y up, onto ``armature``; returns the new Action.

    features: (T or T-1, 263) HumanML3D features; their foot contacts drive the foot
    clean-up and say which frames stand on the floor (272-dim ones have none: the clean-up
    is then skipped, with a warning, and their generated joint rotations give the bones
    their twist). contacts: (T, 4) those contacts
    alone, when no features are given. fps: the clip's rate; it is resampled to the
    scene's. preset: a preset or saved map name, a BoneMap, or None/"AUTO" to detect it
    from the bone names. root_motion: "in_place" | "root_bone" | "hips" (any case).
    action_name: the prompt; Blender makes it unique. frame_start: first frame (None: the
    scene's). key_tolerance: keep only the keys needed to stay within it (None: a key on
    every frame). On the canonical armature every bone head lands on its joint. Raises
    MotionError before touching the scene when the rig lacks mapped bones or an argument
    is wrong.
    """
    say = report or (lambda _level, _msg: None)
    if armature is None or armature.type != "ARMATURE":
        raise MotionError(f"bake needs an armature object, got {getattr(armature, 'name', None)!r}")
    check_bakeable(armature)
    mode = root_motion.lower()
    if mode not in ROOT_MOTION_MODES:
        raise MotionError(f"root motion must be one of {', '.join(ROOT_MOTION_MODES)}")
    bone_map = rig_check.map_for(armature, preset, user_map_folder())
    rig_check.check_keys_show(armature, bone_map, mode)
    ik = rig_check.ik_limbs(armature) if bone_map.name == "rigify_fk" else []
    if ik:
        say({"WARNING"}, f"the FK keys show once the IK-FK switches are at 1 (FK); now below "
                         f"1 on: {', '.join(ik)}")  # fmt: skip
    rotations = _generated_rotations(features, context.scene, fps)  # a 272 clip's, or None
    joints, contacts = _clip_at_scene_rate(context.scene, joints, features, contacts, fps, say)
    if foot_cleanup and contacts is None:
        say({"WARNING"}, "no foot contacts given: foot clean-up skipped")
    tracks = retarget(
        joints,
        rest_pose(armature),
        bone_map,
        root_motion=mode,
        scale=units_per_metre(context.scene),
        contacts=contacts,
        match_joints=is_canonical(armature),
        foot_cleanup=foot_cleanup,
        rotations=rotations,
    )
    for note in tracks.notes:
        say({"INFO"}, note)
    start = context.scene.frame_start if frame_start is None else int(frame_start)
    action = write_action(armature, tracks, action_name, start, push_to_nla, say,
                          key_tolerance, metres_per_unit(context.scene, armature))  # fmt: skip
    say({"INFO"}, f"baked '{action.name}' ({bone_map.name} map) on frames "
                  f"{start}-{start + tracks.num_frames - 1}")  # fmt: skip
    return action


@dataclass(frozen=True)
class KeyTolerance:
    """How far the played pose may stray from the full bake: each bone's rotation in
    degrees, its location in centimetres (see ``engine.edit.key_reduction``)."""

    degrees: float = 0.5
    cm: float = 0.5


def metres_per_unit(scene: bpy.types.Scene, armature: bpy.types.Object) -> float:
    """Metres in one unit of the armature's pose locations (object scale, scene units)."""
    size = abs(np.linalg.det(np.array(armature.matrix_world.to_3x3()))) ** (1.0 / 3.0)
    return size / units_per_metre(scene)


def check_bakeable(armature: bpy.types.Object) -> None:
    """States in which Blender would not take a new Action or would read stale bones."""
    if armature.mode == "EDIT":
        raise MotionError(f"'{armature.name}' is in Edit Mode: switch to Object or Pose Mode")
    anim = armature.animation_data
    if anim is not None and anim.use_tweak_mode:
        raise MotionError(f"'{armature.name}' is in NLA tweak mode: leave it to bake")
    if armature.library is not None:
        raise MotionError(f"'{armature.name}' is linked from another file: make it local first")


def user_map_names() -> list[str]:
    """Names of the bone maps the user saved (for the preset menu beside the presets)."""
    return presets.user_map_names(user_map_folder())


def save_user_bone_map(bone_map: BoneMap) -> Path:
    """Save an edited map under its name; ``bake(preset=name)`` then finds it."""
    return presets.save_user_map(bone_map, user_map_folder())


def _generated_rotations(features, scene, fps: float) -> np.ndarray | None:
    """A 272 clip's generated local joint rotations (T', 22, 3, 3) at the scene's rate, whose
    twist the bones take; None for any other features. Resampled like the joints: each
    joint's quaternion interpolated linearly between the two nearest frames, renormalised."""
    if features is None or np.shape(features)[-1:] != (FEATURE_DIM_272,):
        return None
    import torch  # the 272 decoding is the engine's torch code; generating needed torch too

    from ..engine.motion.representation_272 import rotations_from_272

    local, _ = rotations_from_272(torch.as_tensor(np.asarray(features), dtype=torch.float64))
    quats = qfix(matrix_to_quat(local.numpy()))  # (T, 22, 4), signs continuous in time
    rate = scene_fps(scene)
    if abs(rate - fps) >= 1e-6:
        quats = resample(quats, fps, rate)
        quats /= np.linalg.norm(quats, axis=-1, keepdims=True)
    return quat_to_matrix(quats)


def _clip_at_scene_rate(scene, joints, features, contacts, fps: float, say: Report):
    """Joints (T', 22, 3) and contacts (T', 4) or None at the scene's frame rate."""
    joints = np.asarray(joints, dtype=np.float64)
    if features is not None and np.shape(features)[-1:] == (FEATURE_DIM_272,):
        features = None  # MoLingo's 272 representation has no foot-contact channel
    if features is not None:
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != FOOT_CONTACT.stop:
            raise MotionError(f"features must be (T, {FOOT_CONTACT.stop}), got {features.shape}")
        contacts = features[:, FOOT_CONTACT]
    if contacts is not None:
        contacts = np.asarray(contacts, dtype=np.float64)
        if contacts.ndim != 2 or contacts.shape[1] != 4:
            raise MotionError(f"foot contacts must be (T, 4), got {contacts.shape}")
        if len(contacts) == len(joints) - 1:
            contacts = np.concatenate([contacts, contacts[-1:]])
    rate = scene_fps(scene)
    if abs(rate - fps) < 1e-6 or joints.ndim != 3 or not len(joints):
        return joints, contacts
    source_frames = len(joints)
    joints = resample(joints, fps, rate)
    if contacts is not None:
        nearest = np.minimum(np.rint(np.arange(len(joints)) * fps / rate), source_frames - 1)
        contacts = contacts[nearest.astype(int)]
    say({"INFO"}, f"resampled the clip from {fps:g} to the scene's {rate:g} fps")
    return joints, contacts


def rest_pose(armature: bpy.types.Object) -> RestPose:
    """The armature's bones at rest (armature space), parents first, for ``retarget``."""
    bones = list(armature.data.bones)
    order, todo = [], [b for b in bones if b.parent is None]
    while todo:  # breadth first: parents before children whatever Blender's order
        bone = todo.pop(0)
        order.append(bone)
        todo.extend(bone.children)
    index = {b.name: i for i, b in enumerate(order)}
    return RestPose(
        names=[b.name for b in order],
        parents=[index[b.parent.name] if b.parent else -1 for b in order],
        heads=np.array([b.head_local for b in order], dtype=np.float64).reshape(-1, 3),
        rotations=np.array([b.matrix_local.to_3x3() for b in order]).reshape(-1, 3, 3),
        object_matrix=np.array(armature.matrix_world),
        connected=np.array([b.use_connect for b in order], dtype=bool),
    )


# ----------------------------------------------------------------------------- writing


def write_action(
    armature: bpy.types.Object,
    tracks: PoseTracks,
    name: str,
    frame_start: int,
    push_to_nla: bool = False,
    report: Report | None = None,
    key_tolerance: KeyTolerance | None = None,
    metres_per_unit: float = 1.0,
) -> bpy.types.Action:
    """A new Action holding ``tracks`` on ``armature`` (see the module's doc for the rules).

    key_tolerance: reduce the keys (reported: how many were saved); metres_per_unit: the
    size of a pose-location unit, for the tolerance in cm. If anything fails half way, the
    new Action and NLA tracks are removed and the previous assignment restored before the
    error propagates.
    """
    say = report or (lambda _level, _msg: None)
    modes = {n: armature.pose.bones[n].rotation_mode for n in tracks.bone_names}
    counts = [0, 0]  # keys written, keys a key-per-frame bake would have written

    def fill(channelbag, frames: np.ndarray) -> None:
        counts[:] = _write_curves(channelbag, armature, tracks, frames, key_tolerance,
                                  metres_per_unit)  # fmt: skip

    try:
        action = new_action(armature, name, frame_start, tracks.num_frames, fill, push_to_nla,
                            report)  # fmt: skip
    except BaseException:
        for bone_name, mode in modes.items():
            armature.pose.bones[bone_name].rotation_mode = mode
        raise
    if key_tolerance is not None:
        kept, full = counts
        say({"INFO"}, f"key reduction kept {kept:,} of {full:,} keys (saved {full - kept:,}, "
                      f"{100 * (full - kept) / max(full, 1):.0f}%) within "
                      f"{key_tolerance.degrees:g} deg / {key_tolerance.cm:g} cm")  # fmt: skip
    return action


def new_action(
    owner: bpy.types.ID,
    name: str,
    frame_start: int,
    num_frames: int,
    fill: Callable[[bpy.types.ActionChannelbag, np.ndarray], None],
    push_to_nla: bool = False,
    report: Report | None = None,
) -> bpy.types.Action:
    """A new Action for ``owner`` (an object, a mesh's shape keys ...) that ``fill`` keys.

    fill(channelbag, frames) adds the curves; frames: (T,) the frame numbers. The owner's
    previous Action is stashed (unless an NLA strip uses it), the new one assigned or pushed
    to the NLA; if anything fails, all of that is undone before the error propagates.
    """
    say = report or (lambda _level, _msg: None)
    anim = owner.animation_data
    had_anim = anim is not None
    anim = anim or owner.animation_data_create()
    previous, previous_slot = anim.action, anim.action_slot
    action, new_tracks = None, []
    try:
        if previous is not None and not _on_nla(anim, previous):
            new_tracks.append(_stash(anim, previous, previous_slot))
            say({"INFO"}, f"kept the previous action '{previous.name}' on an NLA stash track")
        action = bpy.data.actions.new(name.strip() or "Kinetext")
        slot = action.slots.new(owner.id_type, owner.name)
        channelbag = anim_utils.action_ensure_channelbag_for_slot(action, slot)
        fill(channelbag, frame_start + np.arange(num_frames, dtype=np.float64))
        anim.action = action
        anim.action_slot = slot
        if push_to_nla:
            new_tracks.append(_push_down(anim, action, slot, frame_start))
    except BaseException:
        for track in new_tracks:
            anim.nla_tracks.remove(track)
        if action is not None:
            bpy.data.actions.remove(action)
        if had_anim:
            anim.action, anim.action_slot = previous, previous_slot
        else:
            owner.animation_data_clear()
        raise
    return action


def add_curve(channelbag, path: str, index: int, group: str, frames, values) -> None:
    """One linear F-curve keyed at ``frames`` (T,) with ``values`` (T,), in bulk."""
    linear = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value
    co = np.empty((len(frames), 2), dtype=np.float32)  # (T, 2): frame, value
    co[:, 0], co[:, 1] = frames, values
    fcurve = channelbag.fcurves.new(path, index=index, group_name=group)
    fcurve.keyframe_points.add(len(frames))
    fcurve.keyframe_points.foreach_set("co", co.ravel())
    fcurve.keyframe_points.foreach_set("interpolation", np.full(len(frames), linear, np.int32))


def _write_curves(
    channelbag,
    armature,
    tracks: PoseTracks,
    frames: np.ndarray,
    tolerance: KeyTolerance | None = None,
    metres_per_unit: float = 1.0,
) -> tuple[int, int]:
    """Every channel: keyframe_points.add, then co and interpolation by foreach_set; with a
    tolerance only the frames ``reduce_keys`` keeps per bone and channel kind. Returns
    (keys written, keys on every frame)."""
    counts = [0, 0]

    def curves(path: str, group: str, values: np.ndarray, error, limit: str) -> None:
        """values (T, C) -> C curves path[0..C-1] sharing their kept frames; error: the
        distance function, limit: which tolerance ("degrees" or "cm") bounds it."""
        if tolerance is None:
            kept = np.arange(len(frames))
        else:
            kept = reduce_keys(values, error, getattr(tolerance, limit))
        for i in range(values.shape[1]):
            add_curve(channelbag, path, i, group, frames[kept], values[kept, i])
        counts[0] += len(kept) * values.shape[1]
        counts[1] += len(frames) * values.shape[1]

    for k, bone_name in enumerate(tracks.bone_names):
        pose_bone = armature.pose.bones[bone_name]
        base = f'pose.bones["{bpy.utils.escape_identifier(bone_name)}"]'
        if bone_name in tracks.locations:
            curves(f"{base}.location", bone_name, tracks.locations[bone_name],
                   distance_cm(metres_per_unit), "cm")  # fmt: skip
        mode = pose_bone.rotation_mode
        if mode in _EULER_ORDERS:
            euler = _euler(tracks.rotations[:, k], mode)
            curves(f"{base}.rotation_euler", bone_name, euler, euler_degrees(mode), "degrees")
            continue
        pose_bone.rotation_mode = "QUATERNION"
        curves(f"{base}.rotation_quaternion", bone_name, tracks.rotations[:, k],
               quaternion_degrees, "degrees")  # fmt: skip
    return counts[0], counts[1]


def _euler(quats: np.ndarray, blender_order: str) -> np.ndarray:
    """(T, 4) -> (T, 3) radians in x, y, z slots for Blender's ``blender_order`` mode.

    Blender's "XYZ" applies X first: R = Rz Ry Rx, which is engine order "ZYX". Angles are
    unwrapped in time so interpolation never spins the long way round.
    """
    order = blender_order[::-1]
    angles = quat_to_euler(quats, order, degrees=False)  # (T, 3) in ``order``
    out = np.empty_like(angles)
    for i, axis in enumerate(order):
        out[:, "XYZ".index(axis)] = angles[:, i]
    return np.unwrap(out, axis=0)


def _on_nla(anim, action: bpy.types.Action) -> bool:
    return any(strip.action == action for track in anim.nla_tracks for strip in track.strips)


def _stash(anim, action: bpy.types.Action, slot) -> bpy.types.NlaTrack:
    """Keep ``action`` in the file on a muted NLA track, as the Action editor's stash does."""
    track = anim.nla_tracks.new()
    track.name = STASH_TRACK
    track.mute = True
    strip = track.strips.new(action.name, int(action.frame_range[0]), action)
    if slot is not None:
        strip.action_slot = slot
    return track


def _push_down(anim, action: bpy.types.Action, slot, frame_start: int) -> bpy.types.NlaTrack:
    """Move the new Action onto its own NLA track (the "Push Down" button)."""
    track = anim.nla_tracks.new()
    track.name = action.name
    strip = track.strips.new(action.name, frame_start, action)
    strip.action_slot = slot
    anim.action = None
    return track


# ----------------------------------------------------------------------------- benchmark


@dataclass
class BakeTiming:
    """Milliseconds per bake of ``frames`` frames x 22 bones: median and best of ``repeats``.

    write: a new Action and its keyframes from ready tracks; bake: the whole ``bake`` (rest
    pose, retargeting, writing). The best run is the cost when nothing else competes.
    """

    frames: int
    repeats: int
    write_ms: float
    bake_ms: float
    write_best_ms: float
    bake_best_ms: float


def bake_benchmark(
    context: bpy.types.Context,
    joints: np.ndarray | None = None,
    features: np.ndarray | None = None,
    frames: int = 196,
    repeats: int = 20,
) -> BakeTiming:
    """Time baking a clip (default: a walk-like synthetic one) onto a new canonical armature.

    joints: (T, 22, 3) metres at 20 fps, or None. features: (T, 263) to time the bake with
    foot clean-up, or None for none. Sets the scene to 20 fps and adds the armature to the
    file: run it on a fresh scene.
    """
    joints = _benchmark_clip(frames) if joints is None else np.asarray(joints, np.float64)
    armature = create_canonical_armature(context, "Kinetext Benchmark")
    context.scene.render.fps, context.scene.render.fps_base = FPS, 1.0
    tracks = retarget(joints, rest_pose(armature), SMPLX, match_joints=True)
    write, full = [], []
    for _ in range(repeats):  # each bake starts from a rig without animation, as a user's
        clock = time.perf_counter()
        action = write_action(armature, tracks, "benchmark", 1)
        write.append(time.perf_counter() - clock)
        _forget(armature, action)
        clock = time.perf_counter()
        action = bake(
            context,
            armature=armature,
            joints=joints,
            features=features,
            foot_cleanup=features is not None,
        )
        full.append(time.perf_counter() - clock)
        _forget(armature, action)
    ms = [1e3 * float(f(x)) for f in (np.median, np.min) for x in (write, full)]
    return BakeTiming(len(joints), repeats, *ms)


def _forget(armature: bpy.types.Object, action: bpy.types.Action) -> None:
    armature.animation_data_clear()
    bpy.data.actions.remove(action)


def _benchmark_clip(frames: int) -> np.ndarray:
    """(frames, 22, 3): a walk-like clip, every joint swinging, knees and elbows bent."""
    rng = np.random.default_rng(0)
    phase = rng.uniform(0, 2 * np.pi, size=(22, 3))
    t = np.arange(frames)[:, None, None] / FPS
    rotvec = 0.3 * np.sin(2 * np.pi * t + phase)  # (T, 22, 3) radians, one swing a second
    hinge = 0.7 + 0.4 * np.sin(2 * np.pi * t[:, 0, 0] + phase[:4, 0, None])  # (4, T)
    rotvec[:, [4, 5], :] = [1.0, 0.0, 0.0] * hinge[:2].T[..., None]  # knees bend back
    rotvec[:, [18, 19], :] = [-1.0, 0.0, 0.0] * hinge[2:].T[..., None]  # elbows forward
    angle = np.linalg.norm(rotvec, axis=-1)
    local = axis_angle_to_quat(rotvec / angle[..., None], angle)
    root = np.stack([np.zeros(frames), np.full(frames, 0.9), 0.05 * np.arange(frames)], axis=1)
    return forward_kinematics(local, root, PARENTS, CANONICAL_OFFSETS)
