//! Persistent state of the Stadtwache daemon: decisions (bans), alerts, the
//! read positions of log sources (checkpoints) and bouncer credentials.
//!
//! The daemon talks to a [`Store`]; [`SqliteStore`] (SQLite in WAL mode, one
//! file `stadtwache.db` in the data directory) is the default backend. The
//! trait is synchronous: the daemon calls it from one dedicated thread (or
//! `spawn_blocking`), so a slow disk never stalls detection.
//!
//! # The invariant: kill -9 loses no committed decision and double-counts no line
//!
//! A log source's checkpoint says "every line before `offset` has been
//! processed". The decisions and alerts that those lines produced are written
//! **in the same transaction** as the checkpoint, by [`Store::commit_batch`]:
//!
//! ```text
//! lines read ──▶ match/detect/decide ──▶ Batch { decisions, alerts, checkpoints, windows }
//!                                              │ commit_batch: ONE transaction
//!                                              ▼
//!                          either all of it is in the database, or none of it
//! ```
//!
//! After a crash at any moment (process killed, `kill -9`, panic, OOM kill)
//! the database holds, for every source, a checkpoint *and exactly the
//! decisions and alerts of the lines before it*. A restart resumes reading at
//! the checkpoint: no line is counted twice (its effects are either committed
//! with the checkpoint or rolled back with it) and no committed decision is
//! lost. `tests/crash.rs` SIGKILLs a writer 30 times at random moments and
//! checks exactly this.
//!
//! What this asks of the daemon:
//! - Put a checkpoint into a batch only together with *all* the effects of the
//!   lines before it — including the detector's partial windows that changed
//!   ([`Batch::windows`], [`Batch::rule_states`]; see the
//!   `stadtwache_detect::persist` docs). Restored at start with
//!   [`Store::windows`], they let the detector continue exactly where the
//!   committed lines left it: failures that straddle a kill still add up
//!   (fail2ban itself forgets half-counted failures on restart).
//! - Enforce (firewall) a decision after `commit_batch` returned; on start,
//!   re-apply [`Store::active_decisions`]. Enforcement is idempotent, so a
//!   crash between commit and enforcement only delays it.
//! - Never write a checkpoint on its own (with [`Store::put_checkpoint`]) for a
//!   position whose effects are still uncommitted.
//!
//! ## Process crash vs power loss (`synchronous`)
//!
//! In WAL mode a commit appends to the `-wal` file. A **process** crash cannot
//! lose it: the data is in the kernel's page cache, and the next opener
//! replays the WAL. That holds with `synchronous=NORMAL` (the default here,
//! [`Synchronous::Normal`]), which syncs only at WAL checkpoints.
//!
//! A **power loss** (or kernel crash) with `NORMAL` may roll back the last
//! few commits; the database stays consistent, and because checkpoints travel
//! with their effects, the rolled-back batches are redone by re-reading their
//! lines: still no double count, the tail is merely re-derived. What is
//! really lost is a decision that exists nowhere else — an admin's manual ban
//! or one received from a federation peer in that last second. Operators who
//! care choose [`Synchronous::Full`] (an `fsync` of the WAL per commit; a few
//! hundred commits per second on an SSD instead of tens of thousands).
//!
//! # Decisions and the change stream
//!
//! A decision is never updated in place except to end it: deleting
//! ([`Store::delete_decisions`]) or expiring ([`Store::expire`]) sets
//! `deleted_at`. Every insertion and every end appends a row to a change log
//! whose sequence number only grows (SQLite `AUTOINCREMENT`: numbers are never
//! reused, and the single writer commits them in order, so a reader never sees
//! change *n + 1* without change *n*). [`Store::changed_since`] answers the
//! CrowdSec stream API (`/v1/decisions/stream`) from a [`ChangeCursor`] kept
//! per bouncer ([`Store::record_pull`]); see [`Changes`] for the exact contract.
//!
//! A PostgreSQL backend must keep that ordering guarantee: sequence values
//! there are handed out at insert time but become visible at commit time, out
//! of order. Serialise writers of the change log (e.g. `LOCK TABLE changes IN
//! EXCLUSIVE MODE` or an advisory lock in each writing transaction) or hand out
//! cursors only up to the oldest running writer's snapshot.
//!
//! # Bouncer keys
//!
//! [`Store::add_bouncer`] returns a key made of 32 random bytes (64 hex
//! digits) once; the store keeps only `SHA-256(salt ‖ key)` with a random
//! 16-byte salt per bouncer. [`Store::authenticate`] hashes the presented key
//! with every bouncer's salt and compares in constant time (bouncers are few;
//! the daemon may cache positive answers).

