"""Tokenization through datasets.Dataset.map: cached across runs, same examples as before; the
collator agrees with transformers' DataCollatorForSeq2Seq."""

from __future__ import annotations

import sys

import pytest
from transformers import DataCollatorForSeq2Seq

from vetllm.catalogue import load_catalogue
from vetllm.config import TrainConfig
from vetllm.data.synth import generate_records
from vetllm.engine.collate import ResponseOnlyCollator, encode_record, encode_records
from vetllm.engine.tiny import train_tokenizer

TEMPLATE = TrainConfig(prompt_template="compact", note_prefix="").prompt()
RECORDS = generate_records(n=60, seed=5)


@pytest.fixture(scope="module")
def tokenizer():
    texts = [TEMPLATE.format_prompt(r.note) + TEMPLATE.format_response(r.labels) for r in RECORDS]
    return train_tokenizer(texts, 600, labels=load_catalogue().labels)


def _plain(tokenizer, max_length=128) -> list[dict]:
    return [encode_record(tokenizer, TEMPLATE, r, max_length) for r in RECORDS]


def test_second_tokenization_of_the_same_data_comes_from_the_cache(tokenizer, tmp_path):
    first = encode_records(tokenizer, TEMPLATE, RECORDS, 128, cache_dir=tmp_path)
    second = encode_records(tokenizer, TEMPLATE, RECORDS, 128, cache_dir=tmp_path)
    assert (first.from_cache, second.from_cache) == (False, True)
    assert len(list(tmp_path.glob("tokenized-*.arrow"))) == 1
    assert list(second.examples) == list(first.examples) == _plain(tokenizer)
    assert second[3] == _plain(tokenizer)[3]  # what the Trainer draws


def test_anything_the_encoding_depends_on_makes_a_new_cache_entry(tokenizer, tmp_path):
    encode_records(tokenizer, TEMPLATE, RECORDS, 128, cache_dir=tmp_path)
    shorter = encode_records(tokenizer, TEMPLATE, RECORDS, 64, cache_dir=tmp_path)
    fewer = encode_records(tokenizer, TEMPLATE, RECORDS[:-1], 128, cache_dir=tmp_path)
    assert not shorter.from_cache and not fewer.from_cache
    assert list(shorter.examples) == _plain(tokenizer, 64)


def test_without_datasets_the_same_examples_are_tokenized_in_place(tokenizer, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # as on an image without the package
    encoded = encode_records(tokenizer, TEMPLATE, RECORDS, 128)
    assert not encoded.from_cache and encoded.examples == _plain(tokenizer)


def test_collator_matches_data_collator_for_seq2seq(tokenizer):
    tokenizer.padding_side = "right"
    features = [{k: e[k] for k in ("input_ids", "labels")} for e in _plain(tokenizer)[:5]]
    ours = ResponseOnlyCollator(tokenizer.pad_token_id)(features)
    reference = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100, return_tensors="pt")
    theirs = reference([dict(f) for f in features])
    for key in ("input_ids", "labels", "attention_mask"):
        assert ours[key].tolist() == theirs[key].tolist(), key
