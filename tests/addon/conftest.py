"""Shared fixtures for the add-on tests (bpy 5.0.1, headless).

The add-on imports the engine as ``from ..engine import ...``, as it does inside the built
extension, where ``addon/`` and ``engine/`` sit side by side in the extension package. Here
the repository root plays that package: a symlink ``<tmp>/kinetext -> <repo root>`` with
``<tmp>`` on sys.path (set up when this file is loaded) makes ``kinetext.addon`` and
``kinetext.engine`` importable. Tests must use ``kinetext.engine`` (not the top-level
``engine``) wherever classes must match the add-on's, e.g.
``pytest.raises(kinetext_engine.errors.MotionError)``.
"""

import importlib
import os
import sys
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "kinetext"


def _importable_repo() -> None:
    """Put a ``kinetext`` symlink to the repository on sys.path, once per session."""
    if any((Path(p) / PACKAGE).resolve() == REPO_ROOT for p in sys.path if p):
        return
    parent = Path(tempfile.mkdtemp(prefix="kinetext-pkg-"))
    os.symlink(REPO_ROOT, parent / PACKAGE, target_is_directory=True)
    sys.path.insert(0, str(parent))


_importable_repo()


@pytest.fixture(scope="session")
def addon_pkg():
    """The add-on package, imported as ``kinetext.addon`` (its engine is ``kinetext.engine``)."""
    pytest.importorskip("bpy")
    return importlib.import_module(f"{PACKAGE}.addon")


@pytest.fixture(scope="session")
def kinetext_engine():
    """``kinetext.engine``: the engine the add-on imports (same classes, same errors)."""
    return importlib.import_module(f"{PACKAGE}.engine")


@pytest.fixture
def empty_scene():
    """A fresh empty scene (factory settings, no objects) for one test; returns the context."""
    bpy = pytest.importorskip("bpy")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, request):
    """A tiny random checkpoint (both generators) of this test module's own."""
    from addon_helpers import save_tiny_checkpoint

    folder = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    return save_tiny_checkpoint(folder / "tiny")


@pytest.fixture(scope="module")
def addon(addon_pkg, checkpoint):
    """The add-on registered with ``checkpoint`` as its checkpoint, for this module's tests."""
    from addon_helpers import enabled

    with enabled(addon_pkg, checkpoint):
        yield addon_pkg


@pytest.fixture
def scene(addon, checkpoint):
    """A cleared scene with the add-on on ``checkpoint`` (again: another module's factory
    reset may have dropped it); returns the context."""
    from addon_helpers import clear_scene, use_checkpoint

    use_checkpoint(checkpoint)
    return clear_scene()
