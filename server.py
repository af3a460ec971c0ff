"""ASGI entry point (`uvicorn server:app`): settings from the environment, then the app."""

from __future__ import annotations

from config.startup import prepare_or_exit
from web.app import create_app

app = create_app(prepare_or_exit())
