"""The SMPL body in Blender, on a tiny made-up SMPL model written as the user's model folder.

The decisive check: after baking, Blender's evaluated mesh (armature modifier + corrective
shape keys, read through the depsgraph) lands on smplx's own forward-pass vertices for the
same fitted parameters. That holds only if the template, the vertex groups, the bone rest
frames, the rotation conversion and the axis turn are all right.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine" / "body"))  # smpl_fixtures
from addon_helpers import clear_scene, enabled, preferences  # noqa: E402
from smpl_fixtures import SMPL_PARENTS, known_motion, make_tiny_smpl, write_tiny_smpl_file  # noqa: E402

BLEND = 0.3  # each vertex 70 % on its joint, 30 % on the parent: real blending
PROMPT = "a person waves"
Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # rows: (x,y,z)->(x,-z,y)


@pytest.fixture(scope="module")
def addon(addon_pkg):
    with enabled(addon_pkg):
        yield addon_pkg


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("smpl-models")
    write_tiny_smpl_file(folder, blend=BLEND)
    return folder


@pytest.fixture
def scene(addon, model_folder):
    context = clear_scene()
    prefs = preferences()
    prefs.smpl_folder, prefs.smpl_model, prefs.smpl_gender = str(model_folder), "SMPL", "NEUTRAL"
    prefs.smpl_correctives, prefs.device = True, "CPU"
    return context


def add_variation(context, frames: int = 6, seed: int = 1) -> None:
    """A generated-looking clip: the joints of known SMPL motion, listed in the panel."""
    pytest.importorskip("smplx")
    from kinetext.addon import results
    from kinetext.addon.operators import results_folder

    from engine.body.smpl_fit import load_body_model

    joints, *_ = known_motion(load_body_model(make_tiny_smpl(blend=BLEND)), frames, seed)
    clip = results.Clip(joints.astype(np.float32), np.zeros((frames, 263), np.float32), 20,
                        PROMPT, 0)  # fmt: skip
    item = context.scene.kinetext.variation_list.add()
    item.key = results.put(clip, results_folder())
    item.prompt, item.frames, item.fps, item.name = PROMPT, frames, 20, PROMPT


def the_fit(context, index: int = 0):
    from kinetext.addon.smpl_operators import fit_key, stored_fit

    item = context.scene.kinetext.variation_list[index]
    return stored_fit(fit_key(item.key, "smpl", "neutral"))


def bodies():
    from kinetext.addon.smpl_body import BODY_PROPERTY

    return [o for o in bpy.data.objects if o.type == "ARMATURE" and BODY_PROPERTY in o.data]


def smplx_output(fit, model_folder):
    """smplx's vertices and joints (T, ., 3), metres Y up, for the fitted parameters."""
    import torch

    from engine.body.smpl_fit import load_body_model

    body = load_body_model(model_folder)
    poses = torch.as_tensor(fit.poses)
    with torch.no_grad():
        out = body(betas=torch.as_tensor(fit.betas)[None].expand(len(poses), -1),
                   global_orient=poses[:, :3], body_pose=poses[:, 3:],
                   transl=torch.as_tensor(fit.trans))  # fmt: skip
    return out.vertices.numpy().astype(np.float64), out.joints.numpy().astype(np.float64)


def evaluated_vertices(context, mesh, frame: int) -> np.ndarray:
    """(V, 3) world-space vertices of the evaluated mesh (modifiers and shape keys) at frame."""
    context.scene.frame_set(frame)
    evaluated = mesh.evaluated_get(context.evaluated_depsgraph_get())
    data = evaluated.to_mesh()
    co = np.empty(len(data.vertices) * 3, dtype=np.float32)
    data.vertices.foreach_get("co", co)
    evaluated.to_mesh_clear()
    world = np.array(evaluated.matrix_world)
    return co.reshape(-1, 3) @ world[:3, :3].T + world[:3, 3]


