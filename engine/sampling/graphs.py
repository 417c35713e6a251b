"""CUDA-graph helpers for the samplers: capture a sampling step once per shape, replay it after.

Why: at batch 1 a sampling step is hundreds of tiny kernels, and launching them one by one
from Python costs far more than running them (the GPU idles between launches). A CUDA graph
records the launches once and replays them all with one call. A graph replays fixed memory
addresses, so a captured step reads and writes only "static" tensors allocated before the
capture and updated in place between replays; random numbers are drawn outside the graph
(into static buffers) so the generator's stream stays exactly the eager one.

Also here: the inference precision switch (``FastOptions``), applied around a whole sampling
call, and a small per-model cache of captured sessions keyed by shapes and by the addresses
of the model's parameters (a model moved or reloaded gets new graphs, never stale ones).
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import MotionError

PRECISIONS = ("auto", "fp32", "tf32", "bf16")
# Products with fewer rows than this run in IEEE float32 under "auto". Measured on an H200
# (docs/benchmarks.md, (rows, 256) x (256, 256)): 8 rows 3.7 us IEEE vs 5.6 us TF32, but
# from 32 rows TF32 wins (5.7 vs 8.9 us): the flow head's thin batch-1 products stay IEEE.
SMALL_PRODUCT_ROWS = 16
SESSIONS_PER_MODEL = 4  # captured sessions kept per model (each holds its graphs' memory)
LOCK = threading.RLock()  # static buffers are shared: one graphed sampling call at a time


@dataclass(frozen=True)
class FastOptions:
    """How sampling runs on a CUDA device (the CPU path never changes).

    enabled: the static-shape sampling path (no host syncs, precomputed constants); off
        means the reference loop, kernel by kernel, as on the CPU.
    graphs: capture each sampling step as a CUDA graph (needs ``enabled``).
    precision: float32 matrix products as "fp32" (IEEE), "tf32" (Ampere/Hopper tensor
        cores, ~1e-3 relative error per product), "auto": TF32 for products of at least
        ``SMALL_PRODUCT_ROWS`` rows, IEEE below (faster there), and MLA-Gen as a bfloat16
        copy of its weights on GPUs with bfloat16 tensor cores (``network_precision``), or
        "bf16": MLA-Gen's bfloat16 copy everywhere, MoLingo autocast to bfloat16.
    compile: MLA-Gen's trunk through ``torch.compile`` (fused kernels; needs Triton). The
        first call of each new shape pays the compilation (seconds to a minute), so it pays
        off for many clips at once (evaluation, batch generation), not for one clip.
    """

    enabled: bool = True
    graphs: bool = True
    precision: str = "auto"
    compile: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise MotionError(f"precision {self.precision!r} is not one of {PRECISIONS}")


def default_options() -> FastOptions:
    """``FastOptions()``, or everything off when ``KINETEXT_FAST_SAMPLING=0`` is set."""
    if os.environ.get("KINETEXT_FAST_SAMPLING", "1") == "0":
        return FastOptions(enabled=False, graphs=False, precision="fp32")
    return FastOptions()


def use_fast_path(options: FastOptions | None, device: torch.device) -> bool:
    """Whether a sampler should take its static-shape CUDA path for this call: not while
    gradients are recorded, nor inside a caller's autocast (a training loop's mixed
    precision), where the reference loop runs as it always did."""
    options = default_options() if options is None else options
    return (
        options.enabled
        and device.type == "cuda"
        and not torch.is_grad_enabled()
        and not torch.is_autocast_enabled("cuda")
    )


def mode_key() -> tuple[bool]:
    """Part of every session's key: buffers made under ``torch.inference_mode`` cannot be
    updated outside it (and the other way round)."""
    return (torch.is_inference_mode_enabled(),)


@contextlib.contextmanager
def product_precision(precision: str, rows: int) -> Iterator[None]:
    """Inside a sampling call at precision "auto": IEEE products for thin (< SMALL_PRODUCT_ROWS
    rows) ones. Captured graphs keep the kernels chosen here."""
    if precision != "auto" or rows >= SMALL_PRODUCT_ROWS:
        yield
        return
    try:
        before: str | None = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("highest")
    except RuntimeError:  # mixed old and new TF32 switches: leave them
        before = None
    try:
        yield
    finally:
        if before is not None:
            torch.set_float32_matmul_precision(before)


@contextlib.contextmanager
def inference_precision(
    precision: str, device: torch.device, autocast: bool = True
) -> Iterator[None]:
    """Matrix-product precision for the duration of a sampling call on ``device`` (CUDA);
    "bf16" autocasts unless ``autocast`` is False (the sampler runs a bfloat16 copy).

    The setting is process-wide in PyTorch, so it is restored on exit. Graph capture bakes
    in the kernels chosen under it, which is why the precision is part of a session's key.
    """
    if device.type != "cuda":
        yield
        return
    try:
        before: str | None = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("highest" if precision == "fp32" else "high")
    except RuntimeError:  # the caller mixed PyTorch's old and new TF32 switches: leave them
        before = None
    try:
        if precision == "bf16" and autocast:
            # cache_enabled=False: cached weight casts would be baked into a captured graph.
            with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
                yield
        else:
            yield
    finally:
        if before is not None:
            torch.set_float32_matmul_precision(before)


class StepGraph:
    """``fn()`` captured as a CUDA graph; ``replay()`` runs it again on the current buffers.

    ``fn`` must take no arguments, read and write only tensors that outlive it, and return
    nothing that is used later. It is run once eagerly on a side stream first (lazy
    initialisation of kernels and library handles must not happen during capture); the
    tensors in ``state`` are saved before that run and restored after it, so capturing
    leaves the sampler's state exactly as it was and every real step is a replay.

    Off CUDA (tests on the CPU) nothing is captured and ``replay()`` calls ``fn()``, so the
    code around the graphs runs everywhere.
    """

    def __init__(
        self, fn: Callable[[], Any], state: Sequence[Tensor], device: torch.device, pool: Any = None
    ):
        self.fn = fn
        self.graph = None
        if device.type != "cuda":
            return
        saved = [t.clone() for t in state]
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            fn()
            for tensor, copy in zip(state, saved, strict=True):
                tensor.copy_(copy)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = _capture(fn, pool)

    def replay(self) -> None:
        if self.graph is None:
            self.fn()
        else:
            self.graph.replay()


def _capture(fn: Callable[[], Any], pool: Any) -> Any:
    """Capture ``fn`` as a CUDA graph, or None where capture fails (then it runs eagerly).

    Python's garbage collector is run before and held off during capture: a collection
    inside it can free an evicted session's graph, and destroying a graph while another
    stream captures invalidates that capture (seen in evaluation runs with many shapes).
    """
    collect = gc.isenabled()
    gc.collect()
    gc.disable()
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph, pool=pool, capture_error_mode="thread_local"):
            fn()
    except RuntimeError as error:  # torch.AcceleratorError derives from RuntimeError
        warnings.warn(
            f"CUDA graph capture failed, running this step eagerly: {error}", stacklevel=3
        )
        torch.cuda.synchronize()
        return None
    finally:
        if collect:
            gc.enable()
    return graph


def on_device(device: torch.device) -> contextlib.AbstractContextManager:
    """Make ``device`` the current CUDA device (graphs capture there); no-op elsewhere."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def new_pool(device: torch.device) -> Any:
    """A memory pool that the graphs of one session share (they never run concurrently and
    keep nothing in it between replays); None off CUDA."""
    return torch.cuda.graph_pool_handle() if device.type == "cuda" else None


