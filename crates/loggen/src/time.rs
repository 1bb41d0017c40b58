//! Civil-time helpers (UTC only): parsing `--start`, formatting syslog and
//! nginx (common log format) timestamps.

use anyhow::{Context, Result, bail};

pub const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`]: `(year, month 1..=12, day 1..=31)`.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SS` or `YYYY-MM-DDTHH:MM:SSZ`
/// (UTC; a space may replace the `T`) into epoch seconds.
pub fn parse_start(s: &str) -> Result<i64> {
    let s = s.trim();
    let s = s.strip_suffix('Z').unwrap_or(s);
    let s = s.strip_suffix("+00:00").unwrap_or(s);
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut dp = date.split('-');
    let (Some(y), Some(m), Some(d), None) = (dp.next(), dp.next(), dp.next(), dp.next()) else {
        bail!("bad date {date:?}, expected YYYY-MM-DD");
    };
    let y: i64 = y.parse().context("year")?;
    let m: u32 = m.parse().context("month")?;
    let d: u32 = d.parse().context("day")?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        bail!("date out of range: {date}");
    }
    let mut secs = 0i64;
    if let Some(t) = time {
        let mut tp = t.split(':');
        let h: i64 = tp.next().unwrap_or("0").parse().context("hour")?;
        let mi: i64 = tp.next().unwrap_or("0").parse().context("minute")?;
        let se: i64 = tp.next().unwrap_or("0").parse().context("second")?;
        if h > 23 || mi > 59 || se > 59 || tp.next().is_some() {
            bail!("bad time {t:?}, expected HH:MM:SS (UTC)");
        }
        secs = h * 3600 + mi * 60 + se;
    }
    Ok(days_from_civil(y, m, d) * 86_400 + secs)
}

/// Broken-down UTC time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub min: u32,
    pub sec: u32,
}

pub fn civil(t: i64) -> Civil {
    let days = t.div_euclid(86_400);
    let rem = t.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    Civil { year, month, day, hour: rem / 3600, min: rem / 60 % 60, sec: rem % 60 }
}

#[inline]
fn two(buf: &mut [u8], v: u32) {
    buf[0] = b'0' + (v / 10) as u8;
    buf[1] = b'0' + (v % 10) as u8;
}

/// Classic BSD syslog timestamp `Mmm dd HH:MM:SS` (day space-padded, as
/// rsyslog's traditional format and sshd's auth.log print it), 15 bytes.
pub fn fmt_syslog(t: i64) -> [u8; 15] {
    let c = civil(t);
    let mut b = *b"Jan  1 00:00:00";
    b[..3].copy_from_slice(MONTHS[(c.month - 1) as usize].as_bytes());
    if c.day >= 10 {
        b[4] = b'0' + (c.day / 10) as u8;
    }
    b[5] = b'0' + (c.day % 10) as u8;
    two(&mut b[7..9], c.hour);
    two(&mut b[10..12], c.min);
    two(&mut b[13..15], c.sec);
    b
}

/// nginx `$time_local` in UTC: `02/Mar/2026:00:00:01 +0000`.
pub fn fmt_clf(t: i64) -> String {
    let c = civil(t);
    format!(
        "{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000",
        c.day,
        MONTHS[(c.month - 1) as usize],
        c.year,
        c.hour,
        c.min,
        c.sec
    )
}

/// Cache of the formatted syslog timestamp of the last second written.
#[derive(Debug)]
pub struct SyslogClock {
    last: i64,
    buf: [u8; 15],
}

impl Default for SyslogClock {
    fn default() -> Self {
        SyslogClock { last: i64::MIN, buf: [b' '; 15] }
    }
}

impl SyslogClock {
    #[inline]
    pub fn get(&mut self, t: i64) -> &[u8; 15] {
        if t != self.last {
            self.buf = fmt_syslog(t);
            self.last = t;
        }
        &self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_days() {
        for z in -800_000..800_000i64 {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }

    #[test]
    fn start_parsing_and_formats() {
        let t = parse_start("2026-03-02T00:00:00Z").unwrap();
        assert_eq!(t, 1_772_409_600);
        assert_eq!(parse_start("2026-03-02").unwrap(), t);
        assert_eq!(&fmt_syslog(t + 3661), b"Mar  2 01:01:01");
        assert_eq!(&fmt_syslog(t + 10 * 86_400), b"Mar 12 00:00:00");
        assert_eq!(fmt_clf(t + 59), "02/Mar/2026:00:00:59 +0000");
        assert!(parse_start("2026-13-01").is_err());
        assert!(parse_start("2026-03-02T25:00:00Z").is_err());
    }
}