//! # Wiring in the daemon
//!
//! ```text
//! start:   store = SqliteStore::open(data_dir)
//!          enforce every store.active_decisions(now)            (idempotent)
//!          decider.restore_history(store.ban_history(rule names)); decider.restore_bans(rule decisions)
//!          detector.restore(store.windows(scope))                (stadtwache_detect::persist)
//!          resume each follower from store.checkpoints_in(group)
//! lines:   match → detect → decide over a run of lines; then ONE
//!          store.commit_batch(Batch { decisions, alerts,
//!                                     checkpoints: follower's set, replace_groups: [group],
//!                                     windows: detector.take_dirty(), rule_states: take_dirty_rules() })
//!          and only then enforce the new decisions
//! timer:   store.expire(now) every second; the firewall enforcer follows
//!          store.changed_since(its cursor) like any bouncer
//! LAPI:    name = store.authenticate(X-Api-Key)?
//!          changes = store.changed_since(startup ? START : bouncer's cursor)
//!          store.record_pull(name, now, changes.cursor)
//! daily:   store.purge(now - retention)
//! ```

mod error;
mod keys;
mod schema;
mod sqlite;

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::Serialize;
use stadtwache_core::{Key, Timestamp};

pub use error::{Result, StoreError};
pub use keys::{KEY_BYTES, MAX_KEY_LEN, MIN_KEY_LEN};
pub use schema::SCHEMA_VERSION;
pub use sqlite::{DB_FILE_NAME, SqliteOptions, SqliteStore, Synchronous};

/// At most this many evidence lines are kept per decision or alert (the last ones).
pub const MAX_EVIDENCE_LINES: usize = 16;
/// Evidence line texts are cut to this many bytes (at a character boundary).
pub const MAX_EVIDENCE_TEXT: usize = 1024;
/// Input names of evidence lines are cut to this many bytes.
pub const MAX_INPUT_NAME: usize = 512;
/// Longest key text, rule name, source id or bouncer name accepted (bytes).
pub const MAX_NAME_LEN: usize = 4096;
/// Longest file fingerprint accepted (bytes; callers store a hash or the first bytes).
pub const MAX_FINGERPRINT: usize = 256;

/// Row id of a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct DecisionId(pub i64);

/// Row id of an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct AlertId(pub i64);

/// A position in the change log of decisions. [`ChangeCursor::START`] means
/// "nothing seen yet".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ChangeCursor(pub i64);

impl ChangeCursor {
    pub const START: ChangeCursor = ChangeCursor(0);
}

/// Who took a decision.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A detection rule (the daemon's own pipeline).
    Rule,
    /// An administrator (CLI, API).
    Admin,
    /// A federation peer.
    Federation,
    /// A bouncer (e.g. a WAF that reports an attack).
    Bouncer,
    /// Anything else (imported lists, …): stored as written, lower case.
    Other(String),
}

impl Origin {
    pub fn as_str(&self) -> &str {
        match self {
            Origin::Rule => "rule",
            Origin::Admin => "admin",
            Origin::Federation => "federation",
            Origin::Bouncer => "bouncer",
            Origin::Other(s) => s,
        }
    }

