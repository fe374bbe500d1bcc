"""``keyworker-controller``: run the reference controller and administer it.

Commands (each takes ``--db URL``: ``sqlite:///path`` or ``postgresql://...``; the default
is a SQLite file in the user data directory, created on first use)::

    serve [--host H] [--port P] [--certfile F --keyfile F] [--sharing-profiles FILE]
    enrol --keyworker-id ID [--valid-hours H]      prints the one-time code on its last line
    refer --keyworker-id ID --file REFERRAL.json   queues a referral, prints its id
    revoke --device ID                             revoke; the laptop purges at next contact
    lock --device ID                               ask the laptop to lock at next contact
    devices [--format text|json]
    records [--recipient R] [--format json]        what was received (JSON array)
    withdrawals [--recipient R] [--format json]    consent withdrawal notices received

``serve`` prints ``listening on http://HOST:PORT`` (or https) on stdout once it accepts
connections; ``--port 0`` picks a free port. It refuses plain HTTP on an address that is
not loopback unless ``--allow-plain-http`` is given (e.g. behind a TLS proxy).

Exit codes:
    0  done
    1  unexpected failure (a bug: please report it)
    2  wrong usage (argparse)
    3  database problem: bad --db URL, unreachable, busy, or from a newer controller
    4  not found: no such device
    5  invalid input: the referral file is wrong (the message names what)
    6  no sharing profiles could be loaded
    7  cannot serve: address in use, refused plain HTTP, or unreadable TLS files
  130  interrupted
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import json
import logging
import socket
import ssl
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from . import profiles, service
from .db import Database, DatabaseError, default_url
from .referral_file import InvalidReferral, load_referral_file

EXIT_OK = 0
EXIT_BUG = 1
EXIT_DATABASE = 3
EXIT_NOT_FOUND = 4
EXIT_INVALID_INPUT = 5
EXIT_NO_PROFILES = 6
EXIT_CANNOT_SERVE = 7


class CannotServe(Exception):
    """The server cannot start listening; the message says why."""


def _print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


# -- commands -----------------------------------------------------------------------------

def cmd_enrol(db: Database, args: argparse.Namespace) -> int:
    code = service.create_enrolment_code(db, args.keyworker_id, args.valid_hours * 3600)
    print(
        f"One-time enrolment code for keyworker {args.keyworker_id}, valid for "
        f"{args.valid_hours:g} hours. Type it into the laptop's enrolment screen:"
    )
    print(code)
    return EXIT_OK


def cmd_refer(db: Database, args: argparse.Namespace) -> int:
    document = load_referral_file(Path(args.file), args.keyworker_id)
    referral_id = service.queue_referral(db, args.keyworker_id, document)
    print(f"Queued referral {referral_id} for keyworker {args.keyworker_id}.")
    return EXIT_OK


def cmd_revoke(db: Database, args: argparse.Namespace) -> int:
    if service.revoke_device(db, args.device):
        print(f"Revoked device {args.device}: it will lock and purge its data at next connection.")
    else:
        print(f"Device {args.device} was already revoked.")
    return EXIT_OK


def cmd_lock(db: Database, args: argparse.Namespace) -> int:
    service.queue_lock(db, args.device)
    print(f"Device {args.device} will be told to lock at its next connection.")
    return EXIT_OK


def cmd_devices(db: Database, args: argparse.Namespace) -> int:
    devices = service.list_devices(db)
    if args.format == "json":
        _print_json(devices)
        return EXIT_OK
    if not devices:
        print("No devices enrolled.")
        return EXIT_OK
    print(f"{'device id':36}  {'keyworker':16}  {'status':8}  {'last seen':27}  name")
    for d in devices:
        status = "revoked" if d["revoked_at"] else "active"
        print(
            f"{d['id']:36}  {d['keyworker_id']:16}  {status:8}  "
            f"{d['last_seen_at'] or 'never':27}  {d['device_name']}"
        )
    return EXIT_OK


def cmd_records(db: Database, args: argparse.Namespace) -> int:
    _print_json(service.list_received(db, args.recipient))
    return EXIT_OK


def cmd_withdrawals(db: Database, args: argparse.Namespace) -> int:
    _print_json(service.list_withdrawals(db, args.recipient))
    return EXIT_OK


def _bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket on host:port (port 0: any free port)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        )[0]
    except socket.gaierror as exc:
        raise CannotServe(f"cannot resolve host {host!r}: {exc.strerror}") from exc
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Small request/response exchanges: do not let Nagle hold back the last segment.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise CannotServe(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


#: Container objects allocated (net of those freed) before the cyclic garbage collector
#: runs (Python's default is 700).
GC_YOUNG_THRESHOLD = 10_000


def _collect_cycles_less_often() -> None:
    """Let the garbage collector wait for 10,000 new objects instead of 700.

    A push parses up to 1,000 items into a few thousand dicts and lists that live for one
    request and are freed by reference counting when it ends. At the default threshold
    the collector ran several times per push, scanning exactly those objects: about 5%
    of the controller's CPU. Cycles are still collected, just in larger steps.
    """
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def cmd_serve(db: Database, args: argparse.Namespace) -> int:
    import uvicorn

    from .api import Limits, create_app

    profiles.use_profiles_file(Path(args.sharing_profiles) if args.sharing_profiles else None)
    loaded = profiles.profiles()  # fail now, not at the first push
    if bool(args.certfile) != bool(args.keyfile):
        raise CannotServe("--certfile and --keyfile go together")
    tls = bool(args.certfile)
    sock = _bind(args.host, args.port)
    bound_host, bound_port = sock.getsockname()[:2]
    if not tls and not args.allow_plain_http and not ipaddress.ip_address(bound_host).is_loopback:
        sock.close()
        raise CannotServe(
            f"refusing plain HTTP on {bound_host}, which is not loopback: give --certfile and "
            "--keyfile, or --allow-plain-http if a TLS proxy sits in front"
        )
    limits = Limits(max_items=args.max_items, max_push_bytes=args.max_push_bytes)
    config = uvicorn.Config(
        create_app(db, limits),
        log_config=None,        # our logging setup; uvicorn's would add an access log
        access_log=False,       # it would print query strings
        server_header=False,
        ssl_certfile=args.certfile,
        ssl_keyfile=args.keyfile,
    )
    try:
        config.load()
    except (OSError, ssl.SSLError) as exc:
        sock.close()
        raise CannotServe(f"cannot load the TLS certificate or key: {exc}") from exc
    shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    url = f"{'https' if tls else 'http'}://{shown_host}:{bound_port}"

    class AnnouncingServer(uvicorn.Server):
        """Says where it listens once it really accepts connections (tests wait for it)."""

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                print(f"listening on {url}", flush=True)

    logging.getLogger("keyworker.controller").info(
        "serving %s with %d sharing profiles, database %s", url, len(loaded), db.backend
    )
    _collect_cycles_less_often()
    AnnouncingServer(config).run(sockets=[sock])
    return EXIT_OK


# -- parsing ------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to document the commands)."""
    parser = argparse.ArgumentParser(
        prog="keyworker-controller",
        description="The Keyworker reference central controller and its admin commands.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--db", default=None, metavar="URL",
        help="sqlite:///path/file.sqlite3 or postgresql://user@host/db "
        "(default: a SQLite file in the user data directory)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[Database, argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    serve = add("serve", cmd_serve, "Run the HTTP API.")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8443, help="0 picks a free port (default 8443)")
    serve.add_argument("--certfile", help="TLS certificate (PEM)")
    serve.add_argument("--keyfile", help="TLS private key (PEM)")
    serve.add_argument("--allow-plain-http", action="store_true",
                       help="allow plain HTTP on a non-loopback address (behind a TLS proxy)")
    serve.add_argument("--sharing-profiles", metavar="FILE",
                       help="JSON list of sharing profiles to use instead of keyworker_app's "
                       "(tests and pilots)")
    serve.add_argument("--max-items", type=int, default=1000, help="items per push (default 1000)")
    serve.add_argument("--max-push-bytes", type=int, default=8 * 1024 * 1024,
                       help="bytes per push, uncompressed (default 8 MiB)")

    enrol = add("enrol", cmd_enrol, "Issue a one-time enrolment code for a keyworker.")
    enrol.add_argument("--keyworker-id", required=True)
    enrol.add_argument("--valid-hours", type=float, default=24.0,
                       help="how long the code stays valid (default 24)")

    refer = add("refer", cmd_refer, "Queue a referral for a keyworker from a JSON file.")
    refer.add_argument("--keyworker-id", required=True)
    refer.add_argument("--file", required=True, metavar="REFERRAL.json")

    revoke = add("revoke", cmd_revoke, "Revoke a device: it locks and purges at next connection.")
    revoke.add_argument("--device", required=True, metavar="ID")

    lock = add("lock", cmd_lock, "Tell a device to lock itself at next connection.")
    lock.add_argument("--device", required=True, metavar="ID")

    devices = add("devices", cmd_devices, "List enrolled devices.")
    devices.add_argument("--format", choices=["text", "json"], default="text")

    recs = add("records", cmd_records, "Print what was received, as a JSON array.")
    recs.add_argument("--recipient", metavar="PROFILE")
    recs.add_argument("--format", choices=["json"], default="json")

    wd = add("withdrawals", cmd_withdrawals, "Print consent withdrawal notices, as a JSON array.")
    wd.add_argument("--recipient", metavar="PROFILE")
    wd.add_argument("--format", choices=["json"], default="json")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (see the module docstring)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.command == "serve" else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    db: Database | None = None
    try:
        db = Database(args.db or default_url())
        db.migrate()
        return int(args.func(db, args))
    except DatabaseError as exc:
        print(f"keyworker-controller: database problem: {exc}", file=sys.stderr)
        return EXIT_DATABASE
    except service.NotFound as exc:
        print(f"keyworker-controller: {exc.message}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except InvalidReferral as exc:
        print(f"keyworker-controller: the referral file is not valid: {exc}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    except profiles.ProfilesUnavailable as exc:
        print(f"keyworker-controller: {exc}", file=sys.stderr)
        return EXIT_NO_PROFILES
    except CannotServe as exc:
        print(f"keyworker-controller: {exc}", file=sys.stderr)
        return EXIT_CANNOT_SERVE
    except KeyboardInterrupt:
        return 130
    finally:
        if db is not None:
            db.close()


if __name__ == "__main__":
    sys.exit(main())
