//! The SQLite backend.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use rusqlite::types::Value;
use rusqlite::{Connection, ErrorCode, Row, TransactionBehavior};
use stadtwache_core::{Key, Timestamp};

use crate::keys::{self, MAX_KEY_LEN, MIN_KEY_LEN, SALT_BYTES};
use crate::{
    AlertFilter, AlertId, BanHistory, Batch, BouncerInfo, ChangeCursor, Changes, Checkpoint, Committed, DecisionId,
    DecisionRef, EndReason, EvidenceLine, FileIdentity, MAX_FINGERPRINT, NewAlert, NewDecision, Origin, Purged, Result,
    RuleStateRow, Store, StoreError, StoredAlert, StoredDecision, StoredWindows, TargetCols, WindowRow, cap_evidence,
    check_len, schema, target_cols,
};

/// The database file's name inside the data directory.
pub const DB_FILE_NAME: &str = "stadtwache.db";

/// SQLite's `synchronous` setting (see the crate docs: process crash vs power loss).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// Sync at WAL checkpoints only. Survives any process crash; a power loss
    /// may roll back the last commits (never corrupts).
    #[default]
    Normal,
    /// Sync the WAL at every commit. Survives power loss too; slower commits.
    Full,
}

/// How [`SqliteStore`] opens its database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteOptions {
    pub synchronous: Synchronous,
    /// How long to wait for another connection's write lock before failing
    /// with a busy error ([`StoreError::is_busy`]).
    pub busy_timeout: StdDuration,
    /// Prepared statements kept per connection.
    pub statement_cache: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions { synchronous: Synchronous::Normal, busy_timeout: StdDuration::from_secs(5), statement_cache: 64 }
    }
}

/// [`Store`] on one SQLite database in WAL mode.
///
/// One `SqliteStore` is one connection: writes through it are serialised by
/// `&mut self`. More connections on the same file (a read-only API thread, the
/// CLI) may be opened; readers never block the writer in WAL mode, and a
/// second writer waits up to the busy timeout.
#[derive(Debug)]
pub struct SqliteStore {
    pub(crate) conn: Connection,
    path: PathBuf,
}

/// The stream's columns: no reason, no evidence (bouncers never see them;
/// decoding them is most of the cost of a 100,000-decision start-up pull).
const STREAM_COLS: &str = "d.id, d.scope, d.value, d.prefix, d.origin, d.rule, 'null', \
     '[]', d.created, d.until, d.simulated, d.deleted_at, d.end_reason";

const DECISION_COLS: &str = "d.id, d.scope, d.value, d.prefix, d.origin, d.rule, d.reason, \
     d.evidence, d.created, d.until, d.simulated, d.deleted_at, d.end_reason";

struct RawDecision {
    id: i64,
    scope: String,
    value: String,
    prefix: Option<i64>,
    origin: String,
    rule: Option<String>,
    reason: String,
    evidence: String,
    created: i64,
    until: Option<i64>,
    simulated: bool,
    deleted_at: Option<i64>,
    end_reason: Option<String>,
}

fn raw_decision(r: &Row<'_>) -> rusqlite::Result<RawDecision> {
    Ok(RawDecision {
        id: r.get(0)?,
        scope: r.get(1)?,
        value: r.get(2)?,
        prefix: r.get(3)?,
        origin: r.get(4)?,
        rule: r.get(5)?,
        reason: r.get(6)?,
        evidence: r.get(7)?,
        created: r.get(8)?,
        until: r.get(9)?,
        simulated: r.get(10)?,
        deleted_at: r.get(11)?,
        end_reason: r.get(12)?,
    })
}

struct RawAlert {
    id: i64,
    rule: String,
    scope: String,
    value: String,
    time: i64,
    count: i64,
    summary: String,
    evidence: String,
}

fn raw_alert(r: &Row<'_>) -> rusqlite::Result<RawAlert> {
    Ok(RawAlert {
        id: r.get(0)?,
        rule: r.get(1)?,
        scope: r.get(2)?,
        value: r.get(3)?,
        time: r.get(4)?,
        count: r.get(5)?,
        summary: r.get(6)?,
        evidence: r.get(7)?,
    })
}

fn sql_err<'p>(op: &'static str, path: &'p Path) -> impl Fn(rusqlite::Error) -> StoreError + 'p {
    move |source| StoreError::Sqlite { op, path: path.to_path_buf(), source }
}

fn corrupt(op: &'static str, path: &Path, what: impl Into<String>) -> StoreError {
    StoreError::Corrupt { op, path: path.to_path_buf(), what: what.into() }
}

fn to_i64(op: &'static str, what: &str, v: u64) -> Result<i64> {
    i64::try_from(v)
        .map_err(|_| StoreError::Invalid { op, what: format!("{what} {v} does not fit a signed 64-bit integer") })
}

fn decode_key(op: &'static str, path: &Path, scope: &str, value: &str) -> Result<(Key, Option<u8>)> {
    match scope {
        "ip" => value
            .parse::<IpAddr>()
            .map(|ip| (Key::Ip(ip), None))
            .map_err(|_| corrupt(op, path, format!("bad address {value:?}"))),
        "range" => {
            let bad = || corrupt(op, path, format!("bad network {value:?}"));
            let (ip, p) = value.split_once('/').ok_or_else(bad)?;
            let ip: IpAddr = ip.parse().map_err(|_| bad())?;
            let p: u8 = p.parse().map_err(|_| bad())?;
            Ok((Key::Ip(ip), Some(p)))
        }
        "text" => Ok((Key::Text(Arc::from(value)), None)),
        other => Err(corrupt(op, path, format!("unknown scope {other:?}"))),
    }
}

