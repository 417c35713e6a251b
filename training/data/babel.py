"""BABEL action labels on HumanML3D clips, for the semantic autoencoder (SPEC 3.1, 5).

BABEL (Punnakkal et al. 2021) labels AMASS sequences: ``train.json`` / ``val.json`` map a
sequence id to ``feat_p`` (its AMASS file), ``dur`` (seconds), ``seq_ann`` (labels of the whole
sequence) and ``frame_ann`` (labels with ``start_t`` / ``end_t`` in seconds; null for sequences
that only have sequence labels). HumanML3D's ``index.csv`` says which AMASS file each clip was
cut from: row ``source_path, start_frame, end_frame, new_name``. The reference resampled every
AMASS file to 20 fps, dropped the first seconds of five sources (``SOURCE_TRIMS``), then kept
frames ``[start_frame, end_frame)``; so frame ``f`` of clip ``new_name`` shows AMASS time
``trim + (start_frame + f) / 20`` seconds, and a BABEL span ``[a, b)`` becomes the clip-time
span ``[a - trim - start_frame / 20, b - ...)``. ``M`` ids (mirrors) get the same spans with
left and right swapped in the words.
"""

import csv
import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from engine.errors import MotionError
from engine.motion.skeleton import FPS
from training.captions import mirror_caption
from training.data.labels import LabelSpan

log = logging.getLogger(__name__)

SOURCE_TRIMS: dict[str, float] = {
    "Eyes_Japan_Dataset": 3.0,
    "MPI_HDM05": 3.0,
    "TotalCapture": 1.0,
    "MPI_Limits": 1.0,
    "Transitions_mocap": 0.5,
}
"""Seconds the HumanML3D reference drops from the start of each file of these AMASS sources."""

BABEL_SOURCE_NAMES: dict[str, str] = {
    "BMLrub": "BioMotionLab_NTroje",
    "HDM05": "MPI_HDM05",
    "MPIHDM05": "MPI_HDM05",
    "PosePrior": "MPI_Limits",
    "SSM": "SSM_synced",
    "Transitions": "Transitions_mocap",
    "MoSh": "MPI_mosh",
    "TCDHands": "TCD_handMocap",
    "DFaust": "DFaust_67",
    "EyesJapanDataset": "Eyes_Japan_Dataset",
}
"""BABEL's spelling of an AMASS source (the first folder of ``feat_p``) -> HumanML3D's."""

LABEL_FIELDS = ("proc_label", "raw_label", "act_cat")
_FILE_SUFFIXES = (".npy", ".npz", ".pkl")


@dataclass(frozen=True)
class IndexRow:
    """One row of HumanML3D's index.csv: clip ``clip_id`` is frames [start, end) of ``source``.

    ``end`` < 0 follows Python slicing (the reference writes -1 for "to the end" minus one).
    """

    source: str
    start_frame: int
    end_frame: int
    clip_id: str


@dataclass
class BabelLabels:
    """What the BABEL meet produced: clip id -> label spans, plus counts for the log."""

    spans: dict[str, list[LabelSpan]]
    matched_clips: int  # index rows (originals) with at least one BABEL sequence
    unmatched_sequences: list[str] = field(default_factory=list)  # feat_p with no clip
    problems: list[str] = field(default_factory=list)  # malformed entries, skipped


def amass_key(path: str) -> str:
    """A spelling-free key of an AMASS file: ``./pose_data/CMU/01/01_01_poses.npy`` ->
    ``cmu/01/01_01_poses`` (no ``./pose_data`` prefix, no extension, ``/`` separators)."""
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if "pose_data" in parts:
        parts = parts[len(parts) - parts[::-1].index("pose_data") :]
    if parts and parts[-1].lower().endswith(_FILE_SUFFIXES):
        parts[-1] = PurePosixPath(parts[-1]).stem
    return "/".join(parts).lower()


def _babel_keys(feat_p: str) -> list[str]:
    """Candidate keys of a BABEL ``feat_p``: BABEL prefixes AMASS paths with its own folder
    (``CMU/CMU/01/...``, ``BMLrub/BioMotionLab_NTroje/...``) and renames some sources."""
    key = amass_key(feat_p)
    parts = key.split("/")
    candidates = ["/".join(parts[1:])] if len(parts) > 2 else []
    renamed = {k.lower(): v.lower() for k, v in BABEL_SOURCE_NAMES.items()}
    if parts[0] in renamed:
        candidates.append("/".join([renamed[parts[0]], *parts[1:]]))
    return [*candidates, key]


def source_trim(source_path: str) -> float:
    """Seconds the reference dropped from the start of this AMASS file (0 for most)."""
    parts = source_path.replace("\\", "/").split("/")
    return max((SOURCE_TRIMS.get(p, 0.0) for p in parts), default=0.0)


