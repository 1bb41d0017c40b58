//! Date detection in log lines, compatible with fail2ban's `DateDetector`.
//!
//! A [`DateDetector`] is compiled once (the default template list, or a
//! filter's `datepattern`) and is immutable; a [`DateScanner`] holds the
//! per-stream state (template hit order, last match) and is cheap to create.
//!
//! PUBLIC API CONTRACT (used by `stadtwache-match`; keep these signatures):
//! - `DateDetector::fail2ban_default() -> DateDetector`
//! - `DateDetector::from_datepattern(&str) -> Result<DateDetector, DateError>`
//! - `DateDetector::scanner(self: &Arc<Self>) -> DateScanner`
//! - `DateScanner::find(&mut self, line: &str, ctx: &TimeContext) -> Option<DateHit>`
//! - `TimeContext { now, tz }`
//!
//! Additions: [`DateScanner::find_match`] (also reports spans fail2ban cuts
//! out without getting a date), [`parse_logtimezone`],
//! `fail2ban_default_for_year` / `from_datepattern_for_year` (fix the year
//! `%ExY` is built around; the plain constructors read the system clock for
//! it, as fail2ban does at start-up), [`DateDetector::template_names`].
//!
//! # How it follows fail2ban 1.0.2
//!
//! - Templates are built the way `datetemplate.py` builds them (directive
//!   expansion, `{^LN-BEG}`, `{UNB}`, `**`, word bounds, group 1), and the
//!   default list is the anchored copies (weight 100) then the 17 originals.
//! - [`DateScanner`] is a port of `DateDetector.matchTime`: last template
//!   first (in the window of its last match when the boundary characters
//!   agree), the search with its "distance collision" reserve, hit counts,
//!   and `_reorderTemplate`'s bubbling.
//! - Times: `reGroupDictStrptime` (year/day completion from "now", rolling
//!   back dates in the future, `replace(year-1)`, zone names and offsets);
//!   times without a zone are read in `ctx.tz` like glibc `mktime` with
//!   `tm_isdst = -1` (a time in a DST gap uses the offset before the gap;
//!   in a fold glibc keeps the offset of its previous result, which the
//!   scanner tracks). Like fail2ban, pattern templates drop the
//!   sub-second part; epoch templates keep it.
//! - Regexes: the `regex` crate where the (translated) Python regex allows,
//!   `fancy_regex` for backreferences/lookaround/conditionals. The hot
//!   templates (ISO 8601, syslog, CLF, epoch) also have hand-written
//!   matchers that reproduce the regex's backtracking order; they answer
//!   "unsure" where a non-ASCII character could matter and the regex runs.
//!
//! `tests/fail2ban_diff.rs` and `tests/filter_datepatterns_diff.rs` compare
//! everything with fail2ban itself.
//!
//! # Known differences (none shows in fail2ban's sample logs)
//!
//! - Offsets are bytes; fail2ban's "last position" bookkeeping counts
//!   characters. They differ only when the number of multi-byte characters
//!   before the date changes from one line to the next.
//! - fail2ban's `template.hits` and glibc's `mktime` offset memory are
//!   global to the process; here they belong to the scanner. "Last used" times are `ctx.now`, not the wall clock.
//! - Non-ASCII (Unicode) digits: the span agrees, but fail2ban's `int()`
//!   reads them and we give no time. Python's and Rust's Unicode `\w`/`\s`
//!   differ on a few exotic characters (`\x1c`-`\x1f` are `\s` in Python).
//! - With `logtimezone`, fail2ban still compares dates with its *system*
//!   local "now"; here `ctx.tz` serves for both.
//! - fail2ban 1.0.2 has no `%Exb`, `%Exp`, `%s` or `ISO8601`: the first
//!   three are errors (as there), `ISO8601` is a literal regex (as there).
//! - fail2ban's template cache can hand a `{DATE}` pattern the weight of an
//!   identical default template; that is not modelled.
//!
//! # Speed
//!
//! On the "last template still hits" path a line costs a hand matcher run,
//! some bookkeeping and a cached zone lookup (per local hour); the last hit
//! is memoised while lines start with the same bytes (same second), see
//! `examples/fastpath.rs`. Lines without any date try every template, as in
//! fail2ban (about 1.5 µs each).

use std::sync::Arc;

use stadtwache_core::Timestamp;

pub use jiff::tz::TimeZone;

mod hand;
mod metare;
mod pyre;
mod strptime;
mod template;

pub use strptime::parse_logtimezone;

use hand::Hand;
use strptime::ZoneCache;
use template::{Build, DEFAULT_PATTERNS, HitData, LINE_BEGIN, RE_DATE_PREMATCH, RawHit, Template};

/// What date detection needs from outside: "now" (to complete dates without
/// a year, as fail2ban does) and the zone of times written without one.
#[derive(Clone, Debug)]
pub struct TimeContext {
    pub now: Timestamp,
    pub tz: TimeZone,
}

impl TimeContext {
    /// The context fail2ban's own sample test uses: now = 1124013600
    /// (Sun Aug 14 12:00:00 CEST 2005), TZ = `CET-01CEST-02,M3.5.0,M10.5.0`.
    pub fn fail2ban_test() -> Self {
        TimeContext {
            now: Timestamp::from_secs(1_124_013_600),
            tz: TimeZone::posix("CET-01CEST-02,M3.5.0,M10.5.0").expect("valid POSIX TZ"),
        }
    }
}

/// A date found in a line: the byte span fail2ban cuts out of the line before
/// matching `failregex` (its group 1), and the instant it denotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateHit {
    pub start: usize,
    pub end: usize,
    pub time: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    #[error("D001: invalid datepattern {pattern:?}: {why}")]
    InvalidPattern { pattern: String, why: String },
    #[error("D002: invalid logtimezone {zone:?}: {why}")]
    InvalidTimeZone { zone: String, why: String },
}

/// A date span found in a line, with its instant when fail2ban gets one.
///
/// `time` is `None` when the span is empty (fail2ban then uses the last
/// date of the stream or "now") or when the matched text is no valid date
/// (Feb 30, hour 24, unknown zone name, ...): fail2ban still cuts such a span
/// out of the line but has no date for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateMatch {
    pub start: usize,
    pub end: usize,
    pub time: Option<Timestamp>,
}

/// Compiled date templates (immutable; share it behind an `Arc`).
#[derive(Debug)]
pub struct DateDetector {
    templates: Vec<Template>,
    /// Built on demand: see [`DateDetector::template_set`].
    set: std::sync::OnceLock<Option<TemplateSet>>,
}

/// One search for which templates' regexes match a line anywhere: a
/// template whose regex (or the regex it is a subset of) has no match in the
/// line cannot match it, so fail2ban's loop over all templates may skip it.
#[derive(Debug)]
struct TemplateSet {
    set: regex::RegexSet,
    /// per template: its pattern in `set`, or None (always tried)
    index: Vec<Option<usize>>,
}

/// The full template loop runs this often before [`TemplateSet`] is built
/// (most logs settle on one template at once).
const SET_AFTER_LOOPS: u32 = 16;

/// The year `%ExY` is built around, from the system clock (fail2ban builds
/// its `%ExY` regex from `datetime.now()` at start-up the same way).
fn clock_year() -> i64 {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    strptime::civil_from_days(secs.div_euclid(86_400)).0
}

