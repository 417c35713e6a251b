"""The timeline measurements' own definitions (training/evaluation/timeline.py)."""

import numpy as np
import pytest

from engine.motion.demo_clip import walk_cycle
from training.evaluation.timeline import (
    Caption,
    both_ratios,
    boundary_mask,
    peak_motion,
    plan_sequences,
    skating_split,
    transition_ratio,
)


def _walk() -> np.ndarray:
    return walk_cycle(seconds=6.0, turn_degrees=0.0)  # (120, 22, 3), steady


def test_a_steady_walk_has_no_transition_and_a_jolt_shows():
    walk = _walk()
    acc, jerk = transition_ratio(walk, [60], [20, 100])
    assert 0.8 < acc < 1.25 and 0.8 < jerk < 1.25
    jolted = walk.copy()
    jolted[60:] += [0.0, 0.0, 0.3]  # a 30 cm jump at the boundary
    acc, jerk = transition_ratio(jolted, [60], [20, 100])
    assert acc > 2 and jerk > 2


def test_the_wide_window_sees_roughness_pushed_aside_from_a_boundary():
    walk = _walk()
    jolted = walk.copy()
    jolted[75:] += [0.0, 0.0, 0.3]  # 15 frames after the boundary: outside the narrow window
    narrow_acc, narrow_jerk, wide_acc, wide_jerk = both_ratios(jolted, [60], [20, 100])
    assert 0.8 < narrow_acc < 1.25 and 0.8 < narrow_jerk < 1.25
    assert wide_acc > 2 and wide_jerk > 2


def test_peak_motion_reads_only_the_given_frames():
    walk = _walk()
    jolted = walk.copy()
    jolted[100:] += [0.0, 0.0, 0.3]
    assert peak_motion(jolted, np.arange(10, 50)) == peak_motion(walk, np.arange(10, 50))
    assert peak_motion(jolted, np.arange(95, 105))[0] > 2 * peak_motion(walk, np.arange(95, 105))[0]


def test_skating_is_split_between_boundary_windows_and_the_rest():
    walk = _walk()
    assert boundary_mask(120, [60]).sum() == 19  # steps 51..69
    near_slide, near_contact, far_slide, far_contact = skating_split(walk, [60])
    assert near_contact > 0 and far_contact > near_contact
    slid = walk.copy()
    slid[55:66, :, 0] += np.linspace(0, 0.5, 11)[:, None]  # the body slides sideways there
    assert skating_split(slid, [60])[0] > near_slide and skating_split(slid, [60])[2] == far_slide


def test_sequences_take_three_to_six_distinct_captions():
    captions = [Caption(str(i), f"caption {i}", 40) for i in range(40)]
    plans = plan_sequences(captions, 20, np.random.default_rng(0))
    assert len(plans) == 20 and all(3 <= len(p) <= 6 for p in plans)
    assert all(len({c.clip for c in p}) == len(p) for p in plans)


def test_engine_settings_for_measurements_set_only_known_constants(monkeypatch):
    from engine import sequence
    from training.evaluation.timeline import apply_engine_settings

    for name in ("HANDSHAKE_SHARE", "JOIN_STEPS"):  # restored after the test
        monkeypatch.setattr(sequence, name, getattr(sequence, name))
    apply_engine_settings(["HANDSHAKE_SHARE=0.25", "JOIN_STEPS=none"])
    assert sequence.HANDSHAKE_SHARE == 0.25 and sequence.JOIN_STEPS == ()
    with pytest.raises(SystemExit, match="'RELEASE_T' is not one of"):
        apply_engine_settings(["RELEASE_T=0.5"])
