"""Limits on what one anonymous client can make the server do: password guessing and checks.

`PasswordThrottle` slows admin-password guessing: after a few wrong passwords a client is locked
out for a while (doubling, capped), and a burst of wrong passwords from everyone together locks
every client out briefly. Lockouts always expire, so the right password works again after at
most `max_lockout_s`. `OneAtATime` lets each client run one data check at a time. Clients are
told apart by `current_client()`: the address of the request gradio is serving (its session
when there is none).
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import deque
from collections.abc import Callable

from vetllm.errors import VetLLMError

FREE_TRIES = 5  # wrong passwords a client may send before its first lockout
FIRST_LOCKOUT_S = 30.0  # then 30 s, 60 s, 120 s ... per further wrong password
MAX_LOCKOUT_S = 900.0  # never longer than 15 minutes: the owner is never locked out for good
GLOBAL_WINDOW_S = 60.0  # wrong passwords from all clients are counted over this window
GLOBAL_LIMIT = 30  # more than this many in the window locks every client out ...
GLOBAL_LOCKOUT_S = 60.0  # ... for this long


def current_client() -> str:
    """The client of the gradio request being handled: its address, else its session.

    Behind a reverse proxy (the peer is a private or loopback address, as on Spaces) the client
    is the last X-Forwarded-For entry, the one that proxy added; earlier entries are whatever
    the client sent, so they are never trusted."""
    from gradio.context import LocalContext

    request = LocalContext.request.get(None)
    if request is None:
        return "local"
    host = getattr(getattr(request, "client", None), "host", None)
    forwarded = (getattr(request, "headers", None) or {}).get("x-forwarded-for", "")
    if forwarded and (host is None or _is_private(host)):
        host = forwarded.split(",")[-1].strip() or host
    return host or str(getattr(request, "session_hash", None) or "local")


def _is_private(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_private or address.is_loopback


class PasswordThrottle:
    """Counts wrong admin passwords per client and overall; refuses attempts while locked out."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}
        self._locked_until: dict[str, float] = {}
        self._recent: deque[float] = deque()
        self._global_until = 0.0

    def check_allowed(self, client: str) -> None:
        """Raise VetLLMError while `client` (or everyone) is locked out; the password is not
        even compared then."""
        now = self.clock()
        with self._lock:
            wait = max(self._locked_until.get(client, 0.0), self._global_until) - now
        if wait > 0:
            raise VetLLMError(
                f"admin password: too many wrong passwords; try again in {wait:.0f} s"
            )

    def record(self, client: str, success: bool) -> None:
        """Note the outcome of a comparison; a success clears the client's count."""
        now = self.clock()
        with self._lock:
            if success:
                self._failures.pop(client, None)
                self._locked_until.pop(client, None)
                return
            count = self._failures.get(client, 0) + 1
            self._failures[client] = count
            if count >= FREE_TRIES:
                lockout = min(FIRST_LOCKOUT_S * 2 ** (count - FREE_TRIES), MAX_LOCKOUT_S)
                self._locked_until[client] = now + lockout
            self._recent.append(now)
            while self._recent and self._recent[0] < now - GLOBAL_WINDOW_S:
                self._recent.popleft()
            if len(self._recent) > GLOBAL_LIMIT:
                self._global_until = now + GLOBAL_LOCKOUT_S
                self._recent.clear()
            if len(self._failures) > 10_000:  # bound memory under an address-spraying attack
                self._failures.clear()


class OneAtATime:
    """Per-client exclusion: a second call while the first still runs is refused at once."""

    def __init__(self, what: str):
        self.what = what
        self._busy: set[str] = set()
        self._lock = threading.Lock()

    def enter(self, client: str) -> None:
        with self._lock:
            if client in self._busy:
                raise VetLLMError(
                    f"{self.what}: your previous one is still running; wait for its answer"
                )
            self._busy.add(client)

    def leave(self, client: str) -> None:
        with self._lock:
            self._busy.discard(client)
