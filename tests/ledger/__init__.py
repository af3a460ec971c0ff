"""Tests of the pure ledger rules: parsing, classification, planning, signatures."""
