"""The training loop shared by every task, on one CPU process or many GPUs (torchrun + DDP).

    result = train(load_train_config("training/configs/vae.toml", ["max_steps=1000"]))

Per optimizer step: ``accum_steps`` micro-batches (gradients synchronised across ranks only
on the last), gradient clipping, AdamW at the warm-up + cosine learning rate, an EMA update.
Every ``ckpt_every`` steps (and at the end) rank 0 writes a checkpoint with everything
``resume=True`` needs to continue bit-for-bit: weights, EMA, optimizer, every rank's RNG
states and the data position (the loader's order is a function of seed, epoch and batch
number, independent of the number of ranks and workers).

Run folder: ``config.json``, ``Mean.npy``/``Std.npy`` (the normaliser), ``data.json`` (fps,
licence, attribution of the data), ``checkpoints/``, ``tensorboard/``, ``summary.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from engine.text_encoder import TextEncoder, check_reads, load_text_encoder
from training.checkpointing import TrainState, capture_rng, save_training_checkpoint
from training.config import TrainConfig
from training.distributed import all_gather_objects, all_reduce_mean, barrier, init_distributed
from training.logs import RunLogger
from training.optim import EMA, build_optimizer, lr_at, set_lr
from training.run_setup import (
    check_run_folder,
    fit_batch_to_data,
    make_dataset,
    micro_batch,
    restore_state,
    resume_config,
    set_cpu_threads,
    setup_task,
    write_run_folder,
)
from training.tasks import Task, TaskLoss


@dataclasses.dataclass
class TrainResult:
    """What a call to ``train`` did (on this rank)."""

    out_dir: Path
    step: int  # optimizer steps done in the run so far
    losses: list[float]  # this rank's loss of every step run by this call, in order
    seconds: float  # wall time of the training loop
    samples_per_second: float  # global samples / loop time
    checkpoint: Path | None  # the last checkpoint written


class LossModule(nn.Module):
    """The trainable models plus the task's loss, as one module for DDP.

    DDP synchronises gradients of what runs inside its wrapped module's ``forward``; the task
    code receives the plain models (never the wrapper).
    """

    def __init__(self, task: Task, models: dict[str, nn.Module]):
        super().__init__()
        self.task = task
        self.models = nn.ModuleDict(models)

    def forward(self, batch: Any, text: TextEncoder, generator: torch.Generator) -> TaskLoss:
        return self.task.loss(dict(self.models.items()), batch, text, generator)


class DataCursor:
    """Endless micro-batches with the (epoch, position) needed to resume mid-epoch."""

    def __init__(self, loader: Any, epoch: int, position: int):
        self.loader, self.epoch, self.position = loader, epoch, position
        self._iterator: Iterator[Any] | None = None

    def next(self) -> Any:
        from training.data import set_epoch

        while True:
            if self._iterator is None:
                set_epoch(self.loader, self.epoch, self.position)
                # Creating a DataLoader iterator draws a worker seed from torch's global RNG;
                # put it back so a resumed run's global RNG follows the uninterrupted one.
                state = torch.get_rng_state()
                self._iterator = iter(self.loader)
                torch.set_rng_state(state)
            try:
                batch = next(self._iterator)
            except StopIteration:
                self._iterator, self.epoch, self.position = None, self.epoch + 1, 0
                continue
            self.position += 1
            return batch


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    dataset: Any = None,
    val_dataset: Any = None,
    text_encoder: TextEncoder | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Train ``config``; ``resume`` continues from the newest checkpoint in ``out_dir``.

    ``dataset`` / ``val_dataset`` / ``text_encoder`` replace the ones the config names (tests);
    ``stop_after`` ends (with a checkpoint) once that many optimizer steps are done.
    """
    info = init_distributed(config.device)
    out = Path(config.out_dir)
    saved = check_run_folder(out, config, resume)
    micro_batch(config, info)  # checked before the models load
    set_cpu_threads(info)
    if info.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    text = text_encoder or load_text_encoder(config.text_encoder, info.device)
    task, models, context = setup_task(config, info, text, dataset, resuming=saved is not None)
    dataset = context.dataset
    if hasattr(dataset, "all_captions"):
        check_reads(text, dataset.all_captions(), f"training on {config.data_root}")
    config = task.config = context.config = fit_batch_to_data(config, len(dataset), info)
    micro = micro_batch(config, info)
    if info.is_main and saved is None:
        write_run_folder(out, config, context, dataset)
    optimizer = build_optimizer(
        models.values(), config.lr, config.weight_decay, config.betas, info.device
    )
    ema = EMA(models, config.ema_decay)
    generator = torch.Generator(device=info.device).manual_seed(config.seed + 7919 * info.rank)
    state = TrainState()
    if saved is not None:
        state = restore_state(saved, models, ema, optimizer, task, generator, info)
    loop = _Loop(config, info, task, models, ema, optimizer, generator, text, state)
    from training.data import make_loader

    loader = make_loader(
        dataset, micro, shuffle=True, seed=config.seed, rank=info.rank,
        world_size=info.world_size, drop_last=True, num_workers=config.num_workers,
        pin_memory=info.device.type == "cuda",
    )  # fmt: skip
    cursor = DataCursor(loader, state.epoch, state.position)
    if config.eval_every and info.is_main and val_dataset is None:
        val_dataset = make_dataset(config, config.val_split, task, context.normalizer)
    return loop.run(cursor, val_dataset, stop_after)


