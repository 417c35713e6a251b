"""Command line of the engine: ``python -m engine COMMAND ...`` (console script ``kinetext``).

    generate "PROMPT" [--seconds S] [--seed N] [--variations K] --out FILE(.npy|.bvh|.png|.gif|.mp4)
    generate --timeline FILE [--method inpaint|blend] --out FILE   one clip of prompt#seconds lines
    features IN.npy OUT.npy        joints (T,22,3) metres Y-up -> (T-1,263) features
    recover IN.npy OUT.npy         features (T,263) -> joints (T,22,3)
    bvh2joints IN.bvh OUT.npy [--map NAME|FILE.json] [--units auto|m|cm|mm|in|N] [--raw]
    joints2bvh IN.npy OUT.bvh [--fps 20] [--scale 1.0]
    render IN.(npy|bvh) OUT.(png|gif|mp4) [--units ...]
    demo [--bvh FILE] [--units ...] [--out DIR]  BVH (or a procedural walk) -> features -> joints
    benchmark [...]                generation speed (see engine/benchmark.py)
    import-molingo SAE_DIR MODEL_DIR OUT_DIR [--text-encoder NAME_OR_FOLDER] [--no-ema]
                                   a published MoLingo release -> checkpoint folder
    download-molingo --representation 263|272 --out DIR [--mean-std FOLDER]
                                   the authors' release zips -> checkpoint folder
    info [CHECKPOINT] [--prompt TEXT ...] [--json]
                                   data sets, vocabulary, sizes, licences, sampling defaults;
                                   with --prompt, how close each prompt is to what it learned

Joints are metres everywhere in the engine. A BVH has no unit field, so commands reading one
tell metres, centimetres or millimetres from its rest skeleton's size (``--units auto``, the
default, noted on stderr); ``--units`` with a unit name or a number of metres per file unit
always wins, so ``joints2bvh --scale 100`` (centimetres) then ``bvh2joints`` gives metres back.

A bad input prints ``error: ...`` naming it and exits with status 2; what can be checked up
front (an output that cannot be written, a prompt) is checked before any work. Ctrl-C prints
one line and exits with status 130. Outputs are written to a temporary name and renamed into
place (all of a multi-clip .bvh output before any is renamed), so a failure or an interruption
leaves no half-written file; inputs and outputs holding NaN or infinite values are refused.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from .errors import MotionError
from .generators import DEFAULT_SECONDS, GENERATORS, MAX_SECONDS, MAX_VARIATIONS, MIN_SECONDS
from .io.bvh import FRAME_TIME_RANGE
from .io.bvh_units import UNITS_HINT, UNITS_RANGE, Units, parse_units
from .io.files import check_output

PREVIEWS = (".png", ".gif", ".mp4")
BVH_FPS_RANGE = (1 / FRAME_TIME_RANGE[1], 1 / FRAME_TIME_RANGE[0])
"""Frame rates --fps accepts (0.1 to 10,000): what a BVH's Frame Time may say."""


def _save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """np.save to a temporary name beside ``path``, then rename (np.save adds .npy itself).

    Refuses non-finite values: a NaN written here would only surface later, far from its cause.
    """
    if not np.isfinite(array).all():
        raise MotionError(f"{path}: not written, the result holds NaN or infinite values")
    target = _make_parent(path)
    tmp = target.with_name(f".{target.name}.partial-{os.getpid()}.npy")
    try:
        np.save(tmp, np.ascontiguousarray(array))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _make_parent(path: str | os.PathLike) -> Path:
    """``path`` as a Path, its folder made ("--out out/walk.png" makes out/, as users expect)
    only now that there is something to write, so a refused input changes nothing on disk."""
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def _has_npy_magic(path: str) -> bool:
    with open(path, "rb") as fh:
        return fh.read(6) == b"\x93NUMPY"


