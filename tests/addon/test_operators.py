"""The scripting API (bpy.ops.motion.*) with a tiny random checkpoint, and every bad input:
each gives a clear report and leaves the variations, objects and actions as they were."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from addon_helpers import (  # noqa: E402
    mixamo_rig,
)

from engine.io.bvh import read_bvh  # noqa: E402
from engine.motion.skeleton import JOINT_NAMES  # noqa: E402

PROMPT = "a person walks forward"


def generate(**options):
    options = {"prompt": PROMPT, "seconds": 2.0, "steps": 2, **options}
    return bpy.ops.motion.generate(**options)


def snapshot() -> dict:
    """What a failed operator must not change."""
    variations = bpy.context.scene.kinetext.variation_list
    return {
        "variations": [v.key for v in variations],
        "objects": sorted(o.name for o in bpy.data.objects),
        "actions": sorted(a.name for a in bpy.data.actions),
        "assigned": {
            o.name: (o.animation_data.action.name if o.animation_data.action else None,
                     [t.name for t in o.animation_data.nla_tracks])
            for o in bpy.data.objects if o.animation_data
        },
    }  # fmt: skip


def user_action(obj: bpy.types.Object) -> bpy.types.Action:
    """Give ``obj`` an action of the user's own: one key on the first bone's location."""
    bone = obj.pose.bones[0]
    bone.location = (0.0, 0.0, 0.25)
    bone.keyframe_insert("location", index=2, frame=1)
    return obj.animation_data.action


def test_generate_from_a_script_lists_the_engines_clips(scene, checkpoint):
    assert generate(seed=3, variations=2) == {"FINISHED"}
    entries = scene.scene.kinetext.variation_list
    assert [e.name for e in entries] == [f"{PROMPT} (1/2, seed 3)", f"{PROMPT} (2/2, seed 3)"]
    assert scene.scene.kinetext.active_variation == 0
    from kinetext.addon import results
    from kinetext.addon.operators import results_folder
    from kinetext.engine import pipeline  # the add-on runs it in its engine process

    expected = pipeline.generate(
        PROMPT, seconds=2.0, steps=2, seed=3, variations=2, checkpoint=checkpoint, device="cpu"
    )
    for i, entry in enumerate(entries):
        clip = results.get(entry.key, results_folder())
        assert (entry.frames, entry.fps, clip.prompt) == (40, 20, PROMPT)
        assert clip.info["sources"] == expected.diagnostics["sources"]  # where it came from
        # same seed and settings: the same clip (up to float summation order across threads)
        np.testing.assert_allclose(clip.joints, expected.joints[i], atol=1e-5)
        np.testing.assert_allclose(clip.features, expected.features[i], atol=1e-5)
    first, second = (results.get(e.key, results_folder()).joints for e in entries)
    assert not np.allclose(first, second)  # two different variations
    assert "2 variation(s) of 2.0 s ready" in scene.window_manager.kinetext.status


def test_the_clean_body_switch_reaches_the_engine(scene, checkpoint):
    """The panel's 'Clean body' (on by default) gives rigid bones; off, the raw joints."""
    from kinetext.addon import results
    from kinetext.addon.operators import results_folder
    from kinetext.engine import pipeline
    from kinetext.engine.motion.kinematics import bone_lengths

    panel = scene.scene.kinetext
    assert panel.clean_motion
    assert generate(seed=5, variations=1) == {"FINISHED"}
    clean = results.get(panel.variation_list[-1].key, results_folder()).joints
    assert bone_lengths(clean).std(axis=0).max() < 1e-5
    panel.clean_motion = False
    assert generate(seed=5, variations=1) == {"FINISHED"}
    raw = results.get(panel.variation_list[-1].key, results_folder()).joints
    expected = pipeline.generate(PROMPT, seconds=2.0, steps=2, seed=5, checkpoint=checkpoint,
                                 device="cpu", clean=False)  # fmt: skip
    np.testing.assert_allclose(raw, expected.joints[0], atol=1e-5)
    assert bone_lengths(raw).std(axis=0).max() > 1e-3  # the tiny random network's stretch


def test_unset_arguments_come_from_the_panel(scene):
    panel = scene.scene.kinetext
    panel.prompt, panel.seconds, panel.variations, panel.seed, panel.steps = "a jump", 1.0, 3, 7, 1
    assert bpy.ops.motion.generate() == {"FINISHED"}
    assert [(e.prompt, e.seed, e.frames) for e in panel.variation_list] == [("a jump", 7, 20)] * 3


