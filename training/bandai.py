"""Bandai Namco Research Motion datasets 1 and 2: labels to captions.

Each clip ``dataset-N_CONTENT_STYLE_NNN.bvh`` carries a content label (what is done: walk,
bow, wave-left-hand, ...) and a style label (how: happy, old, tired, ...) in its name, and
the same two labels as indices into ``cfg/content_label.txt`` / ``cfg/style_label.txt`` in
the JSON beside it. Text-to-motion training needs sentences, so every clip gets 3 to 5
distinct captions written from a phrase table per content label (verb phrases with the
direction or hand) and per style label (adjectives, adverbs, nouns), combined with a few
sentence templates. The choice is drawn from a generator seeded by the build seed and the
clip's path, so a rebuild writes the same captions.

Licence: CC BY-NC 4.0. Anything built or trained from it carries ``ATTRIBUTION`` and is for
non-commercial use.
"""

import functools
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from training.captions import mirror_caption
from training.sources import ClipSource, Discovery, Skipped, bvh_files

ATTRIBUTION = "Bandai-Namco-Research-Motiondataset (c) Bandai Namco Research Inc., CC BY-NC 4.0"
LICENSE_NOTE = (
    "Creative Commons Attribution-NonCommercial 4.0 International (CC BY-NC 4.0), "
    "https://creativecommons.org/licenses/by-nc/4.0/ : non-commercial use only; "
    "anything trained on this data carries the attribution above."
)

_LEFT_HANDED_CONTENT: dict[str, tuple[str, ...]] = {
    "walk-left": (
        "walks to the left", "walks toward the left", "moves to the left", "walks leftward",
    ),
    "walk-turn-left": (
        "walks and turns left", "walks forward and turns to the left",
        "makes a left turn while walking", "walks in a curve to the left",
    ),
    "wave-left-hand": (
        "waves the left hand", "waves with the left hand", "waves the left arm",
        "raises the left hand and waves",
    ),
    "raise-up-left-hand": (
        "raises the left hand", "raises the left hand up", "lifts the left arm up",
        "puts the left hand up in the air",
    ),
}  # fmt: skip

CONTENT_PHRASES: dict[str, tuple[str, ...]] = {
    "walk": (
        "walks forward", "walks straight ahead", "walks a few steps forward",
        "takes a walk forward",
    ),
    "run": ("runs forward", "jogs forward", "runs straight ahead", "runs a few steps forward"),
    "dash": (
        "dashes forward", "sprints forward", "runs forward at full speed",
        "sprints straight ahead",
    ),
    "walk-back": (
        "walks backward", "walks backwards a few steps", "steps backward", "moves backward",
    ),
    "bow": ("bows", "bows forward", "bends forward in a bow", "gives a bow", "bows to someone"),
    "bye": ("waves goodbye", "waves a hand goodbye", "says goodbye with a wave",
            "waves to say bye"),
    "byebye": (
        "waves bye-bye", "waves goodbye again and again", "waves goodbye over and over",
        "keeps waving goodbye",
    ),
    "guide": (
        "guides someone with a hand gesture", "points the way with an open hand",
        "gestures to show someone the way", "shows someone where to go",
    ),
    "respond": (
        "responds to someone", "reacts to someone calling", "answers someone with a gesture",
        "responds to a call",
    ),
    "call": (
        "calls out to someone", "calls someone over", "beckons someone to come over",
        "calls to someone with a gesture",
    ),
    "punch": ("throws a punch", "punches forward", "punches with a fist", "throws punches"),
    "kick": ("kicks", "kicks forward", "does a kick", "kicks out with a leg"),
    "slash": (
        "makes a slashing motion", "slashes with a sword", "swings a blade", "slashes the air",
    ),
    "dance-long": (
        "dances", "performs a long dance", "dances for a long time", "does a dance routine",
    ),
    "dance-short": (
        "dances briefly", "performs a short dance", "does a short dance", "dances for a moment",
    ),
    "wave-both-hands": (
        "waves both hands", "waves with both hands", "waves both arms",
        "waves with both hands raised",
    ),
    "raise-up-both-hands": (
        "raises both hands", "raises both hands up", "lifts both arms up",
        "puts both hands up in the air", "raises both arms above the head",
    ),
    **_LEFT_HANDED_CONTENT,
    # The right-handed labels are the mirror images of the left-handed ones.
    **{
        mirror_caption(label): tuple(mirror_caption(p) for p in phrases)
        for label, phrases in _LEFT_HANDED_CONTENT.items()
    },
}  # fmt: skip
"""Content label -> verb phrases in the third person, present tense."""


@dataclass(frozen=True)
class StylePhrases:
    """Ways to say a style: adjectives ("a tired person"), adverbs or manner phrases that
    follow the verb ("... wearily"), and nouns that stand for the performer ("a giant")."""

    adjectives: tuple[str, ...] = ()
    adverbs: tuple[str, ...] = ()
    nouns: tuple[str, ...] = ()


