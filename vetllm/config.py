"""TrainConfig: the one typed, validated description of a training run, loaded from YAML.

The CLI, the UI and the tests all build this object and hand it to `vetllm.engine.training.train`.
It is a strict pydantic model: a value of the wrong type is a problem, not a silent conversion
(numbers YAML 1.1 reads as text, like `2e-4`, are the one exception). Every problem -- wrong
types, unknown or misplaced keys, broken value rules (`vetllm.config_checks`) -- is reported at
once in one VetLLMError, before any model is built. Code reads fields flat (`cfg.learning_rate`);
files group them in sections (`optimisation:`), each field naming its section once below
(`vetllm.config_sections` moves values between the two shapes; flat files still load).
`load_config(path, overrides)` reads a preset or a file and applies `key=value` overrides.
Pure Python: no torch here.
"""

from __future__ import annotations

import contextlib
import functools
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vetllm.config_checks import PROMPT_STYLES, TINY_BASE, value_problems
from vetllm.config_sections import field_named, flatten, nest
from vetllm.data.hf_datasets import is_hub_source
from vetllm.data.prompts import DEFAULT_INSTRUCTION, PromptTemplate
from vetllm.errors import VetLLMError
from vetllm.resources import config_path

__all__ = [
    "BUNDLED_DATA",
    "SECTION_OF",
    "ConfigError",
    "TrainConfig",
    "field_types",
    "load_config",
    "parse_override",
    "parse_text",
]

BUNDLED_DATA = "bundled"  # data / val_data value meaning the repository's examples/


def _in(section: str, default: Any) -> Any:
    """A field's default, and the config-file section that holds the field."""
    return Field(default, json_schema_extra={"section": section})


