"""Taking a model away: a run as one zip archive, and the model card written from the run.

`model_card` reads only the run's own files (config.yaml, model/run_card.json, status.json,
eval/metrics.json, baseline.json) and the training data it names, and writes the Hugging Face
model card: base model and recipe, data statistics and train/validation leakage, evaluation with
95% intervals beside the baselines, calibration when the evaluation measured it, catalogue codes
whose SCTID is invalid, and intended use and limits. `archive_run` packs what someone needs to
use and judge the model (weights or adapter, tokenizer, run card, config, evaluation summary,
report, model card) but never the training notes, checkpoints or per-note predictions.
Imports neither torch nor gradio.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from vetllm.errors import VetLLMError
from vetllm.runs.directory import MEMBERS_DIR

ARCHIVE_MEMBERS = ("config.yaml", "report.md", "eval/metrics.json", "eval/summary.md")
CARD_NAME = "README.md"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def ensemble_folders(run_dir: Path) -> list[Path]:
    """The run folders of an ensemble's other models, as the run card lists them (or none)."""
    run_dir = Path(run_dir)
    card = _read_json(run_dir / "model" / "run_card.json")
    members = (card.get("ensemble") or {}).get("members") or []
    folders = [run_dir / str(entry.get("folder")) for entry in members if isinstance(entry, dict)]
    # Only folders inside the run: an edited card must not point an export outside it.
    return [f for f in folders if f.resolve().is_relative_to(run_dir.resolve() / MEMBERS_DIR)]


def require_model(run_dir: Path) -> Path:
    """RUN_DIR/model when the run has a final model; VetLLMError (what to do) otherwise."""
    model_dir = Path(run_dir) / "model"
    if not (model_dir / "run_card.json").is_file():
        raise VetLLMError(
            f"run {Path(run_dir).name}: no final model (model/run_card.json is missing); "
            "pick a completed run, or wait for this one to finish"
        )
    return model_dir


