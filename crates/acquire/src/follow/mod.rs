//! The `acquire` stage for the live daemon: follow log files as they grow.
//!
//! A [`FileFollower`] is given paths or globs and hands out complete lines
//! ([`FollowedLine`]) from every matching regular file, in order per file,
//! surviving log rotation. It is driven by the caller: [`FileFollower::poll_once`]
//! does one full pass (re-expand the globs, `fstat` every open file, read what
//! was appended) and returns the lines; [`FileFollower::wait`] blocks until
//! inotify reports a change in a watched directory or the poll interval
//! passes. Tests call `poll_once`/[`FileFollower::poll_once_at`] directly and
//! never depend on timing.
//!
//! # Identity, offsets, checkpoints
//!
//! A file is identified by its `(device, inode)` ([`FileId`]) plus a
//! fingerprint: its first [`FollowConfig::fingerprint_len`] bytes (raw bytes,
//! not a hash: stable across versions and nothing to collide). Files are
//! tracked by identity, not by path, and stay open while tracked, so a rename
//! changes nothing but the path we report, and the kernel cannot reuse the
//! inode under us.
//!
//! The offset of a file is the end of the last **complete** line handed out
//! (just past its `\n`). A partial last line (no `\n` yet) is held and not
//! handed out until it is completed; it is handed out on its own (flagged
//! `partial`) only when the file is closed for good (rotated away or deleted,
//! after [`FollowConfig::rotate_wait`]), or when
//! [`FollowConfig::partial_line_timeout`] has passed without the file growing
//! (default: never, because a writer that flushes in blocks would have its
//! lines cut in two; the daemon can set it for writers known to leave a last
//! line unterminated). A checkpoint never includes a partial line, so after a
//! restart it is read again whole.
//!
//! [`FileFollower::checkpoint`] returns the complete set of [`Checkpoint`]s
//! for everything handed out so far. The intended loop:
//!
//! ```text
//! let mut f = FileFollower::new(patterns, config, store.load_checkpoints())?;
//! loop {
//!     let lines = f.poll_once();
//!     let decisions = process(&lines);
//!     store.commit(decisions, f.checkpoint());   // one transaction; replaces the whole set
//!     f.wait();
//! }
//! ```
//!
//! A crash before the commit replays the same lines, whose decisions were not
//! committed either: no line is lost and none is processed twice. The set
//! must **replace** the stored one: a file that was drained and closed is no
//! longer in it.
//!
//! On construction with saved checkpoints, each one is looked up by identity
//! among the patterns' matches, then among the rotated names
//! ([`FollowConfig::rotated_suffixes`], e.g. `auth.log.1`, `auth.log-*`).
//! Found with a matching fingerprint: resumed exactly at the saved offset (a
//! rotated-away file is read to its end and closed before the new file at its
//! old path is read). Found with a different fingerprint, or shorter than the
//! offset: the inode was reused or the file truncated; it is handled as a
//! truncation below. Not found: counted in `resume_misses` with an issue
//! naming it. Every matching file without a checkpoint is read from its
//! beginning (start-up included); files at rotated names that are not
//! matched are read only if modified after the checkpoint's `modified_ns`
//! (generations rotated while we were down); on a first start (no
//! checkpoints) they are history and not read. `Checkpoint::after` keeps the
//! order between an older generation still being read and the newer file
//! waiting for it.
//!
//! # Rotation
//!
//! - **rename (`create`)**: the old file's identity is no longer at its path.
//!   It is still open, so it is read to its end (and kept open for
//!   `rotate_wait` for late writers) before the new file at the same path is
//!   read: the new file is *blocked by* the old one while the old one has
//!   unread bytes. No line is lost.
//! - **copytruncate**: detected by `size < offset`, or by the first bytes no
//!   longer matching the fingerprint (truncated and regrown past our offset).
//!   The copy is searched among the matches and rotated names by fingerprint;
//!   if found, it is read from our offset to its end (the lines we had not yet
//!   read before the truncation), then the live file from 0. If not found
//!   (compressed at once, or moved elsewhere), `truncations_unrecovered`
//!   counts it and an issue says that unread lines may be lost; a partial
//!   line we held is handed out as it is (flagged `partial`).
//!
//!   **The inherent race**: lines written between logrotate's copy and its
//!   truncate are in neither the copy nor the truncated file. No tailer can
//!   recover them; we lose them like every other tailer, and the truncation is
//!   counted. Use `create` rotation (rename) for logs that matter.
//!   A further undetectable case: a truncation followed by regrowth past our
//!   offset with the same first `fingerprint_len` bytes.
//! - **a copy of a live file** appearing in the matches (a copytruncate whose
//!   truncate we have not seen yet, or `cp app.log app.log.bak`) is not read
//!   as a new file: it is deferred (counted in `copies_deferred`) and used as
//!   the copy if the live file turns out truncated.
//! - **a whole generation rotated away between two polls** (or a copy of
//!   content we never saw, when the live file was empty at our last look):
//!   any file that newly appears at a rotated name is read from 0 and closed,
//!   in modification-time order, before the live file of its path.
//! - **a glob that also matches rotated names** (`auth.log*`): rotated files
//!   stay followed (open, in the checkpoints) while they match; their last
//!   partial line waits for the partial timeout like any live file.
//! - **deleted files** are read to their end through the open descriptor and
//!   closed; **files appearing later** are read from 0; compressed files
//!   (gzip, xz, bzip2, zstd magic) among the matches are skipped and counted.
//!
//! # Caps and counters
//!
//! As the offline reader: a line over `max_line` bytes is skipped and counted
//! (`oversize`), invalid UTF-8 is replaced and counted, read errors are
//! counted and kept (the last [`MAX_ISSUES`]) as [`FollowIssue`]s; reads per
//! file per poll are capped by `read_budget` ([`FileFollower::has_backlog`]
//! says to poll again at once). [`FileFollower::stats`] has all of it, with
//! the lag (bytes not handed out) of every file. A rotated file that fails to
//! read is given up (counted, with an issue) so it cannot hold back the files
//! after it; a live one is retried at the next poll.
//!
//! # Known limits
//!
//! - With `rotate_wait` zero, lines a writer appends to a rotated file after
//!   we closed it are lost (the default keeps it open 5 s).
//! - Generations that appeared unseen are ordered by their rotated names
//!   (`.N`: the higher the older; other suffixes such as dates in name
//!   order), then by modification time.
//! - A file created and deleted (not renamed) between two polls is never seen.

