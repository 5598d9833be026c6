"""The tuned bag of words as a voter: the same probabilities as scikit-learn, saved as JSON."""

import json

import pytest

from tests.test_ensemble import answer
from vetllm.baselines import tuned_bag_of_words
from vetllm.config import load_config
from vetllm.data.records import Record
from vetllm.engine.bag_of_words_vote import VOTER_FILE, BagOfWordsVoter, fit_voter, save_voter
from vetllm.engine.ensemble import vote
from vetllm.errors import VetLLMError

ANTHRAX, PPR, FMD = "40214000", "1679004", "3974005"


def records(rows):
    return [Record(note=note, labels=list(labels)) for note, labels in rows]


THREE_DISEASES = records(
    [(f"goat {w} fever nasal discharge cough", [PPR]) for w in ("one", "two", "three", "four")]
    + [(f"cow {w} sudden death bleeding", [ANTHRAX]) for w in ("one", "two", "three", "four")]
    + [(f"cow {w} blisters on mouth and feet", [FMD]) for w in ("one", "two", "three", "four")]
    + [("cow blisters sudden death", [ANTHRAX, FMD])] * 3
)
NOTES = ["goat with fever and cough", "cow found dead, bleeding", "blisters feet", "zzz", ""]


@pytest.mark.parametrize("training", [THREE_DISEASES, THREE_DISEASES[:8]], ids=["many", "binary"])
def test_saved_voter_gives_scikit_learns_probabilities(training):
    vectorizer, model, _ = tuned_bag_of_words(training, seed=0)
    expected = model.predict_proba(vectorizer.transform(NOTES))
    voter = BagOfWordsVoter(json.loads(json.dumps(fit_voter(training, seed=0))))
    assert voter.probabilities(NOTES) == pytest.approx(expected, abs=1e-9)
    assert [tuple(c.split("\t")) for c in model.classes_] == voter.classes


def test_voter_ranks_every_label_set_by_probability(tmp_path):
    save_voter(fit_voter(THREE_DISEASES, seed=0), tmp_path)
    voter = BagOfWordsVoter.load(tmp_path)
    rows = voter.probabilities(NOTES[:2])
    ranked = voter.ranked(NOTES[:2])
    assert [r[0][0] for r in ranked] == [(PPR,), (ANTHRAX,)]
    for row, answers in zip(rows, ranked, strict=True):
        assert sorted(answers) == sorted(zip(voter.classes, row.tolist(), strict=True))
        shares = [share for _, share in answers]
        assert shares == sorted(shares, reverse=True) and sum(shares) == pytest.approx(1)


def test_the_voter_settles_a_split_between_two_models():
    models = [[answer(["1679004"], confidence=0.6)], [answer(["2260006"], confidence=0.5)]]
    voter_says = answer(["2260006"], confidence=0.4)
    chosen = vote([*models, [voter_says]])[0]
    assert chosen.result.codes == ["2260006"]
    assert chosen.warnings == ["the models disagree: 2 of 3 gave this answer"]


def test_one_label_set_needs_no_voter_and_a_damaged_file_says_what_to_do(tmp_path):
    assert fit_voter(THREE_DISEASES[:4], seed=0) is None
    (tmp_path / VOTER_FILE).write_text('{"format": "something else"}')
    with pytest.raises(VetLLMError, match="bag-of-words voter cannot be read.*bag_of_words_vote"):
        BagOfWordsVoter.load(tmp_path)
    state = fit_voter(THREE_DISEASES, seed=0)
    damaged = {
        "weights of shape": {"coef": state["coef"][:-1]},  # a class without weights
        "finite": {"intercept": [float("nan")] * len(state["intercept"])},
        "ngram_range": {"ngram_range": [1, 1, 1]},
        "lists of text": {"classes": [1, 2, 3]},
    }
    for message, change in damaged.items():
        save_voter({**state, **change}, tmp_path)
        with pytest.raises(VetLLMError, match=message):
            BagOfWordsVoter.load(tmp_path)
    (tmp_path / VOTER_FILE).unlink()
    with pytest.raises(VetLLMError, match="train the run again"):
        BagOfWordsVoter.load(tmp_path)


def test_the_voter_needs_models_to_vote_with():
    with pytest.raises(VetLLMError, match="bag_of_words_vote: got True; set it to false"):
        load_config("tiny-cpu", ["ensemble=1"])
    assert load_config("tiny-cpu", ["ensemble=1", "bag_of_words_vote=false"]).ensemble == 1
    assert load_config("tiny-cpu").bag_of_words_vote  # the CPU default votes with it (issue 7)
