"""Tests of passes/: numbers, templates, pass.json, validator, signing, certificates, .pkpass."""
