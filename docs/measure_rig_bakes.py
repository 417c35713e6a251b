"""Measure bakes onto a Mixamo-style rig: where planted feet end, and what key reduction keeps.

Run from a checkout's root with its venv (bpy 5.0.1 headless):

    OMP_NUM_THREADS=1 .venv/bin/python docs/measure_rig_bakes.py [--package DIR] [--generated]

``--package DIR`` bakes with another checkout's add-on (e.g. /work/main, for the numbers
before a change) while the rig, the clips and the measurements stay this script's.
``--generated`` adds clips from the shipped checkpoint on the CPU (raw network output and
the cleaned default). The rig: the canonical skeleton in a T-pose, shins x1.15 and feet
x1.4, its toe joints 2.0 cm above the floor, in an FBX import's object transform. Heights
are of the evaluated pose (constraints, NLA and all), as Blender shows them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1]


def importable(package: Path) -> None:
    """``kinetext`` -> ``package`` (a checkout's root) on sys.path, as the tests do."""
    parent = Path(tempfile.mkdtemp(prefix="kinetext-measure-"))
    os.symlink(package, parent / "kinetext", target_is_directory=True)
    sys.path[:0] = [str(parent), str(HERE), str(HERE / "tests" / "addon")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", type=Path, default=HERE)
    parser.add_argument("--generated", action="store_true")
    args = parser.parse_args()
    importable(args.package.resolve())
    import bpy
    from addon_helpers import MIXAMO, build_rig, rest_joints
    from kinetext.addon import bake  # the bake: the measured checkout's

    from engine.motion import features  # clips and measures: this checkout's engine
    from engine.motion.demo_clip import walk_cycle
    from engine.motion.rig_pose import canonical_rest_joints

    clips = {
        "standing (rest pose held)": np.tile(canonical_rest_joints(), (40, 1, 1)),
        "procedural walk, 4 s": walk_cycle(seconds=4.0, turn_degrees=0.0),
    }
    if args.generated:
        from engine.pipeline import generate

        for prompt in ("a person stands still", "a person walks forward"):
            for clean in (False, True):
                motion = generate(prompt, seconds=4.0, seed=0, device="cpu", clean=clean)
                name = f"generated '{prompt}' ({'cleaned' if clean else 'raw'})"
                clips[name] = motion.joints[0]
    lengths = np.ones(22)
    lengths[[7, 8, 10, 11]] = (1.15, 1.15, 1.4, 1.4)
    rest = rest_joints(lengths) + [0.0, 0.02, 0.0]
    toes = [MIXAMO["left_foot"], MIXAMO["right_foot"]]
    print(f"kinetext package: {args.package}; rest toe heights (cm): "
          f"{100 * rest[10, 1]:.2f} / {100 * rest[11, 1]:.2f}")  # fmt: skip
    for name, joints in clips.items():
        feats = features.joints_to_features(joints)
        contacts = feats[:, features.FOOT_CONTACT]
        bpy.ops.wm.read_factory_settings(use_empty=True)
        scene = bpy.context.scene
        scene.render.fps, scene.render.fps_base = 20, 1.0
        rig = build_rig(bpy.context, MIXAMO, rest, fbx=True)
        bake.bake(bpy.context, armature=rig, joints=joints, features=feats, action_name=name)
        heights = np.zeros((len(joints), 2))
        for t in range(len(joints)):
            scene.frame_set(t + 1)
            evaluated = rig.evaluated_get(bpy.context.evaluated_depsgraph_get())
            for k, bone in enumerate(toes):
                heights[t, k] = (evaluated.matrix_world @ evaluated.pose.bones[bone].head)[2]
        above = 100 * (heights - rest[[10, 11], 1])  # cm over each toe's rest height
        planted = np.concatenate([contacts, contacts[-1:]])[:, [1, 3]] > 0.5
        lowest = above.min(axis=1)  # the lower foot on each frame
        on = above[planted] if planted.any() else np.array([np.nan])
        print(f"{name}: planted toes {np.median(on):+.2f} cm (median; range "
              f"{on.min():+.2f} to {on.max():+.2f}) over the rest height; lowest foot per frame "
              f"median {np.median(lowest):+.2f}, min {lowest.min():+.2f} cm")  # fmt: skip
    if hasattr(bake, "KeyTolerance"):
        key_reduction(bpy, bake, build_rig, MIXAMO, rest, clips["procedural walk, 4 s"])


def key_reduction(bpy, bake, build_rig, names, rest, joints) -> None:
    """Keys kept by each tolerance on the walk, and the largest error found by playing it."""
    for degrees, cm in ((0.1, 0.1), (0.5, 0.5), (1.0, 1.0), (2.0, 1.0)):
        bpy.ops.wm.read_factory_settings(use_empty=True)
        bpy.context.scene.render.fps = 20
        rig = build_rig(bpy.context, names, rest, fbx=True)
        said: list[str] = []
        report = lambda _level, text, said=said: said.append(text)  # noqa: E731
        bake.bake(bpy.context, armature=rig, joints=joints, foot_cleanup=False, report=report)
        full = _poses(bpy, rig, len(joints))
        bake.bake(bpy.context, armature=rig, joints=joints, foot_cleanup=False,
                  key_tolerance=bake.KeyTolerance(degrees, cm), report=report)  # fmt: skip
        reduced = _poses(bpy, rig, len(joints))
        rel = np.swapaxes(full[..., :3, :3], -1, -2) @ reduced[..., :3, :3]
        cos = np.clip((np.trace(rel, axis1=-2, axis2=-1) - 1) / 2, -1, 1)
        moved = np.linalg.norm(full[..., :3, 3] - reduced[..., :3, 3], axis=-1)  # rig cm
        line = next(s for s in said if s.startswith("key reduction"))
        print(f"{degrees:g} deg / {cm:g} cm: {line}; played error max "
              f"{np.degrees(np.arccos(cos)).max():.3f} deg, {moved.max():.3f} cm")  # fmt: skip


def _poses(bpy, rig, frames: int) -> np.ndarray:
    out = []
    for frame in range(1, frames + 1):
        bpy.context.scene.frame_set(frame)
        out.append([np.array(pb.matrix_basis) for pb in rig.pose.bones])
    return np.array(out)


if __name__ == "__main__":
    main()