    /// The inverse of [`Origin::as_str`] (case-insensitive).
    pub fn parse(text: &str) -> Origin {
        match text.to_ascii_lowercase().as_str() {
            "rule" => Origin::Rule,
            "admin" => Origin::Admin,
            "federation" => Origin::Federation,
            "bouncer" => Origin::Bouncer,
            other => Origin::Other(other.to_string()),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Origin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One log line kept as evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct EvidenceLine {
    /// The input (file path, `journald:sshd.service`, …).
    pub input: String,
    /// 1-based line number in that input (0 when unknown).
    pub line: u64,
    pub text: String,
}

impl EvidenceLine {
    /// An evidence line, cut to [`MAX_INPUT_NAME`] / [`MAX_EVIDENCE_TEXT`] bytes.
    pub fn new(input: impl Into<String>, line: u64, text: impl Into<String>) -> Self {
        EvidenceLine {
            input: truncate(input.into(), MAX_INPUT_NAME),
            line,
            text: truncate(text.into(), MAX_EVIDENCE_TEXT),
        }
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// The last [`MAX_EVIDENCE_LINES`] lines, each cut to size.
pub(crate) fn cap_evidence(lines: &[EvidenceLine]) -> Vec<EvidenceLine> {
    let skip = lines.len().saturating_sub(MAX_EVIDENCE_LINES);
    lines[skip..].iter().map(|l| EvidenceLine::new(l.input.clone(), l.line, l.text.clone())).collect()
}

/// A decision to store.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NewDecision {
    /// The banned key: an address (the network address with `prefix`) or a text key.
    pub key: Key,
    /// `Some(p)`: the network `key/p` (addresses only). A full-length prefix
    /// (`/32`, `/128`) is stored as the plain address.
    pub prefix: Option<u8>,
    pub origin: Origin,
    /// Name of the rule that triggered (for `Origin::Rule`), or a scenario name.
    pub rule: Option<String>,
    /// Why: the decide crate's `Explanation` as JSON (or anything for other origins).
    pub reason: serde_json::Value,
    /// Lines that led to it (capped: [`MAX_EVIDENCE_LINES`], [`MAX_EVIDENCE_TEXT`]).
    pub evidence: Vec<EvidenceLine>,
    pub created: Timestamp,
    /// `None` = permanent. Active while `now <= until` (as the decide crate).
    pub until: Option<Timestamp>,
    /// Dry run: recorded, never sent to bouncers.
    pub simulated: bool,
}

impl NewDecision {
    /// A decision without reason, rule or evidence.
    pub fn new(key: Key, prefix: Option<u8>, origin: Origin, created: Timestamp, until: Option<Timestamp>) -> Self {
        NewDecision {
            key,
            prefix,
            origin,
            rule: None,
            reason: serde_json::Value::Null,
            evidence: Vec::new(),
            created,
            until,
            simulated: false,
        }
    }

    /// The decision to store for a `Decision::Ban` of the decide crate
    /// (`None` for the other outcomes): origin [`Origin::Rule`], created at
    /// the decision's `now`, the explanation as reason.
    ///
    /// A prolonged ban (`Decision::AlreadyBanned { prolonged: true, .. }`)
    /// is stored by the caller as a new decision with the new `until`; the
    /// stream sends bouncers the longest active decision per target.
    pub fn from_decision(
        decision: &stadtwache_decide::Decision,
        rule_name: Option<&str>,
        evidence: Vec<EvidenceLine>,
    ) -> Result<Option<NewDecision>> {
        let stadtwache_decide::Decision::Ban { key, prefix, until, simulated, reason, .. } = decision else {
            return Ok(None);
        };
        let reason_json = serde_json::to_value(reason).map_err(|e| StoreError::Invalid {
            op: "from_decision",
            what: format!("explanation does not serialise: {e}"),
        })?;
        Ok(Some(NewDecision {
            key: key.clone(),
            prefix: *prefix,
            origin: Origin::Rule,
            rule: rule_name.map(str::to_string),
            reason: reason_json,
            evidence,
            created: reason.decided_at,
            until: *until,
            simulated: *simulated,
        }))
    }

    /// `key` or `key/prefix`.
    pub fn target(&self) -> String {
        stadtwache_decide::target_string(&self.key, self.prefix)
    }

    /// When the ban started: the reason's `trigger_time` (a decide
    /// `Explanation`), else `created` (for `RestoredBan::since`).
    pub fn trigger_time(&self) -> Timestamp {
        self.reason.get("trigger_time").and_then(serde_json::Value::as_i64).map_or(self.created, Timestamp)
    }

    /// Active at `now`: `until` is `None` or `now <= until`.
    pub fn is_active_at(&self, now: Timestamp) -> bool {
        self.until.is_none_or(|u| now <= u)
    }
}

/// Why a decision ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EndReason {
    /// Removed by [`Store::expire`] after its `until`.
    Expired,
    /// Removed by [`Store::delete_decisions`].
    Deleted,
}

/// A decision as stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredDecision {
    pub id: DecisionId,
    #[serde(flatten)]
    pub decision: NewDecision,
    /// When it was deleted or expired (`None` while live).
    pub deleted_at: Option<Timestamp>,
    pub end: Option<EndReason>,
}

impl StoredDecision {
    /// Not ended and not past its `until` at `now`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.deleted_at.is_none() && self.decision.is_active_at(now)
    }
}

/// Which decisions to delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecisionRef {
    Id(DecisionId),
    /// Every live decision on exactly this target (an address, a network
    /// `key/prefix`, or a text key). Networks are not expanded: deleting
    /// `192.0.2.1` leaves a ban on `192.0.2.0/24`.
    Target {
        key: Key,
        prefix: Option<u8>,
    },
}

