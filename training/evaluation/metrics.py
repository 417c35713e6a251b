"""Text-to-motion metrics on evaluator embeddings (the MARDM / MoLingo protocol, SPEC 4).

Every metric works on plain numpy arrays of embeddings from one evaluator's joint space:
text embeddings ``(N, D)``, motion embeddings ``(N, D)`` (row i of each belongs to item i).
The functions are pure and deterministic given a ``numpy.random.Generator``, so the protocol
in ``run.py`` (batches, replications) stays apart from the maths and each metric can be
checked against a case worked out by hand.

Orientation of R-precision: like the reference code, each *text* ranks the motions of its
batch by distance and scores a hit when its own motion is among the k nearest.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from engine.errors import MotionError

Z_95 = 1.96  # two-sided 95% quantile of the normal distribution
DIVERSITY_PAIRS = 300
MM_PAIRS = 10


@dataclasses.dataclass(frozen=True)
class Interval:
    """A metric over replications: ``mean`` +/- ``half_width`` (95% confidence)."""

    mean: float
    half_width: float
    count: int  # replications it summarises

    def format(self, digits: int = 3) -> str:
        return f"{self.mean:.{digits}f} ± {self.half_width:.{digits}f}"


def confidence_interval(values: Sequence[float]) -> Interval:
    """Mean and 1.96 sigma / sqrt(n) of one metric's replications.

    sigma is the population standard deviation (numpy's default, as in the reference code).
    """
    data = np.asarray(values, dtype=np.float64)
    if data.ndim != 1 or data.size == 0:
        raise MotionError(f"confidence_interval needs a non-empty list of values, got {values!r}")
    half = Z_95 * data.std() / math.sqrt(data.size)
    return Interval(float(data.mean()), float(half), int(data.size))


def _check_pairs(a: np.ndarray, b: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise MotionError(
            f"{what}: expected two (N, D) arrays of one shape, got {a.shape} {b.shape}"
        )
    return a, b


def distance_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances ``(N, M)`` between the rows of ``a`` (N, D) and ``b`` (M, D)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    squared = (a * a).sum(1)[:, None] - 2.0 * a @ b.T + (b * b).sum(1)[None, :]  # (N, M)
    return np.sqrt(np.maximum(squared, 0.0))  # rounding can make a zero distance negative


def r_precision_hits(distances: np.ndarray, top_k: int = 3) -> np.ndarray:
    """Items whose true match is within the k nearest, for k = 1..top_k.

    ``distances`` (B, B): row i = query i (a text), column j = candidate j (a motion); the
    true match of row i is column i. Ties count against the true match (it must be strictly
    nearer than a candidate to rank above it), so a collapsed evaluator scores no hits.
    Returns ``(top_k,)`` integer counts over the B rows (divide by B for the precision).
    """
    distances = np.asarray(distances, dtype=np.float64)
    if distances.ndim != 2 or distances.shape[0] != distances.shape[1]:
        raise MotionError(f"r_precision needs a square distance matrix, got {distances.shape}")
    true = np.diag(distances)[:, None]  # (B, 1)
    others = ~np.eye(len(distances), dtype=bool)
    rank = ((distances <= true) & others).sum(axis=1)  # (B,) 0 = nearest
    return np.array([(rank < k).sum() for k in range(1, top_k + 1)], dtype=np.int64)


def matching_score(text: np.ndarray, motion: np.ndarray) -> float:
    """Mean distance between each text and its own motion (lower = better matched)."""
    text, motion = _check_pairs(text, motion, "matching_score")
    return float(np.linalg.norm(text - motion, axis=1).mean())


def clip_score(text: np.ndarray, motion: np.ndarray) -> float:
    """Mean cosine similarity of each text and its own motion, in [-1, 1] (not x100).

    The CLIP-score analogue: unlike the matching score it ignores embedding norms.
    """
    text, motion = _check_pairs(text, motion, "clip_score")
    norms = np.linalg.norm(text, axis=1) * np.linalg.norm(motion, axis=1)
    return float(((text * motion).sum(axis=1) / np.maximum(norms, 1e-12)).mean())


def gaussian_stats(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and covariance ``(D, D)`` (unbiased, rows are samples)."""
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.ndim != 2 or embeddings.shape[0] < 2:
        raise MotionError(f"FID needs at least two (N, D) embeddings, got {embeddings.shape}")
    return embeddings.mean(axis=0), np.cov(embeddings, rowvar=False).reshape(
        embeddings.shape[1], embeddings.shape[1]
    )


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Frechet distance of two Gaussians: |mu1-mu2|^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2)).

    tr((C1 C2)^(1/2)) is the sum of the square roots of the eigenvalues of C1 C2, which are
    those of the symmetric S C2 S with S = C1^(1/2): two symmetric eigendecompositions
    instead of ``scipy.linalg.sqrtm`` of a non-symmetric product, 8x faster at 512
    dimensions (sqrtm's Schur form dominated the evaluation's scoring on the GPU machine)
    and free of the complex round-off sqrtm produces for (nearly) singular covariances.
    Eigenvalues that rounding makes slightly negative count as zero.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    cov1, cov2 = np.atleast_2d(cov1).astype(np.float64), np.atleast_2d(cov2).astype(np.float64)
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != (mu1.size,) * 2:
        raise MotionError(
            f"frechet_distance: shapes do not match: {mu1.shape} {cov1.shape} {mu2.shape} "
            f"{cov2.shape}"
        )
    if not all(np.isfinite(x).all() for x in (mu1, mu2, cov1, cov2)):
        raise MotionError("FID: the embeddings' statistics are not finite (NaN or inf)")
    values, vectors = np.linalg.eigh((cov1 + cov1.T) / 2)
    root1 = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T  # C1^(1/2)
    inner = root1 @ cov2 @ root1
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0.0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_root)