def test_the_length_sliders_ends_make_the_longest_and_shortest_clips(scene):
    """The panel's slider at its maximum and minimum (32-bit floats: the maximum reads back as
    9.80000019), and the operator's own float argument, as a script passes it."""
    panel = scene.scene.kinetext
    slider = panel.bl_rna.properties["seconds"]
    panel.prompt, panel.steps = PROMPT, 1
    made = []
    for end in (slider.hard_max, slider.soft_max, slider.hard_min):
        panel.seconds = end
        assert bpy.ops.motion.generate() == {"FINISHED"}
        made.append((panel.seconds, panel.variation_list[-1].frames))
        assert "ready" in scene.window_manager.kinetext.status
        assert "asked for" not in scene.window_manager.kinetext.status  # no rounding note
    assert made[0][0] != 9.8 and made[0][0] == pytest.approx(9.8)  # really a float32
    assert [frames for _, frames in made] == [196, 196, 20]
    assert generate(seconds=9.8, steps=1) == {"FINISHED"}  # FloatProperty: float32 too
    assert panel.variation_list[-1].frames == 196


def test_the_panels_limits_and_generators_are_the_engines(scene, checkpoint):
    """The panel reads its slider ends and generator list from ``engine.generators``, and
    each generator it offers reaches the engine by its engine name."""
    from kinetext.addon import results
    from kinetext.addon.operators import results_folder
    from kinetext.engine import generators, pipeline

    props = scene.scene.kinetext.bl_rna.properties
    assert props["seconds"].hard_min == generators.MIN_SECONDS
    assert props["seconds"].hard_max == pytest.approx(generators.MAX_SECONDS)
    assert props["variations"].hard_max == generators.MAX_VARIATIONS
    assert props["steps"].hard_max == generators.MAX_STEPS
    assert props["guidance"].hard_max == generators.GUIDANCE_RANGE[1]
    offered = [item.identifier for item in props["generator"].enum_items]
    assert offered == ["AUTO", *(name.upper() for name in generators.GENERATORS)]
    panel = scene.scene.kinetext
    panel.generator = "MOLINGO"
    assert generate(seed=2, variations=1) == {"FINISHED"}
    made = results.get(panel.variation_list[-1].key, results_folder()).joints
    expected = pipeline.generate(PROMPT, seconds=2.0, steps=2, seed=2, generator="molingo",
                                 checkpoint=checkpoint, device="cpu")  # fmt: skip
    np.testing.assert_allclose(made, expected.joints[0], atol=1e-5)
    panel.generator = "MLAGEN"  # this checkpoint holds MoLingo only: the engine says so
    with pytest.raises(RuntimeError, match=r"no generator 'mlagen'; it has \['molingo'\]"):
        generate(seed=2, variations=1)
    panel.generator = "AUTO"


def test_a_prompt_longer_than_the_encoder_reads_is_flagged_in_the_panel(scene):
    from kinetext.addon.panel import KINETEXT_PT_generate
    from test_panel import draw

    panel, state = scene.scene.kinetext, scene.window_manager.kinetext
    panel.prompt = " ".join(["walk"] * 62) + " then jump high"  # 64 tokens with [CLS], [SEP]
    assert bpy.ops.motion.generate(steps=1) == {"FINISHED"}
    assert len(panel.variation_list) == 2  # made, and said what was not read
    assert state.status_level == "WARNING"
    shown = draw(KINETEXT_PT_generate).texts()
    assert "The prompt is longer than the text encoder reads (64 tokens)" in shown
    assert "last 3 token(s), from 'then jump high' on, were left out" in shown
    panel.prompt = PROMPT
    assert bpy.ops.motion.generate(steps=1) == {"FINISHED"}
    assert state.status_level == "INFO" and "left out" not in state.status


def test_bake_puts_a_new_action_on_the_rig_and_keeps_the_users(scene):
    generate(variations=2)
    rig = mixamo_rig()
    mine = user_action(rig)
    scene.scene.kinetext.target = rig
    assert bpy.ops.motion.bake(variation=1) == {"FINISHED"}
    action = rig.animation_data.action
    assert action is not mine and action.name == PROMPT
    assert mine.name in bpy.data.actions  # the user's action is kept, untouched
    (curve,) = mine.layers[0].strips[0].channelbags[0].fcurves
    assert [tuple(k.co) for k in curve.keyframe_points] == [(1.0, 0.25)]
    channelbag = action.layers[0].strips[0].channelbag(rig.animation_data.action_slot)
    hips = channelbag.fcurves.find('pose.bones["mixamorig:Hips"].rotation_quaternion', index=0)
    assert len(hips.keyframe_points) == 40  # one key per frame of the 2 s clip at 20 fps


