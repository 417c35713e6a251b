"""Sharded safetensors weights: ``model-0000i-of-0000N.safetensors`` plus an index.

The layout transformers uses: ``model.safetensors.index.json`` maps each tensor name to the
shard file holding it. Shards stay under a size limit (16 MiB by default) so that a
checkpoint can live in a git repository or an extension package without large-file storage.
Only safetensors are read: nothing is ever unpickled.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from ..errors import MotionError

INDEX_FILE = "model.safetensors.index.json"
SINGLE_WEIGHTS_FILE = "model.safetensors"
MAX_SHARD_BYTES = 16 * 2**20
_SHARD_NAME = re.compile(r"[A-Za-z0-9_.\-]+\.safetensors")
MAX_JSON_BYTES = 16 * 2**20  # a config or index is kilobytes; refuse to parse a huge one
# safetensors dtype names of floating-point tensors (what a network's weights must be)
FLOAT_DTYPES = {"F16", "BF16", "F32", "F64", "F8_E4M3", "F8_E5M2"}


def gather_tensors(
    models: Mapping[str, nn.Module], dtype: torch.dtype | None = None
) -> dict[str, Tensor]:
    """Every model's state as CPU copies named ``<model name>.<parameter>``.

    Copies, because safetensors refuses tensors sharing storage (tied weights). ``dtype``
    casts floating-point tensors only (integer buffers keep their type).
    """
    tensors = {}
    for name, model in models.items():
        for key, value in model.state_dict().items():
            value = value.detach().to("cpu")
            if dtype is not None and value.is_floating_point():
                value = value.to(dtype)
            tensors[f"{name}.{key}"] = value.contiguous().clone()
    return tensors


def _shard_cost(name: str, tensor: Tensor) -> int:
    """Bytes a tensor adds to a shard file: its data plus a generous bound on its header entry."""
    return tensor.numel() * tensor.element_size() + 160 + len(name.encode()) + 24 * tensor.ndim


def plan_shards(tensors: Mapping[str, Tensor], max_shard_bytes: int) -> list[list[str]]:
    """Group tensor names, in order, into shards whose files stay within ``max_shard_bytes``.

    A single tensor larger than the limit gets a shard of its own (it cannot be split).
    """
    budget = max_shard_bytes - 64  # the file's length prefix and metadata
    shards: list[list[str]] = [[]]
    used = 0
    for name, tensor in tensors.items():
        cost = _shard_cost(name, tensor)
        if shards[-1] and used + cost > budget:
            shards.append([])
            used = 0
        shards[-1].append(name)
        used += cost
    return shards


def write_sharded(folder: Path, tensors: Mapping[str, Tensor], max_shard_bytes: int) -> None:
    """Write ``tensors`` as shards plus the index into the existing ``folder``."""
    shards = plan_shards(tensors, max_shard_bytes)
    weight_map = {}
    for i, names in enumerate(shards, start=1):
        shard = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file({n: tensors[n] for n in names}, folder / shard, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(names, shard))
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    write_json(folder / INDEX_FILE, {"metadata": {"total_size": total}, "weight_map": weight_map})


def check_inside(path: Path, root: Path) -> Path:
    """``path`` if it (after following symlinks) lies inside ``root``; else ``MotionError``.

    A checkpoint is a folder of files; a symlink in it pointing elsewhere (``/etc/...``,
    another user's files) would make loading read what the folder's author chose. ``root``
    is the folder itself, or for a Hub download the repo's cache folder, whose snapshot
    files are links into its ``blobs``.
    """
    try:
        real = path.resolve(strict=False)
        inside = real.is_relative_to(root.resolve())
    except (OSError, RuntimeError) as error:  # RuntimeError: a symlink loop
        raise MotionError(f"{path}: cannot be resolved ({error})") from error
    if not inside:
        raise MotionError(f"{path}: is a link to {real}, outside {root}; refusing to read it")
    return path


def _index(folder: Path, root: Path) -> dict[str, str] | None:
    """The index's tensor name -> shard file map, every shard a plain name present in
    ``folder``; None for a lone ``model.safetensors`` without an index."""
    index_path = folder / INDEX_FILE
    if not index_path.exists() and (folder / SINGLE_WEIGHTS_FILE).is_file():
        check_inside(folder / SINGLE_WEIGHTS_FILE, root)
        return None
    index = read_json(index_path, "weights index", root)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(s, str) for s in weight_map.values()):
        raise MotionError(f"{index_path}: needs a 'weight_map' of tensor name -> shard file")
    for shard in sorted(set(weight_map.values())):  # all present before reading any
        if not _SHARD_NAME.fullmatch(shard):
            raise MotionError(
                f"{index_path}: names shard {shard!r}, which is not a file name inside the "
                "checkpoint folder (paths and '..' are refused)"
            )
        if not (folder / shard).is_file():
            raise MotionError(f"{index_path}: points to shard {shard!r}, which is missing")
        check_inside(folder / shard, root)
    return weight_map


def _shards(weight_map: Mapping[str, str] | None) -> list[tuple[str, set[str] | None]]:
    """(shard file, the tensor names the index puts there) per shard; None: no index."""
    if weight_map is None:
        return [(SINGLE_WEIGHTS_FILE, None)]
    shards = sorted(set(weight_map.values()))
    return [(shard, {n for n, s in weight_map.items() if s == shard}) for shard in shards]


def _check_listed(path: Path, listed: set[str] | None, found: Iterable[str]) -> None:
    if listed is None:
        return
    found = set(found)
    if listed - found:
        raise MotionError(f"{path}: lacks tensors the index lists: {few(listed - found)}")
    if found - listed:
        raise MotionError(f"{path}: holds tensors the index does not list: {few(found - listed)}")


def read_weight_headers(
    folder: Path, root: Path | None = None
) -> tuple[dict[str, tuple[str, tuple[int, ...]]], dict[str, str]]:
    """Every tensor's safetensors dtype name and shape, from the shards' headers alone (no
    tensor data is read), and the file each is in.

    Loading checks a checkpoint's config against these before it allocates anything.
    """
    root = folder if root is None else root
    weight_map = _index(folder, root)
    headers: dict[str, tuple[str, tuple[int, ...]]] = {}
    sources: dict[str, str] = {}
    for shard, listed in _shards(weight_map):
        path = folder / shard
        try:
            with safe_open(path, framework="pt", device="cpu") as file:
                for name in file.keys():
                    view = file.get_slice(name)
                    headers[name] = (view.get_dtype(), tuple(view.get_shape()))
                    sources[name] = shard
        except (SafetensorError, OSError, ValueError, RuntimeError) as error:
            raise MotionError(
                f"{path}: unreadable safetensors file (truncated or corrupt): {error}"
            ) from error
        _check_listed(path, listed, [n for n, s in sources.items() if s == shard])
    return headers, sources


def read_weights(
    folder: Path, root: Path | None = None
) -> tuple[dict[str, Tensor], dict[str, str]]:
    """All tensors of ``folder`` on the CPU and, for each, the file it came from.

    Reads the index and its shards, or a lone ``model.safetensors`` when there is no index.
    Files must lie inside ``root`` (default: ``folder``) after following symlinks.
    """
    root = folder if root is None else root
    weight_map = _index(folder, root)
    tensors: dict[str, Tensor] = {}
    sources: dict[str, str] = {}
    for shard, listed in _shards(weight_map):
        path = folder / shard
        found = _load_shard(path)
        _check_listed(path, listed, found)
        tensors.update(found)
        sources.update(dict.fromkeys(found, shard))
    return tensors, sources


def check_finite(tensors: Mapping[str, Tensor], sources: Mapping[str, str], folder: Path) -> None:
    """Refuse NaN or infinite values in floating-point tensors, naming tensor and file."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise MotionError(
                f"{folder / sources[name]}: tensor {name} holds NaN or infinite values"
            )


