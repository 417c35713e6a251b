"""One line per row of ``python -m training evaluate --out F.json`` files (device call output).

python docs/results/cleanup/call5/summary.py F.json [F.json ...]
"""

import json
import sys
from pathlib import Path

COLUMNS = (("FID", "fid"), ("R1", "top1"), ("match", "matching"), ("bv", "bone_var_max"),
           ("skate", "skating"), ("pen", "penetration_cm"), ("float", "floating_cm"),
           ("acc", "accel"), ("jerk", "jerk"))  # fmt: skip

for name in sys.argv[1:]:
    rows = json.loads(Path(name).read_text())["rows"]
    for label in ("real", "generated"):
        row = rows.get(label)
        if row:
            cells = " ".join(
                f"{short} {row[key]['mean']:.3f}" if row.get(key) else f"{short} -"
                for short, key in COLUMNS
            )
            print(f"{Path(name).stem:20s} {label[:4]} {cells}")
