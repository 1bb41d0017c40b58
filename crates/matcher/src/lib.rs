//! The `match` stage: compile rule patterns (fail2ban's dialect of Python
//! `re` with tags such as `<HOST>` and `<F-USER>`) once into an immutable
//! [`CompiledFilter`], and run lines through a per-stream [`FilterRunner`]
//! that reproduces fail2ban's `Filter.processLine` / `findFailure` semantics
//! (date cut-out, `ignoreregex`, `prefregex` with `<F-CONTENT>`, `maxlines`
//! multi-line buffer, `<F-MLFID>`, `<F-NOFAIL>`, `<SKIPLINES>`).
//!
//! Both fail2ban `filter.d` files and our native rule pack compile through
//! [`FilterSpec`], so there is one engine.
//!
//! PUBLIC API CONTRACT (used by fail2ban, rules and cli crates; keep it):
//! - `FilterSpec`, `CompileOptions`, `RunOptions`
//! - `CompiledFilter::compile(&FilterSpec, &CompileOptions) -> Result<Compiled, Vec<Diagnostic>>`
//! - `CompiledFilter::{name, failregex_count, failregex_source}`
//! - `FilterRunner::new(Arc<CompiledFilter>, RunOptions)`
//! - `FilterRunner::process_line(&mut self, &str, &TimeContext) -> LineResult`
//! - `FilterRunner::process_line_at(&mut self, &str, Timestamp) -> LineResult`
//! - `FilterRunner::stats() -> &MatchStats`
//! - `LineResult`, `Failure`, `FieldValue`, `DateStatus`
//! - `Fid` (a failure id's text, a `str` by `Deref`)
//! - `Fields` (a failure's named captures, a read-only map built on first
//!   use: `get`, `contains_key`, `iter`, `keys`, `&Fields` iterates);
//!   `Failure::matches()` (its matched lines, shared with the fields)

pub mod pattern;
mod runner;
#[cfg(test)]
mod test_util;

use std::collections::BTreeMap;
use std::collections::btree_map;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

pub use runner::{DateKey, Dater};
use smallvec::SmallVec;
use stadtwache_core::{Diagnostic, Spanned, Timestamp};
pub use stadtwache_datetime::DateMatch;
use stadtwache_datetime::TimeContext;

/// A filter in source form, whichever format it was written in.
#[derive(Clone, Debug, Default)]
pub struct FilterSpec {
    /// Display name (`sshd`, `sshd[mode=aggressive]`, `native:nginx-probe`).
    pub name: String,
    pub prefregex: Option<Spanned>,
    pub failregex: Vec<Spanned>,
    pub ignoreregex: Vec<Spanned>,
    /// fail2ban `datepattern` (already `%%`-unescaped by the loader), or None
    /// for the default template list.
    pub datepattern: Option<Spanned>,
    /// fail2ban `maxlines` (1 when absent).
    pub maxlines: usize,
    /// fail2ban `logtimezone` (`UTC`, `UTC+0200`, …); None = context zone.
    pub logtimezone: Option<String>,
}

#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// Step budget for the backtracking fallback engine, per search.
    pub backtrack_limit: usize,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions { backtrack_limit: 1_000_000 }
    }
}

/// How a runner behaves where fail2ban has switches.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// fail2ban `checkAllRegex`: report every matching failregex, not just the
    /// first (its sample test sets this; production leaves it off).
    pub check_all_regex: bool,
}

/// The result of compiling a filter: the filter and any warnings.
#[derive(Debug)]
pub struct Compiled {
    pub filter: CompiledFilter,
    pub warnings: Vec<Diagnostic>,
}

/// An immutable compiled filter; share it behind an `Arc`.
#[derive(Debug)]
pub struct CompiledFilter {
    name: String,
    failregex_src: Vec<Spanned>,
    parts: runner::Parts,
}

