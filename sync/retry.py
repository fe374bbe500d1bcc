"""The one place retries are declared (STYLE habit 8).

Every request the sync makes goes through :meth:`RetryPolicy.delay_before`: exponential
backoff with full jitter (a random wait between 0 and ``min(cap, base * 2**n)``), and a
``Retry-After`` from a 429 or 503 answer honoured as given, in seconds or as an HTTP date.
The random source and the sleep are injectable so tests run without waiting.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

#: Answers worth trying again: busy, or a gateway or server that may recover.
RETRYABLE_STATUSES: frozenset[int] = frozenset({429, 500, 502, 503, 504})
#: Answers whose Retry-After header is honoured.
RETRY_AFTER_STATUSES: frozenset[int] = frozenset({429, 503})


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a request is tried.

    ``max_attempts`` counts the first try. Backoff before retry ``n`` (1-based) is a
    uniform random value in ``[0, min(cap_seconds, base_seconds * 2**(n-1))]`` (full
    jitter). A ``Retry-After`` longer than ``max_retry_after_seconds`` is not waited for:
    the run stops and says the controller is busy.
    """

    max_attempts: int = 5
    base_seconds: float = 0.5
    cap_seconds: float = 30.0
    max_retry_after_seconds: float = 120.0
    statuses: frozenset[int] = RETRYABLE_STATUSES
    random: Callable[[], float] = field(default=random.random, compare=False, repr=False)
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)
    now: Callable[[], datetime] = field(default=_utcnow, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_seconds < 0 or self.cap_seconds < 0 or self.max_retry_after_seconds < 0:
            raise ValueError("retry times cannot be negative")

    def backoff_ceiling(self, retry: int) -> float:
        """The most we might wait before retry number ``retry`` (1-based)."""
        return float(min(self.cap_seconds, self.base_seconds * (2 ** max(0, retry - 1))))

    def backoff(self, retry: int) -> float:
        """A full-jitter wait before retry number ``retry`` (1-based)."""
        return self.random() * self.backoff_ceiling(retry)

    def should_retry(self, attempt: int) -> bool:
        """Whether another try is allowed after ``attempt`` tries (1-based)."""
        return attempt < self.max_attempts

    def delay_before(self, retry: int, retry_after: str | None = None) -> float | None:
        """Seconds to wait before retry ``retry``, or None when Retry-After is too long."""
        if retry_after is not None:
            seconds = parse_retry_after(retry_after, self.now())
            if seconds is not None:
                return None if seconds > self.max_retry_after_seconds else seconds
        return self.backoff(retry)


def parse_retry_after(value: str, now: datetime) -> float | None:
    """A ``Retry-After`` header as seconds from ``now`` (never negative), or None if invalid.

    Both forms of RFC 9110 are accepted: delay-seconds (``"120"``) and an HTTP-date
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``).
    """
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - now).total_seconds())
