"""Physical metrics on clips built by hand, where each value can be worked out on paper."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import MotionError
from engine.motion.demo_clip import walk_cycle
from engine.motion.skeleton import CANONICAL_OFFSETS, PARENTS
from training.evaluation.physical import (
    CONTACT_HEIGHT,
    bone_length_variation,
    clip_physics,
    floating,
    jitter,
    penetration,
    skating_counts,
    summarise,
)


def standing(frames: int = 20) -> np.ndarray:
    """The canonical rest pose (arms down, facing +Z), toes on the floor, every frame."""
    rest = np.zeros((22, 3))
    for j in range(1, 22):
        rest[j] = rest[PARENTS[j]] + CANONICAL_OFFSETS[j]
    rest[:, 1] -= rest[[10, 11], 1].min()
    return np.repeat(rest[None], frames, axis=0)


def test_a_rigid_clip_has_no_bone_length_variation():
    assert bone_length_variation(walk_cycle(2.0)) < 1e-9


def test_a_stretching_forearm_is_measured_as_std_over_mean():
    clip = standing(4)
    lengths = np.array([0.2, 0.3, 0.2, 0.3])  # left wrist (20) to its elbow (18)
    clip[:, 20] = clip[:, 18] + lengths[:, None] * np.array([0.0, -1.0, 0.0])
    assert bone_length_variation(clip) == pytest.approx(0.05 / 0.25)


def test_skating_counts_low_feet_that_slide():
    clip = standing(11)
    clip[:, 10, 0] += 0.03 * np.arange(11)  # left toe on the floor, 3 cm a frame: slides
    clip[:, 11, 0] += 0.01 * np.arange(11)  # right toe, 1 cm a frame: walking pace, not a slide
    assert skating_counts(clip, fps=20) == (10, 20)
    clip[:, 10, 1] += CONTACT_HEIGHT + 0.01  # lift the sliding toe: no longer a contact
    assert skating_counts(clip, fps=20) == (0, 10)
    # the threshold is a speed: 1.5 cm a frame is 0.3 m/s at 20 fps, 0.6 m/s at 40 fps
    shuffle = standing(11)
    shuffle[:, 10, 0] += 0.015 * np.arange(11)
    assert skating_counts(shuffle, fps=20) == (0, 20)
    assert skating_counts(shuffle, fps=40) == (10, 20)


def test_penetration_and_floating():
    clip = standing(10)
    assert penetration(clip) == 0.0 and floating(clip) == pytest.approx(0.0)
    clip[3, 21, 1] = -0.02  # a hand through the floor on one frame
    assert penetration(clip) == pytest.approx(0.02)
    hovering = standing(10)
    hovering[..., 1] += 0.03
    assert floating(hovering) == pytest.approx(0.03)
    hovering[:4, ..., 1] += 0.5  # a jump in 4 of 10 frames does not move the median
    assert floating(hovering) == pytest.approx(0.03)


def test_jitter_of_constant_velocity_and_constant_acceleration():
    t = np.arange(30) / 20.0
    clip = standing(30)
    moving = clip + (1.5 * t)[:, None, None] * np.array([1.0, 0.0, 0.0])
    assert jitter(moving, fps=20) == pytest.approx((0.0, 0.0), abs=1e-9)
    falling = clip + (0.5 * 4.0 * t**2)[:, None, None] * np.array([0.0, 1.0, 0.0])
    acc, jerk = jitter(falling, fps=20)
    assert acc == pytest.approx(4.0) and jerk == pytest.approx(0.0, abs=1e-6)


def test_summary_pools_skating_over_clips_and_reports_centimetres():
    slide = standing(11)
    slide[:, 10, 0] += 0.03 * np.arange(11)
    deep = standing(11)
    deep[:, 0, 1] = -0.04
    found = summarise([clip_physics(slide, 20), clip_physics(deep, 20)])
    assert found["skating"] == pytest.approx(10 / 40)
    assert found["penetration_cm"] == pytest.approx(2.0)
    assert found["bone_var"] < 0.2 < found["bone_var_max"]  # the deep pelvis stretches hips


@pytest.mark.parametrize(
    "clip, message",
    [
        (np.zeros((10, 21, 3)), "shape"),
        (np.zeros((3, 22, 3)), "at least 4 frames"),
        (np.full((10, 22, 3), np.nan), "NaN"),
    ],
)
def test_bad_clips_are_refused(clip, message):
    with pytest.raises(MotionError, match=message):
        clip_physics(clip, 20)
