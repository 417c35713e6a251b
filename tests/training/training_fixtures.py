"""Shared helpers of the trainer tests: a tiny HumanML3D-layout data set and a fake encoder.

The data set is written in the real layout (``new_joint_vecs``, ``texts``, ``Mean/Std.npy``,
split files, ``labels.json``, ``build.json``) from synthetic skeletons walking at different
speeds and headings, so the loaders, normaliser and forward kinematics all run for real.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from engine.motion.features import Normalizer, joints_to_features
from engine.motion.skeleton import CANONICAL_OFFSETS, PARENTS
from engine.text_encoder import TextEncoder, TextEncoderConfig

ATTRIBUTION = "Test-Motion-Set (c) Nobody, CC BY-NC 4.0"
LICENCE = "CC BY-NC 4.0: non-commercial use only"
CAPTIONS = {
    "walk": "a person walks forward",
    "run": "a person runs forward quickly",
    "turn": "a person turns while walking",
    "bob": "a person bounces in place",
}


def rest_pose() -> np.ndarray:
    """(22, 3) joint positions of the canonical skeleton standing at the origin."""
    offsets = np.asarray(CANONICAL_OFFSETS, dtype=np.float64)
    pose = np.zeros_like(offsets)
    for joint, parent in enumerate(PARENTS):
        pose[joint] = offsets[joint] if parent < 0 else pose[parent] + offsets[joint]
    return pose - [0.0, pose[:, 1].min(), 0.0]


def synthetic_joints(kind: str, frames: int, phase: float) -> np.ndarray:
    """(frames, 22, 3) joints of a rigid body translating / turning / bobbing."""
    t = np.arange(frames) / 20.0
    pose = rest_pose()
    speed = {"walk": 1.0, "run": 2.5, "turn": 0.8, "bob": 0.0}[kind]
    heading = 0.6 * np.sin(t + phase) if kind == "turn" else np.full_like(t, phase)
    bob = 0.05 * np.sin(6 * t + phase) if kind in ("bob", "run") else 0 * t
    cos, sin = np.cos(heading), np.sin(heading)
    rot = np.zeros((frames, 3, 3))
    rot[:, 0, 0], rot[:, 0, 2], rot[:, 1, 1] = cos, sin, 1.0
    rot[:, 2, 0], rot[:, 2, 2] = -sin, cos
    joints = np.einsum("tij,kj->tki", rot, pose)  # (T, 22, 3)
    forward = np.stack([sin, 0 * t, cos], -1) * speed / 20.0  # (T, 3) metres per frame
    joints += np.cumsum(forward, 0)[:, None] + np.stack([0 * t, bob, 0 * t], -1)[:, None]
    return joints


def write_dataset(
    root: Path, clips: int = 8, frames: int = 48, val: int = 4, labels: bool = True
) -> Path:
    """A HumanML3D-layout folder of ``clips`` train + ``val`` val clips of ``frames`` features."""
    kinds = list(CAPTIONS)
    for sub in ("new_joint_vecs", "texts"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    features, ids, table = [], [], {}
    for i in range(clips + val):
        kind, clip_id = kinds[i % len(kinds)], f"{i:06d}"
        feats = joints_to_features(synthetic_joints(kind, frames + 1, 0.4 * i)).astype(np.float32)
        np.save(root / "new_joint_vecs" / f"{clip_id}.npy", feats)
        words = " ".join(f"{w}/X" for w in CAPTIONS[kind].split())
        text = f"{CAPTIONS[kind]}#{words}#0.0#0.0\n{kind} motion#x/X#0.0#0.0\n"
        (root / "texts" / f"{clip_id}.txt").write_text(text)
        features.append(feats)
        ids.append(clip_id)
        table[clip_id] = {"labels": {"content": kind, "style": "happy" if i % 2 else "sad"}}
    Normalizer.fit(features[:clips]).save(root)
    (root / "train.txt").write_text("\n".join(ids[:clips]) + "\n")
    (root / "val.txt").write_text("\n".join(ids[clips:]) + "\n")
    if labels:
        (root / "labels.json").write_text(json.dumps(table))
    build = {"fps": 20, "attribution": ATTRIBUTION, "licence": LICENCE}
    (root / "build.json").write_text(json.dumps(build))
    (root / "LICENSE").write_text("test licence text\n")
    return root


class _Tokenizer:
    """Words -> stable ids (crc32), one sequence at a time like the engine asks."""

    def __call__(self, prompts, truncation=True, max_length=16, return_tensors=None):
        rows = [[1] + [self.token_id(w) for w in p.split()[: max_length - 1]] for p in prompts]
        if return_tensors is None:  # lists for a whole batch, as a transformers tokenizer gives
            return {"input_ids": rows}
        tensor = torch.tensor(rows[:1])
        return {"input_ids": tensor, "attention_mask": torch.ones_like(tensor)}

    @staticmethod
    def token_id(word: str) -> int:
        return zlib.crc32(word.encode()) % 90 + 2

    def convert_ids_to_tokens(self, index: int) -> str:
        return f"#{index}"


class _Embedder(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.table = nn.Embedding(92, dim)
        weights = torch.randn(92, dim, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            self.table.weight.copy_(weights)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.table

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        return SimpleNamespace(last_hidden_state=self.table(input_ids))


def fake_text_encoder(dim: int = 16) -> TextEncoder:
    """A deterministic word-embedding 'encoder' with the engine's TextEncoder interface."""
    return TextEncoder(_Embedder(dim), _Tokenizer(), TextEncoderConfig(max_tokens=16), "bert")


def tiny_overrides(out_dir: Path, data: Path, **extra) -> list[str]:
    """Overrides for a seconds-long CPU run of any task."""
    settings = {
        "data_root": str(data), "out_dir": str(out_dir), "preset": "tiny", "batch_size": 4,
        "min_frames": 40, "max_frames": 48, "warmup_steps": 2, "max_steps": 6, "lr": 3e-3,
        "log_every": 2, "ckpt_every": 100, "progress": False, "device": "cpu", "mirror": False,
        "ema_decay": 0.9,
    }  # fmt: skip
    settings.update(extra)
    return [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in settings.items()]
