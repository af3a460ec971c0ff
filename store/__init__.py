"""Storage: the async port (port.py) and its adapters, SQLite (embedded default) and Redis (scale-out)."""
