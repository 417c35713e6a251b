"""Command line of the training package: ``python -m training COMMAND ...``.

    build-dataset SOURCE OUT [--format auto|bandai|cmu|folder|deepmimic] [--seed 0]
                  [--workers N] [--split 0.8,0.1,0.1] [--map NAME | --map-file FILE]
                  [--map-dir DIR]
    pack-dataset DATASET OUT.npz          a built data set in one small file (joints + texts)
    unpack-dataset PACK.npz OUT [--workers N]   rebuild the full data set from a pack
    combine-datasets OUT NAME=DATASET ...  several built data sets in one, to train on them all
    train CONFIG [key=value ...] [--resume]     train a model (torchrun for several GPUs)
    evaluate CHECKPOINT --data ROOT --evaluator PATH   FID, R-precision, ... (20 replications)
    export RUN [RUN ...] OUT [--bf16]            runs -> an engine checkpoint folder
    describe CHECKPOINT --data DATASET           add what it was trained on (export does it)
    push OUT REPO_ID                             upload a checkpoint to the Hugging Face Hub

Problems with the input (a missing folder, a bad split, a bad config) print one line naming
them and exit with status 2, Ctrl-C one line and status 130, for every command; files that
cannot be read are listed, skipped and recorded in build.json.
"""

import argparse
import json
import sys
from collections.abc import Sequence

from engine.cli import INTERRUPTED
from engine.errors import MotionError
from engine.retarget.joint_map import JOINT_MAPS
from training.build_dataset import FORMATS, BuildSettings, bare_reason, build_dataset


def _split(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or not all(0 <= p <= 1 for p in parts):  # NaN fails the range too
        raise argparse.ArgumentTypeError(f"expected three fractions like 0.8,0.1,0.1: {text!r}")
    return parts  # type: ignore[return-value]


def _add_build_dataset(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "build-dataset",
        help="BVH clips with captions -> a HumanML3D-layout data set",
        description="Build new_joints/, new_joint_vecs/, texts/, Mean/Std, splits, labels.json "
        "and build.json from a folder of BVH files (or a tar archive of one).",
    )
    parser.add_argument("source", help="folder (or .tar.xz) holding the BVH files")
    parser.add_argument("out", help="data set folder to write (replaced once complete)")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="auto",
        help="bandai: Bandai Namco release; cmu: CMU clips with cmu-index.csv; folder: BVH + "
        "NAME.txt / captions.csv / labels.json; deepmimic: DeepMimic characters/ + motions/ "
        "JSON; auto: bandai, cmu or deepmimic when it looks like it, else folder",
    )
    parser.add_argument("--seed", type=int, default=0, help="splits and generated captions")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: CPUs)")
    parser.add_argument(
        "--split",
        type=_split,
        default=(0.8, 0.1, 0.1),
        help="train,val,test fractions (default 0.8,0.1,0.1)",
    )
    parser.add_argument(
        "--map",
        dest="map_name",
        default=None,
        help=f"read every file with this joint map: {', '.join(JOINT_MAPS)} or one of the "
        "user's maps (default: detect each file's from its joint names)",
    )
    parser.add_argument(
        "--map-file",
        default=None,
        help="read every file with this JSON joint map (docs/dataset.md, 'Joint maps')",
    )
    parser.add_argument(
        "--map-dir",
        default=None,
        help="folder of the user's JSON joint maps, used by name and in detection (default: "
        "$KINETEXT_JOINT_MAPS, else ~/.config/kinetext/joint_maps)",
    )
    parser.add_argument(
        "--units",
        default="auto",
        help="the BVH files' length unit: auto (told from the skeleton's height), m, cm, mm, "
        "in, or metres per file unit",
    )
    parser.set_defaults(run=_run_build_dataset)


def _run_build_dataset(args: argparse.Namespace) -> int:
    settings = BuildSettings(
        args.format, args.seed, args.split, args.map_name, args.workers, args.units,
        args.map_file, args.map_dir,
    )  # fmt: skip
    report = build_dataset(args.source, args.out, settings)
    splits = ", ".join(f"{k} {v}" for k, v in report.clips_per_split.items())
    print(
        f"built {report.built} clips ({2 * report.built} with mirrors: {splits}), "
        f"{report.frames} frames, {report.hours:.2f} h -> {report.out}"
    )
    maps = report.read.get("map", {})
    if maps:
        how = "given" if args.map_name or args.map_file else "detected from joint names"
        print(f"joint map ({how}): " + ", ".join(f"{m} {n} files" for m, n in maps.items()))
    for line in skipped_summary(report.skipped):
        print(line)
    print(f"took {report.seconds:.1f} s")
    return 0


