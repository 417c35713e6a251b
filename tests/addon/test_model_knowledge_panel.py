"""The panel says when a prompt is unlike anything the checkpoint learned: under the prompt
as soon as it is typed (asked of the engine process in the background), in the status
after generating, and lists what the model knows; a checkpoint that does not describe its
training data says so once, and never warns."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy")

from addon_helpers import (  # noqa: E402
    clear_scene,
    draw,
    enabled,
    preferences,
    save_tiny_checkpoint,
    use_checkpoint,
)

FAR = "a person sits down on a chair"
NEAR = "someone waves goodbye with the right hand"
WAIT = 120.0  # the first question starts the engine process and loads the text encoder


@pytest.fixture(scope="module")
def addon(addon_pkg):
    with enabled(addon_pkg):
        yield addon_pkg


@pytest.fixture
def embedded(addon):
    from kinetext.addon import knowledge, panel

    prefs = preferences()
    prefs.checkpoint_source, prefs.device = "EMBEDDED", "CPU"
    knowledge.forget()
    clear_scene()
    return panel


def _type(prompt: str) -> None:
    """What typing in the prompt field does: set it (its update asks the engine), then wait
    for the answer as the panel's redraw timer would."""
    from kinetext.addon import knowledge

    bpy.context.scene.kinetext.prompt = prompt
    assert knowledge.wait(WAIT)


def test_typing_a_prompt_it_never_learned_shows_the_warning_before_generating(embedded):
    assert FAR not in draw(embedded.KINETEXT_PT_generate).texts()
    _type(FAR)
    shown = draw(embedded.KINETEXT_PT_generate).texts()
    assert f"This checkpoint was not trained on anything like '{FAR}'; nearest: '" in shown
    _type(NEAR)
    assert "not trained on" not in draw(embedded.KINETEXT_PT_generate).texts()


def test_what_this_model_knows_lists_the_vocabulary_and_data(embedded):
    from kinetext.addon import knowledge

    first = draw(embedded.KINETEXT_PT_knowledge)  # opening the panel asks; drawing never waits
    assert "Reading the checkpoint" in first.texts() or "bow" in first.texts()
    assert knowledge.wait(WAIT)
    layout = draw(embedded.KINETEXT_PT_knowledge)
    texts = [call[2].get("text") for call in layout.calls("label")]
    for action, clips in (("bow", "12"), ("wave right hand", "167"), ("run", "273"),
                          ("cartwheel", "1"), ("zombie walk", "2")):  # fmt: skip
        position = texts.index(action)
        assert texts[position + 1] == clips
    assert "bandai: 2461 training clips of 3.9 h" in texts
    assert "deepmimic: 46 training clips of 0.1 h" in texts


def test_generating_a_prompt_it_never_learned_warns_in_the_status(embedded):
    assert bpy.ops.motion.generate(prompt=FAR, seconds=1.0, steps=1, variations=1) == {"FINISHED"}
    status = bpy.context.window_manager.kinetext
    assert status.status_level == "WARNING"
    assert f"This checkpoint was not trained on anything like '{FAR}'" in status.status
    assert bpy.ops.motion.generate(prompt=NEAR, seconds=1.0, steps=1, variations=1) == {"FINISHED"}
    assert status.status_level == "INFO" and "not trained" not in status.status


def test_a_checkpoint_that_does_not_describe_its_data_says_unknown_and_never_warns(addon, tmp_path):
    from kinetext.addon import knowledge, panel

    use_checkpoint(save_tiny_checkpoint(tmp_path / "tiny"))
    knowledge.forget()
    clear_scene()
    _type(FAR)
    assert "not trained on" not in draw(panel.KINETEXT_PT_generate).texts()
    draw(panel.KINETEXT_PT_knowledge)
    assert knowledge.wait(WAIT)
    assert (
        "Unknown: this checkpoint does not say what it was trained on"
        in draw(panel.KINETEXT_PT_knowledge).texts()
    )
    assert bpy.ops.motion.generate(prompt=FAR, seconds=1.0, steps=1, variations=1) == {"FINISHED"}
    assert "not trained" not in bpy.context.window_manager.kinetext.status


def test_typing_asks_once_at_a_time_and_ends_with_the_whole_prompt(embedded, monkeypatch):
    """Each keystroke updates the prompt; questions go one at a time, only the newest typed
    meanwhile waits, so the last answer is the whole prompt's and most are never asked."""
    from kinetext.addon import engine_process, knowledge

    asked = []
    real = engine_process.ENGINE.knowledge

    def counting(request):
        asked.append(request.prompt)
        return real(request)

    monkeypatch.setattr(engine_process.ENGINE, "knowledge", counting)
    for end in range(1, len(FAR) + 1):
        bpy.context.scene.kinetext.prompt = FAR[:end]  # what TEXTEDIT_UPDATE does per key
    assert knowledge.wait(WAIT)
    assert asked[-1] == FAR and len(asked) < len(FAR) // 2
    shown = draw(embedded.KINETEXT_PT_generate).texts()
    assert f"not trained on anything like '{FAR}'" in shown
