"""Checkpoint folders: bit-exact round trips, sharding, atomic replace, and broken folders."""

from __future__ import annotations

import dataclasses
import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import constants as hub_constants
from safetensors import safe_open
from torch import nn

import engine.store.weights
from engine.config import Config
from engine.errors import MotionError
from engine.models.registry import register_model
from engine.store.checkpoint import (
    FORMAT_VERSION,
    SkeletonInfo,
    load_checkpoint,
    read_checkpoint_config,
    save_checkpoint,
)
from engine.store.weights import INDEX_FILE
from engine.text_encoder import TextEncoderConfig


@dataclasses.dataclass
class ToyConfig(Config):
    width: int = 8
    depth: int = 2


@register_model(ToyConfig)
class ToyNet(nn.Module):
    """Linear layers, a tied output projection and an integer buffer."""

    def __init__(self, config: ToyConfig):
        super().__init__()
        self.config = config
        width = config.width
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(config.depth))
        self.out = nn.Linear(config.width, config.width, bias=False)
        self.out.weight = self.layers[0].weight
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))


class UnlistedNet(ToyNet):
    """Loadable only when passed in ``model_classes`` (not in the registry)."""

    config_class = ToyConfig


def _models(seed: int = 0) -> dict[str, ToyNet]:
    torch.manual_seed(seed)
    models = {"autoencoder": ToyNet(ToyConfig(8, 2)), "generator": ToyNet(ToyConfig(4, 1))}
    models["autoencoder"].steps.fill_(7 + seed)
    return models


def _stats(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=263).astype(np.float32), rng.uniform(0.1, 2, 263).astype(np.float32)


def _save(folder: Path, models: dict[str, nn.Module] | None = None, seed: int = 0, **kw) -> Path:
    mean, std = _stats(seed)
    options = dict(
        text_encoder=TextEncoderConfig(max_tokens=32), normalizer_mean=mean, normalizer_std=std,
        fps=20, license="HumanML3D: non-commercial research", attribution="Guo et al. 2022",
        metadata={"steps": 1000, "notes": ["tiny"]},
    )  # fmt: skip
    options.update(kw)
    return save_checkpoint(folder, models or _models(seed), **options)


def _assert_same_weights(loaded: dict[str, nn.Module], original: dict[str, nn.Module]) -> None:
    assert loaded.keys() == original.keys()
    for name, model in original.items():
        expected, found = model.state_dict(), loaded[name].state_dict()
        assert found.keys() == expected.keys()
        for key in expected:
            assert torch.equal(found[key], expected[key]), f"{name}.{key}"


def test_round_trip_is_bit_exact(tmp_path):
    models = _models()
    _save(tmp_path / "ckpt", models)
    ckpt = load_checkpoint(tmp_path / "ckpt")
    _assert_same_weights(ckpt.models, models)
    mean, std = _stats()
    assert np.array_equal(ckpt.mean, mean) and np.array_equal(ckpt.std, std)
    assert ckpt.configs == {"autoencoder": ToyConfig(8, 2), "generator": ToyConfig(4, 1)}
    assert ckpt.models["generator"].config == ToyConfig(4, 1)
    assert ckpt.text_encoder == TextEncoderConfig(max_tokens=32)
    assert (ckpt.fps, ckpt.license, ckpt.attribution) == (
        20, "HumanML3D: non-commercial research", "Guo et al. 2022",
    )  # fmt: skip
    assert ckpt.metadata == {"steps": 1000, "notes": ["tiny"]}
    assert ckpt.skeleton == SkeletonInfo.canonical() and len(ckpt.skeleton.parents) == 22
    assert not ckpt.models["autoencoder"].training
    out = ckpt.models["autoencoder"].out  # the tie survives loading
    assert out.weight is ckpt.models["autoencoder"].layers[0].weight


def test_loading_never_unpickles(tmp_path, monkeypatch):
    models = _models()
    _save(tmp_path / "ckpt", models)

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling attempted")

    for module, name in ((torch, "load"), (pickle, "load"), (pickle, "loads")):
        monkeypatch.setattr(module, name, refuse)
    _assert_same_weights(load_checkpoint(tmp_path / "ckpt").models, models)


def test_shards_split_and_stay_under_the_limit(tmp_path):
    torch.manual_seed(0)
    models = {"net": ToyNet(ToyConfig(width=64, depth=6))}  # 6 x 16.6 kB of weights
    limit = 40_000
    folder = _save(tmp_path / "ckpt", models, max_shard_bytes=limit)
    shards = sorted(folder.glob("*.safetensors"))
    assert len(shards) >= 3
    assert [p.name for p in shards][0] == f"model-00001-of-{len(shards):05d}.safetensors"
    assert all(p.stat().st_size <= limit for p in shards)
    weight_map = json.loads((folder / INDEX_FILE).read_text())["weight_map"]
    assert set(weight_map) == {f"net.{k}" for k in models["net"].state_dict()}
    assert set(weight_map.values()) == {p.name for p in shards}
    _assert_same_weights(load_checkpoint(folder).models, models)


