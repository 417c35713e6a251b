"""The engine's bad-input corpus: every case is a mistake or a hostile file a user can hand the
command line (and through it the loaders). Each must end with one clear error line, no
traceback, a nonzero exit status, and nothing changed on disk; the output is checked before
any work is done. Cases run in-process through ``main(argv)``; a few run as real processes.
"""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from bvh_fuzz import walk_joints, zero_channel_bvh

from engine.cli import main
from engine.io.bvh import canonical_bvh, write_bvh
from engine.motion.features import joints_to_features

Case = Callable[[Path], list[str]]
"""Builds the inputs of one case in a folder and returns the command line."""


# ----------------------------------------------------------------------------- inputs


def joints_npy(folder: Path, name: str = "j.npy", poison: float | None = None, **kw) -> str:
    joints = walk_joints(kw.get("frames", 12))
    if poison is not None:
        joints[3, 5, 1] = poison
    path = folder / name
    np.save(path, joints)
    return str(path)


def features_npy(folder: Path, poison: float | None = None, width: int = 263) -> str:
    features = joints_to_features(walk_joints())[:, :width].copy()
    if poison is not None:
        features[2, 4] = poison
    np.save(folder / "f.npy", features)
    return str(folder / "f.npy")


def saved(folder: Path, name: str, array: np.ndarray, allow_pickle: bool = False) -> str:
    np.save(folder / name, array, allow_pickle=allow_pickle)
    return str(folder / name)


def npz_as_npy(folder: Path) -> str:
    """An .npz archive under a .npy name (np.load gives an archive object, not an array)."""
    np.savez(folder / "a.npz", x=walk_joints())
    (folder / "a.npz").rename(folder / "a.npy")
    return str(folder / "a.npy")


def raw_file(folder: Path, name: str, data: bytes) -> str:
    (folder / name).write_bytes(data)
    return str(folder / name)


