//! The SQLite schema and its migrations.
//!
//! `schema_version` holds one row per applied migration; the database's
//! version is the highest. Migrations run in one `IMMEDIATE` transaction at
//! open, so a crash in the middle of one leaves the previous version intact.
//! A database newer than this build is refused ([`StoreError::SchemaTooNew`]).
//! Add a migration by appending to [`MIGRATIONS`]; never edit a shipped one.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::{Result, StoreError};

/// Version 1: decisions + change log, alerts, checkpoints, bouncers, meta.
const V1: &str = r#"
CREATE TABLE decisions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    scope       TEXT    NOT NULL CHECK (scope IN ('ip', 'range', 'text')),
    value       TEXT    NOT NULL,
    prefix      INTEGER,
    origin      TEXT    NOT NULL,
    rule        TEXT,
    reason      TEXT    NOT NULL,          -- JSON
    evidence    TEXT    NOT NULL,          -- JSON array of {input, line, text}
    created     INTEGER NOT NULL,          -- µs since the epoch
    until       INTEGER,                   -- NULL = permanent
    simulated   INTEGER NOT NULL,
    deleted_at  INTEGER,                   -- NULL = live
    end_reason  TEXT CHECK (end_reason IN ('expired', 'deleted'))
);
-- expire(now), active_decisions(now): live decisions by end time.
CREATE INDEX decisions_live_until ON decisions(until) WHERE deleted_at IS NULL;
-- decisions_for(key), delete by target, the stream's per-target grouping.
CREATE INDEX decisions_target ON decisions(value, scope);
-- purge(before).
CREATE INDEX decisions_ended ON decisions(deleted_at) WHERE deleted_at IS NOT NULL;

-- The change log behind changed_since: seq only grows (AUTOINCREMENT never
-- reuses a number). kind 0 = new, 1 = ended.
CREATE TABLE changes (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    decision_id INTEGER NOT NULL REFERENCES decisions(id) ON DELETE CASCADE,
    kind        INTEGER NOT NULL CHECK (kind IN (0, 1))
);
CREATE INDEX changes_decision ON changes(decision_id);

CREATE TABLE alerts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    rule        TEXT    NOT NULL,
    scope       TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    time        INTEGER NOT NULL,
    count       INTEGER NOT NULL,
    summary     TEXT    NOT NULL,          -- window summary, JSON
    evidence    TEXT    NOT NULL           -- JSON array
);
CREATE INDEX alerts_time ON alerts(time);
CREATE INDEX alerts_rule_time ON alerts(rule, time);
CREATE INDEX alerts_value_time ON alerts(value, time);

CREATE TABLE checkpoints (
    source         TEXT PRIMARY KEY,
    grp            TEXT    NOT NULL,
    path           BLOB,                   -- the path's bytes
    dev            INTEGER,                -- u64 bit pattern
    inode          INTEGER,                -- u64 bit pattern
    fingerprint    BLOB,
    after_dev      INTEGER,
    after_inode    INTEGER,
    modified_ns    INTEGER,
    byte_offset    INTEGER NOT NULL,
    line           INTEGER NOT NULL,
    journal_cursor TEXT,
    updated        INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX checkpoints_group ON checkpoints(grp);

CREATE TABLE bouncers (
    name        TEXT PRIMARY KEY,
    salt        BLOB    NOT NULL,
    key_hash    BLOB    NOT NULL,          -- SHA-256(salt || key); never the key
    created     INTEGER NOT NULL,
    last_pull   INTEGER,
    cursor      INTEGER NOT NULL DEFAULT 0
);

-- Small facts: purged_seq = highest change seq removed by purge().
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
"#;

/// Version 2: the detector's partial windows and fail2ban service state per
/// scope (the daemon's source), written with the checkpoints.
const V2: &str = r#"
CREATE TABLE windows (
    scope       TEXT    NOT NULL,          -- the daemon's source name
    rule        TEXT    NOT NULL,          -- the rule's name
    kind        TEXT    NOT NULL CHECK (kind IN ('ip', 'text')),
    key         TEXT    NOT NULL,          -- address (canonical text) or text key
    state       TEXT    NOT NULL,          -- stadtwache_detect::SavedWindow, JSON
    PRIMARY KEY (scope, rule, kind, key)
) WITHOUT ROWID;

CREATE TABLE rule_states (
    scope       TEXT    NOT NULL,
    rule        TEXT    NOT NULL,
    state       TEXT    NOT NULL,          -- stadtwache_detect::SavedRule, JSON
    PRIMARY KEY (scope, rule)
) WITHOUT ROWID;
"#;

/// Migration `i` takes the database from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[V1, V2];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`SCHEMA_VERSION`]; returns the version found.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<i64> {
    let err = |op: &'static str| move |source| StoreError::Sqlite { op, path: path.to_path_buf(), source };
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err("migrate (begin)"))?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version    INTEGER PRIMARY KEY,
             applied_at INTEGER NOT NULL     -- µs since the epoch
         );",
    )
    .map_err(err("migrate (schema_version)"))?;
    let found: i64 = tx
        .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get::<_, Option<i64>>(0))
        .optional()
        .map_err(err("migrate (read version)"))?
        .flatten()
        .unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew { path: path.to_path_buf(), found, known: SCHEMA_VERSION });
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        tx.execute_batch(sql).map_err(err("migrate (apply)"))?;
        tx.execute("INSERT INTO schema_version (version, applied_at) VALUES (?1, ?2)", (i as i64 + 1, now))
            .map_err(err("migrate (record version)"))?;
    }
    tx.commit().map_err(err("migrate (commit)"))?;
    Ok(found)
}
