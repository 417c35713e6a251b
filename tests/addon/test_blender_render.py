"""A Workbench render of a baked frame is written.

Armatures do not show in final renders, so the baked skeleton gets a skin: one bone-shaped
octahedron per bone, rigidly weighted to it through an Armature modifier, which is what the
render shows moving. Run as a script, this file makes the README picture from the real
HumanML3D example clip:

    python tests/addon/test_blender_render.py docs/images/blender.png
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

if __name__ == "__main__":  # run as a script: the repository importable, as under pytest
    sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).parent)]

bpy = pytest.importorskip("bpy")
from addon_helpers import clear_scene, enabled, save_tiny_checkpoint  # noqa: E402
from mathutils import Vector  # noqa: E402

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
EXAMPLE = SHARED / "data" / "humanml3d-reference" / "example_000612_new_joint_vecs.npy"


def add_skin(armature: bpy.types.Object, width: float = 0.03) -> bpy.types.Object:
    """A mesh of octahedra, one along each bone (Blender's bone shape) and one round each
    joint, rigidly skinned to ``armature`` (scene units)."""
    verts, faces, groups = [], [], []
    for bone in armature.data.bones:
        head, tail = Vector(bone.head_local), Vector(bone.tail_local)
        x, y, z = (bone.matrix_local.col[i].xyz for i in range(3))
        r = min(width, 0.25 * (tail - head).length)  # short bones stay slim
        start = len(verts)
        for bottom, top, waist, radius in (
            (head, tail, head + 0.2 * (tail - head), r),  # the bone
            (head - 1.3 * width * y, head + 1.3 * width * y, head, 1.3 * width),  # its joint
        ):
            base = len(verts)
            verts += [bottom] + [waist + radius * d for d in (x, z, -x, -z)] + [top]
            faces += [(base, base + 1 + i, base + 1 + (i + 1) % 4) for i in range(4)]
            faces += [(base + 5, base + 1 + (i + 1) % 4, base + 1 + i) for i in range(4)]
        groups.append((bone.name, range(start, len(verts))))
    mesh = bpy.data.meshes.new(f"{armature.name} skin")
    mesh.from_pydata([tuple(v) for v in verts], [], faces)
    skin = bpy.data.objects.new(mesh.name, mesh)
    bpy.context.scene.collection.objects.link(skin)
    skin.matrix_world = armature.matrix_world
    for name, indices in groups:
        skin.vertex_groups.new(name=name).add(list(indices), 1.0, "REPLACE")
    skin.modifiers.new("Armature", "ARMATURE").object = armature
    return skin


def frame_camera(scene: bpy.types.Scene, points: np.ndarray, lens: float = 50.0) -> None:
    """A camera in front of and a little above ``points`` (N, 3), seeing all of them."""
    low, high = points.min(axis=0), points.max(axis=0)
    centre, size = Vector((low + high) / 2), float(np.linalg.norm(high - low))
    direction = Vector((0.6, -1.0, 0.25)).normalized()  # the character faces -Y
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    camera.data.lens = lens
    scene.collection.objects.link(camera)
    aspect = min(scene.render.resolution_x, scene.render.resolution_y) / max(
        scene.render.resolution_x, scene.render.resolution_y
    )
    narrow = 2 * math.atan(math.tan(camera.data.angle / 2) * aspect)  # the short side's view
    distance = 0.6 * size / math.tan(narrow / 2)
    camera.location = centre + distance * direction
    camera.rotation_euler = (-direction).to_track_quat("-Z", "Y").to_euler()
    scene.camera = camera


def render_still(scene: bpy.types.Scene, path: Path, frame: int) -> Path:
    """Render ``frame`` with Workbench into a PNG at ``path`` (object colours, grey world)."""
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.render.image_settings.compression = 100
    scene.display.shading.light = "STUDIO"
    scene.display.shading.color_type = "OBJECT"
    scene.world = scene.world or bpy.data.worlds.new("World")
    scene.world.color = (0.05, 0.05, 0.06)
    scene.render.filepath = str(path)
    scene.frame_set(frame)
    bpy.ops.render.render(write_still=True)
    return path


def posed_heads(armature: bpy.types.Object) -> np.ndarray:
    """(B, 3) world positions of the pose bones' heads at the current frame."""
    return np.array([armature.matrix_world @ b.head for b in armature.pose.bones])


def skin_frame_and_render(armature, path: Path, frame: int, size) -> Path:
    """Skin a baked armature, put a floor under it and a camera on it, render ``frame``."""
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    add_skin(armature).color = (0.9, 0.45, 0.12, 1.0)
    scene.frame_set(frame)
    heads = posed_heads(armature)
    floor = bpy.data.meshes.new("Floor")
    x, y = heads[:, 0].mean(), heads[:, 1].mean()
    floor.from_pydata([(x + a, y + b, 0.0) for a, b in ((-3, -3), (3, -3), (3, 3), (-3, 3))],
                      [], [(0, 1, 2, 3)])  # fmt: skip
    floor_object = bpy.data.objects.new("Floor", floor)
    floor_object.color = (0.35, 0.36, 0.38, 1.0)
    scene.collection.objects.link(floor_object)
    frame_camera(scene, heads)
    return render_still(scene, path, frame)


@pytest.fixture
def addon(addon_pkg, tmp_path):
    with enabled(addon_pkg, save_tiny_checkpoint(tmp_path / "tiny")):
        yield addon_pkg


def test_workbench_render_of_a_baked_frame(addon, tmp_path):
    clear_scene()
    bpy.ops.motion.generate(prompt="a person walks", seconds=1.0, steps=1, variations=1)
    bpy.ops.motion.preview(variation=0)  # baked onto the canonical skeleton
    armature = bpy.data.objects["Kinetext Preview"]
    path = skin_frame_and_render(armature, tmp_path / "frame.png", frame=10, size=(160, 120))
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = bpy.data.images.load(str(path))
    assert tuple(image.size) == (160, 120)
    pixels = np.array(image.pixels[:]).reshape(120, 160, 4)[..., :3]
    figure = pixels[..., 0] - pixels[..., 2] > 0.15  # orange skin, not the grey floor or sky
    assert 100 < figure.sum() < 0.5 * figure.size  # the character is there, and framed
    rows, cols = np.nonzero(figure)
    assert rows.min() > 0 and rows.max() < 119 and cols.min() > 0 and cols.max() < 159
    bpy.data.images.remove(image)


def readme_picture(path: Path) -> None:
    """The README picture: frame 60 of the HumanML3D example, baked and rendered."""
    from kinetext.engine.motion.features import recover_from_ric

    features = np.load(EXAMPLE).astype(np.float32)  # (T, 263)
    joints = recover_from_ric(features)  # (T, 22, 3)
    from kinetext.addon.armature import create_canonical_armature
    from kinetext.addon.bake import bake

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.scene.render.fps = 20
    armature = create_canonical_armature(bpy.context, "Kinetext Skeleton")
    bake(bpy.context, armature=armature, joints=joints, features=features, fps=20,
         preset="smplx", action_name="HumanML3D example 000612")  # fmt: skip
    skin_frame_and_render(armature, path.resolve(), frame=60, size=(560, 350))


if __name__ == "__main__":
    from conftest import _importable_repo

    _importable_repo()
    readme_picture(Path(sys.argv[1]))
