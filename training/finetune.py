"""Fine-tuning: a run that starts from trained weights instead of a fresh initialisation.

    init_from = "default"                      # the shipped checkpoint (engine/checkpoints)
    init_from = "checkpoints/studio"           # any exported engine checkpoint folder
    init_from = "runs/sae"                     # or a training run (its newest EMA weights)

Every trainable model of the task (``autoencoder``, ``molingo``, ``mlagen``, ``evaluator``)
starts from the source's model of that name, with the source's architecture (``preset`` is
not used; ``model.*`` may only change what leaves the weights' shapes alone). A generator
without ``autoencoder`` uses the source's (frozen) autoencoder.

Normalisation. The models were trained on features normalised with the source's Mean/Std,
so by default the new data are normalised with those same statistics (the run folder's
``Mean.npy``/``Std.npy`` are the source's; the exported checkpoint keeps them). With
``renormalize = true`` an autoencoder run uses the new data set's own Mean/Std instead, and
its first and last layers are remapped to them (``engine.models.autoencoder.renormalize``:
the same motion in, the same motion out). A generator's data always follow its
autoencoder's statistics, whatever data set they come from.

Latent scale. Autoencoders of exported checkpoints and of generator runs already have their
latent scale folded in (``tasks/latent.py``), so a generator fine-tuned from such a source
keeps scale 1: the latent space its weights know. The scale measured on the new data is
logged, with a warning when it is far from 1 (an autoencoder that is not the source's).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from torch import nn

from engine.errors import MotionError
from engine.store.checkpoint import (
    CONFIG_FILE,
    FORMAT_NAME,
    load_checkpoint,
    read_checkpoint_config,
)
from engine.text_encoder import TextEncoderConfig

SHIPPED = "default"
"""``init_from = "default"``: the checkpoint shipped in ``engine/checkpoints/default``."""


@dataclasses.dataclass
class InitSource:
    """Trained models to start from, by the engine's names, and what they were trained with."""

    where: str
    models: dict[str, nn.Module]  # eval mode, CPU, float32
    mean: np.ndarray  # (263,) the normaliser the models were trained with
    std: np.ndarray  # (263,)
    text_encoder: TextEncoderConfig

    def model(self, name: str) -> nn.Module:
        """The source's model ``name``, or a ``MotionError`` naming what it holds."""
        if name not in self.models:
            raise MotionError(
                f"init_from {self.where}: holds no {name!r} model (it has {sorted(self.models)})"
            )
        return self.models[name]


def is_engine_checkpoint(folder: Path) -> bool:
    """True for a folder written by ``save_checkpoint`` (export, the shipped default)."""
    header = folder / CONFIG_FILE
    if not header.is_file():
        return False
    try:
        return json.loads(header.read_text(encoding="utf-8")).get("format") == FORMAT_NAME
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def load_init_source(source: str | Path) -> InitSource:
    """The models of an engine checkpoint folder or of a training run folder (EMA weights;
    a generator run brings its rescaled autoencoder, as export does)."""
    folder = Path(source)
    if str(source) == SHIPPED and not folder.is_dir():
        from engine.pipeline import DEFAULT_CHECKPOINT

        folder = DEFAULT_CHECKPOINT
    if not folder.is_dir():
        raise MotionError(f"init_from {source}: no such folder (an exported checkpoint or a run)")
    if is_engine_checkpoint(folder):
        ckpt = load_checkpoint(folder)
        models = {k: m.float().eval() for k, m in ckpt.models.items()}
        return InitSource(str(source), models, ckpt.mean, ckpt.std, ckpt.text_encoder)
    from training.export import load_run_models  # export imports the tasks
    from training.tasks import get_task

    run = load_run_models(folder)
    task = get_task(run.config)
    task.load_run(folder)
    models = {k: m.float().eval() for k, m in task.export_models(run.models).items()}
    return InitSource(str(source), models, run.mean, run.std, run.config.text_encoder)


def check_text_encoder(init: InitSource, config: TextEncoderConfig) -> None:
    """Generators and the SAE head were trained against one text encoder: keep it."""
    keys = ("name", "kind", "max_tokens", "null_prompt")
    theirs = {k: getattr(init.text_encoder, k) for k in keys}
    ours = {k: getattr(config, k) for k in keys}
    if Path(str(theirs["name"])).name == Path(str(ours["name"])).name:
        theirs["name"] = ours["name"]  # a local folder named the same, resolved elsewhere
    if theirs != ours:
        fix = " ".join(f"text_encoder.{k}={v!r}" for k, v in theirs.items() if ours[k] != v)
        raise MotionError(
            f"init_from {init.where}: trained with text encoder {theirs}, this run asks for "
            f"{ours}; set {fix}"
        )


def load_init_weights(models: Mapping[str, nn.Module], init: InitSource) -> None:
    """Copy the source's weights into the freshly built ``models`` (same names)."""
    for name, model in models.items():
        source = init.model(name)
        if type(source) is not type(model):
            raise MotionError(
                f"init_from {init.where}: its {name!r} is a {type(source).__name__}, this task "
                f"trains a {type(model).__name__}"
            )
        mine, theirs = model.state_dict(), source.state_dict()
        wrong = [k for k in mine if k not in theirs or theirs[k].shape != mine[k].shape]
        if wrong or len(mine) != len(theirs):
            raise MotionError(
                f"init_from {init.where}: {name!r} has other shapes than this run's model "
                f"(first: {wrong[:3]}); leave model.* settings that change sizes unset"
            )
        model.load_state_dict(theirs)


def source_config(init: InitSource | None, name: str):
    """The architecture (model config) of the source's model ``name``, or None."""
    return None if init is None else getattr(init.model(name), "config", None)


def source_terms(source: str | Path) -> list[dict[str, str]]:
    """The licences and attributions weights from ``source`` carry: an engine checkpoint's
    own, or a run's data terms (``data.json``) plus what that run inherited in turn. A model
    fine-tuned from the shipped checkpoint derives from the Bandai Namco data (CC BY-NC), so
    its export must say so whatever the new data's terms are."""
    folder = Path(source)
    if str(source) == SHIPPED and not folder.is_dir():
        from engine.pipeline import DEFAULT_CHECKPOINT

        folder = DEFAULT_CHECKPOINT
    if is_engine_checkpoint(folder):
        header = read_checkpoint_config(folder)
        return [{"source": str(source), "license": header.license,
                 "attribution": header.attribution}]  # fmt: skip
    record_path = folder / "data.json"
    if not record_path.is_file():
        return []
    record = json.loads(record_path.read_text(encoding="utf-8"))
    own = {"source": str(source), "license": record.get("license", ""),
           "attribution": record.get("attribution", "")}  # fmt: skip
    return unique_terms([own, *record.get("inherited", [])])


def unique_terms(terms: list[dict[str, str]]) -> list[dict[str, str]]:
    """``terms`` without empty entries and without repeats of one licence and attribution."""
    seen, out = set(), []
    for entry in terms:
        key = (entry.get("license", ""), entry.get("attribution", ""))
        if any(key) and key not in seen:
            seen.add(key)
            out.append(entry)
    return out
