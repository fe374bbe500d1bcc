"""The encrypted store against plain SQLite, same schema and same code, side by side.

    python bench/store.py [--participants 50000] [--searches 300] [--updates 300] [--warm 100]

One workload runs in one process, in lockstep (each batch and each read on every store back
to back, so a busy moment costs all alike), on three stores with the identical schema,
pragmas and Store code: SQLCipher with its key (the real store), the same sqlcipher3
library with no key, and the standard library's plain ``sqlite3``. encrypted/plain is the
whole price against plain SQLite; encrypted/unkeyed is the price of encryption alone (the
rest is the sqlcipher3 build and binding). What one update costs is also counted, not
timed: the pages it writes to the WAL and reads from the files, which is what encryption
charges for (each written page is sealed, each read one decrypted). Then unlocking
(Argon2id at the calibrated cost plus open) and reopening with the raw key are timed. Prints a table and, as its last line, one JSON
object of every figure. Nothing here passes or fails: it measures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from keyworker_app.demo import save_caseload  # noqa: E402
from keyworker_app.paths import app_paths  # noqa: E402
from keyworker_app.profile import KeyFile, Profile  # noqa: E402
from keyworker_app.security import (  # noqa: E402
    derive_passphrase_key, key_encryption_key, load_device_secret, unwrap_key,
)
from keyworker_app.store.database import STATEMENT_CACHE, Database  # noqa: E402
from keyworker_app.store.store import Store  # noqa: E402
from keyworker_app.synthetic import generate_caseload  # noqa: E402

PASSPHRASE = "benchmark passphrase 2026"


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def p95(values: list[float]) -> float:
    return sorted(values)[int(0.95 * (len(values) - 1))]


def lockstep(stores: dict[str, Store], op: Callable[[Store, Any], Any], args: list[Any]) -> dict[str, list[float]]:
    """Each call on every store back to back, so a busy moment costs both sides alike. The
    order turns round with each call, so that no store always goes first (after a pause) or
    last (after the others' writes and fsyncs)."""
    times: dict[str, list[float]] = {name: [] for name in stores}
    order = list(stores.items())
    for i, arg in enumerate(args):
        shift = i % len(order)
        for name, store in order[shift:] + order[:shift]:
            start = time.perf_counter()
            op(store, arg)
            times[name].append(time.perf_counter() - start)
    return times


def workload(stores: dict[str, Store], cases: list[Any], searches: int, updates: int, warm: int,
             seed: int, counted_updates: int = 100) -> dict[str, dict[str, float]]:
    """The same workload on every store, in lockstep; figures per store name."""
    rng = random.Random(seed)
    figures: dict[str, dict[str, float]] = {name: {} for name in stores}
    batches = [cases[i:i + 500] for i in range(0, len(cases), 500)]
    created = lockstep(stores, lambda st, batch: save_caseload(st, batch), batches)
    people = [c.participant for c in cases]
    names = [p.family_name[: rng.randint(3, max(3, len(p.family_name)))] for p in rng.sample(people, searches)]
    nis = [p.ni_number for p in rng.sample(people, searches) if p.ni_number]
    ids = [p.id for p in rng.sample(people, searches)]
    day = ids[:warm]  # a day's caseload work: the same few people opened again and again

    def open_file(st: Store, pid: str) -> Any:
        return st.participant_file(pid, audit_view=False)

    def search(st: Store, text: str) -> Any:
        return st.participants.search(text, limit=50)

    # First touch: pages come from the file (decrypted and checked, for SQLCipher).
    first_open = lockstep(stores, open_file, ids)
    first_names = lockstep(stores, search, names)
    first_nis = lockstep(stores, search, nis)
    # Warm: the same reads again, from the page cache.
    name_times = lockstep(stores, search, names)
    ni_times = lockstep(stores, search, nis)
    open_times = lockstep(stores, open_file, day + day)
    sample = rng.sample(ids, min(updates, len(ids)))
    update_times = lockstep(stores, lambda st, pid: st.save(st.participants.get(pid).replace(phone="07700 900555")),
                            sample)
    # What an update costs in pages, counted rather than timed: the pages it appends to the
    # WAL (each one encrypted and sealed in the real store) and the pages it reads from the
    # files (each one decrypted and checked). The same edit on the same people everywhere:
    # people opened first, as the timed updates were, but not updated yet.
    timed = set(ids)
    counted = [p.id for p in rng.sample(people, min(len(people), 2 * counted_updates)) if p.id not in timed]
    counted = counted[:counted_updates]
    page_counts = {name: pages_per_update(st, counted) for name, st in stores.items()}
    for name in stores:
        f = figures[name]
        f["create_s"] = sum(created[name])
        f["first_open_participant_median_ms"] = statistics.median(first_open[name]) * 1000
        f["first_search_name_median_ms"] = statistics.median(first_names[name]) * 1000
        f["first_search_ni_median_ms"] = statistics.median(first_nis[name]) * 1000
        f["search_name_median_ms"] = statistics.median(name_times[name]) * 1000
        f["search_name_p95_ms"] = p95(name_times[name]) * 1000
        f["search_ni_median_ms"] = statistics.median(ni_times[name]) * 1000
        f["open_participant_median_ms"] = statistics.median(open_times[name][len(day):]) * 1000
        f["update_median_ms"] = statistics.median(update_times[name]) * 1000
        f["update_pages_written"], f["update_pages_read"] = page_counts[name]
    return figures


def read_bytes() -> int:
    """Bytes this process has read through system calls so far (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/io", encoding="ascii") as io:
            return next(int(line.split()[1]) for line in io if line.startswith("rchar:"))
    except OSError:
        return 0


def pages_per_update(st: Store, pids: list[str]) -> tuple[float, float]:
    """Pages one update appends to the WAL and reads from the files, on average over
    ``pids`` (each opened first, then updated once)."""
    conn = st.db.conn
    page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    for pid in pids:
        st.participant_file(pid, audit_view=False)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA wal_autocheckpoint = 0")  # nothing moves the WAL back to its start
    try:
        before = read_bytes()
        for pid in pids:
            st.save(st.participants.get(pid).replace(phone="07700 900556"))
        read = read_bytes() - before
        wal_bytes = Path(f"{st.db.path}-wal").stat().st_size
    finally:
        conn.execute("PRAGMA wal_autocheckpoint = 1000")  # SQLite's default, which the store keeps
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    # A 32-byte WAL header, then one frame (a 24-byte header and the page) per page written.
    return (wal_bytes - 32) / (page_size + 24) / len(pids), read / page_size / len(pids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--participants", type=int, default=50_000)
    parser.add_argument("--searches", type=int, default=300)
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--warm", type=int, default=100, help="participants in the warm (repeated) set")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="kw-bench-"))
    try:
        gen_s, cases = timed(lambda: list(generate_caseload(args.participants, seed=args.seed,
                                                             programme="working_well_ses")))
        print(f"generated {len(cases)} synthetic case files in {gen_s:.1f} s")

        # Encrypted: a real profile (calibrated KDF). Plain: the same schema and Store code on
        # sqlite3. The workload runs on both in lockstep.
        paths = app_paths(work / "encrypted")
        profile = Profile.at(paths)
        create_s, (store, _) = timed(lambda: profile.create("KW-BENCH", "working_well_ses", PASSPHRASE))
        plain_db = Database.connect_plain(work / "plain.db")
        plain_db.migrate()
        # The same library as the real store with no key: separates what encryption costs
        # from what the sqlcipher3 build and binding cost against the standard sqlite3.
        unkeyed_db = connect_unkeyed(work / "unkeyed.db")
        unkeyed_db.migrate()
        runs = workload({"encrypted": store, "unkeyed": Store(unkeyed_db, "KW-BENCH"),
                         "plain": Store(plain_db, "KW-BENCH")},
                        cases, args.searches, args.updates, args.warm, args.seed)
        enc, unkeyed, plain = runs["encrypted"], runs["unkeyed"], runs["plain"]
        store.close()
        plain_db.close()
        unkeyed_db.close()

        unlock_times = [timed(lambda: profile.unlock(PASSPHRASE))[0] for _ in range(3)]
        # Reopen with the raw key: what reconnecting costs once the key is unwrapped.
        kf = KeyFile.read(paths.keyfile)
        secret = load_device_secret(kf.keyring_entry) if kf.uses_device_secret else None
        kek = key_encryption_key(derive_passphrase_key(PASSPHRASE, kf.kdf), secret)
        data_key = unwrap_key(kek, kf.wrapped, kf.aad())
        assert data_key is not None
        reopen = []
        for _ in range(10):
            t, db = timed(lambda: Database.connect_encrypted(paths.database, data_key, kf.cipher, create=False))
            reopen.append(t)
            db.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rows = [("create all case files (s)", "create_s"),
            ("first open participant median (ms)", "first_open_participant_median_ms"),
            ("first name search median (ms)", "first_search_name_median_ms"),
            ("first NI search median (ms)", "first_search_ni_median_ms"),
            ("warm name search median (ms)", "search_name_median_ms"),
            ("warm name search p95 (ms)", "search_name_p95_ms"), ("warm NI search median (ms)", "search_ni_median_ms"),
            ("warm open participant median (ms)", "open_participant_median_ms"),
            ("update one median (ms)", "update_median_ms"),
            ("update one: pages written (WAL frames)", "update_pages_written"),
            ("update one: pages read from the files", "update_pages_read")]
    print(f"\n{args.participants} participants; SQLCipher {sqlcipher_version()} vs sqlite3 {sqlite3.sqlite_version}")
    print(f"{'operation':36} {'encrypted':>10} {'unkeyed':>10} {'plain':>10} {'enc/plain':>9} {'enc/unkeyed':>11}")
    figures: dict[str, Any] = {"participants": args.participants, "generate_s": round(gen_s, 2),
                               "profile_create_s": round(create_s, 3)}
    for label, key in rows:
        ratio = enc[key] / plain[key] if plain[key] else float("nan")
        own = enc[key] / unkeyed[key] if unkeyed[key] else float("nan")
        print(f"{label:36} {enc[key]:10.3f} {unkeyed[key]:10.3f} {plain[key]:10.3f} {ratio:9.2f} {own:11.2f}")
        figures[f"encrypted_{key}"] = round(enc[key], 4)
        figures[f"unkeyed_{key}"] = round(unkeyed[key], 4)
        figures[f"plain_{key}"] = round(plain[key], 4)
        figures[f"ratio_{key}"] = round(ratio, 3)
        figures[f"encryption_only_ratio_{key}"] = round(own, 3)
    figures["unlock_median_s"] = round(statistics.median(unlock_times), 3)
    figures["reopen_raw_key_median_ms"] = round(statistics.median(reopen) * 1000, 2)
    print(f"{'unlock: Argon2id + open (s)':34} {figures['unlock_median_s']:11.3f}")
    print(f"{'reopen with raw key (ms)':34} {figures['reopen_raw_key_median_ms']:11.3f}")
    print(json.dumps(figures))


def connect_unkeyed(path: Path) -> Database:
    import sqlcipher3  # type: ignore[import-untyped]

    conn = sqlcipher3.connect(str(path), isolation_level=None, check_same_thread=False,
                              cached_statements=STATEMENT_CACHE)
    db = Database(conn, path, encrypted=False)
    db._configure()
    return db


def sqlcipher_version() -> str:
    import sqlcipher3  # type: ignore[import-untyped]
    conn = sqlcipher3.connect(":memory:")
    version = str(conn.execute("PRAGMA cipher_version").fetchone()[0])
    conn.close()
    return version


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
