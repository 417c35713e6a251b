"""Build a HumanML3D-layout data set from BVH clips with captions.

    OUT/new_joints/ID.npy       (T, 22, 3) float32 canonical joints (``canonicalize_joints``)
    OUT/new_joint_vecs/ID.npy   (T-1, 263) float32 features (``joints_to_features``)
    OUT/texts/ID.txt            ``caption#word/POS ...#0.0#0.0`` lines
    OUT/Mean.npy, OUT/Std.npy   statistics of the train split, mirrors included
    OUT/{train,val,test,all}.txt  ids, one a line; ``M<ID>`` is the mirror of ``<ID>``
    OUT/labels.json             per id: source file, labels, joint frame count, mirror_of
    OUT/build.json              settings, counts, hours, skipped files with reasons, terms
    OUT/README.md (+ LICENSE)   what the folder is and the terms of its source data

Ids are the clips' positions in the sorted list of source paths, zero-padded to six
digits; a clip that cannot be built leaves its id unused, so the other ids never shift.
Splits are drawn per clip (a clip and its mirror share one) from the seed and each clip's
path. The build writes ``OUT.partial-<pid>`` beside OUT and renames it into place only when
it is complete, so an interrupted build leaves no half-written data set, and an earlier OUT
survives any interruption (docs/reliability.md has the matrix); what a killed build leaves
beside OUT is removed, or put back, by the next build. Nothing in the folder records time, so
two builds of the same source are byte-identical.
"""

import contextlib
import errno
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from engine.errors import MotionError
from engine.io.bvh_units import parse_units
from engine.motion.features import (
    Normalizer,
    canonicalize_joints,
    joints_to_features,
    mirror_joints,
)
from engine.motion.skeleton import FPS
from engine.retarget.joint_map import (
    JointMap,
    available_maps,
    load_joint_map,
    read_canonical,
    resolve_joint_map,
)
from training.bandai import discover_bandai, looks_like_bandai
from training.captions import format_text_line, mirror_caption
from training.cmu import discover_cmu, looks_like_cmu
from training.deepmimic import read_deepmimic
from training.deepmimic_source import discover_deepmimic, looks_like_deepmimic
from training.sources import (
    ClipSource,
    Discovery,
    Skipped,
    discover_folder,
    extract_archive,
    is_archive,
)

SPLITS = ("train", "val", "test")
FORMATS = ("auto", "bandai", "cmu", "folder", "deepmimic")
MAX_WORKERS = 256
"""Most worker processes a build starts (each holds a clip's arrays and a Python)."""
TRAINING_FRAMES = (40, 196)
"""Clip lengths (joint frames at 20 fps) the HumanML3D loaders train on; reported, not cut."""


@dataclass(frozen=True)
class ReadOptions:
    """How each file is read: the joint map (None: detect among ``maps``, the user's maps
    and the built-in ones) and the file's length unit for a BVH; ``reader`` "deepmimic"
    reads DeepMimic motions instead (``training.deepmimic``)."""

    joint_map: JointMap | None = None
    units: str = "auto"
    maps: tuple[JointMap, ...] = ()
    reader: str = "bvh"


@dataclass(frozen=True)
class BuildSettings:
    """Everything the output depends on (recorded in build.json). ``workers`` only sets speed."""

    format: str = "auto"
    seed: int = 0
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    map_name: str | None = None
    workers: int | None = None  # None: one per CPU
    units: str = "auto"  # BVH length unit: auto (told from the skeleton's size), m, cm, mm, in
    map_file: str | None = None  # a JSON joint map every file is read with
    map_dir: str | None = None  # the user's JSON joint maps (None: ``user_map_folder()``)

    @property
    def read(self) -> ReadOptions:
        """The maps this build reads with: ``map_file`` for every file, or ``map_name`` among
        the user's maps and the built-in ones, or detection among those (user's first)."""
        if self.map_file is not None:
            return ReadOptions(load_joint_map(self.map_file), self.units)
        maps = available_maps(self.map_dir)
        return ReadOptions(resolve_joint_map(self.map_name, maps), self.units, maps)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise MotionError(f"unknown format '{self.format}'; choose one of {FORMATS}")
        split = self.split
        fractions = len(split) == 3 and all(0 <= f <= 1 for f in split)  # False for NaN too
        if not fractions or abs(sum(split) - 1) > 1e-6 or split[0] <= 0:
            raise MotionError(f"split must be three fractions summing to 1 with train > 0: {split}")
        if self.workers is not None and not 1 <= self.workers <= MAX_WORKERS:
            raise MotionError(f"workers must be 1 to {MAX_WORKERS}, got {self.workers}")
        if self.map_name is not None and self.map_file is not None:
            raise MotionError("give --map or --map-file, not both")
        self.read  # noqa: B018 -- loads the maps once here, so a bad map stops the build at once
        parse_units(self.units)


