"""Training runs -> an engine checkpoint folder: ``python -m training export RUN [RUN ...] OUT``.

Each run contributes its task's export models with EMA weights (a generator run brings the
rescaled frozen autoencoder it was trained on, see ``tasks/latent.py``), so exporting a
MoLingo run alone gives a complete text-to-motion checkpoint, and exporting a MoLingo and an
MLA-Gen run trained on the same autoencoder gives one holding both. The normaliser, fps,
text encoder and the data's licence and attribution come from the runs (``data.json``, which
the trainer filled from the data set's ``build.json``); a ``README.md`` model card states
them, and the data set's ``LICENSE`` is copied as ``LICENSE-data``. When the runs' data set
is on this machine, the checkpoint also gets the description of what it learned
(``engine.store.knowledge``: vocabulary and caption vectors, by ``training.describe``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from engine.errors import MotionError
from engine.models.registry import registered_models
from engine.store.checkpoint import save_checkpoint
from engine.store.knowledge import Knowledge, has_knowledge
from training.checkpointing import latest_checkpoint, split_models
from training.config import TrainConfig
from training.tasks import Task, get_task, registered_tasks


@dataclasses.dataclass
class RunModels:
    """A run's models rebuilt from one of its checkpoints (eval mode, CPU)."""

    run_dir: Path
    config: TrainConfig
    models: dict[str, nn.Module]
    mean: np.ndarray  # (263,)
    std: np.ndarray  # (263,)
    data: dict[str, Any]  # data.json: fps, license, attribution, data_root
    step: int
    checkpoint: Path


def read_run_config(run_dir: str | Path) -> TrainConfig:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise MotionError(f"{run_dir}: not a training run (no config.json)")
    return TrainConfig.from_dict(json.loads(path.read_text(encoding="utf-8")), where=str(path))


