"""Classifier-free guidance, SinkRatio and sink-ctrl on hand-worked cases."""

import pytest
import torch

from engine.sampling.guidance import CFG, SinkCtrl, classifier_free_guidance, guided, sink_ratio
from engine.sampling.ode import solve_ode


def _pair(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 5, 3, generator=g), torch.randn(2, 5, 3, generator=g)


def test_cfg_scale_one_is_conditional_and_zero_is_unconditional():
    v_cond, v_uncond = _pair()
    torch.testing.assert_close(classifier_free_guidance(v_cond, v_uncond, 1.0), v_cond)
    torch.testing.assert_close(classifier_free_guidance(v_cond, v_uncond, 0.0), v_uncond)
    expected = v_uncond + 4.0 * (v_cond - v_uncond)
    torch.testing.assert_close(CFG(4.0)(v_cond, v_uncond), expected)


def test_sink_ratio_hand_made_attention():
    # Sample 0: one head, two frames over four tokens.
    #   frame 0: [0.7, 0.1, 0.1, 0.1] -> top-2 = 0.8
    #   frame 1: [0.25, 0.25, 0.25, 0.25] -> top-2 = 0.5         mean = 0.65
    # Sample 1: every frame puts everything on token 0 -> 1.0.
    attn = torch.tensor(
        [
            [[[0.7, 0.1, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25]]],
            [[[1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]],
        ]
    )
    torch.testing.assert_close(sink_ratio(attn), torch.tensor([0.65, 1.0]))
    assert sink_ratio(attn, k=1)[0].item() == pytest.approx((0.7 + 0.25) / 2)


def test_sink_ratio_averages_heads_and_skips_padding():
    attn = torch.zeros(1, 2, 1, 3)
    attn[0, 0, 0] = torch.tensor([0.5, 0.5, 0.0])  # head 0: top-2 = 1.0
    attn[0, 1, 0] = torch.tensor([0.2, 0.2, 0.6])  # head 1: top-2 = 0.8, 0.4 with token 2 padded
    assert sink_ratio(attn).item() == pytest.approx(0.9)
    mask = torch.tensor([[True, True, False]])
    assert sink_ratio(attn, mask).item() == pytest.approx(0.7)
    frames = torch.zeros(1, 1, 2, 3)
    frames[0, 0, 0] = torch.tensor([1.0, 0.0, 0.0])
    frames[0, 0, 1] = torch.tensor([1 / 3, 1 / 3, 1 / 3])
    only_first = sink_ratio(frames, frame_mask=torch.tensor([[True, False]]))
    assert only_first.item() == pytest.approx(1.0)


def test_sink_ctrl_reduces_to_cfg_without_amplification():
    ctrl = SinkCtrl(scale=4.0, amplification=0.0)
    ctrl_base1 = SinkCtrl(scale=4.0, base=1.0)
    sink = torch.tensor([0.9, 0.3])
    for step in range(3):
        v_cond, v_uncond = _pair(step)
        expected = classifier_free_guidance(v_cond, v_uncond, 4.0)
        torch.testing.assert_close(ctrl(v_cond, v_uncond, sink), expected, rtol=0, atol=0)
        torch.testing.assert_close(ctrl_base1(v_cond, v_uncond, sink), expected, rtol=0, atol=0)


def test_sink_ctrl_first_step_worked_by_hand():
    # First step: previous := e, so s = lam * e and the switch opposes e elementwise.
    v_cond = torch.tensor([[[1.0, -1.0]], [[0.5, 0.0]]])
    v_uncond = torch.zeros_like(v_cond)
    sink = torch.tensor([1.0, 0.0])  # gain 0.18 * (2 - 1) = 0.18, and 0
    ctrl = SinkCtrl(scale=4.0, temporal=6.0, base=2.0, amplification=0.18)
    out = ctrl(v_cond, v_uncond, sink)
    expected = torch.tensor([[[4.0 * 0.82, -4.0 * 0.82]], [[2.0, 0.0]]])
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(ctrl.previous, expected / 4.0)


def test_sink_ctrl_couples_to_previous_regulated_guidance_and_resets():
    ctrl = SinkCtrl(scale=1.0, temporal=6.0, base=2.0, amplification=0.18)
    sink = torch.tensor([1.0])
    ctrl(torch.tensor([[1.0]]), torch.tensor([[0.0]]), sink)  # previous = 0.82
    # e = -0.5: s = (-0.5 - 0.82) + 6 * 0.82 = 3.6 > 0 -> regulated = -0.5 - 0.18 = -0.68.
    out = ctrl(torch.tensor([[-0.5]]), torch.tensor([[0.0]]), sink)
    assert out.item() == pytest.approx(-0.68)
    ctrl.reset()
    # After reset the same input is a first step again: s = 6 * -0.5 < 0 -> -0.5 + 0.18.
    assert ctrl(torch.tensor([[-0.5]]), torch.tensor([[0.0]]), sink).item() == pytest.approx(-0.32)


def test_sink_ctrl_gain_grows_with_sink_ratio():
    gains = SinkCtrl().gain(torch.tensor([0.0, 0.5, 1.0]))
    assert gains[0].item() == 0.0
    assert gains[1].item() < gains[2].item() == pytest.approx(0.18)
    with pytest.raises(ValueError):
        SinkCtrl()(torch.zeros(1, 2), torch.zeros(1, 2))


def _network(calls: list[int]):
    """A toy two-branch network: the first half of its rows conditional, the rest not; its
    'attention' is one row of ones per input row."""

    def network(x: torch.Tensor, t: torch.Tensor):
        calls.append(x.shape[0])
        half = x.shape[0] // 2 if x.shape[0] > 2 else x.shape[0]
        shift = torch.zeros_like(x)
        shift[:half] = 1.0  # conditional rows move towards +1
        return x * t.reshape(-1, 1, 1) + shift, torch.ones(x.shape[0], 1, 1, 2)

    return network


def test_guided_runs_one_doubled_call_and_mixes_the_halves():
    calls: list[int] = []
    seen: list[torch.Tensor] = []
    x, t = torch.randn(2, 5, 3), torch.full((2,), 0.5)

    def observe(attention):
        seen.append(attention)
        return torch.full((2,), 0.25)

    v = guided(_network(calls), CFG(3.0), observe)(x, t)
    assert calls == [4]  # [x | x] in one network call
    assert seen[0].shape[0] == 2  # only the conditional rows' maps are observed
    torch.testing.assert_close(v, classifier_free_guidance(x * 0.5 + 1.0, x * 0.5, 3.0))
    sink = SinkCtrl(scale=3.0, amplification=0.0)  # reads observe's SinkRatio; here CFG
    torch.testing.assert_close(guided(_network(calls), sink, observe)(x, t), v)


def test_guided_without_a_guide_is_the_network_alone_and_integrates():
    calls: list[int] = []
    x = torch.randn(2, 5, 3)
    velocity = guided(_network(calls), None)
    torch.testing.assert_close(velocity(x, torch.ones(2)), x + 1.0)
    assert calls == [2]
    solve_ode(guided(_network(calls), CFG(2.0)), x, 3, "heun")
    assert calls[1:] == [4] * 6  # Heun: two doubled calls per step
