//! fail2ban's regexes over regexes (`DateTemplate`'s `RE_GROUPED`,
//! `RE_NO_WRD_BOUND_BEG`, …) as plain string scans.
//!
//! `set_regex` runs eight of them over every date template it builds, and a
//! filter with `{^LN-BEG}` builds all 31 default templates at start-up: with
//! the regexes (a backtracking engine for their look-behinds) that was about
//! 30 M instructions per start, a third of a filter's load. Each function
//! here answers exactly what the regex in its doc comment answers (the same
//! match, span or replacement as `fancy_regex` gives for it, which is what the
//! templates were built with before); the tests compare both on every
//! default template and on random strings over the characters the regexes
//! look at.

/// `\w` as the regexes use it (Unicode word characters).
fn word(c: char) -> bool {
    regex_syntax::is_word_character(c)
}

/// The end of `(?:\(\?\w+\))` at `i` in `s`, if it matches there.
fn flag_group(s: &str, i: usize) -> Option<usize> {
    let rest = s.get(i..)?.strip_prefix("(?")?;
    let n: usize = rest.chars().take_while(|&c| word(c)).map(char::len_utf8).sum();
    (n > 0 && rest[n..].starts_with(')')).then_some(i + 2 + n + 1)
}

/// `(?<!\\)` at `i`: the character before `i` is no backslash.
fn no_backslash_before(s: &str, i: usize) -> bool {
    i == 0 || s.as_bytes()[i - 1] != b'\\'
}

/// `(?<!(?:\(\?))(?<!\\)\((?!\?)` is found: a `(` that opens a capture
/// group (no `(?` before it, no backslash, no `?` after it).
pub(crate) fn grouped(s: &str) -> bool {
    let b = s.as_bytes();
    (0..b.len()).any(|i| {
        b[i] == b'(' && b.get(i + 1) != Some(&b'?') && no_backslash_before(s, i) && !(i >= 2 && &b[i - 2..i] == b"(?")
    })
}

/// The captures of `^((?:\(\?\w+\))?\^?(?:\(\?\w+\))?)(.*?)(\$?)$`:
/// `(flags and ^, body, $)`, or `None` when it does not match (a line feed:
/// `.` does not match it).
pub(crate) fn group_parts(s: &str) -> Option<(&str, &str, &str)> {
    if s.contains('\n') {
        return None;
    }
    let mut i = flag_group(s, 0).unwrap_or(0);
    if s[i..].starts_with('^') {
        i += 1;
    }
    i = flag_group(s, i).unwrap_or(i);
    // the lazy body stops at the first place `\$?$` matches: before a last
    // `$`, else at the end
    let end = if s.len() > i && s.ends_with('$') { s.len() - 1 } else { s.len() };
    Some((&s[..i], &s[i..end], &s[end..]))
}

/// The span of the first `\(\?[a-z]+\)` (global flags).
pub(crate) fn global_flags(s: &str) -> Option<(usize, usize)> {
    let b = s.as_bytes();
    (0..b.len()).find_map(|i| {
        if !b[i..].starts_with(b"(?") {
            return None;
        }
        let n = b[i + 2..].iter().take_while(|c| c.is_ascii_lowercase()).count();
        (n > 0 && b.get(i + 2 + n) == Some(&b')')).then_some((i, i + 3 + n))
    })
}

/// `^\(*(?:\(\?\w+\))?(?:\^|\(*\*\*|\((?:\?:)?\^)` matches: the regex is
/// already anchored at its start (or marked `**`), so no word bound goes
/// before it.
pub(crate) fn no_word_bound_begin(s: &str) -> bool {
    let b = s.as_bytes();
    let opens = b.iter().take_while(|&&c| c == b'(').count();
    // (every count of leading `(`, as the regex backtracks into `\(*`)
    (0..=opens).any(|k| {
        let tail = |i: usize| {
            let r = &b[i..];
            let more = r.iter().take_while(|&&c| c == b'(').count();
            r.starts_with(b"^") || r[more..].starts_with(b"**") || r.starts_with(b"(^") || r.starts_with(b"(?:^")
        };
        flag_group(s, k).is_some_and(tail) || tail(k)
    })
}