fn decode_evidence(op: &'static str, path: &Path, json: &str) -> Result<Vec<EvidenceLine>> {
    serde_json::from_str(json).map_err(|e| corrupt(op, path, format!("evidence JSON: {e}")))
}

fn decode_decision(op: &'static str, path: &Path, r: RawDecision) -> Result<StoredDecision> {
    let (key, prefix) = decode_key(op, path, &r.scope, &r.value)?;
    let reason = serde_json::from_str(&r.reason)
        .map_err(|e| corrupt(op, path, format!("reason JSON of decision {}: {e}", r.id)))?;
    let end = match r.end_reason.as_deref() {
        None => None,
        Some("expired") => Some(EndReason::Expired),
        Some("deleted") => Some(EndReason::Deleted),
        Some(other) => return Err(corrupt(op, path, format!("end reason {other:?}"))),
    };
    let _ = r.prefix; // the value column carries the prefix
    Ok(StoredDecision {
        id: DecisionId(r.id),
        decision: NewDecision {
            key,
            prefix,
            origin: Origin::parse(&r.origin),
            rule: r.rule,
            reason,
            evidence: decode_evidence(op, path, &r.evidence)?,
            created: Timestamp(r.created),
            until: r.until.map(Timestamp),
            simulated: r.simulated,
        },
        deleted_at: r.deleted_at.map(Timestamp),
        end,
    })
}

fn decode_alert(op: &'static str, path: &Path, r: RawAlert) -> Result<StoredAlert> {
    let (key, _) = decode_key(op, path, &r.scope, &r.value)?;
    Ok(StoredAlert {
        id: AlertId(r.id),
        alert: NewAlert {
            rule: r.rule,
            key,
            time: Timestamp(r.time),
            count: u64::try_from(r.count).map_err(|_| corrupt(op, path, "negative count"))?,
            window: serde_json::from_str(&r.summary).map_err(|e| corrupt(op, path, format!("window JSON: {e}")))?,
            evidence: decode_evidence(op, path, &r.evidence)?,
        },
    })
}

fn query_decisions<P: rusqlite::Params>(
    conn: &Connection,
    op: &'static str,
    path: &Path,
    sql: &str,
    params: P,
) -> Result<Vec<StoredDecision>> {
    let e = sql_err(op, path);
    let mut st = conn.prepare_cached(sql).map_err(&e)?;
    let raws = st.query_map(params, raw_decision).map_err(&e)?.collect::<rusqlite::Result<Vec<_>>>().map_err(&e)?;
    raws.into_iter().map(|r| decode_decision(op, path, r)).collect()
}

fn to_json(op: &'static str, v: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Invalid { op, what: format!("does not serialise to JSON: {e}") })
}

fn check_name(op: &'static str, what: &str, name: &str) -> Result<()> {
    check_len(op, what, name)?;
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(StoreError::Invalid { op, what: format!("{what} {name:?} is empty or has control characters") });
    }
    Ok(())
}

fn insert_decision(conn: &Connection, path: &Path, d: &NewDecision) -> Result<DecisionId> {
    const OP: &str = "commit_batch (decision)";
    let t = target_cols(OP, &d.key, d.prefix)?;
    if let Some(rule) = &d.rule {
        check_len(OP, "rule name", rule)?;
    }
    check_len(OP, "origin", d.origin.as_str())?;
    let reason = to_json(OP, &d.reason)?;
    let evidence = to_json(OP, &cap_evidence(&d.evidence))?;
    let e = sql_err(OP, path);
    let mut st = conn
        .prepare_cached(
            "INSERT INTO decisions (scope, value, prefix, origin, rule, reason, evidence, \
             created, until, simulated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .map_err(&e)?;
    st.execute((
        t.scope,
        &t.value,
        t.prefix,
        d.origin.as_str(),
        d.rule.as_deref(),
        reason,
        evidence,
        d.created.0,
        d.until.map(|u| u.0),
        d.simulated,
    ))
    .map_err(&e)?;
    let id = conn.last_insert_rowid();
    conn.prepare_cached("INSERT INTO changes (decision_id, kind) VALUES (?1, 0)")
        .map_err(&e)?
        .execute([id])
        .map_err(&e)?;
    Ok(DecisionId(id))
}

fn insert_alert(conn: &Connection, path: &Path, a: &NewAlert) -> Result<AlertId> {
    const OP: &str = "commit_batch (alert)";
    let t = target_cols(OP, &a.key, None)?;
    check_len(OP, "rule name", &a.rule)?;
    let count = to_i64(OP, "count", a.count)?;
    let summary = to_json(OP, &a.window)?;
    let evidence = to_json(OP, &cap_evidence(&a.evidence))?;
    let e = sql_err(OP, path);
    conn.prepare_cached(
        "INSERT INTO alerts (rule, scope, value, time, count, summary, evidence) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .map_err(&e)?
    .execute((&a.rule, t.scope, &t.value, a.time.0, count, summary, evidence))
    .map_err(&e)?;
    Ok(AlertId(conn.last_insert_rowid()))
}

fn path_bytes(p: &Path) -> Vec<u8> {
    #[cfg(unix)]
    {
        std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()).to_vec()
    }
    #[cfg(not(unix))]
    {
        p.to_string_lossy().into_owned().into_bytes()
    }
}

fn path_from_bytes(b: Vec<u8>) -> PathBuf {
    #[cfg(unix)]
    {
        PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(b))
    }
    #[cfg(not(unix))]
    {
        PathBuf::from(String::from_utf8_lossy(&b).into_owned())
    }
}

