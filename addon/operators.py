"""Operators: generate (background job), cancel, preview, bake, export BVH, list upkeep.

Each operator gathers its inputs, calls one function that does the work, and turns the
engine's ``MotionError`` into ``self.report({'ERROR'}, ...)`` with the scene left as it was
(STYLE: io_anim_bvh, rigify). Generation runs to completion when called from a script
(``execute``) and as a modal operator when pressed in the panel (``invoke``): the engine
works in its own process (``engine_process``), a thread waits for it and stores the clips,
a timer polls the progress, Esc ends the operator at once, and only this main thread
touches Blender data, to list the clips once they are in.
"""

from __future__ import annotations

import random

import bpy
import numpy as np
from bpy_extras.io_utils import ExportHelper

from ..engine.errors import MotionError
from . import deps, engine_process, jobs, knowledge, preferences, results
from .job_operator import BackgroundJobOperator, end_job
from .paths import results_folder
from .properties import GENERATOR_NAMES, scene_fps, set_status, settings

PREVIEW_NAME = "Kinetext Preview"
_PANEL = "When not given, the Kinetext panel's value"
_ARG = {"SKIP_SAVE"}


# ---- generate ------------------------------------------------------------------------------


def build_request(op: bpy.types.Operator, context: bpy.types.Context) -> jobs.Request:
    """A job request from the operator's own arguments, falling back to the panel's settings."""
    panel = settings(context)

    def value(name: str):  # an argument given to the operator wins over the panel's value
        return getattr(op, name) if op.properties.is_property_set(name) else getattr(panel, name)

    prompt = value("prompt").strip()
    if not prompt:
        raise MotionError("the prompt is empty: type what the character should do")
    absent = deps.missing()
    if absent:
        raise MotionError(deps.missing_message(absent))
    checkpoint, revision, device = preferences.engine_choice(context)
    guidance, steps = value("guidance"), value("steps")
    return jobs.Request(
        prompt=prompt, seconds=float(value("seconds")), seed=int(value("seed")),
        variations=int(value("variations")), guidance=float(guidance) if guidance else None,
        steps=int(steps) if steps else None, generator=GENERATOR_NAMES[value("generator")],
        checkpoint=checkpoint, revision=revision, device=device,
        offline=not bpy.app.online_access, clean=bool(value("clean_motion")),
    )  # fmt: skip


def begin_generation(request: jobs.Request) -> jobs.Job:
    """The current job for ``request``: generate in the engine process, then store the clips,
    both in the job's worker thread; only listing them is left for the main thread."""
    folder = results_folder()  # bpy: read here, on the main thread

    def work(request: jobs.Request, progress: jobs.Progress) -> results.Stored:
        return results.put_motion(engine_process.ENGINE.generate(request, progress), folder)

    return jobs.begin(request, work)


def add_variations(context: bpy.types.Context, stored: results.Stored) -> int:
    """List each stored clip in the panel (main thread only); how many."""
    panel = settings(context)
    motion = stored.motion
    first, count = len(panel.variation_list), len(stored.keys)
    seed = int(motion.diagnostics.get("seed", 0))
    folder = results_folder()
    for i, (key, prompt) in enumerate(zip(stored.keys, motion.prompts, strict=True)):
        item = panel.variation_list.add()
        item.key, item.prompt, item.seed = key, prompt, seed
        item.frames, item.fps = motion.num_frames, motion.fps
        item.name = f"{prompt[:40]} ({i + 1}/{count}, seed {seed})"
        results.embed(item, results.get(key, folder))  # the .blend keeps what a bake needs
    panel.active_variation = first
    return count


def push_undo(message: str) -> None:
    """An undo step for what was just done. Generate is not an undo operator (Blender would
    then offer "Adjust Last Operation", which re-runs a whole generation synchronously), so
    the step that changes the file, listing the clips, pushes its own."""
    if bpy.ops.ed.undo_push.poll():
        bpy.ops.ed.undo_push(message=message)


