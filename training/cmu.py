"""CMU Graphics Lab motion capture clips on the Character Creator skeleton: captions.

The folder (``../shared/data/cmu-subjects-01-07.tar.xz``) holds ``bvh/SSS_TT.bvh`` (subject,
trial; ``CC_Base_*`` joints in centimetres, read with the ``character_creator`` joint map)
and ``cmu-index.csv``, the CMU database listing of every trial's description ("playground -
climb, sit, dangle legs", "walk", "dance - small jetes, pirouette"). The descriptions are
the clips' only labels, so captions are written from them here, in several free phrasings
per clip, so that they are true of what a model is trained on:

- The loaders train on crops of at most 196 frames (9.8 s at 20 fps). A clip no longer than
  ``WHOLE_CLIP_S`` is taken (nearly) whole, so its captions may name every action of its
  description in order ("a dancer steps under and does a big turning leap").
- A longer take of several actions gets only captions true of any 9.8 s window of it: the
  activity ("a person clambers about on playground equipment"), or the actions it repeats
  throughout (measured: 002_06 bends over and lifts an arm every 3 s; 001_01 jumps every
  2-3 s). Which actions happen when is not in the listing; where it was timed on the
  motion (``SPANS``), the parts are captioned too, as ``#start#end`` spans.

Licence: free for research and in commercially sold products, but not to be resold as
data, even converted; the credit line ``ATTRIBUTION`` goes with anything built from it.
"""

import csv
import io
import random
import re
from dataclasses import dataclass
from pathlib import Path

from engine.errors import MotionError
from training.sources import ClipSource, Discovery, Skipped, bvh_files, read_text_file

ATTRIBUTION = (
    "The data used in this project was obtained from mocap.cs.cmu.edu. "
    "The database was created with funding from NSF EIA-0196217."
)
LICENCE_NOTE = (
    "CMU Graphics Lab Motion Capture Database (mocap.cs.cmu.edu): free for research; may be "
    "included in commercially sold products, but the data may not be resold directly, even "
    "in converted form. Character Creator conversion: DragonForgedTheArtist/IClone-CMU-Mocap."
)
INDEX_FILE = "cmu-index.csv"
CLIP_NAME = re.compile(r"(\d{1,3})_(\d{1,3})\.bvh", re.IGNORECASE)
WHOLE_CLIP_S = 10.3
"""Longest clip whose captions may tell its whole sequence: a 196-frame crop (9.8 s) of it
leaves out at most half a second."""
CAPTIONS_PER_CLIP = 4


@dataclass(frozen=True)
class Phrases:
    """Captions for one CMU description: ``any_window`` true of any crop of the take;
    ``whole`` true of the whole take only (used for clips up to ``WHOLE_CLIP_S``)."""

    activity: str
    any_window: tuple[str, ...]
    whole: tuple[str, ...] = ()

    def all_captions(self) -> tuple[str, ...]:
        return self.whole + self.any_window


_BALLET = (
    "a person dances ballet", "a dancer performs graceful ballet moves",
    "someone dances like a ballerina", "a person does a ballet routine",
)  # fmt: skip
_PLAYGROUND = (
    "a person clambers about on playground equipment", "someone climbs around on a jungle gym",
    "a person plays on a climbing frame", "someone moves about on a playground climbing frame",
)  # fmt: skip


def _dance(*whole: str) -> Phrases:
    return Phrases("dance", _BALLET, whole)


def _dribble(*any_window: str) -> Phrases:
    return Phrases("basketball", any_window)


