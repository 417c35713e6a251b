"""Resolving local folders and Hub ids, without network: a hand-made Hub cache, offline."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub import constants as hub_constants
from huggingface_hub.utils import LocalEntryNotFoundError, RepositoryNotFoundError

from engine.errors import MotionError
from engine.store.hub import looks_like_repo_id, names_hub_repo, resolve_folder, resolve_source

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _fake_hub_cache(cache: Path, repo_id: str, files: dict[str, str]) -> Path:
    """Lay out ``cache`` as huggingface_hub does after downloading ``repo_id`` at main."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    for name, text in files.items():
        (snapshot / name).write_text(text)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return snapshot


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)


def test_local_folder_is_used_as_is(tmp_path):
    (tmp_path / "ckpt").mkdir()
    assert resolve_folder(tmp_path / "ckpt") == (tmp_path / "ckpt").resolve()
    assert resolve_folder(str(tmp_path / "ckpt"), revision="v2") == (tmp_path / "ckpt").resolve()


def test_files_and_missing_paths_are_named(tmp_path):
    (tmp_path / "weights.bin").write_text("x")
    with pytest.raises(MotionError, match="weights.bin: is a file"):
        resolve_folder(tmp_path / "weights.bin")
    with pytest.raises(MotionError, match="no such folder"):
        resolve_folder(tmp_path / "missing")
    with pytest.raises(MotionError, match="no checkpoint or model given"):
        resolve_folder(" ")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("google-t5/t5-large", True),
        ("openai/clip-vit-base-patch32", True),
        ("me/kinetext_v1.2", True),
        ("t5-large", False),
        ("a/b/c", False),
        ("./a/b", False),
        ("owner/na--me", False),
        ("owner/..", False),
        ("C:\\models\\x", False),
    ],
)
def test_repo_id_shape(text, expected):
    assert looks_like_repo_id(text) is expected


def test_offline_cached_repo_resolves_to_its_snapshot(tmp_path, offline):
    snapshot = _fake_hub_cache(tmp_path, "someone/motion-model", {"config.json": "{}"})
    folder = resolve_folder("someone/motion-model", cache_dir=tmp_path, allow_patterns=["*.json"])
    assert folder == snapshot and (folder / "config.json").read_text() == "{}"
    assert resolve_folder("someone/motion-model", revision=COMMIT, cache_dir=tmp_path) == snapshot


def test_a_resolved_snapshot_records_repo_revision_and_commit(tmp_path, offline):
    snapshot = _fake_hub_cache(tmp_path, "someone/motion-model", {"config.json": "{}"})
    source = resolve_source("someone/motion-model", "main", cache_dir=tmp_path)
    assert source.folder == snapshot and source.root == snapshot.parent.parent
    assert source.record() == {"repo_id": "someone/motion-model", "revision": "main",
                               "commit": COMMIT}  # fmt: skip
    local = resolve_source(tmp_path)
    assert local.root == local.folder == tmp_path.resolve()
    assert local.record() == {"path": str(tmp_path.resolve())}


def test_offline_uncached_repo_says_it_needs_network(tmp_path, offline):
    with pytest.raises(MotionError) as caught:
        resolve_folder("someone/not-downloaded", cache_dir=tmp_path)
    message = str(caught.value)
    assert "someone/not-downloaded" in message and "could not be fetched" in message
    assert "HF_HUB_OFFLINE" in message and "network" in message and "local folder" in message


def test_online_passes_id_revision_and_patterns(tmp_path, online, monkeypatch):
    seen = {}

    def fake_download(**kwargs):
        seen.update(kwargs)
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    assert resolve_folder("owner/name", "v1", ["*.json"], cache_dir=tmp_path) == tmp_path
    assert seen["repo_id"] == "owner/name" and seen["revision"] == "v1"
    assert seen["allow_patterns"] == ["*.json"] and seen["local_files_only"] is False


def test_unreachable_hub_and_unknown_repo(online, monkeypatch):
    def unreachable(**kwargs):
        raise LocalEntryNotFoundError("An error happened while trying to locate the files")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", unreachable)
    with pytest.raises(MotionError, match="owner/name: no such local folder.*needs network"):
        resolve_folder("owner/name")

    def unknown(**kwargs):
        raise RepositoryNotFoundError.__new__(RepositoryNotFoundError)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", unknown)
    with pytest.raises(MotionError, match="no Hub repo by that id"):
        resolve_folder("owner/name")


def test_a_relative_path_is_a_folder_when_its_first_part_is_one(tmp_path, monkeypatch, offline):
    monkeypatch.chdir(tmp_path)
    assert names_hub_repo("ckpts/mine")  # nothing here says it is a path
    (tmp_path / "ckpts").mkdir()
    assert not names_hub_repo("ckpts/mine")  # ckpts/ is a folder here: a path
    assert not names_hub_repo(Path("owner/name"))  # a Path object is always a folder
    for given in ("ckpts/mine", Path("owner/name")):
        with pytest.raises(MotionError) as caught:
            resolve_folder(given)
        assert str(caught.value) == f"{given}: no such folder (looked for {tmp_path / given})"
    (tmp_path / "ckpts" / "mine").mkdir()
    assert resolve_folder("ckpts/mine") == tmp_path / "ckpts" / "mine"


def test_an_id_that_is_no_folder_and_not_on_the_hub_says_both(tmp_path, monkeypatch, offline):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MotionError) as caught:
        resolve_folder("ckpts/mine", cache_dir=tmp_path)
    looked = f"ckpts/mine: no such local folder (looked for {tmp_path / 'ckpts' / 'mine'}), and"
    assert str(caught.value).startswith(looked)
