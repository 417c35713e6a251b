"""A built data set in one small file, and back: for moving data to a training machine.

A built data set is mostly derived data: features, mirrors and statistics all follow from
the canonical joints of the clips. ``pack_dataset`` keeps only those joints, of the
originals and of their mirrors (root positions as float32, the other joints relative to the
root in whole millimetres, delta coded over time and LZMA-compressed) plus the small text
files; ``unpack_dataset`` derives the features and statistics from them with the builder's
code, without canonicalising again (that is not idempotent: it moved joints by up to 19 mm).
Joints come back within 0.5 mm per coordinate, so the derived features differ from the
original build by that much; a packed set unpacks to the same folder every time. Sizes in
``docs/dataset.md``.

The pack is an ``.npz`` of plain arrays (text as UTF-8 bytes): it loads with
``allow_pickle=False``.
"""

import json
import lzma
import multiprocessing
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from engine.errors import MotionError
from engine.motion.features import Normalizer, joints_to_features
from training.build_dataset import (
    SPLITS,
    ProcessedClip,
    _move_into_place,
    _prepare_out,
    _save_npy,
    _write_lines,
    process_joints,
)

PACK_FORMAT = "kinetext-packed-dataset/2"  # /2 adds the mirrors' joints
OLD_FORMATS = ("kinetext-packed-dataset/1",)  # still read: mirrors derived again
TEXT_FILES = ("labels.json", "build.json", "README.md", "LICENSE")


def _base_ids(root: Path) -> list[str]:
    """Ids of the original clips (each with its mirror, "M" + id)."""
    labels = json.loads((root / "labels.json").read_text(encoding="utf-8"))
    return sorted(i for i, entry in labels.items() if entry.get("mirror_of") is None)


def _encode_joints(clips: list[np.ndarray]) -> tuple[bytes, np.ndarray]:
    """(sum T, 22, 3) -> LZMA bytes of [root float32 | millimetre deltas int16]."""
    joints = np.concatenate(clips).astype(np.float64)
    root = joints[:, 0].astype(np.float32)  # (F, 3)
    local = np.round((joints[:, 1:] - joints[:, :1]) * 1000.0).astype(np.int32)  # (F, 21, 3)
    if np.abs(local).max(initial=0) > 30000:
        raise MotionError("a joint lies over 30 m from its root: cannot pack this data set")
    delta = np.diff(local, axis=0, prepend=0).astype(np.int16)
    return lzma.compress(root.tobytes() + delta.tobytes(), preset=6), np.array(
        [len(c) for c in clips], dtype=np.int64
    )


def _decode_joints(blob: bytes, lengths: np.ndarray) -> list[np.ndarray]:
    total = int(lengths.sum())
    raw = lzma.decompress(blob)
    root = np.frombuffer(raw[: total * 12], dtype=np.float32).reshape(total, 1, 3)
    delta = np.frombuffer(raw[total * 12 :], dtype=np.int16).reshape(total, 21, 3)
    local = np.cumsum(delta.astype(np.int32), axis=0).astype(np.float64) / 1000.0
    joints = np.concatenate([root, root + local], axis=1)  # (F, 22, 3)
    return np.split(joints, np.cumsum(lengths)[:-1])


