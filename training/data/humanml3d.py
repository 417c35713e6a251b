"""HumanML3D-layout data sets: the real HumanML3D and folders made by ``build-dataset``.

    ROOT/new_joint_vecs/ID.npy  (T-1, 263) features, denormalised
    ROOT/texts/ID.txt           caption#word/POS ...#start#end, one caption a line
    ROOT/Mean.npy, Std.npy      statistics the features are normalised with
    ROOT/{train,val,test}.txt   ids of each split; ``M<ID>`` is the mirror of ``<ID>``

An item is a clip with its whole-clip captions, or a span ``[start, end)`` seconds of a clip
with the captions that describe only that span (the HumanML3D convention: such a caption
makes the span an example of its own). Each epoch an item yields one crop of
``min(frames, max_frames)`` frames rounded down to whole latent steps (``unit`` frames), at
a random offset, and one random caption; both are drawn from (seed, epoch, index), so they
do not depend on worker processes. Items shorter than ``min_frames`` are left out.
"""

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from engine.errors import MotionError
from engine.motion.features import FEATURE_DIM, Normalizer
from engine.motion.skeleton import FPS
from training.data.batches import MotionItem
from training.data.clips import (
    ClipInfo,
    Problem,
    inspect_clip,
    load_store,
    thread_map,
)
from training.data.labels import LabelSpan, SpanTable, clip_labels
from training.data.mix import source_shares, weighted_items

log = logging.getLogger(__name__)

CACHE_BYTES = 2 << 30
"""Data sets whose normalised float32 features fit in this many bytes are held in memory."""

_MASK64 = (1 << 64) - 1


