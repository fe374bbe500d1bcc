"""Where Keyworker keeps its files: platformdirs locations, overridable with --data-dir."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "keyworker"
APP_AUTHOR = "Keyworker"


@dataclass(frozen=True)
class AppPaths:
    """The folders one profile lives in.

    ``data`` holds the encrypted database and its wrapped key; ``config`` the organisation
    settings; ``logs`` the application log (which never holds personal data).
    """

    data: Path
    config: Path
    logs: Path

    @property
    def database(self) -> Path:
        return self.data / "keyworker.db"

    @property
    def keyfile(self) -> Path:
        return self.data / "profile.json"

    @property
    def org_config(self) -> Path:
        return self.config / "organisation.json"

    def ensure(self) -> None:
        for folder in (self.data, self.config, self.logs):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)


def app_paths(data_dir: Path | str | None = None) -> AppPaths:
    """The platform's folders, or everything under ``data_dir`` when one is given.

    With ``--data-dir`` the config and logs sit inside it too, so one folder holds a whole
    profile (useful for tests, demos and a profile on an encrypted USB stick).
    """
    if data_dir is not None:
        root = Path(data_dir).expanduser().resolve()
        return AppPaths(data=root, config=root / "config", logs=root / "logs")
    return AppPaths(
        data=Path(platformdirs.user_data_dir(APP_NAME, APP_AUTHOR)),
        config=Path(platformdirs.user_config_dir(APP_NAME, APP_AUTHOR)),
        logs=Path(platformdirs.user_log_dir(APP_NAME, APP_AUTHOR)),
    )
