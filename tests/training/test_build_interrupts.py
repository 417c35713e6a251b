"""build-dataset when things go wrong: a malformed file among good ones, a worker killed, the
build itself killed (SIGKILL) or interrupted at each step of its final swap; and the engine's
multi-file BVH write interrupted half-way. The matrix is in docs/reliability.md."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_build_dataset import folder_settings, tree_bytes, write_clip

import training.build_dataset as build_module
from engine.errors import MotionError
from training.build_dataset import BuildSettings, build_dataset, process_clip


@pytest.fixture
def source(tmp_path) -> Path:
    folder = tmp_path / "mocap"
    write_clip(folder, "a_walk", ["a person walks forward"])
    write_clip(folder, "b_walk", ["someone walks"], speed=0.5)
    write_clip(folder, "c_walk", ["a person strolls"], speed=0.8)
    return folder


@pytest.fixture
def built(source, tmp_path) -> tuple[Path, dict[str, bytes]]:
    """A finished data set at tmp_path/ds and its bytes: what every failure must leave."""
    out = tmp_path / "ds"
    build_dataset(source, out, folder_settings(), progress=False)
    return out, tree_bytes(out)


def siblings(out: Path) -> list[str]:
    """What lies beside OUT apart from the source and OUT itself."""
    return sorted(p.name for p in out.parent.iterdir() if p.name not in (out.name, "mocap"))


def dead_pid() -> int:
    """The pid of a process that has exited (a leftover's owner that is gone)."""
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


@pytest.fixture
def no_hang():
    """Fail instead of hanging forever (the bug a killed worker used to cause)."""

    def timeout(*_):
        raise TimeoutError("the build hung")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def test_a_malformed_file_is_skipped_with_its_line_and_the_build_goes_on(source, tmp_path):
    text = (source / "a_walk.bvh").read_text().replace("Frames: 30", "Frames: \u00b2")
    (source / "z_bad.bvh").write_text(text)  # int('²') used to abort the build: ValueError
    (source / "z_bad.txt").write_text("a broken clip\n")
    report = build_dataset(source, tmp_path / "ds", folder_settings(), progress=False)
    assert report.built == 3
    [skipped] = report.skipped
    assert skipped.file == "z_bad.bvh" and "z_bad.bvh:" in skipped.reason
    assert "expected 'Frames: <count>'" in skipped.reason


@pytest.mark.parametrize("error", [ValueError, IndexError, MemoryError])
def test_unexpected_errors_of_one_file_skip_it_naming_the_error(error, source, tmp_path):
    def process(path, read):
        if path.name == "b_walk.bvh":
            raise error("deep inside")
        return process_clip(path, read)

    report = build_dataset(source, tmp_path / "ds", folder_settings(), process=process,
                           progress=False)  # fmt: skip
    assert report.built == 2
    assert report.skipped[0].reason.endswith(f"b_walk.bvh: {error.__name__}: deep inside")


def kill_self_on_b(path, read):
    """A worker killed (the OOM killer, a user) while reading b_walk.bvh."""
    if path.name == "b_walk.bvh":
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGKILL)
    return process_clip(path, read)


def test_a_killed_worker_stops_the_build_with_one_error_instead_of_hanging(built, no_hang):
    out, before = built
    settings = BuildSettings(format="folder", workers=2)
    with pytest.raises(MotionError, match="worker process died"):
        build_dataset(out.parent / "mocap", out, settings, process=kill_self_on_b, progress=False)
    assert tree_bytes(out) == before and siblings(out) == []


def test_leftovers_of_killed_builds_are_removed_by_the_next_build(built):
    out, _ = built
    gone, alive = dead_pid(), os.getppid()  # a running process's leftovers are not touched
    for name in (
        f"ds.partial-{gone}",
        f".ds.source-{gone}",
        f"ds.old-{gone}",
        f"ds.partial-{alive}",
    ):
        (out.parent / name / "new_joints").mkdir(parents=True)
    build_dataset(out.parent / "mocap", out, folder_settings(), progress=False)
    assert siblings(out) == [f"ds.partial-{alive}"]


def test_a_build_killed_between_its_renames_gets_its_old_folder_back(built, tmp_path):
    out, before = built
    os.replace(out, out.with_name(f"ds.old-{dead_pid()}"))  # SIGKILL after the first rename
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MotionError, match="no buildable"):  # even a failing build restores it
        build_dataset(empty, out, folder_settings(), progress=False)
    assert tree_bytes(out) == before and siblings(out) == ["empty"]


@pytest.mark.parametrize("failing_call", [1, 2])
def test_ctrl_c_at_either_rename_of_the_swap_keeps_the_old_folder(failing_call, built, monkeypatch):
    out, before = built
    calls = []
    real_replace = os.replace

    def replace(src, dst):  # called by the final swap: OUT -> OUT.old-PID, new -> OUT
        calls.append((src, dst))
        if len(calls) == failing_call:  # 1: before the first rename, 2: between the two
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(build_module.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        build_dataset(out.parent / "mocap", out, folder_settings(seed=5), progress=False)
    monkeypatch.undo()
    assert len(calls) >= failing_call
    assert tree_bytes(out) == before and siblings(out) == []


SLOW_BUILD = textwrap.dedent(
    """
    import sys, time
    from training.build_dataset import BuildSettings, build_dataset

    def slow(path, read):
        time.sleep(60)

    build_dataset(sys.argv[1], sys.argv[2], BuildSettings(format="folder", workers=1),
                  process=slow, progress=False)
    """
)


def test_sigkill_mid_build_leaves_old_folder_and_a_leftover_the_next_build_removes(built):
    out, before = built
    build = subprocess.Popen([sys.executable, "-c", SLOW_BUILD, str(out.parent / "mocap"),
                              str(out)])  # fmt: skip
    partial = out.with_name(f"ds.partial-{build.pid}")
    deadline = time.monotonic() + 60
    while not partial.exists() and time.monotonic() < deadline and build.poll() is None:
        time.sleep(0.05)
    build.send_signal(signal.SIGKILL)
    build.wait()
    assert partial.exists() and tree_bytes(out) == before
    build_dataset(out.parent / "mocap", out, folder_settings(), progress=False)
    assert siblings(out) == [] and tree_bytes(out) == before  # same source, same bytes


def test_an_interrupted_multi_clip_bvh_write_leaves_every_old_file(tmp_path, monkeypatch):
    """generate --variations 3 --out x.bvh writes x.bvh, x_2.bvh, x_3.bvh: Ctrl-C while the
    third is written leaves the three files of the previous run, and no temporary file."""
    import engine.io.bvh
    from engine.cli import main

    out = [tmp_path / name for name in ("x.bvh", "x_2.bvh", "x_3.bvh")]
    for path in out:
        path.write_text("the previous run")
    real_write = engine.io.bvh._write_text
    written = []

    def write_text(fh, bvh, precision):
        written.append(bvh)
        if len(written) == 3:
            raise KeyboardInterrupt
        real_write(fh, bvh, precision)

    monkeypatch.setattr(engine.io.bvh, "_write_text", write_text)
    args = ["generate", "a person waves", "--seconds", "1", "--variations", "3",
            "--device", "cpu", "--out", str(out[0])]  # fmt: skip
    assert main(args) == 130
    assert [p.read_text() for p in out] == ["the previous run"] * 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.bvh", "x_2.bvh", "x_3.bvh"]
    monkeypatch.undo()
    assert main(args) == 0  # uninterrupted, all three are replaced
    assert all(p.read_text().startswith("HIERARCHY") for p in out)
