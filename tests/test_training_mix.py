"""The training hook that mixes and deduplicates what the model trains on (validation untouched)."""

from __future__ import annotations

from vetllm.catalogue import load_catalogue
from vetllm.config import TrainConfig
from vetllm.data.records import Record
from vetllm.engine.training import training_mix

PPR, CCPP = "1679004", "2260006"
NOTE = "Clinical Note: Goat. Clinical presentation includes fever and cough."
RECORDS = [Record(NOTE, (PPR,))] * 4 + [Record(NOTE, (CCPP,)), Record("Other note.", (CCPP,))]


def test_off_by_default_trains_on_the_users_records_as_given():
    lines = []
    records, summary = training_mix(TrainConfig(), RECORDS, load_catalogue(), lines.append)
    assert records is RECORDS and summary is None and lines == []


def test_dedupe_and_synthetic_notes_change_only_the_training_records():
    lines = []
    cfg = TrainConfig(dedupe_notes=True, synthetic_notes=6, seed=1)
    records, summary = training_mix(cfg, RECORDS, load_catalogue(), lines.append)
    user_notes = [r for r in records if r.note in (NOTE, "Other note.")]
    assert sorted((r.note, r.labels) for r in user_notes) == [
        (NOTE, (PPR,)),  # the majority label of the conflicting copies
        ("Other note.", (CCPP,)),
    ]
    assert len(records) == 2 + 6 and summary["synthetic_free_text_notes"] == 6
    assert {label for r in records for label in r.labels} <= {PPR, CCPP}
    assert "2 distinct notes + 6 synthetic free-text notes" in lines[0]
