"""Download a published MoLingo release and convert it: ``python -m engine download-molingo``.

The URLs are the ones of the authors' ``prepare/download_models.sh``. Each zip is streamed
to a hidden file while its SHA-256 is computed, must hold exactly the files the authors'
code reads (the zips are unpacked by the same names), is unpacked without trusting its
paths (no absolute paths, no ``..``, no links) and is converted by
``engine.store.molingo_release.import_molingo``; the converted checkpoint records each zip's URL,
size and SHA-256. Progress is reported through a callable, which may raise to cancel; a
cancelled or failed download leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import shutil
import stat
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import MotionError

AUTHORS_SERVER = "https://nc.mlcloud.uni-tuebingen.de/index.php/s"
CHUNK = 1 << 20
TIMEOUT_S = 60.0

LICENSE = (
    "MoLingo (He et al., CVPR 2026), trained on HumanML3D; see the authors' repository for "
    "the terms of the weights"
)
ATTRIBUTION = (
    "MoLingo: Motion-Language Alignment for Text-to-Motion Generation, Yannan He, Garvita "
    "Tiwari, Xiaohan Zhang, Pankaj Bora, Tolga Birdal, Jan Eric Lenssen, Gerard Pons-Moll "
    "(CVPR 2026), github.com/hynann/MoLingo; HumanML3D (Guo et al., CVPR 2022)"
)
TERMS = (
    "The MoLingo weights are the authors' work, trained on HumanML3D (whose motions come "
    "from AMASS under its own licence). Their code is Apache-2.0; for the terms of the "
    "weights see github.com/hynann/MoLingo. Kinetext downloads them from the authors' server."
)

# (done bytes, total bytes or None, what is being fetched); raise to cancel.
DownloadProgress = Callable[[int, int | None, str], None]


@dataclass(frozen=True)
class ReleaseZip:
    """One zip of the release: where the authors serve it and the files it must hold."""

    share: str  # the server's share id (path before /download/)
    filename: str
    folder: str  # the folder the zip unpacks to
    files: tuple[str, ...]  # paths inside ``folder``, exactly these


def _sae(share: str, name: str) -> ReleaseZip:
    return ReleaseZip(share, f"{name}.zip", name, ("opt.txt", "model/net_best_fid.ckpt"))


def _model(share: str, dim: int) -> ReleaseZip:
    name = f"pretrained_model_{dim}"
    return ReleaseZip(share, f"{name}.zip", name, ("opt.txt", "net_best_fid.pth"))


RELEASES: dict[str, tuple[ReleaseZip, ReleaseZip]] = {
    "263": (
        _sae("2kdZCFrbJSHgFoy", "sae_l2_4_16_1024_d3_kl_1e-05_zero_cos_0.001"),
        _model("J4Fcqmq6agD4HaX", 263),
    ),
    "272": (
        _sae("3kcCBagkFtmf2n7", "sae_ms_l2_2_32_1024_d3_kl_1e-05_zero_cos_0.001"),
        _model("DdbAzge4WrRmFzf", 272),
    ),
}


def release_url(item: ReleaseZip, mirror: str | None = None) -> str:
    """The authors' URL of ``item``, or ``mirror/<file name>`` for a mirror of the zips."""
    if mirror:
        return f"{mirror.rstrip('/')}/{item.filename}"
    return f"{AUTHORS_SERVER}/{item.share}/download/{item.filename}"


def fetch(url: str, target: Path, progress: DownloadProgress | None = None) -> dict[str, Any]:
    """Stream ``url`` into ``target``; returns its url, size and SHA-256."""
    digest, done = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with target.open("wb") as out:
                while block := response.read(CHUNK):
                    out.write(block)
                    digest.update(block)
                    done += len(block)
                    if progress is not None:
                        progress(done, total, target.name)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise MotionError(f"{url}: download failed: {error}") from error
    if total is not None and done != total:
        raise MotionError(f"{url}: download ended after {done} of {total} bytes")
    return {"url": url, "bytes": done, "sha256": digest.hexdigest()}


def check_zip(path: Path, item: ReleaseZip, url: str) -> None:
    """Refuse a zip that is not exactly the release's files (or that could escape)."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError) as error:
        raise MotionError(f"{url}: not a readable zip file: {error}") from error
    expected = {f"{item.folder}/{name}" for name in item.files}
    found = set()
    for entry in entries:
        name = PurePosixPath(entry.filename)
        if name.is_absolute() or ".." in name.parts or "\\" in entry.filename:
            raise MotionError(f"{url}: unsafe path {entry.filename!r} in the zip")
        if stat.S_ISLNK(entry.external_attr >> 16):
            raise MotionError(f"{url}: the zip holds a link ({entry.filename}); refused")
        if not entry.is_dir():
            found.add(str(name))
    if found != expected:
        extra, missing = sorted(found - expected), sorted(expected - found)
        raise MotionError(
            f"{url}: the zip does not hold exactly the release's files: "
            f"unexpected {extra or 'none'}, missing {missing or 'none'}"
        )


def download_molingo(
    representation: str,
    out_dir: str | Path,
    *,
    mean_std: str | Path | None = None,
    text_encoder: str | None = None,
    mirror: str | None = None,
    progress: DownloadProgress | None = None,
) -> Path:
    """Download the ``representation`` ("263" or "272") release and convert it to
    ``out_dir``. Every problem raises ``MotionError``; nothing is left half-written."""
    from .molingo_release import SUPPORTED_DIMS, import_molingo

    if representation not in RELEASES:
        raise MotionError(
            f"representation must be one of {sorted(RELEASES)}, got {representation!r}"
        )
    if representation not in SUPPORTED_DIMS:
        raise MotionError(
            f"the {representation}-dim MoLingo release cannot be converted by this kinetext yet; "
            f"use --representation {' or '.join(SUPPORTED_DIMS)}"
        )
    if mean_std is None:  # the zips hold exactly the weights and options: no statistics
        raise MotionError(
            "the release does not carry the features' Mean/Std: pass --mean-std FOLDER (the "
            f"{'HumanML3D_272 mean_std' if representation == '272' else 'HumanML3D'} folder "
            "with Mean.npy and Std.npy)"
        )
    if not Path(mean_std).is_dir():
        raise MotionError(f"{mean_std}: no such folder (HumanML3D's Mean.npy and Std.npy)")
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = out_dir.parent / f".{out_dir.name}.download-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    try:
        records = []
        for item in RELEASES[representation]:
            url = release_url(item, mirror)
            path = work / item.filename
            records.append(fetch(url, path, progress))
            check_zip(path, item, url)
            with zipfile.ZipFile(path) as archive:
                archive.extractall(work / "unpacked")
            path.unlink()
        sae, model = (work / "unpacked" / item.folder for item in RELEASES[representation])
        return import_molingo(
            sae, model, out_dir, text_encoder=text_encoder, mean_std=mean_std,
            extra_metadata={"downloads": records},
        )  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
