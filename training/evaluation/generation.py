"""Generation for the evaluation protocol: every replication's clips in few, large calls.

Why: on a GPU a ``generate`` call of 13 prompts costs about as much as one of 256 (kernel
launches, not arithmetic, bound it), and one replication asks for ~40 clip lengths. So
``run.py`` first draws every replication's items, then this module generates all clips of
all replications length by length, ``prompts_per_call`` at a time, and embeds each call's
clips as soon as it returns: only their embeddings are kept (features of 20 x 512 clips
would be ~2 GB).

Which clips a call holds depends only on the requests and ``prompts_per_call``, and each
call's seed on (run seed, purpose, length, chunk), so the same inputs give the same numbers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from engine.edit.cleanup import Cleanup
from engine.errors import MotionError
from engine.generators import settings_class
from engine.pipeline import generate
from engine.sampling.graphs import FastOptions
from engine.store.checkpoint import Checkpoint
from training.evaluation.physical import ClipPhysics, clip_physics


@dataclasses.dataclass(frozen=True)
class Request:
    """Clips wanted for one caption at one length.

    ``width``: frames the clip is zero-padded to before it is embedded. The main set uses
    the longest item of the real batch it stands in for, so a generated clip is embedded
    exactly as its real counterpart was (an evaluator without masking, T2M's convolutions,
    sees the padding); MModality uses the clip's own length.
    """

    caption: str
    frames: int
    width: int


@dataclasses.dataclass
class Generated:
    """Embeddings of ``repeats`` clips per request, in request order."""

    embeddings: np.ndarray  # (N, repeats, E)
    sink_ratio: np.ndarray | None  # (N, repeats) MLA-Gen's SinkRatio; None for MoLingo
    calls: int  # generate() calls made
    physics: list[list[ClipPhysics | None]]  # [N][repeats] each clip's physical measurements


class Stopwatch:
    """Seconds spent per phase, summed over every ``with watch("phase"):`` block.

    Phases nest: the outer phase's clock is paused while an inner one runs, so the parts
    add up to the whole (embedding inside the generation loop is not counted twice)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._stack: list[str] = []
        self._since = time.perf_counter()

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        self._switch()
        self._stack.append(phase)
        try:
            yield
        finally:
            self._switch()
            self._stack.pop()

    def _switch(self) -> None:
        now = time.perf_counter()
        if self._stack:
            self.seconds[self._stack[-1]] += now - self._since
        self._since = now

    def rounded(self) -> dict[str, float]:
        return {phase: round(s, 2) for phase, s in self.seconds.items()}


@dataclasses.dataclass
class Generation:
    """A checkpoint and the sampling settings every ``generate`` call of a run uses."""

    checkpoint: Checkpoint
    device: torch.device
    name: str | None = None
    guidance: float | None = None
    steps: int | None = None
    fast: FastOptions | None = None  # CUDA sampling options (None: the engine's default)
    clean: bool | Cleanup = True  # the clips users get (False: the network's raw output)

    def embed(
        self, requests: Sequence[Request], repeats: int, embedder: Any, *, key: tuple[int, int],
        prompts_per_call: int, watch: Stopwatch, progress: bool = False, label: str = "clips",
        physics: bool = False,
    ) -> Generated:  # fmt: skip
        """Generate ``repeats`` clips per request and embed them with ``embedder`` (an
        ``Embedder`` of ``run.py``) -> ``Generated``.

        Clips of one length, across all requests, share calls of up to ``prompts_per_call``
        clips. ``key`` = (run seed, purpose): different purposes (main set, MModality) get
        independent noise, and a purpose's clips do not depend on whether another runs.
        ``physics``: also measure each clip's joints (``physical.clip_physics``)."""
        if prompts_per_call < 1 or repeats < 1:
            raise MotionError(
                f"need prompts_per_call >= 1 and repeats >= 1, got {prompts_per_call}, {repeats}"
            )
        calls = _plan_calls(requests, repeats, prompts_per_call)
        store = _Store(len(requests), repeats)
        for length, chunk, clips in tqdm(
            calls, desc=f"generating {label}", unit="call", disable=not progress
        ):
            with watch("generation"):
                motion = generate(
                    [requests[i].caption for i, _ in clips], frames=length,
                    seed=derive_seed(*key, length, chunk), guidance=self.guidance,
                    steps=self.steps, checkpoint=self.checkpoint, device=self.device,
                    generator=self.name, fast=self.fast, clean=self.clean,
                )  # fmt: skip
            with watch("embedding"):
                widths = [requests[i].width for i, _ in clips]
                store.put(clips, _embed(embedder, motion.features, widths))
            store.put_sinks(clips, motion.diagnostics.get("sink_ratio"))
            if physics:
                with watch("physics"):
                    store.put_physics(clips, [clip_physics(j, motion.fps) for j in motion.joints])
        return Generated(store.embeddings, store.sinks, len(calls), store.physics)


