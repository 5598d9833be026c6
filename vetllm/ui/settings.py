"""How the app is served: runs folder, shared/hosted mode, admin password and request limits.

Everything the UI needs to know about its deployment lives in one `AppSettings` object built
once by `app.py`, so handlers never read the environment themselves. In shared (`--share`),
hosted (env `SPACE_ID`) or network (`--host` other than loopback, e.g. 0.0.0.0) mode, actions
that start work or write server files (launch, stop, resume, evaluate) need the admin password
from env `VETLLM_ADMIN_PASSWORD`; without that variable they are disabled there. Prediction stays
open to everyone.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from vetllm.data.validation import MAX_PREDICT_NOTE_CHARS
from vetllm.errors import VetLLMError
from vetllm.runs.directory import default_runs_dir
from vetllm.ui.throttle import PasswordThrottle, current_client

# Keyword arguments of every event the page wires for itself: not an API endpoint nor an MCP
# tool (vetllm.ui.tools lists the public ones).
PRIVATE = {"api_visibility": "private"}
MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # data files; the loader has its own limit as well
# Training/validation data uploads: the suffixes vetllm.data.loading reads (READ_FORMATS).
DATA_FILE_TYPES = [".json", ".jsonl", ".csv", ".parquet"]
# Waiting events of all kinds. 64 predict clients at once (issue 11, item 5) plus page events
# must fit: beyond this gradio answers "queue is full" at once.
QUEUE_MAX_SIZE = 256
# Predictions in flight at once. They wait in vetllm.ui.batching (one model call per batch),
# which answers "busy" at once past its backlog, so no client waits in gradio's queue for them.
PREDICT_CONCURRENCY = 64
POLL_SECONDS = 2.0  # how often the Train tab re-reads the run on disk
# Reliability limits (issue 11): CPU one data check may take, and how long an upload that is
# never checked stays on disk (gradio serves its cache to anyone who knows a file's URL).
CHECK_BUDGET_S = 10.0
UPLOAD_TTL_S = 120.0


@dataclass(frozen=True)
class AppSettings:
    """Deployment facts the UI needs; see the module docstring for the access rules."""

    runs_dir: Path
    shared: bool = False
    hosted: bool = False
    admin_password: str | None = None
    # Longest note accepted, enforced in the handlers (API callers skip the browser).
    max_note_chars: int = MAX_PREDICT_NOTE_CHARS
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    queue_max_size: int = QUEUE_MAX_SIZE
    predict_concurrency: int = PREDICT_CONCURRENCY
    poll_seconds: float = POLL_SECONDS
    bootstrap: bool = True  # train the CPU default on first launch when no run is completed
    # Bound to an interface other than loopback (`--host 0.0.0.0`): the network can reach it.
    network: bool = False
    # Reliability limits (issue 11): see CHECK_BUDGET_S, UPLOAD_TTL_S and vetllm.ui.throttle.
    check_budget_s: float = CHECK_BUDGET_S
    upload_ttl_s: float = UPLOAD_TTL_S
    password_throttle: PasswordThrottle = field(
        default_factory=PasswordThrottle, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "runs_dir", Path(self.runs_dir))

    @classmethod
    def from_env(
        cls,
        runs_dir: str | os.PathLike[str] | None = None,
        share: bool = False,
        host: str | None = None,
        **overrides,
    ) -> AppSettings:
        """Settings from the command line plus the environment (VETLLM_RUNS_DIR, SPACE_ID,
        VETLLM_ADMIN_PASSWORD); a `host` other than loopback counts as public."""
        chosen = runs_dir or default_runs_dir()
        password = os.environ.get("VETLLM_ADMIN_PASSWORD") or None
        return cls(
            runs_dir=Path(chosen).resolve(),
            shared=bool(share),
            hosted=bool(os.environ.get("SPACE_ID")),
            network=host is not None and not is_loopback(host),
            admin_password=password,
            **overrides,
        )

    @property
    def public(self) -> bool:
        """True when people other than the person at this machine can reach the app."""
        return self.shared or self.hosted or self.network

    @property
    def needs_password(self) -> bool:
        return self.public

    @property
    def admin_actions_available(self) -> bool:
        """False when the app is public and no admin password is configured."""
        return not self.public or bool(self.admin_password)

    def require_admin(self, password: str | None, action: str, client: str | None = None) -> None:
        """Raise VetLLMError unless `action` is allowed for someone giving `password`.

        Wrong passwords are throttled per client (default: the current gradio request's) and
        overall; see vetllm.ui.throttle."""
        if not self.public:
            return
        if not self.admin_password:
            raise VetLLMError(
                f"{action} is disabled: this app is shared, hosted or open to the network and no "
                "admin password is "
                "set. Set the environment variable VETLLM_ADMIN_PASSWORD on the server to enable it."
            )
        client = client or current_client()
        self.password_throttle.check_allowed(client)
        given = (password or "").encode("utf-8")
        right = hmac.compare_digest(given, self.admin_password.encode("utf-8"))
        if password:  # an empty field is a forgotten password, not a guess
            self.password_throttle.record(client, right)
        if not right:
            raise VetLLMError(
                f"{action} needs the admin password: the one given in 'Admin password' is wrong."
            )


def is_loopback(host: str) -> bool:
    """True for 'localhost' and loopback addresses (127.0.0.0/8, ::1); False for anything else,
    including 0.0.0.0 (every interface) and names that could resolve elsewhere."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False