_OLD = StylePhrases(
    ("old", "elderly", "aged"),
    ("like an old person", "slowly and stiffly", "with the stiffness of old age"),
    ("an old man", "an old woman", "a senior"),
)
_TIRED = StylePhrases(
    ("tired", "exhausted", "weary"), ("wearily", "tiredly", "with tired, heavy movements")
)
_MASCULINE = StylePhrases(("masculine", "manly"), ("in a masculine way", "in a manly manner"))
_CHILDISH = StylePhrases(
    ("childish", "childlike", "playful"),
    ("childishly", "like a child", "playfully"),
    ("a child", "a kid", "someone acting like a child"),
)

STYLE_PHRASES: dict[str, StylePhrases] = {
    "normal": StylePhrases((), ("normally", "in an ordinary way", "in a neutral manner")),
    "happy": StylePhrases(
        ("happy", "cheerful", "joyful"), ("happily", "cheerfully", "joyfully", "in a happy mood")
    ),
    "sad": StylePhrases(("sad", "gloomy", "sorrowful"), ("sadly", "gloomily", "in a sad mood")),
    "angry": StylePhrases(
        ("angry", "furious", "irritated"), ("angrily", "furiously", "in an angry way")
    ),
    "proud": StylePhrases(
        ("proud", "dignified", "haughty"), ("proudly", "with pride", "with a proud posture")
    ),
    "not-confident": StylePhrases(
        ("unsure", "timid", "hesitant"),
        ("timidly", "hesitantly", "without confidence", "nervously"),
    ),
    "masculinity": _MASCULINE,
    "masculine": _MASCULINE,
    "feminine": StylePhrases(
        ("feminine", "graceful"), ("in a feminine way", "gracefully", "elegantly")
    ),
    "childish": _CHILDISH,
    "children": _CHILDISH,
    "old": _OLD,
    "elderly": _OLD,
    "tired": _TIRED,
    "exhausted": _TIRED,
    "active": StylePhrases(
        ("active", "energetic", "lively"),
        ("energetically", "actively", "with lots of energy", "vigorously"),
    ),
    "musical": StylePhrases(
        ("theatrical", "showy"),
        ("theatrically", "like in a musical", "in a musical style", "with theatrical flair"),
        ("a musical performer", "a stage actor"),
    ),
    "giant": StylePhrases(
        ("giant", "huge", "enormous"),
        ("like a giant", "with heavy, lumbering movements", "ponderously"),
        ("a giant", "a huge giant"),
    ),
    "chimpira": StylePhrases(
        ("thuggish", "tough", "cocky"),
        ("like a thug", "with a swagger", "like a street punk"),
        ("a thug", "a street punk", "a young hoodlum"),
    ),
    "youthful": StylePhrases(
        ("youthful", "young", "lively"),
        ("youthfully", "with youthful energy", "in a youthful way"),
        ("a young person", "a youngster"),
    ),
}
"""Style label -> phrases; the two releases' synonyms (old/elderly, tired/exhausted,
masculinity/masculine, childish/children) share one entry."""

GENERIC_SUBJECTS = ("a person", "someone", "the person", "a figure")


