"""The training mix: dedupe by note with majority labels, synthetic free-text notes, vocabulary."""

from __future__ import annotations

from collections import Counter

import pytest

from vetllm.catalogue import load_catalogue
from vetllm.config import TrainConfig
from vetllm.data.records import Record
from vetllm.data.synth_mix import (
    build_training_mix,
    clinical_vocabulary_texts,
    dedupe_by_note,
    synthetic_training_notes,
)
from vetllm.errors import VetLLMError

PPR, CCPP, BABESIOSIS = "1679004", "2260006", "24026003"
NOTE = "Clinical Note: Goat. Clinical presentation includes fever and cough."


def test_dedupe_keeps_each_note_once_with_its_majority_label():
    records = [Record(NOTE, (PPR,))] * 5 + [Record(NOTE.upper(), (CCPP,))] * 2
    records += [Record("Clinical Note: Sheep. Other.", (CCPP,))]
    kept = dedupe_by_note(records)
    assert [(r.note, r.labels) for r in kept] == [
        (NOTE, (PPR,)),
        ("Clinical Note: Sheep. Other.", (CCPP,)),
    ]


def test_dedupe_breaks_ties_by_sorted_label_set_not_by_order():
    forward = dedupe_by_note([Record(NOTE, (PPR,)), Record(NOTE, (CCPP,))])
    backward = dedupe_by_note([Record(NOTE, (CCPP,)), Record(NOTE, (PPR,))])
    assert forward[0].labels == backward[0].labels == (PPR,)  # "1679004" sorts first


def test_synthetic_notes_use_only_the_users_labels_and_lift_rare_ones():
    users = [Record(f"ppr note {i}", (PPR,)) for i in range(100)]
    users += [Record(f"babesiosis note {i}", (BABESIOSIS,)) for i in range(4)]
    mixed = synthetic_training_notes(users, 400, seed=3)
    counts = Counter(r.labels[0] for r in mixed)
    assert set(counts) == {PPR, BABESIOSIS}
    # Square-root balance: 10:2 rather than the users' 100:4.
    assert 0.1 <= counts[BABESIOSIS] / len(mixed) <= 0.25
    assert not any(r.note.startswith("Clinical Note:") for r in mixed)  # free text
    again = synthetic_training_notes(users, 400, seed=3)
    assert [r.note for r in again] == [r.note for r in mixed]


def test_labels_without_a_profile_get_no_synthetic_notes():
    users = [Record("a note", ("local:something-else",))]
    assert synthetic_training_notes(users, 50, seed=0) == []


def test_training_mix_reports_what_it_changed():
    users = [Record(NOTE, (PPR,))] * 3 + [Record("other note", (CCPP,))]
    mixed, summary = build_training_mix(users, dedupe=True, synthetic_notes=10, seed=0)
    assert len(mixed) == 2 + 10
    assert summary["user_records"] == 4 and summary["deduplicated_to"] == 2
    assert summary["synthetic_free_text_notes"] == 10
    unchanged, _ = build_training_mix(users, dedupe=False, synthetic_notes=0, seed=0)
    assert unchanged == users


def test_vocabulary_covers_free_text_words_and_every_disease_name():
    texts = " ".join(clinical_vocabulary_texts())
    for word in (" runny nose", " diarrhoea", " Beetal", " red urine", " bottle jaw", " goat"):
        assert word in texts, word
    for disease in load_catalogue().diseases:
        assert f" {disease.name}" in texts


def test_config_refuses_a_negative_synthetic_note_count():
    with pytest.raises(VetLLMError, match="synthetic_notes: got -1"):
        TrainConfig(synthetic_notes=-1)
