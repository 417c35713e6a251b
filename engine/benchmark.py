"""Generation speed and memory, measured through the same ``generate`` a user calls.

``python -m engine benchmark`` times each generator at a given model size: latency of one
196-frame clip at batch 1 and throughput at a large batch, with peak memory. Without a
checkpoint it builds one with random weights at the requested preset size, which is what
speed depends on (weights' values do not change the work done). Results print as a
markdown table and, with ``--json``, are written for ``docs/benchmarks.md``.

On CUDA, ``--fast off`` times the reference sampling loops (what the CPU runs) and
``--precision`` picks fp32 / tf32 / bf16 for the fast path and ``--compile`` fuses MLA-Gen's
trunk with torch.compile; ``--check`` compares
the fast path's motion with the reference loop's (relative error), and ``--profile``
counts kernel launches, graph launches and host syncs of one batch-1 call.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from . import pipeline
from .models.autoencoder import AutoencoderConfig, MotionAutoencoder
from .models.mlagen import MLAGen, MLAGenConfig
from .models.molingo import MoLingo, MoLingoConfig
from .pipeline import generate, resolve_device
from .sampling.graphs import PRECISIONS, FastOptions
from .store.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .text_encoder import TextEncoderConfig, load_text_encoder

REFERENCE = FastOptions(enabled=False, graphs=False, precision="fp32")
CHECKED = [FastOptions(precision=p) for p in PRECISIONS] + [
    FastOptions(precision=p, compile=True) for p in ("auto", "bf16")
]  # the variants --check compares with the reference

PROMPTS = (
    "a person walks forward and waves with the right hand",
    "someone tired walks in a circle",
    "a man jumps twice",
    "a person kicks with the left foot",
)


@dataclasses.dataclass
class BenchResult:
    generator: str
    preset: str
    device: str
    batch: int
    frames: int
    latency_ms: float  # median wall time of one generate() call
    clips_per_s: float
    peak_mb: float  # CUDA: max allocated; CPU: process max RSS
    steps: str
    first_ms: float = 0.0  # the untimed first call (loading, graph capture)
    mode: str = ""  # sampling path: "reference" or "fast/<precision>"


def random_checkpoint(folder: Path, preset: str, text: TextEncoderConfig, text_dim: int) -> Path:
    """A checkpoint of the preset's sizes with freshly initialised (untrained) weights."""
    torch.manual_seed(0)
    models = {
        "autoencoder": MotionAutoencoder(
            getattr(AutoencoderConfig, preset)().replace(text_dim=text_dim)
        ),
        "molingo": MoLingo(getattr(MoLingoConfig, preset)().replace(text_dim=text_dim)),
        "mlagen": MLAGen(getattr(MLAGenConfig, preset)().replace(text_dim=text_dim)),
    }
    return save_checkpoint(
        folder, models, text_encoder=text, normalizer_mean=np.zeros(263, np.float32),
        normalizer_std=np.ones(263, np.float32), fps=20, license="none (random weights)",
        attribution="benchmark only", metadata={"generator": "molingo"},
    )  # fmt: skip


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_generation(
    checkpoint: Path, generator: str, device: torch.device, batch: int, frames: int, repeats: int
) -> BenchResult:
    """Median latency of ``repeats`` calls after one warm-up call (loads, caches, autotunes)."""
    variations = min(batch, 16)
    prompts = [PROMPTS[i % len(PROMPTS)] + ("" if i < len(PROMPTS) else f" ({i})")
               for i in range(batch // variations)]  # fmt: skip
    kwargs = dict(frames=frames, variations=variations, checkpoint=str(checkpoint),
                  device=device, generator=generator)  # fmt: skip
    start = time.perf_counter()
    motion = generate(prompts, seed=0, **kwargs)
    first = time.perf_counter() - start
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for seed in range(1, repeats + 1):
        start = time.perf_counter()
        motion = generate(prompts, seed=seed, **kwargs)  # returns numpy: synchronised
        times.append(time.perf_counter() - start)
    latency = statistics.median(times)
    d = motion.diagnostics
    steps = f"{d['ar_steps']}x{d['steps']}" if "ar_steps" in d else str(d["steps"])
    return BenchResult(generator, "", str(device), len(motion), frames, latency * 1000,
                       len(motion) / latency, _peak_mb(device), steps, first * 1000,
                       _mode(device))  # fmt: skip


def _mode(device: torch.device) -> str:
    options = pipeline.FAST_SAMPLING or FastOptions()
    if device.type != "cuda" or not options.enabled:
        return "reference"
    return (f"fast/{options.precision}" + ("" if options.graphs else "/no-graphs")
            + ("/compiled" if options.compile else ""))  # fmt: skip


def _prompts(batch: int) -> tuple[list[str], int]:
    variations = min(batch, 16)
    return [PROMPTS[i % len(PROMPTS)] for i in range(batch // variations)], variations


def _active(checkpoint: Path, generator: str, device: torch.device) -> Checkpoint:
    """The checkpoint with its generator's zero-initialised layers (AdaLN, output) filled
    with random weights: untrained, those predict zero velocity and every path agrees."""
    ckpt = load_checkpoint(checkpoint, device=device)
    g = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for p in ckpt.models[generator].parameters():
            if p.dim() == 2 and not p.any():
                p.normal_(0.0, 0.1, generator=g)
    return ckpt


def check_fast_path(
    checkpoint: Path, generator: str, device: torch.device, batch: int,
    variants: list[FastOptions],
) -> list[dict]:  # fmt: skip
    """The fast path's features against the reference loop's, same seed: relative error
    ||fast - ref|| / ||ref|| per variant (precision, compiled or not), and whether a repeat
    call is bit-identical. For scale, ``seed_gap`` is the same measure between two seeds of
    the reference."""
    prompts, variations = _prompts(batch)
    kwargs = dict(frames=196, variations=variations, device=device, generator=generator,
                  checkpoint=_active(checkpoint, generator, device))  # fmt: skip
    saved = pipeline.FAST_SAMPLING
    try:
        pipeline.FAST_SAMPLING = REFERENCE
        ref = torch.from_numpy(generate(prompts, seed=7, **kwargs).features).double()
        other = torch.from_numpy(generate(prompts, seed=8, **kwargs).features).double()
        gap = float((other - ref).norm() / ref.norm())
        rows = []
        for options in variants:
            pipeline.FAST_SAMPLING = options
            fast = generate(prompts, seed=7, **kwargs).features
            again = generate(prompts, seed=7, **kwargs).features
            diff = torch.from_numpy(fast).double() - ref
            rows.append({"generator": generator, "precision": options.precision,
                         "compile": options.compile, "batch": len(ref),
                         "rel_error": float(diff.norm() / ref.norm()), "seed_gap": gap,
                         "max_abs": float(diff.abs().max()),
                         "repeatable": bool(np.array_equal(fast, again))})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
        return rows
    finally:
        pipeline.FAST_SAMPLING = saved


def product_sweep(device: torch.device, width: int = 256) -> list[dict]:
    """Time one (rows, width) x (width, width) float32 product in IEEE and TF32 modes,
    replayed 200 times in a CUDA graph: where TF32 starts to pay (``SMALL_PRODUCT_ROWS``)."""
    rows_out = []
    saved = torch.get_float32_matmul_precision()
    layer = torch.nn.Linear(width, width, device=device)
    try:
        for rows in (8, 32, 98, 256, 512, 1024, 4096, 25088):
            x = torch.randn(rows, width, device=device)
            row = {"rows": rows}
            for mode, setting in (("fp32", "highest"), ("tf32", "high")):
                torch.set_float32_matmul_precision(setting)
                with torch.no_grad():
                    layer(x)  # warm-up outside capture
                    graph = torch.cuda.CUDAGraph()
                    with torch.cuda.graph(graph):
                        for _ in range(200):
                            layer(x)
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(True)
                start.record()
                graph.replay()
                end.record()
                end.synchronize()
                row[f"{mode}_us"] = round(start.elapsed_time(end) * 1000 / 200, 2)
            rows_out.append(row)
            print(json.dumps(row), flush=True)
    finally:
        torch.set_float32_matmul_precision(saved)
    return rows_out


def profile_call(checkpoint: Path, generator: str, device: torch.device, batch: int = 1) -> dict:
    """Kernel launches, graph launches and host syncs of one 196-frame call at ``batch``
    (after a warm-up call), with the busiest kernels; from ``torch.profiler``."""
    from torch.profiler import ProfilerActivity, profile

    prompts, variations = _prompts(batch)
    kwargs = dict(frames=196, checkpoint=str(checkpoint), device=device, generator=generator,
                  variations=variations)  # fmt: skip
    generate(prompts, **kwargs)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        generate(prompts, seed=1, **kwargs)
    events = prof.key_averages()
    counts = {e.key: e.count for e in events}
    syncs = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")
    kernels = [e for e in events if e.device_type.name == "CUDA"]
    top = sorted(kernels, key=lambda e: e.device_time_total, reverse=True)[:6]
    summary = {
        "generator": generator, "mode": _mode(device), "batch": batch,
        "launches": sum(v for k, v in counts.items() if k.startswith("cudaLaunchKernel")),
        "graph_launches": counts.get("cudaGraphLaunch", 0),
        "syncs": sum(counts.get(k, 0) for k in syncs),
        "memcpy": sum(v for k, v in counts.items() if k.startswith("cudaMemcpy")),
        "kernels_run": sum(e.count for e in kernels),
        "gpu_ms": round(sum(e.device_time_total for e in kernels) / 1000, 2),
        "top": [(e.key[:60], e.count, round(e.device_time_total / 1000, 2)) for e in top],
    }  # fmt: skip
    print(json.dumps(summary), flush=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine benchmark", description=__doc__)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--preset", default="small", choices=["tiny", "small", "base", "large"])
    parser.add_argument("--generators", default="molingo,mlagen")
    parser.add_argument("--batches", default="1,256")
    parser.add_argument("--frames", type=int, default=196)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--text-encoder", default="minilm", help="name or local folder")
    parser.add_argument("--checkpoint", default=None, help="time this checkpoint instead")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--fast", default="on", choices=["on", "off"], help="CUDA fast path")
    parser.add_argument("--precision", default="auto", choices=list(PRECISIONS))
    parser.add_argument(
        "--compile",
        action="store_true",
        help="MLA-Gen's trunk through torch.compile (needs Triton)",
    )
    parser.add_argument("--check", action="store_true", help="compare with the reference")
    parser.add_argument("--profile", default="", help="profile one call at these batches")
    parser.add_argument("--sweep", action="store_true", help="IEEE vs TF32 product times")
    parser.add_argument("--skip-timing", action="store_true")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    fast = FastOptions(precision=args.precision, compile=args.compile)
    fast = fast if args.fast == "on" else REFERENCE
    saved, pipeline.FAST_SAMPLING = pipeline.FAST_SAMPLING, fast
    try:
        return _run(args, device, fast)
    finally:
        pipeline.FAST_SAMPLING = saved


def _run(args: argparse.Namespace, device: torch.device, fast: FastOptions) -> int:
    text = TextEncoderConfig(name=args.text_encoder)
    results = []
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    machine = {"python": platform.python_version(), "torch": torch.__version__,
               "cpu": platform.processor() or platform.machine(),
               "threads": torch.get_num_threads(), "gpu": gpu}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = (
            Path(args.checkpoint)
            if args.checkpoint
            else random_checkpoint(
                Path(tmp) / "ckpt", args.preset, text, load_text_encoder(text, "cpu").dim
            )
        )
        names = args.generators.split(",")
        extra: dict[str, list] = {"check": [], "profile": [], "sweep": []}
        if args.sweep and device.type == "cuda":
            extra["sweep"] = product_sweep(device)
        for name in names if args.check else []:
            extra["check"] += check_fast_path(ckpt, name, device, 4, CHECKED)
        for batch in [int(b) for b in args.profile.split(",") if b]:
            for name in names:
                pipeline.FAST_SAMPLING = fast
                extra["profile"].append(profile_call(ckpt, name, device, batch))
        pipeline.FAST_SAMPLING = fast
        for name in [] if args.skip_timing else names:
            for batch in (int(b) for b in args.batches.split(",")):
                result = time_generation(ckpt, name, device, batch, args.frames, args.repeats)
                result.preset = "checkpoint" if args.checkpoint else args.preset
                results.append(result)
                print(_row(result), flush=True)
                _write(args.json, machine, results, extra)  # as we go: a crash keeps the rest
        _write(args.json, machine, results, extra)
    print(json.dumps(machine))
    return 0


def _write(path: str | None, machine: dict, results: list[BenchResult], extra: dict) -> None:
    if path:
        rows = [dataclasses.asdict(r) for r in results]
        Path(path).write_text(json.dumps({"machine": machine, "results": rows, **extra}, indent=2))


def _row(r: BenchResult) -> str:
    return (f"| {r.generator} | {r.preset} | {r.device} | {r.mode} | {r.batch} | {r.frames} | "
            f"{r.steps} | {r.latency_ms:.1f} | {r.clips_per_s:.1f} | {r.peak_mb:.0f} | "
            f"{r.first_ms:.0f} |")  # fmt: skip
