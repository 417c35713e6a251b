"""Reproduces docs/images/prompts.png: 12 prompts that no training caption says verbatim.

Run from the repository root: ``python docs/make_prompt_sheet.py`` (CPU, about a minute).
"""

from engine.io.render import render_contact_sheet
from engine.pipeline import generate

PROMPTS = [
    "someone strolls ahead in a cheerful mood", "a furious person throws a punch",
    "a very tired person drags along forward", "an elderly man bows politely",
    "someone waves goodbye with the right hand", "someone dashes ahead at full speed",
    "a proud person walks backwards", "someone shy raises the left hand",
    "a person kicks hard", "a happy person dances", "someone sad walks and turns left",
    "a man swings a sword in a slash",
]  # fmt: skip

if __name__ == "__main__":
    motion = generate(PROMPTS, seconds=4, seed=1, device="cpu")
    render_contact_sheet(
        motion.joints, "docs/images/prompts.png", frames=6, panel_px=110,
        title="12 prompts not seen verbatim in training (default checkpoint, seed 1)",
    )  # fmt: skip
