"""Process-wide logging, set once by each entry point (`server.py`, `python -m cli serve|worker`).

One format, one handler on the root logger writing to stderr. Our loggers are named by `__name__`
(`push.worker`, `web.cards`, ...) and propagate to the root, so they log at the chosen level. A few
libraries are pinned at WARNING because below it they write per request or per frame, some of it
secret: aioapns logs raw HTTP/2 frames at DEBUG and pool churn at INFO, hpack decoded headers
(APNs bearer tokens) at DEBUG, httpx every request at INFO, and urllib3 and google.auth (FCM) every
request at DEBUG.
"""

from __future__ import annotations

import logging
import logging.config
from typing import Any

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

NOISY_LIBRARIES = ("aioapns", "hpack", "httpx", "httpcore", "urllib3", "google.auth")

_UVICORN_TRACE = 5


def configure_logging(level: str | int = "INFO") -> None:
    """Replace whatever logging setup the process has with ours; calling it again does not stack handlers.

    `level` is a level name in any case (`"info"`, as the CLI's `--log-level` spells it) or a number.
    """
    if isinstance(level, str):
        level = level.upper()
        if level == "TRACE" and "TRACE" not in logging.getLevelNamesMapping():
            # `cli serve --log-level trace` is uvicorn's level 5, whose name uvicorn registers only once it runs
            logging.addLevelName(_UVICORN_TRACE, "TRACE")
    config: dict[str, Any] = {
        "version": 1,
        # modules create their loggers at import, before this runs; disabling them would mute our own
        "disable_existing_loggers": False,
        "formatters": {"default": {"format": FORMAT}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"},
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            # under `uvicorn server:app` uvicorn has given its logger a handler of its own and propagate=False;
            # undo both so the server's lines reach the root handler in our format (its access log keeps its own)
            "uvicorn": {"handlers": [], "propagate": True},
            # no access log, however uvicorn was started: request paths hold serials and signed
            # links (their `sig` lets anyone download the pass), which logs must not keep
            "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
            **{name: {"level": "WARNING"} for name in NOISY_LIBRARIES},
        },
    }
    logging.config.dictConfig(config)
