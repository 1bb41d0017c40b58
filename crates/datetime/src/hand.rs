//! Hand-written matchers for the hot default templates (ISO 8601, syslog,
//! CLF, epoch): no regex, no allocation.
//!
//! Each matcher reproduces the regex fail2ban builds for the template,
//! including its backtracking order (nested loops over the alternatives, in
//! the order Python's `re` tries them), so it finds the same span. Where a
//! non-ASCII character could take part in the match (Unicode `\d`, `\s`, or
//! case folding like `ſ` ~ `s`) the matcher answers [`HandResult::Unsure`]
//! and the caller runs the regex instead. The unit tests below and
//! `tests/hand_vs_regex.rs` compare both on many lines.

use std::cell::Cell;

use crate::strptime::{Fields, zone_offset_minutes};
use crate::template::{Build, HitData, LINE_BEGIN, RawHit, WORD_BEGIN, WORD_END, WordBegin};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    Iso,
    Syslog,
    Clf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hand {
    Pattern {
        shape: Shape,
        /// `{^LN-BEG}` form (`^(?:\W{0,2})?` prefix) or word-bounded search
        anchored: bool,
        /// decades `%ExY` accepts
        dec: (i64, i64),
    },
    Epoch,
    EpochLineBegin,
    /// `{^LN-BEG}(?:%Z )?` then the syslog pattern, on a line where the
    /// zone cannot match (see [`Cur::zone_impossible`]): then the regex
    /// finds what the anchored syslog pattern finds. Any other line is
    /// [`HandResult::Unsure`] (the regex decides).
    ZoneSyslog {
        /// decades `%ExY` accepts
        dec: (i64, i64),
    },
}

pub(crate) enum HandResult {
    Hit(RawHit),
    Miss,
    Unsure,
}

const ISO: &str = r"%ExY(?P<_sep>[-/.])%m(?P=_sep)%d(?:T|  ?)%H:%M:%S(?:[.,]%f)?(?:\s*%z)?";
const SYSLOG: &str = r"(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?";
const ZONE_SYSLOG: &str = r"(?:%Z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?";
const CLF: &str = r"%d(?P<_sep>[-/])%b(?P=_sep)%ExY[ :]?%H:%M:%S(?:\.%f)?(?: %z)?";

impl Hand {
    /// The hand matcher for a pattern template, if there is one.
    pub fn for_pattern(p: &str, wb: WordBegin, flags: u8, b: &Build) -> Option<Hand> {
        // (a log that once had a word before its date keeps this template
        // first: without a hand matcher every later line ran the regex)
        if p == ZONE_SYSLOG && wb == WordBegin::Start && flags == LINE_BEGIN | WORD_END {
            return Some(Hand::ZoneSyslog { dec: b.ex_decades });
        }
        let shape = match p {
            ISO => Shape::Iso,
            SYSLOG => Shape::Syslog,
            CLF => Shape::Clf,
            _ => return None,
        };
        let anchored = match (wb, flags) {
            (WordBegin::Start, f) if f == LINE_BEGIN | WORD_END => true,
            (WordBegin::Yes, f) if f == WORD_BEGIN | WORD_END => false,
            _ => return None,
        };
        Some(Hand::Pattern { shape, anchored, dec: b.ex_decades })
    }

    /// Python `re.search(hay, pos)` for the template (`hay` already cut at
    /// `endpos`).
    pub fn search(self, hay: &str, pos: usize) -> HandResult {
        self.search_tracked(hay, pos).0
    }

    /// [`Hand::search`], and the highest byte index the matcher looked at
    /// (`usize::MAX` when it looked at the whole text): the result is the
    /// same for any text that has the same bytes up to there.
    pub fn search_tracked(self, hay: &str, pos: usize) -> (HandResult, usize) {
        self.search_limited(hay, pos, usize::MAX)
    }

    /// Whether this is a word-bounded search (not anchored at the line start).
    pub fn is_word_search(self) -> bool {
        matches!(self, Hand::Pattern { anchored: false, .. })
    }

