"""The edge between users and the core: clear messages out, sensitive details kept in.

`user_facing` turns a `VetLLMError` into a `gr.Error` with the same message and any other
exception into a generic message (its traceback goes to the server log, without the exception
text, which could quote a clinical note). `clean_note` enforces the note rules on the server,
`discard_upload` deletes an uploaded file from gradio's cache once it has been read, and
`write_temp_file` hands files to download buttons without leaving copies behind.
`one_per_client` lets each client run one call of a handler at a time, `redact_traceback` keeps
traceback frames out of log tails shown to anonymous users and `start_upload_sweeper` deletes
uploads nobody checked.
"""

from __future__ import annotations

import contextlib
import functools
import html
import logging
import os
import re
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr

from vetllm.data.validation import kind_of, normalise_note_text
from vetllm.errors import VetLLMError
from vetllm.ui.throttle import OneAtATime, current_client

LOGGER = logging.getLogger("vetllm.ui")
GENERIC_MESSAGE = (
    "Something went wrong on the server while doing this. Nothing was changed; try again, and if "
    "it keeps happening look at the server log."
)

F = TypeVar("F", bound=Callable[..., Any])
_SURROGATE = re.compile("[\ud800-\udfff]")  # only reachable through JSON "\\udXXX" escapes
UPLOAD_CHOICE = "Upload a file"  # the data-source radios' upload option (Train, Predict tabs)
TEMP_FILE_TTL_S = 600  # gradio copies a returned file into its cache at once; ours can go
_TEMP_FOLDER: Path | None = None


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
    # quote=False: quotes are safe in text, and API clients then read "it's", not "it&#x27;s"
    return html.escape(message, quote=False).replace("\n", "<br>")


def clean_note(note: object, max_chars: int) -> str:
    """The note as text, cleaned as training notes are (invisible characters removed, control
    characters made spaces) and stripped; VetLLMError if missing, not text, empty or too long."""
    if note is None:
        raise VetLLMError("note: no text was given. Type or paste a clinical note.")
    if not isinstance(note, str):
        raise VetLLMError(f"note: expected text, got {kind_of(note)}. Send the note as a string.")
    surrogate = _SURROGATE.search(note)
    if surrogate:
        raise VetLLMError(
            f"note: character {surrogate.start() + 1:,} is a lone UTF-16 surrogate "
            f"(U+{ord(surrogate.group()):04X}), which is not text. Send the note as valid Unicode."
        )
    text = normalise_note_text(note)  # as training notes were cleaned
    if not text:
        raise VetLLMError(
            "note: it is empty (nothing but spaces or invisible characters). "
            "Type or paste a clinical note."
        )
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


def write_temp_file(text: str, name: str) -> str:
    """Write `text` to a file for a download and return its path.

    Gradio copies a returned file into its own cache (which `delete_cache` empties), so this copy
    is needed only for a moment: files older than TEMP_FILE_TTL_S in the app's folder are deleted
    on each call, so prediction CSVs (which quote clinical notes) do not pile up in /tmp.
    """
    global _TEMP_FOLDER
    if _TEMP_FOLDER is None or not _TEMP_FOLDER.is_dir():
        _TEMP_FOLDER = Path(tempfile.mkdtemp(prefix="vetllm-ui-"))
    cutoff = time.time() - TEMP_FILE_TTL_S
    for old in _TEMP_FOLDER.glob("*/*"):
        with contextlib.suppress(OSError):
            if old.stat().st_mtime < cutoff:
                old.unlink()
                old.parent.rmdir()
    folder = Path(tempfile.mkdtemp(dir=_TEMP_FOLDER))  # own folder: the file keeps its name
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def one_per_client(what: str) -> Callable[[F], F]:
    """Decorate a handler so each client runs one call of it at a time (a second is refused)."""
    gate = OneAtATime(what)

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            client = current_client()
            gate.enter(client)
            try:
                return fn(*args, **kwargs)
            finally:
                gate.leave(client)

        return wrapper  # type: ignore[return-value]

    return decorate


_FRAME = re.compile(r'^\s+File "')


def redact_traceback(text: str) -> str:
    """A log tail without traceback frames and source lines; the exception line is kept."""
    kept, in_traceback = [], False
    for line in text.splitlines():
        if line.startswith("Traceback (most recent call last)"):
            in_traceback = True
            kept.append("Traceback (frames hidden; the full log is on the server)")
            continue
        if in_traceback and (line.startswith((" ", "\t")) or _FRAME.match(line)):
            continue  # a frame, its source line or a ^^^ marker
        in_traceback = False
        if line.startswith("During handling of the above exception"):
            continue
        kept.append(line)
    return "\n".join(kept)


def sweep_uploads(blocks: object, max_age_s: float) -> int:
    """Delete uploaded files older than `max_age_s` seconds; returns how many were deleted.

    Gradio keeps every upload in `blocks.upload_file_set` and serves it at /gradio_api/file=
    until its own cache clean-up (an hour here); a check deletes its file at once, so what is
    left this long was never checked.
    """
    uploads = getattr(blocks, "upload_file_set", None)
    if not uploads:
        return 0
    cutoff, deleted = time.time() - max_age_s, 0
    for name in list(uploads):  # a copy: uploads arrive while this runs
        try:
            if os.lstat(name).st_mtime >= cutoff:
                continue
            os.unlink(name)
            deleted += 1
        except FileNotFoundError:
            pass  # already deleted by a check: just forget it
        except OSError:
            continue
        uploads.discard(name)
    return deleted


def start_upload_sweeper(blocks: object, max_age_s: float) -> threading.Thread:
    """Run `sweep_uploads` every quarter of `max_age_s` in a daemon thread."""

    def loop() -> None:
        while True:
            time.sleep(max(max_age_s / 4, 1.0))
            try:
                sweep_uploads(blocks, max_age_s)
            except Exception:  # noqa: BLE001 - the sweeper must outlive one bad pass
                LOGGER.exception("upload sweep failed")

    thread = threading.Thread(target=loop, name="vetllm-upload-sweeper", daemon=True)
    thread.start()
    return thread
