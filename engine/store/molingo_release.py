"""Convert a published MoLingo release (He et al., CVPR 2026) into a kinetext checkpoint.

A release is two unzipped folders, as the authors' ``prepare/download_models.sh`` leaves
them:

- the SAE: ``opt.txt`` and ``model/net_best_fid.ckpt`` (``{"state_dict": ...}``, keys with
  a ``module.`` prefix);
- the generator: ``opt.txt`` and ``net_best_fid.pth`` (``{"model": ..., "model_ema": ...}``
  keyed by parameter name; the EMA weights are the ones the authors evaluate, and the
  default here). Its state also carries the frozen T5-Large encoder (``t5_model.*``).

``opt.txt`` is the options dump their ``get_opt`` reads (``key: value`` lines between two
banner lines). The weight files are pickles: this module is the ONLY place in kinetext that
opens one, and only with ``torch.load(..., weights_only=True)``, which rebuilds tensors and
plain containers and refuses anything else without running it.

The result is an ordinary checkpoint folder: an ``autoencoder`` (``MotionAutoencoder`` with
the release's padding, activation and layout options) and a ``molingo``
(``MoLingoRelease``), sharded safetensors, the T5 encoder and its tokenizer as a
transformers folder ``text_encoder/`` inside the checkpoint, HumanML3D's Mean/Std, fps,
the release's sampling defaults and the SHA-256 of every file read. OUT_DIR appears
complete or not at all.
"""

from __future__ import annotations

import hashlib
import math
import pickle
import re
import shutil
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import MotionError
from ..models.autoencoder import AutoencoderConfig, MotionAutoencoder, rescale_latents
from ..models.molingo_release import MODEL_SIZES, NULL_PROMPT, MoLingoRelease, MoLingoReleaseConfig
from ..text_encoder import TextEncoderConfig
from .checkpoint import check_replaceable, save_checkpoint, swap_in
from .molingo_download import ATTRIBUTION, LICENSE
from .weights import few

OPT_FILE = "opt.txt"
SAE_WEIGHTS = Path("model") / "net_best_fid.ckpt"
MODEL_WEIGHTS = Path("net_best_fid.pth")
TEXT_ENCODER_DIR = "text_encoder"
T5_TOKENIZER_REPO = "google-t5/t5-large"
# Hub revision of the tokenizer fetched when --text-encoder is not given. "main" is what
# the release itself used (T5Tokenizer.from_pretrained("t5-large")); the commit actually
# resolved is recorded in the checkpoint's metadata.
T5_TOKENIZER_REVISION = "main"
TOKENIZER_FILES = ("spiece.model", "tokenizer.json", "tokenizer_config.json",
                   "special_tokens_map.json", "config.json")  # fmt: skip


@dataclass(frozen=True)
class Representation:
    """What a release's dataset_name means: feature size, fps, clip cap, sampling defaults."""

    name: str
    dim: int
    fps: int
    max_frames: int
    guidance: float
    acc: int


REPRESENTATIONS = {
    "t2m": Representation("humanml3d-263", 263, 20, 196, 5.5, 3),
    "ms": Representation("humanml3d-272", 272, 30, 300, 7.0, 5),
}
SUPPORTED = ("t2m", "ms")
SUPPORTED_DIMS = tuple(str(REPRESENTATIONS[name].dim) for name in SUPPORTED)


# ---- reading a release ---------------------------------------------------------------------

_BANNERS = ("------------ Options -------------", "-------------- End ----------------")
_FLOAT = re.compile(r"[-+]?[0-9]+\.[0-9]+")


