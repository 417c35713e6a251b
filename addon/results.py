"""Where generated clips live between Generate and Bake.

Each entry of the scene's variation list carries its clip inside the .blend: the joints
(T, 22, 3) and the foot contacts (T, 4) as float32 ID-property arrays on the list entry
(``embed``), so a saved or shared file, undo and redo all keep every variation whatever
happens to this computer's cache (about 280 bytes a frame: 55 KB for a 10 s clip). The
full 263-dim features are kept only here, in memory and in a small ``.npz`` per clip in
the extension's user folder, a cache of the newest ``KEEP`` clips; nothing in the add-on
needs them once a clip is listed (a bake uses the joints and the contacts).
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.errors import MotionError

KEEP = 64  # clips kept on disk; older ones are deleted when new ones arrive


@dataclasses.dataclass
class Clip:
    """One generated clip.

    joints: (T, 22, 3) float32 metres, Y up (HumanML3D). features: (T, 263) float32, or
    None for a clip read back from a .blend or derived from another (mirrored, looped,
    retimed); contacts: (T, 4) foot contacts when features is None.
    """

    joints: np.ndarray
    features: np.ndarray | None
    fps: int
    prompt: str
    seed: int
    info: dict[str, Any] = dataclasses.field(default_factory=dict)  # plain JSON values
    contacts: np.ndarray | None = None

    @property
    def frames(self) -> int:
        return int(self.joints.shape[0])

    @property
    def foot_contacts(self) -> np.ndarray | None:
        """(T, 4) left ankle, left toe, right ankle, right toe contacts (1 = planted)."""
        if self.features is not None:
            from ..engine.motion.features import FOOT_CONTACT  # needs scipy: not at registration

            if self.features.shape[-1] == FOOT_CONTACT.stop:  # 263: HumanML3D's own contacts
                return np.asarray(self.features[:, FOOT_CONTACT], np.float32)
        return self.contacts  # (a 272 clip's features have no contact channel)


@dataclasses.dataclass(frozen=True)
class Stored:
    """A generation's clips once stored: the motion (for its diagnostics) and a key per clip."""

    motion: Any  # engine.motion.Motion
    keys: list[str]


_MEMORY: dict[str, Clip] = {}


def put(clip: Clip, folder: Path | None) -> str:
    """Keep ``clip`` (in memory, and in ``folder`` when given); returns its new key."""
    key = _keep(clip, folder)
    if folder is not None:
        _prune(folder, KEEP)
    return key


def _keep(clip: Clip, folder: Path | None) -> str:
    key = uuid.uuid4().hex
    _MEMORY[key] = clip
    if folder is not None:
        _write(folder, key, clip)
    return key


def put_motion(motion: Any, folder: Path | None) -> Stored:
    """Keep every clip of a generation (``engine.motion.Motion``); bpy-free, so a worker
    thread does it: compressing 16 clips of 9.6 s took 183 ms on Blender's main thread."""
    seed = int(motion.diagnostics.get("seed", 0))
    info = {
        "length_note": motion.diagnostics.get("length_note"),
        "seconds": motion.seconds,
        "sources": motion.diagnostics.get("sources"),  # checkpoint and encoder commits
    }
    clips = zip(motion.joints, motion.features, motion.prompts, strict=True)
    keys = [_keep(Clip(j, f, motion.fps, prompt, seed, info), folder) for j, f, prompt in clips]
    if folder is not None:
        _prune(folder, KEEP)
    return Stored(motion, keys)


def get(key: str, folder: Path | None) -> Clip:
    """The clip stored under ``key``; MotionError when it is gone from memory and disk."""
    clip = _MEMORY.get(key)
    if clip is None and folder is not None and (folder / f"{key}.npz").is_file():
        clip = _MEMORY[key] = _read(folder / f"{key}.npz")
    if clip is None:
        raise MotionError(
            "this variation's motion is no longer stored (its cache was cleared): generate it again"
        )
    return clip


def clear_memory() -> None:
    """Forget every in-memory clip (disk copies stay); used on unregister."""
    _MEMORY.clear()


