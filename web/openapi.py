"""The OpenAPI 3.1 description of every route (served at /openapi.json, rendered at /docs)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _op(summary: str, responses: dict[str, str], *, body: dict[str, Any] | None = None,
        security: str | None = None, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {
        code: ({"description": text, **_json(_ERROR)} if code[0] == "4" else {"description": text})
        for code, text in responses.items()
    }}
    if body is not None:
        op["requestBody"] = {"required": True, **_json(body)}
    if security:
        op["security"] = [{security: []}]
    if params:
        op["parameters"] = params
    return op


def _path_params(*names: str) -> list[dict[str, Any]]:
    return [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names]


_MEMBER = {"type": "object", "required": ["name"], "additionalProperties": False, "properties": {
    "name": {"type": "string", "maxLength": 100},
    "phone": {"type": "string", "pattern": r"^\+[1-9][0-9]{6,14}$"},
    "email": {"type": "string", "format": "email"},
}}
_NEW_CARD = {"type": "object", "required": ["program", "account", "member"], "additionalProperties": False,
             "properties": {
                 "program": {"type": "string"}, "account": {"type": "string", "maxLength": 128},
                 "member": _MEMBER, "balance": {"type": "integer", "minimum": 0},
                 "tier": {"type": "string"}, "locale": {"type": "string", "enum": ["ru", "en"]},
             }}
_EVENT = {"type": "object", "required": ["id", "version", "balance"], "properties": {
    "id": {"type": "string", "maxLength": 128}, "card": {"type": "string", "pattern": "^[0-9]{16}$"},
    "account": {"type": "string"}, "version": {"type": "integer", "minimum": 1}, "balance": {"type": "integer"},
    "tier": {"type": "string"}, "pending": {"type": "integer", "minimum": 0},
    "expiring": {"type": "object", "properties": {"points": {"type": "integer"}, "date": {"type": "string", "format": "date"}}},
    "message": {"type": "string", "maxLength": 500}, "occurred_at": {"type": "string", "format": "date-time"},
}}


@lru_cache(maxsize=4)
def openapi_document(public_url: str) -> dict[str, Any]:
    registration = "/passkit/v1/devices/{deviceLibraryIdentifier}/registrations/{passTypeIdentifier}/{serialNumber}"
    return {
        "openapi": "3.1.0",
        "info": {"title": "Wallet pass and push service", "version": "1.0.0"},
        "servers": [{"url": public_url}],
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "role:key from WALLET_API_KEYS"},
                "applePass": {"type": "apiKey", "in": "header", "name": "Authorization",
                              "description": "ApplePass <authenticationToken>"},
                "ledgerSignature": {"type": "apiKey", "in": "header", "name": "X-Wallet-Signature",
                                    "description": 't=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>'},
            },
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"}}}}},
                "NewCard": _NEW_CARD,
                "LedgerEvent": _EVENT,
            },
        },
        "paths": {
            "/v1/cards": {"post": _op("Issue a card (idempotent per account)", {
                "201": "issued", "200": "the account's existing card", "400": "invalid input",
                "401": "no or unknown key", "403": "wrong role", "404": "unknown program",
                "409": "account has a card in another program", "413": "body over 1 MiB"},
                body={"$ref": "#/components/schemas/NewCard"}, security="apiKey")},
            "/v1/cards/{card}": {"get": _op("Current card state", {"200": "state", "401": "no key", "403": "wrong role", "404": "unknown card"},
                                            security="apiKey", params=_path_params("card"))},
            "/v1/passes/{serial}.pkpass": {"get": _op("Signed .pkpass download (signed, expiring link)", {
                "200": "application/vnd.apple.pkpass", "404": "invalid or expired link"}, params=_path_params("serial"))},
            "/c/{serial}": {"get": _op("Card page for the member (signed, expiring link)", {"200": "HTML", "404": "invalid or expired link"},
                                       params=_path_params("serial"))},
            "/v1/programs": {"get": _op("Programs and their tiers", {"200": "list"})},
            "/v1/ledger/events": {"post": _op("Balance/tier changes from the ledger", {
                "202": "per-id outcome lists: accepted, duplicate, stale, unknown, invalid", "400": "malformed body",
                "401": "bad signature or timestamp", "413": "body over 1 MiB or more than 1000 events"},
                body={"type": "object", "required": ["events"], "properties": {"events": {
                    "type": "array", "maxItems": 1000, "items": {"$ref": "#/components/schemas/LedgerEvent"}}}},
                security="ledgerSignature")},
            registration: {
                "post": _op("Register a device for pass updates", {"201": "registered", "200": "already registered (push token updated)",
                                                                   "400": "malformed", "401": "not authorized"},
                            body={"type": "object", "required": ["pushToken"], "properties": {"pushToken": {"type": "string"}}},
                            security="applePass", params=_path_params("deviceLibraryIdentifier", "passTypeIdentifier", "serialNumber")),
                "delete": _op("Unregister a device", {"200": "unregistered", "401": "not authorized"}, security="applePass",
                              params=_path_params("deviceLibraryIdentifier", "passTypeIdentifier", "serialNumber")),
            },
            "/passkit/v1/devices/{deviceLibraryIdentifier}/registrations/{passTypeIdentifier}": {"get": _op(
                "Serial numbers of the device's passes changed since a tag", {"200": "serialNumbers and lastUpdated (string)", "204": "none"},
                params=_path_params("deviceLibraryIdentifier", "passTypeIdentifier")
                + [{"name": "passesUpdatedSince", "in": "query", "required": False, "schema": {"type": "string"}}])},
            "/passkit/v1/passes/{passTypeIdentifier}/{serialNumber}": {"get": _op(
                "The latest signed pass", {"200": "application/vnd.apple.pkpass with Last-Modified", "304": "not modified", "401": "not authorized"},
                security="applePass", params=_path_params("passTypeIdentifier", "serialNumber"))},
            "/passkit/v1/log": {"post": _op("Log messages from Wallet", {"200": "kept"},
                                            body={"type": "object", "properties": {"logs": {"type": "array", "items": {"type": "string"}}}})},
            "/v1/admin/device-logs": {"get": _op("Device log messages, newest first", {"200": "list", "401": "no key", "403": "not admin"}, security="apiKey")},
            "/v1/admin/pushes": {"get": _op("Push journal (dry runs and deliveries)", {"200": "list", "401": "no key", "403": "not admin"}, security="apiKey")},
            "/v1/admin/dead-letters": {"get": _op("Pushes that failed for good", {"200": "list", "401": "no key", "403": "not admin"}, security="apiKey")},
            "/healthz": {"get": _op("Process alive", {"200": "ok"})},
            "/readyz": {"get": _op("Store reachable, certificates valid, days to expiry", {"200": "ready", "503": "not ready"})},
            "/metrics": {"get": _op("Prometheus metrics", {"200": "text exposition format"})},
            "/openapi.json": {"get": _op("This document", {"200": "OpenAPI 3.1"})},
            "/docs": {"get": _op("This document as a page", {"200": "HTML"})},
        },
    }
