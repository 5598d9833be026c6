"""Tests for the synthetic note generator and the bundled examples it wrote."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from collections import Counter

import pytest

from vetllm.catalogue import load_catalogue
from vetllm.cli import main as cli_main
from vetllm.data import synth, synth_cases
from vetllm.data.loading import load_dataset_file
from vetllm.data.records import note_key
from vetllm.data.split import leakage_report
from vetllm.data.synth import (
    bundled_examples,
    generate_records,
    write_synthetic_dataset,
)
from vetllm.data.synth_vocab import PROFILES, SIGNS
from vetllm.errors import VetLLMError

TEMPERATURE_F = re.compile(r"\b(1\d\d\.\d)\s?°?F\b", re.I)
ABBREVIATIONS = re.compile(r"\b(c/o|o/e|hx|d/c|x3d|yo|yrs?|rr|hr|dec\.)\b|\d+y\b", re.I)


def is_template(note: str) -> bool:
    return note.startswith("Clinical Note: ")


@pytest.fixture(scope="module")
def records():
    return generate_records(n=1600, seed=0)


def test_same_seed_same_records_and_other_seed_differs():
    first, again = generate_records(n=300, seed=7), generate_records(n=300, seed=7)
    assert [(r.note, r.labels, r.species, r.disease, r.extra) for r in first] == [
        (r.note, r.labels, r.species, r.disease, r.extra) for r in again
    ]
    other = generate_records(n=300, seed=8)
    assert [r.note for r in first] != [r.note for r in other]


def test_does_not_touch_the_global_random_state():
    random.seed(123)
    expected = random.random()
    random.seed(123)
    generate_records(n=50, seed=1)
    assert random.random() == expected


def test_class_balance_follows_source_record_counts(records):
    catalogue = load_catalogue()
    total_weight = sum(p.weight for p in PROFILES.values())
    counts = Counter(r.labels[0] for r in records)
    moved = 0.0
    for key, profile in PROFILES.items():
        label = next(d.label for d in catalogue.diseases if d.key == key)
        expected = 1600 * profile.weight / total_weight
        # Label noise moves a few per cent of notes between confusable diseases.
        assert abs(counts[label] - expected) <= 0.15 * expected + 4, (key, counts[label], expected)
        moved += abs(counts[label] - expected) / 2
    assert moved <= 0.04 * 1600
    assert counts.most_common(1)[0][0] == "1679004"  # PPR dominates, as in the source


def test_every_label_is_a_catalogue_label_and_the_disease_name_agrees(records):
    catalogue = load_catalogue()
    for record in records:
        assert len(record.labels) == 1
        disease = catalogue.by_label(record.labels[0])
        assert disease is not None
        assert catalogue.lookup_name(record.disease) == disease, record.disease
        assert record.species == record.species.lower()


def test_uncoded_diseases_are_present_with_local_labels(records):
    local = {r.labels[0] for r in records if r.labels[0].startswith("local:")}
    assert {"local:foot-rot", "local:leg-fracture", "local:tympany", "local:flu"} <= local


def test_species_come_from_the_disease_profile(records):
    catalogue = load_catalogue()
    noisy = 0
    for record in records:
        key = catalogue.by_label(record.labels[0]).key
        if record.species not in {name for name, _ in PROFILES[key].species}:
            noisy += 1  # only a noisy label may meet a species outside its profile
    assert noisy <= 0.01 * len(records)


def test_symptoms_are_checklist_names_two_to_six(records):
    for record in records:
        symptoms = record.extra["symptoms"]
        assert set(symptoms) <= set(SIGNS), symptoms
        assert 2 <= len(symptoms) <= 6
        assert len(set(symptoms)) == len(symptoms)


def test_both_styles_in_the_requested_share(records):
    template_share = sum(is_template(r.note) for r in records) / len(records)
    assert 0.60 <= template_share <= 0.70
    assert all(is_template(r.note) for r in generate_records(n=100, seed=0, free_text_share=0.0))
    assert not any(is_template(r.note) for r in generate_records(n=100, seed=0, free_text_share=1))


def test_template_notes_repeat_and_free_text_notes_are_mostly_unique(records):
    template = Counter(note_key(r.note) for r in records if is_template(r.note))
    free = Counter(note_key(r.note) for r in records if not is_template(r.note))
    assert max(template.values()) >= 5
    assert len(template) < 0.7 * sum(template.values())
    assert len(free) >= 0.98 * sum(free.values())


def test_template_notes_use_the_source_sentences(records):
    note = next(r.note for r in records if is_template(r.note) and "presentation" in r.note)
    assert re.fullmatch(
        r"Clinical Note: (Cow|Buffalo|Sheep|Goat)\. Clinical presentation includes [a-z ,\-]+\. "
        r"Physical examination reveals these clinical signs\.",
        note,
    )


def test_free_text_has_vitals_abbreviations_breeds_and_british_spellings(records):
    free = [r.note for r in records if not is_template(r.note)]
    with_temperature = [n for n in free if re.search(r"\d{2,3}\.\d\s?°?\s?[FC]\b", n, re.I)]
    assert len(with_temperature) >= 0.3 * len(free)
    assert sum(bool(ABBREVIATIONS.search(n)) for n in free) >= 0.8 * len(free)
    text = " ".join(free).lower()
    for word in ("beetal", "nili-ravi", "sahiwal", "kajli", "diarrhoea", "oedema", "runny nose"):
        assert word in text, word


@pytest.mark.parametrize(
    ("disease_key", "findings"),
    [
        ("babesiosis", ("urine", "haemoglobinuria")),
        ("theileriosis", ("lymph nodes",)),
        ("rabies", ("dog",)),
        ("fascioliasis", ("bottle jaw",)),
    ],
)
def test_free_text_has_findings_outside_the_checklist(disease_key, findings):
    rng = random.Random(0)
    notes = []
    for _ in range(40):
        case = synth.ClinicalCase(disease_key, "buffalo", PROFILES[disease_key].signs[0][:1])
        notes.append(synth.render_free_text(case, rng).lower())
    assert any(finding in note for note in notes for finding in findings)


def test_temperatures_agree_with_the_fever_signs(records):
    for record in records:
        match = TEMPERATURE_F.search(record.note)
        if not match:
            continue
        temp_f, signs = float(match.group(1)), record.extra["symptoms"]
        if "Very High Fever" in signs:
            assert temp_f >= 104.5, record.note
        elif "Fever" not in signs:
            assert temp_f < 104.0, record.note


def test_milk_signs_only_on_female_animals(records):
    male = re.compile(r"\b(bull|bullock|ram|buck|calf|lamb|kid|heifer)\b", re.I)
    for record in records:
        if "Drop In Milk Production" in record.extra["symptoms"] and not is_template(record.note):
            assert not male.search(record.note), record.note


def test_bad_arguments_are_all_reported_at_once():
    with pytest.raises(VetLLMError) as caught:
        generate_records(n=0, seed="x", free_text_share=1.5)
    message = str(caught.value)
    assert "n must be" in message and "got 0" in message
    assert "seed" in message and "free_text_share" in message and "1.5" in message


def test_write_synthetic_dataset_is_leak_free_and_loadable(tmp_path):
    summary = write_synthetic_dataset(tmp_path / "out", n=400, seed=3, val_fraction=0.2)
    assert summary["n_train"] + summary["n_val"] == 400
    train = load_dataset_file(tmp_path / "out" / "train.json")
    val = load_dataset_file(tmp_path / "out" / "val.json")
    assert not train.problems and not val.problems
    assert len(train.records) == summary["n_train"] and len(val.records) == summary["n_val"]
    assert 0.1 <= len(val.records) / 400 <= 0.3
    assert leakage_report(train.records, val.records).share_leaked == 0.0
    again = tmp_path / "again"
    write_synthetic_dataset(again, n=400, seed=3, val_fraction=0.2)
    for name in ("train.json", "val.json", "notes.json"):
        assert (again / name).read_bytes() == (tmp_path / "out" / name).read_bytes()


def test_bad_val_fraction_is_refused(tmp_path):
    with pytest.raises(VetLLMError, match="val_fraction.*1.0"):
        write_synthetic_dataset(tmp_path, n=100, val_fraction=1.0)


def test_bundled_examples_are_exactly_what_the_documented_command_writes(tmp_path):
    assert cli_main(["data", "synth", "--out", str(tmp_path), "--n", "1600", "--seed", "0"]) == 0
    train_path, val_path = bundled_examples()
    notes_path = train_path.parent / "notes.json"
    for path in (train_path, val_path, notes_path):
        assert path.read_bytes() == (tmp_path / path.name).read_bytes(), path.name


def test_bundled_examples_load_and_do_not_leak():
    train_path, val_path = bundled_examples()
    train = load_dataset_file(train_path, on_error="reject")
    val = load_dataset_file(val_path, on_error="reject")
    assert len(train.records) + len(val.records) == 1600
    assert 150 <= len(val.records) <= 350
    assert leakage_report(train.records, val.records).share_leaked == 0.0
    first = json.loads(train_path.read_text("utf-8"))[0]
    assert set(first) >= {"instruction", "input", "output", "snomed_codes", "disease", "animal"}
    assert first["output"] == "Diagnosed conditions: " + ", ".join(first["snomed_codes"])


def test_bundled_examples_are_learnable_but_not_trivial():
    from vetllm.baselines import run_baselines

    train_path, val_path = bundled_examples()
    results = run_baselines(
        load_dataset_file(train_path).records, load_dataset_file(val_path).records
    )
    assert 0.85 <= results["bag_of_words"]["accuracy"] <= 0.99
    assert results["majority"]["accuracy"] <= 0.5


def test_example_notes_for_the_app():
    notes = json.loads((bundled_examples()[0].parent / "notes.json").read_text("utf-8"))
    catalogue = load_catalogue()
    assert 8 <= len(notes) <= 12
    labels = [item["expected_label"] for item in notes]
    assert len(set(labels)) == len(labels)
    assert all(catalogue.by_label(label) for label in labels)
    assert all(item["title"].strip() and item["note"].strip() for item in notes)
    styles = {is_template(item["note"]) for item in notes}
    assert styles == {True, False}
    train_path, val_path = bundled_examples()
    seen = {
        note_key(r.note) for path in (train_path, val_path) for r in load_dataset_file(path).records
    }
    assert not any(note_key(item["note"]) in seen for item in notes)


def test_bundled_examples_missing_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(synth, "EXAMPLES_DIR", tmp_path)
    with pytest.raises(VetLLMError, match=r"train\.json, val\.json not found.*vetllm data synth"):
        bundled_examples()


def test_synth_does_not_import_torch_or_gradio():
    code = (
        "import sys, vetllm.data.synth as s; s.generate_records(n=20); "
        "print(sorted(m for m in ('torch', 'gradio', 'transformers') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_output_does_not_depend_on_the_hash_seed():
    code = (
        "import hashlib, json; from vetllm.data.synth import generate_records, records_to_source; "
        "print(hashlib.sha256(json.dumps(records_to_source(generate_records(n=200))).encode())"
        ".hexdigest())"
    )
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
        )
        digests.add(result.stdout.strip())
    assert len(digests) == 1


def test_absurd_record_count_is_refused_before_any_work():
    with pytest.raises(VetLLMError, match="n must be a whole number of records from 1 to"):
        generate_records(n=10**9)


def test_unwritable_output_folder_gives_a_clear_error(tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder", encoding="utf-8")
    with pytest.raises(VetLLMError, match="cannot write to folder 'taken'") as caught:
        write_synthetic_dataset(blocker, n=50)
    assert str(tmp_path) not in str(caught.value)  # no server path in the message


# --- styles for benchmarks: source-like and free text ------------------------------------------


@pytest.fixture(scope="module")
def source_like():
    return synth.generate_styled("source-like", n=1600, seed=1)


def test_source_like_has_the_real_sets_shape(source_like):
    from vetllm.data.stats import dataset_stats

    copies = Counter(note_key(r.note) for r in source_like)
    assert len(source_like) == 1600
    assert 300 <= len(copies) <= 450  # the source: 444 distinct notes in 1,602 records
    assert 20 <= max(copies.values()) <= 47  # the source's most repeated note: 47 copies
    assert sum(count >= 20 for count in copies.values()) >= 3
    stats = dataset_stats(source_like)
    assert 0.08 <= stats.n_conflicting_notes / len(copies) <= 0.12  # the source: 45 of 444
    assert 0.93 <= stats.accuracy_ceiling <= 0.97  # the source: 94.3%
    assert all(is_template(r.note) for r in source_like)


def test_source_like_keeps_the_source_class_mix(source_like):
    counts = Counter(r.labels[0] for r in source_like)
    assert 0.36 <= counts["1679004"] / 1600 <= 0.44  # PPR ~40%
    for label in ("3974005", "72934000", "198462004", "29600000", "2260006", "40214000"):
        assert counts[label] >= 40, label  # FMD, mastitis, HS, BQ, CCPP, anthrax
    assert counts["24026003"] >= 3 and counts["14146002"] >= 2  # rare: babesiosis, rabies


def test_source_like_ccpp_shares_signs_with_ppr(source_like):
    def signs(label):
        return {s for r in source_like if r.labels == (label,) for s in r.extra["symptoms"]}

    shared = signs("2260006") & signs("1679004")
    assert {"Fever", "Fluid leakage from nose", "Cough"} <= shared


def test_source_like_is_deterministic():
    first = synth.generate_styled("source-like", n=300, seed=4)
    again = synth.generate_styled("source-like", n=300, seed=4)
    assert [(r.note, r.labels) for r in first] == [(r.note, r.labels) for r in again]


def test_free_style_is_all_free_text():
    records = synth.generate_styled("free", n=200, seed=2)
    assert not any(is_template(r.note) for r in records)
    assert len({note_key(r.note) for r in records}) >= 195


def test_every_catalogue_disease_has_signs_that_tell_it_apart():
    catalogue = load_catalogue()
    unprofiled = [d.key for d in catalogue.diseases if d.key not in PROFILES]
    assert unprofiled == ["hc"]  # its meaning in the source is inconsistent: nothing to write

    def pairs(key):
        profile = PROFILES[key]
        return {(species, sign) for species, _ in profile.species for sign, _ in profile.signs}

    for key in PROFILES:
        others = set().union(*(pairs(other) for other in PROFILES if other != key))
        assert pairs(key) - others, f"{key}: every (species, sign) is shared with another disease"


@pytest.mark.parametrize(
    ("disease_key", "phrase"),
    [
        ("babesiosis", "hemoglobinuria"),
        ("theileriosis", "enlarged lymph nodes"),
        ("rabies", "history of dog bite"),
        ("fascioliasis", "bottle jaw"),
        ("ccpp", "painful breathing"),
    ],
)
def test_template_style_can_show_the_distinguishing_sign(disease_key, phrase):
    rng = random.Random(0)
    notes = [
        synth.render_template(synth_cases.sample_case(disease_key, rng), rng) for _ in range(200)
    ]
    assert any(phrase in note for note in notes)


def test_cli_writes_a_source_like_split_with_a_test_part(tmp_path):
    args = ["data", "synth", "--out", str(tmp_path), "--n", "400", "--seed", "2"]
    assert cli_main([*args, "--style", "source-like", "--val", "0.1", "--test", "0.2"]) == 0
    train = load_dataset_file(tmp_path / "train.json").records
    test = load_dataset_file(tmp_path / "test.json").records
    assert len(train) + len(test) + len(load_dataset_file(tmp_path / "val.json").records) == 400
    assert leakage_report(train, test).share_leaked == 0.0
    assert all(is_template(r.note) for r in train + test)


def test_bad_style_and_fractions_are_reported_together(tmp_path):
    with pytest.raises(VetLLMError) as caught:
        write_synthetic_dataset(tmp_path, n=50, val_fraction=0.6, test_fraction=0.5, style="x")
    assert "val_fraction + test_fraction" in str(caught.value) and "style" in str(caught.value)