fn put_checkpoint(conn: &Connection, path: &Path, c: &Checkpoint) -> Result<()> {
    const OP: &str = "commit_batch (checkpoint)";
    check_name(OP, "source id", &c.source)?;
    check_len(OP, "group", &c.group)?;
    if let Some(f) = &c.file {
        if f.fingerprint.len() > MAX_FINGERPRINT {
            return Err(StoreError::Invalid {
                op: OP,
                what: format!("fingerprint of {} bytes (at most {MAX_FINGERPRINT})", f.fingerprint.len()),
            });
        }
    }
    if let Some(cur) = &c.journal_cursor {
        check_len(OP, "journal cursor", cur)?;
    }
    let file_path = c.path.as_deref().map(path_bytes);
    if let Some(p) = &file_path {
        if p.len() > crate::MAX_NAME_LEN {
            return Err(StoreError::Invalid { op: OP, what: format!("path of {} bytes", p.len()) });
        }
    }
    let offset = to_i64(OP, "offset", c.offset)?;
    let line = to_i64(OP, "line", c.line)?;
    let e = sql_err(OP, path);
    // u64 device and inode numbers keep their bit pattern in an i64.
    conn.prepare_cached(
        "INSERT OR REPLACE INTO checkpoints (source, grp, path, dev, inode, fingerprint, \
         after_dev, after_inode, modified_ns, byte_offset, line, journal_cursor, updated) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )
    .map_err(&e)?
    .execute(rusqlite::params![
        &c.source,
        &c.group,
        file_path,
        c.file.as_ref().map(|f| f.dev as i64),
        c.file.as_ref().map(|f| f.inode as i64),
        c.file.as_ref().map(|f| f.fingerprint.as_slice()),
        c.after.map(|a| a.0 as i64),
        c.after.map(|a| a.1 as i64),
        c.modified_ns,
        offset,
        line,
        c.journal_cursor.as_deref(),
        c.updated.0,
    ])
    .map_err(&e)?;
    Ok(())
}

fn put_window(conn: &Connection, path: &Path, w: &WindowRow) -> Result<()> {
    const OP: &str = "commit_batch (window)";
    check_name(OP, "scope", &w.scope)?;
    check_len(OP, "rule name", &w.rule)?;
    let t = target_cols(OP, &w.key, None)?;
    let e = sql_err(OP, path);
    match &w.state {
        Some(state) => conn
            .prepare_cached(
                "INSERT OR REPLACE INTO windows (scope, rule, kind, key, state) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(&e)?
            .execute((&w.scope, &w.rule, t.scope, &t.value, state))
            .map_err(&e)?,
        None => conn
            .prepare_cached("DELETE FROM windows WHERE scope = ?1 AND rule = ?2 AND kind = ?3 AND key = ?4")
            .map_err(&e)?
            .execute((&w.scope, &w.rule, t.scope, &t.value))
            .map_err(&e)?,
    };
    Ok(())
}

fn put_rule_state(conn: &Connection, path: &Path, r: &RuleStateRow) -> Result<()> {
    const OP: &str = "commit_batch (rule state)";
    check_name(OP, "scope", &r.scope)?;
    check_len(OP, "rule name", &r.rule)?;
    let e = sql_err(OP, path);
    match &r.state {
        Some(state) => conn
            .prepare_cached("INSERT OR REPLACE INTO rule_states (scope, rule, state) VALUES (?1, ?2, ?3)")
            .map_err(&e)?
            .execute((&r.scope, &r.rule, state))
            .map_err(&e)?,
        None => conn
            .prepare_cached("DELETE FROM rule_states WHERE scope = ?1 AND rule = ?2")
            .map_err(&e)?
            .execute((&r.scope, &r.rule))
            .map_err(&e)?,
    };
    Ok(())
}

/// A text column as `&str` (`None`: NULL, a blob, or not UTF-8).
fn text_col<'r>(r: &'r Row<'_>, i: usize) -> rusqlite::Result<Option<&'r str>> {
    Ok(match r.get_ref(i)? {
        rusqlite::types::ValueRef::Text(b) => std::str::from_utf8(b).ok(),
        _ => None,
    })
}

const CHECKPOINT_COLS: &str = "source, grp, path, dev, inode, fingerprint, after_dev, after_inode, \
     modified_ns, byte_offset, line, journal_cursor, updated";

fn read_checkpoint(op: &'static str, path: &Path, r: &Row<'_>) -> rusqlite::Result<Result<Checkpoint>> {
    let source: String = r.get(0)?;
    let group: String = r.get(1)?;
    let file_path: Option<Vec<u8>> = r.get(2)?;
    let dev: Option<i64> = r.get(3)?;
    let inode: Option<i64> = r.get(4)?;
    let fingerprint: Option<Vec<u8>> = r.get(5)?;
    let after_dev: Option<i64> = r.get(6)?;
    let after_inode: Option<i64> = r.get(7)?;
    let modified_ns: Option<i64> = r.get(8)?;
    let offset: i64 = r.get(9)?;
    let line: i64 = r.get(10)?;
    let journal_cursor: Option<String> = r.get(11)?;
    let updated: i64 = r.get(12)?;
    let file = match (dev, inode) {
        (Some(dev), Some(inode)) => {
            Some(FileIdentity { dev: dev as u64, inode: inode as u64, fingerprint: fingerprint.unwrap_or_default() })
        }
        _ => None,
    };
    let after = match (after_dev, after_inode) {
        (Some(d), Some(i)) => Some((d as u64, i as u64)),
        _ => None,
    };
    let (Ok(offset), Ok(line)) = (u64::try_from(offset), u64::try_from(line)) else {
        return Ok(Err(corrupt(op, path, format!("negative offset of {source:?}"))));
    };
    Ok(Ok(Checkpoint {
        source,
        group,
        path: file_path.map(path_from_bytes),
        file,
        after,
        modified_ns,
        offset,
        line,
        journal_cursor,
        updated: Timestamp(updated),
    }))
}

fn query_checkpoints<P: rusqlite::Params>(
    conn: &Connection,
    op: &'static str,
    path: &Path,
    cond: &str,
    params: P,
) -> Result<Vec<Checkpoint>> {
    let e = sql_err(op, path);
    let mut st = conn
        .prepare_cached(&format!("SELECT {CHECKPOINT_COLS} FROM checkpoints WHERE {cond} ORDER BY source"))
        .map_err(&e)?;
    let rows = st
        .query_map(params, |r| read_checkpoint(op, path, r))
        .map_err(&e)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(&e)?;
    rows.into_iter().collect()
}

/// Longer lasting first: permanent beats any end; then the later end; then the newer id.
fn outlasts(a: &StoredDecision, b: &StoredDecision) -> bool {
    let end = |d: &StoredDecision| d.decision.until.map_or(i64::MAX, |u| u.0);
    (end(a), a.id) > (end(b), b.id)
}

fn target_of(d: &StoredDecision) -> (Key, Option<u8>) {
    (d.decision.key.clone(), d.decision.prefix)
}

impl SqliteStore {
    /// Opens (creating if needed) `data_dir/stadtwache.db` with default options.
    /// A missing data directory is created with mode 0700.
    pub fn open(data_dir: &Path) -> Result<Self> {
        Self::open_with(data_dir, &SqliteOptions::default())
    }

    pub fn open_with(data_dir: &Path, opts: &SqliteOptions) -> Result<Self> {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(data_dir).map_err(|source| StoreError::Io {
            op: "open (create data directory)",
            path: data_dir.to_path_buf(),
            source,
        })?;
        Self::open_file(&data_dir.join(DB_FILE_NAME), opts)
    }

    /// Opens (creating if needed, mode 0600) the database file `path`.
    pub fn open_file(path: &Path, opts: &SqliteOptions) -> Result<Self> {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        match o.open(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(StoreError::Io { op: "open (create database file)", path: path.to_path_buf(), source });
            }
        }
        let conn = Connection::open(path).map_err(sql_err("open", path))?;
        Self::setup(conn, path.to_path_buf(), opts, true)
    }

    /// A private in-memory database (tests, `--dry-run` tools).
    pub fn open_in_memory() -> Result<Self> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(sql_err("open", &path))?;
        Self::setup(conn, path, &SqliteOptions::default(), false)
    }

    fn setup(mut conn: Connection, path: PathBuf, opts: &SqliteOptions, file: bool) -> Result<Self> {
        conn.busy_timeout(opts.busy_timeout).map_err(sql_err("open (busy_timeout)", &path))?;
        conn.set_prepared_statement_cache_capacity(opts.statement_cache);
        // The first statement that reads the file: a non-database fails here.
        // Switching a new file to WAL needs an exclusive lock, and SQLite
        // answers "locked" at once (its busy handler is not called) when
        // another process opens the same new file at that moment — a
        // `stadtwache decisions list` while the daemon starts: retried
        // within the busy timeout.
        let deadline = std::time::Instant::now() + opts.busy_timeout;
        let mode: String = loop {
            match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)) {
                Err(rusqlite::Error::SqliteFailure(f, _))
                    if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(StdDuration::from_millis(10));
                }
                r => break r.map_err(sql_err("open (journal_mode)", &path))?,
            }
        };
        if file && !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Invalid {
                op: "open",
                what: format!("{}: WAL mode unavailable (journal_mode {mode})", path.display()),
            });
        }
        let sync = match opts.synchronous {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        };
        conn.execute_batch(&format!(
            "PRAGMA synchronous = {sync}; PRAGMA foreign_keys = ON; \
             PRAGMA trusted_schema = OFF; PRAGMA temp_store = MEMORY;"
        ))
        .map_err(sql_err("open (pragmas)", &path))?;
        schema::migrate(&mut conn, &path)?;
        Ok(SqliteStore { conn, path })
    }

    /// The database file (`:memory:` for an in-memory store).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64> {
        self.conn
            .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
            .map_err(sql_err("schema_version", &self.path))
    }

    /// SQLite's `quick_check`: the problems found (empty = healthy).
    pub fn integrity_check(&self) -> Result<Vec<String>> {
        let e = sql_err("integrity_check", &self.path);
        let mut st = self.conn.prepare("PRAGMA quick_check").map_err(&e)?;
        let rows = st
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(&e)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(&e)?;
        Ok(rows.into_iter().filter(|r| r != "ok").collect())
    }

    /// Copies the WAL into the database file and truncates it (for backups
    /// and shutdown; SQLite also does this on its own every ~1000 pages).
    pub fn wal_checkpoint(&self) -> Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(sql_err("wal_checkpoint", &self.path))
    }

    fn begin_write(&mut self, op: &'static str) -> Result<rusqlite::Transaction<'_>> {
        self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_err(op, &self.path))
    }

    fn decisions_where(
        &self,
        op: &'static str,
        cond: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<StoredDecision>> {
        let sql = format!("SELECT {DECISION_COLS} FROM decisions d WHERE {cond}");
        query_decisions(&self.conn, op, &self.path, &sql, params)
    }
}

