"""Training tasks: what is trained and with which loss; the trainer owns everything else.

A task is a small class registered by name (``@register_task``); the trainer builds one per
run with ``get_task(config)`` and calls, in order:

1. ``check()`` (also from ``load_train_config``): reject bad ``config.model`` / ``options``
   keys before anything is loaded;
2. ``build_models(context)``: the TRAINABLE networks, by name (``{"autoencoder": ...}``);
   they are what the optimizer, EMA, DDP and checkpoints see;
3. ``prepare(models, context)``: load frozen helpers (a generator's autoencoder) and measure
   statistics (the latent scale); on ``--resume`` the trainer then restores ``state()``;
4. ``loss(models, batch, text, generator)`` per micro-batch -> ``TaskLoss``. It runs inside
   the DDP wrapper's forward, so it must touch the trainable models only through
   ``models`` and draw all randomness from ``generator``;
5. ``export_models(models)`` and ``export_metadata()``: what goes into the engine checkpoint
   (``models`` are then the EMA copies); export first calls ``load_run(run_dir)`` instead
   of ``prepare`` to get back what ``prepare`` kept in the run folder.

Losses live here, never in ``engine`` models (their ``forward`` returns predictions).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from engine.errors import MotionError
from engine.motion.features import Normalizer

if TYPE_CHECKING:
    from engine.text_encoder import TextEncoder
    from training.config import TrainConfig
    from training.finetune import InitSource

LATENT_UNIT = 4  # frames per latent step: data crops are whole multiples of it
# Modules that register tasks when imported; an absent one (not written yet) is skipped.
BUILTIN_TASK_MODULES = ("autoencoder", "molingo", "mlagen", "evaluator")


@dataclasses.dataclass
class TaskContext:
    """What a task may use besides its models: the run's settings and shared resources.

    mean, std: (263,) float32 normaliser of the data set (features in batches are normalised).
    dataset: the training data set (map-style, items are single clips) for statistics.
    """

    config: TrainConfig
    device: torch.device
    text: TextEncoder
    mean: np.ndarray
    std: np.ndarray
    fps: int
    dataset: Any = None
    rank: int = 0
    world_size: int = 1
    resuming: bool = False  # True when --resume will restore a checkpoint after prepare()

    @property
    def normalizer(self) -> Normalizer:
        """The statistics the batches are normalised with (validation data use them too)."""
        return Normalizer(self.mean, self.std)


@dataclasses.dataclass
class TaskLoss:
    """One micro-batch's loss (scalar, to backpropagate) and named parts for the logs
    (detached scalar tensors or floats; tensors avoid a device sync per step)."""

    loss: Tensor
    logs: dict[str, Tensor | float]


class Task:
    """Base class of training tasks (see the module docstring for the call order)."""

    name: ClassVar[str] = ""
    # DDP must be told when some trainable parameter may get no gradient in a step.
    find_unused_parameters: ClassVar[bool] = False

    def __init__(self, config: TrainConfig):
        self.config = config
        self.init: InitSource | None = None  # the models to start from (config.init_from)

    @property
    def wants_step_labels(self) -> bool:
        """True when batches must carry ``step_labels`` (the SAE)."""
        return False

    def check(self) -> None:
        """Raise ``MotionError`` for settings this task cannot use (cheap: builds nothing big)."""

    def data_normalizer(self) -> Normalizer | None:
        """The Mean/Std the data must be normalised with; None = the data set's own. A
        fine-tuned model keeps its source's (``training/finetune.py``) unless
        ``renormalize`` asks for the data set's."""
        if self.init is not None and not self.config.renormalize:
            return Normalizer(self.init.mean, self.init.std)
        return None

    def build_models(self, context: TaskContext) -> dict[str, nn.Module]:
        """The trainable networks, freshly initialised (the trainer seeds torch first)."""
        raise NotImplementedError

    def initialise(self, models: Mapping[str, nn.Module], context: TaskContext) -> None:
        """Fine-tuning: start ``models`` from ``self.init``'s weights (not on resume, where
        the checkpoint's replace them)."""
        from training.finetune import load_init_weights

        if self.init is not None:
            load_init_weights(models, self.init)

    def prepare(self, models: Mapping[str, nn.Module], context: TaskContext) -> None:
        """Frozen helpers and statistics, once per run before training (default: none)."""

    def loss(
        self,
        models: Mapping[str, nn.Module],
        batch: Any,
        text: TextEncoder,
        generator: torch.Generator,
    ) -> TaskLoss:
        """Loss of one ``MotionBatch`` (already on the device)."""
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """Plain-JSON state to keep in checkpoints (e.g. a measured latent scale)."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what ``state()`` returned (on ``--resume`` and export)."""

    def load_run(self, run_dir: Path) -> None:
        """Restore what ``prepare`` kept in the run folder (for export), default nothing."""

    def export_models(self, models: Mapping[str, nn.Module]) -> dict[str, nn.Module]:
        """Networks for the engine checkpoint, by the names the engine expects."""
        return dict(models)

    def export_metadata(self) -> dict[str, Any]:
        """Plain-JSON metadata for the engine checkpoint (sampling defaults, generator)."""
        return {}


TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: make ``cls`` available as ``config.task == cls.name``."""
    if not cls.name:
        raise ValueError(f"task class {cls.__name__} has no name")
    known = TASKS.get(cls.name)
    if known is not None and known.__qualname__ + known.__module__ != (
        cls.__qualname__ + cls.__module__
    ):
        raise ValueError(f"two tasks named {cls.name!r}: {known} and {cls}")
    TASKS[cls.name] = cls
    return cls


def registered_tasks() -> dict[str, type[Task]]:
    """The registry after importing the built-in task modules that exist."""
    for module in BUILTIN_TASK_MODULES:
        full = f"{__name__}.{module}"
        try:
            importlib.import_module(full)
        except ModuleNotFoundError as error:
            if error.name != full:
                raise
    return dict(TASKS)


def get_task(config: TrainConfig) -> Task:
    """A fresh task object for ``config.task``."""
    tasks = registered_tasks()
    if config.task not in tasks:
        raise MotionError(f"unknown task {config.task!r}; known tasks: {sorted(tasks)}")
    return tasks[config.task](config)


def freeze(module: nn.Module) -> nn.Module:
    """``module`` in eval mode with gradients off (a frozen helper inside a task)."""
    return module.eval().requires_grad_(False)


__all__ = [
    "LATENT_UNIT",
    "TASKS",
    "Task",
    "TaskContext",
    "TaskLoss",
    "freeze",
    "get_task",
    "register_task",
    "registered_tasks",
]
