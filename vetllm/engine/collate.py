"""Training data: the configured files, token ids with response-only labels, dynamic padding.

One encoding function serves training and prediction, so the model sees at inference exactly the
token sequence it was trained on: [BOS] + prompt-before-note + note + prompt-after-note, then the
answer + EOS. Loss is computed on the answer and the EOS only (labels -100 on the prompt and on
padding): the prompt is given, not learned, and a trained EOS is what teaches the model to stop
instead of running on into "concatenated codes". When an example is longer than `max_length`,
the note is cut, never the answer or the template text around it.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import TrainerCallback

from vetllm.catalogue import Catalogue
from vetllm.config import TrainConfig
from vetllm.data.prompts import PromptTemplate
from vetllm.data.records import Record
from vetllm.errors import VetLLMError

IGNORE_INDEX = -100  # label value the cross-entropy loss skips


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


def _template_parts(template: PromptTemplate, note: str) -> tuple[str, str, str]:
    """(text before the note, the note as placed, text after it) of one prompt."""
    before, after = template.template.split("{input}", 1)
    full = template.format_prompt(note)
    before = before.replace("{instruction}", template.instruction)
    after = after.replace("{instruction}", template.instruction)
    placed = full[len(before) : len(full) - len(after)]
    return before, placed, after


def encode_prompt(
    tokenizer, template: PromptTemplate, note: str, max_prompt_tokens: int
) -> list[int]:
    """Token ids of the prompt for one note, at most `max_prompt_tokens` (the note is cut)."""
    before, placed, after = _template_parts(template, note)
    head = _ids(tokenizer, before + placed)
    tail = _ids(tokenizer, after)
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    room = max(max_prompt_tokens - len(bos) - len(tail), 1)
    return bos + head[:room] + tail


def _note_span(tokenizer, template: PromptTemplate, note: str, prompt: list[int]) -> list[int]:
    """[start, end) of the note's tokens in an encoded prompt (template tokens excluded)."""
    before, _, after = _template_parts(template, note)
    start = int(tokenizer.bos_token_id is not None) + len(_ids(tokenizer, before.rstrip()))
    end = len(prompt) - len(_ids(tokenizer, after))
    return [min(start, end), end]


def encode_answer(
    tokenizer, template: PromptTemplate, labels: list[str] | tuple[str, ...]
) -> list[int]:
    """Token ids of the target answer followed by EOS."""
    return _ids(tokenizer, template.format_response(labels)) + [tokenizer.eos_token_id]


