"""The shaped rest body and its per-frame channels (engine/body/smpl_body.py), against smplx itself.

Skinning the template with plain linear blend skinning plus the pose correctives, as a 3D
tool does, must give smplx's own vertices: that pins the template, the rotations, the
corrective weights and the joint hierarchy in one check.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from smpl_fixtures import SMPL_PARENTS, make_tiny_smpl, make_tiny_smplx_file

from engine.errors import MotionError
from engine.motion.skeleton import JOINT_NAMES

C = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # Y up -> Z up: (x,-z,y)


def skin(template, rotations, trans):
    """Reference linear blend skinning (T, V, 3) of the template, correctives included."""
    from engine.body.smpl_body import corrective_weights, posed_joints

    posed = posed_joints(rotations, trans, template)  # (T, J, 3)
    glob = np.empty_like(rotations)
    for j, p in enumerate(template.parents):
        glob[:, j] = rotations[:, j] if p < 0 else glob[:, p] @ rotations[:, j]
    offsets = np.einsum("tp,pvc->tvc", corrective_weights(rotations), template.posedirs)
    rest = template.vertices + offsets  # (T, V, 3)
    moved = np.einsum("tjab,tjvb->tjva", glob, rest[:, None] - template.joints[None, :, None])
    moved = moved + posed[:, :, None]  # (T, J, V, 3): every vertex carried by every joint
    return np.einsum("vj,tjva->tva", template.weights, moved)


def random_pose(frames: int, width: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 0.4, (frames, width)), rng.normal(0, 0.3, (frames, 3))


def smplx_forward(body, betas, poses, trans):
    """smplx's vertices and joints for AMASS-layout poses (T, 72 or 165)."""
    as_t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    frames = len(poses)
    kwargs = dict(global_orient=as_t(poses[:, :3]), transl=as_t(trans),
                  betas=as_t(betas)[None].expand(frames, -1))  # fmt: skip
    if hasattr(body, "jaw_pose"):
        kwargs.update(body_pose=as_t(poses[:, 3:66]), jaw_pose=as_t(poses[:, 66:69]),
                      leye_pose=as_t(poses[:, 69:72]), reye_pose=as_t(poses[:, 72:75]),
                      left_hand_pose=as_t(poses[:, 75:120]),
                      right_hand_pose=as_t(poses[:, 120:165]),
                      expression=torch.zeros(frames, body.num_expression_coeffs))  # fmt: skip
    else:
        kwargs.update(body_pose=as_t(poses[:, 3:]))
    with torch.no_grad():
        out = body(**kwargs)
    return out.vertices.numpy().astype(np.float64), out.joints.numpy().astype(np.float64)


def test_the_template_is_smplxs_rest_body_of_that_shape():
    pytest.importorskip("smplx")
    from engine.body.smpl_body import body_template
    from engine.body.smpl_fit import load_body_model

    model = make_tiny_smpl(blend=0.3)
    betas = np.random.default_rng(3).normal(0, 1, 10)
    template = body_template(model, "smpl", "neutral", betas)
    vertices, joints = smplx_forward(load_body_model(model), betas, np.zeros((1, 72)), [[0, 0, 0]])
    np.testing.assert_allclose(template.vertices, vertices[0], atol=1e-6)
    np.testing.assert_allclose(template.joints, joints[0, :24], atol=1e-6)
    np.testing.assert_allclose(template.weights, model.weights, atol=1e-7)
    np.testing.assert_array_equal(template.faces, model.f)
    assert tuple(template.parents) == SMPL_PARENTS
    assert template.names == [*JOINT_NAMES, "left_hand", "right_hand"]
    assert template.posedirs.shape == (23 * 9, 240, 3)
    np.testing.assert_allclose(template.betas, betas)
    with pytest.raises(MotionError, match="5 betas given"):
        body_template(model, "smpl", "neutral", betas[:5])