@pytest.mark.parametrize("scale_length", [1.0, 0.01])
def test_fit_body_builds_a_skinned_body_that_moves_like_smplx(scene, model_folder, scale_length):
    scene.scene.unit_settings.scale_length = scale_length  # 0.01: a scene in centimetres
    units = 1.0 / scale_length
    add_variation(scene)
    assert bpy.ops.motion.fit_body(steps=3) == {"FINISHED"}
    (armature,) = bodies()
    (mesh,) = armature.children
    fit = the_fit(scene)
    model = make_tiny_smpl(blend=BLEND)
    vertices, joints = smplx_output(fit, model_folder)

    assert (len(mesh.data.vertices), len(mesh.data.polygons)) == (240, 100)
    names = [g.name for g in mesh.vertex_groups]
    assert len(names) == 24 and names[:3] == ["pelvis", "left_hip", "right_hip"]
    weights = np.zeros((240, 24))
    for vertex in mesh.data.vertices:
        for element in vertex.groups:
            assert element.weight > 0  # zero weights are left out
            weights[vertex.index, element.group] = element.weight
    np.testing.assert_allclose(weights, model.weights, atol=1e-6)
    assert [m.type for m in mesh.modifiers] == ["ARMATURE"] and mesh.modifiers[0].object == armature

    # The armature's rest joints are the model's joints for the fitted shape.
    rest_body = smplx_output(SimpleNamespace(poses=np.zeros((1, 72), np.float32),
                                             trans=np.zeros((1, 3), np.float32),
                                             betas=fit.betas), model_folder)[1][0, :24]  # fmt: skip
    heads = np.array([armature.data.bones[n].head_local for n in names])
    np.testing.assert_allclose(heads, rest_body @ Z_UP * units, atol=1e-5 * units)
    for j, p in enumerate(SMPL_PARENTS):
        parent = armature.data.bones[names[j]].parent
        assert (parent.name if parent else None) == (names[p] if p >= 0 else None)

    # After baking, Blender's evaluated mesh is smplx's mesh, frame by frame.
    errors = [np.abs(evaluated_vertices(scene, mesh, 1 + t) / units - vertices[t] @ Z_UP).max()
              for t in (0, 2, 5)]  # fmt: skip
    assert max(errors) < 1e-4, errors  # metres
    scene.scene.frame_set(6)
    posed = armature.evaluated_get(scene.evaluated_depsgraph_get())
    pelvis = np.array(posed.matrix_world @ posed.pose.bones["pelvis"].head)
    np.testing.assert_allclose(pelvis, joints[5, 0] @ Z_UP * units, atol=1e-5 * units)

    action = armature.animation_data.action
    assert action.name == PROMPT
    key_action = mesh.data.shape_keys.animation_data.action
    assert key_action.name == f"{PROMPT} (correctives)"
    assert len(mesh.data.shape_keys.key_blocks) == 1 + 23 * 9


def test_a_second_fit_reuses_the_body_and_keeps_the_users_action(scene):
    add_variation(scene)
    assert bpy.ops.motion.fit_body(steps=3) == {"FINISHED"}
    (armature,) = bodies()
    first = armature.animation_data.action
    bone = armature.pose.bones["left_elbow"]  # the user keys the elbow in their own action
    users = bpy.data.actions.new("my elbow")
    armature.animation_data.action = users
    bone.rotation_quaternion = (0.9, 0.3, 0.0, 0.0)
    bone.keyframe_insert("rotation_quaternion", frame=3)
    keys_before = [tuple(k.co) for fc in users.layers[0].strips[0].channelbags[0].fcurves
                   for k in fc.keyframe_points]  # fmt: skip
    objects_before = sorted(o.name for o in bpy.data.objects)

    assert bpy.ops.motion.fit_body(steps=3) == {"FINISHED"}
    assert bodies() == [armature] and sorted(o.name for o in bpy.data.objects) == objects_before
    new = armature.animation_data.action
    assert new not in (first, users) and new.name == f"{PROMPT}.001"
    keys_after = [tuple(k.co) for fc in users.layers[0].strips[0].channelbags[0].fcurves
                  for k in fc.keyframe_points]  # fmt: skip
    assert keys_after == keys_before
    stashed = [s.action for t in armature.animation_data.nla_tracks for s in t.strips]
    assert users in stashed and first.name in bpy.data.actions


def test_a_bake_that_fails_leaves_the_body_as_it_was(scene, monkeypatch):
    from kinetext.addon import bake
    from kinetext.engine.errors import MotionError

    add_variation(scene)
    assert bpy.ops.motion.fit_body(steps=3) == {"FINISHED"}
    (armature,) = bodies()
    (mesh,) = armature.children
    keys = mesh.data.shape_keys

    def state():
        return (
            snapshot(),
            armature.animation_data.action,
            keys.animation_data.action,
            len(armature.animation_data.nla_tracks),
            len(keys.animation_data.nla_tracks),
        )

    before = state()

    def broken(*args, **kwargs):
        raise MotionError("the rig refused the keys")

    monkeypatch.setattr(bake, "write_action", broken)  # after the correctives were written
    with pytest.raises(RuntimeError, match="the rig refused the keys"):
        bpy.ops.motion.fit_body(steps=3)  # the same clip: the same body, reused
    assert state() == before
    clear_scene()
    add_variation(bpy.context)
    before = snapshot()
    with pytest.raises(RuntimeError, match="the rig refused the keys"):
        bpy.ops.motion.fit_body(steps=3)  # a new body: removed again
    assert snapshot() == before and not bodies()


def test_export_writes_the_fit_and_reads_back(scene, tmp_path):
    from kinetext.engine.io.amass import load_amass

    add_variation(scene)
    path = tmp_path / "wave.npz"
    with pytest.raises(RuntimeError, match="press Fit Body first"):
        bpy.ops.motion.export_amass(filepath=str(path))
    assert not path.exists()
    assert bpy.ops.motion.fit_body(steps=3) == {"FINISHED"}
    assert bpy.ops.motion.export_amass(filepath=str(path)) == {"FINISHED"}
    fit, back = the_fit(scene), load_amass(path)
    np.testing.assert_array_equal(back.poses, fit.poses)
    np.testing.assert_array_equal(back.trans, fit.trans)
    np.testing.assert_array_equal(back.betas, fit.betas)
    assert (back.model_type, back.gender, back.fps) == ("smpl", "neutral", 20.0)
    assert back.poses.shape == (6, 72)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wave.npz"]  # written atomically


