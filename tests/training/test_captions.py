"""Caption text lines: POS-tag heuristic, the four-field format, left/right mirroring."""

import pytest

from training.captions import (
    caption_tokens,
    format_text_line,
    mirror_caption,
    parse_text_line,
)


def test_tokens_tag_and_lemmatise_like_humanml3d():
    assert caption_tokens("A person waves the left hand happily.") == (
        "a/DET", "person/NOUN", "wave/VERB", "the/DET", "left/ADJ", "hand/NOUN", "happily/ADV",
    )  # fmt: skip
    assert caption_tokens("someone was dancing and then walked backwards with both feet") == (
        "someone/PRON", "was/AUX", "dance/VERB", "and/CCONJ", "then/ADV", "walk/VERB",
        "backwards/ADV", "with/ADP", "both/DET", "foot/NOUN",
    )  # fmt: skip
    # a verb after a determiner is a noun; an -ly adjective in the list stays an adjective
    assert caption_tokens("an elderly man takes a quick bow") == (
        "an/DET", "elderly/ADJ", "man/NOUN", "take/VERB", "a/DET", "quick/ADJ", "bow/NOUN",
    )  # fmt: skip
    assert caption_tokens("he runs 3 steps") == ("he/PRON", "run/VERB", "3/NUM", "step/NOUN")
    assert caption_tokens("irritated, she kicked") == ("irritated/ADJ", "she/PRON", "kick/VERB")


def test_text_line_has_four_fields_and_round_trips():
    line = format_text_line("  a person jumps up  ")
    assert line == "a person jumps up#a/DET person/NOUN jump/VERB up/ADP#0.0#0.0"
    parsed = parse_text_line(line + "\n")
    assert parsed.caption == "a person jumps up" and parsed.tokens[2] == "jump/VERB"
    assert format_text_line("a kick", 1.25, 3.0).endswith("#1.2#3.0")
    with pytest.raises(ValueError, match="'#'"):
        format_text_line("a person # waves")
    with pytest.raises(ValueError, match="got 3 fields"):
        parse_text_line("caption#tokens#0.0")


def test_mirror_caption_swaps_sides_and_turns_only():
    assert mirror_caption("a person raises the left hand") == "a person raises the right hand"
    assert mirror_caption("Right foot forward, then left") == "Left foot forward, then right"
    assert mirror_caption("wave-left-hand") == "wave-right-hand"
    assert mirror_caption("walks leftwards, spinning clockwise") == (
        "walks rightwards, spinning counterclockwise")  # fmt: skip
    assert mirror_caption("turns counter-clockwise") == "turns clockwise"
    assert mirror_caption("turns left right away") == "turns right right away"
    assert mirror_caption("a person bows politely") == "a person bows politely"
    # mirroring twice gives the caption back
    text = "the left arm swings clockwise while the right leg kicks"
    assert mirror_caption(mirror_caption(text)) == text
