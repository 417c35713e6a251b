"""Evaluate a checkpoint on a data set's test split (the MARDM / MoLingo protocol, SPEC 4).

    python -m training evaluate CHECKPOINT --data ROOT --evaluator PATH [--replications 20]
                                [--sampling steps=25 ...] [--out results.json] [--markdown ...]

One replication: the split is shuffled into batches of 32 (incomplete batch dropped), each
item cropped and captioned as the data set draws it for that replication; the generator makes
one motion per caption at the item's length; the evaluator embeds texts, real and generated
motions, and ``metrics`` turns the embeddings into FID, R-precision, matching score,
diversity, MModality (the first 3 batches' texts, 30 generations each), the CLIP-score
analogue and MLA-Gen's SinkRatio. Replications are summarised as mean +/- 1.96 sigma /
sqrt(n). The real row measures the test motions against their own captions, and FID between
real training and real test motions, as the floor a generator can be compared with.

Phases: every replication is drawn (and its real row scored) first; then the clips of all
replications are generated together, length by length, in calls of up to
``Protocol.prompts_per_call`` clips (``generation``: a GPU call costs about the same for 13
clips as for 256); then each replication's generated row is scored. The seconds of each
phase are in the report's ``settings["phase_seconds"]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from engine.edit.cleanup import Cleanup
from engine.errors import MotionError
from engine.generators import GENERATORS, GUIDANCE_MODES
from engine.motion.features import Normalizer, recover_from_ric
from engine.motion.skeleton import FPS
from engine.pipeline import choose_generator, resolve_device
from engine.sampling.graphs import PRECISIONS, FastOptions, default_options
from engine.store.checkpoint import load_checkpoint
from engine.text_encoder import TextEncoder, check_reads, load_text_encoder
from training.data import MotionBatch, MotionDataset, collate_items, make_loader, set_epoch
from training.evaluation import metrics, physical
from training.evaluation.generation import (
    Generation,
    Request,
    Stopwatch,
    check_sampling,
    parse_sampling,
)
from training.evaluation.metrics import Interval, confidence_interval

# Metric key -> column title (arrow: which way is better; -> means closer to the real row).
COLUMNS = {
    "fid": "FID ↓",
    "top1": "R@1 ↑",
    "top2": "R@2 ↑",
    "top3": "R@3 ↑",
    "matching": "Matching ↓",
    "diversity": "Diversity →",
    "mmodality": "MModality ↑",
    "clip_score": "CLIP-score ↑",
    "sink_ratio": "SinkRatio",
}
ALL_COLUMNS = {**COLUMNS, **physical.PHYSICS_COLUMNS}
T2M_PREFIX = "t2m:"


class Embedder(typing.Protocol):
    """What ``evaluate`` needs of an evaluator (ours: ``evaluator.Evaluator``; the public
    one: ``t2m.T2MEvaluator``): a joint space for captions and motions."""

    name: str
    normalizer: Normalizer  # the statistics ``embed_motion`` expects features normalised with

    def embed_text(self, captions: Sequence[str]) -> np.ndarray:
        """Captions -> (B, E)."""
        ...

    def embed_motion(self, features: Any, lengths: Sequence[int]) -> np.ndarray:
        """Normalised features (B, F, 263) with valid ``lengths`` (B,) frames -> (B, E)."""
        ...


@dataclasses.dataclass(frozen=True)
class Protocol:
    """The numbers of the protocol; the defaults are the references'."""

    batch_size: int = 32  # texts each R-precision ranks among
    replications: int = 20
    diversity_pairs: int = 300
    mm: bool = True  # measure MModality (costs mm_batches * batch_size * mm_repeats motions)
    mm_batches: int = 3
    mm_repeats: int = 30  # generations per text
    mm_pairs: int = 10
    prompts_per_call: int = 256  # clips per generate() call, across replications (memory)