class TrainConfig(BaseModel):
    """Everything a training run needs; field comments give units and meaning.

    Each `_in(SECTION, default)` names the section of the field in YAML files; `name` stays at
    the top of the file. The field order is the file order.
    """

    model_config = ConfigDict(strict=True, extra="forbid")

    name: str = "run"
    # -- model: what is trained, and the prompt it reads (train, predict and evaluate alike)
    # "tiny", a hub id ("Qwen/Qwen2.5-7B-Instruct") or a local dir
    base_model: str = _in("model", TINY_BASE)
    base_revision: str | None = _in("model", None)  # hub revision (branch, tag or commit)
    method: str = _in("model", "full")  # full | lora | qlora
    # Prompt: "alpaca", "compact", or a literal template containing {input} (and {instruction}).
    prompt_template: str = _in("model", "alpaca")
    instruction: str = _in("model", DEFAULT_INSTRUCTION)
    note_prefix: str = _in("model", "Clinical Note: ")
    answer_prefix: str = _in("model", "Diagnosed conditions: ")
    # -- data: what the model trains on (the recipe beyond the user's rows: issue 7)
    # training data: a file (JSON / JSONL / CSV / Parquet, source format), "bundled", or a Hub
    # dataset "hub:user/name[:split]"
    data: str = _in("data", BUNDLED_DATA)
    val_data: str | None = _in("data", BUNDLED_DATA)  # like data, or None: no validation
    catalogue: str | None = _in("data", None)  # optional JSON file extending the catalogue
    max_length: int = _in("data", 512)  # tokens per example (prompt + answer + EOS); cut beyond
    dedupe_notes: bool = _in("data", False)  # each distinct note once, majority label set
    synthetic_notes: int = _in("data", 0)  # package-generated free-text notes mixed in (0 = off)
    note_token_dropout: float = _in("data", 0.0)  # share of note tokens removed per draw (0 = off)
    # chance per draw that the note's comma-separated parts after the first are reordered (0 = off)
    note_segment_shuffle: float = _in("data", 0.0)
    # -- lora: the adapter (ignored by method: full)
    lora_r: int = _in("lora", 16)
    lora_alpha: int = _in("lora", 32)
    lora_dropout: float = _in("lora", 0.1)
    lora_target_modules: list[str] = _in("lora", ["q_proj", "k_proj", "v_proj", "o_proj"])
    # -- optimisation: steps are optimizer steps
    learning_rate: float = _in("optimisation", 2e-4)
    lr_scheduler: str = _in("optimisation", "cosine")
    warmup_ratio: float = _in("optimisation", 0.03)  # share of all optimizer steps warming up
    weight_decay: float = _in("optimisation", 0.0)
    max_grad_norm: float = _in("optimisation", 1.0)
    epochs: float = _in("optimisation", 3.0)
    max_steps: int | None = _in("optimisation", None)  # overrides epochs when set
    per_device_batch: int = _in("optimisation", 2)  # micro-batch per device (samples)
    grad_accum: int = _in("optimisation", 4)  # micro-batches per optimizer step
    drop_last: bool = _in("optimisation", True)
    seed: int = _in("optimisation", 0)
    # models trained (seeds seed, seed + 1000, ...) answering by vote; 1 = a single model
    ensemble: int = _in("optimisation", 1)
    # the tuned bag-of-words classifier (fitted on the training notes) votes with the model(s)
    bag_of_words_vote: bool = _in("optimisation", False)
    optim: str = _in("optimisation", "adamw_torch")
    bf16: bool = _in("optimisation", False)  # bf16 mixed precision (CUDA only; else a warning)
    # -- speed (issue 10): what the *-fast presets turn on. None of these changes the data, the
    # effective batch, the optimizer step count or the LoRA recipe; they only cut time per step.
    gradient_checkpointing: bool = _in("speed", False)
    # CUDA: largest micro-batch the memory estimate fits (same effective batch; may also drop
    # gradient checkpointing); needs drop_last: false
    auto_micro_batch: bool = _in("speed", False)
    group_by_length: bool = _in("speed", False)  # batches of similar length (less padding)
    # sdpa | flash_attention_2 | eager; None = transformers' default
    attn_implementation: str | None = _in("speed", None)
    use_liger_kernel: bool = _in("speed", False)  # CUDA: fused Liger kernels when installed
    torch_threads: int | None = _in("speed", None)  # CPU threads for torch; None = its default
    # -- evaluation: validation during and after training (steps are optimizer steps)
    eval_steps: int | None = _in("evaluation", None)  # validate every N steps; None = at the end
    # Cap on validation notes scored in each periodic validation (spread evenly); None = all.
    eval_samples: int | None = _in("evaluation", None)
    # evals without lenient-accuracy gain before stopping; None = off
    early_stopping_patience: int | None = _in("evaluation", None)
    max_new_tokens: int = _in("evaluation", 24)  # generation budget per answer (tokens)
    final_eval: bool = _in("evaluation", True)  # evaluate on val_data into RUN_DIR/eval/
    # abstention (issue 7): answers below a confidence chosen on validation for this accuracy
    # get no code ("refer to a veterinarian"); None = off (out-of-scope notes always abstain)
    abstain_target_accuracy: float | None = _in("evaluation", None)
    # -- logging: the loss log, checkpoints and experiment trackers
    logging_steps: int = _in("logging", 10)
    # checkpoint interval; while validation runs, every eval_steps instead
    save_steps: int = _in("logging", 200)
    # "none", or tracker names, e.g. "tensorboard" or "tensorboard,wandb" (checked at start)
    report_to: str = _in("logging", "none")
    # -- tiny: the CPU default model (base_model: tiny), built from scratch; units / tokens
    tiny_vocab_size: int = _in("tiny", 1024)
    tiny_hidden_size: int = _in("tiny", 128)
    tiny_layers: int = _in("tiny", 2)
    tiny_heads: int = _in("tiny", 4)
    tiny_intermediate_size: int = _in("tiny", 256)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as error:
            source = f"'{values.get('name', 'run')}'"
            raise ConfigError(source, _problems(error, values)) from None

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_written_as_text(cls, value: Any, info) -> Any:
        """YAML 1.1 reads `2e-4` (no dot) as text: in a number field such text becomes a number.

        Text that is no number stays as it is and is reported ("got 'fast'; expected a number").
        """
        kind = _split_optional(field_types()[info.field_name])[0]
        if kind in (int, float) and isinstance(value, str):
            with contextlib.suppress(ValueError):
                return parse_text(value, kind)
        return value

    @model_validator(mode="after")
    def _check_values(self) -> TrainConfig:
        problems = value_problems(self)
        if problems:
            raise _ValueProblems(problems)
        return self

    @property
    def effective_batch(self) -> int:
        """Samples per optimizer step on one device (micro-batch x accumulation)."""
        return self.per_device_batch * self.grad_accum

    def data_paths(self) -> tuple[Path, Path | None]:
        """The training and validation files (`bundled` means the examples/ files)."""
        bundled = None
        if BUNDLED_DATA in (self.data, self.val_data):
            from vetllm.data.synth import bundled_examples

            bundled = bundled_examples()
        train = bundled[0] if self.data == BUNDLED_DATA else Path(self.data)
        if self.val_data is None:
            return train, None
        return train, bundled[1] if self.val_data == BUNDLED_DATA else Path(self.val_data)

    def coverage_plan(self, records: list, world_size: int = 1):
        """What the Trainer will do with these training records under this config."""
        from vetllm.coverage import plan_coverage
        from vetllm.data.records import note_key

        return plan_coverage(
            len(records),
            self.per_device_batch,
            grad_accum=self.grad_accum,
            epochs=self.epochs,
            max_steps=self.max_steps,
            world_size=world_size,
            drop_last=self.drop_last,
            unique_notes=len({note_key(r.note) for r in records}),
        )

    def prompt(self) -> PromptTemplate:
        """The prompt template used to train, predict and evaluate with this config."""
        template = PROMPT_STYLES.get(self.prompt_template, self.prompt_template)
        return PromptTemplate(
            template=template,
            instruction=self.instruction,
            answer_prefix=self.answer_prefix,
            note_prefix=self.note_prefix,
        )

    def to_dict(self) -> dict:
        """Every field, flat (field name -> value)."""
        return self.model_dump()

    def to_sections(self) -> dict:
        """Every field in the file layout: `name`, then one mapping per section."""
        return nest(self.to_dict(), SECTION_OF)

    def yaml_text(self) -> str:
        """Every field as sectioned YAML, in field order (what `load_config` reads back)."""
        parts = self.to_sections().items()  # one block each, a blank line between them
        return "\n".join(
            yaml.safe_dump({k: v}, sort_keys=False, allow_unicode=True) for k, v in parts
        )

    def to_yaml(self, path: str | Path) -> Path:
        """Write the resolved config (every field) so the run can be repeated or resumed."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = "# Resolved TrainConfig; rerun with: vetllm train --config " + path.name + "\n"
        path.write_text(text + self.yaml_text(), encoding="utf-8")
        return path

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated again)."""
        return TrainConfig(**{**self.to_dict(), **changes})


