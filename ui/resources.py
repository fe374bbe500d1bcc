"""Files the UI reads from ``resources/`` (the stylesheet), through importlib.resources."""

from __future__ import annotations

from importlib import resources

from PySide6.QtWidgets import QApplication

STYLESHEET = ("styles", "keyworker.qss")


def stylesheet() -> str:
    """The app's one stylesheet, from the installed ``resources`` package."""
    return resources.files("resources").joinpath(*STYLESHEET).read_text(encoding="utf-8")


def apply_style(app: QApplication) -> None:
    """Use the Fusion style (the same on every platform) with Keyworker's stylesheet."""
    app.setStyle("Fusion")
    app.setStyleSheet(stylesheet())


def restyle(widget: object) -> None:
    """Re-apply the stylesheet after a dynamic property (``role``, ``state``) changed."""
    style = widget.style()  # type: ignore[attr-defined]
    style.unpolish(widget)
    style.polish(widget)
