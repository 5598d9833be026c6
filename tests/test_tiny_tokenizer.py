"""The tiny tokenizer keeps ordinary clinical words whole even when the training notes lack them."""

from __future__ import annotations

from vetllm.engine.tiny import train_tokenizer

TEMPLATE_NOTES = [
    f"Note: Clinical Note: {species}. Clinical presentation includes fever and cough.\n"
    "Diagnosed conditions: 1679004"
    for species in ("Sheep", "Goat", "Cow", "Buffalo")
] * 20


def test_free_text_words_absent_from_template_notes_stay_whole():
    tokenizer = train_tokenizer(TEMPLATE_NOTES, vocab_size=2048, labels=["1679004"])
    tokens = tokenizer.tokenize("2 yr Beetal goat, runny nose, diarrhoea, red urine, bottle jaw")
    for word in ("Ġgoat", "ĠBeetal", "Ġrunny", "Ġnose", "Ġdiarrhoea", "Ġurine", "Ġjaw"):
        assert word in tokens, (word, tokens)


def test_labels_stay_single_tokens():
    tokenizer = train_tokenizer(TEMPLATE_NOTES, vocab_size=2048, labels=["1679004", "2260006"])
    assert tokenizer.tokenize("Diagnosed conditions: 2260006")[-1] == "2260006"