@dataclasses.dataclass
class Report:
    """Results: per row ("real", "generated") each metric's interval, plus the raw values."""

    rows: dict[str, dict[str, Interval | None]]
    values: dict[str, list[dict[str, float | None]]]  # row -> one dict per replication
    settings: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        rows = {
            row: {k: None if v is None else dataclasses.asdict(v) for k, v in cells.items()}
            for row, cells in self.rows.items()
        }
        return {"settings": self.settings, "rows": rows, "replications": self.values}

    def to_markdown(self) -> str:
        lines = [
            "| Motions | " + " | ".join(COLUMNS.values()) + " |",
            "|---" * (len(COLUMNS) + 1) + "|",
        ]
        split = self.settings.get("split", "test")
        titles = {"real": f"Real ({split}; FID train vs {split})", "generated": "Generated"}
        for row, cells in self.rows.items():
            shown = [cells[k].format() if cells.get(k) else "-" for k in COLUMNS]
            lines.append(f"| {titles.get(row, row)} | " + " | ".join(shown) + " |")
        lines += ["", "| Motions | " + " | ".join(physical.PHYSICS_COLUMNS.values()) + " |",
                  "|---" * (len(physical.PHYSICS_COLUMNS) + 1) + "|"]  # fmt: skip
        for row, cells in self.rows.items():
            shown = [cells[k].format() if cells.get(k) else "-" for k in physical.PHYSICS_COLUMNS]
            lines.append(f"| {titles.get(row, row)} | " + " | ".join(shown) + " |")
        s = self.settings
        lines += [
            "",
            f"Checkpoint `{s['checkpoint']}`, evaluator `{s['evaluator']}` "
            f"({s['evaluator_kind']}), split `{s['split']}`: {s['items_per_replication']} items "
            f"per replication, {s['protocol']['replications']} replications, mean ± 1.96σ/√n. "
            "Distances are Euclidean in the evaluator's joint space; CLIP-score is the mean "
            "text-motion cosine (not x100). Physical measures (`training/evaluation/physical.py`) "
            f"read the joints of the same clips; generated clips are {s.get('motion', 'cleaned')}.",
        ]
        return "\n".join(lines) + "\n"

    def save(self, json_path: str | Path | None, markdown_path: str | Path | None) -> None:
        if json_path is not None:
            Path(json_path).write_text(json.dumps(self.to_json(), indent=2) + "\n", "utf-8")
        if markdown_path is not None:
            Path(markdown_path).write_text(self.to_markdown(), "utf-8")


# ---- one replication's draw and its real row -----------------------------------------------


@dataclasses.dataclass
class Draw:
    """One replication's batches as the loader drew them, reduced to what scoring needs."""

    captions: list[str]  # (N,) every item's caption, batch after batch
    lengths: list[int]  # (N,) frames
    sizes: list[int]  # items per batch
    text: list[np.ndarray]  # per batch (B, E) caption embeddings
    real: list[np.ndarray]  # per batch (B, E) real motion embeddings
    rng: np.random.Generator  # the replication's draws; the generated row continues it
    real_row: dict[str, float | None]

    def main_requests(self) -> list[Request]:
        """One clip per item; each is embedded padded to its batch's longest item, as the
        real motions of that batch were."""
        out = []
        for part in np.split(np.arange(len(self.lengths)), np.cumsum(self.sizes)[:-1]):
            width = max(self.lengths[i] for i in part)
            out += [Request(self.captions[i], self.lengths[i], width) for i in part]
        return out

    def mm_requests(self, batches: int) -> list[Request]:
        """MModality's texts: the items of the first ``batches`` batches, unpadded."""
        count = sum(self.sizes[:batches])
        return [Request(self.captions[i], self.lengths[i], self.lengths[i]) for i in range(count)]


def _score(
    text: list[np.ndarray], motion: list[np.ndarray], reference: np.ndarray | None,
    rng: np.random.Generator, protocol: Protocol,
) -> dict[str, float | None]:  # fmt: skip
    """Metrics of per-batch text/motion embeddings; FID against ``reference`` motions
    (None: no FID)."""
    hits = sum(
        metrics.r_precision_hits(metrics.distance_matrix(t, m))
        for t, m in zip(text, motion, strict=True)
    )
    all_text, all_motion = np.concatenate(text), np.concatenate(motion)
    precision = hits / len(all_text)
    return {
        "fid": None if reference is None else metrics.fid(reference, all_motion),
        "top1": float(precision[0]),
        "top2": float(precision[1]),
        "top3": float(precision[2]),
        "matching": metrics.matching_score(all_text, all_motion),
        "diversity": metrics.diversity(all_motion, rng, protocol.diversity_pairs),
        "clip_score": metrics.clip_score(all_text, all_motion),
    }


