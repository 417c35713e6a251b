"""Causal convolutional motion autoencoder (MoLingo's VAE / SAE, SPEC 3.1).

Maps normalised HumanML3D features (B, F, 263) to a short sequence of continuous latents
(B, F / 4, 16) and back. Every convolution is padded on the left only, so the model is
causal at the granularity of one latent step: latent n sees frames up to 4n + 3 (the end
of its own window) and never later ones, and output frames 4n .. 4n + 3 are decoded from
latents 0 .. n only. Changing frame t therefore leaves every latent and every output frame
of the blocks before t's block unchanged; this lets a clip be extended without touching
what was already generated.

No normalisation layers (the reference has none: batch statistics would leak across
clips and time). The semantic head projects latents into the text encoder's space for the
SAE's semantic-alignment loss (computed in ``training/``).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import Config, check_sizes
from ..errors import MotionError
from .registry import register_model

LOGVAR_RANGE = (-30.0, 20.0)  # clamp of the VAE's log-variance (reference value)
PADDINGS = ("zero", "replicate")
ACTIVATIONS = {"silu": F.silu, "relu": F.relu, "gelu": F.gelu}


@dataclass
class AutoencoderConfig(Config):
    """Sizes of the motion autoencoder; saved whole in the checkpoint."""

    feature_dim: int = 263  # HumanML3D features per frame
    width: int = 256  # channels of every conv layer (paper: 1024)
    depth: int = 3  # ResNet blocks per down/up stage
    dilation_growth: int = 3  # dilations 1, 3, 9 inside a stage: wide context, few layers
    down_t: int = 2  # number of x2 temporal down stages: 2 -> 4x (paper's best)
    latent_dim: int = 16  # latent channels per step (paper: more dims hurt)
    variational: bool = True  # VAE (mean, logvar) or plain deterministic AE
    text_dim: int = 384  # width of the text encoder the semantic head aligns to
    semantic_hidden: int = 256  # hidden width of the semantic projection head
    # Options for the published MoLingo SAEs (engine.store.molingo_release); the defaults are the
    # layout every kinetext checkpoint was trained with.
    padding: str = "zero"  # left padding of every causal conv: "zero" or "replicate"
    activation: str = "silu"  # inside the residual blocks: "silu", "relu" or "gelu"
    encoder_dilations_reversed: bool = False  # encoder blocks 9, 3, 1 (the release's order)
    latent_projection: bool = False  # encoder ends conv(width) -> Linear(width, out)
    semantic_head: bool = True  # False: no SAE text head (a release ships none)
    encoder_input_padding: str | None = None  # the encoder's first conv (None: ``padding``)

    def __post_init__(self) -> None:
        check_sizes(
            self, positive=("feature_dim", "width", "dilation_growth", "latent_dim", "text_dim",
                            "semantic_hidden"),
            non_negative=("depth", "down_t"),
        )  # fmt: skip
        for padding in (self.padding, self.encoder_input_padding):
            if padding is not None and padding not in PADDINGS:
                raise MotionError(
                    f"AutoencoderConfig: padding {padding!r} is not one of {PADDINGS}"
                )
        if self.activation not in ACTIVATIONS:
            raise MotionError(
                f"AutoencoderConfig.activation {self.activation!r} is not one of "
                f"{sorted(ACTIVATIONS)}"
            )
        if not self.semantic_head:  # no head: its widths size no tensor of this model
            self.not_sizes = (*type(self).not_sizes, "text_dim", "semantic_hidden")

    @classmethod
    def tiny(cls) -> AutoencoderConfig:
        """For unit tests: seconds on a CPU."""
        return cls(width=32, depth=2, text_dim=32, semantic_hidden=32)

    @classmethod
    def small(cls) -> AutoencoderConfig:
        """The shipped size: 4.8 M parameters, of which the decoder (all that generation
        needs) is 2.4 M."""
        return cls()

    @classmethod
    def base(cls) -> AutoencoderConfig:
        """Between shipped and paper size, for a longer training run."""
        return cls(width=512)

    @classmethod
    def large(cls) -> AutoencoderConfig:
        """Paper size (width 1024): 70.4 M parameters (the paper quotes about 73 M)."""
        return cls(width=1024, semantic_hidden=1024)


@dataclass
class LatentDistribution:
    """The encoder's output: a diagonal Gaussian per latent step (or a point for a plain AE).

    mean, logvar: (B, N, C); ``logvar`` is None for a plain autoencoder.
    """

    mean: Tensor
    logvar: Tensor | None = None

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """Reparameterised draw ``mean + std * eps`` (the mean itself for a plain AE)."""
        if self.logvar is None:
            return self.mean
        eps = torch.randn(
            self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype
        )
        return self.mean + torch.exp(0.5 * self.logvar) * eps

    def kl(self) -> Tensor:
        """Elementwise KL to the standard normal (B, N, C); zeros for a plain AE."""
        if self.logvar is None:
            return torch.zeros_like(self.mean)
        return 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar)


class CausalConv1d(nn.Conv1d):
    """Conv1d on (B, C, T) padded on the left only, so output t sees inputs <= t.

    For a strided conv the left padding is ``dilation * (kernel - 1) + 1 - stride``: output
    j then covers inputs up to ``stride * j + stride - 1``, the last frame of its own
    window, and a length divisible by the stride shrinks exactly by the stride.
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        stride: int = 1,
        dilation: int = 1,
        padding: str = "zero",
    ):
        super().__init__(cin, cout, kernel, stride=stride, dilation=dilation)
        self.left_pad = dilation * (kernel - 1) + 1 - stride
        self.pad_mode = "constant" if padding == "zero" else padding

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.pad(x, (self.left_pad, 0), mode=self.pad_mode))


