"""`python -m bench`: run every bench/*.py module that has a main(), in name order."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench


def main() -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name != "__main__")
    only = set(sys.argv[1:])  # `python -m bench sign` runs just bench/sign.py
    status = 0
    for name in names:
        if only and name not in only:
            continue
        module = importlib.import_module(f"bench.{name}")
        entry = getattr(module, "main", None)
        if not callable(entry):
            continue
        print(f"== bench.{name} ==", flush=True)
        result = entry()
        status = status or (result if isinstance(result, int) else 0)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
