"""Catalogue extension in the app: an admin uploads a JSON file shaped like catalogue.json.

The file is checked with `vetllm.catalogue.load_catalogue` (every problem named), stored in the
runs folder under a name that includes its content hash (the loader caches by path, so a new
file never reads as the old one) and made active; data checks and new launches then use it,
and the run's config records it, so prediction uses it too. The upload is deleted once read.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from vetllm.errors import VetLLMError
from vetllm.ui import views
from vetllm.ui.admin import check_admin
from vetllm.ui.guards import discard_upload, upload_path, user_facing
from vetllm.ui.settings import AppSettings

FOLDER = ".catalogues"  # in the runs folder; starts with '.', so it is never listed as a run
ACTIVE = "active"  # holds the file name of the extension in use


def active_extension(settings: AppSettings) -> Path | None:
    """The catalogue extension in use, or None for the bundled catalogue alone."""
    folder = settings.runs_dir / FOLDER
    try:
        name = (folder / ACTIVE).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    path = folder / name
    return path if name and path.is_file() else None


def active_catalogue(settings: AppSettings):
    """The Catalogue data checks use: the bundled one plus the active extension."""
    from vetllm.catalogue import load_catalogue

    extension = active_extension(settings)
    return load_catalogue(str(extension) if extension else None)


@user_facing
def add_extension(settings: AppSettings, upload: object, password: str | None) -> str:
    """Check, store and activate an uploaded catalogue extension; a summary of what it adds."""
    from vetllm.catalogue import load_catalogue

    try:
        check_admin(settings, password, "adding a catalogue extension")
        path = upload_path(upload)
        if path is None:
            raise VetLLMError("catalogue: choose a JSON file shaped like catalogue.json first")
        if path.stat().st_size > 1024 * 1024:  # a catalogue is a few KB; 1 MiB is plenty
            raise VetLLMError(f"{path.name}: over 1 MiB; a catalogue extension is a small file")
        text = path.read_text(encoding="utf-8", errors="replace")
        before = {d.key for d in load_catalogue().diseases}
        extended = load_catalogue(str(path))  # raises VetLLMError naming every problem
    finally:
        discard_upload(upload)
    folder = settings.runs_dir / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    name = f"extension-{hashlib.sha256(text.encode()).hexdigest()[:12]}.json"
    (folder / name).write_text(text, encoding="utf-8")
    (folder / ACTIVE).write_text(name, encoding="utf-8")
    added = [d.name for d in extended.diseases if d.key not in before]
    shown = ", ".join(views.cell(n) for n in added) or "no new diseases (variants or codes only)"
    return (
        f"Catalogue extension active ({len(extended.diseases)} diseases in all). Added: {shown}. "
        "Check the data again: new checks and launches use it."
    )
