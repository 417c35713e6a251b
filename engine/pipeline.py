"""Text to motion in one call: ``generate(prompts, seconds=..., seed=...) -> Motion``.

The pipeline owns what sits around the sampling loops: checking the request, loading (and
keeping) the checkpoint and its text encoder, choosing lengths that the autoencoder can
decode, seeding, and turning latents back into features and joint positions. The loops
themselves live in ``engine.sampling`` (``sample_mar`` for MoLingo, ``sample_flow`` for
MLA-Gen) and know nothing of any of this.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .edit.cleanup import Cleanup, clean_joints, clean_motion
from .errors import MotionError
from .generators import (
    DEFAULT_SECONDS,
    GENERATORS,
    MAX_FRAMES,
    MAX_VARIATIONS,
    MLAGenSettings,
    MoLingoSettings,
    SamplingSettings,
    sampling_settings,
)
from .motion import Motion
from .motion.features import recover_from_ric
from .motion.representation_272 import FEATURE_DIM as FEATURE_DIM_272
from .motion.representation_272 import joints_from_272
from .sampling.graphs import FastOptions
from .store.checkpoint import Checkpoint, load_checkpoint
from .store.knowledge import match_prompts
from .text_encoder import TextEncoder, fetches_unpinned, load_text_encoder, validate_prompt

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "default"
# Lengths are compared in frames, with this slack: a length in seconds often arrives as a
# 32-bit float (a Blender FloatProperty stores 9.8 as 9.80000019, i.e. 196.0000038 frames at
# 20 fps). float32's error is under 1e-4 frames for any clip up to 1000 s at 100 fps; 1e-3
# frames (50 microseconds at 20 fps) is far below anything a user means by a length.
FRAME_TOLERANCE = 1e-3

# How sampling runs on CUDA: static shapes + CUDA graphs + TF32 for all but thin products,
# MLA-Gen as a bfloat16 copy on GPUs with bfloat16 tensor cores, by default (None reads
# KINETEXT_FAST_SAMPLING; "0" there runs the reference loops, which the CPU always runs).
# E.g. FAST_SAMPLING = FastOptions(precision="fp32") for IEEE products and float32 weights.
FAST_SAMPLING: FastOptions | None = None

Progress = Callable[[int, int], None]


def generate(
    prompts: str | Sequence[str],
    *,
    seconds: float | None = None,
    frames: int | None = None,
    seed: int = 0,
    guidance: float | None = None,
    steps: int | None = None,
    variations: int = 1,
    checkpoint: str | Path | Checkpoint | None = None,
    device: str | torch.device = "auto",
    progress: Progress | None = None,
    generator: str | None = None,
    fast: FastOptions | None = None,
    clean: bool | Cleanup = True,
    revision: str | None = None,
    allow_unpinned: bool = False,
    offline: bool = False,
) -> Motion:
    """Generate ``variations`` clips per prompt, all of one length.

    Args:
        prompts: one prompt or a list of them.
        seconds / frames: the clip length (give one; default 4 s), from 1 s to the model's
            maximum (9.8 s), rounded to whole latent steps (4 frames); the rounding is
            reported in ``diagnostics["length_note"]``.
        seed: fixes everything random: the same seed and inputs give the same motion.
        guidance, steps: guidance scale and ODE steps (None: the checkpoint's defaults).
        variations: clips per prompt (different noise, adjacent in the result).
        checkpoint: a folder, a Hub id ``owner/name``, a loaded ``Checkpoint``, or None for
            the one embedded in the package.
        device: "auto" (CUDA, then Apple MPS, then CPU) or a torch device.
        progress: ``callable(step, total)`` after each sampling step (raise to cancel).
        generator: "molingo" or "mlagen" when the checkpoint holds both (None: its default).
        fast: how to sample on CUDA (None: ``FAST_SAMPLING``), e.g. ``FastOptions(
            compile=True)`` for many large batches in a row.
        clean: True (default) turns the network's joints into a body (``engine.edit.cleanup``:
            rigid canonical bones, feet on the floor, planted feet held, light smoothing) and
            gives the features of those joints; a ``Cleanup`` chooses the steps; False
            returns the network's raw output.
        revision: the Hub revision (branch, tag or commit) of a Hub ``checkpoint``.
        allow_unpinned: follow a Hub text encoder named inside the checkpoint without a
            revision (its moving default branch); refused otherwise.
        offline: never download: a Hub ``checkpoint`` must be in the local Hub cache
            (else ``NotDownloaded``), e.g. Blender with online access off.

    ``diagnostics["sources"]`` records where the checkpoint and its text encoder came from
    (a path, or a Hub repo with the commit it resolved to); ``diagnostics["knowledge"]``,
    per prompt, its nearest training captions, similarity and whether it is ``known``
    (``engine.store.knowledge``; None for a checkpoint that does not describe its training data).
    """
    times: dict[str, float] = {}
    clock = time.perf_counter()
    prompts = _check_prompts(prompts)
    variations = _check_int("variations", variations, 1, MAX_VARIATIONS)
    seed = _check_int("seed", seed, 0, 2**63 - 1)
    torch_device = resolve_device(device)
    if isinstance(checkpoint, Checkpoint):
        ckpt = checkpoint
    else:
        ckpt = cached_checkpoint(checkpoint, torch_device, revision, offline)
    name = choose_generator(ckpt, generator)
    settings = _sampling_settings(ckpt, name, guidance, steps)
    down = ckpt.models["autoencoder"].downsample
    length = plan_length(seconds, frames, ckpt.fps, down, _max_frames(ckpt, name, down))
    check_pinned(ckpt, allow_unpinned)
    encoder = load_text_encoder(ckpt.text_encoder, torch_device)
    _check_text_dim(ckpt, name, encoder)
    times["load"] = time.perf_counter() - clock

    # no_grad, not inference_mode: the text encoder caches what it computes here, and a
    # training script that previews samples must still be able to backpropagate through it.
    with torch.no_grad():
        clock = time.perf_counter()
        text = encoder.encode(prompts).repeat_interleave(variations)
        null = encoder.null(1)
        times["encode"] = time.perf_counter() - clock
        clock = time.perf_counter()
        rng = torch.Generator(device=torch_device).manual_seed(seed)
        model = ckpt.models[name].to(torch_device)
        latents, sink = _SAMPLERS[settings.generator](
            model, text, null, length.tokens, settings, rng, progress,
            FAST_SAMPLING if fast is None else fast,
        )  # fmt: skip
        times["sample"] = time.perf_counter() - clock
        clock = time.perf_counter()
        features, joints = decode_latents(ckpt, latents)
        times["decode"] = time.perf_counter() - clock

    joints, features = _to_host(joints.float(), features.float())
    cleanup = _cleanup_options(clean)
    if cleanup is not None:
        clock = time.perf_counter()
        if features.shape[-1] == FEATURE_DIM_272:  # no contact channel: features kept as is
            joints = clean_joints(joints, None, cleanup, fps=ckpt.fps).astype(np.float32)
        else:
            joints, features = clean_motion(joints, features, cleanup, ckpt.fps)
        times["clean"] = time.perf_counter() - clock
    diagnostics = {
        "generator": name,
        "frames": length.frames,
        "seconds": length.frames / ckpt.fps,
        "requested_frames": length.requested,
        "length_note": length.note,
        "prompt_notes": encoder.unread_notes(prompts),  # words past the encoder's limit
        # per prompt: nearest training captions and similarity (None: the checkpoint does
        # not say what it was trained on)
        "knowledge": match_prompts(ckpt.knowledge, encoder, prompts),
        "seed": seed,
        **settings.record(),
        "sink_ratio": sink,
        "device": str(torch_device),
        "cleanup": "raw" if cleanup is None else dataclasses.asdict(cleanup),
        "sources": {
            "checkpoint": None if ckpt.source is None else ckpt.source.record(),
            "text_encoder": None if encoder.source is None else encoder.source.record(),
        },
        "timings": {k: round(v, 4) for k, v in times.items()},
    }
    return Motion(
        joints=joints,
        features=features,
        fps=ckpt.fps,
        prompts=[p for p in prompts for _ in range(variations)],
        diagnostics=diagnostics,
    )


def _cleanup_options(clean: bool | Cleanup) -> Cleanup | None:
    """The ``Cleanup`` a call asked for (None: the raw output)."""
    if clean is False:
        return None
    if clean is True:
        return Cleanup()
    if not isinstance(clean, Cleanup):
        raise MotionError(f"clean must be True, False or a Cleanup, got {clean!r}")
    return clean


def _to_host(*tensors: torch.Tensor) -> list[np.ndarray]:
    """Float32 tensors -> numpy arrays, from a GPU through page-locked memory: a pageable copy
    of a batch of 256 clips took 27.5 ms of a 142 ms call on an H200; pinned copies run at
    full bus speed and overlap, with one synchronisation for all of them. Each array keeps
    its pinned buffer alive, so the caching host allocator never hands it out again while a
    caller still holds the result."""
    if not tensors or tensors[0].device.type != "cuda":
        return [t.detach().cpu().numpy() for t in tensors]
    out = []
    for t in tensors:
        host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
        host.copy_(t.detach(), non_blocking=True)
        out.append(host)
    torch.cuda.current_stream(tensors[0].device).synchronize()
    return [h.numpy() for h in out]


# ---- the request ---------------------------------------------------------------------------


def _check_prompts(prompts: str | Sequence[str]) -> list[str]:
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, Sequence) or len(prompts) == 0:
        raise MotionError("no prompt given: pass a sentence such as 'a person walks forward'")
    return [validate_prompt(p, i) for i, p in enumerate(prompts, start=1)]


def _check_int(label: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise MotionError(f"{label} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise MotionError(f"{label} must be between {low} and {high}, got {value}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class Length:
    """A planned clip length: ``tokens`` latent steps of ``frames`` frames in all."""

    tokens: int
    frames: int
    requested: float  # frames asked for (seconds * fps), before rounding
    note: str | None  # what the rounding changed; None when the request was met exactly


def plan_length(
    seconds: float | None, frames: int | None, fps: int, down: int, max_frames: int
) -> Length:
    """Turn a requested length into whole latent steps of ``down`` frames.

    At least one second (rounded up to a whole step), at most ``max_frames`` (rounded down);
    anything outside that range, or not a number, raises ``MotionError`` saying the range.
    Seconds within ``FRAME_TOLERANCE`` of a whole frame count as that frame, so a float32
    9.8 s is 196 frames at 20 fps, not 196.0000038.
    """
    if seconds is not None and frames is not None:
        raise MotionError("give the length as seconds or as frames, not both")
    low, high = fps, max_frames
    span = f"{low / fps:g} to {high / fps:g} seconds ({low} to {high} frames at {fps} fps)"
    if frames is not None:
        requested = float(_check_int("frames", frames, low, high))
    else:
        seconds = DEFAULT_SECONDS if seconds is None else seconds
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float, np.number)):
            raise MotionError(f"seconds must be a number, got {seconds!r}")
        requested = float(seconds) * fps
        if not math.isfinite(requested):
            raise MotionError(f"length {seconds} s is outside {span}")
        if abs(requested - round(requested)) <= FRAME_TOLERANCE:
            requested = float(round(requested))  # a whole frame, up to float32 rounding
        if not low <= requested <= high:
            raise MotionError(f"length {seconds:g} s is outside {span}")
    tokens = math.floor(requested / down + 0.5)
    tokens = min(max(tokens, math.ceil(low / down)), high // down)
    note = None
    if abs(tokens * down - requested) > FRAME_TOLERANCE:
        note = (
            f"asked for {requested / fps:.2f} s ({requested:g} frames); made "
            f"{tokens * down / fps:.2f} s ({tokens * down} frames): lengths are whole "
            f"latent steps of {down} frames"
        )
    return Length(tokens, tokens * down, requested, note)


def resolve_device(device: str | torch.device) -> torch.device:
    """ "auto" -> CUDA, else Apple MPS, else CPU; a named device must exist."""
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise MotionError(
            f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'mps'"
        ) from error
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise MotionError("device 'cuda' is not available here: use 'auto' or 'cpu'")
    if chosen.type == "mps" and not torch.backends.mps.is_available():
        raise MotionError("device 'mps' is not available here: use 'auto' or 'cpu'")
    return chosen


# ---- the checkpoint ------------------------------------------------------------------------


_LOADED: dict[tuple[str, str], tuple[int, Checkpoint]] = {}
_LOADED_LOCK = threading.Lock()


def cached_checkpoint(
    source: str | Path | None,
    device: torch.device,
    revision: str | None = None,
    offline: bool = False,
) -> Checkpoint:
    """The checkpoint a folder, a Hub id at ``revision`` (from the local cache only when
    ``offline``) or None (the embedded one) names, loaded once per (source, revision,
    device) and kept: the one place checkpoints are resolved and cached for generation
    (the CLI and the add-on both come through here). A local folder is reloaded when it
    was re-saved."""
    if source is None:
        if not (DEFAULT_CHECKPOINT / "config.json").is_file():
            raise MotionError(
                "no trained checkpoint ships with this kinetext yet: pass one with "
                "--checkpoint PATH_OR_HUB_ID (a folder written by kinetext-train, or a "
                "Hugging Face id 'owner/name'); in Python, generate(..., checkpoint=...)"
            )
        source = DEFAULT_CHECKPOINT
    config = Path(source).expanduser() / "config.json"
    stamp = config.stat().st_mtime_ns if config.is_file() else 0
    key = (str(source), revision, str(device))
    with _LOADED_LOCK:
        hit = _LOADED.get(key)
        if hit is None or hit[0] != stamp:
            _LOADED.clear()  # one checkpoint at a time: they can be large
            loaded = load_checkpoint(source, revision, device=device, offline=offline)
            _LOADED[key] = (stamp, loaded)
        return _LOADED[key][1]


def check_pinned(ckpt: Checkpoint, allow_unpinned: bool = False) -> None:
    """Refuse to follow a Hub repo named inside a checkpoint without a revision.

    A checkpoint's ``text_encoder.name`` may name a Hub repo; fetched at its default branch,
    what runs would change whenever that repo's owner pushes, and a downloaded checkpoint
    could point at any repo. The checkpoint must pin it (``text_encoder.revision``) unless
    the caller consents (``allow_unpinned``, the CLI's ``--allow-unpinned``).
    """
    if allow_unpinned or not fetches_unpinned(ckpt.text_encoder):
        return
    raise MotionError(
        f"{ckpt.path}: its text encoder {ckpt.text_encoder.name!r} is a Hub repo named without "
        "a revision; it is not fetched at its moving default branch: set text_encoder.revision "
        "in config.json to a commit, or pass --allow-unpinned (allow_unpinned=True) to accept "
        "whatever that repo holds now"
    )


def choose_generator(ckpt: Checkpoint, wanted: str | None) -> str:
    """The generator ``generate`` runs: ``wanted``, else the checkpoint's default."""
    present = [g for g in GENERATORS if g in ckpt.models]
    if "autoencoder" not in ckpt.models or not present:
        raise MotionError(
            f"{ckpt.path}: a generation checkpoint needs an 'autoencoder' and a 'molingo' or "
            f"'mlagen' model; it has {sorted(ckpt.models)}"
        )
    if wanted is None:
        wanted = ckpt.metadata.get("generator", present[0])
    if wanted not in present:
        raise MotionError(f"{ckpt.path}: no generator {wanted!r}; it has {present}")
    return wanted


def _sampling_settings(
    ckpt: Checkpoint, name: str, guidance: float | None, steps: int | None
) -> SamplingSettings:
    # engine defaults < the checkpoint's per-generator defaults (a checkpoint holding both
    # generators tunes each apart) < its flat "sampling" (one generator, or an evaluation's
    # override) < this call's arguments
    per_generator = ckpt.metadata.get("sampling_defaults", {}).get(name, {})
    return sampling_settings(
        name, per_generator, ckpt.metadata.get("sampling", {}), guidance=guidance, steps=steps,
        where=f"{ckpt.path}: sampling settings of {name}",
    )  # fmt: skip


def _max_frames(ckpt: Checkpoint, name: str, down: int) -> int:
    limit = int(ckpt.metadata.get("max_frames", MAX_FRAMES))
    max_tokens = getattr(ckpt.configs[name], "max_tokens", None)
    if max_tokens is not None:  # a positional table (MoLingo's) caps the token count
        limit = min(limit, max_tokens * down)
    return limit


def _check_text_dim(ckpt: Checkpoint, name: str, encoder: TextEncoder) -> None:
    expected = ckpt.configs[name].text_dim
    if encoder.dim != expected:
        raise MotionError(
            f"{ckpt.path}: {name} expects {expected}-dim text features but its text encoder "
            f"{ckpt.text_encoder.name!r} gives {encoder.dim}"
        )


def decode_latents(ckpt: Checkpoint, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents (N, tokens, C) -> denormalised features (N, F, 263) and joints (N, F, 22, 3)."""
    autoencoder = ckpt.models["autoencoder"].to(latents.device)
    normalised = autoencoder.decode(latents)  # (N, F, 263)
    mean = torch.as_tensor(ckpt.mean, device=latents.device)
    std = torch.as_tensor(ckpt.std, device=latents.device)
    features = normalised.float() * std + mean  # (N, F, 263)
    if features.shape[-1] == FEATURE_DIM_272:  # a converted MoLingo 272 release
        return features, joints_from_272(features)
    return features, recover_from_ric(features)


# ---- sampling ------------------------------------------------------------------------------


def _sample_molingo(
    model: torch.nn.Module,
    text: Any,
    null: Any,
    tokens: int,
    settings: MoLingoSettings,
    rng: torch.Generator,
    progress: Progress | None,
    fast: FastOptions | None,
) -> tuple[torch.Tensor, None]:
    """Latents (N, tokens, C) from MoLingo (no SinkRatio)."""
    from .sampling.mar import sample_mar

    guided = settings.guidance != 1.0
    latents = sample_mar(
        model, text, null if guided else None, tokens, ar_steps=settings.ar_steps,
        flow_steps=settings.steps, guidance=settings.guidance, method=settings.method,
        generator=rng, progress=progress, fast=fast,
    )  # fmt: skip
    return latents, None


def _sample_mlagen(
    model: torch.nn.Module,
    text: Any,
    null: Any,
    tokens: int,
    settings: MLAGenSettings,
    rng: torch.Generator,
    progress: Progress | None,
    fast: FastOptions | None,
) -> tuple[torch.Tensor, list[float]]:
    """Latents (N, tokens, C) from MLA-Gen, and its SinkRatio per clip."""
    from .sampling.flow import sample_flow

    result = sample_flow(
        model, text, null, tokens, steps=settings.steps, guidance=settings.guidance,
        mode=settings.mode, method=settings.method, generator=rng, progress=progress, fast=fast,
    )  # fmt: skip
    # one device-to-host copy for the whole batch (a float() per clip syncs once per clip)
    return result.latents, [round(r, 4) for r in result.sink_ratio.tolist()]


# The sampling loop of each generator (``generators.GENERATORS``), by name.
_SAMPLERS: dict[str, Callable[..., tuple[torch.Tensor, list[float] | None]]] = {
    MoLingoSettings.generator: _sample_molingo,
    MLAGenSettings.generator: _sample_mlagen,
}
