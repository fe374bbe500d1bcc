"""Keyworker's core: records, the encrypted store, security, forms, consent and sharing rules.

Imports neither PySide6 nor httpx (a contract in the test suite keeps it so).
"""

__version__ = "0.1.0"
