"""The public T2M evaluator (Guo et al. 2022, ``text_mot_match``) from a user's own files.

Its weights cannot be shipped or downloaded here; users who have them can still score on the
numbers the papers report. This module re-implements the three networks with the parameter
names of the released ``finest.tar`` and loads the files without unpickling arbitrary
objects: the checkpoint through ``torch.load(weights_only=True)`` and the GloVe vocabulary
pickles through an unpickler that refuses every class.

Files (as released): ``text_mot_match/model/finest.tar`` (state dicts under
``text_encoder``, ``movement_encoder``, ``motion_encoder``), ``glove/our_vab_data.npy``
(V, 300) word vectors, ``our_vab_words.pkl`` (list of words) and ``our_vab_idx.pkl``
(word -> row). Captions are fed as the data set's POS-tagged tokens (``word/POS``), read
from ``texts/*.txt`` by ``read_caption_tokens``.
"""

from __future__ import annotations

import dataclasses
import io
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from engine.errors import MotionError
from engine.motion.features import FEATURE_DIM, Normalizer

WORD_DIM = 300
MAX_TEXT_TOKENS = 20  # words kept per caption (the reference's max_text_len)
UNIT = 4  # frames per movement token (two stride-2 convolutions)
POS_TAGS = (
    "VERB", "NOUN", "DET", "ADP", "NUM", "AUX", "PRON", "ADJ", "ADV",
    "Loc_VIP", "Body_VIP", "Obj_VIP", "Act_VIP", "Desc_VIP", "OTHER",
)  # fmt: skip
# Words whose tag the reference overrides with a "very important part" class.
VIP_WORDS: dict[str, tuple[str, ...]] = {
    "Loc_VIP": (
        "left", "right", "clockwise", "counterclockwise", "anticlockwise", "forward", "back",
        "backward", "up", "down", "straight", "curve",
    ),
    "Body_VIP": (
        "arm", "chin", "foot", "feet", "face", "hand", "mouth", "leg", "waist", "eye", "knee",
        "shoulder", "thigh",
    ),
    "Obj_VIP": (
        "stair", "dumbbell", "chair", "window", "floor", "car", "ball", "handrail", "baseball",
        "basketball",
    ),
    "Act_VIP": (
        "walk", "run", "swing", "pick", "bring", "kick", "put", "squat", "throw", "hop", "dance",
        "jump", "turn", "stumble", "stop", "sit", "lift", "lower", "raise", "wash", "stand",
        "kneel", "stroll", "rub", "bend", "balance", "flap", "jog", "shuffle", "lean", "rotate",
        "spin", "spread", "climb",
    ),
    "Desc_VIP": (
        "slowly", "carefully", "fast", "careful", "slow", "quickly", "happy", "angry", "sad",
        "happily", "angrily", "sadly",
    ),
}  # fmt: skip
CHECKPOINT_KEYS = ("text_encoder", "movement_encoder", "motion_encoder")


# ---- the networks --------------------------------------------------------------------------


class MovementConvEncoder(nn.Module):
    """Features without foot contacts (B, T, 259) -> movement tokens (B, T/4, 512)."""

    def __init__(self, input_size: int = FEATURE_DIM - 4, hidden: int = 512, output: int = 512):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv1d(input_size, hidden, 4, 2, 1),
            nn.Dropout(0.2),
            nn.LeakyReLU(0.2),
            nn.Conv1d(hidden, output, 4, 2, 1),
            nn.Dropout(0.2),
            nn.LeakyReLU(0.2),
        )
        self.out_net = nn.Linear(output, output)

    def forward(self, x: Tensor) -> Tensor:
        h = self.main(x.transpose(1, 2)).transpose(1, 2)  # (B, T/4, output)
        return self.out_net(h)


class _BiGRUCo(nn.Module):
    """Linear in, bidirectional GRU from a learned initial state, MLP on both last states."""

    def __init__(self, input_size: int, hidden: int, output: int):
        super().__init__()
        self.input_emb = nn.Linear(input_size, hidden)
        self.gru = nn.GRU(hidden, hidden, batch_first=True, bidirectional=True)
        self.output_net = nn.Sequential(
            nn.Linear(hidden * 2, hidden),
            nn.LayerNorm(hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, output),
        )
        self.hidden = nn.Parameter(torch.randn(2, 1, hidden))

    def _encode(self, x: Tensor, lengths: Tensor) -> Tensor:
        """x (B, T, hidden) with valid ``lengths`` (B,) -> (B, output)."""
        packed = pack_padded_sequence(
            x, lengths.cpu(), batch_first=True, enforce_sorted=False
        )  # the packed state is restored to the input order
        _, last = self.gru(packed, self.hidden.repeat(1, x.shape[0], 1))  # (2, B, hidden)
        return self.output_net(torch.cat([last[0], last[1]], dim=-1))


