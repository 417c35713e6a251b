"""The generator as a CUDA sampler runs it: a bfloat16 copy of its weights and/or its trunk
compiled into fused kernels (``FastOptions.precision="bf16"``, ``FastOptions.compile``).

Why: at batch 256 an MLA-Gen sampling step is memory-bound elementwise work (RMSNorm,
AdaLN modulation, RoPE, gates over 25k token rows; docs/benchmarks.md). Autocast does not
help there: it casts every product's inputs at every call and leaves the elementwise work in
float32. A real bfloat16 copy halves the bytes every kernel moves; compiling the trunk
(``torch.compile``: Inductor writes Triton kernels) fuses chains of elementwise kernels
into one read and one write each. The ODE state, guidance and SinkRatio stay in the
original model's precision: the sampler casts the network's input and output.

The copy also takes the layers' fast forms (``models.layers``): odd feed-forward widths
padded to whole GEMM tiles (``pad_feedforward``) and AdaLN chunks made contiguous
(``split_modulations``): the same function, faster kernels. It is made once per model
and options and rebuilt when the model's weights change (new addresses, or in-place
updates: a training loop that evaluates as it goes samples with its current weights).
Compiling needs Triton (Linux and a CUDA GPU); where it is missing the trunk runs
uncompiled, with one warning.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import warnings
import weakref
from collections.abc import Callable, Hashable

import torch
from torch import Tensor, nn

from ..models.layers import pad_feedforward, split_modulations
from .graphs import LOCK

GEMM_ALIGN = 64  # feed-forward widths of the sampling copy are padded to a multiple of this

_COPIES: weakref.WeakKeyDictionary[nn.Module, tuple[Hashable, nn.Module]] = (
    weakref.WeakKeyDictionary()
)


def sampling_model(model: nn.Module, dtype: torch.dtype | None, compiled: bool) -> nn.Module:
    """``model`` itself, or its cached copy in ``dtype`` (None: unchanged) with its trunk
    compiled when ``compiled`` (for models with a ``run_blocks`` trunk, e.g. ``MLAGen``)."""
    current = network_dtype(model)
    dtype = current if dtype is None else dtype
    compiled = compiled and hasattr(model, "run_blocks") and can_compile()
    if dtype == current and not compiled:
        return model
    with LOCK:  # one cache for every thread: build each copy once, never read a half-made one
        key = (weights_version(model), dtype, compiled)
        cached = _COPIES.get(model)
        if cached is not None and cached[0] == key:
            return cached[1]
        twin = copy.deepcopy(model).to(dtype).eval().requires_grad_(False)
        pad_feedforward(twin, GEMM_ALIGN)
        if compiled:  # Inductor fuses the strided reads itself; split was slower (3,461 vs 3,708)
            twin.run_blocks = compiled_trunk(model.run_blocks)
        else:
            split_modulations(twin)
        _COPIES[model] = (key, twin)
        return twin


def network_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The dtype MLA-Gen's network runs in on ``device`` under a ``FastOptions.precision``.

    "bf16" always; "auto" too on GPUs with bfloat16 tensor cores (compute capability 8 or
    more: Ampere, Ada, Hopper, ...), where it is faster at every batch size and scores the
    same on test (docs/results.md); older GPUs emulate bfloat16 slowly and keep float32.
    None: the model's own dtype.
    """
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto" and device.type == "cuda":
        major, _ = torch.cuda.get_device_capability(device)
        return torch.bfloat16 if major >= 8 else None
    return None


def weights_version(model: nn.Module) -> tuple[Hashable, ...]:
    """Address and in-place version of every parameter and buffer: changes with the weights."""
    tensors = [*model.parameters(), *model.buffers()]
    # Tensors made under torch.inference_mode keep no version counter (reading it raises).
    return tuple(
        (t.data_ptr(), -1 if t.is_inference() else t._version, t.dtype, t.device) for t in tensors
    )


def network_dtype(model: nn.Module) -> torch.dtype:
    """The dtype a network's input must have (that of its weights)."""
    return next(model.parameters()).dtype


def call_network(net: nn.Module, x: Tensor, *args: object, **kwargs: object) -> Tensor:
    """``net(x, ...)`` with ``x`` cast to the network's dtype and the result cast back."""
    return net(x.to(network_dtype(net)), *args, **kwargs).to(x.dtype)


def call_network_attention(
    net: nn.Module, x: Tensor, *args: object, **kwargs: object
) -> tuple[Tensor, Tensor]:
    """``call_network`` with ``return_attention=True``: (output cast back to ``x``'s dtype,
    the network's attention maps as it returned them)."""
    out, attention = net(x.to(network_dtype(net)), *args, return_attention=True, **kwargs)
    return out.to(x.dtype), attention


@functools.cache
def can_compile() -> bool:
    """Whether ``torch.compile`` can build GPU kernels here (it needs Triton); warns once."""
    if importlib.util.find_spec("triton") is not None:
        return True
    warnings.warn(
        "compiled sampling needs Triton (pip install triton; Linux with a CUDA GPU): "
        "running uncompiled",
        stacklevel=3,
    )
    return False


@functools.cache
def compiled_trunk(trunk: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """``trunk`` through ``torch.compile``, one compiled function per trunk function.

    ``dynamic=None``: the first shape is compiled for exactly that shape; a second shape
    makes it recompile once with symbolic sizes, which then serves every clip length and
    batch (an evaluation generates dozens of lengths). ``fullgraph``: a trunk that cannot
    be traced whole is an error, not a silent slow path.
    """
    return torch.compile(trunk, dynamic=None, fullgraph=True)