def _embed_batches(embedder: Embedder, dataset: MotionDataset, indices: np.ndarray, epoch: int,
                   batch_size: int, watch: Stopwatch) -> np.ndarray:  # fmt: skip
    """Motion embeddings (N, E) of ``dataset`` items ``indices`` as drawn in ``epoch``."""
    out = []
    for start in range(0, len(indices), batch_size):
        with watch("drawing"):
            part = indices[start : start + batch_size]
            batch = collate_items([dataset[(int(i), epoch)] for i in part])
        out.append(embedder.embed_motion(batch.features, batch.lengths.tolist()))
    return np.concatenate(out)


def _draw(
    rep: int, embedder: Embedder, loader: Any, train: MotionDataset | None, protocol: Protocol,
    seed: int, watch: Stopwatch,
) -> Draw:  # fmt: skip
    """Replication ``rep``'s batches (``set_epoch(loader, rep)``), embedded, and its real
    row; the batches' features are dropped once embedded."""
    with watch("drawing"):
        set_epoch(loader, rep)
        batches: list[MotionBatch] = list(loader)
    rng = np.random.default_rng([seed, rep])
    with watch("embedding"):
        text = [embedder.embed_text(b.captions) for b in batches]
        real = [embedder.embed_motion(b.features, b.lengths.tolist()) for b in batches]
        train_emb = None
        if train is not None:
            count = min(sum(len(b) for b in batches), len(train))
            train_ids = rng.choice(len(train), count, replace=False)
            train_emb = _embed_batches(embedder, train, train_ids, rep, protocol.batch_size, watch)
    with watch("scoring"):
        real_row = _score(text, real, train_emb, rng, protocol)
    with watch("physics"):
        real_row.update(physical.summarise(_real_physics(batches, embedder.normalizer)))
    return Draw(
        captions=[c for b in batches for c in b.captions],
        lengths=[int(n) for b in batches for n in b.lengths],
        sizes=[len(b) for b in batches], text=text, real=real, rng=rng, real_row=real_row,
    )  # fmt: skip


def _real_physics(batches: list[MotionBatch], normalizer: Normalizer) -> list:
    """Physical measurements of the real clips of ``batches`` (recovered from features)."""
    found = []
    for batch in batches:
        features = normalizer.denormalize(batch.features.numpy().astype(np.float64))
        for clip, length in zip(features, batch.lengths.tolist(), strict=True):
            found.append(physical.clip_physics(recover_from_ric(clip[:length]), FPS))
    return found


# ---- the generated rows, all replications at once ------------------------------------------

MAIN, MMODALITY = 0, 1  # purposes: each seeds its generate() calls apart


def _generated_rows(
    draws: list[Draw], gen: Generation, embedder: Embedder, protocol: Protocol, seed: int,
    watch: Stopwatch, progress: bool,
) -> tuple[list[dict[str, float | None]], int]:  # fmt: skip
    """Every replication's generated row, and the number of generate() calls made.

    One motion per test item at its length and caption; MModality from the first
    ``mm_batches`` batches' texts, ``mm_repeats`` motions each. All replications' clips
    are generated together (see ``generation``), then each replication is scored."""
    main = [r for d in draws for r in d.main_requests()]
    made = gen.embed(main, 1, embedder, key=(seed, MAIN), watch=watch, progress=progress,
                     prompts_per_call=protocol.prompts_per_call, label="clips",
                     physics=True)  # fmt: skip
    calls, mm = made.calls, None
    if protocol.mm:
        texts = [r for d in draws for r in d.mm_requests(protocol.mm_batches)]
        mm = gen.embed(texts, protocol.mm_repeats, embedder, key=(seed, MMODALITY), watch=watch,
                       progress=progress, prompts_per_call=protocol.prompts_per_call,
                       label="MModality clips")  # fmt: skip
        calls += mm.calls
    rows = []
    with watch("scoring"):
        main_parts = _slices([len(d.captions) for d in draws])
        mm_parts = _slices([sum(d.sizes[: protocol.mm_batches]) for d in draws])
        for d, part, mm_part in zip(draws, main_parts, mm_parts, strict=True):
            motion = np.split(made.embeddings[part, 0], np.cumsum(d.sizes)[:-1])  # [(B, E)]
            row = _score(d.text, motion, np.concatenate(d.real), d.rng, protocol)
            sinks = made.sink_ratio
            row["sink_ratio"] = None if sinks is None else float(sinks[part].mean())
            row.update(physical.summarise(p[0] for p in made.physics[part]))
            if mm is not None:  # (texts, repeats, E)
                emb = mm.embeddings[mm_part]
                row["mmodality"] = metrics.multimodality(emb, d.rng, protocol.mm_pairs)
            rows.append(row)
    return rows, calls