impl Store for SqliteStore {
    fn commit_batch(&mut self, batch: &Batch) -> Result<Committed> {
        let path = self.path.clone();
        let tx = self.begin_write("commit_batch (begin)")?;
        let mut out = Committed {
            decisions: Vec::with_capacity(batch.decisions.len()),
            alerts: Vec::with_capacity(batch.alerts.len()),
        };
        for d in &batch.decisions {
            out.decisions.push(insert_decision(&tx, &path, d)?);
        }
        for a in &batch.alerts {
            out.alerts.push(insert_alert(&tx, &path, a)?);
        }
        for g in &batch.replace_groups {
            tx.prepare_cached("DELETE FROM checkpoints WHERE grp = ?1")
                .map_err(sql_err("commit_batch (replace group)", &path))?
                .execute([g])
                .map_err(sql_err("commit_batch (replace group)", &path))?;
        }
        for c in &batch.checkpoints {
            put_checkpoint(&tx, &path, c)?;
        }
        for w in &batch.windows {
            put_window(&tx, &path, w)?;
        }
        for r in &batch.rule_states {
            put_rule_state(&tx, &path, r)?;
        }
        tx.commit().map_err(sql_err("commit_batch (commit)", &path))?;
        Ok(out)
    }

    fn delete_decisions(&mut self, which: &DecisionRef, now: Timestamp) -> Result<usize> {
        const OP: &str = "delete_decisions";
        let path = self.path.clone();
        let (cond, params): (&str, Vec<Value>) = match which {
            DecisionRef::Id(id) => ("id = ?1", vec![Value::Integer(id.0)]),
            DecisionRef::Target { key, prefix } => {
                let t = target_cols(OP, key, *prefix)?;
                ("value = ?1 AND scope = ?2", vec![Value::Text(t.value), Value::Text(t.scope.to_string())])
            }
        };
        let tx = self.begin_write(OP)?;
        let n = end_decisions(&tx, &path, OP, cond, &params, now, EndReason::Deleted)?;
        tx.commit().map_err(sql_err(OP, &path))?;
        Ok(n)
    }

