"""SMPL model files are read without running code: crafted pickles are refused unrun, the
official layout (a dict of arrays, the regressor as scipy sparse, chumpy-wrapped arrays)
loads through the restricted unpickler, and object arrays in an .npz are refused."""

from __future__ import annotations

import os
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse
from smpl_fixtures import PER_JOINT, SMPL_FIELDS, make_tiny_smpl, make_tiny_smplx_file

from engine.body.smpl_model_file import read_model_arrays
from engine.errors import MotionError


class _RunsCommand:
    """A pickle payload: unpickling it would call ``os.system(command)``."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class _WritesFile:
    """A payload through ``builtins.exec``: would create a file."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return exec, (f"open({self.target!r}, 'w').write('ran')",)


def _model_dict() -> dict:
    model = make_tiny_smpl()
    return {field: getattr(model, field) for field in SMPL_FIELDS}


def _payloads(tmp_path):
    marker = tmp_path / "ran"
    legit = _model_dict()
    return marker, {
        "os.system": _RunsCommand(f"touch {marker}"),
        "exec": _WritesFile(str(marker)),
        "inside the model dict": {**legit, "weights": _RunsCommand(f"touch {marker}")},
        "as a sparse class's state": {**legit, "J_regressor": _sparse_with_payload(marker)},
    }


def _sparse_with_payload(marker):
    matrix = scipy.sparse.csc_matrix(np.eye(3))
    matrix.maxprint = _RunsCommand(f"touch {marker}")  # rides in the pickled __dict__
    return matrix


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_crafted_pickles_are_refused_without_running(tmp_path, protocol):
    marker, payloads = _payloads(tmp_path)
    for label, payload in payloads.items():
        path = tmp_path / "SMPL_NEUTRAL.pkl"
        path.write_bytes(pickle.dumps(payload, protocol=protocol))
        with pytest.raises(MotionError, match="not loaded.*refusing to load") as info:
            read_model_arrays(path)
        assert str(path) in str(info.value), label
        assert "\n" not in str(info.value)
        assert not marker.exists(), f"{label}: the payload ran"