def _slices(counts: Sequence[int]) -> list[slice]:
    """Consecutive slices of ``counts`` rows: each replication's share of the requests."""
    ends = np.cumsum(counts)
    return [slice(int(end - n), int(end)) for n, end in zip(counts, ends, strict=True)]


# ---- the whole evaluation ------------------------------------------------------------------


def load_embedder(
    evaluator: str | Path | Embedder, data_root: str | Path, device: torch.device
) -> Embedder:
    """Our evaluator checkpoint folder, ``"t2m:FOLDER"`` for the public T2M evaluator, or an
    ``Embedder`` already loaded (returned as is)."""
    if not isinstance(evaluator, (str, Path)):
        return evaluator
    text = str(evaluator)
    if text.startswith(T2M_PREFIX):
        from training.evaluation.t2m import load_t2m_evaluator

        return load_t2m_evaluator(text[len(T2M_PREFIX) :], data_root, device=device)
    from training.evaluation.evaluator import load_evaluator

    return load_evaluator(evaluator, device=device)


def evaluate(
    checkpoint: str | Path,
    data_root: str | Path,
    evaluator: str | Path | Embedder,
    *,
    split: str = "test",
    replications: int = 20,
    generator: str | None = None,
    guidance: float | None = None,
    steps: int | None = None,
    device: str | torch.device = "auto",
    seed: int = 0,
    batch_size: int = 32,
    mm: bool = True,
    protocol: Protocol | None = None,
    progress: bool = False,
    sampling: dict[str, Any] | None = None,
    fast: FastOptions | None = None,
    clean: bool | Cleanup = True,
) -> Report:
    """Score ``checkpoint`` (an engine checkpoint folder or Hub id; ``"real"`` for the real
    rows only) on ``split`` of the HumanML3D-layout ``data_root``.

    ``evaluator``: a folder written by ``save_evaluator`` / the evaluator task's export,
    ``"t2m:FOLDER"`` for the public T2M evaluator, or a loaded ``Embedder``. ``protocol``
    overrides the remaining settings (``batch_size``, ``replications`` and ``mm`` given here
    win). ``sampling`` overrides the checkpoint's sampling settings for this evaluation
    (e.g. ``{"mode": "cfg"}`` to score MLA-Gen with plain guidance at the same scale,
    ``{"steps": 25, "method": "heun"}``); its keys must be the generator's settings
    (``engine.generators``), and ``guidance`` / ``steps`` given here win over it. ``fast`` sets
    how the clips are sampled on CUDA (precision, compiled trunk; None: the engine's
    default); it is recorded in the report. ``clean``: score the cleaned clips users get
    (``engine.edit.cleanup``; a ``Cleanup`` for other settings), or the raw output with False.
    ``progress`` shows each phase on stderr.
    """
    protocol = dataclasses.replace(
        protocol or Protocol(), batch_size=batch_size, replications=replications, mm=mm
    )
    if protocol.replications < 1 or protocol.batch_size < 2 or protocol.prompts_per_call < 1:
        raise MotionError(
            "evaluate: need replications >= 1, batch_size >= 2 and prompts_per_call >= 1"
        )
    clock, watch = time.perf_counter(), Stopwatch()
    with watch("setup"):
        torch_device = resolve_device(device)
        embedder = load_embedder(evaluator, data_root, torch_device)
        test = MotionDataset(data_root, split, normalizer=embedder.normalizer, seed=seed)
        train = None  # the real row's FID reference; a data set without a train split has none
        if (Path(data_root) / "train.txt").is_file():
            train = MotionDataset(data_root, "train", normalizer=embedder.normalizer, seed=seed + 1)
        loader = make_loader(test, protocol.batch_size, shuffle=True, seed=seed, drop_last=True)
        gen, encoders = None, [getattr(embedder, "text_encoder", None)]
        if str(checkpoint) != "real":
            gen = _generation(checkpoint, torch_device, generator, guidance, steps, sampling)
            gen.fast, gen.clean = fast, clean
            encoders.append(load_text_encoder(gen.checkpoint.text_encoder, torch_device))
        for encoder in {id(e): e for e in encoders}.values():  # often one shared encoder
            _keep_captions(encoder, test)
            check_reads(encoder, test.all_captions(), f"evaluating on {data_root} ({split})")
    draws = [
        _draw(rep, embedder, loader, train, protocol, seed, watch)
        for rep in tqdm(
            range(protocol.replications),
            desc="drawing replications",
            unit="replication",
            disable=not progress,
        )  # fmt: skip
    ]
    values = {"real": [d.real_row for d in draws]}
    calls = 0
    if gen is not None:
        values["generated"], calls = _generated_rows(
            draws, gen, embedder, protocol, seed, watch, progress
        )
    rows = {row: _summarise(results) for row, results in values.items()}
    settings = {
        "checkpoint": str(checkpoint), "evaluator": str(getattr(embedder, "path", evaluator)),
        "evaluator_kind": getattr(embedder, "name", type(embedder).__name__),
        "data_root": str(data_root), "split": split, "seed": seed,
        "generator": generator, "guidance": guidance, "steps": steps, "device": str(torch_device),
        "sampling": sampling or {}, "motion": _motion_label(clean),
        "fast": dataclasses.asdict(fast or default_options()),
        "items_per_replication": len(loader) * protocol.batch_size,
        "protocol": dataclasses.asdict(protocol), "seconds": round(time.perf_counter() - clock, 2),
        "phase_seconds": watch.rounded(), "generate_calls": calls,
    }  # fmt: skip
    if progress:
        spent = ", ".join(f"{k} {v:.1f} s" for k, v in watch.rounded().items())
        print(f"{calls} generate calls; {spent}", file=sys.stderr)
    return Report(rows, values, settings)


