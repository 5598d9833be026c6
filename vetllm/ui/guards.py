"""The edge between users and the core: clear messages out, sensitive details kept in.

`user_facing` turns a `VetLLMError` into a `gr.Error` with the same message and any other
exception into a generic message (its traceback goes to the server log, without the exception
text, which could quote a clinical note). `clean_note` enforces the note rules on the server,
and `discard_upload` deletes an uploaded file from gradio's cache once it has been read.
"""

from __future__ import annotations

import contextlib
import functools
import html
import logging
import os
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr

from vetllm.errors import VetLLMError

LOGGER = logging.getLogger("vetllm.ui")
GENERIC_MESSAGE = (
    "Something went wrong on the server while doing this. Nothing was changed; try again, and if "
    "it keeps happening look at the server log."
)

F = TypeVar("F", bound=Callable[..., Any])


def user_facing(fn: F) -> F:
    """Wrap a handler so users see a clear message for VetLLMError and nothing internal else."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except VetLLMError as error:
            raise gr.Error(as_html(str(error)), duration=30, print_exception=False) from None
        except Exception as error:  # noqa: BLE001 - the edge: nothing internal may reach users
            # Frames only, not the message: it could quote a clinical note or a server path.
            frames = "\n".join(
                f"  {Path(f.filename).name}:{f.lineno} in {f.name}"
                for f in traceback.extract_tb(error.__traceback__)
            )
            LOGGER.error("%s failed with %s\n%s", fn.__name__, type(error).__name__, frames)
            raise gr.Error(GENERIC_MESSAGE, print_exception=False) from None

    return wrapper  # type: ignore[return-value]


def as_html(message: str) -> str:
    """Escape a message for gr.Error (which renders HTML): it may quote user data."""
    return html.escape(message).replace("\n", "<br>")


def clean_note(note: object, max_chars: int) -> str:
    """The note as text, stripped; VetLLMError if it is missing, not text, empty or too long."""
    if note is None:
        raise VetLLMError("note: no text was given. Type or paste a clinical note.")
    if not isinstance(note, str):
        raise VetLLMError(
            f"note: expected text, got a {type(note).__name__}. Send the note as a string."
        )
    text = note.replace("\x00", "").strip()
    if not text:
        raise VetLLMError("note: it is empty. Type or paste a clinical note.")
    if len(text) > max_chars:
        raise VetLLMError(
            f"note: {len(text):,} characters is longer than the limit of {max_chars:,}. "
            "Shorten it to the clinical findings."
        )
    return text


def upload_path(upload: object) -> Path | None:
    """The local path of a gradio upload (a filepath string or a FileData-like object)."""
    if upload is None:
        return None
    if isinstance(upload, (str, os.PathLike)):
        return Path(upload)
    path = getattr(upload, "path", None) or getattr(upload, "name", None)
    return Path(path) if path else None


def discard_upload(upload: object) -> None:
    """Delete an uploaded file from gradio's cache: it is served to anyone who knows its URL."""
    path = upload_path(upload)
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()
