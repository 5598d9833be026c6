"""The app's public tools: `predict` and `check_codes`, API endpoints and MCP tools at once.

With the MCP server on (`launch_app`, when the `mcp` package is installed), Gradio lists every
public API endpoint as an MCP tool at /gradio_api/mcp, named after the function and described by
its docstring (the "Args:" lines describe the parameters). These wrappers exist for those names
and descriptions; the work is done by the handlers. Private events (the page's own, the admin
ones) are never tools. A shared or hosted app serves `predict` alone; a local app adds
`check_codes` and `evaluate`.
"""

from __future__ import annotations

import re

from vetllm.catalogue import check_code, load_catalogue
from vetllm.errors import VetLLMError
from vetllm.ui.guards import user_facing
from vetllm.ui.predict_handlers import PredictHandlers

MAX_CODES = 50  # codes per check_codes call: a public endpoint, so its work is bounded


class PublicTools:
    """Bound to the app's PredictHandlers, so tools and page share one model cache."""

    def __init__(self, handlers: PredictHandlers) -> None:
        self.handlers = handlers

    def predict(self, note: str, decoding: str = "free", run: str = "") -> dict:
        """Code one livestock clinical note as SNOMED-CT disease concepts with the served model.

        The note is free text from a veterinary record (species, signs, findings); the answer
        lists the diseases the fine-tuned model reads from it, each with its SNOMED-CT code,
        whether the code is a well-formed identifier, and the model's confidence.

        Args:
            note: the clinical note in English, at most 5,000 characters.
            decoding: "free" (generate, then map to the catalogue) or "constrained" (only
                catalogue diseases can be generated).
            run: a completed run's name; empty for the model the app serves.
        Returns:
            codes (code, name, valid_sctid, confidence), raw_output, repairs, run (the run
            that answered); abstained and reason ("no code: refer to a veterinarian (...)")
            when the model declines to code the note.
        """
        return self.handlers.predict_api(note, decoding, run)

    @user_facing
    def check_codes(self, codes: str) -> list[dict]:
        """Check SNOMED-CT concept identifiers and look them up in the disease catalogue.

        Each code is checked for form (digits, length, partition, Verhoeff check digit) and
        matched against the app's livestock disease catalogue. Disease names or labels are
        accepted too and answered with their catalogue code.

        Args:
            codes: one or more codes or disease names, separated by commas or new lines,
                e.g. "72934000, 409498004".
        Returns:
            one entry per code: code, valid, reason (when invalid), disease and catalogue_label
            (when the catalogue has it), suggested_code (when the catalogue has a better one).
        """
        items = [item.strip() for item in re.split(r"[,\n;]+", str(codes)) if item.strip()]
        if not items:
            raise VetLLMError("codes: give at least one code, e.g. 72934000")
        if len(items) > MAX_CODES:
            raise VetLLMError(f"codes: got {len(items)}; check at most {MAX_CODES} at a time")
        catalogue = load_catalogue()
        return [check_code(item[:40], catalogue) for item in items]
