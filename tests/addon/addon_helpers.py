"""Helpers for the extension tests: a tiny random checkpoint, the add-on enabled with its
preferences, and a clean scene.

The add-on is registered by calling ``register()`` on ``kinetext.addon`` (the ``addon_pkg``
fixture); Blender's add-on list then needs an entry named after the package ("kinetext")
for ``context.preferences.addons[...].preferences`` to exist, as it does once installed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace

import bpy
import numpy as np
import torch
from kinetext.engine.motion import quaternion, rig_pose, skeleton

from engine.models.autoencoder import AutoencoderConfig, MotionAutoencoder
from engine.models.molingo import MoLingo, MoLingoConfig
from engine.store.checkpoint import save_checkpoint
from engine.text_encoder import TextEncoderConfig

ADDON_ID = "kinetext"
TEXT_DIM = 384  # the bundled MiniLM


def save_tiny_checkpoint(folder: Path) -> Path:
    """An untrained tiny MoLingo + autoencoder checkpoint (loads and samples in ms)."""
    torch.manual_seed(0)
    models = {
        "autoencoder": MotionAutoencoder(AutoencoderConfig.tiny().replace(text_dim=TEXT_DIM)),
        "molingo": MoLingo(MoLingoConfig.tiny().replace(text_dim=TEXT_DIM)),
    }
    rng = np.random.default_rng(0)
    return save_checkpoint(
        folder,
        models,
        text_encoder=TextEncoderConfig(),
        normalizer_mean=rng.normal(0, 0.1, 263),
        normalizer_std=rng.uniform(0.05, 0.2, 263),
        fps=20,
        license="random weights, no training data",
        attribution="kinetext tests",
    )


def preferences() -> bpy.types.AddonPreferences:
    """The add-on's preferences, adding its entry to Blender's add-on list if a factory reset
    (another test's fixture) removed it."""
    addons = bpy.context.preferences.addons
    if addons.get(ADDON_ID) is None:
        addons.new().module = ADDON_ID
    return addons[ADDON_ID].preferences


@contextlib.contextmanager
def enabled(addon_pkg: ModuleType, checkpoint: Path | None = None) -> Iterator[ModuleType]:
    """The add-on registered (and its preferences pointing at ``checkpoint``) while inside."""
    addon_pkg.register()
    try:
        if checkpoint is not None:
            use_checkpoint(checkpoint)
        yield addon_pkg
    finally:
        addon_pkg.unregister()
        entry = bpy.context.preferences.addons.get(ADDON_ID)
        if entry is not None:
            bpy.context.preferences.addons.remove(entry)


def use_checkpoint(folder: Path) -> None:
    prefs = preferences()
    prefs.checkpoint_source = "FOLDER"
    prefs.checkpoint_folder = str(folder)
    prefs.device = "CPU"


def clear_scene() -> bpy.types.Context:
    """No objects, actions or armatures; the panel at its defaults; the scene at 20 fps."""
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    for collection in (bpy.data.actions, bpy.data.armatures, bpy.data.meshes):
        for block in list(collection):
            collection.remove(block)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 20, 1.0
    scene.frame_start = 1
    if hasattr(scene, "kinetext"):  # every panel setting back to its default
        for name in scene.kinetext.bl_rna.properties.keys():
            if name != "rna_type":
                scene.kinetext.property_unset(name)
    if hasattr(scene, "kinetext_bone_map"):
        scene.kinetext_bone_map.pairs.clear()
        scene.kinetext_bone_map.name = ""
    return bpy.context


def mixamo_rig(name: str = "Rig", drop: tuple[str, ...] = ()) -> bpy.types.Object:
    """A Mixamo-named armature (the canonical rest pose), without the bones in ``drop``."""
    from kinetext.addon.armature import create_canonical_armature
    from kinetext.engine.retarget.rig import PRESETS

    obj = create_canonical_armature(bpy.context, name)
    bpy.ops.object.mode_set(mode="EDIT")
    for joint, bone in PRESETS["mixamo"].bones.items():
        edit_bone = obj.data.edit_bones[joint]
        if bone in drop:
            obj.data.edit_bones.remove(edit_bone)
        else:
            edit_bone.name = "mixamorig:" + bone
    bpy.ops.object.mode_set(mode="OBJECT")
    return obj


# ---- rigs built the way other tools build them ---------------------------------------------

TAIL_CHILD = {0: 3, 9: 12}
NAMES, PARENTS = skeleton.JOINT_NAMES, skeleton.PARENTS


def _mixamo_names() -> dict[str, str]:
    from kinetext.engine.retarget.rig import PRESETS

    return {j: "mixamorig:" + b for j, b in PRESETS["mixamo"].bones.items()}


MIXAMO = _mixamo_names()
"""Canonical joint -> a Mixamo download's bone name."""


def rest_joints(lengths: np.ndarray | None = None) -> np.ndarray:
    """(22, 3) Y-up metres; bone j scaled by lengths[j]; arms turned out into a T-pose."""
    offsets = skeleton.CANONICAL_OFFSETS * (1.0 if lengths is None else lengths[:, None])
    one = np.tile([1.0, 0, 0, 0], (1, 22, 1))
    joints = rig_pose.forward_kinematics(one, np.zeros((1, 3)), PARENTS, offsets)[0]
    joints[:, 1] -= joints[:, 1].min()
    for shoulder, chain, sign in ((16, (18, 20), 1.0), (17, (19, 21), -1.0)):
        turn = quaternion.axis_angle_to_quat(np.array([0.0, 0, 1]), np.array(sign * np.pi / 2))
        for j in chain:
            joints[j] = joints[shoulder] + quaternion.qrot(turn, joints[j] - joints[shoulder])
    return joints


def build_rig(context, names: dict, joints: np.ndarray, fbx: bool, root: str | None = None):
    """An armature with bone names[joint] from each joint to its child; extra end bones.

    fbx: armature space Y-up centimetres under an X+90 degrees, 0.01 scale object (what
    Blender's FBX importer makes of a Mixamo download); else Z-up metres, identity object.
    """
    data = bpy.data.armatures.new("rig")
    obj = bpy.data.objects.new("rig", data)
    context.scene.collection.objects.link(obj)
    to_arm = (lambda p: np.asarray(p) * 100.0) if fbx else (lambda p: np.array([p[0], -p[2], p[1]]))
    context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    rng = np.random.default_rng(7)
    made = {}
    if root:
        made["root"] = data.edit_bones.new(root)
        made["root"].head, made["root"].tail = to_arm([0, 0, 0]), to_arm([0, 0, -0.2])
    for j, name in enumerate(NAMES):
        kids = [c for c, p in enumerate(PARENTS) if p == j]
        tail = (
            joints[TAIL_CHILD.get(j, kids[0])]
            if kids
            else joints[j] + (joints[j] - joints[PARENTS[j]]) * 0.5
        )
        bone = data.edit_bones.new(names[name])
        bone.head, bone.tail = to_arm(joints[j]), to_arm(tail)
        bone.roll = rng.uniform(-np.pi, np.pi)
        parent = made.get(PARENTS[j], made.get("root"))
        if parent is not None:
            bone.parent = parent
            bone.use_connect = j not in (1, 2, 3, 13, 14) and PARENTS[j] >= 0  # chains connect
        made[j] = bone
    end = data.edit_bones.new("mixamorig:HeadTop_End")  # an unmapped leaf, as Mixamo has
    end.head, end.tail, end.parent = (
        made[15].tail,
        made[15].tail + (made[15].tail - made[15].head),
        made[15],
    )
    bpy.ops.object.mode_set(mode="OBJECT")
    if fbx:
        obj.rotation_euler = (np.pi / 2, 0, 0)
        obj.scale = (0.01, 0.01, 0.01)
    obj.location = (0.5, -0.3, 0.0)
    context.view_layer.update()
    return obj


# ---- drawing panels headless ---------------------------------------------------------------

CONTAINERS = {"row", "column", "box", "split", "grid_flow", "column_flow"}
UILAYOUT = bpy.types.UILayout.bl_rna


class OperatorRecord:
    """What ``layout.operator`` returns: accepts only the operator's own properties."""

    def __init__(self, idname: str, log: list):
        module, name = idname.split(".")
        rna = getattr(getattr(bpy.ops, module), name).get_rna_type()  # KeyError if unknown
        object.__setattr__(self, "_props", set(rna.properties.keys()))
        object.__setattr__(self, "_log", log)
        object.__setattr__(self, "idname", idname)

    def __setattr__(self, name, value):
        assert name in self._props, f"{self.idname} has no property {name!r}"
        self._log.append(("set", self.idname, name, value))


class RecordingLayout:
    """Records UILayout calls into a shared log; children share the log."""

    def __init__(self, log: list | None = None):
        object.__setattr__(self, "log", [] if log is None else log)

    def __setattr__(self, name, value):
        assert name in UILAYOUT.properties, f"UILayout has no attribute {name!r}"
        self.log.append(("attr", name, value))

    def __getattr__(self, name):
        assert name in UILAYOUT.functions, f"UILayout has no function {name!r}"
        params = set(UILAYOUT.functions[name].parameters.keys())

        def call(*args, **kwargs):
            unknown = set(kwargs) - params
            assert not unknown, f"UILayout.{name} has no parameters {unknown}"
            self.log.append((name, args, kwargs))
            if name == "prop":
                data, prop = args[:2]
                assert prop in data.bl_rna.properties, f"{data} has no property {prop!r}"
            if name == "operator":
                return OperatorRecord(args[0], self.log)
            if name in CONTAINERS:
                return RecordingLayout(self.log)
            return None

        return call

    # queries over the log
    def calls(self, name: str) -> list:
        return [entry for entry in self.log if entry[0] == name]

    def texts(self) -> str:
        """All label texts as one line (wrapped messages read as written)."""
        return " ".join(" ".join(str(c[2].get("text", "")) for c in self.calls("label")).split())

    def operators(self) -> list[str]:
        return [c[1][0] for c in self.calls("operator")]

    def props(self) -> list[str]:
        return [c[1][1] for c in self.calls("prop")]


def draw(panel_class) -> RecordingLayout:
    layout = RecordingLayout()
    panel_class.draw(SimpleNamespace(layout=layout), bpy.context)
    return layout
