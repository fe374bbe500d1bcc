"""The core commands of ``keyworker-app``: init, demo, check, passphrase, recover, info.

The passphrase comes from ``KEYWORKER_PASSPHRASE``, ``--passphrase-file`` or a prompt,
never from the command line (it would sit in shell history and the process list). A new
passphrase comes from ``KEYWORKER_NEW_PASSPHRASE``, ``--new-passphrase-file`` or a prompt
asked twice.

Exit codes (also in the README): 0 done; 1 unexpected problem; 2 bad input or settings;
3 no profile / profile exists; 4 wrong passphrase or too soon; 5 locked out; 6 device secret
or keyring missing; 7 damaged files; 8 newer database; 9 recovery key does not fit;
10 store error; 11 ``check`` found problems.

``sync`` and ``ui`` add their own commands through :func:`build_parser`'s ``extend`` hook,
so this module never imports them.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Callable, Sequence

from . import __version__
from .errors import IntegrityProblem, KeyworkerError, ProfileExists
from .paths import AppPaths, app_paths
from .profile import Profile
from .security import generate_recovery_keypair, b64e, passphrase_strength
from .records import RECORD_TYPES, Record

log = logging.getLogger("keyworker")

Extender = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


class InputProblem(KeyworkerError):
    exit_code = 2


def _read_secret_file(path: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputProblem(message=f"The passphrase file could not be read ({exc.strerror}).") from None
    return text.splitlines()[0] if text else ""


def read_passphrase(args: argparse.Namespace, prompt: str = "Passphrase: ") -> str:
    if getattr(args, "passphrase_file", None):
        return _read_secret_file(args.passphrase_file)
    if os.environ.get("KEYWORKER_PASSPHRASE"):
        return os.environ["KEYWORKER_PASSPHRASE"]
    if sys.stdin is not None and sys.stdin.isatty():
        return getpass.getpass(prompt)
    raise InputProblem(
        message="No passphrase was given.",
        next_step="Set KEYWORKER_PASSPHRASE, use --passphrase-file, or run this in a terminal to be asked.",
    )


def read_new_passphrase(args: argparse.Namespace) -> str:
    if getattr(args, "new_passphrase_file", None):
        return _read_secret_file(args.new_passphrase_file)
    if os.environ.get("KEYWORKER_NEW_PASSPHRASE"):
        return os.environ["KEYWORKER_NEW_PASSPHRASE"]
    if sys.stdin is not None and sys.stdin.isatty():
        first = getpass.getpass("New passphrase (at least 12 characters): ")
        if getpass.getpass("Type it again: ") != first:
            raise InputProblem(message="The two passphrases were different.", next_step="Try again.")
        return first
    raise InputProblem(
        message="No new passphrase was given.",
        next_step="Set KEYWORKER_NEW_PASSPHRASE, use --new-passphrase-file, or run this in a terminal.",
    )


def paths_from(args: argparse.Namespace) -> AppPaths:
    return app_paths(args.data_dir)


# --- commands -------------------------------------------------------------------------

def cmd_init(args: argparse.Namespace) -> int:
    from .programmes import load_programme

    load_programme(args.programme)  # a typed error naming the programme if unknown
    profile = Profile.at(paths_from(args))
    if profile.exists():
        raise ProfileExists()
    passphrase = read_passphrase(args, "Choose a passphrase (at least 12 characters): ")
    store, status = profile.create(args.keyworker_id, args.programme, passphrase)
    store.close()
    if status.warning:
        print(f"Warning: {status.warning}")
    print(f"Created a profile for {args.keyworker_id} on {args.programme} in {profile.paths.data}")
    print(f"Credential store: {status.backend} ({'secure' if status.secure else 'not secure'}); "
          f"policy: {profile.config.keyring_policy}.")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import save_caseload
    from .synthetic import generate_caseload

    profile = Profile.at(paths_from(args))
    passphrase = read_passphrase(args, "Choose a passphrase for the demo profile: ")
    if profile.exists():
        store = profile.unlock(passphrase)
    else:
        store, status = profile.create(args.keyworker_id, args.programme, passphrase)
        if status.warning:
            print(f"Warning: {status.warning}")
    try:
        count = save_caseload(store, generate_caseload(args.participants, seed=args.seed,
                                                       programme=args.programme,
                                                       keyworker_id=store.actor))
    finally:
        store.close()
    print(f"Added {count} synthetic participants to the demo profile in {profile.paths.data}.")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    store = Profile.at(paths_from(args)).unlock(read_passphrase(args), check=True)
    try:
        problems = store.check()
        counts = {t: store.repo(t).count() for t in _record_types()}
    finally:
        store.close()
    if problems:
        raise IntegrityProblem(problems)
    print("Profile check passed: encrypted pages, database structure and audit log are all intact.")
    print(", ".join(f"{n} {t.record_type}" for t, n in counts.items() if n))
    return 0


def _record_types() -> tuple[type[Record], ...]:
    return RECORD_TYPES


def cmd_passphrase(args: argparse.Namespace) -> int:
    profile = Profile.at(paths_from(args))
    old = read_passphrase(args, "Current passphrase: ")
    store = profile.unlock(old)
    try:
        profile.change_passphrase(store, old, read_new_passphrase(args))
    finally:
        store.close()
    print("Passphrase changed. Use the new one from now on.")
    return 0


def cmd_recover(args: argparse.Namespace) -> int:
    try:
        pem = Path(args.recovery_key_file).read_bytes()
    except OSError as exc:
        raise InputProblem(message=f"The recovery key file could not be read ({exc.strerror}).") from None
    profile = Profile.at(paths_from(args))
    store = profile.recover(pem, read_new_passphrase(args))
    store.close()
    print("Profile recovered with the organisation key and a new passphrase set. This was audited.")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    info = Profile.at(paths_from(args)).info()
    print(f"Profile {info.profile_id} for keyworker {info.keyworker_id}, programme {info.programme}")
    print(f"Credential store: {info.keyring_backend} ({'secure' if info.keyring_secure else 'NOT secure'}),"
          f" policy {info.keyring_policy}")
    print(f"Organisation recovery key: {'yes' if info.has_recovery_key else 'no'}")
    print(f"Failed unlocks since last success: {info.failures}{' (LOCKED OUT)' if info.locked_out else ''}")
    return 0


def cmd_recovery_keygen(args: argparse.Namespace) -> int:
    out = Path(args.private_key_out)
    if out.exists():
        raise InputProblem(message=f"{out} already exists; nothing was overwritten.")
    private_pem, public = generate_recovery_keypair()
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_pem)
    print(f"Private recovery key written to {out}. Keep it offline, with your data protection officer.")
    print("Put this in organisation.json as recovery_public_key:")
    print(b64e(public))
    return 0


def cmd_strength(args: argparse.Namespace) -> int:
    print(passphrase_strength(read_passphrase(args)))
    return 0


# --- parser ---------------------------------------------------------------------------

def build_parser(extend: Sequence[Extender] = ()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keyworker-app",
        description="Keyworker: encrypted, offline-first casework for employment-support keyworkers.",
    )
    parser.add_argument("--version", action="version", version=f"keyworker {__version__}")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder holding the profile (default: the platform's data folder)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def secret_opts(p: argparse.ArgumentParser, new: bool = False) -> None:
        p.add_argument("--passphrase-file", help="read the passphrase from the first line of this file")
        if new:
            p.add_argument("--new-passphrase-file", help="read the new passphrase from this file")

    p = sub.add_parser("init", help="create an encrypted profile")
    p.add_argument("--keyworker-id", required=True)
    p.add_argument("--programme", required=True, help="programme pack id, e.g. working_well_ses")
    secret_opts(p)
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("demo", help="a profile filled with a synthetic caseload")
    p.add_argument("--keyworker-id", default="KW-DEMO")
    p.add_argument("--programme", default="working_well_ses")
    p.add_argument("--participants", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    secret_opts(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("check", help="check encryption, structure and the audit log")
    secret_opts(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("passphrase", help="change the passphrase")
    secret_opts(p, new=True)
    p.set_defaults(func=cmd_passphrase)

    p = sub.add_parser("recover", help="open with the organisation recovery key and set a new passphrase")
    p.add_argument("--recovery-key-file", required=True)
    secret_opts(p, new=True)
    p.set_defaults(func=cmd_recover)

    p = sub.add_parser("info", help="what this profile is protected by (no passphrase needed)")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("recovery-keygen", help="make an organisation recovery key pair (for IT)")
    p.add_argument("--private-key-out", required=True)
    p.set_defaults(func=cmd_recovery_keygen)

    for extender in extend:
        extender(sub)
    return parser


def setup_logging(paths: AppPaths) -> None:
    """Events only, never personal data: no record values are ever passed to a logger."""
    try:
        paths.logs.mkdir(parents=True, exist_ok=True, mode=0o700)
        handler: logging.Handler = logging.FileHandler(paths.logs / "keyworker.log", encoding="utf-8")
    except OSError:
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("keyworker")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run a parsed command, turning every expected failure into a message and exit code."""
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    setup_logging(paths_from(args))
    try:
        code: int = args.func(args)
        log.info("command %s finished", args.command)
        return code
    except KeyworkerError as err:
        log.warning("command %s stopped: %s", args.command, type(err).__name__)
        print(f"{err.message}", file=sys.stderr)
        if err.next_step:
            print(err.next_step, file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("Stopped.", file=sys.stderr)
        return 130
    except Exception as exc:  # the last line of defence: no traceback on screen
        # The log gets where it happened, not the message, which could quote a value.
        frames = "; ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}"
                           for f in traceback.extract_tb(exc.__traceback__))
        log.error("unexpected %s at %s", type(exc).__name__, frames)
        print("Keyworker hit an unexpected problem and stopped. Your saved work is safe.",
              file=sys.stderr)
        print(f"Please tell your IT team (problem type: {type(exc).__name__}).", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None, extend: Sequence[Extender] = ()) -> int:
    parser = build_parser(extend)
    return run(parser.parse_args(argv), parser)


if __name__ == "__main__":
    raise SystemExit(main())
