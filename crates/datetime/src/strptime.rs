//! Turning matched date fields into an instant, the way fail2ban's
//! `reGroupDictStrptime` does (year/day completion from "now", zone offsets,
//! local time resolution like glibc's `mktime` with `tm_isdst = -1`).

use jiff::tz::{AmbiguousOffset, TimeZone};
use stadtwache_core::Timestamp;

use crate::DateError;

/// Fields of one date, as fail2ban collects them from the named groups.
///
/// `bad` marks a field conversion that raises in fail2ban (unknown zone
/// name, failed `int()`, ...): such a date has no time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fields {
    pub year: Option<i32>,
    pub month: Option<i32>,
    pub day: Option<i32>,
    pub hour: i32,
    pub minute: i32,
    pub second: i32,
    /// Minutes east of UTC, when the line names a zone.
    pub tzoffset: Option<i32>,
    pub weekday: Option<i32>,
    pub julian: Option<i32>,
    /// (week number, week starts on Monday)
    pub week: Option<(i32, bool)>,
    pub bad: bool,
}

const A_MONTH: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const F_MONTH: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const A_WEEKDAY: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const F_WEEKDAY: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

/// Python's `int()` for the strings our groups capture: surrounding
/// whitespace, an optional sign, ASCII digits with single underscores
/// between them. `None` where Python would raise (or the value is absurd).
pub(crate) fn py_int(s: &str) -> Option<i64> {
    let s = s.trim_matches(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c));
    let (neg, digits) = match s.as_bytes().first()? {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let b = digits.as_bytes();
    if b.is_empty() || b[0] == b'_' || b[b.len() - 1] == b'_' {
        return None;
    }
    let mut v: i64 = 0;
    let mut prev_us = false;
    for &c in b {
        if c == b'_' {
            if prev_us {
                return None;
            }
            prev_us = true;
            continue;
        }
        prev_us = false;
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(i64::from(c - b'0'))?;
    }
    Some(if neg { -v } else { v })
}

fn n32(v: i64) -> Option<i32> {
    i32::try_from(v).ok()
}

fn index_lower(list: &[&str], val: &str) -> Option<i64> {
    let low = val.to_lowercase();
    list.iter().position(|m| *m == low).map(|i| i as i64)
}

/// The key of a named group fail2ban's strptime knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Key {
    LowerY,
    UpperY,
    Month,
    MonthName,
    MonthAbbr,
    Day,
    Hour24,
    Hour12,
    Minute,
    Second,
    Fraction,
    WeekdayName,
    WeekdayAbbr,
    WeekdayNum,
    Julian,
    WeekU,
    WeekW,
    Zone,
    AmPm,
}

impl Key {
    pub fn from_group_name(name: &str) -> Option<Key> {
        Some(match name {
            "y" => Key::LowerY,
            "Y" => Key::UpperY,
            "m" => Key::Month,
            "B" => Key::MonthName,
            "b" => Key::MonthAbbr,
            "d" => Key::Day,
            "H" => Key::Hour24,
            "I" => Key::Hour12,
            "M" => Key::Minute,
            "S" => Key::Second,
            "f" => Key::Fraction,
            "A" => Key::WeekdayName,
            "a" => Key::WeekdayAbbr,
            "w" => Key::WeekdayNum,
            "j" => Key::Julian,
            "U" => Key::WeekU,
            "W" => Key::WeekW,
            "z" | "Z" => Key::Zone,
            "p" => Key::AmPm,
            _ => return None,
        })
    }
}

