"""Hostile checkpoint folders: every bad config is one clear error before anything is
allocated (sizes are checked against the safetensors headers' own shapes), non-finite or
integer weights are refused, and no file outside the folder is read."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from pipeline_fixtures import save_tiny_checkpoint
from safetensors.torch import load_file, save_file
from torch import nn

import engine.store.checkpoint as checkpoint_module
from engine.cli import main
from engine.config import Config
from engine.errors import MotionError
from engine.models.registry import register_model
from engine.store.checkpoint import load_checkpoint, save_checkpoint
from engine.store.weights import INDEX_FILE
from engine.text_encoder import TextEncoderConfig


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("limits") / "tiny")


@pytest.fixture
def folder(pristine: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "ckpt"))


@pytest.fixture
def nothing_allocated(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records any real model build or weight-data read (both must not happen)."""
    calls: list[str] = []
    real_build, real_read = checkpoint_module._build_model, checkpoint_module.read_weights

    def build(*args, **kwargs):
        calls.append("build")
        return real_build(*args, **kwargs)

    def read(*args, **kwargs):
        calls.append("read weights")
        return real_read(*args, **kwargs)

    monkeypatch.setattr(checkpoint_module, "_build_model", build)
    monkeypatch.setattr(checkpoint_module, "read_weights", read)
    return calls


def _edit(folder: Path, change: Callable[[dict], None]) -> None:
    path = folder / "config.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _mlagen(key: str, value) -> Callable[[dict], None]:
    return lambda data: data["models"]["mlagen"]["config"].__setitem__(key, value)


def _nested(depth: int) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        text = (folder / "config.json").read_text()
        deep = "[" * depth + "]" * depth
        (folder / "config.json").write_text(
            text.replace('"metadata": {', f'"metadata": {{"deep": {deep}, ', 1)
        )

    return write


BEYOND = "is larger than every dimension and the number of its stored tensors"
CONFIGS = {
    "width 10^9": (_mlagen("width", 10**9), f"config.width = 1000000000 {BEYOND}"),
    "width 10^5": (_mlagen("width", 10**5), f"config.width = 100000 {BEYOND}"),
    "width 8192": (_mlagen("width", 8192), f"config.width = 8192 {BEYOND}"),
    "width 64": (
        _mlagen("width", 64),
        r"has shape \(4, 32\), but the model built from config.json expects \(4, 64\)",
    ),
    "depth 10^6": (_mlagen("depth", 10**6), f"config.depth = 1000000 {BEYOND}"),
    "depth 90": (_mlagen("depth", 90), "more tensors than the weight files hold"),
    "width -4": (_mlagen("width", -4), "MLAGenConfig.width must be a positive whole number"),
    "heads 0": (_mlagen("heads", 0), "MLAGenConfig.heads must be a positive whole number"),
    "odd head width": (_mlagen("heads", 32), r"width / heads \(1\) must be even"),
    "mlp_ratio 1e300": (_mlagen("mlp_ratio", 1e300), "mlp_ratio must be a positive number"),
    "mean too short": (
        lambda d: (d.__setitem__("mean", d["mean"][:-1]), d.__setitem__("std", d["std"][:-1])),
        "mean and std have 262 values, but models.autoencoder works on 263 features",
    ),
    "std zero": (lambda d: d["std"].__setitem__(0, 0.0), "every std value must be positive"),
    "models a list": (lambda d: d.__setitem__("models", []), "models: expected an object"),
    "model config a list": (
        lambda d: d["models"]["mlagen"].__setitem__("config", []),
        "expected an object for MLAGenConfig, got list",
    ),
    "text encoder a list": (lambda d: d.__setitem__("text_encoder", []), "expected an object"),
    "metadata a list": (lambda d: d.__setitem__("metadata", []), "metadata: expected an object"),
    "sampling defaults a list": (
        lambda d: d["metadata"].__setitem__("sampling_defaults", []),
        "metadata.sampling_defaults must be an object",
    ),
    "max_frames 10^9": (
        lambda d: d["metadata"].__setitem__("max_frames", 10**9),
        "metadata.max_frames must be 1 to",
    ),
    "fps 10^9": (lambda d: d.__setitem__("fps", 10**9), "fps must be between 1 and 1000"),
}
RAW = {
    "deeply nested JSON": (_nested(200_000), "nested too deeply"),
    "NaN in mean": (
        lambda f: (f / "config.json").write_text(
            (f / "config.json").read_text().replace('"mean": [', '"mean": [NaN, ', 1)
        ),
        "NaN is not a number JSON allows",
    ),
    "1e999 in std": (
        lambda f: (f / "config.json").write_text(
            (f / "config.json").read_text().replace('"std": [', '"std": [1e999, ', 1)
        ),
        "number 1e999 is out of range",
    ),
}


@pytest.mark.parametrize("case", list(CONFIGS) + list(RAW))
def test_bad_configs_fail_before_any_allocation(folder, nothing_allocated, case):
    if case in CONFIGS:
        change, message = CONFIGS[case]
        _edit(folder, change)
    else:
        damage, message = RAW[case]
        damage(folder)
    with pytest.raises(MotionError, match=message) as info:
        load_checkpoint(folder)
    assert str(folder) in str(info.value) and "\n" not in str(info.value)
    assert nothing_allocated == []