def list_clip(context: bpy.types.Context, clip: results.Clip, name: str) -> int:
    """Add ``clip`` to the variation list (stored in the .blend and the cache); its index."""
    panel = settings(context)
    item = panel.variation_list.add()
    item.key = results.put(clip, results_folder())
    results.embed(item, clip)
    item.prompt, item.seed, item.frames, item.fps = clip.prompt, clip.seed, clip.frames, clip.fps
    item.name = name
    return len(panel.variation_list) - 1


def collect(context: bpy.types.Context, job: jobs.Job, report) -> set[str]:
    """Main thread: turn a finished job into list entries, or report why there are none.

    Whatever happened, the job stops being the current one, so Generate works again.
    """
    try:
        if job.cancelled:
            set_status(context, "Generation cancelled: nothing was changed")
            report({"WARNING"}, "Generation cancelled: nothing was changed")
            return {"CANCELLED"}
        if job.error is not None:
            set_status(context, job.error, "ERROR")
            report({"ERROR"}, job.error)
            return {"CANCELLED"}
        count = add_variations(context, job.result)
        push_undo("Generate Motion")
        motion = job.result.motion
        note = motion.diagnostics.get("length_note")
        message = f"{count} variation(s) of {motion.seconds:.1f} s ready"
        report({"INFO"}, message)
        unread = motion.diagnostics.get("prompt_notes", [])
        matches = motion.diagnostics.get("knowledge")  # None: the checkpoint does not say
        knowledge.remember(job.request, matches)
        unlike = [m["warning"] for m in matches or [] if m.get("warning")]
        for warning in unread + unlike:  # unread words changed nothing; unlike: never learned
            report({"WARNING"}, warning)
        warnings = [w[0].upper() + w[1:] for w in unread + unlike]
        status = [message + (f" ({note})" if note else ""), *warnings]
        set_status(context, ". ".join(status), "WARNING" if warnings else "INFO")
        return {"FINISHED"}
    finally:
        end_job(context, job)


class SamplingArguments:
    """The sampling arguments every generating operator takes (Generate, the Timeline's);
    unset ones take the panel's values (SKIP_SAVE: never remembered between calls)."""

    seed: bpy.props.IntProperty(name="Seed", min=0, description=_PANEL, options=_ARG)
    guidance: bpy.props.FloatProperty(
        name="Guidance", min=0.0, description=_PANEL + "; 0: the checkpoint's", options=_ARG
    )
    steps: bpy.props.IntProperty(
        name="Steps", min=0, description=_PANEL + "; 0: the checkpoint's", options=_ARG
    )
    generator: bpy.props.EnumProperty(
        name="Generator", items=[(k, k.title(), "") for k in GENERATOR_NAMES], default="AUTO",
        description=_PANEL, options=_ARG,
    )  # fmt: skip
    clean_motion: bpy.props.BoolProperty(
        name="Clean body", default=True, description=_PANEL, options=_ARG
    )


class MOTION_OT_generate(SamplingArguments, BackgroundJobOperator, bpy.types.Operator):
    """Generate motion from the prompt; Blender stays usable while it runs (Esc cancels)"""

    bl_idname = "motion.generate"
    bl_label = "Generate"
    bl_options = set()  # not REGISTER/UNDO: no redo re-running it; collect pushes the undo

    # Unset arguments take the panel's values (SKIP_SAVE: never remembered between calls).
    prompt: bpy.props.StringProperty(name="Prompt", description=_PANEL, options=_ARG)
    seconds: bpy.props.FloatProperty(name="Seconds", default=4.0, description=_PANEL, options=_ARG)
    variations: bpy.props.IntProperty(
        name="Variations", default=1, min=1, description=_PANEL, options=_ARG
    )

    def _begin(self, context: bpy.types.Context) -> jobs.Job | None:
        status = "Generating '{}'..."
        if not engine_process.ENGINE.running:  # say why the first one takes longer
            status += " (the first generation starts the engine: a few seconds more)"
        return self._start_job(
            context, lambda: begin_generation(build_request(self, context)), status
        )

    def _collect(self, context: bpy.types.Context, job: jobs.Job) -> set[str]:
        return collect(context, job, self.report)


