"""Calibrate the "not trained on anything like this" threshold of ``engine.store.knowledge``.

    python docs/knowledge_calibration.py [CHECKPOINT] [--data DATASET] [--out docs/knowledge.md]

Free phrasings of the actions the embedded checkpoint learned (walks, walking back, runs,
waves, bows, turns, hand raises and, since session 9, the DeepMimic and CMU actions: none of
them a training caption, which the script checks
when ``--data`` names the data set) against prompts for actions it never saw (sit on a chair,
swim, kneel, push ups, objects ...). For each threshold it counts how often each group is
flagged, with the checkpoint's own text encoder and stored description, and writes the
table (and the prompts with their nearest captions) to ``--out``.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KNOWN = {
    "walk": [
        "a man strides forward",
        "someone is walking ahead at a calm pace",
        "a woman takes a stroll",
        "a person walks straight on",
        "a person paces forward slowly",
        "someone ambles along",
        "the character walks ahead with long steps",
        "a person marches forward",
    ],
    "walk back": [
        "a person walks backwards",
        "someone steps back a few paces",
        "a man retreats by walking backward",
        "the person backs up slowly",
    ],
    "walk sideways": [
        "a person sidesteps to the left",
        "someone shuffles sideways to the right",
    ],
    "run": [
        "someone sprints ahead",
        "a man is running fast",
        "a person jogs along",
        "the character runs as fast as possible",
        "a woman races forward",
        "someone rushes ahead at full speed",
    ],
    "wave": [
        "a person waves hello with the right hand",
        "someone waves goodbye",
        "a woman waves both arms in the air",
        "a man greets someone by waving his left hand",
        "the person waves at a friend",
        "someone says bye with a wave of the hand",
    ],
    "bow": [
        "a person bows politely",
        "someone takes a bow",
        "a man bows deeply",
        "the person bends forward at the waist to greet",
        "a woman bows her head and body",
    ],
    "turn": [
        "a person turns left while walking",
        "someone walks and turns around to the right",
        "a person makes a u-turn",
        "the man walks in a circle",
        "someone walks and veers left",
    ],
    "raise": [
        "a person lifts the right arm overhead",
        "someone puts both hands up",
        "a man raises his left hand high",
        "a person holds both arms over the head",
        "the person reaches up with the left arm",
        "someone sticks a hand in the air",
    ],
    # the actions DeepMimic and CMU added (the default since session 9)
    "cartwheel": ["someone turns a cartwheel to the side", "a gymnast does a cartwheel"],
    "flip": ["a man does a backflip", "someone flips backwards in the air"],
    "jump": ["a person jumps in place", "someone hops up and down on both feet"],
    "crawl": ["a person crawls on the floor", "someone creeps forward on all fours"],
    "roll / get up": [
        "a person rolls on the ground",
        "someone tumbles forward and stands up",
        "a person gets up from the floor",
    ],
    "kick / punch": [
        "someone kicks out in front",
        "someone throws a punch",
        "a fighter kicks high",
    ],
    "zombie / sneak": ["someone shambles like a zombie", "a person tiptoes forward quietly"],
}
UNRELATED = {  # climbing is left out: CMU's playground climbing gave one "climb" clip
    "sit": ["a person sits down on a chair", "someone takes a seat", "a man sits on the floor"],
    "swim": ["someone swims", "a person swims breaststroke"],
    "lie / fall": ["someone lies down on the ground", "a person falls over"],
    "kneel / squat": ["a person kneels down", "a person squats", "someone crouches low"],
    "exercise": ["a person does push ups", "a man does sit ups", "someone skips rope"],
    "objects": [
        "a person throws a ball",
        "a person picks something up from the floor",
        "someone plays the guitar",
        "a person drinks from a cup",
        "someone rides a bicycle",
        "a man lifts a heavy box",
    ],
}
THRESHOLDS = (0.35, 0.40, 0.45, 0.50, 0.55, 0.60)


def training_captions(data: Path | None) -> set[str]:
    if data is None:
        return set()
    from training.describe import split_captions

    return {c.lower() for c in split_captions(data, "train")[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", nargs="?", default=None)
    parser.add_argument("--data", type=Path, default=None, help="training data set (check)")
    parser.add_argument("--out", type=Path, default=None, help="write the report here")
    args = parser.parse_args()
    from engine.store.info import checkpoint_source, prompt_matches
    from engine.store.knowledge import read_knowledge

    seen = training_captions(args.data)
    groups = {**{f"known: {k}": v for k, v in KNOWN.items()},
              **{f"unseen: {k}": v for k, v in UNRELATED.items()}}  # fmt: skip
    overlap = [p for ps in groups.values() for p in ps if p.lower() in seen]
    if overlap:
        raise SystemExit(f"these phrasings are training captions, not held out: {overlap}")
    prompts = [p for ps in groups.values() for p in ps]
    matches = dict(zip(prompts, prompt_matches(prompts, args.checkpoint), strict=True))
    knowledge = read_knowledge(checkpoint_source(args.checkpoint).folder)
    lines = [
        "| group | prompts | " + " | ".join(f"flagged @ {t:.2f}" for t in THRESHOLDS) + " |",
        "|---|---|" + "---|" * len(THRESHOLDS),
    ]
    totals = {"known": [0] * len(THRESHOLDS), "unseen": [0] * len(THRESHOLDS)}
    counts = {"known": 0, "unseen": 0}
    for name, members in groups.items():
        kind = name.split(":")[0]
        scores = [matches[p]["similarity"] for p in members]
        flagged = [sum(s < t for s in scores) for t in THRESHOLDS]
        counts[kind] += len(members)
        totals[kind] = [a + b for a, b in zip(totals[kind], flagged, strict=True)]
        lines.append(f"| {name} | {len(members)} | " + " | ".join(map(str, flagged)) + " |")
    for kind, flagged in totals.items():
        rates = " | ".join(f"**{f}/{counts[kind]} ({100 * f / counts[kind]:.0f}%)**"
                           for f in flagged)  # fmt: skip
        lines.append(f"| **all {kind}** | {counts[kind]} | {rates} |")
    detail = ["| prompt | similarity | nearest training caption |", "|---|---|---|"]
    for name, members in groups.items():
        for p in members:
            m = matches[p]
            detail.append(f"| {p} ({name}) | {m['similarity']:.2f} | "
                          f"{m['nearest'][0]['caption']} |")  # fmt: skip
    report = "\n".join([
        f"Checkpoint: `{args.checkpoint or 'engine/checkpoints/default'}`, threshold stored in "
        f"it: {knowledge.threshold:.2f}; {len(knowledge.captions)} captions kept of "
        f"{knowledge.total_captions}. Machine: {platform.machine()}, {platform.system()}, "
        "CPU.", "", *lines, "", *detail, "",
    ])  # fmt: skip
    print(report)
    if args.out is not None:
        args.out.write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
