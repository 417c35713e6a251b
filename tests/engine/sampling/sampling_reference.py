"""Every sampling variant on the CPU with fixed seeds: the outputs issue 16's refactor keeps.

``python tests/engine/sampling/sampling_reference.py`` writes ``sampling_reference.npz``
beside this file; it was run once on the code before the refactor (commit recorded in the
file) and is never rewritten by the tests. Only the ``pipeline`` part (the shipped
checkpoint) was recorded again, with ``--part pipeline``, when session 9 replaced the
shipped weights (the sampling code unchanged; the other parts keep the pre-refactor
recording). ``test_sampling_reference.py`` runs ``outputs()`` on the code of today and
compares each array with the recorded one bit for bit.

The models are small and randomly initialised from their configs with fixed seeds (the
untrained zero-initialised layers get random weights, so every path does real work); the
shipped checkpoint is sampled too, through ``pipeline.generate``, when its text encoder can
be loaded. Imported by plain name (pytest's prepend import mode puts this folder on
sys.path).
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
RECORDED = HERE / "sampling_reference.npz"
DIM = 32

Outputs = dict[str, np.ndarray]


def fingerprint() -> str:
    """What the bits depend on besides the code: torch, the CPU's vector unit, the machine."""
    return f"torch {torch.__version__}; {torch.backends.cpu.get_cpu_capability()}; " + (
        platform.machine()
    )


def _text(lengths: list[int], seed: int, dtype: torch.dtype):
    from engine.text_encoder import TextEncoding

    g = torch.Generator().manual_seed(seed)
    length = max(lengths)
    mask = torch.arange(length)[None] < torch.tensor(lengths)[:, None]  # (B, L)
    tokens = torch.randn(len(lengths), length, DIM, generator=g) * mask[..., None]
    pooled = torch.randn(len(lengths), DIM, generator=g)
    return TextEncoding(tokens.to(dtype), mask, pooled.to(dtype))


def _randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Untrained models zero their AdaLN and output layers; give every layer weight."""
    from engine.models.layers import AdaLNModulation

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, AdaLNModulation):
                module.proj.weight.copy_(torch.randn(module.proj.weight.shape, generator=g) * 0.1)
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model.eval()


def _mlagen(dtype: torch.dtype):
    from engine.models.mlagen import MLAGen, MLAGenConfig

    torch.manual_seed(1)
    return _randomise(MLAGen(MLAGenConfig.tiny().replace(text_dim=DIM)), 11).to(dtype)


def _molingo(conditioning: str, dtype: torch.dtype):
    from engine.models.molingo import MoLingo, MoLingoConfig

    torch.manual_seed(0)
    config = MoLingoConfig.tiny().replace(text_dim=DIM, conditioning=conditioning)
    return _randomise(MoLingo(config), 12).to(dtype)


def _release():
    from engine.models.molingo_release import MoLingoRelease, MoLingoReleaseConfig

    torch.manual_seed(0)
    cfg = MoLingoReleaseConfig(
        latent_dim=4, text_dim=DIM, max_tokens=12, width=16, depth=2, heads=2, adapter_depth=1,
        head_width=16, head_depth=2, acc=3,
    )  # fmt: skip
    return _randomise(MoLingoRelease(cfg), 13)


def _seed(n: int) -> torch.Generator:
    return torch.Generator().manual_seed(n)


def _put(out: Outputs, name: str, value: torch.Tensor) -> None:
    out[name] = value.detach().cpu().numpy()


FLOW_CASES = [  # (mode, method, guidance)
    ("sink_ctrl", "euler", 4.0), ("sink_ctrl", "heun", 3.0), ("cfg", "euler", 2.0),
    ("cfg", "heun", 1.0), ("cfg", "euler", 1.0),
]  # fmt: skip


def flow_outputs(out: Outputs) -> None:
    """MLA-Gen: the eager loop (what the CPU runs) and the graphed loop run on the CPU."""
    from engine.sampling import flow
    from engine.sampling.guidance import CFG, SinkCtrl

    for dtype in (torch.float64, torch.float32):
        model = _mlagen(dtype)
        text, null = _text([5, 3], 5, dtype), _text([2], 6, dtype)
        for mode, method, scale in FLOW_CASES:
            key = f"flow/{dtype}/{mode}/{method}/{scale}"
            with torch.no_grad():
                ref = flow.sample_flow(model, text, null, 9, steps=4, guidance=scale, mode=mode,
                                       method=method, generator=_seed(2))  # fmt: skip
            for part in ("latents", "sink_ratio", "attention"):
                _put(out, f"{key}/eager/{part}", getattr(ref, part))
            guide = SinkCtrl(scale=scale) if mode == "sink_ctrl" else CFG(scale)
            single = mode == "cfg" and scale == 1.0
            noise = torch.randn(2, 9, 16, generator=_seed(2)).to(dtype)
            with torch.no_grad():
                ours = flow._sample_graphed(model, text, flow._rows(null, 2), noise, 4, method,
                                            guide, single, None, "fp32")  # fmt: skip
            for part in ("latents", "sink_ratio", "attention"):
                _put(out, f"{key}/graphed/{part}", getattr(ours, part))
        controller = SinkCtrl(scale=3.0, temporal=4.0, amplification=0.3)
        with torch.no_grad():
            custom = flow.sample_flow(model, text, null, 7, steps=3, controller=controller,
                                      generator=_seed(3))  # fmt: skip
        _put(out, f"flow/{dtype}/controller/latents", custom.latents)
        _put(out, f"flow/{dtype}/controller/previous", controller.previous)


def mar_outputs(out: Outputs) -> None:
    """MoLingo: the reference MAR loop and the static (CUDA) loop run on the CPU."""
    from engine.sampling.fast import sample_mar_static
    from engine.sampling.mar import _text_memory, reveal_plan, sample_mar

    for conditioning in ("cross_attention", "adaln_token"):
        for dtype in (torch.float64, torch.float32):
            model = _molingo(conditioning, dtype)
            text, null = _text([5, 3, 4], 1, dtype), _text([2], 2, dtype)
            for guided in (True, False):
                for method in ("euler", "heun"):
                    for schedule in ("linear", "constant"):
                        key = f"mar/{conditioning}/{dtype}/{guided}/{method}/{schedule}"
                        with torch.no_grad():
                            latents = sample_mar(
                                model, text, null if guided else None, 11, ar_steps=5,
                                flow_steps=4, guidance=3.5, method=method, generator=_seed(4),
                                guidance_mode=schedule,
                            )  # fmt: skip
                        _put(out, key, latents)
                    counts, scales = reveal_plan(5, 11, 3.5)
                    with torch.no_grad():
                        memory = _text_memory(model, text, null if guided else None, 3)
                        static = sample_mar_static(model, memory, 3, 11, counts, scales, 4,
                                                   method, _seed(4), False)  # fmt: skip
                    _put(out, f"mar_static/{conditioning}/{dtype}/{guided}/{method}", static)
            valid = torch.arange(11)[None] < torch.tensor([[11], [7], [9]])
            with torch.no_grad():
                padded = sample_mar(model, text, null, 11, ar_steps=4, flow_steps=3,
                                    generator=_seed(5), token_valid=valid)  # fmt: skip
            _put(out, f"mar/{conditioning}/{dtype}/token_valid", padded)


def release_outputs(out: Outputs) -> None:
    """The published MoLingo release's own loop (``sample_release``), through ``sample_mar``."""
    from engine.sampling.mar import sample_mar

    model = _release()
    text, null = _text([5, 3], 7, torch.float32), _text([3], 8, torch.float32)
    for method in ("stochastic", "euler"):
        for guided in (True, False):
            with torch.no_grad():
                latents = sample_mar(model, text, null if guided else None, 12, ar_steps=None,
                                     flow_steps=3, guidance=3.0, method=method,
                                     generator=_seed(9))  # fmt: skip
            _put(out, f"release/{method}/{guided}", latents)
    valid = torch.arange(12)[None] < torch.tensor([[12], [7]])
    with torch.no_grad():
        latents = sample_mar(model, text, null, 12, flow_steps=2, method="stochastic",
                             generator=_seed(1), token_valid=valid)  # fmt: skip
    _put(out, "release/token_valid", latents)


