"""A start-up check for a PySide6 build that would crash the app after a while.

PySide6 6.12.0 on Python 3.11 returns ``None`` (from every method that returns nothing:
``setText``, ``start``, ``processEvents``…) and ``True`` (from ``Signal.emit``) without
taking a reference. Each call takes one reference away from the interpreter's ``None`` or
``True``; after some thousands of calls — minutes of normal use — Python aborts with
"Fatal Python error: none_dealloc". Python 3.12+ makes both immortal, which hides it, and
PySide6 6.11.3 does not have it. The fix is the dependency pin (``PySide6-Essentials``
``!=6.12.0``); this check says so plainly instead of letting the app die mid-visit.
"""

from __future__ import annotations

import sys

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import QObject


def loses_references(calls: int = 50) -> bool:
    """Whether calls returning nothing take a reference from ``None`` on this build."""
    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(calls):
        probe.setObjectName("")
    lost = before - sys.getrefcount(None)
    if lost >= calls:
        import ctypes

        give_back = ctypes.pythonapi.Py_IncRef
        give_back.argtypes = [ctypes.py_object]
        for _ in range(lost):  # return what the probe itself took
            give_back(None)
        return True
    return False


def problem() -> str:
    """A plain description of the problem, or "" when this PySide6 is sound."""
    if not loses_references():
        return ""
    return (f"This copy of Keyworker runs on PySide6 {pyside_version} with Python "
            f"{sys.version_info.major}.{sys.version_info.minor}, a combination with a known "
            "fault that can close the app without warning after some minutes of use. Your "
            "saved work and drafts are safe in the encrypted store, but ask your IT team to "
            "install PySide6 6.11.3 (or use Python 3.12 or newer).")