def _load_npy(path: str, ndim: int, tail: tuple[int, ...], what: str) -> np.ndarray:
    """A finite real array of shape (T..., *tail) from ``path``; MotionError naming the file."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        why = str(error) or "the file is empty"
        if isinstance(error, ValueError) and not _has_npy_magic(path):
            why = "not a .npy file: it does not start with numpy's header"
        raise MotionError(f"{path}: cannot read as .npy ({why})") from error
    if not isinstance(array, np.ndarray):  # an .npz archive
        raise MotionError(f"{path}: is an .npz archive, not one .npy array")
    if array.ndim != ndim or tuple(array.shape[-len(tail) :]) != tail:
        shape = ", ".join(["T"] * (ndim - len(tail)) + [str(n) for n in tail])
        raise MotionError(f"{path}: expected {what} of shape ({shape}), got {array.shape}")
    if array.dtype.kind not in "biuf":
        raise MotionError(f"{path}: expected {what} as real numbers, got dtype {array.dtype}")
    if not len(array):
        raise MotionError(f"{path}: {what} of shape {array.shape} hold no frame")
    bad = ~np.isfinite(array.reshape(len(array), -1)).all(axis=1)
    if bad.any():
        frames = ", ".join(str(i) for i in np.flatnonzero(bad)[:5])
        raise MotionError(f"{path}: {what} hold NaN or infinite values (frames {frames})")
    return array


def _joints_from(path: str, map_name: str | None = None, units: Units = "auto") -> np.ndarray:
    """Canonical joints (T, 22, 3) metres from a joints .npy or any BVH (``units`` for a BVH).

    A unit told from the skeleton's size is said on stderr, so a wrong guess is visible.
    """
    if path.lower().endswith(".bvh"):
        from .retarget.joint_map import available_maps, read_canonical

        clip = read_canonical(path, map_name, units=units, maps=available_maps())
        if clip.units.detected:
            note = f"note: {path}: units {clip.units.describe()}; --units overrides"
            print(note, file=sys.stderr)
        if clip.up != "Y":
            print(f"note: {path}: the skeleton stands {clip.up} up; turned to Y up",
                  file=sys.stderr)  # fmt: skip
        return clip.joints
    return _load_npy(path, 3, (22, 3), "joints")


def _number_in(low: float, high: float) -> Callable[[str], float]:
    """argparse type: a number from ``low`` to ``high`` (NaN, inf and 0 refused by the range)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not low <= value <= high:
            why = f"expected a number from {low:g} to {high:g}: {text!r}"
            raise argparse.ArgumentTypeError(why)
        return value

    return parse


def _units_arg(text: str) -> Units:
    """argparse type for --units: its own message for a bad value (exit status 2)."""
    try:
        return parse_units(text)
    except MotionError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _add_units(parser: argparse.ArgumentParser, default: Units | None, note: str) -> None:
    parser.add_argument(
        "--units",
        type=_units_arg,
        default=default,
        metavar="UNIT",
        help=f"the BVH's length unit: auto (from the skeleton's size), {UNITS_HINT}{note}",
    )


def _cmd_features(args: argparse.Namespace) -> int:
    from .motion.features import joints_to_features

    joints = _load_npy(args.inp, 3, (22, 3), "joints")
    with _naming(args.inp):
        features = joints_to_features(joints)
    _save_npy(args.out, features)
    return 0


@contextlib.contextmanager
def _naming(path: str) -> Iterator[None]:
    """Prefix a MotionError raised inside with the input file it is about."""
    try:
        yield
    except MotionError as error:
        raise MotionError(f"{path}: {error}") from error


def _cmd_recover(args: argparse.Namespace) -> int:
    from .motion.features import recover_from_ric

    _save_npy(args.out, recover_from_ric(_load_npy(args.inp, 2, (263,), "features")))
    return 0


def _cmd_bvh2joints(args: argparse.Namespace) -> int:
    if args.raw:
        from .io.bvh import read_bvh
        from .io.bvh_units import resolve_units

        bvh = read_bvh(args.inp)
        positions = bvh.world_positions()  # (T, J, 3) file units
        if args.units is not None:  # metres, as asked
            try:
                positions = positions * resolve_units(bvh, args.units).to_metres
            except MotionError as error:
                raise MotionError(f"{args.inp}: {error}") from error
        _save_npy(args.out, positions)
    else:
        _save_npy(args.out, _joints_from(args.inp, args.map, args.units or "auto"))
    return 0


def _cmd_joints2bvh(args: argparse.Namespace) -> int:
    from .io.bvh import canonical_bvh, write_bvh

    joints = _load_npy(args.inp, 3, (22, 3), "joints")
    with _naming(args.inp):
        bvh = canonical_bvh(joints, fps=args.fps, scale=args.scale)
    write_bvh(_make_parent(args.out), bvh)
    return 0


