//! Date templates: fail2ban's `DateTemplate` family (pattern templates with
//! strftime-like directives, `Epoch`, `LongEpoch`, `TAI64N`), built with the
//! same regex rewriting fail2ban applies (word bounds, `{^LN-BEG}`, `{UNB}`,
//! `**`, group 1).

use std::sync::{LazyLock, OnceLock};

use fancy_regex::Regex as FRegex;
use stadtwache_core::Timestamp;

use crate::hand::{Hand, HandResult};
use crate::strptime::{self, Fields, Key, ZoneCache};
use crate::{DateError, TimeContext, metare, pyre};

pub(crate) const LINE_BEGIN: u8 = 8;
pub(crate) const LINE_END: u8 = 4;
pub(crate) const WORD_BEGIN: u8 = 2;
pub(crate) const WORD_END: u8 = 1;

/// fail2ban's default templates, in its order.
pub(crate) const DEFAULT_PATTERNS: [&str; 17] = [
    r"%ExY(?P<_sep>[-/.])%m(?P=_sep)%d(?:T|  ?)%H:%M:%S(?:[.,]%f)?(?:\s*%z)?",
    r"(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    r"(?:%a )?%b %d %ExY %k:%M:%S(?:\.%f)?",
    r"%d(?P<_sep>[-/])%m(?P=_sep)(?:%ExY|%Exy) %k:%M:%S",
    r"%d(?P<_sep>[-/])%b(?P=_sep)%ExY[ :]?%H:%M:%S(?:\.%f)?(?: %z)?",
    r"%m/%d/%ExY:%H:%M:%S",
    r"%m-%d-%ExY %k:%M:%S(?:\.%f)?",
    r"EPOCH",
    r"{^LN-BEG}%H:%M:%S",
    r"^<%m/%d/%Exy@%H:%M:%S>",
    r"%Exy%Exm%Exd  ?%H:%M:%S",
    r"%b %d, %ExY %I:%M:%S %p",
    r"^%b-%d-%Exy %k:%M:%S",
    r"%ExY%Exm%Exd(?:T|  ?)%ExH%ExM%ExS(?:[.,]%f)?(?:\s*%z)?",
    r"(?:%Z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    r"(?:%z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    r"TAI64N",
];

const EPOCH_RE: &str = r"\d{10,11}\b(?:\.\d{3,6})?";
const LEPOCH_RE: &str = r"\d{10,11}(?:\d{3}(?:\.\d{1,6}|\d{3})?)?";

/// Context of template construction: which years `%ExY` accepts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Build {
    /// Decades (year / 10) `%ExY` accepts: `min..=max`.
    pub ex_decades: (i64, i64),
    /// Compile template regexes on first use (only for fail2ban's own
    /// default templates, which are known to compile: a start-up with
    /// `{^LN-BEG}` then compiles none of the 34 it builds, only the ones a
    /// line needs, mostly none as the hand matchers decide).
    pub lazy: bool,
}

impl Build {
    /// Like fail2ban's `_updateTimeRE`: the centuries/decades of the years
    /// 2000 (its test "alternate now" 2001 minus one) up to `now_year + 3`.
    pub fn for_year(now_year: i64) -> Build {
        let now_year = now_year.clamp(1000, 9990);
        let mut lo = (now_year - 1) / 10;
        let mut hi = (now_year + 3) / 10;
        let mut y = 2000;
        while y <= now_year {
            lo = lo.min(y / 10);
            hi = hi.max(y / 10);
            y += 3;
        }
        Build { ex_decades: (lo, hi), lazy: false }
    }

    /// The same, compiling regexes on first use (fixed, known-good patterns only).
    pub fn lazy(self) -> Build {
        Build { lazy: true, ..self }
    }

    fn ex_year_re(&self) -> String {
        let alts: Vec<String> = (self.ex_decades.0..=self.ex_decades.1).map(|d| d.to_string()).collect();
        format!(r"(?P<Y>(?:{})\d)", alts.join("|"))
    }
}