def read_index(path: str | Path) -> list[IndexRow]:
    """HumanML3D's index.csv (``source_path,start_frame,end_frame,new_name``)."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as err:
        raise MotionError(f"{path}: cannot read index ({err})") from err
    out = []
    for n, row in enumerate(rows, start=2):
        try:
            out.append(
                IndexRow(
                    source=row["source_path"].strip(),
                    start_frame=int(row["start_frame"]),
                    end_frame=int(row["end_frame"]),
                    clip_id=PurePosixPath(row["new_name"].strip()).stem,
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            columns = "source_path,start_frame,end_frame,new_name"
            raise MotionError(f"{path}, line {n}: expected {columns} ({err!r})") from err
    return out


def _label_texts(label: dict, label_field: str) -> list[str]:
    """The text(s) of one BABEL label dict; ``act_cat`` is a list, the others one string."""
    if label_field == "act_cat":
        values = label.get("act_cat") or []
        values = [values] if isinstance(values, str) else values
    else:
        values = [label.get(label_field) or label.get("raw_label") or ""]
    return [" ".join(str(v).split()) for v in values if str(v).strip()]


def _sequence_spans(entry: dict, label_field: str) -> list[LabelSpan]:
    """Spans of one BABEL sequence in AMASS time; sequence labels when frame_ann is null."""
    frame_ann = entry.get("frame_ann")
    if frame_ann:
        spans = []
        for label in frame_ann.get("labels") or []:
            start, end = float(label["start_t"]), float(label["end_t"])
            spans += [LabelSpan(start, end, t) for t in _label_texts(label, label_field)]
        return spans
    labels = (entry.get("seq_ann") or {}).get("labels") or []
    texts = [t for label in labels for t in _label_texts(label, label_field)]
    return [LabelSpan(-math.inf, math.inf, t) for t in texts]


def read_babel(files: Iterable[str | Path], label_field: str) -> tuple[dict[str, list], list[str]]:
    """AMASS feat_p -> spans in AMASS time, from BABEL json files; plus skipped entries."""
    by_path: dict[str, list[LabelSpan]] = {}
    problems: list[str] = []
    for file in files:
        file = Path(file)
        try:
            table = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise MotionError(f"{file}: cannot read BABEL annotations ({err})") from err
        for sid, entry in table.items():
            try:
                spans = _sequence_spans(entry, label_field)
                by_path.setdefault(str(entry["feat_p"]), []).extend(spans)
            except (KeyError, TypeError, ValueError, AttributeError) as err:
                problems.append(f"{file.name} sequence {sid}: {err!r}")
    return by_path, problems


def _to_clip_time(spans: Sequence[LabelSpan], row: IndexRow, fps: float) -> list[LabelSpan]:
    """AMASS-time spans -> spans of clip ``row.clip_id``, clipped to the clip's duration."""
    offset = source_trim(row.source) + row.start_frame / fps
    duration = (row.end_frame - row.start_frame) / fps if row.end_frame >= 0 else math.inf
    out = []
    for span in spans:
        start, end = max(span.start - offset, 0.0), min(span.end - offset, duration)
        if end > start:
            out.append(LabelSpan(start, end, span.text))
    return out


def babel_files(babel: str | Path, splits: Sequence[str] = ("train", "val")) -> list[Path]:
    """The BABEL json files of ``splits`` found in folder ``babel`` (or ``babel`` itself)."""
    babel = Path(babel)
    if babel.is_file():
        return [babel]
    files = [babel / f"{s}.json" for s in splits if (babel / f"{s}.json").is_file()]
    if not files:
        raise MotionError(f"{babel}: no BABEL {'/'.join(f'{s}.json' for s in splits)} found")
    return files


def load_babel_labels(
    babel: str | Path,
    index_csv: str | Path,
    *,
    label_field: str = "proc_label",
    splits: Sequence[str] = ("train", "val"),
    mirror: bool = True,
    fps: float = FPS,
) -> BabelLabels:
    """Label spans of every HumanML3D clip that BABEL annotates (and of its ``M`` mirror).

    ``babel``: the folder of BABEL's json files (or one file); ``label_field``: which text to
    use, one of ``LABEL_FIELDS`` (``act_cat`` gives one span per category). Clips without a
    BABEL sequence are absent from ``spans``: their steps carry no labels.
    """
    if label_field not in LABEL_FIELDS:
        raise MotionError(f"label_field must be one of {LABEL_FIELDS}, got {label_field!r}")
    rows_by_key: dict[str, list[IndexRow]] = {}
    for row in read_index(index_csv):
        rows_by_key.setdefault(amass_key(row.source), []).append(row)
    by_path, problems = read_babel(babel_files(babel, splits), label_field)
    spans: dict[str, list[LabelSpan]] = {}
    unmatched = []
    for feat_p, sequence_spans in by_path.items():
        key = next((k for k in _babel_keys(feat_p) if k in rows_by_key), None)
        if key is None:
            unmatched.append(feat_p)
            continue
        for row in rows_by_key[key]:
            spans.setdefault(row.clip_id, []).extend(_to_clip_time(sequence_spans, row, fps))
    matched = len(spans)
    if mirror:
        for clip_id in list(spans):
            mirrored = [LabelSpan(s.start, s.end, mirror_caption(s.text)) for s in spans[clip_id]]
            spans["M" + clip_id] = mirrored
    if problems:
        listed = "; ".join(problems[:10])
        log.warning("BABEL: %d malformed sequences skipped: %s", len(problems), listed)
    return BabelLabels(spans, matched, sorted(unmatched), problems)