@dataclass(frozen=True)
class ProcessedClip:
    """A clip and its mirror, ready to save: joints (T, 22, 3), features (T-1, 263), float32."""

    joints: np.ndarray
    features: np.ndarray
    mirror_joints: np.ndarray
    mirror_features: np.ndarray
    read: dict = field(default_factory=dict)  # how the file was read: map, units, fps, up


@dataclass(frozen=True)
class BuildReport:
    """What a build did; ``seconds`` is its wall time, printed but kept out of the folder."""

    out: Path
    built: int
    skipped: list[Skipped]
    clips_per_split: dict[str, int]
    frames: int
    hours: float
    seconds: float
    read: dict = field(default_factory=dict)  # build.json's "read": counts per map, unit, ...


def process_clip(path: Path, read: ReadOptions) -> ProcessedClip:
    """Read one BVH and give its canonical joints and features, and those of its mirror.

    Raises MotionError (BVHError for the file itself) on bad input.
    """
    if read.reader == "deepmimic":
        motion = read_deepmimic(path)
        return replace(process_joints(motion.joints), read=motion.read)
    clip = read_canonical(
        path, read.joint_map, units=read.units, maps=read.maps or None, drop_added_first_frame=True
    )  # (T, 22, 3) m, Y up, 20 fps; fmt: skip
    how = {"map": clip.joint_map.name, "units": clip.units.describe(),
           "source_fps": round(clip.source_fps, 4), "up": clip.up}  # fmt: skip
    if clip.dropped_first_frame:
        how["first_frame"] = "dropped (an added pose, not motion)"
    return replace(process_joints(clip.joints), read=how)


def process_joints(joints: np.ndarray, canonical: bool = False) -> ProcessedClip:
    """Canonical joints and features of a (T, 22, 3) clip, and those of its mirror.

    The mirror is taken of the canonical joints and canonicalised again, so its bone lengths
    are the canonical ones too (as HumanML3D re-extracted its "M" copies). ``canonical``:
    the joints are a built set's ``new_joints`` already (unpack-dataset) and are kept as
    they are, since canonicalising twice moves them by up to centimetres.
    """
    canonical_joints = joints if canonical else canonicalize_joints(joints)
    mirrored = mirror_joints(canonical_joints)
    return ProcessedClip(
        joints=canonical_joints.astype(np.float32),
        features=joints_to_features(canonical_joints, canonical=True).astype(np.float32),
        mirror_joints=canonicalize_joints(mirrored).astype(np.float32),
        mirror_features=joints_to_features(mirrored).astype(np.float32),
    )


Process = Callable[[Path, ReadOptions], ProcessedClip]


def _stable_hash(seed: int, name: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}:{name}".encode(), digest_size=8).digest())


def assign_splits(
    clips: Sequence[ClipSource], fractions: Sequence[float], seed: int
) -> dict[str, str]:
    """Clip name -> "train" | "val" | "test".

    Clips are ordered by group, then by a hash of (seed, name); walking that order, each clip
    goes to the split furthest below its share so far. Every split gets its fraction to within
    one clip, and each group (e.g. a content label) is spread over the splits in proportion.
    A clip whose source pins it to a split (``ClipSource.split``) goes there and the others
    are drawn as if it were not there.
    """
    assignment = {c.name: c.split for c in clips if c.split}
    drawn = [c for c in clips if not c.split]
    order = sorted(drawn, key=lambda c: (c.group, _stable_hash(seed, c.name)))
    counts = [0] * len(SPLITS)
    for i, clip in enumerate(order):
        deficits = [(i + 1) * f - n for f, n in zip(fractions, counts, strict=True)]
        k = max(range(len(SPLITS)), key=lambda s: (deficits[s], -s))
        counts[k] += 1
        assignment[clip.name] = SPLITS[k]
    return assignment


