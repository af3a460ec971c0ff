"""The compact JSON both store adapters write (no spaces, UTF-8 kept as is)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

# Built once: json.dumps with options constructs an encoder per call, a cost on every push.
compact_json: Callable[[Any], str] = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
