"""The unit of a BVH file: detected from the skeleton's size, or named by the user."""

import numpy as np
import pytest

from engine.errors import MotionError
from engine.io.bvh import BVH, canonical_bvh, read_bvh, write_bvh
from engine.io.bvh_units import detect_units, parse_units, resolve_units, skeleton_height
from engine.motion.rig_pose import forward_kinematics
from engine.motion.skeleton import CANONICAL_OFFSETS, JOINT_NAMES, PARENTS
from engine.retarget.joint_map import bvh_to_canonical, read_canonical, to_canonical


@pytest.fixture
def joints():
    """(12, 22, 3) rigid canonical joints in metres, randomly posed around a standing root."""
    rng = np.random.default_rng(4)
    local = rng.normal(size=(12, 22, 4)) * [4, 1, 1, 1]
    local /= np.linalg.norm(local, axis=-1, keepdims=True)
    root = np.cumsum(rng.normal(scale=0.03, size=(12, 3)), axis=0) + [0, 0.9, 0]
    return forward_kinematics(local, root, PARENTS, CANONICAL_OFFSETS)


def written(tmp_path, joints, scale):
    path = tmp_path / f"clip_{scale:g}.bvh"
    write_bvh(path, canonical_bvh(joints, scale=scale))
    return path


@pytest.mark.parametrize(("scale", "unit"), [(1.0, "m"), (100.0, "cm"), (1000.0, "mm")])
def test_each_unit_is_detected_and_read_back_as_metres(tmp_path, joints, scale, unit):
    clip = read_canonical(written(tmp_path, joints, scale))
    assert clip.units.detected and clip.units.name == unit
    assert clip.units.to_metres == pytest.approx(1.0 / scale)
    np.testing.assert_allclose(clip.joints, joints, atol=1e-4)
    assert "1.4" in clip.units.describe()  # the canonical skeleton is ~1.48 m with End Sites


def test_height_is_the_rest_skeleton_with_end_sites():
    """Root anywhere, a leg 0.4 down, a spine 1.2 up with a 0.3 End Site, an arm 0.6 out."""
    bvh = BVH(
        names=["root", "leg", "spine", "arm"],
        parents=[-1, 0, 0, 2],
        offsets=np.array([[5.0, 5.0, 5.0], [0, -0.4, 0], [0, 1.2, 0], [0.6, 0, 0]]),
        channels=[["Xposition", "Yposition", "Zposition"], [], [], []],
        frame_time=0.05,
        motion=np.zeros((1, 3)),
        end_sites={2: np.array([0.0, 0.3, 0.0])},
    )
    assert skeleton_height(bvh) == pytest.approx(1.9)  # -0.4 .. 1.5 along Y
    bvh.end_sites.clear()
    assert skeleton_height(bvh) == pytest.approx(1.6)


def test_an_explicit_unit_always_wins(tmp_path, joints):
    path = written(tmp_path, joints, 100.0)
    inches = bvh_to_canonical(path, units="in")
    np.testing.assert_allclose(inches, joints * 2.54, atol=1e-4)
    np.testing.assert_allclose(bvh_to_canonical(path, units=0.01), joints, atol=1e-4)
    np.testing.assert_allclose(bvh_to_canonical(path, units="m"), joints * 100, atol=1e-2)
    tiny = written(tmp_path, joints, 0.5)  # half-metre units would read as a 0.74 m person
    np.testing.assert_allclose(bvh_to_canonical(tiny, units=2.0), joints, atol=1e-4)


def test_implausible_size_names_the_height_and_the_option(tmp_path, joints):
    path = written(tmp_path, joints, 0.001)  # a skeleton 1.5 mm high in metres
    with pytest.raises(MotionError) as info:
        bvh_to_canonical(path)
    message = str(info.value)
    height = f"{skeleton_height(read_bvh(path)):.4g}"
    assert height.startswith("0.0014") and f"{height} units high" in message
    assert "clip_0.001.bvh" in message
    assert "--units" in message and "units=" in message
    assert bvh_to_canonical(path, units="mm").shape == joints.shape  # naming it reads it


def test_detection_bounds_and_parsing():
    assert [detect_units(h) for h in (0.6, 2.4, 60, 240, 600, 2400)] == [
        "m", "m", "cm", "cm", "mm", "mm",
    ]  # fmt: skip
    assert [detect_units(h) for h in (0.4, 3.0, 30, 300, 3000)] == [None] * 5
    assert parse_units(" CM ") == "cm" and parse_units("0.0254") == pytest.approx(0.0254)
    for bad in ("furlong", "0", "-1", "nan", "inf"):
        with pytest.raises(MotionError, match="units must be"):
            parse_units(bad)


def test_resolve_reports_how_the_unit_was_chosen(tmp_path, joints):
    bvh = read_bvh(written(tmp_path, joints, 100.0))
    given = resolve_units(bvh, "mm")
    assert not given.detected and given.to_metres == 0.001 and given.height > 100
    assert "given: millimetres" in given.describe()
    assert "0.02 m per unit" in resolve_units(bvh, 0.02).describe()


def test_to_canonical_scales_by_the_map_unless_told(joints):
    from engine.retarget.joint_map import SMPL

    np.testing.assert_allclose(to_canonical(joints * 100, JOINT_NAMES, SMPL, 0.01), joints)
    np.testing.assert_allclose(to_canonical(joints, JOINT_NAMES, SMPL), joints)