def parameter_signature(module: nn.Module) -> tuple[Hashable, ...]:
    """Addresses, dtypes and devices of ``module``'s parameters and buffers.

    A captured graph reads weights at these addresses: in-place updates (training) are
    seen by later replays, but a moved, re-cast or reloaded model has new addresses and so
    gets new graphs.
    """
    tensors = [*module.parameters(), *module.buffers()]
    return tuple((t.data_ptr(), t.dtype, t.device) for t in tensors)


_SESSIONS: weakref.WeakKeyDictionary[nn.Module, OrderedDict[Hashable, Any]] = (
    weakref.WeakKeyDictionary()
)


def cached_session(model: nn.Module, key: Hashable, build: Callable[[], Any]) -> Any:
    """The session stored for ``(model, key)``, built with ``build()`` on first use.

    Least recently used sessions beyond ``SESSIONS_PER_MODEL`` are dropped (with their
    graphs and memory); the cache dies with the model.
    """
    key = (key, parameter_signature(model))
    sessions = _SESSIONS.setdefault(model, OrderedDict())
    if key in sessions:
        sessions.move_to_end(key)
        return sessions[key]
    session = build()
    sessions[key] = session
    while len(sessions) > SESSIONS_PER_MODEL:
        sessions.popitem(last=False)
    return session


def clear_sessions() -> None:
    """Drop every captured graph (e.g. to free GPU memory)."""
    _SESSIONS.clear()


def bucket(length: int, multiple: int = 16) -> int:
    """``length`` rounded up to a multiple: padded text lengths share captured graphs."""
    return -(-length // multiple) * multiple
