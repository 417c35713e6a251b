"""Registering the add-on adds its classes and properties; unregistering leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")

from addon_helpers import enabled, preferences  # noqa: E402

CLASSES = [
    "KINETEXT_AP_preferences", "KINETEXT_PG_variation", "KINETEXT_PG_settings",
    "KINETEXT_PG_runtime", "KINETEXT_UL_variations", "KINETEXT_PT_generate",
    "KINETEXT_PT_knowledge",
    "KINETEXT_PT_variations", "KINETEXT_PT_bake", "MOTION_OT_generate",
    "MOTION_OT_cancel_generation", "MOTION_OT_randomize_seed", "MOTION_OT_preview",
    "MOTION_OT_bake", "MOTION_OT_export_bvh", "MOTION_OT_edit_variation",
    "MOTION_OT_clear_variations",
    "MOTION_OT_install_dependencies", "KINETEXT_PG_bone_pair", "KINETEXT_PG_bone_map",
    "MOTION_OT_bone_map_load", "MOTION_OT_bone_map_save", "KINETEXT_PT_bone_map",
    "MOTION_OT_fit_body", "MOTION_OT_export_amass", "KINETEXT_PT_smpl_body",
    "MOTION_OT_get_molingo", "MOTION_OT_download_molingo",
    "KINETEXT_PG_segment", "KINETEXT_UL_segments", "KINETEXT_PT_timeline",
    "MOTION_OT_timeline_segment", "MOTION_OT_generate_sequence", "MOTION_OT_regenerate_range",
]  # fmt: skip
REPO_ROOT = Path(__file__).resolve().parents[2]


def registered_classes() -> list[str]:
    """Names of the add-on's classes Blender knows now (property groups and preferences are
    not listed in bpy.types, so each class is asked)."""
    from kinetext.addon import (
        bone_maps,
        molingo_get,
        operators,
        panel,
        preferences,
        properties,
        smpl_operators,
        timeline,
    )

    modules = (preferences, properties, operators, timeline, panel, bone_maps, smpl_operators,
               molingo_get)  # fmt: skip
    return sorted(c.__name__ for m in modules for c in m.classes if c.is_registered)


def footprint() -> dict:
    """Everything an add-on can leave in Blender or Python once unregistered."""
    wm = bpy.context.window_manager
    keyconfig = wm.keyconfigs.addon
    return {
        "types": sorted(n for n in dir(bpy.types) if n.startswith(("KINETEXT_", "MOTION_OT_"))),
        "classes": registered_classes(),
        "scene": [n for n in ("kinetext", "kinetext_bone_map") if hasattr(bpy.types.Scene, n)],
        "window_manager": hasattr(bpy.types.WindowManager, "kinetext"),
        "keymap_items": sum(len(km.keymap_items) for km in keyconfig.keymaps) if keyconfig else 0,
        "handlers": {
            name: len(getattr(bpy.app.handlers, name))
            for name in dir(bpy.app.handlers)
            if isinstance(getattr(bpy.app.handlers, name), list)
        },
        "sys_path": list(sys.path),
        "threads": sorted(t.name for t in threading.enumerate() if t.name.startswith("kinetext")),
    }


def test_register_adds_everything_and_unregister_takes_it_back(addon_pkg, tmp_path):
    with enabled(addon_pkg):  # imports the modules once, so that classes can be listed
        pass
    before = footprint()
    assert not before["types"] and not before["classes"] and not before["scene"]
    for _ in range(2):  # a second cycle proves unregister left nothing that blocks it
        with enabled(addon_pkg):
            assert registered_classes() == sorted(CLASSES)
            assert bpy.ops.motion.generate.get_rna_type().identifier == "MOTION_OT_generate"
            settings = bpy.context.scene.kinetext
            assert (settings.seconds, settings.variations, settings.root_motion) == (4.0, 2, "HIPS")
            assert bpy.context.window_manager.kinetext.running is False
            preferences().site_packages = str(tmp_path)  # added to sys.path ...
            assert str(tmp_path) in sys.path
        assert footprint() == before  # ... and taken off again


def test_unregister_stops_a_running_generation(addon_pkg, monkeypatch):
    from kinetext.addon import jobs

    started = threading.Event()

    def endless(request, progress):  # stands in for the engine: steps until cancelled
        started.set()
        step = 0
        while True:
            step += 1
            progress(step, 10**9)

    monkeypatch.setattr(jobs, "generate", endless)
    with enabled(addon_pkg):
        request = jobs.Request("a person walks", 2.0, 0, 1, None, None, None, None, None, "cpu")
        job = jobs.begin(request)
        job.start()
        assert started.wait(5)
    assert job.done and job.cancelled and jobs.current() is None
    assert not [t for t in threading.enumerate() if t.name == "kinetext-generate"]


def test_registers_and_explains_without_torch(tmp_path):
    """With torch and friends unimportable, the add-on still registers, its panel says what
    is missing, and Generate refuses with the fix instead of crashing."""
    script = textwrap.dedent(
        f"""
        import importlib.abc, os, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {{"torch", "transformers", "scipy"}}:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        sys.meta_path.insert(0, Block())
        os.symlink({str(REPO_ROOT)!r}, {str(tmp_path / "kinetext")!r})
        sys.path.insert(0, {str(tmp_path)!r})
        import bpy
        from types import SimpleNamespace
        from kinetext import addon
        from kinetext.addon import bone_maps, deps, panel, properties, smpl_operators
        class Layout:  # accepts any drawing call
            def __getattr__(self, name):
                return lambda *args, **kwargs: self
        addon.register()
        missing = [r.package for r in deps.missing()]
        panels = tuple(c for c in panel.classes if issubclass(c, bpy.types.Panel))
        for drawn in panels + (bone_maps.KINETEXT_PT_bone_map,
                               smpl_operators.KINETEXT_PT_smpl_body):
            drawn.draw(SimpleNamespace(layout=Layout()), bpy.context)
        presets = [item[0] for item in properties.preset_items(None, bpy.context)]
        try:
            bpy.ops.motion.generate(prompt="a person walks")
            outcome = "generated"
        except RuntimeError as error:
            outcome = str(error)
        try:
            bpy.ops.motion.generate_sequence(timeline="a person walks#2")
            sequence = "generated"
        except RuntimeError as error:
            sequence = str(error)
        addon.unregister()
        print("MISSING", missing)
        print("OUTCOME", outcome)
        print("SEQUENCE", sequence.replace(chr(10), " "))
        print("TORCH_IMPORTED", "torch" in sys.modules)
        print("PRESETS", " ".join(presets))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    keys = ("MISSING ", "OUTCOME ", "SEQUENCE ", "TORCH_IMPORTED ", "PRESETS ")
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if line.startswith(keys))
    assert lines["MISSING"] == "['torch', 'transformers', 'scipy']"
    assert "Kinetext needs torch, transformers, scipy" in lines["OUTCOME"]
    assert "Install Dependencies" in lines["OUTCOME"]
    assert "Kinetext needs torch, transformers, scipy" in lines["SEQUENCE"]  # the timeline too
    assert lines["TORCH_IMPORTED"] == "False"
    assert lines["PRESETS"] == (
        "AUTO mixamo rigify rigify_fk unreal smplx bandai_namco biped character_creator"
    )


def _sibling_imports(folder: Path) -> dict[str, set[str]]:
    """Module -> the add-on modules it imports (``from . import x``, ``from .x import y``),
    at the top or inside functions alike."""
    import ast

    modules = {p.stem for p in folder.glob("*.py")} - {"__init__"}
    graph: dict[str, set[str]] = {}
    for name in modules:
        tree = ast.parse((folder / f"{name}.py").read_text(encoding="utf-8"))
        found: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    found.add(node.module.split(".")[0])
                else:
                    found.update(alias.name for alias in node.names)
        graph[name] = (found & modules) - {name}
    return graph


def test_the_addon_modules_import_each_other_without_a_circle():
    """Paths, drawing helpers, the modal job base and the SMPL status have their own
    modules, so no add-on module needs one that (through others) needs it back."""
    graph = _sibling_imports(REPO_ROOT / "addon")
    state: dict[str, int] = {}  # 1: being visited, 2: done

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for other in sorted(graph[module]):
            assert state.get(other) != 1, " -> ".join([*trail, module, other])
            if other not in state:
                visit(other, [*trail, module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    assert {"paths", "ui", "job_operator", "smpl_status"} <= set(graph)