class ResBlock(nn.Module):
    """x + conv1x1(act(dilated causal conv3(act(x)))): a residual unit of the stacks."""

    def __init__(self, width: int, dilation: int, padding: str = "zero", activation: str = "silu"):
        super().__init__()
        self.conv1 = CausalConv1d(width, width, 3, dilation=dilation, padding=padding)
        self.conv2 = nn.Conv1d(width, width, 1)
        self.act = ACTIVATIONS[activation]

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.act(self.conv1(self.act(x))))


def resnet_stack(
    width: int,
    depth: int,
    growth: int,
    reverse: bool = False,
    padding: str = "zero",
    activation: str = "silu",
) -> nn.Sequential:
    """``depth`` ResBlocks with dilations growth**0, growth**1, ... (reversed in the decoder)."""
    dilations = [growth**i for i in range(depth)]
    if reverse:
        dilations = dilations[::-1]
    return nn.Sequential(*(ResBlock(width, d, padding, activation) for d in dilations))


class CausalEncoder(nn.Module):
    """(B, D, F) -> (B, out, F / 2**down_t)."""

    def __init__(self, cfg: AutoencoderConfig, out_dim: int):
        super().__init__()
        w, pad = cfg.width, cfg.padding
        reverse = cfg.encoder_dilations_reversed
        first = cfg.encoder_input_padding or pad
        layers: list[nn.Module] = [CausalConv1d(cfg.feature_dim, w, 3, padding=first), nn.SiLU()]
        for _ in range(cfg.down_t):
            layers.append(CausalConv1d(w, w, 4, stride=2, padding=pad))
            layers.append(
                resnet_stack(w, cfg.depth, cfg.dilation_growth, reverse, pad, cfg.activation)
            )
        layers.append(CausalConv1d(w, w if cfg.latent_projection else out_dim, 3, padding=pad))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class CausalDecoder(nn.Module):
    """(B, latent, N) -> (B, D, N * 2**down_t); nearest x2 upsampling keeps it causal."""

    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        w, pad = cfg.width, cfg.padding
        layers: list[nn.Module] = [CausalConv1d(cfg.latent_dim, w, 3, padding=pad), nn.SiLU()]
        for _ in range(cfg.down_t):
            layers.append(
                resnet_stack(w, cfg.depth, cfg.dilation_growth, True, pad, cfg.activation)
            )
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            layers.append(CausalConv1d(w, w, 3, padding=pad))
        layers += [
            CausalConv1d(w, w, 3, padding=pad),
            nn.SiLU(),
            CausalConv1d(w, cfg.feature_dim, 3, padding=pad),
        ]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


