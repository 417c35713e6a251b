"""Add-on preferences: dependencies (status, install, an existing folder), checkpoint, device,
and the optional SMPL body (the user's model folder, model type, gender).

Settings that belong to the machine rather than to a .blend file live here: where torch comes
from, which checkpoint to load and on which device, where the user's SMPL model files are.
The Install button runs pip with Blender's own Python into the extension's private user
folder, and only when Blender's online access allows it. It never installs ``smplx``: its
licence is non-commercial, so it stays the user's own choice, like the model files.
"""

from __future__ import annotations

import sys
from pathlib import Path

import bpy
import numpy

from ..engine.errors import MotionError
from . import deps, molingo_get, smpl_status
from .paths import ADDON_ID, user_folder
from .paths import addon_preferences as get

CHECKPOINT_SOURCES = [
    ("EMBEDDED", "Embedded", "The checkpoint shipped inside the extension"),
    ("FOLDER", "Folder", "A checkpoint folder on this computer (config.json + safetensors)"),
    ("HUB", "Hugging Face", "A Hugging Face Hub repo id 'owner/name', downloaded once"),
]
DEVICES = [
    ("AUTO", "Auto", "CUDA if present, else Apple MPS, else the CPU"),
    ("CUDA", "CUDA", "An NVIDIA GPU"),
    ("MPS", "Apple MPS", "The GPU of an Apple silicon Mac"),
    ("CPU", "CPU", "The processor (slowest, always there)"),
]
SMPL_MODELS = [
    ("SMPL", "SMPL", "SMPL: 24 joints, 6890 vertices (SMPL_<GENDER>.npz / .pkl)"),
    ("SMPLX", "SMPL-X", "SMPL-X: 55 joints with face and fingers (SMPLX_<GENDER>.npz / .pkl)"),
]
SMPL_GENDERS = [
    ("NEUTRAL", "Neutral", "The gender-neutral model"),
    ("FEMALE", "Female", "The female model"),
    ("MALE", "Male", "The male model"),
]
TORCH_BUILDS = [
    ("CPU", "CPU", "The smaller torch build without CUDA (about 200 MB)"),
    ("CUDA", "CUDA", "The torch build for NVIDIA GPUs (several GB)"),
]


def engine_choice(context: bpy.types.Context) -> tuple[Path | str | None, str | None, str]:
    """(checkpoint folder or Hub id or None, Hub revision or None, device) from preferences.

    A folder comes back as a ``Path``, so the engine never takes it for a Hub id, even when
    it reads like one ("ckpts/mine"); see ``checkpoint_folder``.
    """
    prefs = get(context)
    if prefs is None:
        return None, None, "auto"
    device = prefs.device.lower()
    if prefs.checkpoint_source == "FOLDER":
        return checkpoint_folder(prefs.checkpoint_folder), None, device
    if prefs.checkpoint_source == "HUB":
        repo = prefs.hub_repo.strip()
        if not repo:
            raise MotionError(
                "no Hugging Face repo id given: type one ('owner/name') in Preferences > "
                "Add-ons > Kinetext, or switch the checkpoint to Embedded"
            )
        return repo, prefs.hub_revision.strip() or None, device
    return None, None, device


def checkpoint_folder(text: str) -> Path:
    """The preferences' checkpoint folder as an absolute path.

    "//" is Blender's "next to this .blend file"; with the file not saved yet there is no
    such folder, and ``bpy.path.abspath`` would silently drop the "//". Other relative paths
    are relative to Blender's working folder, made absolute so a message can say where.
    """
    text = text.strip()
    if not text:
        raise MotionError(
            "no checkpoint folder chosen: set one in Preferences > Add-ons > Kinetext, "
            "or switch the checkpoint to Embedded"
        )
    if text.startswith("//") and not bpy.data.filepath:
        raise MotionError(
            f"checkpoint folder {text}: '//' means the folder of the .blend file, and this "
            "file is not saved yet: save it, or choose the folder with its full path"
        )
    return Path(bpy.path.abspath(text)).expanduser().absolute()


def _site_packages_changed(self: KINETEXT_AP_preferences, _context: bpy.types.Context) -> None:
    if self.site_packages.strip():
        deps.add_to_path(bpy.path.abspath(self.site_packages.strip()))