mod split;
mod watch;

pub use watch::WatchMode;

use split::{RawLine, SplitCounters, Splitter};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use watch::Watcher;

/// Issues kept for [`FollowStats::issues`]; older ones are dropped (and still
/// counted in `issues_total`).
pub const MAX_ISSUES: usize = 100;

/// Below this many fingerprint bytes, a file in the matches that starts like
/// a live file is not taken for its copy (too likely a coincidence).
const MIN_COPY_FINGERPRINT: usize = 32;

const CHUNK: usize = 64 * 1024;

/// Closed files remembered in the checkpoints, at most.
const MAX_CLOSED: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowConfig {
    /// Lines longer than this are skipped and counted.
    pub max_line: usize,
    /// How long [`FileFollower::wait`] blocks at most (the polling fallback's
    /// interval, and the safety net under inotify).
    pub poll_interval: Duration,
    /// Use inotify as a wake-up hint (Linux); polling otherwise.
    pub use_inotify: bool,
    /// Hand out a partial last line after the file has not grown for this
    /// long. `None`: only when the file is closed for good.
    pub partial_line_timeout: Option<Duration>,
    /// How many leading bytes identify a file together with its inode (the
    /// store keeps at most 256: `stadtwache_store::MAX_FINGERPRINT`).
    pub fingerprint_len: usize,
    /// Glob suffixes appended to each pattern to find rotated files by
    /// identity (on resume) and by fingerprint (copytruncate copies).
    pub rotated_suffixes: Vec<String>,
    /// How long a rotated-away or deleted file stays open (read at each poll)
    /// for writers that have not reopened yet.
    pub rotate_wait: Duration,
    /// Bytes read from one file in one poll, at most.
    pub read_budget: usize,
}

impl Default for FollowConfig {
    fn default() -> Self {
        FollowConfig {
            max_line: crate::DEFAULT_MAX_LINE,
            poll_interval: Duration::from_secs(1),
            use_inotify: true,
            partial_line_timeout: None,
            fingerprint_len: 256,
            rotated_suffixes: vec![".[0-9]*".into(), "-[0-9]*".into()],
            rotate_wait: Duration::from_secs(5),
            read_budget: 4 << 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("I002: invalid path pattern {pattern:?}: {message}")]
    Pattern { pattern: String, message: String },
}

/// `(device, inode)` of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    fn of(m: &Metadata) -> FileId {
        FileId { dev: m.dev(), ino: m.ino() }
    }
}

/// Where a line comes from: the index of the pattern that matched the file
/// (the daemon's stream, e.g. a jail's log path) and the file's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SourceId {
    pub pattern: usize,
    pub file: FileId,
}

/// One line, without its terminator (`\n`, and a `\r` before it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowedLine {
    pub source: SourceId,
    /// The file's path when the line was read (a rotated file keeps being
    /// reported under its last matching path).
    pub path: Arc<Path>,
    pub text: String,
    /// The raw bytes were not valid UTF-8 and were replaced.
    pub replaced: bool,
    /// Handed out without a `\n` (end of a closed file, or the idle timeout).
    pub partial: bool,
    /// File offset just past this line: the file's checkpoint offset once
    /// this line is processed.
    pub line_offset_end: u64,
}

/// Where to resume one file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    /// Last path the file matched at (for messages, and to order the new
    /// file at that path after this one).
    pub path: PathBuf,
    pub file: FileId,
    /// The file's first bytes (at most `fingerprint_len`) when last seen.
    pub fingerprint: Vec<u8>,
    /// End of the last complete line handed out.
    pub offset: u64,
    /// The file this one is read after (the older generation of the same
    /// log, still being read when the checkpoint was taken).
    pub after: Option<FileId>,
    /// The file's modification time when last seen, in nanoseconds since the
    /// Unix epoch. On resume, files at rotated names modified later than this
    /// are generations rotated while we were down, and are read.
    pub modified_ns: i64,
}

/// Something that went wrong or may have lost lines; never silent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowIssue {
    pub path: PathBuf,
    pub message: String,
}

/// One open file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileStats {
    pub source: SourceId,
    pub path: PathBuf,
    /// Checkpoint offset.
    pub offset: u64,
    /// Size at the last poll.
    pub size: u64,
    /// Bytes not handed out yet: `size - offset`.
    pub lag: u64,
    /// Rotated away or deleted, being read to its end.
    pub draining: bool,
    /// Waiting for the file it replaced to be read to its end.
    pub blocked: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FollowStats {
    /// Lines seen, handed out or skipped as oversize.
    pub lines: u64,
    pub bytes: u64,
    pub oversize: u64,
    pub invalid_utf8: u64,
    /// Partial lines handed out without their `\n`.
    pub partial_lines: u64,
    pub files_opened: u64,
    pub files_closed: u64,
    /// Files that left their path while open (renamed away).
    pub rotations: u64,
    /// Files deleted while open.
    pub deletions: u64,
    pub truncations: u64,
    /// Truncations whose copy was found and read from our offset.
    pub truncations_recovered: u64,
    /// Truncations with no copy found: unread lines may be lost.
    pub truncations_unrecovered: u64,
    /// Checkpoints resumed on files found by identity.
    pub resumed: u64,
    /// Checkpoints whose file was not found.
    pub resume_misses: u64,
    pub copies_deferred: u64,
    pub skipped_compressed: u64,
    pub read_errors: u64,
    pub issues_total: u64,
    pub issues: Vec<FollowIssue>,
    pub watch: Option<WatchMode>,
    pub watch_errors: u64,
    pub files: Vec<FileStats>,
}

