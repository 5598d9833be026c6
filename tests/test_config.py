"""TrainConfig: every preset loads, the source recipe is exact, bad fields are all reported."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vetllm.config import TrainConfig, load_config, parse_override
from vetllm.errors import VetLLMError

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_there_are_the_four_presets():
    names = {p.name for p in CONFIGS}
    assert {
        "tiny-cpu.yaml",
        "alpaca-7b-qlora.yaml",
        "qwen2.5-7b-qlora.yaml",
        "llama3.1-8b-qlora.yaml",
    } <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_preset_loads_and_starts_with_its_command(path):
    cfg = load_config(path)
    assert isinstance(cfg, TrainConfig)
    assert cfg.name == path.stem
    first_line = path.read_text(encoding="utf-8").splitlines()[0]
    assert first_line.startswith("# Run: vetllm train --config configs/" + path.name)


def test_tiny_cpu_preset_is_the_from_scratch_cpu_default():
    cfg = load_config(CONFIGS[0].parent / "tiny-cpu.yaml")
    assert (cfg.base_model, cfg.method, cfg.bf16) == ("tiny", "full", False)
    assert cfg.data == "bundled" and cfg.val_data == "bundled"
    assert cfg.prompt().format_prompt("a note").startswith("Note: a note")


def test_alpaca_preset_is_the_source_recipe_exactly():
    cfg = load_config(CONFIGS[0].parent / "alpaca-7b-qlora.yaml")
    assert cfg.method == "qlora"
    assert (cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout) == (16, 32, 0.1)
    assert cfg.lora_target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert (cfg.learning_rate, cfg.lr_scheduler, cfg.warmup_ratio) == (2e-4, "cosine", 0.03)
    assert (cfg.per_device_batch, cfg.grad_accum, cfg.effective_batch) == (2, 4, 8)
    assert (cfg.epochs, cfg.drop_last, cfg.max_length) == (3.0, True, 512)
    assert cfg.prompt().template.startswith("Below is an instruction")


@pytest.mark.parametrize("name", ["qwen2.5-7b-qlora.yaml", "llama3.1-8b-qlora.yaml"])
def test_current_base_presets_use_the_same_recipe(name):
    source = load_config(CONFIGS[0].parent / "alpaca-7b-qlora.yaml").to_dict()
    other = load_config(CONFIGS[0].parent / name).to_dict()
    differing = {k for k in source if source[k] != other[k]}
    assert differing == {"name", "base_model"}


def test_every_bad_field_is_reported_at_once():
    with pytest.raises(VetLLMError) as caught:
        TrainConfig(
            method="adapter",
            learning_rate=-1.0,
            lr_scheduler="sawtooth",
            warmup_ratio=1.5,
            epochs=0.0,
            per_device_batch=0,
            grad_accum=0,
            lora_dropout=1.0,
            max_length=8,
            prompt_template="no placeholder here",
            tiny_heads=3,
            eval_steps=0,
            note_token_dropout=0.7,
            note_segment_shuffle=1.5,
        )
    message = str(caught.value)
    for field in (
        "method",
        "learning_rate",
        "lr_scheduler",
        "warmup_ratio",
        "epochs",
        "per_device_batch",
        "grad_accum",
        "lora_dropout",
        "max_length",
        "prompt_template",
        "tiny_heads",
        "eval_steps",
        "note_token_dropout",
        "note_segment_shuffle",
    ):
        assert f"{field}: got" in message, field
    assert "'adapter'" in message and "full, lora, qlora" in message


def test_wrong_types_name_the_field_and_the_expected_type():
    with pytest.raises(VetLLMError) as caught:
        TrainConfig(learning_rate="fast", drop_last="yes", lora_target_modules="q_proj")
    message = str(caught.value)
    assert "learning_rate: got 'fast'; expected a number" in message
    assert "drop_last: got 'yes'; expected true or false" in message
    assert "lora_target_modules" in message


def test_tiny_model_cannot_use_an_adapter_method():
    with pytest.raises(VetLLMError, match="method: full with base_model: tiny"):
        TrainConfig(base_model="tiny", method="lora")


def test_early_stopping_needs_periodic_validation():
    with pytest.raises(VetLLMError, match="early_stopping_patience"):
        TrainConfig(early_stopping_patience=2, eval_steps=None)
    assert TrainConfig(early_stopping_patience=2, eval_steps=10).early_stopping_patience == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("epochs=2", ("epochs", 2.0)),
        ("per_device_batch=8", ("per_device_batch", 8)),
        ("drop_last=false", ("drop_last", False)),
        ("bf16=True", ("bf16", True)),
        ("max_steps=null", ("max_steps", None)),
        ("val_data=none", ("val_data", None)),
        ("lora_target_modules=q_proj, v_proj", ("lora_target_modules", ["q_proj", "v_proj"])),
        ("base_model=Qwen/Qwen2.5-7B-Instruct", ("base_model", "Qwen/Qwen2.5-7B-Instruct")),
        ("learning-rate=1e-3", ("learning_rate", 1e-3)),
    ],
)
def test_overrides_are_typed_by_the_field(text, expected):
    assert parse_override(text) == expected


@pytest.mark.parametrize("text", ["epochs=abc", "drop_last=maybe", "per_device_batch=2.5"])
def test_bad_override_values_say_what_type_is_needed(text):
    with pytest.raises(VetLLMError, match="must be"):
        parse_override(text)


def test_unknown_override_key_lists_the_known_ones():
    with pytest.raises(VetLLMError, match="KEY one of: name, base_model"):
        parse_override("epoch=3")


def test_load_config_applies_overrides_and_validates(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("base_model: tiny\nepochs: 2\n", encoding="utf-8")
    cfg = load_config(path, ["epochs=4", "seed=7"])
    assert (cfg.name, cfg.epochs, cfg.seed) == ("mine", 4.0, 7)
    with pytest.raises(VetLLMError, match="per_device_batch: got 0"):
        load_config(path, ["per_device_batch=0"])


def test_unknown_yaml_fields_are_named(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("learning_rat: 0.001\nepochz: 3\n", encoding="utf-8")
    with pytest.raises(VetLLMError) as caught:
        load_config(path)
    assert "epochz, learning_rat" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "match"),
    [("epochs: [1, 2\n", "not valid YAML"), ("- a\n- b\n", "expected a mapping")],
)
def test_unreadable_yaml_is_a_clear_error(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(VetLLMError, match=match):
        load_config(path)


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(VetLLMError, match="config nothere.yaml: cannot read it"):
        load_config(tmp_path / "nothere.yaml")


def test_relative_data_paths_resolve_beside_the_config(tmp_path, monkeypatch):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "train.json").write_text("[]", encoding="utf-8")
    path = tmp_path / "cfg" / "x.yaml"
    path.write_text("data: train.json\nval_data: null\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(path)
    assert cfg.data == str((tmp_path / "cfg" / "train.json").resolve())
    assert cfg.val_data is None


def test_to_yaml_round_trips(tmp_path):
    cfg = TrainConfig(name="round", epochs=2.5, lora_target_modules=["q_proj"], max_steps=7)
    written = cfg.to_yaml(tmp_path / "run" / "config.yaml")
    assert written.read_text(encoding="utf-8").startswith("# Resolved TrainConfig")
    assert load_config(written) == cfg


def test_config_module_stays_free_of_torch_and_gradio():
    code = "import sys, vetllm.config; print('torch' in sys.modules, 'gradio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_coverage_plan_follows_the_config_and_counts_unique_notes():
    from vetllm.data.records import Record

    cfg = load_config(next(p for p in CONFIGS if p.name == "alpaca-7b-qlora.yaml"))
    # 1,602 records over 444 distinct notes, as in the source data set.
    records = [Record(note=f"note {i % 444}", labels=("1679004",)) for i in range(1602)]
    plan = cfg.coverage_plan(records).to_dict()
    assert (plan["steps_per_epoch"], plan["total_steps"]) == (201, 603)
    assert plan["samples_dropped_per_epoch"] == 0
    assert abs(plan["exposures_per_unique_note"] - 3 * 1602 / 444) < 1e-9


def test_yaml_numbers_in_exponent_form_load(tmp_path):
    text = "learning_rate: 2e-4\nwarmup_ratio: 3e-2\nmax_steps: 1e3\nepochs: 2\n"
    assert yaml.safe_load(text)["learning_rate"] == "2e-4"  # PyYAML (YAML 1.1) reads text
    path = tmp_path / "exp.yaml"
    path.write_text(text, encoding="utf-8")
    cfg = load_config(path)
    assert (cfg.learning_rate, cfg.warmup_ratio, cfg.max_steps, cfg.epochs) == (
        2e-4,
        0.03,
        1000,
        2.0,
    )
    assert isinstance(cfg.max_steps, int) and isinstance(cfg.epochs, float)


def test_yaml_text_in_number_fields_is_still_reported(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("learning_rate: fast\nmax_steps: 2.5e0\nseed: ten\n", encoding="utf-8")
    with pytest.raises(VetLLMError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "learning_rate: got 'fast'; expected a number" in message
    assert "max_steps: got '2.5e0'; expected an integer" in message
    assert "seed: got 'ten'; expected an integer" in message


def test_unknown_fields_and_bad_values_are_reported_together(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("learning_rat: 0.001\nlearning_rate: fast\n", encoding="utf-8")
    with pytest.raises(VetLLMError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "2 problem(s)" in message and "unknown field(s) learning_rat" in message
    assert "learning_rate: got 'fast'" in message


def test_load_config_takes_a_packaged_preset_name():
    cfg = load_config("tiny-cpu", ["epochs=1"])
    assert (cfg.name, cfg.base_model, cfg.epochs) == ("tiny-cpu", "tiny", 1.0)
    with pytest.raises(VetLLMError, match="'tiny' is not one of tiny-cpu"):
        load_config("tiny")


def test_every_field_sits_in_one_of_the_sections_and_presets_use_them():
    from vetllm.config import SECTION_OF

    assert SECTION_OF["name"] is None  # the only field at the top of a file
    sections = {s for s in SECTION_OF.values() if s}
    assert {"model", "data", "lora", "optimisation", "tiny"} <= sections
    assert (SECTION_OF["learning_rate"], SECTION_OF["lora_r"]) == ("optimisation", "lora")
    assert [k for k, s in SECTION_OF.items() if s is None] == ["name"]
    for path in CONFIGS:
        top = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert set(top) - {"name"} <= sections, path.name  # every preset is sectioned


def test_saved_config_is_sectioned_and_loads_back(tmp_path):
    cfg = TrainConfig(name="sect", learning_rate=1e-3, lora_r=8, tiny_layers=1)
    written = yaml.safe_load(cfg.to_yaml(tmp_path / "config.yaml").read_text(encoding="utf-8"))
    assert written["name"] == "sect" and "learning_rate" not in written
    assert written["optimisation"]["learning_rate"] == 1e-3
    assert (written["lora"]["lora_r"], written["tiny"]["tiny_layers"]) == (8, 1)
    assert load_config(tmp_path / "config.yaml") == cfg


def test_flat_config_of_an_older_run_folder_still_loads(tmp_path):
    cfg = TrainConfig(name="old", epochs=2.0, max_steps=7, lora_target_modules=["q_proj"])
    flat = tmp_path / "run" / "config.yaml"  # what run folders held before sections
    flat.parent.mkdir()
    flat.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
    assert load_config(flat) == cfg
    assert load_config(flat, ["optimisation.max_steps=9"]).max_steps == 9


def test_data_is_both_a_section_and_a_field(tmp_path):
    sectioned = tmp_path / "s.yaml"
    sectioned.write_text("data:\n  data: bundled\n  val_data: null\n", encoding="utf-8")
    assert (load_config(sectioned).data, load_config(sectioned).val_data) == ("bundled", None)
    flat = tmp_path / "f.yaml"
    flat.write_text("data: bundled\nval_data: null\n", encoding="utf-8")
    assert load_config(flat).val_data is None


def test_misplaced_and_unknown_keys_name_their_section_all_at_once(tmp_path):
    path = tmp_path / "mixed.yaml"
    path.write_text(
        "model:\n  name: x\n  base_model: tiny\n"
        "lora:\n  learning_rate: 0.01\n  lora_rr: 4\n"
        "epochs: 2\noptimisation:\n  per_device_batch: 0\nspeed: 3\n",
        encoding="utf-8",
    )
    with pytest.raises(VetLLMError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "config mixed.yaml has 6 problem(s)" in message
    assert "unknown field(s) lora.lora_rr; did you mean lora.lora_r?" in message
    assert "model.name: name belongs at the top of the file (no section)" in message
    assert "lora.learning_rate: learning_rate belongs in section optimisation" in message
    assert "epochs: epochs belongs in section optimisation" in message
    assert "speed: got 3; expected a section" in message
    assert "per_device_batch: got 0; use a positive integer" in message  # values checked too


def test_a_field_given_twice_is_reported(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("lora:\n  lora_r: 4\noptimisation:\n  lora_r: 8\n", encoding="utf-8")
    with pytest.raises(VetLLMError, match="lora_r is given twice"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("optimisation.learning_rate=1e-3", ("learning_rate", 1e-3)),
        ("lora.lora_r=8", ("lora_r", 8)),
        ("name=x", ("name", "x")),
    ],
)
def test_overrides_may_name_the_section(text, expected):
    assert parse_override(text) == expected


def test_override_under_the_wrong_section_names_the_right_one():
    with pytest.raises(VetLLMError, match="lora_r belongs in section lora; write lora_r="):
        parse_override("optimisation.lora_r=8")
    with pytest.raises(VetLLMError, match="KEY one of: name, base_model"):
        parse_override("optimisation.nothing=8")


def test_unknown_keyword_and_bad_types_are_reported_together():
    with pytest.raises(VetLLMError) as caught:
        TrainConfig(name="kw", lerning_rate=0.1, seed="x", lora_target_modules=["q", 3])
    message = str(caught.value)
    assert "config 'kw' has 3 problem(s)" in message
    assert "unknown field(s) lerning_rate" in message
    assert "seed: got 'x'; expected an integer" in message
    assert "lora_target_modules: got ['q', 3]; expected a list of strings" in message


def test_replace_validates_again():
    cfg = TrainConfig()
    assert cfg.replace(epochs=2).epochs == 2.0 and cfg.epochs == 3.0
    with pytest.raises(VetLLMError, match="epochs: got 0.0"):
        cfg.replace(epochs=0.0)