def test_skinning_the_template_reproduces_smplx_vertices():
    pytest.importorskip("smplx")
    from engine.body.smpl_body import body_template, local_rotations, posed_joints
    from engine.body.smpl_fit import load_body_model

    model = make_tiny_smpl(blend=0.3)
    betas = np.random.default_rng(4).normal(0, 1, 10)
    template = body_template(model, "smpl", "neutral", betas)
    poses, trans = random_pose(5, 72)
    rotations = local_rotations(poses, template)
    vertices, joints = smplx_forward(load_body_model(model), betas, poses, trans)
    np.testing.assert_allclose(posed_joints(rotations, trans, template), joints[:, :24], atol=1e-5)
    np.testing.assert_allclose(skin(template, rotations, trans), vertices, atol=1e-5)
    # the correctives matter: without them the vertices are millimetres off
    bare = template.posedirs
    template.posedirs = np.zeros_like(bare)
    assert np.abs(skin(template, rotations, trans) - vertices).max() > 1e-3


def test_smplx_template_adds_the_hand_mean_like_smplx(tmp_path, monkeypatch):
    smplx = pytest.importorskip("smplx")
    from engine.body.smpl_body import body_template, joint_names, local_rotations
    from engine.body.smpl_fit import load_body_model

    make_tiny_smplx_file(tmp_path)
    path = tmp_path / "SMPLX_NEUTRAL.npz"
    arrays = dict(np.load(path))
    rng = np.random.default_rng(5)  # relaxed hands, as the real model's mean pose
    arrays["hands_meanl"], arrays["hands_meanr"] = rng.normal(0, 0.3, (2, 45))
    np.savez(path, **arrays)
    small = {k: min(int(v), 549) for k, v in smplx.vertex_ids.vertex_ids["smplx"].items()}
    monkeypatch.setitem(smplx.vertex_ids.vertex_ids, "smplx", small)
    betas = rng.normal(0, 1, 10)
    template = body_template(tmp_path, "smplx", "neutral", betas)
    assert template.names == joint_names("smplx", 55) and template.names[22] == "jaw"
    assert template.names[25] == "left_index1" and template.names[54] == "right_thumb3"
    np.testing.assert_allclose(template.pose_mean[25:40].ravel(), arrays["hands_meanl"], atol=1e-6)
    poses, trans = random_pose(3, 165, seed=6)
    poses[:, 66:] = 0.0  # what the fit leaves: face and fingers at the model's rest
    vertices, _ = smplx_forward(load_body_model(tmp_path, "smplx"), betas, poses, trans)
    rotations = local_rotations(poses, template)
    np.testing.assert_allclose(skin(template, rotations, trans), vertices, atol=1e-5)


def test_body_tracks_are_model_rotations_in_each_bones_rest_frame():
    from engine.body.smpl_body import BodyTemplate, body_tracks, bone_layout, posed_joints
    from engine.motion.quaternion import quat_to_matrix

    rng = np.random.default_rng(7)
    parents = np.array(SMPL_PARENTS)
    joints = rng.normal(0, 0.3, (24, 3))
    template = BodyTemplate(
        vertices=np.zeros((1, 3)), faces=np.zeros((0, 3), int), weights=np.ones((1, 24)) / 24,
        joints=joints, parents=parents, names=[f"j{j}" for j in range(24)],
        posedirs=np.zeros((207, 1, 3)), pose_mean=np.zeros((24, 3)), model_type="smpl",
        gender="neutral", betas=np.zeros(10),
    )  # fmt: skip
    from engine.body.smpl_body import local_rotations

    rotations = local_rotations(rng.normal(0, 1.0, (6, 72)), template)
    trans = rng.normal(0, 1, (6, 3))
    rest = np.linalg.qr(rng.normal(size=(24, 3, 3)))[0]
    rest *= np.sign(np.linalg.det(rest))[:, None, None]  # proper rotations
    tracks = body_tracks(rotations, trans, template, rest, scale=100.0)
    basis = quat_to_matrix(tracks.rotations)  # (T, J, 3, 3)
    np.testing.assert_allclose(rest @ basis @ rest.transpose(0, 2, 1), C @ rotations @ C.T,
                               atol=1e-9)  # fmt: skip
    assert np.all((tracks.rotations[1:] * tracks.rotations[:-1]).sum(-1) >= 0)
    heads, _ = bone_layout(template, scale=100.0)
    root_head = heads[0] + tracks.locations["j0"] @ rest[0].T  # rest head + B loc
    np.testing.assert_allclose(root_head, (joints[0] + trans) @ C.T * 100.0, atol=1e-9)
    np.testing.assert_allclose(tracks.heads, posed_joints(rotations, trans, template) @ C.T * 100)


