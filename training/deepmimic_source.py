"""The DeepMimic source adapter: motion files, their captions and their terms (``--format
deepmimic``).

A DeepMimic folder (the repository's ``data/``, or a folder above it) holds
``characters/*.txt`` and ``motions/**/*.txt``. Each motion's name (``humanoid3d_cartwheel``,
``sie_humanoid3d_run_left03``) says what it shows; the captions below are written per name,
in several free phrasings (looping motions are built as several cycles, so their captions
allow for repeats). Left out, each with its reason: ``*_mirror`` files (the builder mirrors
every clip itself), a file whose frames repeat or mirror an earlier one, motions under
``amass/`` (AMASS terms: research only, no redistribution of what is derived), and names
without captions here. Terms per clip: DeepMimic's own motions MIT, ``sie/`` CC BY-NC 4.0.
"""

import json
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

from training.sources import ClipSource, Discovery, Skipped

DRAWN_FROM = 3
"""Actions with at least this many clips have them drawn into train/val/test; rarer ones train."""
MIT = "MIT (DeepMimic, Xue Bin Peng et al.)"
SIE = "CC BY-NC 4.0 (c) 2021 Sony Interactive Entertainment"
ATTRIBUTION_MIT = (
    "DeepMimic reference motions (Peng, Abbeel, Levine, van de Panne 2018; "
    "github.com/xbpeng/DeepMimic), MIT licence"
)
ATTRIBUTION_SIE = "DeepMimic motions/sie: (c) 2021 Sony Interactive Entertainment, CC BY-NC 4.0"
LICENCE_MIT = "MIT licence (DeepMimic motions): see LICENSE."
LICENCE_SIE = (
    "The Sony Interactive Entertainment motions (motions/sie) are under Creative Commons "
    "Attribution-NonCommercial 4.0 International (CC BY-NC 4.0), "
    "https://creativecommons.org/licenses/by-nc/4.0/ : non-commercial use only; anything "
    "trained on them carries the attribution above."
)

CAPTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "backflip": ("backflip", (
        "a person does a backflip", "someone jumps and flips over backwards, landing on their feet",
        "a person performs back somersaults one after another", "a figure does backflips",
    )),
    "cartwheel": ("cartwheel", (
        "a person does a cartwheel", "someone flips sideways over their hands",
        "a person turns cartwheels", "a figure wheels sideways, hands on the floor, legs over",
    )),
    "crawl": ("crawl", (
        "a person crawls forward on hands and knees", "someone crawls on all fours",
        "a person is crawling along the floor", "a figure crawls forward",
    )),
    "dance_a": ("dance", (
        "a person dances", "someone dances in place, swinging their arms",
        "a person does an energetic dance", "a figure dances with big arm movements",
    )),
    "dance_b": ("dance", (
        "a person dances", "someone does a dance, stepping and swaying",
        "a person dances in place", "a figure dances to music",
    )),
    "dance_spin": ("dance spin", (
        "a person dances and spins around", "someone twirls while dancing",
        "a person does a spinning dance move", "a figure pirouettes",
    )),
    "getup_facedown": ("get up", (
        "a person gets up from lying face down", "someone lying on their stomach pushes up "
        "and stands", "a person rises from the floor to their feet", "a figure stands up "
        "from lying prone",
    )),
    "getup_faceup": ("get up", (
        "a person gets up from lying on their back", "someone lying face up sits up and "
        "stands up", "a person rises from the ground", "a figure gets back up on their feet",
    )),
    "jog": ("jog", (
        "a person jogs forward", "someone jogs", "a person runs slowly forward",
        "a figure jogs at an easy pace",
    )),
    "jump": ("jump", (
        "a person jumps forward", "someone does a long jump with both feet",
        "a person leaps forward and lands", "a figure jumps forward again and again",
    )),
    "kick": ("kick", (
        "a person kicks with the right leg", "someone does a high kick with their right foot",
        "a person kicks forward", "a figure kicks high with the right leg",
    )),
    "punch": ("punch", (
        "a person punches with the right hand", "someone throws a right punch",
        "a person punches forward", "a figure jabs with the right fist",
    )),
    "roll": ("roll", (
        "a person does a forward roll", "someone rolls forward on the ground and gets up",
        "a person dives into a forward roll", "a figure somersaults forward on the floor",
    )),
    "run": ("run", (
        "a person runs forward", "someone is running", "a person sprints ahead",
        "a figure runs fast",
    )),
    "sideflip": ("side flip", (
        "a person does a side flip", "someone jumps and flips sideways in the air",
        "a person performs a side somersault", "a figure does side flips",
    )),
    "spin": ("spin", (
        "a person spins around in place", "someone turns around on the spot",
        "a person twirls around", "a figure spins in a full circle",
    )),
    "spinkick": ("spin kick", (
        "a person does a spinning kick", "someone spins around and kicks",
        "a person does a roundhouse kick while turning", "a figure spins and kicks high",
    )),
    "stealthy_walk": ("sneak", (
        "a person sneaks forward", "someone walks stealthily, crouched", "a person creeps "
        "forward quietly", "a figure tiptoes forward carefully",
    )),
    "walk": ("walk", (
        "a person walks forward", "someone walks", "a person walks straight ahead",
        "a figure walks at a normal pace",
    )),
    "long_walk": ("walk", (
        "a person walks around", "someone walks and turns", "a person walks along a curving "
        "path", "a figure walks about, changing direction",
    )),
    "zombie_walk": ("zombie walk", (
        "a person walks like a zombie", "someone shuffles forward like a zombie with arms "
        "out", "a person staggers forward, arms stretched in front", "a figure lurches "
        "forward like a zombie",
    )),
    "long_zombie": ("zombie walk", (
        "a person walks around like a zombie", "someone shuffles about like a zombie",
        "a person staggers around with arms stretched out", "a figure lurches around slowly",
    )),
    "run_forward": ("run", (
        "a person runs forward", "someone runs straight ahead", "a person is running",
        "a figure runs forward quickly",
    )),
    "run_left": ("run turn left", (
        "a person runs and turns left", "someone runs in a curve to the left",
        "a person running turns to the left", "a figure runs forward, bending left",
    )),
    "run_right": ("run turn right", (
        "a person runs and turns right", "someone runs in a curve to the right",
        "a person running turns to the right", "a figure runs forward, bending right",
    )),
    "punch_forward": ("punch", (
        "a person punches forward", "someone throws punches straight ahead",
        "a person punches with the right fist", "a figure boxes, punching forward",
    )),
    "punch_left": ("punch", (
        "a person punches to the left", "someone turns and punches to their left",
        "a person throws a punch to the left side", "a figure punches toward the left",
    )),
}  # fmt: skip


