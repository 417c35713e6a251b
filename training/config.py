"""Training configuration: one dataclass, read from TOML/JSON, overridden by ``key=value``.

Like nanoGPT's configurator but strict: an unknown key or a value of the wrong type is an
error (``MotionError``) whether it comes from the file or from the command line, so a typo
never silently trains the wrong model. The whole config is saved in every run folder and
checkpoint, and ``--resume`` reads it back from there.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from engine.config import Config
from engine.errors import MotionError
from engine.sampling.path import TIME_SAMPLINGS
from engine.text_encoder import TextEncoderConfig

PRESETS = ("tiny", "small", "base", "large")


@dataclasses.dataclass
class TrainConfig(Config):
    """Everything a training run depends on; saved whole as ``config.json`` in the run."""

    # --- what to train --------------------------------------------------------------------
    task: str = "autoencoder"  # a key of training.tasks.TASKS
    data_root: str = ""  # HumanML3D-layout folder (HumanML3D itself or build-dataset output)
    out_dir: str = "runs/default"  # run folder: config, checkpoints, tensorboard events
    preset: str = "small"  # model size preset (the model config's tiny/small/base/large)
    model: dict[str, Any] = dataclasses.field(default_factory=dict)  # preset overrides
    text_encoder: TextEncoderConfig = dataclasses.field(default_factory=TextEncoderConfig)
    # Generators: the trained autoencoder, as a run folder or an exported engine checkpoint.
    autoencoder: str = ""
    # Fine-tuning (training/finetune.py): start from an exported checkpoint folder (e.g.
    # engine/checkpoints/default) or a run's weights, keeping its Mean/Std; renormalize =
    # true makes an autoencoder use the data set's own Mean/Std (layers remapped to them).
    init_from: str = ""
    renormalize: bool = False
    # Task-specific settings the task checks itself (for tasks outside this file's fields).
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    # --- data -----------------------------------------------------------------------------
    train_split: str = "train"
    val_split: str = "val"
    min_frames: int = 40  # HumanML3D's shortest training length
    max_frames: int = 196  # and longest (49 latent steps)
    mirror: bool = True  # also train on the mirrored "M" clips
    # Combined data sets (combine-datasets): times each item of a source counts per epoch of
    # the train split, e.g. {deepmimic = 8.0}; unlisted sources 1.0 (training.data.mix).
    source_weights: dict[str, float] = dataclasses.field(default_factory=dict)
    babel_root: str = ""  # BABEL train/val.json + index.csv for the SAE's frame labels
    batch_size: int = 64  # GLOBAL batch: split evenly over the DDP ranks
    num_workers: int = 0  # data loader worker processes per rank
    # Terms of the data, carried into exported checkpoints; read from DATA/build.json when
    # these are empty (a folder made by build-dataset), required for export otherwise.
    license: str = ""
    attribution: str = ""

    # --- optimisation ---------------------------------------------------------------------
    lr: float = 2e-4  # peak learning rate, reached after warm-up
    min_lr_ratio: float = 0.0  # cosine decays to lr * min_lr_ratio at max_steps
    weight_decay: float = 0.01  # on matrices only (not biases, norms, embeddings tables)
    betas: tuple[float, float] = (0.9, 0.99)
    warmup_steps: int = 500  # linear warm-up from 0 (optimizer steps)
    max_steps: int = 10000  # optimizer steps in the whole run
    grad_clip: float = 1.0  # max global grad norm; 0 turns clipping off
    accum_steps: int = 1  # micro-batches per optimizer step (each batch_size / accum_steps)
    ema_decay: float = 0.999  # EMA of weights, used for validation and export
    bf16: bool = True  # bf16 autocast on CUDA (ignored on CPU: exact float32 there)
    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda"
    seed: int = 0

    # --- bookkeeping ----------------------------------------------------------------------
    log_every: int = 50  # optimizer steps between tensorboard/console scalars
    ckpt_every: int = 1000  # optimizer steps between checkpoints (and one at the end)
    keep_checkpoints: int = 3  # newest checkpoints kept
    eval_every: int = 0  # steps between validation losses (EMA weights); 0 = never
    val_batches: int = 8  # validation batches per evaluation
    progress: bool = True  # tqdm bar on rank 0

    # --- autoencoder losses (SPEC 3.1) ----------------------------------------------------
    feature_weight: float = 1.0  # L2 on normalised features
    joint_weight: float = 1.0  # L2 on forward-kinematics joint positions (metres)
    velocity_weight: float = 10.0  # L2 on joint velocities (metres per frame)
    kl_weight: float = 1e-5  # VAE KL to N(0, I); ignored for a plain AE
    semantic_weight: float = 0.0  # SAE alignment (reference 0.001); 0 = plain VAE
    semantic_tau: float = 0.95  # skip steps whose class token repeats the previous one

    # --- generators (SPEC 3.2, 3.3) -------------------------------------------------------
    cond_drop: float = 0.1  # share of prompts replaced by the null prompt (for CFG)
    latent_scale: float = 0.0  # latents are divided by it; 0 = std measured at the start
    latent_scale_batches: int = 8  # batches of training data that measure it
    time_sampling: str = "uniform"  # flow time t ~ U(0,1) or "logit_normal" (SD3's)

    def __post_init__(self) -> None:
        checks = [
            (self.preset in PRESETS, f"preset must be one of {PRESETS}"),
            (
                self.time_sampling in TIME_SAMPLINGS,
                f"time_sampling must be one of {TIME_SAMPLINGS}",
            ),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.accum_steps >= 1, "accum_steps must be >= 1"),
            (self.batch_size % self.accum_steps == 0, "batch_size must divide by accum_steps"),
            (self.max_steps >= 1, "max_steps must be >= 1"),
            (self.warmup_steps >= 0, "warmup_steps must be >= 0"),
            (self.lr > 0, "lr must be positive"),
            (0.0 <= self.ema_decay < 1.0, "ema_decay must be in [0, 1)"),
            (0.0 <= self.cond_drop < 1.0, "cond_drop must be in [0, 1)"),
            (self.latent_scale >= 0, "latent_scale must be >= 0 (0 = measure it)"),
            (self.log_every >= 1 and self.ckpt_every >= 1, "log_every/ckpt_every must be >= 1"),
            (self.keep_checkpoints >= 1, "keep_checkpoints must be >= 1"),
            (self.min_frames <= self.max_frames, "min_frames must not exceed max_frames"),
            (self.init_from or not self.renormalize, "renormalize needs init_from (a model)"),
        ]
        for ok, message in checks:
            if not ok:
                raise MotionError(f"TrainConfig: {message}")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The raw dict of a ``.toml`` or ``.json`` config file."""
    path = Path(path)
    if not path.is_file():
        raise MotionError(f"{path}: config file not found")
    try:
        if path.suffix == ".toml":
            return tomllib.loads(path.read_text(encoding="utf-8"))
        if path.suffix == ".json":
            return json.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise MotionError(f"{path}: cannot parse: {error}") from error
    raise MotionError(f"{path}: config files are .toml or .json")


