"""Schema of the SQLite store: ordered migration steps (sqlite.py), applied at open()."""
