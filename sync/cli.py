"""``keyworker-app enrol`` and ``keyworker-app sync``: the sync engine's commands.

:func:`add_commands` is the extender that ``keyworker_app.cli.build_parser(extend=[...])``
takes. The passphrase comes the same way as for every other command (never the command
line). Printed summaries hold counts, codes and ids only.

Exit codes: 0 done; 20-29 as in :mod:`sync.errors` (21 not enrolled, 22 address refused,
23 offline, 24 certificate, 25 token refused, 26 revoked and purged, 27 controller error,
28 enrolment refused, 29 asked to lock); 30 the sync finished but something was rejected
or in conflict.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from keyworker_app.cli import paths_from, read_passphrase
from keyworker_app.profile import Profile

from .engine import Outcome, RunOutcome, SyncEngine, SyncResult
from .enrolment import enrol, open_client
from .purge import purge_profile
from .retry import RetryPolicy

EXIT_PARTIAL = 30


def retry_policy() -> RetryPolicy:
    """The retry policy the commands use (tests replace it with one that does not sleep)."""
    return RetryPolicy()


def cmd_enrol(args: argparse.Namespace) -> int:
    profile = Profile.at(paths_from(args))
    store = profile.unlock(read_passphrase(args))
    try:
        done = enrol(
            store, profile.paths, args.controller, args.code, device_name=args.device_name,
            ca_bundle=Path(args.ca_bundle) if args.ca_bundle else None,
            pins=tuple(args.pin or ()), retry=retry_policy(),
        )
    finally:
        store.close()
    where = ("this computer's credential store" if done.token_location == "keyring"
             else "the encrypted profile (no secure credential store on this computer)")
    print(f"Enrolled with {done.controller_url} as device {done.device_id} "
          f"for keyworker {done.keyworker_id}.")
    print(f"The device token is kept in {where}.")
    return 0


def format_summary(result: SyncResult) -> list[str]:
    """The lines ``sync`` prints: counts and reason codes only."""
    c = result.counts
    lines = [
        f"Sent: {c.get(Outcome.ACCEPTED, 0)} accepted, {c.get(Outcome.DUPLICATE, 0)} already held "
        f"(duplicate), {c.get(Outcome.REJECTED, 0)} rejected, {c.get(Outcome.CONFLICT, 0)} in conflict.",
    ]
    held = sum(result.held_back.values())
    if held:
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(result.held_back.items()))
        lines.append(f"Held back: {held} ({reasons}).")
    else:
        lines.append("Held back: 0.")
    lines.append(f"Referrals pulled: {result.referrals_pulled}.")
    return lines


def cmd_sync(args: argparse.Namespace) -> int:
    paths = paths_from(args)
    profile = Profile.at(paths)
    store = profile.unlock(read_passphrase(args))
    try:
        client = open_client(store, paths, retry_policy())
    except BaseException:
        store.close()
        raise
    try:
        engine = SyncEngine(store, client, purge=lambda: purge_profile(paths, store))
        result = engine.run()
    finally:
        client.close()
        if store.db.is_open:
            store.close()
    if result.outcome is RunOutcome.REVOKED:
        print("This laptop was revoked by your organisation: the profile was locked and its data "
              "was removed from this laptop.", file=sys.stderr)
        return result.error.exit_code if result.error else 26
    for line in format_summary(result):
        print(line)
    if result.error is not None:
        print(result.error.message, file=sys.stderr)
        if result.error.next_step:
            print(result.error.next_step, file=sys.stderr)
        return result.error.exit_code
    if result.outcome is RunOutcome.PARTIAL:
        print("Some items were refused by the controller and set aside: open them, correct them "
              "and save, and they go again at the next sync.", file=sys.stderr)
        return EXIT_PARTIAL
    print("Sync finished.")
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``enrol`` and ``sync`` to ``keyworker-app``'s subcommands."""
    p = sub.add_parser("enrol", help="enrol this laptop with the central controller")
    p.add_argument("--controller", required=True, metavar="URL", help="e.g. https://controller.example.org")
    p.add_argument("--code", required=True, help="the one-time enrolment code from your manager")
    p.add_argument("--device-name", default=None, help="how the controller lists this laptop")
    p.add_argument("--ca-bundle", default=None, metavar="PEM",
                   help="the organisation's CA certificates (then only these are trusted)")
    p.add_argument("--pin", action="append", metavar="SHA256",
                   help="pin the controller's public key: sha256/<base64> of its SubjectPublicKeyInfo "
                        "(repeat for a backup key)")
    p.add_argument("--passphrase-file", help="read the passphrase from the first line of this file")
    p.set_defaults(func=cmd_enrol)

    p = sub.add_parser("sync", help="send waiting changes and fetch referrals now")
    p.add_argument("--passphrase-file", help="read the passphrase from the first line of this file")
    p.set_defaults(func=cmd_sync)
