"""`python -m cli <command>`: serve, worker, pki, check-certs, api-key, issue, test-push."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
from pathlib import Path

from cli import import_cards
from config.logging import configure_logging
from config.settings import ROLES, load_settings, redacted_url
from config.startup import Prepared, prepare_or_exit


def _print_dev_banner(prepared: Prepared) -> None:
    s = prepared.settings
    print(f"wallet service ({s.env}) on http://{s.host}:{s.port}  public URL {s.public_url}")
    print(f"  store:    {redacted_url(s.database_url)}")
    print(f"  docs:     {s.public_url}/docs   programs: {s.public_url}/v1/programs   ready: {s.public_url}/readyz")
    print(f"  passkit:  {s.web_service_url}   pass type {s.pass_type_id}, team {s.team_id}")
    pushes = "recorded only (dry run), see /v1/admin/pushes" if s.push_dry_run else f"sent to {s.apns_endpoint}"
    print(f"  pushes:   {pushes}")
    if prepared.created_pki:
        print(f"  created a throw-away dev PKI in {s.certs_dir}/")
    if prepared.dev_secrets is not None:
        # dev keys are meant to be seen: SPEC has them printed at start
        print("  dev API keys (Authorization: Bearer <key>):")
        for role, key in prepared.dev_secrets["api_keys"].items():
            print(f"    {role:<9} {key}")
        print(f"  dev ledger secret (X-Wallet-Signature HMAC key): {prepared.dev_secrets['ledger_secret']}")
    for name, days in prepared.certs.expiry.items():
        print(f"  certificate {name}: {days} days to expiry")
    for warning in prepared.warnings:
        print(f"  warning: {warning}")
    sys.stdout.flush()


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from web.app import create_app
    from web.serving import uvicorn_options

    configure_logging(args.log_level)
    prepared = prepare_or_exit()
    _print_dev_banner(prepared)
    uvicorn.run(create_app(prepared), **uvicorn_options(prepared.settings, args.log_level))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from push.worker import Worker
    from service.push import run_standalone_worker

    configure_logging()
    prepared = prepare_or_exit()
    settings = prepared.settings
    port = settings.worker_metrics_port

    def serve_metrics(worker: Worker) -> None:
        # each worker process has its own counters: Prometheus scrapes every process (README "Metrics")
        from prometheus_client import start_http_server

        from web.metrics import Metrics

        metrics = Metrics()
        metrics.watch_worker(worker)
        start_http_server(port or 0, addr=settings.host, registry=metrics.registry)

    return asyncio.run(run_standalone_worker(settings, serve_metrics if port else None))


def cmd_pki(args: argparse.Namespace) -> int:
    from passes.apple.pki import ensure_dev_pki

    s = load_settings()
    created = ensure_dev_pki(s.certs_dir, s.pass_type_id, s.team_id)
    print(
        f"dev PKI {'created' if created else 'already present'} in {s.certs_dir}/ "
        f"(pass type {s.pass_type_id}, team {s.team_id})"
    )
    return 0


def cmd_check_certs(args: argparse.Namespace) -> int:
    from passes.apple.certs import check_certificates

    s = load_settings()
    report = check_certificates(s.certs_dir, s.pass_type_id, s.team_id, s.pass_key_password)
    for name, days in report.expiry.items():
        print(f"{name}: {days} days to expiry")
    for problem in report.problems:
        print(f"problem: {problem}")
    print("certificates OK" if not report.problems else f"{len(report.problems)} problem(s)")
    return 0 if not report.problems else 1


def cmd_api_key(args: argparse.Namespace) -> int:
    key = secrets.token_urlsafe(32)
    print(f"{args.role}:{key}")
    print("add it to WALLET_API_KEYS (comma separated role:key pairs)", file=sys.stderr)
    return 0


async def _issue(prepared: Prepared, args: argparse.Namespace) -> int:
    from cards.model import Member
    from cards.numbers import last4
    from service.cards import IssueError, NewCard
    from service.wiring import open_core

    core = await open_core(prepared.settings)
    try:
        request = NewCard(
            program=args.program,
            account=args.account,
            member=Member(name=args.name, phone=args.phone, email=args.email),
            balance=args.balance,
            tier=args.tier,
            locale=args.locale,
        )
        try:
            issued = await core.cards.issue(request, time.time())
        except IssueError as exc:
            programs = ", ".join(sorted(core.programs))
            print(
                f"cannot issue: {exc.message}" + (f" (programs: {programs})" if exc.code == "unknown_program" else ""),
                file=sys.stderr,
            )
            return 2
        rendered = core.factory.render(issued.card)
        Path(args.out).write_bytes(rendered.data)
        card = issued.card
        verb = "issued" if issued.created else "existing"
        print(f"{verb} card *{last4(card.number)} serial {card.serial} -> {args.out}")
        return 0
    finally:
        await core.aclose()


def cmd_issue(args: argparse.Namespace) -> int:
    return asyncio.run(_issue(prepare_or_exit(), args))


def cmd_test_push(args: argparse.Namespace) -> int:
    from service.push import send_test_push

    settings = prepare_or_exit().settings
    result = asyncio.run(send_test_push(settings, args.token))
    print(
        f"push {'recorded (dry run)' if settings.push_dry_run else 'sent'}: {result.status}"
        + (f" ({result.reason})" if result.reason else "")
    )
    return 0 if result.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cli", description="Wallet pass and push service")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="prepare (dev PKI, keys) and run the web service (and, on SQLite, the worker)")
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=cmd_serve)
    sub.add_parser("worker", help="run the push worker").set_defaults(func=cmd_worker)
    sub.add_parser("pki", help="create the dev PKI in WALLET_CERTS_DIR if missing").set_defaults(func=cmd_pki)
    sub.add_parser("check-certs", help="check signing certificates and print days to expiry").set_defaults(
        func=cmd_check_certs
    )
    p = sub.add_parser("api-key", help="generate an API key for a role")
    p.add_argument("role", choices=ROLES)
    p.set_defaults(func=cmd_api_key)
    p = sub.add_parser("issue", help="issue a card and write its .pkpass")
    p.add_argument("--program", default="coffee")
    p.add_argument("--account", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--phone")
    p.add_argument("--email")
    p.add_argument("--balance", type=int, default=0)
    p.add_argument("--tier")
    p.add_argument("--locale")
    p.add_argument("--out", default="card.pkpass")
    p.set_defaults(func=cmd_issue)
    p = sub.add_parser("test-push", help="send one pass-update push to a device token now and print the result")
    p.add_argument("--token", required=True, help="APNs device push token (hex)")
    p.set_defaults(func=cmd_test_push)
    import_cards.register(sub)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
