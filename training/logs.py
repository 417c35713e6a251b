"""What a run reports: tensorboard scalars, a tqdm bar, log lines and ``summary.json``.

Only rank 0 writes; on other ranks every method is a no-op. Throughput is counted in global
samples (all ranks) per second of wall time: between log points for the scalars, and for the
whole loop plus the steady state after the first log point in the final summary (the first
steps include CUDA start-up and are not representative).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm


class RunLogger:
    def __init__(self, out_dir: Path, config: Any, info: Any, step: int):
        self.out_dir, self.config, self.info = out_dir, config, info
        self.main = info.is_main
        self.step = step
        self.writer = None
        self.bar = None
        self.marks: list[tuple[float, int]] = []  # (time, samples) at each log point

    def start(self, end: int) -> None:
        if not self.main:
            return
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(self.out_dir / "tensorboard"))
        self.bar = tqdm(total=end, initial=self.step, disable=not self.config.progress,
                        dynamic_ncols=True, desc=self.config.task)  # fmt: skip
        self.started = time.perf_counter()

    def scalars(self, values: dict[str, float], step: int, samples: int | None = None) -> None:
        """Log ``values`` at ``step``; with ``samples`` (global count so far) add samples/s."""
        if not self.main:
            return
        now = time.perf_counter()
        if samples is not None:
            last_time, last_samples = self.marks[-1] if self.marks else (self.started, None)
            if last_samples is not None and now > last_time:
                values = {
                    **values,
                    "samples_per_second": (samples - last_samples) / (now - last_time),
                }
            self.marks.append((now, samples))
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix(loss=f"{values.get('loss', float('nan')):.4g}")
        if samples is not None and (self.bar is None or self.bar.disable):
            text = " ".join(f"{k} {v:.4g}" for k, v in values.items())
            print(f"step {step}: {text}", flush=True)

    def tick(self, step: int) -> None:
        if self.bar is not None:
            self.bar.update(step - self.bar.n)

    def finish(self, steps: int, seconds: float, speed: float) -> dict[str, Any] | None:
        """Write ``summary.json`` and print the summary line (the GPU benchmark reads it).

        A call that trained no step (resuming a finished run) keeps the earlier summary."""
        if not self.main or steps == 0:
            if self.bar is not None:
                self.bar.close()
            if self.writer is not None:
                self.writer.close()
            return None
        steady = None
        if len(self.marks) >= 2:
            (t0, s0), (t1, s1) = self.marks[0], self.marks[-1]
            steady = (s1 - s0) / (t1 - t0) if t1 > t0 else None
        summary = {
            "task": self.config.task,
            "steps": steps,
            "seconds": round(seconds, 3),
            "samples_per_second": round(speed, 2),
            "samples_per_second_steady": None if steady is None else round(steady, 2),
            "global_batch": self.config.batch_size,
            "world_size": self.info.world_size,
            "device": str(self.info.device.type),
            "gpu": _gpu_name(self.info.device),
            "bf16": bool(self.config.bf16 and self.info.device.type == "cuda"),
        }
        (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()
        rate = summary["samples_per_second_steady"] or summary["samples_per_second"]
        print(
            f"done: {self.config.task} {steps} steps in {seconds:.1f} s, {rate:.1f} samples/s "
            f"(global batch {self.config.batch_size}, {self.info.world_size} x "
            f"{summary['gpu'] or self.info.device.type})",
            flush=True,
        )
        return summary


def _gpu_name(device: Any) -> str | None:
    if device.type != "cuda":
        return None
    import torch

    return torch.cuda.get_device_name(device)
