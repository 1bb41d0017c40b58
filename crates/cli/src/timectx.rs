//! The time context of a replay: the zone of zone-less log times and the
//! "now" that completes year-less dates. Nothing below the CLI reads a clock.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use stadtwache_core::Timestamp;
use stadtwache_datetime::{TimeContext, TimeZone};

use crate::TimeArgs;

pub fn build(args: &TimeArgs, files: &[PathBuf]) -> Result<TimeContext> {
    let tz = match args.tz.as_deref() {
        None => TimeZone::system(),
        Some(name) => zone(name)?,
    };
    let now = match args.now.as_deref() {
        Some(text) => parse_now(text)?,
        None => newest_mtime(files).unwrap_or_else(wall_clock),
    };
    Ok(TimeContext { now, tz })
}

pub fn zone(name: &str) -> Result<TimeZone> {
    if name.eq_ignore_ascii_case("utc") || name.eq_ignore_ascii_case("z") {
        return Ok(TimeZone::UTC);
    }
    if let Ok(tz) = TimeZone::get(name) {
        return Ok(tz);
    }
    if let Ok(tz) = TimeZone::posix(name) {
        return Ok(tz);
    }
    bail!("C001: unknown time zone {name:?} (use an IANA name like Europe/Berlin, UTC, or a POSIX TZ string)")
}

fn parse_now(text: &str) -> Result<Timestamp> {
    if let Ok(secs) = text.parse::<f64>() {
        return Ok(Timestamp::from_secs_f64(secs));
    }
    let ts: jiff::Timestamp =
        text.parse().with_context(|| format!("C002: --now {text:?} is neither epoch seconds nor RFC 3339"))?;
    Ok(Timestamp(ts.as_microsecond()))
}

fn newest_mtime(files: &[PathBuf]) -> Option<Timestamp> {
    files
        .iter()
        .filter(|p| p.as_os_str() != "-")
        .filter_map(|p| std::fs::metadata(p).ok()?.modified().ok())
        .filter_map(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| Timestamp(d.as_micros() as i64))
        .max()
}

/// The CLI edge is the one place that reads the wall clock.
pub fn wall_clock() -> Timestamp {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Timestamp(d.as_micros() as i64)
}

/// RFC 3339 in UTC for output.
pub fn fmt_time(t: Timestamp) -> String {
    match jiff::Timestamp::from_microsecond(t.0) {
        Ok(ts) => ts.to_string(),
        Err(_) => format!("@{}", t.as_secs_f64()),
    }
}
