"""The Timeline: several prompts made into one action, and a range of a baked action redone.

``motion.generate_sequence`` makes one clip of the panel's segments (each a prompt and a
length) in the engine process (``engine.sequence.generate_sequence``), lists it with the
variations and bakes it as one new action whose pose markers name the segments.
``motion.regenerate_range`` takes an action that Kinetext baked (the clip is kept inside it,
``results.embed_in_action``), regenerates a frame range under a prompt
(``engine.sequence.inbetween``: every other frame kept exactly) and bakes the result as a new
action beside the old one, which stays in the file: undo, or pick it again, to go back.
Both run in the background like Generate (progress, Esc cancels) and push one undo step.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import bpy
import numpy as np

from ..engine.errors import MotionError
from . import deps, engine_process, jobs, preferences, results
from .job_operator import BackgroundJobOperator, end_job
from .operators import (
    _ARG,
    _PANEL,
    PREVIEW_NAME,
    SamplingArguments,
    add_variations,
    bake_clip,
    push_undo,
)
from .paths import results_folder
from .properties import GENERATOR_NAMES, runtime, scene_fps, set_status, settings

METHOD_NAMES = {"AUTO": None, "INPAINT": "inpaint", "BLEND": "blend"}
SEGMENT_EDITS = [
    ("ADD", "Add", "Add a segment after the active one"),
    ("REMOVE", "Remove", "Remove the active segment"),
    ("UP", "Move up", "Move the active segment one place earlier"),
    ("DOWN", "Move down", "Move the active segment one place later"),
    ("DUPLICATE", "Duplicate", "Copy the active segment after itself"),
]


# ---- the segment list ----------------------------------------------------------------------


class MOTION_OT_timeline_segment(bpy.types.Operator):
    """Add, remove, reorder or duplicate Timeline segments"""

    bl_idname = "motion.timeline_segment"
    bl_label = "Edit Timeline"
    bl_options = {"REGISTER", "UNDO"}

    edit: bpy.props.EnumProperty(name="Edit", items=SEGMENT_EDITS, default="ADD")

    def execute(self, context: bpy.types.Context) -> set[str]:
        panel = settings(context)
        segments, index = panel.segment_list, panel.active_segment
        has_active = 0 <= index < len(segments)
        if self.edit != "ADD" and not has_active:
            self.report({"WARNING"}, "No segment selected")
            return {"CANCELLED"}
        if self.edit in ("ADD", "DUPLICATE"):
            item = segments.add()
            if self.edit == "DUPLICATE":
                item.prompt, item.seconds = segments[index].prompt, segments[index].seconds
            else:
                item.prompt = ""
            target = index + 1 if has_active else len(segments) - 1
            segments.move(len(segments) - 1, target)
            panel.active_segment = target
        elif self.edit == "REMOVE":
            segments.remove(index)
            panel.active_segment = min(index, len(segments) - 1) if segments else 0
        else:
            target = index - 1 if self.edit == "UP" else index + 1
            if not 0 <= target < len(segments):
                return {"CANCELLED"}
            segments.move(index, target)
            panel.active_segment = target
        return {"FINISHED"}


# ---- generate a sequence -------------------------------------------------------------------


def _options(op: bpy.types.Operator, context: bpy.types.Context) -> dict:
    """Sampling settings shared by both requests: the operator's arguments, else the panel's."""
    panel = settings(context)

    def value(name: str):
        return getattr(op, name) if op.properties.is_property_set(name) else getattr(panel, name)

    absent = deps.missing()
    if absent:
        raise MotionError(deps.missing_message(absent))
    checkpoint, revision, device = preferences.engine_choice(context)
    guidance, steps = value("guidance"), value("steps")
    return {
        "seed": int(value("seed")), "guidance": float(guidance) if guidance else None,
        "steps": int(steps) if steps else None, "generator": GENERATOR_NAMES[value("generator")],
        "checkpoint": checkpoint, "revision": revision, "device": device,
        "offline": not bpy.app.online_access, "clean": bool(value("clean_motion")),
    }  # fmt: skip


def sequence_request(op: bpy.types.Operator, context: bpy.types.Context) -> jobs.SequenceRequest:
    """The operator's ``timeline`` text (``prompt#seconds`` lines), else the panel's
    segments; every one checked (a clear error names the first bad one)."""
    from ..engine.timeline import check_segments, parse_timeline  # torch-free

    if op.properties.is_property_set("timeline"):
        segments = check_segments(parse_timeline(op.timeline, "the timeline argument"))
    else:
        entries = settings(context).segment_list
        if not entries:
            raise MotionError("the Timeline is empty: add segments (a prompt and seconds each)")
        for i, entry in enumerate(entries, start=1):
            if not entry.prompt.strip():
                raise MotionError(f"segment {i} has no prompt: type what the character does")
        segments = check_segments([(e.prompt.strip(), float(e.seconds)) for e in entries])
    method = op.method if op.properties.is_property_set("method") else None
    method = method or settings(context).timeline_method
    return jobs.SequenceRequest(
        segments=tuple((s.prompt, s.seconds) for s in segments),
        method=METHOD_NAMES[method], **_options(op, context),
    )  # fmt: skip


def begin_stored(request: jobs.AnyRequest, label: str) -> jobs.Job:
    """A job that runs ``request`` in the engine process and stores the clip it returns."""
    folder = results_folder()  # bpy: read here, on the main thread

    def work(request: jobs.AnyRequest, progress: jobs.Progress) -> results.Stored:
        return results.put_motion(engine_process.ENGINE.generate(request, progress), folder)

    return jobs.begin(request, work, label)


def bake_target(context: bpy.types.Context, name: str) -> bpy.types.Object:
    """The armature to bake a timeline on: ``name``, else the panel's target or the active
    armature, else the canonical preview skeleton (made when missing), so a long generation
    always lands somewhere."""
    from . import armature
    from .operators import target_armature

    if name or settings(context).target is not None:
        return target_armature(context, name)
    active = context.active_object
    if active is not None and active.type == "ARMATURE":
        return active
    obj = context.scene.objects.get(PREVIEW_NAME)
    if obj is None or not armature.is_canonical(obj):
        obj = armature.create_canonical_armature(context, name=PREVIEW_NAME)
    return obj


def add_markers(action: bpy.types.Action, marks: list[tuple[int, str]]) -> None:
    """Pose markers on ``action`` (shown in the Action editor): (frame, name) each."""
    for frame, name in marks:
        marker = action.pose_markers.new(name[:63])
        marker.frame = int(frame)


def segment_markers(context: bpy.types.Context, diagnostics: dict, fps: int, start: int):
    """(scene frame, prompt) where each segment of a generated timeline starts."""
    rate = scene_fps(context.scene)
    return [
        (start + round(s["start_frame"] * rate / fps), s["prompt"])
        for s in diagnostics.get("segments", [])
    ]


class _SamplingArguments(SamplingArguments):
    """Generate's sampling arguments and the rig to bake on."""

    armature: bpy.props.StringProperty(
        name="Armature", description="The rig to bake on (empty: the panel's choice)",
        options=_ARG,
    )  # fmt: skip