class KINETEXT_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    site_packages: bpy.props.StringProperty(
        name="Existing site-packages",
        description="A folder that already holds torch and the other packages (another Python's "
        "site-packages, same Python version as Blender's)",
        subtype="DIR_PATH",
        update=_site_packages_changed,
    )
    torch_build: bpy.props.EnumProperty(
        name="Torch build", items=TORCH_BUILDS, default="CPU",
        description="Which torch the Install button downloads",
    )  # fmt: skip
    checkpoint_source: bpy.props.EnumProperty(
        name="Checkpoint", items=CHECKPOINT_SOURCES, default="EMBEDDED"
    )
    checkpoint_folder: bpy.props.StringProperty(
        name="Folder", subtype="DIR_PATH",
        description="A checkpoint folder written by kinetext-train",
    )  # fmt: skip
    hub_repo: bpy.props.StringProperty(name="Repo id", description="Hub id, e.g. owner/name")
    hub_revision: bpy.props.StringProperty(
        name="Revision", description="Branch, tag or commit (empty: the default branch)"
    )
    device: bpy.props.EnumProperty(name="Device", items=DEVICES, default="AUTO")
    smpl_folder: bpy.props.StringProperty(
        name="SMPL model folder", subtype="DIR_PATH",
        description="The folder of your own SMPL / SMPL-X model files (SMPL_NEUTRAL.npz, "
        "SMPLX_FEMALE.pkl ... here or in its smpl / smplx subfolder); they are licensed to "
        "you and never shipped with Kinetext",
    )  # fmt: skip
    smpl_model: bpy.props.EnumProperty(name="Body model", items=SMPL_MODELS, default="SMPL")
    smpl_gender: bpy.props.EnumProperty(name="Gender", items=SMPL_GENDERS, default="NEUTRAL")
    smpl_correctives: bpy.props.BoolProperty(
        name="Pose correctives", default=True,
        description="Give the body the model's pose-corrective shape keys (keyed per frame), "
        "so elbows and knees bend as in SMPL; off: plain skinning, a lighter file",
    )  # fmt: skip

    molingo_mean_std: bpy.props.StringProperty(
        name="HumanML3D Mean/Std folder", subtype="DIR_PATH",
        description="The folder with HumanML3D's Mean.npy and Std.npy, which the published "
        "MoLingo model was trained to produce (its release does not carry them)",
    )  # fmt: skip
    molingo_tokenizer: bpy.props.StringProperty(
        name="T5 tokenizer folder", subtype="DIR_PATH",
        description="Optional: a local google-t5/t5-large tokenizer folder (empty: fetched "
        "from the Hugging Face Hub)",
    )  # fmt: skip

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        draw_dependencies(layout.box(), self)
        box = layout.box()
        box.label(text="Model", icon="ARMATURE_DATA")
        box.prop(self, "checkpoint_source", expand=True)
        if self.checkpoint_source == "FOLDER":
            box.prop(self, "checkpoint_folder")
        elif self.checkpoint_source == "HUB":
            row = box.row()
            row.prop(self, "hub_repo")
            row.prop(self, "hub_revision")
        box.prop(self, "device")
        molingo_get.draw(layout.box(), self)
        draw_smpl(layout.box(), self, context)


def draw_smpl(box: bpy.types.UILayout, prefs: KINETEXT_AP_preferences, context) -> None:
    """The SMPL body settings and a status line: is smplx there, is the model file found."""
    box.label(text="SMPL body (optional)", icon="OUTLINER_OB_ARMATURE")
    box.prop(prefs, "smpl_folder")
    row = box.row()
    row.prop(prefs, "smpl_model", expand=True)
    row.prop(prefs, "smpl_gender", text="")
    box.prop(prefs, "smpl_correctives")
    status = smpl_status.body_status(prefs)
    for line, ok in status.lines():
        box.label(text=line, icon="CHECKMARK" if ok else "ERROR")


_INSTALL: dict[str, deps.InstallJob] = {}  # the one install job of this session, if any


