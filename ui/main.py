"""``keyworker-app``: the command line, and the desktop window when no command is given.

``keyworker-app`` opens the window on the platform's profile folder;
``keyworker-app --data-dir DIR`` opens the profile in ``DIR``; ``keyworker-app init …``,
``demo``, ``check`` and the rest are the core's commands, plus the sync engine's when the
``sync`` package offers ``sync.cli.add_commands(subparsers)``.
"""

from __future__ import annotations

import argparse
from typing import Callable, Sequence

from keyworker_app import cli
from keyworker_app.paths import app_paths


def _extenders() -> list[Callable[..., None]]:
    try:
        from sync import cli as sync_cli  # type: ignore[attr-defined]
    except ImportError:
        return []
    add = getattr(sync_cli, "add_commands", None)
    return [add] if callable(add) else []


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.build_parser(extend=_extenders())
    args = parser.parse_args(argv)
    if getattr(args, "command", None) is None:
        return open_window(args)
    return cli.run(args, parser)


def open_window(args: argparse.Namespace) -> int:
    from .app import run_app  # Qt is only loaded when the window is wanted

    paths = app_paths(args.data_dir)
    cli.setup_logging(paths)
    return run_app(paths)


if __name__ == "__main__":
    raise SystemExit(main())