def _write(folder: Path, key: str, clip: Clip) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{key}.partial.npz"
    meta = {"fps": clip.fps, "prompt": clip.prompt, "seed": clip.seed, "info": clip.info}
    arrays = {"joints": clip.joints, "meta": np.array(json.dumps(meta))}
    if clip.features is not None:
        arrays["features"] = clip.features
    else:
        arrays["contacts"] = clip.foot_contacts
    np.savez_compressed(partial, **arrays)
    partial.replace(folder / f"{key}.npz")  # atomic: a reader never sees half a file


def _read(path: Path) -> Clip:
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            features = np.asarray(data["features"], np.float32) if "features" in data else None
            contacts = np.asarray(data["contacts"], np.float32) if "contacts" in data else None
            return Clip(
                np.asarray(data["joints"], np.float32), features, int(meta["fps"]),
                str(meta["prompt"]), int(meta["seed"]), meta.get("info", {}), contacts,
            )  # fmt: skip
    except (OSError, ValueError, KeyError) as error:
        raise MotionError(f"{path}: cannot read the stored motion ({error})") from error


# ---- inside the .blend ---------------------------------------------------------------------

_JOINTS, _CONTACTS, _META = "kinetext_joints", "kinetext_contacts", "kinetext_clip"


def embed(item: Any, clip: Clip) -> None:
    """Store ``clip`` on the list entry ``item`` (ID properties: saved with the file)."""
    item[_JOINTS] = np.ascontiguousarray(clip.joints, np.float32).ravel()
    contacts = clip.foot_contacts
    if contacts is None:
        contacts = np.zeros((clip.frames, 4), np.float32)
    item[_CONTACTS] = np.ascontiguousarray(contacts, np.float32).ravel()
    item[_META] = json.dumps(
        {"fps": clip.fps, "prompt": clip.prompt, "seed": clip.seed, "info": clip.info}
    )


def embedded(item: Any) -> Clip | None:
    """The clip stored on ``item`` by ``embed``, or None (an entry from an older file)."""
    if _JOINTS not in item or _META not in item:
        return None
    meta = json.loads(item[_META])
    joints = np.frombuffer(item[_JOINTS], dtype=np.float32).reshape(-1, 22, 3).copy()
    contacts = np.frombuffer(item[_CONTACTS], dtype=np.float32).reshape(-1, 4).copy()
    return Clip(joints, None, int(meta["fps"]), str(meta["prompt"]), int(meta["seed"]),
                meta.get("info", {}), contacts)  # fmt: skip


_BAKE = "kinetext_bake"


def embed_in_action(action: Any, clip: Clip, frame_start: int, scene_fps: float) -> None:
    """Keep ``clip`` inside the Action baked from it (saved with the .blend), with the first
    frame and the scene's rate it was baked at, so a range can be regenerated later."""
    embed(action, clip)
    frames = round((clip.frames - 1) * scene_fps / clip.fps) + 1
    action[_BAKE] = json.dumps({"frame_start": frame_start, "fps": scene_fps, "frames": frames})


def baked_clip(action: Any) -> tuple[Clip, dict[str, Any]] | None:
    """(clip, {"frame_start", "fps", "frames"}) of an Action ``embed_in_action`` wrote, or None
    (an Action keyed by hand or by another tool)."""
    if action is None or _BAKE not in action:
        return None
    clip = embedded(action)
    return None if clip is None else (clip, json.loads(action[_BAKE]))


def clip_of(item: Any, folder: Path | None) -> Clip:
    """The clip of a list entry: from memory, else from the .blend, else from the cache."""
    clip = _MEMORY.get(item.key)
    if clip is None:
        clip = embedded(item)
        if clip is not None:
            _MEMORY[item.key] = clip
    return clip if clip is not None else get(item.key, folder)


def _prune(folder: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest clips in ``folder``."""
    files = sorted(folder.glob("*.npz"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in files[keep:]:
        if old.stem not in _MEMORY:
            old.unlink(missing_ok=True)