def _plan_calls(
    requests: Sequence[Request], repeats: int, prompts_per_call: int
) -> list[tuple[int, int, list[tuple[int, int]]]]:
    """(length, chunk number, clips) per ``generate`` call; a clip is (request, repeat).

    Clips are grouped by length (shortest first) in request order and cut into chunks of
    ``prompts_per_call``: ceil(clips of a length / prompts_per_call) calls per length."""
    by_length: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for i, request in enumerate(requests):
        by_length[int(request.frames)] += [(i, r) for r in range(repeats)]
    return [
        (length, chunk, clips[start : start + prompts_per_call])
        for length, clips in sorted(by_length.items())
        for chunk, start in enumerate(range(0, len(clips), prompts_per_call))
    ]


def _embed(embedder: Any, features: np.ndarray, widths: Sequence[int]) -> np.ndarray:
    """Denormalised clips (n, L, 263), each zero-padded to its width -> embeddings (n, E)."""
    normalised = embedder.normalizer.normalize(features)  # (n, L, 263)
    length = normalised.shape[1]
    out: np.ndarray | None = None
    for width in sorted(set(widths)):
        rows = [row for row, w in enumerate(widths) if w == width]
        padded = np.zeros((len(rows), max(width, length), normalised.shape[-1]), np.float32)
        padded[:, :length] = normalised[rows]
        emb = embedder.embed_motion(padded, [length] * len(rows))  # (rows, E)
        if out is None:
            out = np.zeros((len(widths), emb.shape[-1]), dtype=emb.dtype)
        out[rows] = emb
    return out  # type: ignore[return-value]


class _Store:
    """Embeddings and SinkRatios of the clips, filled call by call."""

    def __init__(self, count: int, repeats: int) -> None:
        self.count, self.repeats = count, repeats
        self.embeddings = np.zeros((count, repeats, 0), dtype=np.float32)  # (N, R, E)
        self.sinks: np.ndarray | None = None  # (N, R)
        self.physics: list[list[ClipPhysics | None]] = [[None] * repeats for _ in range(count)]

    def put(self, clips: Sequence[tuple[int, int]], embeddings: np.ndarray) -> None:
        if self.embeddings.shape[-1] != embeddings.shape[-1]:
            self.embeddings = np.zeros((self.count, self.repeats, embeddings.shape[-1]),
                                       dtype=embeddings.dtype)  # fmt: skip
        rows, repeats = np.array(clips).T
        self.embeddings[rows, repeats] = embeddings

    def put_physics(self, clips: Sequence[tuple[int, int]], found: Sequence[ClipPhysics]) -> None:
        for (row, repeat), clip in zip(clips, found, strict=True):
            self.physics[row][repeat] = clip

    def put_sinks(self, clips: Sequence[tuple[int, int]], sinks: Sequence[float] | None) -> None:
        if sinks is None:
            return
        if self.sinks is None:
            self.sinks = np.full((self.count, self.repeats), np.nan)
        rows, repeats = np.array(clips).T
        self.sinks[rows, repeats] = sinks


def derive_seed(*parts: int) -> int:
    """A generation seed in [0, 2^63) from the run seed and a call's position."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


# ---- sampling settings ---------------------------------------------------------------------


def check_sampling(name: str, sampling: dict[str, Any]) -> dict[str, Any]:
    """``sampling`` overrides if every key is a setting of generator ``name``
    (``engine.generators``) and each value has its default's type (an int is a float
    here); else ``MotionError``."""
    allowed = settings_class(name)().record()
    for key, value in sampling.items():
        if key not in allowed:
            raise MotionError(
                f"unknown sampling setting {key!r} for {name}: allowed are "
                + ", ".join(sorted(allowed))
            )
        kind = type(allowed[key])
        fits = isinstance(value, kind) or (kind is float and isinstance(value, int))
        if isinstance(value, bool) or not fits:
            raise MotionError(
                f"sampling setting {key}={value!r} should be of type {kind.__name__} "
                f"(default {allowed[key]!r})"
            )
    return dict(sampling)


def parse_sampling(pairs: Sequence[str]) -> dict[str, Any]:
    """``["steps=25", "method=heun"]`` -> ``{"steps": 25, "method": "heun"}``: each value
    is read as an int, else a float, else kept as text."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip() or not text.strip():
            raise MotionError(f"--sampling expects KEY=VALUE (e.g. steps=25), got {pair!r}")
        out[key.strip()] = _parse_value(text.strip())
    return out


def _parse_value(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