def motion_key(path: Path) -> str:
    """The motion's name without source prefix, character name and take number:
    ``sie_humanoid3d_run_left03`` -> ``run_left``."""
    stem = path.stem.lower()
    stem = re.sub(r"^(sie_)?[a-z0-9]*humanoid3d_", "", stem)
    return re.sub(r"\d+$", "", stem)


def motion_files(root: Path) -> list[Path]:
    """Every ``*.txt`` under a ``motions`` folder of ``root``, sorted by relative path."""
    depth = len(root.parts)
    found = [p for p in root.rglob("*.txt") if p.is_file() and "motions" in p.parts[depth:]]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def looks_like_deepmimic(root: Path) -> bool:
    """A folder holding DeepMimic characters and motions (and no BVH files)."""
    has_character = any(root.rglob("characters/*.txt"))
    has_bvh = any(p.suffix.lower() == ".bvh" for p in root.rglob("*"))
    return has_character and not has_bvh and bool(motion_files(root))


def _fingerprints(path: Path) -> tuple[str, str] | None:
    """A key that a file and its mirror share (the root's height and its step lengths over
    the floor, which mirroring keeps), and the frames' own key; None if unreadable."""
    try:
        frames = np.array(json.loads(path.read_text(encoding="utf-8"))["Frames"], float)
        steps = np.linalg.norm(np.diff(frames[:, [1, 3]], axis=0), axis=-1)
        shape = np.round(np.concatenate([frames[:, 2], steps]), 4)
        return shape.tobytes().hex(), np.round(frames, 5).tobytes().hex()
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None  # the reader reports the file's problem when it is built


def _leave_out(path: Path, name: str, seen: dict[str, str]) -> str | None:
    """Why a motion file is left out, or None to build it."""
    if "amass" in path.parts:
        return "derived from AMASS, whose terms forbid redistributing what is made from it"
    if path.stem.lower().endswith("_mirror"):
        return "a mirrored copy: the builder mirrors every clip itself"
    if motion_key(path) not in CAPTIONS:
        return f"no captions known for the motion '{motion_key(path)}'"
    keys = _fingerprints(path)
    if keys is not None:
        for key in keys:
            if key in seen:
                return f"repeats or mirrors {seen[key]} (the builder mirrors every clip itself)"
        for key in keys:
            seen[key] = name
    return None


def pin_rare_actions(clips: list[ClipSource]) -> list[ClipSource]:
    """Clips of an action with fewer than ``DRAWN_FROM`` clips, pinned to the train split:
    a model cannot learn a cartwheel that only the test split holds."""
    counts = Counter(c.group for c in clips)
    return [replace(c, split="train") if counts[c.group] < DRAWN_FROM else c for c in clips]


def discover_deepmimic(root: Path) -> Discovery:
    """The DeepMimic adapter: one clip per motion file, captions from its name."""
    clips, skipped, seen = [], [], {}
    for path in motion_files(root):
        name = path.relative_to(root).as_posix()
        reason = _leave_out(path, name, seen)
        if reason is not None:
            skipped.append(Skipped(name, reason))
            continue
        content, captions = CAPTIONS[motion_key(path)]
        terms = SIE if "sie" in path.parts else MIT
        labels = {"content": content}
        clips.append(ClipSource(path, name, captions, labels, content, terms=terms))
    clips = pin_rare_actions(clips)
    has_sie = any(c.terms == SIE for c in clips)
    attribution = ATTRIBUTION_MIT + ("; " + ATTRIBUTION_SIE if has_sie else "")
    licence = LICENCE_MIT + (" " + LICENCE_SIE if has_sie else "")
    licences = sorted(root.rglob("LICENSE-MIT"))[:1]
    if has_sie:
        licences += sorted(root.rglob("sie/LICENSE"))[:1]
    return Discovery(clips, skipped, attribution, licences[0] if licences else None, licence,
                     tuple(licences[1:]))  # fmt: skip
