"""Metrics: strict vs lenient accuracy, F1 against scikit-learn, Wilson intervals, confusion,
and reading prediction files with clear per-line errors."""

import json

import pytest

from vetllm.errors import DataError, VetLLMError
from vetllm.metrics import load_prediction_items, score_predictions, wilson_interval

PPR, FMD, MASTITIS, HS, CCPP = "1679004", "3974005", "72934000", "198462004", "2260006"
P = "Diagnosed conditions: "


def test_wilson_interval_known_values():
    # Reference values from the closed form (Wilson 1927), e.g. statsmodels proportion_confint.
    low, high = wilson_interval(4, 10)
    assert low == pytest.approx(0.16818, abs=1e-4) and high == pytest.approx(0.68733, abs=1e-4)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.27753, abs=1e-4)
    low, high = wilson_interval(10, 10)
    assert high == 1.0 and low == pytest.approx(0.72247, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(VetLLMError, match="successes"):
        wilson_interval(11, 10)


def test_strict_requires_a_clean_span_lenient_does_not():
    scores = score_predictions(
        [
            (P + PPR, [PPR]),  # strict and lenient
            (P + PPR + PPR, [PPR]),  # concatenated: lenient only
            (P + "PPR", [PPR]),  # a name: lenient only
            (P + f"{PPR}, {PPR}", [PPR]),  # repeated: lenient only
            (P + HS, [PPR]),  # wrong
        ]
    )
    assert (scores.n, scores.strict_correct, scores.lenient_correct) == (5, 1, 4)
    assert scores.strict_accuracy == pytest.approx(0.2)
    assert scores.lenient_accuracy == pytest.approx(0.8)
    assert scores.format_valid_rate == pytest.approx(0.4)  # "1679004" and "198462004"


def test_strict_wrong_set_is_not_correct():
    scores = score_predictions([(P + f"{PPR}, {CCPP}", [PPR])])
    assert scores.format_valid == 1 and scores.strict_correct == 0 and scores.lenient_correct == 0


def test_multi_label_gold_is_compared_as_a_set():
    scores = score_predictions([(P + f"{FMD}; {MASTITIS}", [MASTITIS, FMD])])
    assert scores.strict_correct == 1 and scores.lenient_correct == 1


def test_f1_matches_scikit_learn():
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import MultiLabelBinarizer

    items = [
        (P + PPR, [PPR]),
        (P + PPR + HS, [HS]),
        (P + MASTITIS, [MASTITIS, FMD]),
        (P + "appropriate", [CCPP]),
        (P + FMD, [MASTITIS]),
        (P + "local:foot-rot", ["local:foot-rot"]),
    ]
    scores = score_predictions(items)
    gold = [set(g) for _, g in items]
    predicted = [set(o.result.codes) for o in scores.outcomes]
    binarizer = MultiLabelBinarizer().fit(gold + predicted)
    y_true, y_pred = binarizer.transform(gold), binarizer.transform(predicted)
    micro = f1_score(y_true, y_pred, average="micro", zero_division=0)
    macro = f1_score(y_true, y_pred, average="macro", zero_division=0)
    assert scores.micro_f1 == pytest.approx(micro)
    assert scores.macro_f1 == pytest.approx(macro)


def test_per_code_rows_carry_names_validity_and_support():
    scores = score_predictions([(P + PPR, [PPR]), (P + PPR, [HS]), (P + HS, [HS])])
    rows = {row["code"]: row for row in scores.per_code}
    assert rows[PPR]["name"] == "Peste des petits ruminants"
    assert rows[PPR]["valid_sctid"] is False and rows[HS]["valid_sctid"] is True
    assert rows[HS]["support"] == 2 and rows[HS]["recall"] == pytest.approx(0.5)
    assert rows[PPR]["precision"] == pytest.approx(0.5)


def test_confusion_matrix_with_none_and_multiple_columns():
    scores = score_predictions(
        [(P + PPR, [PPR]), (P + PPR, [PPR]), (P + "nothing", [PPR]), (P + PPR + HS, [HS])]
    )
    confusion = scores.confusion
    labels = confusion["labels"]
    assert labels[-2:] == ["(none)", "(multiple)"]
    matrix = confusion["matrix"]
    assert len(matrix) == len(labels) and all(len(row) == len(labels) for row in matrix)
    at = labels.index
    assert matrix[at(PPR)][at(PPR)] == 2
    assert matrix[at(PPR)][at("(none)")] == 1
    assert matrix[at(HS)][at("(multiple)")] == 1
    assert sum(map(sum, matrix)) == 4


def test_to_dict_contract_and_markdown():
    out = score_predictions([(P + PPR, [PPR]), (P + HS, [PPR])]).to_dict(include_items=True)
    for key in (
        "n",
        "strict_accuracy",
        "lenient_accuracy",
        "format_valid_rate",
        "micro_f1",
        "macro_f1",
        "strict_ci",
        "lenient_ci",
        "per_code",
        "confusion",
    ):
        assert key in out
    assert out["strict_ci"][0] < 0.5 < out["strict_ci"][1]
    assert len(out["items"]) == 2 and out["items"][1]["lenient_correct"] is False
    markdown = score_predictions([(P + PPR, [PPR])]).to_markdown()
    assert "| strict accuracy | 100.0% |" in markdown and "Peste des petits ruminants" in markdown


def test_bad_items_are_all_reported():
    with pytest.raises(VetLLMError) as error:
        score_predictions([(None, [PPR]), (P + PPR, PPR), ("x",)])
    message = str(error.value)
    assert "item 0" in message and "item 1" in message and "item 2" in message
    with pytest.raises(VetLLMError, match="no predictions"):
        score_predictions([])


def test_load_prediction_items_accepts_aliases_and_disease_fallback(tmp_path):
    path = tmp_path / "p.jsonl"
    lines = [
        {"output": P + PPR, "snomed_codes": [PPR]},
        {"raw_output": P + HS, "labels": f"{HS}, {PPR}"},
        {"output": P, "snomed_codes": [], "disease": "Foot Rot"},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n", encoding="utf-8")
    items = load_prediction_items(path)
    assert items == [(P + PPR, [PPR]), (P + HS, [HS, PPR]), (P, ["local:foot-rot"])]


def test_load_prediction_items_names_every_bad_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps({"output": P + PPR, "snomed_codes": [PPR]}),
                '{"output": "x", "snomed_codes": [',
                json.dumps({"snomed_codes": [PPR]}),
                json.dumps({"output": "x", "snomed_codes": None}),
                "[1, 2]",
            ]
        )
    )
    with pytest.raises(DataError) as error:
        load_prediction_items(path)
    lines = sorted(problem.line for problem in error.value.problems)
    assert lines == [2, 3, 4, 5]
    assert "bad.jsonl, line 2" in str(error.value)
    assert "field 'output'" in str(error.value)