def _generation(
    checkpoint: str | Path, device: torch.device, generator: str | None,
    guidance: float | None, steps: int | None, sampling: dict[str, Any] | None,
) -> Generation:  # fmt: skip
    """The checkpoint loaded, with ``sampling`` (checked against its generator's settings)
    over the sampling settings it was saved with."""
    ckpt = load_checkpoint(checkpoint, device=device)
    if sampling:
        allowed = check_sampling(choose_generator(ckpt, generator), sampling)
        ckpt.metadata["sampling"] = {**ckpt.metadata.get("sampling", {}), **allowed}
    return Generation(ckpt, device, generator, guidance, steps)


def _motion_label(clean: bool | Cleanup) -> str:
    if clean is False:
        return "raw"
    return "cleaned" if clean is True else f"cleaned ({clean})"


def parse_cleanup(pairs: Sequence[str]) -> Cleanup:
    """``["pin_blend=2", "smoothing=1.5"]`` -> ``Cleanup(pin_blend=2, smoothing=1.5)``."""
    fields = {f.name for f in dataclasses.fields(Cleanup)}
    values = parse_sampling(pairs)  # the same KEY=VALUE reading
    unknown = sorted(set(values) - fields)
    if unknown:
        raise MotionError(f"unknown --cleanup setting {unknown[0]!r}: allowed are "
                          + ", ".join(sorted(fields)))  # fmt: skip
    for field in dataclasses.fields(Cleanup):  # every on/off setting (pin_hold too)
        if isinstance(field.default, bool) and field.name in values:
            values[field.name] = _parse_switch(field.name, values[field.name])
    return Cleanup(**values)


