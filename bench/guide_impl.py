#!/usr/bin/env python3
"""A straightforward Python implementation of the guide's fetch, the baseline of the
"≥ 2× faster than the guide" target (README, Benchmark).

What a developer following Merge's "sync triggers" guide would write with the standard
library: urllib + json + sqlite3. One pass for one linked account:

1. GET {category}/v1/sync-status (following `next`), keep models that are ready
   (status == "DONE" or is_initial_sync == false; DISABLED skipped);
2. for each ready model: GET its list endpoint with page_size=100 and include_deleted_data=true
   (plus modified_after = our last_synced_at once we have one, as the guide says), following
   `next` cursors;
3. upsert each page in one transaction into a per-model table keyed by
   (linked_account_id, id), storing the record's JSON; WAL + synchronous=NORMAL;
4. store last_synced_at = the start time of this sync.

Usage: guide_impl.py --url BASE --api-key KEY --account-token TOKEN --category hris
                     --linked-account-id ID --db PATH
"""

import argparse
import datetime
import json
import sqlite3
import urllib.parse
import urllib.request

# The guide keeps a table of the models it consumes; the benchmark consumes these.
MODEL_PATHS = {
    "hris.Employee": ("employees", "hris_employee"),
    "hris.Employment": ("employments", "hris_employment"),
    "hris.Team": ("teams", "hris_team"),
    "hris.Location": ("locations", "hris_location"),
}


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


class Merge:
    def __init__(self, base_url, api_key, account_token, category):
        self.base = base_url.rstrip("/") + "/" + category + "/v1/"
        self.headers = {
            "Authorization": "Bearer " + api_key,
            "X-Account-Token": account_token,
            "Accept": "application/json",
        }

    def get(self, path, params):
        url = self.base + path + "?" + urllib.parse.urlencode(params)
        req = urllib.request.Request(url, headers=self.headers)
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())

    def all_pages(self, path, params):
        params = dict(params)
        while True:
            page = self.get(path, params)
            yield page
            nxt = page.get("next")
            if not nxt:
                return
            params["cursor"] = nxt


def open_db(path):
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        """CREATE TABLE IF NOT EXISTS sync_state (
               linked_account_id TEXT NOT NULL, model_id TEXT NOT NULL, last_synced_at TEXT,
               PRIMARY KEY (linked_account_id, model_id))"""
    )
    return conn


def ensure_table(conn, table):
    conn.execute(
        f"""CREATE TABLE IF NOT EXISTS {table} (
               linked_account_id TEXT NOT NULL, id TEXT NOT NULL, remote_id TEXT,
               created_at TEXT, modified_at TEXT, remote_was_deleted INTEGER NOT NULL DEFAULT 0,
               data TEXT NOT NULL, fetched_at TEXT NOT NULL,
               PRIMARY KEY (linked_account_id, id))"""
    )


def sync_account(merge, conn, linked_account_id):
    ready = []
    for page in merge.all_pages("sync-status", {}):
        for m in page.get("results", []):
            if m.get("status") == "DISABLED":
                continue
            if m.get("status") == "DONE" or m.get("is_initial_sync") is False:
                ready.append(m["model_id"])
    total = 0
    for model_id in ready:
        if model_id not in MODEL_PATHS:
            continue
        path, table = MODEL_PATHS[model_id]
        ensure_table(conn, table)
        row = conn.execute(
            "SELECT last_synced_at FROM sync_state WHERE linked_account_id=? AND model_id=?",
            (linked_account_id, model_id),
        ).fetchone()
        started = now_iso()
        params = {"page_size": 100, "include_deleted_data": "true"}
        if row and row[0]:
            params["modified_after"] = row[0]
        for page in merge.all_pages(path, params):
            fetched_at = now_iso()
            rows = [
                (
                    linked_account_id,
                    r["id"],
                    r.get("remote_id"),
                    r.get("created_at"),
                    r.get("modified_at"),
                    1 if r.get("remote_was_deleted") else 0,
                    json.dumps(r),
                    fetched_at,
                )
                for r in page.get("results", [])
            ]
            with conn:  # one transaction per page
                conn.executemany(
                    f"""INSERT INTO {table} (linked_account_id, id, remote_id, created_at,
                            modified_at, remote_was_deleted, data, fetched_at)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                        ON CONFLICT (linked_account_id, id) DO UPDATE SET
                            remote_id=excluded.remote_id, created_at=excluded.created_at,
                            modified_at=excluded.modified_at,
                            remote_was_deleted=excluded.remote_was_deleted,
                            data=excluded.data, fetched_at=excluded.fetched_at""",
                    rows,
                )
            total += len(rows)
        with conn:
            conn.execute(
                """INSERT INTO sync_state (linked_account_id, model_id, last_synced_at)
                   VALUES (?, ?, ?) ON CONFLICT (linked_account_id, model_id)
                   DO UPDATE SET last_synced_at = excluded.last_synced_at""",
                (linked_account_id, model_id, started),
            )
    return total


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--api-key", required=True)
    p.add_argument("--account-token", required=True)
    p.add_argument("--category", default="hris")
    p.add_argument("--linked-account-id", required=True)
    p.add_argument("--db", required=True)
    a = p.parse_args()
    conn = open_db(a.db)
    n = sync_account(Merge(a.url, a.api_key, a.account_token, a.category), conn, a.linked_account_id)
    conn.close()
    print(f"rows={n}")


if __name__ == "__main__":
    main()
