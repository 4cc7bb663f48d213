#!/usr/bin/env python3
"""Small helpers for bench/run.sh (Python 3 standard library only).

  tools.py measure OUT -- CMD [ARGS...]
      runs CMD (stdout/stderr inherited), writes wall_s, maxrss_kib, cpu_s, user_s, sys_s and
      exit lines (key=value) to OUT;
      peak RSS comes from wait4() of that one child, so it is the child's own high-water mark.
  tools.py scenario-ingest N API_KEY ACCOUNT_ID TOKEN
      prints a fake-merge scenario: one HRIS account, one hris.Employee model whose initial sync
      finished two hours ago, N generated records.
  tools.py scenario-poll N API_KEY
      prints a scenario of N HRIS accounts (acct-00001…, tokens tok-00001…), each with one
      hris.Employee model DONE with 5 records.
  tools.py count DB TABLE
      prints the number of rows of TABLE.
  tools.py requests LOG
      summarises a bench_fake request log: total, per path, per status.
  tools.py window LOG TOKEN SECONDS
      the largest number of requests with TOKEN in any SECONDS-long window, and the span.
  tools.py register DB FIRST LAST
      inserts accounts FIRST..LAST of scenario-poll straight into linked_accounts (the
      BENCH_REGISTER_SQL=1 shortcut; the schema must exist).
  tools.py table
      reads "a|b|c" rows on stdin and prints them as aligned columns.
"""

import collections
import json
import os
import subprocess
import sqlite3
import sys
import time


def measure(out, cmd):
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _, status, rusage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    with open(out, "w") as f:
        f.write(
            f"wall_s={wall:.3f}\nmaxrss_kib={rusage.ru_maxrss}\n"
            f"cpu_s={rusage.ru_utime + rusage.ru_stime:.3f}\n"
            f"user_s={rusage.ru_utime:.3f}\nsys_s={rusage.ru_stime:.3f}\nexit={code}\n"
        )
    return code


def employee_model(n, records_done_ago="2h"):
    return {
        "model_id": "hris.Employee",
        "status": "DONE",
        "is_initial_sync": False,
        "last_sync_result": "DONE",
        "last_sync_start": "-2h10m",
        "last_sync_finished": "-2h",
        "next_sync_start": "+21h50m",
        "generate": n,
    }


def scenario_ingest(n, api_key, account_id, token):
    return {
        "description": f"bench: one HRIS account, {n} generated employees",
        "api_key": api_key,
        "seed": 42,
        "accounts": [
            {
                "id": account_id,
                "account_token": token,
                "category": "hris",
                "integration": "BambooHR",
                "integration_slug": "bamboohr",
                "models": [employee_model(n)],
            }
        ],
    }


def scenario_poll(n, api_key):
    return {
        "description": f"bench: {n} HRIS accounts, one hris.Employee model each, nothing new",
        "api_key": api_key,
        "seed": 43,
        "accounts": [
            {
                "id": f"acct-{i:05d}",
                "account_token": f"tok-{i:05d}",
                "category": "hris",
                "end_user_origin_id": f"org-{i:05d}",
                "models": [employee_model(5)],
            }
            for i in range(1, n + 1)
        ],
    }


def scenario_scale(n, api_key):
    def model(model_id, records):
        m = employee_model(records)
        m["model_id"] = model_id
        return m

    return {
        "description": f"bench: {n} HRIS accounts, three models each, first fetch",
        "api_key": api_key,
        "seed": 44,
        "accounts": [
            {
                "id": f"acct-{i:05d}",
                "account_token": f"tok-{i:05d}",
                "category": "hris",
                "models": [
                    model("hris.Employee", 5),
                    model("hris.Team", 3),
                    model("hris.TimeOffBalance", 3),
                ],
            }
            for i in range(1, n + 1)
        ],
    }


def read_log(path):
    with open(path) as f:
        for line in f:
            at, method, p, status, token = line.rstrip("\n").split("\t")
            yield float(at), method, p, int(status), token


def requests_summary(path):
    rows = list(read_log(path))
    by_path = collections.Counter(p.rsplit("/", 1)[-1] for _, _, p, _, _ in rows)
    by_status = collections.Counter(s for _, _, _, s, _ in rows)
    print(f"total={len(rows)}")
    print("by_path=" + ",".join(f"{k}:{v}" for k, v in sorted(by_path.items())))
    print("by_status=" + ",".join(f"{k}:{v}" for k, v in sorted(by_status.items())))
    print(f"sync_status={by_path.get('sync-status', 0)}")


def window(path, token, seconds):
    ts = sorted(at for at, _, _, _, t in read_log(path) if t == token)
    best, j = 0, 0
    for i in range(len(ts)):
        while ts[i] - ts[j] >= seconds:
            j += 1
        best = max(best, i - j + 1)
    span = ts[-1] - ts[0] if ts else 0.0
    print(f"requests={len(ts)}")
    print(f"max_in_window={best}")
    print(f"span_s={span:.3f}")


def register(db, first, last):
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    conn = sqlite3.connect(db)
    with conn:
        conn.executemany(
            """INSERT INTO linked_accounts (linked_account_id, end_user_origin_id, category,
                   account_token, created_at, updated_at) VALUES (?, ?, 'hris', ?, ?, ?)""",
            [(f"acct-{i:05d}", f"org-{i:05d}", f"tok-{i:05d}", now, now) for i in range(first, last + 1)],
        )
    conn.close()


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "measure":
        out, rest = args[0], args[1:]
        if rest and rest[0] == "--":
            rest = rest[1:]
        sys.exit(measure(out, rest))
    elif cmd == "scenario-ingest":
        print(json.dumps(scenario_ingest(int(args[0]), args[1], args[2], args[3]), indent=1))
    elif cmd == "scenario-poll":
        print(json.dumps(scenario_poll(int(args[0]), args[1]), indent=1))
    elif cmd == "scenario-scale":
        print(json.dumps(scenario_scale(int(args[0]), args[1]), indent=1))
    elif cmd == "count":
        conn = sqlite3.connect(args[0])
        print(conn.execute(f'SELECT COUNT(*) FROM "{args[1]}"').fetchone()[0])
    elif cmd == "requests":
        requests_summary(args[0])
    elif cmd == "window":
        window(args[0], args[1], float(args[2]))
    elif cmd == "register":
        register(args[0], int(args[1]), int(args[2]))
    elif cmd == "table":
        rows = [line.rstrip("\n").split("|") for line in sys.stdin if line.strip()]
        widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(len(rows[0]))]
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