fn default_originals(b: &Build) -> Vec<Template> {
    DEFAULT_PATTERNS
        .iter()
        .map(|p| template::get_pattern_template(p, None, b).expect("default template compiles"))
        .collect()
}

/// `DateDetectorCache._addDefaultTemplate`: line-begin anchored copies
/// (weight 100) first, then the originals.
fn default_all(b: &Build) -> Vec<Template> {
    let mut first = Vec::new();
    let mut second = Vec::new();
    for t in default_originals(b) {
        if !t.name.starts_with("{^LN-BEG}") && !t.name.starts_with('^') {
            let wrap = |s: &str| format!("{{^LN-BEG}}{s}");
            let mut t2 = template::get_anchored_template(&t, &wrap, b).expect("anchored default compiles");
            if t2.name != t.name {
                t2.weight = 100.0;
                first.push(t2);
            }
        }
        second.push(t);
    }
    first.extend(second);
    first
}

struct Builder {
    templates: Vec<Template>,
}

impl Builder {
    fn append(&mut self, t: Template, ignore_dup: bool, pattern: &str) -> Result<(), DateError> {
        if self.templates.iter().any(|o| o.name == t.name) {
            if ignore_dup {
                return Ok(());
            }
            return Err(DateError::InvalidPattern {
                pattern: pattern.to_string(),
                why: format!("there is already a template with name {}", t.name),
            });
        }
        self.templates.push(t);
        Ok(())
    }
}

impl DateDetector {
    /// fail2ban's default template list (`%ExY` built around the current
    /// year of the system clock).
    pub fn fail2ban_default() -> DateDetector {
        Self::fail2ban_default_for_year(clock_year())
    }

    /// The default template list with `%ExY` built around `year` (fail2ban
    /// accepts the years 2000 .. the end of the decade of `year + 3`).
    pub fn fail2ban_default_for_year(year: i64) -> DateDetector {
        DateDetector { templates: default_all(&Build::for_year(year).lazy()), set: std::sync::OnceLock::new() }
    }

    /// A filter's `datepattern` (after config interpolation, so `%%` is
    /// already `%`): one or more patterns, one per line, each a strftime-like
    /// pattern with regex parts, `{^LN-BEG}`, `{UNB}`, `{DEFAULT}`, a
    /// `{DATE}` pre-match, `{NONE}`, `EPOCH`, `LEPOCH`, `{EPOCH}`,
    /// `{LEPOCH}` or `TAI64N`.
    pub fn from_datepattern(pattern: &str) -> Result<DateDetector, DateError> {
        Self::from_datepattern_for_year(pattern, clock_year())
    }

