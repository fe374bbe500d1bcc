"""PDFs made in memory with Qt, a viewer for them, and printing.

Nothing here touches the disk: a document is laid out as a ``QTextDocument`` (images added
as in-memory resources), written by ``QPdfWriter`` into a ``QBuffer`` and returned as bytes
for the store. The viewer uses QtPdf's ``QPdfView`` when this PySide6 has it; the
PySide6-Essentials wheel does not, so otherwise it shows the same document the PDF was made
from, with a plain message saying so and whether the stored PDF's fingerprint matches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QMarginsF, QUrl
from PySide6.QtGui import QImage, QPageLayout, QPageSize, QPdfWriter, QTextDocument
from PySide6.QtPrintSupport import QPrintDialog, QPrinter
from PySide6.QtWidgets import QLabel, QPushButton, QTextBrowser, QVBoxLayout, QWidget

try:  # QtPdf is not in PySide6-Essentials; use it when a fuller PySide6 is installed.
    from PySide6.QtPdf import QPdfDocument
    from PySide6.QtPdfWidgets import QPdfView
    HAS_QTPDF = True
except ImportError:
    HAS_QTPDF = False

PDF_MEDIA_TYPE = "application/pdf"
_RESOLUTION_DPI = 300


@dataclass(frozen=True)
class PrintableDocument:
    """A document to turn into a PDF or print: HTML plus in-memory images it refers to."""

    title: str
    html: str
    images: Mapping[str, bytes] = field(default_factory=dict)

    def text_document(self) -> QTextDocument:
        """The document laid out by Qt, with its images as resources (never files)."""
        document = QTextDocument()
        document.setMetaInformation(QTextDocument.MetaInformation.DocumentTitle, self.title)
        for name, data in self.images.items():
            image = QImage.fromData(data)
            document.addResource(QTextDocument.ResourceType.ImageResource, QUrl(name), image)
        document.setHtml(self.html)
        return document


def render_pdf(document: PrintableDocument) -> bytes:
    """The document as PDF bytes, written to memory."""
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    writer = QPdfWriter(buffer)
    writer.setTitle(document.title)
    writer.setCreator("Keyworker")
    writer.setResolution(_RESOLUTION_DPI)
    writer.setPageLayout(QPageLayout(QPageSize(QPageSize.PageSizeId.A4), QPageLayout.Orientation.Portrait,
                                     QMarginsF(15, 15, 15, 15), QPageLayout.Unit.Millimeter))
    text = document.text_document()
    text.print_(writer)
    del writer  # finishes the PDF into the buffer
    buffer.close()
    return bytes(data.data())


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def print_document(document: PrintableDocument, printer: QPrinter) -> None:
    """Print the document on ``printer`` (chosen by the keyworker in a print dialog)."""
    document.text_document().print_(printer)


def make_print_dialog(printer: QPrinter, parent: QWidget | None = None) -> QPrintDialog:
    """A print dialog for ``printer``, not yet shown (the caller runs ``exec``)."""
    dialog = QPrintDialog(printer, parent)
    dialog.setWindowTitle("Print")
    return dialog


class PdfViewer(QWidget):
    """Shows a stored PDF, and prints it; see the module docstring for the fallback."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._document: PrintableDocument | None = None
        self._pdf = b""
        self.message = QLabel(self)
        self.message.setWordWrap(True)
        self.preview = QTextBrowser(self)
        self.preview.setAccessibleName("Form as printed")
        self.pdf_view: QWidget | None = None
        self._pdf_document: object | None = None
        self.print_button = QPushButton("Print…", self)
        self.print_button.setAccessibleName("Print the form")
        self.print_button.clicked.connect(self.print_with_dialog)
        self._layout = QVBoxLayout(self)
        self._layout.addWidget(self.message)
        self._layout.addWidget(self.preview, 1)
        self._layout.addWidget(self.print_button)
        self.clear()

    def clear(self) -> None:
        self._document = None
        self._pdf = b""
        self.message.setText("No PDF yet.")
        self.preview.clear()
        self.preview.hide()
        self.print_button.setEnabled(False)

    def show_pdf(self, pdf: bytes, expected_sha256: str, document: PrintableDocument) -> None:
        """Show ``pdf``; ``document`` is what it was made from (for the fallback and printing)."""
        self._pdf = pdf
        self._document = document
        matches = sha256_hex(pdf) == expected_sha256
        check = ("Its fingerprint matches the one recorded when it was signed."
                 if matches else
                 "Warning: its fingerprint does not match the one recorded. Tell your manager.")
        size = f"{max(len(pdf) // 1024, 1)} KB"
        if HAS_QTPDF:
            self._show_with_qtpdf(pdf)
            self.message.setText(f"Stored PDF, {size}. {check}")
        else:
            self.message.setText(
                f"Stored PDF, {size}. {check} This computer has no PDF viewer built in, so the "
                "form is shown below as it was printed into the PDF.")
            self.preview.setDocument(document.text_document())
            self.preview.show()
        self.print_button.setEnabled(True)

    def _show_with_qtpdf(self, pdf: bytes) -> None:  # pragma: no cover - needs QtPdf
        buffer = QBuffer(self)
        buffer.setData(QByteArray(pdf))
        buffer.open(QIODevice.OpenModeFlag.ReadOnly)
        doc = QPdfDocument(self)
        doc.load(buffer)
        if self.pdf_view is None:
            self.pdf_view = QPdfView(self)
            self.pdf_view.setAccessibleName("Stored PDF")
            self._layout.insertWidget(1, self.pdf_view, 1)
        self.pdf_view.setDocument(doc)  # type: ignore[union-attr]
        self._pdf_document = (doc, buffer)
        self.preview.hide()

    @property
    def pdf(self) -> bytes:
        return self._pdf

    def printer_and_dialog(self) -> tuple[QPrinter, QPrintDialog]:
        """A printer and its dialog, ready to ``exec`` (tests construct them without showing)."""
        printer = QPrinter(QPrinter.PrinterMode.HighResolution)
        return printer, make_print_dialog(printer, self)

    def print_with_dialog(self) -> None:
        if self._document is None:
            return
        printer, dialog = self.printer_and_dialog()
        if dialog.exec() == QPrintDialog.DialogCode.Accepted:
            print_document(self._document, printer)
