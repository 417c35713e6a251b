"""Every panel, the variation list and the preferences draw, in each state, with a recording
layout (headless Blender has no UI). The recorder checks each call against Blender's own
UILayout API: the function and its keywords exist, every property drawn exists on its data,
every operator exists and the properties set on it are the operator's."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy")

from addon_helpers import RecordingLayout, clear_scene, draw, enabled, preferences  # noqa: E402


@pytest.fixture(scope="module")
def addon(addon_pkg):
    with enabled(addon_pkg):
        yield addon_pkg


@pytest.fixture
def ui(addon):
    """The add-on's panel module with a clean scene and an idle run state."""
    from kinetext.addon import panel

    clear_scene()
    state = bpy.context.window_manager.kinetext
    state.running, state.progress, state.status = False, 0.0, ""
    return panel


def test_generate_panel_idle_shows_every_setting(ui):
    layout = draw(ui.KINETEXT_PT_generate)
    for prop in ("prompt", "seconds", "variations", "seed", "guidance", "steps", "generator"):
        assert prop in layout.props()
    assert "motion.generate" in layout.operators()
    assert "motion.randomize_seed" in layout.operators()
    assert "motion.cancel_generation" not in layout.operators()
    assert not layout.calls("progress")


def test_generate_panel_while_running_has_progress_and_cancel(ui):
    state = bpy.context.window_manager.kinetext
    state.running, state.progress = True, 0.4
    layout = draw(ui.KINETEXT_PT_generate)
    (progress,) = layout.calls("progress")
    assert progress[2]["factor"] == pytest.approx(0.4) and progress[2]["text"] == "40%"
    assert "motion.cancel_generation" in layout.operators()
    assert "motion.generate" not in layout.operators()


def test_generate_panel_says_what_is_missing_and_how_to_fix_it(ui, monkeypatch):
    from kinetext.addon import deps

    monkeypatch.setattr(deps, "missing", lambda *a: list(deps.REQUIREMENTS[:2]))
    layout = draw(ui.KINETEXT_PT_generate)
    assert "Missing Python packages: torch, transformers" in layout.texts()
    assert "preferences.addon_show" in layout.operators()
    assert ("set", "preferences.addon_show", "module", "kinetext") in layout.log
    assert ("attr", "enabled", False) in layout.log  # Generate is greyed out


def test_generate_panel_shows_errors_wrapped_and_in_red(ui):
    from kinetext.addon.properties import set_status

    message = "the prompt is empty: type what the character should do " * 2
    set_status(bpy.context, message, "ERROR")
    layout = draw(ui.KINETEXT_PT_generate)
    assert ("attr", "alert", True) in layout.log
    assert layout.texts() == " ".join(message.split())  # all of it ...
    assert len(layout.calls("label")) > 1  # ... over several lines


def test_variations_panel_lists_clips_with_preview_bake_and_export(ui):
    empty = draw(ui.KINETEXT_PT_variations)
    assert len(empty.calls("template_list")) == 1 and "appear here" in empty.texts()
    entries = bpy.context.scene.kinetext.variation_list
    item = entries.add()
    item.name, item.frames, item.fps = "a person walks (1/1, seed 0)", 40, 20
    layout = draw(ui.KINETEXT_PT_variations)
    (listing,) = layout.calls("template_list")
    assert listing[1][:6] == (
        "KINETEXT_UL_variations", "", bpy.context.scene.kinetext, "variation_list",
        bpy.context.scene.kinetext, "active_variation",
    )  # fmt: skip
    assert {"motion.preview", "motion.export_bvh", "motion.clear_variations"} <= set(
        layout.operators()
    )
    row = RecordingLayout()
    ui.KINETEXT_UL_variations.draw_item(None, bpy.context, row, None, item, 0, None, "", index=0)
    assert "2.0 s" in row.texts()
    assert ("set", "motion.preview", "variation", 0) in row.log
    assert ("set", "motion.bake", "variation", 0) in row.log


def test_bake_panel_names_the_armature_it_will_use(ui):
    layout = draw(ui.KINETEXT_PT_bake)
    for prop in ("target", "preset", "root_motion", "foot_cleanup", "push_to_nla"):
        assert prop in layout.props()
    assert "Select an armature" in layout.texts()
    data = bpy.data.armatures.new("Rig")
    rig = bpy.data.objects.new("Rig", data)
    bpy.context.scene.collection.objects.link(rig)
    bpy.context.view_layer.objects.active = rig
    assert "Uses the active armature: Rig" in draw(ui.KINETEXT_PT_bake).texts()


