#!/usr/bin/env python3
"""Adds the index tansu 0.6's SQLite storage lacks on its `header` table.

tansu reads a fetched record's headers with one query per record, joined on
`header (topition, offset_id)`, and creates that table without any index: every record a
consumer fetches then costs a scan of every header the broker ever stored, so the broker
slows down as its topics grow (a whole core under load, fetches left unanswered). The
index is ours; tansu creates its tables with IF NOT EXISTS and leaves it alone.

Usage: tansu-index.py PATH/tansu.db   (run once the broker has created its tables)
"""
import sqlite3
import sys
import time

db = sys.argv[1]
deadline = time.monotonic() + 30
while True:
    try:
        conn = sqlite3.connect(db, timeout=30)
        conn.execute(
            "CREATE INDEX IF NOT EXISTS header_topition_offset ON header (topition, offset_id)"
        )
        conn.commit()
        conn.close()
        break
    except sqlite3.OperationalError as err:
        # The broker creates its tables as it starts; wait for them.
        if "no such table" not in str(err) or time.monotonic() > deadline:
            sys.exit(f"tansu-index: {db}: {err}")
        time.sleep(0.2)
