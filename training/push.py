"""Upload an exported checkpoint to the Hugging Face Hub: ``python -m training push OUT REPO_ID``.

The folder is checked first (it must load as a kinetext checkpoint's config), the model repo
is created if needed, and only the files a checkpoint consists of are uploaded (config,
safetensors shards and index, README model card, licence files).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from engine.errors import MotionError
from engine.store.checkpoint import CHECKPOINT_FILES, read_checkpoint_config


def push_checkpoint(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    revision: str | None = None,
    message: str | None = None,
) -> str:
    """Upload ``folder`` to the model repo ``repo_id``; returns the commit URL."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    header = read_checkpoint_config(folder)  # raises MotionError for a non-checkpoint
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise MotionError(f"repo id {repo_id!r} must look like owner/name")
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    models = ", ".join(sorted(header.models))
    commit = api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type="model",
        revision=revision,
        allow_patterns=list(CHECKPOINT_FILES),
        commit_message=message or f"kinetext checkpoint ({models})",
    )
    return str(commit)


def main_push(argv: Sequence[str] | None = None) -> int:
    """``push OUT REPO_ID [--private] [--revision R] [--message M]`` (token: HF_TOKEN or
    ``huggingface-cli login``)."""
    parser = argparse.ArgumentParser(
        prog="python -m training push", description="Upload an exported checkpoint to the Hub."
    )
    parser.add_argument("folder", help="checkpoint folder written by `export`")
    parser.add_argument("repo_id", help="Hub model repo, owner/name (created if missing)")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--revision", default=None, help="branch to push to (default main)")
    parser.add_argument("--message", default=None, help="commit message")
    args = parser.parse_args(argv)
    url = push_checkpoint(
        args.folder, args.repo_id, private=args.private, revision=args.revision,
        message=args.message,
    )  # fmt: skip
    print(f"pushed {args.folder} -> {args.repo_id}: {url}")
    return 0
