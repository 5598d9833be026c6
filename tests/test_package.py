"""The built wheel works without the checkout: presets and examples ship inside it.

Builds the wheel from a copy of the package sources (the checkout's symlinks vetllm/presets and
vetllm/examples are followed by the build), installs it with `pip install --target` (no network,
no dependencies: the test venv has them) and, from another directory with only the installed
copy on the path, trains one epoch of the packaged CPU default and predicts with it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from vetllm import resources

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "requirements.txt", "vetllm", "configs", "examples")


def test_package_folders_are_the_top_level_folders():
    assert resources.PRESETS_DIR.resolve() == (REPO / "configs").resolve()
    assert resources.EXAMPLES_DIR.resolve() == (REPO / "examples").resolve()
    assert resources.preset_names()[0] == "tiny-cpu"


def test_config_path_names_a_preset_or_a_file(tmp_path):
    assert resources.config_path("tiny-cpu") == resources.PRESETS_DIR / "tiny-cpu.yaml"
    own = tmp_path / "tiny-cpu"  # a file of the same name as a preset wins
    own.write_text("name: mine\n", encoding="utf-8")
    assert resources.config_path(own) == own
    missing = tmp_path / "nothere.yaml"
    assert resources.config_path(missing) == missing  # the loader says "cannot read it"
    with pytest.raises(resources.VetLLMError, match="'tiny-gpu' is not one of tiny-cpu"):
        resources.config_path("tiny-gpu")


def _build_wheel(tmp_path: Path) -> Path:
    source = tmp_path / "src"
    source.mkdir()
    for name in SOURCES:
        item = REPO / name
        if item.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(item, source / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(item, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    wheel_dir = tmp_path / "dist"
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w"]
    subprocess.run([*build, str(wheel_dir), str(source)], check=True, timeout=300)
    (wheel,) = wheel_dir.glob("vetllm-*.whl")
    return wheel


@pytest.mark.slow
def test_wheel_trains_and_predicts_outside_the_checkout(tmp_path):
    wheel = _build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"vetllm/presets/tiny-cpu.yaml", "vetllm/examples/train.json"} <= names
    assert {"vetllm/examples/val.json", "vetllm/catalogue.json"} <= names

    target = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "-q", "install", "--no-deps", "--no-index"]
    subprocess.run([*install, "--target", str(target), str(wheel)], check=True, timeout=300)
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "HF_HUB_OFFLINE": "1"}

    def vetllm(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "vetllm", *args]
        return subprocess.run(
            command, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600
        )

    where = subprocess.run(
        [sys.executable, "-c", "import vetllm; print(vetllm.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(target)  # not the checkout's copy

    trained = vetllm("train", "--config", "tiny-cpu", "--set", "epochs=1", "--output", "run")
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert json.loads((elsewhere / "run" / "status.json").read_text())["state"] == "completed"

    note = "Cow. Fever of 105.2 F, off feed, drop in milk, swollen hot quarter, clots in milk."
    predicted = vetllm("predict", "--run", "run", "--json", note)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    (answer,) = json.loads(predicted.stdout)
    assert answer["raw_output"].startswith("Diagnosed conditions:")
    assert all(code["valid_sctid"] for code in answer["codes"])