def good_bvh_text() -> str:
    """A canonical BVH (metres, SMPL names: the smpl joint map and unit detection fit)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "walk.bvh"
        write_bvh(path, canonical_bvh(walk_joints(), fps=30))
        return path.read_text()


GOOD_BVH = good_bvh_text()


def bvh_with(folder: Path, old: str, new: str, count: int = 1) -> str:
    """The good BVH with ``old`` replaced by ``new`` (``count`` times), as IN.bvh."""
    assert old in GOOD_BVH
    return raw_file(folder, "in.bvh", GOOD_BVH.replace(old, new, count).encode("utf-8"))


def good_bvh(folder: Path) -> str:
    return raw_file(folder, "in.bvh", GOOD_BVH.encode())


def scaled_bvh(folder: Path, scale: float) -> str:
    """The walk written at ``scale`` file units per metre (1e4: a skeleton no unit makes human)."""
    write_bvh(folder / "in.bvh", canonical_bvh(walk_joints(), fps=30, scale=scale))
    return str(folder / "in.bvh")


def offset_line() -> str:
    return next(line for line in GOOD_BVH.splitlines() if "OFFSET" in line)


def first_frame() -> str:
    lines = GOOD_BVH.splitlines()
    return lines[lines.index("MOTION") + 3]


def first_value(folder: Path, token: str) -> str:
    """The good BVH with the first value of the first frame (the root's X) set to ``token``."""
    values = first_frame().split()
    return bvh_with(folder, first_frame(), " ".join([token, *values[1:]]))


def channel_bomb(folder: Path, joints: int = 2000, frames: int = 100_000) -> str:
    return raw_file(folder, "bomb.bvh", zero_channel_bvh(joints, frames).encode())


def bvh2joints(*extra: str) -> Callable[[str, Path], list[str]]:
    return lambda inp, folder: ["bvh2joints", inp, str(folder / "out.npy"), *extra]


def cmu_like(folder: Path) -> str:
    text = ("HIERARCHY\nROOT Hips\n{\nOFFSET 0 0 0\nCHANNELS 3 Zrotation Yrotation Xrotation\n"
            "JOINT LeftUpLeg\n{\nOFFSET 3 -1 0\nCHANNELS 3 Zrotation Yrotation Xrotation\n"
            "End Site\n{\nOFFSET 0 -40 0\n}\n}\n}\nMOTION\nFrames: 2\nFrame Time: 0.0083333\n"
            "0 0 0 0 0 0\n1 1 1 1 1 1\n")  # fmt: skip
    return raw_file(folder, "cmu.bvh", text.encode())


BVH_CASES: dict[str, Callable[[Path], str]] = {
    "missing_file": lambda f: str(f / "nope.bvh"),
    "a_folder": lambda f: (f / "d.bvh").mkdir() or str(f / "d.bvh"),
    "a_fifo": lambda f: os.mkfifo(f / "p.bvh") or str(f / "p.bvh"),
    "empty_file": lambda f: raw_file(f, "e.bvh", b""),
    "binary_garbage": lambda f: raw_file(f, "g.bvh", bytes(range(256)) * 40),
    "truncated": lambda f: raw_file(f, "t.bvh", GOOD_BVH[: len(GOOD_BVH) // 2].encode()),
    "frames_superscript_two": lambda f: bvh_with(f, "Frames: 12", "Frames: \u00b2"),
    "channels_superscript_six": lambda f: bvh_with(f, "CHANNELS 6", "CHANNELS \u2076"),
    "frames_5000_digits": lambda f: bvh_with(f, "Frames: 12", "Frames: " + "9" * 5000),
    "frames_negative": lambda f: bvh_with(f, "Frames: 12", "Frames: -12"),
    "frame_time_1e6": lambda f: bvh_with(f, "Frame Time: 0.03333333333", "Frame Time: 1e6"),
    "frame_time_1e308": lambda f: bvh_with(f, "Frame Time: 0.03333333333", "Frame Time: 1e308"),
    "frame_time_5e-324": lambda f: bvh_with(f, "Frame Time: 0.03333333333", "Frame Time: 5e-324"),
    "frame_time_1e-300": lambda f: bvh_with(f, "Frame Time: 0.03333333333", "Frame Time: 1e-300"),
    "frame_time_nan": lambda f: bvh_with(f, "Frame Time: 0.03333333333", "Frame Time: nan"),
    "offset_nan": lambda f: bvh_with(f, offset_line(), "OFFSET nan 0 0"),
    "offset_inf": lambda f: bvh_with(f, offset_line(), "OFFSET 0 -inf 0"),
    "offset_1e308": lambda f: bvh_with(f, offset_line(), "OFFSET 0 1e308 0"),
    "position_nan": lambda f: first_value(f, "nan"),
    "position_inf": lambda f: first_value(f, "-inf"),
    "position_1e300": lambda f: first_value(f, "1e300"),
    "position_not_a_number": lambda f: first_value(f, "1.2.3"),
    "zero_channel_joint_bomb": channel_bomb,
    "joint_frames_over_limit": lambda f: channel_bomb(f, joints=900, frames=20_000),
    "one_line_of_20000_braces": lambda f: bvh_with(f, "HIERARCHY", "HIERARCHY\n" + "} " * 20000),
    "frame_line_short": lambda f: bvh_with(f, first_frame(), " ".join(first_frame().split()[1:])),
    "frame_lines_missing": lambda f: bvh_with(f, "Frames: 12", "Frames: 13"),
    "no_motion_section": lambda f: raw_file(f, "h.bvh", GOOD_BVH.split("MOTION")[0].encode()),
    "unknown_channel": lambda f: bvh_with(f, "Xrotation", "Wrotation"),
    "unbalanced_braces": lambda f: bvh_with(f, "}", "", 1),
    "no_joint_map_fits": cmu_like,
    "huge_skeleton_units_unknown": lambda f: scaled_bvh(f, 1e4),
}
"""Bad BVH files, each read through ``bvh2joints IN OUT.npy``."""


@pytest.mark.parametrize("name", sorted(BVH_CASES))
def test_bad_bvh_files(name, tmp_path, refused):
    inp = BVH_CASES[name](tmp_path)
    line = refused(main, ["bvh2joints", inp, str(tmp_path / "out.npy")], tmp_path)
    assert line.startswith(f"error: {inp}"), line  # names the file (and the line where known)


def mkdir(folder: Path) -> str:
    folder.mkdir()
    return str(folder)


def in_dir(folder: Path) -> str:
    return mkdir(folder / "out")


CLI_CASES: dict[str, Case] = {
    # .npy inputs: features, recover, joints2bvh, render, fit-smpl
    "features_missing": lambda f: ["features", str(f / "no.npy"), str(f / "o.npy")],
    "features_empty_npy": lambda f: ["features", raw_file(f, "e.npy", b""), str(f / "o.npy")],
    "features_text_as_npy": lambda f: [
        "features",
        raw_file(f, "t.npy", b"1 2 3\n"),
        str(f / "o.npy"),
    ],  # fmt: skip
    "features_wrong_shape": lambda f: [
        "features",
        saved(f, "w.npy", np.zeros((9, 21, 3))),
        str(f / "o.npy"),
    ],  # fmt: skip
    "features_nan": lambda f: ["features", joints_npy(f, poison=np.nan), str(f / "o.npy")],
    "features_inf": lambda f: ["features", joints_npy(f, poison=np.inf), str(f / "o.npy")],
    "features_strings": lambda f: [
        "features",
        saved(f, "s.npy", np.full((4, 22, 3), "a")),
        str(f / "o.npy"),
    ],  # fmt: skip
    "features_complex": lambda f: [
        "features",
        saved(f, "c.npy", np.ones((4, 22, 3)) * 1j),
        str(f / "o.npy"),
    ],  # fmt: skip
    "features_pickle": lambda f: [
        "features",
        saved(f, "p.npy", np.array([{}]), allow_pickle=True),
        str(f / "o.npy"),
    ],  # fmt: skip
    "features_one_frame": lambda f: ["features", joints_npy(f, frames=1), str(f / "o.npy")],
    "features_zero_frames": lambda f: [
        "features",
        saved(f, "z.npy", np.zeros((0, 22, 3))),
        str(f / "o.npy"),
    ],  # fmt: skip
    "features_npz": lambda f: [
        "features",
        npz_as_npy(f),
        str(f / "o.npy"),
    ],  # fmt: skip
    "features_out_is_folder": lambda f: ["features", joints_npy(f), in_dir(f)],
    "features_out_under_a_file": lambda f: [
        "features",
        joints_npy(f),
        raw_file(f, "x", b"") + "/o.npy",
    ],  # fmt: skip
    "features_out_unwritable": lambda f: ["features", joints_npy(f), "/proc/kinetext/o.npy"],
    "recover_nan": lambda f: ["recover", features_npy(f, np.nan), str(f / "o.npy")],
    "recover_inf": lambda f: ["recover", features_npy(f, -np.inf), str(f / "o.npy")],
    "recover_wrong_width": lambda f: ["recover", features_npy(f, width=262), str(f / "o.npy")],
    "recover_empty": lambda f: ["recover", raw_file(f, "e.npy", b""), str(f / "o.npy")],
    "joints2bvh_nan": lambda f: ["joints2bvh", joints_npy(f, poison=np.nan), str(f / "o.bvh")],
    "joints2bvh_inf": lambda f: ["joints2bvh", joints_npy(f, poison=np.inf), str(f / "o.bvh")],
    "joints2bvh_zero_frames": lambda f: [
        "joints2bvh",
        saved(f, "z.npy", np.zeros((0, 22, 3))),
        str(f / "o.bvh"),
    ],  # fmt: skip
    "joints2bvh_fps_0": lambda f: ["joints2bvh", joints_npy(f), str(f / "o.bvh"), "--fps", "0"],
    "joints2bvh_fps_negative": lambda f: [
        "joints2bvh",
        joints_npy(f),
        str(f / "o.bvh"),
        "--fps",
        "-20",
    ],  # fmt: skip
    "joints2bvh_fps_nan": lambda f: ["joints2bvh", joints_npy(f), str(f / "o.bvh"), "--fps", "nan"],
    "joints2bvh_fps_inf": lambda f: ["joints2bvh", joints_npy(f), str(f / "o.bvh"), "--fps", "inf"],
    "joints2bvh_scale_0": lambda f: ["joints2bvh", joints_npy(f), str(f / "o.bvh"), "--scale", "0"],
    "joints2bvh_scale_1e308": lambda f: [
        "joints2bvh",
        joints_npy(f),
        str(f / "o.bvh"),
        "--scale",
        "1e308",
    ],  # fmt: skip
    "joints2bvh_out_is_folder": lambda f: ["joints2bvh", joints_npy(f), in_dir(f)],
    "bvh2joints_units_1e308": lambda f: [
        "bvh2joints",
        good_bvh(f),
        str(f / "o.npy"),
        "--units",
        "1e308",
    ],  # fmt: skip
    "bvh2joints_raw_units_1e308": lambda f: [
        "bvh2joints",
        good_bvh(f),
        str(f / "o.npy"),
        "--raw",
        "--units",
        "1e308",
    ],  # fmt: skip
    "bvh2joints_units_0": lambda f: [
        "bvh2joints",
        good_bvh(f),
        str(f / "o.npy"),
        "--units",
        "0",
    ],  # fmt: skip
    "bvh2joints_units_nan": lambda f: [
        "bvh2joints",
        good_bvh(f),
        str(f / "o.npy"),
        "--units",
        "nan",
    ],  # fmt: skip
    "bvh2joints_units_negative": lambda f: [
        "bvh2joints",
        good_bvh(f),
        str(f / "o.npy"),
        "--units",
        "-0.01",
    ],  # fmt: skip
    "bvh2joints_unknown_map": lambda f: [
        "bvh2joints",
        good_bvh(f),
        str(f / "o.npy"),
        "--map",
        "mixamo_nope",
    ],  # fmt: skip
    "bvh2joints_out_is_folder": lambda f: ["bvh2joints", good_bvh(f), in_dir(f)],
    "render_nan": lambda f: ["render", joints_npy(f, poison=np.nan), str(f / "o.png")],
    "render_unknown_suffix": lambda f: ["render", joints_npy(f), str(f / "o.txt")],
    "demo_bad_bvh": lambda f: [
        "demo",
        "--bvh",
        bvh_with(f, "Frames: 12", "Frames: \u00b2"),
        "--out",
        str(f / "demo"),
    ],  # fmt: skip
    "demo_out_is_a_file": lambda f: ["demo", "--out", raw_file(f, "demo", b"x")],
    "fit_smpl_fps_0": lambda f: [
        "fit-smpl",
        joints_npy(f),
        str(f / "o.npz"),
        "--model-folder",
        str(f),
        "--fps",
        "0",
    ],  # fmt: skip
    "fit_smpl_nan": lambda f: [
        "fit-smpl",
        joints_npy(f, poison=np.nan),
        str(f / "o.npz"),
        "--model-folder",
        str(f),
    ],  # fmt: skip
    # generate: refused before the model is loaded
    "generate_non_utf8_prompt": lambda f: [
        "generate",
        "a person walks \udcff",
        "--out",
        str(f / "o.npy"),
    ],  # fmt: skip
    "generate_empty_prompt": lambda f: ["generate", "  ", "--out", str(f / "o.npy")],
    "generate_control_character": lambda f: ["generate", "walk\x1b[2J", "--out", str(f / "o.npy")],
    "generate_out_is_folder": lambda f: ["generate", "walk", "--out", mkdir(f / "o.npy")],
    "generate_out_under_a_file": lambda f: [
        "generate",
        "a person walks",
        "--out",
        raw_file(f, "x", b"") + "/o.npy",
    ],  # fmt: skip
    "generate_out_unwritable": lambda f: [
        "generate",
        "a person walks",
        "--out",
        "/proc/kinetext/o.bvh",
    ],  # fmt: skip
    "generate_second_variation_is_folder": lambda f: [
        "generate",
        "a person walks",
        "--variations",
        "3",
        "--out",
        str((f / "o_2.bvh").mkdir() or f / "o.bvh"),
    ],  # fmt: skip
    "generate_unknown_suffix": lambda f: ["generate", "a person walks", "--out", str(f / "o.txt")],
    "generate_zero_variations": lambda f: [
        "generate",
        "walk",
        "--variations",
        "0",
        "--out",
        str(f / "o.npy"),
    ],  # fmt: skip
    "generate_negative_seed": lambda f: [
        "generate",
        "walk",
        "--seed",
        "-1",
        "--out",
        str(f / "o.npy"),
    ],  # fmt: skip
    "unknown_command": lambda f: ["explode", str(f)],
}
"""Bad command lines, with their inputs."""


@pytest.mark.parametrize("name", sorted(CLI_CASES))
def test_bad_command_lines(name, tmp_path, refused):
    refused(main, CLI_CASES[name](tmp_path), tmp_path)


def test_corpus_size():
    """The issue asks for at least 60 cases across CLI, loaders and data sets; the training
    side (tests/training/test_bad_training_inputs.py) adds its own."""
    assert len(BVH_CASES) + len(CLI_CASES) >= 60


def test_ctrl_c_is_one_line_and_status_130(tmp_path, refused, monkeypatch):
    import engine.motion.features

    def interrupted(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(engine.motion.features, "joints_to_features", interrupted)
    line = refused(main, ["features", joints_npy(tmp_path), str(tmp_path / "o.npy")], tmp_path)
    assert line.startswith("interrupted")


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path, refused, monkeypatch):
    import engine.io.bvh

    monkeypatch.setattr(engine.io.bvh, "MAX_FILE_BYTES", 1000)  # the real limit is 256 MiB
    inp = good_bvh(tmp_path)
    line = refused(main, ["bvh2joints", inp, str(tmp_path / "o.npy")], tmp_path)
    assert (
        line == f"error: {inp}: the file is {len(GOOD_BVH):,} bytes, over the limit of 1,000 "
        "(engine.io.bvh.MAX_FILE_BYTES)"
    )


def run_cli(*args: str | bytes) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True,
                          timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip


def test_real_processes_print_one_line(tmp_path, disk_state):
    """Through a real interpreter: the bytes of a non-UTF-8 prompt as a shell passes them, a
    file whose Frames count is not ASCII, NaN joints and a FIFO (which used to block)."""
    fifo = tmp_path / "p.bvh"
    os.mkfifo(fifo)
    cases = [
        ("generate", b"a person walks \xff", "--out", str(tmp_path / "o.npy")),
        ("bvh2joints", bvh_with(tmp_path, "Frames: 12", "Frames: \u00b2"), str(tmp_path / "o.npy")),
        ("joints2bvh", joints_npy(tmp_path, poison=np.nan), str(tmp_path / "o.bvh")),
        ("bvh2joints", str(fifo), str(tmp_path / "o.npy")),
    ]
    before = disk_state(tmp_path)
    for args in cases:
        done = run_cli(*args)
        err = done.stderr.decode("utf-8", errors="replace")
        assert done.returncode == 2 and "Traceback" not in err, err
        assert [line for line in err.splitlines() if line.startswith("error:")], err
    assert disk_state(tmp_path) == before