struct Entry {
    serial: u64,
    pattern: usize,
    path: Arc<Path>,
    id: FileId,
    file: File,
    /// Fingerprint: the first `min(fingerprint_len, size)` bytes when last seen.
    head: Vec<u8>,
    split: Splitter,
    size: u64,
    mtime: SystemTime,
    last_growth: Instant,
    /// Not at any matching path any more since then: read to the end, close.
    gone_since: Option<Instant>,
    /// Serial of the file this one replaced at its path.
    blocked_by: Option<u64>,
}

impl Entry {
    fn unread(&self) -> bool {
        self.split.read_pos < self.size
    }
}

/// A regular file found at a matching path.
struct Found {
    pattern: usize,
    path: PathBuf,
    meta: Metadata,
}

pub struct FileFollower {
    patterns: Vec<String>,
    cfg: FollowConfig,
    entries: Vec<Entry>,
    /// Saved checkpoints, resolved at the first poll.
    pending: Option<Vec<Checkpoint>>,
    next_serial: u64,
    c: SplitCounters,
    st: FollowStats,
    issues: VecDeque<FollowIssue>,
    /// Matches not to be read as new files (compressed, copies of live files).
    ignored: HashMap<FileId, Option<SystemTime>>,
    /// `rotated_suffixes`, compiled.
    suffixes: Vec<glob::Pattern>,
    /// Files at rotated names at the last poll.
    rotated_seen: HashMap<FileId, Option<SystemTime>>,
    /// Files read to their end and closed, while still present.
    closed: VecDeque<Checkpoint>,
    watcher: Watcher,
    backlog: bool,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for FileFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileFollower").field("patterns", &self.patterns).field("files", &self.entries.len()).finish()
    }
}

