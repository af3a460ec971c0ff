"""HTTP: the Starlette application and its handlers per audience (cards, PassKit, ledger, admin, operations)."""