def pack_dataset(root: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the compact form of the built data set ``root`` to ``out`` (.npz)."""
    root, out = Path(root), Path(out)
    if not (root / "labels.json").is_file():
        raise MotionError(f"{root}: not a data set built by 'python -m training build-dataset'")
    ids = _base_ids(root)
    clips = [np.load(root / "new_joints" / f"{i}.npy") for i in ids]
    mirrors = [np.load(root / "new_joints" / f"M{i}.npy") for i in ids]
    blob, lengths = _encode_joints(clips + mirrors)
    names = [*ids, *(f"M{i}" for i in ids)]
    contacts = _encode_contacts([np.load(root / "new_joint_vecs" / f"{n}.npy") for n in names])
    texts = {i: (root / "texts" / f"{i}.txt").read_text(encoding="utf-8") for i in ids}
    files = {n: (root / n).read_text(encoding="utf-8") for n in TEXT_FILES if (root / n).is_file()}
    for split in SPLITS:  # a combined data set's per-source splits (training.combine)
        extra = sorted(root.glob(f"{split}_*.txt"))
        files |= {p.name: p.read_text(encoding="utf-8") for p in extra}
    splits = {s: (root / f"{s}.txt").read_text(encoding="utf-8").split() for s in SPLITS}
    meta = {"format": PACK_FORMAT, "ids": ids, "texts": texts, "files": files, "splits": splits,
            "mirrors": True}  # fmt: skip
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    with open(partial, "wb") as handle:
        np.savez(handle, joints=np.frombuffer(blob, dtype=np.uint8), lengths=lengths,
                 contacts=np.frombuffer(contacts, dtype=np.uint8),
                 meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))  # fmt: skip
    os.replace(partial, out)
    return out


def _encode_contacts(features: list[np.ndarray]) -> bytes:
    """The foot-contact labels (last 4 feature columns) of each clip, 4 bits a frame, LZMA:
    labels are thresholds of foot speed, so re-deriving them from joints rounded to the
    millimetre flipped about 1 in 1,000."""
    bits = np.concatenate([f[:, -4:] > 0.5 for f in features]) @ np.array([1, 2, 4, 8])
    return lzma.compress(bits.astype(np.uint8).tobytes(), preset=6)


def _decode_contacts(blob: bytes, lengths: np.ndarray) -> list[np.ndarray]:
    """(T - 1, 4) float contact labels per clip of joint length T."""
    bits = np.frombuffer(lzma.decompress(blob), dtype=np.uint8)
    labels = ((bits[:, None] >> np.arange(4)) & 1).astype(np.float64)  # (sum T - 1, 4)
    return np.split(labels, np.cumsum(lengths - 1)[:-1])


@dataclass(frozen=True)
class PackedClip:
    """One original clip as a pack holds it (``mirror`` is None in a /1 pack)."""

    joints: np.ndarray  # (T, 22, 3) canonical
    mirror: np.ndarray | None = None  # (T, 22, 3) canonical
    contacts: np.ndarray | None = None  # (T - 1, 4)
    mirror_contacts: np.ndarray | None = None


def _read_pack(pack: Path) -> tuple[dict, list[PackedClip]]:
    try:
        with np.load(pack, allow_pickle=False) as data:
            meta = json.loads(data["meta"].tobytes().decode())
            joints = _decode_joints(data["joints"].tobytes(), data["lengths"])
            contacts = None
            if "contacts" in data.files:
                contacts = _decode_contacts(data["contacts"].tobytes(), data["lengths"])
    except (OSError, ValueError, KeyError, lzma.LZMAError) as error:
        raise MotionError(f"{pack}: not a readable packed data set ({error})") from error
    if meta.get("format") not in (PACK_FORMAT, *OLD_FORMATS):
        raise MotionError(f"{pack}: unknown pack format {meta.get('format')!r}")
    count = len(meta["ids"])
    if not meta.get("mirrors"):
        return meta, [PackedClip(clip) for clip in joints]
    if contacts is None or len(joints) != 2 * count:
        raise MotionError(f"{pack}: not a readable packed data set (clips missing)")
    clips = [
        PackedClip(joints[i], joints[count + i], contacts[i], contacts[count + i])
        for i in range(count)
    ]
    return meta, clips


def rebuild_clip(clip: PackedClip) -> ProcessedClip:
    """A packed clip's joints and features as the builder wrote them: the joints are already
    canonical, and so are the mirror's when the pack holds them (the mirror is derived
    again for a /1 pack: its frame-0 heading and retargeting move it by millimetres)."""
    if clip.mirror is None:
        return process_joints(clip.joints, canonical=True)
    features = joints_to_features(clip.joints, canonical=True)
    mirror_features = joints_to_features(clip.mirror, canonical=True)
    features[:, -4:], mirror_features[:, -4:] = clip.contacts, clip.mirror_contacts
    return ProcessedClip(
        joints=clip.joints.astype(np.float32),
        features=features.astype(np.float32),
        mirror_joints=clip.mirror.astype(np.float32),
        mirror_features=mirror_features.astype(np.float32),
    )


def unpack_dataset(
    pack: str | os.PathLike, out: str | os.PathLike, workers: int | None = None
) -> Path:
    """Rebuild the full data set folder (features, mirrors, Mean/Std) from a pack."""
    pack, out = Path(pack), Path(out).absolute()
    meta, clips = _read_pack(pack)
    work = _prepare_out(out)
    try:
        with multiprocessing.get_context("spawn").Pool(workers or os.cpu_count()) as pool:
            # The packed joints are canonical already: canonicalising again moved them by
            # up to 19 mm (median 2.3 mm) and flipped foot contacts.
            results = pool.imap(rebuild_clip, clips, chunksize=8)
            done = tqdm(results, total=len(clips), unit="clip", desc="unpack-dataset", disable=None)
            train = _write_all(work, meta, done)
        Normalizer.fit(train).save(work)
        for split, ids in meta["splits"].items():
            _write_lines(work / f"{split}.txt", ids)
        all_ids = sorted(i for ids in meta["splits"].values() for i in ids)
        _write_lines(work / "all.txt", all_ids)
        for name, text in meta["files"].items():
            (work / name).write_text(text, encoding="utf-8")
        _move_into_place(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return out


def _write_all(work: Path, meta: dict, results) -> list[np.ndarray]:
    """Write every clip and its mirror; return the train split's features in id order."""
    train_ids = set(meta["splits"]["train"])
    train = []
    for clip_id, clip in zip(meta["ids"], results, strict=True):
        clip: ProcessedClip
        mirror_id = "M" + clip_id
        _save_npy(work / "new_joints" / f"{clip_id}.npy", clip.joints)
        _save_npy(work / "new_joint_vecs" / f"{clip_id}.npy", clip.features)
        _save_npy(work / "new_joints" / f"{mirror_id}.npy", clip.mirror_joints)
        _save_npy(work / "new_joint_vecs" / f"{mirror_id}.npy", clip.mirror_features)
        if clip_id in train_ids:
            train += [clip.features, clip.mirror_features]
    for name, text in meta["texts"].items():
        (work / "texts" / f"{name}.txt").write_text(text, encoding="utf-8")
    _mirror_texts(work, meta)
    return train


