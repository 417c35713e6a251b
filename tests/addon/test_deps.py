"""Dependencies: detection, the pip commands the Install button would run (never run here),
the refusal when Blender's online access is off, and the engine choice from preferences."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")

from addon_helpers import enabled, preferences  # noqa: E402


@pytest.fixture(scope="module")
def addon(addon_pkg):
    with enabled(addon_pkg):
        yield addon_pkg


@pytest.fixture
def deps(addon):
    from kinetext.addon import deps

    return deps


def test_detection_names_what_cannot_be_imported(deps):
    absent = deps.Requirement("kinetext_no_such_module", "no-such-package", "a test")
    assert deps.missing([deps.REQUIREMENTS[0], absent]) == [absent]  # torch is installed here
    message = deps.missing_message([absent])
    assert "no-such-package" in message and "Install Dependencies" in message


def test_install_commands_cpu_linux(deps, tmp_path):
    torch, scipy = deps.REQUIREMENTS[0], deps.REQUIREMENTS[4]
    commands = deps.install_commands(
        tmp_path, "CPU", [torch, scipy], python="/blender/python", numpy_version="1.26.4",
        platform="linux",
    )  # fmt: skip
    pip = ["/blender/python", "-m", "pip", "install", "--upgrade", "--target", str(tmp_path)]
    assert commands == [
        pip + ["--disable-pip-version-check", "--no-input"]
        + ["--index-url", "https://download.pytorch.org/whl/cpu", "torch"],
        pip + ["--disable-pip-version-check", "--no-input", "scipy", "numpy==1.26.4"],
    ]  # fmt: skip


def test_install_commands_cuda_mac_and_missing_pip(deps, tmp_path):
    torch, hub = deps.REQUIREMENTS[0], deps.REQUIREMENTS[3]
    cuda = deps.install_commands(tmp_path, "CUDA", [torch], platform="win32")
    assert cuda[0][-3:] == ["--index-url", "https://download.pytorch.org/whl/cu128", "torch"]
    mac = deps.install_commands(tmp_path, "CPU", [torch, hub], platform="darwin")
    assert "--index-url" not in mac[0] and mac[0][-1] == "torch"  # PyPI: wheels with MPS
    assert mac[1][-1] == "huggingface_hub"  # no numpy pin when none is given
    bare = deps.install_commands(tmp_path, "CPU", [hub], python="py", pip_present=False)
    assert bare[0] == ["py", "-m", "ensurepip", "--upgrade"] and len(bare) == 2
    with pytest.raises(ValueError, match="unknown torch build 'ROCM'"):
        deps.install_commands(tmp_path, "ROCM", [torch])


def test_install_plan_targets_the_extensions_user_folder(addon):
    from kinetext.addon.preferences import install_plan, user_folder

    target, commands = install_plan("CPU")
    assert target == user_folder() / "site-packages"
    assert commands == []  # everything is installed in the test environment


def test_install_refused_without_online_access(deps, monkeypatch):
    assert deps.install_refusal(True) is None
    assert "Allow Online Access" in deps.install_refusal(False)
    monkeypatch.setattr(deps, "missing", lambda *a: [deps.REQUIREMENTS[0]])
    monkeypatch.setattr(subprocess, "run", _no_pip)
    assert bpy.app.online_access is False  # headless Blender starts offline
    with pytest.raises(RuntimeError, match="online access is off"):
        bpy.ops.motion.install_dependencies()


def _no_pip(*args, **kwargs):
    raise AssertionError(f"pip must not run in tests: {args}")


def test_install_job_runs_commands_in_order_and_stops_at_a_failure(deps):
    ran = []

    def fake_run(command, **kwargs):
        ran.append(command)
        failed = command[-1] == "broken"
        return subprocess.CompletedProcess(
            command, 1 if failed else 0, "", "ERROR: No matching distribution" if failed else ""
        )

    job = deps.InstallJob([["pip", "ok"], ["pip", "broken"], ["pip", "never"]], run=fake_run)
    job.start()
    job._thread.join(5)
    assert job.done and ran == [["pip", "ok"], ["pip", "broken"]]
    assert "No matching distribution" in job.error
    good = deps.InstallJob([["pip", "ok"]], run=fake_run)
    good.work()
    assert good.done and good.error is None and good.log[0] == "$ pip ok"


def test_site_packages_folders_join_and_leave_sys_path(deps, tmp_path):
    assert deps.add_to_path(tmp_path) and str(tmp_path) == sys.path[-1]
    assert not deps.add_to_path(tmp_path)  # once only
    assert not deps.add_to_path(tmp_path / "missing")
    deps.remove_added_paths()
    assert str(tmp_path) not in sys.path and not deps.added_paths()


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("EMBEDDED", {}, (None, None, "cuda")),
        ("FOLDER", {"checkpoint_folder": "/ckpt"}, (Path("/ckpt"), None, "cuda")),  # a folder
        ("HUB", {"hub_repo": " me/motion ", "hub_revision": "v2"}, ("me/motion", "v2", "cuda")),
        ("HUB", {"hub_repo": "me/motion"}, ("me/motion", None, "cuda")),
    ],
)
def test_engine_choice_from_preferences(addon, source, values, expected):
    from kinetext.addon.preferences import engine_choice

    prefs = preferences()
    for name in ("checkpoint_folder", "hub_repo", "hub_revision"):
        prefs.property_unset(name)
    prefs.checkpoint_source, prefs.device = source, "CUDA"
    for name, value in values.items():
        setattr(prefs, name, value)
    assert engine_choice(bpy.context) == expected


@pytest.mark.parametrize(("source", "message"), [("FOLDER", "no checkpoint folder chosen"),
                                                 ("HUB", "no Hugging Face repo id")])  # fmt: skip
def test_engine_choice_says_what_is_missing(addon, kinetext_engine, source, message):
    from kinetext.addon.preferences import engine_choice

    prefs = preferences()
    for name in ("checkpoint_folder", "hub_repo"):
        prefs.property_unset(name)
    prefs.checkpoint_source = source
    with pytest.raises(kinetext_engine.errors.MotionError, match=message):
        engine_choice(bpy.context)