def load_run_models(
    run_dir: str | Path, *, ema: bool = True, checkpoint: str | Path | None = None
) -> RunModels:
    """The models of ``run_dir``'s newest checkpoint (or ``checkpoint``), EMA weights by
    default, rebuilt from the class and config recorded with them."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    folder = Path(checkpoint) if checkpoint is not None else latest_checkpoint(run_dir)
    if folder is None or not (folder / "state.json").is_file():
        raise MotionError(f"{run_dir}: no checkpoint to export (has the run saved one?)")
    record = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    registered_tasks()  # imports the task modules, which register their model classes
    tensors = split_models(load_file(folder / ("ema.safetensors" if ema else "model.safetensors")))
    models = {}
    for name, entry in record["models"].items():
        cls = registered_models().get(entry["class"])
        if cls is None:
            raise MotionError(f"{folder}: unknown model class {entry['class']!r}")
        model = cls(cls.config_class.from_dict(entry["config"], where=f"{folder}: {name}"))
        model.load_state_dict(tensors[name])
        models[name] = model.eval().requires_grad_(False)
    data_path = run_dir / "data.json"
    data = json.loads(data_path.read_text(encoding="utf-8")) if data_path.is_file() else {}
    return RunModels(
        run_dir, config, models, np.load(run_dir / "Mean.npy"), np.load(run_dir / "Std.npy"),
        data, int(record["state"]["step"]), folder,
    )  # fmt: skip


def _export_parts(run: RunModels) -> tuple[Task, dict[str, nn.Module]]:
    task = get_task(run.config)
    task.load_run(run.run_dir)
    return task, task.export_models(run.models)


def _check_consistent(runs: list[RunModels]) -> None:
    """All runs must share normaliser, fps and text encoder: one checkpoint has one of each."""
    first = runs[0]
    for run in runs[1:]:
        if not (np.array_equal(run.mean, first.mean) and np.array_equal(run.std, first.std)):
            raise MotionError(f"{run.run_dir} and {first.run_dir} use different Mean/Std")
        if run.config.text_encoder != first.config.text_encoder:
            raise MotionError(f"{run.run_dir} and {first.run_dir} use different text encoders")
        if run.data.get("fps") != first.data.get("fps"):
            raise MotionError(f"{run.run_dir} and {first.run_dir} have different fps")


def _merge(name: str, model: nn.Module, merged: dict[str, nn.Module], where: Path) -> None:
    """Add ``model``; a name given twice (the shared autoencoder) must hold equal weights."""
    if name not in merged:
        merged[name] = model
        return
    mine, theirs = model.state_dict(), merged[name].state_dict()
    same = mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    if not same:
        raise MotionError(
            f"{where}: its {name!r} differs from another run's; generators exported together "
            "must share one autoencoder and latent_scale (set latent_scale explicitly)"
        )


def export_runs(
    runs: Sequence[str | Path],
    out: str | Path,
    *,
    ema: bool = True,
    license: str | None = None,
    attribution: str | None = None,
    dtype: torch.dtype | None = None,
    describe: bool = True,
) -> Path:
    """Write the engine checkpoint of ``runs`` to ``out`` (replaced atomically), with the
    description of its training data when ``describe`` and the data set is here."""
    loaded = [load_run_models(r, ema=ema) for r in runs]
    if not loaded:
        raise MotionError("export: name at least one run")
    _check_consistent(loaded)
    merged: dict[str, nn.Module] = {}
    metadata: dict[str, Any] = {"runs": {}}
    generators = []
    for run in loaded:
        task, models = _export_parts(run)
        for name, model in models.items():
            _merge(name, model, merged, run.run_dir)
        extra = task.export_metadata()
        if "generator" in extra:
            generators.append(extra)
        metadata["runs"][run.config.task] = {"run": str(run.run_dir), "step": run.step}
    metadata.update(_generator_metadata(generators))
    first = loaded[0]
    terms = {
        "license": license or first.data.get("license") or first.config.license,
        "attribution": attribution or first.data.get("attribution") or first.config.attribution,
    }
    missing = [name for name in ("license", "attribution") if not terms[name]]
    if missing:
        where = Path(first.data.get("data_root") or "?") / "build.json"
        raise MotionError(
            f"{first.run_dir}: the data's {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not known: the run's data.json (from "
            f"{where}) and its config name none; give "
            + " and ".join(f"--{name}" for name in missing)
        )
    terms = with_inherited_terms(
        terms, [t for run in loaded for t in run.data.get("inherited", [])]
    )
    knowledge = _describe(first) if describe else None
    folder = save_checkpoint(
        out, merged, text_encoder=first.config.text_encoder, normalizer_mean=first.mean,
        normalizer_std=first.std, fps=int(first.data.get("fps", 20)), metadata=metadata,
        dtype=dtype, knowledge=knowledge, **terms,
    )  # fmt: skip
    _write_card(folder, merged, metadata, terms, first, knowledge)
    return folder


def training_data_root(run: RunModels) -> Path | None:
    """The run's data set folder when it is on this machine (data.json, else the config)."""
    root = run.data.get("data_root") or run.config.data_root
    return Path(root) if root and (Path(root) / "texts").is_dir() else None


def _describe(run: RunModels) -> Knowledge | None:
    """What the run was trained on, from its data set and its own text encoder."""
    from training.describe import describe_data

    root = training_data_root(run)
    if root is None:
        return None
    device = "cuda" if torch.cuda.is_available() else "cpu"  # thousands of captions
    return describe_data(
        [root], run.config.text_encoder, split=run.config.train_split, device=device
    )


def with_inherited_terms(terms: dict[str, str], inherited: list[dict[str, str]]) -> dict[str, str]:
    """The data's terms joined with those of the weights a run started from (a fine-tune of
    the shipped checkpoint still derives from the Bandai Namco data): "own; weights derived
    from SOURCE: theirs" for each other licence/attribution, in the order met."""
    from training.finetune import unique_terms

    out = dict(terms)
    own = (terms["license"], terms["attribution"])
    for entry in unique_terms(inherited):
        if (entry.get("license", ""), entry.get("attribution", "")) == own:
            continue
        source = entry.get("source", "?")
        for key in ("license", "attribution"):
            if entry.get(key) and entry[key] not in out[key]:
                out[key] += f"; weights derived from {source}: {entry[key]}"
    return out


