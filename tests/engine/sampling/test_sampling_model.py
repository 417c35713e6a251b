"""The sampling copy of a generator (bfloat16 weights, compiled trunk), on the CPU.

The CUDA sampler runs MLA-Gen through ``sampling_model``; here the copy itself, its cache,
and one sampling run through it are checked against the float64 reference loop.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from engine.models.layers import AdaLNModulation
from engine.models.mlagen import MLAGen, MLAGenConfig
from engine.sampling import flow, sampling_model
from engine.sampling.guidance import SinkCtrl
from engine.text_encoder import TextEncoding

DIM = 32


def _model() -> MLAGen:
    torch.manual_seed(3)
    model = MLAGen(MLAGenConfig.tiny().replace(text_dim=DIM))
    with torch.no_grad():  # untrained AdaLN and output layers are zero: give them weight
        for module in model.modules():
            if isinstance(module, AdaLNModulation):
                torch.nn.init.normal_(module.proj.weight, std=0.1)
        torch.nn.init.normal_(model.final.weight, std=0.1)
    return model.eval()


def _text(lengths: list[int], seed: int) -> TextEncoding:
    g = torch.Generator().manual_seed(seed)
    mask = torch.arange(max(lengths))[None] < torch.tensor(lengths)[:, None]
    tokens = torch.randn(len(lengths), max(lengths), DIM, generator=g) * mask[..., None]
    return TextEncoding(tokens, mask, torch.randn(len(lengths), DIM, generator=g))


def test_nothing_asked_gives_the_model_itself():
    model = _model()
    assert sampling_model.sampling_model(model, None, compiled=False) is model
    assert sampling_model.sampling_model(model, torch.float32, compiled=False) is model


def test_bf16_copy_is_cached_leaves_the_model_alone_and_follows_weight_updates():
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    copy = sampling_model.sampling_model(model, torch.bfloat16, compiled=False)
    assert copy is not model and all(p.dtype == torch.bfloat16 for p in copy.parameters())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert next(model.parameters()).dtype == torch.float32
    assert sampling_model.sampling_model(model, torch.bfloat16, compiled=False) is copy
    with torch.no_grad():  # an optimiser step: same storage, new values
        model.final.bias.add_(1.0)
    fresh = sampling_model.sampling_model(model, torch.bfloat16, compiled=False)
    assert fresh is not copy
    torch.testing.assert_close(fresh.final.bias.float(), model.final.bias, atol=1e-2, rtol=1e-2)


def test_bf16_network_reads_the_flow_time_unrounded():
    # 0.9 and 0.899 are the same bfloat16 number: a time rounded to the weights' dtype before
    # the embedding would give both the same velocity.
    net = sampling_model.sampling_model(_model(), torch.bfloat16, compiled=False)
    text = _text([4], seed=1)
    x = torch.randn(1, 6, 16).to(torch.bfloat16)
    t1, t2 = torch.tensor([0.9]), torch.tensor([0.899])
    assert t1.to(torch.bfloat16) == t2.to(torch.bfloat16)
    with torch.no_grad():
        assert not torch.equal(net(x, t1, text), net(x, t2, text))


@torch.no_grad()
def test_sampling_through_the_bf16_copy_stays_close_to_the_float_loop():
    """The copy runs the network; the state and guidance stay float32."""
    model = _model()
    text, null = _text([5, 3], seed=5), _text([2], seed=6)
    noise = torch.randn(2, 9, 16, generator=torch.Generator().manual_seed(2))
    other = torch.randn(2, 9, 16, generator=torch.Generator().manual_seed(9))
    args = (text, flow._rows(null, 2), 8, "euler", SinkCtrl(scale=3.0), False, None)
    ref = flow._sample_eager(model, text, flow._rows(null, 2), noise, *args[2:])
    seed_gap = flow._sample_eager(model, text, flow._rows(null, 2), other, *args[2:])
    net = sampling_model.sampling_model(model, torch.bfloat16, compiled=False)
    ours = flow._sample_graphed(net, text, flow._rows(null, 2), noise, 8, "euler",
                                SinkCtrl(scale=3.0), False, None, "bf16")  # fmt: skip
    assert ours.latents.dtype == torch.float32 and ours.sink_ratio.dtype == torch.float32
    error = (ours.latents - ref.latents).norm() / ref.latents.norm()
    gap = (seed_gap.latents - ref.latents).norm() / ref.latents.norm()
    assert error < 0.05 and gap > 0.5, (float(error), float(gap))
    torch.testing.assert_close(ours.sink_ratio, ref.sink_ratio, atol=0.02, rtol=0)


def test_compiling_without_triton_warns_once_and_runs_uncompiled(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "triton" else real(name, *a)
    )
    sampling_model.can_compile.cache_clear()
    try:
        model = _model()
        with pytest.warns(UserWarning, match="Triton"):
            assert sampling_model.sampling_model(model, None, compiled=True) is model
        copy = sampling_model.sampling_model(model, torch.bfloat16, compiled=True)
        assert copy.run_blocks is model.run_blocks  # the plain trunk
    finally:
        sampling_model.can_compile.cache_clear()


@pytest.mark.parametrize(
    ("precision", "device", "capability", "expected"),
    [
        ("auto", "cuda", (9, 0), torch.bfloat16),  # Hopper: bfloat16 tensor cores
        ("auto", "cuda", (8, 6), torch.bfloat16),  # Ampere / Ada
        ("auto", "cuda", (7, 5), None),  # Turing emulates bfloat16: stays float32
        ("tf32", "cuda", (9, 0), None),
        ("fp32", "cuda", (9, 0), None),
        ("bf16", "cuda", (7, 5), torch.bfloat16),  # asked for explicitly
        ("auto", "cpu", None, None),
    ],
)  # fmt: skip
def test_which_gpus_run_mlagen_in_bfloat16(monkeypatch, precision, device, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda _device=None: capability)
    got = sampling_model.network_precision(precision, torch.device(device))
    assert got == expected


def test_a_model_built_in_inference_mode_gets_its_copy():
    with torch.inference_mode():
        model = _model()
        copy = sampling_model.sampling_model(model, torch.bfloat16, compiled=False)
    assert next(copy.parameters()).dtype == torch.bfloat16


def test_the_copys_padded_feedforward_and_split_modulations_keep_the_function():
    """The sampling copy pads SwiGLU's odd hidden width (tiny: 85) to whole GEMM tiles and
    computes each AdaLN chunk by its own product: the same network."""
    model = _model().double()
    twin = sampling_model.sampling_model(model, torch.float32, compiled=False).double()
    hidden = [m.w1.out_features for m in twin.modules() if hasattr(m, "w3")]
    assert hidden and all(h % sampling_model.GEMM_ALIGN == 0 for h in hidden)
    assert not any(isinstance(m, AdaLNModulation) for m in twin.modules())  # split per chunk
    assert model.blocks[0].mlp.w1.out_features == 85  # the model itself is untouched
    text = _text([4, 2], seed=3)
    text = type(text)(text.tokens.double(), text.mask, text.pooled.double())
    x, t = torch.randn(2, 7, 16, dtype=torch.float64), torch.tensor([0.3, 0.8], dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(twin(x, t, text), model(x, t, text), rtol=0, atol=1e-12)
