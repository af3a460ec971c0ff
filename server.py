"""ASGI entry point (`uvicorn server:app`): settings from the environment, then the app."""

from __future__ import annotations

from config.logging import configure_logging
from config.startup import prepare_or_exit
from web.app import create_app

configure_logging()
app = create_app(prepare_or_exit())