def _write_preview(
    joints: np.ndarray, out: str, title: str | None, fps: float,
    segments: list[tuple[int, str]] | None = None,
) -> None:  # fmt: skip
    from .io.render import render_animation, render_contact_sheet

    suffix = Path(out).suffix.lower()
    if suffix in PREVIEWS:
        _make_parent(out)
    if suffix == ".png":
        render_contact_sheet(joints, out, title=title, fps=fps, segments=segments)
    elif suffix in (".gif", ".mp4"):
        clip = joints if joints.ndim == 3 else joints[0]
        render_animation(clip, out, fps=fps, title=title, segments=segments)
    else:
        raise MotionError(f"{out}: previews are {', '.join(PREVIEWS)}")


def _cmd_render(args: argparse.Namespace) -> int:
    _write_preview(_joints_from(args.inp, units=args.units), args.out, args.title, 20)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    """The feature pipeline end to end on a BVH or, with no data at all, a procedural walk.

    Canonicalise, take the 263-dim features, decode joints back from them (what a generator's
    output goes through) and write what a user would get from a generated clip.
    """
    from .io.bvh import canonical_bvh, write_bvh
    from .io.render import render_animation, render_contact_sheet
    from .motion.features import canonicalize_joints, joints_to_features, recover_from_ric
    from .motion.skeleton import FPS
    from .retarget.joint_map import bvh_to_canonical

    if args.bvh:
        source, label = _joints_from(args.bvh, args.map, args.units), Path(args.bvh).name
    else:
        from .motion.demo_clip import walk_cycle

        source, label = walk_cycle(), "procedural walk"
    joints = canonicalize_joints(source)
    features = joints_to_features(joints)  # (T-1, 263)
    recovered = recover_from_ric(features)  # (T-1, 22, 3)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_bvh(out / "motion.bvh", canonical_bvh(recovered, fps=FPS))
    through_bvh = bvh_to_canonical(out / "motion.bvh", units="m")  # written in metres
    _save_npy(out / "features.npy", features)
    _save_npy(out / "joints.npy", recovered)
    render_contact_sheet(recovered, out / "preview.png", title=label, fps=FPS)
    render_animation(recovered, out / "preview.gif", title=label, fps=FPS)
    for name in ("motion.bvh", "features.npy", "joints.npy", "preview.png", "preview.gif"):
        print(out / name)
    features_mm, bvh_mm = _mm(recovered, joints[:-1]), _mm(through_bvh, recovered)
    clip = f"{len(recovered)} frames, {len(recovered) / FPS:.2f} s at {FPS} fps"
    errors = f"features {features_mm:.2f} mm, written BVH {bvh_mm:.2f} mm (mean per joint)"
    print(f"{label}: {clip}; round trip error: {errors}")
    return 0


def _mm(a: np.ndarray, b: np.ndarray) -> float:
    """Mean joint distance (millimetres) between two clips (T, 22, 3) in metres."""
    return float(np.linalg.norm(a - b, axis=-1).mean() * 1000.0)


def _bvh_outputs(out: str, count: int) -> list[Path]:
    """The files of ``count`` clips written as BVH: OUT.bvh, then OUT_2.bvh, OUT_3.bvh, ..."""
    first = Path(out)
    more = (first.with_name(f"{first.stem}_{i}{first.suffix}") for i in range(2, count + 1))
    return [first, *more]


def _check_generate(args: argparse.Namespace) -> None:
    """Everything about a generate request that can be refused before 40 s of work."""
    from .text_encoder import validate_prompt

    suffix = Path(args.out).suffix.lower()
    if suffix not in (".npy", ".bvh", *PREVIEWS):
        raise MotionError(f"{args.out}: write .npy, .bvh or a preview ({', '.join(PREVIEWS)})")
    if (args.prompt is None) == (args.timeline is None):
        raise MotionError("give a prompt or --timeline FILE (one 'prompt#seconds' per line)")
    if args.timeline is not None:
        _check_timeline_args(args)
        check_output(args.out)
        return
    if args.method is not None:
        raise MotionError("--method chooses how a --timeline's segments are joined")
    validate_prompt(args.prompt)

    many = suffix == ".bvh" and 1 <= args.variations <= MAX_VARIATIONS
    variations = args.variations if many else 1  # generate() refuses the others itself
    for path in _bvh_outputs(args.out, variations):
        check_output(path)