/// Apply matched groups in pattern order (`vals` yields each known key with
/// its captured text, `None` when the group did not take part). `ampm` is
/// what `found_dict.get('p', '')` gives: `Some(Some(text))`, `Some(None)` for
/// a `p` group that did not match, `None` when the pattern has no `p` group.
pub(crate) fn fields_from_groups<'a>(
    vals: impl Iterator<Item = (Key, Option<&'a str>)>,
    ampm: Option<Option<&'a str>>,
) -> Fields {
    let mut f = Fields::default();
    for (key, val) in vals {
        let Some(val) = val else { continue };
        let r: Option<()> = (|| {
            match key {
                Key::LowerY => {
                    let mut y = py_int(val)?;
                    if y <= 2000 {
                        y += 2000;
                    }
                    f.year = Some(n32(y)?);
                }
                Key::UpperY => f.year = Some(n32(py_int(val)?)?),
                Key::Month => f.month = Some(n32(py_int(val)?)?),
                Key::MonthName => f.month = Some(n32(index_lower(&F_MONTH, val)? + 1)?),
                Key::MonthAbbr => f.month = Some(n32(index_lower(&A_MONTH, val)? + 1)?),
                Key::Day => f.day = Some(n32(py_int(val)?)?),
                Key::Hour24 => f.hour = n32(py_int(val)?)?,
                Key::Hour12 => {
                    let mut h = py_int(val)?;
                    let p = match ampm {
                        None => String::new(),
                        Some(None) => return None, // None.lower() raises
                        Some(Some(p)) => p.to_lowercase(),
                    };
                    if p.is_empty() || p == "am" {
                        if h == 12 {
                            h = 0;
                        }
                    } else if p == "pm" && h != 12 {
                        h += 12;
                    }
                    f.hour = n32(h)?;
                }
                Key::Minute => f.minute = n32(py_int(val)?)?,
                Key::Second => f.second = n32(py_int(val)?)?,
                Key::Fraction => {} // fail2ban drops sub-seconds (msec=False)
                Key::WeekdayName => f.weekday = Some(n32(index_lower(&F_WEEKDAY, val)?)?),
                Key::WeekdayAbbr => f.weekday = Some(n32(index_lower(&A_WEEKDAY, val)?)?),
                Key::WeekdayNum => {
                    let w = py_int(val)? - 1;
                    f.weekday = Some(n32(if w < 0 { 6 } else { w })?);
                }
                Key::Julian => f.julian = Some(n32(py_int(val)?)?),
                Key::WeekU => f.week = Some((n32(py_int(val)?)?, false)),
                Key::WeekW => f.week = Some((n32(py_int(val)?)?, true)),
                Key::Zone => {
                    f.tzoffset =
                        Some(if matches!(val, "Z" | "UTC" | "GMT") { 0 } else { n32(zone_offset_minutes(val)?)? });
                }
                Key::AmPm => {}
            }
            Some(())
        })();
        if r.is_none() {
            f.bad = true;
            return f;
        }
    }
    f
}