    /// [`Hand::search_tracked`] trying match starts up to `limit` only
    /// (word-bounded pattern searches).
    pub fn search_limited(self, hay: &str, pos: usize, limit: usize) -> (HandResult, usize) {
        let mut c = Cur { b: hay.as_bytes(), s: hay, uni: false, max: Cell::new(0), limit };
        let r = match self {
            Hand::Pattern { shape, anchored, dec } => {
                if anchored {
                    c.anchored(pos, |c, p| c.body(shape, dec, p))
                } else {
                    c.search_word(pos, shape, dec)
                }
            }
            Hand::EpochLineBegin => c.anchored(pos, |c, p| c.epoch(p).map(|e| (e, None))),
            Hand::ZoneSyslog { dec } => {
                if pos == 0 && c.zone_impossible() {
                    c.anchored(0, |c, p| c.body(Shape::Syslog, dec, p))
                } else {
                    c.uni = true;
                    None
                }
            }
            Hand::Epoch => c.search_epoch(pos),
        };
        let max = c.max.get();
        if c.uni {
            return (HandResult::Unsure, max);
        }
        let r = match r {
            Some((s0, s1, e, fields)) => HandResult::Hit(RawHit {
                s0,
                e0: e,
                s1,
                e1: e,
                data: match fields {
                    Some(f) => HitData::Fields(f),
                    None => HitData::Group1,
                },
            }),
            None => HandResult::Miss,
        };
        (r, max)
    }
}

fn is_word_char(ch: char) -> bool {
    if ch.is_ascii() { ch.is_ascii_alphanumeric() || ch == '_' } else { regex_syntax::is_word_character(ch) }
}

type Cands = ([(usize, i64); 3], usize);

fn push(c: &mut Cands, e: usize, v: i64) {
    if c.1 < c.0.len() {
        c.0[c.1] = (e, v);
        c.1 += 1;
    }
}

/// (group0 start, group1 start, end, fields)
type Found = Option<(usize, usize, usize, Option<Fields>)>;

struct Cur<'a> {
    b: &'a [u8],
    s: &'a str,
    /// a non-ASCII character met where the regex might have taken it
    uni: bool,
    /// highest byte index looked at
    max: Cell<usize>,
    /// last match start a word search tries
    limit: usize,
}

const fn key3(s: &[u8; 3]) -> u32 {
    s[0] as u32 | (s[1] as u32) << 8 | (s[2] as u32) << 16
}

const MONTHS: [u32; 12] = [
    key3(b"jan"),
    key3(b"feb"),
    key3(b"mar"),
    key3(b"apr"),
    key3(b"may"),
    key3(b"jun"),
    key3(b"jul"),
    key3(b"aug"),
    key3(b"sep"),
    key3(b"oct"),
    key3(b"nov"),
    key3(b"dec"),
];
const WEEKDAYS: [u32; 7] =
    [key3(b"mon"), key3(b"tue"), key3(b"wed"), key3(b"thu"), key3(b"fri"), key3(b"sat"), key3(b"sun")];