/// The answer of [`Store::changed_since`], as the CrowdSec stream API needs it.
///
/// Decisions are grouped by *target* (scope and value: an address, a network,
/// a text key); simulated decisions never appear.
/// - `new`: for every target that got a decision after the cursor and still
///   has a live one, the **longest** live decision of that target (permanent
///   beats any `until`; ties go to the newest). For [`ChangeCursor::START`]:
///   the longest live decision of every target (a bouncer's start-up pull).
/// - `deleted`: for every target one of whose decisions ended after the
///   cursor and that has **no** live decision left, its last ended decision.
///   A target that still has a live decision is never reported deleted, so a
///   bouncer that keys its ban list by address cannot drop a ban that is
///   still in force.
/// - `cursor`: hand it back on the next call (store it with
///   [`Store::record_pull`]); it only grows.
/// - `gap`: the cursor is older than what [`Store::purge`] kept (or newer than
///   the log, e.g. a replaced database): `deleted` may be incomplete. `new` is
///   then computed as for `START`.
///
/// The decisions come without `reason` (`Null`) and `evidence` (empty), which
/// bouncers never see; [`Store::decision`] has them.
///
/// "Live" means not ended by [`Store::expire`] or [`Store::delete_decisions`];
/// the daemon runs `expire(now)` before answering a pull (or every second),
/// so a decision past its `until` has been ended.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Changes {
    pub new: Vec<StoredDecision>,
    pub deleted: Vec<StoredDecision>,
    pub cursor: ChangeCursor,
    pub gap: bool,
}

/// An alert: a rule triggered for a key (whatever the decision was).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NewAlert {
    pub rule: String,
    pub key: Key,
    /// Trigger time.
    pub time: Timestamp,
    /// Failures counted in the window.
    pub count: u64,
    /// The detector's window summary (JSON).
    pub window: serde_json::Value,
    pub evidence: Vec<EvidenceLine>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredAlert {
    pub id: AlertId,
    #[serde(flatten)]
    pub alert: NewAlert,
}

/// Which alerts [`Store::alerts`] returns (all conditions must hold).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertFilter {
    pub rule: Option<String>,
    pub key: Option<Key>,
    /// `time >= since`.
    pub since: Option<Timestamp>,
    /// `time < before`.
    pub before: Option<Timestamp>,
}

/// Identity of a log file, to notice rotation and truncation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileIdentity {
    pub dev: u64,
    pub inode: u64,
    /// A fingerprint of the first bytes of the file (the bytes themselves or a
    /// hash; at most [`MAX_FINGERPRINT`] bytes).
    pub fingerprint: Vec<u8>,
}