def _discover(root: Path, settings: BuildSettings) -> tuple[str, Discovery]:
    fmt = settings.format
    if fmt == "auto":
        fmt = "bandai" if looks_like_bandai(root) else "cmu" if looks_like_cmu(root) else "folder"
        fmt = "deepmimic" if fmt == "folder" and looks_like_deepmimic(root) else fmt
    if fmt == "deepmimic":
        return fmt, discover_deepmimic(root)
    if fmt == "bandai":
        return fmt, discover_bandai(root, settings.seed)
    if fmt == "cmu":
        return fmt, discover_cmu(root, settings.seed)
    return fmt, discover_folder(root)


BAD_INPUT_ERRORS: tuple[type[BaseException], ...] = (MotionError, OSError, UnicodeDecodeError)
"""Errors that mean "this file is bad": it is reported and skipped with the message."""
UNEXPECTED_ERRORS: tuple[type[BaseException], ...] = (ValueError, IndexError, MemoryError)
"""Errors a bad file should not cause (the reader raises BVHError) but that one file must not
turn into a failed build of thousands: skipped too, with the error's type in the reason."""


def _run_one(
    process: Process, read: ReadOptions, task: tuple[int, Path]
) -> tuple[int, ProcessedClip | None, str | None]:
    index, path = task
    try:
        return index, process(path, read), None
    except BAD_INPUT_ERRORS as err:
        return index, None, str(err) or type(err).__name__
    except UNEXPECTED_ERRORS as err:
        return index, None, f"{path}: {type(err).__name__}: {err}"


@contextlib.contextmanager
def _clip_results(
    tasks: list[tuple[int, Path]], process: Process, read: ReadOptions, workers: int
) -> Iterator[Iterator[tuple[int, ProcessedClip | None, str | None]]]:
    """Results of ``process`` over the tasks, in any order: a pool of ``workers`` processes,
    or inline for one. Leaving the block (also by an exception) stops the pool."""
    run = partial(_run_one, process, read)
    if workers <= 1 or len(tasks) <= 1:
        yield map(run, tasks)
        return
    # Biggest files first: no worker is left with a long clip at the end.
    tasks = sorted(tasks, key=lambda task: -_file_size(task[1]))
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    # An executor, not multiprocessing.Pool: a Pool replaces a worker killed by a signal (the
    # OOM killer, a user's kill) and waits forever for its lost result; an executor fails.
    pool = ProcessPoolExecutor(min(workers, len(tasks)), context, _ignore_interrupts)
    try:
        yield _as_completed([pool.submit(run, task) for task in tasks])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _as_completed(futures: list[Future]) -> Iterator[tuple]:
    """Results as they finish; a dead worker stops the build with one clear error."""
    try:
        for future in as_completed(futures):
            yield future.result()
    except BrokenProcessPool as error:
        raise MotionError(
            "a worker process died (killed by a signal or out of memory) while building; "
            "nothing was written. --workers 1 reads one file at a time and shows which one"
        ) from error


