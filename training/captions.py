"""Caption text for the HumanML3D layout: POS-tagged tokens, text lines, left/right mirroring.

HumanML3D stores each caption as ``caption#word/POS word/POS ...#start#end``; its tokens are
spaCy lemmas with coarse universal tags. No NLP library is available offline, so the tags here
come from a small, documented heuristic (``docs/dataset.md``):

1. words are lower-cased runs of letters, digits and apostrophes (punctuation is dropped);
2. digits are NUM; closed classes (DET, PRON, ADP, CCONJ, SCONJ, AUX, PART, NUM) come from
   short word lists;
3. listed adverbs are ADV and listed adjectives ADJ (so "left", "elderly"); then other words
   ending in "-ly" are ADV and words with a typical adjective suffix (-ful, -ous, -ive, -ish,
   -less, -able, -ible) are ADJ;
4. a word that is, or inflects (-s, -es, -ies, -ing, -ed), a verb of the motion-verb list is a
   VERB and its token carries the verb's base form, as spaCy's lemma would -- unless it
   follows a determiner or a number, with only adjectives between ("takes a walk",
   "3 steps"), where it is a NOUN;
5. other words of more than five letters ending in "-ed" are ADJ ("irritated"); everything
   else is a NOUN, its token singular ("hands" -> "hand").

The evaluator and text encoders of this project read the caption itself; the tokens keep the
file format exact and give the word-level POS filter of the reference loaders something sound.
"""

import re
from dataclasses import dataclass

_CLOSED_CLASSES: dict[str, tuple[str, ...]] = {
    "DET": (
        "a", "an", "the", "this", "that", "these", "those", "his", "her", "their", "its", "my",
        "your", "our", "each", "every", "both", "either", "neither", "another", "some", "any",
        "all", "no",
    ),
    "PRON": (
        "he", "she", "it", "they", "them", "him", "i", "you", "we", "us", "me", "someone",
        "somebody", "something", "anyone", "anybody", "everyone", "everybody", "nobody",
        "himself", "herself", "itself", "themselves", "one", "who", "what", "hers", "theirs",
    ),
    "ADP": (
        "to", "with", "in", "on", "at", "of", "for", "from", "by", "into", "onto", "over",
        "under", "around", "across", "through", "toward", "towards", "like", "up", "down",
        "off", "out", "behind", "before", "after", "about", "along", "above", "below",
        "between", "near", "past", "upon", "without", "against",
    ),
    "CCONJ": ("and", "or", "but", "nor", "yet"),
    "SCONJ": ("while", "as", "if", "because", "until", "though", "although", "whether"),
    "AUX": ("is", "are", "was", "were", "be", "been", "being", "has", "have", "had", "does",
            "do", "did", "can", "could", "will", "would", "should", "may", "might", "must"),
    "PART": ("not", "n't", "'s"),
    "NUM": ("two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twice",
            "once"),
}  # fmt: skip
_CLOSED = {word: tag for tag, words in _CLOSED_CLASSES.items() for word in words}

_VERBS = frozenset(
    "walk run jog sprint dash step move turn bow wave raise lift put kick punch slash swing "
    "dance guide point show gesture call beckon respond react answer say bend look take make "
    "throw perform go come stand sit jump hold use greet seem act appear reach stretch shake "
    "nod hop spin strut stride march stomp sway shuffle trudge skip lean rotate circle bounce "
    "stroll limp drag wander cross reverse back hurry rush leave arrive stop start begin "
    "pause keep carry push pull grab clap celebrate cheer salute signal give".split()
)
_IRREGULAR_VERBS = {
    "ran": "run", "took": "take", "made": "make", "threw": "throw", "thrown": "throw",
    "went": "go", "gone": "go", "came": "come", "stood": "stand", "sat": "sit", "held": "hold",
    "said": "say", "shook": "shake", "swung": "swing", "bent": "bend", "spun": "spin",
    "strode": "stride", "began": "begin", "kept": "keep",
}  # fmt: skip
_ADVERBS = frozenset(
    "forward forwards backward backwards ahead away back again then very quite too sideways "
    "together here there straight now also still just only always never often sometimes "
    "almost fast hard much more less "
    "upward upwards downward downwards leftward leftwards rightward rightwards slightly "
    "repeatedly clockwise counterclockwise anticlockwise overhead aside".split()
)
_ADJECTIVES = frozenset(
    "left right happy sad angry proud old tired young elderly exhausted small big large full "
    "long short heavy light quick slow little giant masculine feminine normal confident "
    "unsure shy calm bold timid energetic lively strong weak gentle graceful open high low "
    "wide great deep ordinary casual manly childlike theatrical cheerful gloomy furious "
    "weary sluggish brisk dignified haughty flamboyant nervous other same several few aged "
    "many".split()
)
_IRREGULAR_PLURALS = {
    "feet": "foot", "people": "person", "men": "man", "women": "woman", "children": "child",
}  # fmt: skip
_ADJECTIVE_SUFFIXES = ("ful", "ous", "ive", "ish", "less", "able", "ible")
_WORD = re.compile(r"[a-z0-9']+")


@dataclass(frozen=True)
class TextLine:
    """One line of a HumanML3D ``texts/ID.txt``: a caption, its tokens and its span in seconds.

    ``start == end == 0.0`` means the caption covers the whole clip.
    """

    caption: str
    tokens: tuple[str, ...]  # "word/POS"
    start: float = 0.0
    end: float = 0.0


