"""Ledger intake decisions: parsing and validating posted events, checking their signature,
and deciding (purely) whether an event is new, a duplicate or stale and what it makes of a card."""