impl Cur<'_> {
    #[inline(always)]
    fn at(&self, i: usize) -> u8 {
        self.seen(i);
        self.b.get(i).copied().unwrap_or(0)
    }

    /// `\d` (Unicode in Python: a non-ASCII byte makes the result unsure)
    #[inline(always)]
    fn digit(&mut self, i: usize) -> bool {
        let b = self.at(i);
        if b >= 0x80 {
            self.uni = true;
        }
        b.is_ascii_digit()
    }

    #[inline(always)]
    fn dval(&self, i: usize) -> i64 {
        i64::from(self.at(i).wrapping_sub(b'0'))
    }

    #[inline(always)]
    fn range(&self, i: usize, lo: u8, hi: u8) -> bool {
        let b = self.at(i);
        b >= lo && b <= hi && i < self.b.len()
    }

    fn char_before(&self, i: usize) -> Option<char> {
        self.s.get(..i)?.chars().next_back()
    }

    #[inline(always)]
    fn seen(&self, i: usize) {
        if i > self.max.get() {
            self.max.set(i);
        }
    }

    fn char_at(&self, i: usize) -> Option<char> {
        self.seen(i.saturating_add(3));
        self.s.get(i..)?.chars().next()
    }

    #[inline]
    fn word_before(&self, i: usize) -> bool {
        if i == 0 {
            return false;
        }
        let b = self.at(i - 1);
        if b < 0x80 {
            return b.is_ascii_alphanumeric() || b == b'_';
        }
        self.char_before(i).is_some_and(is_word_char)
    }

    #[inline]
    fn word_at(&self, i: usize) -> bool {
        self.seen(i);
        if i >= self.b.len() {
            return false;
        }
        let b = self.at(i);
        if b < 0x80 {
            return b.is_ascii_alphanumeric() || b == b'_';
        }
        self.char_at(i).is_some_and(is_word_char)
    }

    /// A non-ASCII numeric character at `i` (marks the result unsure).
    fn uni_digit(&mut self, i: usize) -> bool {
        if self.at(i) >= 0x80 && self.char_at(i).is_some_and(char::is_numeric) {
            self.uni = true;
        }
        self.uni
    }

    /// fail2ban's bound lookaheads: not between two word characters.
    #[inline(always)]
    fn bound(&self, i: usize) -> bool {
        !(self.word_before(i) && self.word_at(i))
    }

    /// 3 letters, case-insensitively one of `names`.
    #[inline]
    fn name3(&mut self, i: usize, names: &[u32]) -> Option<i64> {
        self.seen(i + 2);
        let b = self.b.get(i..i + 3)?;
        if b.is_ascii() {
            let w = key3(&[b[0].to_ascii_lowercase(), b[1].to_ascii_lowercase(), b[2].to_ascii_lowercase()]);
            return names.iter().position(|n| *n == w).map(|p| p as i64);
        }
        // `ſ` (U+017F) and `K` (U+212A) fold to ASCII letters: let the
        // regex decide when one of them is where a name could be
        self.seen(i + 12);
        let r = self.s.get(i..).unwrap_or("");
        if r.chars().take(3).any(|c| matches!(c, '\u{17f}' | '\u{212a}')) {
            self.uni = true;
        }
        None
    }

    /// `%ExY`: 4 digits whose decade is accepted.
    #[inline]
    fn ex_year(&mut self, i: usize, dec: (i64, i64)) -> Option<i64> {
        if !(self.range(i, b'0', b'9') && self.range(i + 1, b'0', b'9') && self.range(i + 2, b'0', b'9')) {
            return None;
        }
        let d = self.dval(i) * 100 + self.dval(i + 1) * 10 + self.dval(i + 2);
        if d < dec.0 || d > dec.1 || !self.digit(i + 3) {
            return None;
        }
        Some(d * 10 + self.dval(i + 3))
    }

    /// `%d`: `[1-2]\d|[0 ]?[1-9]|3[0-1]`
    #[inline]
    fn day(&mut self, p: usize) -> Cands {
        let mut c = Cands::default();
        if self.range(p, b'1', b'2') && self.digit(p + 1) {
            push(&mut c, p + 2, self.dval(p) * 10 + self.dval(p + 1));
        }
        if matches!(self.at(p), b'0' | b' ') && p < self.b.len() && self.range(p + 1, b'1', b'9') {
            push(&mut c, p + 2, self.dval(p + 1));
        }
        if self.range(p, b'1', b'9') {
            push(&mut c, p + 1, self.dval(p));
        }
        if self.at(p) == b'3' && self.range(p + 1, b'0', b'1') {
            push(&mut c, p + 2, 30 + self.dval(p + 1));
        }
        c
    }

    /// `%m`: `0?[1-9]|1[0-2]`
    #[inline]
    fn month_num(&mut self, p: usize) -> Cands {
        let mut c = Cands::default();
        if self.at(p) == b'0' && self.range(p + 1, b'1', b'9') {
            push(&mut c, p + 2, self.dval(p + 1));
        }
        if self.range(p, b'1', b'9') {
            push(&mut c, p + 1, self.dval(p));
        }
        if self.at(p) == b'1' && self.range(p + 1, b'0', b'2') {
            push(&mut c, p + 2, 10 + self.dval(p + 1));
        }
        c
    }

    /// `[lo-hi]?\d` optionally followed by the alternative `two[0-two_hi]`
    /// (`%H`: `[0-1]?\d|2[0-3]`, `%M`: `[0-5]?\d`, `%S`: `[0-5]?\d|6[0-1]`,
    /// `%k`: `[0-2]?\d`).
    #[inline]
    fn num2(&mut self, p: usize, hi: u8, alt: Option<(u8, u8)>) -> Cands {
        let mut c = Cands::default();
        if self.range(p, b'0', hi) && self.digit(p + 1) {
            push(&mut c, p + 2, self.dval(p) * 10 + self.dval(p + 1));
        }
        if self.digit(p) {
            push(&mut c, p + 1, self.dval(p));
        }
        if let Some((first, last)) = alt
            && self.at(p) == first
            && self.range(p + 1, b'0', last)
        {
            push(&mut c, p + 2, self.dval(p) * 10 + self.dval(p + 1));
        }
        c
    }

    /// `(?:[.,]%f)?` ends, greedy first (`%f` = `[0-9]{1,6}`).
    #[inline]
    fn fraction(&self, p: usize, seps: &[u8]) -> ([usize; 7], usize) {
        let mut out = ([0usize; 7], 0);
        if seps.contains(&self.at(p)) && p < self.b.len() {
            let n = self.b[p + 1..].iter().take(6).take_while(|c| c.is_ascii_digit()).count();
            self.seen(p + 1 + n);
            for l in (1..=n).rev() {
                out.0[out.1] = p + 1 + l;
                out.1 += 1;
            }
        }
        out.0[out.1] = p;
        out.1 += 1;
        out
    }

    /// `%z` = `Z|UTC|GMT|[+-][01]\d(?::?\d{2})?` at `q`: (end, text end) cands.
    #[inline]
    fn zone(&mut self, q: usize, ci: bool) -> ([usize; 3], usize) {
        let mut out = ([0usize; 3], 0);
        let up = |b: u8| if ci { b.to_ascii_uppercase() } else { b };
        let b0 = up(self.at(q));
        if b0 == b'Z' {
            out.0[0] = q + 1;
            out.1 = 1;
            return out;
        }
        if b0 == b'U' && up(self.at(q + 1)) == b'T' && up(self.at(q + 2)) == b'C'
            || b0 == b'G' && up(self.at(q + 1)) == b'M' && up(self.at(q + 2)) == b'T'
        {
            out.0[0] = q + 3;
            out.1 = 1;
            return out;
        }
        if matches!(b0, b'+' | b'-') && matches!(self.at(q + 1), b'0' | b'1') && self.digit(q + 2) {
            let r = q + 3;
            if self.at(r) == b':' && self.digit(r + 1) && self.digit(r + 2) {
                out.0[out.1] = r + 3;
                out.1 += 1;
            }
            if self.digit(r) && self.digit(r + 1) {
                out.0[out.1] = r + 2;
                out.1 += 1;
            }
            out.0[out.1] = r;
            out.1 += 1;
        }
        out
    }

    fn zone_value(&self, q: usize, e: usize) -> Option<i64> {
        let t = &self.s[q..e];
        if matches!(t, "Z" | "UTC" | "GMT") { Some(0) } else { zone_offset_minutes(t) }
    }

    #[inline]
    fn body(&mut self, shape: Shape, dec: (i64, i64), p: usize) -> Option<(usize, Option<Fields>)> {
        match shape {
            Shape::Iso => self.iso(p, dec),
            Shape::Syslog => self.syslog(p, dec),
            Shape::Clf => self.clf(p, dec),
        }
        .map(|(e, f)| (e, Some(f)))
    }

    /// `H:M:S` then the fraction, then `rest(end) -> Option<(end, tz)>`.
    #[allow(clippy::type_complexity)]
    #[inline]
    fn hms(
        &mut self,
        p: usize,
        h_hi: u8,
        h_alt: Option<(u8, u8)>,
        frac: &[u8],
        mut rest: impl FnMut(&mut Self, usize) -> Option<(usize, Option<i64>, bool)>,
    ) -> Option<(usize, [i64; 3], Option<i64>, bool)> {
        let hs = self.num2(p, h_hi, h_alt);
        for &(p1, h) in &hs.0[..hs.1] {
            if self.at(p1) != b':' {
                continue;
            }
            let ms = self.num2(p1 + 1, b'5', None);
            for &(p2, mi) in &ms.0[..ms.1] {
                if self.at(p2) != b':' {
                    continue;
                }
                let ss = self.num2(p2 + 1, b'5', Some((b'6', b'1')));
                for &(p3, s) in &ss.0[..ss.1] {
                    let fr = self.fraction(p3, frac);
                    for &p4 in &fr.0[..fr.1] {
                        if let Some((e, tz, bad)) = rest(self, p4) {
                            return Some((e, [h, mi, s], tz, bad));
                        }
                    }
                }
            }
        }
        None
    }

    #[inline]
    fn iso(&mut self, p: usize, dec: (i64, i64)) -> Option<(usize, Fields)> {
        let y = self.ex_year(p, dec)?;
        let sep = self.at(p + 4);
        if !matches!(sep, b'-' | b'/' | b'.') {
            return None;
        }
        let ms = self.month_num(p + 5);
        for &(p2, m) in &ms.0[..ms.1] {
            if self.at(p2) != sep {
                continue;
            }
            let ds = self.day(p2 + 1);
            for &(p3, d) in &ds.0[..ds.1] {
                let mut ts = ([0usize; 3], 0);
                if self.at(p3) == b'T' {
                    ts.0[ts.1] = p3 + 1;
                    ts.1 += 1;
                } else if self.at(p3) == b' ' {
                    if self.at(p3 + 1) == b' ' {
                        ts.0[ts.1] = p3 + 2;
                        ts.1 += 1;
                    }
                    ts.0[ts.1] = p3 + 1;
                    ts.1 += 1;
                }
                for &p4 in &ts.0[..ts.1] {
                    let mut rest = |c: &mut Self, q: usize| -> Option<(usize, Option<i64>, bool)> {
                        // (?:\s*%z)?
                        let mut z = q;
                        while z < c.b.len() && matches!(c.b[z], b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
                            z += 1;
                        }
                        if c.at(z) >= 0x80 && c.char_at(z).is_some_and(char::is_whitespace) {
                            c.uni = true;
                        }
                        let zc = c.zone(z, false);
                        for &e in &zc.0[..zc.1] {
                            if c.bound(e) {
                                let v = c.zone_value(z, e);
                                return Some((e, v, v.is_none()));
                            }
                        }
                        c.bound(q).then_some((q, None, false))
                    };
                    if let Some((e, [h, mi, s], tz, bad)) = self.hms(p4, b'1', Some((b'2', b'3')), b".,", &mut rest) {
                        return Some((e, fields(Some(y), m, d, h, mi, s, tz, bad)));
                    }
                }
            }
        }
        None
    }

    #[inline]
    fn syslog(&mut self, p: usize, dec: (i64, i64)) -> Option<(usize, Fields)> {
        let mut starts = ([0usize; 2], 0);
        if self.name3(p, &WEEKDAYS).is_some() && self.at(p + 3) == b' ' {
            starts.0[0] = p + 4;
            starts.1 = 1;
        }
        starts.0[starts.1] = p;
        starts.1 += 1;
        for &p1 in &starts.0[..starts.1] {
            let Some(m) = self.name3(p1, &MONTHS) else {
                continue;
            };
            if self.at(p1 + 3) != b' ' {
                continue;
            }
            let ds = self.day(p1 + 4);
            for &(p3, d) in &ds.0[..ds.1] {
                if self.at(p3) != b' ' {
                    continue;
                }
                let mut sp = ([0usize; 2], 0);
                if self.at(p3 + 1) == b' ' {
                    sp.0[0] = p3 + 2;
                    sp.1 = 1;
                }
                sp.0[sp.1] = p3 + 1;
                sp.1 += 1;
                for &p4 in &sp.0[..sp.1] {
                    let mut year = None;
                    let mut rest = |c: &mut Self, q: usize| -> Option<(usize, Option<i64>, bool)> {
                        // (?: %ExY)?
                        if c.at(q) == b' '
                            && let Some(y) = c.ex_year(q + 1, dec)
                            && c.bound(q + 5)
                        {
                            year = Some(y);
                            return Some((q + 5, None, false));
                        }
                        year = None;
                        c.bound(q).then_some((q, None, false))
                    };
                    if let Some((e, [h, mi, s], _, _)) = self.hms(p4, b'2', None, b".", &mut rest) {
                        return Some((e, fields(year, m + 1, d, h, mi, s, None, false)));
                    }
                }
            }
        }
        None
    }

    #[inline]
    fn clf(&mut self, p: usize, dec: (i64, i64)) -> Option<(usize, Fields)> {
        let ds = self.day(p);
        for &(p1, d) in &ds.0[..ds.1] {
            let sep = self.at(p1);
            if !matches!(sep, b'-' | b'/') {
                continue;
            }
            let Some(m) = self.name3(p1 + 1, &MONTHS) else {
                continue;
            };
            if self.at(p1 + 4) != sep {
                continue;
            }
            let Some(y) = self.ex_year(p1 + 5, dec) else {
                continue;
            };
            let p3 = p1 + 9;
            let mut hs = ([0usize; 2], 0);
            if matches!(self.at(p3), b' ' | b':') {
                hs.0[0] = p3 + 1;
                hs.1 = 1;
            }
            hs.0[hs.1] = p3;
            hs.1 += 1;
            for &p4 in &hs.0[..hs.1] {
                let mut rest = |c: &mut Self, q: usize| -> Option<(usize, Option<i64>, bool)> {
                    // (?: %z)? (case-insensitive)
                    if c.at(q) == b' ' {
                        let zc = c.zone(q + 1, true);
                        for &e in &zc.0[..zc.1] {
                            if c.bound(e) {
                                let v = c.zone_value(q + 1, e);
                                return Some((e, v, v.is_none()));
                            }
                        }
                    }
                    c.bound(q).then_some((q, None, false))
                };
                if let Some((e, [h, mi, s], tz, bad)) = self.hms(p4, b'1', Some((b'2', b'3')), b".", &mut rest) {
                    return Some((e, fields(Some(y), m + 1, d, h, mi, s, tz, bad)));
                }
            }
        }
        None
    }

    /// Whether `^(?:\W{0,2})?(?:%Z )?`, `%Z` being `(?P<Z>Z|[A-Z]{3,5})`
    /// matched without regard to case, can only take the empty string at
    /// the line start: the line starts with an ASCII word character (no
    /// `\W` prefix), and not with `Z ` or three to five ASCII letters and a
    /// space followed by a letter or a non-ASCII character. A non-ASCII character after the letters (a case variant like
    /// `ſ` could continue them) makes it `false`, as does every other doubt;
    /// the caller then runs the regex.
    fn zone_impossible(&self) -> bool {
        let b0 = self.at(0);
        if !(b0.is_ascii_alphanumeric() || b0 == b'_') {
            return false;
        }
        let mut w = 0;
        while w < 6 && self.at(w).is_ascii_alphabetic() {
            w += 1;
        }
        let after = self.at(w);
        if after >= 0x80 {
            return false;
        }
        // (`%a` and `%b` after the zone begin with a letter)
        let zone = after == b' '
            && ((3..=5).contains(&w) || (w == 1 && b0 | 0x20 == b'z'))
            && (self.at(w + 1).is_ascii_alphabetic() || self.at(w + 1) >= 0x80);
        !zone
    }

    /// `^(?:\W{0,2})?` then `body` (greedy: two, one, no prefix characters).
    fn anchored(
        &mut self,
        pos: usize,
        mut body: impl FnMut(&mut Self, usize) -> Option<(usize, Option<Fields>)>,
    ) -> Found {
        if pos > 0 {
            return None;
        }
        let mut ks = [0usize; 3];
        let mut n = 0;
        let mut k = 0;
        while n < 2 {
            match self.char_at(k) {
                Some(ch) if !is_word_char(ch) => {
                    k += ch.len_utf8();
                    n += 1;
                    ks[n] = k;
                }
                _ => break,
            }
        }
        for i in (0..=n).rev() {
            let k = ks[i];
            if let Some((e, f)) = body(self, k) {
                return Some((0, k, e, f));
            }
        }
        None
    }

    fn search_word(&mut self, pos: usize, shape: Shape, dec: (i64, i64)) -> Found {
        let len = self.b.len();
        let mut p = pos;
        while p <= len && p <= self.limit {
            let b = self.at(p);
            let cand = match shape {
                Shape::Iso => b.is_ascii_digit(),
                Shape::Syslog => b.is_ascii_alphabetic() || (b >= 0x80 && p < len),
                Shape::Clf => b.is_ascii_digit() || b == b' ',
            };
            if cand
                && self.bound(p)
                && let Some((e, f)) = self.body(shape, dec, p)
            {
                return Some((p, p, e, f));
            }
            if self.uni {
                return None;
            }
            p += 1;
            while p < len && (self.b[p] & 0xC0) == 0x80 {
                p += 1;
            }
        }
        None
    }

    /// `\d{10,11}\b(?:\.\d{3,6})?` then fail2ban's end bound; the end.
    fn epoch(&mut self, p: usize) -> Option<usize> {
        self.seen(p);
        let n = self.b.get(p..)?.iter().take(12).take_while(|c| c.is_ascii_digit()).count();
        // a non-ASCII digit next to the ASCII ones would be a `\d` for Python
        if self.uni_digit(p) || self.uni_digit(p + n) {
            return None;
        }
        if !(n == 10 || n == 11) || self.word_at(p + n) {
            return None;
        }
        let q = p + n;
        if self.at(q) == b'.' && q < self.b.len() {
            let m = self.b[q + 1..].iter().take(7).take_while(|c| c.is_ascii_digit()).count();
            if self.uni_digit(q + 1 + m) {
                return None;
            }
            if (3..=6).contains(&m) && !self.word_at(q + 1 + m) {
                return Some(q + 1 + m);
            }
        }
        Some(q)
    }

    /// `(?:^|(?<=^\[)|(?<=\baudit\())EPOCH` searched from `pos`.
    fn search_epoch(&mut self, pos: usize) -> Found {
        self.seen(usize::MAX);
        let try_at = |c: &mut Self, p: usize| c.epoch(p).map(|e| (p, p, e, None));
        if pos == 0
            && let Some(f) = try_at(self, 0)
        {
            return Some(f);
        }
        if pos <= 1
            && self.at(0) == b'['
            && let Some(f) = try_at(self, 1)
        {
            return Some(f);
        }
        let mut from = 0;
        while let Some(i) = self.s.get(from..).and_then(|r| r.find("audit(")) {
            let a = from + i;
            let p = a + 6;
            from = a + 1;
            if p < pos || p <= 1 || self.word_before(a) {
                continue;
            }
            if let Some(f) = try_at(self, p) {
                return Some(f);
            }
        }
        None
    }
}

