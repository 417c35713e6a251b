"""Training data: HumanML3D-layout data sets, BABEL frame labels, batches and loaders.

dataset = MotionDataset(root, "train", labels=load_frame_labels(root))  # labels: SAE only
loader = make_loader(dataset, batch_size=256, seed=0, rank=rank, world_size=world)
for epoch in range(epochs):
    set_epoch(loader, epoch)
    for batch in loader:  # MotionBatch
        ...
"""

from training.data.babel import BabelLabels, load_babel_labels
from training.data.batches import (
    MotionBatch,
    MotionItem,
    ShardedBatchSampler,
    collate_items,
    make_loader,
    set_epoch,
)
from training.data.clips import Problem
from training.data.humanml3d import MotionDataset, load_frame_labels
from training.data.labels import FrameLabels, LabelSpan, clip_labels

__all__ = [
    "BabelLabels",
    "FrameLabels",
    "LabelSpan",
    "MotionBatch",
    "MotionDataset",
    "MotionItem",
    "Problem",
    "ShardedBatchSampler",
    "clip_labels",
    "collate_items",
    "load_babel_labels",
    "load_frame_labels",
    "make_loader",
    "set_epoch",
]
