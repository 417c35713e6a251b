"""Kinetext motion engine: skeleton, HumanML3D features, BVH I/O, models and sampling.

One folder per concept: ``motion`` (what a clip is: skeleton, rotations, kinematics,
features, ``Motion``), ``edit`` (clean-up and the animator's edits), ``io`` (files in and
out), ``retarget`` (onto rigs and from other skeletons), ``body`` (SMPL / SMPL-X),
``store`` (checkpoints, weights, the Hub), ``models`` (the networks), ``sampling`` (their
loops). At the top, what a user enters by: ``pipeline.generate``, ``sequence`` and
``timeline``, ``text_encoder``, ``generators``, ``config``, ``errors``, ``benchmark`` and
the command line (``cli``, ``python -m engine``).

A plain library (torch, numpy, transformers, huggingface_hub) with no Blender import, so the
same code runs in a training job, on the command line and inside Blender's Python. Imports
inside the package are relative so that the Blender extension can carry it as a
sub-package without clashing with another installed ``engine``.
"""

from .errors import MotionError

__all__ = ["MotionError"]
__version__ = "0.1.0"