def snapshot() -> dict:
    return {
        "objects": sorted(o.name for o in bpy.data.objects),
        "actions": sorted(a.name for a in bpy.data.actions),
        "meshes": sorted(m.name for m in bpy.data.meshes),
    }


class Layout:
    """Records what a panel draws: label texts, operators, and ``enabled`` per operator."""

    def __init__(self, log=None, enabled=True):
        object.__setattr__(self, "log", [] if log is None else log)
        object.__setattr__(self, "enabled", enabled)

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)

    def __getattr__(self, name):
        def call(*args, **kwargs):
            if name == "label":
                self.log.append(("label", kwargs.get("text", "")))
            if name == "operator":
                self.log.append(("operator", args[0], self.enabled))
                return SimpleNamespace()
            return Layout(self.log, self.enabled)

        return call

    def text(self) -> str:
        return " ".join(" ".join(e[1] for e in self.log if e[0] == "label").split())

    def operators(self) -> dict[str, bool]:
        return {e[1]: e[2] for e in self.log if e[0] == "operator"}


def draw_panel() -> Layout:
    from kinetext.addon.smpl_operators import KINETEXT_PT_smpl_body

    layout = Layout()
    KINETEXT_PT_smpl_body.draw(SimpleNamespace(layout=layout), bpy.context)
    return layout


def test_panel_when_ready_names_the_model_and_offers_fit(scene):
    add_variation(scene)
    layout = draw_panel()
    assert "SMPL, neutral: SMPL_NEUTRAL.npz" in layout.text()
    assert layout.operators() == {"motion.fit_body": True, "motion.export_amass": False}


@pytest.mark.parametrize("absent", ["smplx", "model file"])
def test_without_smplx_or_model_the_panel_says_so_and_fit_refuses(scene, monkeypatch, tmp_path,
                                                                    absent):  # fmt: skip
    from kinetext.addon import jobs

    add_variation(scene)
    if absent == "smplx":
        monkeypatch.setitem(sys.modules, "smplx", None)  # what Python does for a missing module
        expected = "need the optional package smplx"
    else:
        preferences().smpl_folder = str(tmp_path)  # a folder without model files
        expected = f"No SMPL_NEUTRAL model file in {tmp_path}"
    layout = draw_panel()
    squeeze = lambda text: "".join(text.split())  # noqa: E731  (wrapped lines break at "-")
    assert squeeze(expected) in squeeze(layout.text())
    assert layout.operators()["motion.fit_body"] is False
    assert "preferences.addon_show" in layout.operators()
    before = snapshot()
    with pytest.raises(RuntimeError, match=expected):
        bpy.ops.motion.fit_body(steps=3)
    assert snapshot() == before and jobs.current() is None
    assert scene.window_manager.kinetext.status_level == "ERROR"
    if absent == "smplx":  # the rest of the add-on is untouched: bake still works
        from addon_helpers import mixamo_rig

        rig = mixamo_rig()
        scene.scene.kinetext.target = rig
        assert bpy.ops.motion.bake(variation=0) == {"FINISHED"}


def test_preferences_show_the_smpl_settings_and_status(scene, tmp_path):
    from kinetext.addon.preferences import draw_smpl

    layout = Layout()
    draw_smpl(layout, preferences(), bpy.context)
    assert "smplx: installed" in layout.text() or "smplx: not installed" in layout.text()
    assert "Model file:" in layout.text() and "SMPL_NEUTRAL.npz" in layout.text()
    preferences().smpl_folder = str(tmp_path)
    layout = Layout()
    draw_smpl(layout, preferences(), bpy.context)
    assert "Model file: not found" in layout.text()


def test_cancelled_fit_changes_nothing_and_esc_cancels_the_modal(scene):
    from kinetext.addon import jobs
    from kinetext.addon.smpl_operators import (
        FIT_LABEL,
        MOTION_OT_fit_body,
        build_fit_request,
        run_fit,
    )

    add_variation(scene, frames=30)
    before = snapshot()
    op = SimpleNamespace(variation=-1, steps=0)  # the default (many) steps: slow enough
    job = jobs.begin(build_fit_request(op, bpy.context), run_fit, FIT_LABEL)
    job.start()
    while job.progress == 0.0 and not job.done:
        threading.Event().wait(0.01)
    reports = []
    operator = SimpleNamespace(_job=job, _timer=None, report=lambda lvl, msg: reports.append(msg))
    operator._stop_timer = lambda context: None
    operator._collect = lambda context, job: MOTION_OT_fit_body._collect(operator, context, job)
    operator._give_up = lambda context: MOTION_OT_fit_body._give_up(operator, context)
    escape = SimpleNamespace(type="ESC", value="PRESS")
    assert MOTION_OT_fit_body.modal(operator, bpy.context, escape) == {"CANCELLED"}  # at once
    assert reports == ["Body fit cancelled: nothing was changed"] and jobs.current() is None
    assert job.wait(30) and job.cancelled and not jobs.abandoned()  # its worker stopped
    assert snapshot() == before and not bodies()
