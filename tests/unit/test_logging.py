"""configure_logging: one stderr line per record in one format, our loggers at the level, noisy libraries quiet."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from config.logging import NOISY_LIBRARIES, configure_logging


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    # configure_logging rewires the process's root logger; give the rest of the session back what it had
    touched = [logging.getLogger(name) for name in ("", "uvicorn", *NOISY_LIBRARIES)]
    saved = [(lg, lg.level, lg.handlers[:], lg.propagate) for lg in touched]
    yield
    for lg, level, handlers, propagate in saved:
        lg.setLevel(level)
        lg.handlers[:] = handlers
        lg.propagate = propagate


def test_our_loggers_write_one_line_to_stderr_at_the_level(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info")
    log = logging.getLogger("push.worker")
    log.debug("below the level")
    log.info("sent %d", 3)
    err = capsys.readouterr().err
    assert err.endswith(" INFO push.worker: sent 3\n")
    assert err.count("\n") == 1


def test_calling_again_does_not_stack_handlers(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    configure_logging("INFO")
    logging.getLogger("web.cards").warning("once")
    assert capsys.readouterr().err.count("once") == 1


def test_noisy_libraries_stay_at_warning_even_at_debug(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(logging.DEBUG)
    for name in NOISY_LIBRARIES:
        logging.getLogger(name).info("per request chatter")
    logging.getLogger("aioapns").warning("connection refused")
    logging.getLogger("store.sqlite").debug("ours at debug")
    err = capsys.readouterr().err
    assert "chatter" not in err
    assert "WARNING aioapns: connection refused" in err
    assert "DEBUG store.sqlite: ours at debug" in err


def test_uvicorn_trace_level_is_accepted() -> None:
    configure_logging("trace")
    assert logging.getLogger("web.app").isEnabledFor(5)
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)


def test_uvicorn_logger_is_routed_to_our_handler(capsys: pytest.CaptureFixture[str]) -> None:
    # what `uvicorn server:app` leaves behind before server.py runs: a handler and propagate=False of its own
    uvicorn = logging.getLogger("uvicorn")
    uvicorn.addHandler(logging.NullHandler())
    uvicorn.propagate = False
    configure_logging("INFO")
    logging.getLogger("uvicorn.error").info("Application startup complete.")
    assert "INFO uvicorn.error: Application startup complete." in capsys.readouterr().err


def test_no_access_log_whatever_uvicorn_was_told(capsys: pytest.CaptureFixture[str]) -> None:
    # Paths hold serials and signed links: an access line would put a pass download link in the log.
    configure_logging("INFO")
    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET /v1/passes/s.pkpass?exp=1&sig=secret HTTP/1.1" 200')
    assert "sig=secret" not in capsys.readouterr().err
