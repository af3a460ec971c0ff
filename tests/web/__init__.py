"""HTTP handler tests (in-process) and integration tests over real HTTP."""