class MOTION_OT_generate_sequence(_SamplingArguments, BackgroundJobOperator, bpy.types.Operator):
    """Generate one motion from the Timeline's segments and bake it as one new action whose
    markers name the segments; Blender stays usable while it runs (Esc cancels)"""

    bl_idname = "motion.generate_sequence"
    bl_label = "Generate Sequence"
    bl_options = set()  # as Generate: no redo re-running it; collecting pushes the undo step

    method: bpy.props.EnumProperty(
        name="Join", items=[(k, k.title(), "") for k in METHOD_NAMES], default="AUTO",
        description=_PANEL, options=_ARG,
    )  # fmt: skip
    timeline: bpy.props.StringProperty(
        name="Timeline", options=_ARG,
        description="Segments as 'prompt#seconds' lines (empty: the panel's Timeline)",
    )  # fmt: skip

    def _begin(self, context: bpy.types.Context) -> jobs.Job | None:
        def begin() -> jobs.Job:
            request = sequence_request(self, context)
            bake_target(context, self.armature) if self.armature else None  # refuse a bad name
            runtime(context).segments = len(request.segments)
            return begin_stored(request, "sequence generation")

        job = self._start_job(context, begin, "Generating a sequence: {}...")
        if job is None:
            runtime(context).segments = 0
        return job

    def _collect(self, context: bpy.types.Context, job: jobs.Job) -> set[str]:
        if job.cancelled or job.error is not None:
            return _report_failure(context, job, self.report)
        try:
            stored = job.result
            add_variations(context, stored)
            clip = results.get(stored.keys[0], results_folder())
            obj = bake_target(context, self.armature)
            start = context.scene.frame_start
            action = bake_clip(context, obj, clip, "", self.report, start)
            marks = segment_markers(context, stored.motion.diagnostics, clip.fps, start)
            add_markers(action, marks)
        except MotionError as error:
            set_status(context, str(error), "ERROR")
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        finally:
            end_job(context, job)
        _show_range(context, start, action)
        push_undo("Generate Sequence")
        message = (f"{len(marks)} segments, {clip.frames / clip.fps:.1f} s, baked onto "
                   f"{obj.name} as '{action.name}'")  # fmt: skip
        set_status(context, message)
        self.report({"INFO"}, message)
        return {"FINISHED"}