def _indefinite(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _candidates(content: str, style: str) -> list[list[str]]:
    """Every caption the templates can write for a label pair, grouped by template."""
    verbs, phrases = CONTENT_PHRASES[content], STYLE_PHRASES[style]
    subjects = GENERIC_SUBJECTS
    groups = [
        [f"{s} {v} {d}" for s in subjects for v in verbs for d in phrases.adverbs],
        [f"{_indefinite(a)} person {v}" for a in phrases.adjectives for v in verbs],
        [f"someone {a} {v}" for a in phrases.adjectives for v in verbs],
        [f"{s} {v}, looking {a}" for s in subjects for v in verbs for a in phrases.adjectives],
        [f"{n} {v}" for n in phrases.nouns for v in verbs],
    ]
    if not phrases.adjectives and not phrases.nouns:
        # A neutral style may also go unsaid: "a person bows".
        groups.append([f"{s} {v}" for s in subjects for v in verbs])
    return [g for g in groups if g]


def bandai_captions(content: str, style: str, rng: random.Random) -> list[str]:
    """3 to 5 distinct captions for one clip, drawn with ``rng``.

    Templates take turns (in an order ``rng`` shuffles) so that one clip's captions differ in
    form, not only in a word. Raises KeyError for a label without phrases.
    """
    groups = _candidates(content, style)
    rng.shuffle(groups)
    count = rng.randint(3, 5)
    chosen: list[str] = []
    while len(chosen) < count and any(groups):
        for group in groups:
            if group and len(chosen) < count:
                caption = group.pop(rng.randrange(len(group)))
                if caption not in chosen:  # two templates can meet: "an elderly person ..."
                    chosen.append(caption)
    return chosen


def clip_rng(seed: int, name: str) -> random.Random:
    """A generator that depends only on the build seed and the clip's path (string seeds are
    hashed with SHA-512 by ``random``, so it is the same in every process and run)."""
    return random.Random(f"{seed}:{name}")


@dataclass(frozen=True)
class BandaiLabels:
    release: str  # "dataset-1" or "dataset-2"
    content: str
    style: str


def parse_name(stem: str) -> BandaiLabels:
    """``dataset-2_wave-left-hand_happy_003`` -> its release, content and style labels.

    Raises ValueError when the name does not have the four underscore-separated parts.
    """
    parts = stem.split("_")
    if len(parts) != 4 or not parts[0].startswith("dataset-") or not parts[3].isdigit():
        raise ValueError(f"not a 'dataset-N_CONTENT_STYLE_NNN' name: {stem}")
    return BandaiLabels(parts[0], parts[1], parts[2])


@functools.lru_cache(maxsize=16)
def _label_table(release_dir: Path, kind: str) -> tuple[str, ...] | None:
    """``cfg/{kind}_label.txt`` lines without their ``dataset-N_`` prefix, or None if absent."""
    path = release_dir / "cfg" / f"{kind}_label.txt"
    if not path.is_file():
        return None
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return tuple(line.split("_", 1)[1] if "_" in line else line for line in lines if line)


def _json_disagreement(bvh: Path, labels: BandaiLabels) -> str | None:
    """Why the JSON beside ``bvh`` contradicts its name, or None when it agrees.

    The JSON holds indices into the release's ``cfg/*_label.txt``; without the JSON or the
    cfg files there is nothing to check and the name's labels stand.
    """
    sidecar = bvh.with_suffix(".json")
    if not sidecar.is_file():
        return None
    try:
        indices = json.loads(sidecar.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        return f"{sidecar.name}: not valid JSON: {err}"
    for kind, label in (("content", labels.content), ("style", labels.style)):
        table = _label_table(bvh.parent.parent, kind)
        if table is None:
            continue  # no cfg/ to read the index against: the file name alone decides
        index = indices.get(kind) if isinstance(indices, dict) else None
        if not isinstance(index, int) or not 0 <= index < len(table):
            return f"{sidecar.name}: no valid '{kind}' index into cfg/{kind}_label.txt"
        if table[index] != label:
            return f"{sidecar.name}: {kind} '{table[index]}' disagrees with the file name"
    return None


def discover_bandai(root: Path, seed: int) -> Discovery:
    """The Bandai Namco adapter: every clip under ``root`` with its labels and captions.

    Skipped, with the reason: names that do not parse, labels without phrases, a JSON that
    contradicts the name, and JSON label files whose BVH is missing from the release.
    """
    clips, skipped = [], []
    for path in bvh_files(root):
        name = path.relative_to(root).as_posix()
        try:
            labels = parse_name(path.stem)
        except ValueError as err:
            skipped.append(Skipped(name, str(err)))
            continue
        problem = _json_disagreement(path, labels)
        if problem is None and labels.content not in CONTENT_PHRASES:
            problem = f"no caption phrases for the content label '{labels.content}'"
        if problem is None and labels.style not in STYLE_PHRASES:
            problem = f"no caption phrases for the style label '{labels.style}'"
        if problem is not None:
            skipped.append(Skipped(name, problem))
            continue
        captions = bandai_captions(labels.content, labels.style, clip_rng(seed, name))
        clips.append(
            ClipSource(
                path=path,
                name=name,
                captions=tuple(captions),
                labels={"content": labels.content, "style": labels.style},
                group=f"{labels.release}/{labels.content}",
            )
        )
    for orphan in sorted(root.rglob("dataset-*.json")):
        if not orphan.with_suffix(".bvh").exists():
            reason = "label file without its BVH: the clip is missing from the release"
            skipped.append(Skipped(orphan.relative_to(root).as_posix(), reason))
    licence = next(iter(sorted(root.rglob("Bandai-Namco-Research-Motiondataset-*/LICENSE"))), None)
    return Discovery(clips, skipped, ATTRIBUTION, licence, LICENSE_NOTE)


RELEASE_FILE = re.compile(r"dataset-[12]_[^/]+\.bvh", re.IGNORECASE)
"""The file names of the Bandai Namco release's clips (dataset-1_walk_normal_001.bvh)."""


def looks_like_bandai(root: Path) -> bool:
    """True when every BVH under ``root`` has a Bandai Namco release file name.

    One release-like name used to be enough, and a studio folder holding a single copied
    Bandai clip was then built as the release: its own sidecar captions replaced and every
    other BVH skipped. A folder that mixes them is an ordinary folder."""
    names = [path.name for path in bvh_files(root)]
    return bool(names) and all(RELEASE_FILE.fullmatch(name) for name in names)
