"""Describe what a checkpoint was trained on (``engine.knowledge``) from its data set.

    python -m training describe CHECKPOINT --data DATASET [--data DATASET ...] [--split train]

``export`` does this itself from the runs' data set; this command adds (or redoes) the
description of a checkpoint folder that has none, e.g. one exported before descriptions
existed, using the checkpoint's own text encoder. The captions are every unique caption of
the split's clips (mirrors included: their captions say left for right); the vocabulary is
the clips' action labels (``labels.json``'s ``content``), or for data sets without labels
the verbs of their captions.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.checkpoint import read_checkpoint_config
from engine.errors import MotionError
from engine.knowledge import (
    DEFAULT_THRESHOLD,
    MAX_CAPTIONS,
    Knowledge,
    build_knowledge,
    check_encoder,
    write_knowledge,
)
from engine.text_encoder import TextEncoderConfig, load_text_encoder
from training.captions import tag_words
from training.data.clips import parse_captions
from training.data.humanml3d import read_split

VERBS_KEPT = 40  # vocabulary of a data set without action labels: its most common verbs
# verbs every caption set uses that name no action
_NOT_ACTIONS = {"be", "is", "are", "look", "looking", "seem", "appear", "do", "does", "make"}


def split_captions(root: Path, split: str) -> tuple[list[str], list[str]]:
    """(unique captions in first-seen order, the clip ids) of ``root``'s ``split``."""
    ids = read_split(root, split)
    captions: dict[str, None] = {}
    for clip_id in ids:
        path = root / "texts" / f"{clip_id}.txt"
        if not path.is_file():
            continue
        for group in parse_captions(path.read_text(encoding="utf-8")):
            captions.update(dict.fromkeys(group.captions))
    return list(captions), ids


def vocabulary(root: Path, ids: Sequence[str], captions: Sequence[str]) -> dict[str, int]:
    """Action -> clips of the split showing it (mirrors not counted twice), most first."""
    labels_path = root / "labels.json"
    counts: Counter[str] = Counter()
    if labels_path.is_file():
        labels = json.loads(labels_path.read_text(encoding="utf-8"))
        for clip_id in ids:
            entry = labels.get(clip_id) if isinstance(labels, dict) else None
            if not isinstance(entry, dict) or entry.get("mirror_of"):
                continue
            action = (entry.get("labels") or {}).get("content")
            if isinstance(action, str) and action:
                counts[action.replace("-", " ")] += 1
    if not counts:  # no action labels: the verbs its captions use
        for caption in captions:
            verbs = {lemma for lemma, tag in tag_words(caption) if tag == "VERB"}
            counts.update(verbs - _NOT_ACTIONS)
        counts = Counter(dict(counts.most_common(VERBS_KEPT)))
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def dataset_record(root: Path, split: str, clips: int) -> dict[str, Any]:
    """Name, clips, hours, licence and attribution of a data set (from its build.json)."""
    build_path = root / "build.json"
    build = json.loads(build_path.read_text(encoding="utf-8")) if build_path.is_file() else {}
    record = {"name": root.name, "split": split, "clips": clips}
    if build:
        record.update({
            "format": build.get("format"), "source": build.get("source"),
            "hours": build.get("hours"), "licence": build.get("licence"),
            "attribution": build.get("attribution"),
        })  # fmt: skip
    return {k: v for k, v in record.items() if v is not None}


def describe_data(
    roots: Sequence[str | Path],
    encoder_config: TextEncoderConfig,
    *,
    split: str = "train",
    max_captions: int = MAX_CAPTIONS,
    threshold: float = DEFAULT_THRESHOLD,
    device: str = "cpu",
) -> Knowledge:
    """The description of ``roots``' ``split`` as seen by ``encoder_config``'s encoder."""
    if not roots:
        raise MotionError("describe: name the data set(s) the checkpoint was trained on")
    captions: dict[str, None] = {}
    actions: Counter[str] = Counter()
    datasets = []
    for root in map(Path, roots):
        if not (root / "texts").is_dir():
            raise MotionError(f"{root}: not a built data set (no texts/ folder)")
        found, ids = split_captions(root, split)
        captions.update(dict.fromkeys(found))
        actions.update(vocabulary(root, ids, found))
        originals = sum(1 for i in ids if not i.startswith("M"))
        datasets.append(dataset_record(root, split, originals))
    if not captions:
        raise MotionError(f"{', '.join(map(str, roots))}: the {split} split holds no caption")
    encoder = load_text_encoder(encoder_config, device)
    texts = list(captions)
    pooled = encoder.pooled_many(texts).numpy()
    ordered = dict(sorted(actions.items(), key=lambda kv: (-kv[1], kv[0])))
    return build_knowledge(
        texts, pooled, vocabulary=ordered, datasets=datasets,
        encoder=encoder_config.to_dict(), max_captions=max_captions, threshold=threshold,
    )  # fmt: skip


def describe_checkpoint(
    folder: str | Path, roots: Sequence[str | Path], **options: Any
) -> Knowledge:
    """Write the description of ``roots`` into the checkpoint ``folder`` (replacing one)."""
    folder = Path(folder)
    header = read_checkpoint_config(folder)
    knowledge = describe_data(roots, header.text_encoder, **options)
    check_encoder(knowledge, header.text_encoder.to_dict(), folder)
    write_knowledge(folder, knowledge)
    return knowledge


def main_describe(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training describe",
        description="Add to a checkpoint folder the description of what it was trained on "
        "(knowledge.json + knowledge.safetensors: vocabulary, data sets, caption vectors).",
    )
    parser.add_argument("checkpoint", help="checkpoint folder (config.json + weights)")
    parser.add_argument("--data", action="append", required=True, metavar="DATASET",
                        help="built data set it was trained on (repeat for several)")
    parser.add_argument("--split", default="train", help="the split it was trained on")
    parser.add_argument("--max-captions", type=int, default=MAX_CAPTIONS,
                        help=f"captions kept (default {MAX_CAPTIONS})")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help=f"similarity below which a prompt is flagged ({DEFAULT_THRESHOLD})")
    args = parser.parse_args(argv)
    knowledge = describe_checkpoint(
        args.checkpoint, args.data, split=args.split, max_captions=args.max_captions,
        threshold=args.threshold,
    )  # fmt: skip
    size = sum((Path(args.checkpoint) / n).stat().st_size
               for n in ("knowledge.json", "knowledge.safetensors"))  # fmt: skip
    print(f"described {args.checkpoint}: {len(knowledge.vocabulary)} actions, "
          f"{len(knowledge.captions)} of {knowledge.total_captions} captions kept "
          f"(coverage {knowledge.coverage:.2f}), {size / 1024:.0f} KiB")  # fmt: skip
    return 0

