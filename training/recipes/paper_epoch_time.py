"""Time per epoch of the papers' setups on this machine, on a synthetic set of HumanML3D's size.

    python training/recipes/paper_epoch_time.py --out OUT [--steps 40] [--clips 23384]

What it does, in one call (no download: nothing outside the machine is needed):

1. writes a HumanML3D-layout folder of ``--clips`` training clips (HumanML3D's train split:
   23,384 ids with the mirrors) of random float32 features, 40 to 196 frames (mean about
   140, as HumanML3D's 28.6 h over 14,616 motions), three captions each from a pool of 300
   sentences (so the trainer's caption cache is warm after the first steps, as it is after
   the first epoch of a real run), and per-clip labels for the SAE term;
2. writes stand-in text encoders with the papers' shapes and random weights: T5-Large's
   encoder (24 layers, width 1024) for MoLingo and CLIP ViT-B/32's text tower (12 x 512)
   for MLA-Gen, with the bundled MiniLM tokenizer (the token ids differ, the cost does not);
3. trains each paper config (``training/configs/paper-*.toml``) ``--steps`` steps and reads
   the steady samples per second from the run's ``summary.json``; an epoch is the data
   set's item count divided by that rate, the paper schedule ``max_steps x batch_size`` too;
4. times the frozen encoders on 300 new captions (a real run's first epoch encodes each of
   HumanML3D's 44,970 captions once: that time comes on top of the first epoch).

Results: ``OUT/paper_epoch_time.json`` and a Markdown table on stdout. ``--small`` makes
everything tiny (CPU check of the script itself, numbers meaningless).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the repository's packages
CONFIGS = ("paper-molingo-sae", "paper-molingo-large", "paper-mlagen-s")
HUMANML3D_CAPTIONS = 44_970  # the paper's count of text annotations
WORDS = (
    "walks runs jumps turns waves kicks punches sits stands bows crouches spins dances "
    "stretches climbs throws"
).split()
MANNERS = "slowly quickly happily carefully forward backward to the left to the right".split(" ")


def write_synthetic(root: Path, clips: int, seed: int = 0) -> int:
    """The HumanML3D-layout set; returns its total frames."""
    rng = np.random.default_rng(seed)
    (root / "new_joint_vecs").mkdir(parents=True, exist_ok=True)
    (root / "texts").mkdir(exist_ok=True)
    pool = [f"a person {w} {m}" for w in WORDS for m in MANNERS]
    pool = [f"{c} then stops" if i % 3 else c for i, c in enumerate(pool * 3)][:300]
    lengths = np.clip(rng.normal(150, 45, size=clips), 40, 196).astype(int)
    ids, labels = [f"{i:06d}" for i in range(clips)], {}
    for clip_id, frames in zip(ids, lengths, strict=True):
        np.save(root / "new_joint_vecs" / f"{clip_id}.npy",
                rng.standard_normal((frames, 263), dtype=np.float32))  # fmt: skip
        lines = [f"{pool[k]}#x/NOUN#0.0#0.0" for k in rng.choice(len(pool), 3, replace=False)]
        (root / "texts" / f"{clip_id}.txt").write_text("\n".join(lines) + "\n")
        labels[clip_id] = {"labels": {"action": WORDS[int(rng.integers(len(WORDS)))]}}
    np.save(root / "Mean.npy", np.zeros(263, np.float32))
    np.save(root / "Std.npy", np.ones(263, np.float32))
    (root / "train.txt").write_text("\n".join(ids) + "\n")
    (root / "val.txt").write_text("\n".join(ids[:64]) + "\n")
    (root / "labels.json").write_text(json.dumps(labels))
    (root / "build.json").write_text(json.dumps({"fps": 20, "licence": "synthetic",
                                                 "attribution": "synthetic"}))  # fmt: skip
    return int(lengths.sum())


def write_encoders(out: Path, small: bool) -> dict[str, Path]:
    """Random-weight T5-Large encoder and CLIP-B/32 text tower folders (tokenizer: MiniLM)."""
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from engine.text_encoder import bundled_minilm_folder

    t5 = T5Config(d_model=1024, d_ff=4096, d_kv=64, num_heads=16, num_layers=24,
                  vocab_size=32128)  # fmt: skip
    clip = CLIPTextConfig(vocab_size=49408, hidden_size=512, intermediate_size=2048,
                          num_hidden_layers=12, num_attention_heads=8,
                          max_position_embeddings=77)  # fmt: skip
    if small:
        t5 = T5Config(d_model=32, d_ff=64, d_kv=8, num_heads=4, num_layers=2, vocab_size=32128)
        clip = CLIPTextConfig(vocab_size=49408, hidden_size=32, intermediate_size=64,
                              num_hidden_layers=2, num_attention_heads=4,
                              max_position_embeddings=77)  # fmt: skip
    folders = {"t5": out / "t5-large-standin", "clip": out / "clip-b32-standin"}
    for kind, model in (("t5", T5EncoderModel(t5)), ("clip", CLIPTextModel(clip))):
        model.save_pretrained(folders[kind], safe_serialization=True)
        for file in bundled_minilm_folder().iterdir():
            if "token" in file.name or file.name in ("vocab.txt", "special_tokens_map.json"):
                shutil.copy(file, folders[kind] / file.name)
    return folders


def encoder_seconds_per_caption(folder: Path, kind: str, device: str) -> float:
    """One new caption through the frozen encoder, as the trainer encodes them (one by one)."""
    import torch

    from engine.text_encoder import TextEncoderConfig, build_text_encoder

    encoder = build_text_encoder(TextEncoderConfig(name=str(folder), kind=kind), device)
    captions = [f"a person number {i} walks and waves" for i in range(300)]
    encoder.encode(captions[:10])
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    encoder.encode(captions[10:])
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / 290


def train(config: str, out: Path, overrides: list[str]) -> dict:
    """Run ``python -m training train`` for the paper config; its summary and item count."""
    command = [sys.executable, "-m", "training", "train",
               str(ROOT / "training" / "configs" / f"{config}.toml"), *overrides]  # fmt: skip
    started = time.perf_counter()
    log = out.with_suffix(".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as handle:
        done = subprocess.run(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f"{config} failed, see {log}:\n" + log.read_text()[-3000:])
    summary = json.loads((out / "summary.json").read_text())
    data = json.loads((out / "data.json").read_text())
    settings = json.loads((out / "config.json").read_text())
    return {"summary": summary, "items": data["items"], "config": settings,
            "wall_seconds": time.perf_counter() - started}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="scratch and results folder")
    parser.add_argument("--steps", type=int, default=40, help="training steps timed per config")
    parser.add_argument("--clips", type=int, default=23_384, help="training clips (HumanML3D)")
    parser.add_argument("--small", action="store_true", help="tiny everything (script check)")
    args = parser.parse_args()
    out = Path(args.out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    data = out / "synthetic"
    start = time.perf_counter()
    frames = write_synthetic(data, args.clips)
    write_seconds = time.perf_counter() - start
    encoders = write_encoders(out, args.small)
    common = [f"data_root={data}", f"max_steps={args.steps}", "warmup_steps=2",
              f"log_every={max(1, args.steps // 4)}", f"ckpt_every={args.steps}",
              "progress=false", "num_workers=4", "babel_root="]  # fmt: skip
    if args.small:
        common += ["preset=tiny", "batch_size=8", "device=cpu", "num_workers=0"]
    paper_steps = {}
    results = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
               "clips": args.clips, "frames": frames, "write_seconds": write_seconds,
               "steps_timed": args.steps, "runs": {}}  # fmt: skip
    for config in CONFIGS:
        kind = "clip" if "mlagen" in config else "t5"
        run_dir = out / "runs" / config
        shutil.rmtree(run_dir, ignore_errors=True)
        extra = [f"out_dir={run_dir}", f"text_encoder.name={encoders[kind]}"]
        if config != "paper-molingo-sae":
            extra.append(f"autoencoder={out / 'runs' / 'paper-molingo-sae'}")
        if args.small and config == "paper-molingo-sae":
            extra.append("model.text_dim=32")
        run = train(config, run_dir, common + extra)
        rate = run["summary"]["samples_per_second_steady"] or run["summary"]["samples_per_second"]
        file_config = tomllib_load(ROOT / "training" / "configs" / f"{config}.toml")
        paper_steps[config] = file_config["max_steps"] * file_config["batch_size"]
        results["runs"][config] = {
            "samples_per_second": rate,
            "items_per_epoch": run["items"],
            "epoch_seconds": run["items"] / rate,
            "paper_schedule_hours": paper_steps[config] / rate / 3600,
            "batch_size": run["config"]["batch_size"],
            "summary": run["summary"],
        }
    results["encoder_seconds_per_caption"] = {
        kind: encoder_seconds_per_caption(folder, kind, device) for kind, folder in encoders.items()
    }
    (out / "paper_epoch_time.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"{results['device']}, {args.clips} clips, {frames} frames, {args.steps} steps each")
    print("| config | batch | samples/s | items/epoch | epoch | paper schedule |")
    print("|---|---|---|---|---|---|")
    for config, run in results["runs"].items():
        print(f"| {config} | {run['batch_size']} | {run['samples_per_second']:.0f} | "
              f"{run['items_per_epoch']} | {run['epoch_seconds']:.0f} s | "
              f"{run['paper_schedule_hours']:.1f} h |")  # fmt: skip
    for kind, seconds in results["encoder_seconds_per_caption"].items():
        first = seconds * HUMANML3D_CAPTIONS
        print(
            f"{kind} stand-in: {1000 * seconds:.1f} ms per new caption, "
            f"+{first:.0f} s on the first epoch ({HUMANML3D_CAPTIONS} captions)"
        )


def tomllib_load(path: Path) -> dict:
    import tomllib

    return tomllib.loads(path.read_text(encoding="utf-8"))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
