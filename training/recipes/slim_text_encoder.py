"""Shrink a BERT-family text encoder folder for carrying to a machine with a small upload limit.

    python training/recipes/slim_text_encoder.py slim SRC DST --texts DATASET/texts [...] [--int8]
    python training/recipes/slim_text_encoder.py restore DST OUT

Why: the GPU machines we train on take at most 64 MiB of files per call, and half of
all-MiniLM-L6-v2 (23 MB in float16) is its word-embedding table, of which a motion data set's
captions use a few hundred rows. ``slim`` keeps the rows of every token the given texts (and
the extra prompt files, the special tokens and the digits) tokenise to, the other weights in
float16; ``restore`` writes a float32 ``model.safetensors`` folder that transformers loads,
with the dropped rows set to zero. A restored encoder gives the original's embeddings (up to
float16 rounding) for those texts and NOT for others: it is for training and evaluating on
that data set, never for shipping. ``restore`` refuses to run when the folder is not a slim one.
Give ``--texts`` of every data set a run will read: training and evaluation refuse captions
with blank rows (``engine.text_encoder.check_reads``). ``--int8`` also stores the other large
matrices as int8 with a float16 scale per row (12 MiB instead of 22 for MiniLM; pooled vectors
then sit at cosine ~0.999 to the original's instead of ~1.0).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer

TABLE = "embeddings.word_embeddings.weight"
SLIM_FILE = "model.slim.safetensors"
EXTRA_TEXT = "0 1 2 3 4 5 6 7 8 9 ( ) , . - ' !"


def _weights_file(folder: Path) -> Path:
    for name in ("model.safetensors", "model.fp16.safetensors"):
        if (folder / name).is_file():
            return folder / name
    raise SystemExit(f"{folder}: no model.safetensors or model.fp16.safetensors")


def _texts(paths: list[Path]) -> list[str]:
    """Every line of every .txt file under ``paths`` (HumanML3D caption lines: text#tokens#..
    keep the part before the first '#'), plus the lines of plain prompt files."""
    lines: list[str] = [EXTRA_TEXT]
    for path in paths:
        files = sorted(path.rglob("*.txt")) if path.is_dir() else [path]
        for file in files:
            for line in file.read_text("utf-8").splitlines():
                if line.strip():
                    lines.append(line.split("#", 1)[0])
    return lines


def slim(src: Path, dst: Path, texts: list[Path], prompts: list[str], int8: bool = False) -> None:
    tokenizer = AutoTokenizer.from_pretrained(str(src))
    ids: set[int] = set(tokenizer.all_special_ids)
    for text in _texts(texts) + prompts:
        ids.update(tokenizer(text)["input_ids"])
    weights = load_file(str(_weights_file(src)))
    key = next(k for k in weights if k.endswith(TABLE))
    keep = torch.tensor(sorted(ids), dtype=torch.long)
    out = {k: v.half() for k, v in weights.items() if k != key}
    out[key + ".rows"] = weights[key][keep].half()
    out[key + ".ids"] = keep
    out[key + ".shape"] = torch.tensor(list(weights[key].shape), dtype=torch.long)
    if int8:
        out = _to_int8(out)
    dst.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.is_file() and not item.name.endswith(".safetensors"):
            shutil.copy(item, dst / item.name)
    save_file(out, str(dst / SLIM_FILE))
    size = (dst / SLIM_FILE).stat().st_size / 2**20
    print(f"{dst}: kept {len(keep)} of {weights[key].shape[0]} token rows, {size:.1f} MiB")


def _to_int8(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Large 2-D matrices as int8 rows with a float16 scale each (the kept table stays)."""
    out = {}
    for key, value in weights.items():
        if value.ndim == 2 and value.numel() > 4096 and not key.endswith(".rows"):
            scale = value.float().abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / 127
            out[key + ".q8"] = torch.round(value.float() / scale).to(torch.int8)
            out[key + ".scale"] = scale.half()
        else:
            out[key] = value
    return out


def restore(slim_dir: Path, out: Path) -> None:
    if not (slim_dir / SLIM_FILE).is_file():
        raise SystemExit(f"{slim_dir}: no {SLIM_FILE} (not made by 'slim')")
    weights = load_file(str(slim_dir / SLIM_FILE))
    parts = (".rows", ".ids", ".shape", ".q8", ".scale")
    full = {k: v.float() for k, v in weights.items() if not k.endswith(parts)}
    for key in [k[: -len(".q8")] for k in weights if k.endswith(".q8")]:
        full[key] = weights[key + ".q8"].float() * weights[key + ".scale"].float()
    for key in [k[: -len(".rows")] for k in weights if k.endswith(".rows")]:
        table = torch.zeros(*weights[key + ".shape"].tolist())
        table[weights[key + ".ids"]] = weights[key + ".rows"].float()
        full[key] = table
    out.mkdir(parents=True, exist_ok=True)
    for item in slim_dir.iterdir():
        if item.is_file() and not item.name.endswith(".safetensors"):
            shutil.copy(item, out / item.name)
    save_file(full, str(out / "model.safetensors"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    s = commands.add_parser("slim")
    s.add_argument("src", type=Path)
    s.add_argument("dst", type=Path)
    s.add_argument("--texts", type=Path, action="append", default=[])
    s.add_argument("--prompt", action="append", default=[], help="an extra prompt to keep")
    s.add_argument("--int8", action="store_true", help="int8 matrices (see above)")
    r = commands.add_parser("restore")
    r.add_argument("slim_dir", type=Path)
    r.add_argument("out", type=Path)
    args = parser.parse_args()
    if args.command == "slim":
        slim(args.src, args.dst, args.texts, args.prompt, args.int8)
    else:
        restore(args.slim_dir, args.out)


if __name__ == "__main__":
    main()
