"""Sharing profiles as the controller sees them on receipt (DESIGN §5).

The profiles are the same data the laptops project through (``keyworker_app.sharing``,
from ``resources/sharing/*.json``), so both ends enforce the same minimum-necessary rules.
``keyworker_app.sharing`` is imported lazily, on first use, so that the controller can
start with ``--sharing-profiles FILE`` (a JSON list of profiles: for tests and pilots)
when the packaged profiles are not wanted or not yet available.

The receipt check asks its questions through :func:`allowed_fields`,
:func:`profile_scope` and :func:`identifier_fields` only.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping


class ProfilesUnavailable(Exception):
    """No sharing profiles could be loaded, so nothing can be checked on receipt."""


@dataclass(frozen=True)
class ProfileView:
    """What the controller needs to know about one sharing profile."""

    id: str
    records: Mapping[str, frozenset[str]]
    programmes: frozenset[str]   # a programme not listed is not covered
    strands: frozenset[str]      # empty: every strand
    #: The records as they apply on each programme (a profile may vary them per programme).
    programme_records: Mapping[str, Mapping[str, frozenset[str]]] = field(default_factory=dict)
    assessment_forms: frozenset[str] | None = None  # None: any form


_lock = threading.Lock()
_override_file: Path | None = None
_cache: dict[str, ProfileView] | None = None


def use_profiles_file(path: Path | None) -> None:
    """Load profiles from ``path`` instead of ``keyworker_app.sharing`` (None: packaged)."""
    global _override_file, _cache
    with _lock:
        _override_file = path
        _cache = None


def _records(value: Any) -> dict[str, frozenset[str]]:
    return {str(t): frozenset(str(f) for f in fields) for t, fields in (value or {}).items()}


def _view(profile: Any) -> ProfileView:
    """Adapt a ``keyworker_app.sharing.SharingProfile`` (or a dict of the same shape)."""
    if isinstance(profile, Mapping):
        get: Any = profile.get
    else:
        def get(key: str, default: Any = None) -> Any:
            return getattr(profile, key, default)
    programmes = frozenset(str(p) for p in (get("programmes") or ()))
    per_programme: dict[str, Mapping[str, frozenset[str]]] = {}
    resolve = getattr(profile, "for_programme", None)
    if resolve is not None:
        # The same resolution the laptop applies before projecting (programme overrides).
        per_programme = {p: _records(resolve(p).records) for p in programmes}
    forms = get("assessment_forms")
    return ProfileView(
        id=str(get("id")),
        records=_records(get("records")),
        programmes=programmes,
        strands=frozenset(str(s) for s in (get("strands") or ())),
        programme_records=per_programme,
        assessment_forms=None if forms is None else frozenset(str(f) for f in forms),
    )


def _load_file(path: Path) -> dict[str, ProfileView]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise ProfilesUnavailable(f"cannot read sharing profiles file {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ProfilesUnavailable(
            f"sharing profiles file {path} is not valid JSON (line {exc.lineno})"
        ) from exc
    if not isinstance(data, list) or not all(
        isinstance(p, dict) and isinstance(p.get("id"), str) and isinstance(p.get("records"), dict)
        for p in data
    ):
        raise ProfilesUnavailable(
            f"sharing profiles file {path} must be a JSON list of objects with 'id' and 'records'"
        )
    return {p["id"]: _view(p) for p in data}


def _load_packaged() -> dict[str, ProfileView]:
    try:
        from keyworker_app import sharing
    except ImportError as exc:
        raise ProfilesUnavailable(
            "keyworker_app.sharing is not available, so no sharing profiles can be checked; "
            "pass --sharing-profiles FILE"
        ) from exc
    return {str(pid): _view(p) for pid, p in sharing.load_sharing_profiles().items()}


def profiles() -> Mapping[str, ProfileView]:
    """Every sharing profile, loaded once (restart the controller to reload)."""
    global _cache
    loaded = _cache
    if loaded is not None:
        # Asked once per pushed item: no lock once loaded (reading the name is atomic).
        return loaded
    with _lock:
        if _cache is None:
            _cache = _load_file(_override_file) if _override_file else _load_packaged()
        return _cache


def profile_scope(profile_id: str) -> ProfileView | None:
    """The profile called ``profile_id``, or None when there is no such profile."""
    return profiles().get(profile_id)


def allowed_fields(
    profile_id: str, record_type: str, programme: str | None = None
) -> frozenset[str] | None:
    """The fields ``profile_id`` may receive for ``record_type`` (on ``programme``).

    None when the profile does not exist or does not cover that record type at all. The
    identifier fields every share carries (:data:`IDENTIFIER_FIELDS`) are not included.
    """
    view = profile_scope(profile_id)
    if view is None:
        return None
    if programme is not None and programme in view.programme_records:
        return view.programme_records[programme].get(record_type)
    return view.records.get(record_type)


def identifier_fields() -> frozenset[str]:
    """Fields every share carries besides the profile's: ids, never personal data."""
    try:
        from keyworker_app.sharing import IDENTIFIER_FIELDS
    except ImportError:
        return _IDENTIFIER_FIELDS
    return frozenset(IDENTIFIER_FIELDS)


# Mirrors keyworker_app.sharing.IDENTIFIER_FIELDS for when that module is not importable.
_IDENTIFIER_FIELDS = frozenset({"id", "version", "record_type", "participant_id"})