PHRASES: dict[str, Phrases] = {
    "playground - forward jumps, turn around": Phrases("jump", (
        "a person jumps forward several times", "someone makes several jumps forward",
        "a person hops forward again and again",
        "someone keeps jumping forward on a playground",
    )),
    "playground - climb, sit, dangle legs, rock back, lower self to ground": Phrases(
        "climb", _PLAYGROUND),
    "playground - climb, jump down, dangle, legs push off against": Phrases("climb", _PLAYGROUND),
    "walk": Phrases("walk", (
        "a person walks forward", "someone walks straight ahead",
        "a person takes a few steps forward", "the person walks forward at a normal pace",
        "someone walks a few steps",
    )),
    "slow walk": Phrases("walk", (
        "a person walks forward slowly", "someone walks slowly ahead",
        "a person takes slow steps forward", "the person strolls forward at a slow pace",
    )),
    "brisk walk": Phrases("walk", (
        "a person walks briskly forward", "someone walks forward quickly",
        "the person walks ahead at a brisk pace", "a person hurries forward on foot",
    )),
    "run/jog": Phrases("run", (
        "a person jogs forward", "someone runs forward", "a person jogs a few steps ahead",
        "the person runs straight ahead",
    )),
    "walk on uneven terrain": Phrases("walk", (
        "a person walks forward over uneven ground", "someone walks across bumpy terrain",
        "a person steps up onto higher ground while walking forward",
        "the person walks carefully over uneven terrain",
    )),
    "jump, balance": Phrases("jump", (
        "a person jumps and then balances", "someone jumps and catches their balance",
        "a person jumps up and steadies themselves after landing",
        "the person makes a jump, then holds their balance",
    )),
    "punch/strike": Phrases("punch", (
        "a person throws punches", "someone punches and strikes with the fists",
        "a person boxes, punching forward", "the person strikes out with the fists",
    )),
    "bend over, scoop up, rise, lift arm": Phrases("pick up", (
        "a person bends over, scoops something up, stands and lifts an arm",
        "someone repeatedly bends down to scoop something up and then raises an arm",
        "a person bends down, picks something up and rises, lifting an arm",
        "the person keeps bending over to scoop things up and standing back up",
    )),
    "swordplay": Phrases("sword", (
        "a person fights with a sword", "someone swings a sword around",
        "a person practises swordplay", "the person fences with an imaginary sword",
    )),
    "wash self": Phrases("wash", (
        "a person mimes washing their body", "someone rubs their arms and body as if washing",
        "a person washes themselves", "the person scrubs their body as if in a shower",
    )),
    "dance - expressive arms, pirouette": _dance(
        "a dancer moves the arms expressively and spins in a pirouette",
        "someone dances with expressive arm movements and a pirouette",
    ),
    "dance - sideways arabesque, turn step, folding arms": _dance(
        "a dancer does a sideways arabesque, a turning step and folds the arms",
        "someone extends a leg to the side in an arabesque, turns and folds the arms",
    ),
    "dance - sideways arabesque, folding arms, bending back": _dance(
        "a dancer does an arabesque to the side, folds the arms and bends backward",
        "someone holds a sideways arabesque, then folds the arms and leans back",
    ),
    "dance - quasi-cou-de-pied, raised leg above hip-height, jete en tourant": _dance(
        "a dancer raises one leg above hip height and does a turning leap",
        "someone lifts a leg high and then leaps while turning",
    ),
    "dance - cartwheel-like start, pirouettes, jete": _dance(
        "a dancer starts with a cartwheel-like move, spins in pirouettes and leaps",
        "someone does a move like a cartwheel, then pirouettes and a leap",
    ),
    "dance - small jetes, attitude/arabesque, shifted-axis pirouette, turn": _dance(
        "a dancer makes small leaps, holds an arabesque and spins",
        "someone does little ballet jumps, an arabesque and a pirouette",
    ),
    "dance - rond de jambe in the air, jete, turn": _dance(
        "a dancer circles one leg in the air, leaps and turns",
        "someone sweeps a leg around in the air, then jumps and turns",
    ),
    "dance - glissade devant, glissade derriere, attitude/arabesque": _dance(
        "a dancer glides forward and back and holds an arabesque",
        "someone does gliding ballet steps and then an arabesque",
    ),
    "dance - sideways steps, pirouette": _dance(
        "a dancer steps sideways and spins in a pirouette",
        "someone takes a few steps to the side and then pirouettes",
    ),
    "dance - arms held high, pointe tendue a terre, upper body rotation": _dance(
        "a dancer holds the arms high, points a foot and rotates the upper body",
    ),
    "dance - small jetes, pirouette": _dance(
        "a dancer makes small leaps and spins in a pirouette",
        "someone does little ballet jumps and then a pirouette",
    ),
    "dance - retire derriere, attitude/arabesque": _dance(
        "a dancer lifts one foot to the knee and extends the leg back in an arabesque",
        "someone raises a foot to the knee, then stretches the leg back",
    ),
    "dance - coupe dessous, jete en tourant": _dance(
        "a dancer steps under and does a turning leap",
        "someone does a quick step and then leaps while turning",
    ),
    "dance - coupe dessous, grand jete en tourant": _dance(
        "a dancer steps under and does a big turning leap",
        "someone does a quick step and then a large leap while turning",
    ),
    "dance - attitude/arabesque, jete en tourant, bending back": _dance(
        "a dancer holds an arabesque, does a turning leap and bends backward",
        "someone balances in an arabesque, leaps with a turn and leans back",
    ),
    "basketball - forward dribble": _dribble(
        "a person dribbles a basketball while moving forward",
        "someone walks forward bouncing a basketball", "a basketball player dribbles ahead",
        "the person dribbles a ball forward",
    ),
    "basketball - backward dribble": _dribble(
        "a person dribbles a basketball while moving backward",
        "someone backs up while bouncing a basketball",
        "a basketball player dribbles the ball moving backwards",
        "the person steps backward dribbling a ball",
    ),
    "basketball - sideways dribble": _dribble(
        "a person dribbles a basketball while moving sideways",
        "someone shuffles sideways bouncing a basketball",
        "a basketball player dribbles moving to the side",
        "the person side-steps while dribbling a ball",
    ),
    "basketball - forward dribble, 90-degree left turns": _dribble(
        "a person dribbles a basketball forward and makes sharp left turns",
        "someone dribbles a ball, making quarter turns to the left",
        "a basketball player dribbles ahead and turns to the left",
        "the person bounces a basketball while walking and turning left",
    ),
    "basketball - forward dribble, 90-degree right turns": _dribble(
        "a person dribbles a basketball forward and makes sharp right turns",
        "someone dribbles a ball, making quarter turns to the right",
        "a basketball player dribbles ahead and turns to the right",
        "the person bounces a basketball while walking and turning right",
    ),
    "basketball - forward dribble, 90-degree right turns, crossover dribble": _dribble(
        "a person dribbles forward, turns right and crosses the ball between the hands",
        "someone dribbles a basketball with right turns and a crossover",
        "a basketball player dribbles, turns right and switches hands",
        "the person bounces a basketball, turning right and crossing it over",
    ),
    "basketball - crossover dribble, shoot": _dribble(
        "a person dribbles the ball from hand to hand and shoots",
        "someone does a crossover dribble and takes a shot",
        "a basketball player crosses the ball over and shoots",
        "the person switches the ball between hands and then shoots it",
    ),
    "basketball - dribble, shoot": _dribble(
        "a person dribbles a basketball and then shoots",
        "someone bounces the ball a few times and takes a shot",
        "a basketball player dribbles and shoots at the hoop",
        "the person dribbles a ball, then takes a shot",
    ),
}  # fmt: skip