impl CompiledFilter {
    /// Compile every pattern; on failure return every problem found, each
    /// with a code, file and line.
    ///
    /// Errors: the patterns' own (`P0xx`), `D001` for a bad `datepattern`,
    /// `D002` for a bad `logtimezone`. Warnings: `P101` a failregex without
    /// a failure-id group (none from prefregex either), `P102` no failregex,
    /// `P103` maxlines 0.
    pub fn compile(spec: &FilterSpec, opts: &CompileOptions) -> Result<Compiled, Vec<Diagnostic>> {
        runner::compile(spec, opts)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn failregex_count(&self) -> usize {
        self.failregex_src.len()
    }

    /// The failregex as written in the source (before tag expansion).
    pub fn failregex_source(&self, index: usize) -> &Spanned {
        &self.failregex_src[index]
    }

    /// The failregex after tag expansion (None for an index out of range).
    pub fn failregex_expanded(&self, index: usize) -> Option<&str> {
        self.parts.failregex_expanded(index)
    }

    /// The multi-line buffer size (`maxlines`).
    /// The filter's date configuration (`datepattern`, `logtimezone`):
    /// runners of filters with equal keys may share one [`Dater`].
    pub fn date_key(&self) -> &DateKey {
        &self.parts.date_key
    }

    /// A fresh date state for this filter's date configuration.
    pub fn dater(&self) -> Dater {
        runner::Dater::new(self)
    }

    pub fn maxlines(&self) -> usize {
        self.parts.maxlines()
    }
}

/// A captured field value: fail2ban merges groups of a multi-line failure,
/// turning repeated names into lists (`users`, …).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldValue {
    One(String),
    Many(Vec<String>),
}

/// A failure's named captures (see [`Failure::fields`]): a read-only map
/// from field name to value, built from the runner's data on first use (a
/// replay that keys on the address never pays for it).
#[derive(Clone, Default)]
pub struct Fields {
    src: Option<Arc<runner::FailData>>,
    map: OnceLock<BTreeMap<String, FieldValue>>,
}

impl Fields {
    pub(crate) fn shared(src: Arc<runner::FailData>) -> Fields {
        Fields { src: Some(src), map: OnceLock::new() }
    }

    /// The fields as a map.
    pub fn map(&self) -> &BTreeMap<String, FieldValue> {
        self.map.get_or_init(|| self.src.as_ref().map(|d| d.fields()).unwrap_or_default())
    }

    pub fn get<Q: Ord + ?Sized>(&self, name: &Q) -> Option<&FieldValue>
    where
        String: std::borrow::Borrow<Q>,
    {
        self.map().get(name)
    }

    pub fn contains_key<Q: Ord + ?Sized>(&self, name: &Q) -> bool
    where
        String: std::borrow::Borrow<Q>,
    {
        self.map().contains_key(name)
    }

    /// Fields in name order.
    pub fn iter(&self) -> btree_map::Iter<'_, String, FieldValue> {
        self.map().iter()
    }

    pub fn keys(&self) -> btree_map::Keys<'_, String, FieldValue> {
        self.map().keys()
    }

    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }
}

impl From<BTreeMap<String, FieldValue>> for Fields {
    fn from(map: BTreeMap<String, FieldValue>) -> Fields {
        Fields { src: None, map: OnceLock::from(map) }
    }
}

impl<'a> IntoIterator for &'a Fields {
    type Item = (&'a String, &'a FieldValue);
    type IntoIter = btree_map::Iter<'a, String, FieldValue>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl PartialEq for Fields {
    fn eq(&self, other: &Fields) -> bool {
        self.map() == other.map()
    }
}

impl std::fmt::Debug for Fields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.map().fmt(f)
    }
}

/// A failure id's text (fail2ban's `fid`: `192.0.2.7`, `2001:db8::/64`, a
/// host name, an `<F-ID>`): a `str` by `Deref`. Held inline up to
/// [`Fid::INLINE`] bytes, which every address text fits (no allocation per
/// failure), on the heap beyond.
#[derive(Clone)]
pub struct Fid(FidRepr);

#[derive(Clone)]
enum FidRepr {
    Inline { len: u8, buf: [u8; Fid::INLINE] },
    Heap(Box<str>),
}

impl Fid {
    /// The longest text held inline: an address as the runner writes it
    /// (at most 39 bytes for IPv6, and `/` with a prefix length) fits.
    pub const INLINE: usize = 46;

