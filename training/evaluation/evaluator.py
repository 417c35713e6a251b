"""The project's contrastive text-motion evaluator: motions and captions in one joint space.

The public evaluators (Guo et al.'s text_mot_match, MARDM's, TMR) have no weights here, so we
train our own on the same split (SPEC 4). Two towers meet in an L2-normalised ``embed_dim``
space:

- motion: the 263 normalised features, grouped into patches of ``patch`` frames (one token per
  latent step of the autoencoder), a small transformer with a padding mask, masked mean
  pooling, a linear head;
- text: the frozen text encoder's tokens through a small transformer with the token mask,
  masked mean pooling plus a projection of the encoder's pooled vector, a linear head.

Trained with symmetric InfoNCE (``info_nce_loss``). Because embeddings are unit vectors, the
Euclidean distances the metrics use rank pairs exactly as the cosine the loss trains, and
every distance lies in [0, 2].

Saved as an engine checkpoint folder (config.json + safetensors) holding one model named
``"evaluator"`` together with the text encoder config and the data set's Mean/Std: the
evaluator reads features normalised with *its* statistics, whatever the generator used.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.config import Config
from engine.errors import MotionError
from engine.models.registry import register_model
from engine.motion.features import FEATURE_DIM, Normalizer
from engine.store.checkpoint import load_checkpoint, save_checkpoint
from engine.text_encoder import TextEncoder, TextEncoderConfig, TextEncoding, load_text_encoder

MODEL_NAME = "evaluator"
MAX_LOGIT_SCALE = 100.0  # temperature never below 0.01 (CLIP's clamp): keeps the loss stable


@dataclasses.dataclass
class EvaluatorConfig(Config):
    """Sizes of the text-motion evaluator; saved whole in its checkpoint."""

    feature_dim: int = FEATURE_DIM  # per-frame features (HumanML3D's 263)
    text_dim: int = 384  # width of the frozen text encoder's outputs (MiniLM: 384)
    patch: int = 4  # frames per motion token: one token per autoencoder latent step
    max_frames: int = 200  # longest motion the positional table covers (HumanML3D: 196)
    max_text_tokens: int = 128  # longest token sequence of the text encoder
    width: int = 256  # transformer width of both towers
    heads: int = 4
    motion_layers: int = 4
    text_layers: int = 2
    ffn_mult: int = 4  # feed-forward width = ffn_mult * width
    dropout: float = 0.1
    embed_dim: int = 512  # the joint space the metrics measure in
    temperature: float = 0.1  # InfoNCE temperature at the start of training
    learn_temperature: bool = True  # else fixed at ``temperature``

    def __post_init__(self) -> None:
        if self.width % self.heads:
            raise MotionError(f"EvaluatorConfig: width {self.width} must divide by heads")
        if min(self.patch, self.max_frames, self.embed_dim, self.motion_layers) < 1:
            raise MotionError("EvaluatorConfig: patch, max_frames, embed_dim, layers must be >= 1")
        if not 1.0 / MAX_LOGIT_SCALE <= self.temperature <= 1.0:
            raise MotionError(
                f"EvaluatorConfig: temperature must be in [0.01, 1], got {self.temperature}"
            )

    @classmethod
    def tiny(cls) -> EvaluatorConfig:
        """For unit tests: milliseconds per batch on a CPU."""
        return cls(width=32, heads=2, motion_layers=1, text_layers=1, embed_dim=16, dropout=0.0)

    @classmethod
    def small(cls) -> EvaluatorConfig:
        """The default: 5.5 M trainable parameters."""
        return cls()

    @classmethod
    def base(cls) -> EvaluatorConfig:
        return cls(width=512, heads=8, motion_layers=6, text_layers=3)

    @classmethod
    def large(cls) -> EvaluatorConfig:
        return cls(width=768, heads=12, motion_layers=8, text_layers=4, embed_dim=768)


def _encoder(config: EvaluatorConfig, layers: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        config.width, config.heads, config.ffn_mult * config.width, config.dropout,
        activation="gelu", batch_first=True, norm_first=True,
    )  # fmt: skip
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


def masked_mean(x: Tensor, keep: Tensor) -> Tensor:
    """Mean of ``x`` (B, N, D) over the positions where ``keep`` (B, N) is True -> (B, D)."""
    weight = keep.to(x.dtype).unsqueeze(-1)  # (B, N, 1)
    return (x * weight).sum(1) / weight.sum(1).clamp_min(1.0)


class EvaluatorOutput(NamedTuple):
    """Unit-vector embeddings of a batch of pairs and the InfoNCE logit scale."""

    motion: Tensor  # (B, E)
    text: Tensor  # (B, E)
    logit_scale: Tensor  # () = 1 / temperature


@register_model(EvaluatorConfig)
class TextMotionEvaluator(nn.Module):
    """Two towers mapping motions and encoded captions to unit vectors of ``embed_dim``."""

    def __init__(self, config: EvaluatorConfig):
        super().__init__()
        self.config = config
        c = config
        tokens = math.ceil(c.max_frames / c.patch)
        self.motion_in = nn.Linear(c.feature_dim * c.patch, c.width)
        self.motion_pos = nn.Parameter(torch.randn(tokens, c.width) * 0.02)
        self.motion_encoder = _encoder(c, c.motion_layers)
        self.motion_head = nn.Sequential(nn.LayerNorm(c.width), nn.Linear(c.width, c.embed_dim))
        self.text_in = nn.Linear(c.text_dim, c.width)
        self.text_pos = nn.Parameter(torch.randn(c.max_text_tokens, c.width) * 0.02)
        self.text_pooled = nn.Linear(c.text_dim, c.width)
        self.text_encoder = _encoder(c, c.text_layers)
        self.text_head = nn.Sequential(nn.LayerNorm(c.width), nn.Linear(c.width, c.embed_dim))
        scale = torch.tensor(math.log(1.0 / c.temperature))
        if c.learn_temperature:
            self.log_scale = nn.Parameter(scale)
        else:
            self.register_buffer("log_scale", scale)

    @property
    def logit_scale(self) -> Tensor:
        """1 / temperature, clamped to at most ``MAX_LOGIT_SCALE``."""
        return self.log_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    def encode_motion(self, features: Tensor, frame_mask: Tensor) -> Tensor:
        """Normalised features (B, F, D) and frame_mask (B, F) True = real -> (B, embed_dim).

        F need not divide by ``patch``: the last token is padded; a token counts as real when
        any of its frames is.
        """
        b, f, d = features.shape
        c = self.config
        if d != c.feature_dim or frame_mask.shape != (b, f):
            raise MotionError(
                f"evaluator: features {tuple(features.shape)} / mask {tuple(frame_mask.shape)} "
                f"do not fit {c.feature_dim}-dim features"
            )
        if f > c.max_frames:
            raise MotionError(f"evaluator: {f} frames exceed its max_frames {c.max_frames}")
        pad = (-f) % c.patch
        x = F.pad(features * frame_mask.unsqueeze(-1), (0, 0, 0, pad))  # (B, F', D)
        keep = F.pad(frame_mask, (0, pad)).view(b, -1, c.patch).any(-1)  # (B, N)
        x = x.reshape(b, keep.shape[1], c.patch * d)  # (B, N, patch * D)
        h = self.motion_in(x) + self.motion_pos[: keep.shape[1]]  # (B, N, W)
        h = self.motion_encoder(h, src_key_padding_mask=~keep)
        return F.normalize(self.motion_head(masked_mean(h, keep)), dim=-1)

    def encode_text(self, text: TextEncoding) -> Tensor:
        """Frozen-encoder output (tokens (B, L, text_dim), mask, pooled) -> (B, embed_dim)."""
        length = text.tokens.shape[1]
        if length > self.config.max_text_tokens or text.tokens.shape[2] != self.config.text_dim:
            raise MotionError(
                f"evaluator: text tokens {tuple(text.tokens.shape)} do not fit text_dim "
                f"{self.config.text_dim} / max_text_tokens {self.config.max_text_tokens}"
            )
        h = self.text_in(text.tokens) + self.text_pos[:length]  # (B, L, W)
        h = self.text_encoder(h, src_key_padding_mask=~text.mask)
        h = masked_mean(h, text.mask) + self.text_pooled(text.pooled)  # (B, W)
        return F.normalize(self.text_head(h), dim=-1)

    def forward(self, features: Tensor, frame_mask: Tensor, text: TextEncoding) -> EvaluatorOutput:
        """Both towers and the logit scale, all through ``forward`` so that a DDP wrapper
        sees every trainable parameter used (the temperature included)."""
        motion = self.encode_motion(features, frame_mask)
        return EvaluatorOutput(motion, self.encode_text(text), self.logit_scale)


def duplicate_mask(captions: Sequence[str], device: torch.device | str = "cpu") -> Tensor:
    """(B, B) bool, True where two *different* items carry the same caption.

    Such pairs are not negatives (the motion does match that text), so InfoNCE leaves them out.
    """
    codes = {caption: i for i, caption in enumerate(dict.fromkeys(captions))}
    ids = torch.tensor([codes[c] for c in captions], device=device)
    same = ids[:, None] == ids[None, :]
    return same & ~torch.eye(len(captions), dtype=torch.bool, device=device)


def info_nce_loss(
    motion: Tensor, text: Tensor, logit_scale: Tensor, captions: Sequence[str]
) -> tuple[Tensor, dict[str, float]]:
    """Symmetric InfoNCE over a batch of matching (motion i, text i) pairs.

    ``motion``, ``text`` (B, E) unit vectors; logits = scale * cosine; duplicate captions
    are masked out of both directions. Returns the loss and logs (loss, text->motion top-1
    accuracy, temperature).
    """
    logits = logit_scale * text @ motion.T  # (B, B) rows: texts, columns: motions
    logits = logits.masked_fill(duplicate_mask(captions, logits.device), float("-inf"))
    target = torch.arange(len(captions), device=logits.device)
    loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    accuracy = (logits.argmax(dim=1) == target).float().mean()
    logs = {
        "loss": float(loss.detach()),
        "accuracy": float(accuracy),
        "temperature": float(1.0 / logit_scale.detach()),
    }
    return loss, logs


# ---- saving and loading --------------------------------------------------------------------


def save_evaluator(
    folder: str | Path,
    model: TextMotionEvaluator,
    *,
    text_encoder: TextEncoderConfig,
    normalizer: Normalizer,
    fps: int = 20,
    license: str,
    attribution: str,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write the evaluator as an engine checkpoint folder with one model, ``"evaluator"``."""
    return save_checkpoint(
        folder, {MODEL_NAME: model}, text_encoder=text_encoder,
        normalizer_mean=normalizer.mean, normalizer_std=normalizer.std, fps=fps,
        license=license, attribution=attribution, metadata=metadata,
    )  # fmt: skip


