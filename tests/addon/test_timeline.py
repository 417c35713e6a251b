"""The Timeline box: segments, Generate Sequence and Regenerate Range, through the operators
with the panel's own property values (a tiny random checkpoint, bpy headless)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from addon_helpers import (  # noqa: E402
    clear_scene,
    mixamo_rig,
    use_checkpoint,
)

SEGMENTS = [("a person walks forward", 2.0), ("a person waves", 1.2), ("a person jumps", 1.6)]


@pytest.fixture
def scene(addon, checkpoint):
    use_checkpoint(checkpoint)
    context = clear_scene()
    panel = context.scene.kinetext
    panel.segment_list.clear()
    for prompt, seconds in SEGMENTS:
        item = panel.segment_list.add()
        item.prompt, item.seconds = prompt, seconds
    panel.steps = 2
    return context


def _panel():
    return bpy.context.scene.kinetext


def _snapshot() -> dict:
    return {
        "variations": [v.key for v in _panel().variation_list],
        "objects": sorted(o.name for o in bpy.data.objects),
        "actions": sorted(a.name for a in bpy.data.actions),
    }


def _keys(action, path_part: str = "") -> dict[tuple[str, int], np.ndarray]:
    """Every F-curve's keys (frame, value) of ``action``'s one slot, by (data path, index)."""
    from bpy_extras import anim_utils

    bag = anim_utils.action_get_channelbag_for_slot(action, action.slots[0])
    out = {}
    for curve in bag.fcurves:
        if path_part in curve.data_path:
            keys = np.zeros(2 * len(curve.keyframe_points))
            curve.keyframe_points.foreach_get("co", keys)
            out[(curve.data_path, curve.array_index)] = keys.reshape(-1, 2)
    return out


# ---- the segment list ----------------------------------------------------------------------


def test_segments_are_added_duplicated_moved_and_removed(scene):
    panel = _panel()
    panel.active_segment = 0
    assert bpy.ops.motion.timeline_segment(edit="DUPLICATE") == {"FINISHED"}
    assert [s.prompt for s in panel.segment_list][:2] == [SEGMENTS[0][0]] * 2
    assert panel.active_segment == 1
    assert bpy.ops.motion.timeline_segment(edit="DOWN") == {"FINISHED"}
    assert [s.prompt for s in panel.segment_list][1:3] == [SEGMENTS[1][0], SEGMENTS[0][0]]
    assert bpy.ops.motion.timeline_segment(edit="REMOVE") == {"FINISHED"}
    assert [(s.prompt, round(s.seconds, 3)) for s in panel.segment_list] == SEGMENTS
    assert bpy.ops.motion.timeline_segment(edit="ADD") == {"FINISHED"}
    assert panel.segment_list[panel.active_segment].prompt == ""
    panel.active_segment = 0
    assert bpy.ops.motion.timeline_segment(edit="UP") == {"CANCELLED"}  # already first


# ---- generate a sequence -------------------------------------------------------------------


def test_generate_sequence_bakes_one_action_whose_markers_name_the_segments(scene, checkpoint):
    from kinetext.addon import results
    from kinetext.engine.sequence import generate_sequence

    rig = mixamo_rig()
    _panel().target = rig
    assert bpy.ops.motion.generate_sequence(seed=4) == {"FINISHED"}
    action = rig.animation_data.action
    markers = sorted((m.frame, m.name) for m in action.pose_markers)
    assert markers == [(1, SEGMENTS[0][0]), (41, SEGMENTS[1][0]), (65, SEGMENTS[2][0])]
    assert tuple(action.frame_range) == (1.0, 96.0)  # 40 + 24 + 32 frames from frame 1
    clip, bake = results.baked_clip(action)
    assert (clip.frames, bake["frame_start"]) == (96, 1)
    expected = generate_sequence(SEGMENTS, seed=4, steps=2, checkpoint=checkpoint, device="cpu")
    np.testing.assert_allclose(clip.joints, expected.joints[0], atol=1e-5)
    entry = _panel().variation_list[-1]
    assert entry.frames == 96 and entry.prompt == " / ".join(p for p, _ in SEGMENTS)
    assert "3 segments, 4.8 s, baked onto Rig" in scene.window_manager.kinetext.status


def test_a_script_passes_its_own_timeline_text(scene):
    rig = mixamo_rig()
    text = "a person jumps#1\na person waves#2\n"
    assert bpy.ops.motion.generate_sequence(armature=rig.name, timeline=text) == {"FINISHED"}
    markers = sorted((m.frame, m.name) for m in rig.animation_data.action.pose_markers)
    assert markers == [(1, "a person jumps"), (21, "a person waves")]
    with pytest.raises(RuntimeError, match="the timeline argument:2: expected 'prompt#seconds'"):
        bpy.ops.motion.generate_sequence(timeline="a person jumps#1\nwave\n")


def test_with_no_armature_the_sequence_goes_on_the_preview_skeleton(scene):
    from kinetext.addon.operators import PREVIEW_NAME

    assert bpy.ops.motion.generate_sequence() == {"FINISHED"}
    obj = bpy.data.objects[PREVIEW_NAME]
    assert len(obj.animation_data.action.pose_markers) == 3


def _eleven_minutes(panel) -> None:
    for _ in range(8):
        panel.segment_list.add().prompt = "a person walks"
    for segment in panel.segment_list:
        segment.seconds = 60.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.segment_list.clear(), "the Timeline is empty"),
        (lambda p: setattr(p.segment_list[1], "prompt", "  "), "segment 2 has no prompt"),
        (_eleven_minutes, "the timeline lasts 660 s; the limit is 600 s"),
    ],
)
def test_bad_timelines_are_reported_and_change_nothing(scene, change, message):
    change(_panel())
    before = _snapshot()
    with pytest.raises(RuntimeError, match=message):
        bpy.ops.motion.generate_sequence()
    assert _snapshot() == before


def test_sequence_progress_is_per_segment_and_esc_cancels(scene):
    from kinetext.addon import jobs
    from kinetext.addon.panel import segment_progress
    from kinetext.addon.timeline import (
        MOTION_OT_generate_sequence,
        begin_stored,
        sequence_request,
    )

    operator = SimpleNamespace(steps=400)
    operator.properties = SimpleNamespace(is_property_set=lambda name: hasattr(operator, name))
    before = _snapshot()
    job = begin_stored(sequence_request(operator, bpy.context), "sequence generation")
    job.start()
    seen = set()
    while len(seen) < 2 and not job.done:  # the first two segments' share of the bar
        seen.add(segment_progress(job.progress, 3).split()[1])
        threading.Event().wait(0.01)
    assert "1/3" in seen and ("2/3" in seen or job.progress < 2 / 3)
    state = bpy.context.window_manager.kinetext
    state.running, state.segments = True, 3
    op = SimpleNamespace(_job=job, _timer=None, report=lambda *_: None)
    op._stop_timer = lambda context: None
    op._give_up = lambda context: MOTION_OT_generate_sequence._give_up(op, context)
    escape = SimpleNamespace(type="ESC", value="PRESS")
    assert MOTION_OT_generate_sequence.modal(op, bpy.context, escape) == {"CANCELLED"}
    assert job.wait(30) and job.cancelled and jobs.current() is None
    assert (state.running, state.segments) == (False, 0)
    assert _snapshot() == before


# ---- regenerate a range --------------------------------------------------------------------


def _baked_sequence(rig_name: str = "Rig"):
    rig = mixamo_rig(rig_name)
    _panel().target = rig
    assert bpy.ops.motion.generate_sequence(seed=2) == {"FINISHED"}
    return rig, rig.animation_data.action


def test_regenerate_range_replaces_the_range_in_a_new_action(scene):
    from kinetext.addon import results

    rig, old = _baked_sequence()
    old_clip, _ = results.baked_clip(old)
    scene_ = bpy.context.scene
    scene_.use_preview_range = True
    scene_.frame_preview_start, scene_.frame_preview_end = 31, 60
    _panel().range_prompt = "a person kicks"
    bpy.ops.ed.undo_push(message="before")
    assert bpy.ops.motion.regenerate_range(seed=9) == {"FINISHED"}
    new = rig.animation_data.action
    assert new != old and old.name in bpy.data.actions  # the old action stays in the file
    clip, bake = results.baked_clip(new)
    kept = np.r_[0:30, 60:96]  # clip frames of scene frames 1-30 and 61-96
    assert np.array_equal(clip.joints[kept], old_clip.joints[kept])
    assert not np.allclose(clip.joints[30:60], old_clip.joints[30:60], atol=1e-3)
    names = [m.name for m in sorted(new.pose_markers, key=lambda m: m.frame)]
    assert names == [SEGMENTS[0][0], "a person kicks", SEGMENTS[1][0], SEGMENTS[2][0]]
    # every key outside the range is the old action's (even where a planted foot's run
    # crosses into the range), and the curves meet them at both ends
    old_keys, new_keys = _keys(old), _keys(new)
    assert old_keys.keys() == new_keys.keys()
    changed = 0.0
    for path, keys in new_keys.items():
        frames = keys[:, 0]
        outside = (frames < 31) | (frames > 60)
        assert np.array_equal(frames, old_keys[path][:, 0])
        assert np.array_equal(keys[outside], old_keys[path][outside])
        step = np.abs(np.diff(keys[:, 1]))
        assert step[29] <= step[25:35].max() and step[59] <= step[55:65].max()
        changed = max(changed, np.abs(keys[~outside, 1] - old_keys[path][~outside, 1]).max())
    assert changed > 1e-3
    rig_name, old_name, new_name = rig.name, old.name, new.name
    bpy.ops.ed.undo()  # one step back: the old action is the rig's again, the new one gone
    assert bpy.data.objects[rig_name].animation_data.action.name == old_name
    assert new_name not in bpy.data.actions


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("hand_keyed", "was not baked by Kinetext"),
        ("no_preview", "the scene has no preview range"),
        ("outside", r"frames 80-120 are not all inside the baked clip \(frames 1-96\)"),
        ("whole", "frames 1-96 are the whole clip"),
        ("empty_prompt", "the range's prompt is empty"),
    ],
)
def test_bad_ranges_are_reported_and_change_nothing(scene, setup, message):
    rig, action = _baked_sequence()
    panel, scene_ = _panel(), bpy.context.scene
    panel.range_prompt = "a person kicks"
    scene_.use_preview_range = True
    scene_.frame_preview_start, scene_.frame_preview_end = 20, 40
    if setup == "hand_keyed":
        rig.animation_data.action = None
        bone = rig.pose.bones[0]
        bone.keyframe_insert("location", index=2, frame=1)
    elif setup == "no_preview":
        scene_.use_preview_range = False
    elif setup == "outside":
        panel.range_source, panel.range_start, panel.range_end = "FIELDS", 80, 120
    elif setup == "whole":
        scene_.frame_preview_start, scene_.frame_preview_end = 1, 96
    else:
        panel.range_prompt = " "
    before = _snapshot()
    with pytest.raises(RuntimeError, match=message):
        bpy.ops.motion.regenerate_range()
    assert _snapshot() == before
