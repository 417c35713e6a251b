"""Background jobs: a generation (or another engine call, such as fitting an SMPL body) in a
background thread, with progress and Cancel.

Blender's data may only be touched from the main thread, so a job never sees bpy: it gets a
plain request, runs its work, and leaves its result, or an error message, or the fact that
it was cancelled, for the operator to collect on the main thread. The add-on's generations
do their engine work in the engine process (``engine_process``; the thread only waits for
it and stores the clips); ``generate`` here is what that process runs. Cancelling sets a
flag that the work's progress callback turns into an exception at its next step; an
operator that cannot wait (Esc, Blender closing it) ``abandon``s the job, which is kept
until its thread ends. One job runs at a time (``begin`` refuses a second): the models are
large and the GPU shared.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..engine.errors import MotionError
from . import deps


class Cancelled(Exception):
    """Raised inside the sampling loop when the user pressed Cancel or Esc."""


class Busy(MotionError):
    """A second generation was asked for while one runs."""


@dataclasses.dataclass(frozen=True)
class Request:
    """Everything a generation needs, as plain values read on the main thread."""

    prompt: str
    seconds: float
    seed: int
    variations: int
    guidance: float | None  # None: the checkpoint's default
    steps: int | None  # None: the checkpoint's default
    generator: str | None  # "molingo" | "mlagen" | None (the checkpoint's default)
    checkpoint: Path | str | None  # a folder (Path), a Hub id (str), None: the embedded one
    revision: str | None  # Hub revision (branch, tag or commit) for a Hub id
    device: str  # "auto" | "cuda" | "mps" | "cpu"
    offline: bool = False  # Blender's online access is off: never download
    clean: bool = True  # engine.edit.cleanup's body (False: the network's raw joints)


@dataclasses.dataclass(frozen=True)
class KnowledgeRequest:
    """What a checkpoint knows, and how close ``prompt`` ("": none) is to it (the panel's
    warning before generating and its "What this model knows" list)."""

    prompt: str
    checkpoint: Path | str | None  # as in Request
    revision: str | None


@dataclasses.dataclass(frozen=True)
class SequenceRequest:
    """A timeline: one clip of several prompts (``engine.sequence.generate_sequence``)."""

    segments: tuple[tuple[str, float], ...]  # (prompt, seconds) in order
    seed: int
    guidance: float | None
    steps: int | None
    generator: str | None
    checkpoint: Path | str | None
    revision: str | None
    device: str
    offline: bool = False
    clean: bool = True
    method: str | None = None  # "inpaint" | "blend" | None (the engine's default)

    @property
    def prompt(self) -> str:
        """What the status line calls it: the prompts in order."""
        return " / ".join(prompt for prompt, _ in self.segments)


@dataclasses.dataclass(frozen=True)
class InbetweenRequest:
    """Frames ``[start_frame, end_frame)`` of a clip regenerated (``engine.sequence.inbetween``);
    the clip's joints (T, 22, 3) are in the .npy at ``clip`` (they cross to the engine process
    as a file, not as JSON numbers)."""

    prompt: str
    start_frame: int
    end_frame: int
    clip: str
    seed: int
    guidance: float | None
    steps: int | None
    generator: str | None
    checkpoint: Path | str | None
    revision: str | None
    device: str
    offline: bool = False
    clean: bool = True


AnyRequest = Request | SequenceRequest | InbetweenRequest
REQUEST_KINDS = (Request, SequenceRequest, InbetweenRequest)

Progress = Callable[[float, float], None]
Work = Callable[[Any, Progress], Any]
"""work(request, progress) -> result, run in the worker; progress(step, total) may raise."""


class Job:
    """One engine call. ``run`` works in the calling thread, ``start`` in a new one.

    work: what to run (default: ``generate``); label: what the messages call it.
    """

    def __init__(self, request: Any, work: Work | None = None, label: str = "generation") -> None:
        self.request = request
        self.work = work
        self.label = label
        self.progress = 0.0  # 0..1, written by the worker, read by the UI
        self.result: Any = None  # what ``work`` returned, once finished
        self.error: str | None = None
        self.cancelled = False
        self.stopped_at: float | None = None  # time.perf_counter() when the worker ended
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        slug = "generate" if self.work is None else self.label.replace(" ", "-")
        name = f"kinetext-{slug}"
        self._thread = threading.Thread(target=self.run, name=name, daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        """Ask the worker to stop at its next sampling step."""
        self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def run(self) -> None:
        """Do the work, recording the outcome in ``result`` / ``error`` / ``cancelled``."""
        try:
            if self._cancel.is_set():
                raise Cancelled
            self.result = (self.work or generate)(self.request, self._on_progress)
            self.progress = 1.0
        except Cancelled:
            self.cancelled = True
        except MotionError as error:
            self.error = str(error)
        except ImportError as error:
            absent = deps.missing() or [deps.Requirement(error.name or "?", error.name or "?", "")]
            self.error = deps.missing_message(absent)
        except Exception as error:  # a worker must never die silently
            traceback.print_exc()
            self.error = f"{self.label} failed: {type(error).__name__}: {error}"
        finally:
            self.stopped_at = time.perf_counter()
            self._done.set()
            _reap(self)

    def _on_progress(self, step: float, total: float) -> None:
        if self._cancel.is_set():
            raise Cancelled
        self.progress = step / max(total, 1)


def generate(request: Request | SequenceRequest | InbetweenRequest, progress: Any) -> Any:
    """Run the engine for ``request`` (imports torch here, never at add-on load): a prompt's
    variations, a timeline, or an in-between.

    The checkpoint (a folder, a Hub id at a revision, from the Hub's local cache only while
    Blender's online access is off) is resolved and kept by the engine's pipeline, as for
    the command line. ``progress(0, 1)`` after the imports stops a cancelled request before
    the next long step, as the sampling steps do within theirs.
    """
    progress(0, 1)
    from ..engine import pipeline
    from ..engine.errors import NotDownloaded

    progress(0, 1)
    common = {
        "seed": request.seed, "guidance": request.guidance, "steps": request.steps,
        "checkpoint": request.checkpoint, "revision": request.revision,
        "offline": request.offline, "device": request.device, "progress": progress,
        "generator": request.generator, "clean": request.clean,
    }  # fmt: skip
    try:
        with threads_beside_blender():
            if not isinstance(request, Request):
                return _edit(request, common)
            return pipeline.generate(
                request.prompt, seconds=request.seconds, variations=request.variations, **common
            )
    except NotDownloaded as error:
        raise MotionError(
            f"{error.repo_id}: not downloaded yet, and Blender's online access is off: allow "
            "it in Preferences > System > Network once, or choose a checkpoint folder"
        ) from error


def knowledge(request: KnowledgeRequest) -> dict[str, Any]:
    """``engine.store.info.knowledge_report`` for ``request``; a Hub checkpoint is only read from
    the local cache (a check never downloads 36 MB: the first generation does), and one not
    there yet gives ``{"summary": None, "match": None, "pending": why}``."""
    from ..engine.errors import NotDownloaded
    from ..engine.store.info import knowledge_report

    try:
        return knowledge_report(request.prompt, request.checkpoint, request.revision, offline=True)
    except NotDownloaded:
        why = "not downloaded yet: the first generation fetches it and then says"
        return {"summary": None, "match": None, "pending": why}


def _edit(request: SequenceRequest | InbetweenRequest, common: dict[str, Any]) -> Any:
    """A timeline or an in-between, with ``generate``'s checkpoint, settings and progress."""
    import numpy as np

    from ..engine import sequence

    if isinstance(request, SequenceRequest):
        segments = [(p, s) for p, s in request.segments]
        return sequence.generate_sequence(segments, method=request.method, **common)
    joints = np.load(request.clip, allow_pickle=False)
    return sequence.inbetween(joints, request.start_frame, request.end_frame, request.prompt,
                              **common)  # fmt: skip


@contextlib.contextmanager
def threads_beside_blender() -> Iterator[None]:
    """Run torch on all cores but one while generating, then restore its setting.

    Blender's own worker threads stay busy (drawing, evaluating the scene); when torch's
    OpenMP threads compete with them for every core, each of torch's parallel regions waits
    on a descheduled thread: measured here on 2 cores after a frame change, a small matrix
    product took 7.7 ms with 2 threads and 0.05 ms with 1. One core left free also keeps
    Blender's interface responsive while the job runs.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# ---- the one current job -------------------------------------------------------------------

_CURRENT: Job | None = None
# Cancelled jobs whose worker has not stopped yet: the operator ended at once (Esc, another
# file opened) without waiting for it, and the job is kept here until its thread ends, so
# nothing forgets a running thread and ``shutdown`` can stop them all.
_ABANDONED: set[Job] = set()
_LOCK = threading.Lock()


def begin(request: Any, work: Work | None = None, label: str = "generation") -> Job:
    """Make a job for ``request`` the current one; ``Busy`` while another is unfinished.

    work, label: see ``Job`` (by default the job generates motion in this process).
    """
    global _CURRENT
    with _LOCK:
        if _CURRENT is not None:
            raise Busy(
                f"a {_CURRENT.label} is already running: wait for it to finish or press "
                "Cancel (Esc)"
            )
        stopping = [job for job in _ABANDONED if not job.done]
        if stopping:
            raise Busy(f"the cancelled {stopping[0].label} is still stopping: try again")
        _CURRENT = Job(request, work, label)
        return _CURRENT


def abandon(job: Job) -> None:
    """Cancel ``job`` and stop waiting for it (never blocks): it stops being the current job
    and is kept among the abandoned ones until its worker ends."""
    global _CURRENT
    job.cancel()
    with _LOCK:
        if not job.done:
            _ABANDONED.add(job)
        if _CURRENT is job:
            _CURRENT = None


def _reap(job: Job) -> None:
    with _LOCK:
        _ABANDONED.discard(job)


def abandoned() -> list[Job]:
    """The cancelled jobs whose workers are still stopping."""
    with _LOCK:
        return list(_ABANDONED)


def shutdown(wait: float) -> bool:
    """Cancel every job (current and abandoned) and wait up to ``wait`` seconds in all for
    their workers; whether they all stopped. For unregister: code must not outlive it."""
    every = [job for job in (_CURRENT, *abandoned()) if job is not None]
    for job in every:
        abandon(job)
    deadline = time.monotonic() + wait
    for job in every:
        job.wait(max(0.0, deadline - time.monotonic()))
    return all(job.done for job in every)


def end(job: Job) -> None:
    """Forget ``job`` once its results were collected (or it was abandoned)."""
    global _CURRENT
    with _LOCK:
        if _CURRENT is job:
            _CURRENT = None


def current() -> Job | None:
    return _CURRENT


def cancel_current(wait: float | None = None) -> bool:
    """Cancel the current job, if any, optionally waiting for its thread; whether one ran."""
    job = _CURRENT
    if job is None:
        return False
    job.cancel()
    if wait is not None:
        job.wait(wait)
    return True