def test_dtype_casts_floats_on_disk_only(tmp_path):
    models = _models()
    folder = _save(tmp_path / "ckpt", models, dtype=torch.bfloat16)
    with safe_open(folder / "model-00001-of-00001.safetensors", "pt") as f:
        assert f.get_tensor("autoencoder.layers.0.weight").dtype == torch.bfloat16
        assert f.get_tensor("autoencoder.steps").dtype == torch.long
    loaded = load_checkpoint(folder).models["autoencoder"]
    assert loaded.layers[0].weight.dtype == torch.float32
    expected = models["autoencoder"].layers[0].weight.to(torch.bfloat16).float()
    assert torch.equal(loaded.layers[0].weight, expected)


def test_model_classes_adds_classes_outside_the_registry(tmp_path):
    torch.manual_seed(0)
    models = {"extra": UnlistedNet(ToyConfig(8, 1))}
    _save(tmp_path / "ckpt", models)
    with pytest.raises(MotionError, match="unknown model class 'UnlistedNet'"):
        load_checkpoint(tmp_path / "ckpt")
    loaded = load_checkpoint(tmp_path / "ckpt", model_classes={"UnlistedNet": UnlistedNet})
    _assert_same_weights(loaded.models, models)


def test_hub_id_resolves_through_the_offline_cache(tmp_path, monkeypatch):
    models = _models()
    _save(tmp_path / "ckpt", models)
    commit = "f" * 40
    repo = tmp_path / "hub" / "models--someone--kinetext-small"
    shutil.copytree(tmp_path / "ckpt", repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    _assert_same_weights(load_checkpoint("someone/kinetext-small").models, models)


# ---- atomic saving -------------------------------------------------------------------------


def test_failed_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    old_models = _models(seed=0)
    folder = _save(tmp_path / "ckpt", old_models, seed=0, max_shard_bytes=600)
    real_save_file = engine.store.weights.save_file
    calls = []

    def fail_on_second_shard(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        real_save_file(*args, **kwargs)

    monkeypatch.setattr(engine.store.weights, "save_file", fail_on_second_shard)
    with pytest.raises(OSError, match="disk full"):
        _save(folder, _models(seed=1), seed=1, max_shard_bytes=600)
    _assert_same_weights(load_checkpoint(folder).models, old_models)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no half-written leftovers

    monkeypatch.setattr(engine.store.weights, "save_file", real_save_file)
    new_models = _models(seed=1)
    _save(folder, new_models, seed=1)
    _assert_same_weights(load_checkpoint(folder).models, new_models)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_save_refuses_to_replace_other_folders(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_text("meow")
    with pytest.raises(MotionError, match="not a kinetext checkpoint; refusing to replace"):
        _save(tmp_path / "photos")
    assert (tmp_path / "photos" / "cat.jpg").read_text() == "meow"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"license": " "}, "license of the training data must be given"),
        ({"normalizer_std": np.ones(262)}, r"mean \(263,\) and std \(262,\)"),
        ({"normalizer_std": np.zeros(263)}, "std positive"),
        ({"fps": 0}, "fps must be a positive whole number"),
        ({"metadata": {"when": object()}}, "metadata is not plain JSON"),
    ],
)
def test_save_checks_its_inputs(tmp_path, overrides, message):
    with pytest.raises(MotionError, match=message):
        _save(tmp_path / "ckpt", **overrides)
    assert not (tmp_path / "ckpt").exists()


