"""What a checkpoint learned, so that it can say when a prompt is unlike anything it saw.

A generator trained on walks, waves and bows turns "a person sits down on a chair" into a
bow or a stand, and nothing in the motion tells the user why. A checkpoint therefore carries
a compact description of its training data, two files beside its weights:

    knowledge.json          vocabulary (action -> training clips), data sets (clips, hours,
                            licence), the kept captions, the threshold, the text encoder
    knowledge.safetensors   those captions' text-encoder vectors: int8 rows with a float16
                            scale each, and the float32 mean vector of all training captions

A prompt's *similarity* is the cosine between its pooled text-encoder vector and the nearest
kept caption's, both taken relative to the mean of all training captions (centred: every
caption says "a person ...", and without centring that shared part makes unrelated prompts
look close). Below ``threshold`` the prompt is reported as unlike the training data. The
captions kept are a farthest-point selection of the unique training captions (at most
``MAX_CAPTIONS``), so rare actions keep their caption; ``coverage`` records how close every
training caption is to a kept one. ``docs/knowledge.md`` calibrates the threshold.

Nothing here loads a model: ``build_knowledge`` takes the vectors, ``match`` the prompts'.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from ..errors import MotionError
from .weights import check_inside, read_json, write_json

KNOWLEDGE_JSON = "knowledge.json"
KNOWLEDGE_WEIGHTS = "knowledge.safetensors"
KNOWLEDGE_FORMAT = "kinetext-knowledge"
KNOWLEDGE_VERSION = 1
DEFAULT_THRESHOLD = 0.5  # calibrated in docs/knowledge.md
MAX_CAPTIONS = 512  # 512 x 384 int8 = 192 KiB for MiniLM
NEAREST = 3  # captions reported per prompt
UNKNOWN = "unknown: this checkpoint carries no description of its training data"


@dataclasses.dataclass
class Knowledge:
    """A checkpoint's description of its training data (see the module docstring)."""

    captions: list[str]  # K kept captions
    vectors: np.ndarray  # (K, D) float32 unit vectors, centred
    centre: np.ndarray  # (D,) float32 mean pooled vector of all training captions
    threshold: float
    vocabulary: dict[str, int]  # action -> training clips showing it
    datasets: list[dict[str, Any]]  # name, clips, hours, licence, attribution
    encoder: dict[str, Any]  # the text encoder config the vectors come from
    total_captions: int  # unique training captions described
    coverage: float  # lowest similarity of a training caption to its nearest kept one

    def match(self, prompts: Sequence[str], pooled: np.ndarray) -> list[PromptMatch]:
        """Each prompt's nearest kept captions; ``pooled`` (B, D) their encoder vectors."""
        pooled = np.asarray(pooled, np.float32)
        if pooled.ndim != 2 or pooled.shape[1] != self.vectors.shape[1]:
            raise MotionError(
                f"the checkpoint's knowledge holds {self.vectors.shape[1]}-dim text vectors "
                f"but its text encoder gives {pooled.shape[-1]}: it was described with "
                "another encoder; describe it again (python -m training describe)"
            )
        scores = _unit(pooled - self.centre) @ self.vectors.T  # (B, K)
        matches = []
        for prompt, row in zip(prompts, scores, strict=True):
            order = np.argsort(-row)[:NEAREST]
            nearest = [(self.captions[i], round(float(row[i]), 3)) for i in order]
            best = nearest[0][1] if nearest else -1.0
            matches.append(PromptMatch(prompt, best, nearest, best >= self.threshold))
        return matches

    def summary(self) -> dict[str, Any]:
        """What ``engine info`` and the add-on show (no vectors)."""
        return {
            "vocabulary": self.vocabulary, "datasets": self.datasets,
            "captions_kept": len(self.captions), "captions_total": self.total_captions,
            "coverage": self.coverage, "threshold": self.threshold,
        }  # fmt: skip


