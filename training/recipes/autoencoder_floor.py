"""How well an autoencoder reconstructs real clips: the floor under its generators' FID.

    python training/recipes/autoencoder_floor.py CHECKPOINT [CHECKPOINT ...] \
        --data data/bandai-hml --evaluator EVALUATOR [--joints data/deepmimic-hml:all ...]

A generator can only make what its autoencoder decodes, so the FID of the autoencoder's own
reconstructions of the test clips (under the evaluator, drawn as ``evaluate`` draws them: 32
per batch, shuffled per replication) is the best FID any generator on it can reach. Session
9 found the all-sources generators sitting on that floor (docs/results.md). ``--joints``
adds the mean joint error of the reconstructions, per data set and split, with each frame's
root moved to the origin in the ground plane (the shape of the motion, not where it goes).
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.motion.features import Normalizer, recover_from_ric  # noqa: E402
from engine.pipeline import decode_latents  # noqa: E402
from engine.store.checkpoint import load_checkpoint  # noqa: E402
from training.data import MotionDataset, make_loader, set_epoch  # noqa: E402
from training.data.humanml3d import read_split  # noqa: E402
from training.evaluation import metrics  # noqa: E402
from training.evaluation.evaluator import load_evaluator  # noqa: E402

MIN_FRAMES, MAX_FRAMES = 40, 196  # the evaluation protocol's clip lengths


class Reconstructor:
    """A checkpoint's autoencoder on denormalised features: encode, decode the mean."""

    def __init__(self, checkpoint: str) -> None:
        self.ckpt = load_checkpoint(checkpoint)
        self.model = self.ckpt.models["autoencoder"].float().eval()
        self.normalizer = Normalizer(self.ckpt.mean, self.ckpt.std)

    @torch.no_grad()
    def __call__(self, features: np.ndarray) -> np.ndarray:
        """(B, F, 263) -> (B, F', 263), F' the largest multiple of the downsampling <= F."""
        frames = features.shape[1] // self.model.downsample * self.model.downsample
        x = torch.as_tensor(self.normalizer.normalize(features[:, :frames])).float()
        out, _ = decode_latents(self.ckpt, self.model.encode(x).mean)
        return out.numpy()


class RealDraws:
    """The evaluator and the test clips as ``evaluate`` draws them (32 per batch, shuffled
    per replication), with the real embeddings computed once for every checkpoint."""

    def __init__(self, data: str, evaluator: str, split: str, replications: int) -> None:
        self.evaluator = ev = load_evaluator(evaluator, device="cpu")
        test = MotionDataset(data, split, normalizer=ev.normalizer, seed=0)
        loader = make_loader(test, 32, shuffle=True, seed=0, drop_last=True)
        self.batches, self.real = [], []
        for rep in range(replications):
            set_epoch(loader, rep)
            batches = list(loader)
            self.batches.append(batches)
            embedded = [
                self.evaluator.embed_motion(b.features, b.lengths.tolist()) for b in batches
            ]
            self.real.append(np.concatenate(embedded))

    def fid(self, rec: Reconstructor) -> list[float]:
        """FID of the reconstructions against the real clips, one value per replication."""
        ev, found = self.evaluator, []
        for batches, real in zip(self.batches, self.real, strict=True):
            made = []
            for batch in batches:
                features = ev.normalizer.denormalize(batch.features.numpy().astype(np.float64))
                out = rec(features)
                kept = [min(n, out.shape[1]) for n in batch.lengths.tolist()]
                normalised = torch.as_tensor(ev.normalizer.normalize(out)).float()
                made.append(ev.embed_motion(normalised, kept))
            found.append(metrics.fid(real, np.concatenate(made)))
        return found


def _grounded(joints: np.ndarray) -> np.ndarray:
    """Joints with each frame's root moved to the origin in the ground plane."""
    return joints - joints[:, :1] * np.array([1.0, 0.0, 1.0])


def joint_error_cm(rec: Reconstructor, data: str, split: str) -> list[float]:
    """Mean joint error (cm) of each clip of ``split`` with 40 frames or more (first 196)."""
    errors = []
    for clip_id in read_split(Path(data), split):
        features = np.load(Path(data) / "new_joint_vecs" / f"{clip_id}.npy")[:MAX_FRAMES]
        if len(features) < MIN_FRAMES:
            continue
        out = rec(features[None])[0].astype(np.float64)
        real = recover_from_ric(features[: len(out)].astype(np.float64))
        error = np.linalg.norm(_grounded(real) - _grounded(recover_from_ric(out)), axis=-1)
        errors.append(float(error.mean() * 100))
    return errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="engine checkpoint folders")
    parser.add_argument("--data", required=True, help="data set the evaluator scores")
    parser.add_argument("--evaluator", required=True, help="evaluator folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--replications", type=int, default=3)
    parser.add_argument("--joints", nargs="*", default=[], metavar="DATA:SPLIT",
                        help="data sets (and split) to report the joint error on")  # fmt: skip
    args = parser.parse_args()
    print("| checkpoint | reconstruction FID | " + " | ".join(args.joints) + " |")
    print("|---|---|" + "---|" * len(args.joints))
    draws = RealDraws(args.data, args.evaluator, args.split, args.replications)
    for checkpoint in args.checkpoints:
        rec = Reconstructor(checkpoint)
        fid = draws.fid(rec)
        cells = [f"{np.mean(fid):.4f} ({', '.join(f'{v:.4f}' for v in fid)})"]
        for spec in args.joints:
            data, _, split = spec.partition(":")
            errors = joint_error_cm(rec, data, split or "test")
            p90 = np.percentile(errors, 90)
            cells.append(f"{np.mean(errors):.2f} cm (p90 {p90:.2f}, n {len(errors)})")
        print(f"| {checkpoint} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