/// Where a log source was read up to.
///
/// A followed file keeps one checkpoint per generation still being read (the
/// rotated `auth.log.1` and the new `auth.log`): give them one `group` (the
/// stream, e.g. the jail's log pattern) and distinct `source` ids (e.g.
/// `group#dev:inode`), and write the group's whole set with
/// [`Batch::replace_groups`], so that files that were read to their end and
/// let go do not linger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    /// Unique id of the checkpoint (a path, `journald:sshd.service`, …).
    pub source: String,
    /// The stream it belongs to (may equal `source`).
    pub group: String,
    /// Last path the file was seen at.
    pub path: Option<PathBuf>,
    /// For files; `None` for journald and other sources.
    pub file: Option<FileIdentity>,
    /// `(dev, inode)` of the file this one is read after (the older
    /// generation of the same log, still being read when the checkpoint was taken).
    pub after: Option<(u64, u64)>,
    /// The file's modification time when last seen (ns since the epoch).
    pub modified_ns: Option<i64>,
    /// Byte offset after the last processed line.
    pub offset: u64,
    /// Number of the last processed line (0 when not counted).
    pub line: u64,
    /// journald cursor of the last processed entry.
    pub journal_cursor: Option<String>,
    pub updated: Timestamp,
}

impl Checkpoint {
    /// A checkpoint of `source` (its own group) at `offset`, nothing else known.
    pub fn new(source: impl Into<String>, offset: u64, updated: Timestamp) -> Self {
        let source = source.into();
        Checkpoint {
            group: source.clone(),
            source,
            path: None,
            file: None,
            after: None,
            modified_ns: None,
            offset,
            line: 0,
            journal_cursor: None,
            updated,
        }
    }
}

/// What [`Store::commit_batch`] writes in one transaction.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    pub decisions: Vec<NewDecision>,
    pub alerts: Vec<NewAlert>,
    /// The positions after the lines that produced the decisions and alerts
    /// (inserted or replaced by `source`).
    pub checkpoints: Vec<Checkpoint>,
    /// Groups whose checkpoints are *replaced* by this batch: every stored
    /// checkpoint of these groups is removed before `checkpoints` are written.
    pub replace_groups: Vec<String>,
    /// Detector windows changed by the lines before the checkpoints (upserts
    /// and deletes, see [`WindowRow`]); written after the checkpoints.
    pub windows: Vec<WindowRow>,
    /// fail2ban service states of rules (see [`RuleStateRow`]).
    pub rule_states: Vec<RuleStateRow>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.decisions.is_empty()
            && self.alerts.is_empty()
            && self.checkpoints.is_empty()
            && self.replace_groups.is_empty()
            && self.windows.is_empty()
            && self.rule_states.is_empty()
    }
}

/// The saved window of one `(rule, key)` of a detector (see the
/// `stadtwache_detect::persist` docs for how the daemon fills these).
///
/// `scope` is the daemon's name of the detector (its source); `rule` the
/// rule's name (rule ids change with the configuration); `key` the key
/// (stored as its scope `ip`/`text` and text, so a text key that looks like
/// an address stays a text key). `state` is the serialised
/// `stadtwache_detect::SavedWindow`; `None` deletes the row (in a batch;
/// rows read back always have a state).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WindowRow {
    pub scope: String,
    pub rule: String,
    pub key: Key,
    pub state: Option<String>,
}

/// The saved service state of one rule of a detector
/// (`stadtwache_detect::SavedRule`, serialised); `None` deletes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleStateRow {
    pub scope: String,
    pub rule: String,
    pub state: Option<String>,
}

/// What [`Store::windows`] read for one scope, in one snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StoredWindows {
    /// Every stored window of the scope (by rule, then key), state set.
    pub windows: Vec<WindowRow>,
    /// Every stored rule state of the scope (by rule), state set.
    pub rules: Vec<RuleStateRow>,
    /// Rows that could not be read (bad key, state not text): skipped.
    pub skipped: usize,
}

