"""Several built data sets -> one, for training on all of them (``combine-datasets``).

    python -m training combine-datasets OUT bandai=data/bandai deepmimic=data/dm cmu=data/cmu

Each source is a folder written by ``build-dataset`` (or ``unpack-dataset``), any format. Its
clips keep their features, captions and split: ids become ``<source>_<id>`` (mirrors
``M<source>_<id>``, ``training.data.mix``), so a source's test split in OUT is exactly the
clips of its own test split, and ``test_<source>.txt`` (likewise train/val) lists them on
their own. Mean/Std are fitted again on the combined train split (mirrors included).
``labels.json`` records each clip's source data set; ``build.json`` each source's counts,
attribution and licence, joined into one attribution and licence line that training and
export carry; ``LICENSE`` holds every source's licence file. Sampling weights per source are
a training setting (``source_weights``), not part of the data.
"""

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from engine.errors import MotionError
from engine.motion.features import Normalizer
from engine.motion.skeleton import FPS
from training.build_dataset import SPLITS, _move_into_place, _prepare_out, _write_json, _write_lines
from training.data.humanml3d import read_split
from training.data.mix import check_source_name, combined_id

SUBFOLDERS = ("new_joints", "new_joint_vecs", "texts")


def parse_source(text: str) -> tuple[str, Path]:
    """``"name=folder"`` -> (name, folder); a bare folder takes its own name, lowercased."""
    name, sep, folder = text.partition("=")
    if not sep:
        folder, name = text, "".join(c for c in Path(text).name.lower() if c.isalnum())
    path = Path(folder)
    if not (path / "Mean.npy").is_file() or not (path / "train.txt").is_file():
        raise MotionError(f"{path}: not a built data set (no Mean.npy / train.txt)")
    return check_source_name(name), path


def _link(src: Path, dst: Path) -> None:
    """A hard link where the file system allows one (a data set is hundreds of MB), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _labels(root: Path, ids: Sequence[str]) -> dict:
    """A source's labels.json, or minimal entries for a data set without one (HumanML3D)."""
    path = root / "labels.json"
    table = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    for clip_id in ids:
        if clip_id not in table:
            frames = np.load(root / "new_joint_vecs" / f"{clip_id}.npy", mmap_mode="r").shape[0]
            mirror_of = clip_id[1:] if clip_id.startswith("M") and clip_id[1:] in ids else None
            table[clip_id] = {"source": clip_id, "frames": frames + 1, "labels": {},
                              "mirror_of": mirror_of}  # fmt: skip
    return table


def _add_source(work: Path, name: str, root: Path, out: dict) -> dict:
    """Link one source's clips into ``work`` under new ids; return its build.json entry."""
    splits = {s: read_split(root, s) for s in SPLITS}
    ids = [i for s in SPLITS for i in splits[s]]
    labels = _labels(root, ids)
    for clip_id in tqdm(ids, desc=f"combine {name}", unit="clip", disable=None):
        new = combined_id(name, clip_id)
        _link(root / "new_joints" / f"{clip_id}.npy", work / "new_joints" / f"{new}.npy")
        _link(root / "new_joint_vecs" / f"{clip_id}.npy", work / "new_joint_vecs" / f"{new}.npy")
        shutil.copyfile(root / "texts" / f"{clip_id}.txt", work / "texts" / f"{new}.txt")
        entry = dict(labels[clip_id], dataset=name)
        if entry.get("mirror_of"):
            entry["mirror_of"] = combined_id(name, entry["mirror_of"])
        out["labels"][new] = entry
    for split in SPLITS:
        new_ids = [combined_id(name, i) for i in splits[split]]
        out["splits"][split] += new_ids
        _write_lines(work / f"{split}_{name}.txt", sorted(new_ids))
    build = root / "build.json"
    record = json.loads(build.read_text(encoding="utf-8")) if build.is_file() else {}
    originals = [e for i, e in labels.items() if i in set(ids) and not e.get("mirror_of")]
    frames = sum(int(e.get("frames", 0)) for e in originals)
    return {
        "folder": str(root), "format": record.get("format"), "clips": len(originals),
        "splits": {s: sum(1 for i in splits[s] if not i.startswith("M")) for s in SPLITS},
        "hours": round(frames / FPS / 3600, 4), "attribution": record.get("attribution"),
        "licence": record.get("licence"), "terms": record.get("terms"),
    }  # fmt: skip


def _licence_text(sources: list[tuple[str, Path]]) -> str:
    parts = [f"==> {name} ({root}) <==\n\n{(root / 'LICENSE').read_text(encoding='utf-8')}"
             for name, root in sources if (root / "LICENSE").is_file()]  # fmt: skip
    return "\n\n".join(parts)


def _readme(summary: dict) -> str:
    lines = [
        "# Combined motion data set (HumanML3D layout)",
        "",
        "Made by `python -m training combine-datasets`; ids are `<source>_<id>`, mirrors "
        "`M<source>_<id>`; `test_<source>.txt` lists one source's test clips.",
        "",
    ]
    for name, source in summary["sources"].items():
        lines.append(f"- {name}: {source['clips']} clips, {source['hours']} h ({source['folder']})")
    if summary["attribution"]:
        lines += ["", "## Terms", "", summary["attribution"], "", summary["licence"] or ""]
    return "\n".join(lines) + "\n"


def _terms(entries: dict, key: str, separator: str) -> str | None:
    values = [f"{name}: {e[key]}" for name, e in entries.items() if e.get(key)]
    return separator.join(values) or None


def combine_datasets(sources: Sequence[tuple[str, Path]], out: str | os.PathLike) -> Path:
    """Write the combined data set of ``sources`` ((name, folder), ...) to ``out``."""
    names = [name for name, _ in sources]
    if not sources or len(set(names)) != len(names):
        raise MotionError(f"combine needs one or more sources with distinct names, got {names}")
    out = Path(out).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    work = _prepare_out(out)
    try:
        collected: dict = {"labels": {}, "splits": {s: [] for s in SPLITS}}
        entries = {name: _add_source(work, name, root, collected) for name, root in sources}
        train = sorted(collected["splits"]["train"])
        Normalizer.fit([np.load(work / "new_joint_vecs" / f"{i}.npy") for i in train]).save(work)
        for split in SPLITS:
            _write_lines(work / f"{split}.txt", sorted(collected["splits"][split]))
        _write_lines(work / "all.txt", sorted(collected["labels"]))
        _write_json(work / "labels.json", collected["labels"])
        summary = {
            "format": "combined", "fps": FPS, "sources": entries,
            "clips": {"built": sum(e["clips"] for e in entries.values())},
            "hours": round(sum(e["hours"] for e in entries.values()), 4),
            "attribution": _terms(entries, "attribution", "; "),
            "licence": _terms(entries, "licence", " | "),
        }  # fmt: skip
        _write_json(work / "build.json", summary)
        (work / "README.md").write_text(_readme(summary), encoding="utf-8")
        if licence := _licence_text(list(sources)):
            (work / "LICENSE").write_text(licence, encoding="utf-8")
        _move_into_place(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return out