def test_fit_smpl_cli_refuses_a_crafted_model_folder(tmp_path, capsys):
    pytest.importorskip("smplx")
    from engine.cli import main

    marker = tmp_path / "ran"
    (tmp_path / "SMPL_NEUTRAL.pkl").write_bytes(pickle.dumps(_RunsCommand(f"touch {marker}")))
    np.save(tmp_path / "clip.npy", np.zeros((4, 22, 3), np.float32))
    out = tmp_path / "fit.npz"
    argv = ["fit-smpl", str(tmp_path / "clip.npy"), str(out), "--model-folder", str(tmp_path),
            "--device", "cpu"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "refusing to load posix.system" in err or "refusing to load nt.system" in err
    assert len(err.splitlines()) == 1
    assert not marker.exists() and not out.exists()


class _FakeCh:
    """Pickles like chumpy's ``Ch`` (module chumpy.ch, state = its __dict__ with ``x``)."""

    def __init__(self, x):
        self.x = x
        self._dirty_vars = set()
        self._itr = None


def _dumps_with_fake_chumpy(monkeypatch, data: dict, protocol: int) -> bytes:
    """Pickle ``data`` while a stand-in ``chumpy.ch`` module exists, then remove it again."""
    package, module = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    _FakeCh.__module__, _FakeCh.__qualname__, _FakeCh.__name__ = "chumpy.ch", "Ch", "Ch"
    module.Ch, package.ch = _FakeCh, module
    monkeypatch.setitem(sys.modules, "chumpy", package)
    monkeypatch.setitem(sys.modules, "chumpy.ch", module)
    blob = pickle.dumps(data, protocol=protocol)
    monkeypatch.delitem(sys.modules, "chumpy.ch")
    monkeypatch.delitem(sys.modules, "chumpy")
    return blob


def _official_layout(monkeypatch, protocol: int) -> bytes:
    """The SMPL release's pickle layout: regressor as scipy CSC, arrays wrapped in chumpy
    Ch objects, a derived chumpy expression and a nested dict smplx never reads."""
    data = _model_dict()
    data["J_regressor"] = scipy.sparse.csc_matrix(data["J_regressor"])
    data["shapedirs"] = _FakeCh(data["shapedirs"])
    data["v_template"] = _FakeCh(data["v_template"])
    data["J"] = _FakeCh(None)  # a derived expression: no array of its own
    data["pose_training_info"] = {"something": 1}
    data["bs_style"] = "lbs"
    return _dumps_with_fake_chumpy(monkeypatch, data, protocol)


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_the_official_pickle_layout_loads_without_chumpy_or_scipy_classes(
    tmp_path, monkeypatch, protocol
):
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(_official_layout(monkeypatch, protocol))
    arrays = read_model_arrays(path)
    assert "chumpy" not in sys.modules and "chumpy.ch" not in sys.modules
    expected = _model_dict()
    for field in SMPL_FIELDS:
        assert type(arrays[field]) is np.ndarray and not arrays[field].dtype.hasobject
        np.testing.assert_array_equal(arrays[field], expected[field])
    assert "J" not in arrays and "pose_training_info" not in arrays
    assert arrays["bs_style"] == "lbs"


def test_the_official_pickle_layout_gives_the_same_body(tmp_path, monkeypatch):
    pytest.importorskip("smplx")
    import torch

    from engine.body.smpl_fit import load_body_model

    (tmp_path / "SMPL_NEUTRAL.pkl").write_bytes(_official_layout(monkeypatch, 2))
    from_file = load_body_model(tmp_path)
    reference = load_body_model(make_tiny_smpl())
    pose = torch.linspace(-0.5, 0.5, 69)[None]
    with torch.no_grad():
        ours = from_file(body_pose=pose).joints
        ref = reference(body_pose=pose).joints
    torch.testing.assert_close(ours, ref, rtol=0, atol=0)


def test_object_arrays_in_an_npz_are_refused(tmp_path):
    data = _model_dict()
    data["f"] = np.array([_RunsCommand("true")], dtype=object)
    path = tmp_path / "SMPL_NEUTRAL.npz"
    np.savez(path, **data)
    with pytest.raises(MotionError, match="Python objects.*not loaded"):
        read_model_arrays(path)


def test_a_derived_required_array_says_how_to_convert(tmp_path, monkeypatch):
    data = {**_model_dict(), "posedirs": _FakeCh(None)}
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(_dumps_with_fake_chumpy(monkeypatch, data, pickle.HIGHEST_PROTOCOL))
    with pytest.raises(MotionError, match=r"lacks the arrays \['posedirs'\].*np.savez"):
        read_model_arrays(path)


def test_an_smplx_pickle_loads_like_its_npz(tmp_path, monkeypatch):
    smplx = pytest.importorskip("smplx")
    import torch

    from engine.body.smpl_fit import load_body_model

    small = {
        k: min(int(v), 55 * PER_JOINT - 1) for k, v in smplx.vertex_ids.vertex_ids["smplx"].items()
    }  # SMPL-X adds joints at real-model vertex ids: point them into the small mesh
    monkeypatch.setitem(smplx.vertex_ids.vertex_ids, "smplx", small)
    (tmp_path / "npz").mkdir()
    (tmp_path / "pkl").mkdir()
    make_tiny_smplx_file(tmp_path / "npz")
    with np.load(tmp_path / "npz" / "SMPLX_NEUTRAL.npz") as data:
        arrays = {key: data[key] for key in data.files}
    arrays["J_regressor"] = scipy.sparse.csc_matrix(arrays["J_regressor"])
    (tmp_path / "pkl" / "SMPLX_NEUTRAL.pkl").write_bytes(pickle.dumps(arrays, protocol=2))
    pose = torch.linspace(-0.3, 0.3, 63)[None]
    with torch.no_grad():
        ours = load_body_model(tmp_path / "pkl", "smplx")(body_pose=pose).joints
        ref = load_body_model(tmp_path / "npz", "smplx")(body_pose=pose).joints
    torch.testing.assert_close(ours, ref, rtol=0, atol=0)
    assert not list(tmp_path.glob("**/model.npz"))  # the plain copy lived in a temp folder