#[allow(clippy::too_many_arguments)]
fn fields(year: Option<i64>, m: i64, d: i64, h: i64, mi: i64, s: i64, tz: Option<i64>, bad: bool) -> Fields {
    // all values come from at most 4 digits (zone: minutes within a day)
    Fields {
        year: year.map(|y| y as i32),
        month: Some(m as i32),
        day: Some(d as i32),
        hour: h as i32,
        minute: mi as i32,
        second: s as i32,
        tzoffset: tz.map(|t| t as i32),
        bad,
        ..Fields::default()
    }
}

#[cfg(test)]
mod tests {
    //! The hand matchers against the regexes fail2ban builds for the same
    //! templates (run by `fancy_regex`), on generated near-miss lines.

    use super::*;
    use crate::TimeContext;
    use crate::strptime::ZoneCache;
    use crate::template::{Template, get_pattern_template};

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const SEEDS: &[&str] = &[
        "Jan 23 21:59:59 host sshd[1]: x",
        "Sun Jan 23 21:59:59.011 2005 x",
        "Jan  3 1:02:03.123456 2019",
        "2005-01-23T21:59:59.981746+01:00 x",
        "2005/01/23  8:59:59,12 \t UTC",
        "2005.1.3 21:59:59Z",
        "x 2005-01-23 21:59:59 -05 y",
        "1.2.3.4 - - [31/Oct/2006:09:22:55 -0000] \"GET /\"",
        " 5/jan/2005 09:22:55.1 utc",
        "26-Jul-2007:15:20:52 +02:00",
        "1138457732 x",
        "[1138457732.123] x",
        "type=USER audit(1138457732.123456:42): x",
        "@@1138457732",
        "11384577321.1234567 x",
    ];
    const PIECES: &[&str] = &[
        "0", "1", "2", "3", "5", "6", "9", " ", "  ", ":", ".", ",", "-", "/", "T", "Z", "z", "+", "_", "a", "x", "[",
        "]", "(", "@", "é", "٣", "\u{2003}", "\t", "ſ", "UTC", "gmt", "Sep", "sun ", "2005", "2035", "1999", "24",
        "60", "61", "audit(", "\n",
    ];

