"""Taking the model away: the archive, `vetllm export` (loaded back by transformers / peft and
predicting the same codes), the model card, and `vetllm push` failing at once offline."""

import json
import shutil
import zipfile

import torch

from vetllm.cli import main
from vetllm.sharing import archive_run, card_facts, model_card

NOTES = [
    "Cow, high fever, drop in milk, swollen hot udder",
    "2 yr Beetal goat, T 105.8F, sores on lips, runny nose, diarrhoea",
    "Buffalo with lameness and blisters between the hooves, drooling",
    "Sheep, bloated left flank after grazing wet clover",
]


def _template(folder):
    from vetllm.data.prompts import PromptTemplate

    saved = json.loads((folder / "vetllm_prompt.json").read_text())
    keys = ("template", "instruction", "answer_prefix", "note_prefix")
    return PromptTemplate(**{k: saved[k] for k in keys})


def test_exported_tiny_model_loads_with_transformers_and_predicts_the_same_codes(
    quick_run, tmp_path
):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from vetllm.engine.bag_of_words_vote import BagOfWordsVoter
    from vetllm.engine.predict import Predictor

    out = tmp_path / "export"
    assert main(["export", "--run", str(quick_run), "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md"} <= names
    assert "training_args.bin" not in names  # a pickle: never shared

    def load(folder):
        model = AutoModelForCausalLM.from_pretrained(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        return Predictor(
            model, tokenizer, template=_template(out), max_length=128, max_new_tokens=16
        )

    # The default is a 3-model ensemble: the folder is the first model, members/* the others.
    members = sorted((out / "members").iterdir())
    assert [p.name for p in members] == ["seed-1000", "seed-2000"]
    exported = load(out)
    exported.members = [load(folder) for folder in members]
    exported.bag_of_words = BagOfWordsVoter.load(out)  # the default's fourth voter
    original = Predictor.from_run(quick_run, device="cpu")
    ours = [p.result.codes for p in exported.predict(NOTES)]
    assert ours == [p.result.codes for p in original.predict(NOTES)] and any(ours)
    original.members, exported.members = [], []  # below: the first model alone
    original.bag_of_words = exported.bag_of_words = None
    model, tokenizer = exported.model, exported.tokenizer
    theirs = original.predict(NOTES)
    # Plain transformers, no vetllm: the prompt recipe from the folder and greedy generate.
    recipe = json.loads((out / "vetllm_prompt.json").read_text())
    for note, reference in zip(NOTES, theirs, strict=True):
        ids = tokenizer(recipe["prompt"].replace("{note}", note), return_tensors="pt").input_ids
        with torch.no_grad():
            generated = model.generate(ids, max_new_tokens=16, do_sample=False,
                                       pad_token_id=tokenizer.pad_token_id)  # fmt: skip
        text = tokenizer.decode(generated[0, ids.shape[1] :], skip_special_tokens=True)
        assert text.strip() == reference.raw_output.strip()


def test_export_refuses_a_folder_that_is_not_empty(quick_run, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    assert main(["export", "--run", str(quick_run), "--out", str(tmp_path / "busy")]) == 2


def _lora_run(quick_run, tmp_path):
    """A LoRA run on a local base (the quick run's tiny model) with a non-zero adapter."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_dir = quick_run / "model"
    run = tmp_path / "lora-run"
    (run / "model").mkdir(parents=True)
    config = (quick_run / "config.yaml").read_text()
    config = config.replace("method: full", "method: lora").replace(
        "base_model: tiny", f"base_model: {base_dir}"
    )
    config = config.replace("ensemble: 3", "ensemble: 1")  # the quick run is an ensemble
    config = config.replace("bag_of_words_vote: true", "bag_of_words_vote: false")
    (run / "config.yaml").write_text(config)
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                      init_lora_weights=False)  # fmt: skip
    get_peft_model(base, lora).save_pretrained(run / "model")
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(run / "model")
    card = json.loads((base_dir / "run_card.json").read_text())
    card.update(method="lora", base_model=str(base_dir), base_model_source=str(base_dir))
    card.pop("ensemble")
    (run / "model" / "run_card.json").write_text(json.dumps(card))
    shutil.copy(quick_run / "status.json", run / "status.json")
    return run


def test_lora_export_gives_the_adapter_or_merged_weights_with_the_same_outputs(quick_run, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = _lora_run(quick_run, tmp_path)
    adapter, merged = tmp_path / "adapter", tmp_path / "merged"
    assert main(["export", "--run", str(run), "--out", str(adapter)]) == 0
    assert (adapter / "adapter_config.json").is_file()
    assert "library_name: peft" in (adapter / "README.md").read_text()
    assert main(["export", "--run", str(run), "--out", str(merged), "--merge"]) == 0
    assert not (merged / "adapter_config.json").exists()
    tokenizer = AutoTokenizer.from_pretrained(merged)
    ids = tokenizer(NOTES[0], return_tensors="pt").input_ids
    with torch.no_grad():
        plain = AutoModelForCausalLM.from_pretrained(merged)(ids).logits
        base = AutoModelForCausalLM.from_pretrained(quick_run / "model")
        with_adapter = PeftModel.from_pretrained(base, adapter)(ids).logits
        without = AutoModelForCausalLM.from_pretrained(quick_run / "model")(ids).logits
    assert torch.allclose(plain, with_adapter, atol=1e-4)
    assert not torch.allclose(plain, without, atol=1e-3)  # the adapter really changed something


def test_the_model_card_states_recipe_data_evaluation_sctids_and_limits(quick_run, tmp_path):
    run = tmp_path / "carded"
    shutil.copytree(quick_run, run)
    metrics = {"n": 217, "data": "val.json", "decoding": "free", "lenient_accuracy": 0.66,
               "lenient_ci": [0.6, 0.72], "strict_accuracy": 0.6, "strict_ci": [0.53, 0.66],
               "baselines": {"bag_of_words": {"accuracy": 0.58, "ci": [0.51, 0.64]}},
               "calibration": {"ece": 0.081}}  # fmt: skip
    (run / "eval").mkdir(exist_ok=True)
    (run / "eval" / "metrics.json").write_text(json.dumps(metrics))
    card = model_card(run, repo_id="me/vetllm-tiny")
    assert card.startswith("---\nlibrary_name: transformers")
    for expected in ("## Recipe", "learning rate / schedule", "## Training data", "leakage:",
                     "1,344 training records", "66.0% | 60.0% - 72.0%", "baseline: bag_of_words",
                     "ece 0.081", "## Codes with an invalid SCTID", "1679004 (Peste des petits",
                     "## Intended use and limits", "not a clinical tool"):  # fmt: skip
        assert expected in card, expected
    assert card_facts(run)["data"]["val_records"] == 256  # examples/val.json


def test_the_archive_holds_model_card_and_evaluation_but_no_notes_or_pickles(quick_run, tmp_path):
    path = archive_run(quick_run, tmp_path / "run.zip")
    names = zipfile.ZipFile(path).namelist()
    prefix = quick_run.name
    assert f"{prefix}/model/model.safetensors" in names and f"{prefix}/README.md" in names
    assert f"{prefix}/model/tokenizer.json" in names and f"{prefix}/config.yaml" in names
    assert not any("training_args.bin" in n or "/data/" in n or "checkpoint" in n for n in names)


def test_push_offline_fails_at_once_without_touching_the_network(quick_run, monkeypatch, capsys):
    import huggingface_hub

    def no_network(*args, **kwargs):
        raise AssertionError("push tried to reach the Hub while offline")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub, "HfApi", no_network)
    assert main(["push", "--run", str(quick_run), "--repo", "me/vetllm-tiny"]) == 2
    assert "HF_HUB_OFFLINE=1" in capsys.readouterr().err


def test_push_needs_an_owner_and_a_name(quick_run, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert main(["push", "--run", str(quick_run), "--repo", "just-a-name"]) == 2
    assert "OWNER/NAME" in capsys.readouterr().err


def test_export_json_lists_the_files(quick_run, tmp_path, capsys):
    assert main(["export", "--run", str(quick_run), "--out", str(tmp_path / "o"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["kind"] == "model" and "README.md" in result["files"]