SPANS: dict[tuple[str, str], tuple[tuple[float, float, tuple[str, ...]], ...]] = {
    ("001_08", "playground - climb, sit, dangle legs, rock back, lower self to ground"): (
        (0.0, 6.0, ("a person walks to a climbing frame and climbs up onto it",
                    "someone climbs up onto playground equipment")),
        (6.0, 18.5, ("a person sits up on a climbing frame with the legs dangling",
                     "someone sits high on a jungle gym, legs hanging down")),
        (18.5, 21.8, ("a person climbs down from a climbing frame to the ground",
                      "someone lowers themselves from playground equipment to the ground")),
    ),
    ("001_14", "playground - climb, jump down, dangle, legs push off against"): (
        (0.0, 2.5, ("a person jumps down from a climbing frame",
                    "someone drops from playground equipment to the ground")),
    ),
}  # fmt: skip
"""Parts of long takes, timed on the motion (seconds of the 20 fps clip; pelvis and foot
heights per second, checked on rendered contact sheets): 001_08 walks up and climbs (pelvis
1.1 -> 1.8 m by 5-6 s), sits on top with the feet 0.7-1.7 m above the floor until 18.5 s,
and is back on the ground by 20 s; 001_14 starts crouched on top and lands at 1.5 s. Each
part is a ``ClipSource`` span (``#start#end``), so a crop of it is captioned by it; the
whole take keeps its activity captions."""
MIN_SPAN_S = 2.0
"""Shortest part kept once a span is cut to the clip's length (loaders need 40 frames)."""


def clip_spans(
    key: tuple[str, str], seconds: float, seed: int, name: str
) -> tuple[tuple[str, float, float], ...]:
    """The timed parts of one take (``SPANS``), cut to its ``seconds``, two captions each,
    in an order drawn like ``clip_captions``."""
    out = []
    for start, end, captions in SPANS.get(key, ()):
        end = min(end, seconds)
        if end - start >= MIN_SPAN_S:
            order = list(captions)
            random.Random(f"{seed}:{name}:{start}").shuffle(order)
            out += [(caption, start, end) for caption in order]
    return tuple(out)