    fn active_decisions(&self, now: Timestamp) -> Result<Vec<StoredDecision>> {
        // The partial index holds exactly the live decisions: never a scan of the ended ones.
        query_decisions(
            &self.conn,
            "active_decisions",
            &self.path,
            &format!(
                "SELECT {DECISION_COLS} FROM decisions d INDEXED BY decisions_live_until \
                 WHERE d.deleted_at IS NULL AND (d.until IS NULL OR d.until >= ?1) ORDER BY d.id"
            ),
            [now.0],
        )
    }

    fn decisions_for(&self, key: &Key) -> Result<Vec<StoredDecision>> {
        const OP: &str = "decisions_for";
        match key {
            Key::Text(_) => {
                let t = target_cols(OP, key, None)?;
                self.decisions_where(OP, "d.value = ?1 AND d.scope = 'text' ORDER BY d.id DESC", [t.value])
            }
            Key::Ip(ip) => {
                let TargetCols { value, .. } = target_cols(OP, key, None)?;
                let ip = stadtwache_decide::canonical_ip(*ip);
                let bits = if ip.is_ipv4() { 32 } else { 128 };
                let nets: Vec<String> = (0..bits).map(|p| format!("{}/{p}", crate::network(ip, p))).collect();
                let nets = to_json(OP, &nets)?;
                self.decisions_where(
                    OP,
                    "(d.value = ?1 AND d.scope = 'ip') OR (d.scope = 'range' AND d.value IN \
                     (SELECT value FROM json_each(?2))) ORDER BY d.id DESC",
                    (value, nets),
                )
            }
        }
    }

    fn decision(&self, id: DecisionId) -> Result<Option<StoredDecision>> {
        Ok(self.decisions_where("decision", "d.id = ?1", [id.0])?.into_iter().next())
    }