@dataclasses.dataclass
class Evaluator:
    """A loaded evaluator ready to embed: the model, its text encoder and its statistics.

    Implements the embedder interface ``run.evaluate`` uses (shared with ``t2m.T2MEvaluator``):
    ``normalizer``, ``embed_text(captions)``, ``embed_motion(features, lengths)``.
    """

    model: TextMotionEvaluator
    text_encoder: TextEncoder
    normalizer: Normalizer
    path: Path
    name: str = "kinetext"

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def embed_text(self, captions: Sequence[str]) -> np.ndarray:
        """Captions -> (B, E) float32 unit vectors."""
        text = self.text_encoder.encode(list(captions)).to(self.device)
        return self.model.encode_text(text).float().cpu().numpy()

    @torch.no_grad()
    def embed_motion(self, features: np.ndarray | Tensor, lengths: Sequence[int]) -> np.ndarray:
        """Features (B, F, 263) normalised with ``self.normalizer``, valid ``lengths`` (B,)
        frames -> (B, E) float32 unit vectors."""
        x = torch.as_tensor(features, dtype=torch.float32, device=self.device)
        n = torch.as_tensor(list(lengths), device=self.device)
        mask = torch.arange(x.shape[1], device=self.device)[None, :] < n[:, None]  # (B, F)
        return self.model.encode_motion(x, mask).float().cpu().numpy()