def fid(real: np.ndarray, generated: np.ndarray) -> float:
    """FID between two sets of motion embeddings ``(N, D)`` and ``(M, D)``."""
    return frechet_distance(*gaussian_stats(real), *gaussian_stats(generated))


def diversity(
    embeddings: np.ndarray, rng: np.random.Generator, pairs: int = DIVERSITY_PAIRS
) -> float:
    """Mean distance between ``pairs`` random pairs of motions ``(N, D)``.

    Both sides are drawn without replacement (as in the reference); with fewer than
    ``pairs`` motions, ``N`` pairs are drawn instead.
    """
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.ndim != 2 or embeddings.shape[0] < 2:
        raise MotionError(f"diversity needs at least two (N, D) embeddings, got {embeddings.shape}")
    count = min(pairs, embeddings.shape[0])
    first = rng.choice(embeddings.shape[0], count, replace=False)
    second = rng.choice(embeddings.shape[0], count, replace=False)
    return float(np.linalg.norm(embeddings[first] - embeddings[second], axis=1).mean())


def multimodality(embeddings: np.ndarray, rng: np.random.Generator, pairs: int = MM_PAIRS) -> float:
    """MModality: how much generations for one text differ, ``embeddings`` (T, R, D).

    T texts with R generations each. ``pairs`` generation indices are drawn twice (each
    without replacement, shared by all texts, as in the reference) and the distances of the
    paired generations are averaged over texts and pairs.
    """
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.ndim != 3 or embeddings.shape[1] < pairs:
        raise MotionError(
            f"multimodality needs (texts, repeats >= {pairs}, D) embeddings, got {embeddings.shape}"
        )
    first = rng.choice(embeddings.shape[1], pairs, replace=False)
    second = rng.choice(embeddings.shape[1], pairs, replace=False)
    return float(np.linalg.norm(embeddings[:, first] - embeddings[:, second], axis=2).mean())