    pub fn new(text: &str) -> Fid {
        let b = text.as_bytes();
        if b.len() <= Fid::INLINE {
            let mut buf = [0u8; Fid::INLINE];
            match (b.first_chunk::<8>(), b.last_chunk::<8>()) {
                // 8 to 16 bytes (most IPv4 addresses) as two words that may
                // overlap: no call to `memcpy`
                (Some(a), Some(z)) if b.len() <= 16 => {
                    buf[..8].copy_from_slice(a);
                    buf[b.len() - 8..b.len()].copy_from_slice(z);
                }
                _ => buf[..b.len()].copy_from_slice(b),
            }
            Fid(FidRepr::Inline { len: b.len() as u8, buf })
        } else {
            Fid(FidRepr::Heap(text.into()))
        }
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            // a whole `str` was copied in: always UTF-8
            FidRepr::Inline { len, buf } => std::str::from_utf8(&buf[..usize::from(*len)]).unwrap_or(""),
            FidRepr::Heap(s) => s,
        }
    }
}

impl std::ops::Deref for Fid {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Fid {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for Fid {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Fid {
    fn from(s: &str) -> Fid {
        Fid::new(s)
    }
}

impl From<String> for Fid {
    fn from(s: String) -> Fid {
        Fid::new(&s)
    }
}

impl From<Fid> for String {
    fn from(f: Fid) -> String {
        f.as_str().to_string()
    }
}

impl PartialEq for Fid {
    fn eq(&self, other: &Fid) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Fid {}

impl PartialEq<str> for Fid {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Fid {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Fid {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialOrd for Fid {
    fn partial_cmp(&self, other: &Fid) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Fid {
    fn cmp(&self, other: &Fid) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::hash::Hash for Fid {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.as_str().hash(h)
    }
}

/// As a `str` (`"192.0.2.7"`).
impl std::fmt::Debug for Fid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl std::fmt::Display for Fid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failure found on a line (fail2ban's `[failRegexIndex, fid, date, fail]`).
#[derive(Clone)]
pub struct Failure {
    pub regex_index: usize,
    /// The failure id (host, or `<F-ID>`); None while a multi-line failure is
    /// still pending (fail2ban returns such entries with `fid is None`).
    pub fid: Option<Fid>,
    pub time: Timestamp,
    /// The address, when the host part is an IPv4/IPv6 address (or CIDR base).
    pub ip: Option<IpAddr>,
    /// Named captures after fail2ban's merging: `host`, `ip4`, `ip6`, `dns`,
    /// `user`, `users`, `mlfid`, any `<F-NAME>` in lower case.
    ///
    /// Exactly the keys of fail2ban's `fail` dict with a value: the groups
    /// of prefregex and failregex that took part (`alt_*` merged into their
    /// name, `tuple_*` as `Many`, a missing part as ""), `users` (sorted) for
    /// `<F-MLFID>` failures, and `ip` when the failure id is not the address.
    pub fields: Fields,
    /// `<F-NOFAIL>` matched: a helper match, not a failure.
    pub nofail: bool,
}

impl Failure {
    /// Matched lines of this failure (fail2ban's `matches`; attempts = len),
    /// as read (fail2ban keeps them as tuples and, for journal entries, with
    /// the journal's time text in front; the count is the same). Shared with
    /// the runner's data through [`fields`](Self::fields): one handle, one
    /// reference count per failure.
    pub fn matches(&self) -> &[String] {
        self.fields.src.as_ref().map_or(&[], |d| d.matches())
    }
}

impl PartialEq for Failure {
    fn eq(&self, o: &Failure) -> bool {
        self.regex_index == o.regex_index
            && self.fid == o.fid
            && self.time == o.time
            && self.ip == o.ip
            && self.fields == o.fields
            && self.nofail == o.nofail
            && self.matches() == o.matches()
    }
}

impl std::fmt::Debug for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Failure")
            .field("regex_index", &self.regex_index)
            .field("fid", &self.fid)
            .field("time", &self.time)
            .field("ip", &self.ip)
            .field("fields", &self.fields)
            .field("nofail", &self.nofail)
            .field("matches", &self.matches())
            .finish()
    }
}

/// Whether a date was found on the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DateStatus {
    /// Time given by the caller (`process_line_at`).
    Given,
    Found,
    /// No date template matched; the previous line's time was used (or none).
    NotFound,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LineResult {
    /// The time used for this line (found, given, or carried over).
    pub time: Option<Timestamp>,
    pub date: DateStatus,
    /// An `ignoreregex` matched the line.
    pub ignored: bool,
    pub failures: SmallVec<[Failure; 1]>,
}

impl LineResult {
    /// An empty result (no time yet, no failures).
    fn empty() -> LineResult {
        LineResult { time: None, date: DateStatus::NotFound, ignored: false, failures: SmallVec::new() }
    }