def _ignore_interrupts() -> None:
    """Ctrl-C is the main process's to handle: it stops the pool and removes the partial
    folder; workers dying on their own would only print tracebacks."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # unreadable: the worker reports it


def _save_npy(path: Path, array: np.ndarray) -> None:
    np.save(path, np.ascontiguousarray(array))


def _write_clip(
    root: Path, clip_id: str, joints, features, captions: Sequence[str],
    spans: Sequence[tuple[str, float, float]] = (),
) -> None:  # fmt: skip
    _save_npy(root / "new_joints" / f"{clip_id}.npy", joints)
    _save_npy(root / "new_joint_vecs" / f"{clip_id}.npy", features)
    lines = "".join(format_text_line(c) + "\n" for c in captions)
    lines += "".join(format_text_line(c, start, end) + "\n" for c, start, end in spans)
    (root / "texts" / f"{clip_id}.txt").write_text(lines, encoding="utf-8")


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _length_summary(frames: list[int]) -> dict:
    lo, hi = TRAINING_FRAMES
    return {
        "total": sum(frames),
        "min": min(frames, default=0),
        "median": statistics.median(frames) if frames else 0,
        "max": max(frames, default=0),
        f"clips_{lo}_to_{hi}": sum(lo <= f <= hi for f in frames),
    }


def _read_counts(entries) -> dict[str, dict[str, int]]:
    """How many clips were read with each map, unit, source rate and up axis."""
    counts: dict[str, Counter] = {}
    for entry in entries:
        for key, value in entry.get("read", {}).items():
            counts.setdefault(key, Counter())[str(value)] += 1
    return {k: dict(sorted(v.items())) for k, v in sorted(counts.items())}


def _terms_counts(entries) -> dict:
    """``{"terms": {licence: clips}}`` where a source gives each clip its own terms, else {}."""
    counts = Counter(e["terms"] for e in entries if "terms" in e)
    return {"terms": dict(sorted(counts.items()))} if counts else {}


def _summary(
    source: str, fmt: str, settings: BuildSettings, found: Discovery, labels: dict,
    split_of: dict[str, str], skipped: list[Skipped],
) -> dict:  # fmt: skip
    """The build.json record: settings, counts, lengths, label counts, skipped, terms."""
    originals = {i: e for i, e in labels.items() if e["mirror_of"] is None}
    frames = [e["frames"] for e in originals.values()]
    per_split = Counter(split_of[i] for i in originals)
    label_counts: dict[str, Counter] = {}
    for entry in originals.values():
        for key, value in entry["labels"].items():
            label_counts.setdefault(key, Counter())[value] += 1
    return {
        "source": source,
        "format": fmt,
        "settings": {
            "seed": settings.seed,
            "split": list(settings.split),
            "map": settings.map_name,
            "map_file": Path(settings.map_file).name if settings.map_file else None,
            "units": settings.units,
        },  # fmt: skip
        "fps": FPS,
        "clips": {
            "found": len(found.clips),
            "built": len(originals),
            "skipped": len(skipped),
            "with_mirrors": 2 * len(originals),
        },  # fmt: skip
        "splits": {s: {"clips": per_split[s], "with_mirrors": 2 * per_split[s]} for s in SPLITS},
        "frames": _length_summary(frames),
        "hours": round(sum(frames) / FPS / 3600, 4),
        "hours_with_mirrors": round(2 * sum(frames) / FPS / 3600, 4),
        "labels": {k: dict(sorted(v.items())) for k, v in sorted(label_counts.items())},
        "read": _read_counts(originals.values()),
        "skipped": [asdict(s) for s in skipped],
        "attribution": found.attribution,
        "licence": found.licence,
        **_terms_counts(originals.values()),
    }


def _readme(summary: dict) -> str:
    lines = [
        "# Motion data set (HumanML3D layout)",
        "",
        f"Built by `python -m training build-dataset` from `{summary['source']}` "
        f"(format {summary['format']}, seed {summary['settings']['seed']}).",
        f"{summary['clips']['built']} clips ({summary['clips']['with_mirrors']} with mirrors), "
        f"{summary['hours']} hours at {summary['fps']} fps; build.json has the details.",
        "",
        "Layout: new_joints/ID.npy (T, 22, 3), new_joint_vecs/ID.npy (T-1, 263), texts/ID.txt, "
        "Mean.npy, Std.npy, train/val/test/all.txt, labels.json. `M<ID>` mirrors `<ID>`.",
    ]
    if summary["attribution"]:
        lines += ["", "## Terms", "", summary["attribution"]]
        lines += ["", summary["licence"]] if summary["licence"] else []
    return "\n".join(lines) + "\n"


def _prepare_out(out: Path) -> Path:
    """The partial folder to build in; refuses an OUT that is not an earlier build."""
    if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or
                                               (out / "build.json").is_file())):  # fmt: skip
        raise MotionError(f"{out}: exists and is not a data set built here; not replacing it")
    partial_dir = out.with_name(f"{out.name}.partial-{os.getpid()}")
    shutil.rmtree(partial_dir, ignore_errors=True)
    for sub in ("new_joints", "new_joint_vecs", "texts"):
        (partial_dir / sub).mkdir(parents=True)
    return partial_dir


def _move_into_place(partial_dir: Path, out: Path) -> None:
    """Swap the finished folder in; an earlier OUT is removed only once the new one is there.

    Two renames: OUT -> OUT.old-PID, then the new folder -> OUT. Anything that stops the swap
    between them (an error, Ctrl-C) puts the old OUT back; a SIGKILL there leaves the old one
    as OUT.old-PID, which the next build (``clean_stale``) renames back to OUT.
    """
    if not out.exists():
        os.replace(partial_dir, out)
        return
    old = out.with_name(f"{out.name}.old-{os.getpid()}")
    try:
        os.replace(out, old)
        os.replace(partial_dir, out)
    except BaseException:
        if old.exists() and not out.exists():
            os.replace(old, out)
        raise
    shutil.rmtree(old)


def _stale_sibling(path: Path, out: Path) -> str | None:
    """The kind ("partial", "source" or "old") of a leftover of a build of ``out`` whose process is
    gone (``OUT.partial-PID``, ``.OUT.source-PID``, ``OUT.old-PID``), else None."""
    for kind, prefix in (("partial", f"{out.name}.partial-"), ("source", f".{out.name}.source-"),
                         ("old", f"{out.name}.old-")):  # fmt: skip
        pid = path.name[len(prefix) :]
        if path.name.startswith(prefix) and pid.isascii() and pid.isdigit():
            return None if _alive(int(pid)) else kind
    return None


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (this one included); a reused pid counts as alive,
    so a leftover is at worst kept for a later build, never removed under a running one."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except OSError as error:
        return error.errno != errno.ESRCH
    return True


def clean_stale(out: Path) -> list[str]:
    """Remove what killed builds of ``out`` left beside it; put back an OUT that a build
    killed between its two final renames left only as OUT.old-PID. Returns what it did."""
    done = []
    if not out.parent.is_dir():
        return done
    for path in sorted(out.parent.iterdir()):
        kind = _stale_sibling(path, out)
        if kind == "old" and not out.exists():
            os.replace(path, out)
            done.append(f"restored {out} from {path.name} (a build was killed while swapping)")
        elif kind is not None:
            shutil.rmtree(path, ignore_errors=True)
            done.append(f"removed {path.name} (left by a build that was killed)")
    return done


@dataclass
class _Collected:
    """What the clips that were built add up to, filled in as results arrive."""

    work: Path
    labels: dict  # id -> labels.json entry
    split_of: dict[str, str]  # id -> split
    train: dict[int, tuple[np.ndarray, np.ndarray]]  # clip index -> features, mirror's
    skipped: list[Skipped]

    def add(
        self, clip: ClipSource, index: int, clip_id: str, split: str, data: ProcessedClip,
        attribution: str | None = None,
    ):  # fmt: skip
        """Write a clip and its mirror; record both in labels.json and the split."""
        mirror_id = "M" + clip_id
        _write_clip(self.work, clip_id, data.joints, data.features, clip.captions, clip.spans)
        mirrored = [mirror_caption(c) for c in clip.captions]
        spans = [(mirror_caption(c), start, end) for c, start, end in clip.spans]
        _write_clip(self.work, mirror_id, data.mirror_joints, data.mirror_features, mirrored, spans)
        self.labels[clip_id] = {"source": clip.name, "frames": len(data.joints),
                                "labels": clip.labels, "mirror_of": None}  # fmt: skip
        if data.read:
            self.labels[clip_id]["read"] = data.read
        if attribution:  # clips of several sources mixed later keep their credit line
            self.labels[clip_id]["attribution"] = attribution
        self.labels[mirror_id] = {
            "source": clip.name,
            "frames": len(data.mirror_joints),
            "labels": {k: mirror_caption(v) for k, v in clip.labels.items()},
            "mirror_of": clip_id,
        }
        if clip.terms:
            self.labels[clip_id]["terms"] = self.labels[mirror_id]["terms"] = clip.terms
        self.split_of[clip_id] = self.split_of[mirror_id] = split
        if split == "train":
            self.train[index] = (data.features, data.mirror_features)

    def write_tables(self) -> None:
        """Mean/Std of the train split (in id order, so the sums are reproducible), id lists."""
        if not self.train:
            raise MotionError("no clip of the train split could be built")
        Normalizer.fit([f for i in sorted(self.train) for f in self.train[i]]).save(self.work)
        for split in SPLITS:
            chosen = sorted(i for i, s in self.split_of.items() if s == split)
            _write_lines(self.work / f"{split}.txt", chosen)
        _write_lines(self.work / "all.txt", sorted(self.labels))


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def bare_reason(item: Skipped) -> str:
    """A skip reason without the file's own name in front: what files share."""
    return item.reason.removeprefix(f"{item.file}: ")


