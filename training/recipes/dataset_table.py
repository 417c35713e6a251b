"""Counts, hours and example captions per source of a built or combined data set (Markdown).

    python training/recipes/dataset_table.py DATASET [--examples 1]

Reads only the data set folder (splits, labels.json, texts/): what docs/dataset.md reports.
"""

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.motion.skeleton import FPS  # noqa: E402
from training.captions import parse_text_line  # noqa: E402
from training.data.humanml3d import read_split  # noqa: E402
from training.data.mix import source_of  # noqa: E402

SPLITS = ("train", "val", "test")


def _rows(root: Path, examples: int) -> tuple[list[str], list[str]]:
    labels = json.loads((root / "labels.json").read_text(encoding="utf-8"))
    split_of = {i: s for s in SPLITS for i in read_split(root, s)}
    stats: dict = defaultdict(lambda: {"clips": 0, "frames": 0, **{s: 0 for s in SPLITS}})
    contents: dict = defaultdict(Counter)
    samples: dict = defaultdict(list)
    for clip_id, entry in sorted(labels.items()):
        if entry.get("mirror_of"):
            continue
        source = entry.get("dataset") or source_of(clip_id) or "-"
        row = stats[source]
        row["clips"] += 1
        row["frames"] += int(entry.get("frames", 0))
        row[split_of.get(clip_id, "train")] += 1
        content = entry.get("labels", {}).get("content", "-")
        contents[source][content] += 1
        if len(samples[(source, content)]) < examples:
            lines = (root / "texts" / f"{clip_id}.txt").read_text(encoding="utf-8").splitlines()
            samples[(source, content)].append(parse_text_line(lines[0]).caption)
    head = ["| source | clips (with mirrors) | hours (with mirrors) | train / val / test clips |",
            "|---|---|---|---|"]  # fmt: skip
    for source, row in sorted(stats.items()):
        hours = row["frames"] / FPS / 3600
        splits = " / ".join(str(row[s]) for s in SPLITS)
        clips = f"{row['clips']} ({2 * row['clips']})"
        head.append(f"| {source} | {clips} | {hours:.3f} ({2 * hours:.3f}) | {splits} |")
    body = ["| source | content | clips | example caption |", "|---|---|---|---|"]
    for source in sorted(contents):
        for content, n in contents[source].most_common():
            shown = " / ".join(samples[(source, content)])
            body.append(f"| {source} | {content} | {n} | {shown} |")
    return head, body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("--examples", type=int, default=1, help="captions shown per content")
    args = parser.parse_args(argv)
    head, body = _rows(Path(args.dataset), args.examples)
    print("\n".join(head) + "\n\n" + "\n".join(body))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
