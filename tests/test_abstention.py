"""The out-of-scope check: nonsense abstains, real template and free-text notes never do.

The vocabulary here is the one every run has even when its training data is gone (catalogue,
generator, general clinical words): the strictest case for real notes.
"""

from __future__ import annotations

import json

import pytest

from vetllm.abstention import (
    REFER,
    AbstentionPolicy,
    check_scope,
    clinical_vocabulary,
    note_words,
)
from vetllm.catalogue import load_catalogue
from vetllm.data.synth import bundled_examples

NONSENSE = [
    "asdkjh qwpeoi zxmcnv",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit",
    "The quick brown fox jumps over the lazy dog",
    "Please remember to buy bread and eggs on the way home",
    "!!! ??? ### 12345 ...",
    "Meeting moved to Thursday 3pm, bring the quarterly budget report",
    "SELECT name FROM users WHERE id = 1; DROP TABLE records;",
    "hello hello hello",
    "Der Hund bellt laut im Garten und die Katze schläft",
    "My laptop battery drains quickly after the latest software update",
]
# Hand-written free-text notes (not from the generator), in several writing habits.
FREE_TEXT = [
    "Holstein heifer, 2 yrs, off feed for 3 days, high temperature 105F, drooling saliva and "
    "blisters between the claws",
    "Ewe lambed last week, now weak, not eating, foul smelling vaginal discharge",
    "Goat kid with watery diarrhoea, dehydrated, sunken eyes",
    "buffalo sudden death, bloody discharge from nostrils, no rigor mortis",
    "Cow coughing for two weeks, losing weight, enlarged lymph nodes",
    "Sheep flock: several animals lame, swollen feet, bad smell from hooves",
    "Bull aggressive, bellowing, salivating, difficulty swallowing",
    "Doe aborted at 4 months, retained placenta, mild fever",
    "Calf with swollen crepitant thigh muscle, lame, high fever, died next day",
    "Crossbred cow, 5 yo, red urine, pale mucous membranes, ticks seen on the udder",
    "Sheep grazing wet pasture, bottle jaw, anaemia, poor body condition",
    "Goats in the village have scabs on lips and udder, fever, some kids dead",
    "T 40.5C, RR 48, HR 96. Cow dull, nasal discharge, laboured breathing",
    "vaccinated last year; now mastitis in two quarters, clots in milk, hot swollen udder",
]


@pytest.fixture(scope="module")
def policy():
    return AbstentionPolicy(clinical_vocabulary(load_catalogue()))


@pytest.mark.parametrize("confidence", [0.95, 0.74, 0.2])
def test_nonsense_abstains_whatever_the_model_says(policy, confidence):
    reasons = [policy.reason(n, ["1679004"], confidence, "free") for n in NONSENSE]
    assert sum(r is not None for r in reasons) >= 9  # the bar: 9 of 10
    assert all(r.startswith(REFER) for r in reasons if r)


def test_empty_after_cleaning_says_so(policy):
    reason = policy.reason("!!! 123 ...", ["1679004"], 0.99, "free")
    assert reason and "no words" in reason


@pytest.mark.parametrize("confidence", [0.99, 0.3])
def test_real_free_text_notes_never_abstain(policy, confidence):
    for note in FREE_TEXT:
        assert policy.reason(note, ["1679004"], confidence, "free") is None, note


def test_real_template_and_bundled_notes_never_abstain(policy):
    notes = []
    for path in bundled_examples():
        notes += [row["input"] for row in json.loads(path.read_text("utf-8"))]
    notes += [
        row["note"] for row in json.loads(bundled_examples()[0].with_name("notes.json").read_text())
    ]
    flagged = [n for n in notes if policy.reason(n, ["1679004"], 0.3, "free") is not None]
    assert flagged == []


def test_training_notes_extend_the_vocabulary():
    base = clinical_vocabulary(load_catalogue())
    extended = clinical_vocabulary(load_catalogue(), ["quokka zebu"])
    assert "quokka" not in base and {"quokka", "zebu"} <= extended
    assert check_scope("zebu quokka", extended).known_share == 1.0


def test_note_words_drop_numbers_symbols_and_function_words():
    assert note_words("The cow, 3 yrs: T 40.5C & fever!") == ["cow", "yrs", "fever"]


def test_threshold_and_empty_answers(policy):
    note = "Cow, high fever, nasal discharge"
    assert policy.reason(note, [], 0.9, "free").endswith("names no catalogue code)")
    policy_with = AbstentionPolicy(policy.vocabulary, {"free": 0.8}, 0.95)
    reason = policy_with.reason(note, ["1679004"], 0.7, "free")
    assert "below this run's threshold 0.80" in reason and "95% accuracy" in reason
    assert policy_with.reason(note, ["1679004"], 0.85, "free") is None
    assert policy_with.reason(note, ["1679004"], 0.7, "constrained") is None  # per decoding


def test_borderline_note_is_answered_only_when_the_model_is_sure(policy):
    note = "Cow fever cough meeting budget report"  # 3 of 6 words known
    assert check_scope(note, policy.vocabulary).known_share == 0.5
    assert policy.reason(note, ["1679004"], 0.9, "free") is None
    assert "unsure" in policy.reason(note, ["1679004"], 0.3, "free")