/// `(?<!\\)(?:\$\)?|\\b|\\s|\*\*\)*)$` is found: the regex already ends
/// with an anchor or a bound (or is marked `**`).
pub(crate) fn no_word_bound_end(s: &str) -> bool {
    let b = s.as_bytes();
    let at = |suffix: &[u8]| b.ends_with(suffix) && no_backslash_before(s, b.len() - suffix.len());
    let closes = b.iter().rev().take_while(|&&c| c == b')').count();
    let stars = b.len() - closes;
    at(b"$")
        || at(b"$)")
        || at(b"\\b")
        || at(b"\\s")
        || (b[..stars].ends_with(b"**") && no_backslash_before(s, stars - 2))
}

/// `^(?:\(\?\w+\))?(?:\^|\((?:\?:)?\^(?!\|))` matches: the regex starts
/// with a line anchor.
pub(crate) fn line_bound_begin(s: &str) -> bool {
    let b = s.as_bytes();
    let anchor = |i: usize| {
        let r = &b[i..];
        let caret_alone = |j: usize| r.get(j) == Some(&b'^') && r.get(j + 1) != Some(&b'|');
        r.starts_with(b"^") || (r.starts_with(b"(?:") && caret_alone(3)) || (r.starts_with(b"(") && caret_alone(1))
    };
    flag_group(s, 0).is_some_and(anchor) || anchor(0)
}

/// `(?<![\\\|])(?:\$\)?)$` is found: the regex ends with a line anchor.
pub(crate) fn line_bound_end(s: &str) -> bool {
    let b = s.as_bytes();
    let at = |suffix: &[u8]| {
        let i = b.len().wrapping_sub(suffix.len());
        b.ends_with(suffix) && (i == 0 || !matches!(b[i - 1], b'\\' | b'|'))
    };
    at(b"$") || at(b"$)")
}

/// `s` with every match of `^\(*(?:\(\?\w+\))?\(*\*\*|(?<!\\)\*\*\)*$`
/// replaced by itself without `**` (the `**` word-bound markers at the
/// start and the end removed).
pub(crate) fn del_word_bounds(s: &str) -> String {
    let b = s.as_bytes();
    // the first branch: `**` after a prefix of `(`, one flag group and `(`
    // (none of which holds a `*`): the first `*` of the text
    let head = b.iter().position(|&c| c == b'*').filter(|&j| {
        b.get(j + 1) == Some(&b'*') && {
            let pre = &s[..j];
            let opens = pre.bytes().take_while(|&c| c == b'(').count();
            // (the flag group's `(` can only be the last of the leading ones)
            pre.len() == opens
                || opens > 0 && flag_group(pre, opens - 1).is_some_and(|e| pre[e..].bytes().all(|c| c == b'('))
        }
    });
    // the second branch, searched after the first's match: `**` then only
    // `)` up to the end
    let closes = b.iter().rev().take_while(|&&c| c == b')').count();
    let tail = (b.len() - closes)
        .checked_sub(2)
        .filter(|&i| &b[i..i + 2] == b"**" && no_backslash_before(s, i) && head.is_none_or(|j| i >= j + 2));
    let mut out = String::with_capacity(s.len());
    let mut from = 0;
    for cut in [head, tail].into_iter().flatten() {
        out.push_str(&s[from..cut]);
        from = cut + 2;
    }
    out.push_str(&s[from..]);
    out
}

/// `(?<!\%)\%[aAbBpc]` is found: the pattern names months, days or AM/PM
/// (matched case-insensitively).
pub(crate) fn alpha_pattern(s: &str) -> bool {
    let b = s.as_bytes();
    (0..b.len().saturating_sub(1)).any(|i| {
        b[i] == b'%' && matches!(b[i + 1], b'a' | b'A' | b'b' | b'B' | b'p' | b'c') && (i == 0 || b[i - 1] != b'%')
    })
}

