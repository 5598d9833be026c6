"""Files that ship inside the package: training presets, the bundled examples, the catalogue.

Everything that reads a packaged file finds it here, through `importlib.resources`, so the same
code works from a checkout and from an installed wheel. In the checkout, `vetllm/presets` and
`vetllm/examples` are symlinks to the top-level `configs/` and `examples/` folders (one copy of
each file); building a wheel follows the links and copies the files into the package.

`config_path("tiny-cpu")` names a packaged preset, `config_path("my.yaml")` a file. Pure Python.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from vetllm.errors import VetLLMError

DEFAULT_PRESET = "tiny-cpu"  # the CPU default: trains in minutes on a laptop, no download


def package_dir(name: str) -> Path:
    """A folder of the installed package as a filesystem path (wheels install as plain folders)."""
    return Path(str(resources.files("vetllm").joinpath(name)))


PRESETS_DIR = package_dir("presets")  # the checkout's configs/ (symlink) or the wheel's copy
EXAMPLES_DIR = package_dir("examples")  # the checkout's examples/ (symlink) or the wheel's copy


def preset_names(presets_dir: Path = PRESETS_DIR) -> list[str]:
    """Preset names (the *.yaml stems), the CPU default first, then alphabetical."""
    names = sorted(p.stem for p in presets_dir.glob("*.yaml"))
    return sorted(names, key=lambda name: name != DEFAULT_PRESET)


def preset_path(name: str, presets_dir: Path = PRESETS_DIR) -> Path:
    """The YAML file of a packaged preset; VetLLMError naming the presets for any other name."""
    if name not in preset_names(presets_dir):
        raise VetLLMError(
            f"preset: {name!r} is not one of {', '.join(preset_names(presets_dir))}; "
            "give a preset name or the path of a YAML file"
        )
    return presets_dir / f"{name}.yaml"


def config_path(spec: str | Path) -> Path:
    """`--config` value -> YAML file: an existing file wins, else a packaged preset by name.

    A value that looks like a path (has a folder or a .yaml/.yml suffix) but does not exist is
    returned as is, so the loader reports "cannot read it" with the path the user typed.
    """
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    text = str(spec)
    looks_like_path = "/" in text or "\\" in text or path.suffix in (".yaml", ".yml")
    if looks_like_path:
        return path
    return preset_path(text)


def bundled_examples(examples_dir: Path | None = None) -> tuple[Path, Path]:
    """The packaged examples/train.json and examples/val.json; VetLLMError if either is missing."""
    folder = EXAMPLES_DIR if examples_dir is None else examples_dir
    train, val = folder / "train.json", folder / "val.json"
    missing = [p.name for p in (train, val) if not p.is_file()]
    if missing:
        raise VetLLMError(
            f"bundled examples: {', '.join(missing)} not found in the examples folder; "
            "regenerate them with `vetllm data synth --out examples --n 1600 --seed 0`"
        )
    return train, val
