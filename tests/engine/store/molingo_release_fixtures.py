"""Tiny MoLingo releases written in the published format, for the converter's tests.

The key names, nesting and shapes are those of the authors' checkpoints (their VAE under
``state_dict`` with a ``module.`` prefix; the generator's ``model``/``model_ema`` keyed by
parameter name, T5 weights under ``t5_model.``), spelled out here on their own so that a
mistake in the converter's mapping cannot cancel out against the same mistake in a
fixture. The weights are random and non-zero; the tokenizer is a word-level one built from
a small vocabulary, saved as a transformers folder (no network needed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

WORDS = ("a person walks forward and then turns around sits down on chair jumps kicks "
         "this is null prompt with no semantic meaning . waves hand runs").split()  # fmt: skip

SAE_OPTIONS: dict[str, Any] = {
    "activation": "silu", "ae": False, "batch_size": 32, "checkpoints_dir": "mogen/checkpoints",
    "dataset_name": "t2m", "depth": 2, "dilation_growth_rate": 3, "down_t": 2, "exp_name": "t2m",
    "kl_ratio": 1e-05, "loss_type": "l2", "lr": 5e-05, "name": "sae_l2_4_16_32_d2",
    "norm": "None", "output_emb_width": 16, "pad_mode": "zero", "stride_t": 2, "width": 32,
}  # fmt: skip
MODEL_OPTIONS: dict[str, Any] = {
    "aligner_layers": 2, "batch_size": 64, "cfg": 4.0, "checkpoints_dir": "mogen/checkpoints",
    "dataset_name": "t2m", "model_size": "tiny", "std_factor": 1.0, "t5_max_len": 64,
    "vae": "sae_l2_4_16_32_d2",
}  # fmt: skip
TINY = {"width": 256, "depth": 4, "heads": 4, "mlp": 512, "head_width": 256, "head_depth": 2}
# The published models' size (model_size "large"), for speed measurements with random weights.
LARGE = {"width": 1024, "depth": 16, "heads": 16, "mlp": 4096, "head_width": 1280,
         "head_depth": 8}  # fmt: skip


def write_opt(path: Path, options: dict[str, Any]) -> None:
    """``opt.txt`` as the authors' option parsers write it (sorted ``key: value`` lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["------------ Options -------------"]
    lines += [f"{key}: {value}" for key, value in sorted(options.items())]
    lines.append("-------------- End ----------------")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _random(shape: tuple[int, ...], generator: torch.Generator, scale: float = 0.1) -> Tensor:
    return torch.randn(shape, generator=generator) * scale


def sae_state(options: dict[str, Any], dim: int, seed: int = 0) -> dict[str, Tensor]:
    """The release VAE's ``state_dict`` (with ``module.``) for ``options`` (opt.txt values)."""
    g = torch.Generator().manual_seed(seed)
    w, c, depth, down = (options[k] for k in ("width", "output_emb_width", "depth", "down_t"))
    out = c if options.get("ae") else 2 * c
    shapes: dict[str, tuple[int, ...]] = {
        "encoder.model.0.conv.weight": (w, dim, 3), "encoder.model.0.conv.bias": (w,),
    }  # fmt: skip
    for i in range(down):
        shapes[f"encoder.model.{2 + i}.0.conv.weight"] = (w, w, 4)
        shapes[f"encoder.model.{2 + i}.0.conv.bias"] = (w,)
        for j in range(depth):
            block = f"encoder.model.{2 + i}.1.model.{j}"
            shapes.update(_res_block(block, w))
    shapes[f"encoder.model.{2 + down}.conv.weight"] = (w, w, 3)
    shapes[f"encoder.model.{2 + down}.conv.bias"] = (w,)
    shapes["post_proj.weight"] = (out, w)
    shapes["post_proj.bias"] = (out,)
    shapes["decoder.model.0.conv.weight"] = (w, c, 3)
    shapes["decoder.model.0.conv.bias"] = (w,)
    for i in range(down):
        for j in range(depth):
            shapes.update(_res_block(f"decoder.model.{2 + i}.0.model.{j}", w))
        shapes[f"decoder.model.{2 + i}.2.conv.weight"] = (w, w, 3)
        shapes[f"decoder.model.{2 + i}.2.conv.bias"] = (w,)
    shapes[f"decoder.model.{2 + down}.conv.weight"] = (w, w, 3)
    shapes[f"decoder.model.{2 + down}.conv.bias"] = (w,)
    shapes[f"decoder.model.{4 + down}.conv.weight"] = (dim, w, 3)
    shapes[f"decoder.model.{4 + down}.conv.bias"] = (dim,)
    return {f"module.{k}": _random(s, g) for k, s in shapes.items()}


def _res_block(prefix: str, w: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.conv1.weight": (w, w, 3), f"{prefix}.conv1.bias": (w,),
            f"{prefix}.conv2.weight": (w, w, 1), f"{prefix}.conv2.bias": (w,)}  # fmt: skip


def _attention(prefix: str, w: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.in_proj_weight": (3 * w, w), f"{prefix}.in_proj_bias": (3 * w,),
            f"{prefix}.out_proj.weight": (w, w), f"{prefix}.out_proj.bias": (w,)}  # fmt: skip


def _linear(prefix: str, cout: int, cin: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (cout, cin), f"{prefix}.bias": (cout,)}


def _norm(prefix: str, w: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (w,), f"{prefix}.bias": (w,)}


