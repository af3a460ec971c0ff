"""`python -m chaos`: the chaos run at full size by default (`make chaos`); exit 1 on any FAIL."""

from __future__ import annotations

import argparse
import asyncio
import sys

from chaos.run import DEFAULT_REDIS_URL, Config, run_chaos


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chaos",
        description="Ledger load on the real service while its processes are SIGKILLed and restarted; "
        "then every invariant checked (see chaos/run.py)",
    )
    parser.add_argument("--store", choices=("sqlite", "redis", "both"), default="both")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--cards", type=int, default=1_000)
    parser.add_argument("--devices", type=int, default=3_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=25, help="events per ledger post")
    parser.add_argument("--rate", type=float, default=None, help="events/s at most (default: cards / 2)")
    parser.add_argument("--drain-timeout", type=float, default=600.0, help="seconds to wait for the outbox")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="keys go under a prefix of the run's own")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs) even on PASS")
    args = parser.parse_args(argv)
    stores = ("sqlite", "redis") if args.store == "both" else (args.store,)
    failed = False
    for store in stores:
        config = Config(
            store=store,
            events=args.events,
            cards=args.cards,
            devices=args.devices,
            clients=args.clients,
            kills=args.kills,
            seed=args.seed,
            batch=args.batch,
            rate=args.rate,
            drain_timeout=args.drain_timeout,
            redis_url=args.redis_url,
            keep=args.keep,
            log=lambda line: print(line, flush=True),
        )
        try:
            report = asyncio.run(run_chaos(config))
        except Exception as exc:  # the harness could not finish (a process that never came back, ...)
            print(f"chaos run on {store}: ERROR {type(exc).__name__}: {exc}", flush=True)
            failed = True
            continue
        print(report.summary(), flush=True)
        failed |= not report.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
