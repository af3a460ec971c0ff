"""Contract tests of the storage port, run against both adapters."""
