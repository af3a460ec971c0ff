"""Test suite: unit tests of the pure core, store contract tests, integration tests over real HTTP."""