/// How a match becomes an instant.
#[derive(Debug, Clone)]
pub(crate) enum Conv {
    /// strptime fields: (key, group index) in pattern order; the `p` group.
    Strptime {
        keys: Vec<(Key, usize)>,
        ampm: Option<usize>,
    },
    Epoch {
        grp: usize,
        long: bool,
    },
    Tai64n,
}

#[derive(Debug)]
pub(crate) struct Template {
    pub name: String,
    /// `DatePatternRegex.pattern` (None for Epoch/TAI64N templates).
    pub pattern: Option<String>,
    pub flags: u8,
    pub weight: f64,
    re: LazyRe,
    pub hand: Option<Hand>,
    /// How a match becomes an instant (for strptime templates derived from
    /// the regex's group names, so set with it).
    conv: OnceLock<Conv>,
}

/// A template regex, compiled at construction or on first use.
#[derive(Debug)]
struct LazyRe {
    re: OnceLock<Re>,
    /// (pattern named in errors, Python regex) for a deferred compile
    src: (String, String),
}

impl LazyRe {
    fn new(pattern_for_err: &str, py_regex: String, lazy: bool) -> Result<LazyRe, DateError> {
        let re = OnceLock::new();
        if !lazy {
            let _ = re.set(compile(pattern_for_err, &py_regex)?);
        }
        Ok(LazyRe { re, src: (pattern_for_err.to_string(), py_regex) })
    }

    fn get(&self) -> &Re {
        self.re.get_or_init(|| compile(&self.src.0, &self.src.1).expect("default date template compiles"))
    }
}

/// What a template's search found.
#[derive(Debug, Clone)]
pub(crate) struct RawHit {
    /// whole match (group 0)
    pub s0: usize,
    pub e0: usize,
    /// group 1: the date span fail2ban cuts out
    pub s1: usize,
    pub e1: usize,
    pub data: HitData,
}

#[derive(Debug, Clone)]
pub(crate) enum HitData {
    Fields(Fields),
    /// group spans of a regex match
    Locs(Vec<Option<(usize, usize)>>),
    /// the epoch text is group 1
    Group1,
}

// --- fail2ban's regexes over regexes --------------------------------------

fn meta(re: &str) -> FRegex {
    FRegex::new(re).expect("valid meta regex")
}

// (`DateTemplate`'s `RE_GROUPED`, `RE_GROUP`, `RE_GLOBALFLAGS`,
// `RE_NO_WRD_BOUND_BEG/END`, `RE_DEL_WRD_BOUNDS`, `RE_LINE_BOUND_BEG/END`,
// `RE_ALPHA_PATTERN` and the `{EPOCH}` test are string scans: see [`metare`].)
pub(crate) static RE_EPOCH_PATTERN: LazyLock<FRegex> = LazyLock::new(|| meta(r"(?i)(?<!\\)\{L?EPOCH\}"));
pub(crate) static RE_DATE_PREMATCH: LazyLock<FRegex> = LazyLock::new(|| meta(r"(?i)(?<!\\)\{DATE\}"));
static RE_EXSANC_BOUND_BEG: LazyLock<FRegex> = LazyLock::new(|| meta(r"^\((?:\?:)?\^\|\\b\|\\W\)"));
static RE_EXEANC_BOUND_BEG: LazyLock<FRegex> = LazyLock::new(|| meta(r"\(\?=\\b\|\\W\|\$\)$"));

