"""Round trip of pack-dataset -> unpack-dataset on a built data set: sizes, times, gaps.

.venv/bin/python docs/measure_pack_round_trip.py BUILT_DATASET SCRATCH_FOLDER
"""

import sys
import time
from pathlib import Path

from training.compact import pack_dataset, round_trip_gaps, unpack_dataset

if __name__ == "__main__":
    built, tmp = Path(sys.argv[1]), Path(sys.argv[2])
    t = time.perf_counter()
    pack = pack_dataset(built, tmp / "set.npz")
    tp = time.perf_counter() - t
    t = time.perf_counter()
    out = unpack_dataset(pack, tmp / "unpacked")
    tu = time.perf_counter() - t
    size = sum(p.stat().st_size for p in built.rglob("*") if p.is_file())
    packed = pack.stat().st_size
    print(f"built {size / 2**20:.1f} MiB, pack {packed / 2**20:.2f} MiB")
    print(f"pack {tp:.1f} s, unpack {tu:.1f} s")
    print(round_trip_gaps(built, out))