@register_model(AutoencoderConfig)
class MotionAutoencoder(nn.Module):
    """Causal conv VAE/AE between normalised features (B, F, 263) and latents (B, F/4, 16)."""

    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        self.config = cfg
        out = 2 * cfg.latent_dim if cfg.variational else cfg.latent_dim
        self.encoder = CausalEncoder(cfg, out)
        # The release's encoder maps its last conv's width to (mean, logvar) by a Linear.
        self.latent_proj = nn.Linear(cfg.width, out) if cfg.latent_projection else None
        self.decoder = CausalDecoder(cfg)
        # SAE head: latent -> text space; used only by the semantic-alignment loss.
        self.semantic_head = None
        if cfg.semantic_head:
            self.semantic_head = nn.Sequential(
                nn.Linear(cfg.latent_dim, cfg.semantic_hidden),
                nn.SiLU(),
                nn.Linear(cfg.semantic_hidden, cfg.text_dim),
            )

    @property
    def downsample(self) -> int:
        """Feature frames per latent step (4 by default)."""
        return 2**self.config.down_t

    def encode(self, x: Tensor) -> LatentDistribution:
        """x (B, F, feature_dim), F a multiple of ``downsample`` -> latents (B, F/down, C)."""
        if x.dim() != 3 or x.shape[-1] != self.config.feature_dim:
            raise MotionError(
                f"autoencoder input must be (batch, frames, {self.config.feature_dim}), "
                f"got {tuple(x.shape)}"
            )
        if x.shape[1] == 0 or x.shape[1] % self.downsample:
            raise MotionError(
                f"autoencoder input has {x.shape[1]} frames; "
                f"expected a positive multiple of {self.downsample}"
            )
        h = self.encoder(x.transpose(1, 2)).transpose(1, 2)  # (B, N, out or width)
        if self.latent_proj is not None:
            h = self.latent_proj(h)  # (B, N, out)
        if not self.config.variational:
            return LatentDistribution(h)
        mean, logvar = h.chunk(2, dim=-1)
        return LatentDistribution(mean, logvar.clamp(*LOGVAR_RANGE))

    def decode(self, z: Tensor) -> Tensor:
        """z (B, N, latent_dim) -> features (B, N * downsample, feature_dim)."""
        if z.dim() != 3 or z.shape[-1] != self.config.latent_dim:
            raise MotionError(
                f"latents must be (batch, steps, {self.config.latent_dim}), got {tuple(z.shape)}"
            )
        return self.decoder(z.transpose(1, 2)).transpose(1, 2)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Reconstruction (B, F, feature_dim).

        A VAE samples its latents in training mode (with ``generator``) and decodes the
        mean in eval mode, so evaluation is deterministic.
        """
        dist = self.encode(x)
        z = dist.sample(generator) if self.training else dist.mean
        return self.decode(z)


def rescale_latents(model: MotionAutoencoder, scale: float) -> MotionAutoencoder:
    """A copy of ``model`` whose latent space is the original's divided by ``scale``.

    encode'(x).mean = encode(x).mean / s, logvar' = logvar - 2 ln s (same clamp),
    decode'(z) = decode(s z), semantic_head'(z) = semantic_head(s z): the first layer that
    reads a latent is linear in it, and the last encoder layer writes it linearly. Trainers
    fold their latent scale in this way; the MoLingo converter folds a release's
    ``std_factor`` (its generator samples ``std_factor`` times the SAE's latents).
    """
    if not (scale > 0 and math.isfinite(scale)):
        raise MotionError(f"latent scale must be positive and finite, got {scale}")
    out = copy.deepcopy(model)
    c = out.config.latent_dim
    with torch.no_grad():
        last = out.latent_proj if out.latent_proj is not None else out.encoder.net[-1]
        last.weight[:c] /= scale  # the layer writing (mean, logvar) channels
        last.bias[:c] /= scale
        if out.config.variational:
            last.bias[c:] -= 2.0 * math.log(scale)
        out.decoder.net[0].weight *= scale  # conv reading z
        if out.semantic_head is not None:
            out.semantic_head[0].weight *= scale  # linear reading z
    return out


def renormalize(
    model: MotionAutoencoder,
    old: tuple[Tensor | np.ndarray, Tensor | np.ndarray],
    new: tuple[Tensor | np.ndarray, Tensor | np.ndarray],
) -> MotionAutoencoder:
    """A copy of ``model`` that reads and writes features normalised with ``new`` (mean, std)
    instead of the ``old`` statistics it was trained with, computing the same motion.

    With x_old = (x - m0) / s0 and x_new = (x - m1) / s1, x_old = x_new * s1 / s0 +
    (m1 - m0) / s0: the first encoder conv takes that affine map into its weights (scaled per
    input channel) and bias (the weights' sums times the shift). The last decoder conv writes
    x_old; x_new = x_old * s0 / s1 + (m0 - m1) / s1 is folded the same way into its output
    rows. The decoder is exact; the encoder is exact wherever its kernel sees real frames
    (with zero padding, the two padded frames before a clip's start read as the new zero
    rather than the old one, so the first latent step shifts slightly; replicate padding is
    exact). This lets a model trained on one data set (the shipped Bandai autoencoder)
    continue on another with that data set's own Mean/Std (``renormalize = true``).
    """
    device = model.encoder.net[0].weight.device
    m0, s0, m1, s1 = (
        torch.as_tensor(v).to(device=device, dtype=torch.float64).flatten() for v in (*old, *new)
    )
    dim = model.config.feature_dim
    if not all(v.shape == (dim,) for v in (m0, s0, m1, s1)):
        raise MotionError(f"renormalize: mean and std must each have {dim} values")
    if not (bool((s0 > 0).all()) and bool((s1 > 0).all())):
        raise MotionError("renormalize: std values must be positive")
    out = copy.deepcopy(model)
    first, last = out.encoder.net[0], out.decoder.net[-1]
    with torch.no_grad():
        scale_in, shift_in = s1 / s0, (m1 - m0) / s0  # x_old = x_new * scale_in + shift_in
        weight = first.weight.double()  # (width, dim, kernel)
        first.bias += (weight * shift_in[None, :, None]).sum((1, 2)).to(first.bias)
        first.weight.copy_(weight * scale_in[None, :, None])
        scale_out, shift_out = s0 / s1, (m0 - m1) / s1  # x_new = x_old * scale_out + shift_out
        last.weight.copy_(last.weight.double() * scale_out[:, None, None])
        last.bias.copy_(last.bias.double() * scale_out + shift_out)
    return out
