"""The modal job base: how an operator whose work runs in ``jobs``' worker thread lives
(generate, fit body, download MoLingo): blocking from scripts, modal from the panel with a
timer mirroring progress, Esc or the panel's Cancel to stop, the scene touched only on the
main thread once the work is in.

Its own module so that every operator module can build on it without importing the others.
"""

from __future__ import annotations

import bpy

from ..engine.errors import MotionError
from . import jobs
from .properties import runtime, set_status

TIMER_STEP = 0.1  # seconds between progress updates while a job runs


class BackgroundJobOperator:
    """The modal life of an operator whose work runs in ``jobs``' worker thread (generate,
    fit body): ``execute`` (scripts) blocks until done; ``invoke`` (the panel) starts the
    thread and a timer, the timer mirrors the progress, Esc cancels, and ``_collect`` touches
    the scene on the main thread once the work is in. Subclasses give ``_begin`` (usually
    through ``_start_job``) and ``_collect``."""

    _job: jobs.Job | None = None
    _timer: bpy.types.Timer | None = None

    def _begin(self, context: bpy.types.Context) -> jobs.Job | None:
        raise NotImplementedError

    def _collect(self, context: bpy.types.Context, job: jobs.Job) -> set[str]:
        raise NotImplementedError

    def execute(self, context: bpy.types.Context) -> set[str]:
        job = self._begin(context)
        if job is None:
            return {"CANCELLED"}
        job.run()  # from a script: block until done
        return self._collect(context, job)

    def invoke(self, context: bpy.types.Context, _event: bpy.types.Event) -> set[str]:
        if context.window is None:
            return self.execute(context)
        job = self._begin(context)
        if job is None:
            return {"CANCELLED"}
        self._job = job
        job.start()
        manager = context.window_manager
        self._timer = manager.event_timer_add(TIMER_STEP, window=context.window)
        manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        job = self._job
        if event.type == "ESC" and event.value == "PRESS":
            return self._give_up(context)
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        if job.cancel_requested and not job.done:  # the panel's Cancel button
            return self._give_up(context)
        runtime(context).progress = job.progress
        redraw(context)
        if not job.done:
            return {"PASS_THROUGH"}
        self._stop_timer(context)
        return self._collect(context, job)

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender ends the operator (file loaded, window closed): stop the worker too, without
        waiting for it (``jobs.abandon`` keeps it until it ends)."""
        if self._job is not None:
            jobs.abandon(self._job)
        self._stop_timer(context)
        runtime(context).running = False

    def _give_up(self, context: bpy.types.Context) -> set[str]:
        """Esc or Cancel: end now, the scene unchanged. The worker stops at its next check
        (a generation within ``engine_process.POLL``) and is reaped by ``jobs``."""
        job = self._job
        self._stop_timer(context)
        jobs.abandon(job)
        message = f"{job.label[:1].upper()}{job.label[1:]} cancelled: nothing was changed"
        set_status(context, message)
        self.report({"WARNING"}, message)
        state = runtime(context)
        state.running, state.progress, state.segments = False, 0.0, 0
        redraw(context)
        return {"CANCELLED"}

    def _start_job(self, context: bpy.types.Context, begin, status: str) -> jobs.Job | None:
        """``begin()`` -> the job, with the panel's status ``status.format(prompt)``; a
        ``MotionError`` is reported and gives None (a busy worker keeps its own status)."""
        try:
            job = begin()
        except MotionError as error:
            self.report({"ERROR"}, str(error))
            if not isinstance(error, jobs.Busy):  # keep the running job's status on show
                set_status(context, str(error), "ERROR")
            return None
        state = runtime(context)
        state.running, state.progress = True, 0.0
        set_status(context, status.format(job.request.prompt))
        return job

    def _stop_timer(self, context: bpy.types.Context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None


def end_job(context: bpy.types.Context, job: jobs.Job) -> None:
    """What every background operator does once its job is collected, however it ended:
    release the job, clear the panel's running state and progress, redraw."""
    jobs.end(job)
    state = runtime(context)
    state.running, state.progress, state.segments = False, 0.0, 0
    redraw(context)


def redraw(context: bpy.types.Context) -> None:
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()