def _check_timeline_args(args: argparse.Namespace) -> None:
    """A timeline makes one clip of the file's lengths: refuse the options that say otherwise,
    and read the file (its errors name the line) before any model is loaded."""
    from .timeline import check_segments, read_timeline

    if args.seconds is not None:
        raise MotionError("--seconds does not apply to --timeline: each line gives its length")
    if args.variations != 1:
        raise MotionError("--timeline makes one clip: change --seed for another")
    args.segments = check_segments(read_timeline(args.timeline))


def _cmd_generate(args: argparse.Namespace) -> int:
    from .io.bvh import canonical_bvh, write_bvh_files
    from .pipeline import generate

    if args.timeline is not None:
        return _cmd_generate_timeline(args)
    suffix = Path(args.out).suffix.lower()
    seconds = DEFAULT_SECONDS if args.seconds is None else args.seconds
    motion = generate(
        args.prompt, seconds=seconds, seed=args.seed, variations=args.variations,
        guidance=args.guidance, steps=args.steps, checkpoint=args.checkpoint,
        device=args.device, generator=args.generator, clean=not args.raw,
        revision=args.revision, allow_unpinned=args.allow_unpinned,
    )  # fmt: skip
    note = motion.diagnostics.get("length_note")
    if note:
        print(f"note: {note}", file=sys.stderr)
    for warning in motion.diagnostics.get("prompt_notes", []):
        print(f"warning: {warning}", file=sys.stderr)
    for match in motion.diagnostics.get("knowledge") or []:  # prompts unlike its training
        if match["warning"]:
            print(f"warning: {match['warning']}", file=sys.stderr)
    if suffix == ".npy":
        _save_npy(args.out, motion.joints)
        written = [args.out]
    elif suffix == ".bvh":
        paths = _bvh_outputs(args.out, len(motion.joints))
        _make_parent(args.out)
        clips = [canonical_bvh(clip, fps=motion.fps) for clip in motion.joints]
        write_bvh_files(list(zip(paths, clips, strict=True)))
        written = [str(p) for p in paths]
    else:
        _write_preview(motion.joints, args.out, args.prompt, motion.fps)
        written = [args.out]
    written += _write_sources(Path(args.out), args.prompt, motion.diagnostics)
    d = motion.diagnostics
    print(f"{len(motion)} clip(s) of {motion.seconds:.2f} s ({d['generator']}, seed {d['seed']}, "
          f"{d['device']}) -> {', '.join(written)}")  # fmt: skip
    return 0


def _cmd_generate_timeline(args: argparse.Namespace) -> int:
    """``generate --timeline FILE``: one clip of every segment, written as a single prompt's;
    a preview marks where each segment starts."""
    from .io.bvh import canonical_bvh, write_bvh
    from .sequence import generate_sequence

    motion = generate_sequence(
        args.segments, seed=args.seed, guidance=args.guidance, steps=args.steps,
        checkpoint=args.checkpoint, device=args.device, generator=args.generator,
        method=args.method, clean=not args.raw, revision=args.revision,
        allow_unpinned=args.allow_unpinned,
    )  # fmt: skip
    for warning in motion.diagnostics.get("prompt_notes", []):
        print(f"warning: {warning}", file=sys.stderr)
    table = motion.diagnostics["segments"]
    suffix = Path(args.out).suffix.lower()
    joints = motion.joints[0]
    if suffix == ".npy":
        _save_npy(args.out, joints)
    elif suffix == ".bvh":
        write_bvh(_make_parent(args.out), canonical_bvh(joints, fps=motion.fps))
    else:
        marks = [(s["start_frame"], s["prompt"]) for s in table]
        _write_preview(joints, args.out, None, motion.fps, marks)
    written = [args.out, *_write_sources(Path(args.out), motion.prompts[0], motion.diagnostics)]
    d = motion.diagnostics
    for i, s in enumerate(table, start=1):
        start, frames = s["start_frame"], s["frames"]
        print(f"  {i}. {start / motion.fps:6.2f} s  {frames / motion.fps:5.2f} s  {s['prompt']}")
    how = f"{d['generator']}, {d['timeline_method']}, seed {d['seed']}, {d['device']}"
    print(f"{len(table)} segment(s), {motion.seconds:.2f} s ({how}) -> {', '.join(written)}")
    return 0


