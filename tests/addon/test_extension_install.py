"""The extension zip: built by addon/build.py (validated by Blender's own tool), it installs
with Blender's extension system into an isolated user folder, enables, and generates.

Installing runs in a subprocess because BLENDER_USER_RESOURCES must be set before bpy is
imported. The subprocess is the test venv's Python, so the installed extension finds the
already-installed torch there even though headless Blender has online access off.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("bpy")

from addon_helpers import save_tiny_checkpoint  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]

INSTALL_AND_GENERATE = """
import json, sys
import bpy

zip_path, checkpoint = sys.argv[1], sys.argv[2]
result = bpy.ops.extensions.package_install_files(
    filepath=zip_path, repo="user_default", enable_on_install=True
)
module = "bl_ext.user_default.kinetext"
addon = bpy.context.preferences.addons.get(module)
prefs = addon.preferences
prefs.checkpoint_source, prefs.checkpoint_folder, prefs.device = "FOLDER", checkpoint, "CPU"
generated = bpy.ops.motion.generate(prompt="a person waves", seconds=1.0, steps=1, variations=1)
entries = bpy.context.scene.kinetext.variation_list
user_folder = bpy.utils.extension_path_user(module)
package = sys.modules[module].__file__
print("RESULT " + json.dumps({
    "install": sorted(result), "enabled": addon is not None, "generate": sorted(generated),
    "variations": [e.name for e in entries], "online_access": bpy.app.online_access,
    "package": package, "user_folder": user_folder,
}))
"""


@pytest.fixture(scope="module")
def build(addon_pkg):
    return importlib.import_module("kinetext.addon.build")


@pytest.fixture(scope="module")
def extension_zip(build, tmp_path_factory):
    return build.build(tmp_path_factory.mktemp("dist"))


def test_build_ships_addon_and_engine_only(extension_zip):
    assert extension_zip.name == "kinetext-0.1.0.zip"
    names = zipfile.ZipFile(extension_zip).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"blender_manifest.toml", "LICENSE", "__init__.py", "addon", "engine"}
    assert "addon/operators.py" in names and "engine/pipeline.py" in names
    sources = [p for pkg in ("addon", "engine") for p in (REPO_ROOT / pkg).rglob("*.py")]
    modules = {p.relative_to(REPO_ROOT).as_posix() for p in sources}
    assert modules - set(names) == set()  # every module, the engine's subpackages included
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    root = zipfile.ZipFile(extension_zip).read("__init__.py").decode()
    assert "from .addon import register, unregister" in root


def test_build_refuses_a_manifest_the_validator_rejects(build, tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("addon", "engine"):
        (root / name).mkdir()
        (root / name / "__init__.py").write_text("", encoding="utf-8")
    (root / "LICENSE").write_text("GPL", encoding="utf-8")
    manifest = (REPO_ROOT / "blender_manifest.toml").read_text(encoding="utf-8")
    (root / "blender_manifest.toml").write_text(
        manifest.replace('tagline = "', 'tagline = "Ends with a full stop.'), encoding="utf-8"
    )
    with pytest.raises(build.BuildError, match="tagline"):
        build.build(tmp_path / "out", root=root)
    assert not (tmp_path / "out" / "kinetext-0.1.0.zip").exists()


def test_installed_extension_generates(extension_zip, tmp_path):
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny")
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(tmp_path / "blender")}
    done = subprocess.run(
        [sys.executable, "-c", INSTALL_AND_GENERATE, str(extension_zip), str(checkpoint)],
        capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, (done.stdout + done.stderr)[-3000:]
    result = json.loads(lines[-1][len("RESULT ") :])
    assert result["install"] == ["FINISHED"] and result["enabled"]
    assert result["generate"] == ["FINISHED"]
    assert result["variations"] == ["a person waves (1/1, seed 0)"]
    installed = Path(result["package"]).parent
    assert installed.is_relative_to(tmp_path / "blender")  # the isolated user folder
    assert {p.name for p in installed.iterdir()} >= {"addon", "engine", "blender_manifest.toml"}
    assert not (installed / "training").exists() and not (installed / "tests").exists()
    cached = list(Path(result["user_folder"], "results").glob("*.npz"))
    assert len(cached) == 1  # the clip is kept in the extension's own user folder