def read_index(path: Path) -> dict[tuple[int, int], str]:
    """``cmu-index.csv`` -> {(subject, trial): description}."""
    table = {}
    with io.StringIO(read_text_file(path), newline="") as handle:
        reader = csv.DictReader(handle)
        need = {"Subject", "Trial #", "Motion Description"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise MotionError(f"{path}: needs the columns {', '.join(sorted(need))}")
        for row in reader:
            try:
                key = (int(row["Subject"]), int(row["Trial #"]))
            except (TypeError, ValueError):
                continue
            table[key] = " ".join((row["Motion Description"] or "").split())
    return table


def cmu_folder(root: Path) -> Path | None:
    """The folder holding ``cmu-index.csv``: ``root`` or its only subfolder (the archive
    unpacks to ``cmu/``), so a build of the archive and of the folder are the same."""
    if (root / INDEX_FILE).is_file():
        return root
    subfolders = [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
    if len(subfolders) == 1 and (subfolders[0] / INDEX_FILE).is_file():
        return subfolders[0]
    return None


def looks_like_cmu(root: Path) -> bool:
    """A folder (or its only subfolder) with ``cmu-index.csv`` whose BVH files are all named
    ``SSS_TT.bvh``."""
    folder = cmu_folder(root)
    files = bvh_files(folder) if folder is not None else []
    return bool(files) and all(CLIP_NAME.fullmatch(p.name) for p in files)


def clip_captions(phrases: Phrases, seconds: float, seed: int, name: str) -> tuple[str, ...]:
    """``CAPTIONS_PER_CLIP`` distinct captions: the whole-take ones first where the clip is
    short enough for them, then captions true of any window, drawn from a generator seeded
    by the build seed and the clip's name (the same in every run and process)."""
    pool = list(phrases.any_window)
    random.Random(f"{seed}:{name}").shuffle(pool)
    chosen = list(phrases.whole) if seconds <= WHOLE_CLIP_S else []
    return tuple(dict.fromkeys(chosen + pool))[: max(CAPTIONS_PER_CLIP, len(chosen))]


def _seconds(path: Path) -> float:
    """A BVH's duration from its header (``Frames:`` and ``Frame Time:``), without parsing
    the motion; 0 when the header does not say (the reader reports the file later)."""
    frames = frame_time = None
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            words = line.split()
            if words[:1] == ["Frames:"]:
                frames = float(words[1])
            elif words[:2] == ["Frame", "Time:"]:
                frame_time = float(words[2])
                break
    return frames * frame_time if frames and frame_time else 0.0


def discover_cmu(root: Path, seed: int = 0) -> Discovery:
    """The CMU adapter: every ``SSS_TT.bvh`` with captions from its listed description.
    Clip names are relative to the folder holding the listing (``cmu_folder``)."""
    root = cmu_folder(root) or root
    index = read_index(root / INDEX_FILE)
    clips, skipped = [], []
    for path in bvh_files(root):
        name = path.relative_to(root).as_posix()
        match = CLIP_NAME.fullmatch(path.name)
        key = (int(match.group(1)), int(match.group(2))) if match else None
        description = index.get(key) if key else None
        if description is None:
            reason = f"not in {INDEX_FILE} (expected SSS_TT.bvh of a listed trial)"
            skipped.append(Skipped(name, reason))
            continue
        phrases = PHRASES.get(description)
        if phrases is None:
            reason = f"no captions written for the description {description!r}"
            skipped.append(Skipped(name, reason))
            continue
        try:
            seconds = _seconds(path)
        except (OSError, ValueError, IndexError) as err:
            skipped.append(Skipped(name, f"unreadable BVH header: {err}"))
            continue
        labels = {"description": description, "activity": phrases.activity,
                  "subject": f"{key[0]:02d}"}  # fmt: skip
        captions = clip_captions(phrases, seconds, seed, name)
        spans = clip_spans((path.stem, description), seconds, seed, name)
        clips.append(ClipSource(path, name, captions, labels, phrases.activity, spans=spans))
    return Discovery(clips, skipped, attribution=ATTRIBUTION, licence=LICENCE_NOTE)
