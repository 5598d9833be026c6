"""TrainConfig: the one typed, validated description of a training run, loaded from YAML.

The CLI, the UI and the tests all build this object and hand it to `vetllm.engine.training.train`.
`load_config(path, overrides)` reads a YAML file from `configs/` (or a run directory), applies
`key=value` overrides typed by the dataclass field types, and checks every field at once in
`__post_init__`: a bad config fails before any model is built, with one message per field that
names the value received and what to write instead. Pure Python: no torch here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from vetllm.data.hf_datasets import is_hub_source
from vetllm.data.prompts import ALPACA_TEMPLATE, DEFAULT_INSTRUCTION, PromptTemplate
from vetllm.errors import VetLLMError
from vetllm.resources import config_path

TINY_BASE = "tiny"  # base_model value that builds the CPU default from scratch (no download)
BUNDLED_DATA = "bundled"  # data / val_data value meaning the repository's examples/
METHODS = ("full", "lora", "qlora")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")
# A compact prompt for the tiny model: it has no use for the long Alpaca preamble, and every prompt
# token costs CPU time; the answer format ("Diagnosed conditions: ...") stays the same.
COMPACT_TEMPLATE = "Note: {input}\n"
PROMPT_STYLES = {"alpaca": ALPACA_TEMPLATE, "compact": COMPACT_TEMPLATE}


@dataclass
class TrainConfig:
    """Everything a training run needs; field comments give units and meaning."""

    name: str = "run"
    base_model: str = TINY_BASE  # "tiny", a hub id ("Qwen/Qwen2.5-7B-Instruct") or a local dir
    base_revision: str | None = None  # hub revision (branch, tag or commit) for reproducibility
    method: str = "full"  # full | lora | qlora
    # training data: a file (JSON / JSONL / CSV / Parquet, source format), "bundled", or a Hub
    # dataset "hub:user/name[:split]"
    data: str = BUNDLED_DATA
    val_data: str | None = BUNDLED_DATA  # like data, or None for no validation
    catalogue: str | None = None  # optional JSON file extending the disease catalogue
    # Prompt: "alpaca", "compact", or a literal template containing {input} (and {instruction}).
    prompt_template: str = "alpaca"
    instruction: str = DEFAULT_INSTRUCTION
    note_prefix: str = "Clinical Note: "
    answer_prefix: str = "Diagnosed conditions: "
    # LoRA (ignored by method=full)
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )
    # Optimisation
    learning_rate: float = 2e-4
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.03  # share of all optimizer steps spent warming up
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    epochs: float = 3.0
    max_steps: int | None = None  # optimizer steps; overrides epochs when set
    per_device_batch: int = 2  # micro-batch per device (samples)
    grad_accum: int = 4  # micro-batches per optimizer step
    max_length: int = 512  # tokens per example (prompt + answer + EOS); longer notes are cut
    drop_last: bool = True
    note_token_dropout: float = 0.0  # share of note tokens removed per draw in training (0 = off)
    seed: int = 0
    optim: str = "adamw_torch"
    gradient_checkpointing: bool = False
    bf16: bool = False  # bf16 mixed precision (CUDA only; ignored with a warning elsewhere)
    # Logging, validation, checkpoints (all in optimizer steps)
    logging_steps: int = 10
    eval_steps: int | None = None  # periodic validation every N steps; None = only at the end
    # Cap on validation notes scored in each periodic validation (spread evenly); None = all.
    eval_samples: int | None = None
    early_stopping_patience: int | None = None  # evals without lenient-accuracy gain; None = off
    save_steps: int = 200  # checkpoint interval; while validation runs, every eval_steps instead
    max_new_tokens: int = 24  # generation budget per answer (tokens)
    final_eval: bool = True  # evaluate the final model on val_data and write RUN_DIR/eval/
    # The CPU default model (base_model: tiny): built from scratch, sizes in units / tokens.
    tiny_vocab_size: int = 1024
    tiny_hidden_size: int = 128
    tiny_layers: int = 2
    tiny_heads: int = 4
    tiny_intermediate_size: int = 256
    torch_threads: int | None = None  # CPU threads for torch; None = torch's default
    # GPU speed (issue 10): what the *-fast presets turn on. None of these changes the data, the
    # effective batch, the optimizer step count or the LoRA recipe; they only cut time per step.
    auto_micro_batch: bool = False  # CUDA: largest micro-batch the memory estimate fits (same
    # effective batch; may also drop gradient checkpointing); needs drop_last: false
    group_by_length: bool = False  # draw batches of similar length (less padding per batch)
    attn_implementation: str | None = None  # sdpa | flash_attention_2 | eager; None = default
    use_liger_kernel: bool = False  # CUDA: fused Liger kernels when liger-kernel is installed
    # abstention (issue 7): answers below a confidence chosen on validation for this accuracy
    # get no code ("refer to a veterinarian"); None = off (out-of-scope notes always abstain)
    abstain_target_accuracy: float | None = None
    # Experiment tracking (package): passed to the Trainer; "none", or tracker names, e.g.
    # "tensorboard" or "tensorboard,wandb". Checked for installation when training starts.
    report_to: str = "none"
    # Recipe (issue 7): what the model trains on, beyond the user's rows as given.
    dedupe_notes: bool = False  # each distinct note once, with its majority label set
    synthetic_notes: int = 0  # package-generated free-text notes mixed into training (0 = off)

    def __post_init__(self) -> None:
        problems = _type_problems(self) or _value_problems(self)
        if problems:
            raise VetLLMError(
                f"config '{self.name}' has {len(problems)} problem(s):\n"
                + "\n".join(f"  - {p}" for p in problems)
            )

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
        return dataclasses.asdict(self)

    def yaml_text(self) -> str:
        """Every field as YAML, in field order (what `load_config` reads back)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def to_yaml(self, path: str | Path) -> Path:
        """Write the resolved config (every field) so the run can be repeated or resumed."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = "# Resolved TrainConfig; rerun with: vetllm train --config " + path.name + "\n"
        path.write_text(text + self.yaml_text(), encoding="utf-8")
        return path

    def replace(self, **changes) -> TrainConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


_FIELD_TYPES: dict[str, object] = {}


def field_types() -> dict[str, object]:
    """Resolved type of every TrainConfig field (postponed annotations evaluated once)."""
    if not _FIELD_TYPES:
        _FIELD_TYPES.update(typing.get_type_hints(TrainConfig))
    return _FIELD_TYPES


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


def _has_type(value: object, kind: object) -> bool:
    inner, optional = _split_optional(kind)
    if value is None:
        return optional
    if inner is bool:
        return isinstance(value, bool)
    if inner is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if inner is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if inner is str:
        return isinstance(value, str)
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _type_problems(cfg: TrainConfig) -> list[str]:
    problems = []
    for name, kind in field_types().items():
        value = getattr(cfg, name)
        if not _has_type(value, kind):
            problems.append(f"{name}: got {value!r}; expected {_type_name(kind)}")
        elif _split_optional(kind)[0] is float and value is not None:
            setattr(cfg, name, float(value))  # YAML `epochs: 3` is an int; the field is a float
    return problems


# (field, is the value acceptable?, what to write instead); checked in this order, all reported.
_RULES: tuple = (
    ("name", lambda c: bool(c.name.strip()), "give the run a short name"),
    ("method", lambda c: c.method in METHODS, f"use one of {', '.join(METHODS)}"),
    (
        "method",
        lambda c: c.base_model != TINY_BASE or c.method == "full",
        "the tiny CPU model is trained from scratch: use method: full with base_model: tiny",
    ),
    ("base_model", lambda c: bool(c.base_model.strip()), "use 'tiny', a hub id or a local dir"),
    ("data", lambda c: bool(c.data.strip()), "give a training file or 'bundled'"),
    (
        "prompt_template",
        lambda c: c.prompt_template in PROMPT_STYLES or "{input}" in c.prompt_template,
        "use 'alpaca', 'compact' or a template text containing {input}",
    ),
    ("lr_scheduler", lambda c: c.lr_scheduler in SCHEDULERS, f"use one of {', '.join(SCHEDULERS)}"),
    (
        "learning_rate",
        lambda c: math.isfinite(c.learning_rate) and 0 < c.learning_rate < 1,
        "use a positive number below 1, e.g. 2e-4 (LoRA) or 3e-3 (tiny)",
    ),
    ("warmup_ratio", lambda c: 0 <= c.warmup_ratio < 1, "use a share from 0 to below 1, e.g. 0.03"),
    ("weight_decay", lambda c: c.weight_decay >= 0, "use 0 or a small positive number"),
    ("max_grad_norm", lambda c: c.max_grad_norm > 0, "use a positive number, e.g. 1.0"),
    (
        "epochs",
        lambda c: math.isfinite(c.epochs) and 0 < c.epochs <= 1000,
        "use a positive number of epochs, e.g. 3",
    ),
    ("lora_dropout", lambda c: 0 <= c.lora_dropout < 1, "use a probability below 1, e.g. 0.1"),
    (
        "note_token_dropout",
        lambda c: 0 <= c.note_token_dropout < 0.5,
        "use a share from 0 (off) to below 0.5, e.g. 0.1",
    ),
    (
        "lora_target_modules",
        lambda c: bool(c.lora_target_modules) or c.method == "full",
        "list the modules to adapt, e.g. [q_proj, k_proj, v_proj, o_proj]",
    ),
    ("max_length", lambda c: c.max_length >= 32, "use at least 32 tokens (prompt + answer)"),
    ("tiny_vocab_size", lambda c: c.tiny_vocab_size >= 300, "use at least 300 (bytes + merges)"),
    (
        "tiny_heads",
        lambda c: c.tiny_heads > 0 and c.tiny_hidden_size % c.tiny_heads == 0,
        "use a positive divisor of tiny_hidden_size",
    ),
    (
        "early_stopping_patience",
        lambda c: c.early_stopping_patience is None or c.val_data is not None,
        "early stopping needs val_data",
    ),
    (
        "early_stopping_patience",
        lambda c: c.early_stopping_patience is None or c.eval_steps is not None,
        "early stopping needs eval_steps (how often to validate)",
    ),
)
_POSITIVE = (
    "per_device_batch",
    "grad_accum",
    "logging_steps",
    "save_steps",
    "max_new_tokens",
    "lora_r",
    "lora_alpha",
    "tiny_hidden_size",
    "tiny_layers",
    "tiny_intermediate_size",
)
_POSITIVE_OR_OFF = (
    "max_steps",
    "eval_steps",
    "early_stopping_patience",
    "torch_threads",
    "eval_samples",
)


def _check_recipe(cfg: TrainConfig) -> list[str]:
    """The training-mix fields: a count of synthetic notes the machine can hold."""
    if not 0 <= cfg.synthetic_notes <= 20_000:
        return [
            f"synthetic_notes: got {cfg.synthetic_notes!r}; use 0 (off) to 20000 notes, e.g. 800"
        ]
    return []


def _value_problems(cfg: TrainConfig) -> list[str]:
    problems = [
        f"{name}: got {getattr(cfg, name)!r}; {fix}" for name, ok, fix in _RULES if not ok(cfg)
    ]
    problems += [
        f"{name}: got {getattr(cfg, name)!r}; use a positive integer"
        for name in _POSITIVE
        if getattr(cfg, name) <= 0
    ]
    problems += [
        f"{name}: got {getattr(cfg, name)!r}; use a positive integer or null (off)"
        for name in _POSITIVE_OR_OFF
        if getattr(cfg, name) is not None and getattr(cfg, name) <= 0
    ]
    problems += _check_abstain(cfg)
    problems += _check_recipe(cfg)
    return problems + _check_speed(cfg) + _check_tracking(cfg)


ATTENTION_IMPLEMENTATIONS = ("sdpa", "flash_attention_2", "eager")


def _check_speed(cfg: TrainConfig) -> list[str]:
    """The GPU speed fields (issue 10)."""
    problems = []
    if cfg.attn_implementation not in (None, *ATTENTION_IMPLEMENTATIONS):
        problems.append(
            f"attn_implementation: got {cfg.attn_implementation!r}; use one of "
            f"{', '.join(ATTENTION_IMPLEMENTATIONS)}, or null for transformers' default"
        )
    if cfg.auto_micro_batch and cfg.drop_last:
        # With drop_last the step count depends on the micro-batch (1,602 notes: 603 steps at
        # 2 x 4 but 600 at 8 x 1); without it, it depends only on the effective batch.
        problems.append(
            "auto_micro_batch: got true with drop_last: true; set drop_last: false so that "
            "changing the micro-batch keeps the optimizer step count"
        )
    return problems


TRACKERS = ("tensorboard", "trackio", "wandb")  # report_to values this package supports


def tracker_names(report_to: str) -> list[str]:
    """The trackers named by a report_to value ("none" or empty -> none)."""
    names = [part.strip().lower() for part in report_to.split(",") if part.strip()]
    return [] if names == ["none"] else names


def _check_tracking(cfg: TrainConfig) -> list[str]:
    unknown = [name for name in tracker_names(cfg.report_to) if name not in TRACKERS]
    if not unknown:
        return []
    return [f"report_to: got {cfg.report_to!r}; use none or any of {', '.join(TRACKERS)}"]


def _check_abstain(cfg: TrainConfig) -> list[str]:
    target = cfg.abstain_target_accuracy
    if target is None or (math.isfinite(target) and 0 < target < 1):
        return []
    return [
        f"abstain_target_accuracy: got {target!r}; use a share above 0 and below 1 "
        "(e.g. 0.95) or null (off)"
    ]


def parse_override(text: str) -> tuple[str, object]:
    """`key=value` -> (key, value typed by the field's type); raises VetLLMError if unusable."""
    key, sep, raw = text.partition("=")
    key = key.strip().replace("-", "_")
    types_by_name = field_types()
    if not sep or key not in types_by_name:
        known = ", ".join(types_by_name)
        raise VetLLMError(f"--set {text!r}: expected KEY=VALUE with KEY one of: {known}")
    kind = types_by_name[key]
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


def _coerce_numbers(raw: dict) -> dict:
    """Numbers PyYAML reads as text (YAML 1.1: `2e-4` without a dot) become numbers.

    Only text in number fields is converted; text that is no number stays as it is, so the
    field checks report it with every other problem ("learning_rate: got 'fast'; ...").
    """
    kinds = field_types()
    for key, value in raw.items():
        inner = _split_optional(kinds.get(key))[0]
        if inner in (int, float) and isinstance(value, str):
            with contextlib.suppress(ValueError):
                raw[key] = parse_text(value, inner)
    return raw


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
    validate every field (unknown ones included, all reported at once), return it."""
    path = config_path(path)
    raw = _read_yaml(path)
    unknown = sorted(map(str, set(raw) - set(field_types())))
    known = {key: value for key, value in raw.items() if key in field_types()}
    known.setdefault("name", path.stem)
    known.update(dict(parse_override(item) for item in overrides))
    for key in ("data", "val_data", "catalogue"):
        if key in known and isinstance(known[key], str):
            known[key] = _resolve_path(known[key], path.parent)
    _coerce_numbers(known)
    if not unknown:
        return TrainConfig(**known)
    problems = [f"unknown field(s) {', '.join(unknown)}; known fields: {', '.join(field_types())}"]
    try:
        TrainConfig(**known)
    except VetLLMError as error:  # the field problems, one "  - ..." line each
        problems += [line[4:] for line in str(error).splitlines() if line.startswith("  - ")]
    raise VetLLMError(
        f"config {path.name} has {len(problems)} problem(s):\n"
        + "\n".join(f"  - {p}" for p in problems)
    )