/// `(?i)(?<!\\)\{L?EPOCH\}` is found.
pub(crate) fn epoch_pattern(s: &str) -> bool {
    let b = s.as_bytes();
    let at = |i: usize, t: &[u8]| b.get(i..i + t.len()).is_some_and(|w| w.eq_ignore_ascii_case(t));
    (0..b.len()).any(|i| b[i] == b'{' && no_backslash_before(s, i) && (at(i, b"{EPOCH}") || at(i, b"{LEPOCH}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fancy_regex::Regex;

    fn re(p: &str) -> Regex {
        Regex::new(p).unwrap()
    }

    /// Random strings over the characters the regexes look at (and a few
    /// they do not, a non-ASCII word character and a non-word one).
    fn samples() -> Vec<String> {
        const ALPHA: [&str; 20] =
            ["(", ")", "?", ":", "^", "$", "|", "\\", "*", "b", "s", "a", "Z", "_", "%", "{", "}", "\n", "é", "·"];
        const WORDS: [&str; 8] = ["{EPOCH}", "{lEpOcH}", "EPOCH", "(?i)", "(?:", "**", "\\b", "%b"];
        let mut next = crate::memo_tests::xorshift(0x9e37_79b9_7f4a_7c15);
        let mut out: Vec<String> = crate::template::DEFAULT_PATTERNS.iter().map(|p| p.to_string()).collect();
        for _ in 0..60_000 {
            let len = next(11);
            let mut s = String::new();
            for _ in 0..len {
                if next(5) == 0 {
                    s.push_str(WORDS[next(WORDS.len())]);
                } else {
                    s.push_str(ALPHA[next(ALPHA.len())]);
                }
            }
            out.push(s);
        }
        out
    }

    #[test]
    fn scans_agree_with_the_regexes() {
        let grouped_re = re(r"(?<!(?:\(\?))(?<!\\)\((?!\?)");
        let group_re = re(r"^((?:\(\?\w+\))?\^?(?:\(\?\w+\))?)(.*?)(\$?)$");
        let flags_re = re(r"\(\?[a-z]+\)");
        let nwb_beg = re(r"^\(*(?:\(\?\w+\))?(?:\^|\(*\*\*|\((?:\?:)?\^)");
        let nwb_end = re(r"(?<!\\)(?:\$\)?|\\b|\\s|\*\*\)*)$");
        let del = re(r"^\(*(?:\(\?\w+\))?\(*\*\*|(?<!\\)\*\*\)*$");
        let lb_beg = re(r"^(?:\(\?\w+\))?(?:\^|\((?:\?:)?\^(?!\|))");
        let lb_end = re(r"(?<![\\\|])(?:\$\)?)$");
        let alpha = re(r"(?<!\%)\%[aAbBpc]");
        let epoch = re(r"(?i)(?<!\\)\{L?EPOCH\}");
        let m = |r: &Regex, s: &str| r.is_match(s).unwrap();
        let mut hits = [0usize; 10];
        for s in samples() {
            let s = s.as_str();
            let checks = [
                (grouped(s), m(&grouped_re, s)),
                (no_word_bound_begin(s), m(&nwb_beg, s)),
                (no_word_bound_end(s), m(&nwb_end, s)),
                (line_bound_begin(s), m(&lb_beg, s)),
                (line_bound_end(s), m(&lb_end, s)),
                (alpha_pattern(s), m(&alpha, s)),
                (epoch_pattern(s), m(&epoch, s)),
            ];
            for (k, (got, want)) in checks.into_iter().enumerate() {
                assert_eq!(got, want, "scan {k} on {s:?}");
                hits[k] += usize::from(want);
            }
            let want = group_re.captures(s).unwrap().map(|c| {
                let g = |i| c.get(i).map_or("", |m| m.as_str());
                (g(1), g(2), g(3))
            });
            assert_eq!(group_parts(s), want, "group parts of {s:?}");
            hits[7] += usize::from(want.is_some_and(|w| !w.0.is_empty() || !w.2.is_empty()));
            let want = flags_re.find(s).unwrap().map(|m| (m.start(), m.end()));
            assert_eq!(global_flags(s), want, "global flags of {s:?}");
            hits[8] += usize::from(want.is_some());
            let want = del.replace_all(s, |c: &fancy_regex::Captures<'_, str>| c[0].replace("**", "")).into_owned();
            assert_eq!(del_word_bounds(s), want, "word bounds deleted from {s:?}");
            hits[9] += usize::from(want != s);
        }
        // every regex matched (and missed) often enough to mean something
        assert!(hits.iter().all(|&h| h > 200), "{hits:?}");
    }
}
