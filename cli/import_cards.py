"""`python -m cli import-cards FILE.csv --program coffee [--welcome-bonus N] [--out result.csv]`: the bulk import
of POST /v1/cards/import, in this process against the configured store, with a progress bar.

The same validation and runner as the service (service/imports.py): a file with bad rows stores nothing and
prints every problem; running the same file again after an interruption finishes its job without duplicates."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from config.startup import Prepared, prepare_or_exit


async def _import(prepared: Prepared, args: argparse.Namespace) -> int:
    from tqdm import tqdm  # type: ignore[import-untyped]  # tqdm ships no type hints

    from service.imports import MAX_BYTES, job_id_for, new_job, parse_csv, result_lines, runner_for
    from service.wiring import open_core
    from store.port import ImportJob

    path = Path(args.file)
    if path.stat().st_size > MAX_BYTES:
        print(f"{path}: over {MAX_BYTES} bytes", file=sys.stderr)
        return 2
    raw = path.read_bytes()
    core = await open_core(prepared.settings)
    try:
        program = core.programs.get(args.program)
        if program is None:
            print(f"no program {args.program!r} (programs: {', '.join(sorted(core.programs))})", file=sys.stderr)
            return 2
        parsed = await asyncio.to_thread(parse_csv, raw, program)
        if parsed.errors:
            for error in parsed.errors:
                column = f" {error['column']}" if error["column"] else ""
                print(f"line {error['line']}{column}: {error['reason']}", file=sys.stderr)
            print(f"{parsed.bad_cells} problems; nothing imported", file=sys.stderr)
            return 1
        job_id = job_id_for(program.program, args.welcome_bonus, raw)
        job = new_job(job_id, program.program, len(parsed.rows), args.welcome_bonus, time.time(), "cli")
        runner = runner_for(core)
        if not await core.store.create_import_job(job, parsed.rows):
            stored = await core.store.get_import_job(job_id)
            if stored is not None and stored.state in ("validating", "running") and not runner.abandoned(stored):
                print(f"job {job_id} is being run by another process; try again in a few seconds", file=sys.stderr)
                return 3
            print(f"job {job_id} exists: resuming it", file=sys.stderr)
        bar: Any = tqdm(total=len(parsed.rows), unit="row", desc=job_id, file=sys.stderr)

        def shown(step: ImportJob) -> None:
            bar.set_postfix_str(step.state if step.state == "validating" else "")
            bar.update(step.done - bar.n)

        try:
            # claimed whatever its lease: stored here, or checked abandoned above
            finished = await runner.run_job(job_id, shown, here=True)
        finally:
            bar.close()
        if finished is None or finished.state != "done":
            state = finished.state if finished is not None else "gone"
            print(f"job {job_id}: {state}", file=sys.stderr)
            for error in finished.errors if finished is not None else []:
                print(f"line {error.get('line')} {error.get('column') or ''}: {error.get('reason')}", file=sys.stderr)
            return 1
        with open(args.out, "w", encoding="utf-8", newline="") as out:
            async for chunk in result_lines(core.store, finished, core.settings, time.time()):
                out.write(chunk)
        print(f"job {job_id}: {finished.rows} rows, {runner.stats.created} cards created -> {args.out}")
        return 0
    finally:
        await core.aclose()


def cmd_import_cards(args: argparse.Namespace) -> int:
    if args.welcome_bonus < 0:
        print("--welcome-bonus: 0 or more", file=sys.stderr)
        return 2
    return asyncio.run(_import(prepare_or_exit(), args))


def register(sub: Any) -> None:
    p = sub.add_parser("import-cards", help="import a member base from CSV (as POST /v1/cards/import)")
    p.add_argument("file", help="CSV: account,name,phone,email,balance,tier,locale with a header row")
    p.add_argument("--program", default="coffee")
    p.add_argument("--welcome-bonus", type=int, default=0, help="recorded for the ledger to credit")
    p.add_argument("--out", default="result.csv", help="account,card,link per row")
    p.set_defaults(func=cmd_import_cards)
