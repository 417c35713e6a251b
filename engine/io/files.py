"""Writing output files so that a failure never leaves half a file, and says which file.

Every writer (BVH, previews) goes through ``atomic_output``: the data goes to a hidden
temporary file beside the target, which is renamed over the target only once complete. The
temporary name is an implementation detail, so an error names the path the user gave.
``check_output`` says before any work whether an output can be written at all.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import MotionError


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix); move it into place on success.

    On any exception the temporary file is deleted and ``path`` is left untouched, so a
    failed write never leaves a truncated file that looks finished. The file gets the
    permissions a plain ``open`` would give (mkstemp's are owner-only). A folder that is
    missing or cannot be written, or a target that is a folder, raises ``MotionError``
    naming ``path`` (not the temporary file).
    """
    target = Path(path)
    if target.parent.exists() and not target.parent.is_dir():
        raise MotionError(f"{target}: {target.parent} is a file, not a folder")
    if not target.parent.is_dir():
        raise MotionError(f"{target}: folder {target.parent} does not exist")
    if target.is_dir():
        raise MotionError(f"{target}: is a folder; give a file name")
    try:
        fd, tmp = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.stem}.", suffix=target.suffix
        )
    except OSError as error:
        where = f"cannot write in {target.parent}"
        raise MotionError(f"{target}: {where} ({_reason(error)})") from error
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        try:
            os.replace(tmp, target)
        except OSError as error:
            raise MotionError(f"{target}: cannot write it ({_reason(error)})") from error
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def check_output(path: str | os.PathLike, folder: bool = False) -> None:
    """MotionError now, before any work, if ``path`` (a file, or a folder with ``folder``)
    cannot be written: it is a folder (a file), a file (a folder), or its nearest existing
    parent is not a writable folder. Tried by creating and removing a file, since permission
    bits do not tell (root, read-only mounts, ACLs)."""
    target = Path(path).expanduser()
    if target.is_dir() and not folder:
        raise MotionError(f"{path}: is a folder; give a file name to write")
    if target.exists() and folder and not target.is_dir():
        raise MotionError(f"{path}: is a file, not a folder to write into")
    base = target if folder and target.is_dir() else target.parent
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise MotionError(f"{path}: cannot be written, {base} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=base, prefix=".kinetext-write-test-")
    except OSError as error:
        raise MotionError(f"{path}: cannot write in {base} ({error.strerror or error})") from error
    os.close(fd)
    os.unlink(probe)


def _reason(error: OSError) -> str:
    """The operating system's words for ``error`` without the file names it carries."""
    return error.strerror or type(error).__name__


def _umask() -> int:
    """The process umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