impl FileFollower {
    /// Follow the files matching `patterns` (plain paths or globs; escape
    /// metacharacters of literal paths with `glob::Pattern::escape`),
    /// resuming from `checkpoints` (empty on a first start). Nothing is read
    /// before the first poll.
    pub fn new(
        patterns: Vec<String>,
        config: FollowConfig,
        checkpoints: Vec<Checkpoint>,
    ) -> Result<FileFollower, FollowError> {
        for p in &patterns {
            let mut globs = vec![p.clone()];
            globs.extend(config.rotated_suffixes.iter().map(|s| format!("{p}{s}")));
            for g in globs {
                glob::Pattern::new(&g)
                    .map_err(|e| FollowError::Pattern { pattern: g.clone(), message: e.to_string() })?;
            }
        }
        let suffixes = config.rotated_suffixes.iter().filter_map(|s| glob::Pattern::new(s).ok()).collect();
        let watcher = Watcher::new(config.use_inotify);
        Ok(FileFollower {
            patterns,
            cfg: config,
            entries: Vec::new(),
            pending: Some(checkpoints),
            next_serial: 0,
            c: SplitCounters::default(),
            st: FollowStats::default(),
            issues: VecDeque::new(),
            ignored: HashMap::new(),
            rotated_seen: HashMap::new(),
            suffixes,
            closed: VecDeque::new(),
            watcher,
            backlog: false,
            scratch: vec![0; CHUNK],
        })
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    pub fn config(&self) -> &FollowConfig {
        &self.cfg
    }

    /// One pass over everything, at the current time.
    pub fn poll_once(&mut self) -> Vec<FollowedLine> {
        self.poll_once_at(Instant::now())
    }

    /// One pass with the clock given (tests drive the timeouts with it):
    /// expand the patterns, detect rotations and truncations, read what was
    /// appended (at most `read_budget` per file), close drained files.
    pub fn poll_once_at(&mut self, now: Instant) -> Vec<FollowedLine> {
        let mut out = Vec::new();
        self.backlog = false;
        let mut found = self.expand();
        let rot = self.rotated_not_matched(&found);
        let open: HashSet<FileId> = self.entries.iter().map(|e| e.id).collect();
        self.closed.retain(|c| {
            !open.contains(&c.file)
                && (found.contains_key(&c.file) || rot.iter().any(|f| FileId::of(&f.meta) == c.file))
        });
        let mut vacated: HashMap<PathBuf, u64> = HashMap::new();

        // Saved checkpoints become open entries (first poll only).
        let first = self.pending.is_some();
        let mut newer_than = HashMap::new();
        if let Some(cps) = self.pending.take() {
            newer_than = self.resume(cps, &found, &rot, &mut vacated, now);
        }

        // Where is each open file now; was it truncated?
        let mut truncated = Vec::new();
        for i in 0..self.entries.len() {
            if self.check_entry(i, &mut found, &rot, &mut vacated, now) {
                truncated.push(self.entries[i].serial);
            }
        }
        for serial in truncated {
            self.truncation(serial, &mut found, &rot, &mut out, now);
        }

        // Files that appeared at rotated names since the last poll: whole
        // generations rotated away between two polls (or while we were down,
        // newer than the file we resumed), and copies of content we never
        // saw. Read from 0, before the live file at their path.
        let tracked: HashSet<FileId> = self.entries.iter().map(|e| e.id).collect();
        let mut seen_now = HashMap::new();
        let mut rot_new = Vec::new();
        for f in rot {
            let id = FileId::of(&f.meta);
            seen_now.insert(id, born(&f.meta));
            // Same inode and same birth time (where the file system keeps
            // one): the same file, not a new one that reuses the inode.
            if tracked.contains(&id) || known(&self.ignored, &f.meta) || known(&self.rotated_seen, &f.meta) {
                continue;
            }
            let fresh = !first || newer_than.get(&f.pattern).is_some_and(|t| mtime(&f.meta) > *t);
            if fresh {
                rot_new.push(f);
            }
        }
        self.rotated_seen = seen_now;
        self.ignored.retain(|id, _| found.contains_key(id) || self.rotated_seen.contains_key(id));
        let mut chain = vacated;
        let matched: Vec<PathBuf> = found.values().map(|f| f.path.clone()).collect();
        let mut rot_new: Vec<(PathBuf, Found)> =
            rot_new.into_iter().map(|f| (self.live_of(&f.path, &chain, &matched), f)).collect();
        rot_new.sort_by_cached_key(|(live, f)| (live.clone(), age_key(&f.path, live, mtime(&f.meta))));
        for (live, f) in rot_new {
            let before = chain.get(&live).copied();
            if let Some((serial, last)) = self.add_new(f, before, Some(&live), true, now)
                && last
            {
                chain.insert(live, serial);
            }
        }

        // New files at matching paths, oldest first.
        let new: Vec<Found> = found.into_values().filter(|f| !known(&self.ignored, &f.meta)).collect();
        let mut new: Vec<(PathBuf, Found)> =
            new.into_iter().map(|f| (self.live_of(&f.path, &chain, &matched), f)).collect();
        new.sort_by_cached_key(|(live, f)| (live.clone(), age_key(&f.path, live, mtime(&f.meta))));
        for (live, f) in new {
            // A glob that also matches rotated names (`app.log*`): a new
            // `app.log.1` goes before `app.log`, but stays followed.
            let before = chain.get(&live).copied();
            let rotated = (live != f.path).then_some(live.as_path());
            if let Some((serial, last)) = self.add_new(f, before, rotated, false, now)
                && last
            {
                chain.insert(live, serial);
            }
        }

        self.read_all(&mut out, now);
        self.refresh_watches();
        out
    }

    /// More is waiting than the read budget allowed: poll again at once.
    pub fn has_backlog(&self) -> bool {
        self.backlog
    }

    /// Block until a watched directory changes or the poll interval passes;
    /// returns at once when there is a backlog.
    pub fn wait(&mut self) {
        if self.backlog {
            return;
        }
        self.watcher.wait(self.cfg.poll_interval);
    }

    /// The complete set of checkpoints for everything handed out so far
    /// (replace the stored set with it). Files read to their end and closed
    /// stay in it while they are still at a rotated name, so that a restart
    /// does not take them for unseen generations.
    pub fn checkpoint(&self) -> Vec<Checkpoint> {
        if let Some(p) = &self.pending {
            return p.clone();
        }
        self.closed
            .iter()
            .cloned()
            .chain(self.entries.iter().map(|e| Checkpoint {
                path: e.path.to_path_buf(),
                file: e.id,
                fingerprint: e.head.clone(),
                offset: e.split.committed,
                after: e.blocked_by.and_then(|s| self.entries.iter().find(|p| p.serial == s)).map(|p| p.id),
                modified_ns: to_ns(e.mtime),
            }))
            .collect()
    }

    pub fn stats(&self) -> FollowStats {
        let mut s = self.st.clone();
        s.lines = self.c.lines;
        s.oversize = self.c.oversize;
        s.issues = self.issues.iter().cloned().collect();
        s.watch = Some(self.watcher.mode.clone());
        s.watch_errors = self.watcher.watch_errors;
        s.files = self
            .entries
            .iter()
            .map(|e| FileStats {
                source: SourceId { pattern: e.pattern, file: e.id },
                path: e.path.to_path_buf(),
                offset: e.split.committed,
                size: e.size,
                lag: e.size.saturating_sub(e.split.committed),
                draining: e.gone_since.is_some(),
                blocked: e.blocked_by.is_some_and(|s| self.waits_for(s, e.serial)),
            })
            .collect();
        s
    }

    fn issue(&mut self, path: &Path, message: String) {
        self.st.issues_total += 1;
        if self.issues.len() == MAX_ISSUES {
            self.issues.pop_front();
        }
        self.issues.push_back(FollowIssue { path: path.to_path_buf(), message });
    }

    fn glob(&mut self, pattern: &str) -> Vec<(PathBuf, Metadata)> {
        let opts = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        let mut v = Vec::new();
        let Ok(paths) = glob::glob_with(pattern, opts) else {
            return v; // validated in new()
        };
        for p in paths {
            match p {
                Ok(path) => match std::fs::metadata(&path) {
                    Ok(m) if m.is_file() => v.push((path, m)),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => self.issue(&path, format!("cannot stat: {e}")),
                },
                Err(e) => {
                    let path = e.path().to_path_buf();
                    self.issue(&path, format!("cannot list: {}", e.error()));
                }
            }
        }
        v
    }

    /// Regular files at matching paths, by identity (first pattern wins).
    fn expand(&mut self) -> HashMap<FileId, Found> {
        let mut found = HashMap::new();
        for i in 0..self.patterns.len() {
            let pattern = self.patterns[i].clone();
            for (path, meta) in self.glob(&pattern) {
                found.entry(FileId::of(&meta)).or_insert(Found { pattern: i, path, meta });
            }
        }
        found
    }

    /// Files at rotated names of the patterns.
    fn rotated_candidates(&mut self, only: Option<usize>) -> Vec<(usize, PathBuf, Metadata)> {
        let mut v = Vec::new();
        for i in 0..self.patterns.len() {
            if only.is_some_and(|o| o != i) {
                continue;
            }
            for s in self.cfg.rotated_suffixes.clone() {
                let g = format!("{}{s}", self.patterns[i]);
                v.extend(self.glob(&g).into_iter().map(|(p, m)| (i, p, m)));
            }
        }
        v
    }

    fn open_checked(&mut self, path: &Path, id: FileId) -> Option<(File, Metadata)> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    self.issue(path, format!("cannot open: {e}"));
                }
                return None;
            }
        };
        let meta = file.metadata().ok()?;
        // Replaced between the stat and the open: the next poll sees the new one.
        (FileId::of(&meta) == id).then_some((file, meta))
    }

    #[allow(clippy::too_many_arguments)]
    fn new_entry(
        &mut self,
        pattern: usize,
        path: Arc<Path>,
        file: File,
        meta: &Metadata,
        head: Vec<u8>,
        offset: u64,
        now: Instant,
    ) -> Entry {
        self.next_serial += 1;
        self.st.files_opened += 1;
        let id = FileId::of(meta);
        self.closed.retain(|c| c.file != id);
        Entry {
            serial: self.next_serial,
            pattern,
            path,
            id: FileId::of(meta),
            file,
            head,
            split: Splitter::new(self.cfg.max_line, offset),
            size: meta.len(),
            mtime: mtime(meta),
            last_growth: now,
            gone_since: None,
            blocked_by: None,
        }
    }

    /// Open the files of saved checkpoints. Returns, per pattern, the oldest
    /// modification time saved: rotated files modified later are generations
    /// we have not seen.
    fn resume(
        &mut self,
        cps: Vec<Checkpoint>,
        found: &HashMap<FileId, Found>,
        rot: &[Found],
        vacated: &mut HashMap<PathBuf, u64>,
        now: Instant,
    ) -> HashMap<usize, SystemTime> {
        let mut newer_than: HashMap<usize, SystemTime> = HashMap::new();
        let mut afters = Vec::new();
        let mut empty_after = Vec::new();
        let mut skipped: HashMap<FileId, Option<FileId>> = HashMap::new();
        // Checkpointed identity → the entry that goes on with its content (the
        // file itself, or its copy). Not "the entry with that inode now": the
        // inode may have been reused.
        let mut resumed_from: HashMap<FileId, u64> = HashMap::new();
        for cp in cps {
            if self.entries.iter().any(|e| e.id == cp.file) {
                continue; // duplicate checkpoint
            }
            let empty = cp.offset == 0 && cp.fingerprint.is_empty();
            // Rotated files newer than this one are generations we have not seen.
            let pattern_of = found.get(&cp.file).map(|f| f.pattern).or_else(|| {
                self.patterns.iter().position(|p| glob::Pattern::new(p).is_ok_and(|g| g.matches_path(&cp.path)))
            });
            if let Some(p) = pattern_of {
                let t = from_ns(cp.modified_ns);
                let e = newer_than.entry(p).or_insert(t);
                *e = (*e).min(t);
            }
            if empty {
                // Nothing read and nothing to recognise the file by (its inode
                // may have been reused): it is found again as a new file, in
                // its place in the order.
                skipped.insert(cp.file, cp.after);
                empty_after.push((cp.path.clone(), cp.after));
                continue;
            }
            let place = found.get(&cp.file).or_else(|| rot.iter().find(|f| FileId::of(&f.meta) == cp.file));
            let opened = place.and_then(|f| Some((f.pattern, self.open_checked(&f.path, cp.file)?)));
            let Some((pattern, (file, meta))) = opened else {
                self.st.resume_misses += 1;
                self.issue(
                    &cp.path,
                    format!(
                        "checkpointed file (dev {} inode {}) not found: lines after offset {} that were not processed are lost",
                        cp.file.dev, cp.file.ino, cp.offset
                    ),
                );
                continue;
            };
            let mut fingerprint = cp.fingerprint;
            fingerprint.truncate(self.cfg.fingerprint_len);
            let head = read_head(&file, fingerprint.len(), meta.len()).unwrap_or_default();
            if meta.len() >= cp.offset && head == fingerprint {
                self.st.resumed += 1;
                let e = self.new_entry(pattern, Arc::from(cp.path.as_path()), file, &meta, fingerprint, cp.offset, now);
                afters.push((e.serial, cp.after));
                resumed_from.insert(cp.file, e.serial);
                self.entries.push(e);
                continue;
            }
            // Truncated while we were down (copytruncate), or another file
            // that got the inode: this file is found again as a new one; the
            // rest of ours is read from its copy, if there is one.
            self.st.truncations += 1;
            match self.find_copy(pattern, &fingerprint, cp.offset, found, rot) {
                Some((cpath, cfile, cmeta, in_matches)) => {
                    self.st.truncations_recovered += 1;
                    self.st.resumed += 1;
                    let mut c =
                        self.new_entry(pattern, Arc::from(cpath.as_path()), cfile, &cmeta, fingerprint, cp.offset, now);
                    if !in_matches {
                        c.gone_since = Some(now);
                    }
                    vacated.insert(cp.path.clone(), c.serial);
                    afters.push((c.serial, cp.after));
                    resumed_from.insert(cp.file, c.serial);
                    self.entries.push(c);
                }
                None => {
                    self.st.truncations_unrecovered += 1;
                    self.issue(
                        &cp.path,
                        format!(
                            "checkpointed file truncated or replaced while we were down, and no copy found by fingerprint: lines after offset {} that were not processed are lost",
                            cp.offset
                        ),
                    );
                }
            }
        }
        // The order between generations, as it was.
        // Through skipped ones, to the nearest file resumed.
        let resolve = |mut after: Option<FileId>| {
            for _ in 0..=skipped.len() {
                match after.and_then(|id| skipped.get(&id)) {
                    Some(next) => after = *next,
                    None => break,
                }
            }
            after
        };
        for (path, after) in empty_after {
            if let Some(&s) = resolve(after).and_then(|id| resumed_from.get(&id)) {
                vacated.insert(path, s);
            }
        }
        for (serial, after) in afters {
            let before = resolve(after).and_then(|id| resumed_from.get(&id)).copied().filter(|&b| b != serial);
            if let Some(e) = self.entries.iter_mut().find(|e| e.serial == serial) {
                e.blocked_by = before;
            }
        }
        newer_than
    }

    /// Files at rotated names that are not matched by the patterns.
    fn rotated_not_matched(&mut self, found: &HashMap<FileId, Found>) -> Vec<Found> {
        let mut seen = HashSet::new();
        self.rotated_candidates(None)
            .into_iter()
            .filter(|(_, _, m)| {
                let id = FileId::of(m);
                !found.contains_key(&id) && seen.insert(id)
            })
            .map(|(pattern, path, meta)| Found { pattern, path, meta })
            .collect()
    }

    /// The live path a rotated path belongs to: the longest known path that
    /// is a prefix of it.
    fn live_of(&self, rotated: &Path, chain: &HashMap<PathBuf, u64>, found: &[PathBuf]) -> PathBuf {
        use std::os::unix::ffi::OsStrExt;
        let r = rotated.as_os_str().as_bytes();
        let known = chain
            .keys()
            .map(|p| p.as_path())
            .chain(found.iter().map(|p| p.as_path()))
            .chain(self.entries.iter().map(|e| &*e.path));
        let mut best: Option<&Path> = None;
        for p in known {
            let b = p.as_os_str().as_bytes();
            if b.len() < r.len()
                && r.starts_with(b)
                && self.is_rotated_suffix(&r[b.len()..])
                && best.is_none_or(|x| x.as_os_str().len() < b.len())
            {
                best = Some(p);
            }
        }
        best.map(Path::to_path_buf).unwrap_or_else(|| rotated.to_path_buf())
    }

    /// `app.log.10` is a rotated name of `app.log`, not of `app.log.1`.
    fn is_rotated_suffix(&self, rest: &[u8]) -> bool {
        let Ok(rest) = std::str::from_utf8(rest) else { return false };
        if self.suffixes.is_empty() {
            return rest.starts_with(['.', '-']);
        }
        self.suffixes.iter().any(|p| p.matches(rest))
    }

    /// Locate entry `i` among the matches, stat it, check its fingerprint.
    /// Returns whether it was truncated.
    fn check_entry(
        &mut self,
        i: usize,
        found: &mut HashMap<FileId, Found>,
        rot: &[Found],
        vacated: &mut HashMap<PathBuf, u64>,
        now: Instant,
    ) -> bool {
        let id = self.entries[i].id;
        let e = &mut self.entries[i];
        let meta = match e.file.metadata() {
            Ok(m) => m,
            Err(err) => {
                let path = e.path.clone();
                self.st.read_errors += 1;
                self.issue(&path, format!("fstat failed: {err}"));
                return false;
            }
        };
        match found.remove(&id) {
            Some(f) => {
                if *e.path != *f.path {
                    vacated.insert(e.path.to_path_buf(), e.serial);
                    e.path = Arc::from(f.path.as_path());
                }
                e.gone_since = None;
            }
            None => {
                if e.gone_since.is_none() {
                    e.gone_since = Some(now);
                    vacated.insert(e.path.to_path_buf(), e.serial);
                    if meta.nlink() == 0 {
                        self.st.deletions += 1;
                    } else {
                        self.st.rotations += 1;
                    }
                }
                // Where it went, if to a rotated name.
                if let Some(f) = rot.iter().find(|f| FileId::of(&f.meta) == id)
                    && *e.path != *f.path
                {
                    e.path = Arc::from(f.path.as_path());
                }
            }
        }
        let size = meta.len();
        e.mtime = mtime(&meta);
        let head = match read_head(&e.file, self.cfg.fingerprint_len, size) {
            Ok(h) => h,
            Err(err) => {
                let path = e.path.clone();
                self.st.read_errors += 1;
                self.issue(&path, format!("read failed: {err}"));
                return false;
            }
        };
        let k = e.head.len().min(head.len());
        let truncated = size < e.split.read_pos || head.len() < e.head.len() || head[..k] != e.head[..k];
        if !truncated {
            e.head = head;
            e.size = size;
        }
        truncated
    }

    /// Entry `serial` shrank or was rewritten: read the rest of the old
    /// content from its copy if we can find it, then restart at 0.
    fn truncation(
        &mut self,
        serial: u64,
        found: &mut HashMap<FileId, Found>,
        rot: &[Found],
        out: &mut Vec<FollowedLine>,
        now: Instant,
    ) {
        let Some(i) = self.entries.iter().position(|e| e.serial == serial) else {
            return;
        };
        self.st.truncations += 1;
        let (pattern, old_head, offset) = {
            let e = &self.entries[i];
            (e.pattern, e.head.clone(), e.split.committed)
        };
        let copy = if old_head.is_empty() { None } else { self.find_copy(pattern, &old_head, offset, found, rot) };
        let path = self.entries[i].path.clone();
        match copy {
            Some((cpath, file, meta, in_matches)) => {
                self.st.truncations_recovered += 1;
                if in_matches {
                    found.remove(&FileId::of(&meta));
                }
                let mut c = self.new_entry(pattern, Arc::from(cpath.as_path()), file, &meta, old_head, offset, now);
                if !in_matches {
                    c.gone_since = Some(now);
                }
                // The copy takes the truncated file's place in the order (after
                // what it waited for); the truncated file waits for the copy.
                c.blocked_by = self.entries[i].blocked_by;
                self.entries[i].blocked_by = Some(c.serial);
                self.entries.insert(i, c);
                let e = &mut self.entries[i + 1];
                e.split.reset(0);
                self.reset_head(i + 1);
            }
            None => {
                self.st.truncations_unrecovered += 1;
                self.issue(
                    &path,
                    format!(
                        "truncated (copytruncate?) below offset {offset}, and no copy found by fingerprint: lines not read before the truncation are lost"
                    ),
                );
                let e = &mut self.entries[i];
                if let Some(raw) = e.split.flush_partial(&mut self.c) {
                    let l = to_line(raw, e, &mut self.st);
                    out.push(l);
                }
                e.split.reset(0);
                self.reset_head(i);
            }
        }
    }

    fn reset_head(&mut self, i: usize) {
        let e = &mut self.entries[i];
        e.size = e.file.metadata().map(|m| m.len()).unwrap_or(0);
        e.head = read_head(&e.file, self.cfg.fingerprint_len, e.size).unwrap_or_default();
    }

    /// An untracked file that starts with `head` and holds at least `offset`
    /// bytes: among the unclaimed matches, then the rotated names.
    fn find_copy(
        &mut self,
        pattern: usize,
        head: &[u8],
        offset: u64,
        found: &HashMap<FileId, Found>,
        rot: &[Found],
    ) -> Option<(PathBuf, File, Metadata, bool)> {
        let cands = found
            .values()
            .map(|f| (f.path.clone(), f.meta.clone(), true))
            .chain(rot.iter().filter(|f| f.pattern == pattern).map(|f| (f.path.clone(), f.meta.clone(), false)))
            .collect::<Vec<_>>();
        let mut best: Option<(PathBuf, File, Metadata, bool)> = None;
        for (p, m, in_matches) in cands {
            let id = FileId::of(&m);
            if m.len() < offset || m.len() < head.len() as u64 || self.entries.iter().any(|e| e.id == id) {
                continue;
            }
            let Some((file, meta)) = self.open_checked(&p, id) else {
                continue;
            };
            let Ok(h) = read_head(&file, head.len(), meta.len()) else {
                continue;
            };
            let newer = best.as_ref().is_none_or(|b| meta.modified().ok() > b.2.modified().ok());
            if h == head && newer {
                best = Some((p, file, meta, in_matches));
            }
        }
        best
    }

    /// Start following a file from 0, after `blocked_by`. A file at a rotated
    /// name (`rotated_live` = the live path it belongs to) is read before the
    /// file open at that live path; `gone`: then closed. Returns the serial,
    /// and whether the file is now the last in its path's order.
    fn add_new(
        &mut self,
        f: Found,
        blocked_by: Option<u64>,
        rotated_live: Option<&Path>,
        gone: bool,
        now: Instant,
    ) -> Option<(u64, bool)> {
        let id = FileId::of(&f.meta);
        let (file, meta) = self.open_checked(&f.path, id)?;
        let head = match read_head(&file, self.cfg.fingerprint_len, meta.len()) {
            Ok(h) => h,
            Err(e) => {
                self.st.read_errors += 1;
                self.issue(&f.path, format!("read failed: {e}"));
                return None;
            }
        };
        if is_compressed(&head) {
            self.st.skipped_compressed += 1;
            self.ignored.insert(id, born(&meta));
            return None;
        }
        let min_fp = MIN_COPY_FINGERPRINT.min(self.cfg.fingerprint_len).max(1);
        let copy_of_live =
            self.entries.iter().any(|e| e.gone_since.is_none() && e.head.len() >= min_fp && head.starts_with(&e.head));
        if copy_of_live {
            self.st.copies_deferred += 1;
            self.ignored.insert(id, born(&meta));
            self.issue(&f.path, "starts like a followed file: taken for its copy, not read".into());
            return None;
        }
        // A file we closed, back at a matching path: go on where we stopped.
        let mut offset = 0;
        if let Some(k) = self.closed.iter().position(|c| c.file == id && head.starts_with(&c.fingerprint)) {
            offset = self.closed.remove(k).map_or(0, |c| c.offset.min(meta.len()));
        }
        let mut e = self.new_entry(f.pattern, Arc::from(f.path.as_path()), file, &meta, head, offset, now);
        let serial = e.serial;
        let Some(live) = rotated_live else {
            e.blocked_by = blocked_by;
            self.entries.push(e);
            return Some((serial, true));
        };
        if gone {
            e.gone_since = Some(now);
        }
        // Older by its rotated name than the file it would follow (a copy of
        // content we never saw, made before that file was rotated too), or a
        // file still open at the live path: it goes before that file.
        let older_than_pred = blocked_by.and_then(|s| self.entries.iter().position(|x| x.serial == s)).filter(|&pos| {
            let t = &self.entries[pos];
            *t.path != *live && age_key(&e.path, live, e.mtime) < age_key(&t.path, live, t.mtime)
        });
        let before = match older_than_pred {
            // Between the predecessor's predecessor and the predecessor.
            Some(pos) => {
                e.blocked_by = self.entries[pos].blocked_by;
                Some(pos)
            }
            // After the predecessor, before the file open at the live path.
            None => self.entries.iter().position(|x| x.gone_since.is_none() && *x.path == *live).inspect(|&pos| {
                e.blocked_by = blocked_by.or(self.entries[pos].blocked_by);
            }),
        };
        match before {
            Some(pos) => {
                self.entries[pos].blocked_by = Some(serial);
                self.entries.insert(pos, e);
                Some((serial, false))
            }
            None => {
                e.blocked_by = blocked_by;
                self.entries.push(e);
                Some((serial, true))
            }
        }
    }

    fn read_all(&mut self, out: &mut Vec<FollowedLine>, now: Instant) {
        let mut i = 0;
        while i < self.entries.len() {
            if let Some(s) = self.entries[i].blocked_by {
                if !self.entries.iter().any(|p| p.serial == s) {
                    self.entries[i].blocked_by = None;
                } else if self.waits_for(s, self.entries[i].serial) {
                    self.backlog |= self.entries[i].unread();
                    i += 1;
                    continue;
                }
            }
            let ok = self.read_entry(i, out, now);
            let e = &mut self.entries[i];
            if !ok && e.gone_since.is_some() {
                // A rotated file that cannot be read must not hold back the
                // files after it forever.
                e.size = e.split.read_pos;
            }
            if ok && e.unread() {
                self.backlog = true;
            }
            let idle = e.gone_since.is_none()
                && self.cfg.partial_line_timeout.is_some_and(|t| now.saturating_duration_since(e.last_growth) >= t);
            let close =
                e.gone_since.is_some_and(|g| !e.unread() && now.saturating_duration_since(g) >= self.cfg.rotate_wait);
            if idle || close {
                if let Some(raw) = e.split.flush_partial(&mut self.c) {
                    let l = to_line(raw, e, &mut self.st);
                    out.push(l);
                }
            }
            if close {
                let e = self.entries.remove(i);
                self.st.files_closed += 1;
                // An older record of the same inode is stale (the inode was
                // freed and reused).
                self.closed.retain(|c| c.file != e.id);
                if e.file.metadata().is_ok_and(|m| m.nlink() > 0) {
                    self.closed.push_back(Checkpoint {
                        path: e.path.to_path_buf(),
                        file: e.id,
                        fingerprint: e.head,
                        offset: e.split.committed,
                        after: None,
                        modified_ns: to_ns(e.mtime),
                    });
                }
                if self.closed.len() > MAX_CLOSED {
                    self.closed.pop_front();
                }
            } else {
                i += 1;
            }
        }
    }

    /// Entry `serial`, or one it waits for, still has bytes to read (so the
    /// files after it must wait: an empty generation in between is not a
    /// reason to go ahead).
    fn waits_for(&self, serial: u64, from: u64) -> bool {
        if self.in_cycle(from) {
            return false;
        }
        let mut s = Some(serial);
        for _ in 0..=self.entries.len() {
            let Some(e) = s.and_then(|s| self.entries.iter().find(|e| e.serial == s)) else {
                return false;
            };
            if e.serial == from {
                return false; // a cycle never blocks
            }
            if e.unread() {
                return true;
            }
            s = e.blocked_by;
        }
        false
    }

    /// Read what entry `i` has, up to the budget. Returns false on a read error.
    /// Entry `serial` waits, through others, for itself. (Never built on
    /// purpose; a safety net so that a wrong link cannot stop reading.)
    fn in_cycle(&self, serial: u64) -> bool {
        let mut s = self.entries.iter().find(|e| e.serial == serial).and_then(|e| e.blocked_by);
        for _ in 0..=self.entries.len() {
            match s {
                Some(x) if x == serial => return true,
                Some(x) => s = self.entries.iter().find(|e| e.serial == x).and_then(|e| e.blocked_by),
                None => return false,
            }
        }
        false
    }

    fn read_entry(&mut self, i: usize, out: &mut Vec<FollowedLine>, now: Instant) -> bool {
        let e = &mut self.entries[i];
        let mut budget = self.cfg.read_budget.max(1);
        let mut raw = Vec::new();
        let mut error = None;
        while budget > 0 {
            let want = CHUNK.min(budget);
            match e.file.read_at(&mut self.scratch[..want], e.split.read_pos) {
                Ok(0) => break,
                Ok(n) => {
                    budget -= n;
                    self.st.bytes += n as u64;
                    e.last_growth = now;
                    e.split.feed(&self.scratch[..n], &mut self.c, &mut raw);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    error = Some(err);
                    break;
                }
            }
        }
        e.size = e.size.max(e.split.read_pos);
        for r in raw {
            let l = to_line(r, e, &mut self.st);
            out.push(l);
        }
        let Some(err) = error else { return true };
        let (path, offset, draining) = (e.path.clone(), e.split.committed, e.gone_since.is_some());
        self.st.read_errors += 1;
        let msg = if draining {
            format!(
                "read failed at offset {offset}: {err}; giving up on this rotated file, the lines after the offset are lost"
            )
        } else {
            format!("read failed at offset {offset}: {err}; retrying at the next poll")
        };
        self.issue(&path, msg);
        false
    }

    fn refresh_watches(&mut self) {
        self.watcher.prune();
        for p in &self.patterns {
            self.watcher.watch_dir(&watch::static_dir(p));
        }
        for e in &self.entries {
            if let Some(d) = e.path.parent() {
                let d = if d.as_os_str().is_empty() { Path::new(".") } else { d };
                self.watcher.watch_dir(d);
            }
        }
    }
}

