"""Describe what a checkpoint was trained on (``engine.store.knowledge``) from its data set.

    python -m training describe CHECKPOINT --data DATASET [--data DATASET ...] [--split train]

``export`` does this itself from the runs' data set; this command adds (or redoes) the
description of a checkpoint folder that has none, e.g. one exported before descriptions
existed, using the checkpoint's own text encoder. The captions are every unique caption of
the split's clips (mirrors included: their captions say left for right); the vocabulary is
the clips' action labels, or for clips without one the verbs of their captions; a combined
data set (``combine-datasets``) lists each of its sources.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.errors import MotionError
from engine.store.checkpoint import read_checkpoint_config
from engine.store.knowledge import (
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

ACTION_LABELS = ("content", "activity")  # labels.json keys naming a clip's action
VERBS_KEPT = 40  # vocabulary of a data set without action labels: its most common verbs
# verbs every caption set uses that name no action
_NOT_ACTIONS = {"be", "is", "are", "look", "looking", "seem", "appear", "do", "does", "make"}


def split_captions(root: Path, split: str) -> tuple[list[str], dict[str, list[str]]]:
    """(unique captions in first-seen order, clip id -> its captions) of ``root``'s
    ``split``."""
    captions: dict[str, None] = {}
    per_clip: dict[str, list[str]] = {}
    for clip_id in read_split(root, split):
        path = root / "texts" / f"{clip_id}.txt"
        if not path.is_file():
            continue
        found = [c for g in parse_captions(path.read_text(encoding="utf-8")) for c in g.captions]
        per_clip[clip_id] = found
        captions.update(dict.fromkeys(found))
    return list(captions), per_clip


def _verbs(captions: Sequence[str]) -> set[str]:
    return {lemma for c in captions for lemma, tag in tag_words(c) if tag == "VERB"} - _NOT_ACTIONS


def vocabulary(root: Path, per_clip: dict[str, list[str]]) -> dict[str, int]:
    """Action -> clips of the split showing it (mirrors not counted twice), most first.

    A clip's action is its label (``labels.json``: ``content``, as Bandai and DeepMimic
    builds write it, or ``activity``, as CMU's); a clip without one counts the verbs of its
    captions, of which the ``VERBS_KEPT`` most common are kept.
    """
    labels_path = root / "labels.json"
    labels = json.loads(labels_path.read_text(encoding="utf-8")) if labels_path.is_file() else {}
    labelled: Counter[str] = Counter()
    verbs: Counter[str] = Counter()
    for clip_id, captions in per_clip.items():
        entry = labels.get(clip_id) if isinstance(labels, dict) else None
        entry = entry if isinstance(entry, dict) else {}
        if entry.get("mirror_of") or (clip_id.startswith("M") and clip_id[1:] in per_clip):
            continue
        tags = entry.get("labels") if isinstance(entry.get("labels"), dict) else {}
        action = next((tags[k] for k in ACTION_LABELS if isinstance(tags.get(k), str)), "")
        if action.strip():
            labelled[action.strip().replace("-", " ")] += 1
        else:
            verbs.update(_verbs(captions))
    labelled.update(dict(verbs.most_common(VERBS_KEPT)))
    return dict(sorted(labelled.items(), key=lambda kv: (-kv[1], kv[0])))


def dataset_records(root: Path, split: str, per_clip: dict[str, list[str]]) -> list[dict]:
    """Name, clips of the split, hours, licence and attribution of the data set, or of each
    source of a combined one (``combine-datasets``), from its build.json."""
    build_path = root / "build.json"
    build = json.loads(build_path.read_text(encoding="utf-8")) if build_path.is_file() else {}
    sources = build.get("sources")
    if isinstance(sources, dict) and sources:
        return [_record(name, split, (entry.get("splits") or {}).get(split), entry)
                for name, entry in sources.items() if isinstance(entry, dict)]  # fmt: skip
    originals = sum(1 for i in per_clip if not (i.startswith("M") and i[1:] in per_clip))
    return [_record(root.name, split, originals, build)]


def _record(name: str, split: str, clips: Any, build: dict) -> dict[str, Any]:
    record = {
        "name": name, "split": split, "clips": clips, "format": build.get("format"),
        "source": build.get("source") or build.get("folder"), "hours": build.get("hours"),
        "licence": build.get("licence"), "attribution": build.get("attribution"),
    }  # fmt: skip
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
        found, per_clip = split_captions(root, split)
        captions.update(dict.fromkeys(found))
        actions.update(vocabulary(root, per_clip))
        datasets += dataset_records(root, split, per_clip)
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
    parser.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="DATASET",
        help="built data set it was trained on (repeat for several)",
    )
    parser.add_argument("--split", default="train", help="the split it was trained on")
    parser.add_argument(
        "--max-captions",
        type=int,
        default=MAX_CAPTIONS,
        help=f"captions kept (default {MAX_CAPTIONS})",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=f"similarity below which a prompt is flagged ({DEFAULT_THRESHOLD})",
    )
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
