"""ASGI entry point (`uvicorn server:app`): settings from the environment, then the app."""

from __future__ import annotations

import sys

from config.settings import ConfigError, load_settings
from config.startup import prepare
from web.app import create_app


def _prepared():
    try:
        return prepare(load_settings())
    except ConfigError as exc:
        print("wallet service cannot start:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        raise SystemExit(1) from None


app = create_app(_prepared())