def load_evaluator(
    path: str | Path,
    device: str | torch.device = "cpu",
    *,
    text_encoder: TextEncoder | None = None,
) -> Evaluator:
    """Load a folder written by ``save_evaluator`` (or the trainer's export) onto ``device``.

    ``text_encoder`` replaces the encoder the checkpoint names (one already loaded, or a
    stand-in in tests); its width must match the evaluator's.
    """
    ckpt = load_checkpoint(
        path, device=device, model_classes={TextMotionEvaluator.__name__: TextMotionEvaluator}
    )
    model = ckpt.models.get(MODEL_NAME)
    if not isinstance(model, TextMotionEvaluator):
        raise MotionError(
            f"{ckpt.path}: not an evaluator checkpoint (models {sorted(ckpt.models)}; "
            f"expected one {TextMotionEvaluator.__name__} named {MODEL_NAME!r})"
        )
    encoder = text_encoder or load_text_encoder(ckpt.text_encoder, device)
    if encoder.dim != model.config.text_dim:
        raise MotionError(
            f"{ckpt.path}: evaluator expects {model.config.text_dim}-dim text features but "
            f"{ckpt.text_encoder.name!r} gives {encoder.dim}"
        )
    return Evaluator(model, encoder, Normalizer(ckpt.mean, ckpt.std), ckpt.path)