class _Loop:
    """The step loop and its bookkeeping (split from ``train`` to keep both readable)."""

    def __init__(self, config, info, task, models, ema, optimizer, generator, text, state):
        self.config, self.info, self.task = config, info, task
        self.models, self.ema, self.optimizer = models, ema, optimizer
        self.generator, self.text, self.state = generator, text, state
        core = LossModule(task, models)
        self.wrapped: nn.Module = core
        if info.distributed:
            ids = [info.device.index] if info.device.type == "cuda" else None
            unused = task.find_unused_parameters
            self.wrapped = DistributedDataParallel(
                core, device_ids=ids, find_unused_parameters=unused
            )
        self.params = [p for m in models.values() for p in m.parameters() if p.requires_grad]
        self.logger = RunLogger(Path(config.out_dir), config, info, state.step)

    def autocast(self) -> contextlib.AbstractContextManager:
        on = self.config.bf16 and self.info.device.type == "cuda"
        return torch.autocast(self.info.device.type, dtype=torch.bfloat16, enabled=on)

    def step(self, cursor: DataCursor) -> tuple[torch.Tensor, dict[str, torch.Tensor], float]:
        """One optimizer step; returns the mean loss, mean logs and the grad norm."""
        cfg, accum = self.config, self.config.accum_steps
        set_lr(self.optimizer, lr_at(self.state.step, cfg.lr, cfg.warmup_steps, cfg.max_steps,
                                     cfg.min_lr_ratio))  # fmt: skip
        self.optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=self.info.device)
        parts: dict[str, torch.Tensor] = {}
        for micro in range(accum):
            batch = cursor.next().to(self.info.device, non_blocking=True)
            last = micro == accum - 1
            sync = contextlib.nullcontext()
            if self.info.distributed and not last:
                sync = self.wrapped.no_sync()
            with sync:
                with self.autocast():
                    out = self.wrapped(batch, self.text, self.generator)
                (out.loss / accum).backward()
            total += out.loss.detach().float() / accum
            for key, value in out.logs.items():
                value = torch.as_tensor(value, device=self.info.device).detach().float()
                parts[key] = parts.get(key, 0.0) + value / accum
        clip = self.config.grad_clip if self.config.grad_clip > 0 else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(self.params, clip)
        self.optimizer.step()
        self.ema.update(self.models)
        self.state.step += 1
        self.state.ema_updates = self.ema.updates
        self.state.epoch, self.state.position = cursor.epoch, cursor.position
        self.state.samples += self.config.batch_size
        return total, parts, norm

    def run(self, cursor: DataCursor, val_dataset: Any, stop_after: int | None) -> TrainResult:
        cfg, state = self.config, self.state
        end = cfg.max_steps if stop_after is None else min(cfg.max_steps, stop_after)
        losses: list[torch.Tensor] = []
        window: dict[str, list[torch.Tensor]] = {}  # loss parts since the last log point
        checkpoint, start_step, clock = None, state.step, time.perf_counter()
        self.logger.start(end)
        while state.step < end:
            loss, parts, norm = self.step(cursor)
            losses.append(loss)
            for key, value in {"loss": loss, **parts}.items():
                window.setdefault(key, []).append(value)
            self.logger.tick(state.step)
            if state.step % cfg.log_every == 0 or state.step == end:
                self._log(window, norm)
                window = {}
            if cfg.eval_every and state.step % cfg.eval_every == 0 and self.info.is_main:
                self.logger.scalars({"val/loss": self.validate(val_dataset)}, state.step)
            if state.step % cfg.ckpt_every == 0 or state.step == end:
                checkpoint = self.save()
        seconds = time.perf_counter() - clock
        samples = (state.step - start_step) * cfg.batch_size
        speed = samples / seconds if seconds > 0 else 0.0
        self.logger.finish(state.step - start_step, seconds, speed)
        values = [float(v) for v in losses]
        return TrainResult(Path(cfg.out_dir), state.step, values, seconds, speed, checkpoint)

    def _log(self, window: dict[str, list[torch.Tensor]], norm: torch.Tensor) -> None:
        """Scalars averaged over the steps since the last log point and over ranks."""
        means = {k: all_reduce_mean(torch.stack(v).mean(), self.info) for k, v in window.items()}
        scalars = {"loss" if k == "loss" else f"train/{k}": float(v) for k, v in means.items()}
        scalars["lr"] = self.optimizer.param_groups[0]["lr"]
        scalars["grad_norm"] = float(norm)
        self.logger.scalars(scalars, self.state.step, samples=self.state.samples)

    @torch.no_grad()
    def validate(self, dataset: Any) -> float:
        """Mean task loss of the EMA models on ``val_batches`` fixed validation batches."""
        from training.data import make_loader

        cfg = self.config
        size = min(cfg.batch_size // cfg.accum_steps, len(dataset))
        loader = make_loader(dataset, size, shuffle=True, seed=cfg.seed, drop_last=True)
        generator = torch.Generator(device=self.info.device).manual_seed(cfg.seed)
        values = []
        for batch in itertools.islice(loader, cfg.val_batches):
            with self.autocast():
                out = self.task.loss(
                    self.ema.models, batch.to(self.info.device), self.text, generator
                )
            values.append(float(out.loss))
        return float(np.mean(values)) if values else float("nan")

    def save(self) -> Path | None:
        """Gather every rank's RNG state; rank 0 writes the checkpoint."""
        rng = all_gather_objects(capture_rng(self.generator, self.info.device), self.info)
        path = None
        if self.info.is_main:
            path = save_training_checkpoint(
                self.config.out_dir, models=self.models, ema=self.ema.state_tensors(),
                optimizer=self.optimizer.state_dict(), rng=rng, state=self.state,
                task_state=self.task.state(), config=self.config.to_dict(),
                keep=self.config.keep_checkpoints,
            )  # fmt: skip
        barrier(self.info)
        return path


def main_train(argv: list[str] | None = None) -> int:
    """``train CONFIG [key=value ...] [--resume]``; under ``torchrun`` on every rank."""
    import argparse

    from training.config import load_train_config
    from training.distributed import shutdown

    parser = argparse.ArgumentParser(
        prog="python -m training train",
        description="Train a task from a TOML/JSON config; key=value overrides any setting "
        "(dotted keys reach into tables: model.width=512, text_encoder.max_tokens=32).",
    )
    parser.add_argument("config", help="config file (.toml or .json)")
    parser.add_argument("overrides", nargs="*", help="key=value settings")
    parser.add_argument(
        "--resume", action="store_true", help="continue from out_dir's newest checkpoint"
    )
    args = parser.parse_args(argv)
    config = load_train_config(args.config, args.overrides)
    if args.resume:
        config = resume_config(config, args.overrides)
    _check_paths(config)
    try:
        train(config, resume=args.resume)
    finally:
        shutdown()
    return 0


def _check_paths(config: TrainConfig) -> None:
    """The data folder and the run folder, checked before the text encoder and the models
    load (seconds to minutes), so a typo in a path costs nothing."""
    from engine.errors import MotionError
    from engine.io.files import check_output

    if not Path(config.data_root).is_dir():
        raise MotionError(f"data_root {config.data_root!r}: no such folder (see build-dataset)")
    check_output(config.out_dir, folder=True)
