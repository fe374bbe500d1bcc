"""PDFs made in memory with Qt, a viewer for them, and printing.

Nothing here touches the disk: a document is laid out as a ``QTextDocument`` (images added
as in-memory resources), written by ``QPdfWriter`` into a ``QBuffer`` and returned as bytes
for the store. The viewer draws the stored PDF's own pages with PDFium (``pypdfium2``:
QtPdf is not in the PySide6-Essentials wheel), so what is seen and printed is what was signed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QMarginsF, QRect, Qt, QUrl
from PySide6.QtGui import QImage, QPageLayout, QPageSize, QPagedPaintDevice, QPainter, QPdfWriter, QPixmap, QTextDocument
from PySide6.QtPrintSupport import QPrintDialog, QPrinter
from PySide6.QtWidgets import QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget

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
    """Shows the stored PDF itself, page by page, and prints those same pages.

    Pages are drawn by PDFium (``pypdfium2``) straight from the bytes in the store, so
    what the keyworker sees and prints is exactly what was signed, with its fingerprint
    checked against the one recorded.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._pdf = b""
        self._pages: list[QImage] = []
        self.message = QLabel(self)
        self.message.setWordWrap(True)
        self.message.setAccessibleName("About this PDF")
        self._page_box = QWidget(self)
        self._page_layout = QVBoxLayout(self._page_box)
        self.scroll = QScrollArea(self)
        self.scroll.setWidgetResizable(True)
        self.scroll.setWidget(self._page_box)
        self.scroll.setAccessibleName("Stored PDF pages")
        self.print_button = QPushButton("Print…", self)
        self.print_button.setAccessibleName("Print the form")
        self.print_button.clicked.connect(self.print_with_dialog)
        layout = QVBoxLayout(self)
        layout.addWidget(self.message)
        layout.addWidget(self.scroll, 1)
        layout.addWidget(self.print_button)
        self.clear()

    def clear(self) -> None:
        self._pdf = b""
        self._pages = []
        self._show_pages()
        self.message.setText("No PDF yet.")
        self.print_button.setEnabled(False)

    def show_pdf(self, pdf: bytes, expected_sha256: str) -> None:
        """Show ``pdf`` from the store, saying whether it is the one that was signed."""
        self._pdf = pdf
        matches = sha256_hex(pdf) == expected_sha256
        check = ("Its fingerprint matches the one recorded when it was signed."
                 if matches else
                 "Warning: its fingerprint does not match the one recorded. Tell your manager.")
        try:
            self._pages = pdf_page_images(pdf)
        except PdfUnreadable:
            self._pages = []
            self._show_pages()
            self.message.setText("The stored PDF could not be opened: it is damaged. "
                                 "Nothing was changed; tell your IT team. " + check)
            self.print_button.setEnabled(False)
            return
        self._show_pages()
        count = len(self._pages)
        self.message.setText(f"Stored PDF, {count} page{'s' if count != 1 else ''}. {check}")
        self.print_button.setEnabled(bool(self._pages))

    def _show_pages(self) -> None:
        while self._page_layout.count():
            item = self._page_layout.takeAt(0)
            if item is not None and item.widget() is not None:
                item.widget().deleteLater()  # type: ignore[union-attr]
        for number, image in enumerate(self._pages, start=1):
            label = QLabel(self._page_box)
            label.setPixmap(QPixmap.fromImage(image))
            label.setAccessibleName(f"Page {number} of {len(self._pages)}")
            self._page_layout.addWidget(label)

    @property
    def pdf(self) -> bytes:
        return self._pdf

    @property
    def page_count(self) -> int:
        return len(self._pages)

    def printer_and_dialog(self) -> tuple[QPrinter, QPrintDialog]:
        """A printer and its dialog, ready to ``exec`` (tests construct them without showing)."""
        printer = QPrinter(QPrinter.PrinterMode.HighResolution)
        return printer, make_print_dialog(printer, self)

    def print_pages(self, printer: QPrinter) -> None:
        """Print the stored PDF's own pages, each scaled to the printer's page."""
        print_pdf(self._pdf, printer)

    def print_with_dialog(self) -> None:
        if not self._pdf:
            return
        printer, dialog = self.printer_and_dialog()
        if dialog.exec() == QPrintDialog.DialogCode.Accepted:
            self.print_pages(printer)


class PdfUnreadable(Exception):
    """Stored PDF bytes that PDFium cannot open."""


def pdf_page_images(pdf: bytes, scale: float = 1.5) -> list[QImage]:
    """Every page of ``pdf`` drawn to an image in memory (no files)."""
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(pdf)
    except pdfium.PdfiumError as exc:
        raise PdfUnreadable() from exc
    images: list[QImage] = []
    try:
        for index in range(len(document)):
            page = document[index]
            bitmap = page.render(scale=scale, rev_byteorder=True)  # RGB, 3 bytes a pixel
            image = QImage(bytes(bitmap.buffer), bitmap.width, bitmap.height, bitmap.stride,
                           QImage.Format.Format_RGB888)
            images.append(image.copy())  # own the pixels before PDFium frees its buffer
            page.close()
    finally:
        document.close()
    return images


def print_pdf(pdf: bytes, printer: QPagedPaintDevice) -> int:
    """Print the pages of ``pdf`` on ``printer`` (a QPrinter, or a QPdfWriter in tests);
    returns how many pages were printed."""
    pages = pdf_page_images(pdf, scale=min(printer.logicalDpiX(), 300) / 72)
    painter = QPainter()
    if not painter.begin(printer):
        return 0
    try:
        for number, image in enumerate(pages):
            if number:
                printer.newPage()
            target = painter.viewport()
            size = image.size().scaled(target.size(), Qt.AspectRatioMode.KeepAspectRatio)
            painter.drawImage(QRect(target.topLeft(), size), image)
    finally:
        painter.end()
    return len(pages)
