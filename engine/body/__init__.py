"""SMPL / SMPL-X bodies: reading a user's model file without running code
(``smpl_model_file``), fitting parameters to joints (``smpl_fit``) and the shaped rest body
with its per-frame channels (``smpl_body``).
"""