def install_plan(build: str) -> tuple[Path, list[list[str]]]:
    """The folder and the pip commands that would install what is missing now."""
    target = deps.site_packages_folder(user_folder())
    commands = deps.install_commands(
        target, build, deps.missing(), python=sys.executable,
        numpy_version=numpy.__version__, pip_present=deps.pip_available(),
    )  # fmt: skip
    return target, commands


class MOTION_OT_install_dependencies(bpy.types.Operator):
    """Download the missing Python packages with pip into the extension's own folder"""

    bl_idname = "motion.install_dependencies"
    bl_label = "Install Dependencies"

    _timer = None

    def execute(self, context: bpy.types.Context) -> set[str]:
        job = self._prepare(context)
        if job is None:
            return {"CANCELLED"}
        job.work()  # from a script: wait for pip
        return self._finish(job)

    def invoke(self, context: bpy.types.Context, _event: bpy.types.Event) -> set[str]:
        job = self._prepare(context)
        if job is None:
            return {"CANCELLED"}
        job.start()
        self._timer = context.window_manager.event_timer_add(0.5, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if event.type != "TIMER" or not _INSTALL["job"].done:
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        for area in context.screen.areas if context.screen else ():
            area.tag_redraw()
        return self._finish(_INSTALL["job"])

    def _prepare(self, context: bpy.types.Context) -> deps.InstallJob | None:
        refusal = deps.install_refusal(bpy.app.online_access)
        running = _INSTALL.get("job")
        if refusal is None and running is not None and not running.done:
            refusal = "an installation is already running"
        if refusal is None and not deps.missing():
            self.report({"INFO"}, "Every package Kinetext needs is already installed")
            return None
        if refusal is not None:
            self.report({"ERROR"}, refusal)
            return None
        prefs = get(context)
        target, commands = install_plan(prefs.torch_build if prefs else "CPU")
        target.mkdir(parents=True, exist_ok=True)
        _INSTALL["job"] = deps.InstallJob(commands)
        return _INSTALL["job"]

    def _finish(self, job: deps.InstallJob) -> set[str]:
        if job.error:
            self.report({"ERROR"}, job.error)
            return {"CANCELLED"}
        deps.add_to_path(deps.site_packages_folder(user_folder()))
        absent = deps.missing()
        if absent:
            self.report({"WARNING"}, deps.missing_message(absent))
        else:
            self.report({"INFO"}, "Dependencies installed: Kinetext is ready")
        return {"FINISHED"}


def draw_dependencies(box: bpy.types.UILayout, prefs: KINETEXT_AP_preferences) -> None:
    """What is installed, the Install button (or why it is off) and the folder option."""
    box.label(text="Python packages", icon="SCRIPTPLUGINS")
    column = box.column(align=True)
    for requirement in deps.REQUIREMENTS:
        present = deps.is_present(requirement)
        row = column.row()
        row.label(text=requirement.package, icon="CHECKMARK" if present else "ERROR")
        row.label(text=requirement.why if not present else "found")
    refusal = deps.install_refusal(bpy.app.online_access)
    job = _INSTALL.get("job")
    row = box.row()
    row.prop(prefs, "torch_build")
    row = box.row()
    row.enabled = refusal is None and (job is None or job.done)
    row.operator(MOTION_OT_install_dependencies.bl_idname, icon="IMPORT")
    if job is not None and not job.done:
        box.label(text="Installing... (this takes a few minutes)", icon="TIME")
    elif job is not None and job.error:
        box.label(text=job.error, icon="ERROR")
    if refusal is not None:
        box.label(text="Online access is off: installing is disabled", icon="INFO")
    box.label(text=f"Installs into {deps.site_packages_folder(user_folder())}")
    box.prop(prefs, "site_packages")


classes = (KINETEXT_AP_preferences, MOTION_OT_install_dependencies)


register_classes, unregister_classes = bpy.utils.register_classes_factory(classes)


def register() -> None:
    register_classes()
    deps.add_to_path(deps.site_packages_folder(user_folder()))
    prefs = get(bpy.context)
    if prefs is not None and prefs.site_packages.strip():
        deps.add_to_path(bpy.path.abspath(prefs.site_packages.strip()))


def unregister() -> None:
    unregister_classes()
    deps.remove_added_paths()
    _INSTALL.clear()