# field -> its section in config files (None: top of the file), read from the class above.
SECTION_OF: dict[str, str | None] = {
    name: (info.json_schema_extra or {}).get("section")
    for name, info in TrainConfig.model_fields.items()
}


class ConfigError(VetLLMError):
    """A config with problems; `problems` holds every one of them, one line each."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = list(problems)
        super().__init__(
            f"config {source} has {len(problems)} problem(s):\n"
            + "\n".join(f"  - {p}" for p in problems)
        )


class _ValueProblems(ValueError):
    """Carries the broken value rules out of pydantic's validation (see `_problems`)."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def _problems(error: ValidationError, values: dict) -> list[str]:
    """pydantic's errors -> our lines: one per field, naming the value given and the type."""
    problems, unknown, seen = [], [], set()
    for item in error.errors():
        cause = item.get("ctx", {}).get("error")
        if isinstance(cause, _ValueProblems):
            problems += cause.problems
            continue
        field = str(item["loc"][0]) if item["loc"] else ""
        if item["type"] == "extra_forbidden":
            unknown.append(field)
        elif field in field_types() and field not in seen:
            seen.add(field)
            expected = _type_name(field_types()[field])
            problems.append(f"{field}: got {values.get(field)!r}; expected {expected}")
    if unknown:
        problems.insert(0, f"unknown field(s) {', '.join(sorted(unknown))}")
    return problems