def test_load_prediction_items_file_problems(tmp_path):
    with pytest.raises(VetLLMError, match="not found"):
        load_prediction_items(tmp_path / "missing.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(VetLLMError, match="empty"):
        load_prediction_items(empty)
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(VetLLMError, match="UTF-8"):
        load_prediction_items(binary)


def test_coverage_scores_count_abstentions_beside_the_accuracies():
    from vetllm.metrics import coverage_scores, format_scores_markdown

    correct = [True, True, False, False, False]  # the last two abstained, so wrong
    answered = [True, True, True, False, False]
    scores = coverage_scores(correct, answered)
    assert scores["coverage"] == 0.6 and scores["answered"] == 3 and scores["abstained"] == 2
    assert scores["accuracy_on_answered"] == pytest.approx(2 / 3)
    assert scores["accuracy_on_answered_ci"] == list(wilson_interval(2, 3))
    table = score_predictions([("Diagnosed conditions: 72934000", ["72934000"])]).to_dict()
    text = format_scores_markdown({**table, **scores})
    assert "| coverage (notes given a code) | 60.0% |" in text
    assert "| lenient accuracy on answered notes | 66.7% |" in text
    assert coverage_scores([False], [False])["accuracy_on_answered"] is None
    with pytest.raises(VetLLMError, match="2 verdicts but 1 answer flags"):
        coverage_scores([True, False], [True])
