"""Resolve a local folder or a Hugging Face repo id to a folder on disk.

Checkpoints and text encoders are both "a folder of files". A user names one either by a
path (a checkpoint they trained, a model copied onto an offline machine) or by a Hub repo id
(``owner/name``), which ``huggingface_hub`` downloads once into its cache. Everything after
this module only ever sees a local folder, so loading code has one path to test.

``ckpts/mine`` has the shape of a Hub id too, so this is the one place that decides which
one a name means (``names_hub_repo``): a ``Path`` object is always a folder (the Blender
add-on's folder setting passes one); a string is a folder when it exists, when it can only
be a path (``./``, ``/``, ``~``, a drive, backslashes, more than one ``/``) or when its first
part is a folder here (``ckpts/`` exists, so ``ckpts/mine`` is meant as a path); only what
is left is looked up on the Hub. A missing folder is reported as such, with where it was
looked for, never as a failed download.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import MotionError, NotDownloaded

# The Hub's rule for a model id: one slash, letters, digits, "-", "_" and "."; no "--" or ".."
# (those are reserved by the cache layout), at most 96 characters.
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9_.][A-Za-z0-9_.\-]*")
_MAX_REPO_ID_CHARS = 96
_COMMIT = re.compile(r"[0-9a-f]{40}")


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a folder of files came from: a local path, or a Hub repo at a resolved commit.

    folder: the local folder (for the Hub, the cached snapshot).
    root: the folder its files may link into (the snapshot's repo cache folder, whose
        ``blobs`` hold the files; else the folder itself): loaders refuse links elsewhere.
    repo_id, revision, commit: for a Hub snapshot, the repo, the revision asked for (None:
        its default branch) and the commit it resolved to, recorded beside what is made.
    """

    folder: Path
    root: Path
    repo_id: str | None = None
    revision: str | None = None
    commit: str | None = None

    def record(self) -> dict[str, Any]:
        """What to write beside an output so that it can be made again."""
        if self.repo_id is None:
            return {"path": str(self.folder)}
        return {"repo_id": self.repo_id, "revision": self.revision, "commit": self.commit}


def local_source(folder: Path, revision: str | None = None) -> Source:
    """The ``Source`` of a local folder; a Hub cache snapshot (``models--owner--name/
    snapshots/<commit>``, e.g. one found offline) is recognised as the repo at that commit."""
    folder = folder.resolve()
    repo = folder.parent.parent
    if (
        folder.parent.name == "snapshots"
        and repo.name.startswith("models--")
        and _COMMIT.fullmatch(folder.name)
    ):
        repo_id = repo.name[len("models--") :].replace("--", "/", 1)
        return Source(folder, repo, repo_id, revision, folder.name)
    return Source(folder, folder)


def looks_like_repo_id(text: str) -> bool:
    """Whether ``text`` has the shape of a Hub model id ``owner/name``."""
    return (
        len(text) <= _MAX_REPO_ID_CHARS
        and _REPO_ID.fullmatch(text) is not None
        and "--" not in text
        and ".." not in text
    )


def names_hub_repo(source: str | os.PathLike[str]) -> bool:
    """Whether ``source`` names a Hub repo rather than a local folder (see the module's text)."""
    if not isinstance(source, str) or not looks_like_repo_id(source):
        return False
    first = Path(source.split("/", 1)[0]).expanduser()
    return not Path(source).expanduser().exists() and not first.is_dir()


def hub_offline() -> bool:
    """Whether Hub access is switched off (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE``).

    Read at call time as well as through ``huggingface_hub.constants`` (which reads it once at
    import), so that setting the variable later, e.g. inside Blender, still takes effect.
    """
    from huggingface_hub import constants

    from_env = any(
        os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )
    return bool(constants.HF_HUB_OFFLINE) or from_env


