"""Preferences > Kinetext > "Get published MoLingo model": download, convert, select.

The button opens a dialog with the weights' terms; confirming starts
``engine.store.molingo_download`` in the add-on's background worker (``jobs``), only when
Blender's online access allows it. The download shows its progress in the preferences and
the panel, Esc or the panel's Cancel stops it (nothing is left on disk), and the finished
checkpoint, which records the SHA-256 of every zip, becomes the add-on's checkpoint folder.
Nothing here imports torch: the engine is imported by the worker.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import bpy

from ..engine.store.molingo_download import LICENSE, TERMS
from . import deps, jobs
from .job_operator import BackgroundJobOperator, end_job
from .paths import addon_preferences, user_folder
from .properties import set_status

LABEL = "MoLingo download"


@dataclasses.dataclass(frozen=True)
class DownloadRequest:
    """What the worker needs, read on the main thread."""

    prompt: str  # what the panel's status line says is running
    representation: str
    out: str
    mean_std: str | None
    text_encoder: str | None
    mirror: str | None


def online_access() -> bool:
    """Blender's "Allow Online Access" (a function, so tests can stand in for the user)."""
    return bool(bpy.app.online_access)


def destination(representation: str) -> Path:
    """Where the converted checkpoint goes: the extension's own user folder."""
    return user_folder() / f"molingo-{representation}"


def download(request: DownloadRequest, progress) -> Path:
    """The worker's job: the engine's download + conversion, progress as a fraction."""
    from ..engine.store.molingo_download import RELEASES, download_molingo

    names = [item.filename for item in RELEASES[request.representation]]

    def report(done: int, total: int | None, name: str) -> None:
        """Zip k of n at fraction f -> (k + f) / n of the whole download."""
        fraction = done / total if total else 0.0
        progress(names.index(name) + fraction, len(names))

    return download_molingo(
        request.representation, request.out, mean_std=request.mean_std,
        text_encoder=request.text_encoder, mirror=request.mirror, progress=report,
    )  # fmt: skip


class MOTION_OT_get_molingo(bpy.types.Operator):
    """Download the MoLingo authors' HumanML3D model, convert it and use it (shows the
    weights' terms first)"""

    bl_idname = "motion.get_molingo"
    bl_label = "Get published MoLingo model"

    representation: bpy.props.EnumProperty(
        name="Representation",
        items=[
            ("263", "HumanML3D 263", "The 263-dim HumanML3D model (20 fps, up to 9.8 s)"),
            (
                "272",
                "HumanML3D 272",
                "MotionStreamer's 272-dim representation (30 fps, up "
                "to 10 s; needs HumanML3D_272's Mean/Std), which the authors' demo uses",
            ),
        ],
    )
    mirror: bpy.props.StringProperty(options={"HIDDEN", "SKIP_SAVE"})

    def invoke(self, context: bpy.types.Context, _event: bpy.types.Event) -> set[str]:
        refusal = deps.install_refusal(online_access())
        if refusal is not None:
            self.report({"ERROR"}, refusal)
            return {"CANCELLED"}
        return context.window_manager.invoke_props_dialog(
            self, width=480, title=self.bl_label, confirm_text="Download"
        )

    def draw(self, _context: bpy.types.Context) -> None:
        column = self.layout.column(align=True)
        for line in _wrap(f"{TERMS} Licence: {LICENSE}.", 80):
            column.label(text=line)
        self.layout.prop(self, "representation")
        self.layout.label(text=f"Into {destination(self.representation)}")

    def execute(self, context: bpy.types.Context) -> set[str]:
        return bpy.ops.motion.download_molingo(
            "INVOKE_DEFAULT", representation=self.representation, mirror=self.mirror
        )


class MOTION_OT_download_molingo(BackgroundJobOperator, bpy.types.Operator):
    """Download and convert the MoLingo release in the background (Esc cancels)"""

    bl_idname = "motion.download_molingo"
    bl_label = "Download MoLingo"
    bl_options = {"INTERNAL"}

    representation: bpy.props.StringProperty(default="263")
    mirror: bpy.props.StringProperty(options={"HIDDEN", "SKIP_SAVE"})

    def _begin(self, context: bpy.types.Context) -> jobs.Job | None:
        refusal = deps.install_refusal(online_access())
        if refusal is not None:
            self.report({"ERROR"}, refusal)
            return None
        prefs = addon_preferences(context)
        mean_std = bpy.path.abspath(prefs.molingo_mean_std).strip() if prefs else ""
        tokenizer = bpy.path.abspath(prefs.molingo_tokenizer).strip() if prefs else ""
        if not mean_std:
            self.report({"ERROR"}, "set 'HumanML3D Mean/Std folder' (Mean.npy, Std.npy) first")
            return None
        request = DownloadRequest(
            f"the MoLingo {self.representation} model", self.representation,
            str(destination(self.representation)), mean_std, tokenizer or None,
            self.mirror or None,
        )  # fmt: skip
        return self._start_job(
            context, lambda: jobs.begin(request, download, LABEL), "Downloading {}..."
        )

    def _collect(self, context: bpy.types.Context, job: jobs.Job) -> set[str]:
        try:
            if job.cancelled:
                set_status(context, "Download cancelled: nothing was kept")
                self.report({"WARNING"}, "MoLingo download cancelled: nothing was kept")
                return {"CANCELLED"}
            if job.error:
                set_status(context, job.error, "ERROR")
                self.report({"ERROR"}, job.error)
                return {"CANCELLED"}
            prefs = addon_preferences(context)
            if prefs is not None:
                prefs.checkpoint_source = "FOLDER"
                prefs.checkpoint_folder = str(job.result)
            message = f"MoLingo {job.request.representation} model ready and selected"
            set_status(context, message)
            self.report({"INFO"}, f"{message}: {job.result}")
            return {"FINISHED"}
        finally:
            end_job(context, job)


def draw(box: bpy.types.UILayout, prefs) -> None:
    """The preferences' box: the Mean/Std folder, the button, and the running download."""
    box.label(text="Published MoLingo model (HumanML3D)", icon="URL")
    box.prop(prefs, "molingo_mean_std")
    box.prop(prefs, "molingo_tokenizer")
    refusal = deps.install_refusal(online_access())
    job = jobs.current()
    running = job is not None and job.label == LABEL and not job.done
    row = box.row()
    row.enabled = refusal is None and not running
    row.operator(MOTION_OT_get_molingo.bl_idname, icon="IMPORT")
    if running:
        box.label(text=f"Downloading... {job.progress:.0%} (Esc or Cancel stops it)", icon="TIME")
    if refusal is not None:
        box.label(text="Online access is off: downloading is disabled", icon="INFO")


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width)


classes = (MOTION_OT_get_molingo, MOTION_OT_download_molingo)
register_classes, unregister_classes = bpy.utils.register_classes_factory(classes)


def register() -> None:
    register_classes()


def unregister() -> None:
    unregister_classes()
