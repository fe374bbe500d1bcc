"""How the desktop feels with a big caseload: figures, never a pass/fail.

Builds (once, into a cache folder) a profile of 100,000 synthetic participants with their
full case files from ``keyworker_app.synthetic``, then in one run measures, side by side
with starting an empty ``QMainWindow`` (the baseline):

- start to the first window (the unlock screen, built and shown);
- start to an unlocked caseload (window built, passphrase entered, key derived with the
  organisation's real Argon2id cost, first page of the list shown);
- each search-as-you-type keystroke to the updated list (p50 / p95), with the debounce
  left out (it is a fixed wait, printed alongside);
- each caseload filter to the updated list (its first rows: a long list's count may follow);
- opening a participant's record (read, audited, rendered);
- GUI-thread stalls: a 10 ms ``QTimer`` heartbeat runs throughout and every gap longer
  than 50 ms is counted, with the longest, per phase; and the longest gap in the GUI
  thread's own processor time (what the app held it for, whatever else the machine ran);
- when the caseload reader had warmed the store's page cache for searching (it starts once
  the first list is shown; the search phase starts at once, so the first keystrokes race
  it), how many keystrokes came before that, and the pages the search phase read from the
  file (each one decrypted: a deterministic figure, from ``/proc/self/io`` on Linux).

Prints a table, then one JSON object of the figures as the last line::

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/ui.py [--participants 100000]

The first run spends a while building the profile (about 7 s per 1,000 participants on a
laptop); later runs reuse it from ``--cache``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

PASSPHRASE = "bench orchard kettle 1947 lamp"  # a profile of synthetic people only
SEED = 11


def default_cache(participants: int) -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("keyworker-bench")) / f"ui-{participants}"


def build_profile(folder: Path, participants: int) -> None:
    """The cached profile: real KDF cost, full synthetic case files, nothing real."""
    from keyworker_app.demo import save_caseload
    from keyworker_app.paths import app_paths
    from keyworker_app.profile import Profile
    from keyworker_app.synthetic import generate_caseload

    paths = app_paths(folder)
    done = folder / "BUILT"
    if done.exists():
        return
    if folder.exists():
        import shutil
        shutil.rmtree(folder)
    print(f"Building a profile of {participants:,} synthetic participants in {folder} (once)…",
          file=sys.stderr)
    started = time.perf_counter()
    store, _ = Profile.at(paths).create("KW-BENCH", "working_well_ses", PASSPHRASE)
    try:
        step = 5_000
        for first in range(0, participants, step):
            count = min(step, participants - first)
            # Each block has its own seed, so the build can be read as it goes.
            save_caseload(store, generate_caseload(count, seed=SEED * 1_000_003 + first,
                                                   keyworker_id="KW-BENCH"))
            print(f"  {first + count:,} saved ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    finally:
        store.close()
    done.write_text(str(participants))


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class Heartbeat:
    """A 10 ms timer on the GUI thread; a long gap between ticks is a stall.

    Each gap is also measured in the GUI thread's own processor time (``thread_time``):
    what the app itself held the thread for, without the time it waited for a processor
    that other programs had (on a busy machine a gap's wall time can be twice that)."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.last = time.perf_counter()
        self.last_cpu = time.thread_time()
        self.gaps: list[float] = []
        self.cpu_gaps: list[float] = []

    def _tick(self) -> None:
        now, now_cpu = time.perf_counter(), time.thread_time()
        self.gaps.append((now - self.last) * 1000)
        self.cpu_gaps.append((now_cpu - self.last_cpu) * 1000)
        self.last, self.last_cpu = now, now_cpu

    def start(self) -> None:
        self.last, self.last_cpu = time.perf_counter(), time.thread_time()
        self.gaps, self.cpu_gaps = [], []
        self.timer.start()

    def stop(self) -> dict[str, float]:
        self.timer.stop()
        stalls = [g for g in self.gaps if g > 50]
        return {"ticks": len(self.gaps), "stalls_over_50ms": len(stalls),
                "longest_gap_ms": round(max(self.gaps, default=0.0), 1),
                "gaps_over_30ms_cpu": sum(g > 30 for g in self.cpu_gaps),
                "longest_gap_cpu_ms": round(max(self.cpu_gaps, default=0.0), 1)}


def pump_until(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    """Run the event loop until ``condition()``, as ``app.exec()`` would: sleeping until
    the next event (an answer from a worker thread, a timer) rather than spinning. A
    spinning loop takes a core from the threads it waits for, which the app never does."""
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    deadline = time.perf_counter() + timeout
    wake = QTimer()  # the condition is checked at least every 5 ms, events or not
    wake.start(5)
    try:
        while not condition():
            QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents
                                       | QEventLoop.ProcessEventsFlag.WaitForMoreEvents)
            if time.perf_counter() > deadline:
                raise TimeoutError("gave up waiting")
    finally:
        wake.stop()


def bytes_read() -> int | None:
    """Bytes this process has read through read(2) so far (Linux), else None."""
    try:
        with open("/proc/self/io", encoding="ascii") as io:
            return next(int(line.split()[1]) for line in io if line.startswith("rchar:"))
    except (OSError, StopIteration, ValueError):
        return None


def settle() -> None:
    """Let queued paints and layout run, as the person would see the result."""
    from PySide6.QtWidgets import QApplication

    QApplication.processEvents()


def run(folder: Path, repeats: int, warm: bool = True, think_ms: int = 0) -> dict[str, Any]:
    from PySide6.QtWidgets import QMainWindow

    from keyworker_app.paths import app_paths
    from ui.app import make_application
    from ui.caseload import SEARCH_DEBOUNCE_MS
    from ui.models import FIRST_PAGE_SIZE
    from ui.window import MainWindow

    app = make_application([sys.argv[0]])
    figures: dict[str, Any] = {"participants": int((folder / "BUILT").read_text()),
                               "qpa": os.environ.get("QT_QPA_PLATFORM", ""), "warm": warm}
    if not warm:  # for comparison: the reader has nothing to warm, so it is done at once
        from ui.models import CaseloadQuery
        CaseloadQuery.warm_walks = lambda self: ()  # type: ignore[method-assign]
    beat = Heartbeat()

    # --- baseline: an empty QMainWindow, started and shown --------------------------------
    baseline: list[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        empty = QMainWindow()
        empty.resize(1280, 800)
        empty.show()
        settle()
        baseline.append((time.perf_counter() - t0) * 1000)
        empty.close()
        empty.deleteLater()
        settle()
    figures["baseline_empty_window_ms"] = round(statistics.median(baseline), 1)

    # --- start to an unlocked caseload ----------------------------------------------------
    starts: list[float] = []
    first_windows: list[float] = []
    window: MainWindow | None = None
    warmed_at: list[float] = []
    for i in range(repeats):
        beat.start()
        t0 = time.perf_counter()
        window = MainWindow(app_paths(folder))
        window.resize(1280, 800)
        window.show()
        settle()
        first_windows.append((time.perf_counter() - t0) * 1000)  # the unlock screen, shown
        warmed_at.clear()
        window.model.sig_warmed.connect(lambda: warmed_at.append(time.perf_counter()))
        window.start.unlock_page.passphrase.setText(PASSPHRASE)
        window.start.unlock_page.unlock_button.click()
        pump_until(lambda: window is not None and not window.locked and window.model.rowCount() > 0
                   and not window.model.loading)
        settle()
        shown_at = time.perf_counter()
        starts.append((shown_at - t0) * 1000)
        stalls = beat.stop()
        if i < repeats - 1:
            window.close()
            window.deleteLater()
            settle()
    assert window is not None
    figures["start_to_first_window_ms"] = round(statistics.median(first_windows), 1)
    figures["start_to_unlocked_caseload_ms"] = round(statistics.median(starts), 1)
    figures["start_ratio_to_baseline"] = round(figures["start_to_unlocked_caseload_ms"]
                                               / figures["baseline_empty_window_ms"], 1)
    figures["start_stalls"] = stalls

    # --- search as you type -----------------------------------------------------------------
    view = window.caseload
    model = window.model

    def answered() -> None:
        """Until the list shows the answer (the SQL runs on the caseload reader's thread)."""
        pump_until(lambda: not model.loading)
        settle()
    if think_ms > 0:  # the keyworker reads the list before typing (the app is idle meanwhile)
        beat.start()
        until = time.perf_counter() + think_ms / 1000
        pump_until(lambda: time.perf_counter() >= until)
        figures["think_ms"] = think_ms
        figures["think_stalls"] = beat.stop()
    words = ["ahmed", "smith", "kha", "m13", "ol1 1", "syn-", "ab12", "jones"]
    keystrokes: list[float] = []
    typed: list[str] = []
    before_warmed = 0
    read_before = bytes_read()
    beat.start()
    for _ in range(max(1, repeats)):
        for word in words:
            for n in range(1, len(word) + 1):
                before_warmed += not warmed_at
                t0 = time.perf_counter()
                view.search.setText(word[:n])
                view.search_now()  # the debounce is a fixed wait; measured without it
                answered()
                keystrokes.append((time.perf_counter() - t0) * 1000)
                typed.append(word[:n])
        view.clear_filters()
        answered()
    read_after = bytes_read()
    figures["search_keystroke_p50_ms"] = round(pct(keystrokes, 0.5), 1)
    figures["search_keystroke_p95_ms"] = round(pct(keystrokes, 0.95), 1)
    figures["search_keystroke_max_ms"] = round(max(keystrokes), 1)
    slowest = sorted(zip(keystrokes, typed), reverse=True)[:8]
    figures["search_slowest_ms"] = {f"{text} #{i}": round(ms, 1) for i, (ms, text) in enumerate(slowest)}
    figures["search_debounce_ms"] = SEARCH_DEBOUNCE_MS
    figures["search_stalls"] = beat.stop()
    figures["search_pages_read"] = (round((read_after - read_before) / 4096)
                                    if read_before is not None and read_after is not None else None)
    figures["cache_warmed_after_shown_ms"] = (round((warmed_at[0] - shown_at) * 1000, 1)
                                              if warmed_at else None)
    figures["keystrokes_before_warmed"] = before_warmed

    # --- filters ----------------------------------------------------------------------------
    filter_times: dict[str, float] = {}
    beat.start()
    for name, box in view.flag_boxes.items():
        t0 = time.perf_counter()
        box.setChecked(True)
        answered()
        filter_times[name] = round((time.perf_counter() - t0) * 1000, 1)
        box.setChecked(False)
        answered()
    t0 = time.perf_counter()
    view.status.setCurrentIndex(view.status.findData("on_hold"))
    answered()
    filter_times["status"] = round((time.perf_counter() - t0) * 1000, 1)
    view.clear_filters()
    answered()
    t0 = time.perf_counter()
    window.model.sort(3)  # review due
    answered()
    filter_times["sort_by_review_due"] = round((time.perf_counter() - t0) * 1000, 1)
    t0 = time.perf_counter()
    window.caseload.table.scrollToBottom()
    settle()
    # The next window is read off the GUI thread; it comes when the view asks for it.
    pump_until(lambda: model.rowCount() > FIRST_PAGE_SIZE or 0 <= model.total <= FIRST_PAGE_SIZE,
               timeout=30)
    settle()
    filter_times["scroll_to_end_of_first_page"] = round((time.perf_counter() - t0) * 1000, 1)
    figures["filter_ms"] = filter_times
    figures["filter_stalls"] = beat.stop()

    # --- opening a participant's record -----------------------------------------------------
    opens: list[float] = []
    shown: list[str] = []
    window.sig_record_shown.connect(shown.append)
    beat.start()
    for row in range(0, min(window.model.rowCount(), 20 * repeats)):
        before = len(shown)
        t0 = time.perf_counter()
        window.open_participant(window.model.participant_id(row))
        pump_until(lambda: len(shown) > before)
        settle()
        opens.append((time.perf_counter() - t0) * 1000)
    figures["open_record_p50_ms"] = round(pct(opens, 0.5), 1)
    figures["open_record_p95_ms"] = round(pct(opens, 0.95), 1)
    figures["open_record_stalls"] = beat.stop()
    window.close()
    app.processEvents()
    return figures


def print_table(f: dict[str, Any]) -> None:
    rows = [
        ("Empty QMainWindow, start to shown (baseline)", f"{f['baseline_empty_window_ms']} ms"),
        ("Keyworker, start to first window (unlock screen)", f"{f['start_to_first_window_ms']} ms"),
        ("Keyworker, start to unlocked caseload", f"{f['start_to_unlocked_caseload_ms']} ms "
         f"({f['start_ratio_to_baseline']}x baseline; includes the real Argon2id unlock)"),
        ("Search keystroke to updated list, p50", f"{f['search_keystroke_p50_ms']} ms"),
        ("Search keystroke to updated list, p95", f"{f['search_keystroke_p95_ms']} ms "
         f"(max {f['search_keystroke_max_ms']}; plus a {f['search_debounce_ms']} ms typing pause)"),
        ("Cache warmed for searching, after the caseload showed",
         f"{f['cache_warmed_after_shown_ms']} ms ({f['keystrokes_before_warmed']} keystrokes before)"),
        ("Pages read from the file while searching", f"{f['search_pages_read']}"),
        *[(f"Filter: {k}", f"{v} ms") for k, v in f["filter_ms"].items()],
        ("Open a participant record, p50", f"{f['open_record_p50_ms']} ms"),
        ("Open a participant record, p95", f"{f['open_record_p95_ms']} ms"),
        *[(f"GUI stalls >50 ms during {phase}", f"{f[f'{phase}_stalls']['stalls_over_50ms']} "
           f"(longest gap {f[f'{phase}_stalls']['longest_gap_ms']} ms; in the GUI thread's own "
           f"processor time {f[f'{phase}_stalls']['longest_gap_cpu_ms']} ms, "
           f"{f[f'{phase}_stalls']['gaps_over_30ms_cpu']} gaps over 30 ms)")
          for phase in ("start", "search", "filter", "open_record")],
    ]
    width = max(len(r[0]) for r in rows)
    print(f"Keyworker desktop with {f['participants']:,} synthetic participants ({f['qpa']})"
          + ("" if f["warm"] else ", page cache left cold")
          + (f", typing {f['think_ms']} ms after the caseload showed" if f.get("think_ms") else ""))
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=100_000)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--no-warm", action="store_true",
                        help="leave the page cache cold after the unlock (to compare)")
    parser.add_argument("--think-ms", type=int, default=0,
                        help="pause this long after the caseload shows before typing "
                             "(a person reading it); by default the first keystroke comes at once")
    args = parser.parse_args()
    folder = args.cache or default_cache(args.participants)
    build_profile(folder, args.participants)
    if args.build_only:
        return 0
    figures = run(folder, args.repeats, warm=not args.no_warm, think_ms=args.think_ms)
    print_table(figures)
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