def archive_run(run_dir: Path, out_path: Path) -> Path:
    """Write RUN_DIR as one zip (see the module docstring for what goes in); returns out_path."""
    run_dir, out_path = Path(run_dir), Path(out_path)
    model_dir = require_model(run_dir)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    prefix = run_dir.name
    with zipfile.ZipFile(out_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(model_dir.rglob("*")):
            if path.is_file() and path.name != "training_args.bin":  # a pickle: not for sharing
                archive.write(path, f"{prefix}/model/{path.relative_to(model_dir)}")
        for member in ARCHIVE_MEMBERS:
            if (run_dir / member).is_file():
                archive.write(run_dir / member, f"{prefix}/{member}")
        for folder in ensemble_folders(run_dir):  # an ensemble's other models: model + config
            for path in sorted(folder.rglob("*")):
                inside = path.relative_to(folder)
                wanted = inside.parts[0] == "model" or inside.as_posix() == "config.yaml"
                if path.is_file() and wanted and path.name != "training_args.bin":
                    archive.write(path, f"{prefix}/{path.relative_to(run_dir)}")
        archive.writestr(f"{prefix}/{CARD_NAME}", model_card(run_dir))
    return out_path


# -- the model card --------------------------------------------------------------------------------
def card_facts(run_dir: Path) -> dict[str, Any]:
    """Everything the card states, gathered from the run's files (tested on its own)."""
    run_dir = Path(run_dir)
    card = _read_json(require_model(run_dir) / "run_card.json")
    metrics = _read_json(run_dir / "eval" / "metrics.json")
    final = _read_json(run_dir / "status.json").get("final_metrics") or {}
    return {
        "name": run_dir.name,
        "card": card,
        "metrics": metrics,
        "final": final if isinstance(final, dict) else {},
        "config": _config_of(run_dir),
        "data": _data_facts(run_dir),
        "invalid_sctids": _invalid_sctids(card.get("train_labels") or []),
    }


def _config_of(run_dir: Path):
    try:
        from vetllm.config import load_config

        return load_config(run_dir / "config.yaml")
    except (VetLLMError, OSError):
        return None


def _data_facts(run_dir: Path) -> dict[str, Any]:
    """Record counts, unique notes and leakage of the run's training / validation data."""
    cfg = _config_of(run_dir)
    if cfg is None:
        return {}
    try:
        from vetllm.data.loading import load_dataset_file
        from vetllm.data.split import leakage_report

        train_path, val_path = cfg.data_paths()
        train = load_dataset_file(train_path, on_error="skip").records
        val = load_dataset_file(val_path, on_error="skip").records if val_path else []
    except (VetLLMError, OSError):
        return {}
    from vetllm.data.records import note_key

    facts = {"train_records": len(train), "val_records": len(val),
             "train_unique_notes": len({note_key(r.note) for r in train})}  # fmt: skip
    if val:
        facts["leakage"] = leakage_report(train, val).share_leaked
    return facts


def _invalid_sctids(labels: list[str]) -> list[dict]:
    from vetllm.catalogue import load_catalogue

    catalogue = load_catalogue()
    found = []
    for label in labels:
        disease = catalogue.by_label(label)
        check = disease.sctid if disease else None
        if disease and check is not None and not check.valid:
            found.append({"code": label, "name": disease.name, "problem": check.reason})
    return found


def _number(value: object) -> str:
    return f"{float(value):.4g}" if isinstance(value, (int, float)) else "-"


def _pct(value: object) -> str:
    return f"{float(value):.1%}" if isinstance(value, (int, float)) else "-"


def _ci(pair: object) -> str:
    if isinstance(pair, (list, tuple)) and len(pair) == 2:
        return f"{_pct(pair[0])} - {_pct(pair[1])}"
    return "-"


def model_card(run_dir: Path, repo_id: str | None = None) -> str:
    """The model card (README.md with YAML front matter) of a completed run."""
    facts = card_facts(run_dir)
    card, cfg = facts["card"], facts["config"]
    base = card.get("base_model_source") or card.get("base_model") or "tiny"
    lines = [
        "---",
        "library_name: " + ("peft" if card.get("method") in ("lora", "qlora") else "transformers"),
        *([f"base_model: {base}"] if card.get("base_model_source") else []),
        "pipeline_tag: text-generation",
        "tags: [veterinary, snomed-ct, clinical-coding, vetllm]",
        "---",
        f"# {repo_id or facts['name']}: livestock clinical notes to SNOMED-CT codes",
        "",
        "Trained with VetLLM Studio. Give it a clinical note in the prompt below; it answers "
        "`Diagnosed conditions: <code>, <code>`.",
        "",
        *_recipe_section(card, cfg),
        *_data_section(facts["data"], card),
        *_evaluation_section(facts["metrics"], facts["final"]),
        *_sctid_section(facts["invalid_sctids"]),
        *_use_section(card),
    ]
    return "\n".join(lines) + "\n"


def _recipe_section(card: dict, cfg) -> list[str]:
    rows = [
        ("base model", card.get("base_model_source") or card.get("base_model")),
        ("base revision", card.get("base_revision")),
        ("method", card.get("method")),
        ("trainable parameters", f"{card.get('trainable_parameters', 0):,} of "
                                 f"{card.get('total_parameters', 0):,}"),
        ("steps / epochs", f"{card.get('global_step')} / {card.get('epochs_completed') or 0:.2f}"),
        ("final training loss", _number(card.get("final_train_loss"))),
        ("seed", card.get("seed")),
        ("ensemble", (card.get("ensemble") or {}).get("summary")),
        ("bag-of-words vote", (card.get("bag_of_words_vote") or {}).get("summary")),
        ("catalogue version", card.get("catalogue_version")),
    ]  # fmt: skip
    if cfg is not None:
        rows += [
            ("learning rate / schedule", f"{cfg.learning_rate} / {cfg.lr_scheduler}"),
            ("effective batch", cfg.per_device_batch * cfg.grad_accum),
            ("max length (tokens)", cfg.max_length),
        ]
        if cfg.method in ("lora", "qlora"):
            rows.append(("LoRA r / alpha / dropout",
                         f"{cfg.lora_r} / {cfg.lora_alpha} / {cfg.lora_dropout}"))  # fmt: skip
    versions = card.get("versions") or {}
    rows.append(("library versions", ", ".join(f"{k} {v}" for k, v in versions.items())))
    table = [f"| {key} | {value if value is not None else '-'} |" for key, value in rows]
    prompt = [
        "Prompt (the note replaces `{note}`; greedy decoding then writes the answer):",
        "",
        "```text",
        prompt_text(card.get("prompt_template") or {}) + "<code>, <code>",
        "```",
    ]
    return ["## Recipe", "", "| | |", "|---|---|", *table, "", *prompt, ""]


def prompt_text(fields: dict) -> str:
    """The prompt a run was trained with, `{note}` marking the note, then the answer prefix."""
    from vetllm.data.prompts import PromptTemplate

    keys = ("template", "instruction", "answer_prefix", "note_prefix")
    template = PromptTemplate(**{k: fields[k] for k in keys if k in fields})
    return template.format_prompt("{note}") + template.answer_prefix


def _data_section(data: dict, card: dict) -> list[str]:
    files = card.get("data") or {}
    lines = ["## Training data", ""]
    for role, entry in files.items():
        if isinstance(entry, dict):
            lines.append(f"- {role}: {entry.get('name')} ({entry.get('records', '?')} records, "
                         f"sha256 {str(entry.get('sha256', ''))[:12]}...)")  # fmt: skip
    if data:
        lines.append(
            f"- {data.get('train_records', 0):,} training records "
            f"({data.get('train_unique_notes', 0):,} distinct notes), "
            f"{data.get('val_records', 0):,} validation records"
        )
        if "leakage" in data:
            lines.append(
                f"- leakage: {_pct(data['leakage'])} of validation records have a note that is "
                "also in the training data (those are memorised, not predicted)"
            )
    labels = card.get("train_labels") or []
    lines += [f"- {len(labels)} distinct codes in training", ""]
    return lines


def _evaluation_section(metrics: dict, final: dict) -> list[str]:
    lines = ["## Evaluation", ""]
    if not metrics and not final:
        return lines + ["Not evaluated: run `vetllm evaluate --run RUN --data bundled`.", ""]
    source = metrics or final
    lines += [
        f"On {source.get('n', '?')} notes of {metrics.get('data', 'the validation data')} "
        f"({metrics.get('decoding', 'free')} decoding):",
        "",
        "| model / baseline | accuracy | 95% CI |",
        "|---|---|---|",
        f"| this model (lenient) | {_pct(source.get('lenient_accuracy'))} | "
        f"{_ci(source.get('lenient_ci'))} |",
        f"| this model (strict) | {_pct(source.get('strict_accuracy'))} | "
        f"{_ci(source.get('strict_ci'))} |",
    ]
    for name, result in (metrics.get("baselines") or {}).items():
        lines.append(f"| baseline: {name} | {_pct(result.get('accuracy'))} | "
                     f"{_ci(result.get('ci'))} |")  # fmt: skip
    calibration = metrics.get("calibration")
    if isinstance(calibration, dict):
        shown = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                          for k, v in calibration.items() if not isinstance(v, (list, dict)))  # fmt: skip
        lines += ["", f"Calibration of the confidences: {shown}."]
    else:
        lines += ["", "Calibration: not measured for this run."]
    return lines + [""]