def _parse_switch(key: str, value: Any) -> bool:
    if str(value).lower() in ("1", "true", "on", "yes"):
        return True
    if str(value).lower() in ("0", "false", "off", "no"):
        return False
    raise MotionError(f"--cleanup {key} must be true or false, got {value!r}")


def _keep_captions(encoder: TextEncoder | None, dataset: MotionDataset) -> None:
    """Let the encoder's cache hold every caption of the split: each replication draws them
    again, and the default cache (1,024 prompts) would re-encode them every time."""
    if isinstance(encoder, TextEncoder):
        wanted = len(dataset.all_captions()) + 64
        encoder.cache_size = max(encoder.cache_size, min(wanted, 200_000))


def _summarise(results: list[dict[str, float | None]]) -> dict[str, Interval | None]:
    out: dict[str, Interval | None] = {}
    for key in ALL_COLUMNS:
        found = [r[key] for r in results if r.get(key) is not None]
        out[key] = confidence_interval(found) if found else None  # type: ignore[arg-type]
    return out


# ---- command line --------------------------------------------------------------------------


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint", help='engine checkpoint folder or Hub id; "real" = real rows only'
    )
    parser.add_argument("--data", required=True, help="HumanML3D-layout data set folder")
    parser.add_argument("--evaluator", required=True, help="evaluator folder, or t2m:FOLDER")
    parser.add_argument("--split", default="test")
    parser.add_argument("--replications", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--generator", choices=GENERATORS, default=None)
    parser.add_argument("--guidance", type=float, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-mm", action="store_true", help="skip MModality (30x generation)")
    parser.add_argument("--mode", choices=GUIDANCE_MODES, default=None,
                        help="MLA-Gen guidance, short for --sampling mode=...")  # fmt: skip
    parser.add_argument(
        "--sampling", action="append", default=[], metavar="KEY=VALUE",
        help="override a sampling setting of the checkpoint (repeatable), e.g. steps=25, "
        "method=heun, ar_steps=8; keys: the generator's settings in engine.generators",
    )  # fmt: skip
    parser.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="CUDA sampling precision (bf16: MLA-Gen in a bfloat16 copy)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="fuse MLA-Gen's trunk with torch.compile (CUDA, needs Triton)",
    )
    parser.add_argument(
        "--raw",
        action="store_true",
        help="score the network's raw joints instead of the cleaned body",
    )
    parser.add_argument(
        "--cleanup", action="append", default=[], metavar="KEY=VALUE",
        help="a setting of engine.edit.cleanup.Cleanup for the generated clips (repeatable), e.g. "
        "pin_blend=2, smoothing=1.5, lengths=median, pin_feet=false",
    )  # fmt: skip
    parser.add_argument("--prompts-per-call", type=int, default=Protocol.prompts_per_call,
                        help="clips per generate() call across replications (memory)")  # fmt: skip
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--markdown", default=None, help="write the markdown table here")


def run_evaluate(args: argparse.Namespace) -> int:
    sampling = {"mode": args.mode} if args.mode else {}
    sampling.update(parse_sampling(args.sampling))
    report = evaluate(
        args.checkpoint, args.data, args.evaluator, split=args.split,
        replications=args.replications, generator=args.generator, guidance=args.guidance,
        steps=args.steps, device=args.device, seed=args.seed, batch_size=args.batch_size,
        mm=not args.no_mm, progress=True, sampling=sampling or None,
        protocol=Protocol(prompts_per_call=args.prompts_per_call),
        fast=FastOptions(precision=args.precision, compile=args.compile),
        clean=False if args.raw else (parse_cleanup(args.cleanup) if args.cleanup else True),
    )  # fmt: skip
    report.save(args.out, args.markdown)
    print(report.to_markdown(), end="")
    return 0


def main_evaluate(argv: Sequence[str] | None = None) -> int:
    """``python -m training evaluate ...`` as a function: exit status 2 on a domain error."""
    parser = argparse.ArgumentParser(prog="python -m training evaluate")
    _arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_evaluate(args)
    except MotionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