def skipped_summary(skipped: Sequence, shown: int = 3) -> list[str]:
    """One line per distinct reason, naming a few of its files: a folder of one unknown
    skeleton is one line, not one long message per file (build.json lists every file)."""
    groups: dict[str, list[str]] = {}
    for item in skipped:
        groups.setdefault(bare_reason(item), []).append(item.file)
    lines = []
    for reason, files in groups.items():
        more = f" and {len(files) - shown} more" if len(files) > shown else ""
        lines.append(f"skipped {', '.join(files[:shown])}{more}: {reason}")
    return lines


def _add_pack(commands: argparse._SubParsersAction) -> None:
    pack = commands.add_parser("pack-dataset", help="a built data set -> one small .npz")
    pack.add_argument("dataset", help="folder written by build-dataset")
    pack.add_argument("out", help=".npz file to write")
    pack.set_defaults(run=_run_pack)
    unpack = commands.add_parser("unpack-dataset", help="a pack -> the full data set folder")
    unpack.add_argument("pack", help=".npz written by pack-dataset")
    unpack.add_argument("out", help="data set folder to write (replaced once complete)")
    unpack.add_argument("--workers", type=int, default=None, help="processes (default: CPUs)")
    unpack.set_defaults(run=_run_unpack)


def _run_pack(args: argparse.Namespace) -> int:
    from training.compact import pack_dataset

    out = pack_dataset(args.dataset, args.out)
    print(f"packed {args.dataset} -> {out} ({out.stat().st_size / 2**20:.1f} MiB)")
    return 0


def _run_unpack(args: argparse.Namespace) -> int:
    from training.compact import unpack_dataset

    print(f"unpacked {args.pack} -> {unpack_dataset(args.pack, args.out, args.workers)}")
    return 0


def _add_combine(commands: argparse._SubParsersAction) -> None:
    combine = commands.add_parser(
        "combine-datasets",
        help="several built data sets -> one (ids <name>_<id>, splits kept per source)",
        description="Combine data sets written by build-dataset: each keeps its clips, "
        "captions and splits; Mean/Std are fitted on the combined train split. Sampling "
        "weights per source are the training config's source_weights.",
    )
    combine.add_argument("out", help="data set folder to write (replaced once complete)")
    combine.add_argument("sources", nargs="+", help="NAME=FOLDER (NAME: lowercase letters, "
                         "digits), or FOLDER (named after the folder)")  # fmt: skip
    combine.set_defaults(run=_run_combine)


def _run_combine(args: argparse.Namespace) -> int:
    from training.combine import combine_datasets, parse_source

    out = combine_datasets([parse_source(s) for s in args.sources], args.out)
    build = json.loads((out / "build.json").read_text(encoding="utf-8"))
    for name, entry in build["sources"].items():
        print(f"{name}: {entry['clips']} clips, {entry['hours']} h, splits {entry['splits']}")
    print(f"combined {build['clips']['built']} clips, {build['hours']} h -> {out}")
    return 0


# Commands whose modules parse their own arguments: name -> (module, function, help).
DELEGATED = {
    "train": ("training.trainer", "main_train", "train a model from a config file"),
    "evaluate": ("training.evaluation.run", "main_evaluate", "score a checkpoint"),
    "export": ("training.export", "main_export", "training runs -> an engine checkpoint"),
    "push": ("training.push", "main_push", "upload a checkpoint to the Hugging Face Hub"),
    "describe": (
        "training.describe",
        "main_describe",
        "add what a checkpoint was trained on to its folder",
    ),
}


def _add_delegated(commands: argparse._SubParsersAction) -> None:
    for name, (_, _, text) in DELEGATED.items():
        sub = commands.add_parser(name, help=text, add_help=False)
        sub.add_argument("args", nargs=argparse.REMAINDER)
        sub.set_defaults(run=_run_delegated, delegated=name)


def _run_delegated(args: argparse.Namespace) -> int:
    import importlib

    module, function, _ = DELEGATED[args.delegated]
    return getattr(importlib.import_module(module), function)(args.args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    _add_build_dataset(commands)
    _add_pack(commands)
    _add_combine(commands)
    _add_delegated(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a user's mistake prints one ``error:`` line (status 2), Ctrl-C one line
    (status 130), never a traceback. The delegated commands (train, ...) are covered too."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in DELEGATED:  # the module parses the rest, --help included
            return _run_delegated(argparse.Namespace(delegated=argv[0], args=argv[1:]))
        args = build_parser().parse_args(argv)
        return args.run(args)
    except (MotionError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
