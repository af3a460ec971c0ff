"""SQLite schema migrations.

`MIGRATIONS[i]` takes the database from `PRAGMA user_version` i to i + 1. Steps are only ever
appended: a released step is never edited, because databases in the field already ran it.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[str, ...]] = [
    # 1: initial schema
    (
        # `data` is the whole card as JSON; the columns beside it exist to be indexed or
        # compared without decoding it.
        """CREATE TABLE cards (
            number TEXT PRIMARY KEY,
            serial TEXT NOT NULL UNIQUE,
            account TEXT NOT NULL UNIQUE,
            program TEXT NOT NULL,
            version INTEGER NOT NULL,
            tag INTEGER NOT NULL,
            data TEXT NOT NULL
        )""",
        # Store-wide monotonic counters (the update tag); never derived from the clock.
        "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        "INSERT INTO counters (name, value) VALUES ('tag', 0)",
        "CREATE TABLE ledger_event_ids (id TEXT PRIMARY KEY) WITHOUT ROWID",
        """CREATE TABLE registrations (
            device_id TEXT NOT NULL,
            pass_type_id TEXT NOT NULL,
            serial TEXT NOT NULL,
            push_token TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (device_id, pass_type_id, serial)
        ) WITHOUT ROWID""",
        "CREATE INDEX registrations_serial ON registrations (serial)",
        # AUTOINCREMENT so an id is never reused: a late ack can't hit a newer entry.
        """CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
            coalesce_key TEXT UNIQUE,
            due_at REAL NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            lease_owner TEXT,
            lease_until REAL,
            enqueued_at REAL NOT NULL
        )""",
        "CREATE INDEX outbox_due ON outbox (due_at, id)",
        """CREATE TABLE dead_letters (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            entry_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            enqueued_at REAL NOT NULL,
            error TEXT NOT NULL,
            failed_at REAL NOT NULL
        )""",
        """CREATE TABLE pushed_tags (
            device_id TEXT NOT NULL,
            pass_type_id TEXT NOT NULL,
            serial TEXT NOT NULL,
            tag INTEGER NOT NULL,
            PRIMARY KEY (device_id, pass_type_id, serial)
        ) WITHOUT ROWID""",
        "CREATE TABLE device_logs (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, message TEXT NOT NULL)",
        "CREATE TABLE push_journal (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, record TEXT NOT NULL)",
        """CREATE TABLE app_tokens (
            token TEXT PRIMARY KEY,
            card TEXT NOT NULL,
            platform TEXT NOT NULL,
            updated_at REAL NOT NULL
        )""",
        "CREATE INDEX app_tokens_card ON app_tokens (card)",
    ),
    # 2: typed outbox messages (push/messages.py). One `pass_update` per pass instead of one
    # `apns_pass` per device: entries waiting for the same pass merge into the oldest; alerts
    # become `app_alert` with flat string fields.
    (
        """DELETE FROM outbox WHERE kind = 'apns_pass' AND id NOT IN (
            SELECT MIN(id) FROM outbox WHERE kind = 'apns_pass'
            GROUP BY json_extract(payload, '$.pass_type_id'), json_extract(payload, '$.serial'),
                     coalesce_key IS NULL
        )""",
        """UPDATE outbox SET
            kind = 'pass_update',
            payload = json_object('pass_type_id', json_extract(payload, '$.pass_type_id'),
                                  'serial', json_extract(payload, '$.serial')),
            coalesce_key = CASE WHEN coalesce_key IS NULL THEN NULL ELSE json_array('pass_update',
                json_extract(payload, '$.pass_type_id'), json_extract(payload, '$.serial')) END
        WHERE kind = 'apns_pass'""",
        """UPDATE outbox SET
            payload = json_object(
                'platform', CASE kind WHEN 'fcm_alert' THEN 'android' ELSE 'ios' END,
                'token', CAST(coalesce(json_extract(payload, '$.token'), '') AS TEXT),
                'card_number', CAST(coalesce(json_extract(payload, '$.card'), '') AS TEXT),
                'title', CAST(coalesce(json_extract(payload, '$.title'), '') AS TEXT),
                'body', CAST(coalesce(json_extract(payload, '$.body'), '') AS TEXT),
                'data', '' || coalesce(json_extract(payload, '$.data'), '{}')),  -- '' ||: a string, not JSON
            kind = 'app_alert'
        WHERE kind IN ('fcm_alert', 'apns_alert')""",
    ),
    # 3: which app made each registration (push/clients.py) and PassWallet's push service.
    # Registrations made before this were all Apple Wallet's.
    (
        "ALTER TABLE registrations ADD COLUMN client TEXT NOT NULL DEFAULT 'apple'",
        "ALTER TABLE registrations ADD COLUMN push_service_url TEXT",
    ),
    # 4: Google Wallet save/del callbacks, one row per nonce (a replayed nonce is ignored);
    # read per object, newest first (rowid order).
    (
        """CREATE TABLE google_callbacks (
            nonce TEXT PRIMARY KEY,
            object_id TEXT NOT NULL,
            event TEXT NOT NULL,
            at REAL NOT NULL
        )""",
        "CREATE INDEX google_callbacks_object ON google_callbacks (object_id)",
    ),
    # 5: what was last synced to each card's Google Wallet object (push/channels/google.py);
    # `version` beside the JSON for the put-if-newer comparison.
    (
        """CREATE TABLE google_state (
            serial TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            data TEXT NOT NULL
        ) WITHOUT ROWID""",
    ),
    # 6: store locations (geo/): the rows, and an R*Tree over their points keyed by the row's
    # rowid (`rid`), which keeps a location's id when it is replaced. The R*Tree holds 32-bit
    # floats rounded outwards; the near query filters its candidates exactly on lat/lon here.
    (
        """CREATE TABLE store_locations (
            rid INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            program TEXT NOT NULL,
            name TEXT NOT NULL,
            lat REAL NOT NULL,
            lon REAL NOT NULL,
            address TEXT NOT NULL,
            timezone TEXT NOT NULL
        )""",
        "CREATE INDEX store_locations_program ON store_locations (program, id)",
        "CREATE VIRTUAL TABLE store_locations_rtree USING rtree(rid, min_lat, max_lat, min_lon, max_lon)",
    ),
    # 7: geo (service/geo.py): the geo generation counter; campaigns as JSON; resumable jobs over
    # a program's cards with a lease (picked oldest first, hence the partial index); each card's
    # recent app alerts; and cards by (program, number) so a job pages over a program in order.
    (
        "INSERT INTO counters (name, value) VALUES ('geo', 0) ON CONFLICT (name) DO NOTHING",
        "CREATE INDEX cards_program_number ON cards (program, number)",
        """CREATE TABLE campaigns (
            id TEXT PRIMARY KEY,
            program TEXT NOT NULL,
            data TEXT NOT NULL
        )""",
        "CREATE INDEX campaigns_program ON campaigns (program, id)",
        """CREATE TABLE geo_jobs (
            id TEXT PRIMARY KEY,
            program TEXT NOT NULL,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
            cursor TEXT NOT NULL,
            created_at REAL NOT NULL,
            done INTEGER NOT NULL DEFAULT 0,
            lease_owner TEXT,
            lease_until REAL
        )""",
        "CREATE INDEX geo_jobs_open ON geo_jobs (created_at, id) WHERE done = 0",
        # AUTOINCREMENT: insertion order breaks ties of `at`, as the Redis adapter's list does.
        """CREATE TABLE alerts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            card TEXT NOT NULL,
            at REAL NOT NULL,
            campaign TEXT NOT NULL,
            store TEXT NOT NULL
        )""",
        "CREATE INDEX alerts_card ON alerts (card, at, id)",
    ),
    # 8: issue 14. The phone index, one card per (program, phone): the first card created with a phone
    # keeps it, so the backfill goes in insertion (rowid) order. Members' consents, appended. Vouchers
    # (gift certificates, offers): passes with a serial and tag of their own, from the tag counter.
    # Bulk import jobs with their rows in chunks (import_rows reads a page from one or two rows),
    # their results in row order (seq from 0, one per account) and errors. Geo jobs newest first.
    (
        """CREATE TABLE phones (
            program TEXT NOT NULL,
            phone TEXT NOT NULL,
            number TEXT NOT NULL,
            PRIMARY KEY (program, phone)
        ) WITHOUT ROWID""",
        """INSERT INTO phones (program, phone, number)
            SELECT program, json_extract(data, '$.member.phone'), number FROM cards
            WHERE json_type(data, '$.member.phone') = 'text' AND json_extract(data, '$.member.phone') <> ''
            ORDER BY rowid
            ON CONFLICT DO NOTHING""",
        """CREATE TABLE consents (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            card TEXT NOT NULL,
            data TEXT NOT NULL
        )""",
        "CREATE INDEX consents_card ON consents (card, id)",
        """CREATE TABLE vouchers (
            rid INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            id TEXT NOT NULL,
            serial TEXT NOT NULL UNIQUE,
            card TEXT,
            tag INTEGER NOT NULL,
            data TEXT NOT NULL,
            UNIQUE (kind, id)
        )""",
        "CREATE INDEX vouchers_card ON vouchers (card, rid)",
        """CREATE TABLE import_jobs (
            id TEXT PRIMARY KEY,
            program TEXT NOT NULL,
            state TEXT NOT NULL,
            rows INTEGER NOT NULL,
            done INTEGER NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            meta TEXT NOT NULL
        )""",
        """CREATE TABLE import_rows (
            job TEXT NOT NULL,
            chunk INTEGER NOT NULL,
            data TEXT NOT NULL,
            PRIMARY KEY (job, chunk)
        ) WITHOUT ROWID""",
        """CREATE TABLE import_results (
            job TEXT NOT NULL,
            seq INTEGER NOT NULL,
            account TEXT NOT NULL,
            number TEXT NOT NULL,
            PRIMARY KEY (job, seq),
            UNIQUE (job, account)
        ) WITHOUT ROWID""",
        """CREATE TABLE import_errors (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            job TEXT NOT NULL,
            data TEXT NOT NULL
        )""",
        "CREATE INDEX import_errors_job ON import_errors (job, id)",
        "CREATE INDEX geo_jobs_created ON geo_jobs (created_at, id)",
    ),
    # 9: issue 15, reports and retention. Registrations keep the program and tier they were made with
    # (for the remove fact; older rows: ""). Report facts: a count per (family, day, dims), dims a JSON
    # array, with the days indexed for retention. Accepted ledger event ids get their acceptance time
    # (rows from before: this migration's time, so retention counts from the upgrade) to be forgotten
    # oldest first. Dead letters are counted in `counters` (bounded and counted without a scan), and the
    # outbox is indexed by enqueued_at for its oldest entry.
    (
        "ALTER TABLE registrations ADD COLUMN program TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE registrations ADD COLUMN tier TEXT NOT NULL DEFAULT ''",
        """CREATE TABLE facts (
            family TEXT NOT NULL,
            day TEXT NOT NULL,
            dims TEXT NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (family, day, dims)
        ) WITHOUT ROWID""",
        "CREATE INDEX facts_day ON facts (day, family)",
        "ALTER TABLE ledger_event_ids ADD COLUMN accepted_at REAL NOT NULL DEFAULT 0",
        # julianday, not unixepoch(): that needs SQLite 3.38, this code runs on 3.35
        "UPDATE ledger_event_ids SET accepted_at = (julianday('now') - 2440587.5) * 86400.0",
        "CREATE INDEX ledger_event_ids_accepted ON ledger_event_ids (accepted_at)",
        "INSERT INTO counters (name, value) SELECT 'dead_letters', COUNT(*) FROM dead_letters",
        "CREATE INDEX outbox_enqueued ON outbox (enqueued_at)",
        # Finished import jobs drop their rows from now on (personal data); so do the ones finished before.
        "DELETE FROM import_rows WHERE job IN (SELECT id FROM import_jobs WHERE state IN ('done', 'failed'))",
    ),
    # 10: retention of finished jobs (forget_finished_jobs), oldest first without a scan of the jobs
    # kept: geo jobs done, never a program's "campaigns" job (it is restarted, not finished), and
    # import jobs done or failed, each by (created_at, id). Google callbacks need no index: they are
    # inserted in time order, so the oldest are the first rowids.
    (
        """CREATE INDEX geo_jobs_finished ON geo_jobs (created_at, id)
            WHERE done = 1 AND kind <> 'campaigns' AND substr(id, 1, 10) <> 'campaigns:'""",
        "CREATE INDEX import_jobs_finished ON import_jobs (created_at, id) WHERE state IN ('done', 'failed')",
    ),
]
