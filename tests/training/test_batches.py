"""Batches and loaders: padding and masks, rank shards that split each global batch, order
fixed by (seed, epoch), resuming mid-epoch, and the same batches with worker processes."""

import numpy as np
import pytest
import torch
from data_layouts import coded_features, text_line, write_humanml3d

from engine.errors import MotionError
from training.data import (
    MotionDataset,
    MotionItem,
    ShardedBatchSampler,
    collate_items,
    make_loader,
    set_epoch,
)


def item(length, index, labels=None):
    features = np.full((length, 263), index + 1.0, dtype=np.float32)
    return MotionItem(features, f"caption {index}", f"{index:06d}", index, index % 2, 0, labels)


def test_collate_pads_with_zeros_and_masks_real_frames():
    batch = collate_items([item(8, 0), item(12, 1), item(4, 2)])
    assert batch.features.shape == (3, 12, 263) and batch.features.dtype == torch.float32
    assert batch.lengths.tolist() == [8, 12, 4]
    assert batch.frame_mask.sum(1).tolist() == [8, 12, 4]
    assert bool((batch.features[~batch.frame_mask] == 0).all())
    assert batch.features[0, :8].unique().tolist() == [1.0]
    assert batch.captions == ["caption 0", "caption 1", "caption 2"] and len(batch) == 3
    assert batch.item_index.tolist() == [0, 1, 2] and batch.caption_index.tolist() == [0, 1, 0]
    assert batch.step_labels is None
    labelled = collate_items([item(8, 0, [{"walk"}, set()]), item(4, 1, [{"run"}])])
    assert labelled.step_labels == [[{"walk"}, set()], [{"run"}]]
    moved = batch.to("cpu")
    assert moved.features.device.type == "cpu" and moved.ids == batch.ids


def shard_batches(size, batch, world, epoch, **kw):
    """Per rank, the list of index lists of one epoch."""
    out = []
    for rank in range(world):
        sampler = ShardedBatchSampler(size, batch, rank=rank, world_size=world, **kw)
        sampler.set_epoch(epoch)
        out.append([[i for i, e in keys] for keys in sampler])
    return out


@pytest.mark.parametrize("world", [2, 4])
def test_rank_shards_are_disjoint_and_make_up_the_single_process_batches(world):
    single = shard_batches(103, 8, 1, epoch=3, seed=5)[0]
    ranks = shard_batches(103, 8, world, epoch=3, seed=5)
    assert len(single) == 103 // 8 and all(len(r) == len(single) for r in ranks)
    for g, whole in enumerate(single):
        parts = [r[g] for r in ranks]
        assert all(len(p) == 8 // world for p in parts)
        assert sorted(sum(parts, [])) == sorted(whole)  # disjoint and covering
    seen = [i for batch in single for i in batch]
    assert len(set(seen)) == len(seen) == 96


def test_order_follows_seed_and_epoch():
    assert shard_batches(50, 10, 1, epoch=0, seed=1) == shard_batches(50, 10, 1, epoch=0, seed=1)
    assert shard_batches(50, 10, 1, epoch=0, seed=1) != shard_batches(50, 10, 1, epoch=1, seed=1)
    assert shard_batches(50, 10, 1, epoch=0, seed=1) != shard_batches(50, 10, 1, epoch=0, seed=2)
    ordered = shard_batches(20, 5, 1, epoch=7, shuffle=False)[0]
    assert ordered == [list(range(i, i + 5)) for i in range(0, 20, 5)]
    sampler = ShardedBatchSampler(20, 5, seed=0)
    sampler.set_epoch(4)
    assert {e for keys in sampler for _, e in keys} == {4}


def test_keeping_the_tail_covers_every_item_with_equal_steps_per_rank():
    ranks = shard_batches(23, 8, 2, epoch=0, seed=0, drop_last=False)
    assert [len(r) for r in ranks] == [3, 3]
    covered = {i for r in ranks for batch in r for i in batch}
    assert covered == set(range(23))
    assert [len(r[-1]) for r in ranks] == [4, 4]  # 7 left over, padded to 8


def test_resuming_mid_epoch_skips_the_batches_already_seen():
    sampler = ShardedBatchSampler(40, 4, seed=9)
    sampler.set_epoch(2)
    whole = list(sampler)
    sampler.set_epoch(2, start_batch=6)
    assert list(sampler) == whole[6:] and len(sampler) == 4


def test_sampler_rejects_bad_shapes():
    with pytest.raises(MotionError, match="multiple of the world size"):
        ShardedBatchSampler(100, 10, world_size=4)
    with pytest.raises(MotionError, match="rank"):
        ShardedBatchSampler(100, 8, rank=2, world_size=2)
    with pytest.raises(MotionError, match="fewer than one global batch"):
        ShardedBatchSampler(5, 8)


def test_loader_batches_are_the_same_with_workers(tmp_path):
    clips = {
        f"{n:06d}": (coded_features(40 + 7 * n, n), [text_line(f"clip {n}"), text_line("x")])
        for n in range(12)
    }
    root = write_humanml3d(tmp_path / "hml", clips, {"train": list(clips)})
    dataset = MotionDataset(root, "train", seed=2)

    def epochs(num_workers, rank=0, world=1):
        loader = make_loader(
            dataset, 4, seed=1, num_workers=num_workers, rank=rank, world_size=world
        )
        out = []
        for epoch in range(2):
            set_epoch(loader, epoch)
            out += [
                (b.ids, b.captions, b.lengths.tolist(), b.features.sum().item()) for b in loader
            ]
        return out

    plain = epochs(0)
    assert plain == epochs(2)
    assert plain[:3] != plain[3:]  # a new epoch, a new order and new draws
    halves = [epochs(0, rank, 2) for rank in range(2)]
    for g, (ids, *_rest) in enumerate(plain):
        assert sorted(halves[0][g][0] + halves[1][g][0]) == sorted(ids)
