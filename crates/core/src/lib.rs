//! Types shared along Stadtwache's data path:
//! `acquire → match → detect → decide`.
//!
//! This crate holds only plain data: time stamps, diagnostics with a code,
//! file and line, and the events that flow from one stage to the next. It has
//! no I/O and reads no clock.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A point in time: microseconds since the Unix epoch (UTC).
///
/// Detection and decisions never read the wall clock; they are handed a
/// `Timestamp` (the log line's time in replay, real time in the daemon, fake
/// time in tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const MICROS_PER_SEC: i64 = 1_000_000;

    pub fn from_secs(secs: i64) -> Self {
        Timestamp(secs.saturating_mul(Self::MICROS_PER_SEC))
    }

    /// From fractional epoch seconds (as fail2ban keeps time), rounded to the microsecond.
    pub fn from_secs_f64(secs: f64) -> Self {
        Timestamp((secs * 1e6).round() as i64)
    }

    pub fn as_secs(self) -> i64 {
        self.0.div_euclid(Self::MICROS_PER_SEC)
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }

    pub fn saturating_add(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_add(d.0))
    }

    pub fn saturating_sub(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_sub(d.0))
    }

    /// `self - earlier` as a duration (negative when `earlier` is later).
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }
}

/// A signed span of time in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Duration(pub i64);

impl Duration {
    pub const ZERO: Duration = Duration(0);

    pub fn from_secs(secs: i64) -> Self {
        Duration(secs.saturating_mul(Timestamp::MICROS_PER_SEC))
    }

    pub fn from_secs_f64(secs: f64) -> Self {
        Duration((secs * 1e6).round() as i64)
    }

    pub fn as_secs(self) -> i64 {
        self.0.div_euclid(Timestamp::MICROS_PER_SEC)
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }

    /// Parse durations as users write them: `600`, `10m`, `1h30m`, `2d`, `1w`,
    /// and fail2ban's long forms (`10 minutes`, `1 hour`, `-1` for permanent is
    /// handled by callers).
    pub fn parse(text: &str) -> Result<Duration, DurationError> {
        parse_duration(text)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.as_secs();
        if s == 0 {
            return write!(f, "0s");
        }
        if s < 0 {
            write!(f, "-")?;
            s = -s;
        }
        for (unit, len) in [("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
            if s >= len {
                write!(f, "{}{}", s / len, unit)?;
                s %= len;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {text:?}: {why}")]
pub struct DurationError {
    pub text: String,
    pub why: &'static str,
}

fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let err = |why| DurationError { text: text.to_string(), why };
    let t = text.trim();
    if t.is_empty() {
        return Err(err("empty"));
    }
    // Plain (possibly fractional) number of seconds.
    if let Ok(v) = t.parse::<f64>() {
        if !v.is_finite() {
            return Err(err("not a finite number"));
        }
        return Ok(Duration::from_secs_f64(v));
    }
    let mut total: f64 = 0.0;
    let mut rest = t;
    let mut any = false;
    while !rest.is_empty() {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return Err(err("expected a number"));
        }
        let num: f64 = rest[..num_len].parse().map_err(|_| err("bad number"))?;
        rest = rest[num_len..].trim_start();
        let unit_len = rest.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let mult = match unit.to_ascii_lowercase().as_str() {
            "" | "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
            // Not in fail2ban; for the daemon's own short intervals.
            "ms" | "msec" | "msecs" => 0.001,
            "m" | "mi" | "min" | "mins" | "minute" | "minutes" => 60.0,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
            "d" | "day" | "days" => 86_400.0,
            "w" | "wk" | "week" | "weeks" => 604_800.0,
            "mo" | "mon" | "month" | "months" => 2_629_800.0, // 30.4375 days, as fail2ban
            "y" | "yr" | "year" | "years" => 31_557_600.0,    // 365.25 days, as fail2ban
            _ => return Err(err("unknown unit")),
        };
        total += num * mult;
        any = true;
    }
    if !any {
        return Err(err("no value"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// A problem in a rule, filter or config file, reported to the user with a
/// stable code (`F003`, `R010`, …), the file and line, and what is wrong.
///
/// Codes are documented in `docs/diagnostics.md`. Prefixes: `F` fail2ban
/// filter loading, `P` pattern translation/compilation, `D` date patterns,
/// `R` native rule packs, `C` configuration, `I` input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub code: &'static str,
    pub severity: Severity,
    pub file: Option<PathBuf>,
    /// 1-based line number, 0 when unknown.
    pub line: u32,
    pub message: String,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic { code, severity: Severity::Error, file: None, line: 0, message: message.into() }
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic { code, severity: Severity::Warning, file: None, line: 0, message: message.into() }
    }

    pub fn at(mut self, file: impl Into<PathBuf>, line: u32) -> Self {
        self.file = Some(file.into());
        self.line = line;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{sev}[{}]", self.code)?;
        match (&self.file, self.line) {
            (Some(p), 0) => write!(f, " {}:", p.display())?,
            (Some(p), l) => write!(f, " {}:{l}:", p.display())?,
            (None, _) => write!(f, ":")?,
        }
        write!(f, " {}", self.message)
    }
}

/// Where a pattern or setting came from, for diagnostics and explanations.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SourceRef {
    pub file: Option<PathBuf>,
    pub line: u32,
}

/// A string from a rule source, with where it was written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Spanned {
    pub text: String,
    pub at: SourceRef,
}

impl Spanned {
    pub fn new(text: impl Into<String>) -> Self {
        Spanned { text: text.into(), at: SourceRef::default() }
    }
}

/// The key a window counts per: an address (the default) or any captured value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Key {
    Ip(IpAddr),
    Text(Arc<str>),
}

/// One write per address (the derived impl writes two discriminants and the
/// bits: three writes, two multiplies in a keyed hasher): an IPv4 address as
/// one `u64` with a tag bit above its 32 bits, an IPv6 address as its `u128`
/// and a tag byte, text as `str` hashes. Equal keys write the same; no two
/// addresses write the same.
impl std::hash::Hash for Key {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            Key::Ip(IpAddr::V4(a)) => state.write_u64((1 << 32) | u64::from(a.to_bits())),
            Key::Ip(IpAddr::V6(a)) => {
                state.write_u128(a.to_bits());
                state.write_u8(6);
            }
            Key::Text(t) => t.hash(state),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Ip(ip) => write!(f, "{ip}"),
            Key::Text(t) => f.write_str(t),
        }
    }
}