@dataclasses.dataclass
class PromptMatch:
    """How close one prompt is to the training captions."""

    prompt: str
    similarity: float  # to the nearest kept caption, centred cosine (-1..1)
    nearest: list[tuple[str, float]]  # (caption, similarity), best first
    known: bool  # similarity >= the checkpoint's threshold

    @property
    def warning(self) -> str | None:
        """One line for a prompt far from the training data; None for a known one."""
        if self.known:
            return None
        closest = self.nearest[0][0] if self.nearest else "?"
        return (
            f"this checkpoint was not trained on anything like '{self.prompt}'; nearest: "
            f"'{closest}' (similarity {self.similarity:.2f})"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data for diagnostics; ``warning`` travels with it (the add-on shows it
        without importing this module, which needs torch's safetensors reader)."""
        return {
            "prompt": self.prompt, "similarity": self.similarity, "known": self.known,
            "nearest": [{"caption": c, "similarity": s} for c, s in self.nearest],
            "warning": self.warning,
        }  # fmt: skip


# ---- building ------------------------------------------------------------------------------


def build_knowledge(
    captions: Sequence[str],
    pooled: np.ndarray,
    *,
    vocabulary: Mapping[str, int],
    datasets: Sequence[Mapping[str, Any]],
    encoder: Mapping[str, Any],
    max_captions: int = MAX_CAPTIONS,
    threshold: float = DEFAULT_THRESHOLD,
) -> Knowledge:
    """Describe training data from its unique ``captions`` and their pooled vectors (N, D).

    Keeps at most ``max_captions`` of them by farthest-point selection in the centred space
    (each next one is the caption worst covered so far), so a rare action is kept.
    """
    pooled = np.asarray(pooled, np.float32)
    if len(captions) == 0 or pooled.shape[0] != len(captions) or pooled.ndim != 2:
        raise MotionError(
            f"describing training data needs one vector per caption: {len(captions)} "
            f"captions, vectors {pooled.shape}"
        )
    if not 1 <= max_captions:
        raise MotionError(f"max_captions must be at least 1, got {max_captions}")
    if not np.isfinite(pooled).all():
        raise MotionError("the text encoder gave NaN or infinite vectors for the captions")
    centre = pooled.mean(axis=0)
    vectors = _unit(pooled - centre)
    kept, coverage = farthest_points(vectors, max_captions)
    return Knowledge(
        [captions[i] for i in kept], vectors[kept], centre, _check_threshold(threshold),
        dict(vocabulary), [dict(d) for d in datasets], dict(encoder), len(captions),
        round(coverage, 3),
    )  # fmt: skip


def farthest_points(vectors: np.ndarray, count: int) -> tuple[list[int], float]:
    """Indices of up to ``count`` unit rows, each the one least similar to those chosen
    before (starting from the most central), and the lowest similarity of any row to its
    nearest chosen one."""
    first = int(np.argmax(vectors @ vectors.mean(axis=0)))
    chosen = [first]
    best = vectors @ vectors[first]  # (N,) similarity to the nearest chosen row
    while len(chosen) < min(count, len(vectors)):
        worst = int(np.argmin(best))
        if best[worst] >= 1.0 - 1e-6:  # every row is (a duplicate of) a chosen one
            break
        chosen.append(worst)
        best = np.maximum(best, vectors @ vectors[worst])
    return chosen, float(best.min())


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-8)


def _check_threshold(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not -1 <= value <= 1:
        raise MotionError(f"knowledge threshold must be a number from -1 to 1, got {value!r}")
    return float(value)


# ---- files ---------------------------------------------------------------------------------


def _quantise(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 rows and a float16 scale per row (cosines change by ~1e-3)."""
    scales = np.maximum(np.abs(vectors).max(axis=1), 1e-8) / 127.0
    rows = np.clip(np.round(vectors / scales[:, None]), -127, 127).astype(np.int8)
    return rows, scales.astype(np.float16)


def write_knowledge(folder: str | Path, knowledge: Knowledge) -> None:
    """Write the two files into ``folder``, each to a temporary name then renamed; the JSON,
    written last, names the vector file's SHA-256, so a half-replaced pair is detected."""
    folder = Path(folder)
    rows, scales = _quantise(knowledge.vectors)
    tag = uuid.uuid4().hex[:8]
    weights_tmp = folder / f".{KNOWLEDGE_WEIGHTS}.partial-{tag}"
    json_tmp = folder / f".{KNOWLEDGE_JSON}.partial-{tag}"
    try:
        save_file(
            {"vectors": rows, "scales": scales, "centre": knowledge.centre.astype(np.float32)},
            str(weights_tmp), metadata={"format": KNOWLEDGE_FORMAT},
        )  # fmt: skip
        record = {
            "format": KNOWLEDGE_FORMAT, "format_version": KNOWLEDGE_VERSION,
            **knowledge.summary(), "encoder": knowledge.encoder,
            "vectors_sha256": _sha256(weights_tmp), "captions": knowledge.captions,
        }  # fmt: skip
        write_json(json_tmp, record)
        weights_tmp.chmod(json_tmp.stat().st_mode)  # safetensors writes 0600; match the JSON
        os.replace(weights_tmp, folder / KNOWLEDGE_WEIGHTS)
        os.replace(json_tmp, folder / KNOWLEDGE_JSON)
    finally:
        weights_tmp.unlink(missing_ok=True)
        json_tmp.unlink(missing_ok=True)


def has_knowledge(folder: str | Path) -> bool:
    return (Path(folder) / KNOWLEDGE_JSON).is_file()


def read_knowledge_summary(folder: str | Path, root: Path | None = None) -> dict[str, Any] | None:
    """``knowledge.json`` checked (no vectors: cheap enough for a UI), or None when absent."""
    folder = Path(folder)
    path = folder / KNOWLEDGE_JSON
    if not path.is_file():
        return None
    record = read_json(path, "knowledge description", folder if root is None else root)
    where = str(path)
    if not isinstance(record, dict) or record.get("format") != KNOWLEDGE_FORMAT:
        raise MotionError(f"{where}: not a kinetext knowledge file")
    version = record.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version > KNOWLEDGE_VERSION:
        raise MotionError(f"{where}: format version {version!r} is not one this kinetext reads")
    kinds = {"captions": list, "vocabulary": dict, "datasets": list, "encoder": dict,
             "captions_total": int, "vectors_sha256": str}  # fmt: skip
    for key, kind in kinds.items():
        if not isinstance(record.get(key), kind) or isinstance(record.get(key), bool):
            raise MotionError(f"{where}: '{key}' is missing or not {kind.__name__}")
    if not all(isinstance(c, str) for c in record["captions"]):
        raise MotionError(f"{where}: captions must be text")
    if not all(isinstance(n, int) for n in record["vocabulary"].values()):
        raise MotionError(f"{where}: vocabulary must map each action to a clip count")
    record["threshold"] = _check_threshold(record.get("threshold"))
    coverage = record.get("coverage")
    if not isinstance(coverage, (int, float)) or not math.isfinite(coverage):
        raise MotionError(f"{where}: 'coverage' must be a number")
    return record


def read_knowledge(folder: str | Path, root: Path | None = None) -> Knowledge | None:
    """The description stored in ``folder``, or None when it has none (a MoLingo release,
    a checkpoint exported before descriptions existed). A damaged or mismatched pair of
    files raises ``MotionError`` naming the file and the fix."""
    folder = Path(folder)
    record = read_knowledge_summary(folder, root)
    if record is None:
        return None
    path = folder / KNOWLEDGE_WEIGHTS
    fix = "describe the checkpoint again (python -m training describe) or delete knowledge.*"
    if not path.is_file():
        raise MotionError(f"{path}: missing, but {KNOWLEDGE_JSON} is there; {fix}")
    check_inside(path, folder if root is None else root)
    if _sha256(path) != record["vectors_sha256"]:
        raise MotionError(f"{path}: does not match {KNOWLEDGE_JSON} (checksum); {fix}")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise MotionError(f"{path}: unreadable safetensors file: {error}; {fix}") from error
    rows, scales, centre = (tensors.get(k) for k in ("vectors", "scales", "centre"))
    count = len(record["captions"])
    if (
        rows is None or scales is None or centre is None or rows.dtype != np.int8
        or rows.shape[0] != count or scales.shape != (count,) or centre.shape != rows.shape[1:]
    ):  # fmt: skip
        raise MotionError(f"{path}: vectors do not fit the {count} captions listed; {fix}")
    vectors = _unit(rows.astype(np.float32) * scales.astype(np.float32)[:, None])
    return Knowledge(
        record["captions"], vectors, centre.astype(np.float32), record["threshold"],
        record["vocabulary"], record["datasets"], record["encoder"], record["captions_total"],
        float(record["coverage"]),
    )  # fmt: skip


def check_encoder(knowledge: Knowledge, encoder_config: Mapping[str, Any], where: Path) -> None:
    """The description must come from the text encoder the checkpoint names (else its
    similarities mean nothing)."""
    keys = ("name", "kind", "max_tokens", "revision")
    mine = {k: knowledge.encoder.get(k) for k in keys}
    theirs = {k: encoder_config.get(k) for k in keys}
    if mine != theirs:
        raise MotionError(
            f"{where / KNOWLEDGE_JSON}: describes captions encoded by {mine}, but the "
            f"checkpoint's text encoder is {theirs}; describe it again (python -m training "
            "describe) or delete knowledge.*"
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def match_prompts(
    knowledge: Knowledge | None, encoder: Any, prompts: Sequence[str]
) -> list[dict[str, Any]] | None:
    """Per prompt, its nearest training captions and similarity (``PromptMatch.to_dict``);
    None when the checkpoint carries no description. ``encoder``: a ``TextEncoder``."""
    if knowledge is None:
        return None
    import torch

    with torch.no_grad():
        pooled = encoder.encode(list(prompts)).pooled.float().cpu().numpy()
    return [m.to_dict() for m in knowledge.match(prompts, pooled)]