    fn changed_since(&self, cursor: ChangeCursor) -> Result<Changes> {
        const OP: &str = "changed_since";
        let path = &self.path;
        let e = sql_err(OP, path);
        // One read transaction: every query sees the same snapshot.
        let tx = self.conn.unchecked_transaction().map_err(&e)?;
        let last: i64 = tx
            .query_row("SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0)", [], |r| r.get(0))
            .map_err(&e)?;
        let purged: i64 = tx
            .query_row("SELECT COALESCE((SELECT value FROM meta WHERE name = 'purged_seq'), 0)", [], |r| r.get(0))
            .map_err(&e)?;
        let gap = cursor.0 != 0 && (cursor.0 < purged || cursor.0 > last || cursor.0 < 0);
        let full = cursor.0 == 0 || gap;

        let live = if full {
            query_decisions(
                &tx,
                OP,
                path,
                &format!(
                    "SELECT {STREAM_COLS} FROM decisions d INDEXED BY decisions_live_until \
                     WHERE d.deleted_at IS NULL AND d.simulated = 0"
                ),
                [],
            )?
        } else {
            query_decisions(
                &tx,
                OP,
                path,
                &format!(
                    "SELECT {STREAM_COLS} FROM decisions d \
                     WHERE d.deleted_at IS NULL AND d.simulated = 0 AND (d.value, d.scope) IN \
                     (SELECT d2.value, d2.scope FROM changes c JOIN decisions d2 \
                      ON d2.id = c.decision_id WHERE c.seq > ?1 AND c.kind = 0)"
                ),
                [cursor.0],
            )?
        };
        let mut longest: HashMap<(Key, Option<u8>), StoredDecision> = HashMap::new();
        for d in live {
            match longest.entry(target_of(&d)) {
                std::collections::hash_map::Entry::Occupied(mut o) => {
                    if outlasts(&d, o.get()) {
                        o.insert(d);
                    }
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(d);
                }
            }
        }
        let mut new: Vec<StoredDecision> = longest.into_values().collect();
        new.sort_by_key(|d| d.id);

        let deleted = if cursor.0 == 0 {
            Vec::new()
        } else {
            let ended = query_decisions(
                &tx,
                OP,
                path,
                &format!(
                    "SELECT {STREAM_COLS} FROM changes c JOIN decisions d ON d.id = c.decision_id \
                     WHERE c.seq > ?1 AND c.kind = 1 AND d.simulated = 0 AND NOT EXISTS \
                     (SELECT 1 FROM decisions l WHERE l.value = d.value AND l.scope = d.scope \
                      AND l.deleted_at IS NULL AND l.simulated = 0) \
                     ORDER BY c.seq"
                ),
                [cursor.0.max(0)],
            )?;
            // The last end per target, in the order of those last ends.
            let mut seen: std::collections::HashSet<(Key, Option<u8>)> = Default::default();
            let mut out: Vec<StoredDecision> = ended.into_iter().rev().filter(|d| seen.insert(target_of(d))).collect();
            out.reverse();
            out
        };
        drop(tx);
        Ok(Changes { new, deleted, cursor: ChangeCursor(last), gap })
    }

    fn expire(&mut self, now: Timestamp) -> Result<usize> {
        const OP: &str = "expire";
        let path = self.path.clone();
        let tx = self.begin_write(OP)?;
        let n = end_decisions(
            &tx,
            &path,
            OP,
            "until IS NOT NULL AND until < ?1",
            &[Value::Integer(now.0)],
            now,
            EndReason::Expired,
        )?;
        tx.commit().map_err(sql_err(OP, &path))?;
        Ok(n)
    }

    fn alerts(&self, filter: &AlertFilter, limit: usize) -> Result<Vec<StoredAlert>> {
        const OP: &str = "alerts";
        let mut sql =
            String::from("SELECT id, rule, scope, value, time, count, summary, evidence FROM alerts WHERE 1 = 1");
        let mut params: Vec<Value> = Vec::new();
        if let Some(rule) = &filter.rule {
            params.push(Value::Text(rule.clone()));
            sql.push_str(&format!(" AND rule = ?{}", params.len()));
        }
        if let Some(key) = &filter.key {
            let t = target_cols(OP, key, None)?;
            params.push(Value::Text(t.value));
            sql.push_str(&format!(" AND value = ?{}", params.len()));
            params.push(Value::Text(t.scope.to_string()));
            sql.push_str(&format!(" AND scope = ?{}", params.len()));
        }
        if let Some(since) = filter.since {
            params.push(Value::Integer(since.0));
            sql.push_str(&format!(" AND time >= ?{}", params.len()));
        }
        if let Some(before) = filter.before {
            params.push(Value::Integer(before.0));
            sql.push_str(&format!(" AND time < ?{}", params.len()));
        }
        params.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        sql.push_str(&format!(" ORDER BY time DESC, id DESC LIMIT ?{}", params.len()));
        let e = sql_err(OP, &self.path);
        let mut st = self.conn.prepare_cached(&sql).map_err(&e)?;
        let raws = st
            .query_map(rusqlite::params_from_iter(params), raw_alert)
            .map_err(&e)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(&e)?;
        raws.into_iter().map(|r| decode_alert(OP, &self.path, r)).collect()
    }

    fn get_checkpoint(&self, source: &str) -> Result<Option<Checkpoint>> {
        Ok(query_checkpoints(&self.conn, "get_checkpoint", &self.path, "source = ?1", [source])?.into_iter().next())
    }

    fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        query_checkpoints(&self.conn, "checkpoints", &self.path, "1 = 1", [])
    }

    fn checkpoints_in(&self, group: &str) -> Result<Vec<Checkpoint>> {
        query_checkpoints(&self.conn, "checkpoints_in", &self.path, "grp = ?1", [group])
    }

    fn delete_checkpoint(&mut self, source: &str) -> Result<bool> {
        let n = self
            .conn
            .execute("DELETE FROM checkpoints WHERE source = ?1", [source])
            .map_err(sql_err("delete_checkpoint", &self.path))?;
        Ok(n > 0)
    }

    fn add_bouncer(&mut self, name: &str, now: Timestamp) -> Result<String> {
        let key = keys::generate_key()?;
        self.add_bouncer_with_key(name, &key, now)?;
        Ok(key)
    }

    fn add_bouncer_with_key(&mut self, name: &str, key: &str, now: Timestamp) -> Result<()> {
        const OP: &str = "add_bouncer";
        check_name(OP, "bouncer name", name)?;
        if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&key.len()) {
            return Err(StoreError::Invalid {
                op: OP,
                what: format!("a key must have {MIN_KEY_LEN}..={MAX_KEY_LEN} bytes"),
            });
        }
        let salt: [u8; SALT_BYTES] = keys::random_bytes(OP)?;
        let hash = keys::hash_key(&salt, key);
        let r = self.conn.execute(
            "INSERT INTO bouncers (name, salt, key_hash, created) VALUES (?1, ?2, ?3, ?4)",
            (name, &salt[..], &hash[..], now.0),
        );
        match r {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(f, _)) if f.code == ErrorCode::ConstraintViolation => {
                Err(StoreError::BouncerExists { name: name.to_string() })
            }
            Err(source) => Err(sql_err(OP, &self.path)(source)),
        }
    }

    fn list_bouncers(&self) -> Result<Vec<BouncerInfo>> {
        let e = sql_err("list_bouncers", &self.path);
        let mut st = self
            .conn
            .prepare_cached("SELECT name, created, last_pull, cursor FROM bouncers ORDER BY name")
            .map_err(&e)?;
        st.query_map([], |r| {
            Ok(BouncerInfo {
                name: r.get(0)?,
                created: Timestamp(r.get(1)?),
                last_pull: r.get::<_, Option<i64>>(2)?.map(Timestamp),
                cursor: ChangeCursor(r.get(3)?),
            })
        })
        .map_err(&e)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(&e)
    }

    fn delete_bouncer(&mut self, name: &str) -> Result<bool> {
        let n = self
            .conn
            .execute("DELETE FROM bouncers WHERE name = ?1", [name])
            .map_err(sql_err("delete_bouncer", &self.path))?;
        Ok(n > 0)
    }

    fn authenticate(&self, key: &str) -> Result<Option<String>> {
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Ok(None);
        }
        let e = sql_err("authenticate", &self.path);
        let mut st = self.conn.prepare_cached("SELECT name, salt, key_hash FROM bouncers").map_err(&e)?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, Vec<u8>>(2)?)))
            .map_err(&e)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(&e)?;
        // Hash and compare against every bouncer, without stopping early.
        let mut found = None;
        for (name, salt, stored) in rows {
            if keys::ct_eq(&keys::hash_key(&salt, key), &stored) {
                found = Some(name);
            }
        }
        Ok(found)
    }

    fn record_pull(&mut self, name: &str, now: Timestamp, cursor: ChangeCursor) -> Result<bool> {
        let n = self
            .conn
            .prepare_cached("UPDATE bouncers SET last_pull = ?2, cursor = ?3 WHERE name = ?1")
            .map_err(sql_err("record_pull", &self.path))?
            .execute((name, now.0, cursor.0))
            .map_err(sql_err("record_pull", &self.path))?;
        Ok(n > 0)
    }

    fn windows(&self, scope: &str) -> Result<StoredWindows> {
        const OP: &str = "windows";
        let e = sql_err(OP, &self.path);
        // One read transaction: windows and rule states of the same commit.
        let tx = self.conn.unchecked_transaction().map_err(&e)?;
        let mut out = StoredWindows::default();
        {
            let mut st = tx
                .prepare_cached("SELECT rule, kind, key, state FROM windows WHERE scope = ?1 ORDER BY rule, kind, key")
                .map_err(&e)?;
            let rows = st
                .query_map([scope], |r| {
                    let (Some(rule), Some(kind), Some(key), Some(state)) =
                        (text_col(r, 0)?, text_col(r, 1)?, text_col(r, 2)?, text_col(r, 3)?)
                    else {
                        return Ok(None);
                    };
                    let key = match kind {
                        "ip" => match key.parse::<IpAddr>() {
                            Ok(ip) => Key::Ip(ip),
                            Err(_) => return Ok(None),
                        },
                        "text" => Key::Text(Arc::from(key)),
                        _ => return Ok(None),
                    };
                    Ok(Some(WindowRow {
                        scope: scope.to_string(),
                        rule: rule.to_string(),
                        key,
                        state: Some(state.to_string()),
                    }))
                })
                .map_err(&e)?;
            for row in rows {
                match row.map_err(&e)? {
                    Some(w) => out.windows.push(w),
                    None => out.skipped += 1,
                }
            }
            let mut st =
                tx.prepare_cached("SELECT rule, state FROM rule_states WHERE scope = ?1 ORDER BY rule").map_err(&e)?;
            let rows = st
                .query_map([scope], |r| {
                    Ok(match (text_col(r, 0)?, text_col(r, 1)?) {
                        (Some(rule), Some(state)) => Some(RuleStateRow {
                            scope: scope.to_string(),
                            rule: rule.to_string(),
                            state: Some(state.to_string()),
                        }),
                        _ => None,
                    })
                })
                .map_err(&e)?;
            for row in rows {
                match row.map_err(&e)? {
                    Some(r) => out.rules.push(r),
                    None => out.skipped += 1,
                }
            }
        }
        drop(tx);
        Ok(out)
    }

    fn delete_windows(&mut self, scope: &str) -> Result<usize> {
        const OP: &str = "delete_windows";
        let path = self.path.clone();
        let e = sql_err(OP, &path);
        let tx = self.begin_write(OP)?;
        let n = tx.execute("DELETE FROM windows WHERE scope = ?1", [scope]).map_err(&e)?
            + tx.execute("DELETE FROM rule_states WHERE scope = ?1", [scope]).map_err(&e)?;
        tx.commit().map_err(&e)?;
        Ok(n)
    }

    fn ban_history(&self, rules: &[&str]) -> Result<Vec<BanHistory>> {
        const OP: &str = "ban_history";
        let e = sql_err(OP, &self.path);
        let names = to_json(OP, &rules)?;
        // Per target: the number of new bans and, from the newest of them
        // (SQLite takes bare columns from the MAX(id) row), its trigger time
        // and end. Reasons that are not JSON count as new bans from `created`.
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT scope, value, COUNT(*), MAX(id), t, until FROM ( \
                   SELECT d.id, d.scope, d.value, d.until, \
                     CASE WHEN json_valid(d.reason) AND json_type(d.reason, '$.trigger_time') = 'integer' \
                          THEN json_extract(d.reason, '$.trigger_time') ELSE d.created END AS t \
                   FROM decisions d \
                   WHERE d.origin = 'rule' \
                     AND (?1 = 0 OR d.rule IN (SELECT value FROM json_each(?2))) \
                     AND NOT EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid(d.reason) \
                                       THEN d.reason ELSE '{}' END, '$.steps') s \
                                     WHERE s.type = 'object' \
                                       AND json_extract(s.value, '$.step') = 'already_banned') \
                 ) GROUP BY scope, value ORDER BY MAX(id)",
            )
            .map_err(&e)?;
        let rows = st
            .query_map((rules.len() as i64, names), |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                ))
            })
            .map_err(&e)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(&e)?;
        Ok(rows
            .into_iter()
            .filter_map(|(scope, value, count, t, until)| {
                let (key, prefix) = decode_key(OP, &self.path, &scope, &value).ok()?;
                Some(BanHistory {
                    key,
                    prefix,
                    history: stadtwache_decide::History {
                        ban_count: u32::try_from(count).unwrap_or(u32::MAX),
                        last_ban: Timestamp(t),
                        last_bantime: until.map(|u| Timestamp(u).since(Timestamp(t))),
                    },
                })
            })
            .collect())
    }

    fn purge(&mut self, before: Timestamp) -> Result<Purged> {
        const OP: &str = "purge";
        let path = self.path.clone();
        let e = sql_err(OP, &path);
        let tx = self.begin_write(OP)?;
        let removed_seq: Option<i64> = tx
            .query_row(
                "SELECT MAX(c.seq) FROM changes c JOIN decisions d ON d.id = c.decision_id \
                 WHERE d.deleted_at IS NOT NULL AND d.deleted_at < ?1",
                [before.0],
                |r| r.get(0),
            )
            .map_err(&e)?;
        tx.execute(
            "DELETE FROM changes WHERE decision_id IN (SELECT id FROM decisions \
             WHERE deleted_at IS NOT NULL AND deleted_at < ?1)",
            [before.0],
        )
        .map_err(&e)?;
        let decisions = tx
            .execute("DELETE FROM decisions WHERE deleted_at IS NOT NULL AND deleted_at < ?1", [before.0])
            .map_err(&e)?;
        let alerts = tx.execute("DELETE FROM alerts WHERE time < ?1", [before.0]).map_err(&e)?;
        if let Some(seq) = removed_seq {
            tx.execute(
                "INSERT INTO meta (name, value) VALUES ('purged_seq', ?1) \
                 ON CONFLICT (name) DO UPDATE SET value = MAX(value, excluded.value)",
                [seq],
            )
            .map_err(&e)?;
        }
        tx.commit().map_err(&e)?;
        Ok(Purged { decisions, alerts })
    }
}