def _generator_metadata(generators: list[dict[str, Any]]) -> dict[str, Any]:
    """The engine reads ``generator`` (default) and ``sampling`` (applied to whichever
    generator runs); ``sampling`` is only set for a single generator, since one dict cannot
    hold both generators' different defaults."""
    if not generators:
        return {}
    out: dict[str, Any] = {"generator": generators[0]["generator"]}
    scales = {g["generator"]: g.get("latent_scale") for g in generators}
    out["latent_scale"] = scales
    out["max_frames"] = min(g.get("max_frames", 196) for g in generators)
    if len(generators) == 1:
        out["sampling"] = generators[0]["sampling"]
    else:
        out["sampling_defaults"] = {g["generator"]: g["sampling"] for g in generators}
    return out


def _write_card(
    folder: Path, models, metadata, terms, first: RunModels, knowledge: Knowledge | None
) -> None:
    names = ", ".join(f"`{n}` ({type(m).__name__})" for n, m in models.items())
    lines = [
        "# kinetext checkpoint", "", f"Models: {names}.", "",
        f"Trained by `python -m training` on `{first.data.get('data_root', '?')}`; runs: "
        + ", ".join(f"{k} step {v['step']}" for k, v in metadata["runs"].items()) + ".", "",
        "## Terms of the training data", "", terms["attribution"], "", terms["license"], "",
    ]  # fmt: skip
    if knowledge is not None:
        actions = ", ".join(f"{a} ({n})" for a, n in knowledge.vocabulary.items())
        lines += [
            "## What it learned",
            "",
            f"Actions (training clips): {actions}.",
            "",
            "`python -m engine info` lists it all; prompts unlike these are flagged.",
            "",
        ]
    (folder / "README.md").write_text("\n".join(lines), encoding="utf-8")
    licence_file = Path(first.data.get("data_root", "")) / "LICENSE"
    if first.data.get("data_root") and licence_file.is_file():
        shutil.copyfile(licence_file, folder / "LICENSE-data")


def main_export(argv: Sequence[str] | None = None) -> int:
    """``export RUN [RUN ...] OUT [--raw] [--bf16] [--license TEXT] [--attribution TEXT]``."""
    parser = argparse.ArgumentParser(
        prog="python -m training export",
        description="Training run folder(s) -> an engine checkpoint folder (EMA weights).",
    )
    parser.add_argument("runs", nargs="+", help="run folder(s), then the output folder")
    parser.add_argument("--raw", action="store_true", help="export raw weights, not the EMA")
    parser.add_argument("--bf16", action="store_true", help="store weights in bfloat16")
    parser.add_argument("--license", default=None, help="data licence when it has no build.json")
    parser.add_argument("--attribution", default=None, help="data attribution likewise")
    parser.add_argument(
        "--no-describe",
        action="store_true",
        help="leave out the description of the training data (knowledge.*)",
    )
    args = parser.parse_args(argv)
    if len(args.runs) < 2:
        parser.error("give at least one RUN and the OUT folder")
    *runs, out = args.runs
    folder = export_runs(
        runs, out, ema=not args.raw, license=args.license, attribution=args.attribution,
        dtype=torch.bfloat16 if args.bf16 else None, describe=not args.no_describe,
    )  # fmt: skip
    print(f"exported {', '.join(runs)} -> {folder}")
    if not args.no_describe and not has_knowledge(folder):
        print(f"note: its training data set is not on this machine, so {folder} does not say "
              f"what it learned; add that with: python -m training describe {folder} "
              "--data DATASET", file=sys.stderr)  # fmt: skip
    return 0
