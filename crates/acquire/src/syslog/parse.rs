//! Parsing one syslog message (RFC 5424, RFC 3164 and its real-world
//! variants). A pure function: no socket, no clock ([`TimeContext::now`] is
//! given).

use std::net::SocketAddr;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use stadtwache_core::Timestamp;

/// How a message arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Which header the message had.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`.
    Rfc5424,
    /// `<PRI>` followed by an optional BSD or ISO time stamp, an optional
    /// host and an optional `tag[pid]:`.
    Rfc3164,
    /// No usable header (see [`Malformed`]): the whole text is the message.
    Unknown,
}

/// Why a message is flagged malformed. A malformed message is still
/// delivered, with as much of its header as could be read and the rest as
/// its `message`; only empty frames are dropped (and counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Malformed {
    /// No `<PRI>` at the start: the text is parsed as a 3164 body without
    /// it (facility and severity `None`).
    MissingPri,
    /// A `<` not followed by 1–3 digits (≤ 191) and `>`: the whole text is
    /// the message, no header is read.
    BadPri,
    /// `<PRI>1 ` but fewer header fields than RFC 5424 has: the fields read
    /// are kept, the rest of the text is the message.
    Bad5424Header,
    /// An RFC 5424 time stamp that is not RFC 3339: kept as text, no `time`.
    BadTimestamp,
    /// RFC 5424 structured data that does not parse: `structured_data` is
    /// `None` and the text from where it should start is the message.
    BadStructuredData,
    /// A TCP frame cut short by the end of the connection.
    Incomplete,
}

impl Malformed {
    pub fn as_str(self) -> &'static str {
        match self {
            Malformed::MissingPri => "missing <PRI>",
            Malformed::BadPri => "invalid <PRI>",
            Malformed::Bad5424Header => "RFC 5424 header incomplete",
            Malformed::BadTimestamp => "invalid RFC 5424 time stamp",
            Malformed::BadStructuredData => "invalid RFC 5424 structured data",
            Malformed::Incomplete => "frame cut by the end of the connection",
        }
    }
}

/// How to read time stamps without a zone or a year (RFC 3164).
///
/// A time without an offset is read in `tz`; a time without a year gets the
/// year of `now` (in `tz`), or the year before when that would put it more
/// than a day after `now` (a December message read in January).
#[derive(Clone, Debug)]
pub struct TimeContext {
    pub now: Timestamp,
    pub tz: TimeZone,
}

impl TimeContext {
    /// UTC, with `now` as given.
    pub fn utc(now: Timestamp) -> Self {
        TimeContext { now, tz: TimeZone::UTC }
    }
}

/// One received syslog message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyslogMessage {
    /// The sender (IPv4-mapped IPv6 addresses are given as IPv4).
    pub peer: SocketAddr,
    pub transport: Transport,
    pub format: Format,
    /// 0–23 (`<PRI>` / 8), `None` without a valid `<PRI>`.
    pub facility: Option<u8>,
    /// 0 (emergency) – 7 (debug), `None` without a valid `<PRI>`.
    pub severity: Option<u8>,
    /// The time stamp as sent (`None`: none, or the 5424 NILVALUE).
    pub timestamp: Option<String>,
    /// The time stamp as an instant, when it could be read (see [`TimeContext`]).
    pub time: Option<Timestamp>,
    /// When the receiver got the message ([`TimeContext::now`]).
    pub received: Timestamp,
    pub hostname: Option<String>,
    /// The 5424 APP-NAME, or the 3164 tag (`sshd` in `sshd[12]:`).
    pub app_name: Option<String>,
    pub proc_id: Option<String>,
    pub msg_id: Option<String>,
    /// The 5424 structured data as sent (`[id k="v"]…`), `None` for NILVALUE.
    pub structured_data: Option<String>,
    /// The free text (a leading UTF-8 BOM removed).
    pub message: String,
    pub malformed: Option<Malformed>,
    /// Cut at the size cap.
    pub truncated: bool,
    /// Invalid UTF-8 was replaced by U+FFFD.
    pub replaced: bool,
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

