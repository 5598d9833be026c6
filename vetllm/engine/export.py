"""`vetllm export`: a run's model as a folder that `transformers` / `peft` load directly.

- Full fine-tunes (the tiny CPU default): config, weights and tokenizer, loadable with
  `AutoModelForCausalLM.from_pretrained(DIR)` and `AutoTokenizer.from_pretrained(DIR)`.
- LoRA / QLoRA without `merge`: the adapter and tokenizer; `PeftModel.from_pretrained(base, DIR)`
  (or `AutoPeftModelForCausalLM.from_pretrained(DIR)`, which fetches the base named in
  adapter_config.json).
- LoRA / QLoRA with `merge`: the base loaded in full precision (never 4-bit: 4-bit weights cannot
  hold a merged delta), the adapter added into its weights (`merge_and_unload`), saved as one
  ordinary model. For QLoRA this is not the exact model that was trained and evaluated: the
  adapter learned to correct the 4-bit-quantised base, and the merged weights use the
  unquantised base instead, so answers can differ slightly; evaluate the merged folder before
  relying on its scores.

Every export also holds README.md (the model card, `vetllm.sharing.model_card`),
vetllm_run_card.json and vetllm_prompt.json (how to build the prompt the model was trained on).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from vetllm.errors import VetLLMError
from vetllm.sharing import CARD_NAME, ensemble_folders, model_card, require_model

MERGE_NOTE_QLORA = (
    "merged into the full-precision base: the adapter was trained on the 4-bit base, so answers "
    "can differ slightly from the evaluated model; evaluate the merged folder"
)
VOTER_NOTE = "bag_of_words.json is the tuned bag of words that votes with the model(s)"
SKIPPED = {"training_args.bin", "run_card.json"}  # a pickle (not for sharing); renamed below


def export_run(run_dir: str | Path, out_dir: str | Path, merge: bool = False) -> dict:
    """Write the exported folder; returns {kind, files, note} describing what was written."""
    run_dir, out = Path(run_dir), Path(out_dir)
    model_dir = require_model(run_dir)
    card = json.loads((model_dir / "run_card.json").read_text(encoding="utf-8"))
    if out.exists() and any(out.iterdir()):
        raise VetLLMError(f"--out {out.name}: the folder is not empty; give a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    method = card.get("method", "full")
    note = ""
    if method == "full":
        kind = "model"
        _copy_model_files(model_dir, out)
        note = _copy_ensemble(run_dir, out)
        if card.get("bag_of_words_vote"):
            note += ("; " if note else "") + VOTER_NOTE
    elif merge:
        kind = "merged model"
        _merge_adapter(run_dir, out)
        note = MERGE_NOTE_QLORA if method == "qlora" else "adapter merged into the base weights"
    else:
        kind = "adapter"
        _copy_model_files(model_dir, out)
        note = f"load the base {card.get('base_model_source') or card.get('base_model')} first"
    (out / "vetllm_run_card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    prompt = _prompt_recipe(card.get("prompt_template") or {})
    (out / "vetllm_prompt.json").write_text(json.dumps(prompt, indent=2) + "\n", encoding="utf-8")
    (out / CARD_NAME).write_text(model_card(run_dir), encoding="utf-8")
    files = sorted(p.name for p in out.iterdir())
    return {"kind": kind, "method": method, "files": files, "note": note}


def _prompt_recipe(fields: dict) -> dict:
    """The template fields plus the exact prompt text, `{note}` marking where the note goes."""
    from vetllm.data.prompts import PromptTemplate

    keys = ("template", "instruction", "answer_prefix", "note_prefix")
    template = PromptTemplate(**{k: fields[k] for k in keys if k in fields})
    return {
        **template.to_dict(),
        "prompt": template.format_prompt("{note}"),
        "answer": "greedy decoding continues with answer_prefix and the codes, comma-separated",
    }


def _copy_model_files(model_dir: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for path in model_dir.iterdir():
        if path.is_file() and path.name not in SKIPPED:
            shutil.copy2(path, out / path.name)


def _copy_ensemble(run_dir: Path, out: Path) -> str:
    """An ensemble's other models into OUT/members/seed-N (each loads like the top folder)."""
    folders = ensemble_folders(run_dir)
    for folder in folders:
        _copy_model_files(require_model(folder), out / folder.relative_to(run_dir))
    if not folders:
        return ""
    return (
        f"an ensemble of {len(folders) + 1} models: this folder and members/*; vetllm answers "
        "with their vote (`vetllm predict --run` on the run folder), each folder alone is one "
        "of the models"
    )


def _merge_adapter(run_dir: Path, out: Path) -> None:
    """Base in full precision + adapter, merged and saved with the run's tokenizer."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    from vetllm.config import load_config
    from vetllm.engine.modeling import load_base_model, resolve_base_model

    cfg = load_config(run_dir / "config.yaml")
    card = json.loads((run_dir / "model" / "run_card.json").read_text(encoding="utf-8"))
    source = card.get("base_model_source") or resolve_base_model(cfg)
    base = load_base_model(source, cfg, quantize=False)  # never 4-bit: see the module docstring
    merged = PeftModel.from_pretrained(base, run_dir / "model").merge_and_unload()
    merged.save_pretrained(out)
    AutoTokenizer.from_pretrained(run_dir / "model").save_pretrained(out)
