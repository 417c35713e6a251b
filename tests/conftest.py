"""Fixtures shared by the engine and training test folders."""

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with the hash of its bytes ("dir" for folders)."""
    out = {}
    for path in sorted(root.rglob("*")):
        key = path.relative_to(root).as_posix()
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            out[key] = "special"
        else:
            out[key] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def refused(capsys) -> Callable[[Callable, Sequence[str], Path], str]:
    """``refused(main, argv, root)`` runs a command line that must be refused and returns its
    one error line, after checking: a nonzero status, no traceback, exactly one line saying
    ``error:`` (or ``interrupted``), and nothing under ``root`` created, changed or removed."""

    def run(main: Callable, argv: Sequence[str], root: Path) -> str:
        before = snapshot(root)
        try:
            status = main(list(argv))
        except SystemExit as exit_:  # argparse's own errors
            status = exit_.code
        captured = capsys.readouterr()
        assert status not in (0, None), f"accepted: {argv}\n{captured.err}"
        assert "Traceback" not in captured.err
        lines = captured.err.splitlines()
        errors = [line for line in lines if "error:" in line or line.startswith("interrupted")]
        assert len(errors) == 1, captured.err
        assert snapshot(root) == before, f"disk changed by {argv}"
        return errors[0]

    return run


@pytest.fixture
def disk_state() -> Callable[[Path], dict[str, str]]:
    """``disk_state(root)``: what ``refused`` compares, for tests that run real processes."""
    return snapshot


@pytest.fixture(autouse=True)
def no_user_joint_maps(tmp_path_factory, monkeypatch):
    """Builds in tests see no joint maps of the machine's user (``~/.config/kinetext``):
    ``KINETEXT_JOINT_MAPS`` points at an empty folder unless a test sets it."""
    monkeypatch.setenv("KINETEXT_JOINT_MAPS", str(tmp_path_factory.mktemp("no_user_maps")))
