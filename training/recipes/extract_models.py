"""A copy of a checkpoint holding only some of its models (e.g. the autoencoder alone).

    python training/recipes/extract_models.py CHECKPOINT OUT --model autoencoder

Why: a device call carries at most 64 MiB, and fine-tuning one model (``init_from = OUT``)
needs only that model's weights, not the whole checkpoint's (session 9 carried the shipped
autoencoder, 9.6 MB, instead of the 36 MB checkpoint). Tensors are copied as stored (bf16
stays bf16); the config keeps the normaliser, text encoder, skeleton and licence terms.
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.store.checkpoint import load_checkpoint  # noqa: E402

COPIED = ("LICENSE-data", "README.md")


def extract(source: Path, out: Path, names: list[str]) -> int:
    """Write ``out`` with the models ``names`` of ``source``; returns the tensors written."""
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    missing = [n for n in names if n not in config["models"]]
    if missing:
        raise SystemExit(f"{source} has no model {missing}; it holds {list(config['models'])}")
    prefixes = tuple(f"{n}." for n in names)
    tensors = {}
    for shard in sorted(source.glob("*.safetensors")):
        if shard.name.startswith("knowledge"):
            continue
        tensors.update({k: v for k, v in load_file(shard).items() if k.startswith(prefixes)})
    out.mkdir(parents=True, exist_ok=False)
    save_file(tensors, out / "model.safetensors", metadata={"format": "pt"})
    config["models"] = {n: config["models"][n] for n in names}
    config["metadata"] = {"runs": {}, "extracted_from": str(source), "models": names}
    (out / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    for name in COPIED:
        if (source / name).is_file():
            shutil.copy(source / name, out / name)
    load_checkpoint(out)  # refuse to leave a folder the engine cannot read
    return len(tensors)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path, help="new folder (must not exist)")
    parser.add_argument("--model", action="append", required=True, help="model to keep")
    args = parser.parse_args()
    count = extract(args.checkpoint, args.out, args.model)
    print(f"{args.out}: {count} tensors of {', '.join(args.model)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
