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

use std::sync::Arc;

use stadtwache_core::Timestamp;

pub use jiff::tz::TimeZone;

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
}

/// Compiled date templates (immutable; share it behind an `Arc`).
#[derive(Debug)]
pub struct DateDetector {
    _private: (),
}

impl DateDetector {
    pub fn fail2ban_default() -> DateDetector {
        todo!("datetime: default templates")
    }

    pub fn from_datepattern(pattern: &str) -> Result<DateDetector, DateError> {
        let _ = pattern;
        todo!("datetime: custom datepattern")
    }

    pub fn scanner(self: &Arc<Self>) -> DateScanner {
        DateScanner { detector: Arc::clone(self) }
    }
}

/// Per-stream date matching state.
#[derive(Debug)]
pub struct DateScanner {
    detector: Arc<DateDetector>,
}

impl DateScanner {
    pub fn find(&mut self, line: &str, ctx: &TimeContext) -> Option<DateHit> {
        let _ = (line, ctx, &self.detector);
        todo!("datetime: find")
    }
}
