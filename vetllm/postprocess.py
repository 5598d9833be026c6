"""From raw generated text to catalogue labels, with every repair listed.

A model answers `Diagnosed conditions: 198462004`. Real generations are messier: codes run
together without separators ("1679004198462004"), the answer goes on past the end-of-sequence
marker, disease names replace codes, codes repeat. `postprocess` takes the answer span, finds
digit runs and splits each one into catalogue codes by dynamic programming over the whole run
(so the 9-digit 198462004 survives, unlike fixed 8-digit chunks), maps disease names on word
boundaries ("appropriate" is not PPR), recognises `local:<key>` labels, deduplicates, and says
what it repaired. `strict_codes` is set only when the span already was a clean list of catalogue
labels, which is what strict accuracy scores.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from vetllm.catalogue import LOCAL_PREFIX, Catalogue, load_catalogue
from vetllm.errors import VetLLMError

ANSWER_MARKER = "Diagnosed conditions:"
RESPONSE_MARKER = "### Response:"
# End-of-sequence strings of common tokenizers (Llama/Alpaca, ChatML, GPT-2, Llama 3, Gemma, Phi).
EOS_MARKERS = (
    "</s>",
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "<eos>",
    "<|end|>",
)
_SPAN_END = re.compile("|".join([r"\r?\n"] + [re.escape(m) for m in EOS_MARKERS]))
_ANSWER_MARKER = re.compile(re.escape(ANSWER_MARKER), re.I)
_LOCAL_LABEL = re.compile(re.escape(LOCAL_PREFIX) + r"[A-Za-z0-9_-]+", re.I)
_DIGIT_RUN = re.compile(r"\d+")
_ITEM_SEPARATOR = re.compile(r"[,;]")
_SHOWN_CHARS = 40  # longest digit string quoted in full in a repair message


@dataclass(frozen=True)
class PostprocessResult:
    """What a raw generation means in catalogue labels.

    `codes`: catalogue labels found, deduplicated, in order of appearance. `answer_span`: the text
    the codes were read from. `unknown_codes`: digit strings (or `local:` labels) that are not in
    the catalogue. `repairs`: what had to be fixed to get `codes`. `strict_codes`: the labels
    when the span is exactly a list of distinct catalogue labels separated by `,` or `;`
    (whitespace allowed), otherwise None. `notes`: facts that are not repairs (no answer prefix,
    text ignored after the span).
    """

    codes: list[str]
    answer_span: str
    unknown_codes: list[str]
    repairs: list[str]
    strict_codes: list[str] | None
    notes: list[str] = field(default_factory=list)

    @property
    def format_valid(self) -> bool:
        return self.strict_codes is not None

    def to_dict(self) -> dict:
        out = asdict(self)
        out["format_valid"] = self.format_valid
        return out


def extract_answer_span(text: str) -> tuple[str, list[str]]:
    """The answer part of a generation, and notes on what was cut away.

    The span starts after the first `Diagnosed conditions:` (any case; a model that never
    stops may repeat it for made-up notes later) or, without one, after `### Response:` when
    the prompt is echoed; it ends at the first newline or end-of-sequence string.
    """
    notes = []
    marker = _ANSWER_MARKER.search(text)
    if marker:
        rest = text[marker.end() :]
    else:
        notes.append(f"no '{ANSWER_MARKER}' prefix; read the answer from the start")
        response = text.find(RESPONSE_MARKER)
        rest = text[response + len(RESPONSE_MARKER) :] if response >= 0 else text
    rest = rest.lstrip()
    end = _SPAN_END.search(rest)
    if end is None:
        return rest.strip(), notes
    trailing = _SPAN_END.sub("", rest[end.start() :]).strip()
    if trailing:
        notes.append(f"ignored {len(trailing)} characters after the answer span")
    return rest[: end.start()].strip(), notes


def parse_strict(span: str, catalogue: Catalogue) -> list[str] | None:
    """The labels if `span` is exactly a list of distinct catalogue labels, else None."""
    items = [item.strip() for item in _ITEM_SEPARATOR.split(span)]
    if any(catalogue.by_label(item) is None for item in items):
        return None  # also catches empty items: "1679004," or an empty span
    if len(set(items)) != len(items):
        return None  # repeats need a repair (deduplication), so they are not strict
    return items


def split_digit_run(run: str, codes: set[str]) -> list[tuple[str, bool]]:
    """Split a digit run into catalogue codes and leftover pieces, as (piece, is_code) pairs.

    Dynamic programming over the whole run: cover as many digits with codes as possible, then
    use the fewest pieces. State = (position, whether the last piece is a leftover), so a
    leftover stretch of any length counts as one piece. Linear in the run length.
    """
    lengths = sorted({len(c) for c in codes})
    n = len(run)
    worst = (n + 1, n + 1)
    # best[i][k]: (uncovered digits, pieces) for run[:i], k=1 when run[:i] ends in a leftover
    best = [[worst, worst] for _ in range(n + 1)]
    back: list[list[tuple[int, int] | None]] = [[None, None] for _ in range(n + 1)]
    best[0][0] = (0, 0)
    for i in range(n):
        for k in (0, 1):
            uncovered, pieces = best[i][k]
            if (uncovered, pieces) == worst:
                continue
            for length in (x for x in lengths if i + x <= n):
                if run[i : i + length] in codes and (uncovered, pieces + 1) < best[i + length][0]:
                    best[i + length][0] = (uncovered, pieces + 1)
                    back[i + length][0] = (i, k)
            step = (uncovered + 1, pieces + (0 if k else 1))
            if step < best[i + 1][1]:
                best[i + 1][1] = step
                back[i + 1][1] = (i, k)
    k = 0 if best[n][0] <= best[n][1] else 1
    return _trace_pieces(run, back, k)


def _trace_pieces(run: str, back: list, k: int) -> list[tuple[str, bool]]:
    pieces: list[tuple[str, bool]] = []
    i = len(run)
    while i > 0:
        previous, previous_k = back[i][k]
        if k == 0:
            pieces.append((run[previous:i], True))
        elif pieces and not pieces[-1][1]:
            pieces[-1] = (run[previous:i] + pieces[-1][0], False)
        else:
            pieces.append((run[previous:i], False))
        i, k = previous, previous_k
    pieces.reverse()
    return pieces


def postprocess(text: str, catalogue: Catalogue | None = None) -> PostprocessResult:
    """Read catalogue labels from a raw generation; see the module docstring."""
    if not isinstance(text, str):
        raise VetLLMError(
            f"postprocess: the model output must be text, got {type(text).__name__}; "
            "pass the generated string"
        )
    catalogue = catalogue or load_catalogue()
    span, notes = extract_answer_span(text)
    found: list[tuple[int, str]] = []  # (position in span, label)
    unknown: list[str] = []
    repairs: list[str] = []
    local_spans = _read_local_labels(span, catalogue, found, unknown, repairs)
    _read_digit_runs(span, catalogue, local_spans, found, unknown, repairs)
    _read_names(span, catalogue, local_spans, found, repairs)
    found.sort(key=lambda item: item[0])
    codes = list(dict.fromkeys(label for _, label in found))
    repeated = [label for label in codes if sum(1 for _, x in found if x == label) > 1]
    if repeated:
        repairs.append("dropped repeated " + ", ".join(repeated))
    strict = parse_strict(span, catalogue)
    if strict is None and span and not repairs:
        repairs.append("the answer is not a plain list of catalogue labels separated by ','")
    if not span:
        notes.append("empty answer")
    return PostprocessResult(codes, span, list(dict.fromkeys(unknown)), repairs, strict, notes)


def _read_local_labels(span, catalogue, found, unknown, repairs) -> list[tuple[int, int]]:
    spans = []
    for match in _LOCAL_LABEL.finditer(span):
        spans.append(match.span())
        written = match.group(0)
        disease = catalogue.by_label(written) or catalogue.by_label(written.lower())
        if disease is None:
            unknown.append(written)
            repairs.append(f"ignored {written}: not a catalogue label")
            continue
        if written != disease.label:
            repairs.append(f"read {written} as {disease.label}")
        found.append((match.start(), disease.label))
    return spans


def _read_digit_runs(span, catalogue, local_spans, found, unknown, repairs) -> None:
    codes = {d.code for d in catalogue.diseases if d.code}
    for match in _DIGIT_RUN.finditer(span):
        if any(start <= match.start() < end for start, end in local_spans):
            continue  # digits inside a local:<key> label belong to that label
        run = match.group(0)
        if run in codes:
            found.append((match.start(), run))
            continue
        pieces = split_digit_run(run, codes)
        known = [piece for piece, is_code in pieces if is_code]
        leftover = [piece for piece, is_code in pieces if not is_code]
        offset = match.start()
        for piece, is_code in pieces:
            if is_code:
                found.append((offset, piece))
            offset += len(piece)
        unknown.extend(leftover)
        if known and not leftover:
            repairs.append(f"split {_shorten(run)} into {_join_pieces(known)}")
        elif known:
            rest = _join_pieces(leftover, ", ")
            repairs.append(f"split {_shorten(run)} into {_join_pieces(known)}; ignored {rest}")
        else:
            repairs.append(f"ignored {_shorten(run)}: not a catalogue code")


def _join_pieces(pieces: list[str], separator: str = " + ", shown: int = 6) -> str:
    """At most `shown` pieces, then a count: a looping model can emit thousands."""
    text = separator.join(_shorten(piece) for piece in pieces[:shown])
    return text + (f" ... ({len(pieces)} pieces in all)" if len(pieces) > shown else "")


def _shorten(digits: str) -> str:
    return digits if len(digits) <= _SHOWN_CHARS else digits[:_SHOWN_CHARS] + "..."


def _read_names(span, catalogue, local_spans, found, repairs) -> None:
    mapped: dict[tuple[str, str], int] = {}  # (text as written, label) -> times seen
    for mention in catalogue.find_mentions(span):
        if any(start <= mention.start < end for start, end in local_spans):
            continue  # "foot-rot" inside "local:foot-rot" was read already
        found.append((mention.start, mention.disease.label))
        key = (mention.text, mention.disease.label)
        mapped[key] = mapped.get(key, 0) + 1
    for (text, label), times in mapped.items():
        name = catalogue.by_label(label).name
        suffix = f" ({times} times)" if times > 1 else ""
        repairs.append(f"mapped the name '{text}' to {label} ({name}){suffix}")
