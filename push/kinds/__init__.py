"""One module per kind of outbox work: its message (a frozen dataclass that knows its kind, its
coalescing key and its flat string fields) and its handler (how the worker delivers a batch of
them). push/messages.py registers each kind in one line."""