def _build_into(
    work: Path, root: Path, source: str, settings: BuildSettings, process: Process,
    progress: bool,
) -> tuple[dict, list[Skipped]]:  # fmt: skip
    """Discover, process and write everything into the folder ``work``; return build.json."""
    fmt, found = _discover(root, settings)
    if not found.clips:
        raise MotionError(f"{source}: no buildable BVH clip found (format {fmt})")
    split_by_name = assign_splits(found.clips, settings.split, settings.seed)
    width = max(6, len(str(len(found.clips) - 1)))
    collected = _Collected(work, {}, {}, {}, list(found.skipped))
    tasks = [(i, clip.path) for i, clip in enumerate(found.clips)]
    workers = settings.workers or os.cpu_count() or 1
    read = replace(settings.read, reader="deepmimic" if fmt == "deepmimic" else "bvh")
    reasons: set[str] = set()  # each reason is printed live once, with its first file
    with _clip_results(tasks, process, read, workers) as results:
        for index, data, error in tqdm(results, total=len(tasks), unit="clip",
                                       desc="build-dataset", disable=not progress):  # fmt: skip
            clip = found.clips[index]
            if data is None:
                reason = error.replace(f"{root}{os.sep}", "")
                collected.skipped.append(Skipped(clip.name, reason))
                bare = bare_reason(collected.skipped[-1])
                if bare not in reasons:  # once per reason; the CLI lists every file at the end
                    tqdm.write(f"skipped {clip.name}: {bare}")
                reasons.add(bare)
            else:
                clip_id, split = f"{index:0{width}d}", split_by_name[clip.name]
                collected.add(clip, index, clip_id, split, data, found.attribution)
    if not collected.labels:
        raise MotionError(
            f"{source}: none of the {len(tasks)} files could be built (each reason is printed "
            "above with its first file)"
        )
    collected.write_tables()
    skipped = sorted(collected.skipped, key=lambda s: s.file)
    summary = _summary(source, fmt, settings, found, collected.labels, collected.split_of, skipped)
    _write_json(work / "labels.json", collected.labels)
    _write_json(work / "build.json", summary)
    (work / "README.md").write_text(_readme(summary), encoding="utf-8")
    _write_licence(work / "LICENSE", found)
    return summary, skipped