def _mirror_texts(work: Path, meta: dict) -> None:
    from training.captions import format_text_line, mirror_caption, parse_text_line

    for name, text in meta["texts"].items():
        lines = [parse_text_line(line) for line in text.splitlines() if line.strip()]
        mirrored = "".join(
            format_text_line(mirror_caption(t.caption), t.start, t.end) + "\n" for t in lines
        )
        (work / "texts" / f"M{name}.txt").write_text(mirrored, encoding="utf-8")


def round_trip_gaps(built: Path, out: Path) -> dict[str, float]:
    """Largest joint offsets (metres, per coordinate) of originals and mirrors, and how many
    foot-contact labels differ, between a build and its pack/unpack copy (tests and
    ``docs/measure_pack_round_trip.py`` check the documented 0.5 mm with it)."""
    gaps = {"joints": 0.0, "mirror_joints": 0.0, "contact_flips": 0}
    for path in (built / "new_joints").iterdir():
        gap = float(np.abs(np.load(out / "new_joints" / path.name) - np.load(path)).max())
        key = "mirror_joints" if path.name.startswith("M") else "joints"
        gaps[key] = max(gaps[key], gap)
        a = np.load(out / "new_joint_vecs" / path.name)[:, -4:]
        gaps["contact_flips"] += int(
            (a != np.load(built / "new_joint_vecs" / path.name)[:, -4:]).sum()
        )
    return gaps