    /// Start a line's result: `time`, `date`, not ignored, no failures (the
    /// previous ones dropped, the buffer kept).
    #[inline]
    pub(crate) fn reset(&mut self, time: Option<Timestamp>, date: DateStatus) {
        self.time = time;
        self.date = date;
        self.ignored = false;
        self.failures.clear();
    }
}

/// Counters a runner keeps; overload is counted, never silent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MatchStats {
    pub lines: u64,
    pub no_date: u64,
    /// Searches in the backtracking engine that ran out of their step budget
    /// (treated as no match, and counted).
    pub budget_exhausted: u64,
}

/// Per-stream matching state for one filter.
#[derive(Debug)]
pub struct FilterRunner {
    filter: Arc<CompiledFilter>,
    opts: RunOptions,
    stats: MatchStats,
    state: runner::State,
    /// The last line's result for the `_ref` calls (reused: its failures
    /// are dropped when the next line starts, before the runner's data is
    /// written again, so that what they share is not copied).
    res: LineResult,
}

impl FilterRunner {
    pub fn new(filter: Arc<CompiledFilter>, opts: RunOptions) -> Self {
        let state = runner::State::new(&filter);
        FilterRunner { filter, opts, stats: MatchStats::default(), state, res: LineResult::empty() }
    }

    pub fn filter(&self) -> &Arc<CompiledFilter> {
        &self.filter
    }

    /// Process one line (without its line terminator): find its date, cut it
    /// out, apply ignoreregex/prefregex/failregex with the multi-line buffer.
    ///
    /// A line without a date uses the previous line's time when that is less
    /// than 60 s before `ctx.now` (as fail2ban); otherwise `LineResult::time`
    /// is None and its failures carry `ctx.now` (fail2ban in operation).
    /// `ctx.now` is also the clock of the `<F-MLFID>` cache (5 min, 100 ids).
    pub fn process_line(&mut self, line: &str, ctx: &TimeContext) -> LineResult {
        self.res.failures.clear();
        let mut res = LineResult::empty();
        runner::process_line(&self.filter, &self.opts, &mut self.state, &mut self.stats, line, ctx, &mut res);
        res
    }

    /// Process a line whose time is already known (journald entries): no
    /// date detection, as fail2ban's systemd backend.
    pub fn process_line_at(&mut self, line: &str, time: Timestamp) -> LineResult {
        self.res.failures.clear();
        let mut res = LineResult::empty();
        runner::process_line_at(&self.filter, &self.opts, &mut self.state, &mut self.stats, line, time, &mut res);
        res
    }

    /// [`FilterRunner::process_line_at`] into a result the runner keeps and
    /// reuses (valid until its next line): no copy of the result, and the
    /// failures of the line before are dropped before this line's are made.
    pub fn process_line_at_ref(&mut self, line: &str, time: Timestamp) -> &LineResult {
        runner::process_line_at(&self.filter, &self.opts, &mut self.state, &mut self.stats, line, time, &mut self.res);
        &self.res
    }

    /// Process a line whose date a shared [`Dater`] of the same date
    /// configuration ([`CompiledFilter::date_key`]) has found: `hit` is its
    /// [`Dater::find`] on this `line` with this `ctx`. The same result as
    /// [`FilterRunner::process_line`], when every line of the stream goes
    /// through the dater once, in order.
    pub fn process_line_dated(&mut self, line: &str, hit: Option<DateMatch>, ctx: &TimeContext) -> LineResult {
        self.res.failures.clear();
        let mut res = LineResult::empty();
        let (f, st) = (&self.filter, &mut self.state);
        runner::process_line_dated(f, &self.opts, st, &mut self.stats, line, hit, ctx.now, &mut res);
        res
    }

    /// [`FilterRunner::process_line_dated`] into a result the runner keeps
    /// and reuses (see [`FilterRunner::process_line_at_ref`]).
    pub fn process_line_dated_ref(&mut self, line: &str, hit: Option<DateMatch>, ctx: &TimeContext) -> &LineResult {
        let (f, st) = (&self.filter, &mut self.state);
        runner::process_line_dated(f, &self.opts, st, &mut self.stats, line, hit, ctx.now, &mut self.res);
        &self.res
    }

    pub fn stats(&self) -> &MatchStats {
        &self.stats
    }
}
