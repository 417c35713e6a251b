"""Edits of a generated clip: clean-up (rigid bones, planted feet), the animator's mirror,
loop and retime, and key reduction of a bake.

``cleanup`` (run by ``generate`` on every clip), ``foot_cleanup`` (planted feet held, legs by
two-bone IK), ``clip_edit`` (mirror, loop, retime), ``key_reduction`` (fewest keys within a
tolerance).
"""
