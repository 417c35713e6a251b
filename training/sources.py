"""Where a data set's clips come from: BVH files with their captions and labels.

A source adapter (``discover_folder`` here, ``training.bandai.discover_bandai``) turns a folder
into a sorted list of ``ClipSource`` plus the files it had to leave out, each with the reason.
The builder (``training.build_dataset``) only ever sees this list, so a new mocap collection
needs one adapter and nothing else.

Folder format (``--format folder``): every ``*.bvh`` under the folder, at any depth. A clip's
captions are gathered, in this order and without repeats, from
1. ``NAME.txt`` beside ``NAME.bvh``: one caption per line, or a HumanML3D line
   ``caption#tokens#start#end`` (or ``caption#start#end``);
2. ``captions.csv`` at the folder root: columns ``file`` (the BVH path relative to the root,
   or its bare file name) and ``caption``, one row per caption, optional ``start`` and
   ``end`` (seconds); any further column is a label (e.g. ``content``, ``style``);
3. ``labels.json`` at the folder root: ``{"walks/clip.bvh": {"captions": [...],
   "labels": {"content": "walk"}}}``, or just a list of captions per file; a caption is a
   string or ``{"caption": ..., "start": s, "end": e}``.
A span (start, end in seconds from the clip's first frame) is kept in ``texts/ID.txt`` as
HumanML3D keeps it: training makes that part of the clip an item of its own with that
caption (``training.data.humanml3d``); 0, 0 (or no span) describes the whole clip.
A clip without any caption is left out and reported.
"""

import csv
import io
import json
import math
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import MotionError

ARCHIVE_SUFFIXES = (".tar.xz", ".txz", ".tar.gz", ".tgz", ".tar.bz2", ".tar")


@dataclass(frozen=True)
class ClipSource:
    """One BVH clip to build, with the text that describes it.

    ``name`` is the path relative to the source root in POSIX form: clips are sorted by it,
    ids follow that order and ``labels.json`` records it as the clip's source.
    ``group`` keeps clips of one kind (e.g. one content label) spread over all splits.
    ``spans`` caption parts of the clip (HumanML3D's ``#start#end``): the loaders train on
    crops of the span only, so a take of several actions can say which is where.
    """

    path: Path
    name: str
    captions: tuple[str, ...]
    labels: dict[str, str] = field(default_factory=dict)
    group: str = ""
    terms: str = ""  # the clip's own licence where a source mixes several (labels.json)
    split: str = ""  # "" drawn by the builder; "train" pins it (an action with one clip)
    spans: tuple[tuple[str, float, float], ...] = ()  # (caption, start s, end s) of a part


@dataclass(frozen=True)
class Skipped:
    """A file left out of the data set and why (an error message naming the problem)."""

    file: str
    reason: str


@dataclass(frozen=True)
class Discovery:
    """What an adapter found: the clips to build (sorted by name), the files it left out, and
    the terms the data comes with: an attribution line, the licence in a few words (build.json
    and export carry both), licence files to ship beside it (joined into one LICENSE)."""

    clips: list[ClipSource]
    skipped: list[Skipped]
    attribution: str | None = None
    license_file: Path | None = None
    licence: str | None = None
    extra_license_files: tuple[Path, ...] = ()


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def extract_archive(archive: Path, into: Path) -> Path:
    """Unpack a tar archive into the folder ``into`` (created; must not exist) and return it.

    Members that would land outside ``into`` (absolute paths, ``..``, links) are refused by
    tarfile's "data" filter, so an archive cannot write anywhere else.
    """
    into.mkdir(parents=True)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(into, filter="data")
    except (tarfile.TarError, OSError) as err:
        shutil.rmtree(into, ignore_errors=True)
        raise MotionError(f"{archive}: cannot unpack the archive: {err}") from err
    return into


