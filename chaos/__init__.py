"""The chaos run (issue 15 item 7): the real service under ledger load while its processes are
SIGKILLed and restarted, then every end-to-end promise checked from the service itself.

This package owns the harness only, no service code:

- `apns.py`: the fake APNs of tests/fakes (HTTP/2 over real TLS, dev PKI) as a subprocess that
  streams every request it answers (token, time) to the harness;
- `cluster.py`: the service as subprocesses (SQLite: the one process that serves and pushes;
  Redis: 2 `cli serve` web processes + 2 `cli worker` processes), started, SIGKILLed, restarted;
- `devices.py`: simulated iPhones registered through the PassKit API that, on each push, ask
  for the passes updated since their last tag and fetch them, remembering every tag handed out;
- `ledger.py`: the ledger backend's concurrent clients posting signed events, retrying on
  connection errors, 5xx and 429 with the same event ids, recording every answer;
- `run.py`: one run on one store (setup, load + killer, drain, the invariant checks, the summary).

`python -m chaos --store sqlite|redis|both` (`make chaos`, full size) and tests/chaos (the
shortened CI run) call the same `run.run_chaos`.
"""
