"""The sender-neutral outcome of one push, so the worker never sees APNs or FCM specifics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PushStatus = Literal["ok", "invalid_token", "retry", "auth_error", "failed"]


@dataclass(frozen=True)
class PushResult:
    """What happened to one push.

    - ``ok``: accepted by the push service.
    - ``invalid_token``: the token is dead; forget it (``timestamp`` is when APNs last saw it
      valid, in seconds, when the service says so).
    - ``retry``: transient (throttled, unavailable, connection trouble); try again later, not
      before ``retry_after`` seconds when the service asked for that.
    - ``auth_error``: our credentials were refused; every push with them will fail the same way.
    - ``failed``: this push can never succeed as built (bad payload, bad topic...).
    """

    status: PushStatus
    reason: str | None = None
    retry_after: float | None = None
    timestamp: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


OK = PushResult("ok")


def token_hint(token: str) -> str:
    """A loggable trace of a device token: a short prefix, never the whole secret-ish value."""
    return f"{token[:6]}…" if len(token) > 6 else "…"
