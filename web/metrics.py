"""Process metrics in Prometheus text format: counters and gauges, no dependency needed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import TypeAlias

# a counter's name and its labels, sorted by label name
Key: TypeAlias = tuple[str, tuple[tuple[str, str], ...]]


def key(name: str, **labels: str) -> Key:
    return (name, tuple(sorted(labels.items())))


class Metrics:
    def __init__(self) -> None:
        self._counters: dict[Key, float] = defaultdict(float)
        self._help: dict[str, str] = {}
        self._gauges: dict[str, tuple[str, Callable[[], float]]] = {}

    def inc(self, name: str, amount: float = 1.0, help: str = "", **labels: str) -> None:
        self._counters[key(name, **labels)] += amount
        if help:
            self._help.setdefault(name, help)

    def describe(self, name: str, help: str) -> None:
        self._help.setdefault(name, help)

    def value(self, name: str, **labels: str) -> float:
        return self._counters.get(key(name, **labels), 0.0)

    def gauge(self, name: str, help: str, read: Callable[[], float]) -> None:
        self._gauges[name] = (help, read)

    def render(self, extra: dict[str, float] | None = None, counted: Mapping[Key, float] | None = None) -> str:
        """Text exposition; `extra` are gauges, `counted` are counters kept elsewhere (the worker's)."""
        lines: list[str] = []
        seen: set[str] = set()
        for (name, labels), amount in sorted({**self._counters, **(counted or {})}.items()):
            if name not in seen:
                seen.add(name)
                lines.append(f"# HELP {name} {self._help.get(name, name)}")
                lines.append(f"# TYPE {name} counter")
            label_text = ",".join(f'{k}="{v}"' for k, v in labels)
            lines.append(f"{name}{{{label_text}}} {amount}" if label_text else f"{name} {amount}")
        for name, (help, read) in sorted(self._gauges.items()):
            lines.append(f"# HELP {name} {help}")
            lines.append(f"# TYPE {name} gauge")
            lines.append(f"{name} {read()}")
        for name, value in sorted((extra or {}).items()):
            lines.append(f"# TYPE {name} gauge")
            lines.append(f"{name} {value}")
        return "\n".join(lines) + "\n"
