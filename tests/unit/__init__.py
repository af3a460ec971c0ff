"""Unit tests of the pure core: ledger decisions and parsing, signatures, links, settings."""