/// `DateTemplate.unboundPattern`.
pub(crate) fn unbound_pattern(p: &str) -> String {
    let p = p.strip_prefix("{UNB}").unwrap_or(p);
    let p = p.strip_prefix("{^LN-BEG}").unwrap_or(p);
    let p = RE_EXSANC_BOUND_BEG.replace(p, "");
    RE_EXEANC_BOUND_BEG.replace(&p, "").into_owned()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum WordBegin {
    No,
    Yes,
    Start,
}

/// `DateTemplate.setRegex`: returns (regex, flags); may prefix the name.
fn set_regex(name: &mut String, regex: &str, word_begin: WordBegin, word_end: bool) -> (String, u8) {
    let mut regex = regex.trim().to_string();
    let gf = metare::global_flags(&regex).map(|(s, e)| (s, e, regex[s..e].to_string()));
    if let Some((s, e, _)) = &gf {
        regex.replace_range(*s..*e, "");
    }
    let bound_begin = word_begin != WordBegin::No && !metare::no_word_bound_begin(&regex);
    let bound_end = word_end && !metare::no_word_bound_end(&regex);
    if !metare::grouped(&regex)
        && let Some((g1, g2, g3)) = metare::group_parts(&regex)
    {
        regex = format!("{g1}({g2}){g3}");
    }
    let mut flags = 0;
    if bound_begin {
        if word_begin == WordBegin::Start {
            flags |= LINE_BEGIN;
            regex = format!(r"^(?:\W{{0,2}})?{regex}");
            if !name.starts_with("{^LN-BEG}") {
                name.insert_str(0, "{^LN-BEG}");
            }
        } else {
            flags |= WORD_BEGIN;
            regex = format!(r"(?=^|\b|\W){regex}");
        }
    }
    if bound_end {
        flags |= WORD_END;
        regex.push_str(r"(?=\b|\W|$)");
    }
    if flags & LINE_BEGIN == 0 && metare::line_bound_begin(&regex) {
        flags |= LINE_BEGIN;
    }
    if flags & LINE_END == 0 && metare::line_bound_end(&regex) {
        flags |= LINE_END;
    }
    let regex = metare::del_word_bounds(&regex);
    let regex = match gf {
        Some((_, _, g)) => g + &regex,
        None => regex,
    };
    (regex, flags)
}

/// `timeRE[key]` and the name fail2ban shows for it.
fn directive(key: &str, b: &Build) -> Option<(String, &'static str)> {
    let (re, name): (&str, &str) = match key {
        "%" => ("%", "%"),
        "A" => ("(?P<A>wednesday|thursday|saturday|tuesday|monday|friday|sunday)", "DAYNAME"),
        "B" => {
            ("(?P<B>september|february|november|december|january|october|august|march|april|june|july|may)", "MONTH")
        }
        "ExH" => (r"(?P<H>[0-1]\d|2[0-3])", "Ex24hour"),
        "ExM" => (r"(?P<M>[0-5]\d)", "ExMinute"),
        "ExS" => (r"(?P<S>[0-5]\d|6[0-1])", "ExSecond"),
        "ExY" => return Some((b.ex_year_re(), "ExYear")),
        "ExZ" => (r"(?P<Z>[A-Z](?:[A-Z]{2,4})?)", "ExZone name"),
        "Exd" => (r"(?P<d>[1-2]\d|0[1-9]|3[0-1])", "ExDay"),
        "Exk" => (r" ?(?P<H>[0-1]?\d|2[0-3])", "%Exk"),
        "Exl" => (r" ?(?P<I>1[0-2]|\d)", "%Exl"),
        "Exm" => (r"(?P<m>0[1-9]|1[0-2])", "ExMonth"),
        "Exy" => (r"(?P<y>\d{2})", "ExYear2"),
        "Exz" => (r"(?P<z>(?:[A-Z](?:[A-Z]{2,4})?)?[+-][01]\d(?::?\d{2})?|[A-Z](?:[A-Z]{2,4})?)", "ExZone offset"),
        "G" => (r"(?P<G>\d\d\d\d)", "%G"),
        "H" => (r"(?P<H>[0-1]?\d|2[0-3])", "24hour"),
        "I" => (r"(?P<I>1[0-2]|0[1-9]|[1-9])", "12hour"),
        "M" => (r"(?P<M>[0-5]?\d)", "Minute"),
        "S" => (r"(?P<S>[0-5]?\d|6[0-1])", "Second"),
        "U" => (r"(?P<U>5[0-3]|[0-4]\d|\d)", "Yearweek"),
        "V" => (r"(?P<V>5[0-3]|0[1-9]|[1-4]\d|\d)", "%V"),
        "W" => (r"(?P<W>5[0-3]|[0-4]\d|\d)", "Yearweek"),
        "X" => (r"(?P<H>2[0-3]|[0-1]\d|\d):(?P<M>[0-5]\d|\d):(?P<S>6[0-1]|[0-5]\d|\d)", "%X"),
        "Y" => (r"(?P<Y>\d{4})", "Year"),
        "Z" => (r"(?P<Z>Z|[A-Z]{3,5})", "Zone name"),
        "a" => ("(?P<a>mon|tue|wed|thu|fri|sat|sun)", "DAY"),
        "b" => ("(?P<b>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)", "MON"),
        "c" => (
            r"(?P<a>mon|tue|wed|thu|fri|sat|sun)\s+(?P<b>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)\s+(?P<d>3[0-1]|[1-2]\d|0[1-9]|[1-9]| [1-9])\s+(?P<H>2[0-3]|[0-1]\d|\d):(?P<M>[0-5]\d|\d):(?P<S>6[0-1]|[0-5]\d|\d)\s+(?P<Y>\d\d\d\d)",
            "%c",
        ),
        "d" => (r"(?P<d>[1-2]\d|[0 ]?[1-9]|3[0-1])", "Day"),
        "f" => (r"(?P<f>[0-9]{1,6})", "Microseconds"),
        "j" => (r"(?P<j>36[0-6]|3[0-5]\d|[1-2]\d\d|0[1-9]\d|00[1-9]|[1-9]\d|0[1-9]|[1-9])", "Yearday"),
        "k" => (r" ?(?P<H>[0-2]?\d)", "%k"),
        "l" => (r" ?(?P<I>1?\d)", "%l"),
        "m" => (r"(?P<m>0?[1-9]|1[0-2])", "Month"),
        "p" => ("(?P<p>am|pm)", "AMPM"),
        "u" => ("(?P<u>[1-7])", "%u"),
        "w" => ("(?P<w>[0-6])", "Weekday"),
        "x" => (r"(?P<m>1[0-2]|0[1-9]|[1-9])/(?P<d>3[0-1]|[1-2]\d|0[1-9]|[1-9]| [1-9])/(?P<y>\d\d)", "%x"),
        "y" => (r"(?P<y>\d\d)", "Year2"),
        "z" => (r"(?P<z>Z|UTC|GMT|[+-][01]\d(?::?\d{2})?)", "Zone offset"),
        _ => return None,
    };
    Some((re.to_string(), name))
}

const EX_KEYS: [&str; 11] = ["ExZ", "Exz", "Exd", "Exm", "ExH", "Exk", "Exl", "ExM", "ExS", "ExY", "Exy"];
const SINGLE_KEYS: &str = "dfHIGjmMSUwuVyYzAaBbpZ%WcxXkl";

/// Expand `%` directives: (name, regex). Unknown directives are an error
/// (fail2ban fails to format them).
fn expand_directives(pattern: &str, b: &Build) -> Result<(String, String), String> {
    let mut name = String::with_capacity(pattern.len() + 16);
    let mut regex = String::with_capacity(pattern.len() * 4);
    let mut rest = pattern;
    while let Some(pos) = rest.find('%') {
        name.push_str(&rest[..pos]);
        regex.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let key = EX_KEYS.iter().find(|k| after.starts_with(**k)).map(|k| &after[..k.len()]).or_else(|| {
            let c = after.chars().next()?;
            SINGLE_KEYS.contains(c).then(|| &after[..c.len_utf8()])
        });
        let Some(key) = key else {
            let shown: String = after.chars().take(3).collect();
            return Err(format!("unsupported directive %{shown}"));
        };
        let (re, nm) = directive(key, b).ok_or_else(|| format!("unsupported directive %{key}"))?;
        name.push_str(nm);
        regex.push_str(&re);
        rest = &after[key.len()..];
    }
    name.push_str(rest);
    regex.push_str(rest);
    Ok((name, regex))
}

fn invalid(pattern: &str, why: impl Into<String>) -> DateError {
    DateError::InvalidPattern { pattern: pattern.to_string(), why: why.into() }
}

/// A compiled template regex: the `regex` crate where the pattern allows
/// (fast), `fancy_regex` for backreferences, lookaround and conditionals.
#[derive(Debug)]
pub(crate) enum Re {
    Plain(regex::Regex),
    /// with an optional `regex` prefilter that matches wherever the fancy
    /// one can (backreferences relaxed to the referenced group's pattern)
    Fancy(FRegex, Option<regex::Regex>),
}

impl Re {
    fn capture_names(&self) -> Vec<Option<String>> {
        match self {
            Re::Plain(r) => r.capture_names().map(|n| n.map(str::to_string)).collect(),
            Re::Fancy(r, _) => r.capture_names().map(|n| n.map(str::to_string)).collect(),
        }
    }

    /// Group spans of the first match at or after `pos` (Python's
    /// `search(hay, pos)`: `^`, `\b` and lookbehind see the text before).
    fn captures_at(&self, hay: &str, pos: usize) -> Option<Vec<Option<(usize, usize)>>> {
        let span = |m: Option<_>| m.map(|m: regex::Match<'_>| (m.start(), m.end()));
        match self {
            Re::Plain(r) => {
                // the DFA answers most misses without the capture engine
                r.find_at(hay, pos)?;
                let c = r.captures_at(hay, pos)?;
                Some(c.iter().map(span).collect())
            }
            Re::Fancy(r, pre) => {
                if let Some(pre) = pre {
                    pre.find_at(hay, pos)?;
                }
                let c = r.captures_from_pos(hay, pos).ok()??;
                Some((0..c.len()).map(|i| c.get(i).map(|m| (m.start(), m.end()))).collect())
            }
        }
    }
}

fn compile(pattern_for_err: &str, py_regex: &str) -> Result<Re, DateError> {
    let tr = pyre::translate(py_regex);
    if let Ok(r) = regex::RegexBuilder::new(&tr).size_limit(1 << 22).build() {
        return Ok(Re::Plain(r));
    }
    let pre = relax_backrefs(&tr).and_then(|r| regex::RegexBuilder::new(&r).size_limit(1 << 22).build().ok());
    let r = fancy_regex::RegexBuilder::new(&tr)
        .backtrack_limit(100_000)
        .build()
        .map_err(|e| invalid(pattern_for_err, format!("regex {py_regex:?}: {e}")))?;
    // Python refuses a group name used twice
    let mut names: Vec<&str> = r.capture_names().flatten().collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(invalid(pattern_for_err, format!("redefinition of group name {:?}", w[0])));
    }
    Ok(Re::Fancy(r, pre))
}

/// `(?P=name)` replaced by `(?:X)` where the group is `(?P<name>X)` with no
/// parentheses in `X`: a regex matching wherever the original can (the
/// backreference's text matched `X` too). `None` if some backreference
/// cannot be relaxed that way.
fn relax_backrefs(re: &str) -> Option<String> {
    let mut out = re.to_string();
    while let Some(i) = out.find("(?P=") {
        let end = i + out[i..].find(')')?;
        let name = &out[i + 4..end];
        let open = format!("(?P<{name}>");
        let g = out.find(&open)? + open.len();
        let body_len = out[g..].find(')')?;
        let body = &out[g..g + body_len];
        if body.contains('(') || body.ends_with('\\') {
            return None;
        }
        let repl = format!("(?:{body})");
        out.replace_range(i..=end, &repl);
    }
    Some(out)
}

fn strptime_conv(re: &Re) -> Conv {
    let mut keys = Vec::new();
    let mut ampm = None;
    for (i, n) in re.capture_names().into_iter().enumerate() {
        let Some(n) = n else { continue };
        if let Some(k) = Key::from_group_name(&n) {
            if k == Key::AmPm {
                ampm = Some(i);
            }
            keys.push((k, i));
        }
    }
    Conv::Strptime { keys, ampm }
}

impl Template {
    /// `DatePatternRegex(pattern)`.
    pub fn pattern_regex(pattern: &str, b: &Build) -> Result<Template, DateError> {
        let orig = pattern;
        let mut p = pattern;
        let mut wb = WordBegin::Yes;
        let mut we = true;
        if let Some(r) = p.strip_prefix("{UNB}") {
            p = r;
            wb = WordBegin::No;
            we = false;
        }
        if wb != WordBegin::No
            && let Some(r) = p.strip_prefix("{^LN-BEG}")
        {
            p = r;
            wb = WordBegin::Start;
        }
        let (mut name, mut regex) = expand_directives(p, b).map_err(|e| invalid(orig, e))?;
        if metare::alpha_pattern(p) {
            regex = format!("(?iu){regex}");
        }
        let (regex, flags) = set_regex(&mut name, &regex, wb, we);
        let re = LazyRe::new(orig, regex, b.lazy)?;
        let conv = OnceLock::new();
        if let Some(r) = re.re.get() {
            let _ = conv.set(strptime_conv(r));
        }
        let hand = Hand::for_pattern(p, wb, flags, b);
        Ok(Template { name, pattern: Some(orig.to_string()), flags, weight: 1.0, re, hand, conv })
    }

    /// `DateEpoch(lineBeginOnly, pattern, longFrm)`.
    pub fn epoch(line_begin_only: bool, pattern: Option<&str>, long: bool, b: &Build) -> Result<Template, DateError> {
        let mut name = match (pattern, long) {
            (Some(p), _) => p.to_string(),
            (None, false) => "Epoch".to_string(),
            (None, true) => "LongEpoch".to_string(),
        };
        let epoch_re = if long { LEPOCH_RE } else { EPOCH_RE };
        let (regex, flags, grp) = if let Some(p) = pattern {
            let inner = RE_EPOCH_PATTERN.replace_all(p, |_: &fancy_regex::Captures<'_, str>| format!("({epoch_re})"));
            let (r, f) = set_regex(&mut name, &format!("({inner})"), WordBegin::Yes, true);
            (r, f, 2)
        } else if !line_begin_only {
            let r = r"((?:^|(?P<square>(?<=^\[))|(?P<selinux>(?<=\baudit\()))%s)(?:(?(selinux)(?=:\d+\)))|(?(square)(?=\])))"
            .replace("%s", epoch_re);
            let (r, f) = set_regex(&mut name, &r, WordBegin::No, true);
            (r, f, 1)
        } else {
            let r = r"((?P<square>(?<=^\[))?%s)(?(square)(?=\]))".replace("%s", epoch_re);
            let (r, f) = set_regex(&mut name, &r, WordBegin::Start, true);
            (r, f, 1)
        };
        let hand =
            (pattern.is_none() && !long).then_some(if line_begin_only { Hand::EpochLineBegin } else { Hand::Epoch });
        // (the hand matcher covers the short default forms completely; the
        // regex is kept to cross-check it in tests)
        let re = LazyRe::new(pattern.unwrap_or(&name), regex, b.lazy && pattern.is_none())?;
        let conv = OnceLock::from(Conv::Epoch { grp, long });
        Ok(Template { name, pattern: None, flags, weight: 1.0, re, hand, conv })
    }

    /// `DateTai64n(wordBegin)`.
    pub fn tai64n(line_begin: bool, b: &Build) -> Result<Template, DateError> {
        let mut name = "TAI64N".to_string();
        let wb = if line_begin { WordBegin::Start } else { WordBegin::No };
        let (regex, flags) = set_regex(&mut name, "@[0-9a-f]{24}", wb, true);
        let re = LazyRe::new(&name, regex, b.lazy)?;
        let conv = OnceLock::from(Conv::Tai64n);
        Ok(Template { name, pattern: None, flags, weight: 1.0, re, hand: None, conv })
    }

    pub fn anchored(&self) -> bool {
        self.flags & (LINE_BEGIN | LINE_END) != 0
    }

    /// `matchDate(line, pos, endpos)`: Python's `search` with `pos`/`endpos`.
    pub fn match_date(&self, line: &str, pos: usize, endpos: usize) -> Option<RawHit> {
        let endpos = endpos.min(line.len());
        if pos > endpos || !line.is_char_boundary(pos) || !line.is_char_boundary(endpos) {
            return None;
        }
        let hay = &line[..endpos];
        if let Some(h) = self.hand {
            // (only word searches use the regex: do not compile it otherwise)
            let pre = if h.is_word_search() { self.prefilter() } else { None };
            let limit = if pre.is_some() { pos } else { usize::MAX };
            match h.search_limited(hay, pos, limit).0 {
                HandResult::Hit(hit) => return Some(hit),
                HandResult::Unsure => return self.regex_search(hay, pos),
                HandResult::Miss => {
                    let pre = pre?;
                    // Nothing starts at `pos`; the regex (a superset of the
                    // template) tells where the next match could start.
                    let next = pos + hay[pos..].chars().next()?.len_utf8();
                    let start = pre.find_at(hay, next)?.start();
                    return match h.search(hay, start) {
                        HandResult::Hit(hit) => Some(hit),
                        HandResult::Miss => None,
                        HandResult::Unsure => self.regex_search(hay, pos),
                    };
                }
            }
        }
        self.regex_search(hay, pos)
    }

    /// A `regex` matching wherever this template can match.
    pub(crate) fn prefilter(&self) -> Option<&regex::Regex> {
        match self.re.get() {
            Re::Plain(r) | Re::Fancy(_, Some(r)) => Some(r),
            _ => None,
        }
    }

    /// How a match becomes an instant.
    fn conv(&self) -> &Conv {
        self.conv.get_or_init(|| strptime_conv(self.re.get()))
    }

    /// Compiles the regex now if it was deferred (tests).
    #[cfg(test)]
    pub(crate) fn force(&self) -> String {
        format!("{:?} {:?}", self.re.get().capture_names(), self.conv())
    }

    /// [`Template::match_date`] for a template with a hand matcher that can
    /// decide alone: the hit and the highest byte index looked at.
    pub fn match_date_tracked(&self, line: &str, pos: usize, endpos: usize) -> Option<(Option<RawHit>, usize)> {
        let h = self.hand?;
        let endpos = endpos.min(line.len());
        if pos > endpos || !line.is_char_boundary(pos) || !line.is_char_boundary(endpos) {
            return Some((None, usize::MAX));
        }
        match h.search_tracked(&line[..endpos], pos) {
            (HandResult::Hit(hit), max) => Some((Some(hit), max)),
            (HandResult::Miss, max) => Some((None, max)),
            (HandResult::Unsure, _) => None,
        }
    }

    /// The regex path alone (also used to cross-check the hand matchers).
    pub fn regex_search(&self, hay: &str, pos: usize) -> Option<RawHit> {
        let locs = self.re.get().captures_at(hay, pos)?;
        let (s0, e0) = (*locs.first()?)?;
        let (s1, e1) = locs.get(1).copied().flatten().unwrap_or((s0, s0));
        Some(RawHit { s0, e0, s1, e1, data: HitData::Locs(locs) })
    }

    /// `getDate`: the instant of a hit, `None` where fail2ban gets no date.
    /// [`Template::time`], and for a hit of parsed fields the glibc offset
    /// state under which the time moves with the seconds alone over the
    /// whole minute (see [`strptime::to_epoch_minute`]).
    pub(crate) fn time_minute(
        &self,
        line: &str,
        hit: &RawHit,
        ctx: &TimeContext,
        zc: &mut ZoneCache,
    ) -> (Option<Timestamp>, Option<i64>) {
        if let (HitData::Fields(f), Conv::Strptime { .. }) = (&hit.data, self.conv()) {
            let (t, off) = strptime::to_epoch_minute(f, ctx.now, &ctx.tz, zc);
            return (t.map(Timestamp::from_secs), off);
        }
        (self.time(line, hit, ctx, zc), None)
    }

    pub fn time(&self, line: &str, hit: &RawHit, ctx: &TimeContext, zc: &mut ZoneCache) -> Option<Timestamp> {
        let group = |i: usize| -> Option<&str> {
            match &hit.data {
                HitData::Locs(l) => l.get(i).copied().flatten().map(|(s, e)| &line[s..e]),
                _ if i == 1 => Some(&line[hit.s1..hit.e1]),
                _ => None,
            }
        };
        match self.conv() {
            Conv::Strptime { keys, ampm } => {
                let fields = match &hit.data {
                    HitData::Fields(f) => *f,
                    _ => {
                        let ampm = ampm.map(group);
                        strptime::fields_from_groups(keys.iter().map(|(k, i)| (*k, group(*i))), ampm)
                    }
                };
                strptime::to_epoch(&fields, ctx.now, &ctx.tz, zc).map(Timestamp::from_secs)
            }
            Conv::Epoch { grp, long } => {
                let v = group(*grp)?;
                epoch_value(v, *long)
            }
            Conv::Tai64n => {
                let v = group(1)?;
                let hex = v.get(2..17)?;
                i64::from_str_radix(hex, 16).ok().map(Timestamp::from_secs)
            }
        }
    }
}

/// `float(v)` (scaled for the long form) as fail2ban computes it.
pub(crate) fn epoch_value(v: &str, long: bool) -> Option<Timestamp> {
    if long && v.len() >= 13 {
        let f: f64 = v.parse().ok()?;
        let f = if v.len() >= 16 && !v.contains('.') { f / 1_000_000.0 } else { f / 1000.0 };
        return Some(Timestamp::from_secs_f64(f));
    }
    if v.bytes().all(|c| c.is_ascii_digit()) && !v.is_empty() && v.len() <= 17 {
        // exact in f64 too: fail2ban's float(v) gives the same micros
        let mut s: i64 = 0;
        for c in v.bytes() {
            s = s * 10 + i64::from(c - b'0');
        }
        return Some(Timestamp::from_secs(s));
    }
    let f: f64 = v.parse().ok()?;
    if !f.is_finite() {
        return None;
    }
    Some(Timestamp::from_secs_f64(f))
}

/// `_getPatternTemplate(pattern, key)`.
pub(crate) fn get_pattern_template(pattern: &str, key: Option<&str>, b: &Build) -> Result<Template, DateError> {
    let key: String = match key {
        Some(k) => k.to_string(),
        None if pattern.contains('%') => pattern.to_string(),
        None => pattern.to_uppercase(),
    };
    if key.contains("EPOCH") {
        if metare::epoch_pattern(pattern) {
            return Template::epoch(false, Some(pattern), key.contains("LEPOCH"), b);
        }
        match key.as_str() {
            "EPOCH" | "{^LN-BEG}EPOCH" | "^EPOCH" => {
                return Template::epoch(key != "EPOCH", None, false, b);
            }
            "LEPOCH" | "{^LN-BEG}LEPOCH" | "^LEPOCH" => {
                return Template::epoch(key != "LEPOCH", None, true, b);
            }
            _ => {}
        }
    }
    match key.as_str() {
        "TAI64N" | "{^LN-BEG}TAI64N" | "^TAI64N" => Template::tai64n(key != "TAI64N", b),
        _ => Template::pattern_regex(pattern, b),
    }
}

/// `_getAnchoredTemplate(template, wrap)`.
pub(crate) fn get_anchored_template(
    t: &Template,
    wrap: &dyn Fn(&str) -> String,
    b: &Build,
) -> Result<Template, DateError> {
    match &t.pattern {
        Some(p) => get_pattern_template(&wrap(p), None, b),
        None => get_pattern_template(&wrap(&t.name), None, b),
    }
}
