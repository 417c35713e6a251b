"""SMPL body: the Fit Body and Export AMASS operators and their panel section.

Fit Body fits SMPL / SMPL-X parameters to a generated variation in the background job (the
UI stays live, Esc cancels, the panel shows progress), then, on the main thread, builds the
body (or reuses one of the same model and shape) and bakes the fit onto it as new actions.
Each fit is also kept (memory and an AMASS ``.npz`` in the results folder), so Export AMASS
writes it without fitting again.

``smplx`` and the SMPL model files are the user's own (non-commercial licences, never
shipped): without them this section says what is missing and how to fix it, its buttons
are off, and nothing else in the add-on changes. Drawing never imports torch or smplx.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import bpy
import numpy as np
from bpy_extras.io_utils import ExportHelper

from ..engine.errors import MotionError
from . import jobs, results
from .job_operator import BackgroundJobOperator, end_job
from .operators import export_name, variation
from .paths import ADDON_ID, addon_preferences, results_folder
from .properties import runtime, scene_fps, set_status, settings
from .smpl_status import body_status
from .ui import CATEGORY, chars_per_line, draw_wrapped

FIT_LABEL = "body fit"
# ---- fits kept for export ------------------------------------------------------------------

_FITS: dict[str, Any] = {}  # key -> engine.body.smpl_fit.SMPLFit


def fit_key(variation_key: str, model_type: str, gender: str) -> str:
    return f"{variation_key}-{model_type}-{gender}"


def _fit_path(key: str) -> Path:
    return results_folder() / "smpl" / f"{key}.npz"


def store_fit(key: str, fit: Any) -> None:
    """Keep ``fit`` for Export AMASS: in memory, and on disk beside the variation's clip."""
    from ..engine.io.amass import save_amass

    _FITS[key] = fit
    folder = _fit_path(key).parent
    folder.mkdir(parents=True, exist_ok=True)
    save_amass(_fit_path(key), fit)
    kept = sorted(folder.glob("*.npz"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in kept[results.KEEP :]:  # as many as the clips they were fitted to
        old.unlink(missing_ok=True)


def has_fit(key: str) -> bool:
    return key in _FITS or _fit_path(key).is_file()


def stored_fit(key: str) -> Any:
    """The kept fit under ``key``; MotionError saying what to do when there is none."""
    if key not in _FITS and _fit_path(key).is_file():
        from ..engine.io.amass import load_amass

        _FITS[key] = load_amass(_fit_path(key))
    if key not in _FITS:
        raise MotionError("this variation has no SMPL fit yet (for the body model chosen in the "
                          "preferences): press Fit Body first")  # fmt: skip
    return _FITS[key]


# ---- the background fit ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: it holds an array
class FitRequest:
    """Everything a fit needs, read on the main thread. joints: (T, 22, 3) at ``fps``."""

    prompt: str
    variation_key: str
    joints: np.ndarray
    fps: float
    model_folder: str
    model_file: str
    model_type: str
    gender: str
    device: str
    steps: int  # L-BFGS steps per chunk; 0: the engine's default
    correctives: bool


@dataclasses.dataclass
class FitOutcome:
    fit: Any  # engine.body.smpl_fit.SMPLFit
    template: Any  # engine.body.smpl_body.BodyTemplate


def run_fit(request: FitRequest, progress: Any) -> FitOutcome:
    """The worker: fit, then the shaped rest template of the fitted betas (no bpy here)."""
    from ..engine.body.smpl_body import body_template
    from ..engine.body.smpl_fit import FitOptions, fit_smpl

    options = FitOptions()
    if request.steps > 0:
        steps = request.steps
        options = dataclasses.replace(
            options, steps=steps, root_steps=min(options.root_steps, steps),
            shape_steps=min(options.shape_steps, steps),
        )  # fmt: skip
    with jobs.threads_beside_blender():
        fit = fit_smpl(request.joints, request.model_folder, request.model_type, request.gender,
                       request.device, request.fps, options, progress)  # fmt: skip
        template = body_template(request.model_folder, request.model_type, request.gender,
                                 fit.betas)  # fmt: skip
    return FitOutcome(fit, template)


def build_fit_request(op: bpy.types.Operator, context: bpy.types.Context) -> FitRequest:
    """Checks (smplx, model file, a variation) and the request; MotionError names the fix."""
    status = body_status(addon_preferences(context))
    if status.problem is not None:
        raise MotionError(status.problem)
    item, clip = variation(context, op.variation)
    from ..engine.retarget.joint_map import resample

    fps = scene_fps(context.scene)
    joints = np.asarray(clip.joints, dtype=np.float64)
    if abs(fps - clip.fps) > 1e-6:  # fit at the scene's rate: the bake keys every frame
        joints = resample(joints, clip.fps, fps)
    prefs = addon_preferences(context)
    return FitRequest(
        prompt=clip.prompt, variation_key=item.key, joints=joints, fps=fps,
        model_folder=status.folder, model_file=str(status.model_file),
        model_type=status.model_type, gender=status.gender,
        device=prefs.device.lower() if prefs else "auto", steps=int(op.steps),
        correctives=status.correctives,
    )  # fmt: skip


def collect_fit(context: bpy.types.Context, job: jobs.Job, report) -> set[str]:
    """Main thread: keep the fit, build or reuse the body, bake; or report why not."""
    try:
        if job.cancelled:
            set_status(context, "Body fit cancelled: nothing was changed")
            report({"WARNING"}, "Body fit cancelled: nothing was changed")
            return {"CANCELLED"}
        if job.error is not None:
            set_status(context, job.error, "ERROR")
            report({"ERROR"}, job.error)
            return {"CANCELLED"}
        request, outcome = job.request, job.result
        try:
            store_fit(fit_key(request.variation_key, request.model_type, request.gender),
                      outcome.fit)  # fmt: skip
            armature, action = _place_and_bake(context, request, outcome, report)
        except (MotionError, OSError) as error:
            set_status(context, str(error), "ERROR")
            report({"ERROR"}, str(error))
            return {"CANCELLED"}
        message = (f"Fitted '{request.prompt}' (mean joint error "
                   f"{outcome.fit.joint_error_m * 100:.1f} cm): action '{action.name}' on "
                   f"{armature.name}")  # fmt: skip
        set_status(context, message)
        report({"INFO"}, message)
        return {"FINISHED"}
    finally:
        end_job(context, job)


def _place_and_bake(context, request: FitRequest, outcome: FitOutcome, report):
    """The body for this shape (reused, else new) with the fit baked on it as new actions."""
    from . import smpl_body
    from .armature import units_per_metre

    scale = units_per_metre(context.scene)
    signature = smpl_body.body_signature(outcome.template, request.model_file, scale,
                                         request.correctives)  # fmt: skip
    found = smpl_body.find_body(context.scene, signature)
    armature, mesh = found or smpl_body.build_body(
        context, outcome.template, signature, request.correctives
    )
    try:
        action, _ = smpl_body.bake_fit(
            context, armature=armature, mesh=mesh, fit=outcome.fit, template=outcome.template,
            action_name=request.prompt, push_to_nla=settings(context).push_to_nla, report=report,
        )  # fmt: skip
    except BaseException:
        if found is None:  # a body made for this bake goes again
            smpl_body.remove_body(armature, mesh)
        raise
    scene = context.scene
    scene.frame_end = max(scene.frame_end, scene.frame_start + len(outcome.fit.poses) - 1)
    return armature, action


# ---- operators -----------------------------------------------------------------------------


class MOTION_OT_fit_body(BackgroundJobOperator, bpy.types.Operator):
    """Fit an SMPL / SMPL-X body to the variation and bake it as a new action (Esc cancels)"""

    bl_idname = "motion.fit_body"
    bl_label = "Fit Body"
    bl_options = {"REGISTER", "UNDO"}

    variation: bpy.props.IntProperty(name="Variation", default=-1, min=-1, options={"SKIP_SAVE"})
    steps: bpy.props.IntProperty(
        name="Steps", default=0, min=0, options={"SKIP_SAVE"},
        description="Optimiser steps per chunk of frames (0: the default, 200)",
    )  # fmt: skip

    def _begin(self, context: bpy.types.Context) -> jobs.Job | None:
        return self._start_job(
            context,
            lambda: jobs.begin(build_fit_request(self, context), run_fit, FIT_LABEL),
            "Fitting a body to '{}'...",
        )

    def _collect(self, context: bpy.types.Context, job: jobs.Job) -> set[str]:
        return collect_fit(context, job, self.report)


class MOTION_OT_export_amass(bpy.types.Operator, ExportHelper):
    """Save the variation's SMPL fit as an AMASS-style .npz (poses, trans, betas, ...)"""

    bl_idname = "motion.export_amass"
    bl_label = "Export AMASS .npz"

    filename_ext = ".npz"
    filter_glob: bpy.props.StringProperty(default="*.npz", options={"HIDDEN"})
    variation: bpy.props.IntProperty(name="Variation", default=-1, min=-1, options={"SKIP_SAVE"})

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        suffix = f"_{body_status(addon_preferences(context)).model_type}{self.filename_ext}"
        self.filepath = self.filepath or export_name(context, self.variation, suffix)
        return ExportHelper.invoke(self, context, event)

    def execute(self, context: bpy.types.Context) -> set[str]:
        from ..engine.io.amass import save_amass

        status = body_status(addon_preferences(context))
        try:
            item, _ = variation(context, self.variation)
            fit = stored_fit(fit_key(item.key, status.model_type, status.gender))
            path = save_amass(self.filepath, fit)
        except (MotionError, OSError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Wrote {path} ({len(fit.poses)} frames at {fit.fps:g} fps)")
        return {"FINISHED"}


# ---- panel ---------------------------------------------------------------------------------


class KINETEXT_PT_smpl_body(bpy.types.Panel):
    bl_label = "SMPL Body"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = CATEGORY
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        panel, state = settings(context), runtime(context)
        status = body_status(addon_preferences(context))
        if status.problem is not None:
            box = layout.box()
            draw_wrapped(box, status.problem, "ERROR", True, chars_per_line(context))
            box.operator("preferences.addon_show", text="Open Preferences").module = ADDON_ID
        else:
            model = "SMPL-X" if status.model_type == "smplx" else "SMPL"
            layout.label(text=f"{model}, {status.gender}: {status.model_file.name}",
                         icon="OUTLINER_OB_ARMATURE")  # fmt: skip
        job = jobs.current()
        if state.running and job is not None and job.label == FIT_LABEL:
            row = layout.row(align=True)
            row.progress(factor=state.progress, type="BAR", text=f"{state.progress:.0%}")
            row.operator("motion.cancel_generation", text="", icon="CANCEL")
        entries = panel.variation_list
        index = panel.active_variation
        active = entries[index] if 0 <= index < len(entries) else None
        row = layout.row()
        row.scale_y = 1.4
        row.enabled = status.ready and active is not None and not state.running
        row.operator(MOTION_OT_fit_body.bl_idname, icon="OUTLINER_OB_ARMATURE").variation = -1
        row = layout.row()
        key = fit_key(active.key, status.model_type, status.gender) if active else None
        row.enabled = key is not None and has_fit(key)
        row.operator(MOTION_OT_export_amass.bl_idname, icon="EXPORT").variation = -1


classes = (MOTION_OT_fit_body, MOTION_OT_export_amass, KINETEXT_PT_smpl_body)


register_classes, unregister_classes = bpy.utils.register_classes_factory(classes)


def register() -> None:
    register_classes()


def unregister() -> None:
    unregister_classes()
    _FITS.clear()