impl SyslogMessage {
    /// The instant for the line: the message's time stamp, or when it was
    /// received.
    pub fn effective_time(&self) -> Timestamp {
        self.time.unwrap_or(self.received)
    }

    /// A traditional syslog file line, `Mmm dd HH:MM:SS host app[pid]: message`,
    /// as rsyslog writes `/var/log/auth.log`, so stock fail2ban filters match
    /// it. The time is [`SyslogMessage::effective_time`] shown in `tz` (give
    /// the zone the filters read dates in); whole seconds, as in such files.
    pub fn to_line(&self, tz: &TimeZone) -> String {
        let dt = to_civil(self.effective_time(), tz);
        let mut line = format!(
            "{} {:>2} {:02}:{:02}:{:02} ",
            MONTHS[(dt.month() - 1) as usize],
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second()
        );
        self.push_journal_style(&mut line);
        line
    }

    /// `host app[pid]: message`, the line fail2ban matches in journal mode
    /// (time given separately).
    pub fn journal_style_line(&self) -> String {
        let mut line = String::new();
        self.push_journal_style(&mut line);
        line
    }

    /// The host for lines: the hostname, or the sender's IP.
    pub fn host(&self) -> String {
        match &self.hostname {
            Some(h) => h.clone(),
            None => self.peer.ip().to_string(),
        }
    }

    fn push_journal_style(&self, line: &mut String) {
        push_one_line(line, &self.host());
        line.push(' ');
        if let Some(app) = &self.app_name {
            push_one_line(line, app);
            if let Some(pid) = &self.proc_id {
                line.push('[');
                push_one_line(line, pid);
                line.push(']');
            }
            line.push_str(": ");
        }
        push_one_line(line, &self.message);
    }
}

/// A line is one line: embedded CR and LF (multi-line messages, or header
/// fields of a malformed message) would make the next filter line start in
/// the middle of this one. They become spaces.
fn push_one_line(line: &mut String, s: &str) {
    line.extend(s.chars().map(|c| if c == '\n' || c == '\r' { ' ' } else { c }));
}

fn to_civil(t: Timestamp, tz: &TimeZone) -> DateTime {
    let ts = jiff::Timestamp::from_microsecond(t.0).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    tz.to_datetime(ts)
}

/// Parse one message (without its frame delimiter). Never fails: what cannot
/// be read is flagged in [`SyslogMessage::malformed`] and kept as text.
/// Trailing `\n`, `\r` and NUL are removed (UDP senders often add them).
pub fn parse(raw: &[u8], peer: SocketAddr, transport: Transport, ctx: &TimeContext) -> SyslogMessage {
    let mut end = raw.len();
    while end > 0 && matches!(raw[end - 1], b'\n' | b'\r' | 0) {
        end -= 1;
    }
    let (text, replaced) = match std::str::from_utf8(&raw[..end]) {
        Ok(s) => (s.to_owned(), false),
        Err(_) => (String::from_utf8_lossy(&raw[..end]).into_owned(), true),
    };
    let mut m = SyslogMessage {
        peer,
        transport,
        format: Format::Unknown,
        facility: None,
        severity: None,
        timestamp: None,
        time: None,
        received: ctx.now,
        hostname: None,
        app_name: None,
        proc_id: None,
        msg_id: None,
        structured_data: None,
        message: String::new(),
        malformed: None,
        truncated: false,
        replaced,
    };
    let rest = match parse_pri(&text) {
        Pri::Valid(pri, len) => {
            m.facility = Some(pri / 8);
            m.severity = Some(pri % 8);
            &text[len..]
        }
        Pri::Missing => {
            m.malformed = Some(Malformed::MissingPri);
            &text[..]
        }
        Pri::Invalid => {
            m.malformed = Some(Malformed::BadPri);
            m.message = text;
            return m;
        }
    };
    if let Some(after_version) = rest.strip_prefix("1 ")
        && m.malformed.is_none()
    {
        parse_5424(after_version, ctx, &mut m);
    } else {
        parse_3164(rest, ctx, &mut m);
    }
    m
}

enum Pri {
    Valid(u8, usize),
    Missing,
    Invalid,
}

