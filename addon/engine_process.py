"""The engine in a child process, so that Blender's main thread never waits for it.

A worker thread in Blender's own process shares the interpreter lock with the interface:
whatever it does in C without releasing the lock stops every Python panel, timer and modal
handler. The first generation is mostly that: loading torch's libraries held the lock for
290 ms in one piece here, and torch's and transformers' module set-up for 50 to 180 ms at a
time (stalls of 261 ms were measured in Blender). So generation runs in a child Python
(Blender's own interpreter, ``sys.executable``) that imports the engine once and then stays,
keeping the checkpoint and text encoder loaded for the next generation.

Requests and replies are JSON lines on the child's stdin and stdout: ``{"id", "request",
"out"}`` asks for a generation written to the ``out`` .npz; ``{"cancel": id}`` stops one at
its next sampling step. The child answers ``{"id", "progress"}`` while sampling, then one of
``{"id", "done"}``, ``{"id", "error"}``, ``{"id", "cancelled"}``. ``{"id", "knowledge"}``
asks what the checkpoint knows and how close a prompt is to it (``jobs.knowledge``); the
child answers ``{"id", "knowledge"}`` or ``{"id", "error"}`` from a thread of its own, so a
check never waits for a running generation. It never sees bpy and runs
exactly what a worker thread would (``jobs.generate`` inside a ``jobs.Job``), so errors read
the same. It exits when its stdin closes (Blender quits, the add-on is disabled).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..engine.errors import MotionError
from ..engine.motion import Motion
from . import jobs

ROOT = Path(__file__).resolve().parents[1]  # holds addon/ and engine/
CHILD_PACKAGE = "_kinetext_engine_process"
POLL = 0.05  # seconds between checks for Cancel while waiting for the child
# Imports the add-on's package under a private name (no bpy, no Blender add-on machinery)
# and serves requests; argv: the folder that holds addon/ and engine/.
BOOT = f"""
import importlib, sys, types
package = types.ModuleType({CHILD_PACKAGE!r})
package.__path__ = [sys.argv[1]]
sys.modules[{CHILD_PACKAGE!r}] = package
importlib.import_module({CHILD_PACKAGE!r} + ".addon.engine_process").serve()
"""


class EngineProcess:
    """The parent's side: starts the child when first needed and talks to it.

    ``generate`` blocks the calling thread (a job's worker thread, never the main thread)
    until the child answers; one reader thread routes the child's replies by request id.
    """

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self._lock = threading.Lock()  # starting, stopping and writing to the child
        self._replies: dict[int, queue.Queue] = {}
        self._ids = itertools.count(1)
        self._folder: Path | None = None  # where the child writes results, made when needed

    def generate(self, request: jobs.AnyRequest, progress: jobs.Progress) -> Motion:
        """Generate ``request`` in the child; ``progress(step, total)`` raising ``Cancelled``
        (the job was cancelled) stops waiting at once and tells the child to stop too."""
        job_id = next(self._ids)
        replies: queue.Queue = queue.Queue()
        self._replies[job_id] = replies
        out = self._results_folder() / f"{job_id}.npz"
        try:
            progress(0, 1)  # cancelled before it began
            self._send({"id": job_id, "request": encode_request(request), "out": str(out)})
            return self._wait(job_id, replies, progress, out)
        except jobs.Cancelled:
            self._send({"cancel": job_id}, quiet=True)
            raise
        finally:
            self._replies.pop(job_id, None)
            out.unlink(missing_ok=True)

    def knowledge(self, request: jobs.KnowledgeRequest) -> dict[str, Any]:
        """What ``jobs.knowledge`` answers for ``request``, from the child (blocks the calling
        thread, never Blender's main thread, until it answers)."""
        job_id = next(self._ids)
        replies: queue.Queue = queue.Queue()
        self._replies[job_id] = replies
        try:
            fields = dataclasses.asdict(request)
            folder = isinstance(request.checkpoint, Path)
            fields["checkpoint"] = str(request.checkpoint) if folder else request.checkpoint
            self._send({"id": job_id, "knowledge": fields, "checkpoint_is_folder": folder})
            reply = replies.get()
        finally:
            self._replies.pop(job_id, None)
        if "knowledge" in reply:
            return reply["knowledge"]
        if "error" in reply:
            raise MotionError(reply["error"])
        raise MotionError(f"the engine process stopped (exit code {reply.get('exit')})")

    def _wait(self, job_id: int, replies: queue.Queue, progress, out: Path) -> Motion:
        fraction = 0.0
        while True:
            try:
                reply = replies.get(timeout=POLL)
            except queue.Empty:
                progress(fraction, 1.0)  # raises Cancelled once the user cancelled
                continue
            if "progress" in reply:
                fraction = float(reply["progress"])
                progress(fraction, 1.0)
            elif "done" in reply:
                return load_motion(out)
            elif "cancelled" in reply:
                raise jobs.Cancelled
            elif "error" in reply:
                raise MotionError(reply["error"])
            elif "exit" in reply:
                raise MotionError(
                    f"the engine process stopped unexpectedly (exit code {reply['exit']}); "
                    "Blender's console shows why. Generate starts it again"
                )

    def _results_folder(self) -> Path:
        if self._folder is None or not self._folder.is_dir():
            self._folder = Path(tempfile.mkdtemp(prefix="kinetext-engine-"))
        return self._folder

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout: float = 2.0) -> None:
        """Close the child's stdin (it exits after its current step) and end it if it lingers."""
        with self._lock:
            process, self._process = self._process, None
            folder, self._folder = self._folder, None
        if process is not None:
            try:
                process.stdin.close()
                process.wait(timeout)
            except (OSError, subprocess.TimeoutExpired):
                process.kill()
                process.wait()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def _send(self, message: dict[str, Any], quiet: bool = False) -> None:
        line = json.dumps(message) + "\n"
        with self._lock:
            try:
                process = self._start_locked()
                process.stdin.write(line.encode())
                process.stdin.flush()
            except OSError as error:
                if quiet:
                    return
                raise MotionError(f"cannot reach the engine process: {error}") from error

    def _start_locked(self) -> subprocess.Popen:
        if self._process is not None and self._process.poll() is None:
            return self._process
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self._process = subprocess.Popen(
            [sys.executable, "-c", BOOT, str(ROOT)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
        )  # fmt: skip
        reader = threading.Thread(
            target=self._read, args=(self._process,), name="kinetext-engine-reader", daemon=True
        )
        reader.start()
        return self._process

    def _read(self, process: subprocess.Popen) -> None:
        """Route each reply to the request waiting for it; at the child's end, tell them all."""
        for line in process.stdout:
            try:
                reply = json.loads(line)
            except ValueError:
                continue
            waiting = self._replies.get(reply.get("id"))
            if waiting is not None:
                waiting.put(reply)
            elif "done" in reply:  # finished after its request was cancelled: not wanted
                Path(reply["done"]).unlink(missing_ok=True)
        code = process.wait()
        for waiting in list(self._replies.values()):
            waiting.put({"exit": code})


ENGINE = EngineProcess()


# ---- the child ---------------------------------------------------------------------------


def serve() -> None:
    """The child's main loop: generate each request in turn until stdin closes."""
    replies = os.fdopen(os.dup(1), "w", buffering=1)  # the protocol owns the real stdout
    try:
        os.dup2(2, 1)  # what libraries print (load bars) goes to stderr, Blender's console
    except OSError:  # no console (a windowed Blender on Windows): print nowhere
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    lock = threading.Lock()

    def send(message: dict[str, Any]) -> None:
        with lock:
            replies.write(json.dumps(message) + "\n")

    requests: queue.Queue = queue.Queue()
    checks: queue.Queue = queue.Queue()
    running: dict[int, jobs.Job] = {}
    cancelled: set[int] = set()
    threading.Thread(
        target=_read_requests, args=(sys.stdin, requests, running, cancelled, checks),
        daemon=True,
    ).start()  # fmt: skip
    threading.Thread(target=_serve_checks, args=(checks, send), daemon=True).start()
    while (message := requests.get()) is not None:
        _serve_one(message, running, cancelled, send)


def _read_requests(
    stdin: IO[str], requests: queue.Queue, running: dict, cancelled: set, checks: queue.Queue
) -> None:
    for line in stdin:
        message = json.loads(line)
        if "knowledge" in message:
            checks.put(message)
        elif "cancel" in message:
            cancelled.add(message["cancel"])
            job = running.get(message["cancel"])
            if job is not None:
                job.cancel()
        else:
            requests.put(message)
    for job in list(running.values()):  # the parent is gone: stop
        job.cancel()
    requests.put(None)


def _serve_checks(checks: queue.Queue, send) -> None:
    """Answer knowledge requests in turn, beside whatever generation runs."""
    while True:
        message = checks.get()
        fields = dict(message["knowledge"])
        if message["checkpoint_is_folder"]:
            fields["checkpoint"] = Path(fields["checkpoint"])
        try:
            answer = jobs.knowledge(jobs.KnowledgeRequest(**fields))
        except MotionError as error:
            send({"id": message["id"], "error": str(error)})
        except Exception as error:  # the thread must answer and live on
            send({"id": message["id"], "error": f"{type(error).__name__}: {error}"})
        else:
            send({"id": message["id"], "knowledge": answer})


def _serve_one(message: dict, running: dict, cancelled: set, send) -> None:
    job_id = message["id"]

    def work(request: jobs.AnyRequest, progress: jobs.Progress) -> Motion:
        def report(step: float, total: float) -> None:
            progress(step, total)  # raises Cancelled when asked to stop
            send({"id": job_id, "progress": step / max(total, 1)})

        return jobs.generate(request, report)

    job = jobs.Job(decode_request(message["request"]), work)
    running[job_id] = job
    if job_id in cancelled:
        job.cancel()
    try:
        job.run()
    finally:
        running.pop(job_id, None)
    if job.cancelled:
        send({"id": job_id, "cancelled": True})
    elif job.error is not None:
        send({"id": job_id, "error": job.error})
    else:
        try:
            save_motion(job.result, Path(message["out"]))
        except OSError as error:
            send({"id": job_id, "error": f"cannot hand the clips back: {error}"})
            return
        send({"id": job_id, "done": message["out"]})


# ---- what travels between them -----------------------------------------------------------


REQUEST_KINDS = {kind.__name__: kind for kind in jobs.REQUEST_KINDS}


def encode_request(request: jobs.AnyRequest) -> dict[str, Any]:
    """JSON for ``request``; a folder checkpoint stays a folder (a ``Path``, see
    engine.store.hub)."""
    fields = dataclasses.asdict(request)
    folder = isinstance(request.checkpoint, Path)
    fields["checkpoint"] = str(request.checkpoint) if folder else request.checkpoint
    return {"kind": type(request).__name__, "fields": fields, "checkpoint_is_folder": folder}


def decode_request(data: dict[str, Any]) -> jobs.AnyRequest:
    fields = dict(data["fields"])
    if data["checkpoint_is_folder"]:
        fields["checkpoint"] = Path(fields["checkpoint"])
    if "segments" in fields:  # JSON made the pairs lists
        fields["segments"] = tuple((str(p), float(s)) for p, s in fields["segments"])
    return REQUEST_KINDS[data.get("kind", "Request")](**fields)


def save_motion(motion: Motion, path: Path) -> None:
    """``motion`` as an uncompressed .npz (fast; read once, then deleted), written atomically."""
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "wb") as fh:
        np.savez(
            fh, joints=motion.joints, features=motion.features, fps=np.array(motion.fps),
            prompts=np.array(motion.prompts, dtype=str),
            diagnostics=np.array(json.dumps(motion.diagnostics, default=str)),
        )  # fmt: skip
    os.replace(partial, path)


def load_motion(path: Path) -> Motion:
    with np.load(path, allow_pickle=False) as data:
        return Motion(
            joints=np.array(data["joints"]), features=np.array(data["features"]),
            fps=int(data["fps"]), prompts=[str(p) for p in data["prompts"]],
            diagnostics=json.loads(str(data["diagnostics"])),
        )  # fmt: skip