def _report_failure(context: bpy.types.Context, job: jobs.Job, report) -> set[str]:
    """A cancelled or failed job: say so, change nothing, release the job."""
    try:
        if job.cancelled:
            message = f"{job.label[:1].upper()}{job.label[1:]} cancelled: nothing was changed"
            set_status(context, message)
            report({"WARNING"}, message)
        else:
            set_status(context, job.error, "ERROR")
            report({"ERROR"}, job.error)
        return {"CANCELLED"}
    finally:
        end_job(context, job)


def _show_range(context: bpy.types.Context, start: int, action: bpy.types.Action) -> None:
    """Let the scene's frame range cover the baked action."""
    scene = context.scene
    scene.frame_end = max(scene.frame_end, int(action.frame_range[1]), start)


# ---- regenerate a range --------------------------------------------------------------------


def baked_action(obj: bpy.types.Object) -> tuple[bpy.types.Action, results.Clip, dict]:
    """The action on ``obj`` that Kinetext baked, its clip and how it was baked."""
    anim = obj.animation_data
    action = anim.action if anim is not None else None
    found = results.baked_clip(action)
    if found is None:
        what = f"its action '{action.name}'" if action is not None else "it has no action"
        raise MotionError(
            f"{obj.name}: {what} was not baked by Kinetext (bake a variation or a sequence "
            "first, then pick a range of it)"
        )
    return action, found[0], found[1]


def scene_range(op: bpy.types.Operator, context: bpy.types.Context) -> tuple[int, int]:
    """The frames to regenerate, both included: the operator's, else the preview range or the
    panel's fields (as the panel says)."""
    scene, panel = context.scene, settings(context)
    if op.properties.is_property_set("frame_start") or op.properties.is_property_set("frame_end"):
        return int(op.frame_start), int(op.frame_end)
    if panel.range_source == "PREVIEW":
        if not scene.use_preview_range:
            raise MotionError(
                "the scene has no preview range: set one in the timeline (Ctrl+Alt+P), or "
                "choose Frames and type the range"
            )
        return scene.frame_preview_start, scene.frame_preview_end
    return panel.range_start, panel.range_end


def clip_range(first: int, last: int, bake: dict, clip: results.Clip) -> tuple[int, int]:
    """Scene frames ``first..last`` (included) of an action baked at ``bake`` as the clip's
    frame range ``[start, end)``; MotionError when it is not inside the baked frames."""
    start, frames, rate = int(bake["frame_start"]), int(bake["frames"]), float(bake["fps"])
    final = start + frames - 1
    if last < first:
        raise MotionError(f"the range {first}-{last} is empty: the end must come after the start")
    if first < start or last > final:
        raise MotionError(
            f"frames {first}-{last} are not all inside the baked clip (frames {start}-{final})"
        )
    if first == start and last == final:
        raise MotionError(
            f"frames {first}-{last} are the whole clip: generate a new one instead (a range "
            "keeps the frames around it)"
        )
    begin = round((first - start) * clip.fps / rate)
    end = round((last + 1 - start) * clip.fps / rate)
    return begin, min(max(end, begin + 1), clip.frames)


def keep_outside(old: bpy.types.Action, new: bpy.types.Action, first: int, last: int) -> None:
    """Make every key of ``new`` outside frames ``first..last`` the ``old`` action's own.

    The joints outside the range are already the old clip's exactly, but a bake pins each
    planted foot over its whole run, so a run that crosses into the range would move keys
    far outside it. Each curve of ``new`` gets the old curve's keys outside the range; its
    keys inside are offset by the differences at the two neighbouring frames, faded in and
    out with a smoothstep as ``engine.sequence.join_range`` does for joints, so the curve
    meets the old one at both ends."""
    from bpy_extras import anim_utils

    from .bake import add_curve

    before = _channelbag(old, anim_utils)
    after = _channelbag(new, anim_utils)
    for curve in list(after.fcurves):
        source = before.fcurves.find(curve.data_path, index=curve.array_index)
        if source is None:
            continue
        frames, values = _keys_of(curve)
        old_frames, old_values = _keys_of(source)
        inside = (frames >= first) & (frames <= last)
        span = max(last + 1 - (first - 1), 1)
        s = np.clip((frames[inside] - (first - 1)) / span, 0.0, 1.0)
        s = s * s * (3.0 - 2.0 * s)
        d0 = source.evaluate(first - 1) - curve.evaluate(first - 1)
        d1 = source.evaluate(last + 1) - curve.evaluate(last + 1)
        values = values[inside] + (1 - s) * d0 + s * d1
        outside = (old_frames < first) | (old_frames > last)
        merged = np.concatenate([old_frames[outside], frames[inside]])
        order = np.argsort(merged, kind="stable")
        group = curve.group.name if curve.group is not None else ""
        path, index = curve.data_path, curve.array_index
        after.fcurves.remove(curve)
        combined = np.concatenate([old_values[outside], values])
        add_curve(after, path, index, group, merged[order], combined[order])