/// The ban history of one target, as [`Store::ban_history`] derives it from
/// the stored decisions (fail2ban's `bips` row).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BanHistory {
    pub key: Key,
    pub prefix: Option<u8>,
    pub history: stadtwache_decide::History,
}

/// Ids given to a batch's rows, in the batch's order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Committed {
    pub decisions: Vec<DecisionId>,
    pub alerts: Vec<AlertId>,
}

/// A bouncer, without its key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BouncerInfo {
    pub name: String,
    pub created: Timestamp,
    pub last_pull: Option<Timestamp>,
    /// Where its stream stands ([`ChangeCursor::START`] before the first pull).
    pub cursor: ChangeCursor,
}

/// What [`Store::purge`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Purged {
    pub decisions: usize,
    pub alerts: usize,
}

/// The daemon's persistent state. See the crate docs for the atomicity
/// invariant and the stream contract. Methods that write take `&mut self`;
/// one writer at a time.
pub trait Store: Send {
    /// Writes decisions, alerts and checkpoints in ONE transaction: all or
    /// nothing, also under `kill -9`.
    fn commit_batch(&mut self, batch: &Batch) -> Result<Committed>;

    fn insert_decision(&mut self, decision: &NewDecision) -> Result<DecisionId> {
        let batch = Batch { decisions: vec![decision.clone()], ..Batch::default() };
        let c = self.commit_batch(&batch)?;
        c.decisions.first().copied().ok_or(StoreError::Invalid { op: "insert_decision", what: "no id returned".into() })
    }

    /// Ends the live decisions `which` refers to at `now` (recorded as deleted
    /// for the stream). Returns how many ended.
    fn delete_decisions(&mut self, which: &DecisionRef, now: Timestamp) -> Result<usize>;

    /// Live decisions not past their `until` at `now`, oldest first.
    fn active_decisions(&self, now: Timestamp) -> Result<Vec<StoredDecision>>;

    /// Every decision (live, expired, deleted) on `key` — for an address also
    /// those on networks that contain it — newest first.
    fn decisions_for(&self, key: &Key) -> Result<Vec<StoredDecision>>;

    fn decision(&self, id: DecisionId) -> Result<Option<StoredDecision>>;

    /// Decision changes after `cursor`; see [`Changes`].
    fn changed_since(&self, cursor: ChangeCursor) -> Result<Changes>;

    /// Ends (as [`EndReason::Expired`], at `now`) every live decision with
    /// `until < now`. Returns how many.
    fn expire(&mut self, now: Timestamp) -> Result<usize>;

    fn insert_alert(&mut self, alert: &NewAlert) -> Result<AlertId> {
        let batch = Batch { alerts: vec![alert.clone()], ..Batch::default() };
        let c = self.commit_batch(&batch)?;
        c.alerts.first().copied().ok_or(StoreError::Invalid { op: "insert_alert", what: "no id returned".into() })
    }

    /// Alerts matching `filter`, newest first, at most `limit`.
    fn alerts(&self, filter: &AlertFilter, limit: usize) -> Result<Vec<StoredAlert>>;

    fn get_checkpoint(&self, source: &str) -> Result<Option<Checkpoint>>;

    /// Writes one checkpoint on its own. Only for positions whose effects are
    /// committed (see the crate docs); otherwise use `commit_batch`.
    fn put_checkpoint(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        let batch = Batch { checkpoints: vec![checkpoint.clone()], ..Batch::default() };
        self.commit_batch(&batch).map(|_| ())
    }

    /// All checkpoints, by source.
    fn checkpoints(&self) -> Result<Vec<Checkpoint>>;

    /// The checkpoints of one group, by source.
    fn checkpoints_in(&self, group: &str) -> Result<Vec<Checkpoint>>;

    fn delete_checkpoint(&mut self, source: &str) -> Result<bool>;

    /// Registers a bouncer and returns its new key, in plain text, once.
    fn add_bouncer(&mut self, name: &str, now: Timestamp) -> Result<String>;

