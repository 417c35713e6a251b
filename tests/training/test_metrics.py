"""Metrics against cases worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.errors import MotionError
from training.evaluation.metrics import (
    clip_score,
    confidence_interval,
    distance_matrix,
    diversity,
    fid,
    frechet_distance,
    matching_score,
    multimodality,
    r_precision_hits,
)


def test_distance_matrix_is_euclidean():
    a = np.array([[0.0, 0.0], [3.0, 4.0]])
    b = np.array([[0.0, 0.0], [0.0, 4.0], [3.0, 0.0]])
    np.testing.assert_allclose(distance_matrix(a, b), [[0, 4, 3], [5, 3, 4]], atol=1e-12)


def test_r_precision_constructed_matrix():
    # Row i = text i, column j = motion j; the true motion of row i is column i.
    d = np.array(
        [
            [1.0, 5.0, 6.0, 7.0],  # true nearest: rank 0
            [0.5, 2.0, 1.0, 9.0],  # two nearer than the truth: rank 2
            [0.1, 0.2, 0.3, 0.0],  # three nearer: rank 3
            [9.0, 2.0, 8.0, 3.0],  # one nearer: rank 1
        ]
    )
    np.testing.assert_array_equal(r_precision_hits(d, top_k=3), [1, 2, 3])
    np.testing.assert_array_equal(r_precision_hits(d, top_k=4), [1, 2, 3, 4])


def test_r_precision_ties_count_against_the_truth():
    assert r_precision_hits(np.ones((4, 4)), top_k=3).tolist() == [0, 0, 0]


def test_matching_and_clip_score_on_tiny_arrays():
    text = np.array([[1.0, 0.0], [0.0, 2.0]])
    motion = np.array([[4.0, 4.0], [0.0, -1.0]])
    assert matching_score(text, motion) == pytest.approx((5.0 + 3.0) / 2)
    assert clip_score(text, motion) == pytest.approx((math.sqrt(0.5) - 1.0) / 2)


def test_fid_of_identical_gaussians_is_zero():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 4)) @ rng.normal(size=(4, 4))
    assert fid(x, x) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_one_dimensional_and_diagonal():
    # 1-D: (mu1 - mu2)^2 + (s1 - s2)^2.
    one_d = frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]]))
    assert one_d == pytest.approx(4.0 + 1.0)
    # Diagonal: a sum of independent 1-D terms.
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 1.0])
    expected = ((mu1 - mu2) ** 2 + (s1 - s2) ** 2).sum()
    got = frechet_distance(mu1, np.diag(s1**2), mu2, np.diag(s2**2))
    assert got == pytest.approx(expected)


def test_fid_of_samples_matches_their_gaussians():
    rng = np.random.default_rng(1)
    a = rng.normal(0.0, 1.0, size=(20000, 2))
    b = rng.normal(2.0, 3.0, size=(20000, 2))
    # Per dimension (0 - 2)^2 + (1 - 3)^2 = 8, two dimensions.
    assert fid(a, b) == pytest.approx(16.0, rel=0.03)


def test_singular_covariances_still_give_a_finite_real_fid():
    x = np.zeros((10, 3))
    x[:, 0] = np.arange(10)
    value = fid(x, x + 1.0)
    assert np.isfinite(value) and value == pytest.approx(3.0, abs=1e-3)


def test_diversity_of_two_points_and_pair_count():
    emb = np.array([[0.0, 0.0], [3.0, 4.0]])
    # Two pairs drawn without replacement from two items: half the pairs may coincide.
    values = {diversity(emb, np.random.default_rng(s), pairs=300) for s in range(20)}
    assert values <= {0.0, 2.5, 5.0} and len(values) > 1
    line = np.arange(400, dtype=float)[:, None] * np.ones((1, 2))
    rng = np.random.default_rng(0)
    first = rng.choice(400, 300, replace=False)
    second = rng.choice(400, 300, replace=False)
    expected = (np.abs(first - second) * math.sqrt(2)).mean()
    assert diversity(line, np.random.default_rng(0)) == pytest.approx(expected)


def test_multimodality_hand_case():
    # Text 0: its generations lie on a line 1 apart; text 1: all generations identical.
    emb = np.zeros((2, 4, 1))
    emb[0, :, 0] = [0.0, 1.0, 2.0, 3.0]
    rng = np.random.default_rng(0)
    first = rng.choice(4, 3, replace=False)
    second = rng.choice(4, 3, replace=False)
    expected = (np.abs(first - second).mean() + 0.0) / 2
    assert multimodality(emb, np.random.default_rng(0), pairs=3) == pytest.approx(expected)
    with pytest.raises(MotionError):
        multimodality(emb, np.random.default_rng(0), pairs=10)


def test_confidence_interval_is_196_sigma_over_root_n():
    values = [1.0, 2.0, 3.0, 4.0]
    sigma = math.sqrt(np.mean((np.array(values) - 2.5) ** 2))
    interval = confidence_interval(values)
    assert interval.mean == 2.5 and interval.count == 4
    assert interval.half_width == pytest.approx(1.96 * sigma / 2.0)
    assert confidence_interval([7.0]).half_width == 0.0
    assert interval.format(2) == "2.50 ± 1.10"


def test_frechet_distance_matches_the_matrix_square_root_form():
    # Non-commuting full covariances: the eigenvalue form must equal tr(sqrtm(C1 C2)).
    from scipy import linalg

    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(200, 24)), rng.normal(size=(200, 24)) @ rng.normal(size=(24, 24))
    c1, c2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    mu1, mu2 = a.mean(0), b.mean(0)
    expected = (
        (mu1 - mu2) @ (mu1 - mu2) + np.trace(c1) + np.trace(c2)
        - 2 * np.trace(linalg.sqrtm(c1 @ c2)).real
    )  # fmt: skip
    assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(expected, rel=1e-9)
