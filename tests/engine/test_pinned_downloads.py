"""Pinned downloads, without network: ``--revision`` reaches the Hub, the commit everything
resolved to is written beside the output, and a Hub repo named inside a checkpoint is never
fetched at its moving default branch without a revision or ``--allow-unpinned``.

``huggingface_hub.snapshot_download`` is replaced by a fake that lays out the Hub's cache
(``models--owner--name/snapshots/<commit>``) from local files and records every call.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub import constants as hub_constants
from pipeline_fixtures import save_tiny_checkpoint

import engine.pipeline
from engine.cli import main
from engine.text_encoder import bundled_minilm_folder, clear_loaded_text_encoders

COMMITS = {None: "a" * 40, "main": "a" * 40, "v1": "b" * 40, "e" * 40: "e" * 40}
ARGS = ["--device", "cpu", "--steps", "2", "--seconds", "1", "--generator", "mlagen"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("pinned") / "tiny")


@pytest.fixture
def hub(tmp_path, tiny, monkeypatch) -> list[tuple[str, str | None]]:
    """The fake Hub: someone/tiny is the tiny checkpoint, someone/encoder the MiniLM files.
    Returns the (repo_id, revision) of every download asked for."""
    calls: list[tuple[str, str | None]] = []
    contents = {"someone/tiny": tiny, "someone/encoder": bundled_minilm_folder()}

    def snapshot_download(repo_id, revision=None, **kwargs):
        calls.append((repo_id, revision))
        commit = COMMITS[revision]
        snapshot = tmp_path / "hub" / f"models--{repo_id.replace('/', '--')}" / "snapshots" / commit
        if not snapshot.exists():
            shutil.copytree(contents[repo_id], snapshot, symlinks=False)
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(engine.pipeline, "_LOADED", {})  # no checkpoint kept from other tests
    clear_loaded_text_encoders()
    yield calls
    clear_loaded_text_encoders()


def _sidecar(out: Path) -> dict:
    return json.loads(out.with_name(out.name + ".source.json").read_text())


def test_revision_reaches_the_hub_and_the_commit_is_written(hub, tmp_path, capsys):
    out = tmp_path / "walk.npy"
    argv = ["generate", "a person walks", "--checkpoint", "someone/tiny", "--revision", "v1"]
    assert main([*argv, "--out", str(out), *ARGS]) == 0
    assert hub == [("someone/tiny", "v1")]
    record = _sidecar(out)
    assert record["sources"]["checkpoint"] == {
        "repo_id": "someone/tiny", "revision": "v1", "commit": COMMITS["v1"],
    }  # fmt: skip
    assert record["sources"]["text_encoder"] == {"path": str(bundled_minilm_folder())}
    assert record["prompt"] == "a person walks" and record["seed"] == 0
    err = capsys.readouterr().err
    assert f"note: checkpoint someone/tiny at commit {COMMITS['v1']}\n" in err


def test_without_revision_the_default_branch_commit_is_recorded(hub, tmp_path, capsys):
    out = tmp_path / "walk.bvh"
    argv = ["generate", "a person walks", "--checkpoint", "someone/tiny", "--out", str(out)]
    assert main([*argv, *ARGS]) == 0
    assert hub == [("someone/tiny", None)]
    assert _sidecar(out)["sources"]["checkpoint"]["commit"] == COMMITS[None]
    assert "no --revision given: pass it to pin this" in capsys.readouterr().err


def _with_encoder(tiny: Path, tmp_path: Path, revision: str | None) -> Path:
    folder = Path(shutil.copytree(tiny, tmp_path / "local"))
    config = json.loads((folder / "config.json").read_text())
    config["text_encoder"].update(name="someone/encoder", revision=revision)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_a_hub_name_inside_a_checkpoint_is_not_followed_unpinned(hub, tiny, tmp_path, capsys):
    folder = _with_encoder(tiny, tmp_path, revision=None)
    out = tmp_path / "walk.npy"
    argv = ["generate", "a person walks", "--checkpoint", str(folder), "--out", str(out), *ARGS]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "'someone/encoder' is a Hub repo named without a revision" in err
    assert "--allow-unpinned" in err and "text_encoder.revision" in err
    assert hub == [] and not out.exists()

    assert main([*argv, "--allow-unpinned"]) == 0  # the user's explicit consent
    assert hub == [("someone/encoder", None)]
    assert _sidecar(out)["sources"]["text_encoder"] == {
        "repo_id": "someone/encoder", "revision": None, "commit": COMMITS[None],
    }  # fmt: skip


def test_a_pinned_hub_name_inside_a_checkpoint_is_followed(hub, tiny, tmp_path):
    pinned = "e" * 40
    folder = _with_encoder(tiny, tmp_path, revision=pinned)
    out = tmp_path / "walk.npy"
    argv = ["generate", "a person walks", "--checkpoint", str(folder), "--out", str(out), *ARGS]
    assert main(argv) == 0
    assert hub == [("someone/encoder", pinned)]
    sources = _sidecar(out)["sources"]
    assert sources["text_encoder"] == {"repo_id": "someone/encoder", "revision": pinned,
                                       "commit": pinned}  # fmt: skip
    assert sources["checkpoint"] == {"path": str(folder.resolve())}


def test_nothing_fetched_writes_no_sidecar(hub, tiny, tmp_path, capsys):
    out = tmp_path / "walk.npy"
    argv = ["generate", "a person walks", "--checkpoint", str(tiny), "--out", str(out), *ARGS]
    assert main(argv) == 0
    assert hub == [] and sorted(p.name for p in tmp_path.iterdir()) == ["walk.npy"]
    assert "note:" not in capsys.readouterr().err