def _write_sources(out: Path, prompt: str, diagnostics: dict) -> list[str]:
    """When anything came from the Hub, ``OUT.source.json`` beside the output: the repos and
    the commits they resolved to (a BVH or .npy has no room for it), also noted on stderr,
    so that the clip can be made again from exactly those files."""
    sources = diagnostics.get("sources") or {}
    fetched = {k: v for k, v in sources.items() if v and v.get("repo_id")}
    if not fetched:
        return []
    for what, record in fetched.items():
        pinned = "" if record["revision"] else " (no --revision given: pass it to pin this)"
        print(f"note: {what} {record['repo_id']} at commit {record['commit']}{pinned}",
              file=sys.stderr)  # fmt: skip
    keys = ("generator", "seed", "frames", "guidance", "steps")
    record = {"prompt": prompt, **{k: diagnostics.get(k) for k in keys}, "sources": sources}
    path = out.with_name(out.name + ".source.json")
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return [str(path)]


def _cmd_fit_smpl(args: argparse.Namespace) -> int:
    from .body.smpl_fit import fit_smpl
    from .io.amass import save_amass

    joints = _load_npy(args.inp, 3, (22, 3), "joints")
    fit = fit_smpl(joints, args.model_folder, args.model, args.gender, args.device, args.fps)
    save_amass(_make_parent(args.out), fit)
    print(f"{len(fit.poses)} frames fitted ({fit.model_type}, {fit.gender}), mean joint "
          f"error {fit.joint_error_m * 100:.2f} cm -> {args.out}")  # fmt: skip
    return 0


def _cmd_benchmark(args: argparse.Namespace) -> int:
    from .benchmark import main as benchmark_main

    return benchmark_main(args.rest) or 0


def _cmd_import_molingo(args: argparse.Namespace) -> int:
    from .store.molingo_release import import_molingo

    out = import_molingo(
        args.sae_dir, args.model_dir, args.out_dir, text_encoder=args.text_encoder,
        ema=not args.no_ema, mean_std=args.mean_std,
    )  # fmt: skip
    print(f"converted MoLingo release -> {out} (use it with --checkpoint {out})")
    return 0


