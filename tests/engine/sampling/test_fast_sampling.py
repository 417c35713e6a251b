"""The CUDA fast paths of the samplers, checked against the reference loops on the CPU.

The fast paths (``engine.sampling.fast`` for MoLingo, ``_sample_graphed`` for MLA-Gen) run
on the CPU too when called directly: ``StepGraph`` then replays by calling the step
function, so everything around the CUDA graphs (static buffers, reveal by index, the
precomputed flow-head tables, padding, SinkCtrl's state) is compared here with the loops
the CPU really runs, in float64 where the maths is the same up to rounding.
"""

from __future__ import annotations

import pytest
import torch

from engine.errors import MotionError
from engine.models.layers import AdaLNModulation
from engine.models.mlagen import MLAGen, MLAGenConfig, apply_rope, rope_tables
from engine.models.molingo import MoLingo, MoLingoConfig
from engine.sampling import flow
from engine.sampling.fast import pad_memory, sample_mar_static
from engine.sampling.graphs import (
    FastOptions,
    bucket,
    cached_session,
    default_options,
    use_fast_path,
)
from engine.sampling.guidance import CFG, SinkCtrl, classifier_free_guidance
from engine.sampling.mar import _text_memory, mask_schedule, reveal_plan, sample_mar
from engine.text_encoder import TextEncoding

DIM = 32


def _text(lengths: list[int], seed: int, dtype=torch.float64) -> TextEncoding:
    g = torch.Generator().manual_seed(seed)
    length = max(lengths)
    mask = torch.arange(length)[None] < torch.tensor(lengths)[:, None]  # (B, L)
    tokens = torch.randn(len(lengths), length, DIM, generator=g) * mask[..., None]
    return TextEncoding(
        tokens.to(dtype), mask, torch.randn(len(lengths), DIM, generator=g).to(dtype)
    )


