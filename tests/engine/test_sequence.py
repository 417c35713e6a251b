"""Timelines and in-betweening (engine.sequence) on a tiny random checkpoint and real joints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pipeline_fixtures import save_tiny_checkpoint
from scipy.ndimage import gaussian_filter1d

from engine.errors import MotionError
from engine.models.molingo import MoLingo, MoLingoConfig
from engine.motion.demo_clip import walk_cycle
from engine.motion.kinematics import bone_lengths
from engine.sampling.mar import sample_mar
from engine.sequence import (
    Chunk,
    _handshake_windows,
    generate_sequence,
    handshake_tokens,
    inbetween,
    join_range,
    plan_chunks,
    smooth_joins,
    window_peaks,
)
from engine.text_encoder import TextEncoding
from engine.timeline import Segment, read_timeline

WALK, WAVE, JUMP = "a person walks forward", "a person waves", "a person jumps"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("sequence") / "tiny")


def _sequence(checkpoint, segments, **options):
    options = {"steps": 2, "checkpoint": checkpoint, "device": "cpu", **options}
    return generate_sequence(segments, **options)


# ---- timeline files ------------------------------------------------------------------------


def test_timeline_lines_are_prompt_hash_seconds(tmp_path):
    path = tmp_path / "shot.txt"
    text = "\ufeffa person walks forward#4\n\n  a person waves #2.5 \nnumber #1 then turn#3\n"
    path.write_text(text, encoding="utf-8")  # a byte-order mark, as Notepad saves
    assert read_timeline(path) == [
        Segment(WALK, 4.0), Segment("a person waves", 2.5), Segment("number #1 then turn", 3.0)
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a person walks\n", "shot.txt:1: expected 'prompt#seconds'"),
        ("a person walks#4\na person jumps#two\n", "shot.txt:2: 'two' is not a number"),
        ("#3\n", "shot.txt:1: the prompt before '#' is empty"),
        ("\n\n", "no segments"),
    ],
)
def test_bad_timeline_lines_are_named(tmp_path, text, message):
    path = tmp_path / "shot.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MotionError, match=message):
        read_timeline(path)


def test_timeline_files_that_are_not_text(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 walk#2\n".encode("latin-1"))
    with pytest.raises(MotionError, match="not UTF-8"):
        read_timeline(tmp_path / "latin1.txt")
    with pytest.raises(MotionError, match="no such timeline file"):
        read_timeline(tmp_path / "missing.txt")


def test_long_segments_are_cut_into_equal_windows():
    chunks = plan_chunks([20, 100, 5], longest=39)
    assert [(c.segment, c.start, c.stop) for c in chunks] == [
        (0, 0, 20), (1, 20, 53), (1, 53, 87), (1, 87, 120), (2, 120, 125)
    ]  # fmt: skip


def test_handshake_weights_sum_to_one_and_ease_in_and_out():
    first, second, short = Chunk(0, 0, 20), Chunk(1, 20, 44), Chunk(2, 44, 50)
    assert handshake_tokens(10, first, second) == 10  # long neighbours: the whole overlap
    assert handshake_tokens(10, second, short) == 3  # a short chunk keeps half to itself
    spans, weights = _handshake_windows([first, second], 10, 44)
    total = np.zeros(44)
    for (a, b), w in zip(spans, weights, strict=True):
        total[a:b] += w.numpy()
    np.testing.assert_allclose(total, 1.0, atol=2e-3)  # the handshake is a partition of unity
    ramp = weights[1].numpy()[:10]  # the second window's share across the handshake
    steps = np.diff(ramp)
    assert (steps > 0).all() and steps[0] < steps[4] and steps[-1] < steps[4]  # eased, no kink


def test_a_rough_join_is_smoothed_down_to_its_segments_and_nothing_far_moves():
    clip = walk_cycle(seconds=6.0, turn_degrees=0.0)  # (120, 22, 3), steady
    clip[60:] += [0.0, 0.0, 0.2]  # the second segment starts 20 cm on: a rough join
    reference = np.mean([window_peaks(clip, 30, 10), window_peaks(clip, 90, 10)], axis=0)
    assert (window_peaks(clip, 60, 10) > 2 * reference).all()  # the jolt shows
    out, used = smooth_joins(clip, [0, 60, 120], fps=20)
    assert len(used) == 1 and used[0][1] > 0
    assert (window_peaks(out, 60, 10) <= reference).all()
    # only frames within 1 s of the join are touched, and those keep the walk's course
    np.testing.assert_array_equal(out[:40], clip[:40])
    np.testing.assert_array_equal(out[80:], clip[80:])
    assert np.abs(out - clip).max() < 0.2  # eased across the jolt, nothing thrown further
    # the bones' directions are smoothed, not the joints: every bone keeps its length
    np.testing.assert_allclose(bone_lengths(out), bone_lengths(clip), atol=1e-9)


def test_a_join_as_smooth_as_its_segments_is_left_alone():
    clip = walk_cycle(seconds=6.0, turn_degrees=0.0)
    # the join eased already: the walk blended into a heavily smoothed copy of itself there
    ease = np.clip(1.5 - np.abs(np.arange(120) + 0.5 - 60) / 20, 0, 1)[:, None, None]
    calm = clip + ease * (gaussian_filter1d(clip, 4.0, axis=0, mode="nearest") - clip)
    out, used = smooth_joins(calm, [0, 60, 120], fps=20)
    assert used == [[0.0, 0.0]]
    np.testing.assert_array_equal(out, calm)


# ---- generate_sequence ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("generator", "method"), [("mlagen", "inpaint"), ("mlagen", "blend"), ("molingo", "inpaint")]
)
def test_segments_make_one_clip_of_their_lengths(checkpoint, generator, method):
    segments = [(WALK, 2.0), (WAVE, 1.2), (JUMP, 3.0)]
    motion = _sequence(checkpoint, segments, generator=generator, method=method)
    assert motion.joints.shape == (1, 124, 22, 3) and motion.features.shape == (1, 124, 263)
    assert np.isfinite(motion.joints).all()
    table = motion.diagnostics["segments"]
    assert [(s["prompt"], s["start_frame"], s["frames"]) for s in table] == [
        (WALK, 0, 40), (WAVE, 40, 24), (JUMP, 64, 60)
    ]  # fmt: skip
    assert motion.diagnostics["timeline_method"] == method
    again = _sequence(checkpoint, segments, generator=generator, method=method)
    np.testing.assert_array_equal(again.joints, motion.joints)  # same seed, same motion
    other = _sequence(checkpoint, segments, generator=generator, method=method, seed=1)
    assert not np.allclose(other.joints, motion.joints)


@pytest.mark.parametrize(("generator", "method"), [("mlagen", "blend"), ("molingo", "inpaint")])
def test_each_join_is_no_rougher_than_the_segments_it_joins(checkpoint, generator, method):
    segments = [(WALK, 3.0), (WAVE, 1.2), (JUMP, 3.0), (WALK, 3.0)]
    motion = _sequence(checkpoint, segments, generator=generator, method=method)
    joints = motion.joints[0].astype(np.float64)
    starts = [s["start_frame"] for s in motion.diagnostics["segments"]] + [len(joints)]
    used = motion.diagnostics["join_smoothing"]
    assert len(used) == 3 and any(share for _, share in used)  # this seed has rough joins
    for k in range(1, 4):
        middles = [(starts[k - 1] + starts[k]) // 2, (starts[k] + starts[k + 1]) // 2]
        reference = np.mean([window_peaks(joints, m, 10) for m in middles], axis=0)
        # the joins are checked again after smoothing (a 1.2 s segment's middle lies inside
        # its joins' stretches); 1% covers the features' round trip after the smoothing
        assert (window_peaks(joints, starts[k], 10) <= 1.01 * reference).all()


def test_a_minute_long_timeline_is_one_continuous_clip(checkpoint):
    segments = [(WALK, 12.0), (WAVE, 9.0), (JUMP, 15.0), (WALK, 24.0)]
    steps = []
    motion = _sequence(checkpoint, segments, steps=1, progress=lambda s, t: steps.append((s, t)))
    assert motion.joints.shape == (1, 1200, 22, 3)
    assert motion.seconds == 60.0
    # progress: each segment an equal share, reaching the whole at the end
    done = [s for s, _ in steps]
    assert steps[-1] == (4000, 4000) and done == sorted(done)
    # cleaned: one rigid body over the whole minute, standing on the floor
    lengths = bone_lengths(motion.joints[0].astype(np.float64))
    assert np.ptp(lengths[:, 1:], axis=0).max() < 1e-4
    assert motion.joints[0, :, :, 1].min() > -1e-4


@pytest.mark.parametrize(
    ("segments", "options", "message"),
    [
        ([], {}, "the timeline is empty"),
        ([(WALK, 0.5)], {}, r"segment 1 \('a person walks forward'\): length 0.5 s is outside 1"),
        ([(WALK, 2), (JUMP, 61)], {}, "segment 2 .* outside 1 to 60 seconds"),
        ([(WALK, 60)] * 11, {}, "the timeline lasts 660 s; the limit is 600 s"),
        ([(WALK, float("nan"))], {}, "segment 1"),
        ([("  ", 2)], {}, "prompt 1 is empty"),
        ([(WALK, 2)], {"method": "stitch"}, "unknown timeline method 'stitch'"),
        ([(WALK, 2)], {"generator": "molingo", "method": "blend"}, "'blend' .* needs MLA-Gen"),
        ("a person walks#2", {}, "segments must be a list"),
    ],
)
def test_bad_timelines_say_what_is_wrong(checkpoint, segments, options, message):
    with pytest.raises(MotionError, match=message):
        _sequence(checkpoint, segments, **options)


def test_given_tokens_come_back_unchanged_from_molingo():
    torch.manual_seed(0)
    model = MoLingo(MoLingoConfig.tiny()).eval()
    mask = torch.ones(1, 5, dtype=torch.bool)
    text = TextEncoding(torch.randn(1, 5, 32), mask, torch.randn(1, 32))
    given = torch.randn(1, 12, 16)
    known = torch.zeros(1, 12, dtype=torch.bool)
    known[:, :5] = True
    with torch.no_grad():
        rng = torch.Generator().manual_seed(0)
        out = sample_mar(model, text, None, 12, ar_steps=3, flow_steps=2, generator=rng,
                         given=(given, known))  # fmt: skip
    assert torch.equal(out[:, :5], given[:, :5])
    assert not torch.allclose(out[:, 5:], given[:, 5:])


# ---- inbetween -----------------------------------------------------------------------------


def _clip() -> np.ndarray:
    walk = walk_cycle()  # (T, 22, 3) a procedural walk, metres
    return np.concatenate([walk, walk[1:] + (walk[-1] - walk[0]) * [1, 0, 1]])[:120]


@pytest.mark.parametrize("generator", ["mlagen", "molingo"])
@pytest.mark.parametrize(("start", "end"), [(30, 70), (0, 21), (101, 120)])
def test_inbetween_keeps_every_frame_outside_the_range(checkpoint, generator, start, end):
    clip = _clip()
    out = inbetween(clip, start, end, JUMP, checkpoint=checkpoint, device="cpu", steps=2,
                    generator=generator)  # fmt: skip
    joints = out.joints[0]
    assert joints.shape == clip.shape and out.features.shape == (1, len(clip), 263)
    outside = np.r_[0:start, end : len(clip)]
    assert np.array_equal(joints[outside], clip[outside].astype(np.float32))
    assert not np.allclose(joints[start:end], clip[start:end], atol=1e-3)
    assert out.diagnostics["range"] == [start, end]


def test_join_range_keeps_a_clip_it_is_given_back_and_undoes_a_placement():
    clip = _clip()
    np.testing.assert_allclose(join_range(clip, clip, 30, 70), clip, atol=1e-9)
    turn = np.deg2rad(40.0)
    c, s = np.cos(turn), np.sin(turn)
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    elsewhere = clip @ rot.T + [3.0, 0.0, -2.0]  # the same motion, turned and moved
    np.testing.assert_allclose(join_range(clip, elsewhere, 30, 70), clip, atol=1e-9)


def test_join_range_meets_both_ends():
    clip = _clip()
    other = np.roll(clip, 17, axis=0)  # another phase of the walk: different poses
    joined = join_range(clip, other, 30, 70)
    step = np.linalg.norm(np.diff(joined, axis=0), axis=-1).max(-1)  # (T-1,) per frame
    inside = np.linalg.norm(np.diff(other[31:69], axis=0), axis=-1).max(-1).max()
    # no frame-to-frame move at either join is larger than the moves inside the range
    assert step[29] <= inside * 1.05 and step[69] <= inside * 1.05
    np.testing.assert_allclose(bone_lengths(joined[30:70]), bone_lengths(clip[30:70]), atol=1e-9)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (70, 30, "the range 70-30 is empty"),
        (30, 30, "the range 30-30 is empty"),
        (-1, 30, "start frame must be between 0 and 119"),
        (30, 121, "end frame must be between 1 and 120"),
        (0, 120, "the whole clip"),
        (10, 200, r"10-200 is 9.50 s; in-between regenerates at most 8.8 s"),
        (2.5, 30, "start frame must be a whole number"),
    ],
)
def test_bad_ranges_say_what_is_wrong(checkpoint, start, end, message):
    clip = _clip() if end <= 121 else np.concatenate([_clip()] * 3)
    with pytest.raises(MotionError, match=message):
        inbetween(clip, start, end, JUMP, checkpoint=checkpoint, device="cpu", steps=1)


def test_inbetween_refuses_a_clip_at_another_rate(checkpoint):
    from engine.motion import Motion

    clip = _clip()
    motion = Motion(clip[None].astype(np.float32), np.zeros((1, len(clip), 263), np.float32), 30,
                    ["walk"])  # fmt: skip
    with pytest.raises(MotionError, match="at 30 fps; this checkpoint works at 20 fps"):
        inbetween(motion, 10, 20, JUMP, checkpoint=checkpoint, device="cpu", steps=1)


@pytest.mark.parametrize(("generator", "method"), [("mlagen", "blend"), ("mlagen", "inpaint"),
                                                   ("molingo", "inpaint")])  # fmt: skip
def test_a_one_segment_timeline_is_the_single_prompt_clip(checkpoint, generator, method):
    from engine.pipeline import generate

    alone = generate(WAVE, seconds=3.0, seed=5, steps=2, checkpoint=checkpoint, device="cpu",
                     generator=generator)  # fmt: skip
    timeline = _sequence(checkpoint, [(WAVE, 3.0)], seed=5, generator=generator, method=method)
    np.testing.assert_array_equal(timeline.joints, alone.joints)
    np.testing.assert_array_equal(timeline.features, alone.features)