def parse_override(text: str) -> tuple[list[str], str]:
    """``"model.width=64"`` -> (["model", "width"], "64")."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise MotionError(f"override {text!r} must look like key=value")
    return key.strip().split("."), value.strip()


def _parse_value(raw: str, hint: Any) -> Any:
    """A command-line value as TOML (``1e-4``, ``true``, ``[0.9, 0.95]``, ``"x"``), or the raw
    text where TOML cannot read it or a string is expected (``task=molingo``, ``out_dir=a/b``)."""
    if _is_str_hint(hint):
        return raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] == '"' else raw
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _is_str_hint(hint: Any) -> bool:
    """True for ``str`` and optional strings (``str | None``)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return str in typing.get_args(hint)
    return hint is str


def _hint_for(path: list[str], text: str) -> Any:
    """The type hint of the dotted key ``path``; unknown keys raise ``MotionError``."""
    hints = typing.get_type_hints(TrainConfig)
    if path[0] not in hints:
        known = ", ".join(sorted(hints))
        raise MotionError(f"override {text!r}: unknown key {path[0]!r} (known: {known})")
    hint = hints[path[0]]
    if len(path) == 1:
        return hint
    if dataclasses.is_dataclass(hint):
        sub = typing.get_type_hints(hint)
        if len(path) != 2 or path[1] not in sub:
            raise MotionError(f"override {text!r}: {path[0]} has no key {'.'.join(path[1:])!r}")
        return sub[path[1]]
    if typing.get_origin(hint) is dict:
        return Any  # free-form table: its task checks the keys
    raise MotionError(f"override {text!r}: {path[0]} is not a table")


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``data`` with each ``key=value`` set; dotted keys reach into nested tables.

    Top-level keys must be TrainConfig fields and nested keys of a config-typed field
    (``text_encoder.max_tokens``) must be fields of that config; keys under the free-form
    tables ``model`` and ``options`` are checked by the task (see ``load_train_config``).
    """
    data = json.loads(json.dumps(data))  # deep copy of plain data
    for text in overrides:
        path, raw = parse_override(text)
        hint = _hint_for(path, text)
        target = data
        for name in path[:-1]:
            target = target.setdefault(name, {})
            if not isinstance(target, dict):
                raise MotionError(f"override {text!r}: {name!r} is not a table")
        target[path[-1]] = _parse_value(raw, hint)
    return data


def load_train_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Read ``path`` (TOML or JSON; None = defaults), apply ``overrides`` and check it all.

    Raises ``MotionError`` for unknown keys and wrong types, including keys of ``model``
    (checked against the task's model config) and ``options`` (checked by the task).
    """
    data = read_config_file(path) if path is not None else {}
    data = apply_overrides(data, list(overrides or []))
    where = str(path) if path is not None else "config"
    config = TrainConfig.from_dict(data, where=where)
    from training.tasks import get_task  # tasks import this module

    get_task(config).check()
    return config


def save_train_config(config: TrainConfig, path: str | Path) -> None:
    """Write ``config`` as JSON (the form ``--resume`` reads back)."""
    Path(path).write_text(json.dumps(config.to_dict(), indent=2) + "\n", encoding="utf-8")