/// Index of a rule inside one compiled rule set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RuleId(pub u32);

/// One observation handed from `match` to `detect`: a rule fired on a line
/// (or a multi-line group) at a time, for a key.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub rule: RuleId,
    pub key: Key,
    pub time: Timestamp,
    /// How many failures this observation counts for. fail2ban's filter adds
    /// every failure with count 1, also a multi-line one; higher weights come
    /// from manual attempts and the bantime.increment observer.
    pub weight: u32,
    /// For distinct-count windows: the value whose distinct count is tracked
    /// (user name, destination port, …).
    pub distinct: Option<Arc<str>>,
    /// Sequence number of the input line (for evidence and explanations).
    pub line_no: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_users_write_them() {
        assert_eq!(Duration::parse("600").unwrap(), Duration::from_secs(600));
        assert_eq!(Duration::parse("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(Duration::parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(Duration::parse("1 hour").unwrap(), Duration::from_secs(3600));
        assert_eq!(Duration::parse("2d").unwrap(), Duration::from_secs(172_800));
        assert_eq!(Duration::parse("1.5").unwrap(), Duration(1_500_000));
        assert!(Duration::parse("10 parsecs").is_err());
        assert!(Duration::parse("").is_err());
        assert_eq!(Duration::from_secs(5400).to_string(), "1h30m");
    }

    #[test]
    fn diagnostics_render_code_file_and_line() {
        let d = Diagnostic::error("F003", "unknown tag <HOSTX> in failregex").at("sshd.conf", 12);
        assert_eq!(d.to_string(), "error[F003] sshd.conf:12: unknown tag <HOSTX> in failregex");
    }

    #[test]
    fn timestamps_round_trip_fractional_seconds() {
        let t = Timestamp::from_secs_f64(1124013600.25);
        assert_eq!(t.as_secs(), 1124013600);
        assert_eq!(t.as_secs_f64(), 1124013600.25);
        assert_eq!(Timestamp::from_secs(10).since(Timestamp::from_secs(4)), Duration::from_secs(6));
    }

    #[test]
    fn key_hash_is_one_write_per_address_and_tells_kinds_apart() {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let h = |k: &Key| {
            let mut s = DefaultHasher::new();
            k.hash(&mut s);
            s.finish()
        };
        let ip = |s: &str| Key::Ip(s.parse().unwrap());
        // Equal keys hash the same (Hash agrees with Eq).
        assert_eq!(h(&ip("192.0.2.1")), h(&ip("192.0.2.1")));
        assert_eq!(h(&ip("2001:db8::1")), h(&ip("2001:db8:0::1")));
        assert_eq!(h(&Key::Text(Arc::from("root"))), h(&Key::Text(Arc::from("root"))));
        // The same bits in another kind write differently.
        let distinct = [ip("0.0.0.1"), ip("::1"), ip("::1:0:0:1"), ip("::ffff:0.0.0.1"), Key::Text(Arc::from("\u{1}"))];
        for (i, a) in distinct.iter().enumerate() {
            for b in &distinct[i + 1..] {
                assert_ne!(h(a), h(b), "{a:?} vs {b:?}");
            }
        }
    }
}