def test_bone_layout_heads_on_joints_tails_down_the_hierarchy():
    pytest.importorskip("smplx")
    from engine.body.smpl_body import body_template, bone_layout

    template = body_template(make_tiny_smpl(), "smpl", "neutral", np.zeros(10))
    heads, tails = bone_layout(template, scale=2.0)
    np.testing.assert_allclose(heads, template.joints @ C.T * 2.0)
    z_up = template.joints @ C.T * 2.0
    np.testing.assert_allclose(tails[0], z_up[3])  # pelvis points up the spine
    np.testing.assert_allclose(tails[4], z_up[7])  # knee at the ankle
    assert np.linalg.norm(tails - heads, axis=1).min() > 0.02  # no zero-length bone
    head_dir = (tails[15] - heads[15]) / np.linalg.norm(tails[15] - heads[15])
    neck_dir = (z_up[15] - z_up[12]) / np.linalg.norm(z_up[15] - z_up[12])
    np.testing.assert_allclose(head_dir, neck_dir, atol=1e-9)  # a leaf goes on straight


def test_model_files_are_found_in_the_folder_or_its_subfolder(tmp_path):
    from engine.body.smpl_body import find_model_file, joint_names, smplx_installed

    (tmp_path / "smplx").mkdir()
    (tmp_path / "smplx" / "SMPLX_FEMALE.pkl").write_bytes(b"")
    (tmp_path / "SMPL_MALE.npz").write_bytes(b"")
    assert find_model_file(tmp_path, "smplx", "female") == tmp_path / "smplx" / "SMPLX_FEMALE.pkl"
    assert find_model_file(tmp_path, "smpl", "male") == tmp_path / "SMPL_MALE.npz"
    with pytest.raises(MotionError, match="no SMPL_NEUTRAL.npz or SMPL_NEUTRAL.pkl"):
        find_model_file(tmp_path, "smpl", "neutral")
    with pytest.raises(MotionError, match="folder not found"):
        find_model_file("", "smpl", "neutral")
    assert joint_names("smpl", 7) == [f"joint_{j:02d}" for j in range(7)]
    assert isinstance(smplx_installed(), bool)


def test_fit_reports_progress_and_stops_when_told():
    pytest.importorskip("smplx")
    from engine.body.smpl_fit import FitOptions, fit_smpl

    class Stop(Exception):
        pass

    joints = np.tile(np.random.default_rng(0).normal(0, 0.3, (1, 22, 3)), (6, 1, 1))
    options = FitOptions(chunk=3, root_steps=2, steps=3, shape_steps=2)
    seen = []
    fit_smpl(joints, make_tiny_smpl(), device="cpu", options=options,
             progress=lambda done, total: seen.append((done, total)))  # fmt: skip
    assert seen and {total for _, total in seen} == {6}
    done = [d for d, _ in seen]
    assert done == sorted(done) and 0 <= done[0] and done[-1] <= 6 and done[-1] > 3

    def stop(done, total):
        if done > 0:
            raise Stop

    with pytest.raises(Stop):
        fit_smpl(joints, make_tiny_smpl(), device="cpu", options=options, progress=stop)
