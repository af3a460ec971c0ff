"""The OpenAPI 3.1 document (served at /openapi.json, rendered at /docs), written from the app's routes.

Paths, path parameter names and methods come from the Starlette routes themselves; the rest from each
`ApiRoute`'s Operation (web/routing.py) and the body models it names. Enums that depend on the loaded
programs (program names, tiers, locales) come from the programs passed in, so each app documents its own.
Error answers that follow from a route's security or from its taking a JSON body are added here."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from starlette.convertors import Convertor, FloatConvertor, IntegerConvertor, UUIDConvertor
from starlette.routing import BaseRoute, Mount, Route

from passes.programs import Program
from web.routing import ERROR_CODES, ERROR_HEADERS, SECURITY_SCHEMES, ApiRoute, Model, Operation, Param, Reply
from web.validation import Choices

TITLE = "Wallet pass and push service"
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}
_JSON_BODY_ERRORS = {400: ("invalid_json",), 413: ("payload_too_large",)}


def choices_of(programs: Mapping[str, Program]) -> Choices:
    """The enums that depend on the loaded programs: a new program folder changes the document."""
    return {
        "programs": sorted(programs),
        "tiers": sorted({key for program in programs.values() for key in program.tier_keys}),
        "locales": sorted({locale for program in programs.values() for locale in program.locales}),
    }


def openapi_document(routes: Sequence[BaseRoute], programs: Mapping[str, Program], public_url: str) -> dict[str, Any]:
    builder = _Builder(choices_of(programs))
    for prefix, route in _walk(routes):
        builder.add(prefix, route)
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": _version()},
        "servers": [{"url": public_url}],
        "tags": builder.tags(),
        "paths": builder.paths,
        "components": {
            "schemas": {"Error": _ERROR_SCHEMA, **dict(sorted(builder.schemas.items()))},
            "securitySchemes": {name: SECURITY_SCHEMES[name] for name in sorted(builder.schemes)},
        },
    }


def _version() -> str:
    try:
        return version("wallet-service")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "0.0.0"


def _walk(routes: Sequence[BaseRoute], prefix: str = "") -> Iterator[tuple[str, Route]]:
    for route in routes:
        if isinstance(route, Route):
            yield prefix, route
        elif isinstance(route, Mount):
            # a mounted app without routes (static files) has no operations to document
            yield from _walk(route.routes, prefix + route.path_format)


def _path_schema(convertor: Convertor[Any]) -> dict[str, Any]:
    if isinstance(convertor, IntegerConvertor):
        return {"type": "integer", "minimum": 0}
    if isinstance(convertor, FloatConvertor):
        return {"type": "number", "minimum": 0}
    if isinstance(convertor, UUIDConvertor):
        return {"type": "string", "format": "uuid"}
    return {"type": "string"}


class _Builder:
    def __init__(self, choices: Choices) -> None:
        self.choices = choices
        self.paths: dict[str, dict[str, Any]] = {}
        self.schemas: dict[str, dict[str, Any]] = {}
        self.schemes: set[str] = set()
        self._tags: dict[str, str] = {}

    def tags(self) -> list[dict[str, str]]:
        return [{"name": name, "description": text} for name, text in self._tags.items()]

    def add(self, prefix: str, route: Route) -> None:
        path = prefix + route.path_format
        operation = route.operation if isinstance(route, ApiRoute) else None
        # HEAD is answered wherever GET is (Starlette adds it); it is not an operation of its own
        for method in sorted((route.methods or set()) - {"HEAD"}):
            item = self.paths.setdefault(path, {})
            if method.lower() in item:
                raise ValueError(f"{method} {path} is routed twice; the second route can never be reached")
            item[method.lower()] = self._operation(route, operation)

    def _tag(self, route: Route) -> str:
        # the handler's module is the area of the API; its docstring says what the area is
        module = inspect.getmodule(route.endpoint)
        name = route.endpoint.__module__.rsplit(".", 1)[-1]
        if name not in self._tags:
            doc = inspect.getdoc(module) if module is not None else None
            self._tags[name] = " ".join((doc or "").split("\n\n")[0].split())
        return name

    def _operation(self, route: Route, operation: Operation | None) -> dict[str, Any]:
        result: dict[str, Any] = {"operationId": route.name, "tags": [self._tag(route)]}
        if operation is None:
            # a plain Route still gets its path, parameters and methods; tests/web/test_openapi.py fails on it
            result.update(
                summary=route.name,
                responses={"default": {"description": "undocumented"}},
                parameters=self._parameters(route, ()),
            )
            return result
        result["summary"] = operation.summary
        if operation.description:
            result["description"] = operation.description
        parameters = self._parameters(route, operation.params)
        if parameters:
            result["parameters"] = parameters
        if operation.body is not None:
            result["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": self._ref(operation.body)}},
            }
        responses = {str(status): self._reply(reply) for status, reply in sorted(operation.replies.items())}
        for status, codes in sorted(self._errors(operation).items()):
            if str(status) in responses:
                raise ValueError(f"{route.path}: {status} is both an answer and an error")
            responses[str(status)] = _error_reply(codes)
        result["responses"] = responses
        if operation.security is not None:
            self.schemes.add(operation.security.scheme)
            result["security"] = [{operation.security.scheme: list(operation.security.roles)}]
        return result

    def _parameters(self, route: Route, params: Sequence[Param]) -> list[dict[str, Any]]:
        described = {p.name: p for p in params if p.where == "path"}
        result = []
        for name, convertor in route.param_convertors.items():
            param: dict[str, Any] = {"name": name, "in": "path", "required": True, "schema": _path_schema(convertor)}
            if name in described:
                param["schema"] = {**param["schema"], **described[name].schema}
                if described[name].description:
                    param["description"] = described[name].description
            result.append(param)
        for p in params:
            if p.where != "path":
                entry: dict[str, Any] = {"name": p.name, "in": p.where, "required": p.required, "schema": p.schema}
                if p.description:
                    entry["description"] = p.description
                result.append(entry)
        return result

    def _ref(self, model: Model) -> dict[str, str]:
        schema = model.schema(self.choices)
        if self.schemas.setdefault(model.name, schema) != schema:
            raise ValueError(f"two different schemas are named {model.name}")
        return {"$ref": f"#/components/schemas/{model.name}"}

    def _reply(self, reply: Reply) -> dict[str, Any]:
        result: dict[str, Any] = {"description": reply.description}
        if reply.media_type is not None:
            media: dict[str, Any] = {}
            if reply.model is not None:
                media["schema"] = self._ref(reply.model)
            elif reply.media_type.startswith("text/"):
                media["schema"] = {"type": "string"}
            result["content"] = {reply.media_type: media}
            for other in reply.also:
                result["content"][other] = {"schema": {"type": "string"}}
        if reply.headers:
            result["headers"] = {
                name: {"description": text, "schema": {"type": "string"}} for name, text in reply.headers.items()
            }
        return result

    @staticmethod
    def _errors(operation: Operation) -> dict[int, tuple[str, ...]]:
        sources: list[Mapping[int, tuple[str, ...]]] = []
        if operation.security is not None:
            sources.append(operation.security.errors)
        if operation.body is not None:
            sources.append({**_JSON_BODY_ERRORS, 400: (*_JSON_BODY_ERRORS[400], *operation.body_errors)})
        sources.append(operation.errors)
        merged: dict[int, tuple[str, ...]] = {}
        for source in sources:
            for status, codes in source.items():
                merged[status] = tuple(dict.fromkeys((*merged.get(status, ()), *codes)))
        return merged


def _error_reply(codes: Sequence[str]) -> dict[str, Any]:
    headers = {name: text for code in codes for name, text in ERROR_HEADERS.get(code, {}).items()}
    reply: dict[str, Any] = {
        "description": "; ".join(f"`{code}`: {ERROR_CODES[code]}" for code in codes),
        "content": {
            "application/json": {
                "schema": {
                    "allOf": [
                        _ERROR_REF,
                        {"properties": {"error": {"properties": {"code": {"enum": list(codes)}}}}},
                    ]
                }
            }
        },
    }
    if headers:
        reply["headers"] = {
            name: {
                "description": text,
                # required when every code of this status carries it
                "required": all(name in ERROR_HEADERS.get(code, {}) for code in codes),
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            }
            for name, text in headers.items()
        }
    return reply