fn to_line(r: RawLine, e: &Entry, st: &mut FollowStats) -> FollowedLine {
    let mut bytes = r.bytes;
    if !r.partial && bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    if r.partial {
        st.partial_lines += 1;
    }
    let (text, replaced) = match String::from_utf8(bytes) {
        Ok(s) => (s, false),
        Err(err) => {
            st.invalid_utf8 += 1;
            (String::from_utf8_lossy(err.as_bytes()).into_owned(), true)
        }
    };
    FollowedLine {
        source: SourceId { pattern: e.pattern, file: e.id },
        path: e.path.clone(),
        text,
        replaced,
        partial: r.partial,
        line_offset_end: r.end,
    }
}

fn mtime(m: &Metadata) -> SystemTime {
    m.modified().unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Sort key of the age of `path` as a rotated name of `live`, oldest first:
/// `.N` by N descending (`.3` before `.1`), other suffixes (dates) in name
/// order, the live path itself last; the modification time breaks ties.
fn age_key(path: &Path, live: &Path, modified: SystemTime) -> (u8, std::cmp::Reverse<u64>, Vec<u8>, SystemTime) {
    use std::cmp::Reverse;
    use std::os::unix::ffi::OsStrExt;
    let (p, l) = (path.as_os_str().as_bytes(), live.as_os_str().as_bytes());
    let suffix = if p.len() > l.len() && p.starts_with(l) { &p[l.len()..] } else { p };
    if suffix.is_empty() || path == live {
        return (2, Reverse(0), Vec::new(), modified);
    }
    if let Some(rest) = suffix.strip_prefix(b".") {
        let digits: Vec<u8> = rest.iter().copied().take_while(u8::is_ascii_digit).collect();
        if !digits.is_empty()
            && let Ok(n) = std::str::from_utf8(&digits).unwrap_or("").parse::<u64>()
        {
            return (0, Reverse(n), Vec::new(), modified);
        }
    }
    (1, Reverse(0), suffix.to_vec(), modified)
}

/// Birth time, where the file system keeps one (statx).
fn born(m: &Metadata) -> Option<SystemTime> {
    m.created().ok()
}

/// Is this file in the map: same inode, and same birth time where both are
/// known (a new file that reuses a freed inode is not the same file).
fn known(map: &HashMap<FileId, Option<SystemTime>>, m: &Metadata) -> bool {
    let b = born(m);
    map.get(&FileId::of(m)).is_some_and(|&x| x.is_none() || b.is_none() || x == b)
}

fn to_ns(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn from_ns(ns: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(ns.max(0) as u64)
}

fn read_head(file: &File, n: usize, size: u64) -> io::Result<Vec<u8>> {
    let want = (n as u64).min(size) as usize;
    let mut buf = vec![0; want];
    let mut got = 0;
    while got < want {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

fn is_compressed(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
        || head.starts_with(b"BZh")
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
}

#[cfg(test)]
mod tests;