    /// [`DateDetector::from_datepattern`] with `%ExY` built around `year`.
    pub fn from_datepattern_for_year(pattern: &str, year: i64) -> Result<DateDetector, DateError> {
        let b = Build::for_year(year);
        let mut bld = Builder { templates: Vec::new() };
        for p in pattern.split('\n').map(str::trim).filter(|p| !p.is_empty()) {
            let key = if p.contains('%') { p.to_string() } else { p.to_uppercase() };
            let ignore_dup = !bld.templates.is_empty();
            if key == "{^LN-BEG}" || key == "{DEFAULT}" {
                for t in default_all(&b.lazy()) {
                    if key == "{^LN-BEG}" && t.flags & LINE_BEGIN == 0 {
                        continue;
                    }
                    bld.append(t, ignore_dup, p)?;
                }
            } else if key.contains("{DATE}") {
                for t in default_originals(&b.lazy()) {
                    let wrap = |s: &str| {
                        let inner = template::unbound_pattern(s);
                        RE_DATE_PREMATCH.replace_all(p, |_: &fancy_regex::Captures<'_, str>| inner.clone()).into_owned()
                    };
                    let t2 = template::get_anchored_template(&t, &wrap, &b)?;
                    bld.append(t2, ignore_dup, p)?;
                }
            } else if key == "{NONE}" {
                let t = template::get_pattern_template("{UNB}^", Some(&key), &b)?;
                bld.append(t, false, p)?;
            } else {
                let t = template::get_pattern_template(p, Some(&key), &b)?;
                bld.append(t, false, p)?;
            }
        }
        if bld.templates.is_empty() {
            // fail2ban falls back to the default templates
            bld.templates = default_all(&b.lazy());
        }
        Ok(DateDetector { templates: bld.templates, set: std::sync::OnceLock::new() })
    }

    /// Names of the templates, in their initial order (diagnostics).
    pub fn template_names(&self) -> Vec<String> {
        self.templates.iter().map(|t| t.name.clone()).collect()
    }

    /// The [`TemplateSet`] of all templates with a regex (None when the
    /// set does not build, e.g. too large: then every template is tried).
    fn template_set(&self) -> Option<&TemplateSet> {
        self.set
            .get_or_init(|| {
                let mut pats = Vec::new();
                let index = self
                    .templates
                    .iter()
                    .map(|t| {
                        let r = t.prefilter()?;
                        pats.push(r.as_str().to_string());
                        Some(pats.len() - 1)
                    })
                    .collect();
                let set = regex::RegexSetBuilder::new(&pats).size_limit(1 << 24).build().ok()?;
                Some(TemplateSet { set, index })
            })
            .as_ref()
    }

    pub fn scanner(self: &Arc<Self>) -> DateScanner {
        let n = self.templates.len();
        DateScanner {
            detector: Arc::clone(self),
            order: (0..n).map(|t| Slot { t, hits: 0, last_used: 0.0, distance: 0x7fff_ffff }).collect(),
            ever_hit: vec![false; n],
            last_pos: (1, None, None),
            last_end: (0x7fff_ffff, None, None),
            last_idx: usize::MAX,
            first_unused: 0,
            loops: 0,
            set_on: true,
            zc: ZoneCache::default(),
            memo: None,
            memo_on: true,
            memo_hits: 0,
            repeats: 0,
            now_secs: (0, Timestamp(0).as_secs_f64()),
        }
    }
}

/// `DateDetectorTemplate`: a template's per-stream statistics.
#[derive(Debug, Clone)]
struct Slot {
    t: usize,
    hits: u64,
    last_used: f64,
    distance: i64,
}

/// Per-stream date matching state.
#[derive(Debug)]
pub struct DateScanner {
    detector: Arc<DateDetector>,
    order: Vec<Slot>,
    /// fail2ban's `template.hits` (it only asks whether it is zero)
    ever_hit: Vec<bool>,
    /// (distance, char before, char at): fail2ban's `__lastPos`
    last_pos: (i64, Option<char>, Option<char>),
    /// (end, char before, char at): fail2ban's `__lastEndPos`
    last_end: (i64, Option<char>, Option<char>),
    last_idx: usize,
    first_unused: usize,
    /// how often the full template loop ran (up to [`SET_AFTER_LOOPS`])
    loops: u32,
    /// skip templates the [`TemplateSet`] rules out (off: tests compare)
    set_on: bool,
    zc: ZoneCache,
    /// the last fast-path hit, reused while lines start with the same bytes
    memo: Option<Memo>,
    memo_on: bool,
    /// how often the memo answered (tests)
    memo_hits: u64,
    /// how often [`DateScanner::repeat`] answered (tests)
    repeats: u64,
    /// `(now, now.as_secs_f64())` of the last [`DateScanner::repeat`]: a
    /// replay's `now` stays, and the division is one of its slowest steps
    now_secs: (i64, f64),
}

const MEMO_BYTES: usize = 64;

/// A hand matcher's last hit: same template, same search start, same bytes
/// up to the last one it looked at -> same hit (and, for the same "now" and
/// zone, the same time).
#[derive(Debug, Clone)]
struct Memo {
    tid: usize,
    pos: usize,
    hay_len: usize,
    /// bytes `..upto` of the text decided the hit
    upto: usize,
    /// whether the matcher looked past the end of the text
    saw_end: bool,
    bytes: [u8; MEMO_BYTES],
    hit: RawHit,
    /// (ctx.now, zone cache generation, glibc offset state, time) once
    /// computed
    time: Option<(i64, u64, i64, Option<Timestamp>)>,
    /// The template is anchored (`Template::anchored`).
    anchored: bool,
    /// The hit is the `{^LN-BEG}` syslog matcher's on a line that starts
    /// `Mmm DD HH:MM:SS` (see [`syslog_seconds_only`]): a line that differs
    /// only in the seconds' digits has the same hit but for the seconds.
    seconds_only: bool,
    /// For a `seconds_only` memo: the time of its fields at one second, for
    /// a `now` and zone under which the time moves with the seconds alone
    /// over the whole minute (see [`strptime::to_epoch_minute`]).
    minute: Option<MinuteTime>,
}

/// A time that moves with the seconds over its minute.
#[derive(Debug, Clone, Copy)]
struct MinuteTime {
    /// ctx.now and zone cache generation it holds for
    now: i64,
    generation: u64,
    /// the seconds it was computed for, and that time (epoch seconds)
    second: i32,
    time: i64,
    /// glibc's offset state after any second of the minute
    off: i64,
}

#[cfg(test)]
thread_local! {
    /// How often the seconds-only reuse answered (tests).
    static SECONDS_REUSED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
thread_local! {
    /// How often a [`MinuteTime`] answered (tests).
    static MINUTE_REUSED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Where the seconds of a `Mmm DD HH:MM:SS` line start.
const SYSLOG_SEC: usize = 13;

/// How a line's first `upto` bytes compare with a memo's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prefix {
    /// all the same
    Same,
    /// `upto >= SYSLOG_SEC + 2` and all the same but (some of) the two at `SYSLOG_SEC`
    Seconds,
    /// anything else (also: the line is shorter than `upto`)
    Other,
}

/// `0xff` for the first `n <= 32` bytes of `LOW_BYTES[32 - n..64 - n]`.
const LOW_BYTES: [u8; 64] = {
    let mut b = [0u8; 64];
    let mut i = 0;
    while i < 32 {
        b[i] = 0xff;
        i += 1;
    }
    b
};

/// The two seconds' digits of a syslog date in the first of two 16-byte words.
const SECONDS_MASK: u128 = 0xffff << (SYSLOG_SEC * 8);

/// [`Prefix`] of `line` against `memo` for `upto <= memo.len()`. Two
/// 16-byte words when `upto <= 32` and the line has 32 bytes (a syslog date's
/// memo looks at ~16), else [`memo_prefix_general`].
#[inline(always)]
fn memo_prefix(line: &[u8], memo: &[u8; MEMO_BYTES], upto: usize) -> Prefix {
    if let (Some(l), Some(m), Some(k)) =
        (line.first_chunk::<32>(), memo.first_chunk::<32>(), LOW_BYTES.get(32usize.wrapping_sub(upto)..))
        && let Some(k) = k.first_chunk::<32>()
    {
        let word = |b: &[u8; 32], i: usize| {
            let mut w = [0u8; 16];
            w.copy_from_slice(&b[i..i + 16]);
            u128::from_le_bytes(w)
        };
        // the differing bytes below `upto`
        let lo = (word(l, 0) ^ word(m, 0)) & word(k, 0);
        let hi = (word(l, 16) ^ word(m, 16)) & word(k, 16);
        return if lo | hi == 0 {
            Prefix::Same
        } else if upto >= SYSLOG_SEC + 2 && hi == 0 && lo & !SECONDS_MASK == 0 {
            Prefix::Seconds
        } else {
            Prefix::Other
        };
    }
    memo_prefix_general(line, memo, upto)
}

/// [`memo_prefix`] by slices.
#[inline(never)]
fn memo_prefix_general(line: &[u8], memo: &[u8], upto: usize) -> Prefix {
    if line.get(..upto) == Some(&memo[..upto]) {
        Prefix::Same
    } else if upto >= SYSLOG_SEC + 2
        && line.get(..SYSLOG_SEC) == Some(&memo[..SYSLOG_SEC])
        && line.get(SYSLOG_SEC + 2..upto) == Some(&memo[SYSLOG_SEC + 2..upto])
    {
        Prefix::Seconds
    } else {
        Prefix::Other
    }
}

/// `[0-5][0-9]`: the value of seconds the syslog matcher takes as two digits
/// (its first alternative, tried first).
#[inline]
fn two_digit_seconds(b: &[u8]) -> Option<i32> {
    match b {
        [d1 @ b'0'..=b'5', d2 @ b'0'..=b'9', ..] => Some(i32::from(d1 - b'0') * 10 + i32::from(d2 - b'0')),
        _ => None,
    }
}

/// Whether a hit of template `t` on `line` from `pos` may be reused for a
/// line that differs only in the two seconds' digits (both `[0-5][0-9]`).
///
/// The `{^LN-BEG}` syslog matcher (`^(?:\W{0,2})?(?:%a )?%b %d %k:%M:%S…`,
/// alternatives in Python's order) on a line starting with
/// `[A-Za-z]{3} (?: [1-9]|0[1-9]|[12]\d|3[01]) [0-2]\d:[0-5]\d:[0-5]\d`:
/// no `\W` prefix (a letter first); every alternative tried before the
/// line's own structure fails before byte 13 (a weekday start on a month
/// name fails at bytes 4..7; a shorter day, hour or minute meets a digit
/// where it needs ' ' or ':'); that structure takes each part with its
/// first alternative (two digits), and all that follows the seconds looks
/// at bytes from 14 on (byte 14 only as a word character). So the same
/// bytes but for 13..15 give the same path and spans, the seconds' value
/// aside.
fn syslog_seconds_only(t: &Template, pos: usize, line: &[u8], hit: &RawHit) -> bool {
    let b = line;
    let shape = b.len() >= SYSLOG_SEC + 2
        && b[..3].iter().all(u8::is_ascii_alphabetic)
        && b[3] == b' '
        && matches!((b[4], b[5]), (b' ' | b'0', b'1'..=b'9') | (b'1' | b'2', b'0'..=b'9') | (b'3', b'0' | b'1'))
        && b[6] == b' '
        && matches!(b[7], b'0'..=b'2')
        && b[8].is_ascii_digit()
        && b[9] == b':'
        && matches!(b[10], b'0'..=b'5')
        && b[11].is_ascii_digit()
        && b[12] == b':';
    shape
        && pos == 0
        // (the zone variant looks at no byte past the 8th before the syslog
        // matcher's own work: the same reasoning holds)
        && matches!(
            t.hand,
            Some(Hand::Pattern { shape: hand::Shape::Syslog, anchored: true, .. } | Hand::ZoneSyslog { .. })
        )
        && (hit.s0, hit.s1) == (0, 0)
        && hit.e1 >= SYSLOG_SEC + 2
        && matches!(&hit.data, HitData::Fields(f) if Some(f.second) == two_digit_seconds(&b[SYSLOG_SEC..]))
}

/// `template.matchDate(line, pos, endpos)` for the last template, through
/// the memo where its hand matcher can decide. The flag tells whether the
/// hit is in the memo.
fn last_match(
    on: bool,
    memo: &mut Option<Memo>,
    t: &Template,
    tid: usize,
    line: &str,
    pos: usize,
    endpos: usize,
) -> (Option<RawHit>, bool) {
    if !on {
        return (t.match_date(line, pos, endpos), false);
    }
    let hay_len = endpos.min(line.len());
    if let Some(m) = memo.as_ref()
        && m.tid == tid
        && m.pos == pos
        && (if m.saw_end { hay_len == m.hay_len } else { hay_len >= m.upto })
        && line.as_bytes().get(..m.upto) == Some(&m.bytes[..m.upto])
    {
        return (Some(m.hit.clone()), true);
    }
    // the same but for the seconds (see `syslog_seconds_only`)
    let b = line.as_bytes();
    if let Some(m) = memo.as_mut()
        && m.seconds_only
        && m.tid == tid
        && m.pos == pos
        && (if m.saw_end { hay_len == m.hay_len } else { hay_len >= m.upto })
        && m.upto >= SYSLOG_SEC + 2
        && let Some(sec) = b.get(SYSLOG_SEC..).and_then(two_digit_seconds)
        && b.get(..SYSLOG_SEC) == Some(&m.bytes[..SYSLOG_SEC])
        && b.get(SYSLOG_SEC + 2..m.upto) == Some(&m.bytes[SYSLOG_SEC + 2..m.upto])
        && let HitData::Fields(f) = &mut m.hit.data
    {
        f.second = sec;
        #[cfg(test)]
        SECONDS_REUSED.with(|c| c.set(c.get() + 1));
        m.bytes[SYSLOG_SEC..SYSLOG_SEC + 2].copy_from_slice(&b[SYSLOG_SEC..SYSLOG_SEC + 2]);
        m.time = None;
        return (Some(m.hit.clone()), true);
    }
    match t.match_date_tracked(line, pos, endpos) {
        Some((Some(hit), max)) => {
            let saw_end = max >= hay_len;
            let upto = if saw_end { hay_len } else { max + 1 };
            if upto <= MEMO_BYTES {
                let mut bytes = [0u8; MEMO_BYTES];
                bytes[..upto].copy_from_slice(&line.as_bytes()[..upto]);
                let seconds_only = upto >= SYSLOG_SEC + 2 && syslog_seconds_only(t, pos, &bytes[..upto], &hit);
                *memo = Some(Memo {
                    tid,
                    pos,
                    hay_len,
                    upto,
                    saw_end,
                    bytes,
                    hit: hit.clone(),
                    time: None,
                    seconds_only,
                    minute: None,
                    anchored: t.anchored(),
                });
                return (Some(hit), true);
            }
            (Some(hit), false)
        }
        Some((None, _)) => (None, false),
        None => (t.match_date(line, pos, endpos), false),
    }
}

/// Python's `line[i:i+1]` for a byte offset: `Some(None)` is the empty
/// string, `None` an offset inside a character (equals nothing).
fn char_at(line: &str, i: usize) -> Option<Option<char>> {
    match line.as_bytes().get(i) {
        None => Some(None),
        Some(&b) if b < 0x80 => Some(Some(char::from(b))),
        Some(_) => line.get(i..).map(|r| r.chars().next()),
    }
}

/// Python's `line[i-1:i]`.
fn char_before(line: &str, i: usize) -> Option<Option<char>> {
    if i == 0 || i > line.len() {
        return Some(None);
    }
    match line.as_bytes()[i - 1] {
        b if b < 0x80 => Some(Some(char::from(b))),
        _ => line.get(..i).map(|r| r.chars().next_back()),
    }
}

fn isalnum(c: Option<char>) -> bool {
    c.is_some_and(char::is_alphanumeric)
}

impl DateScanner {
    pub fn find(&mut self, line: &str, ctx: &TimeContext) -> Option<DateHit> {
        let m = self.find_match(line, ctx)?;
        Some(DateHit { start: m.start, end: m.end, time: m.time? })
    }

    /// Like [`DateScanner::find`], but also reports spans without a usable
    /// date (see [`DateMatch`]), which fail2ban still cuts out of the line.
    #[inline]
    pub fn find_match(&mut self, line: &str, ctx: &TimeContext) -> Option<DateMatch> {
        if let Some(m) = self.repeat(line, ctx) {
            return Some(m);
        }
        self.find_match_general(line, ctx)
    }

    /// The general path of [`DateScanner::find_match`] (no [`DateScanner::repeat`]).
    /// Out of line: the common `repeat` path then needs no large frame.
    #[inline(never)]
    fn find_match_general(&mut self, line: &str, ctx: &TimeContext) -> Option<DateMatch> {
        let (tid, hit, fast) = self.match_time(line, ctx.now.as_secs_f64())?;
        let t = &self.detector.templates[tid];
        let cached = match &self.memo {
            Some(Memo { time: Some((now, generation, last_off, time)), .. })
                if fast
                    && *now == ctx.now.0
                    && *generation == self.zc.generation
                    && *last_off == self.zc.last_off
                    && self.zc.same_tz(&ctx.tz) =>
            {
                Some(*time)
            }
            _ => None,
        };
        // a syslog line whose date differs from the memo's in the seconds only
        let minute = match (&self.memo, &hit.data) {
            (Some(Memo { seconds_only: true, minute: Some(mt), .. }), HitData::Fields(f))
                if fast
                    && cached.is_none()
                    && mt.now == ctx.now.0
                    && mt.generation == self.zc.generation
                    && self.zc.same_tz(&ctx.tz) =>
            {
                Some((*mt, f.second))
            }
            _ => None,
        };
        let time = if let Some(time) = cached {
            time
        } else if hit.s1 == hit.e1 {
            None
        } else if let Some((mt, second)) = minute {
            #[cfg(test)]
            MINUTE_REUSED.with(|c| c.set(c.get() + 1));
            self.zc.last_off = mt.off;
            Some(Timestamp::from_secs(mt.time + i64::from(second - mt.second)))
        } else {
            let (time, off) = t.time_minute(line, &hit, ctx, &mut self.zc);
            if fast
                && let (Some(off), Some(time), HitData::Fields(f)) = (off, time, &hit.data)
                && let Some(m) = &mut self.memo
                && m.seconds_only
            {
                m.minute = Some(MinuteTime {
                    now: ctx.now.0,
                    generation: self.zc.generation,
                    second: f.second,
                    time: time.0.div_euclid(Timestamp::MICROS_PER_SEC),
                    off,
                });
            }
            time
        };
        self.memo_hits += u64::from(cached.is_some());
        if fast
            && cached.is_none()
            && let Some(m) = &mut self.memo
        {
            m.time = Some((ctx.now.0, self.zc.generation, self.zc.last_off, time));
        }
        Some(DateMatch { start: hit.s1, end: hit.e1, time })
    }

    fn weight(&self, i: usize) -> f64 {
        let s = &self.order[i];
        s.hits as f64 * self.detector.templates[s.t].weight / s.distance.max(1) as f64
    }

    /// fail2ban's `DateDetector.matchTime`.
    fn match_time(&mut self, line: &str, now: f64) -> Option<(usize, RawHit, bool)> {
        let templates = &self.detector.templates;
        let n = self.order.len();
        let len = line.len();
        let mut found: Option<(RawHit, usize)> = None;
        let mut ignore = usize::MAX;
        let mut winner: Option<(usize, RawHit)> = None;
        let mut fast = false;

        let i = self.last_idx;
        if i < n {
            let ti = self.order[i].t;
            let t = &templates[ti];
            let (m, memo) = if t.anchored() {
                ignore = i;
                last_match(self.memo_on, &mut self.memo, t, ti, line, 0, len)
            } else {
                let (d, lp1, lp2) = self.last_pos;
                let (e, le1, le2) = self.last_end;
                let (du, eu) = (d.max(0) as usize, e.max(0) as usize);
                let ok = (char_before(line, du) == Some(lp1) || (char_at(line, du) == Some(lp2) && !isalnum(lp2)))
                    && (char_at(line, eu) == Some(le2) || (char_before(line, eu) == Some(le1) && !isalnum(le1)));
                if ok {
                    last_match(self.memo_on, &mut self.memo, t, ti, line, du, eu)
                } else {
                    ignore = i;
                    last_match(self.memo_on, &mut self.memo, t, ti, line, 0, len)
                }
            };
            if let Some(h) = m {
                self.ever_hit[ti] = true;
                if n == 1 || t.anchored() || (h.s0 as i64 == self.last_pos.0 && h.e0 as i64 == self.last_end.0) {
                    winner = Some((i, h));
                    fast = memo;
                } else {
                    found = Some((h, i));
                }
            }
        }

        if winner.is_none() {
            // which templates can match anywhere in the line (None: all)
            let can = if self.set_on && self.loops >= SET_AFTER_LOOPS {
                self.detector.template_set().map(|s| (s, s.set.matches(line)))
            } else {
                self.loops += 1;
                None
            };
            let mut i = 0;
            while i < n {
                if i == ignore {
                    i += 1;
                    continue;
                }
                let ti = self.order[i].t;
                let t = &templates[ti];
                if let Some((s, m)) = &can
                    && let Some(k) = s.index[ti]
                    && !m.matched(k)
                {
                    i += 1;
                    continue;
                }
                if let Some(h) = t.match_date(line, 0, len) {
                    self.ever_hit[ti] = true;
                    let distance = h.s0 as i64;
                    if i + 1 >= n
                        || t.anchored()
                        || (distance == 0 && self.order[i].hits > 0 && !self.ever_hit[self.order[i + 1].t])
                    {
                        winner = Some((i, h));
                        break;
                    }
                    if distance > self.order[i].distance || distance > self.last_pos.0 {
                        if found.as_ref().is_none_or(|(f, _)| distance < f.s0 as i64) {
                            found = Some((h, i));
                        }
                        i += 1;
                        continue;
                    }
                    winner = Some((i, h));
                    break;
                }
                i += 1;
            }
            if winner.is_none() {
                winner = found.map(|(h, i)| (i, h));
            }
        }

        let (mut i, h) = winner?;
        let slot = &mut self.order[i];
        slot.hits += 1;
        slot.last_used = now;
        slot.distance = h.s0 as i64;
        let tid = slot.t;
        if self.first_unused == i {
            self.first_unused += 1;
        }
        self.set_last(line, h.s0, h.e0);
        if i != 0 && i != self.last_idx {
            i = self.reorder(i);
        }
        self.last_idx = i;
        Some((tid, h, fast))
    }

    /// fail2ban's `__lastPos` / `__lastEndPos` after a match at `s0..e0`.
    #[inline(always)]
    fn set_last(&mut self, line: &str, s0: usize, e0: usize) {
        let b = line.as_bytes();
        // the common case: a match from the line's start, ASCII around its end
        if s0 == 0
            && e0 > 0
            && let (Some(&first), Some(&before), Some(&at)) = (b.first(), b.get(e0 - 1), b.get(e0))
            && first < 0x80
            && before < 0x80
            && at < 0x80
        {
            self.last_pos = (0, None, Some(char::from(first)));
            self.last_end = (e0 as i64, Some(char::from(before)), Some(char::from(at)));
            return;
        }
        self.set_last_general(line, s0, e0);
    }

    /// [`DateScanner::set_last`] without its ASCII shortcut.
    #[inline(never)]
    fn set_last_general(&mut self, line: &str, s0: usize, e0: usize) {
        self.last_pos = (s0 as i64, char_before(line, s0).flatten(), char_at(line, s0).flatten());
        let before_end = if e0 == 0 {
            line.chars().next_back() // Python's line[-1]
        } else {
            char_before(line, e0).flatten()
        };
        self.last_end = (e0 as i64, before_end, char_at(line, e0).flatten());
    }

    /// The common case of [`DateScanner::find_match`] without moving hits
    /// around: the last template is anchored and its memo decides this line,
    /// either with the same leading bytes as the line it was made for and
    /// the time for this `now` and zone state, or (a syslog date) with only
    /// the seconds' digits changed and a [`MinuteTime`] for this `now` and
    /// zone. Does exactly what `match_time` and `find_match_general` do then
    /// (the same bookkeeping, the memoised hit and time, the memo's update
    /// by `last_match` and the minute reuse), or nothing and returns `None`.
    #[inline(always)]
    fn repeat(&mut self, line: &str, ctx: &TimeContext) -> Option<DateMatch> {
        if !self.memo_on {
            return None;
        }
        let i = self.last_idx;
        let ti = self.order.get(i)?.t;
        let m = self.memo.as_mut()?;
        let hay_len = line.len();
        let b = line.as_bytes();
        if m.tid != ti
            || m.pos != 0
            || !(if m.saw_end { hay_len == m.hay_len } else { hay_len >= m.upto })
            || !m.anchored
        {
            return None;
        }
        let prefix = memo_prefix(b, &m.bytes, m.upto);
        let time = if prefix == Prefix::Same {
            let (now, generation, last_off, time) = m.time?;
            if now != ctx.now.0
                || generation != self.zc.generation
                || last_off != self.zc.last_off
                || !self.zc.same_tz(&ctx.tz)
            {
                return None;
            }
            self.memo_hits += 1;
            time
        } else {
            // `last_match`'s seconds-only reuse, then the minute's time
            let mt = m.minute?;
            if !m.seconds_only
                || prefix != Prefix::Seconds
                || mt.now != ctx.now.0
                || mt.generation != self.zc.generation
            {
                return None;
            }
            let sec = b.get(SYSLOG_SEC..).and_then(two_digit_seconds)?;
            let HitData::Fields(f) = &mut m.hit.data else {
                return None;
            };
            if !self.zc.same_tz(&ctx.tz) {
                return None;
            }
            f.second = sec;
            m.bytes[SYSLOG_SEC..SYSLOG_SEC + 2].copy_from_slice(&b[SYSLOG_SEC..SYSLOG_SEC + 2]);
            let time = Some(Timestamp::from_secs(mt.time + i64::from(sec - mt.second)));
            self.zc.last_off = mt.off;
            m.time = Some((ctx.now.0, self.zc.generation, mt.off, time));
            #[cfg(test)]
            {
                SECONDS_REUSED.with(|c| c.set(c.get() + 1));
                MINUTE_REUSED.with(|c| c.set(c.get() + 1));
            }
            time
        };
        let (s0, e0, s1, e1) = (m.hit.s0, m.hit.e0, m.hit.s1, m.hit.e1);
        // match_time: the last template wins at once
        self.ever_hit[ti] = true;
        let slot = &mut self.order[i];
        slot.hits += 1;
        if self.now_secs.0 != ctx.now.0 {
            self.now_secs = (ctx.now.0, ctx.now.as_secs_f64());
        }
        slot.last_used = self.now_secs.1;
        slot.distance = s0 as i64;
        if self.first_unused == i {
            self.first_unused += 1;
        }
        self.set_last(line, s0, e0);
        // (i == last_idx: no reordering)
        self.repeats += 1;
        Some(DateMatch { start: s1, end: e1, time })
    }

    /// fail2ban's `_reorderTemplate` (bubble a template up).
    fn reorder(&mut self, num: usize) -> usize {
        let untime = self.order[num].last_used - 300.0;
        let weight = self.weight(num);
        let mut pos = if self.first_unused < num { self.first_unused } else { num / 2 };
        let moveable = |s: &Self, pos: usize| weight > s.weight(pos) || untime > s.order[pos].last_used;
        if !moveable(self, pos) {
            if pos == num - 1 {
                return num;
            }
            pos = num - 1;
            if !moveable(self, pos) {
                return num;
            }
        }
        let slot = self.order.remove(num);
        self.order.insert(pos, slot);
        while self.first_unused < self.order.len() && self.order[self.first_unused].hits > 0 {
            self.first_unused += 1;
        }
        pos
    }
}

#[cfg(test)]
mod memo_tests {
    use super::*;

    /// A xorshift generator from `seed`: each call gives a number below `n`.
    pub(crate) fn xorshift(mut seed: u64) -> impl FnMut(usize) -> usize {
        move |n| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        }
    }

    /// Skipping the templates the [`TemplateSet`] rules out against trying
    /// every template: dates of many formats that move in the line (prefixes
    /// of varying length), lines with two dates, dates that are no valid
    /// date, lines without one; default templates and a `datepattern` list.
    #[test]
    fn template_set_skips_change_nothing() {
        let dets = [
            Arc::new(DateDetector::fail2ban_default_for_year(2026)),
            Arc::new(DateDetector::from_datepattern_for_year("%Y-%m-%d %H:%M:%S\n%d/%b/%Y:%H:%M:%S", 2026).unwrap()),
        ];
        let dates = [
            "[02/Mar/2026:00:00:{s} +0000]",
            "2026-03-02 00:00:{s}",
            "Mar  2 00:00:{s}",
            "2026-03-02T00:00:{s}.123+01:00",
            "02/03/2026 00:00:{s}",
            "Mon Mar 02 00:00:{s} 2026",
            "@4000000069a4d1{s}00000000",
            "17724096{s}.5",
            "2026-02-30 00:00:{s}",
            "no date here {s}",
            "00:00:{s}",
            "Mar 02, 2026 12:00:{s} AM",
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let ctx = TimeContext { now: Timestamp::from_secs(1_772_409_600), tz: TimeZone::UTC };
        for det in &dets {
            let mut a = det.scanner();
            let mut b = det.scanner();
            b.set_on = false;
            for i in 0..4000 {
                let d = dates[rnd(if i < 1000 { 2 } else { dates.len() as u64 }) as usize]
                    .replace("{s}", &format!("{:02}", rnd(60)));
                let pre = "1.2.3.4 - - ".repeat(rnd(3) as usize) + &"9".repeat(rnd(4) as usize);
                let l = match rnd(5) {
                    0 => format!("{d} host x[1]: from {pre}"),
                    1 => format!("{pre} {d} \"GET / HTTP/1.1\" 404 {}", dates[rnd(3) as usize].replace("{s}", "07")),
                    _ => format!("{pre} {d} \"GET / HTTP/1.1\" 404 153"),
                };
                assert_eq!(a.find_match(&l, &ctx), b.find_match(&l, &ctx), "line {i}: {l:?}");
            }
            assert!(a.loops >= SET_AFTER_LOOPS && matches!(det.set.get(), Some(Some(_))));
        }
    }

    /// The time of a syslog line whose date differs from the last one's in
    /// the seconds only, moved on from the last time, against the scanner
    /// without any memo: seconds in every order, across the year roll-back
    /// of a year-less date ("now" one day before it, mid-minute), in the
    /// hours of Berlin's gap and fold and the hours next to them, an hour
    /// of a zone whose transition is not at a whole minute (Amsterdam 1937,
    /// +00:19:32 -> +00:20), with "now" and the zone changing between lines.
    #[test]
    fn minute_reuse_changes_nothing() {
        let berlin = TimeZone::get("Europe/Berlin").unwrap_or(TimeZone::UTC);
        let amsterdam = TimeZone::get("Europe/Amsterdam").unwrap_or(TimeZone::UTC);
        let cases: [(&str, i64, &TimeZone); 8] = [
            // now = Mar 1 2026 00:00:30 UTC: Mar 2 00:00:31 and later roll back a year
            ("Mar  2 00:00", 1_772_323_230, &TimeZone::UTC),
            ("Mar  2 00:01", 1_772_323_230, &TimeZone::UTC),
            ("Mar  1 23:59", 1_772_323_230, &TimeZone::UTC),
            // Berlin 2026: gap on Mar 29 02:00-03:00, fold on Oct 25 02:00-03:00
            ("Mar 29 02:30", 1_790_000_000, &berlin),
            ("Mar 29 01:59", 1_790_000_000, &berlin),
            ("Oct 25 02:17", 1_790_000_000, &berlin),
            ("Oct 25 03:00", 1_790_000_000, &berlin),
            // Amsterdam 1937-07-01: 00:00:00 local +00:19:32 became 00:00:28 +00:20
            ("Jul  1 00:00", -1_024_531_200, &amsterdam),
        ];
        let secs: Vec<u32> = (0..60).chain([59, 0, 31, 30, 29, 28, 27, 1, 58]).collect();
        let det = Arc::new(DateDetector::from_datepattern_for_year("{^LN-BEG}", 2026).unwrap());
        let before = MINUTE_REUSED.with(|c| c.get());
        for lead_in in [false, true] {
            let mut a = det.scanner();
            let mut b = det.scanner();
            b.memo_on = false;
            for (k, (minute, now, tz)) in cases.iter().enumerate() {
                for (j, s) in secs.iter().enumerate() {
                    // now and then "now" moves or another minute comes in between
                    let now = if lead_in && j % 17 == 5 { now + 1 } else { *now };
                    let ctx = TimeContext { now: Timestamp::from_secs(now), tz: (*tz).clone() };
                    let l = if lead_in && j % 23 == 7 {
                        format!("{} {s:02} x", cases[(k + 1) % cases.len()].0)
                    } else {
                        format!("{minute}:{s:02} host sshd[1]: x")
                    };
                    assert_eq!(a.find_match(&l, &ctx), b.find_match(&l, &ctx), "{l:?} now {now}");
                }
            }
        }
        let used = MINUTE_REUSED.with(|c| c.get()) - before;
        assert!(used > 300, "minute reuse answered {used} times");
    }

    /// The seconds-only reuse of a syslog hit against the scanner without
    /// any memo, on lines built from parts that bend the `Mmm DD HH:MM:SS`
    /// shape every way (days, hours, minutes and seconds out of range or
    /// one digit, a weekday, a `\W` prefix, a fraction, a year, a word
    /// character right after, non-ASCII), consecutive lines mostly differing
    /// in the seconds only; for `{^LN-BEG}`, the default templates and a
    /// plain syslog pattern.
    #[test]
    fn seconds_only_reuse_changes_nothing() {
        let months = ["Mar", "Jan", "mAR", "Sun", "Xyz", "Ma1"];
        let days = [" 2", "02", "12", "29", "30", "31", "32", " 0", "00", "3 ", "1", "2 "];
        let hours = ["00", "09", "19", "23", "24", "29", "30", "0", "0 ", "5", "3"];
        let mins = ["00", "05", "59", "60", "7", "61"];
        let secs = ["00", "01", "09", "10", "48", "59", "60", "61", "69", "70", "99", "5", "5x", "1é", "0:"];
        let tails = [
            " host sshd[1]: x",
            "",
            " ",
            ".5 x",
            ".1234567 x",
            " 2005 x",
            " 2005",
            " 1969 x",
            "x",
            "_",
            ":",
            " 20",
            "é",
            ".",
            " 2005.5",
        ];
        let heads = ["", "", "", "", "[", "Sun ", "  ", "é"];
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        // mostly one of the first `good` (the shape the reuse takes)
        let mut pick = |good: usize, all: usize| if next(5) == 0 { next(all) } else { next(good) };
        let mut lines = Vec::new();
        let mut parts = [0usize; 7];
        for i in 0..20_000 {
            if i % 6 == 0 || pick(4, 3) == 0 {
                parts = [
                    pick(4, heads.len()),
                    pick(3, months.len()),
                    pick(6, days.len()),
                    pick(6, hours.len()),
                    pick(3, mins.len()),
                    pick(6, secs.len()),
                    pick(2, tails.len()),
                ];
            } else {
                // mostly the seconds, now and then the byte after them
                parts[5] = pick(6, secs.len());
                if pick(8, 8) == 0 {
                    parts[6] = pick(tails.len(), tails.len());
                }
            }
            let [h, m, d, hh, mm, ss, t] = parts;
            lines.push(format!(
                "{}{} {} {}:{}:{}{}",
                heads[h], months[m], days[d], hours[hh], mins[mm], secs[ss], tails[t]
            ));
        }
        let berlin = TimeZone::get("Europe/Berlin").unwrap_or(TimeZone::UTC);
        let detectors = [
            DateDetector::from_datepattern_for_year("{^LN-BEG}", 2026).unwrap(),
            DateDetector::fail2ban_default_for_year(2026),
            DateDetector::from_datepattern_for_year("^%b %d %H:%M:%S", 2026).unwrap(),
        ];
        let before = SECONDS_REUSED.with(|c| c.get());
        for det in detectors {
            let det = Arc::new(det);
            let mut a = det.scanner();
            let mut b = det.scanner();
            b.memo_on = false;
            for (i, l) in lines.iter().enumerate() {
                let ctx = TimeContext {
                    now: Timestamp::from_secs(1_772_400_000 + (i as i64 / 500) * 86_400 * 45),
                    tz: if (i / 3000) % 2 == 0 { TimeZone::UTC } else { berlin.clone() },
                };
                assert_eq!(a.find_match(l, &ctx), b.find_match(l, &ctx), "line {i}: {l:?}");
            }
        }
        let used = SECONDS_REUSED.with(|c| c.get()) - before;
        assert!(used > 2000, "seconds-only reuse answered {used} times");
    }

    /// The seconds-only reuse with the `{^LN-BEG}(?:%Z )?` syslog template
    /// first (a line with a word before its date put it there) against the
    /// scanner without any memo: lines differing mostly in the seconds, now
    /// and then a word or a zone before the date or a changed head.
    #[test]
    fn seconds_only_reuse_with_the_zone_template_changes_nothing() {
        let heads = ["", "", "", "", "", "", "port ", "UTC ", "Z ", "z ", "ab ", "[", "Sun ", "é", "0", "Mar "];
        let secs = ["00", "01", "09", "10", "48", "59", "60", "61", "5", "5x", "1é", "0:"];
        let tails = [" host sshd[1]: x", "", " 2005 x", ".5 x", "x", "é"];
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        let det = Arc::new(DateDetector::from_datepattern_for_year("{^LN-BEG}", 2026).unwrap());
        let zone = det.templates.iter().position(|t| matches!(t.hand, Some(Hand::ZoneSyslog { .. })));
        let zone = zone.expect("{^LN-BEG} has the zone syslog template");
        let mut a = det.scanner();
        let mut b = det.scanner();
        b.memo_on = false;
        let ctx = TimeContext { now: Timestamp::from_secs(1_772_400_000), tz: TimeZone::UTC };
        // seconds-only reuses while the zone template came first
        let mut used = 0;
        let (mut head, mut tail, mut minute) = (0, 0, 0);
        for i in 0..20_000 {
            if next(8) == 0 {
                head = next(heads.len());
                tail = next(tails.len());
                minute = next(3);
            } else if next(4) == 0 {
                head = 0;
            }
            let l = format!("{}Mar  2 00:0{minute}:{}{}", heads[head], secs[next(secs.len())], tails[tail]);
            let zone_first = a.order.get(a.last_idx).is_some_and(|s| s.t == zone);
            let before = SECONDS_REUSED.with(|c| c.get());
            assert_eq!(a.find_match(&l, &ctx), b.find_match(&l, &ctx), "line {i}: {l:?}");
            if zone_first {
                used += SECONDS_REUSED.with(|c| c.get()) - before;
            }
        }
        assert!(used > 1000, "seconds-only reuse with the zone template answered {used} times");
    }

    /// The memo must never change a result: two scanners, one without it.
    #[test]
    fn memo_changes_nothing() {
        let det = Arc::new(DateDetector::fail2ban_default_for_year(2026));
        let berlin = TimeZone::get("Europe/Berlin").unwrap_or(TimeZone::UTC);
        let bases = [
            "Jan 23 21:59:59 host sshd[1]: x",
            "Jan 23 21:59:59 2005 host",
            "Jan 23 21:59:59.123 host",
            "Jan 23 21:59:59",
            "Jan 23 21:59:5",
            "2005-01-23 21:59:59 host",
            "2005-01-23 21:59:59 +0100 x",
            "2005-01-23 21:59:59+01",
            "2005-01-23 21:59:59",
            "1.2.3.4 - - [23/Jan/2005:21:59:59 +0100] x",
            "1.2.3.44 - - [23/Jan/2005:21:59:59 +0100] x",
            "[23/Jan/2005:21:59:59] x",
            "1138457732 x",
            "1138457732.123 x",
            "Feb 30 21:59:59 x",
            "Sun Jan 23 21:59:59 x",
        ];
        let mut lines = Vec::new();
        for (k, b) in bases.iter().enumerate() {
            for rep in 0..4 {
                lines.push(b.to_string());
                if rep == 2 {
                    lines.push(format!("{b}9"));
                    lines.push(b.replacen('2', "3", 1));
                }
            }
            lines.push(bases[(k * 7) % bases.len()].to_string());
        }
        let mut a = det.scanner();
        let mut b = det.scanner();
        b.memo_on = false;
        for round in 0..3 {
            for (i, l) in lines.iter().enumerate() {
                let ctx = TimeContext {
                    now: Timestamp::from_secs(1_124_013_600 + (i as i64 / 5) * 86_400 * 30),
                    tz: if (i / 7 + round) % 2 == 0 { TimeContext::fail2ban_test().tz } else { berlin.clone() },
                };
                assert_eq!(a.find_match(l, &ctx), b.find_match(l, &ctx), "line {i}: {l:?}");
            }
        }
        assert!(a.memo_hits > 20, "memo used {} times", a.memo_hits);
        assert_eq!(b.memo_hits, 0);
    }

    /// Deferred regex compilation of the default templates: every one
    /// compiles, to the same groups and time conversion as eagerly.
    #[test]
    fn lazy_default_templates_equal_eager_ones() {
        for year in [2005, 2026, 2099] {
            let b = Build::for_year(year);
            let eager = default_all(&b);
            let lazy = default_all(&b.lazy());
            assert_eq!(eager.len(), lazy.len());
            for (e, l) in eager.iter().zip(&lazy) {
                assert_eq!((&e.name, &e.pattern, e.flags, e.weight), (&l.name, &l.pattern, l.flags, l.weight));
                assert_eq!(e.force(), l.force(), "{}", e.name);
            }
        }
    }

    /// The per-stream state `repeat` must leave exactly as the general path.
    fn state(s: &DateScanner) -> String {
        format!(
            "{:?} {:?} {:?} {:?} {} {} {}",
            s.order, s.ever_hit, s.last_pos, s.last_end, s.last_idx, s.first_unused, s.memo_hits
        )
    }

    /// `memo_prefix`'s word compare against the slice compare.
    #[test]
    fn memo_prefix_agrees() {
        let base = *b"Mar  2 00:00:07 bastion sshd[18287]: Failed none for invalid user debian from 1.2.3.4 port 5";
        let mut memo = [0u8; MEMO_BYTES];
        memo.copy_from_slice(&base[..MEMO_BYTES]);
        let mut seen = [0usize; 3];
        for len in [0, 1, 12, 15, 16, 17, 31, 32, 33, 40, 64, 80] {
            for change in [None, Some(0), Some(5), Some(12), Some(13), Some(14), Some(15), Some(16), Some(31), Some(32)]
            {
                for also in [None, Some(13), Some(14), Some(20)] {
                    let mut line = base[..len].to_vec();
                    for c in [change, also].into_iter().flatten() {
                        if let Some(b) = line.get_mut(c) {
                            *b ^= 0x01;
                        }
                    }
                    for upto in 0..=MEMO_BYTES {
                        let want = memo_prefix_general(&line, &memo, upto);
                        assert_eq!(memo_prefix(&line, &memo, upto), want, "len {len} {change:?} {also:?} upto {upto}");
                        seen[want as usize] += 1;
                    }
                }
            }
        }
        assert!(seen.iter().all(|&n| n > 100), "{seen:?}");
    }

    /// `set_last`'s ASCII shortcut against its general formula.
    #[test]
    fn set_last_shortcut_agrees() {
        let det = Arc::new(DateDetector::from_datepattern_for_year("{^LN-BEG}", 2026).unwrap());
        let (mut a, mut b) = (det.scanner(), det.scanner());
        let lines =
            ["", "M", "Mar  2 00:00:00 x", "Mar  2 00:00:00", "é Mar  2 00:00:00é", "Mar  2 00:00:0é", "ü", "aé"];
        for l in lines {
            for s0 in 0..=l.len() + 1 {
                for e0 in 0..=l.len() + 1 {
                    if !l.is_char_boundary(s0.min(l.len())) || !l.is_char_boundary(e0.min(l.len())) {
                        continue;
                    }
                    a.set_last(l, s0, e0);
                    b.set_last_general(l, s0, e0);
                    assert_eq!((a.last_pos, a.last_end), (b.last_pos, b.last_end), "{l:?} {s0} {e0}");
                }
            }
        }
    }

    /// `find_match` (with the `repeat` shortcut) against the general path
    /// alone: same results and the same template statistics after every line.
    #[test]
    fn repeat_shortcut_changes_nothing() {
        let berlin = TimeZone::get("Europe/Berlin").unwrap_or(TimeZone::UTC);
        let lines = [
            "Mar  2 00:00:00 bastion sshd[18262]: Accepted publickey for bob",
            "Mar  2 00:00:00 bastion sshd[18262]: pam_unix(sshd:session): session opened",
            "Mar  2 00:00:00",
            "Mar  2 00:00:00 ",
            "Mar  2 00:00:00.5 x",
            "Mar  2 00:00:00 2005 x",
            "Mar  2 00:00:00 bastion sshd[18262]: again",
            "Mar  2 00:00:04 bastion sshd[18287]: Invalid user debian from 36.108.238.51",
            "Mar  2 00:00:04 bastion sshd[18287]: Failed none for invalid user debian",
            "Mar  2 00:00:05 bastion sshd[18287]: Failed none for invalid user debian",
            "Mar  2 00:00:59 bastion sshd[18287]: Failed none for invalid user debian",
            "Mar  2 00:00:07 bastion sshd[18287]: Failed none for invalid user debian",
            "Mar  2 00:00:07 bastion sshd[18287]: Failed none for invalid user debian",
            "Mar  2 00:00:60 bastion sshd[18287]: Failed none for invalid user debian",
            "Mar  2 00:00:08 bastion sshd[18287]: Failed none for invalid user debian",
            "Mar  2 00:00:1 bastion sshd[18287]: Failed none for invalid user debian",
            "Mar  2 00:00:09 bastion sshd[18287]: Failed none for invalid user debian",
            "Mar  2 00:00:09",
            "Mar  2 00:00:10",
            "Mar  2 00:00:11 ",
            "Mar  2 00:00:12x",
            "Mar  2 00:00:13 bastion sshd[18287]: Failed none for invalid user debian",
            "Mar  2 00:00:04x",
            "Mar  2 00:00:04 bastion",
            "2005-01-23 21:59:59 host x",
            "2005-01-23 21:59:59 host y",
            "2005-01-23 21:59:59 host y",
            "Mar  2 00:00:04 bastion sshd[18287]: back",
            "Mar  2 00:00:04 bastion sshd[18287]: back",
            "[23/Jan/2005:21:59:59] x",
            "[23/Jan/2005:21:59:59] x",
            "no date here",
            "Feb 30 21:59:59 x",
            "Feb 30 21:59:59 y",
            "1138457732 x",
            "1138457732 y",
            "Mar  2 00:00:04 bastion sshd[18287]: back",
            "Sun Mar  2 00:00:04 x",
            "Sun Mar  2 00:00:04 y",
            "Mar  2 00:00:04 bastion sshd[18287]: end",
        ];
        for pattern in ["{^LN-BEG}", "{DEFAULT}", "^%b %d %H:%M:%S", "%b %d %H:%M:%S"] {
            let det = Arc::new(DateDetector::from_datepattern_for_year(pattern, 2026).unwrap());
            let mut a = det.scanner();
            let mut b = det.scanner();
            for round in 0..4 {
                for (i, l) in lines.iter().enumerate() {
                    let ctx = TimeContext {
                        now: Timestamp::from_secs(1_772_400_000 + (i as i64 / 9 + round) * 86_400 * 40),
                        tz: if (i / 5 + round as usize) % 3 == 0 { berlin.clone() } else { TimeZone::UTC },
                    };
                    let want = b.find_match_general(l, &ctx);
                    assert_eq!(a.find_match(l, &ctx), want, "{pattern}: line {i}: {l:?}");
                    assert_eq!(state(&a), state(&b), "{pattern}: line {i}: {l:?}");
                }
            }
            assert_eq!(b.repeats, 0);
            if pattern == "{^LN-BEG}" {
                assert!(a.repeats > 8, "shortcut used {} times", a.repeats);
            }
        }
    }
}
