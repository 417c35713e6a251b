"""A fitted SMPL / SMPL-X body in Blender: an armature, a skinned mesh, and baked actions.

The engine (``engine.body.smpl_body``) gives the shaped rest template and the per-frame
channels; this module only writes them as Blender data:

- an armature with one bone per model joint, heads on the shaped rest joints, parents from
  the model's kinematic tree (the first 22 named as the canonical skeleton, so the "smplx"
  bone map also bakes generated clips straight onto it);
- a mesh of the shaped rest vertices and faces, one vertex group per joint holding the
  model's skinning weights, an Armature modifier, and (optionally) the model's
  pose-corrective blend shapes as relative shape keys;
- per bake a NEW action on the armature (joint rotations + root translation) and one on
  the shape keys (the corrective weights), written and stashed by ``bake.new_action`` like
  every other bake, so the user's actions are kept.

Linear blend skinning of that mesh plus the correctives is smplx's forward pass: the
evaluated mesh lands on smplx's vertices (the add-on tests measure it). Blender is Z up:
everything goes through the same (x, y, z) -> (x, -z, y) turn and scene-unit scale as the
canonical armature, so the body stands where the stick armature does.
"""

from __future__ import annotations

import bpy
import numpy as np

from ..engine.body.smpl_body import (
    BodyTemplate,
    body_tracks,
    bone_layout,
    corrective_weights,
    local_rotations,
)
from ..engine.body.smpl_fit import SMPLFit
from ..engine.errors import MotionError
from . import bake
from .armature import new_armature_object, units_per_metre

BODY_PROPERTY = "kinetext_smpl_body"
"""Armature data property: the signature (model, gender, shape, units) of the body."""
CORRECTIVE_RANGE = 2.0  # entries of R - I lie in [-2, 2]; shape-key sliders clamp to their range
_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # rows @ _Z_UP: Y->Z up


def body_signature(template: BodyTemplate, model_file: str, scale: float, correctives: bool) -> str:
    """What makes two bodies interchangeable: model file, gender, shape, units, correctives.

    Betas are rounded so that re-fitting the same clip (float noise) reuses the body.
    """
    shape = ",".join(f"{b:.4f}" for b in template.betas)
    return (f"{template.model_type}|{template.gender}|{model_file}|{scale:g}|"
            f"{int(correctives)}|{shape}")  # fmt: skip


def find_body(
    scene: bpy.types.Scene, signature: str
) -> tuple[bpy.types.Object, bpy.types.Object] | None:
    """(armature, mesh) of a body in ``scene`` built for ``signature``, or None."""
    for obj in scene.objects:
        if obj.type != "ARMATURE" or obj.data.get(BODY_PROPERTY) != signature:
            continue
        for child in obj.children:
            deformers = [m for m in child.modifiers if m.type == "ARMATURE"]
            if child.type == "MESH" and any(m.object == obj for m in deformers):
                return obj, child
    return None


def build_body(
    context: bpy.types.Context, template: BodyTemplate, signature: str, correctives: bool = True
) -> tuple[bpy.types.Object, bpy.types.Object]:
    """A new armature + skinned mesh of ``template`` in the active collection; (arm, mesh).

    Leaves the armature active and selected in Object Mode. If anything fails, what was
    made is removed before the error propagates.
    """
    scale = units_per_metre(context.scene)
    name = "SMPL-X Body" if template.model_type == "smplx" else "SMPL Body"
    armature = _armature(context, template, name, scale)
    made: list[bpy.types.ID] = [armature, armature.data]
    try:
        mesh = _mesh(context, template, f"{name} Mesh", scale, correctives, made)
        mesh.parent = armature
        modifier = mesh.modifiers.new("Armature", "ARMATURE")
        modifier.object = armature
    except BaseException:
        _remove(made)
        raise
    armature.data[BODY_PROPERTY] = signature
    return armature, mesh


def _armature(context, template: BodyTemplate, name: str, scale: float) -> bpy.types.Object:
    """One bone per joint, unconnected (the root bone also carries the translation)."""
    obj = new_armature_object(context, name)
    data = obj.data
    heads, tails = bone_layout(template, scale)
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        bones = []
        for j, bone_name in enumerate(template.names):
            bone = data.edit_bones.new(bone_name)
            bone.head, bone.tail = heads[j].tolist(), tails[j].tolist()
            bone.use_connect = False
            if template.parents[j] >= 0:
                bone.parent = bones[template.parents[j]]
            bones.append(bone)
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
    for pose_bone in obj.pose.bones:
        pose_bone.rotation_mode = "QUATERNION"
    return obj


def _mesh(context, template: BodyTemplate, name: str, scale: float, correctives: bool, made):
    """The shaped rest mesh with vertex groups (and corrective shape keys), linked."""
    vertices = template.vertices @ _Z_UP * scale  # (V, 3) scene units, Z up
    data = bpy.data.meshes.new(name)
    made.append(data)
    data.from_pydata(vertices.tolist(), [], template.faces.tolist())
    data.shade_smooth()
    data.update()
    obj = bpy.data.objects.new(name, data)
    made.insert(0, obj)
    (context.collection or context.scene.collection).objects.link(obj)
    _vertex_groups(obj, template)
    if correctives:
        _corrective_keys(obj, template, vertices, scale)
    return obj