def molingo_shapes(
    latent: int, text_dim: int, adapter: int, size: dict[str, int] = TINY
) -> dict[str, tuple[int, ...]]:
    """Every non-T5 tensor of the release's generator (``molingo_tiny`` by default) and its
    shape."""
    w, h = size["width"], size["head_width"]
    shapes = {**_linear("cond_proj", w, text_dim), **_linear("z_proj", w, latent)}
    for i in range(adapter):
        p = f"text_aligner.blocks.layers.{i}"
        shapes.update(_attention(f"{p}.self_attn", w))
        shapes.update({**_linear(f"{p}.linear1", 4 * w, w), **_linear(f"{p}.linear2", w, 4 * w)})
        shapes.update({**_norm(f"{p}.norm1", w), **_norm(f"{p}.norm2", w)})
    shapes.update(_norm("text_aligner.norm", w))
    shapes["query_pos_encoder.pe"] = (500, 1, w)
    for i in range(size["depth"]):
        p = f"seqTransDecoder.layers.{i}"
        shapes.update({**_attention(f"{p}.self_attn", w), **_attention(f"{p}.multihead_attn", w)})
        m = size["mlp"]
        shapes.update({**_linear(f"{p}.linear1", m, w), **_linear(f"{p}.linear2", w, m)})
        for n in (1, 2, 3):
            shapes.update(_norm(f"{p}.norm{n}", w))
    shapes["mask_token"] = (1, 1, latent)
    net = "flow_loss.net"
    shapes.update({**_linear(f"{net}.time_embed.mlp.0", h, 256),
                   **_linear(f"{net}.time_embed.mlp.2", h, h),
                   **_linear(f"{net}.cond_embed", h, w),
                   **_linear(f"{net}.input_proj", h, latent)})  # fmt: skip
    for j in range(size["head_depth"]):
        p = f"{net}.res_blocks.{j}"
        shapes.update({**_norm(f"{p}.in_ln", h), **_linear(f"{p}.mlp.0", h, h),
                       **_linear(f"{p}.mlp.2", h, h),
                       **_linear(f"{p}.adaLN_modulation.1", 3 * h, h)})  # fmt: skip
    shapes.update({**_linear(f"{net}.final_layer.linear", latent, h),
                   **_linear(f"{net}.final_layer.adaLN_modulation.1", 2 * h, h)})  # fmt: skip
    return shapes


def tiny_t5(d_model: int = 32, vocab: int = len(WORDS) + 8, seed: int = 0, **sizes: int):
    """A two-layer T5 encoder with random weights (transformers); ``sizes`` override the
    T5Config (e.g. T5-Large's num_layers=24, num_heads=16, d_kv=64, d_ff=4096)."""
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    options = {"d_kv": 8, "d_ff": 64, "num_layers": 2, "num_heads": 4, **sizes}
    config = T5Config(vocab_size=vocab, d_model=d_model, is_encoder_decoder=False,
                      use_cache=False, **options)  # fmt: skip
    return T5EncoderModel(config).eval()


def write_tokenizer(folder: Path) -> Path:
    """A word-level tokenizer ending every prompt with </s>, as a transformers folder."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for word in WORDS:
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    folder.mkdir(parents=True, exist_ok=True)
    wrapped.save_pretrained(folder)
    return folder


def write_release(
    root: Path,
    *,
    t5: Any = None,
    sae_options: dict[str, Any] | None = None,
    model_options: dict[str, Any] | None = None,
    seed: int = 0,
    size: dict[str, int] = TINY,
    dim: int = 263,
) -> tuple[Path, Path]:
    """A ``dim`` (263 or 272) release under ``root``: (SAE folder, generator folder), plus
    ``Mean.npy``/``Std.npy`` in ``root/meanstd``. ``model_ema`` differs from ``model`` so
    that a test can tell which one was converted."""
    if dim == 272:  # MotionStreamer's representation: 2x down, 32-d latent
        sae_options = {"dataset_name": "ms", "down_t": 1, "output_emb_width": 32,
                       "name": "sae_ms_l2_2_32_32_d2", **(sae_options or {})}  # fmt: skip
        model_options = {"dataset_name": "ms", **(model_options or {})}
    sae_options = {**SAE_OPTIONS, **(sae_options or {})}
    model_options = {**MODEL_OPTIONS, **(model_options or {})}
    sae_dir, model_dir = root / sae_options["name"], root / f"pretrained_model_{dim}"
    write_opt(sae_dir / "opt.txt", sae_options)
    (sae_dir / "model").mkdir(parents=True, exist_ok=True)
    sae = sae_state(sae_options, dim, seed)
    torch.save({"state_dict": sae}, sae_dir / "model" / "net_best_fid.ckpt")
    write_opt(model_dir / "opt.txt", model_options)
    t5 = tiny_t5() if t5 is None else t5
    g = torch.Generator().manual_seed(seed + 1)
    shapes = molingo_shapes(
        sae_options["output_emb_width"], t5.config.d_model, model_options["aligner_layers"], size
    )
    model = {k: _random(s, g) for k, s in shapes.items()}
    model.update({f"t5_model.{k}": v.clone() for k, v in t5.state_dict().items()})
    ema = {k: v + 0.01 * torch.randn(v.shape, generator=g) for k, v in model.items()
           if k != "t5_model.encoder.embed_tokens.weight"}  # fmt: skip
    for key in [k for k in ema if k.startswith("t5_model.")]:
        ema[key] = model[key]  # the frozen encoder's EMA is itself
    torch.save({"model": model, "model_ema": ema, "epoch": 3}, model_dir / "net_best_fid.pth")
    meanstd = root / "meanstd"
    meanstd.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    np.save(meanstd / "Mean.npy", rng.normal(size=dim).astype(np.float32))
    np.save(meanstd / "Std.npy", rng.uniform(0.5, 1.5, size=dim).astype(np.float32))
    return sae_dir, model_dir
