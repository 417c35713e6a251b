"""The BVH reader under a few thousand seeded mutations of small files in real-world layouts
(tests/engine/bvh_fuzz.py; its long run on real files is recorded in docs/reliability.md)."""

import random
from collections import Counter

from bvh_fuzz import check_file, mutate, seed_files

MUTANTS = 3000


def test_every_mutant_reads_finite_or_raises_a_bvh_error_naming_file_and_line(tmp_path):
    seeds = seed_files(tmp_path / "seeds")
    assert [check_file(p).kind for p in seeds] == ["ok", "ok", "refused"]  # cmu: no joint map
    texts = [p.read_text() for p in seeds]
    rng = random.Random(14)
    kinds: Counter = Counter()
    defects = []
    path = tmp_path / "mutant.bvh"
    for n in range(MUTANTS):
        path.write_bytes(mutate(rng, texts[n % len(texts)]))
        outcome = check_file(path)
        kinds[outcome.kind] += 1
        located = outcome.detail.startswith(f"{path}:") and outcome.detail.split(":")[1].isdigit()
        if outcome.kind in ("other", "nonfinite") or (outcome.kind == "bvh_error" and not located):
            defects.append((n, outcome.kind, outcome.detail[:200]))
    assert not defects, defects[:5]
    # The mutations reach past the first error: many mutants still read, most are refused.
    assert kinds["ok"] + kinds["refused"] > MUTANTS // 20 and kinds["bvh_error"] > MUTANTS // 2
