"""Kinetext for Blender: type a sentence in the 3D viewport's sidebar, get animation on a rig.

Registration is symmetric: each module registers its ``classes`` in order and removes them,
with its properties and handlers, in reverse. The modules are imported when Blender
registers the add-on, not when the package is imported, so tools such as
``python -m addon.build`` run without Blender; none of them imports torch, so the add-on
registers and draws its panel (saying what is missing) without it.
"""

from types import ModuleType


def _modules() -> tuple[ModuleType, ...]:
    from . import (
        bone_maps,
        knowledge,
        molingo_get,
        operators,
        panel,
        preferences,
        properties,
        smpl_operators,
        timeline,
    )

    return (preferences, properties, knowledge, operators, timeline, panel, bone_maps,
            smpl_operators, molingo_get)  # fmt: skip


def register() -> None:
    for module in _modules():
        module.register()


def unregister() -> None:
    for module in reversed(_modules()):
        module.unregister()
