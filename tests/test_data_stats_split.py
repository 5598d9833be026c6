"""Tests for vetllm.data.stats, vetllm.data.split and the `vetllm data` CLI."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from vetllm.cli import main
from vetllm.data.loading import load_dataset_file
from vetllm.data.records import Record, note_key
from vetllm.data.split import leakage_report, split_by_note, write_split
from vetllm.data.stats import dataset_stats
from vetllm.data.writing import write_records
from vetllm.errors import VetLLMError

ASSETS = Path(__file__).parent / "assets" / "data"
PPR, FMD, HS, ANTHRAX = "1679004", "3974005", "198462004", "40214000"


def rec(note: str, *labels: str, species: str = "goat") -> Record:
    return Record(note, tuple(labels), species)


def noisy_records() -> list[Record]:
    """10 records, 5 unique notes (case/space variants), 1 conflicting note."""
    return [
        rec("goat fever lip sores", PPR),
        rec("Goat  fever lip SORES", PPR),
        rec("goat fever lip sores", PPR),
        rec("goat fever lip sores", FMD),  # conflict: 3 PPR vs 1 FMD
        rec("cow foot blisters", FMD, species="cow"),
        rec("cow foot blisters", FMD, species="cow"),
        rec("buffalo neck swelling", HS, species="buffalo"),
        rec("sheep lame", "local:foot-rot", species="sheep"),
        rec("cow sudden death", ANTHRAX, species="cow"),
        rec("cow sudden death", ANTHRAX, species="cow"),
    ]


def many_records(n_notes: int = 300, seed: int = 0) -> list[Record]:
    """Notes with 1-4 copies each over five labels, like the duplicated source set."""
    rng = random.Random(seed)
    labels = [PPR, FMD, HS, ANTHRAX, "local:foot-rot"]
    records = []
    for index in range(n_notes):
        label = labels[index % len(labels)]
        records += [rec(f"note {index} signs of {label}", label)] * rng.randint(1, 4)
    rng.shuffle(records)
    return records


# ------------------------------------------------------------------ statistics


def test_dataset_stats_counts_duplicates_conflicts_and_ceiling():
    stats = dataset_stats(noisy_records())
    assert stats.n_records == 10 and stats.n_unique_notes == 5
    assert stats.n_duplicate_records == 5
    assert stats.duplicates[0]["count"] == 4
    assert stats.duplicates[0]["label_sets"] == [
        {"labels": [PPR], "count": 3},
        {"labels": [FMD], "count": 1},
    ]
    assert stats.n_conflicting_notes == 1
    assert stats.accuracy_ceiling == pytest.approx(9 / 10)  # only the lone FMD copy is lost
    assert stats.majority_baseline == {"labels": [PPR], "count": 3, "share": 0.3, "accuracy": 0.3}
    assert stats.label_counts == {PPR: 3, FMD: 3, ANTHRAX: 2, HS: 1, "local:foot-rot": 1}
    assert stats.species_counts == {"cow": 4, "goat": 4, "buffalo": 1, "sheep": 1}


def test_dataset_stats_flags_uncoded_and_invalid_codes_with_hints():
    stats = dataset_stats(noisy_records())
    assert [u["label"] for u in stats.uncoded_labels] == ["local:foot-rot"]
    invalid = {item["label"]: item for item in stats.invalid_sctid_labels}
    assert set(invalid) == {PPR, FMD, ANTHRAX}  # HS (198462004) is a valid SCTID
    assert invalid[ANTHRAX]["suggested_code"] == "409498004"
    assert "Verhoeff" in invalid[PPR]["reason"]


def test_dataset_stats_markdown_and_dict():
    stats = dataset_stats(noisy_records())
    text = stats.to_markdown()
    assert "**90.0%**" in text and "**30.0%**" in text
    assert "Foot rot" in text and "409498004" in text
    assert "Notes with conflicting labels" in text
    assert json.loads(json.dumps(stats.to_dict()))["n_unique_notes"] == 5


def test_multi_label_sets_are_compared_as_sets():
    records = [rec("n", PPR, FMD), rec("n", FMD, PPR), rec("m", PPR)]
    stats = dataset_stats(records)
    assert stats.n_conflicting_notes == 0 and stats.n_multi_label_records == 2
    assert stats.majority_baseline["labels"] == sorted([PPR, FMD])


def test_dataset_stats_needs_records():
    with pytest.raises(VetLLMError, match="0 records"):
        dataset_stats([])


# ------------------------------------------------------------------ split


def test_split_puts_every_copy_of_a_note_in_one_part():
    records = many_records()
    split = split_by_note(records, val_fraction=0.15, test_fraction=0.15, seed=3)
    keys = {part: {note_key(r.note) for r in rs} for part, rs in split.parts().items()}
    assert not keys["train"] & keys["val"] and not keys["train"] & keys["test"]
    assert not keys["val"] & keys["test"]
    assert sum(len(rs) for rs in split.parts().values()) == len(records)
    n_notes = len({note_key(r.note) for r in records})
    assert abs(len(keys["val"]) - 0.15 * n_notes) <= 1
    assert abs(len(keys["test"]) - 0.15 * n_notes) <= 1
    assert leakage_report(split.train, split.val).share_leaked == 0.0


def test_split_is_deterministic_by_seed_and_independent_of_order():
    records = many_records()
    first = split_by_note(records, 0.2, 0.1, seed=7)
    shuffled = records[:]
    random.Random(1).shuffle(shuffled)
    again = split_by_note(shuffled, 0.2, 0.1, seed=7)
    for part in ("train", "val", "test"):
        assert sorted(r.note for r in first.parts()[part]) == sorted(
            r.note for r in again.parts()[part]
        )
    other = split_by_note(records, 0.2, 0.1, seed=8)
    assert sorted(r.note for r in other.val) != sorted(r.note for r in first.val)


def test_split_spreads_each_label_over_validation():
    split = split_by_note(many_records(), val_fraction=0.2, seed=0)
    counts = {label: 0 for label in (PPR, FMD, HS, ANTHRAX, "local:foot-rot")}
    for record in {note_key(r.note): r for r in split.val}.values():
        counts[record.labels[0]] += 1
    assert all(11 <= count <= 13 for count in counts.values())  # 60 notes per label x 0.2


def test_split_defaults_and_tiny_data():
    split = split_by_note(many_records(40))
    assert split.test == [] and split.val
    tiny = split_by_note([rec("a", PPR), rec("b", FMD)], val_fraction=0.1)
    assert len(tiny.train) == 1 and len(tiny.val) == 1
    with pytest.raises(VetLLMError, match="1 unique note text"):
        split_by_note([rec("a", PPR), rec("A ", PPR)])


@pytest.mark.parametrize(
    "val, test, words",
    [
        (1.2, 0.0, "val_fraction: got 1.2"),
        (0.5, 0.5, "must stay below 1"),
        (-0.1, 2, "test_fraction"),
    ],
)
def test_split_fraction_errors(val, test, words):
    with pytest.raises(VetLLMError, match=words):
        split_by_note(many_records(20), val_fraction=val, test_fraction=test)


def test_split_summary_and_written_files(tmp_path):
    split = split_by_note(many_records(), 0.15, 0.1, seed=0)
    summary = split.to_dict()
    assert summary["val"]["leakage"] == 0.0 and summary["test"]["leakage"] == 0.0
    assert summary["train"]["records"] == len(split.train)
    written = write_split(split, tmp_path)
    assert sorted(written) == ["test", "train", "val"]
    assert len(load_dataset_file(written["val"]).records) == len(split.val)
    only_val = write_split(split_by_note(many_records(), 0.15), tmp_path / "two")
    assert sorted(only_val) == ["train", "val"]


# ------------------------------------------------------------------ leakage


def test_leakage_report_counts_records_and_unique_notes():
    train = [rec("goat fever", PPR), rec("cow blisters", FMD)]
    other = [rec("Goat Fever", PPR)] * 3 + [rec("new note", HS)]
    report = leakage_report(train, other)
    assert (report.n_leaked_records, report.n_other_records) == (3, 4)
    assert report.share_leaked == 0.75 and report.share_leaked_notes == 0.5
    assert report.examples[0]["count_in_other"] == 3
    assert "75.0% of records" in report.to_text()
    assert leakage_report(train, []).share_leaked == 0.0


def test_random_record_split_leaks_and_note_split_does_not():
    records = many_records(300)
    shuffled = records[:]
    random.Random(0).shuffle(shuffled)
    cut = int(0.85 * len(shuffled))
    assert leakage_report(shuffled[:cut], shuffled[cut:]).share_leaked > 0.3
    split = split_by_note(records, 0.15)
    assert leakage_report(split.train, split.val).n_leaked_records == 0


# ------------------------------------------------------------------ CLI


def test_cli_validate_ok_and_json(capsys):
    assert main(["data", "validate", str(ASSETS / "source_sample.csv")]) == 0
    assert "VALID source_sample.csv: 4 usable records" in capsys.readouterr().out
    assert main(["data", "validate", str(ASSETS / "source_sample.json"), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["valid"] is True and payload["n_records"] == 4


def test_cli_validate_reports_every_problem_and_exits_2(tmp_path, capsys):
    rows = [{"input": "x", "disease": "PPR"}, {"input": ""}, {"input": "y", "snomed_codes": [1.5]}]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(rows))
    assert main(["data", "validate", str(path)]) == 2
    out = capsys.readouterr().out
    assert out.startswith("INVALID bad.json") and "field 'snomed_codes'" in out
    assert main(["data", "validate", str(path), "--json"]) == 2
    payload = json.loads(capsys.readouterr().out)
    assert payload["valid"] is False and len(payload["problems"]) == 3
    assert main(["data", "validate", str(path), "--skip-bad-rows", "--json"]) == 2
    payload = json.loads(capsys.readouterr().out)
    assert payload["n_records"] == 1 and payload["skipped_rows"] == 2
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert main(["data", "validate", str(empty), "--json"]) == 2
    assert "empty" in json.loads(capsys.readouterr().out)["error"]


def test_cli_stats(capsys):
    assert main(["data", "stats", str(ASSETS / "source_sample.jsonl")]) == 0
    assert "## Data set statistics" in capsys.readouterr().out
    assert main(["data", "stats", str(ASSETS / "source_sample.jsonl"), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["n_records"] == 4 and payload["uncoded_labels"][0]["label"] == "local:foot-rot"


def test_cli_split_and_leakage(tmp_path, capsys):
    source = write_records(many_records(), tmp_path / "all.jsonl")
    out_dir = tmp_path / "split"
    args = ["data", "split", str(source), "--out", str(out_dir), "--val", "0.2", "--test", "0.1"]
    assert main([*args, "--seed", "5"]) == 0
    text = capsys.readouterr().out
    assert "val.json" in text and "leakage 0.0%" in text
    assert sorted(p.name for p in out_dir.iterdir()) == ["test.json", "train.json", "val.json"]
    assert main(["data", "leakage", str(out_dir / "train.json"), str(out_dir / "val.json")]) == 0
    assert "0.0% of records" in capsys.readouterr().out
    assert main(["data", "leakage", str(source), str(out_dir / "val.json"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["share_leaked"] == 1.0


def test_cli_bad_numbers_and_missing_files_are_clear(tmp_path, capsys):
    code = main(
        ["data", "split", str(ASSETS / "source_sample.json"), "--out", str(tmp_path), "--val", "x"]
    )
    assert code == 2 and "--val: got 'x'" in capsys.readouterr().err
    assert main(["data", "stats", str(tmp_path / "missing.json")]) == 2
    assert "missing.json: file not found" in capsys.readouterr().err


def test_cli_catalogue_option_extends_the_catalogue(tmp_path, capsys):
    data = tmp_path / "d.csv"
    data.write_text("input,disease\nsheep with pox lesions,Sheep pox\n", encoding="utf-8")
    assert main(["data", "validate", str(data)]) == 2
    assert "Sheep pox" in capsys.readouterr().out
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps({"diseases": [{"key": "sheep-pox", "name": "Sheep pox"}]}))
    assert main(["data", "validate", str(data), "--catalogue", str(extra)]) == 0
    assert "VALID" in capsys.readouterr().out


def test_cli_synth_writes_a_valid_data_set(tmp_path, capsys):
    pytest.importorskip("vetllm.data.synth")
    assert main(["data", "synth", "--out", str(tmp_path), "--n", "120", "--seed", "1"]) == 0
    capsys.readouterr()
    train = load_dataset_file(tmp_path / "train.json").records
    val = load_dataset_file(tmp_path / "val.json").records
    assert len(train) + len(val) == 120
    assert leakage_report(train, val).n_leaked_records == 0