/// fail2ban's zone abbreviations (fixed offsets, minutes east of UTC).
fn abbr_offset(abbr: &str) -> Option<i64> {
    const TABLE: &[(i64, &[&str])] = &[
        (-12 * 60, &["Y"]),
        (-11 * 60, &["X", "NUT", "SST"]),
        (-10 * 60, &["W", "CKT", "HAST", "HST", "TAHT", "TKT"]),
        (-9 * 60, &["V", "AKST", "GAMT", "GIT", "HADT", "HNY"]),
        (-8 * 60, &["U", "AKDT", "CIST", "HAY", "HNP", "PST", "PT"]),
        (-7 * 60, &["T", "HAP", "HNR", "MST", "PDT"]),
        (-6 * 60, &["S", "CST", "EAST", "GALT", "HAR", "HNC", "MDT"]),
        (-5 * 60, &["R", "CDT", "COT", "EASST", "ECT", "EST", "ET", "HAC", "HNE", "PET"]),
        (-4 * 60, &["Q", "AST", "BOT", "CLT", "COST", "EDT", "FKT", "GYT", "HAE", "HNA", "PYT"]),
        (-3 * 60, &["P", "ADT", "ART", "BRT", "CLST", "FKST", "GFT", "HAA", "PMST", "PYST", "SRT", "UYT", "WGT"]),
        (-2 * 60, &["O", "BRST", "FNT", "PMDT", "UYST", "WGST"]),
        (-60, &["N", "AZOT", "CVT", "EGT"]),
        (0, &["Z", "EGST", "GMT", "UTC", "WET", "WT"]),
        (60, &["A", "CET", "DFT", "WAT", "WEDT", "WEST"]),
        (2 * 60, &["B", "CAT", "CEDT", "CEST", "EET", "SAST", "WAST"]),
        (3 * 60, &["C", "EAT", "EEDT", "EEST", "IDT", "MSK"]),
        (4 * 60, &["D", "AMT", "AZT", "GET", "GST", "KUYT", "MSD", "MUT", "RET", "SAMT", "SCT"]),
        (5 * 60, &["E", "AMST", "AQTT", "AZST", "HMT", "MAWT", "MVT", "PKT", "TFT", "TJT", "TMT", "UZT", "YEKT"]),
        (6 * 60, &["F", "ALMT", "BIOT", "BTT", "IOT", "KGT", "NOVT", "OMST", "YEKST"]),
        (7 * 60, &["G", "CXT", "DAVT", "HOVT", "ICT", "KRAT", "NOVST", "OMSST", "THA", "WIB"]),
        (
            8 * 60,
            &[
                "H", "ACT", "AWST", "BDT", "BNT", "CAST", "HKT", "IRKT", "KRAST", "MYT", "PHT", "SGT", "ULAT", "WITA",
                "WST",
            ],
        ),
        (9 * 60, &["I", "AWDT", "IRKST", "JST", "KST", "PWT", "TLT", "WDT", "WIT", "YAKT"]),
        (10 * 60, &["K", "AEST", "ChST", "PGT", "VLAT", "YAKST", "YAPT"]),
        (11 * 60, &["L", "AEDT", "LHDT", "MAGT", "NCT", "PONT", "SBT", "VLAST", "VUT"]),
        (12 * 60, &["M", "ANAST", "ANAT", "FJT", "GILT", "MAGST", "MHT", "NZST", "PETST", "PETT", "TVT", "WFT"]),
        (13 * 60, &["FJST", "NZDT"]),
        (690, &["NFT"]),
        (630, &["ACDT", "LHST"]),
        (570, &["ACST"]),
        (390, &["CCT", "MMT"]),
        (345, &["NPT"]),
        (330, &["SLT"]),
        (270, &["AFT", "IRDT"]),
        (210, &["IRST"]),
        (-150, &["HAT", "NDT"]),
        (-210, &["HNT", "NST", "NT"]),
        (-270, &["HLV", "VET"]),
        (-570, &["MART", "MIT"]),
    ];
    if abbr.is_empty() {
        return Some(0);
    }
    TABLE.iter().find(|(_, names)| names.contains(&abbr)).map(|(o, _)| *o)
}

/// fail2ban's `validateTimeZone`/`zone2offset` for a string: an optional
/// abbreviation (`[A-Z]` or `[A-Z]{3,5}`), an optional `[+-]hh[[:]mm]`
/// offset, nothing else. Minutes east of UTC.
pub(crate) fn zone_offset_minutes(tz: &str) -> Option<i64> {
    let b = tz.as_bytes();
    let upper_run = b.iter().take_while(|c| c.is_ascii_uppercase()).count();
    // FIXED_OFFSET_TZ_RE = (ABBR)?(OFFSET)?$ anchored at the start: try the
    // abbreviation lengths the regex would try, longest first, then none.
    let mut cands: [usize; 3] = [usize::MAX; 3];
    let mut n = 0;
    if upper_run >= 1 {
        let long = upper_run.min(5);
        if long >= 3 {
            cands[n] = long;
            n += 1;
        }
        cands[n] = 1;
        n += 1;
    }
    cands[n] = 0;
    n += 1;
    for &alen in &cands[..n] {
        let rest = &tz[alen..];
        let abbr = &tz[..alen];
        if rest.is_empty() {
            return abbr_offset(abbr);
        }
        if let Some(off) = parse_fixed_offset(rest) {
            return Some(abbr_offset(abbr)? + off);
        }
    }
    None
}