def test_bake_arguments_pick_armature_preset_and_variation(scene):
    generate()
    rig = mixamo_rig("Other")
    assert bpy.ops.motion.bake(armature="Other", preset="mixamo", variation=0) == {"FINISHED"}
    assert rig.animation_data.action.name == PROMPT


def test_preview_shows_the_clip_on_one_canonical_skeleton(scene):
    generate(variations=2)
    assert bpy.ops.motion.preview(variation=0) == {"FINISHED"}
    assert bpy.ops.motion.preview(variation=1) == {"FINISHED"}
    (preview,) = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    assert len(preview.data.bones) == 22 and len(bpy.data.actions) == 1  # replaced, not piled
    assert not preview.animation_data.nla_tracks


def test_export_bvh_writes_the_clip_on_the_canonical_skeleton(scene, tmp_path):
    from kinetext.addon import results
    from kinetext.addon.operators import results_folder

    generate()
    path = tmp_path / "walk.bvh"
    assert bpy.ops.motion.export_bvh(filepath=str(path), variation=0) == {"FINISHED"}
    clip = results.get(scene.scene.kinetext.variation_list[0].key, results_folder())
    bvh = read_bvh(path)
    assert sorted(bvh.names) == sorted(JOINT_NAMES) and bvh.frame_time == pytest.approx(0.05)
    assert bvh.motion.shape[0] == 40
    root = bvh.world_positions()[:, bvh.names.index("pelvis")]
    np.testing.assert_allclose(root, clip.joints[:, 0], atol=1e-5)


def test_results_survive_clearing_the_list_and_a_lost_memory(scene):
    from kinetext.addon import results
    from kinetext.addon.operators import results_folder

    generate()
    key = scene.scene.kinetext.variation_list[0].key
    kept = results.get(key, results_folder())
    assert bpy.ops.motion.clear_variations() == {"FINISHED"}
    assert not scene.scene.kinetext.variation_list
    results.clear_memory()  # e.g. Blender restarted: the .npz cache still has it
    again = results.get(key, results_folder())
    np.testing.assert_array_equal(again.joints, kept.joints)
    assert (again.prompt, again.fps, again.seed) == (kept.prompt, kept.fps, kept.seed)


# ---- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize("prompt", ["", "   "])
def test_empty_prompt(scene, prompt):
    before = snapshot()
    with pytest.raises(RuntimeError, match="the prompt is empty"):
        generate(prompt=prompt)
    assert snapshot() == before


def test_no_armature_selected(scene):
    generate()
    bpy.ops.mesh.primitive_cube_add()  # active, but not an armature
    before = snapshot()
    with pytest.raises(RuntimeError, match="no armature selected"):
        bpy.ops.motion.bake()
    with pytest.raises(RuntimeError, match="no armature object named 'Nope'"):
        bpy.ops.motion.bake(armature="Nope")
    assert snapshot() == before


def test_no_variation_to_bake(scene):
    mixamo_rig()
    with pytest.raises(RuntimeError, match="no variations yet"):
        bpy.ops.motion.bake(armature="Rig")


def test_rig_missing_mapped_bones_lists_them(scene):
    generate()
    rig = mixamo_rig(drop=("LeftHand", "RightHand"))
    user_action(rig)
    before = snapshot()
    with pytest.raises(RuntimeError) as error:
        bpy.ops.motion.bake(armature="Rig", preset="mixamo")
    assert "lacks 2 bone(s)" in str(error.value)
    assert "LeftHand (left_wrist)" in str(error.value)
    assert "RightHand (right_wrist)" in str(error.value)
    assert snapshot() == before


def test_checkpoint_that_fails_to_load(scene, tmp_path):
    from kinetext.addon import jobs
    from kinetext.addon.preferences import get

    generate()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json", encoding="utf-8")
    get(bpy.context).checkpoint_folder = str(broken)
    before = snapshot()
    with pytest.raises(RuntimeError, match=str(broken)):
        generate()
    assert snapshot() == before
    assert jobs.current() is None  # the next Generate is not blocked
    assert scene.window_manager.kinetext.status_level == "ERROR"