fn parse_pri(text: &str) -> Pri {
    let b = text.as_bytes();
    if b.first() != Some(&b'<') {
        return Pri::Missing;
    }
    let digits = b[1..].iter().take(4).take_while(|c| c.is_ascii_digit()).count();
    if !(1..=3).contains(&digits) || b.get(1 + digits) != Some(&b'>') {
        return Pri::Invalid;
    }
    let value: u32 = text[1..1 + digits].parse().unwrap_or(u32::MAX);
    if value > 191 {
        return Pri::Invalid;
    }
    Pri::Valid(value as u8, digits + 2)
}

/// Split off the next space-separated field (exactly one SP after it).
fn field(s: &str) -> Option<(&str, &str)> {
    let i = s.find(' ')?;
    Some((&s[..i], &s[i + 1..]))
}

fn nil(v: &str) -> Option<String> {
    if v == "-" || v.is_empty() { None } else { Some(v.to_owned()) }
}

fn strip_bom(s: &str) -> &str {
    s.strip_prefix('\u{feff}').unwrap_or(s)
}

fn parse_5424(s: &str, ctx: &TimeContext, m: &mut SyslogMessage) {
    m.format = Format::Rfc5424;
    let mut rest = s;
    // TIMESTAMP HOSTNAME APP-NAME PROCID MSGID, each followed by one SP.
    let mut fields = [""; 5];
    for (i, slot) in fields.iter_mut().enumerate() {
        match field(rest) {
            Some((f, r)) => {
                *slot = f;
                rest = r;
            }
            None => {
                // Header cut short: keep what we have, the rest is the message.
                set_5424_fields(&fields[..i], ctx, m);
                m.malformed = Some(Malformed::Bad5424Header);
                m.message = rest.to_owned();
                return;
            }
        }
    }
    set_5424_fields(&fields, ctx, m);
    // STRUCTURED-DATA [SP MSG]
    if rest == "-" {
        return;
    }
    if let Some(msg) = rest.strip_prefix("- ") {
        m.message = strip_bom(msg).to_owned();
        return;
    }
    match structured_data_len(rest) {
        Some(n) => {
            m.structured_data = Some(rest[..n].to_owned());
            let msg = &rest[n..];
            let msg = msg.strip_prefix(' ').unwrap_or(msg);
            m.message = strip_bom(msg).to_owned();
        }
        None => {
            if m.malformed.is_none() {
                m.malformed = Some(Malformed::BadStructuredData);
            }
            m.message = rest.to_owned();
        }
    }
}

fn set_5424_fields(fields: &[&str], ctx: &TimeContext, m: &mut SyslogMessage) {
    if let Some(ts) = fields.first() {
        if *ts != "-" {
            m.timestamp = Some((*ts).to_owned());
            match parse_rfc3339(ts, ctx) {
                Some(t) if t.len == ts.len() => m.time = Some(t.time),
                _ => m.malformed = Some(Malformed::BadTimestamp),
            }
        }
    }
    m.hostname = fields.get(1).and_then(|v| nil(v));
    m.app_name = fields.get(2).and_then(|v| nil(v));
    m.proc_id = fields.get(3).and_then(|v| nil(v));
    m.msg_id = fields.get(4).and_then(|v| nil(v));
}

/// Length of the structured data at the start of `s` (one or more
/// `[SD-ID *(SP PARAM-NAME="value")]`, values with `\"`, `\\`, `\]`
/// escapes), if it is well formed and followed by the end or a SP.
fn structured_data_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    let is_name = |c: u8| c > b' ' && c < 127 && !matches!(c, b'=' | b']' | b'"');
    while b.get(i) == Some(&b'[') {
        i += 1;
        let start = i;
        while i < b.len() && is_name(b[i]) {
            i += 1;
        }
        if i == start {
            return None;
        }
        loop {
            match b.get(i)? {
                b']' => {
                    i += 1;
                    break;
                }
                b' ' => {
                    i += 1;
                    let name = i;
                    while i < b.len() && is_name(b[i]) {
                        i += 1;
                    }
                    if i == name || b.get(i) != Some(&b'=') || b.get(i + 1) != Some(&b'"') {
                        return None;
                    }
                    i += 2;
                    loop {
                        match b.get(i)? {
                            b'\\' => i += 2,
                            b'"' => {
                                i += 1;
                                break;
                            }
                            _ => i += 1,
                        }
                    }
                }
                _ => return None,
            }
        }
    }
    if i == 0 || (i < b.len() && b[i] != b' ') || i > b.len() {
        return None;
    }
    Some(i)
}