def pipeline_outputs(out: Outputs) -> None:
    """The shipped checkpoint through ``pipeline.generate`` (both generators, raw output)."""
    from engine import pipeline
    from engine.errors import MotionError

    if not (pipeline.DEFAULT_CHECKPOINT / "config.json").is_file():
        return
    for generator in ("mlagen", "molingo"):
        try:
            motion = pipeline.generate(
                "a person walks forward", seconds=1.2, seed=3, steps=3,
                generator=generator, device="cpu", clean=False, variations=2,
            )  # fmt: skip
        except (MotionError, OSError) as error:  # no text encoder here: skip this part
            print(f"pipeline/{generator}: skipped ({error})", file=sys.stderr)
            return
        out[f"pipeline/{generator}/features"] = motion.features
        out[f"pipeline/{generator}/joints"] = motion.joints


PARTS: dict[str, Callable[[Outputs], None]] = {
    "flow": flow_outputs, "mar": mar_outputs, "release": release_outputs,
    "pipeline": pipeline_outputs,
}  # fmt: skip


def outputs(parts: tuple[str, ...] = tuple(PARTS)) -> Outputs:
    """Name -> array of every variant (the names say the generator, dtype and settings)."""
    torch.set_num_threads(1)  # one thread: the reductions' order does not vary
    out: Outputs = {}
    for part in parts:
        PARTS[part](out)
    return out


def main() -> None:
    """Record every part, or with ``--part NAME`` (repeatable) only those parts, keeping the
    others' recording (the pipeline part after the shipped checkpoint is replaced)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", action="append", choices=sorted(PARTS), default=None)
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                            cwd=HERE, check=True).stdout.strip()  # fmt: skip
    data: Outputs = {}
    if args.part:
        with np.load(RECORDED) as old:
            data = {k: old[k] for k in old.files if k.split("/")[0] not in args.part}
    data.update(outputs(tuple(args.part or PARTS)))
    for part in args.part or PARTS:
        data[f"_meta/commit/{part}"] = np.array(commit)
    data["_meta/fingerprint"] = np.array(fingerprint())
    partial = RECORDED.with_suffix(".partial.npz")
    np.savez_compressed(partial, **data)
    partial.replace(RECORDED)
    print(f"{RECORDED}: {len(data)} arrays, {args.part or 'all parts'} from {commit}")


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parents[2]))
    main()