def _vertex_groups(obj: bpy.types.Object, template: BodyTemplate) -> None:
    """One group per joint with the model's weights; vertices a joint does not move are left
    out of its group (Blender then skips them)."""
    for j, joint in enumerate(template.names):
        group = obj.vertex_groups.new(name=joint)
        column = template.weights[:, j]
        used = np.flatnonzero(column > 0.0)
        for weight in np.unique(column[used]):  # one call per distinct weight
            group.add(used[column[used] == weight].tolist(), float(weight), "REPLACE")


def _corrective_keys(obj, template: BodyTemplate, vertices: np.ndarray, scale: float) -> None:
    """Basis + one relative shape key per pose feature: the basis plus that blend shape."""
    obj.shape_key_add(name="Basis", from_mix=False)
    for k, offsets in enumerate(template.posedirs):  # (V, 3) metres Y up
        joint, element = divmod(k, 9)
        key = obj.shape_key_add(
            name=f"pose {template.names[joint + 1]} {element // 3}{element % 3}", from_mix=False
        )
        key.slider_min, key.slider_max = -CORRECTIVE_RANGE, CORRECTIVE_RANGE
        key.data.foreach_set("co", (vertices + offsets @ _Z_UP * scale).astype(np.float32).ravel())


def remove_body(armature: bpy.types.Object, mesh: bpy.types.Object) -> None:
    """Delete a body made by ``build_body``: both objects and their data."""
    _remove([mesh, armature, mesh.data, armature.data])


def _remove(made: list[bpy.types.ID]) -> None:
    for block in made:
        if isinstance(block, bpy.types.Object):
            bpy.data.objects.remove(block)
        elif isinstance(block, bpy.types.Mesh):
            bpy.data.meshes.remove(block)
        elif isinstance(block, bpy.types.Armature):
            bpy.data.armatures.remove(block)


def bake_fit(
    context: bpy.types.Context,
    *,
    armature: bpy.types.Object,
    mesh: bpy.types.Object,
    fit: SMPLFit,
    template: BodyTemplate,
    action_name: str,
    push_to_nla: bool = False,
    frame_start: int | None = None,
    report: bake.Report | None = None,
) -> tuple[bpy.types.Action, bpy.types.Action | None]:
    """Key ``fit`` on a body from ``build_body``: (armature action, shape-key action or None).

    Each is a new Action; the previous ones are stashed as every bake does. If the second
    write fails, the first is taken back, so the body is left as it was.
    """
    bake.check_bakeable(armature)
    missing = [n for n in template.names if n not in armature.data.bones]
    if missing:
        raise MotionError(f"'{armature.name}' is not this body's armature: no {missing[0]!r}")
    rotations = local_rotations(fit.poses, template)  # (T, J, 3, 3)
    rest = np.array([armature.data.bones[n].matrix_local.to_3x3() for n in template.names])
    tracks = body_tracks(rotations, fit.trans, template, rest, units_per_metre(context.scene))
    start = context.scene.frame_start if frame_start is None else int(frame_start)
    keys = mesh.data.shape_keys
    before = _animation_state(keys) if keys is not None else None
    key_action = None
    if keys is not None and len(keys.key_blocks) > 1:
        key_action = _write_correctives(keys, corrective_weights(rotations), action_name, start,
                                        push_to_nla, report)  # fmt: skip
    try:
        action = bake.write_action(armature, tracks, action_name, start, push_to_nla, report)
    except BaseException:
        if key_action is not None:
            _restore(keys, before, key_action)
        raise
    return action, key_action


def _write_correctives(keys, weights: np.ndarray, name: str, start: int, push_to_nla, report):
    """A new Action keying every corrective shape key's value (T, K) on the mesh's Key."""
    blocks = list(keys.key_blocks)[1:]  # the basis is not keyed
    if len(blocks) != weights.shape[1]:
        raise MotionError(f"the body has {len(blocks)} corrective shape keys, the fit drives "
                          f"{weights.shape[1]}: fit a new body")  # fmt: skip

    def fill(channelbag, frames: np.ndarray) -> None:
        for k, block in enumerate(blocks):
            path = f'key_blocks["{bpy.utils.escape_identifier(block.name)}"].value'
            bake.add_curve(channelbag, path, 0, "Pose correctives", frames, weights[:, k])

    return bake.new_action(keys, f"{name} (correctives)", start, len(weights), fill,
                           push_to_nla, report)  # fmt: skip


def _animation_state(owner: bpy.types.ID):
    anim = owner.animation_data
    if anim is None:
        return None
    return anim.action, anim.action_slot, {t.as_pointer() for t in anim.nla_tracks}


def _restore(owner: bpy.types.ID, state, action: bpy.types.Action) -> None:
    """Undo one ``bake.new_action`` on ``owner``: its tracks, its Action, the assignment."""
    anim = owner.animation_data
    for track in [t for t in anim.nla_tracks if state is None or t.as_pointer() not in state[2]]:
        anim.nla_tracks.remove(track)
    bpy.data.actions.remove(action)
    if state is None:
        owner.animation_data_clear()
    else:
        anim.action, anim.action_slot = state[0], state[1]