def _cmd_download_molingo(args: argparse.Namespace) -> int:
    from .store.molingo_download import download_molingo

    shown = {"percent": -1}

    def report(done: int, total: int | None, name: str) -> None:
        percent = -1 if not total else done * 100 // total
        if percent != shown["percent"]:
            shown["percent"] = percent
            size = f"{percent}%" if total else f"{done / 2**20:.0f} MiB"
            print(f"\r{name}: {size}", end="", file=sys.stderr, flush=True)

    out = download_molingo(
        args.representation, args.out_dir, mean_std=args.mean_std,
        text_encoder=args.text_encoder, mirror=args.mirror, progress=report,
    )  # fmt: skip
    print(file=sys.stderr)
    print(f"downloaded and converted the MoLingo {args.representation} release -> {out}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from .store.info import checkpoint_info, format_info, prompt_matches
    from .store.knowledge import UNKNOWN

    info = checkpoint_info(args.checkpoint, args.revision)
    if args.prompt:
        info["prompts"] = prompt_matches(args.prompt, args.checkpoint, args.revision)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(format_info(info))
    if args.prompt and info["prompts"] is None:
        print(f"prompts: {UNKNOWN}, so they cannot be checked against it")
    for match in info.get("prompts") or []:
        nearest = "; ".join(f"'{n['caption']}' {n['similarity']:.2f}" for n in match["nearest"])
        verdict = match["warning"] or "like what it was trained on"
        print(f"prompt '{match['prompt']}': similarity {match['similarity']:.2f}, {verdict}")
        print(f"  nearest: {nearest}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="text -> motion (.npy, .bvh or a preview)")
    gen.add_argument("prompt", nargs="?", default=None)
    gen.add_argument(
        "--timeline", default=None, metavar="FILE",
        help="one clip of several prompts: a text file of 'prompt#seconds' lines, 1 to 60 s each",
    )  # fmt: skip
    gen.add_argument(
        "--method", choices=("inpaint", "blend"), default=None,
        help="how --timeline segments join (default: blend for MLA-Gen, inpaint for MoLingo)",
    )  # fmt: skip
    gen.add_argument(
        "--seconds", type=float, default=None,
        help=f"{MIN_SECONDS:g} to {MAX_SECONDS:g} (default {DEFAULT_SECONDS:g})",
    )  # fmt: skip
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--variations", type=int, default=1, help=f"1 to {MAX_VARIATIONS}")
    gen.add_argument("--guidance", type=float, default=None)
    gen.add_argument("--steps", type=int, default=None)
    gen.add_argument("--generator", choices=GENERATORS, default=None)
    gen.add_argument("--checkpoint", default=None, help="folder or Hugging Face id owner/name")
    gen.add_argument(
        "--revision",
        default=None,
        help="Hub revision (commit, tag or branch) of a Hub --checkpoint",
    )
    gen.add_argument(
        "--allow-unpinned",
        action="store_true",
        help="fetch a Hub text encoder named in the checkpoint without a revision",
    )
    gen.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    gen.add_argument(
        "--raw", action="store_true",
        help="write the network's joints as they come (no rigid bones, grounding or foot pins)",
    )  # fmt: skip
    gen.add_argument("--out", required=True)
    gen.set_defaults(run=_cmd_generate)

    converters = (
        ("features", "joints (T,22,3) -> features (T-1,263)", _cmd_features),
        ("recover", "features (T,263) -> joints (T,22,3)", _cmd_recover),
    )
    for name, text, func in converters:
        p = sub.add_parser(name, help=text)
        p.add_argument("inp", metavar="IN.npy")
        p.add_argument("out", metavar="OUT.npy")
        p.set_defaults(run=func)

    b2j = sub.add_parser("bvh2joints", help="BVH -> canonical joints at 20 fps, metres, Y up")
    b2j.add_argument("inp", metavar="IN.bvh")
    b2j.add_argument("out", metavar="OUT.npy")
    map_help = ("joint map: a built-in or user map's name, or a JSON joint map file "
                "(default: detect from the joint names)")  # fmt: skip
    b2j.add_argument("--map", "--map-file", dest="map", default=None, help=map_help)
    _add_units(b2j, None, " (default auto; with --raw, default: keep the file's units)")
    raw_help = "every joint's world position in the file's axes and frame rate, file units"
    b2j.add_argument("--raw", action="store_true", help=raw_help + " unless --units is given")
    b2j.set_defaults(run=_cmd_bvh2joints)

    j2b = sub.add_parser("joints2bvh", help="canonical joints (T,22,3) -> BVH")
    j2b.add_argument("inp", metavar="IN.npy")
    j2b.add_argument("out", metavar="OUT.bvh")
    j2b.add_argument("--fps", type=_number_in(*BVH_FPS_RANGE), default=20.0)
    scale_help = "file units per metre (100 = cm); bvh2joints reads either back as metres"
    scale_range = _number_in(1 / UNITS_RANGE[1], 1 / UNITS_RANGE[0])
    j2b.add_argument("--scale", type=scale_range, default=1.0, help=scale_help)
    j2b.set_defaults(run=_cmd_joints2bvh)

    ren = sub.add_parser("render", help="joints .npy or a BVH -> .png sheet, .gif or .mp4")
    ren.add_argument("inp", metavar="IN")
    ren.add_argument("out", metavar="OUT")
    ren.add_argument("--title", default=None)
    _add_units(ren, "auto", " (default auto; a .npy is metres)")
    ren.set_defaults(run=_cmd_render)

    fit = sub.add_parser("fit-smpl", help="joints (T,22,3) -> AMASS-style SMPL(-X) .npz")
    fit.add_argument("inp", metavar="IN.npy")
    fit.add_argument("out", metavar="OUT.npz")
    fit.add_argument("--model-folder", required=True, help="your SMPL_NEUTRAL.npz etc.")
    fit.add_argument("--model", choices=("smpl", "smplx"), default="smpl")
    fit.add_argument("--gender", choices=("neutral", "female", "male"), default="neutral")
    fit.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    fps_help = "frame rate of IN (default 20)"
    fit.add_argument("--fps", type=_number_in(*BVH_FPS_RANGE), default=20.0, help=fps_help)
    fit.set_defaults(run=_cmd_fit_smpl)

    demo = sub.add_parser("demo", help="BVH or procedural walk -> features -> joints, previews")
    demo.add_argument("--bvh", default=None, help="a BVH clip (default: a procedural walk)")
    demo.add_argument("--map", "--map-file", dest="map", default=None, help=map_help)
    _add_units(demo, "auto", " (default auto)")
    demo.add_argument("--out", default="demo", help="folder to write into (default: ./demo)")
    demo.set_defaults(run=_cmd_demo)

    imp = sub.add_parser("import-molingo", help="published MoLingo release -> checkpoint folder")
    imp.add_argument("sae_dir", metavar="SAE_DIR", help="unzipped SAE (opt.txt, model/*.ckpt)")
    imp.add_argument("model_dir", metavar="MODEL_DIR", help="unzipped model (opt.txt, *.pth)")
    imp.add_argument("out_dir", metavar="OUT_DIR")
    imp.add_argument(
        "--text-encoder",
        default=None,
        metavar="NAME_OR_FOLDER",
        help="T5 tokenizer folder or Hub id (default: google-t5/t5-large)",
    )
    imp.add_argument("--no-ema", action="store_true", help="raw weights instead of the EMA")
    imp.add_argument(
        "--mean-std",
        default=None,
        metavar="FOLDER",
        help="folder with HumanML3D's Mean.npy and Std.npy (default: the release's)",
    )
    imp.set_defaults(run=_cmd_import_molingo)

    dl = sub.add_parser("download-molingo", help="download + convert a published MoLingo release")
    dl.add_argument("--representation", choices=("263", "272"), required=True)
    dl.add_argument("--out", dest="out_dir", required=True, metavar="DIR")
    dl.add_argument(
        "--mean-std",
        default=None,
        metavar="FOLDER",
        help="folder with HumanML3D's Mean.npy and Std.npy",
    )
    dl.add_argument(
        "--text-encoder",
        default=None,
        metavar="NAME_OR_FOLDER",
        help="T5 tokenizer folder or Hub id (default: google-t5/t5-large)",
    )
    dl.add_argument(
        "--mirror",
        default=None,
        metavar="URL",
        help="fetch the zips, by their file names, from this mirror",
    )
    dl.set_defaults(run=_cmd_download_molingo)

    info = sub.add_parser("info", help="what a checkpoint was trained on, its sizes and terms")
    info.add_argument(
        "checkpoint",
        nargs="?",
        default=None,
        help="folder or Hugging Face id (default: the embedded checkpoint)",
    )
    info.add_argument("--revision", default=None, help="Hub revision of a Hub checkpoint")
    info.add_argument(
        "--prompt",
        action="append",
        default=[],
        metavar="TEXT",
        help="also say how close this prompt is to the training captions (repeat for several)",
    )
    info.add_argument("--json", action="store_true", help="print it all as JSON")
    info.set_defaults(run=_cmd_info)

    bench = sub.add_parser("benchmark", help="generation speed", add_help=False)
    bench.add_argument("rest", nargs=argparse.REMAINDER)
    bench.set_defaults(run=_cmd_benchmark)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a bad input prints one ``error:`` line (status 2), Ctrl-C one line
    (status 130), never a traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["benchmark"]:  # engine/benchmark.py parses its own options, --help too
            return _cmd_benchmark(argparse.Namespace(rest=argv[1:]))
        args = build_parser().parse_args(argv)
        _check_before_running(args)
        return args.run(args)
    except (MotionError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130


INTERRUPTED = "interrupted: each output is written whole or not at all"
"""The one line both command lines print on Ctrl-C (exit status 130, as shells expect)."""


def _check_before_running(args: argparse.Namespace) -> None:
    """Refuse an output that cannot be written before any work is done."""
    if args.command == "generate":
        _check_generate(args)
    elif args.command == "demo":
        check_output(args.out, folder=True)
    elif getattr(args, "out", None):
        check_output(args.out)
    elif getattr(args, "out_dir", None):  # import-molingo, download-molingo
        check_output(args.out_dir, folder=True)