def _rewrite_tensor(folder: Path, name: str, change: Callable[[torch.Tensor], torch.Tensor]):
    shard = folder / json.loads((folder / INDEX_FILE).read_text())["weight_map"][name]
    tensors = load_file(shard)
    tensors[name] = change(tensors[name])
    save_file(tensors, shard, metadata={"format": "pt"})
    return shard


def _poison(value: float) -> Callable[[torch.Tensor], torch.Tensor]:
    def change(tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        tensor.view(-1)[3] = value
        return tensor

    return change


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused(folder, value):
    shard = _rewrite_tensor(folder, "mlagen.final.weight", _poison(value))
    with pytest.raises(
        MotionError, match="tensor mlagen.final.weight holds NaN or infinite"
    ) as info:
        load_checkpoint(folder)
    assert str(shard) in str(info.value)


@pytest.mark.parametrize(
    ("dtype", "name"), [(torch.int64, "I64"), (torch.bool, "BOOL"), (torch.int8, "I8")]
)
def test_integer_or_bool_weights_where_floats_belong(folder, nothing_allocated, dtype, name):
    _rewrite_tensor(folder, "mlagen.x_embed.weight", lambda t: (t * 100).to(dtype))
    with pytest.raises(
        MotionError, match=f"mlagen.x_embed.weight is {name}, but the model needs floating-point"
    ):
        load_checkpoint(folder)
    assert nothing_allocated == []


def test_a_config_symlink_out_of_the_folder_is_refused(folder, tmp_path):
    outside = tmp_path / "elsewhere.json"
    shutil.move(folder / "config.json", outside)
    (folder / "config.json").symlink_to(outside)
    with pytest.raises(MotionError, match=f"config.json: is a link to {outside}, outside {folder}"):
        load_checkpoint(folder)


def test_a_shard_symlink_out_of_the_folder_is_refused(folder, tmp_path):
    shard = sorted(folder.glob("model-*.safetensors"))[0]
    outside = tmp_path / "elsewhere.safetensors"
    shutil.move(shard, outside)
    shard.symlink_to(outside)
    with pytest.raises(MotionError, match=f"{shard.name}: is a link to {outside}, outside"):
        load_checkpoint(folder)


@pytest.mark.parametrize("name", ["../x.safetensors", "/etc/x.safetensors", "sub/x.safetensors"])
def test_traversal_names_in_the_index_are_reported_as_such(folder, name):
    path = folder / INDEX_FILE
    index = json.loads(path.read_text())
    key = next(iter(index["weight_map"]))
    index["weight_map"][key] = name
    path.write_text(json.dumps(index))
    with pytest.raises(MotionError, match="not a file name inside the checkpoint folder") as info:
        load_checkpoint(folder)
    assert "missing" not in str(info.value)


def test_a_hub_cache_snapshot_with_blob_links_loads(pristine, tmp_path):
    """huggingface_hub's cache: snapshot files are links into the repo's blobs folder."""
    commit = "c" * 40
    repo = tmp_path / "models--someone--tiny"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for file in pristine.iterdir():
        blob = repo / "blobs" / f"blob-{file.name}"
        shutil.copy(file, blob)
        (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    loaded = load_checkpoint(snapshot)
    assert loaded.source.record() == {"repo_id": "someone/tiny", "revision": None, "commit": commit}
    reference = load_checkpoint(pristine)
    for key, value in reference.models["mlagen"].state_dict().items():
        assert torch.equal(loaded.models["mlagen"].state_dict()[key], value)


def test_the_cli_reports_a_bad_checkpoint_in_one_line_and_writes_nothing(folder, tmp_path, capsys):
    _edit(folder, _mlagen("depth", 90))
    out = tmp_path / "walk.npy"
    argv = ["generate", "a person walks", "--checkpoint", str(folder), "--out", str(out),
            "--device", "cpu", "--generator", "mlagen"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "more tensors than the weight files hold" in err
    assert len(err.splitlines()) == 1
    assert list(tmp_path.glob("walk*")) == []


@dataclasses.dataclass
class PeriodConfig(Config):
    width: int = 4
    period: int = 10_000  # not a size: larger than any stored dimension, and legitimate

    not_sizes = ("period",)


class PeriodNet(nn.Module):
    config_class = PeriodConfig

    def __init__(self, config: PeriodConfig):
        super().__init__()
        self.config = config
        self.proj = nn.Linear(config.width, config.width)


def test_fields_named_as_not_sizes_are_not_bounded_by_the_weights(tmp_path):
    kw = dict(text_encoder=TextEncoderConfig(), normalizer_mean=[0.0], normalizer_std=[1.0],
              fps=20, license="none", attribution="tests")  # fmt: skip
    register_model(PeriodConfig)(PeriodNet)
    folder = save_checkpoint(tmp_path / "ckpt", {"net": PeriodNet(PeriodConfig())}, **kw)
    assert load_checkpoint(folder).configs["net"].period == 10_000
    PeriodConfig.not_sizes = ()
    try:
        with pytest.raises(MotionError, match="config.period = 10000 is larger than every"):
            load_checkpoint(folder)
    finally:
        PeriodConfig.not_sizes = ("period",)
