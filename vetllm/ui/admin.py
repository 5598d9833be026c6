"""Admin access in the page: one password field at the top, unlocked once per browser session.

In a public app (shared, hosted or on the network) the actions that start work or change server
files need the admin password. The page has one "Admin" field for it (no field per tab);
`unlock` checks it and enables the admin buttons, and every admin handler checks it again
(`check_admin`), because private events are hidden, not unreachable.
"""

from __future__ import annotations

import gradio as gr

from vetllm.errors import VetLLMError
from vetllm.ui.guards import user_facing
from vetllm.ui.settings import AppSettings

UNLOCK_HINT = "type it in 'Admin password' at the top of the page and press Unlock"


def check_admin(settings: AppSettings, password: str | None, action: str) -> None:
    """VetLLMError unless `action` is allowed; an empty password asks for it instead of
    calling it wrong."""
    if settings.public and settings.admin_password and not (password or "").strip():
        raise VetLLMError(f"{action} needs the admin password: {UNLOCK_HINT}.")
    settings.require_admin(password, action)


def make_unlock(settings: AppSettings, buttons: int):
    """A handler: check the password, then enable `buttons` admin buttons and say so."""

    @user_facing
    def unlock(password: str | None):
        check_admin(settings, password, "unlocking admin actions")
        message = "Admin actions unlocked for this browser session."
        return (message, *[gr.Button(interactive=True) for _ in range(buttons)])

    return unlock


def is_unlocked(settings: AppSettings, password: str | None) -> bool:
    """True when admin actions are allowed with this password (always, in a local app)."""
    try:
        check_admin(settings, password, "admin actions")
    except VetLLMError:
        return False
    return True
