"""Code lists: the fixed sets of answers a question allows, kept as data in ``resources``.

Each list is one JSON file in ``resources/codelists/`` named after its id::

    {"id": "mhsds_employment_status", "version": 1, "title": "...", "source": "...",
     "codes": [{"code": "01", "label": "Employed"}, ...]}

A code may also carry a ``group`` (for example the ONS high-level ethnic group, or what a
piece of ESF evidence proves) so a screen can set the options out under headings.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from keyworker_app.errors import DataFileError

_PACKAGE = "resources"
_FOLDER = "codelists"
_LIST_KEYS = frozenset({"id", "version", "title", "source", "notes", "codes"})
_CODE_KEYS = frozenset({"code", "label", "group"})


class CodeListError(DataFileError):
    """A code list that cannot be used."""

    kind = "Code list"


class CodeListNotFound(CodeListError):
    """No code list has that id."""


class MalformedCodeList(CodeListError):
    """A code list file that is not shaped as a code list must be."""


@dataclass(frozen=True)
class Code:
    """One allowed answer: the ``code`` stored, and the ``label`` a person reads."""

    code: str
    label: str
    group: str = ""


@dataclass(frozen=True)
class CodeList:
    """A versioned set of codes; ``"01" in codelist`` tests membership."""

    id: str
    version: int
    title: str
    codes: tuple[Code, ...]
    source: str = ""
    _labels: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Frozen, so the lookup table is set once through object.__setattr__.
        object.__setattr__(self, "_labels", {c.code: c.label for c in self.codes})

    def __contains__(self, code: object) -> bool:
        return code in self._labels

    def label(self, code: str) -> str:
        """The words shown for ``code``; ``KeyError`` when the list has no such code."""
        return self._labels[code]

    @property
    def values(self) -> tuple[str, ...]:
        """The codes alone, in the list's order."""
        return tuple(self._labels)


def _require_text(data: dict[str, Any], key: str, source: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise MalformedCodeList(source, f"{where} needs '{key}' as non-empty text")
    return value


def _parse_code(entry: Any, source: str, position: int) -> Code:
    where = f"code number {position}"
    if not isinstance(entry, dict):
        raise MalformedCodeList(source, f"{where} is not an object")
    unknown = sorted(set(entry) - _CODE_KEYS)
    if unknown:
        raise MalformedCodeList(source, f"{where} has unknown keys {unknown}")
    group = entry.get("group", "")
    if not isinstance(group, str):
        raise MalformedCodeList(source, f"{where} has a 'group' that is not text")
    return Code(
        code=_require_text(entry, "code", source, where),
        label=_require_text(entry, "label", source, where),
        group=group,
    )


def parse_codelist(text: str, source: str) -> CodeList:
    """A code list from the JSON ``text`` of the file named ``source``, checked for shape."""
    data = MalformedCodeList.read_object(text, source)
    unknown = sorted(set(data) - _LIST_KEYS)
    if unknown:
        raise MalformedCodeList(source, f"unknown keys {unknown}")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise MalformedCodeList(source, "'version' must be a whole number of 1 or more")
    entries = data.get("codes")
    if not isinstance(entries, list) or not entries:
        raise MalformedCodeList(source, "'codes' must be a non-empty list")
    codes = tuple(_parse_code(entry, source, n) for n, entry in enumerate(entries, 1))
    seen: set[str] = set()
    for code in codes:
        if code.code in seen:
            raise MalformedCodeList(source, f"code '{code.code}' appears more than once")
        seen.add(code.code)
    source_note = data.get("source", "")
    return CodeList(
        id=_require_text(data, "id", source, "the list"),
        version=version,
        title=_require_text(data, "title", source, "the list"),
        codes=codes,
        source=source_note if isinstance(source_note, str) else "",
    )


def list_codelists() -> tuple[str, ...]:
    """The ids of every code list the app ships, sorted."""
    folder = resources.files(_PACKAGE).joinpath(_FOLDER)
    return tuple(
        sorted(
            entry.name.removesuffix(".json")
            for entry in folder.iterdir()
            if entry.name.endswith(".json")
        )
    )


@functools.cache
def load_codelist(name: str) -> CodeList:
    """The code list ``name`` from ``resources/codelists/<name>.json`` (read once, then cached)."""
    file_name = f"{name}.json"
    if not re.fullmatch(r"[a-z0-9_]+", name):
        # Only plain ids: a name is never allowed to reach outside the code list folder.
        raise CodeListNotFound(file_name, "code list names use only a-z, 0-9 and _")
    entry = resources.files(_PACKAGE).joinpath(_FOLDER, file_name)
    if not entry.is_file():
        raise CodeListNotFound(file_name, "there is no code list with this name")
    codelist = parse_codelist(entry.read_text(encoding="utf-8"), file_name)
    if codelist.id != name:
        raise MalformedCodeList(file_name, f"its id '{codelist.id}' does not match the file name")
    return codelist
