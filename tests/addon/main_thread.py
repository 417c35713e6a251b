"""Blender's main thread while a generation runs, instrumented (headless bpy has no event loop).

``drive`` plays the loop Blender runs while the Generate operator is modal: every ``FRAME``
seconds the interface runs its Python (here: drawing the Kinetext panels, as each redraw
does) and, every ``job_operator.TIMER_STEP``, the operator's ``modal`` gets its TIMER event;
Esc is one more event. Each frame records how late it finished against when it was due:
waiting for the interpreter lock held by another thread, and the modal step's own work on
the main thread (listing 16 clips, say), both show there, as a frozen interface would.

Run as a script for the numbers in docs/benchmarks.md (a fresh process, so the first
generation is really the first: nothing of the engine imported yet):
    OMP_NUM_THREADS=1 .venv/bin/python tests/addon/main_thread.py [--in-thread]
(``--in-thread``: the engine in a worker thread of Blender's process, as before, to compare).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import bpy

FRAME = 0.01  # seconds between redraws while the user moves the mouse
PROMPT = "a person walks forward, turns and waves"


class Layout:
    """Accepts every drawing call, as Blender's UILayout does (the cost is the panel's Python)."""

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: self


@dataclasses.dataclass
class Timeline:
    """One modal run: how late each frame finished, and how the operator ended."""

    late: list[float]  # per frame, seconds past when it was due
    modal: list[float]  # seconds per modal() call
    outcome: set[str]
    escape_to_end: float | None = None  # Esc pressed -> operator ended (seconds)
    escape_to_stop: float | None = None  # Esc pressed -> the job's worker thread ended
    seconds: float = 0.0  # the whole run

    @property
    def worst(self) -> float:
        return max(self.late)

    def over(self, limit: float) -> int:
        return sum(late > limit for late in self.late)


def stand_in(job):
    """The Generate operator as Blender holds it while modal (its own methods, bound)."""
    from kinetext.addon.operators import MOTION_OT_generate

    operator = SimpleNamespace(_job=job, _timer=None, reports=[])
    operator.report = lambda level, text: operator.reports.append((set(level), text))
    operator._stop_timer = lambda context: None
    for name in ("modal", "cancel", "_collect", "_give_up"):
        setattr(operator, name, functools.partial(getattr(MOTION_OT_generate, name), operator))
    return operator


def start(in_thread: bool = False, **arguments):
    """What the panel's Generate button does (``invoke``): the job, its thread, the state.

    in_thread: run the engine in the job's thread, in Blender's process, as the add-on did
    before it had an engine process (for comparison; the clips are stored the same way).
    """
    from kinetext.addon import jobs, results
    from kinetext.addon.operators import begin_generation, build_request, results_folder
    from kinetext.addon.properties import runtime

    options = {"prompt": PROMPT, "seconds": 2.0, "steps": 2, "variations": 1, **arguments}
    fake = SimpleNamespace(**options)
    fake.properties = SimpleNamespace(is_property_set=lambda name: name in options)
    request = build_request(fake, bpy.context)
    if in_thread:
        folder = results_folder()
        job = jobs.begin(request, lambda r, p: results.put_motion(jobs.generate(r, p), folder))
    else:
        job = begin_generation(request)
    job.start()
    runtime(bpy.context).running = True
    return job


def panels() -> list:
    from kinetext.addon.panel import KINETEXT_PT_bake, KINETEXT_PT_generate, KINETEXT_PT_variations

    return [KINETEXT_PT_generate, KINETEXT_PT_variations, KINETEXT_PT_bake]


def drive(
    begin: Callable[[], object],
    escape_when: Callable[[object], bool] | None = None,
    limit: float = 600.0,
) -> Timeline:
    """Start a generation with ``begin()`` (timed as the first frame) and play Blender's
    loop until the operator ends; Esc is pressed at the first frame where ``escape_when(job)``.
    """
    from kinetext.addon.job_operator import TIMER_STEP

    drawn = panels()
    timer = SimpleNamespace(type="TIMER", value="NOTHING")
    escape = SimpleNamespace(type="ESC", value="PRESS")
    late, modal_times = [], []
    clock = time.perf_counter()
    job = begin()
    operator = stand_in(job)
    late.append(time.perf_counter() - clock)
    due = time.perf_counter()
    next_tick, pressed, outcome = due + TIMER_STEP, None, None
    while outcome is None:
        due += FRAME
        time.sleep(max(0.0, due - time.perf_counter()))
        for panel in drawn:
            panel.draw(SimpleNamespace(layout=Layout()), bpy.context)
        event = None
        if pressed is None and escape_when is not None and escape_when(job):
            event, pressed = escape, time.perf_counter()
        elif time.perf_counter() >= next_tick:
            event, next_tick = timer, next_tick + TIMER_STEP
        if event is not None:
            called = time.perf_counter()
            result = operator.modal(bpy.context, event)
            modal_times.append(time.perf_counter() - called)
            if result & {"FINISHED", "CANCELLED"}:
                outcome = result
        end = time.perf_counter()
        late.append(end - due)
        due = max(due, end)  # a late frame delays the next one, as in Blender
        if end - clock > limit:
            raise TimeoutError(f"no end after {limit} s")
    timeline = Timeline(late, modal_times, outcome, seconds=time.perf_counter() - clock)
    if pressed is not None:
        timeline.escape_to_end = time.perf_counter() - pressed
        job.wait(10)
        timeline.escape_to_stop = job.stopped_at - pressed if job.done else None
    return timeline


def describe(name: str, timeline: Timeline) -> str:
    line = (
        f"{name}: {len(timeline.late)} frames in {timeline.seconds:.1f} s, worst "
        f"{timeline.worst * 1000:.1f} ms late, {timeline.over(0.05)} over 50 ms; modal step "
        f"max {max(timeline.modal, default=0) * 1000:.1f} ms; {sorted(timeline.outcome)}"
    )
    if timeline.escape_to_end is not None:
        line += (
            f"; Esc -> operator ended {timeline.escape_to_end * 1000:.1f} ms, worker stopped "
            f"{timeline.escape_to_stop * 1000:.1f} ms"
        )
    return line


def main() -> None:
    """The scenario of issue 13 in a fresh process: first and warm generations of 16 clips of
    9.8 s, then Esc while the engine starts and while it samples."""
    import importlib
    import sys
    import tempfile

    sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[2])]
    import conftest  # noqa: F401  (makes the repository importable as ``kinetext``)
    from addon_helpers import clear_scene, enabled, save_tiny_checkpoint

    addon = importlib.import_module("kinetext.addon")
    checkpoint = save_tiny_checkpoint(Path(tempfile.mkdtemp()) / "tiny")
    from kinetext.addon import engine_process

    big = {"variations": 16, "seconds": 9.8}
    with enabled(addon, checkpoint):
        clear_scene()
        if "--in-thread" in sys.argv:  # the design before: the engine in a worker thread
            print(describe("first, in a thread", drive(lambda: start(True, **big))))
            print(describe("warm, in a thread", drive(lambda: start(True, **big))))
            return
        print(describe("first generation, 16 x 9.8 s", drive(lambda: start(**big))))
        print(describe("warm generation, 16 x 9.8 s", drive(lambda: start(**big))))
        engine_process.ENGINE.stop()
        print(describe("Esc while the engine starts", drive(start, lambda job: True)))
        slow = functools.partial(start, steps=400)
        print(describe("Esc while sampling", drive(slow, lambda job: job.progress > 0.05)))


if __name__ == "__main__":
    main()