def bvh_files(root: Path) -> list[Path]:
    """Every BVH file under ``root`` (any depth, any case of ``.bvh``), sorted by relative path."""
    found = (p for p in root.rglob("*") if p.suffix.lower() == ".bvh" and p.is_file())
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def read_text_file(path: Path) -> str:
    """A caption file's text: UTF-8, with or without the byte-order mark Excel and Notepad
    write. Anything else is a ``MotionError`` naming the file and how to fix it."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise MotionError(
            f"{path}: not UTF-8 text (byte {err.start}): save it as UTF-8 and build again"
        ) from err


Caption = tuple[str, float, float]  # text, start and end seconds ((0, 0): the whole clip)
SPAN_COLUMNS = ("start", "end")


def _span(start, end, where: str) -> tuple[float, float]:
    """Seconds of a caption's span; blanks are 0 (whole clip). ``MotionError`` when they do
    not read as 0 <= start < end (or both 0)."""
    try:
        values = tuple(float(v) if str(v).strip() else 0.0 for v in (start, end))
    except (TypeError, ValueError) as err:
        raise MotionError(f"{where}: span start/end must be seconds: {start!r}, {end!r}") from err
    first, last = values
    if values != (0.0, 0.0) and not (0.0 <= first < last and math.isfinite(last)):
        raise MotionError(f"{where}: span {first:g}-{last:g} s must have 0 <= start < end")
    return first, last


def _sidecar_line(line: str, where: str) -> Caption | None:
    """One ``NAME.txt`` line: a caption, or a HumanML3D line ``caption#tokens#start#end``
    whose span is kept (``caption#start#end`` too)."""
    fields = [f.strip() for f in line.split("#")]
    if not fields[0]:
        return None
    if len(fields) == 4:
        return (fields[0], *_span(fields[2], fields[3], where))
    if len(fields) == 3:
        return (fields[0], *_span(fields[1], fields[2], where))
    return (fields[0], 0.0, 0.0)


def _sidecar_captions(bvh: Path) -> list[Caption]:
    sidecar = bvh.with_suffix(".txt")
    if not sidecar.is_file():
        return []
    lines = read_text_file(sidecar).splitlines()
    found = (_sidecar_line(line, f"{sidecar} line {n}") for n, line in enumerate(lines, 1))
    return [caption for caption in found if caption is not None]


def _read_captions_csv(path: Path) -> dict[str, tuple[list[Caption], dict[str, str]]]:
    """``captions.csv`` -> {file key: (captions, labels)}; optional ``start`` and ``end``
    columns give a caption's span in seconds."""
    table: dict[str, tuple[list[Caption], dict[str, str]]] = {}
    with io.StringIO(read_text_file(path), newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"file", "caption"} <= set(reader.fieldnames):
            raise MotionError(f"{path}: needs a header with the columns 'file' and 'caption'")
        for row in reader:
            captions, labels = table.setdefault(row["file"].strip(), ([], {}))
            if (row.get("caption") or "").strip():
                where = f"{path} line {reader.line_num}"
                span = _span(row.get("start") or "", row.get("end") or "", where)
                captions.append((row["caption"].strip(), *span))
            for key, value in row.items():
                skip = ("file", "caption", *SPAN_COLUMNS)
                if key not in skip and key and (value or "").strip():
                    labels.setdefault(key, value.strip())
    return table


def _json_caption(entry, where: str) -> Caption:
    """A caption of ``labels.json``: a string, or ``{"caption", "start", "end"}``."""
    if isinstance(entry, dict):
        span = _span(entry.get("start", ""), entry.get("end", ""), where)
        return (str(entry.get("caption", "")).strip(), *span)
    return (str(entry).strip(), 0.0, 0.0)


def _read_labels_json(path: Path) -> dict[str, tuple[list[Caption], dict[str, str]]]:
    """``labels.json`` -> {file key: (captions, labels)}."""
    try:
        data = json.loads(read_text_file(path))
    except json.JSONDecodeError as err:
        raise MotionError(f"{path}: not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise MotionError(f"{path}: expected an object keyed by BVH file")
    table = {}
    for key, entry in data.items():
        if isinstance(entry, list):
            entry = {"captions": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("captions", []), list):
            raise MotionError(f"{path}: entry {key!r} must be a list of captions or an object")
        labels = {str(k): str(v) for k, v in (entry.get("labels") or {}).items()}
        where = f"{path} entry {key!r}"
        table[key] = ([_json_caption(c, where) for c in entry.get("captions", [])], labels)
    return table


def _lookup(table: dict, name: str) -> tuple[list[str], dict[str, str]]:
    """A root-table entry by relative path, then by bare file name."""
    return table.get(name) or table.get(Path(name).name) or ([], {})


def discover_folder(root: Path) -> Discovery:
    """The folder adapter: every BVH under ``root`` with captions from the three places above."""
    tables = []
    if (root / "captions.csv").is_file():
        tables.append(_read_captions_csv(root / "captions.csv"))
    if (root / "labels.json").is_file():
        tables.append(_read_labels_json(root / "labels.json"))
    clips, skipped = [], []
    for path in bvh_files(root):
        name = path.relative_to(root).as_posix()
        try:
            captions, labels = _sidecar_captions(path), {}
        except MotionError as err:  # one bad caption file skips its clip, not the build
            skipped.append(Skipped(name, str(err)))
            continue
        for table in tables:
            more, more_labels = _lookup(table, name)
            captions += more
            labels = {**more_labels, **labels}
        captions = list(dict.fromkeys((" ".join(c.split()), s, e) for c, s, e in captions))
        captions = [c for c in captions if c[0]]
        if not captions:
            reason = "no caption: add NAME.txt beside it, or a row in captions.csv or labels.json"
            skipped.append(Skipped(name, reason))
            continue
        if any("#" in c for c, _, _ in captions):
            skipped.append(Skipped(name, "a caption holds '#', the HumanML3D field separator"))
            continue
        group = labels.get("content", "")
        whole = tuple(c for c, s, e in captions if (s, e) == (0.0, 0.0))
        parts = tuple(c for c in captions if (c[1], c[2]) != (0.0, 0.0))
        clips.append(ClipSource(path, name, whole, labels, group, spans=parts))
    licence = next((root / n for n in ("LICENSE", "LICENSE.txt", "LICENSE.md")
                    if (root / n).is_file()), None)  # fmt: skip
    return Discovery(clips, skipped, license_file=licence)
