//! CrowdSec Local API wire shapes (what bouncers parse) and the text formats
//! they use: Go duration strings and RFC 3339 times.
//!
//! Shapes follow CrowdSec's swagger (`models.Decision`) and its controllers:
//! - `GET /v1/decisions` answers a JSON array of decisions, or `null` when
//!   there is none (Go marshals the empty result slice as `null`).
//! - `GET /v1/decisions/stream` answers `{"deleted": [...], "new": [...]}`,
//!   each `null` when empty (same reason).
//! - decision fields: `duration` (Go `time.Duration.String()` of until − now),
//!   `id`, `origin`, `scenario`, `scope` (`Ip` / `Range`), `type` (`ban`),
//!   `until` (RFC 3339, newer LAPIs), `value`.
//! - errors: `{"message": "..."}`; a missing or unknown `X-Api-Key` is `403
//!   {"message":"access forbidden"}`.

use std::fmt::Write as _;

use serde::Serialize;
use stadtwache_core::{Duration, Timestamp};

use crate::index::IndexedDecision;

/// One decision as CrowdSec's LAPI sends it to bouncers. Field order is
/// CrowdSec's (alphabetical, as its generated Go model).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LapiDecision {
    pub duration: String,
    pub id: i64,
    pub origin: String,
    pub scenario: String,
    pub scope: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    pub value: String,
}

/// `rule` if set, else `stadtwache/<origin>`.
pub(crate) fn scenario(rule: Option<&str>, origin: &str) -> String {
    match rule {
        Some(r) if !r.is_empty() => r.to_string(),
        _ => format!("stadtwache/{origin}"),
    }
}

impl LapiDecision {
    /// From an index entry; `until - now` as duration (`permanent` for decisions without `until`).
    pub fn from_indexed(d: &IndexedDecision, now: Timestamp, permanent: Duration) -> Self {
        let (duration, until) = match d.until {
            Some(u) => (u.since(now), Some(rfc3339(u))),
            None => (permanent, Some(rfc3339(now.saturating_add(permanent)))),
        };
        LapiDecision {
            duration: go_duration(duration),
            id: d.id.0,
            origin: d.origin.as_str().to_string(),
            scenario: scenario(d.rule.as_deref(), d.origin.as_str()),
            scope: if d.is_range() { "Range" } else { "Ip" },
            kind: "ban",
            until,
            value: d.value(),
        }
    }
}

/// A duration as Go's `time.Duration.String()` prints it: `3h59m58.123s`,
/// `1m0s`, `1.5s`, `250ms`, `12µs`, `0s`, `-2m3s`.
pub fn go_duration(d: Duration) -> String {
    let mut out = String::new();
    if d.0 == 0 {
        return "0s".into();
    }
    if d.0 < 0 {
        out.push('-');
    }
    let ns = u128::from(d.0.unsigned_abs()) * 1000;
    if ns < 1_000_000_000 {
        let (unit, suffix) = if ns < 1_000 {
            (1, "ns")
        } else if ns < 1_000_000 {
            (1_000, "µs")
        } else {
            (1_000_000, "ms")
        };
        push_frac(&mut out, ns, unit);
        out.push_str(suffix);
        return out;
    }
    let minutes = ns / 60_000_000_000;
    let secs_ns = ns % 60_000_000_000;
    let (h, m) = (minutes / 60, minutes % 60);
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if h > 0 || m > 0 {
        let _ = write!(out, "{m}m");
    }
    push_frac(&mut out, secs_ns, 1_000_000_000);
    out.push('s');
    out
}

fn push_frac(out: &mut String, v: u128, unit: u128) {
    let _ = write!(out, "{}", v / unit);
    let frac = v % unit;
    if frac > 0 {
        let width = unit.ilog10() as usize;
        let digits = format!("{frac:0width$}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
}

/// `2026-11-27T10:15:00Z` (UTC, whole seconds, as Go's `time.RFC3339`).
pub fn rfc3339(t: Timestamp) -> String {
    let secs = t.as_secs();
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", sod / 3600, sod / 60 % 60, sod % 60)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(s: f64) -> Duration {
        Duration((s * 1e6).round() as i64)
    }

    #[test]
    fn go_duration_matches_go_formatting() {
        assert_eq!(go_duration(Duration(0)), "0s");
        assert_eq!(go_duration(us(3.0 * 3600.0 + 59.0 * 60.0 + 58.123)), "3h59m58.123s");
        assert_eq!(go_duration(us(3600.0)), "1h0m0s");
        assert_eq!(go_duration(us(61.0)), "1m1s");
        assert_eq!(go_duration(us(1.5)), "1.5s");
        assert_eq!(go_duration(us(59.000001)), "59.000001s");
        assert_eq!(go_duration(us(0.25)), "250ms");
        assert_eq!(go_duration(Duration(1500)), "1.5ms");
        assert_eq!(go_duration(Duration(12)), "12µs");
        assert_eq!(go_duration(us(-123.0)), "-2m3s");
        assert_eq!(go_duration(us(8760.0 * 3600.0)), "8760h0m0s");
        assert!(go_duration(Duration(i64::MIN)).starts_with('-'));
    }

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(Timestamp(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(Timestamp::from_secs(1_795_774_500)), "2026-11-27T10:15:00Z");
        assert_eq!(rfc3339(Timestamp::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(Timestamp::from_secs(-1)), "1969-12-31T23:59:59Z");
    }
}
