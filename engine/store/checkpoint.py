"""Checkpoints: a folder with one ``config.json`` and sharded safetensors weights.

``config.json`` holds everything needed to rebuild the models (each one's class name and
config), the text encoder config, the feature normaliser, fps, skeleton and the licence and
attribution of the training data; the weights are ``model-0000i-of-0000N.safetensors`` shards
of at most 16 MiB plus ``model.safetensors.index.json`` (tensor name -> shard), the layout
transformers uses. Tensors are named ``<model name>.<parameter>``. Nothing is ever unpickled.

Model classes are found by class name in ``engine.models.registry`` (a class makes itself
loadable with ``@register_model(ItsConfig)``).
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.modules.module import (
    register_module_buffer_registration_hook,
    register_module_parameter_registration_hook,
)

from ..config import Config
from ..errors import MotionError
from ..models.registry import registered_models
from ..motion import skeleton as _skeleton
from ..text_encoder import TextEncoderConfig
from .hub import Source, resolve_source
from .knowledge import KNOWLEDGE_JSON, Knowledge, check_encoder, read_knowledge, write_knowledge
from .weights import (
    FLOAT_DTYPES,
    INDEX_FILE,
    MAX_SHARD_BYTES,
    check_finite,
    few,
    gather_tensors,
    read_json,
    read_weight_headers,
    read_weights,
    write_json,
    write_sharded,
)

FORMAT_NAME = "kinetext-checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
CHECKPOINT_FILES = (
    CONFIG_FILE, INDEX_FILE, "*.safetensors", "README.md", "LICENSE*", "text_encoder/*",
    KNOWLEDGE_JSON,
)  # fmt: skip
# A text encoder named "./FOLDER" lives inside the checkpoint (a converted MoLingo release
# carries its T5 there); loading resolves it against the checkpoint's folder.
LOCAL_ENCODER_PREFIX = "./"


@dataclasses.dataclass
class SkeletonInfo(Config):
    """The skeleton the features describe (SMPL's 22 joints for HumanML3D)."""

    joint_names: list[str]
    parents: list[int]
    offsets: list[list[float]]  # (J, 3) metres, rest pose

    @classmethod
    def canonical(cls) -> SkeletonInfo:
        offsets = np.asarray(_skeleton.CANONICAL_OFFSETS, dtype=np.float64).tolist()
        return cls(list(_skeleton.JOINT_NAMES), list(_skeleton.PARENTS), offsets)


@dataclasses.dataclass
class CheckpointConfig(Config):
    """The contents of ``config.json``."""

    format: str
    format_version: int
    models: dict[str, Any]  # name -> {"class": class name, "config": {...}}
    text_encoder: TextEncoderConfig
    mean: list[float]  # (D,) feature mean, D = 263 for HumanML3D
    std: list[float]  # (D,)
    fps: int
    skeleton: SkeletonInfo
    license: str  # licence of the training data the weights derive from
    attribution: str
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Checkpoint:
    """A loaded checkpoint: models in eval mode on the requested device, and their context."""

    path: Path
    models: dict[str, nn.Module]
    configs: dict[str, Config]
    text_encoder: TextEncoderConfig
    mean: np.ndarray  # (D,) float32
    std: np.ndarray  # (D,) float32
    fps: int
    skeleton: SkeletonInfo
    license: str
    attribution: str
    metadata: dict[str, Any]
    source: Source | None = None  # where it was loaded from (Hub repo and commit, or a path)
    # what it was trained on (engine.store.knowledge); None: it does not say (a MoLingo release)
    knowledge: Knowledge | None = None


# ---- saving --------------------------------------------------------------------------------


def save_checkpoint(
    folder: str | Path,
    models: Mapping[str, nn.Module],
    *,
    text_encoder: TextEncoderConfig,
    normalizer_mean: Any,
    normalizer_std: Any,
    fps: int,
    license: str,
    attribution: str,
    metadata: dict[str, Any] | None = None,
    skeleton: SkeletonInfo | None = None,
    max_shard_bytes: int = MAX_SHARD_BYTES,
    dtype: torch.dtype | None = None,
    knowledge: Knowledge | None = None,
) -> Path:
    """Write ``models`` and their context to ``folder``, atomically.

    Everything is written to a hidden folder beside ``folder`` first and renamed into place
    only once complete, so a failed save leaves an existing checkpoint untouched. ``dtype``
    casts floating-point tensors (e.g. ``torch.bfloat16`` to halve the download). A tensor
    larger than ``max_shard_bytes`` gets a shard of its own. ``knowledge``: the description
    of the training data (``engine.store.knowledge``) written beside the weights.
    """
    folder = Path(folder)
    header = _checkpoint_config(
        models, text_encoder, normalizer_mean, normalizer_std, fps, license, attribution,
        metadata or {}, skeleton or SkeletonInfo.canonical(),
    )  # fmt: skip
    tensors = gather_tensors(models, dtype)
    check_replaceable(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = folder.parent / f".{folder.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        partial.mkdir()
        write_json(partial / CONFIG_FILE, header.to_dict())
        write_sharded(partial, tensors, max_shard_bytes)
        if knowledge is not None:
            check_encoder(knowledge, text_encoder.to_dict(), folder)
            write_knowledge(partial, knowledge)
        swap_in(partial, folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def _checkpoint_config(
    models: Mapping[str, nn.Module],
    text_encoder: TextEncoderConfig,
    mean: Any,
    std: Any,
    fps: int,
    license: str,
    attribution: str,
    metadata: dict[str, Any],
    skeleton: SkeletonInfo,
) -> CheckpointConfig:
    """Validate what ``save_checkpoint`` was given and gather it into a config."""
    if not models:
        raise MotionError("save_checkpoint: no models given")
    entries = {name: _model_entry(name, model) for name, model in models.items()}
    mean = np.asarray(mean, dtype=np.float32)  # (D,)
    std = np.asarray(std, dtype=np.float32)  # (D,)
    if mean.ndim != 1 or mean.shape != std.shape:
        raise MotionError(f"normaliser mean {mean.shape} and std {std.shape} must be equal 1-D")
    if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
        raise MotionError("normaliser mean/std must be finite and std positive")
    if isinstance(fps, bool) or not isinstance(fps, int) or fps <= 0:
        raise MotionError(f"fps must be a positive whole number, got {fps!r}")
    for label, text in (("license", license), ("attribution", attribution)):
        if not isinstance(text, str) or not text.strip():
            raise MotionError(f"save_checkpoint: {label} of the training data must be given")
    try:
        json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise MotionError(f"checkpoint metadata is not plain JSON: {error}") from error
    return CheckpointConfig(
        FORMAT_NAME, FORMAT_VERSION, entries, text_encoder, mean.tolist(), std.tolist(), fps,
        skeleton, license, attribution, metadata,
    )  # fmt: skip


def _model_entry(name: str, model: nn.Module) -> dict[str, Any]:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(name)):
        raise MotionError(f"model name {name!r} must be an identifier (it prefixes tensor names)")
    config = getattr(model, "config", None)
    if not isinstance(config, Config):
        raise MotionError(f"model {name!r} ({type(model).__name__}) has no Config as .config")
    if getattr(type(model), "config_class", None) is not type(config):
        raise MotionError(
            f"model {name!r}: {type(model).__name__} is not registered for {type(config).__name__}"
            f" (decorate it with @register_model({type(config).__name__}))"
        )
    return {"class": type(model).__name__, "config": config.to_dict()}


def check_replaceable(folder: Path) -> None:
    """Refuse to overwrite anything but an empty folder or a kinetext checkpoint."""
    if folder.is_file():
        raise MotionError(f"{folder}: is a file; a checkpoint is a folder")
    if not folder.is_dir() or not any(folder.iterdir()):
        return
    try:
        fmt = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8")).get("format")
    except (OSError, ValueError, AttributeError):
        fmt = None
    if fmt != FORMAT_NAME:
        raise MotionError(f"{folder}: not empty and not a kinetext checkpoint; refusing to replace")


def swap_in(partial: Path, folder: Path) -> None:
    """Rename the complete ``partial`` folder to ``folder``, replacing an old checkpoint."""
    if not folder.exists():
        partial.rename(folder)
        return
    old = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
    folder.rename(old)
    try:
        partial.rename(folder)
    except BaseException:
        old.rename(folder)
        raise
    shutil.rmtree(old, ignore_errors=True)


# ---- loading -------------------------------------------------------------------------------


def load_checkpoint(
    path_or_repo_id: str | Path,
    revision: str | None = None,
    device: str | torch.device = "cpu",
    model_classes: Mapping[str, type[nn.Module]] | None = None,
    *,
    offline: bool = False,
) -> Checkpoint:
    """Load a checkpoint folder (or Hub id at ``revision``; from the local Hub cache only
    when ``offline``: ``hub.resolve_source``) and rebuild its models from their configs.

    ``model_classes`` (class name -> class with ``config_class``) adds to or overrides the
    registry (``engine.models.registry``). Every problem raises ``MotionError`` naming the
    file and what is wrong, and the config is checked against the weights' own shapes
    (read from the safetensors headers) before anything is allocated: a config asking for
    width 10^9 or depth 10^6 fails in milliseconds, not in the allocator.
    """
    source = resolve_source(
        path_or_repo_id, revision, allow_patterns=CHECKPOINT_FILES, offline=offline
    )
    folder, root = source.folder, source.root  # files must not link outside root
    header = read_checkpoint_config(folder, root)
    where = folder / CONFIG_FILE
    classes = {**registered_models(), **(model_classes or {})}
    specs, sources = read_weight_headers(folder, root)
    configs: dict[str, Config] = {}
    built: dict[str, type[nn.Module]] = {}
    expected: dict[str, tuple[bool, tuple[int, ...]]] = {}
    for name, entry in header.models.items():
        built[name], configs[name] = _model_config(name, entry, classes, where)
        expected.update(_planned_tensors(name, built[name], configs[name], specs, where))
    _check_weights(expected, specs, sources, folder)
    _check_normaliser(header, configs, where)
    models = {name: _build_model(name, built[name], configs[name], where) for name in built}
    knowledge = read_knowledge(folder, root)
    if knowledge is not None:
        check_encoder(knowledge, header.text_encoder.to_dict(), folder)
    weights, sources = read_weights(folder, root)
    check_finite(weights, sources, folder)
    for name, model in models.items():
        prefix = f"{name}."
        model.load_state_dict(
            {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
        )
        model.to(device).eval()
    return Checkpoint(
        folder, models, configs, _inside(header.text_encoder, folder),
        np.asarray(header.mean, np.float32),
        np.asarray(header.std, np.float32), header.fps, header.skeleton, header.license,
        header.attribution, header.metadata, source, knowledge,
    )  # fmt: skip


def _inside(encoder: TextEncoderConfig, folder: Path) -> TextEncoderConfig:
    """``encoder`` with a "./FOLDER" name made the absolute path inside ``folder``."""
    if not encoder.name.startswith(LOCAL_ENCODER_PREFIX):
        return encoder
    return encoder.replace(name=str(folder / encoder.name[len(LOCAL_ENCODER_PREFIX) :]))


def read_checkpoint_config(folder: str | Path, root: Path | None = None) -> CheckpointConfig:
    """Read and check ``folder/config.json`` without touching the weights (the file must lie
    inside ``root``, default ``folder``, after following symlinks)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MotionError(f"{folder}: no such checkpoint folder")
    data = read_json(folder / CONFIG_FILE, "checkpoint config", folder if root is None else root)
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        found = data.get("format") if isinstance(data, dict) else None
        raise MotionError(f"{folder / CONFIG_FILE}: not a kinetext checkpoint (format {found!r})")
    version = data.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise MotionError(f"{folder / CONFIG_FILE}: invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise MotionError(
            f"{folder / CONFIG_FILE}: format version {version} was made by a newer kinetext "
            f"(this one reads up to version {FORMAT_VERSION}): update kinetext"
        )
    required = [f.name for f in dataclasses.fields(CheckpointConfig) if f.name != "metadata"]
    missing = [key for key in required if key not in data]
    if missing:
        raise MotionError(f"{folder / CONFIG_FILE}: missing keys {missing}")
    header = CheckpointConfig.from_dict(data, where=str(folder / CONFIG_FILE))
    for key in ("models", "metadata"):
        if not isinstance(getattr(header, key), dict):
            raise MotionError(f"{folder / CONFIG_FILE}: {key} must be an object")
    _check_header_values(header, folder / CONFIG_FILE)
    return header


MAX_FPS = 1000
MAX_FRAMES_LIMIT = 100_000  # metadata["max_frames"]: far above any training clip (196)


def _check_header_values(header: CheckpointConfig, where: Path) -> None:
    if len(header.mean) != len(header.std):
        raise MotionError(f"{where}: mean has {len(header.mean)} values but std {len(header.std)}")
    if not all(s > 0 for s in header.std):
        raise MotionError(f"{where}: every std value must be positive")
    if not 0 < header.fps <= MAX_FPS:
        raise MotionError(f"{where}: fps must be between 1 and {MAX_FPS}, got {header.fps}")
    bones = header.skeleton
    if not len(bones.joint_names) == len(bones.parents) == len(bones.offsets) or any(
        len(offset) != 3 for offset in bones.offsets
    ):
        raise MotionError(f"{where}: skeleton needs one name, parent and 3-D offset per joint")
    _check_metadata(header.metadata, where)


def _check_metadata(metadata: dict[str, Any], where: Path) -> None:
    """The metadata keys the engine reads must have the types it reads them as."""
    kinds = {"generator": str, "sampling": dict, "sampling_defaults": dict, "max_frames": int}
    for key, kind in kinds.items():
        value = metadata.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
            raise MotionError(
                f"{where}: metadata.{key} must be {'an object' if kind is dict else kind.__name__}"
                f", got {type(value).__name__}"
            )
    for name, settings in metadata.get("sampling_defaults", {}).items():
        if not isinstance(settings, dict):
            raise MotionError(f"{where}: metadata.sampling_defaults.{name} must be an object")
    frames = metadata.get("max_frames", 1)
    if not 0 < frames <= MAX_FRAMES_LIMIT:
        raise MotionError(f"{where}: metadata.max_frames must be 1 to {MAX_FRAMES_LIMIT}")


def _check_normaliser(header: CheckpointConfig, configs: Mapping[str, Config], where: Path) -> None:
    """The feature mean/std must have one value per feature of the models that use them."""
    for name, config in configs.items():
        width = getattr(config, "feature_dim", None)
        if width is not None and len(header.mean) != width:
            raise MotionError(
                f"{where}: mean and std have {len(header.mean)} values, but models.{name} "
                f"works on {width} features"
            )


def _model_config(
    name: str, entry: Any, classes: Mapping[str, type[nn.Module]], where: Path
) -> tuple[type[nn.Module], Config]:
    """The class and the checked config of ``models.<name>`` (nothing built yet)."""
    if not isinstance(entry, dict) or set(entry) != {"class", "config"}:
        raise MotionError(f"{where}: models.{name} must be {{'class': ..., 'config': {{...}}}}")
    cls = classes.get(entry["class"]) if isinstance(entry["class"], str) else None
    if cls is None:
        raise MotionError(
            f"{where}: models.{name} has unknown model class {entry['class']!r} "
            f"(known: {sorted(classes)}); it may need a newer kinetext"
        )
    if not isinstance(getattr(cls, "config_class", None), type):
        raise MotionError(f"{where}: models.{name}: {cls.__name__} has no config_class")
    config = cls.config_class.from_dict(entry["config"], where=f"{where}: models.{name}.config")
    return cls, config


_BUILD_ERRORS = (ValueError, TypeError, AssertionError, RuntimeError, ZeroDivisionError,
                 OverflowError, MemoryError)  # fmt: skip


class _TooManyTensors(Exception):
    """Raised from a registration hook to stop building a model larger than its weights."""


def _planned_tensors(
    name: str,
    cls: type[nn.Module],
    config: Config,
    specs: Mapping[str, tuple[str, tuple[int, ...]]],
    where: Path,
) -> dict[str, tuple[bool, tuple[int, ...]]]:
    """Name -> (floating point?, shape) of every tensor ``cls(config)`` would hold, from a
    build on the meta device (no memory), stopped as soon as it registers more tensors than
    the weight files hold for it (a depth of 10^6 stops after a few blocks)."""
    own = [shape for key, (_, shape) in specs.items() if key.startswith(f"{name}.")]
    _check_size_bounds(name, config, own, where)
    limit = len(own) + 16
    count = 0
    thread = threading.get_ident()

    def count_tensor(module: nn.Module, label: str, tensor: Any) -> None:
        nonlocal count
        if threading.get_ident() == thread:  # the hooks are global: other threads' models
            count += 1
            if count > limit:
                raise _TooManyTensors

    hooks = [register_module_parameter_registration_hook(count_tensor),
             register_module_buffer_registration_hook(count_tensor)]  # fmt: skip
    try:
        with torch.device("meta"):
            model = cls(config)
    except _TooManyTensors:
        raise MotionError(
            f"{where}: models.{name}: its config describes more tensors than the weight files "
            f"hold for it ({limit - 16}): a size in the config (depth?) does not match the "
            "weights"
        ) from None
    except _BUILD_ERRORS as error:
        raise _cannot_build(where, name, cls, error) from error
    finally:
        for hook in hooks:
            hook.remove()
    state = model.state_dict()
    return {f"{name}.{k}": (v.is_floating_point(), tuple(v.shape)) for k, v in state.items()}


def _check_size_bounds(
    name: str, config: Config, shapes: list[tuple[int, ...]], where: Path
) -> None:
    """A model config's whole numbers are sizes (widths, lengths, slots) or counts (layers,
    heads): none can exceed both the largest dimension of its stored tensors and their
    number (fields in ``Config.not_sizes`` aside). Checked first, so a width of 10^9 is
    named as such rather than as an overflow."""
    bound = max([len(shapes), *(d for shape in shapes for d in shape)])
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if field.name in config.not_sizes or isinstance(value, bool):
            continue
        if isinstance(value, int) and value > bound:
            raise MotionError(
                f"{where}: models.{name}.config.{field.name} = {value} is larger than every "
                f"dimension and the number of its stored tensors (at most {bound}): the config "
                "does not describe these weights"
            )


def _build_model(name: str, cls: type[nn.Module], config: Config, where: Path) -> nn.Module:
    try:
        return cls(config)
    except _BUILD_ERRORS as error:
        raise _cannot_build(where, name, cls, error) from error


def _cannot_build(where: Path, name: str, cls: type, error: BaseException) -> MotionError:
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    return MotionError(f"{where}: models.{name}: cannot build {cls.__name__}: {reason}")


def _check_weights(
    expected: Mapping[str, tuple[bool, tuple[int, ...]]],
    found: Mapping[str, tuple[str, tuple[int, ...]]],
    sources: Mapping[str, str],
    folder: Path,
) -> None:
    """Missing, unexpected, mis-shaped and mis-typed tensors (from the headers: nothing is
    loaded yet), each named with where it was looked for."""
    missing = expected.keys() - found.keys()
    if missing:
        raise MotionError(f"{folder}: the weight files lack tensors {few(missing)}")
    unexpected = sorted(found.keys() - expected.keys())
    if unexpected:
        raise MotionError(
            f"{folder / sources[unexpected[0]]}: unexpected tensors {few(unexpected)} "
            "(no model in config.json has them)"
        )
    for name, (floating, shape) in expected.items():
        dtype, stored = found[name]
        if stored != shape:
            raise MotionError(
                f"{folder / sources[name]}: tensor {name} has shape {stored}, "
                f"but the model built from config.json expects {shape}"
            )
        if floating != (dtype in FLOAT_DTYPES):
            kind = "floating-point" if floating else "integer"
            raise MotionError(
                f"{folder / sources[name]}: tensor {name} is {dtype}, but the model needs "
                f"{kind} values there"
            )