struct ParsedTime {
    time: Timestamp,
    len: usize,
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let s = b.get(at..at + n)?;
    if !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0i64, |a, c| a * 10 + i64::from(c - b'0')))
}

/// Fractional seconds after a `.` (or `,`) at `at`: (microseconds, bytes used).
fn fraction(b: &[u8], at: usize) -> (i64, usize) {
    if !matches!(b.get(at), Some(b'.') | Some(b',')) {
        return (0, 0);
    }
    let n = b[at + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 {
        return (0, 0);
    }
    let mut us = 0i64;
    for k in 0..6 {
        us = us * 10 + b.get(at + 1 + k).filter(|_| k < n).map_or(0, |c| i64::from(c - b'0'));
    }
    (us, 1 + n)
}

/// `[year, month, day, hour, minute, second, microsecond]`, at `offset`
/// seconds east of UTC, or in `tz` without one.
fn civil_to_timestamp(c: [i64; 7], offset: Option<i64>, tz: &TimeZone) -> Option<Timestamp> {
    let [y, mo, d, h, mi, s, us] = c;
    let s = s.min(59); // a leap second is read as :59
    let y = i16::try_from(y).ok()?;
    let dt = DateTime::new(y, mo as i8, d as i8, h as i8, mi as i8, s as i8, (us * 1000) as i32).ok()?;
    let ts = match offset {
        Some(off) => TimeZone::fixed(jiff::tz::Offset::from_seconds(off as i32).ok()?).to_timestamp(dt).ok()?,
        None => tz.to_ambiguous_timestamp(dt).compatible().ok()?,
    };
    Some(Timestamp(ts.as_microsecond()))
}

/// `YYYY-MM-DD[T ]HH:MM:SS[.frac][Z|±HH:MM|±HHMM]` at the start of `s`.
fn parse_rfc3339(s: &str, ctx: &TimeContext) -> Option<ParsedTime> {
    let b = s.as_bytes();
    let y = digits(b, 0, 4)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || !matches!(b.get(10), Some(b'T') | Some(b' ')) {
        return None;
    }
    let (mo, d) = (digits(b, 5, 2)?, digits(b, 8, 2)?);
    let (h, mi, sec) = hms(b, 11)?;
    let (us, flen) = fraction(b, 19);
    let mut i = 19 + flen;
    let offset = match b.get(i) {
        Some(b'Z') | Some(b'z') => {
            i += 1;
            Some(0)
        }
        Some(&c @ (b'+' | b'-')) => {
            let oh = digits(b, i + 1, 2)?;
            let (om, used) =
                if b.get(i + 3) == Some(&b':') { (digits(b, i + 4, 2)?, 6) } else { (digits(b, i + 3, 2)?, 5) };
            if oh > 23 || om > 59 {
                return None;
            }
            i += used;
            let off = oh * 3600 + om * 60;
            Some(if c == b'-' { -off } else { off })
        }
        _ => None,
    };
    let time = civil_to_timestamp([y, mo, d, h, mi, sec, us], offset, &ctx.tz)?;
    Some(ParsedTime { time, len: i })
}

fn hms(b: &[u8], at: usize) -> Option<(i64, i64, i64)> {
    if b.get(at + 2) != Some(&b':') || b.get(at + 5) != Some(&b':') {
        return None;
    }
    let (h, mi, s) = (digits(b, at, 2)?, digits(b, at + 3, 2)?, digits(b, at + 6, 2)?);
    (h < 24 && mi < 60 && s <= 60).then_some((h, mi, s))
}

/// `Mmm dd[ yyyy] HH:MM:SS[.frac]` (day space-padded or not) at the start of `s`.
fn parse_bsd_time(s: &str, ctx: &TimeContext) -> Option<ParsedTime> {
    let b = s.as_bytes();
    let mon = MONTHS.iter().position(|m| b.len() >= 3 && m.as_bytes().eq_ignore_ascii_case(&b[..3]))? as i64 + 1;
    if b.get(3) != Some(&b' ') {
        return None;
    }
    let mut i = 4;
    if b.get(i) == Some(&b' ') {
        i += 1;
    }
    let dlen = b[i..].iter().take(3).take_while(|c| c.is_ascii_digit()).count();
    if !(1..=2).contains(&dlen) || b.get(i + dlen) != Some(&b' ') {
        return None;
    }
    let day = digits(b, i, dlen)?;
    i += dlen + 1;
    // Optional year (Cisco: `Nov 27 2026 10:01:02`).
    let mut year = None;
    if let Some(y) = digits(b, i, 4)
        && b.get(i + 4) == Some(&b' ')
    {
        year = Some(y);
        i += 5;
    }
    let (h, mi, sec) = hms(b, i)?;
    i += 8;
    let (us, flen) = fraction(b, i);
    i += flen;
    let time = match year {
        Some(y) => civil_to_timestamp([y, mon, day, h, mi, sec, us], None, &ctx.tz)?,
        None => {
            let now_year = i64::from(to_civil(ctx.now, &ctx.tz).year());
            let this = civil_to_timestamp([now_year, mon, day, h, mi, sec, us], None, &ctx.tz);
            match this {
                Some(t) if t.0 <= ctx.now.0 + 86_400_000_000 => t,
                // In the future, or Feb 29 in a common year: the year before.
                _ => civil_to_timestamp([now_year - 1, mon, day, h, mi, sec, us], None, &ctx.tz)?,
            }
        }
    };
    Some(ParsedTime { time, len: i })
}

fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b':'))
}

