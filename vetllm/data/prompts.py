"""Prompt formatting: the Alpaca template by default, with the response `Diagnosed conditions: ...`.

The same template is used to train, to predict and to evaluate, and it is saved with every run.
The response is the only part the loss is computed on (see the engine).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from vetllm.errors import VetLLMError

DEFAULT_INSTRUCTION = (
    "Analyze the following veterinary clinical note and predict the SNOMED-CT diagnosis codes."
)
ALPACA_TEMPLATE = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
ANSWER_PREFIX = "Diagnosed conditions: "


@dataclass(frozen=True)
class PromptTemplate:
    """How a note becomes a prompt and labels become the target response."""

    template: str = ALPACA_TEMPLATE
    instruction: str = DEFAULT_INSTRUCTION
    answer_prefix: str = ANSWER_PREFIX
    note_prefix: str = "Clinical Note: "

    def __post_init__(self) -> None:
        if "{input}" not in self.template:
            raise VetLLMError("prompt template: it must contain '{input}' where the note goes")

    def format_prompt(self, note: str) -> str:
        """The text the model sees before its answer."""
        text = note if note.startswith(self.note_prefix.strip()) else self.note_prefix + note
        return self.template.replace("{instruction}", self.instruction).replace("{input}", text)

    def format_response(self, labels: list[str] | tuple[str, ...]) -> str:
        """The target answer, without the end-of-sequence token (the engine appends it)."""
        return self.answer_prefix + ", ".join(labels)

    def to_dict(self) -> dict:
        return asdict(self)


ALPACA = PromptTemplate()
