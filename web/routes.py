"""The route table: every HTTP route of the service, in one place."""

from __future__ import annotations

from starlette.routing import Route

from web import admin, cards, ledger, ops, passkit

REGISTRATION = "/passkit/v1/devices/{device}/registrations/{pass_type}/{serial}"

ROUTES = [
    Route("/v1/cards", cards.create_card, methods=["POST"]),
    Route("/v1/cards/{card}", cards.get_card, methods=["GET"]),
    Route("/v1/passes/{serial}.pkpass", cards.download_pkpass, methods=["GET"]),
    Route("/c/{serial}", cards.card_page, methods=["GET"]),
    Route("/v1/programs", ops.programs, methods=["GET"]),
    Route("/v1/ledger/events", ledger.post_events, methods=["POST"]),
    Route(REGISTRATION, passkit.register, methods=["POST"]),
    Route(REGISTRATION, passkit.unregister, methods=["DELETE"]),
    Route("/passkit/v1/devices/{device}/registrations/{pass_type}", passkit.serials, methods=["GET"]),
    Route("/passkit/v1/passes/{pass_type}/{serial}", passkit.latest_pass, methods=["GET"]),
    Route("/passkit/v1/log", passkit.log, methods=["POST"]),
    Route("/v1/admin/device-logs", admin.device_logs, methods=["GET"]),
    Route("/v1/admin/pushes", admin.pushes, methods=["GET"]),
    Route("/v1/admin/dead-letters", admin.dead_letters, methods=["GET"]),
    Route("/healthz", ops.healthz, methods=["GET"]),
    Route("/readyz", ops.readyz, methods=["GET"]),
    Route("/metrics", ops.metrics, methods=["GET"]),
    Route("/openapi.json", ops.openapi, methods=["GET"]),
    Route("/docs", ops.docs, methods=["GET"]),
]