/// `[+-][01]\d(?::?\d{2})?` covering the whole string; minutes.
fn parse_fixed_offset(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 3 || !matches!(b[0], b'+' | b'-') || !matches!(b[1], b'0' | b'1') {
        return None;
    }
    if !b[2].is_ascii_digit() {
        return None;
    }
    let sign = if b[0] == b'-' { -1 } else { 1 };
    let hh = i64::from((b[1] - b'0') * 10 + (b[2] - b'0'));
    let mm = match &b[3..] {
        [] => return Some(sign * hh * 60),
        [m1, m2] | [b':', m1, m2] if m1.is_ascii_digit() && m2.is_ascii_digit() => {
            i64::from((m1 - b'0') * 10 + (m2 - b'0'))
        }
        _ => return None,
    };
    Some(sign * (hh * 60 + mm))
}

/// fail2ban's `logtimezone` option (`UTC`, `UTC+0200`, `UTC-05`, `GMT+01:00`,
/// `CET`, `+0100`, ...): a fixed-offset zone (fail2ban has no DST for these).
pub fn parse_logtimezone(s: &str) -> Result<TimeZone, DateError> {
    let err = |why: &str| DateError::InvalidTimeZone { zone: s.to_string(), why: why.to_string() };
    let minutes = zone_offset_minutes(s).ok_or_else(|| err("unknown or unsupported time zone"))?;
    let secs = i32::try_from(minutes * 60).map_err(|_| err("offset out of range"))?;
    let off = jiff::tz::Offset::from_seconds(secs).map_err(|e| err(&e.to_string()))?;
    Ok(TimeZone::fixed(off))
}

// ---------------------------------------------------------------------------
// Civil calendar arithmetic (proleptic Gregorian, days since 1970-01-01).

pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub(crate) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