    fn mutate(r: &mut Rng, s: &str) -> String {
        let mut chars: Vec<String> = s.chars().map(|c| c.to_string()).collect();
        for _ in 0..1 + r.below(3) {
            let i = r.below(chars.len() + 1);
            let piece = PIECES[r.below(PIECES.len())].to_string();
            match r.below(3) {
                0 if i < chars.len() => chars[i] = piece,
                1 if i < chars.len() => {
                    chars.remove(i);
                }
                _ => chars.insert(i, piece),
            }
        }
        chars.concat()
    }

    fn boundaries(s: &str) -> Vec<usize> {
        (0..=s.len()).filter(|i| s.is_char_boundary(*i)).collect()
    }

    /// A hit's spans (what the differential tests compare).
    fn span(h: &Option<RawHit>) -> Option<(usize, usize, usize, usize)> {
        h.as_ref().map(|h| (h.s0, h.e0, h.s1, h.e1))
    }

    /// A hand matcher's answer as a hit or none, or None when it is unsure.
    fn answer(r: HandResult) -> Option<Option<RawHit>> {
        match r {
            HandResult::Unsure => None,
            HandResult::Miss => Some(None),
            HandResult::Hit(h) => Some(Some(h)),
        }
    }

    #[test]
    fn hand_matchers_agree_with_regexes() {
        let b = Build::for_year(2026);
        let mut templates: Vec<Template> = Vec::new();
        for p in [ISO, SYSLOG, CLF] {
            templates.push(get_pattern_template(p, None, &b).unwrap());
            templates.push(get_pattern_template(&format!("{{^LN-BEG}}{p}"), None, &b).unwrap());
        }
        templates.push(get_pattern_template("EPOCH", None, &b).unwrap());
        templates.push(get_pattern_template("{^LN-BEG}EPOCH", None, &b).unwrap());
        assert!(templates.iter().all(|t| t.hand.is_some()));
        let ctx = TimeContext::fail2ban_test();
        let mut zc = ZoneCache::default();
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut compared, mut unsure, mut hits) = (0usize, 0usize, 0usize);
        for round in 0..6000 {
            let seed = SEEDS[round % SEEDS.len()];
            let line = if round < SEEDS.len() { seed.to_string() } else { mutate(&mut r, seed) };
            let bs = boundaries(&line);
            for t in &templates {
                let hand = t.hand.unwrap();
                for k in 0..3 {
                    let (pos, endpos) = match k {
                        0 => (0, line.len()),
                        _ => {
                            let a = bs[r.below(bs.len())];
                            let e = bs[r.below(bs.len())];
                            (a.min(e), a.max(e))
                        }
                    };
                    let hay = &line[..endpos];
                    let want = t.regex_search(hay, pos);
                    // the template's own search (hand, prefilter, regex)
                    let full = t.match_date(&line, pos, endpos);
                    assert_eq!(span(&full), span(&want), "match_date of {} on {hay:?} from {pos}", t.name);
                    let Some(got) = answer(hand.search(hay, pos)) else {
                        unsure += 1;
                        continue;
                    };
                    compared += 1;
                    assert_eq!(span(&got), span(&want), "{} on {hay:?} from {pos}", t.name);
                    if let (Some(g), Some(w)) = (&got, &want) {
                        hits += 1;
                        assert_eq!(
                            t.time(hay, g, &ctx, &mut zc),
                            t.time(hay, w, &ctx, &mut zc),
                            "{} time on {hay:?}",
                            t.name
                        );
                    }
                }
            }
        }
        eprintln!("hand vs regex: {compared} compared, {hits} hits, {unsure} unsure");
        assert!(hits > 2500, "too few hits compared: {hits}");
        assert!(unsure * 10 < compared, "hand matchers unsure too often: {unsure}/{compared}");
    }

    /// The `{^LN-BEG}(?:%Z )?…` syslog matcher against its regex: lines with
    /// and without a word (a zone or not) before the date, mutated.
    #[test]
    fn zone_syslog_matcher_agrees_with_its_regex() {
        let b = Build::for_year(2026);
        let t = get_pattern_template(&format!("{{^LN-BEG}}{ZONE_SYSLOG}"), None, &b).unwrap();
        let hand = t.hand.expect("the zone syslog template has a hand matcher");
        assert!(matches!(hand, Hand::ZoneSyslog { .. }));
        let ctx = TimeContext::fail2ban_test();
        let mut zc = ZoneCache::default();
        let mut r = Rng(0x2545_f491_4f6c_dd1d);
        let seeds = [
            "Jan 23 21:59:59 host sshd[1]: x",
            "Sun Jan 23 21:59:59.011 2005 x",
            "Jan  3 1:02:03.123456 2019",
            "UTC Jan 23 21:59:59 host",
            "port Jan 23 21:59:59 host",
            "Z Jan 23 21:59:59 x",
            "z Sun Jan 23 21:59:59 x",
            "CEST Jan 23 21:59:59 x",
            "abcdef Jan 23 21:59:59 x",
            "ab Jan 23 21:59:59 x",
            "_Jan 23 21:59:59 x",
            "9Jan 23 21:59:59 x",
            " port Jan 23 21:59:59 x",
            "[Jan 23 21:59:59] x",
            "Jaſ Jan 23 21:59:59 x",
            "Mar  2 00:00:04 bastion sshd[18287]: Invalid user debian from 36.108.238.51 port 23588",
        ];
        let (mut hits, mut decided, mut unsure) = (0usize, 0usize, 0usize);
        for round in 0..20_000 {
            let seed = seeds[round % seeds.len()];
            let line = if round < seeds.len() { seed.to_string() } else { mutate(&mut r, seed) };
            let bs = boundaries(&line);
            for k in 0..2 {
                let endpos = if k == 0 { line.len() } else { bs[r.below(bs.len())] };
                let hay = &line[..endpos];
                let want = t.regex_search(hay, 0);
                let full = t.match_date(&line, 0, endpos);
                assert_eq!(span(&full), span(&want), "match_date on {hay:?}");
                let Some(got) = answer(hand.search(hay, 0)) else {
                    unsure += 1;
                    continue;
                };
                decided += 1;
                assert_eq!(span(&got), span(&want), "hand on {hay:?}");
                if let (Some(g), Some(w)) = (&got, &want) {
                    hits += 1;
                    assert_eq!(t.time(hay, g, &ctx, &mut zc), t.time(hay, w, &ctx, &mut zc), "time on {hay:?}");
                }
            }
        }
        eprintln!("zone syslog hand vs regex: {decided} decided, {hits} hits, {unsure} unsure");
        assert!(hits > 2500, "too few hits compared: {hits}");
        assert!(decided > 15_000, "too few lines decided by the hand matcher: {decided}");
        // (a word and a space before the date: the regex decides)
        for line in ["UTC Jan 23 21:59:59 x", "z Jan 23 21:59:59 x", " Jan 23 21:59:59 x", "Jaſ Jan 23 21:59:59 x"] {
            assert!(matches!(hand.search(line, 0), HandResult::Unsure), "{line:?}");
        }
    }
}