/// `tag[pid]: ` or `tag: ` at the start of `s`: (tag, pid, rest).
fn split_tag(s: &str) -> Option<(&str, Option<&str>, &str)> {
    let word_end = s.find(' ').unwrap_or(s.len());
    let word = &s[..word_end];
    let head = word.strip_suffix(':')?;
    let (tag, pid) = match head.find('[') {
        Some(open) => {
            let pid = head[open + 1..].strip_suffix(']')?;
            (&head[..open], Some(pid))
        }
        None => (head, None),
    };
    if tag.is_empty() || tag.len() > 128 || tag.bytes().any(|c| c.is_ascii_control() || c == b'[' || c == b']') {
        return None;
    }
    if pid.is_some_and(|p| p.is_empty() || p.len() > 128 || p.contains('[')) {
        return None;
    }
    let rest = &s[word_end..];
    Some((tag, pid, rest.strip_prefix(' ').unwrap_or(rest)))
}

fn parse_3164(s: &str, ctx: &TimeContext, m: &mut SyslogMessage) {
    m.format = if m.malformed.is_some() { Format::Unknown } else { Format::Rfc3164 };
    let mut rest = s;
    // Time stamp: BSD, or ISO 8601 (rsyslog's high-precision forwarding
    // format, many appliances), or none.
    let t = parse_bsd_time(rest, ctx).or_else(|| parse_rfc3339(rest, ctx));
    if let Some(t) = t {
        m.timestamp = Some(rest[..t.len].to_owned());
        m.time = Some(t.time);
        rest = &rest[t.len..];
        // Cisco ASA ends its time stamp with a colon: `… 10:01:02: %ASA-…`.
        rest = rest.strip_prefix(':').unwrap_or(rest);
        rest = rest.strip_prefix(' ').unwrap_or(rest);
        // Host, unless the next word is already the tag (appliances that
        // omit it, e.g. pfSense `filterlog[123]:`, ASA `%ASA-6-…:`).
        if split_tag(rest).is_none() {
            let word_end = rest.find(' ').unwrap_or(rest.len());
            if is_hostname(&rest[..word_end]) && word_end < rest.len() {
                m.hostname = Some(rest[..word_end].to_owned());
                rest = &rest[word_end + 1..];
                // ASA with `logging device-id`: `fw01 : %ASA-…`.
                rest = rest.strip_prefix(": ").unwrap_or(rest);
            }
        }
    }
    match split_tag(rest) {
        Some((tag, pid, msg)) => {
            m.app_name = Some(tag.to_owned());
            m.proc_id = pid.map(str::to_owned);
            m.message = msg.to_owned();
        }
        None => m.message = rest.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "192.0.2.7:514".parse().unwrap()
    }

    // 2026-11-27T12:00:00Z
    const NOW: i64 = 1_795_780_800;

    fn p(s: &str) -> SyslogMessage {
        parse(s.as_bytes(), peer(), Transport::Udp, &TimeContext::utc(Timestamp::from_secs(NOW)))
    }

    fn ts(s: &str) -> Timestamp {
        Timestamp(s.parse::<jiff::Timestamp>().unwrap().as_microsecond())
    }

    #[test]
    fn now_constant_is_what_the_tests_think() {
        assert_eq!(Timestamp::from_secs(NOW), ts("2026-11-27T12:00:00Z"));
    }

    #[test]
    fn rfc3164_classic() {
        let m = p("<38>Nov 27 10:01:02 bastion sshd[4242]: Failed password for root from 203.0.113.9 port 4711 ssh2");
        assert_eq!((m.facility, m.severity), (Some(4), Some(6)));
        assert_eq!(m.format, Format::Rfc3164);
        assert_eq!(m.timestamp.as_deref(), Some("Nov 27 10:01:02"));
        assert_eq!(m.time, Some(ts("2026-11-27T10:01:02Z")));
        assert_eq!(m.hostname.as_deref(), Some("bastion"));
        assert_eq!(m.app_name.as_deref(), Some("sshd"));
        assert_eq!(m.proc_id.as_deref(), Some("4242"));
        assert_eq!(m.message, "Failed password for root from 203.0.113.9 port 4711 ssh2");
        assert_eq!(m.malformed, None);
        assert_eq!(
            m.to_line(&TimeZone::UTC),
            "Nov 27 10:01:02 bastion sshd[4242]: Failed password for root from 203.0.113.9 port 4711 ssh2"
        );
        assert_eq!(
            m.journal_style_line(),
            "bastion sshd[4242]: Failed password for root from 203.0.113.9 port 4711 ssh2"
        );
    }

    #[test]
    fn rfc3164_padded_day_year_rollover_and_zone() {
        let m = p("<13>Dec 31 23:59:59 h x: y");
        assert_eq!(m.time, Some(ts("2025-12-31T23:59:59Z")), "a December time read in November is last year's");
        let m = p("<13>Nov  7 01:02:03 h x: y");
        assert_eq!(m.time, Some(ts("2026-11-07T01:02:03Z")));
        assert_eq!(m.to_line(&TimeZone::UTC), "Nov  7 01:02:03 h x: y");
        let ctx = TimeContext { now: Timestamp::from_secs(NOW), tz: TimeZone::get("Europe/Berlin").unwrap() };
        let m = parse(b"<13>Nov 27 10:01:02 h x: y", peer(), Transport::Udp, &ctx);
        assert_eq!(m.time, Some(ts("2026-11-27T09:01:02Z")));
        assert_eq!(m.to_line(&ctx.tz), "Nov 27 10:01:02 h x: y");
    }

    #[test]
    fn rfc3164_without_hostname_uses_the_peer_ip() {
        let m = p(
            "<134>Nov 27 10:01:02 filterlog[12345]: 5,,,1000000103,igb0,match,block,in,4,0x0,,64,0,0,DF,6,tcp,60,203.0.113.5,192.0.2.1,51234,22,0,S,1,,64240,,mss",
        );
        assert_eq!(m.hostname, None);
        assert_eq!(m.app_name.as_deref(), Some("filterlog"));
        assert!(
            m.to_line(&TimeZone::UTC).starts_with("Nov 27 10:01:02 192.0.2.7 filterlog[12345]: 5,,,1000000103,igb0")
        );
    }

    #[test]
    fn cisco_asa_with_year_and_colon() {
        let m = p(
            "<166>Nov 27 2026 10:01:02: %ASA-6-113005: AAA user authentication Rejected : reason = AAA failure : server = 10.0.0.5 : user = admin : user IP = 203.0.113.44",
        );
        assert_eq!(m.time, Some(ts("2026-11-27T10:01:02Z")));
        assert_eq!(m.hostname, None);
        assert_eq!(m.app_name.as_deref(), Some("%ASA-6-113005"));
        assert!(m.message.starts_with("AAA user authentication Rejected"));
        let m = p("<166>Nov 27 2026 10:01:02 fw01 : %ASA-4-106023: Deny tcp src outside:203.0.113.44/4711");
        assert_eq!(m.hostname.as_deref(), Some("fw01"));
        assert_eq!(m.app_name.as_deref(), Some("%ASA-4-106023"));
    }

    #[test]
    fn fortigate_key_value_has_no_header_but_is_not_malformed() {
        let m = p(
            r#"<189>date=2026-11-27 time=10:01:02 devname="FG100E" devid="FG100E3G000001" logid="0100032002" type="event" subtype="system" level="alert" logdesc="Admin login failed" sn="0" user="admin" ui="https(203.0.113.80)" srcip=203.0.113.80 action="login" status="failed" reason="passwd_invalid""#,
        );
        assert_eq!((m.facility, m.severity), (Some(23), Some(5)));
        assert_eq!(m.malformed, None);
        assert_eq!((m.hostname.as_ref(), m.app_name.as_ref(), m.time), (None, None, None));
        assert!(m.message.starts_with("date=2026-11-27 time=10:01:02 devname="));
        assert!(m.to_line(&TimeZone::UTC).starts_with("Nov 27 12:00:00 192.0.2.7 date=2026-11-27"), "received time");
    }

    #[test]
    fn iso_timestamp_in_3164_and_pri_only() {
        let m = p("<86>2026-11-27T11:01:02.5+01:00 gw charon: 09[IKE] 203.0.113.9 is initiating a Main Mode IKE_SA");
        assert_eq!(m.time, Some(ts("2026-11-27T10:01:02.5Z")));
        assert_eq!(
            (m.hostname.as_deref(), m.app_name.as_deref(), m.proc_id.as_deref()),
            (Some("gw"), Some("charon"), None)
        );
        assert_eq!(m.message, "09[IKE] 203.0.113.9 is initiating a Main Mode IKE_SA");
        let m = p("<13>openvpn[812]: 203.0.113.9:51820 TLS Error: TLS handshake failed");
        assert_eq!((m.time, m.app_name.as_deref(), m.proc_id.as_deref()), (None, Some("openvpn"), Some("812")));
        let m = p("<13>just text");
        assert_eq!((m.app_name.as_ref(), m.message.as_str(), m.malformed), (None, "just text", None));
    }

    #[test]
    fn rfc5424_full() {
        let m = p(
            "<165>1 2026-11-27T10:01:02.123456+01:00 mymachine.example.com evntslog 1234 ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"App\\\"lication\" eventID=\"1011\"][examplePriority@32473 class=\"high\"] \u{feff}An application event",
        );
        assert_eq!(m.format, Format::Rfc5424);
        assert_eq!((m.facility, m.severity), (Some(20), Some(5)));
        assert_eq!(m.time, Some(ts("2026-11-27T09:01:02.123456Z")));
        assert_eq!(m.hostname.as_deref(), Some("mymachine.example.com"));
        assert_eq!(
            (m.app_name.as_deref(), m.proc_id.as_deref(), m.msg_id.as_deref()),
            (Some("evntslog"), Some("1234"), Some("ID47"))
        );
        assert_eq!(
            m.structured_data.as_deref(),
            Some(
                "[exampleSDID@32473 iut=\"3\" eventSource=\"App\\\"lication\" eventID=\"1011\"][examplePriority@32473 class=\"high\"]"
            )
        );
        assert_eq!(m.message, "An application event");
        assert_eq!(m.malformed, None);
    }

    #[test]
    fn rfc5424_nilvalues_and_no_message() {
        let m = p("<34>1 - - - - - -");
        assert_eq!(
            (m.timestamp.as_ref(), m.hostname.as_ref(), m.app_name.as_ref(), m.message.as_str()),
            (None, None, None, "")
        );
        assert_eq!(m.malformed, None);
        let m = p("<34>1 2026-11-27T10:01:02Z h su - ID47 - 'su root' failed for lonvick on /dev/pts/8");
        assert_eq!(m.time, Some(ts("2026-11-27T10:01:02Z")));
        assert_eq!(m.proc_id, None);
        assert_eq!(m.to_line(&TimeZone::UTC), "Nov 27 10:01:02 h su: 'su root' failed for lonvick on /dev/pts/8");
    }

    #[test]
    fn nxlog_windows_event() {
        let m = p(
            "<14>1 2026-11-27T11:01:02.000000+01:00 WIN-DC01.corp.example Microsoft-Windows-Security-Auditing 636 - [NXLOG@14506 EventReceivedTime=\"2026-11-27 11:01:02\" SourceModuleName=\"eventlog\" SourceModuleType=\"im_msvistalog\"] An account failed to log on.  Subject: Security ID: S-1-0-0  Source Network Address: 203.0.113.50",
        );
        assert_eq!(m.hostname.as_deref(), Some("WIN-DC01.corp.example"));
        assert_eq!(m.app_name.as_deref(), Some("Microsoft-Windows-Security-Auditing"));
        assert!(m.structured_data.as_deref().unwrap().starts_with("[NXLOG@14506 "));
        assert!(m.message.starts_with("An account failed to log on."));
        assert_eq!(m.time, Some(ts("2026-11-27T10:01:02Z")));
    }

    #[test]
    fn malformed_cases_keep_the_text() {
        let m = p("Nov 27 10:01:02 host sshd[1]: no pri");
        assert_eq!(m.malformed, Some(Malformed::MissingPri));
        assert_eq!(
            (m.hostname.as_deref(), m.app_name.as_deref(), m.message.as_str()),
            (Some("host"), Some("sshd"), "no pri")
        );
        assert_eq!(m.facility, None);
        let m = p("<999>Nov 27 10:01:02 host x: y");
        assert_eq!((m.malformed, m.message.as_str()), (Some(Malformed::BadPri), "<999>Nov 27 10:01:02 host x: y"));
        let m = p("<1a>x");
        assert_eq!(m.malformed, Some(Malformed::BadPri));
        let m = p("<13>1 2026-11-27T10:01:02Z host");
        assert_eq!((m.malformed, m.message.as_str()), (Some(Malformed::Bad5424Header), "host"));
        assert_eq!(m.time, Some(ts("2026-11-27T10:01:02Z")));
        let m = p("<13>1 2026-13-27T10:01:02Z h a p m - x");
        assert_eq!(
            (m.malformed, m.message.as_str(), m.hostname.as_deref()),
            (Some(Malformed::BadTimestamp), "x", Some("h"))
        );
        let m = p("<13>1 2026-11-27T10:01:02Z h a p m [bad sd x");
        assert_eq!((m.malformed, m.message.as_str()), (Some(Malformed::BadStructuredData), "[bad sd x"));
    }

    #[test]
    fn invalid_utf8_is_replaced_and_trailing_newlines_dropped() {
        let m = parse(
            b"<13>Nov 27 10:01:02 h x: caf\xe9\r\n\0",
            peer(),
            Transport::Tcp,
            &TimeContext::utc(Timestamp::from_secs(NOW)),
        );
        assert!(m.replaced);
        assert_eq!(m.message, "caf\u{fffd}");
    }

    #[test]
    fn embedded_newlines_do_not_split_the_line() {
        let m = p("<13>Nov 27 10:01:02 h x: a\nb");
        assert_eq!(m.message, "a\nb");
        assert_eq!(m.to_line(&TimeZone::UTC), "Nov 27 10:01:02 h x: a b");
        // Found by fuzzing: CR/LF inside 5424 header fields of a datagram.
        let m = p("<14>1 x TLS Error\r\n\0<189>a b c");
        assert_eq!(m.app_name.as_deref(), Some("Error\r\n\0<189>a"));
        assert_eq!(m.journal_style_line(), "TLS Error  \0<189>a[b]: c");
    }
}