def _load_shard(path: Path) -> dict[str, Tensor]:
    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise MotionError(
            f"{path}: unreadable safetensors file (truncated or corrupt): {error}"
        ) from error


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def _no_constant(text: str) -> float:
    raise ValueError(f"{text} is not a number JSON allows")


def read_json(path: Path, what: str, root: Path | None = None) -> Any:
    """Parse ``path``; a missing, huge, non-UTF-8 or invalid file (NaN and infinite numbers
    included, nesting too deep for the parser) raises ``MotionError`` naming it. With
    ``root``, the file must lie inside it after following symlinks."""
    if not path.is_file():
        raise MotionError(f"{path}: missing {what} ({path.name})")
    if root is not None:
        check_inside(path, root)
    if path.stat().st_size > MAX_JSON_BYTES:
        raise MotionError(f"{path}: {what} is larger than {MAX_JSON_BYTES // 2**20} MiB")
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except UnicodeDecodeError as error:
        raise MotionError(f"{path}: {what} is not UTF-8 text") from error
    except json.JSONDecodeError as error:
        raise MotionError(
            f"{path}: invalid JSON at line {error.lineno} column {error.colno}: {error.msg}"
        ) from error
    except ValueError as error:
        raise MotionError(f"{path}: {what}: {error}") from error
    except RecursionError as error:
        raise MotionError(f"{path}: {what} is nested too deeply to be a config") from error


def few(names: Iterable[str], limit: int = 5) -> str:
    """Up to ``limit`` sorted names for an error message, and how many more there are."""
    names = sorted(names)
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