def read_opt(path: Path) -> dict[str, Any]:
    """An ``opt.txt`` as get_opt reads it: True/False, decimals, whole numbers, else text."""
    if not path.is_file():
        raise MotionError(f"{path}: missing ({OPT_FILE} of the release)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise MotionError(f"{path}: cannot read: {error}") from error
    options: dict[str, Any] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.strip() in _BANNERS:
            continue
        if ": " not in line:
            raise MotionError(f"{path}:{number}: expected 'key: value', got {line!r}")
        key, value = line.split(": ", 1)
        options[key] = _opt_value(value)
    return options


def _opt_value(value: str) -> Any:
    if value in ("True", "False"):
        return value == "True"
    bare = value.strip().lstrip("-+")
    if _FLOAT.fullmatch(bare):
        return float(value)
    if bare.isdigit():
        return int(value)
    return value


def _need(options: dict[str, Any], key: str, kind: type, where: Path) -> Any:
    if key not in options:
        raise MotionError(f"{where}: has no '{key}' option")
    value = options[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MotionError(f"{where}: '{key}' must be {kind.__name__}, got {value!r}")
    return value


def load_tensor_pickle(path: Path) -> dict[str, Any]:
    """A release's ``.pth``/``.ckpt`` through ``torch.load(weights_only=True)`` only."""
    if not path.is_file():
        raise MotionError(f"{path}: missing (a release's weight file)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise MotionError(
            f"{path}: holds objects other than tensors and plain containers; refused without "
            f"running it (kinetext loads release weights with weights_only=True): "
            f"{str(error).splitlines()[0]}"
        ) from error
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as error:
        raise MotionError(
            f"{path}: unreadable weight file (truncated or corrupt): {error}"
        ) from error
    if not isinstance(data, dict):
        raise MotionError(f"{path}: expected a dict of weights, got {type(data).__name__}")
    return data


def _state(data: dict[str, Any], key: str, path: Path, hint: str = "") -> dict[str, Tensor]:
    state = data.get(key)
    if not isinstance(state, dict) or not state:
        raise MotionError(f"{path}: has no '{key}' weights{hint} (keys: {sorted(map(str, data))})")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise MotionError(
            f"{path}: '{key}' holds entries that are not tensors: {few(map(str, bad))}"
        )
    return state


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---- the SAE -------------------------------------------------------------------------------


def sae_config(options: dict[str, Any], dim: int, where: Path) -> AutoencoderConfig:
    """The ``AutoencoderConfig`` that reproduces the release's VAE from its opt.txt."""
    if _need(options, "stride_t", int, where) != 2:
        raise MotionError(f"{where}: stride_t {options['stride_t']} is not supported (only 2)")
    norm = options.get("norm", "None")
    if norm not in (None, "None"):
        raise MotionError(f"{where}: norm {norm!r} is not supported (the releases have none)")
    padding = _need(options, "pad_mode", str, where)
    padding = {"zero": "zero", "replicate": "replicate"}.get(padding)
    if padding is None:
        raise MotionError(f"{where}: pad_mode {options['pad_mode']!r} is not zero or replicate")
    try:
        return AutoencoderConfig(
            feature_dim=dim,
            width=_need(options, "width", int, where),
            depth=_need(options, "depth", int, where),
            dilation_growth=_need(options, "dilation_growth_rate", int, where),
            down_t=_need(options, "down_t", int, where),
            latent_dim=_need(options, "output_emb_width", int, where),
            variational=not options.get("ae", False),
            padding=padding,
            activation=_need(options, "activation", str, where),
            encoder_input_padding="replicate",  # the release's first conv, whatever pad_mode
            encoder_dilations_reversed=True,
            latent_projection=True,
            semantic_head=False,
        )
    except MotionError as error:
        raise MotionError(f"{where}: {error}") from error


def sae_key(key: str, down: int) -> str | None:
    """Release VAE key (``module.`` stripped) -> ``MotionAutoencoder`` key, or None."""
    rules = [
        (r"encoder\.model\.0\.conv\.(.+)", lambda m: f"encoder.net.0.{m[1]}"),
        (r"encoder\.model\.(\d+)\.0\.conv\.(.+)",
         lambda m: f"encoder.net.{2 * int(m[1]) - 2}.{m[2]}" if int(m[1]) < 2 + down else None),
        (r"encoder\.model\.(\d+)\.1\.model\.(\d+)\.(conv[12])\.(.+)",
         lambda m: f"encoder.net.{2 * int(m[1]) - 1}.{m[2]}.{m[3]}.{m[4]}"),
        (r"encoder\.model\.(\d+)\.conv\.(.+)",
         lambda m: f"encoder.net.{2 + 2 * down}.{m[2]}" if int(m[1]) == 2 + down else None),
        (r"post_proj\.(.+)", lambda m: f"latent_proj.{m[1]}"),
        (r"decoder\.model\.0\.conv\.(.+)", lambda m: f"decoder.net.0.{m[1]}"),
        (r"decoder\.model\.(\d+)\.0\.model\.(\d+)\.(conv[12])\.(.+)",
         lambda m: f"decoder.net.{3 * int(m[1]) - 4}.{m[2]}.{m[3]}.{m[4]}"),
        (r"decoder\.model\.(\d+)\.2\.conv\.(.+)",
         lambda m: f"decoder.net.{3 * int(m[1]) - 2}.{m[2]}"),
        (r"decoder\.model\.(\d+)\.conv\.(.+)", _decoder_tail(down)),
    ]  # fmt: skip
    for pattern, target in rules:
        match = re.fullmatch(pattern, key)
        if match:
            return target(match)
    return None


def _decoder_tail(down: int):
    def target(match: re.Match[str]) -> str | None:
        index = int(match[1])
        if index == 2 + down:
            return f"decoder.net.{2 + 3 * down}.{match[2]}"
        if index == 4 + down:
            return f"decoder.net.{4 + 3 * down}.{match[2]}"
        return None

    return target


def convert_sae(folder: Path, dim: int) -> tuple[MotionAutoencoder, dict[str, Any]]:
    """The release's SAE as a ``MotionAutoencoder`` (eval mode) and its opt.txt options."""
    options = read_opt(folder / OPT_FILE)
    config = sae_config(options, dim, folder / OPT_FILE)
    path = folder / SAE_WEIGHTS
    state = _state(load_tensor_pickle(path), "state_dict", path)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    model = MotionAutoencoder(config)
    mapped = {}
    for key, value in state.items():
        target = sae_key(key, config.down_t)
        if target is None:
            raise MotionError(f"{path}: unexpected tensor {key!r} for the SAE described by opt.txt")
        mapped[target] = value
    _load_exactly(model, mapped, path, folder / OPT_FILE)
    return model.eval(), options


def _load_exactly(model: torch.nn.Module, state: dict[str, Tensor], path: Path, opt: Path) -> None:
    """Load ``state`` into ``model``; missing keys or shapes unlike opt.txt's name the file."""
    expected = model.state_dict()
    missing = expected.keys() - state.keys()
    if missing:
        raise MotionError(f"{path}: lacks tensors {few(missing)} of the model {opt} describes")
    unexpected = state.keys() - expected.keys()
    if unexpected:
        raise MotionError(f"{path}: unexpected tensors {few(unexpected)}")
    for key, tensor in expected.items():
        if state[key].shape != tensor.shape:
            raise MotionError(
                f"{path}: tensor for {key} has shape {tuple(state[key].shape)} but {opt} "
                f"describes {tuple(tensor.shape)}"
            )
    model.load_state_dict({k: v.float() for k, v in state.items()})


# ---- the generator -------------------------------------------------------------------------

_MODEL_RULES = [
    (r"cond_proj\.(.+)", r"cond_proj.\1"),
    (r"text_aligner\.(.+)", r"text_adapter.\1"),
    (r"z_proj\.(.+)", r"z_proj.\1"),
    (r"seqTransDecoder\.(.+)", r"decoder.\1"),
    (r"flow_loss\.net\.(.+)", r"head.\1"),
]


def _count(state: dict[str, Tensor], prefix: str) -> int:
    found = {int(m[1]) for k in state if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    return len(found)


def molingo_config(
    state: dict[str, Tensor], options: dict[str, Any], rep: Representation, sae: AutoencoderConfig,
    path: Path, opt: Path,
) -> MoLingoReleaseConfig:  # fmt: skip
    """Sizes read from the weights, checked against opt.txt's model_size and the SAE."""
    for key in ("z_proj.weight", "cond_proj.weight", "flow_loss.net.input_proj.weight",
                "seqTransDecoder.layers.0.linear1.weight"):  # fmt: skip
        if key not in state:
            raise MotionError(f"{path}: lacks tensor {key} of a MoLingo model")
    size = _need(options, "model_size", str, opt)
    if size not in MODEL_SIZES:
        raise MotionError(f"{opt}: model_size {size!r} is not one of {sorted(MODEL_SIZES)}")
    preset = MODEL_SIZES[size]
    width, latent = state["z_proj.weight"].shape
    found = {
        "width": width,
        "depth": _count(state, "seqTransDecoder.layers."),
        "head_width": state["flow_loss.net.input_proj.weight"].shape[0],
        "head_depth": _count(state, "flow_loss.net.res_blocks."),
        "mlp_ratio": state["seqTransDecoder.layers.0.linear1.weight"].shape[0] / width,
    }
    for key, value in found.items():
        if value != preset[key]:
            raise MotionError(
                f"{path}: {key} {value} from the weights does not match {opt} (model_size "
                f"{size}: {key} {preset[key]})"
            )
    adapter = options.get("aligner_layers", options.get("adapter_layers"))
    adapter_depth = _count(state, "text_aligner.blocks.layers.")
    if adapter is not None and adapter != adapter_depth:
        raise MotionError(
            f"{path}: {adapter_depth} text-adapter layers in the weights but {opt} says {adapter}"
        )
    if latent != sae.latent_dim:
        raise MotionError(
            f"{path}: the generator's tokens have {latent} channels but the SAE's latent has "
            f"{sae.latent_dim}: the two folders are not one release"
        )
    return MoLingoReleaseConfig(
        latent_dim=latent,
        text_dim=state["cond_proj.weight"].shape[1],
        max_tokens=rep.max_frames // 2**sae.down_t,
        width=width,
        depth=found["depth"],
        heads=int(preset["heads"]),
        mlp_ratio=found["mlp_ratio"],
        adapter_depth=adapter_depth,
        head_width=found["head_width"],
        head_depth=found["head_depth"],
        acc=rep.acc,
    )


def release_state(folder: Path, ema: bool) -> dict[str, Tensor]:
    """The generator's full state: ``model`` with ``model_ema``'s parameters over it."""
    path = folder / MODEL_WEIGHTS
    data = load_tensor_pickle(path)
    state = dict(_state(data, "model", path))
    if ema:
        hint = " (convert with --no-ema to use the raw weights)"
        state.update(_state(data, "model_ema", path, hint))
    return state


def convert_molingo(
    state: dict[str, Tensor], config: MoLingoReleaseConfig, path: Path, opt: Path
) -> MoLingoRelease:
    model = MoLingoRelease(config)
    mapped = {}
    for key, value in state.items():
        if key.startswith("t5_model."):
            continue
        if key == "mask_token":
            mapped["mask_token"] = value.reshape(-1)
            continue
        if key == "query_pos_encoder.pe":
            if value.shape[0] < config.max_tokens or value.shape[-1] != config.width:
                raise MotionError(f"{path}: query_pos_encoder.pe has shape {tuple(value.shape)}")
            mapped["positions"] = value[: config.max_tokens, 0]
            continue
        for pattern, target in _MODEL_RULES:
            if re.fullmatch(pattern, key):
                mapped[re.sub(pattern, target, key)] = value
                break
        else:
            raise MotionError(f"{path}: unexpected tensor {key!r} in a MoLingo model")
    _load_exactly(model, mapped, path, opt)
    return model.eval()


# ---- the text encoder ----------------------------------------------------------------------


def t5_config_from(state: dict[str, Tensor], path: Path):
    """A ``T5Config`` for the encoder weights in ``state`` (keys without ``t5_model.``)."""
    from transformers import T5Config

    if "shared.weight" not in state:
        raise MotionError(f"{path}: the T5 weights lack shared.weight")
    vocab, d_model = state["shared.weight"].shape
    bias = state.get("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight")
    if bias is None:
        raise MotionError(f"{path}: the T5 weights lack the relative attention bias")
    heads = bias.shape[1]
    inner = state["encoder.block.0.layer.0.SelfAttention.q.weight"].shape[0]
    gated = "encoder.block.0.layer.1.DenseReluDense.wi_0.weight" in state
    wi = "wi_0" if gated else "wi"
    d_ff = state[f"encoder.block.0.layer.1.DenseReluDense.{wi}.weight"].shape[0]
    return T5Config(
        vocab_size=vocab, d_model=d_model, d_kv=inner // heads, d_ff=d_ff,
        num_layers=_count(state, "encoder.block."), num_heads=heads,
        relative_attention_num_buckets=bias.shape[0],
        feed_forward_proj="gated-gelu" if gated else "relu", is_encoder_decoder=False,
        use_cache=False,
    )  # fmt: skip


def write_text_encoder(
    state: dict[str, Tensor], path: Path, tokenizer_source: str | None, out: Path
) -> dict[str, Any]:
    """The T5 encoder (from the release, or the ``tokenizer_source`` folder when the release
    has none) and its tokenizer as a transformers folder ``out``; returns provenance."""
    from transformers import AutoTokenizer, T5EncoderModel

    from .hub import resolve_folder

    t5 = {k.removeprefix("t5_model."): v for k, v in state.items() if k.startswith("t5_model.")}
    name = tokenizer_source or T5_TOKENIZER_REPO
    revision = None if tokenizer_source else T5_TOKENIZER_REVISION
    patterns = TOKENIZER_FILES if t5 else (*TOKENIZER_FILES, "*.safetensors")  # never *.bin
    source = resolve_folder(name, revision, allow_patterns=patterns)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError, KeyError) as error:
        raise MotionError(f"{source}: cannot load the T5 tokenizer: {error}") from error
    if t5:
        config = t5_config_from(t5, path)
        model = T5EncoderModel(config)
        t5.setdefault("encoder.embed_tokens.weight", t5["shared.weight"])
        missing, unexpected = model.load_state_dict(t5, strict=False)
        if missing or unexpected:
            raise MotionError(
                f"{path}: T5 weights do not fit a T5 encoder: missing {few(missing)}, "
                f"unexpected {few(unexpected)}"
            )
    else:
        try:
            model = T5EncoderModel.from_pretrained(
                source, local_files_only=True, use_safetensors=True
            )
        except (OSError, ValueError) as error:
            raise MotionError(
                f"{path}: holds no T5 weights and {source} has no T5 encoder: {error}"
            ) from error
    if len(tokenizer) > model.config.vocab_size:
        raise MotionError(
            f"{source}: the tokenizer has {len(tokenizer)} tokens but the T5 encoder only "
            f"{model.config.vocab_size}: not the tokenizer of these weights"
        )
    out.mkdir(parents=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return {"tokenizer": name, "revision": revision, "resolved": str(source),
            "t5_from_release": bool(t5)}  # fmt: skip


# ---- the whole conversion ------------------------------------------------------------------


def find_mean_std(folders: list[Path], dim: int) -> tuple[np.ndarray, np.ndarray, Path]:
    """HumanML3D's Mean/Std: the first folder holding ``Mean.npy``/``Std.npy`` (or the
    lower-case names a ``meta/`` folder uses), as float32 (dim,) arrays."""
    tried = []
    for folder in folders:
        for mean_name, std_name in (("Mean.npy", "Std.npy"), ("mean.npy", "std.npy")):
            mean_path, std_path = folder / mean_name, folder / std_name
            tried.append(str(mean_path))
            if mean_path.is_file() and std_path.is_file():
                return _npy(mean_path, dim), _npy(std_path, dim, positive=True), folder
    raise MotionError(
        "the release has no feature Mean/Std: pass --mean-std FOLDER (the HumanML3D folder "
        f"with Mean.npy and Std.npy); looked for {', '.join(tried)}"
    )


def _npy(path: Path, dim: int, positive: bool = False) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise MotionError(f"{path}: cannot read as .npy: {error}") from error
    array = np.asarray(array, dtype=np.float32).reshape(-1)
    if array.shape != (dim,) or not np.isfinite(array).all() or (positive and (array <= 0).any()):
        raise MotionError(f"{path}: expected {dim} finite{' positive' if positive else ''} values")
    return array


def _release_name(path: Path, sae_dir: Path, model_dir: Path) -> str:
    """``path`` as "<release folder>/<path inside it>" (how the zips name it)."""
    folder = sae_dir if path.is_relative_to(sae_dir) else model_dir
    return f"{folder.name}/{path.relative_to(folder).as_posix()}"


def import_molingo(
    sae_dir: str | Path,
    model_dir: str | Path,
    out_dir: str | Path,
    *,
    text_encoder: str | None = None,
    ema: bool = True,
    mean_std: str | Path | None = None,
    extra_metadata: dict[str, Any] | None = None,
) -> Path:
    """Convert one release (SAE folder + generator folder) into checkpoint ``out_dir``.

    Every problem raises ``MotionError`` naming the file; nothing is left in ``out_dir``
    unless the whole checkpoint was written.
    """
    sae_dir, model_dir, out_dir = Path(sae_dir), Path(model_dir), Path(out_dir)
    for folder in (sae_dir, model_dir):
        if not folder.is_dir():
            raise MotionError(f"{folder}: no such release folder")
    check_replaceable(out_dir)
    model_opt = model_dir / OPT_FILE
    options = read_opt(model_opt)
    dataset = _need(options, "dataset_name", str, model_opt)
    if dataset not in REPRESENTATIONS:
        raise MotionError(f"{model_opt}: dataset_name {dataset!r} is not t2m (263) or ms (272)")
    rep = REPRESENTATIONS[dataset]
    if dataset not in SUPPORTED:
        raise MotionError(
            f"{model_opt}: the {rep.name} representation ({rep.dim} features at {rep.fps} fps) "
            "is not supported by this kinetext yet"
        )
    searched = [Path(mean_std)] if mean_std is not None else [
        model_dir / "meta", model_dir, sae_dir / "meta", sae_dir]  # fmt: skip
    mean, std, mean_from = find_mean_std(searched, rep.dim)  # before the heavy reading
    autoencoder, sae_options = convert_sae(sae_dir, rep.dim)
    sae_dataset = sae_options.get("dataset_name", dataset)
    if sae_dataset != dataset:
        raise MotionError(
            f"{sae_dir / OPT_FILE}: dataset_name {sae_dataset!r} but the generator's is "
            f"{dataset!r}: the two folders are not one release"
        )
    std_factor = float(options.get("std_factor", 1.0))
    if not (std_factor > 0 and math.isfinite(std_factor)):
        raise MotionError(f"{model_opt}: std_factor must be positive, got {std_factor}")
    if std_factor != 1.0:  # the generator samples std_factor x the SAE's latents
        autoencoder = rescale_latents(autoencoder, 1.0 / std_factor)
    state = release_state(model_dir, ema)
    weights = model_dir / MODEL_WEIGHTS
    config = molingo_config(state, options, rep, autoencoder.config, weights, model_opt)
    generator = convert_molingo(state, config, weights, model_opt)
    inputs = [sae_dir / OPT_FILE, sae_dir / SAE_WEIGHTS, model_opt, weights]
    metadata = {
        "generator": "molingo",
        "representation": rep.name,
        "max_frames": rep.max_frames,
        "sampling_defaults": {
            "molingo": {
                "guidance": rep.guidance,
                "steps": 32,
                "ar_steps": config.ar_steps,
                "method": "stochastic",
                "acc": rep.acc,
            }
        },  # fmt: skip
        "release": {
            "sae": sae_dir.name,
            "model": model_dir.name,
            "ema": ema,
            "std_factor": std_factor,
            "mean_std_from": str(mean_from),
            "t5_max_len": int(options.get("t5_max_len", 64)),
            "sha256": {_release_name(p, sae_dir, model_dir): sha256(p) for p in inputs},
        },  # fmt: skip
        **(extra_metadata or {}),
    }
    staging = out_dir.parent / f".{out_dir.name}.import-{uuid.uuid4().hex[:8]}"
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        metadata["release"]["text_encoder"] = _stage(
            staging, autoencoder, generator, state, weights, text_encoder, config, mean, std,
            rep, metadata,
        )  # fmt: skip
        check_replaceable(out_dir)
        swap_in(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def _stage(
    staging: Path, autoencoder: MotionAutoencoder, generator: MoLingoRelease,
    state: dict[str, Tensor], weights: Path, text_encoder: str | None,
    config: MoLingoReleaseConfig, mean: np.ndarray, std: np.ndarray, rep: Representation,
    metadata: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """Write the checkpoint into ``staging``: text encoder first (its provenance goes into
    config.json's metadata), then models and config."""
    scratch = staging.parent / f"{staging.name}-t5"
    try:
        provenance = write_text_encoder(state, weights, text_encoder, scratch)
        metadata["release"]["text_encoder"] = provenance
        encoder = TextEncoderConfig(
            name=f"./{TEXT_ENCODER_DIR}", kind="t5",
            max_tokens=metadata["release"]["t5_max_len"], null_prompt=NULL_PROMPT,
        )  # fmt: skip
        save_checkpoint(
            staging, {"autoencoder": autoencoder, "molingo": generator}, text_encoder=encoder,
            normalizer_mean=mean, normalizer_std=std, fps=rep.fps, license=LICENSE,
            attribution=ATTRIBUTION, metadata=metadata,
        )  # fmt: skip
        scratch.rename(staging / TEXT_ENCODER_DIR)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return provenance


__all__ = ["import_molingo", "read_opt", "load_tensor_pickle", "LICENSE", "REPRESENTATIONS"]
