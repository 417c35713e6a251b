"""Between the canonical 22 joints and other skeletons: onto any rig (``rig``), with the
bone maps that name a rig's bones (``presets``) and generated twist (``generated_twist``);
from other skeletons' BVH files to the canonical joints (``joint_map``).
"""