def _sctid_section(invalid: list[dict]) -> list[str]:
    lines = ["## Codes with an invalid SCTID", ""]
    if not invalid:
        return lines + ["Every code the model was trained on is a valid SCTID.", ""]
    lines.append(
        "The source mapping gives these diseases codes that fail the SNOMED CT checks; the model "
        "reproduces them as trained, so map them before using the output in a SNOMED system:"
    )
    lines += [f"- {item['code']} ({item['name']}): {item['problem']}" for item in invalid]
    return lines + [""]


def _use_section(card: dict) -> list[str]:
    tiny = card.get("base_model") == "tiny"
    size = (
        "This is the tiny from-scratch CPU model: it learns the codes of its training notes and "
        "nothing else; treat it as a demonstration, not a clinical tool."
        if tiny
        else "A fine-tuned base model: it can still produce codes outside the catalogue, "
        "which post-processing reports as unknown."
    )
    return [
        "## Intended use and limits",
        "",
        "- Intended use: suggesting SNOMED-CT codes for livestock clinical notes (cattle, buffalo, "
        "sheep, goats) for a person to check; not for diagnosis or treatment decisions.",
        f"- {size}",
        "- Only the diseases of the training catalogue can be predicted; notes about other "
        "conditions get one of these codes anyway unless the app's abstention says otherwise.",
        "- Accuracy is measured on notes like the training notes; other clinics, languages and "
        "writing styles will score lower. Compare with the bag-of-words baseline above.",
        "",
    ]
