"""CPU training threads: one SAE training step (forward, losses, backward, AdamW) timed at
several torch thread counts, alone and as two concurrent processes (two CPU ranks of one
host, as ``torchrun --nproc_per_node 2`` or ``mp.spawn`` start them).

    .venv/bin/python docs/measure_cpu_threads.py [--steps 8] [--batch 16] [--frames 196]

Prints, per setting, wall seconds per step (the slowest process) and CPU seconds per step
(user + system of all processes: threads spinning on oversubscribed cores show up there).
The machine's load average is printed too: other jobs on the cores change every number.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def steps(threads: int, count: int, batch: int, frames: int, queue) -> None:
    """Run ``count`` SAE steps with ``threads`` torch threads; put (wall, cpu) seconds."""
    import torch

    from engine.models.autoencoder import AutoencoderConfig, MotionAutoencoder
    from training.tasks.autoencoder import reconstruction_losses

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = MotionAutoencoder(AutoencoderConfig.small())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, frames, 263) * 0.1
    mask = torch.ones(batch, frames, dtype=torch.bool)
    mean, std = torch.zeros(263), torch.ones(263)

    def step() -> None:
        optimizer.zero_grad()
        recon = model.decode(model.encode(x).sample())
        parts = reconstruction_losses(recon, x, mask, mean, std)
        (parts["features"] + parts["joints"] + 10 * parts["velocity"]).backward()
        optimizer.step()

    step()  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        step()
    queue.put((time.perf_counter() - wall, time.process_time() - cpu))


def run(processes: int, threads: int, args) -> tuple[float, float]:
    """(wall seconds per step of the slowest process, CPU seconds per step of all)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    jobs = [context.Process(target=steps, args=(threads, args.steps, args.batch, args.frames,
                                                queue)) for _ in range(processes)]  # fmt: skip
    for job in jobs:
        job.start()
    results = [queue.get() for _ in jobs]
    for job in jobs:
        job.join()
    return max(r[0] for r in results) / args.steps, sum(r[1] for r in results) / args.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--frames", type=int, default=196)
    args = parser.parse_args()
    import torch

    cores = len(os.sched_getaffinity(0))
    default = torch.get_num_threads()
    print(f"{cores} cores, torch default {default} threads, load {os.getloadavg()[0]:.1f}")
    settings = [(1, 1), (1, default), (2, default), (2, max(1, default // 2))]
    print("| processes | threads each | wall s/step | CPU s/step |")
    print("|---|---|---|---|")
    for processes, threads in settings:
        wall, cpu = run(processes, threads, args)
        print(f"| {processes} | {threads} | {wall:.2f} | {cpu:.2f} |", flush=True)
    print(f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