@functools.cache
def field_types() -> dict[str, object]:
    """Resolved type of every TrainConfig field."""
    return {name: info.annotation for name, info in TrainConfig.model_fields.items()}


def _split_optional(kind: object) -> tuple[object, bool]:
    """(inner type, accepts None) for `X | None`."""
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return inner[0], True
    return kind, False


def _type_name(kind: object) -> str:
    inner, optional = _split_optional(kind)
    name = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        inner, "a list of strings"
    )
    return name + (" (or null)" if optional else "")


def parse_override(text: str) -> tuple[str, object]:
    """`key=value` or `section.key=value` -> (key, value typed by the field's type).

    Raises VetLLMError for an unknown key, a key under the wrong section or an unusable value.
    """
    key, sep, raw = text.partition("=")
    key = key.strip().replace("-", "_")
    try:
        key = field_named(key, SECTION_OF) if sep else ""
    except ValueError as error:
        raise VetLLMError(f"--set {text!r}: {error}; write {key.rpartition('.')[2]}=...") from None
    except KeyError:
        key = ""
    if not key:
        known = ", ".join(field_types())
        raise VetLLMError(f"--set {text!r}: expected KEY=VALUE with KEY one of: {known}")
    kind = field_types()[key]
    try:
        return key, parse_text(raw, kind)
    except ValueError:
        raise VetLLMError(f"--set {text!r}: {key} must be {_type_name(kind)}") from None


def parse_text(raw: str, kind: object) -> object:
    """Text typed by a field type (`--set` values, numbers YAML left as text); ValueError if not."""
    inner, optional = _split_optional(kind)
    raw = raw.strip()
    if optional and raw.lower() in ("none", "null", ""):
        return None
    if inner is bool:
        if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(raw)
        return raw.lower() in ("true", "1", "yes")
    if inner is int:
        return _parse_int(raw)
    if inner is float:
        return float(raw)
    if inner is str:
        return raw
    return [part.strip() for part in raw.split(",") if part.strip()]


def _parse_int(raw: str) -> int:
    """'200' or a whole number in exponent form ('1e3', as people write step counts)."""
    try:
        return int(raw)
    except ValueError:
        number = float(raw)
        if not number.is_integer():
            raise
        return int(number)


def _resolve_path(value: str | None, base_dir: Path) -> str | None:
    """Relative data paths are taken from the working directory, else from the config's folder."""
    if value is None or value == BUNDLED_DATA or is_hub_source(value):
        return value
    path = Path(value).expanduser()
    if path.is_absolute() or path.exists():
        return str(path.resolve())
    beside = base_dir / path
    return str(beside.resolve()) if beside.exists() else value


def _read_yaml(path: Path) -> dict:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as error:
        raise VetLLMError(f"config {path.name}: cannot read it ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise VetLLMError(f"config {path.name}: not valid YAML ({error})") from None
    if not isinstance(raw, dict):
        raise VetLLMError(f"config {path.name}: expected a mapping of field: value at top level")
    return raw


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read a YAML config (a file, or a packaged preset by name), apply `key=value` overrides,
    validate every field, return it.

    The file may be sectioned (what presets and new run folders hold) or flat (run folders of
    earlier versions). Unknown and misplaced keys and every field problem are reported at once.
    """
    path = config_path(path)
    values, problems = flatten(_read_yaml(path), SECTION_OF)
    values.setdefault("name", path.stem)
    values.update(parse_override(item) for item in overrides)
    for key in ("data", "val_data", "catalogue"):
        if isinstance(values.get(key), str):
            values[key] = _resolve_path(values[key], path.parent)
    if not problems:
        return TrainConfig(**values)
    try:
        TrainConfig(**values)
    except ConfigError as error:  # the field problems join the layout problems
        problems += error.problems
    raise ConfigError(path.name, problems)
