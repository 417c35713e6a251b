"""Motion: the skeleton, rotations, kinematics and feature representations of a clip.

``skeleton`` (the canonical 22 joints), ``quaternion``, ``kinematics`` (the HumanML3D
reference's chain kinematics), ``rig_pose`` (rotations that pose a skeleton onto joints),
``features`` (the 263-dim HumanML3D features), ``representation_272`` (MoLingo 272's) and
``demo_clip`` (a procedural walk). ``Motion``, defined here, is the result of generation: joint
positions and features for each generated clip.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .skeleton import NUM_JOINTS


@dataclasses.dataclass
class Motion:
    """``N`` generated clips of ``T`` frames (every clip of one call has the same length).

    joints: (N, T, 22, 3) float32 positions in metres, Y up, the HumanML3D skeleton.
    features: (N, T, 263) float32 HumanML3D features, denormalised.
    prompts: the prompt each clip was generated from (N entries; a prompt repeats once per
        variation, variations of one prompt are adjacent).
    diagnostics: plain values about the run (length rounding, guidance, timings, ...).
    """

    joints: np.ndarray
    features: np.ndarray
    fps: int
    prompts: list[str]
    diagnostics: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        n, t = self.features.shape[:2]
        if self.joints.shape != (n, t, NUM_JOINTS, 3):
            raise ValueError(
                f"joints {self.joints.shape} do not match features {self.features.shape}"
            )
        if len(self.prompts) != n:
            raise ValueError(f"{len(self.prompts)} prompts for {n} clips")

    def __len__(self) -> int:
        return self.joints.shape[0]

    @property
    def num_frames(self) -> int:
        return self.joints.shape[1]

    @property
    def seconds(self) -> float:
        return self.num_frames / self.fps