def test_a_missing_checkpoint_folder_says_no_such_folder(scene, tmp_path, checkpoint):
    """The Folder setting holds a path, even one shaped like a Hub id; "//" is the .blend's
    folder (and has none before the file is saved)."""
    import shutil

    from kinetext.addon.preferences import get

    prefs = get(bpy.context)
    before = snapshot()
    for folder in ("ckpts/mine", "//ckpts/mine"):
        prefs.checkpoint_folder = folder
        with pytest.raises(RuntimeError) as error:
            generate()
        message = str(error.value)
        assert "Hub" not in message and "download" not in message and "online" not in message
        if folder.startswith("//"):
            assert "not saved yet" in message
        else:
            assert "ckpts/mine: no such folder" in message
    project = tmp_path / "project"
    project.mkdir()
    bpy.ops.wm.save_as_mainfile(filepath=str(project / "shot.blend"), check_existing=False)
    try:
        with pytest.raises(RuntimeError, match=f"{project / 'ckpts' / 'mine'}: no such folder"):
            generate()
        assert snapshot() == before
        shutil.copytree(checkpoint, project / "ckpts" / "mine")
        assert generate() == {"FINISHED"}  # "//ckpts/mine" beside the saved .blend
    finally:
        bpy.ops.wm.read_homefile(use_empty=True)  # an unsaved file again for the next tests


def test_hub_checkpoint_offline_and_not_downloaded(scene):
    from kinetext.addon.preferences import get

    prefs = get(bpy.context)
    prefs.checkpoint_source, prefs.hub_repo = "HUB", "kinetext-tests/never-uploaded"
    assert not bpy.app.online_access  # headless Blender: nothing may be downloaded
    before = snapshot()
    with pytest.raises(RuntimeError, match="not downloaded yet, and Blender's online access"):
        generate()
    assert snapshot() == before


def test_cancelled_half_way_changes_nothing(scene):
    from kinetext.addon import jobs
    from kinetext.addon.operators import collect

    generate()
    before = snapshot()
    job, reports = long_job(), []
    while job.progress == 0.0 and not job.done:
        threading.Event().wait(0.01)
    bpy.ops.motion.cancel_generation()  # the panel's Cancel button
    assert job.wait(30) and job.cancelled and 0.0 < job.progress < 1.0
    assert collect(bpy.context, job, lambda level, text: reports.append(text)) == {"CANCELLED"}
    assert reports == ["Generation cancelled: nothing was changed"]
    assert snapshot() == before and jobs.current() is None


def test_generate_while_one_runs_is_refused(scene):
    from kinetext.addon import jobs
    from kinetext.addon.operators import collect

    job = long_job()
    try:
        with pytest.raises(RuntimeError, match="a generation is already running"):
            generate()
        assert jobs.current() is job
    finally:
        job.cancel()
        job.wait(30)
        collect(bpy.context, job, lambda *_: None)
    assert not scene.scene.kinetext.variation_list


def test_modal_step_updates_progress_then_collects_on_the_main_thread(scene):
    from kinetext.addon import jobs
    from kinetext.addon.operators import MOTION_OT_generate

    job = long_job(steps=3)
    operator = SimpleNamespace(_job=job, _timer=None, report=lambda *_: None)
    operator._stop_timer = lambda context: None
    operator._collect = lambda context, job: MOTION_OT_generate._collect(operator, context, job)
    timer, escape = SimpleNamespace(type="TIMER", value="NOTHING"), SimpleNamespace(type="ESC")
    job.wait(30)
    assert MOTION_OT_generate.modal(operator, bpy.context, timer) == {"FINISHED"}
    assert len(scene.scene.kinetext.variation_list) == 1
    slow = long_job()
    operator._job = slow
    operator._give_up = lambda context: MOTION_OT_generate._give_up(operator, context)
    escape.value = "PRESS"
    assert MOTION_OT_generate.modal(operator, bpy.context, escape) == {"CANCELLED"}  # at once
    assert jobs.current() is None  # Generate works again
    assert slow.wait(30) and slow.cancelled and not jobs.abandoned()  # the worker stopped
    assert len(scene.scene.kinetext.variation_list) == 1


def long_job(steps: int = 200):
    """A real generation in its background thread, slow enough (many steps) to interrupt."""
    from kinetext.addon.operators import begin_generation, build_request

    operator = SimpleNamespace(prompt=PROMPT, seconds=2.0, steps=steps, variations=1)
    operator.properties = SimpleNamespace(is_property_set=lambda name: hasattr(operator, name))
    job = begin_generation(build_request(operator, bpy.context))
    job.start()
    return job


@pytest.mark.parametrize("where", ["no_such_folder/walk.bvh", "a_file.txt/walk.bvh"])
def test_export_bvh_to_an_unwritable_path_names_that_path(scene, tmp_path, where):
    (tmp_path / "a_file.txt").write_text("not a folder")
    generate()
    target = tmp_path / where
    with pytest.raises(RuntimeError) as error:
        bpy.ops.motion.export_bvh(filepath=str(target), variation=0)
    assert str(target) in str(error.value) and ".tmp" not in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file.txt"]  # nothing left behind