def _mix(x: int) -> int:
    """SplitMix64 finaliser: a fast, well-spread hash of a 64-bit integer."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def item_draws(seed: int, epoch: int, index: int) -> tuple[int, int]:
    """Two independent 64-bit random integers for item ``index`` in ``epoch``."""
    seed, epoch, index = (int(v) & _MASK64 for v in (seed, epoch, index))
    base = _mix(_mix(_mix(seed) ^ epoch) ^ index)
    return _mix(base ^ 1), _mix(base ^ 2)


@dataclass(frozen=True)
class _Item:
    clip: int  # position in the data set's clip list
    start: int  # first frame of the item's span in the clip
    frames: int  # frames in the span
    captions: tuple[str, ...]


def read_split(root: Path, split: str) -> list[str]:
    """Ids listed in ``ROOT/<split>.txt`` (blank lines ignored, order kept, repeats dropped)."""
    path = root / f"{split}.txt"
    if not path.is_file():
        raise MotionError(f"{path}: split file not found")
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return list(dict.fromkeys(line for line in lines if line))


def load_frame_labels(
    root: str | Path,
    *,
    babel: str | Path | None = None,
    index_csv: str | Path | None = None,
    label_field: str = "proc_label",
) -> dict[str, list[LabelSpan]] | None:
    """The frame labels a data set folder supplies for the SAE, or None when it has none.

    With ``babel`` (the folder of BABEL's train.json/val.json): BABEL labels met through
    ``index_csv`` (default ``ROOT/index.csv``). Otherwise the per-clip labels of a built data
    set (``ROOT/labels.json``) when present.
    """
    if babel is not None:
        from training.data.babel import load_babel_labels

        index = Path(index_csv) if index_csv is not None else Path(root) / "index.csv"
        return load_babel_labels(babel, index, label_field=label_field).spans
    if (Path(root) / "labels.json").is_file():
        return clip_labels(root)
    return None


class MotionDataset(Dataset):
    """Map-style data set of ``MotionItem`` s from a HumanML3D-layout folder.

    ``dataset[i]`` uses epoch ``self.epoch`` (``set_epoch``); the loader of ``batches.py`` asks
    for ``dataset[(i, epoch)]`` instead. ``labels`` (clip id -> spans, e.g. from
    ``load_frame_labels``) makes every item carry the labels of each latent step. ``cache``:
    None keeps the features in memory when they fit ``cache_bytes``. Clips that fail the
    checks are listed once in a warning, kept in ``problems``, and left out; the check reads
    every value once (``check_values=False`` reads only headers of an uncached set).
    ``workers``: threads for the checks; 1 (none) was fastest with a warm page cache.
    ``source_weights``: per source of a combined data set, how many times each of its items
    counts per epoch (``training.data.mix``); None or {} counts every item once.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        min_frames: int = 40,
        max_frames: int = 196,
        unit: int = 4,
        mirror: bool = True,
        normalizer: Normalizer | None = None,
        seed: int = 0,
        labels: Mapping[str, Sequence[LabelSpan]] | None = None,
        cache: bool | None = None,
        cache_bytes: int = CACHE_BYTES,
        check_values: bool = True,
        workers: int = 1,
        fps: float = FPS,
        source_weights: Mapping[str, float] | None = None,
    ) -> None:
        if unit < 1 or max_frames < max(min_frames, unit):
            raise MotionError(
                "need 1 <= unit <= max_frames and min_frames <= max_frames, got "
                f"unit={unit}, min_frames={min_frames}, max_frames={max_frames}"
            )
        self.root, self.split = Path(root), split
        self.min_frames, self.max_frames, self.unit = min_frames, max_frames, unit
        self.seed, self.epoch, self.fps = seed, 0, fps
        self.check_values, self.workers = check_values, workers
        self.normalizer = normalizer if normalizer is not None else Normalizer.load(self.root)
        ids = read_split(self.root, split)
        if not mirror:
            ids = [i for i in ids if not i.startswith("M")]
        found = thread_map(lambda i: inspect_clip(self.root, i), ids, workers)
        self.problems: list[Problem] = [f for f in found if isinstance(f, Problem)]
        clips = [f for f in found if isinstance(f, ClipInfo)]
        items, self.too_short = self._make_items(clips)
        used = sorted({item.clip for item in items})
        clips = [clips[c] for c in used]
        renumber = {old: new for new, old in enumerate(used)}
        items = [_Item(renumber[i.clip], i.start, i.frames, i.captions) for i in items]
        self._load_features(clips, items, cache, cache_bytes)
        if source_weights:
            ids = [self.clips[item.clip].id for item in self._items]
            self._items = weighted_items(self._items, ids, source_weights, seed)
            shares = source_shares([self.clips[item.clip].id for item in self._items])
            log.info("%s split '%s': items per source after weights %s", root, split, shares)
        self._spans = None
        if labels is not None:
            self._spans = [SpanTable.of(labels.get(c.id, ())) for c in self.clips]
        if self.problems:
            self._report_problems(len(ids))
        if not self._items:
            raise MotionError(
                f"{self.root} split '{split}': no usable item "
                f"({len(self.problems)} broken clips, {self.too_short} spans too short)"
            )

    def _make_items(self, clips: list[ClipInfo]) -> tuple[list[_Item], int]:
        """Whole clips and captioned spans that hold at least ``min_frames`` whole-unit frames."""
        items, short = [], 0
        for number, clip in enumerate(clips):
            for group in clip.groups:
                if group.start == 0.0 and group.end == 0.0:
                    start, stop = 0, clip.frames
                else:  # the reference's int(seconds * 20)
                    start = int(group.start * self.fps)
                    stop = min(int(group.end * self.fps), clip.frames)
                usable = stop - start - (stop - start) % self.unit
                if usable < self.min_frames:
                    short += 1
                    continue
                items.append(_Item(number, start, stop - start, group.captions))
        return items, short

    def _load_features(
        self, clips: list[ClipInfo], items: list[_Item], cache: bool | None, cache_bytes: int
    ) -> None:
        """Read values once (finite check), then drop the items of clips that failed."""
        if cache is None:
            cache = sum(c.frames for c in clips) * FEATURE_DIM * 4 <= cache_bytes
        self._store, reasons = load_store(
            clips, self.normalizer, cache, self.check_values, self.workers
        )
        self.cached = cache
        bad = {n for n, reason in enumerate(reasons) if reason is not None}
        self.problems += [Problem(clips[n].id, str(reasons[n])) for n in sorted(bad)]
        self.clips: list[ClipInfo] = clips  # the store is indexed by these positions
        self._items = [item for item in items if item.clip not in bad]

    def _report_problems(self, total: int) -> None:
        listed = "; ".join(f"{p.id}: {p.reason}" for p in self.problems[:20])
        more = f" (and {len(self.problems) - 20} more)" if len(self.problems) > 20 else ""
        count = len(self.problems)
        where = f"{self.root} split '{self.split}'"
        log.warning("%s: %d of %d clips left out: %s%s", where, count, total, listed, more)

    def __len__(self) -> int:
        return len(self._items)

    def set_epoch(self, epoch: int) -> None:
        """Epoch used by ``dataset[i]`` with a plain index."""
        self.epoch = epoch

    def crop_length(self, index: int) -> int:
        """Frames of every crop of item ``index``: whole units, at most ``max_frames``."""
        frames = self._items[index].frames
        return min(frames - frames % self.unit, self.max_frames - self.max_frames % self.unit)

    def captions(self, index: int) -> tuple[str, ...]:
        """All captions of item ``index`` (one is drawn per epoch)."""
        return self._items[index].captions

    def item_id(self, index: int) -> str:
        return self.clips[self._items[index].clip].id

    def __getitem__(self, key: int | tuple[int, int]) -> MotionItem:
        index, epoch = (int(k) for k in key) if isinstance(key, tuple) else (int(key), self.epoch)
        if not 0 <= index < len(self._items):
            raise IndexError(f"item {index} out of range for {len(self._items)} items")
        item = self._items[index]
        length = self.crop_length(index)
        caption_draw, offset_draw = item_draws(self.seed, epoch, index)
        caption_index = caption_draw % len(item.captions)
        first = item.start + offset_draw % (item.frames - length + 1)
        step_labels = None
        if self._spans is not None:
            table = self._spans[item.clip]
            step_labels = table.step_labels(first, length // self.unit, self.unit, self.fps)
        return MotionItem(
            features=self._store.crop(item.clip, first, length),
            caption=item.captions[caption_index],
            id=self.clips[item.clip].id,
            index=index,
            caption_index=caption_index,
            start=first,
            step_labels=step_labels,
        )

    def all_captions(self) -> list[str]:
        """Every distinct caption of the data set, e.g. to fill a text-encoder cache."""
        return list(dict.fromkeys(c for item in self._items for c in item.captions))

    def total_frames(self) -> int:
        return int(sum(c.frames for c in self.clips))
