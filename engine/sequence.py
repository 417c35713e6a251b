"""Timelines and in-betweening: one motion from several prompts, and a frame range redone.

A generator makes at most one window of latents (49 steps of 4 frames: 9.8 s). Longer
motion is made window after window in latent space and decoded once at the end: the
autoencoder is causal and convolutional, so it decodes a latent sequence of any length,
and the 263-dim features carry the root as per-frame velocities, so ``recover_from_ric``
integrates one root path and one heading through every segment (nothing is stitched in
joint space). Two ways of making the windows agree where they meet (docs/timeline.md says
which is the default and why, with measurements):

- ``"inpaint"``: window after window; each new window starts with the previous window's
  last ``CONTEXT_SECONDS`` of latents given (but their last ``TRANSITION_TOKENS``, made
  again: the transition) and generates the rest under its own prompt.
  MLA-Gen holds given latents on their straight flow path ``x_t = (1 - t) x + t noise``
  (their velocity replaced by ``noise - x``) until ``t`` falls to ``RELEASE_T``, then lets
  the network finish them with the rest, and the context eases from the old latents into
  the new window's; MoLingo's masked autoregressive loop starts with them revealed.
- ``"blend"`` (MLA-Gen only): all windows at once, each over its own tokens plus half of a
  handshake with each neighbour (``OVERLAP_SECONDS``, at most ``HANDSHAKE_SHARE`` of the
  shorter chunk); at every solver step the windows' velocities are averaged over the
  overlaps with smoothstep weights (DoubleTake's handshake, MultiDiffusion's averaging),
  so the whole sequence is one ODE state.

Either way the decoded clip is cleaned as one body (``cleanup``), then ``smooth_joins``
holds each join to its segments: where the peak acceleration or jerk within
``JOIN_SECONDS`` of a join exceeds the mean of the same peaks at the middles of the two
segments, the stretch around it is eased toward a Gaussian-smoothed copy, no more than it
takes. ``clean=False`` gives the network's joints back, joins included.

``inbetween`` regenerates frames ``[start, end)`` of a clip under a prompt: the clip is
encoded, the tokens covering the range are generated with the others given (as
``"inpaint"``), decoded and cleaned; the new frames are placed on the clip (a turn about
+Y and a shift matching the last kept frame before the range), and what is left at the
ends (pose, root position, heading) is spread over the range with a smoothstep, so both
ends join exactly. Every frame outside the range is copied from the input.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d
from torch import Tensor

from .edit.cleanup import Cleanup, clean_joints, clean_motion, lift_above_floor, rigid_skeleton
from .edit.clip_edit import body_frames
from .errors import MotionError
from .motion import Motion
from .motion.features import FOOT_CONTACT, joints_to_features
from .motion.kinematics import bone_lengths
from .motion.skeleton import FPS, NUM_JOINTS, PARENTS
from .pipeline import (
    FRAME_TOLERANCE,
    Progress,
    _check_int,
    _check_text_dim,
    _cleanup_options,
    _max_frames,
    _sampling_settings,
    _to_host,
    cached_checkpoint,
    check_pinned,
    choose_generator,
    decode_latents,
    resolve_device,
)
from .sampling.flow import guidance_for, guided_velocity
from .sampling.mar import sample_mar
from .sampling.ode import solve_ode
from .text_encoder import TextEncoder, load_text_encoder, validate_prompt
from .timeline import DEFAULT_METHOD, METHODS, Segment, check_segments

CONTEXT_SECONDS = 2.0  # "inpaint": the previous window's tail each window starts from
OVERLAP_SECONDS = 2.0  # "blend": the handshake two neighbouring windows share
PROGRESS_UNITS = 1000  # each segment's share of the progress total
RELEASE_T = 0.3  # MLA-Gen holds given latents on their path until t falls to this
TRANSITION_TOKENS = 2  # "inpaint": the previous window's last 0.4 s are made again
HANDSHAKE_SHARE = 0.5  # "blend": a handshake is at most half the shorter chunk it joins
JOIN_SECONDS = 0.5  # a join's stretch each side, checked (and smoothed) against its segments
# (Gaussian sigma in frames, share of the smoothed copy) tried at a rough join, gentlest first
JOIN_STEPS = ((1.0, 0.25), (1.0, 0.5), (1.0, 0.75), (1.0, 1.0), (2.0, 1.0), (3.0, 1.0))
JOIN_ROUNDS = 3  # passes over the joins, each against the clip the last one left
# after smoothing the joins: bones rigid at the clip's own lengths (they are), features again
_FEATURES_ONLY = Cleanup(lengths="median", smoothing=0.0, ground=False, pin_feet=False)
CROSSFADE_FRAMES = 8  # inbetween: frames at each end eased from the clip into the new motion


# ---- the plan ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Chunk:
    """Tokens ``[start, stop)`` of the sequence made by one window, under one segment."""

    segment: int
    start: int
    stop: int


def segment_tokens(segments: Sequence[Segment], fps: int, down: int) -> list[int]:
    """Latent steps per segment: the nearest whole step, at least one second."""
    least = math.ceil(fps / down)
    counts = []
    for segment in segments:
        frames = segment.seconds * fps
        if abs(frames - round(frames)) <= FRAME_TOLERANCE:
            frames = float(round(frames))
        counts.append(max(least, math.floor(frames / down + 0.5)))
    return counts


def plan_chunks(tokens: Sequence[int], longest: int) -> list[Chunk]:
    """Each segment's tokens cut into nearly equal chunks of at most ``longest``."""
    chunks, start = [], 0
    for index, count in enumerate(tokens):
        pieces = math.ceil(count / longest)
        edges = [start + round(count * k / pieces) for k in range(pieces + 1)]
        chunks += [Chunk(index, a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]
        start += count
    return chunks


# ---- the loaded generator ------------------------------------------------------------------


@dataclasses.dataclass
class _Loaded:
    ckpt: Any
    name: str
    settings: Any  # generators.MLAGenSettings | MoLingoSettings
    encoder: TextEncoder
    device: torch.device
    window: int  # latent steps one window holds

    @property
    def down(self) -> int:
        return self.ckpt.models["autoencoder"].downsample

    @property
    def model(self) -> torch.nn.Module:
        return self.ckpt.models[self.name].to(self.device)


def _load(
    checkpoint: Any, device: Any, generator: str | None, guidance: float | None,
    steps: int | None, revision: str | None, allow_unpinned: bool, offline: bool,
) -> _Loaded:  # fmt: skip
    """The checkpoint, generator, settings and text encoder ``generate`` would use."""
    from .store.checkpoint import Checkpoint

    torch_device = resolve_device(device)
    if isinstance(checkpoint, Checkpoint):
        ckpt = checkpoint
    else:
        ckpt = cached_checkpoint(checkpoint, torch_device, revision, offline)
    name = choose_generator(ckpt, generator)
    settings = _sampling_settings(ckpt, name, guidance, steps)
    down = ckpt.models["autoencoder"].downsample
    check_pinned(ckpt, allow_unpinned)
    encoder = load_text_encoder(ckpt.text_encoder, torch_device)
    _check_text_dim(ckpt, name, encoder)
    window = _max_frames(ckpt, name, down) // down
    return _Loaded(ckpt, name, settings, encoder, torch_device, window)


# ---- sampling windows ----------------------------------------------------------------------


def _fill_window(
    loaded: _Loaded,
    prompt: str,
    given: Tensor,
    known: Tensor,
    rng: torch.Generator,
    progress: Progress | None,
) -> Tensor:
    """Latents (1, n, C) of one window whose ``known`` (1, n) tokens are ``given``, the rest
    generated under ``prompt``. MoLingo returns known tokens as given. MLA-Gen holds them
    on their flow path while ``t > RELEASE_T`` (the window's plan follows them) and then lets
    the network finish them with the rest, so the seam between given and new tokens is
    smoothed by the network itself; they come back near, not at, the given values."""
    settings, model = loaded.settings, loaded.model
    text = loaded.encoder.encode([prompt])
    null = loaded.encoder.null(1)
    if loaded.name == "molingo":
        guided = settings.guidance != 1.0
        return sample_mar(
            model, text, null if guided else None, given.shape[1],
            ar_steps=settings.ar_steps, flow_steps=settings.steps,
            guidance=settings.guidance, method=settings.method, generator=rng,
            progress=progress, given=(given, known),
        )  # fmt: skip
    noise = _noise(given.shape, rng, loaded.device)
    guide = guidance_for(settings.mode, settings.guidance)
    single = settings.mode == "cfg" and settings.guidance == 1.0
    velocity, _, _ = guided_velocity(model, text.to(loaded.device), null.to(loaded.device),
                                     guide, single)  # fmt: skip
    held = noise - given  # the straight path's velocity through each given token
    mask = known[..., None]

    def inpainting(x: Tensor, t: Tensor) -> Tensor:
        v = velocity(x, t)
        return torch.where(mask, held, v) if float(t[0]) > RELEASE_T else v

    return solve_ode(inpainting, noise, settings.steps, settings.method, progress=progress)


def _smoothstep(x: Any) -> Any:
    """3x^2 - 2x^3 on [0, 1] (numpy or torch): eases in and out with zero slope at both ends."""
    return x * x * (3.0 - 2.0 * x)


def _noise(shape: Sequence[int], rng: torch.Generator, device: torch.device) -> Tensor:
    """Standard normal noise drawn on the generator's device, then moved to ``device``."""
    return torch.randn(tuple(shape), generator=rng, device=rng.device).to(device)


def _sequence_inpaint(
    loaded: _Loaded, segments: list[Segment], tokens: list[int], rng: torch.Generator,
    progress: Progress | None,
) -> Tensor:  # fmt: skip
    """``"inpaint"``: window after window, each given the previous one's tail."""
    context = round(CONTEXT_SECONDS * loaded.ckpt.fps / loaded.down)
    context = min(context, loaded.window // 2)
    chunks = plan_chunks(tokens, loaded.window - context)
    dim = loaded.ckpt.configs[loaded.name].latent_dim
    latents = torch.zeros(1, sum(tokens), dim, device=loaded.device)
    per_segment = [sum(1 for c in chunks if c.segment == i) for i in range(len(segments))]
    done = [0] * len(segments)
    for chunk in chunks:
        first = max(0, chunk.start - context)
        # the context's last tokens are made again with the new window: the transition
        free = chunk.start - min((chunk.start - first) // 2, TRANSITION_TOKENS) - first
        known = torch.zeros(1, chunk.stop - first, dtype=torch.bool, device=loaded.device)
        known[:, :free] = True
        report = _segment_progress(progress, chunk.segment, len(segments),
                                   done[chunk.segment], per_segment[chunk.segment])  # fmt: skip
        window = _fill_window(loaded, segments[chunk.segment].prompt,
                              latents[:, first : chunk.stop], known, rng, report)  # fmt: skip
        # the kept context eases from what was made into the new window's version of it
        # (MoLingo gives it back unchanged; MLA-Gen's moved once released)
        ramp = _smoothstep((torch.arange(free, device=loaded.device) + 1.0) / (free + 1))
        old = latents[:, first : first + free]
        latents[:, first : first + free] = old + ramp[None, :, None] * (window[:, :free] - old)
        latents[:, first + free : chunk.stop] = window[:, free:]
        done[chunk.segment] += 1
    return latents


def _sequence_blend(
    loaded: _Loaded, segments: list[Segment], tokens: list[int], rng: torch.Generator,
    progress: Progress | None,
) -> Tensor:  # fmt: skip
    """``"blend"``: every window in one ODE, velocities averaged over the handshakes."""
    if loaded.name != "mlagen":
        raise MotionError("the 'blend' timeline method needs MLA-Gen; MoLingo uses 'inpaint'")
    overlap = round(OVERLAP_SECONDS * loaded.ckpt.fps / loaded.down)
    overlap = min(overlap, loaded.window // 2)
    chunks = plan_chunks(tokens, loaded.window - overlap)
    total = sum(tokens)
    spans, weights = _handshake_windows(chunks, overlap, total)
    settings = loaded.settings
    dim = loaded.ckpt.configs[loaded.name].latent_dim
    noise = _noise((1, total, dim), rng, loaded.device)
    groups = _window_groups(loaded, spans, [segments[c.segment].prompt for c in chunks])
    norm = torch.zeros(total, device=loaded.device)
    for (a, b), w in zip(spans, weights, strict=True):
        norm[a:b] += w.to(loaded.device)

    def velocity(x: Tensor, t: Tensor) -> Tensor:
        out = torch.zeros_like(x)
        for members, fn in groups:
            rows = torch.cat([x[:, a:b] for a, b in (spans[m] for m in members)])
            v = fn(rows, t.expand(len(members)))
            for row, m in enumerate(members):
                a, b = spans[m]
                out[0, a:b] += weights[m].to(x)[:, None] * v[row]
        return out / norm.to(x)[None, :, None]

    def report(step: int, steps: int) -> None:
        if progress is not None:
            units = len(segments) * PROGRESS_UNITS
            progress(round(units * step / steps), units)

    return solve_ode(velocity, noise, settings.steps, settings.method, progress=report)


def _handshake_windows(
    chunks: list[Chunk], overlap: int, total: int
) -> tuple[list[tuple[int, int]], list[Tensor]]:
    """Each chunk's window (its tokens plus half of each handshake with a neighbour) and its
    blending weights: smoothstep ramps across each handshake, so two neighbours' sum to 1
    and neither's share jumps where the other's window starts (a linear ramp has a kink
    there, which the velocities, and so the motion's jerk, inherited). A handshake is
    ``overlap`` tokens, at most ``HANDSHAKE_SHARE`` of the shorter of the two chunks, so a
    short segment keeps most of its tokens to its own prompt."""
    joins = [0] + [handshake_tokens(overlap, a, b) for a, b in itertools.pairwise(chunks)]
    joins.append(0)
    spans, weights = [], []
    for k, chunk in enumerate(chunks):
        before, after = joins[k], joins[k + 1]
        first, last = chunk.start - before // 2, chunk.stop + after - after // 2
        position = torch.arange(first, last, dtype=torch.float32) + 0.5
        w = torch.ones(last - first)
        if before:
            w = torch.minimum(w, (position - first) / before)
        if after:
            w = torch.minimum(w, (last - position) / after)
        a, b = max(0, first), min(total, last)
        spans.append((a, b))
        weights.append(_smoothstep(w[a - first : b - first]).clamp(1e-3, 1.0))
    return spans, weights


def handshake_tokens(overlap: int, left: Chunk, right: Chunk) -> int:
    """Tokens two neighbouring chunks share: ``overlap``, cut to ``HANDSHAKE_SHARE`` of the
    shorter chunk (at least 2, one each side)."""
    shorter = min(left.stop - left.start, right.stop - right.start)
    return min(overlap, max(2, round(HANDSHAKE_SHARE * shorter)))


def _window_groups(
    loaded: _Loaded, spans: list[tuple[int, int]], prompts: list[str]
) -> list[tuple[list[int], Callable[[Tensor, Tensor], Tensor]]]:
    """Windows of one length batched together, each batch with its own guided velocity (and
    its own guidance state: sink-ctrl remembers the previous step per row)."""
    by_length: dict[int, list[int]] = {}
    for k, (a, b) in enumerate(spans):
        by_length.setdefault(b - a, []).append(k)
    settings, model = loaded.settings, loaded.model
    single = settings.mode == "cfg" and settings.guidance == 1.0
    groups = []
    for members in by_length.values():
        text = loaded.encoder.encode([prompts[m] for m in members]).to(loaded.device)
        null = loaded.encoder.null(1).to(loaded.device)
        guide = guidance_for(settings.mode, settings.guidance)
        velocity, _, _ = guided_velocity(model, text, null, guide, single)
        groups.append((members, velocity))
    return groups


def _segment_progress(
    progress: Progress | None, segment: int, segments: int, window: int, windows: int
) -> Progress | None:
    """A window's ``(step, total)`` as the whole timeline's: each segment an equal share of
    ``segments * PROGRESS_UNITS``, its windows equal parts of that share (so a panel can say
    which segment is being made)."""
    if progress is None:
        return None

    def report(step: int, total: int) -> None:
        within = (window + step / max(total, 1)) / windows
        progress(round((segment + within) * PROGRESS_UNITS), segments * PROGRESS_UNITS)

    return report


# ---- generate_sequence ---------------------------------------------------------------------


def generate_sequence(
    segments: Sequence[Segment | tuple[str, float]],
    *,
    seed: int = 0,
    guidance: float | None = None,
    steps: int | None = None,
    checkpoint: Any = None,
    device: str | torch.device = "auto",
    progress: Progress | None = None,
    generator: str | None = None,
    method: str | None = None,
    clean: bool | Cleanup = True,
    revision: str | None = None,
    allow_unpinned: bool = False,
    offline: bool = False,
) -> Motion:
    """One continuous clip of the segments (prompt, seconds) in order.

    Each segment lasts 1 to 60 s (to whole latent steps of 4 frames), the whole at most
    600 s. ``method``: "inpaint" or "blend" (MLA-Gen only); None: ``DEFAULT_METHOD`` (MoLingo
    always "inpaint"). ``progress(step, total)``: ``total`` is ``PROGRESS_UNITS`` per
    segment, the steps of segment ``i`` run from ``i`` to ``i + 1`` of those. The other
    arguments are ``pipeline.generate``'s. ``diagnostics["segments"]`` gives each segment's
    prompt, first frame and frame count; ``diagnostics["join_smoothing"]`` the (sigma,
    share) ``smooth_joins`` used at each join of a cleaned clip.
    """
    times: dict[str, float] = {}
    clock = time.perf_counter()
    segments = check_segments(segments)
    for i, segment in enumerate(segments, start=1):
        validate_prompt(segment.prompt, i)
    seed = _check_int("seed", seed, 0, 2**63 - 1)
    loaded = _load(
        checkpoint, device, generator, guidance, steps, revision, allow_unpinned, offline
    )
    chosen = _choose_method(method, loaded.name)
    tokens = segment_tokens(segments, loaded.ckpt.fps, loaded.down)
    times["load"] = time.perf_counter() - clock
    with torch.no_grad():
        clock = time.perf_counter()
        rng = torch.Generator(device=loaded.device).manual_seed(seed)
        make = _sequence_inpaint if chosen == "inpaint" else _sequence_blend
        latents = make(loaded, segments, tokens, rng, progress)
        times["sample"] = time.perf_counter() - clock
        clock = time.perf_counter()
        features, joints = decode_latents(loaded.ckpt, latents)
        times["decode"] = time.perf_counter() - clock
    joints, features = _to_host(joints.float(), features.float())
    cleanup = _cleanup_options(clean)
    if cleanup is not None:
        clock = time.perf_counter()
        joints, features = _clean(joints, features, cleanup, loaded.ckpt.fps)
        times["clean"] = time.perf_counter() - clock
    starts = np.cumsum([0, *tokens]) * loaded.down
    smoothing: list[list[float]] = []
    if cleanup is not None:
        clock = time.perf_counter()
        fps = loaded.ckpt.fps
        joints, features, smoothing = _smooth_joins(joints, features, starts, fps)
        times["smooth_joins"] = time.perf_counter() - clock
    table = [
        {"prompt": s.prompt, "start_frame": int(a), "frames": int(b - a),
         "requested_seconds": s.seconds}
        for s, a, b in zip(segments, starts[:-1], starts[1:], strict=True)
    ]  # fmt: skip
    prompts = [s.prompt for s in segments]
    diagnostics = {
        "generator": loaded.name,
        "timeline_method": chosen,
        "frames": int(starts[-1]),
        "seconds": float(starts[-1]) / loaded.ckpt.fps,
        "segments": table,
        "prompt_notes": loaded.encoder.unread_notes(prompts),
        "seed": seed,
        **loaded.settings.record(),
        "device": str(loaded.device),
        "cleanup": "raw" if cleanup is None else dataclasses.asdict(cleanup),
        "join_smoothing": smoothing,  # (sigma frames, share) used at each join; [0, 0]: none
        "sources": _sources(loaded),
        "timings": {k: round(v, 4) for k, v in times.items()},
    }
    return Motion(joints=joints, features=features, fps=loaded.ckpt.fps,
                  prompts=[" / ".join(prompts)], diagnostics=diagnostics)  # fmt: skip


def _smooth_joins(
    joints: np.ndarray, features: np.ndarray, starts: np.ndarray, fps: int
) -> tuple[np.ndarray, np.ndarray, list[list[float]]]:
    """The cleaned clip (1, T, 22, 3) with each join smoothed as ``smooth_joins`` does,
    lifted wherever that took a joint under the floor, and its features taken again. The
    smoothing keeps every bone's length, so none of the clean-up is repeated (its options
    do not apply: a rigid pass at the clip's own lengths only carries the features step). A
    clip that needed no smoothing is returned as it was."""
    smoothed, smoothing = smooth_joins(joints[0].astype(np.float64), starts, fps)
    if not any(share for _, share in smoothing):
        return joints, features, smoothing
    smoothed = lift_above_floor(smoothed[None])
    joints, features = _clean(smoothed, features, _FEATURES_ONLY, fps)
    return joints, features, smoothing


def peak_motion(joints: np.ndarray, frames: np.ndarray, fps: float = FPS) -> tuple[float, float]:
    """(peak acceleration m/s^2, peak jerk m/s^3) over the joints at ``frames`` of a clip
    (T, 22, 3): the largest second and third differences whose stencils centre there."""
    acc = np.linalg.norm(np.diff(joints, n=2, axis=0), axis=-1).max(-1) * fps**2  # (T-2,)
    jerk = np.linalg.norm(np.diff(joints, n=3, axis=0), axis=-1).max(-1) * fps**3  # (T-3,)
    frames = np.asarray(frames)
    a = acc[np.clip(frames - 1, 0, len(acc) - 1)]
    j = jerk[np.clip(frames - 2, 0, len(jerk) - 1)]
    return float(a.max()), float(j.max())


def window_peaks(joints: np.ndarray, centre: int, half: int, fps: float = FPS) -> np.ndarray:
    """``peak_motion`` over the frames within ``half`` of ``centre`` (inside the clip)."""
    frames = np.arange(max(2, centre - half), min(len(joints) - 2, centre + half))
    return np.array(peak_motion(joints, frames, fps))


def smooth_joins(
    joints: np.ndarray, starts: Sequence[int], fps: float
) -> tuple[np.ndarray, list[list[float]]]:
    """Joints (T, 22, 3) with each join between segments no rougher than the segments.

    ``starts``: each segment's first frame, then the clip's length. A join's roughness is
    the peak joint acceleration and jerk within ``JOIN_SECONDS`` of it; its reference, the
    mean of the same peaks at the middles of the two segments it joins. Where a join is
    rougher, the clip around it is blended with a Gaussian-smoothed copy of itself, by the
    gentlest of ``JOIN_STEPS`` that brings both peaks down to the reference (else the
    strongest): the full share within ``JOIN_SECONDS`` of the join, fading out with a
    smoothstep over as much again. Frames further away are returned exactly. The middle of
    a segment under 2 s lies inside its joins' stretches, so smoothing one join can lower
    the reference of the next: the joins are checked again against the smoothed clip, up
    to ``JOIN_ROUNDS`` times. The velocity
    blend leaves joins close to this already; the clean-up's pins and grounding, which snap
    where contacts change, are what most often push a join over (docs/timeline.md).
    Returns the joints and the last (sigma, share) used at each join ([0, 0]: none)."""
    out = np.asarray(joints, dtype=np.float64).copy()
    half = max(2, round(JOIN_SECONDS * fps))
    smoothing = [[0.0, 0.0] for _ in range(len(starts) - 2)]
    for _ in range(JOIN_ROUNDS):
        changed = False
        for k in range(1, len(starts) - 1):
            middles = [(starts[k - 1] + starts[k]) // 2, (starts[k] + starts[k + 1]) // 2]
            reference = np.mean([window_peaks(out, int(m), half, fps) for m in middles], axis=0)
            out, used = _smooth_join(out, int(starts[k]), half, fps, reference)
            if used[1] > 0:
                smoothing[k - 1], changed = used, True
        if not changed:
            break
    return out, smoothing


def _smooth_join(
    joints: np.ndarray, join: int, half: int, fps: float, reference: np.ndarray
) -> tuple[np.ndarray, list[float]]:
    """``joints`` smoothed at one join by the gentlest of ``JOIN_STEPS`` that meets
    ``reference`` (else the strongest), and the (sigma, share) used ([0, 0]: none; also
    when ``JOIN_STEPS`` is empty, which turns the smoothing off for measurements)."""
    if not JOIN_STEPS or (window_peaks(joints, join, half, fps) <= reference).all():
        return joints, [0.0, 0.0]
    for sigma, share in JOIN_STEPS:
        trial = _smoothed_at(joints, join, half, sigma, share)
        if (window_peaks(trial, join, half, fps) <= reference).all():
            break
    return trial, [sigma, share]


def _smoothed_at(
    joints: np.ndarray, join: int, half: int, sigma: float, share: float
) -> np.ndarray:
    """``joints`` eased toward a Gaussian-smoothed (``sigma`` frames) copy of their motion:
    ``share`` of the copy within ``half`` frames of the join (between frames ``join - 1``
    and ``join``), easing to none at ``2 * half``; only frames there are touched.

    The root's path and every bone's direction are smoothed, then each bone takes its own
    length again and the body is rebuilt from the root out, so what is checked is the body
    that comes out: smoothed joint positions shorten a fast-swinging limb (a forearm to a
    third of its length at sigma 3), a shortened limb moves less, and a join checked that
    way passed and then measured rougher once the bones were made rigid again."""
    margin = 2 * half + math.ceil(4 * sigma) + 1
    a, b = max(0, join - margin), min(len(joints), join + margin)
    piece = joints[a:b]
    parents = list(PARENTS[1:])
    bones = piece[:, 1:] - piece[:, parents]  # (n, 21, 3)
    lengths = np.linalg.norm(bones, axis=-1, keepdims=True)
    distance = np.abs(np.arange(a, b) + 0.5 - join)
    weight = share * _smoothstep(np.clip(2.0 - distance / half, 0.0, 1.0))
    w = weight[:, None, None]
    root = piece[:, 0] + weight[:, None] * (_gauss(piece[:, 0], sigma) - piece[:, 0])
    eased = bones + w * (_gauss(bones, sigma) - bones)
    norm = np.linalg.norm(eased, axis=-1, keepdims=True)
    eased = np.where(norm > 1e-9, eased / np.maximum(norm, 1e-12) * lengths, bones)
    rebuilt = np.empty_like(piece)
    rebuilt[:, 0] = root
    for j in range(1, NUM_JOINTS):  # parents precede children
        rebuilt[:, j] = rebuilt[:, PARENTS[j]] + eased[:, j - 1]
    out = joints.copy()
    touched = weight > 0
    out[a:b][touched] = rebuilt[touched]
    return out


def _gauss(x: np.ndarray, sigma: float) -> np.ndarray:
    return gaussian_filter1d(x, sigma, axis=0, mode="nearest")


def _choose_method(method: str | None, generator: str) -> str:
    if method is None:
        return DEFAULT_METHOD if generator == "mlagen" else "inpaint"
    if method not in METHODS:
        raise MotionError(f"unknown timeline method {method!r}; use one of {METHODS}")
    return method


def _clean(
    joints: np.ndarray, features: np.ndarray, cleanup: Cleanup, fps: int
) -> tuple[np.ndarray, np.ndarray]:
    """``generate``'s clean-up: features of the cleaned body, or joints alone (272-dim)."""
    if features.shape[-1] != FOOT_CONTACT.stop:  # a 272 release: no contact channel
        return clean_joints(joints, None, cleanup, fps=fps).astype(np.float32), features
    return clean_motion(joints, features, cleanup, fps)


def _sources(loaded: _Loaded) -> dict[str, Any]:
    ckpt, encoder = loaded.ckpt, loaded.encoder
    return {
        "checkpoint": None if ckpt.source is None else ckpt.source.record(),
        "text_encoder": None if encoder.source is None else encoder.source.record(),
    }


# ---- inbetween -----------------------------------------------------------------------------


def inbetween(
    motion: Motion | np.ndarray,
    start_frame: int,
    end_frame: int,
    prompt: str,
    *,
    seed: int = 0,
    guidance: float | None = None,
    steps: int | None = None,
    checkpoint: Any = None,
    device: str | torch.device = "auto",
    progress: Progress | None = None,
    generator: str | None = None,
    clean: bool | Cleanup = True,
    revision: str | None = None,
    allow_unpinned: bool = False,
    offline: bool = False,
) -> Motion:
    """The clip with frames ``[start_frame, end_frame)`` regenerated under ``prompt``.

    motion: a ``Motion`` of one clip, or joints (T, 22, 3) in metres, Y up, at the
    checkpoint's frame rate. Every frame outside the range is returned exactly as given;
    the range joins the frames on both sides in pose, root position and heading (see the
    module docstring). The range must lie inside the clip, leave at least one frame, and
    fit one window with a second of context (at most 8.8 s at 20 fps). Other arguments as
    ``pipeline.generate``; ``clean`` cleans the regenerated frames only.

    At each end that has kept frames, the first (last) ``CROSSFADE_FRAMES`` frames of the
    range ease from the clip's own motion into the new one (a quarter of a short range).
    """
    times: dict[str, float] = {}
    clock = time.perf_counter()
    original, fps = _clip_of(motion)
    prompt = validate_prompt(prompt)
    seed = _check_int("seed", seed, 0, 2**63 - 1)
    loaded = _load(
        checkpoint, device, generator, guidance, steps, revision, allow_unpinned, offline
    )
    if fps != loaded.ckpt.fps:
        raise MotionError(
            f"the clip is at {fps} fps; this checkpoint works at {loaded.ckpt.fps} fps"
        )
    start, end = _check_range(start_frame, end_frame, len(original), loaded)
    times["load"] = time.perf_counter() - clock
    down = loaded.down
    with torch.no_grad():
        clock = time.perf_counter()
        latents = _encode_clip(loaded, original)
        first, stop, lo, hi = _inbetween_window(start, end, latents.shape[1], down, loaded.window)
        known = torch.ones(1, stop - first, dtype=torch.bool, device=loaded.device)
        known[:, lo - first : hi - first] = False
        rng = torch.Generator(device=loaded.device).manual_seed(seed)
        window = _fill_window(loaded, prompt, latents[:, first:stop], known, rng, progress)
        latents = latents.clone()
        latents[:, lo:hi] = window[:, lo - first : hi - first]
        times["sample"] = time.perf_counter() - clock
        clock = time.perf_counter()
        features, joints = decode_latents(loaded.ckpt, latents[:, :stop])
        times["decode"] = time.perf_counter() - clock
    joints, features = _to_host(joints[0].double(), features[0].double())
    made = joints[first * down : stop * down]  # the window's frames
    cleanup = _cleanup_options(clean)
    if cleanup is not None:
        contacts = features[first * down : stop * down, FOOT_CONTACT]
        if features.shape[-1] != FOOT_CONTACT.stop:
            contacts = None
        made = clean_joints(made, contacts, cleanup, fps=fps)
    generated = np.zeros_like(original)
    span = slice(first * down, min(stop * down, len(original)))
    generated[span] = made[: span.stop - span.start]
    result = join_range(original, generated, start, end)
    extended = np.concatenate([result, 2 * result[-1:] - result[-2:-1]])
    diagnostics = {
        "generator": loaded.name,
        "range": [start, end],
        "window_frames": [span.start, span.stop],
        "seed": seed,
        **loaded.settings.record(),
        "device": str(loaded.device),
        "cleanup": "raw" if cleanup is None else dataclasses.asdict(cleanup),
        "prompt_notes": loaded.encoder.unread_notes([prompt]),
        "sources": _sources(loaded),
        "timings": {k: round(v, 4) for k, v in times.items()},
    }
    return Motion(
        joints=result[None].astype(np.float32),
        features=joints_to_features(extended)[None].astype(np.float32),
        fps=fps, prompts=[prompt], diagnostics=diagnostics,
    )  # fmt: skip


def _clip_of(motion: Motion | np.ndarray) -> tuple[np.ndarray, int]:
    """(joints (T, 22, 3) float64, fps) of the clip to edit."""
    if isinstance(motion, Motion):
        if len(motion) != 1:
            raise MotionError(f"in-between edits one clip; this motion holds {len(motion)}")
        joints, fps = motion.joints[0], motion.fps
    else:
        joints, fps = motion, 20
    arr = np.asarray(joints, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1:] != (NUM_JOINTS, 3) or len(arr) < 2:
        raise MotionError(f"in-between needs joints (T, {NUM_JOINTS}, 3), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise MotionError("the clip holds NaN or infinite joint positions")
    return arr, int(fps)


def max_range_frames(window: int, down: int, fps: int) -> int:
    """The longest range ``inbetween`` regenerates: a window less a second of context."""
    return (window - math.ceil(fps / down)) * down


def _check_range(start: Any, end: Any, frames: int, loaded: _Loaded) -> tuple[int, int]:
    start = _check_int("start frame", start, 0, frames - 1)
    end = _check_int("end frame", end, 1, frames)
    if end <= start:
        raise MotionError(f"the range {start}-{end} is empty: the end must come after the start")
    if start == 0 and end == frames:
        raise MotionError(
            f"the range {start}-{end} is the whole clip: generate a new one instead (in-between "
            "keeps the frames around the range)"
        )
    longest = max_range_frames(loaded.window, loaded.down, loaded.ckpt.fps)
    if end - start > longest:
        fps = loaded.ckpt.fps
        raise MotionError(
            f"the range {start}-{end} is {(end - start) / fps:.2f} s; in-between regenerates "
            f"at most {longest / fps:.1f} s ({longest} frames) at a time"
        )
    return start, end


def _encode_clip(loaded: _Loaded, joints: np.ndarray) -> Tensor:
    """The autoencoder's latents (1, ceil(T / 4), C) of a clip (its mean, normalised)."""
    extended = np.concatenate([joints, 2 * joints[-1:] - joints[-2:-1]])
    features = joints_to_features(extended)  # (T, 263)
    pad = -len(features) % loaded.down
    features = np.concatenate([features, np.repeat(features[-1:], pad, axis=0)])
    ckpt = loaded.ckpt
    autoencoder = ckpt.models["autoencoder"].to(loaded.device)
    if features.shape[-1] != autoencoder.config.feature_dim:
        raise MotionError("in-between needs a checkpoint of the 263-dim features")
    normalised = (features - ckpt.mean) / ckpt.std
    x = torch.as_tensor(normalised[None], dtype=torch.float32, device=loaded.device)
    return autoencoder.encode(x).mean


def _inbetween_window(
    start: int, end: int, tokens: int, down: int, window: int
) -> tuple[int, int, int, int]:
    """(first, stop) tokens of the window and (lo, hi) tokens to regenerate: the range's
    tokens with as much context on either side as the window holds, split evenly."""
    lo, hi = start // down, -(-end // down)
    room = window - (hi - lo)
    first = max(0, lo - room // 2)
    stop = min(tokens, hi + room - (lo - first))
    first = max(0, stop - window)
    return first, stop, lo, hi


def join_range(original: np.ndarray, generated: np.ndarray, start: int, end: int) -> np.ndarray:
    """``original`` (T, 22, 3) with frames ``[start, end)`` taken from ``generated``
    (same shape; valid over the range and its two neighbours), joined at both ends.

    The generated frames are turned about +Y and shifted so the frame before the range
    (else the one after it) matches the original's root and heading; then the differences
    left at the frames just outside the range (body pose in its own heading frame, root
    position, heading) are added in with a smoothstep weight, the start's fading out and
    the end's fading in across the range. Bones keep the original's lengths. Frames
    outside the range are the original's, bit for bit.
    """
    before, after = start - 1, end  # the kept neighbours (may be outside the clip)
    anchor = before if before >= 0 else after
    local_o, place_o, angle_o = _decompose(original)
    local_g, place_g, angle_g = _decompose(generated, anchor, start, end)
    turn = _wrap(angle_o[anchor] - angle_g[anchor])
    local_g, place_g, angle_g = _placed(local_g, place_g, angle_g, turn, place_o[anchor],
                                        place_g[anchor])  # fmt: skip
    frames = np.arange(start, end)
    s = _smoothstep(np.clip((frames - before) / (after - before), 0.0, 1.0))
    fade = _crossfade(frames, start, end, len(original))
    parts = []
    for o, g in ((local_o, local_g), (place_o, place_g), (angle_o, angle_g)):
        d0 = o[before] - g[before] if before >= 0 else 0.0
        d1 = o[after] - g[after] if after < len(original) else 0.0
        if o.ndim == 1:  # angles: the shorter way round
            d0, d1 = _wrap(np.asarray(d0)), _wrap(np.asarray(d1))
        shape = (-1,) + (1,) * (o.ndim - 1)
        moved = g[frames] + (1 - s).reshape(shape) * d0 + s.reshape(shape) * d1
        parts.append(o[frames] + fade.reshape(shape) * (moved - o[frames]))
    local, place, angle = parts
    joints = _compose(local, place, angle)
    lengths = bone_lengths(original[anchor])[None]  # (1, 22)
    out = original.copy()
    out[start:end] = rigid_skeleton(joints[None], lengths)[0]
    return out


def _crossfade(frames: np.ndarray, start: int, end: int, length: int) -> np.ndarray:
    """Weight of the new motion at ``frames`` of the range: eased in from 0 over the first
    ``CROSSFADE_FRAMES`` (at most a quarter of the range) and out over the last, so each
    join starts on the clip's own pose and velocity; 1 at an end that is the clip's end."""
    width = max(1, min(CROSSFADE_FRAMES, (end - start) // 4))
    into = (frames - (start - 1)) / (width + 1) if start > 0 else np.ones(len(frames))
    out_of = (end - frames) / (width + 1) if end < length else np.ones(len(frames))
    return _smoothstep(np.clip(np.minimum(into, out_of), 0.0, 1.0))


def _decompose(joints: np.ndarray, *keep: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(local pose (T, 22, 3), root over the floor (T, 3), heading (T,) unwrapped)."""
    local, place, turn = body_frames(joints[_rows(joints, keep)] if keep else joints)
    angle = np.unwrap(np.arctan2(turn[:, 0, 2], turn[:, 0, 0]))
    if not keep:
        return local, place, angle
    rows = _rows(joints, keep)
    full = [np.zeros((len(joints),) + a.shape[1:]) for a in (local, place, angle)]
    for f, a in zip(full, (local, place, angle), strict=True):
        f[rows] = a
    return full[0], full[1], full[2]


def _rows(joints: np.ndarray, keep: tuple[int, ...]) -> np.ndarray:
    """Frames of ``generated`` that ``join_range`` reads: the range and its neighbours."""
    anchor, start, end = keep
    low, high = max(0, start - 1), min(len(joints), end + 1)
    return np.unique(np.r_[np.arange(low, high), anchor])


def _placed(local, place, angle, turn: float, target: np.ndarray, source: np.ndarray):
    """Turn the clip by ``turn`` about +Y around ``source`` and move ``source`` to ``target``."""
    c, s = math.cos(turn), math.sin(turn)
    rot = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    moved = (place - source) @ rot.T + target
    return local, moved, angle + turn


def _compose(local: np.ndarray, place: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Joints (T, 22, 3) from ``_decompose``'s parts (``clip_edit.body_frames`` inverted)."""
    c, s = np.cos(angle), np.sin(angle)
    turn = np.zeros((len(angle), 3, 3))
    turn[:, 0, 0], turn[:, 0, 2], turn[:, 1, 1], turn[:, 2, 0], turn[:, 2, 2] = c, s, 1, -s, c
    return np.einsum("tij,tkj->tki", turn, local) + place[:, None]


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2 * np.pi) - np.pi