class MOTION_OT_cancel_generation(bpy.types.Operator):
    """Stop the running generation (nothing in the scene changes)"""

    bl_idname = "motion.cancel_generation"
    bl_label = "Cancel"

    def execute(self, context: bpy.types.Context) -> set[str]:
        if not jobs.cancel_current():
            self.report({"WARNING"}, "No generation is running")
            return {"CANCELLED"}
        set_status(context, "Cancelling...")
        return {"FINISHED"}


class MOTION_OT_randomize_seed(bpy.types.Operator):
    """Pick a new random seed"""

    bl_idname = "motion.randomize_seed"
    bl_label = "Randomize Seed"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings(context).seed = random.randrange(2**31 - 1)
        return {"FINISHED"}


# ---- using a variation ---------------------------------------------------------------------


def variation(context: bpy.types.Context, index: int) -> tuple[object, results.Clip]:
    """The list entry ``index`` (-1: the active one) and its clip."""
    panel = settings(context)
    entries = panel.variation_list
    index = panel.active_variation if index < 0 else index
    if not 0 <= index < len(entries):
        raise MotionError(
            f"no variation {index + 1}: the list has {len(entries)} (press Generate first)"
            if entries
            else "no variations yet: type a prompt and press Generate"
        )
    return entries[index], results.clip_of(entries[index], results_folder())


def export_name(context: bpy.types.Context, index: int, suffix: str) -> str:
    """A file name for exporting variation ``index`` (-1: the active one): its prompt,
    cleaned, then ``suffix``; "" when there is no such variation."""
    entries = settings(context).variation_list
    index = settings(context).active_variation if index < 0 else index
    if not 0 <= index < len(entries):
        return ""
    return bpy.path.clean_name(entries[index].prompt)[:60] + suffix


def target_armature(context: bpy.types.Context, name: str) -> bpy.types.Object:
    """The armature named ``name``, else the panel's target, else the active armature."""
    if name:
        obj = bpy.data.objects.get(name)
        if obj is None or obj.type != "ARMATURE":
            raise MotionError(f"no armature object named {name!r} in this file")
        return obj
    obj = settings(context).target or context.active_object
    if obj is None or obj.type != "ARMATURE":
        raise MotionError(
            "no armature selected: pick the target armature in the Kinetext panel or select one"
        )
    return obj


