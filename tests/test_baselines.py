"""Baselines: majority, majority per species (with fallback), bag of words; deterministic."""

import random

import pytest

from vetllm.baselines import (
    format_baselines_markdown,
    predict_majority,
    predict_majority_per_species,
    run_baselines,
)
from vetllm.data.records import Record
from vetllm.errors import VetLLMError

PPR, FMD, MASTITIS, HS = "1679004", "3974005", "72934000", "198462004"
SIGNS = {
    PPR: ["fever", "nasal discharge", "labial vesicles", "severe cough", "diarrhea"],
    FMD: ["oral frothing", "oral vesicles", "foot vesicles", "lameness"],
    MASTITIS: ["abnormal milk consistency", "teat lesions", "udder edema"],
    HS: ["respiratory distress", "open-mouth breathing", "cervical swelling", "protruding tongue"],
}
SPECIES = {PPR: ["goat", "sheep"], FMD: ["cow", "buffalo"], MASTITIS: ["cow"], HS: ["buffalo"]}


def make_records(n: int, seed: int) -> list[Record]:
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        label = rng.choices(list(SIGNS), weights=[5, 2, 2, 2])[0]
        species = rng.choice(SPECIES[label])
        signs = rng.sample(SIGNS[label], 2) + [rng.choice(["weakness", "anorexia", "fever"])]
        note = f"Clinical Note: {species.capitalize()}. Presentation includes {', '.join(signs)}."
        records.append(Record(note=note, labels=(label,), species=species))
    return records


def test_majority_predicts_the_most_common_label_set():
    train = [Record("a", (PPR,)), Record("b", (PPR,)), Record("c", (HS,))]
    assert predict_majority(train, [Record("x", (HS,))]) == [(PPR,)]


def test_majority_ties_do_not_depend_on_record_order():
    train = [Record("a", (PPR,)), Record("b", (HS,))]
    assert predict_majority(train, [Record("x", ())]) == predict_majority(
        train[::-1], [Record("x", ())]
    )


def test_majority_per_species_falls_back_for_unseen_species():
    train = [
        Record("a", (PPR,), species="goat"),
        Record("b", (PPR,), species="goat"),
        Record("c", (HS,), species="buffalo"),
    ]
    test = [
        Record("x", (HS,), species="Buffalo"),
        Record("y", (PPR,), species="camel"),
        Record("z", (PPR,)),
    ]
    assert predict_majority_per_species(train, test) == [(HS,), (PPR,), (PPR,)]


def test_run_baselines_scores_and_orders_sensibly():
    train, test = make_records(300, seed=1), make_records(120, seed=2)
    results = run_baselines(train, test)
    assert list(results) == ["majority", "majority_per_species", "bag_of_words"]
    for result in results.values():
        assert result["n"] == 120 and len(result["predictions"]) == 120
        low, high = result["ci"]
        assert low <= result["accuracy"] <= high
        assert result["accuracy"] == pytest.approx(result["correct"] / 120)
    # signs identify the disease here; species only partly; the majority guess knows nothing
    assert results["bag_of_words"]["accuracy"] > 0.9
    assert results["majority"]["accuracy"] < results["majority_per_species"]["accuracy"]
    assert results["majority_per_species"]["accuracy"] < results["bag_of_words"]["accuracy"]


def test_bag_of_words_is_deterministic_and_multi_label_aware():
    train = make_records(150, seed=3) + [
        Record(f"Cow. oral vesicles with abnormal milk consistency {i}", (FMD, MASTITIS), "cow")
        for i in range(20)
    ]
    test = [Record("Cow. oral vesicles, abnormal milk consistency", (MASTITIS, FMD), "cow")]
    first = run_baselines(train, test, seed=0)
    second = run_baselines(train, test, seed=0)
    assert first == second
    assert first["bag_of_words"]["predictions"] == [sorted([FMD, MASTITIS])]
    assert first["bag_of_words"]["correct"] == 1


def test_single_class_training_set_still_answers():
    train = [Record("a fever", (PPR,)), Record("b cough", (PPR,))]
    results = run_baselines(train, [Record("fever", (PPR,))])
    assert results["bag_of_words"]["accuracy"] == 1.0


def test_empty_sets_are_refused_with_both_reasons():
    with pytest.raises(VetLLMError, match="training set is empty.*test set is empty"):
        run_baselines([], [])


def test_markdown_table_lists_every_baseline():
    results = run_baselines(make_records(60, seed=4), make_records(20, seed=5))
    table = format_baselines_markdown(results)
    assert all(f"| {name} |" in table for name in results)


def test_bag_of_words_reports_the_settings_its_grouped_cv_chose():
    from vetllm.baselines import C_GRID, NGRAM_GRID

    results = run_baselines(make_records(200, seed=6), make_records(40, seed=7))
    settings = results["bag_of_words"]["settings"]
    assert settings["C"] in C_GRID and tuple(settings["ngram_range"]) in NGRAM_GRID
    assert settings["folds"] == 5 and 0.5 <= settings["cv_accuracy"] <= 1.0


def test_tuning_folds_are_grouped_by_note_text():
    # Each distinct note has a unique word and a random label, repeated 6 times: copies of a
    # note on both sides of a fold would let the model "learn" the noise (CV accuracy ~1.0).
    rng = random.Random(8)
    train = []
    for index in range(60):
        label = rng.choice([PPR, HS])
        train += [Record(f"Clinical Note: Goat. marker{index} fever", (label,))] * 6
    settings = run_baselines(train, train[:5])["bag_of_words"]["settings"]
    assert settings["cv_accuracy"] < 0.75


def test_copies_weigh_like_rows():
    from vetllm.baselines import _weighted_rows

    rows = _weighted_rows(["a b", "A  b", "c"], [PPR, PPR, HS])
    assert sorted((target, count) for _, target, count in rows) == [(PPR, 2), (HS, 1)]
