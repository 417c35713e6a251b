"""Setting up a training run: the task and its models, the data, the run folder, resuming.

Split from ``trainer.py`` (the loop); ``setup_task`` is also how tests and tools rebuild a
run's task and initial models exactly as training does.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.errors import MotionError
from engine.motion.features import Normalizer
from engine.text_encoder import TextEncoder
from training.checkpointing import (
    TrainState,
    latest_checkpoint,
    load_training_checkpoint,
    restore_rng,
    split_models,
)
from training.config import TrainConfig, load_train_config, save_train_config
from training.distributed import DistInfo
from training.finetune import check_text_encoder, load_init_source, source_terms, unique_terms
from training.tasks import LATENT_UNIT, Task, TaskContext, get_task
from training.tasks.latent import check_same_normalizer

log = logging.getLogger(__name__)

# Settings that may change between a run and its resumption without changing its maths.
RESUMABLE_CHANGES = {
    "progress", "log_every", "ckpt_every", "keep_checkpoints", "eval_every", "val_batches",
    "num_workers", "max_steps", "data_root", "babel_root", "device", "out_dir",
}  # fmt: skip


def setup_task(
    config: TrainConfig,
    info: DistInfo,
    text: TextEncoder,
    dataset: Any = None,
    *,
    resuming: bool = False,
) -> tuple[Task, dict[str, nn.Module], TaskContext]:
    """The task, its freshly initialised models (seeded by ``config.seed``, so identical on
    every rank) on the device, prepared; and the context (with the data set) it was given."""
    task = get_task(config)
    task.check()
    if config.init_from:  # fine-tuning: the source's models and statistics (finetune.py)
        task.init = load_init_source(config.init_from)
        check_text_encoder(task.init, config.text_encoder)
    normalizer = run_normalizer(Path(config.out_dir)) if resuming else None
    normalizer = normalizer or task.data_normalizer()
    if dataset is None:
        dataset = make_dataset(config, config.train_split, task, normalizer)
    elif normalizer is not None:
        given = dataset.normalizer
        check_same_normalizer(given.mean, given.std, normalizer.mean, normalizer.std, "data set")
    context = task_context(config, info, text, dataset, resuming=resuming)
    grow_text_cache(text, dataset)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    models = {k: m.to(info.device) for k, m in task.build_models(context).items()}
    if task.init is not None and not resuming:
        task.initialise(models, context)
    task.prepare(models, context)
    return task, models, context


def run_normalizer(out: Path) -> Normalizer | None:
    """The Mean/Std a run was started with (its folder's copy), None before it started: a
    resumed run keeps normalising as it began, whatever the data set's files say now."""
    if (out / "Mean.npy").is_file() and (out / "Std.npy").is_file():
        return Normalizer.load(out)
    return None


def micro_batch(config: TrainConfig, info: DistInfo) -> int:
    """The GLOBAL micro-batch (what one accumulation step sees over all ranks)."""
    micro = config.batch_size // config.accum_steps
    if micro % info.world_size:
        raise MotionError(
            f"batch_size / accum_steps = {micro} must divide by the {info.world_size} ranks"
        )
    return micro


def fit_batch_to_data(config: TrainConfig, items: int, info: DistInfo) -> TrainConfig:
    """``config`` with ``batch_size`` cut to the training items when they cannot fill one
    batch (a studio's 30 clips against the default 256), said on rank 0; the run folder
    records the batch it trained with. The batch stays a multiple of ranks x accum_steps."""
    if items >= config.batch_size:
        return config
    unit = info.world_size * config.accum_steps
    size = items // unit * unit
    if size < 1:
        raise MotionError(
            f"{items} training items cannot fill one batch of {unit} (ranks x accum_steps); "
            "add clips, lower accum_steps or use fewer ranks"
        )
    if info.is_main:
        print(
            f"batch_size {config.batch_size} is more than the {items} training items: "
            f"training with batch_size={size} (set batch_size to choose another)",
            flush=True,
        )
    return config.replace(batch_size=size)


def set_cpu_threads(info: DistInfo) -> int | None:
    """Torch threads of a CPU rank, unless OMP_NUM_THREADS says otherwise: torch's default
    (the physical cores) shared among this host's ranks, and no more than the cores other
    work leaves idle (load average). Threads on busy cores wait on each other: one SAE step
    took 24.2 s with 2 threads and 3.5 s with 1 on this 2-core machine at load 6 to 8,
    while on idle cores all threads were fastest (docs/benchmarks.md). Returns the count
    set, or None where nothing was changed."""
    if info.device.type != "cpu" or "OMP_NUM_THREADS" in os.environ:
        return None
    local = _env_count("LOCAL_WORLD_SIZE", info.world_size)
    cores = usable_cores()
    idle = cores - round(os.getloadavg()[0]) if hasattr(os, "getloadavg") else cores
    threads = max(1, min(torch.get_num_threads(), cores // local, idle // local))
    if threads < torch.get_num_threads() and info.is_main:
        print(
            f"CPU: {threads} torch thread(s) per rank ({cores} cores, {local} rank(s), load "
            f"{os.getloadavg()[0]:.1f}); set OMP_NUM_THREADS to choose",
            flush=True,
        )
    torch.set_num_threads(threads)
    return threads


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, as a container or taskset sets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _env_count(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.isdigit() and int(value) > 0 else default


def resume_config(given: TrainConfig, overrides: list[str]) -> TrainConfig:
    """The settings ``--resume`` continues with: the run's own (``OUT/config.json``, written
    when it started), then this command's ``key=value`` overrides.

    ``train configs/sae.toml out_dir=runs/sae --resume`` used to compare the TOML's values
    with the run's and refuse ("settings differ") whenever the run had been started with
    other overrides. Now only what is typed again is compared (``check_run_folder`` names a
    non-resumable change); a folder without a run keeps ``given`` and is refused there."""
    saved = Path(given.out_dir) / "config.json"
    if not saved.is_file():
        return given
    return load_train_config(saved, [f"out_dir={given.out_dir}", *overrides])


def check_run_folder(out: Path, config: TrainConfig, resume: bool) -> Path | None:
    """The checkpoint to resume from (None for a fresh run); refuses to mix two runs."""
    latest = latest_checkpoint(out)
    if not resume:
        if latest is not None:
            raise MotionError(
                f"{out} already holds a run: pass --resume, or choose another out_dir"
            )
        return None
    if latest is None:
        raise MotionError(f"{out}: no checkpoint to resume from")
    saved = json.loads((latest / "state.json").read_text(encoding="utf-8"))["config"]
    now = config.to_dict()
    changed = sorted(
        k
        for k in now
        if k not in RESUMABLE_CHANGES and json.dumps(now[k]) != json.dumps(saved.get(k))
    )
    if changed:
        raise MotionError(f"--resume: these settings differ from the run's ({latest}): {changed}")
    return latest


def make_dataset(
    config: TrainConfig, split: str, task: Task, normalizer: Normalizer | None = None
) -> Any:
    """The ``split`` of ``config.data_root``, normalised with ``normalizer`` (None: the data
    set's own Mean/Std)."""
    from training.data import MotionDataset, load_frame_labels

    labels = None
    if task.wants_step_labels:
        labels = load_frame_labels(config.data_root, babel=config.babel_root or None)
        if labels is None:
            raise MotionError(f"{config.data_root}: no labels.json and no babel_root for the SAE")
    return MotionDataset(
        config.data_root, split, min_frames=config.min_frames, max_frames=config.max_frames,
        unit=LATENT_UNIT, mirror=config.mirror, seed=config.seed, labels=labels,
        source_weights=config.source_weights if split == config.train_split else None,
        normalizer=normalizer,
    )  # fmt: skip


def task_context(config, info, text, dataset, resuming: bool) -> TaskContext:
    normalizer = dataset.normalizer
    return TaskContext(
        config=config, device=info.device, text=text,
        mean=np.asarray(normalizer.mean, np.float32), std=np.asarray(normalizer.std, np.float32),
        fps=int(getattr(dataset, "fps", 20)), dataset=dataset, rank=info.rank,
        world_size=info.world_size, resuming=resuming,
    )  # fmt: skip


def grow_text_cache(text: TextEncoder, dataset: Any) -> None:
    """Keep every caption's encoding once computed (the default cache is for interactive use)."""
    captions = getattr(dataset, "all_captions", None)
    if captions is not None and hasattr(text, "cache_size"):
        text.cache_size = max(text.cache_size, min(len(captions()) + 64, 200_000))


def data_terms(config: TrainConfig) -> dict[str, Any]:
    """Licence and attribution of the data: the config's, else ``DATA/build.json``'s."""
    build = Path(config.data_root) / "build.json"
    record = json.loads(build.read_text(encoding="utf-8")) if build.is_file() else {}
    return {
        "license": config.license or record.get("licence") or "",
        "attribution": config.attribution or record.get("attribution") or "",
    }


def inherited_terms(config: TrainConfig) -> list[dict[str, str]]:
    """Terms the run's starting weights carry: ``init_from``'s and, for a generator, its
    autoencoder's (``training.finetune.source_terms``); export joins them to the data's."""
    sources = [config.init_from]
    if config.task in ("molingo", "mlagen"):
        sources.append(config.autoencoder)
    return unique_terms([t for s in sources if s for t in source_terms(s)])


def write_run_folder(out: Path, config: TrainConfig, context: TaskContext, dataset: Any) -> None:
    out.mkdir(parents=True, exist_ok=True)
    save_train_config(config, out / "config.json")
    np.save(out / "Mean.npy", context.mean)
    np.save(out / "Std.npy", context.std)
    record = {"fps": context.fps, "data_root": config.data_root, "items": len(dataset),
              **data_terms(config)}  # fmt: skip
    inherited = inherited_terms(config)
    if inherited:
        record["inherited"] = inherited
    (out / "data.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def restore_state(saved, models, ema, optimizer, task, generator, info: DistInfo) -> TrainState:
    ckpt = load_training_checkpoint(saved)
    for name, tensors in split_models(ckpt.models).items():
        models[name].load_state_dict(tensors)
    optimizer.load_state_dict(ckpt.optimizer)
    ema.load_state_tensors(ckpt.ema, ckpt.state.ema_updates)
    task.load_state(ckpt.task_state)
    if len(ckpt.rng) == info.world_size:
        restore_rng(ckpt.rng[info.rank], generator, info.device)
    else:  # another number of ranks: data order is unchanged, random draws are not
        log.warning("resuming %d ranks from a %d-rank run: noise draws differ from an "
                    "uninterrupted run", info.world_size, len(ckpt.rng))  # fmt: skip
        generator.manual_seed(ckpt.state.step * 1_000_003 + info.rank)
    return ckpt.state