def encode_record(tokenizer, template: PromptTemplate, record: Record, max_length: int) -> dict:
    """input_ids and labels for one training example (labels -100 on the prompt)."""
    answer = encode_answer(tokenizer, template, record.labels)[: max_length // 2]
    prompt = encode_prompt(tokenizer, template, record.note, max_length - len(answer))
    return {
        "input_ids": prompt + answer,
        "labels": [IGNORE_INDEX] * len(prompt) + answer,
        "note_span": _note_span(tokenizer, template, record.note, prompt),
    }


class EncodedDataset(torch.utils.data.Dataset):
    """Examples tokenized once up front, optionally with note augmentation for training.

    `note_token_dropout` removes each token of the note with that probability (word dropout: a
    regulariser for small models that would otherwise learn the exact wording of repeated
    template notes). `segment_shuffle` is the chance that the note's comma-separated parts after
    the first are put in a random order (signs listed as "A, B, and C" say the same in any
    order; measured: +1 point mean lenient accuracy on source-like data, `vetllm bench
    accuracy`). Both are drawn anew in every epoch; the template and the answer are never
    touched. The draws depend only on (seed, epoch, example), so a resumed run sees the same
    tokens as an uninterrupted one; `epoch` is kept current by DropoutEpochCallback.
    """

    def __init__(
        self,
        examples: Sequence[dict],
        note_token_dropout: float = 0.0,
        seed: int = 0,
        segment_shuffle: float = 0.0,
        separator_ids: frozenset[int] = frozenset(),
    ):
        self.examples = examples  # a list, or the datasets.Dataset that encode_records mapped
        self.tokenize_seconds, self.from_cache = 0.0, False  # set by encode_records
        self.note_token_dropout = note_token_dropout
        self.segment_shuffle = segment_shuffle
        self.separator_ids = separator_ids  # tokens that end a note part (those holding a comma)
        self.seed, self.epoch = seed, 0

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict:
        example = self.examples[index]
        if not self.note_token_dropout and not self.segment_shuffle:
            return example
        ids, labels = example["input_ids"], example["labels"]
        start, end = example["note_span"]
        rng = random.Random(f"{self.seed}-{self.epoch}-{index}")  # str seeds hash stably
        note = list(range(start, end))
        if self.segment_shuffle and rng.random() < self.segment_shuffle:
            note = _shuffled_parts(note, ids, self.separator_ids, rng)
        if self.note_token_dropout:
            note = [i for i in note if rng.random() >= self.note_token_dropout]
        order = [*range(start), *note, *range(end, len(ids))]
        return {"input_ids": [ids[i] for i in order], "labels": [labels[i] for i in order]}


def _shuffled_parts(positions: list[int], ids, separators, rng: random.Random) -> list[int]:
    """The note's positions with its parts after the first (each ending at a separator token)
    in a random order; the first part (species, opening words) stays first."""
    parts, current = [], []
    for i in positions:
        current.append(i)
        if ids[i] in separators:
            parts.append(current)
            current = []
    if current:
        parts.append(current)
    rest = parts[1:]
    rng.shuffle(rest)
    return [i for part in parts[:1] + rest for i in part]


def separator_ids(tokenizer) -> frozenset[int]:
    """Token ids that hold a comma: where one listed sign ends and the next begins."""
    return frozenset(i for token, i in tokenizer.get_vocab().items() if "," in token)


class DropoutEpochCallback(TrainerCallback):
    """Tells the training set which epoch is drawn, so note-token dropout is a function of the
    epoch (the Trainer calls on_epoch_begin for a resumed epoch too, with its epoch restored)."""

    def __init__(self, dataset: EncodedDataset):
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.dataset.epoch = int(state.epoch + 1e-6)  # 2.0 at the start of the third epoch


def encode_records(
    tokenizer,
    template: PromptTemplate,
    records: list[Record],
    max_length: int,
    note_token_dropout: float = 0.0,
    seed: int = 0,
    cache_dir: Path | None = None,
    segment_shuffle: float = 0.0,
) -> EncodedDataset:
    """Tokenize records through `datasets.Dataset.map`, reusing the cache of an earlier run.

    The dataset's `tokenize_seconds` and `from_cache` say what this call cost and whether the
    cache answered. Without the `datasets` package the records are tokenized in place (same
    encoding, no cache).
    """
    started = time.perf_counter()
    examples, from_cache = _tokenize(tokenizer, template, records, max_length, cache_dir)
    separators = separator_ids(tokenizer) if segment_shuffle else frozenset()
    dataset = EncodedDataset(examples, note_token_dropout, seed, segment_shuffle, separators)
    dataset.tokenize_seconds, dataset.from_cache = time.perf_counter() - started, from_cache
    return dataset


# The encoding code is part of every cache key: after any change to this file, tokenizations
# cached by the older code are never read (a stale cache would silently train on old examples).
ENCODING_VERSION = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def _tokenize(tokenizer, template, records, max_length, cache_dir) -> tuple[object, bool]:
    try:
        import datasets
    except ImportError:  # the GPU image may lack it: same examples, tokenized now, no cache
        return [encode_record(tokenizer, template, r, max_length) for r in records], False
    if not records:
        return [], False
    key = _cache_key(tokenizer, template, records, max_length)
    folder = Path(cache_dir or Path(datasets.config.HF_DATASETS_CACHE) / "vetllm-tokenized")
    folder.mkdir(parents=True, exist_ok=True)
    cache_file = folder / f"tokenized-{key}.arrow"
    from_cache = cache_file.is_file()
    rows = datasets.Dataset.from_dict(
        {"note": [r.note for r in records], "answer": [list(r.labels) for r in records]}
    )

    def encode(row: dict) -> dict:
        return encode_record(
            tokenizer, template, Record(row["note"], tuple(row["answer"])), max_length
        )

    datasets.disable_progress_bars()  # the run log gets one line, not a progress bar
    mapped = rows.map(
        encode,
        remove_columns=rows.column_names,
        cache_file_name=str(cache_file),
        load_from_cache_file=True,
        new_fingerprint=key,  # ours: datasets would otherwise hash the tokenizer with dill
    )
    return mapped, from_cache


def _cache_key(tokenizer, template: PromptTemplate, records: list[Record], max_length: int) -> str:
    """Everything the encoded examples depend on: code version, tokenizer, prompt, data."""
    digest = hashlib.sha256(f"{ENCODING_VERSION}|{max_length}|{template!r}".encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    vocabulary = (
        backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    )
    special = (tokenizer.bos_token_id, tokenizer.eos_token_id, type(tokenizer).__name__)
    digest.update(f"{special}|{vocabulary}".encode())
    for record in records:
        digest.update(f"\x1e{record.note}\x1f{chr(31).join(record.labels)}".encode())
    return digest.hexdigest()[:32]


@dataclass
class ResponseOnlyCollator:
    """Pads each batch to its longest example (right side), labels padded with -100.

    This is what `transformers.DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)` does
    for a right-padding tokenizer (tests/test_collate_datasets.py checks they agree), but it pads
    on the right whatever the tokenizer's `padding_side` (hub chat tokenizers often say "left",
    which Predictor uses for batched generation) and needs only the pad id, not the tokenizer.
    """

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        longest = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            step = self.pad_to_multiple_of
            longest = (longest + step - 1) // step * step
        input_ids, labels, attention = [], [], []
        for feature in features:
            pad = longest - len(feature["input_ids"])
            input_ids.append(list(feature["input_ids"]) + [self.pad_token_id] * pad)
            labels.append(list(feature["labels"]) + [IGNORE_INDEX] * pad)
            attention.append([1] * len(feature["input_ids"]) + [0] * pad)
        return {
            "input_ids": torch.tensor(input_ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "attention_mask": torch.tensor(attention, dtype=torch.long),
        }


# -- the configured data files ----------------------------------------------------------------
def load_training_data(cfg: TrainConfig, catalogue: Catalogue):
    """(train records, validation records, {role: {name, sha256}}); bad rows reject the file."""
    from vetllm.data.hf_datasets import is_hub_source
    from vetllm.data.loading import load_dataset_file

    train_path, val_path = cfg.data_paths()
    files, loaded = {}, {}
    for role, path in (("data", train_path), ("val_data", val_path)):
        if path is None:
            continue
        hub = is_hub_source(path)  # hub:user/name[:split]: no file to check or hash
        if not hub and not path.is_file():
            raise VetLLMError(f"{role}: file {path.name!r} not found; give an existing data file")
        loaded[role] = load_dataset_file(path, on_error="reject", catalogue=catalogue).records
        files[role] = {
            "name": str(path) if hub else path.name,
            "sha256": None if hub else _sha256(path),
            "records": len(loaded[role]),
        }
    if not loaded["data"]:
        raise VetLLMError(f"data: {train_path.name} holds no usable records")
    return loaded["data"], loaded.get("val_data", []), files


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
