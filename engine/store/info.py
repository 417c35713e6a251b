"""What a checkpoint is, without loading it: ``python -m engine info [CHECKPOINT]``.

Data sets, action vocabulary, sizes, licences and sampling defaults, from ``config.json``,
the weight files' headers and the description of its training data (``engine.store.knowledge``);
a checkpoint without that description (a converted MoLingo release) says "unknown" there.
``prompt_matches`` checks prompts against it with the checkpoint's own text encoder.
"""

from __future__ import annotations

import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Any

from .checkpoint import CHECKPOINT_FILES, read_checkpoint_config
from .hub import Source, resolve_source
from .knowledge import (
    KNOWLEDGE_JSON,
    KNOWLEDGE_WEIGHTS,
    UNKNOWN,
    match_prompts,
    read_knowledge,
    read_knowledge_summary,
)
from .weights import read_weight_headers

_BYTES = {"F64": 8, "F32": 4, "I64": 8, "I32": 4, "F16": 2, "BF16": 2, "I16": 2, "I8": 1,
          "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}  # fmt: skip


def checkpoint_source(
    checkpoint: str | Path | None, revision: str | None = None, offline: bool = False
) -> Source:
    """The folder of ``checkpoint`` (None: the embedded default), fetched if a Hub id (only
    from the local cache when ``offline``: else ``NotDownloaded``)."""
    from ..pipeline import DEFAULT_CHECKPOINT

    source = checkpoint or DEFAULT_CHECKPOINT
    return resolve_source(source, revision, CHECKPOINT_FILES, offline=offline)


def checkpoint_info(checkpoint: str | Path | None = None, revision: str | None = None) -> dict:
    """Everything ``info`` prints, as plain data (``--json``)."""
    from ..generators import GENERATORS

    source = checkpoint_source(checkpoint, revision)
    folder = source.folder
    header = read_checkpoint_config(folder, source.root)
    specs, sources = read_weight_headers(folder, source.root)
    params: dict[str, int] = defaultdict(int)
    dtypes: dict[str, set[str]] = defaultdict(set)
    for name, (dtype, shape) in specs.items():
        model = name.split(".", 1)[0]
        count = 1
        for dim in shape:
            count *= dim
        params[model] += count
        dtypes[model].add(dtype)
    weight_files = sorted(set(sources.values()))
    knowledge = read_knowledge_summary(folder, source.root)
    generators = [g for g in GENERATORS if g in header.models]
    meta = header.metadata
    return {
        "checkpoint": str(folder),
        "source": source.record(),
        "models": {
            name: {
                "class": entry["class"],
                "parameters": params.get(name, 0),
                "dtype": sorted(dtypes.get(name, ())),
            }
            for name, entry in header.models.items()
        },  # fmt: skip
        "weights_bytes": sum((folder / f).stat().st_size for f in weight_files),
        "weight_files": len(weight_files),
        "knowledge_bytes": sum(
            (folder / f).stat().st_size
            for f in (KNOWLEDGE_JSON, KNOWLEDGE_WEIGHTS)
            if (folder / f).is_file()
        ),  # fmt: skip
        "text_encoder": header.text_encoder.to_dict(),
        "fps": header.fps,
        "max_seconds": meta.get("max_frames", 196) / header.fps,
        "default_generator": meta.get("generator", generators[0] if generators else None),
        "sampling_defaults": {g: _defaults(meta, g, folder) for g in generators},
        "license": header.license,
        "attribution": header.attribution,
        "trained_on": meta.get("trained_on"),
        "knowledge": knowledge,
    }


def _defaults(metadata: dict[str, Any], name: str, folder: Path) -> dict[str, Any]:
    """The settings ``name`` samples with when a call gives none (as ``generate`` merges
    them: engine defaults < the checkpoint's per-generator defaults < its "sampling")."""
    from ..generators import sampling_settings

    per_generator = metadata.get("sampling_defaults", {}).get(name, {})
    where = f"{folder}: sampling settings of {name}"
    flat = metadata.get("sampling", {})
    return sampling_settings(name, per_generator, flat, where=where).record()


def format_info(info: dict[str, Any], width: int = 100) -> str:
    """``checkpoint_info`` as the text ``engine info`` prints."""
    out = [f"checkpoint: {info['checkpoint']}"]
    record = info["source"]
    if record.get("repo_id"):
        out.append(f"  from the Hub: {record['repo_id']} at commit {record['commit']}")
    out.append("models:")
    for name, model in info["models"].items():
        dtype = "/".join(d.lower() for d in model["dtype"])
        out.append(f"  {name}: {model['class']}, {model['parameters'] / 1e6:.1f} M "
                   f"parameters ({dtype})")  # fmt: skip
    out.append(f"size: {info['weights_bytes'] / 1e6:.1f} MB of weights in "
               f"{info['weight_files']} file(s); description of the training data "
               f"{info['knowledge_bytes'] / 1024:.0f} KiB")  # fmt: skip
    encoder = info["text_encoder"]
    out.append(f"text encoder: {encoder['name']} (reads {encoder['max_tokens']} tokens)")
    out.append(f"motion: {info['fps']} fps, up to {info['max_seconds']:.1f} s")
    out.append(f"sampling defaults (generator {info['default_generator']} by default):")
    for name, settings in info["sampling_defaults"].items():
        text = ", ".join(f"{k} {v}" for k, v in settings.items())
        out.append(f"  {name}: {text}")
    knowledge = info["knowledge"]
    out.append("trained on:")
    if knowledge is None:
        out.append(f"  {UNKNOWN}" + (f" (its config says: {info['trained_on']})"
                                     if info["trained_on"] else ""))  # fmt: skip
    else:
        for data in knowledge["datasets"]:
            hours = data.get("hours")
            whole = f" (the whole data set: {hours:.2f} h)" if isinstance(hours, float) else ""
            out.append(f"  {data.get('name', '?')}: {data.get('clips', '?')} clips of its "
                       f"{data.get('split', '?')} split{whole}")  # fmt: skip
            if data.get("licence"):
                out += _wrapped(f"licence: {data['licence']}", width, "    ")
    out += _wrapped(f"licence of the weights: {info['license']}", width)
    out += _wrapped(f"attribution: {info['attribution']}", width)
    if knowledge is None:
        out.append("vocabulary: unknown")
    else:
        vocabulary = knowledge["vocabulary"]
        actions = ", ".join(f"{a} ({n})" for a, n in vocabulary.items())
        out += _wrapped(f"vocabulary ({len(vocabulary)} actions, training clips each): "
                        f"{actions}", width)  # fmt: skip
        out.append(f"captions: {knowledge['captions_total']} unique, "
                   f"{len(knowledge['captions'])} kept (every one within similarity "
                   f"{knowledge['coverage']:.2f} of a kept one); prompts below "
                   f"{knowledge['threshold']:.2f} are flagged")  # fmt: skip
    return "\n".join(out)


def _wrapped(text: str, width: int, indent: str = "") -> list[str]:
    return textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=indent + "  ")


