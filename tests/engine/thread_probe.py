"""Probe: generate from 4 threads at once and count calls that raise or differ from the
same call made alone (the measurement in docs/reliability.md; tests/engine/test_threads.py
asserts the result).

    OMP_NUM_THREADS=1 .venv/bin/python tests/engine/thread_probe.py [--engine-root DIR]

``--engine-root`` imports ``engine`` from another checkout (e.g. an older commit unpacked
with ``git archive COMMIT engine | tar -x -C DIR``) to measure it before a change.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from pathlib import Path

THREADS = 4
PROMPTS = (
    "a person walks",
    "a person jumps up and down twice",
    "someone waves",
    "a person slowly turns around to the left and sits down on a chair",
)


def _import_engine(root: str | None):
    if root is not None:  # before the editable install's finder
        sys.path.insert(0, root)
        sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    sys.path.insert(1, str(Path(__file__).resolve().parent))
    import engine.pipeline

    return engine.pipeline.generate


def probe(generate, checkpoint, generator: str, rounds: int, **options) -> tuple[int, int, int]:
    """(calls, raised, differ) for different prompts and one prompt at seeds 0..3."""
    import numpy as np

    jobs = ([(p, 0) for p in PROMPTS] + [(PROMPTS[0], s) for s in range(THREADS)]) * rounds

    def call(prompt: str, seed: int):
        return generate(prompt, seed=seed, checkpoint=checkpoint, device="cpu",
                        generator=generator, **options)  # fmt: skip

    alone = {job: call(*job) for job in set(jobs)}
    results: list = [None] * len(jobs)
    start = threading.Barrier(THREADS)

    def work(first: int) -> None:
        start.wait()
        for i in range(first, len(jobs), THREADS):
            try:
                results[i] = call(*jobs[i])
            except Exception as error:  # noqa: BLE001 - counted, the point of the probe
                results[i] = error

    threads = [threading.Thread(target=work, args=(k,)) for k in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    raised = sum(isinstance(r, Exception) for r in results)
    differ = sum(
        not isinstance(r, Exception) and not np.array_equal(r.features, alone[job].features)
        for r, job in zip(results, jobs, strict=True)
    )
    return len(jobs), raised, differ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine-root", default=None)
    args = parser.parse_args()
    generate = _import_engine(args.engine_root)
    from pipeline_fixtures import save_tiny_checkpoint

    tiny = save_tiny_checkpoint(Path(tempfile.mkdtemp()) / "tiny")
    cases = [("tiny", tiny, 3, {"seconds": 2.0, "steps": 3}),
             ("shipped", None, 1, {"seconds": 1.0, "steps": 4})]  # fmt: skip
    for label, checkpoint, rounds, options in cases:
        for generator in ("mlagen", "molingo"):
            calls, raised, differ = probe(generate, checkpoint, generator, rounds, **options)
            same = calls - raised - differ
            print(f"{label} {generator}: {calls} calls on {THREADS} threads: {raised} raised, "
                  f"{differ} differ, {same} equal bit for bit")  # fmt: skip


if __name__ == "__main__":
    main()
