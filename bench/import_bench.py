"""Customer CSV import rate into SQLite, end to end through `callcenter customers import`.

Generates a CSV of N rows (about 1% bad rows, 30% with two numbers, Chinese and US numbers),
imports it into a fresh SQLite database, imports it again (idempotent pass: nothing changes),
and prints rows/s for both. Last line: one JSON object.

    python bench/import_bench.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from screenpop.numbers import normalize  # noqa: E402

CN_MOBILE_PREFIXES = ("135", "136", "137", "138", "139", "150", "151", "152", "186", "187", "188", "189")
US_AREA_CODES = ("212", "415", "617", "312", "206", "305")


def _number(rng: random.Random, chinese: bool) -> str:
    """A number that is valid by phonenumbers' metadata, written the way people write them."""
    while True:
        if chinese:
            raw = f"{rng.choice(CN_MOBILE_PREFIXES)}{rng.randint(10**7, 10**8 - 1)}"
        else:
            raw = f"+1 {rng.choice(US_AREA_CODES)} {rng.randint(200, 999)} {rng.randint(1000, 9999)}"
        if normalize(raw, "CN"):
            return raw


def make_csv(path: Path, rows: int, seed: int) -> int:
    rng = random.Random(seed)
    bad = 0
    with path.open("w", encoding="utf-8") as out:
        out.write("external_id,name,phone,company,email,tier,language,notes\n")
        for i in range(rows):
            chinese = rng.random() < 0.6
            name, lang = (f"客户{i}", "zh") if chinese else (f"Customer {i}", "en")
            phone = _number(rng, chinese)
            if rng.random() < 0.3:
                phone += ";" + _number(rng, True)
            if rng.random() < 0.01:
                phone, bad = "12345", bad + 1
            tier = rng.choices(["standard", "silver", "gold", "vip"], weights=[60, 22, 12, 6])[0]
            out.write(f"X{i:08d},{name},{phone},,c{i}@example.com,{tier},{lang},\n")
    return bad


def run_import(csv_path: Path, db_url: str, env: dict) -> float:
    base = [sys.executable, "-m", "callcenter", "--config", str(REPO / "config/callcenter.toml")]
    started = time.perf_counter()
    proc = subprocess.run([*base, "customers", "import", str(csv_path)], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        sys.exit(f"import failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    print(proc.stdout.split("Rejected rows")[0].rstrip())
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cc-import-bench-"))
    csv_path, db_path = work / "customers.csv", work / "cc.db"
    print(f"generating {args.rows:,} rows in {csv_path} ...", flush=True)
    bad = make_csv(csv_path, args.rows, args.seed)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    env.update({"CALLCENTER_DATABASE__URL": f"sqlite:///{db_path}", "COLUMNS": "120"})
    subprocess.run(
        [sys.executable, "-m", "callcenter", "--config", str(REPO / "config/callcenter.toml"), "db", "upgrade"],
        env=env, check=True, capture_output=True,
    )
    first = run_import(csv_path, f"sqlite:///{db_path}", env)
    second = run_import(csv_path, f"sqlite:///{db_path}", env)
    with sqlite3.connect(db_path) as conn:
        customers = conn.execute("SELECT count(*) FROM customers").fetchone()[0]
        numbers = conn.execute("SELECT count(*) FROM phone_numbers").fetchone()[0]
    print(f"\nfirst import:  {args.rows:,} rows in {first:.1f} s = {args.rows / first:,.0f} rows/s "
          f"({customers:,} customers, {numbers:,} numbers, {bad:,} bad rows rejected)")
    print(f"second import: {args.rows:,} rows in {second:.1f} s = {args.rows / second:,.0f} rows/s (nothing changed)")
    print(json.dumps({
        "rows": args.rows, "customers": customers, "numbers": numbers, "rejected": bad,
        "first_rows_per_s": round(args.rows / first), "reimport_rows_per_s": round(args.rows / second),
    }))


if __name__ == "__main__":
    main()