    /// Registers a bouncer with a key chosen by the operator
    /// ([`MIN_KEY_LEN`]..=[`MAX_KEY_LEN`] bytes).
    fn add_bouncer_with_key(&mut self, name: &str, key: &str, now: Timestamp) -> Result<()>;

    fn list_bouncers(&self) -> Result<Vec<BouncerInfo>>;

    fn delete_bouncer(&mut self, name: &str) -> Result<bool>;

    /// The name of the bouncer whose key this is.
    fn authenticate(&self, key: &str) -> Result<Option<String>>;

    /// Records a stream pull: its time and the cursor handed out. `false`
    /// when there is no such bouncer.
    fn record_pull(&mut self, name: &str, now: Timestamp, cursor: ChangeCursor) -> Result<bool>;

    /// Removes alerts with `time < before` and ended decisions with
    /// `deleted_at < before` (with their change records).
    fn purge(&mut self, before: Timestamp) -> Result<Purged>;

    /// The saved detector windows and rule states of `scope` (one snapshot).
    /// Unreadable rows are skipped and counted, never an error.
    fn windows(&self, scope: &str) -> Result<StoredWindows>;

    /// Removes every saved window and rule state of `scope` (a source that
    /// was removed, or whose rules changed). Returns how many rows.
    fn delete_windows(&mut self, scope: &str) -> Result<usize>;

    /// Per target, the history of bans by rules (origin [`Origin::Rule`]),
    /// for `bantime.increment` after a restart (fail2ban's `bips`): the
    /// number of bans, the time and ban time of the last one. Only decisions
    /// of the rules named in `rules` count (all rules when empty). A
    /// decision whose reason is an `AlreadyBanned` explanation (a
    /// prolongation stored as a new decision) is not a new ban and does not
    /// count. The last ban's time is its `reason.trigger_time` (else
    /// `created`), its ban time `until - that` (`None`: permanent). Ended
    /// decisions count until [`Store::purge`] removes them, so keep them at
    /// least as long as `bantime.increment`'s purge age. Targets whose key
    /// cannot be read are skipped.
    fn ban_history(&self, rules: &[&str]) -> Result<Vec<BanHistory>>;
}

/// How a key is stored: scope, value and prefix. Networks are masked to their
/// network address; IPv4-mapped IPv6 addresses are stored as IPv4 (as the
/// decide crate bans them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TargetCols {
    pub scope: &'static str,
    pub value: String,
    pub prefix: Option<u8>,
}

pub(crate) fn target_cols(op: &'static str, key: &Key, prefix: Option<u8>) -> Result<TargetCols> {
    match key {
        Key::Ip(ip) => {
            let ip = &stadtwache_decide::canonical_ip(*ip);
            let max = if ip.is_ipv4() { 32 } else { 128 };
            match prefix {
                None => Ok(TargetCols { scope: "ip", value: ip.to_string(), prefix: None }),
                Some(p) if p == max => Ok(TargetCols { scope: "ip", value: ip.to_string(), prefix: None }),
                Some(p) if p > max => {
                    Err(StoreError::Invalid { op, what: format!("prefix /{p} is longer than the address {ip}") })
                }
                Some(p) => {
                    let net = network(*ip, p);
                    Ok(TargetCols { scope: "range", value: format!("{net}/{p}"), prefix: Some(p) })
                }
            }
        }
        Key::Text(t) => {
            if prefix.is_some() {
                return Err(StoreError::Invalid { op, what: format!("a prefix on the text key {t:?}") });
            }
            check_len(op, "key", t)?;
            Ok(TargetCols { scope: "text", value: t.to_string(), prefix: None })
        }
    }
}

pub(crate) fn network(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix.min(32))) };
            IpAddr::V4((bits & mask).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix.min(128))) };
            IpAddr::V6((bits & mask).into())
        }
    }
}

pub(crate) fn check_len(op: &'static str, what: &str, text: &str) -> Result<()> {
    if text.len() > MAX_NAME_LEN {
        return Err(StoreError::Invalid {
            op,
            what: format!("{what} is {} bytes long (at most {MAX_NAME_LEN})", text.len()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod windows_tests;
