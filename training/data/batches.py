"""Items, padded batches, and the loader that shards global batches over ranks.

The loader's order depends only on (seed, epoch) and the global batch size, never on the
number of ranks or workers: global batch ``g`` of an epoch is the same set of items whether
one process takes it whole or ``world_size`` processes each take ``g[rank::world_size]``
(the interleaving ``DistributedSampler`` uses). Keys handed to the data set are
``(index, epoch)`` pairs, so each item's random crop and caption follow the epoch even inside
persistent worker processes.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from engine.errors import MotionError


@dataclass
class MotionItem:
    """One training example: a normalised crop, the caption drawn for it, and where from."""

    features: np.ndarray  # (L, 263) float32, normalised; L a multiple of the latent unit
    caption: str
    id: str  # clip id ("M000123" for a mirror)
    index: int  # item number in the data set (a clip or a captioned span of one)
    caption_index: int  # which of the item's captions was drawn
    start: int  # first frame of the crop within the clip
    step_labels: list[set[str]] | None = None  # (L / unit,) labels per latent step


@dataclass
class MotionBatch:
    """A padded batch. ``frame_mask`` is True on real frames; padding is zeros.

    ``item_index`` and ``caption_index`` identify each (motion, caption) pair, so that an
    evaluator can tell when two rows of a batch share a motion or a caption.
    """

    features: torch.Tensor  # (B, F, 263) float32, normalised, F = max(lengths)
    lengths: torch.Tensor  # (B,) int64 frames
    frame_mask: torch.Tensor  # (B, F) bool
    captions: list[str]
    ids: list[str]
    item_index: torch.Tensor  # (B,) int64
    caption_index: torch.Tensor  # (B,) int64
    step_labels: list[list[set[str]]] | None = None  # (B, lengths / unit) label sets

    def __len__(self) -> int:
        return len(self.ids)

    def _map_tensors(self, fn) -> "MotionBatch":
        tensors = [f.name for f in fields(self) if isinstance(getattr(self, f.name), torch.Tensor)]
        changes = {name: fn(getattr(self, name)) for name in tensors}
        return replace(self, **changes)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "MotionBatch":
        """The batch with its tensors on ``device`` (strings and labels stay on the host)."""
        return self._map_tensors(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> "MotionBatch":
        """Page-locked copy, called by DataLoader(pin_memory=True) for fast host-to-GPU copies."""
        return self._map_tensors(lambda t: t.pin_memory())


def collate_items(items: Sequence[MotionItem]) -> MotionBatch:
    """Pad items to the longest and stack them into a ``MotionBatch``."""
    if not items:
        raise MotionError("cannot collate an empty list of items")
    lengths = np.array([len(item.features) for item in items], dtype=np.int64)  # (B,)
    width = items[0].features.shape[-1]
    features = np.zeros((len(items), int(lengths.max()), width), dtype=np.float32)  # (B, F, C)
    for row, item in enumerate(items):
        features[row, : lengths[row]] = item.features
    lengths_t = torch.from_numpy(lengths)
    labels = [item.step_labels for item in items]
    return MotionBatch(
        features=torch.from_numpy(features),
        lengths=lengths_t,
        frame_mask=torch.arange(features.shape[1])[None] < lengths_t[:, None],  # (B, F)
        captions=[item.caption for item in items],
        ids=[item.id for item in items],
        item_index=torch.tensor([item.index for item in items], dtype=torch.int64),
        caption_index=torch.tensor([item.caption_index for item in items], dtype=torch.int64),
        step_labels=None if any(lab is None for lab in labels) else labels,  # type: ignore[misc]
    )


class ShardedBatchSampler:
    """Yields this rank's share of each global batch as ``(index, epoch)`` keys.

    Epoch ``e`` orders the items by ``torch.randperm`` seeded with ``seed + e`` (or in order
    when not shuffling) and cuts the order into global batches of ``batch_size``. With
    ``drop_last`` the incomplete tail is dropped; otherwise it is kept, padded with items from
    the start of the order to a multiple of ``world_size`` so every rank takes as many steps.
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = True,
    ) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise MotionError(f"rank {rank} is not in [0, world_size={world_size})")
        if batch_size < world_size or batch_size % world_size:
            raise MotionError(
                f"global batch size {batch_size} must be a positive multiple of the "
                f"world size {world_size}"
            )
        if size < 1 or (drop_last and size < batch_size):
            raise MotionError(f"{size} items are fewer than one global batch of {batch_size}")
        self.size, self.batch_size = size, batch_size
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch to iterate next; ``start_batch`` skips batches already trained
        on (resuming mid-epoch) without loading them."""
        self.epoch, self.start_batch = epoch, start_batch

    @property
    def batches_per_epoch(self) -> int:
        full, tail = divmod(self.size, self.batch_size)
        return full + (0 if self.drop_last or tail == 0 else 1)

    def global_batches(self, epoch: int) -> list[np.ndarray]:
        """The global batches of ``epoch`` as arrays of item indices (all ranks together)."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            order = torch.randperm(self.size, generator=generator).numpy()
        else:
            order = np.arange(self.size)
        batches = [order[i : i + self.batch_size] for i in range(0, self.size, self.batch_size)]
        if len(batches[-1]) < self.batch_size:
            if self.drop_last:
                batches.pop()
            else:
                pad = -len(batches[-1]) % self.world_size
                batches[-1] = np.concatenate([batches[-1], np.resize(order, pad)])
        return batches

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch = self.epoch
        for batch in self.global_batches(epoch)[self.start_batch :]:
            yield [(int(i), epoch) for i in batch[self.rank :: self.world_size]]

    def __len__(self) -> int:
        return max(self.batches_per_epoch - self.start_batch, 0)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool = True,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    drop_last: bool = True,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader of ``MotionBatch`` es: this rank's ``batch_size // world_size`` rows of
    each global batch of ``batch_size``.

    Call ``set_epoch(loader, epoch)`` before each epoch (the order and every item's crop and
    caption follow it). Workers stay alive across epochs; the result is the same for any
    ``num_workers``.
    """
    sampler = ShardedBatchSampler(
        len(dataset),
        batch_size,
        shuffle=shuffle,
        seed=seed,
        rank=rank,
        world_size=world_size,
        drop_last=drop_last,
    )
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate_items,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )


def set_epoch(loader: DataLoader, epoch: int, start_batch: int = 0) -> None:
    """Select the epoch a ``make_loader`` loader iterates next (see ShardedBatchSampler)."""
    loader.batch_sampler.set_epoch(epoch, start_batch)  # type: ignore[union-attr]
