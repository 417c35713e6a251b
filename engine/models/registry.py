"""The model classes a checkpoint can name, by class name.

A model class makes itself loadable with one line, ``@register_model(ItsConfig)``; this
module imports nothing but torch's ``nn`` and the config base, so a network module can
register itself without pulling in safetensors or the Hub code (``engine.store.checkpoint``
imports this registry, never the other way round).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..config import Config

MODEL_REGISTRY: dict[str, type[nn.Module]] = {}


def register_model(config_class: type[Config]) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator making a model loadable from checkpoints by its class name.

    The class must be built as ``cls(config)`` and keep the config as ``self.config``.
    """

    def decorate(cls: type[nn.Module]) -> type[nn.Module]:
        known = MODEL_REGISTRY.get(cls.__name__)
        if known is not None and known.__qualname__ + known.__module__ != (
            cls.__qualname__ + cls.__module__
        ):
            raise ValueError(f"two model classes named {cls.__name__}: {known} and {cls}")
        cls.config_class = config_class
        MODEL_REGISTRY[cls.__name__] = cls
        return cls

    return decorate


def registered_models() -> dict[str, type[nn.Module]]:
    """Every registered class, the engine's own networks included (imported here, so a
    checkpoint loads without its caller importing its model modules first)."""
    from . import autoencoder, mlagen, molingo, molingo_release  # noqa: F401  (they register)

    return dict(MODEL_REGISTRY)