/// Ends the live decisions matching `cond` (parameters `?1`, `?2`, … from
/// `params`): one change record each, then `deleted_at = now`.
fn end_decisions(
    conn: &Connection,
    path: &Path,
    op: &'static str,
    cond: &str,
    params: &[Value],
    now: Timestamp,
    reason: EndReason,
) -> Result<usize> {
    let e = sql_err(op, path);
    conn.prepare_cached(&format!(
        "INSERT INTO changes (decision_id, kind) \
         SELECT id, 1 FROM decisions WHERE deleted_at IS NULL AND {cond} ORDER BY id"
    ))
    .map_err(&e)?
    .execute(rusqlite::params_from_iter(params))
    .map_err(&e)?;
    let reason = match reason {
        EndReason::Expired => "expired",
        EndReason::Deleted => "deleted",
    };
    let n = params.len();
    let mut all: Vec<Value> = params.to_vec();
    all.push(Value::Integer(now.0));
    all.push(Value::Text(reason.to_string()));
    conn.prepare_cached(&format!(
        "UPDATE decisions SET deleted_at = ?{}, end_reason = ?{} \
         WHERE deleted_at IS NULL AND {cond}",
        n + 1,
        n + 2
    ))
    .map_err(&e)?
    .execute(rusqlite::params_from_iter(all))
    .map_err(&e)
}