def _write_licence(path: Path, found: Discovery) -> None:
    """The source's licence file, or its several files one after another, as ``LICENSE``."""
    files = [found.license_file] if found.license_file is not None else []
    files += list(found.extra_license_files)
    if len(files) == 1:
        shutil.copyfile(files[0], path)
    elif files:
        texts = [f"==> {f.name} ({f.parent.name}/) <==\n\n{f.read_text('utf-8')}" for f in files]
        path.write_text("\n\n".join(texts), encoding="utf-8")


def build_dataset(
    source: str | os.PathLike,
    out: str | os.PathLike,
    settings: BuildSettings | None = None,
    *,
    process: Process = process_clip,
    progress: bool = True,
) -> BuildReport:
    """Build the data set of ``source`` (a folder or a tar archive of one) into ``out``.

    ``process`` turns one BVH path into a ``ProcessedClip``; a MotionError or OSError from it
    skips that file with the message as the reason (ValueError, IndexError and MemoryError
    too, with their type); a worker process that dies stops the build with a MotionError.
    On any failure or interruption the partial folder is removed and an existing ``out`` is
    left as it was.
    """
    started = time.perf_counter()
    settings = settings or BuildSettings()
    source_path, out = Path(source), Path(out).absolute()
    if not source_path.exists():
        raise MotionError(f"{source_path}: no such folder or archive")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise MotionError(f"{out}: cannot make its folder ({error.strerror or error})") from error
    for note in clean_stale(out):
        tqdm.write(f"note: {note}")
    work = _prepare_out(out)
    unpacked = None
    try:
        root = source_path
        if is_archive(source_path):
            unpack_to = out.with_name(f".{out.name}.source-{os.getpid()}")
            root = unpacked = extract_archive(source_path, unpack_to)
        elif not source_path.is_dir():
            raise MotionError(f"{source_path}: not a folder or a tar archive")
        summary, skipped = _build_into(work, root, str(source), settings, process, progress)
        _move_into_place(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        if unpacked is not None:
            shutil.rmtree(unpacked, ignore_errors=True)
    return BuildReport(
        out=out,
        built=summary["clips"]["built"],
        skipped=skipped,
        clips_per_split={s: summary["splits"][s]["clips"] for s in SPLITS},
        frames=summary["frames"]["total"],
        hours=summary["hours"],
        seconds=time.perf_counter() - started,
        read=summary["read"],
    )
