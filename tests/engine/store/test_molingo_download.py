"""``python -m engine download-molingo`` against a local HTTP server serving test-made zips."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from molingo_release_fixtures import write_release, write_tokenizer

from engine.cli import main
from engine.errors import MotionError
from engine.store.checkpoint import load_checkpoint
from engine.store.molingo_download import RELEASES, download_molingo, release_url

SAE_ITEM, MODEL_ITEM = RELEASES["263"]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dl-release")
    sae, model = write_release(root, sae_options={"name": SAE_ITEM.folder})
    return {"sae": sae, "model": model, "tokenizer": write_tokenizer(root / "tok"),
            "meanstd": root / "meanstd"}  # fmt: skip


def _zip(folder: Path, target: Path, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(folder.rglob("*")):
            archive.write(path, f"{folder.name}/{path.relative_to(folder).as_posix()}")
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return target


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, the folder it serves) on 127.0.0.1."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_Quiet, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/files", root
    finally:
        httpd.shutdown()
        thread.join()


def _serve(release: dict[str, Path], served: Path, **extra: dict[str, bytes]) -> None:
    (served / "files").mkdir()
    _zip(release["sae"], served / "files" / SAE_ITEM.filename, extra.get("sae"))
    _zip(release["model"], served / "files" / MODEL_ITEM.filename, extra.get("model"))


def _args(release: dict[str, Path], url: str, out: Path) -> list[str]:
    return [
        "download-molingo", "--representation", "263", "--out", str(out), "--mirror", url,
        "--mean-std", str(release["meanstd"]), "--text-encoder", str(release["tokenizer"]),
    ]  # fmt: skip


def test_download_convert_records_sha256_and_shows_progress(
    release: dict[str, Path], server: tuple[str, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    url, served = server
    _serve(release, served)
    out = tmp_path / "models" / "molingo-263"
    assert main(_args(release, url, out)) == 0
    assert "100%" in capsys.readouterr().err
    ckpt = load_checkpoint(out)
    records = ckpt.metadata["downloads"]
    for record, item in zip(records, RELEASES["263"], strict=True):
        data = (served / "files" / item.filename).read_bytes()
        assert record["url"] == release_url(item, url)
        assert record["sha256"] == hashlib.sha256(data).hexdigest()
        assert record["bytes"] == len(data)
    assert sorted(p.name for p in out.parent.iterdir()) == ["molingo-263"]  # no leftovers


def test_authors_urls_are_those_of_their_script() -> None:
    assert release_url(SAE_ITEM) == (
        "https://nc.mlcloud.uni-tuebingen.de/index.php/s/2kdZCFrbJSHgFoy/download/"
        "sae_l2_4_16_1024_d3_kl_1e-05_zero_cos_0.001.zip"
    )
    assert release_url(MODEL_ITEM).endswith("/J4Fcqmq6agD4HaX/download/pretrained_model_263.zip")


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"model": {"pretrained_model_263/notes.txt": b"hi"}}, "unexpected"),
        ({"sae": {"../evil.txt": b"x"}}, "unsafe path"),
    ],
)
def test_zip_with_other_files_is_refused(
    release: dict[str, Path], server: tuple[str, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str], extra: dict[str, dict[str, bytes]], words: str,
) -> None:  # fmt: skip
    url, served = server
    _serve(release, served, **extra)
    out = tmp_path / "models" / "m"
    assert main(_args(release, url, out)) == 2
    message = capsys.readouterr().err
    assert words in message and ".zip" in message
    assert list((tmp_path / "models").iterdir()) == []
    assert not (tmp_path / "evil.txt").exists()


def test_missing_zip_names_the_url(
    release: dict[str, Path], server: tuple[str, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    url, _ = server  # serves nothing
    assert main(_args(release, url, tmp_path / "m")) == 2
    assert release_url(SAE_ITEM, url) in capsys.readouterr().err


def test_cancel_from_progress_leaves_nothing(
    release: dict[str, Path], server: tuple[str, Path], tmp_path: Path
) -> None:
    url, served = server
    _serve(release, served)
    calls = []

    def cancel(done: int, total: int | None, name: str) -> None:
        calls.append((done, total, name))
        if name == MODEL_ITEM.filename:
            raise MotionError("cancelled")

    out = tmp_path / "models" / "m"
    with pytest.raises(MotionError, match="cancelled"):
        download_molingo(
            "263", out, mirror=url, progress=cancel, mean_std=release["meanstd"],
            text_encoder=str(release["tokenizer"]),
        )  # fmt: skip
    assert calls[0][1] == (served / "files" / SAE_ITEM.filename).stat().st_size
    assert list((tmp_path / "models").iterdir()) == []


def test_unknown_representation_is_refused_before_downloading(tmp_path: Path) -> None:
    with pytest.raises(MotionError, match="263"):
        download_molingo("251", tmp_path / "m", mirror="http://127.0.0.1:9/none")
    assert not (tmp_path / "m").exists()


def test_mean_std_is_asked_for_before_downloading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["download-molingo", "--representation", "272", "--out", str(tmp_path / "m"),
            "--mirror", "http://127.0.0.1:9/none"]  # fmt: skip
    assert main(args) == 2  # port 9 is never contacted: the error comes first
    message = capsys.readouterr().err
    assert "--mean-std" in message and "HumanML3D_272" in message
    assert not (tmp_path / "m").exists()