pub(crate) fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Seconds of 0001-01-01T00:00:00 and of 9999-12-31T23:59:59 (Python's
/// `datetime` range) relative to the epoch.
const MIN_NAIVE: i64 = -62_135_596_800;
const MAX_NAIVE: i64 = 253_402_300_799;

fn in_range(naive: i64) -> bool {
    (MIN_NAIVE..=MAX_NAIVE).contains(&naive)
}

// ---------------------------------------------------------------------------
// Zone caches.

/// Per-scanner cache of zone computations: "now" as a local civil time and
/// local-hour -> UTC offset for `mktime`.
#[derive(Debug, Default, Clone)]
pub(crate) struct ZoneCache {
    /// (ctx.now micros, local naive micros, local year, month, day)
    now: Option<(i64, i64, i64, i64, i64)>,
    /// (local hour number, offset seconds) for hours without a transition.
    hour: Option<(i64, i64)>,
    /// The zone the cache was filled for.
    tz: Option<TimeZone>,
    /// Address and length of `tz`'s IANA name text as the last asked zone
    /// equal to it gave it (the text lives in `tz`'s own shared data or is
    /// static, so it stays put while `tz` is held): a zone asked about whose
    /// name is that very text has `tz`'s name.
    name_at: Option<(usize, usize)>,
    /// Bumped whenever the zone changes.
    pub generation: u64,
    /// Offset (seconds) of the last `mktime` result: glibc's
    /// `localtime_offset`, which decides folds.
    pub last_off: i64,
}

impl ZoneCache {
    /// Whether the cache was filled for `tz`. Comparing two TZif zones
    /// costs ~150 ns; their IANA names do (two tz databases with one name
    /// are not told apart).
    /// The cached zone's name is not looked up again in the common case
    /// (the same zone line after line): the address of the asked zone's
    /// name text is kept ([`ZoneCache::name_at`]), which costs one
    /// `iana_name` call and a compare. When a zone with another text but the
    /// same name is asked about, it becomes the cached zone (equal for this
    /// cache: only the name is compared), so its text stays alive.
    #[inline(always)]
    pub fn same_tz(&mut self, tz: &TimeZone) -> bool {
        let name = tz.iana_name();
        if let (Some(at), Some(b)) = (self.name_at, name)
            && at == (b.as_ptr() as usize, b.len())
        {
            return true;
        }
        let same = self.same_tz_by(tz, |a, b| std::ptr::eq(a, b) || a == b);
        if same && let Some(b) = name {
            self.tz = Some(tz.clone());
            self.name_at = Some((b.as_ptr() as usize, b.len()));
        }
        same
    }

    /// [`ZoneCache::same_tz`] with `eq` for the names.
    #[inline(always)]
    fn same_tz_by(&self, tz: &TimeZone, eq: impl Fn(&str, &str) -> bool) -> bool {
        match &self.tz {
            None => false,
            // (a clone of the cached zone has the same name text: no compare)
            Some(c) => match (c.iana_name(), tz.iana_name()) {
                (Some(a), Some(b)) => eq(a, b),
                (None, None) => c == tz,
                _ => false,
            },
        }
    }

    fn check_tz(&mut self, tz: &TimeZone) {
        if !self.same_tz(tz) {
            self.generation += 1;
            self.now = None;
            self.hour = None;
            self.tz = Some(tz.clone());
            self.name_at = None;
        }
    }

    /// `MyTime.now()`: local naive time in micros, and its y/m/d.
    fn now_local(&mut self, now: Timestamp, tz: &TimeZone) -> Option<(i64, i64, i64, i64)> {
        if let Some((n, l, y, m, d)) = self.now
            && n == now.0
        {
            return Some((l, y, m, d));
        }
        let ts = jiff::Timestamp::from_microsecond(now.0).ok()?;
        let off = i64::from(tz.to_offset(ts).seconds());
        let local = now.0.checked_add(off * 1_000_000)?;
        let (y, m, d) = civil_from_days(local.div_euclid(86_400_000_000));
        self.now = Some((now.0, local, y, m, d));
        Some((local, y, m, d))
    }

    /// Whether the local hour of `naive` is cached as one without a
    /// transition, at offset `off` (then `mktime` of any time in that hour
    /// is `naive - off` whatever the previous offset).
    fn hour_clean(&self, naive: i64, off: i64) -> bool {
        self.hour == Some((naive.div_euclid(3600), off))
    }

    /// glibc `mktime` with `tm_isdst = -1`: a civil time in a gap is read
    /// with the offset before the gap. In a fold glibc keeps the offset its
    /// search starts from, which is the offset of its previous result (a
    /// process-wide static, 0 at start): of the two instants it picks the
    /// one whose offset the zone has at `naive - last offset`. Here that
    /// state is per scanner ([`ZoneCache::last_off`]).
    fn mktime(&mut self, naive: i64, tz: &TimeZone) -> Option<i64> {
        let hour = naive.div_euclid(3600);
        if let Some((h, off)) = self.hour
            && h == hour
        {
            self.last_off = off;
            return Some(naive - off);
        }
        let last_off = self.last_off;
        let off_at = |secs: i64| -> Option<(i64, bool)> {
            let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
            let tod = secs.rem_euclid(86_400);
            let dt = jiff::civil::DateTime::new(
                i16::try_from(y).ok()?,
                mo as i8,
                d as i8,
                (tod / 3600) as i8,
                (tod / 60 % 60) as i8,
                (tod % 60) as i8,
                0,
            )
            .ok()?;
            Some(match tz.to_ambiguous_timestamp(dt).offset() {
                AmbiguousOffset::Unambiguous { offset } => (i64::from(offset.seconds()), true),
                AmbiguousOffset::Gap { before, .. } => (i64::from(before.seconds()), false),
                AmbiguousOffset::Fold { before, after } => {
                    let (b, a) = (i64::from(before.seconds()), i64::from(after.seconds()));
                    let probe = jiff::Timestamp::from_second(secs - last_off).ok();
                    let guess = probe.map(|t| i64::from(tz.to_offset(t).seconds()));
                    (if guess == Some(b) { b } else { a }, false)
                }
            })
        };
        let (off, clean) = off_at(naive)?;
        if clean {
            let start = hour * 3600;
            if let (Some((o1, true)), Some((o2, true))) = (off_at(start), off_at(start + 3599))
                && o1 == off
                && o2 == off
            {
                self.hour = Some((hour, off));
            }
        }
        self.last_off = off;
        Some(naive - off)
    }
}

fn julian_from_week(year: i64, week: i64, weekday: i64, starts_monday: bool) -> i64 {
    // weekday of Jan 1st, Monday = 0
    let mut first = (days_from_civil(year, 1, 1) + 3).rem_euclid(7);
    let mut dow = weekday;
    if !starts_monday {
        first = (first + 1) % 7;
        dow = (dow + 1) % 7;
    }
    let week0 = (7 - first) % 7;
    if week == 0 { 1 + dow - first } else { 1 + week0 + 7 * (week - 1) + dow }
}

/// The rest of `reGroupDictStrptime`: complete year/day from "now", apply the
/// zone, roll back dates "in the future". Whole seconds since the epoch, or
/// `None` where fail2ban raises (invalid date, overflow, ...).
pub(crate) fn to_epoch(f: &Fields, now: Timestamp, tz: &TimeZone, zc: &mut ZoneCache) -> Option<i64> {
    to_epoch_minute(f, now, tz, zc).0
}

/// [`to_epoch`], and whether its result moves with the seconds alone over
/// the whole minute: `Some(off)` says that for the same fields, `now` and
/// zone but any `second` in `0..60`, `to_epoch` gives this result plus the
/// difference in seconds and leaves `zc.last_off == off` (no zone offset in
/// the text, no "today" completion, the same side of the year roll-back for
/// every second of the minute, and a local hour without a transition, whose
/// `mktime` does not depend on glibc's previous offset).
pub(crate) fn to_epoch_minute(
    f: &Fields,
    now: Timestamp,
    tz: &TimeZone,
    zc: &mut ZoneCache,
) -> (Option<i64>, Option<i64>) {
    let mut linear = true;
    let r = to_epoch_inner(f, now, tz, zc, &mut linear);
    let off = zc.last_off;
    match r {
        Some(t) if linear && f.tzoffset.is_none() && zc.hour_clean(t + off, off) => (r, Some(off)),
        _ => (r, None),
    }
}

fn to_epoch_inner(f: &Fields, now: Timestamp, tz: &TimeZone, zc: &mut ZoneCache, linear: &mut bool) -> Option<i64> {
    if f.bad {
        return None;
    }
    zc.check_tz(tz);
    let mut now_cache: Option<(i64, i64, i64, i64)> = None;
    let mut get_now = |zc: &mut ZoneCache| -> Option<(i64, i64, i64, i64)> {
        if now_cache.is_none() {
            now_cache = Some(zc.now_local(now, tz)?);
        }
        now_cache
    };
    let mut year = f.year.map(i64::from);
    let mut month = f.month.map(i64::from);
    let mut day = f.day.map(i64::from);
    let (hour, minute, second) = (i64::from(f.hour), i64::from(f.minute), i64::from(f.second));
    let assume_year = year.is_none();
    if assume_year {
        year = Some(get_now(zc)?.1);
    }
    let mut year = year?;
    if month.is_none() || day.is_none() {
        let mut julian = f.julian.map(i64::from);
        if julian.is_none()
            && let (Some((week, monday)), Some(wd)) = (f.week, f.weekday)
        {
            if !(1..=9999).contains(&year) {
                return None;
            }
            julian = Some(julian_from_week(year, i64::from(week), i64::from(wd), monday));
        }
        if let Some(j) = julian {
            if !(1..=9999).contains(&year) || !(-1_000_000..=1_000_000).contains(&j) {
                return None;
            }
            let days = days_from_civil(year, 1, 1) + j - 1;
            let (y, m, d) = civil_from_days(days);
            if !(1..=9999).contains(&y) {
                return None;
            }
            year = y;
            month = Some(m);
            day = Some(d);
        }
    }
    let mut assume_today = false;
    if month.is_none() && day.is_none() {
        let n = get_now(zc)?;
        month = Some(n.2);
        day = Some(n.3);
        assume_today = true;
    }
    let (month, day) = (month?, day?);
    if !(1..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || !(0..24).contains(&hour)
        || !(0..60).contains(&minute)
        || !(0..60).contains(&second)
    {
        return None;
    }
    let tod = hour * 3600 + minute * 60 + second;
    let mut naive = days_from_civil(year, month, day) * 86_400 + tod;
    if let Some(off) = f.tzoffset {
        naive = naive.checked_sub(i64::from(off) * 60)?;
        if !in_range(naive) {
            return None;
        }
    }
    if assume_today {
        *linear = false;
        let (now_local, ..) = get_now(zc)?;
        if naive.saturating_mul(1_000_000) > now_local {
            naive -= 86_400;
            if !in_range(naive) {
                return None;
            }
        }
    }
    if assume_year {
        let (now_local, ..) = get_now(zc)?;
        let limit = now_local.saturating_add(86_400_000_000);
        // the roll-back must be the same for every second of the minute
        let minute = naive - second;
        if (minute.saturating_mul(1_000_000) > limit) != ((minute + 59).saturating_mul(1_000_000) > limit) {
            *linear = false;
        }
        if naive.saturating_mul(1_000_000) > limit {
            // replace(year=year-1, month=month, day=day): keeps the time of day
            let y = year - 1;
            if !(1..=9999).contains(&y) || day > days_in_month(y, month) {
                return None;
            }
            naive = days_from_civil(y, month, day) * 86_400 + naive.rem_euclid(86_400);
        }
    }
    match f.tzoffset {
        Some(_) => Some(naive),
        None => zc.mktime(naive, tz),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `same_tz`'s same-address shortcut against the name compare, for
    /// zones cached and asked about in every order.
    #[test]
    fn same_tz_shortcut_agrees() {
        let mut zones = vec![TimeZone::UTC, TimeZone::fixed(jiff::tz::offset(2)), TimeZone::unknown()];
        for name in ["Europe/Berlin", "UTC", "Etc/UTC", "America/New_York", "Europe/Berlin"] {
            if let Ok(z) = TimeZone::get(name) {
                zones.push(z.clone());
                zones.push(z);
            }
        }
        zones.extend(TimeZone::posix("CET-01CEST-02,M3.5.0,M10.5.0"));
        // zones of their own (own name text) with names of the zones above,
        // one of them with another zone's data
        for (name, file) in [("Europe/Berlin", "Europe/Berlin"), ("Europe/Berlin", "UTC"), ("UTC", "UTC")] {
            if let Ok(data) = std::fs::read(format!("/usr/share/zoneinfo/{file}")) {
                zones.extend(TimeZone::tzif(name, &data));
            }
        }
        for cached in &zones {
            let mut zc = ZoneCache::default();
            assert!(!zc.same_tz(cached));
            zc.check_tz(cached);
            assert!(zc.name_at.is_none());
            // every order of asked zones, twice (the second time through the
            // kept addresses), against the name compare with the first zone
            for asked in zones.iter().chain(&zones).chain(zones.iter().rev()) {
                let by_name = zc.same_tz_by(asked, |a, b| a == b);
                let kept = zc.name_at;
                assert_eq!(zc.same_tz(asked), by_name, "{cached:?} {asked:?}");
                assert_eq!(zc.same_tz(asked), by_name, "{cached:?} {asked:?} again");
                // a zone is only ever replaced by one with its name
                assert_eq!(zc.tz.as_ref().and_then(TimeZone::iana_name), cached.iana_name());
                // the address shortcut says yes only where the names are equal
                if let (Some(at), Some(b)) = (kept, asked.iana_name())
                    && at == (b.as_ptr() as usize, b.len())
                {
                    assert_eq!(cached.iana_name(), Some(b));
                }
                // the kept address is learnt for a zone with a name
                assert_eq!(zc.name_at.is_some(), by_name && asked.iana_name().is_some() || kept.is_some());
            }
            assert!(zc.clone().same_tz(cached));
            assert!(zc.same_tz(&cached.clone()));
        }
    }

    #[test]
    fn civil_roundtrip() {
        for d in [-800_000, -1, 0, 1, 11_000, 13_000, 2_932_896] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        assert_eq!(days_from_civil(2005, 8, 14), 13_009);
    }

    #[test]
    fn zone_strings() {
        assert_eq!(zone_offset_minutes("+0200"), Some(120));
        assert_eq!(zone_offset_minutes("-05"), Some(-300));
        assert_eq!(zone_offset_minutes("-01:30"), Some(-90));
        assert_eq!(zone_offset_minutes("UTC+0200"), Some(120));
        assert_eq!(zone_offset_minutes("CET+0100"), Some(120));
        assert_eq!(zone_offset_minutes("CEST"), Some(120));
        assert_eq!(zone_offset_minutes(""), Some(0));
        assert_eq!(zone_offset_minutes("utc"), None);
        assert_eq!(zone_offset_minutes("ABCD"), None);
        assert_eq!(zone_offset_minutes("+2000"), None);
        assert_eq!(zone_offset_minutes("+01:3"), None);
    }

    #[test]
    fn mktime_like_glibc() {
        // expected values: python3 time.mktime(..., isdst=-1) with TZ set to
        // the test zone, after a summer / winter / no previous mktime call
        let tz = TimeZone::posix("CET-01CEST-02,M3.5.0,M10.5.0").unwrap();
        let fold = days_from_civil(2005, 10, 30) * 86_400 + 3600 + 1800; // 01:30
        let gap = days_from_civil(2005, 3, 27) * 86_400 + 2 * 3600 + 1800; // 02:30
        let mut zc = ZoneCache::default();
        assert_eq!(zc.mktime(fold, &tz), Some(1_130_632_200));
        assert_eq!(zc.mktime(gap, &tz), Some(1_111_887_000));
        let summer = days_from_civil(2005, 7, 1) * 86_400 + 12 * 3600;
        assert_eq!(zc.mktime(summer, &tz), Some(1_120_212_000));
        assert_eq!(zc.mktime(fold, &tz), Some(1_130_628_600));
        assert_eq!(zc.mktime(fold, &tz), Some(1_130_628_600));
        let winter = days_from_civil(2005, 12, 1) * 86_400 + 12 * 3600;
        assert_eq!(zc.mktime(winter, &tz), Some(1_133_434_800));
        assert_eq!(zc.mktime(fold, &tz), Some(1_130_632_200));
    }

    #[test]
    fn ints_like_python() {
        assert_eq!(py_int(" 5"), Some(5));
        assert_eq!(py_int("1_0"), Some(10));
        assert_eq!(py_int("1__0"), None);
        assert_eq!(py_int("-05"), Some(-5));
        assert_eq!(py_int("99999999999999999999"), None);
        assert_eq!(py_int(""), None);
    }
}