def resolve_folder(
    path_or_repo_id: str | os.PathLike[str],
    revision: str | None = None,
    allow_patterns: Sequence[str] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    offline: bool = False,
) -> Path:
    """``resolve_source(...).folder``: the local folder for ``path_or_repo_id``."""
    return resolve_source(
        path_or_repo_id, revision, allow_patterns, cache_dir=cache_dir, offline=offline
    ).folder


def resolve_source(
    path_or_repo_id: str | os.PathLike[str],
    revision: str | None = None,
    allow_patterns: Sequence[str] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    offline: bool = False,
) -> Source:
    """The local folder for ``path_or_repo_id`` and where it came from, downloading it from
    the Hub if needed.

    An existing local folder is returned as is (``revision`` is then ignored); a missing
    one raises ``MotionError`` "no such folder". What ``names_hub_repo`` takes for a Hub id
    is fetched with ``huggingface_hub.snapshot_download``
    (only files matching ``allow_patterns``, into ``cache_dir`` or the Hub's default cache).
    Offline (``offline``, e.g. Blender with online access off, or ``HF_HUB_OFFLINE``), a
    repo already in the cache still resolves; one that is not raises ``NotDownloaded``
    saying it needs network access or a local folder. This is the one resolver for
    checkpoints and text encoders, for the CLI, the pipeline and the add-on alike.
    """
    text = os.fspath(path_or_repo_id)
    if not text.strip():
        raise MotionError(
            "no checkpoint or model given: pass a folder path or a Hub id 'owner/name'"
        )
    path = Path(text).expanduser()
    if path.is_dir():
        return local_source(path)
    if path.exists():
        raise MotionError(f"{path}: is a file, expected a folder (or a Hub id 'owner/name')")
    if not names_hub_repo(path_or_repo_id):
        raise MotionError(f"{text}: no such folder{_looked_in(path)}")
    folder = _download(text, revision, allow_patterns, cache_dir, offline)
    found = local_source(folder, revision)
    commit = found.commit if found.repo_id == text else None
    return Source(found.folder, found.root, text, revision, commit)


def _looked_in(path: Path) -> str:
    """Where a relative ``path`` was looked for (relative to what is the usual surprise)."""
    return "" if path.is_absolute() else f" (looked for {path.absolute()})"


def _download(
    repo_id: str,
    revision: str | None,
    allow_patterns: Sequence[str] | None,
    cache_dir: str | os.PathLike[str] | None,
    offline: bool = False,
) -> Path:
    """``snapshot_download`` with its errors turned into one ``MotionError`` each; from the
    local cache only when ``offline`` or ``hub_offline()``."""
    import huggingface_hub
    from huggingface_hub.utils import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    switched_off = hub_offline()
    offline = offline or switched_off
    where = f"{repo_id}" + (f" (revision {revision})" if revision else "")
    try:
        folder = huggingface_hub.snapshot_download(
            repo_id=repo_id,
            revision=revision,
            allow_patterns=list(allow_patterns) if allow_patterns is not None else None,
            cache_dir=os.fspath(cache_dir) if cache_dir is not None else None,
            local_files_only=offline,
        )
    except RevisionNotFoundError as error:
        raise MotionError(f"{where}: the Hub has no revision {revision!r} of this repo") from error
    except RepositoryNotFoundError as error:
        raise MotionError(
            f"{repo_id}: no such local folder{_looked_in(Path(repo_id))}, and no Hub repo by "
            "that id (or it is private or gated: log in with `hf auth login`)"
        ) from error
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as error:
        why = "HF_HUB_OFFLINE" if switched_off else "offline"
        reason = f"Hub access is switched off ({why})" if offline else str(error)
        reason = reason.splitlines()[0] if reason else type(error).__name__
        message = (
            f"{where}: no such local folder{_looked_in(Path(repo_id))}, and it could not be "
            f"fetched from the Hugging Face Hub ({reason}). Fetching a Hub id needs network "
            "access; offline, pass the path of a local folder instead"
        )
        if offline:
            raise NotDownloaded(repo_id, message) from error
        raise MotionError(message) from error
    return Path(folder)