class MOTION_OT_preview(bpy.types.Operator):
    """Show the variation on the canonical 22-bone skeleton (a new action each time)"""

    bl_idname = "motion.preview"
    bl_label = "Preview"
    bl_options = {"REGISTER", "UNDO"}

    variation: bpy.props.IntProperty(name="Variation", default=-1, min=-1, options={"SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        from . import armature, bake

        try:
            item, clip = variation(context, self.variation)
            obj = context.scene.objects.get(PREVIEW_NAME)
            if obj is None or not armature.is_canonical(obj):
                obj = armature.create_canonical_armature(context, name=PREVIEW_NAME)
            previous = _actions_on(obj)
            action = bake.bake(
                context, armature=obj, joints=clip.joints, contacts=clip.foot_contacts,
                features=clip.features,  # a 272 clip's rotations give the bones their twist
                fps=clip.fps, preset="smplx", root_motion="hips", foot_cleanup=False,
                action_name=clip.prompt, push_to_nla=False, report=self.report,
            )  # fmt: skip
        except MotionError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        _forget_previous_preview(obj, previous)
        _show_clip_range(context, clip)
        self.report({"INFO"}, f"Previewing '{item.name}' on {obj.name} ({action.name})")
        return {"FINISHED"}


class MOTION_OT_bake(bpy.types.Operator):
    """Bake the variation onto the armature as a new action (your own keys stay as they are)"""

    bl_idname = "motion.bake"
    bl_label = "Bake"
    bl_options = {"REGISTER", "UNDO"}

    # Empty / -1: the panel's choice (armature: the panel's target, else the active one).
    armature: bpy.props.StringProperty(name="Armature", options={"SKIP_SAVE"})
    preset: bpy.props.StringProperty(name="Bone map", options={"SKIP_SAVE"})
    variation: bpy.props.IntProperty(name="Variation", default=-1, min=-1, options={"SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            item, clip = variation(context, self.variation)
            obj = target_armature(context, self.armature)
            action = bake_clip(context, obj, clip, self.preset, self.report)
        except MotionError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        _show_clip_range(context, clip)
        self.report({"INFO"}, f"Baked '{item.name}' onto {obj.name} as action '{action.name}'")
        return {"FINISHED"}


def bake_clip(
    context: bpy.types.Context, obj: bpy.types.Object, clip: results.Clip, preset: str,
    report, frame_start: int | None = None, name: str | None = None,
) -> bpy.types.Action:  # fmt: skip
    """Bake ``clip`` onto ``obj`` with the Bake to Rig panel's settings (``preset``: a bone map
    name, "" for the panel's), as a new action that keeps the clip (``results.embed_in_action``)
    so that a range of it can be regenerated later."""
    from . import bake

    panel = settings(context)
    start = context.scene.frame_start if frame_start is None else int(frame_start)
    # bake checks everything before touching the scene and undoes a failed write
    action = bake.bake(
        context, armature=obj, joints=clip.joints, contacts=clip.foot_contacts,
        features=clip.features,  # a 272 clip's rotations give the bones their twist
        fps=clip.fps, preset=preset or panel.preset,
        root_motion=panel.root_motion.lower(), foot_cleanup=panel.foot_cleanup,
        action_name=name or clip.prompt, push_to_nla=panel.push_to_nla, report=report,
        frame_start=start,
        key_tolerance=bake.KeyTolerance(panel.key_degrees, panel.key_cm)
        if panel.key_reduction else None,
    )  # fmt: skip
    results.embed_in_action(action, clip, start, scene_fps(context.scene))
    return action


class MOTION_OT_export_bvh(bpy.types.Operator, ExportHelper):
    """Save the variation as a BVH file (the canonical skeleton, metres, Y up)"""

    bl_idname = "motion.export_bvh"
    bl_label = "Export BVH"

    filename_ext = ".bvh"
    filter_glob: bpy.props.StringProperty(default="*.bvh", options={"HIDDEN"})
    variation: bpy.props.IntProperty(name="Variation", default=-1, min=-1, options={"SKIP_SAVE"})
    scale: bpy.props.FloatProperty(
        name="Scale", default=1.0, min=0.001, max=1000.0,
        description="Units per metre in the file (100 writes centimetres)",
    )  # fmt: skip
    fps: bpy.props.FloatProperty(
        name="Frame rate", default=0.0, min=0.0, max=240.0,
        description="Frames per second in the file (0: the scene's, e.g. 24, 30 or 29.97); "
        "the clip is resampled to it",
    )  # fmt: skip

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        self.filepath = self.filepath or export_name(context, self.variation, self.filename_ext)
        return ExportHelper.invoke(self, context, event)

    def execute(self, context: bpy.types.Context) -> set[str]:
        from ..engine.io.bvh import canonical_bvh, write_bvh
        from ..engine.retarget.joint_map import resample

        try:
            _, clip = variation(context, self.variation)
            fps = self.fps or scene_fps(context.scene)
            joints = resample(clip.joints, clip.fps, fps) if fps != clip.fps else clip.joints
            write_bvh(self.filepath, canonical_bvh(joints, fps, scale=self.scale))
        except (MotionError, OSError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Wrote {self.filepath}")
        return {"FINISHED"}


EDITS = [
    ("MIRROR", "Mirror", "Swap left and right (a right-hand wave becomes a left-hand one)"),
    ("LOOP", "Loop", "Cut where the body is back in its first pose and ease the end into the "
     "start, keeping the root motion, so the clip cycles"),
    ("SPEED", "Speed", "Retime by the speed factor (2: twice as fast)"),
]  # fmt: skip


class MOTION_OT_edit_variation(bpy.types.Operator):
    """Add an edited copy of the variation to the list (the original stays as it is)"""

    bl_idname = "motion.edit_variation"
    bl_label = "Edit Variation"
    bl_options = {"REGISTER", "UNDO"}

    edit: bpy.props.EnumProperty(name="Edit", items=EDITS, default="MIRROR")
    variation: bpy.props.IntProperty(name="Variation", default=-1, min=-1, options={"SKIP_SAVE"})
    speed: bpy.props.FloatProperty(
        name="Speed", default=0.0, min=0.0, max=10.0, options={"SKIP_SAVE"},
        description=_PANEL + " (0)",
    )  # fmt: skip

    def execute(self, context: bpy.types.Context) -> set[str]:
        from ..engine.edit import clip_edit

        try:
            item, clip = variation(context, self.variation)
            if self.edit == "MIRROR":
                edit = clip_edit.mirror(clip.joints, clip.foot_contacts)
            elif self.edit == "LOOP":
                edit = clip_edit.loop(clip.joints, clip.foot_contacts, clip.fps)
            else:
                factor = self.speed or settings(context).speed
                edit = clip_edit.retime(clip.joints, clip.foot_contacts, clip.fps, factor)
        except MotionError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        edited = results.Clip(
            edit.joints.astype(np.float32), None, clip.fps, clip.prompt, clip.seed,
            {**clip.info, "edits": [*clip.info.get("edits", []), edit.note]},
            None if edit.contacts is None else edit.contacts.astype(np.float32),
        )  # fmt: skip
        index = list_clip(context, edited, f"{item.name} ({edit.note})")
        settings(context).active_variation = index
        self.report({"INFO"}, f"Added '{item.name}' {edit.note} ({edited.frames} frames)")
        return {"FINISHED"}


class MOTION_OT_clear_variations(bpy.types.Operator):
    """Empty the list of variations (undo brings them back)"""

    bl_idname = "motion.clear_variations"
    bl_label = "Clear Variations"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        # The clips stay in the results store: undo restores entries that point at them.
        settings(context).variation_list.clear()
        settings(context).active_variation = 0
        return {"FINISHED"}


def _actions_on(obj: bpy.types.Object) -> list[bpy.types.Action]:
    anim = obj.animation_data
    if anim is None:
        return []
    strips = [s.action for t in anim.nla_tracks for s in t.strips if s.action]
    return ([anim.action] if anim.action else []) + strips


def _forget_previous_preview(obj: bpy.types.Object, previous: list[bpy.types.Action]) -> None:
    """The preview armature is ours: a new preview replaces its clip rather than stashing it."""
    anim = obj.animation_data
    for track in [t for t in anim.nla_tracks if any(s.action in previous for s in t.strips)]:
        anim.nla_tracks.remove(track)
    for action in previous:
        if action.users == 0:
            bpy.data.actions.remove(action)


def _show_clip_range(context: bpy.types.Context, clip: results.Clip) -> None:
    """Let the timeline cover the baked clip (it starts at the scene's start frame)."""
    scene = context.scene
    frames = round(clip.frames * scene_fps(scene) / clip.fps)
    scene.frame_end = max(scene.frame_end, scene.frame_start + frames - 1)


classes = (
    MOTION_OT_generate,
    MOTION_OT_cancel_generation,
    MOTION_OT_randomize_seed,
    MOTION_OT_preview,
    MOTION_OT_bake,
    MOTION_OT_export_bvh,
    MOTION_OT_edit_variation,
    MOTION_OT_clear_variations,
)


register_classes, unregister_classes = bpy.utils.register_classes_factory(classes)


def register() -> None:
    register_classes()


def unregister() -> None:
    jobs.shutdown(wait=5.0)  # a worker must not outlive the add-on's code
    knowledge.shutdown()
    engine_process.ENGINE.stop()
    unregister_classes()
    results.clear_memory()