def _verb_lemma(word: str) -> str | None:
    """The base form if ``word`` is a listed motion verb or one of its regular inflections."""
    if word in _VERBS:
        return word
    if word in _IRREGULAR_VERBS:
        return _IRREGULAR_VERBS[word]
    candidates: list[str] = []
    if word.endswith("ies"):
        candidates.append(word[:-3] + "y")
    if word.endswith("es"):
        candidates.append(word[:-2])
    if word.endswith("s"):
        candidates.append(word[:-1])
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            stem = word[: -len(suffix)]
            # dancing -> danc(e); running -> run(n); walked -> walk
            candidates += [stem, stem + "e", stem[:-1] if stem[-1] == stem[-2] else stem]
    return next((c for c in candidates if c in _VERBS), None)


def _noun_lemma(word: str) -> str:
    """Singular of a regular plural ("hands" -> "hand"), as spaCy's lemma would give."""
    if word in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[word]
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        return word[:-1]
    return word


def _word_class(word: str) -> str:
    """The tag of a word out of context (rules 2 to 5 of the module docstring, in order)."""
    if word.isdigit():
        return "NUM"
    if word in _CLOSED:
        return _CLOSED[word]
    if word in _ADVERBS:
        return "ADV"
    if word in _ADJECTIVES:
        return "ADJ"
    if len(word) > 4 and word.endswith("ly"):
        return "ADV"
    if len(word) > 5 and word.endswith(_ADJECTIVE_SUFFIXES):
        return "ADJ"
    if _verb_lemma(word) is not None:
        return "VERB"
    # an unlisted "-ed" word is most often a participle used as an adjective: "irritated"
    return "ADJ" if len(word) > 5 and word.endswith("ed") and not word.endswith("eed") else "NOUN"


def tag_words(caption: str) -> list[tuple[str, str]]:
    """Split a caption into lower-cased words and tag each with a coarse universal POS tag.

    Returns ``(lemma, tag)`` pairs; the lemma differs from the word only for inflected verbs
    and plural nouns.
    The rules are the module docstring's, applied left to right.
    """
    tagged: list[tuple[str, str]] = []
    after_determiner = False  # a determiner, optionally followed by adjectives, came just before
    for word in _WORD.findall(caption.lower()):
        tag = _word_class(word)
        if tag == "VERB" and after_determiner:
            tag = "NOUN"  # "takes a walk", "gives a quick bow"
        lemma = {"VERB": _verb_lemma, "NOUN": _noun_lemma}.get(tag, str)(word)
        tagged.append((lemma, tag))
        after_determiner = tag in ("DET", "NUM") or (after_determiner and tag == "ADJ")
    return tagged


def caption_tokens(caption: str) -> tuple[str, ...]:
    """The ``word/POS`` tokens HumanML3D stores after a caption."""
    return tuple(f"{lemma}/{tag}" for lemma, tag in tag_words(caption))


def format_text_line(caption: str, start: float = 0.0, end: float = 0.0) -> str:
    """One ``caption#word/POS ...#start#end`` line (no newline).

    Raises ValueError when the caption holds a ``#`` or a line break, which would corrupt the
    four-field format.
    """
    caption = caption.strip()
    if "#" in caption or "\n" in caption or "\r" in caption:
        raise ValueError(f"caption may not contain '#' or line breaks: {caption!r}")
    return f"{caption}#{' '.join(caption_tokens(caption))}#{start:.1f}#{end:.1f}"


def parse_text_line(line: str) -> TextLine:
    """Read one HumanML3D text line back; raises ValueError unless it has the four fields."""
    fields = line.rstrip("\n").split("#")
    if len(fields) != 4:
        raise ValueError(f"expected 'caption#tokens#start#end', got {len(fields)} fields: {line!r}")
    caption, tokens, start, end = fields
    return TextLine(caption, tuple(tokens.split()), float(start), float(end))


_SIDE = re.compile(r"\b(left|right)(wards?)?\b", re.IGNORECASE)
_ROTATION = re.compile(r"\b(counter-?clockwise|anti-?clockwise|clockwise)\b", re.IGNORECASE)
# "right" that names no side: keep it when a mirrored caption is written.
_NOT_A_SIDE = re.compile(r"\b(right (away|now|there|here|after|before)|all right)\b", re.IGNORECASE)


def _match_case(word: str, like: str) -> str:
    return word.upper() if like.isupper() else word.capitalize() if like[0].isupper() else word


def mirror_caption(caption: str) -> str:
    """The caption of the mirrored clip: left <-> right, clockwise <-> counterclockwise.

    Mirroring a clip (negating x, swapping left and right joints) turns a left hand into a
    right hand and a left turn into a right turn; the words must follow so that the caption
    still describes the motion. Idioms such as "right away" are left alone.
    """
    protected = [m.span() for m in _NOT_A_SIDE.finditer(caption)]

    def swap_side(m: re.Match) -> str:
        if any(a <= m.start() < b for a, b in protected):
            return m.group(0)
        side = "right" if m.group(1).lower() == "left" else "left"
        return _match_case(side, m.group(1)) + (m.group(2) or "")

    def swap_rotation(m: re.Match) -> str:
        word = m.group(1)
        mirrored = "counterclockwise" if word.lower() == "clockwise" else "clockwise"
        return _match_case(mirrored, word)

    return _ROTATION.sub(swap_rotation, _SIDE.sub(swap_side, caption))