class MotionEncoderBiGRUCo(_BiGRUCo):
    """Movement tokens (B, T/4, 512) and their counts (B,) -> motion embedding (B, 512)."""

    def __init__(self, input_size: int = 512, hidden: int = 1024, output: int = 512):
        super().__init__(input_size, hidden, output)

    def forward(self, movements: Tensor, lengths: Tensor) -> Tensor:
        return self._encode(self.input_emb(movements), lengths)


class TextEncoderBiGRUCo(_BiGRUCo):
    """GloVe words (B, L, 300) + POS one-hots (B, L, 15), lengths (B,) -> (B, 512)."""

    def __init__(
        self, word_size: int = WORD_DIM, pos_size: int = len(POS_TAGS), hidden: int = 512,
        output: int = 512,
    ):  # fmt: skip
        super().__init__(word_size, hidden, output)
        self.pos_emb = nn.Linear(pos_size, word_size)

    def forward(self, words: Tensor, pos: Tensor, lengths: Tensor) -> Tensor:
        return self._encode(self.input_emb(words + self.pos_emb(pos)), lengths)


# ---- safe file reading ---------------------------------------------------------------------


class _PlainUnpickler(pickle.Unpickler):
    """Reads only pickles of built-in containers and scalars: every class lookup is refused.

    Lists, dicts, strings and ints are built by pickle opcodes without looking up a class,
    so the only names worth allowing are those very builtins; anything else (a function, a
    custom class, ``os.system``) would run code, and is an error.
    """

    ALLOWED = {("builtins", "list"), ("builtins", "dict"), ("builtins", "str"), ("builtins", "int")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return getattr(__import__("builtins"), name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only plain data allowed")


def read_plain_pickle(path: str | Path) -> Any:
    """A pickle holding only lists/dicts/strings/ints, read without running any code."""
    path = Path(path)
    try:
        return _PlainUnpickler(io.BytesIO(path.read_bytes())).load()
    except OSError as error:
        raise MotionError(f"{path}: cannot read: {error}") from error
    except (pickle.UnpicklingError, EOFError, ValueError, AttributeError) as error:
        raise MotionError(f"{path}: not a plain-data pickle: {error}") from error


def load_t2m_weights(path: str | Path) -> dict[str, dict[str, Tensor]]:
    """The three state dicts of ``finest.tar``, read with ``weights_only=True``.

    A file holding anything but tensors and plain containers (a lambda, a custom class) is
    refused by torch's restricted unpickler and reported as ``MotionError``.
    """
    path = Path(path)
    if not path.is_file():
        raise MotionError(f"{path}: T2M evaluator checkpoint not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as error:
        raise MotionError(f"{path}: refused or unreadable T2M checkpoint: {error}") from error
    if not isinstance(data, dict) or any(k not in data for k in CHECKPOINT_KEYS):
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise MotionError(f"{path}: expected state dicts {list(CHECKPOINT_KEYS)}, found {found}")
    for key in CHECKPOINT_KEYS:
        state = data[key]
        if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
            raise MotionError(f"{path}: {key!r} is not a state dict of tensors")
    return {key: dict(data[key]) for key in CHECKPOINT_KEYS}


# ---- words ---------------------------------------------------------------------------------


@dataclasses.dataclass
class WordVectors:
    """GloVe vectors of the T2M vocabulary and the reference's tagging rules."""

    vectors: np.ndarray  # (V, 300)
    index: dict[str, int]  # word -> row of ``vectors``

    @classmethod
    def load(cls, folder: str | Path, prefix: str = "our_vab") -> WordVectors:
        folder = Path(folder)
        vectors = np.load(folder / f"{prefix}_data.npy", allow_pickle=False)
        words = read_plain_pickle(folder / f"{prefix}_words.pkl")
        index = read_plain_pickle(folder / f"{prefix}_idx.pkl")
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise MotionError(f"{folder / f'{prefix}_words.pkl'}: expected a list of words")
        if not isinstance(index, dict) or not all(
            isinstance(w, str) and isinstance(i, int) and 0 <= i < len(vectors)
            for w, i in index.items()
        ):
            raise MotionError(f"{folder / f'{prefix}_idx.pkl'}: expected word -> row numbers")
        if vectors.ndim != 2 or "unk" not in index:
            raise MotionError(f"{folder}: word vectors must be (V, D) and include 'unk'")
        return cls(vectors.astype(np.float32), {w: index[w] for w in words if w in index})

    def token(self, item: str) -> tuple[np.ndarray, np.ndarray]:
        """``"word/POS"`` -> (word vector (300,), POS one-hot (15,)) by the reference's rules:
        unknown words become 'unk'/OTHER, VIP words take their VIP class."""
        word, _, pos = item.partition("/")
        onehot = np.zeros(len(POS_TAGS), dtype=np.float32)
        if word not in self.index:
            onehot[POS_TAGS.index("OTHER")] = 1.0
            return self.vectors[self.index["unk"]], onehot
        vip = next((tag for tag, words in VIP_WORDS.items() if word in words), None)
        tag = vip or (pos if pos in POS_TAGS else "OTHER")
        onehot[POS_TAGS.index(tag)] = 1.0
        return self.vectors[self.index[word]], onehot

    def sentence(self, tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray, int]:
        """Tokens -> words (22, 300), POS (22, 15), length: sos + first 20 + eos, unk-padded."""
        body = ["sos/OTHER", *list(tokens)[:MAX_TEXT_TOKENS], "eos/OTHER"]
        padded = body + ["unk/OTHER"] * (MAX_TEXT_TOKENS + 2 - len(body))
        words, pos = zip(*(self.token(t) for t in padded), strict=True)
        return np.stack(words), np.stack(pos), len(body)


def read_caption_tokens(data_root: str | Path) -> dict[str, list[str]]:
    """caption -> its ``word/POS`` tokens, from every ``texts/*.txt`` of a HumanML3D folder."""
    tokens: dict[str, list[str]] = {}
    for path in sorted((Path(data_root) / "texts").glob("*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.strip().rsplit("#", 3)  # a caption may itself hold '#'
            if len(parts) == 4 and parts[0]:
                tokens.setdefault(parts[0], parts[1].split(" "))
    return tokens


# ---- the evaluator -------------------------------------------------------------------------


@dataclasses.dataclass
class T2MEvaluator:
    """The public evaluator behind the embedder interface of ``run.evaluate``."""

    movement: MovementConvEncoder
    motion: MotionEncoderBiGRUCo
    text: TextEncoderBiGRUCo
    words: WordVectors
    normalizer: Normalizer  # the statistics its motions were normalised with (HumanML3D's)
    tokens: dict[str, list[str]]  # caption -> word/POS tokens
    name: str = "t2m"

    @property
    def device(self) -> torch.device:
        return self.motion.hidden.device

    @torch.no_grad()
    def embed_text(self, captions: Sequence[str]) -> np.ndarray:
        """Captions (found in ``tokens``) -> (B, 512)."""
        missing = [c for c in captions if c not in self.tokens]
        if missing:
            raise MotionError(
                f"T2M evaluator: no POS-tagged tokens for caption {missing[0]!r} "
                "(it reads them from the data set's texts/*.txt)"
            )
        words, pos, lengths = zip(
            *(self.words.sentence(self.tokens[c]) for c in captions), strict=True
        )
        device = self.device
        return (
            self.text(
                torch.as_tensor(np.stack(words), device=device),
                torch.as_tensor(np.stack(pos), device=device),
                torch.as_tensor(lengths),
            )
            .cpu()
            .numpy()
        )

    @torch.no_grad()
    def embed_motion(self, features: np.ndarray | Tensor, lengths: Sequence[int]) -> np.ndarray:
        """Normalised features (B, F, 263) with valid ``lengths`` (B,) -> (B, 512)."""
        x = torch.as_tensor(features, dtype=torch.float32, device=self.device)
        movements = self.movement(x[..., :-4])  # foot contacts are left out  (B, F/4, 512)
        units = torch.as_tensor(list(lengths)) // UNIT
        return self.motion(movements, units.clamp_min(1)).cpu().numpy()


def _find(folder: Path, names: Sequence[str]) -> Path:
    for name in names:
        if (folder / name).exists():
            return folder / name
    raise MotionError(f"{folder}: none of {list(names)} found")


def load_t2m_evaluator(
    folder: str | Path,
    data_root: str | Path,
    *,
    normalizer: Normalizer | None = None,
    device: str | torch.device = "cpu",
) -> T2MEvaluator:
    """Load the public evaluator from ``folder``.

    ``folder`` holds ``finest.tar`` (or ``text_mot_match/model/finest.tar``), the GloVe files
    (directly or under ``glove/``) and optionally ``mean.npy``/``std.npy`` (directly or under
    ``meta/``); without them ``normalizer`` or the data set's Mean/Std are used (HumanML3D's
    equal the evaluator's). Captions' tokens come from ``data_root/texts``.
    """
    folder = Path(folder)
    weights = load_t2m_weights(
        _find(folder, ["finest.tar", "text_mot_match/model/finest.tar", "model/finest.tar"])
    )
    modules = {
        "text_encoder": TextEncoderBiGRUCo(),
        "movement_encoder": MovementConvEncoder(),
        "motion_encoder": MotionEncoderBiGRUCo(),
    }
    for key, module in modules.items():
        try:
            module.load_state_dict(weights[key])
        except RuntimeError as error:
            raise MotionError(
                f"{folder}: {key} does not fit the T2M architecture: {error}"
            ) from error
        module.to(device).eval()
    glove = folder if (folder / "our_vab_data.npy").is_file() else folder / "glove"
    if normalizer is None:
        stats = next((p for p in (folder, folder / "meta") if (p / "mean.npy").is_file()), None)
        if stats is not None:
            normalizer = Normalizer(np.load(stats / "mean.npy"), np.load(stats / "std.npy"))
        else:
            normalizer = Normalizer.load(data_root)
    return T2MEvaluator(
        modules["movement_encoder"], modules["motion_encoder"], modules["text_encoder"],
        WordVectors.load(glove), normalizer, read_caption_tokens(data_root),
    )  # fmt: skip
