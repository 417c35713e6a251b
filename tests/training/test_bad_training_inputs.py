"""The training command line's bad-input corpus: data sets, configs, packs. Each case must end
with one clear error line, no traceback, a nonzero exit status and nothing changed on disk
(the ``refused`` fixture of tests/conftest.py); the engine's side is tests/engine/
test_bad_inputs.py. Cases run in-process through ``main(argv)``, a few as real processes.
"""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from test_build_dataset import write_clip

from training.cli import main


def source(folder: Path, bad: bool = False) -> str:
    """Two small captioned clips (or, with ``bad``, two files that are not BVH)."""
    src = folder / "src"
    if bad:
        src.mkdir()
        for name in ("a", "b"):
            (src / f"{name}.bvh").write_text("HIERARCHY\nROOT x\n{\nMOTION\n")
            (src / f"{name}.txt").write_text("a person walks\n")
    else:
        write_clip(src, "a_walk", ["a person walks forward"])
        write_clip(src, "b_walk", ["someone walks"], speed=0.5)
    return str(src)


def build(*extra: str) -> Callable[[Path], list[str]]:
    """build-dataset from a good source into f/ds, with ``extra`` options."""
    return lambda f: ["build-dataset", source(f), str(f / "ds"), "--workers", "1", *extra]


def file_at(path: Path, text: str = "x") -> str:
    path.write_text(text)
    return str(path)


def bytes_at(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def folder_at(path: Path) -> str:
    path.mkdir()
    (path / "notes.txt").write_text("mine")
    return str(path)


def config(folder: Path, text: str, name: str = "c.toml") -> str:
    return file_at(folder / name, text)


def good_config(folder: Path) -> str:
    (folder / "data").mkdir()
    return config(folder, f'task = "autoencoder"\ndata_root = "{folder / "data"}"\n'
                  f'out_dir = "{folder / "run"}"\ndevice = "cpu"\n')  # fmt: skip


def train(*extra: str) -> Callable[[Path], list[str]]:
    return lambda f: ["train", good_config(f), *extra]


CASES: dict[str, Callable[[Path], list[str]]] = {
    # build-dataset: settings
    "split_nan": build("--split", "nan,0.5,0.5"),
    "split_inf": build("--split", "inf,0,0"),
    "split_two_parts": build("--split", "0.8,0.2"),
    "split_negative": build("--split", "1.2,-0.1,-0.1"),
    "split_no_train": build("--split", "0,0.5,0.5"),
    "split_sum_not_one": build("--split", "0.5,0.1,0.1"),
    "split_words": build("--split", "most,some,few"),
    "workers_zero": build("--workers", "0"),
    "workers_negative": build("--workers", "-3"),
    "workers_huge": build("--workers", "100000"),
    "format_unknown": build("--format", "mixamo"),
    "map_unknown": build("--map", "nope"),
    "units_1e308": build("--units", "1e308"),
    "units_nan": build("--units", "nan"),
    "units_word": build("--units", "furlongs"),
    "seed_not_a_number": build("--seed", "one"),
    # build-dataset: sources and outputs
    "source_missing": lambda f: ["build-dataset", str(f / "nope"), str(f / "ds")],
    "source_is_a_text_file": lambda f: ["build-dataset", file_at(f / "a.txt"), str(f / "ds")],
    "source_is_a_broken_archive": lambda f: [
        "build-dataset",
        file_at(f / "a.tar.xz", "junk"),
        str(f / "ds"),
    ],  # fmt: skip
    "source_without_bvh": lambda f: ["build-dataset", folder_at(f / "empty"), str(f / "ds")],
    "source_only_bad_bvh": lambda f: [
        "build-dataset",
        source(f, bad=True),
        str(f / "ds"),
        "--format",
        "folder",
        "--workers",
        "1",
    ],  # fmt: skip
    "out_is_a_file": lambda f: ["build-dataset", source(f), file_at(f / "ds")],
    "out_is_someone_elses_folder": lambda f: ["build-dataset", source(f), folder_at(f / "ds")],
    "out_under_a_file": lambda f: ["build-dataset", source(f), file_at(f / "x") + "/ds"],
    # train
    "train_missing_config": lambda f: ["train", str(f / "none.toml")],
    "train_config_is_a_folder": lambda f: ["train", folder_at(f / "c.toml")],
    "train_bad_toml": lambda f: ["train", config(f, "task = \n")],
    "train_non_utf8_config": lambda f: ["train", bytes_at(f / "c.toml", b"\xff\xfetask = 1")],
    "train_json_list": lambda f: ["train", config(f, "[1, 2]", "c.json")],
    "train_yaml": lambda f: ["train", config(f, "task: x", "c.yaml")],
    "train_unknown_task": lambda f: ["train", config(f, 'task = "dance"\n')],
    "train_unknown_key": train("colour=red"),
    "train_wrong_type": train("max_steps=many"),
    "train_lr_nan": train("lr=nan"),
    "train_lr_negative": train("lr=-1"),
    "train_batch_zero": train("batch_size=0"),
    "train_unknown_preset": train("preset=huge"),
    "train_override_without_equals": train("max_steps"),
    "train_data_root_missing": train("data_root=/nonexistent/kinetext"),
    "train_out_dir_is_a_file": lambda f: ["train", good_config(f), "out_dir=" + file_at(f / "r")],
    "train_resume_without_checkpoint": train("--resume"),
    "train_unknown_option": train("--fast"),
    # packs
    "pack_missing_dataset": lambda f: ["pack-dataset", str(f / "nope"), str(f / "p.npz")],
    "pack_not_a_dataset": lambda f: ["pack-dataset", folder_at(f / "d"), str(f / "p.npz")],
    "unpack_missing_pack": lambda f: ["unpack-dataset", str(f / "p.npz"), str(f / "ds")],
    "unpack_text_as_pack": lambda f: ["unpack-dataset", file_at(f / "p.npz"), str(f / "ds")],
    "no_command": lambda f: [],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_command_lines(name, tmp_path, refused):
    refused(main, CASES[name](tmp_path), tmp_path)


def test_build_dataset_split_nan_is_refused_in_python_too(tmp_path):
    from engine.errors import MotionError
    from training.build_dataset import BuildSettings

    with pytest.raises(MotionError, match="split"):
        BuildSettings(split=(float("nan"), 0.5, 0.5))


def test_ctrl_c_during_a_build_is_one_line_status_130_and_no_partial_folder(
    tmp_path, refused, monkeypatch
):
    import training.build_dataset as build_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(build_module, "read_canonical", interrupted)  # inside the first clip
    argv = build()(tmp_path)
    assert refused(main, argv, tmp_path).startswith("interrupted")


def test_real_processes_print_one_line(tmp_path, disk_state):
    src = source(tmp_path)
    cases = [
        ["build-dataset", src, str(tmp_path / "ds"), "--split", "nan,0.5,0.5"],
        ["build-dataset", str(tmp_path / "nope"), str(tmp_path / "ds")],
        ["train", str(tmp_path / "none.toml")],
    ]
    before = disk_state(tmp_path)
    for args in cases:
        command = [sys.executable, "-m", "training", *args]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert len([line for line in done.stderr.splitlines() if "error:" in line]) == 1
    assert disk_state(tmp_path) == before