def _randomise(model: torch.nn.Module) -> torch.nn.Module:
    """Untrained models zero their AdaLN and output layers; give every layer weight."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, AdaLNModulation):
                torch.nn.init.normal_(module.proj.weight, std=0.1)
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module", params=["cross_attention", "adaln_token"])
def molingo(request) -> MoLingo:
    torch.manual_seed(0)
    config = MoLingoConfig.tiny().replace(text_dim=DIM, conditioning=request.param)
    return _randomise(MoLingo(config)).eval().double()


def test_reveal_plan_is_what_the_loop_reveals():
    counts, scales = reveal_plan(16, 49, 5.5)
    assert sum(counts) == 49 and min(counts) >= 1
    masked = 49
    for step, count in enumerate(counts):
        masked -= count
        assert masked == mask_schedule(step, 16, 49)
    assert scales[-1] == 5.5 and scales == sorted(scales)
    assert reveal_plan(5, 3, 2.0)[0] == [1, 1, 1, 0, 0]  # fewer tokens than steps


@pytest.mark.parametrize("guided", [True, False])
@pytest.mark.parametrize("method", ["euler", "heun"])
@pytest.mark.parametrize("graphs", [False, True])
@torch.no_grad()
def test_static_mar_matches_the_reference_loop(molingo, guided, method, graphs):
    text, null = _text([5, 3, 4], seed=1), _text([2], seed=2)
    null = null if guided else None
    ref = sample_mar(molingo, text, null, 11, ar_steps=5, flow_steps=4, guidance=3.5,
                     method=method, generator=torch.Generator().manual_seed(4))  # fmt: skip
    counts, scales = reveal_plan(5, 11, 3.5)
    for _ in range(2):  # the second call reuses the cached session (graphs=True)
        ours = sample_mar_static(
            molingo, _text_memory(molingo, text, null, 3), 3, 11, counts, scales, 4, method,
            torch.Generator().manual_seed(4), graphs,
        )  # fmt: skip
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-10)


@torch.no_grad()
def test_flow_head_tables_give_the_heads_velocity(molingo):
    head = molingo.head
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 16, generator=g, dtype=torch.float64)
    z = torch.randn(6, 2, molingo.config.width, generator=g, dtype=torch.float64)
    t = torch.tensor(0.375, dtype=torch.float64)
    mods = head.modulations(head.time(t) + head.cond_proj(z))  # (6, 2, w) each
    output = head.guided_output(torch.tensor(2.5, dtype=torch.float64), 2)
    ours = head.guided_velocity(x, mods, output)
    v_cond = molingo.velocity(x, t.expand(6), z[:, 0])
    v_uncond = molingo.velocity(x, t.expand(6), z[:, 1])
    expected = classifier_free_guidance(v_cond, v_uncond, 2.5)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-12)
    single = [tuple(m[:, :1] for m in group) for group in mods]
    conditional = head.guided_velocity(x, single, head.guided_output(None, 1))
    torch.testing.assert_close(conditional, v_cond)


@torch.no_grad()
def test_padded_text_memory_and_kv_reuse_change_nothing(molingo):
    text = _text([5, 3], seed=3)
    memory = molingo.adapt_text(text)
    tokens = torch.randn(2, 7, 16, dtype=torch.float64)
    masked = torch.rand(2, 7) < 0.5
    plain = molingo(tokens, masked, memory)
    padded = pad_memory(memory, bucket(5))
    kv = molingo.cross_kv(padded)
    assert padded.tokens is None or padded.tokens.shape[1] == 16
    torch.testing.assert_close(molingo(tokens, masked, padded, context_kv=kv), plain)
    same = molingo(tokens, masked, memory, context_kv=molingo.cross_kv(memory))
    torch.testing.assert_close(same, plain, rtol=0, atol=1e-12)


def test_rope_cache_is_bit_identical_to_apply_rope():
    torch.manual_seed(0)
    model = MLAGen(MLAGenConfig.tiny())
    block = model.blocks[0].attn
    for n in (5, 9, 5):
        q = torch.randn(2, block.heads, n, block.head_dim)
        cos, signed_sin = model.rope(n, q)
        rolled = q * cos + q.roll(block.head_dim // 2, dims=-1) * signed_sin
        assert torch.equal(rolled, apply_rope(q, *rope_tables(n, block.head_dim, 1e4, q)))
    assert sorted(key[0] for key in model._rope_cache) == [5, 9]


@pytest.fixture(scope="module")
def mlagen() -> MLAGen:
    torch.manual_seed(1)
    return _randomise(MLAGen(MLAGenConfig.tiny().replace(text_dim=DIM))).eval().double()


@pytest.mark.parametrize(
    ("mode", "method", "scale"),
    [("sink_ctrl", "euler", 4.0), ("sink_ctrl", "heun", 3.0), ("cfg", "euler", 2.0),
     ("cfg", "heun", 1.0)],
)  # fmt: skip
@torch.no_grad()
def test_graphed_flow_matches_the_eager_loop(mlagen, mode, method, scale):
    text, null = _text([5, 3], seed=5), _text([2], seed=6)
    ref = flow.sample_flow(mlagen, text, null, 9, steps=4, guidance=scale, mode=mode,
                           method=method, generator=torch.Generator().manual_seed(2))  # fmt: skip
    guide = SinkCtrl(scale=scale) if mode == "sink_ctrl" else CFG(scale)
    ref_guide = None
    if mode == "sink_ctrl":  # the eager loop's controller state after sampling
        ref_guide = SinkCtrl(scale=scale)
        flow.sample_flow(mlagen, text, null, 9, steps=4, method=method, controller=ref_guide,
                         generator=torch.Generator().manual_seed(2))  # fmt: skip
    single = mode == "cfg" and scale == 1.0
    noise = torch.randn(2, 9, 16, generator=torch.Generator().manual_seed(2)).double()
    for _ in range(2):  # the second call replays the cached session
        ours = flow._sample_graphed(mlagen, text, flow._rows(null, 2), noise, 4, method,
                                    guide, single, None, "fp32")  # fmt: skip
        torch.testing.assert_close(ours.latents, ref.latents, rtol=0, atol=1e-10)
        torch.testing.assert_close(ours.sink_ratio, ref.sink_ratio, rtol=0, atol=1e-12)
        torch.testing.assert_close(ours.attention, ref.attention, rtol=0, atol=1e-10)
        if ref_guide is not None:
            torch.testing.assert_close(guide.previous, ref_guide.previous, rtol=0, atol=1e-10)


def test_sessions_are_cached_per_shape_and_per_parameter_addresses():
    model = torch.nn.Linear(2, 2)
    built = []

    def build():
        built.append(object())
        return built[-1]

    assert cached_session(model, "a", build) is cached_session(model, "a", build)
    assert cached_session(model, "b", build) is not built[0]
    model.double()  # new parameter storage: a graph of the old one would read stale memory
    assert cached_session(model, "a", build) is built[-1] and len(built) == 3


def test_options_and_when_the_fast_path_is_taken(monkeypatch):
    with pytest.raises(MotionError, match="precision"):
        FastOptions(precision="fp8")
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    with torch.no_grad():
        assert use_fast_path(FastOptions(), cuda) and not use_fast_path(FastOptions(), cpu)
        assert not use_fast_path(FastOptions(enabled=False), cuda)
    assert not use_fast_path(FastOptions(), cuda)  # recording gradients: reference loop
    assert default_options() == FastOptions()
    monkeypatch.setenv("KINETEXT_FAST_SAMPLING", "0")
    assert not default_options().enabled


def test_sessions_made_in_inference_mode_do_not_leak_into_no_grad(molingo):
    text = _text([4, 2], seed=9)
    counts, scales = reveal_plan(3, 5, 1.0)

    def run() -> torch.Tensor:
        memory = _text_memory(molingo, text, None, 2)
        g = torch.Generator().manual_seed(1)
        return sample_mar_static(molingo, memory, 2, 5, counts, scales, 3, "euler", g, True)

    with torch.inference_mode():
        first = run()
    with torch.no_grad():  # would fail updating inference-mode buffers in place
        assert torch.equal(run(), first)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(
    ("precision", "compiled"),
    [("fp32", False), ("auto", False), ("tf32", False), ("bf16", False), ("auto", True),
     ("bf16", True)],
)  # fmt: skip
@torch.no_grad()
def test_cuda_fast_paths_agree_with_the_reference_and_repeat_exactly(precision, compiled):
    torch.manual_seed(0)
    device = torch.device("cuda")
    text, null = _text([6, 4], 7, torch.float32).to(device), _text([2], 8, torch.float32).to(device)
    fast = FastOptions(precision=precision, compile=compiled)
    ref = FastOptions(enabled=False)
    models = {
        "mar": _randomise(MoLingo(MoLingoConfig.small().replace(text_dim=DIM))).eval().to(device),
        "flow": _randomise(MLAGen(MLAGenConfig.small().replace(text_dim=DIM))).eval().to(device),
    }

    def run(name: str, options: FastOptions) -> torch.Tensor:
        g = torch.Generator(device).manual_seed(3)
        if name == "mar":
            return sample_mar(models[name], text, null, 49, generator=g, fast=options)
        return flow.sample_flow(models[name], text, null, 49, steps=20, generator=g,
                                fast=options).latents  # fmt: skip

    for name in models:
        expected, first, again = run(name, ref), run(name, fast), run(name, fast)
        assert torch.equal(first, again)  # same seed, same device: same bits
        error = (first - expected).norm() / expected.norm()
        limit = {"fp32": 1e-4, "bf16": 5e-2}.get(precision, 2e-2)
        assert error < limit, (name, float(error))