def _channelbag(action: bpy.types.Action, anim_utils):
    return anim_utils.action_get_channelbag_for_slot(action, action.slots[0])


def _keys_of(curve) -> tuple[np.ndarray, np.ndarray]:
    co = np.zeros(2 * len(curve.keyframe_points), dtype=np.float32)
    curve.keyframe_points.foreach_get("co", co)
    return co[0::2].astype(np.float64), co[1::2].astype(np.float64)


class MOTION_OT_regenerate_range(_SamplingArguments, BackgroundJobOperator, bpy.types.Operator):
    """Regenerate a frame range of a Kinetext action under a prompt, as a new action: every
    frame outside the range stays as it is (the old action is kept; undo goes back)"""

    bl_idname = "motion.regenerate_range"
    bl_label = "Regenerate Range"
    bl_options = set()  # collecting pushes the undo step

    prompt: bpy.props.StringProperty(name="Prompt", description=_PANEL, options=_ARG)
    frame_start: bpy.props.IntProperty(name="Start", description=_PANEL, options=_ARG)
    frame_end: bpy.props.IntProperty(name="End", description=_PANEL, options=_ARG)

    _target = ""
    _action_name = ""
    _scene_range = (0, 0)
    _frame_start = 0
    _markers: list[tuple[int, str]] = []  # noqa: RUF012 (set per call)

    def _begin(self, context: bpy.types.Context) -> jobs.Job | None:
        def begin() -> jobs.Job:
            from .operators import target_armature

            prompt = self.prompt if self.properties.is_property_set("prompt") else None
            prompt = (prompt if prompt is not None else settings(context).range_prompt).strip()
            if not prompt:
                raise MotionError("the range's prompt is empty: type what happens in it")
            obj = target_armature(context, self.armature)
            action, clip, bake = baked_action(obj)
            first, last = scene_range(self, context)
            begin_frame, end_frame = clip_range(first, last, bake, clip)
            path = Path(tempfile.mkdtemp(prefix="kinetext-range-")) / "clip.npy"
            np.save(path, clip.joints)
            request = jobs.InbetweenRequest(
                prompt=prompt, start_frame=begin_frame, end_frame=end_frame, clip=str(path),
                **_options(self, context),
            )  # fmt: skip
            self._target, self._frame_start = obj.name, int(bake["frame_start"])
            self._action_name, self._scene_range = action.name, (first, last)
            old = [(m.frame, m.name) for m in action.pose_markers]
            self._markers = [*old, (first, prompt)]
            return begin_stored(request, "range regeneration")

        return self._start_job(context, begin, "Regenerating frames: {}...")

    def _collect(self, context: bpy.types.Context, job: jobs.Job) -> set[str]:
        Path(job.request.clip).unlink(missing_ok=True)
        Path(job.request.clip).parent.rmdir()
        if job.cancelled or job.error is not None:
            return _report_failure(context, job, self.report)
        try:
            stored = job.result
            add_variations(context, stored)
            clip = results.get(stored.keys[0], results_folder())
            obj = bpy.data.objects.get(self._target)
            if obj is None:
                raise MotionError(f"the armature '{self._target}' is gone: nothing was baked")
            start, end = job.request.start_frame, job.request.end_frame
            name = f"{self._action_name} ({start}-{end - 1} redone)"
            old = bpy.data.actions.get(self._action_name)
            action = bake_clip(context, obj, clip, "", self.report, self._frame_start, name)
            if old is not None:
                keep_outside(old, action, *self._scene_range)
            add_markers(action, sorted(self._markers))
        except MotionError as error:
            set_status(context, str(error), "ERROR")
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        finally:
            end_job(context, job)
        push_undo("Regenerate Range")
        message = f"Regenerated clip frames {start}-{end - 1} as '{action.name}' on {obj.name}"
        set_status(context, message)
        self.report({"INFO"}, message)
        return {"FINISHED"}


classes = (MOTION_OT_timeline_segment, MOTION_OT_generate_sequence, MOTION_OT_regenerate_range)

register, unregister = bpy.utils.register_classes_factory(classes)
