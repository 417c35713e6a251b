"""The engine's tests mirror its packages (``tests/engine/io/`` tests ``engine/io/``).

Helpers shared across those folders (``pipeline_fixtures``, ``bvh_fuzz``) sit here and are
imported by plain name, like the helpers beside their tests: this folder goes on ``sys.path``
before any test below it is collected.
"""

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