def test_bone_map_editor_offers_the_rigs_bones(ui):
    from addon_helpers import mixamo_rig
    from kinetext.addon.bone_maps import KINETEXT_PT_bone_map

    empty = draw(KINETEXT_PT_bone_map)
    assert "motion.bone_map_load" in empty.operators() and "Load fills" in empty.texts()
    rig = mixamo_rig()
    bpy.context.scene.kinetext.target = rig
    bpy.ops.motion.bone_map_load()
    layout = draw(KINETEXT_PT_bone_map)
    searches = layout.calls("prop_search")
    assert len(searches) == 22 and all(c[1][2:4] == (rig.data, "bones") for c in searches)
    assert "pelvis" in layout.texts() and "motion.bone_map_save" in layout.operators()


def test_preferences_draw_dependencies_model_and_device(ui):
    from kinetext.addon.preferences import KINETEXT_AP_preferences

    prefs = preferences()
    for source, expected in (("EMBEDDED", set()), ("FOLDER", {"checkpoint_folder"}),
                             ("HUB", {"hub_repo", "hub_revision"})):  # fmt: skip
        prefs.checkpoint_source = source
        layout = RecordingLayout()
        KINETEXT_AP_preferences.draw(_with_layout(prefs, layout), bpy.context)
        drawn = set(layout.props())
        assert {"checkpoint_source", "device", "torch_build", "site_packages"} <= drawn
        assert drawn & {"checkpoint_folder", "hub_repo", "hub_revision"} == expected
        assert "motion.install_dependencies" in layout.operators()
        labels = layout.texts()
        assert all(r.package in labels for r in _requirements())
        if not bpy.app.online_access:  # headless Blender: installing is switched off
            assert "Online access is off" in labels


def _requirements():
    from kinetext.addon import deps

    return deps.REQUIREMENTS


class _with_layout:
    """The preferences seen as ``self`` by ``draw``, with a recording ``layout``."""

    def __init__(self, prefs, layout):
        self._prefs, self.layout = prefs, layout

    def __getattr__(self, name):
        return getattr(self._prefs, name)


def test_timeline_panel_lists_segments_with_their_edits_and_both_actions(ui):
    panel = bpy.context.scene.kinetext
    bpy.context.scene.use_preview_range = False
    for prompt, seconds in (("a person walks", 4.0), ("a person waves", 2.0)):
        item = panel.segment_list.add()
        item.prompt, item.seconds = prompt, seconds
    layout = draw(ui.KINETEXT_PT_timeline)
    (listing,) = layout.calls("template_list")
    assert listing[1][:6] == ("KINETEXT_UL_segments", "", panel, "segment_list", panel,
                              "active_segment")  # fmt: skip
    edit = ("set", "motion.timeline_segment", "edit")
    edits = {entry[3] for entry in layout.log if entry[:3] == edit}
    assert edits == {"ADD", "REMOVE", "DUPLICATE", "UP", "DOWN"}
    assert "2 segments, 6.0 s" in layout.texts()
    assert {"motion.generate_sequence", "motion.regenerate_range"} <= set(layout.operators())
    assert {"timeline_method", "range_prompt", "range_source"} <= set(layout.props())
    assert "No preview range set" in layout.texts()
    panel.range_source = "FIELDS"
    assert {"range_start", "range_end"} <= set(draw(ui.KINETEXT_PT_timeline).props())
    row = RecordingLayout()
    ui.KINETEXT_UL_segments.draw_item(None, bpy.context, row, None, panel.segment_list[1], 0,
                                      None, "", index=1)  # fmt: skip
    assert "2." in row.texts() and {"prompt", "seconds"} <= set(row.props())


def test_timeline_panel_while_a_sequence_runs_says_which_segment(ui):
    bpy.context.scene.kinetext.segment_list.add().prompt = "a person walks"
    state = bpy.context.window_manager.kinetext
    state.running, state.progress, state.segments = True, 0.5, 3
    layout = draw(ui.KINETEXT_PT_timeline)
    (progress,) = layout.calls("progress")
    assert progress[2]["text"] == "Segment 2/3  50%"
    assert "motion.cancel_generation" in layout.operators()
    assert "motion.generate_sequence" not in layout.operators()
    state.running, state.progress, state.segments = False, 0.0, 0  # the window manager's: kept