def test_save_needs_registered_models_with_configs(tmp_path):
    with pytest.raises(MotionError, match="has no Config as .config"):
        _save(tmp_path / "a", {"net": nn.Linear(2, 2)})

    class Unregistered(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = ToyConfig()

    with pytest.raises(MotionError, match=r"@register_model\(ToyConfig\)"):
        _save(tmp_path / "b", {"net": Unregistered()})
    with pytest.raises(MotionError, match="must be an identifier"):
        _save(tmp_path / "c", {"my.net": ToyNet(ToyConfig())})


# ---- broken checkpoints --------------------------------------------------------------------


def _edit_json(path: Path, change: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _set_model(key: str, value) -> Callable[[dict], None]:
    return lambda data: data["models"]["autoencoder"]["config"].__setitem__(key, value)


def _config(change: Callable[[dict], None]) -> Callable[[Path], None]:
    return lambda folder: _edit_json(folder / "config.json", change)


def _index(change: Callable[[dict], None]) -> Callable[[Path], None]:
    return lambda folder: _edit_json(folder / INDEX_FILE, change)


def _shard(folder: Path, number: int) -> Path:
    return sorted(folder.glob("model-*.safetensors"))[number - 1]


def _truncate(folder: Path) -> None:
    shard = _shard(folder, 1)
    shard.write_bytes(shard.read_bytes()[:-100])


def _list_absent_tensor(folder: Path) -> None:
    add = lambda d: d["weight_map"].__setitem__("autoencoder.extra", _shard(folder, 1).name)  # noqa: E731
    _edit_json(folder / INDEX_FILE, add)


BROKEN = {
    "no config": (lambda f: (f / "config.json").unlink(), "config.json: missing checkpoint config"),
    "bad json": (
        lambda f: (f / "config.json").write_text('{"format": '),
        r"config.json: invalid JSON at line 1 column 12",
    ),
    "other format": (
        _config(lambda d: d.__setitem__("format", "other")),
        r"config.json: not a kinetext checkpoint \(format 'other'\)",
    ),
    "newer version": (
        _config(lambda d: d.__setitem__("format_version", FORMAT_VERSION + 1)),
        "made by a newer kinetext",
    ),
    "missing key": (_config(lambda d: d.pop("fps")), r"config.json: missing keys \['fps'\]"),
    "unknown class": (
        _config(lambda d: d["models"]["autoencoder"].__setitem__("class", "Nope")),
        "models.autoencoder has unknown model class 'Nope'",
    ),
    "unknown config key": (
        _config(_set_model("colour", "red")),
        r"models.autoencoder.config: unknown ToyConfig keys \['colour'\]",
    ),
    "wrong config type": (
        _config(_set_model("width", "8")),
        "models.autoencoder.config.width: expected int, got '8'",
    ),
    "wrong text encoder type": (
        _config(lambda d: d["text_encoder"].__setitem__("max_tokens", 1.5)),
        "text_encoder.max_tokens: expected int",
    ),
    "missing shard file": (
        lambda f: _shard(f, 2).unlink(),
        r"index.json: points to shard 'model-00002-of-0000\d.safetensors', which is missing",
    ),
    "index names absent shard": (
        _index(lambda d: d["weight_map"].__setitem__("autoencoder.steps", "model-9.safetensors")),
        "points to shard 'model-9.safetensors', which is missing",
    ),
    "index lists absent tensor": (
        _list_absent_tensor,
        r"model-00001-of-0000\d.safetensors: lacks tensors the index lists: autoencoder.extra",
    ),
    "no index": (lambda f: (f / INDEX_FILE).unlink(), "missing weights index"),
    "truncated shard": (_truncate, r"model-00001-of-0000\d.safetensors: unreadable safetensors"),
    "missing tensors": (_config(_set_model("depth", 3)), "lack tensors autoencoder.layers.2.bias"),
    "unexpected tensors": (
        _config(_set_model("depth", 1)),
        "unexpected tensors autoencoder.layers.1.bias, autoencoder.layers.1.weight",
    ),
    "shape mismatch": (
        _config(_set_model("width", 6)),
        r"tensor autoencoder.layers.0.weight has shape \(8, 8\), .* expects \(6, 6\)",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_checkpoints_name_file_and_problem(tmp_path, case):
    folder = _save(tmp_path / "ckpt", max_shard_bytes=1000)
    assert 3 <= len(list(folder.glob("*.safetensors"))) <= 9
    damage, message = BROKEN[case]
    damage(folder)
    with pytest.raises(MotionError, match=message):
        load_checkpoint(folder)


def test_missing_folder(tmp_path):
    with pytest.raises(MotionError, match="no such folder"):
        load_checkpoint(tmp_path / "nowhere" / "deep" / "ckpt")
    with pytest.raises(MotionError, match="no such checkpoint folder"):
        read_checkpoint_config(tmp_path / "nowhere")


def test_networks_register_without_the_checkpoint_code_and_load_in_a_fresh_process(tmp_path):
    """The registry points down: importing a network pulls in neither ``engine.store.checkpoint``
    nor safetensors nor the Hub code, and a checkpoint loads without its model modules
    imported first (``engine.models.registry.registered_models``)."""
    import subprocess
    import sys

    from engine.models.molingo import MoLingo, MoLingoConfig

    save_checkpoint(
        tmp_path / "ckpt", {"molingo": MoLingo(MoLingoConfig.tiny())},
        text_encoder=TextEncoderConfig(), normalizer_mean=np.zeros(4), normalizer_std=np.ones(4),
        fps=20, license="test", attribution="test",
    )  # fmt: skip
    networks = (
        "import sys, engine.models.mlagen, engine.models.molingo\n"
        "print([m for m in ('engine.store.checkpoint', 'safetensors', 'huggingface_hub') "
        "if m in sys.modules])\n"
    )
    loading = (
        "from engine.store.checkpoint import load_checkpoint\n"
        f"print(type(load_checkpoint({str(tmp_path / 'ckpt')!r}).models['molingo']).__name__)\n"
    )
    for script, expected in ((networks, "[]"), (loading, "MoLingo")):
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             check=False)  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == expected
