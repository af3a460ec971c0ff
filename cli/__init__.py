"""Command-line tool: dev PKI, certificate checks, API keys, issuing cards, test pushes, serving and the worker."""
