"""What the chosen checkpoint knows, for the panel: the prompt's warning before generating and
the "What this model knows" list.

Both need the checkpoint's description and, for a prompt, its text encoder (torch): they are
asked of the engine process (``engine_process.ENGINE.knowledge``) from a worker thread, and
the answers are kept here by (checkpoint, revision, prompt). Drawing only reads what is
kept; a timer on the main thread redraws the sidebar once an answer is in. Nothing here
waits, so typing and drawing never freeze. A generation's own answer (its diagnostics) is
kept too, so the warning under the prompt agrees with the one after generating. A prompt
already in the field (a saved file) is asked about when the panel first draws it; answers
are forgotten when the add-on is unregistered (a checkpoint folder described again while
Blender runs keeps its old answers until then).
"""

from __future__ import annotations

import threading
from typing import Any

import bpy

from ..engine.errors import MotionError
from . import deps, engine_process, jobs, preferences, properties

POLL = 0.2  # seconds between looks for an answer, on the main thread
Key = tuple[str, str | None, str]

_ANSWERS: dict[Key, dict[str, Any]] = {}  # key -> {"summary", "match"} or {"error": ...}
_PENDING: set[Key] = set()  # asked or waiting to be asked
# Typing asks on every keystroke: one question is asked at a time, and of those typed
# meanwhile only the newest waits its turn (the ones in between are never asked).
_ASKING: list[Key] = []
_NEXT: dict[str, tuple[Key, jobs.KnowledgeRequest]] = {}
_LOCK = threading.Lock()
_TIMER_RUNNING = False


def _choice(context: bpy.types.Context) -> tuple[Any, str | None] | None:
    """(checkpoint, revision) from the preferences; None while they name none usable."""
    try:
        checkpoint, revision, _device = preferences.engine_choice(context)
    except MotionError:
        return None
    return checkpoint, revision


def _key(checkpoint: Any, revision: str | None, prompt: str) -> Key:
    return (str(checkpoint), revision, prompt.strip())


def answer(context: bpy.types.Context, prompt: str) -> dict[str, Any] | None:
    """What is known about ``prompt`` ("" for the checkpoint alone), or None while it is
    being asked (or cannot be: no usable checkpoint choice, missing packages)."""
    choice = _choice(context)
    if choice is None:
        return None
    key = _key(*choice, prompt)
    with _LOCK:
        found = _ANSWERS.get(key)
    if found is None:
        ask(context, prompt)
    return found


def ask(context: bpy.types.Context, prompt: str) -> None:
    """Start asking the engine process about ``prompt``, unless known or being asked."""
    choice = _choice(context)
    if choice is None or deps.missing():
        return
    key = _key(*choice, prompt)
    request = jobs.KnowledgeRequest(key[2], *choice)
    with _LOCK:
        if key in _ANSWERS or key in _PENDING:
            return
        _PENDING.add(key)
        if _ASKING:  # one at a time: this one replaces any other waiting
            skipped = _NEXT.pop("next", None)
            if skipped is not None:
                _PENDING.discard(skipped[0])
            _NEXT["next"] = (key, request)
            return
        _ASKING.append(key)
    threading.Thread(target=_work, args=(key, request), name="kinetext-knowledge",
                     daemon=True).start()  # fmt: skip
    _start_timer()


def _work(key: Key, request: jobs.KnowledgeRequest) -> None:
    """Ask ``request``, then whatever was typed meanwhile (the newest only)."""
    while True:
        try:
            found = engine_process.ENGINE.knowledge(request)
        except MotionError as error:
            found = {"error": str(error)}
        except Exception as error:  # a worker must never die silently
            found = {"error": f"{type(error).__name__}: {error}"}
        with _LOCK:
            _ANSWERS[key] = found
            _PENDING.discard(key)
            _ASKING.clear()
            following = _NEXT.pop("next", None)
            if following is None:
                return
            key, request = following
            _ASKING.append(key)


def wait(timeout: float) -> bool:
    """Block until no question is pending (scripts and tests; never the UI); whether so."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with _LOCK:
            if not _PENDING:
                return True
        time.sleep(0.02)
    return False


def remember(request: jobs.Request, matches: list[dict[str, Any]] | None) -> None:
    """Keep a generation's per-prompt answers (its ``diagnostics["knowledge"]``)."""
    for match in matches or []:
        key = _key(request.checkpoint, request.revision, match["prompt"])
        with _LOCK:
            summary = _ANSWERS.get(key, {}).get("summary")
            _ANSWERS[key] = {"summary": summary, "match": match}


def forget() -> None:
    """Drop every answer (a checkpoint folder was replaced, the add-on is unregistered)."""
    with _LOCK:
        _ANSWERS.clear()


def warning(context: bpy.types.Context, prompt: str) -> str | None:
    """The one-line warning for ``prompt`` with the chosen checkpoint, when known to be far
    from its training data; None otherwise (near, unknown, or still being asked)."""
    if not prompt.strip():
        return None
    found = answer(context, prompt) or {}
    text = (found.get("match") or {}).get("warning")
    return text[0].upper() + text[1:] if text else None


def on_prompt_update(_settings: Any, context: bpy.types.Context) -> None:
    """The prompt changed (each keystroke while typing, then Enter): ask about it."""
    prompt = getattr(_settings, "prompt", "")
    if prompt.strip():
        ask(context, prompt)


def _start_timer() -> None:
    global _TIMER_RUNNING
    if not _TIMER_RUNNING:
        _TIMER_RUNNING = True
        bpy.app.timers.register(_poll, first_interval=POLL)


def _poll() -> float | None:
    """Main thread: redraw the sidebar once answers are in; stop when none is pending."""
    global _TIMER_RUNNING
    for window in getattr(bpy.context.window_manager, "windows", []):
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()
    with _LOCK:
        pending = bool(_PENDING)
    if pending:
        return POLL
    _TIMER_RUNNING = False
    return None


def shutdown() -> None:
    """For unregister: stop the redraw timer and forget the answers (the engine process
    stopping ends any question still being asked)."""
    global _TIMER_RUNNING
    if bpy.app.timers.is_registered(_poll):
        bpy.app.timers.unregister(_poll)
    _TIMER_RUNNING = False
    with _LOCK:
        _NEXT.clear()
    forget()


def register() -> None:
    properties.PROMPT_WATCHERS.append(on_prompt_update)


def unregister() -> None:
    if on_prompt_update in properties.PROMPT_WATCHERS:
        properties.PROMPT_WATCHERS.remove(on_prompt_update)
    shutdown()
