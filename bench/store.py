"""The encrypted store against plain SQLite, same schema and same code, side by side.

    python bench/store.py [--participants 50000] [--searches 300] [--updates 500]

One workload runs twice in one process: once on SQLCipher (the real store) and once on
plain ``sqlite3`` with the identical schema, pragmas and Store code, so the ratio is the
price of encryption alone. Then unlocking (Argon2id at the calibrated cost plus open) and
reopening with the raw key are timed. Prints a table and, as its last line, one JSON
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
from keyworker_app.records import Participant  # noqa: E402
from keyworker_app.security import (  # noqa: E402
    derive_passphrase_key, key_encryption_key, load_device_secret, unwrap_key,
)
from keyworker_app.store.database import CipherSettings, Database  # noqa: E402
from keyworker_app.store.store import Store  # noqa: E402
from keyworker_app.synthetic import generate_caseload  # noqa: E402

PASSPHRASE = "benchmark passphrase 2026"


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def per_call(fn: Callable[[Any], Any], args: list[Any]) -> list[float]:
    out = []
    for arg in args:
        start = time.perf_counter()
        fn(arg)
        out.append(time.perf_counter() - start)
    return out


def p95(values: list[float]) -> float:
    return sorted(values)[int(0.95 * (len(values) - 1))]


def workload(store: Store, cases: list[Any], searches: int, updates: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    figures: dict[str, float] = {}
    figures["create_s"], _ = timed(lambda: save_caseload(store, cases))
    people = [c.participant for c in cases]
    names = [p.family_name[: rng.randint(3, max(3, len(p.family_name)))] for p in rng.sample(people, searches)]
    nis = [p.ni_number for p in rng.sample(people, searches) if p.ni_number]
    ids = [p.id for p in rng.sample(people, searches)]
    # First touch: pages come from the file (decrypted and checked, for SQLCipher).
    first_open = per_call(lambda pid: store.participant_file(pid, audit_view=False), ids)
    first_names = per_call(lambda q: store.participants.search(q, limit=50), names)
    first_nis = per_call(lambda q: store.participants.search(q, limit=50), nis)
    # Warm: the same reads again, as a morning's caseload work repeats them from the cache.
    name_times = per_call(lambda q: store.participants.search(q, limit=50), names)
    ni_times = per_call(lambda q: store.participants.search(q, limit=50), nis)
    open_times = per_call(lambda pid: store.participant_file(pid, audit_view=False), ids)
    figures["first_open_participant_median_ms"] = statistics.median(first_open) * 1000
    figures["first_search_name_median_ms"] = statistics.median(first_names) * 1000
    figures["first_search_ni_median_ms"] = statistics.median(first_nis) * 1000
    figures["search_name_median_ms"] = statistics.median(name_times) * 1000
    figures["search_name_p95_ms"] = p95(name_times) * 1000
    figures["search_ni_median_ms"] = statistics.median(ni_times) * 1000
    figures["open_participant_median_ms"] = statistics.median(open_times) * 1000
    to_update: list[Participant] = [store.participants.get(pid) for pid in rng.sample(ids, min(updates, len(ids)))]
    update_times = per_call(lambda p: store.save(p.replace(phone="07700 900555")), to_update)
    figures["update_median_ms"] = statistics.median(update_times) * 1000
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--participants", type=int, default=50_000)
    parser.add_argument("--searches", type=int, default=300)
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="kw-bench-"))
    try:
        gen_s, cases = timed(lambda: list(generate_caseload(args.participants, seed=args.seed,
                                                             programme="working_well_ses")))
        print(f"generated {len(cases)} synthetic case files in {gen_s:.1f} s")

        # Encrypted: a real profile (calibrated KDF), then the workload on its store.
        paths = app_paths(work / "encrypted")
        profile = Profile.at(paths)
        create_s, (store, _) = timed(lambda: profile.create("KW-BENCH", "working_well_ses", PASSPHRASE))
        enc = workload(store, cases, args.searches, args.updates, args.seed)
        store.close()

        plain_db = Database.connect_plain(work / "plain.db")
        plain_db.migrate()
        plain = workload(Store(plain_db, "KW-BENCH"), cases, args.searches, args.updates, args.seed)
        plain_db.close()

        unlock_times = [timed(lambda: profile.unlock(PASSPHRASE))[0] for _ in range(3)]
        # Reopen with the raw key: what reconnecting costs once the key is unwrapped.
        kf = KeyFile.read(paths.keyfile)
        secret = load_device_secret(kf.keyring_entry) if kf.uses_device_secret else None
        kek = key_encryption_key(derive_passphrase_key(PASSPHRASE, kf.kdf), secret)
        data_key = unwrap_key(kek, kf.wrapped, kf.aad())
        assert data_key is not None
        reopen = []
        for _ in range(10):
            t, db = timed(lambda: Database.connect_encrypted(paths.database, data_key, CipherSettings(), create=False))
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
            ("update one median (ms)", "update_median_ms")]
    print(f"\n{args.participants} participants; SQLCipher {sqlcipher_version()} vs sqlite3 {sqlite3.sqlite_version}")
    print(f"{'operation':34} {'encrypted':>11} {'plain':>11} {'ratio':>7}")
    figures: dict[str, Any] = {"participants": args.participants, "generate_s": round(gen_s, 2),
                               "profile_create_s": round(create_s, 3)}
    for label, key in rows:
        ratio = enc[key] / plain[key] if plain[key] else float("nan")
        print(f"{label:34} {enc[key]:11.3f} {plain[key]:11.3f} {ratio:7.2f}")
        figures[f"encrypted_{key}"] = round(enc[key], 4)
        figures[f"plain_{key}"] = round(plain[key], 4)
        figures[f"ratio_{key}"] = round(ratio, 3)
    figures["unlock_median_s"] = round(statistics.median(unlock_times), 3)
    figures["reopen_raw_key_median_ms"] = round(statistics.median(reopen) * 1000, 2)
    print(f"{'unlock: Argon2id + open (s)':34} {figures['unlock_median_s']:11.3f}")
    print(f"{'reopen with raw key (ms)':34} {figures['reopen_raw_key_median_ms']:11.3f}")
    print(json.dumps(figures))


def sqlcipher_version() -> str:
    import sqlcipher3  # type: ignore[import-untyped]
    conn = sqlcipher3.connect(":memory:")
    version = str(conn.execute("PRAGMA cipher_version").fetchone()[0])
    conn.close()
    return version


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