def prompt_matches(
    prompts: list[str], checkpoint: str | Path | None = None, revision: str | None = None,
    device: str = "cpu", offline: bool = False,
) -> list[dict[str, Any]] | None:  # fmt: skip
    """Each prompt's nearest training captions (``engine.store.knowledge``) with the checkpoint's
    own text encoder, loading no model; None when the checkpoint does not describe them."""
    from ..text_encoder import load_text_encoder, validate_prompt
    from .checkpoint import _inside

    checked = [validate_prompt(p, i) for i, p in enumerate(prompts, start=1)]
    source = checkpoint_source(checkpoint, revision, offline)
    knowledge = read_knowledge(source.folder, source.root)
    if knowledge is None:
        return None
    header = read_checkpoint_config(source.folder, source.root)
    encoder = load_text_encoder(_inside(header.text_encoder, source.folder), device)
    return match_prompts(knowledge, encoder, checked)


def knowledge_report(
    prompt: str, checkpoint: str | Path | None = None, revision: str | None = None,
    device: str = "cpu", offline: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """What a UI shows: ``{"summary": vocabulary, data sets, ... or None (the checkpoint
    does not say), "match": the prompt's nearest captions or None (no prompt, or no
    description)}``; cheap after the first call (the text encoder stays loaded)."""
    source = checkpoint_source(checkpoint, revision, offline)
    summary = read_knowledge_summary(source.folder, source.root)
    if summary is not None:
        summary = {k: v for k, v in summary.items()
                   if k not in ("captions", "vectors_sha256", "encoder")}  # fmt: skip
    match = None
    if summary is not None and prompt.strip():
        [match] = prompt_matches([prompt.strip()], source.folder, None, device)
    return {"summary": summary, "match": match}
