"""Wallet passes: programs (the template folders, format-neutral), artwork, and one subpackage
per wallet format (`apple/`)."""
