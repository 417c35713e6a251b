"""Kinetext motion engine: skeleton, HumanML3D features, BVH I/O, models and sampling.

A plain library (torch, numpy, transformers, huggingface_hub) with no Blender import, so the
same code runs in a training job, on the command line and inside Blender's Python. Imports
inside the package are relative so that the Blender extension can carry it as a
sub-package without clashing with another installed ``engine``.
"""

from .errors import MotionError

__all__ = ["MotionError"]
__version__ = "0.1.0"
