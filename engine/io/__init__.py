"""Files in and out: BVH (``bvh``, its length unit ``bvh_units``), previews (``render``),
AMASS-style SMPL parameters (``amass``) and writing without half-written files (``files``).
"""
