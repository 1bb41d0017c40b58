//! A scanner for the tail most of sshd's failregexes end with,
//! `L(?: (?:port \d+|on \S+|\[preauth\])){0,3}\s*$` (`L`: literal text,
//! maybe none; also as `L(?:(?: (?:…)){0,3}\s*|\s*)$`), on ASCII haystacks.
//! Its answer is exact: the end of the first parse, or None when the tail
//! cannot match there.
//!
//! Why: write it `L R{0,3} S $` with `R` = ` (?:port \d+|on \S+|\[preauth\])`,
//! `S` = `\s*`, `$` = `(?m:$)` (the end, or before a `\n`; the linear
//! engine's `$`, see `Pattern`). From a given place `R` has at most one
//! parse: its branches start with different letters after the space, and
//! a shorter `\d+`/`\S+` leaves a digit/non-space byte where the next `R`
//! needs a space, `S` white space and `$` a `\n` or the end. So the parses
//! differ only in how many `R` they take, `j`, up to `J`, the number the
//! greedy loop takes. With `j < J`, `S` starts at the space of the next
//! `R`, followed by its letter: `S` takes that space (one byte, not `\n`) or
//! nothing, and `$` holds after neither. So only `J` can match: `S` takes
//! the run of white space (greedy), then gives back byte by byte until `$`
//! holds: at the run's end (the end or a `\n` there), else before the last
//! `\n` inside the run, else nowhere. In `(?:X|\s*)$`, with `X` = `R{0,3}\s*`,
//! the second branch's parses are those of `X` with no `R` (tried later),
//! so it is the same. `\s` is Python's on an ASCII haystack.

use super::pyre::{self, Node};
use std::sync::OnceLock;

/// The tails as written, `$` last (each also parsed with `(?m)`).
const TAILS: [&str; 2] =
    [r"(?: (?:port \d+|on \S+|\[preauth\])){0,3}\s*$", r"(?:(?: (?:port \d+|on \S+|\[preauth\])){0,3}\s*|\s*)$"];

/// The top-level items of `text` as the chain sees them.
fn items(text: &str, multiline: bool) -> Option<Vec<Node>> {
    let parsed = pyre::parse(text, multiline).ok()?;
    let node = super::emit::simplify_zero_width_repeats(super::emit::elide_lookbehinds(parsed.node, None));
    Some(match node {
        Node::Cat(v) => v,
        one => vec![one],
    })
}

/// The literal text `L` when the segment's top-level nodes `part` are
/// `L` (case-sensitive ASCII literals) followed by one of the tails.
pub(super) fn recognize(part: &[&Node]) -> Option<Box<[u8]>> {
    static CANON: OnceLock<Vec<Vec<Node>>> = OnceLock::new();
    let canon = CANON.get_or_init(|| TAILS.iter().flat_map(|t| [items(t, false), items(t, true)]).flatten().collect());
    let k = part.iter().take_while(|n| matches!(n, Node::Lit { c, icase: false } if c.is_ascii())).count();
    let rest = &part[k..];
    canon.iter().any(|c| c.len() == rest.len() && c.iter().zip(rest).all(|(x, y)| x == *y)).then(|| {
        let lead: String = part[..k]
            .iter()
            .filter_map(|n| match n {
                Node::Lit { c, .. } => Some(*c),
                _ => None,
            })
            .collect();
        lead.into_bytes().into_boxed_slice()
    })
}

/// fail2ban's `__on_port_opt`, `(?: (?:port \d+|on \S+)){0,2}`, as written.
const ON_PORT: &str = r"(?: (?:port \d+|on \S+)){0,2}";

/// The nodes after `__on_port_opt` when the segment's top-level nodes
/// `part` start with it (see [`on_port`]).
pub(super) fn after_on_port<'a, 'n>(part: &'a [&'n Node]) -> Option<&'a [&'n Node]> {
    static CANON: OnceLock<Vec<Node>> = OnceLock::new();
    let canon = CANON.get_or_init(|| {
        [items(ON_PORT, false), items(ON_PORT, true)].into_iter().flatten().filter_map(|mut v| v.pop()).collect()
    });
    let (first, rest) = part.split_first()?;
    canon.contains(first).then_some(rest)
}

/// `__on_port_opt` from `p` on an ASCII haystack when each repetition it
/// takes is ` port \d+`: the end of the greedy loop (each run of digits
/// whole, at most two); None when ` on ` is next before the loop is done
/// (undecided: `\S+` may take bytes the text after it needs).
///
/// Why this gives the segment's first parse when what follows, `S`, cannot
/// start with a space or a digit (nor be empty there): a parse that takes
/// fewer repetitions than the greedy loop starts `S` at the space of the
/// next one, and a shorter `\d+` leaves a digit where the next repetition
/// (a space) or `S` starts; the `on` branch cannot start where `port`
/// does. So only the greedy loop's end can be followed by `S`.
#[inline]
pub(super) fn on_port(b: &[u8], mut p: usize) -> Option<usize> {
    for _ in 0..2 {
        let r = b.get(p..).unwrap_or_default();
        if r.starts_with(b" port ") {
            let e = run(b, p + 6, |c| c.is_ascii_digit());
            if e == p + 6 {
                break;
            }
            p = e;
        } else if r.starts_with(b" on ") {
            return None;
        } else {
            break;
        }
    }
    Some(p)
}

/// Python's `\s` on an ASCII haystack.
#[inline(always)]
fn ws(c: u8) -> bool {
    matches!(c, b'\t'..=b'\r' | 0x1c..=b' ')
}

/// The end of the run of bytes from `p` where `f` holds.
#[inline(always)]
fn run(b: &[u8], mut p: usize, f: impl Fn(u8) -> bool) -> usize {
    while b.get(p).is_some_and(|&c| f(c)) {
        p += 1;
    }
    p
}

/// The end of the tail's first parse from `p` on an ASCII haystack (None:
/// no match there), `lead` its literal text first.
#[inline]
pub(super) fn scan(b: &[u8], p: usize, lead: &[u8]) -> Option<usize> {
    let mut p = p;
    if !lead.is_empty() {
        if !super::segments::text_at(b, p, lead) {
            return None;
        }
        p += lead.len();
    }
    for _ in 0..3 {
        if b.get(p) != Some(&b' ') {
            break;
        }
        let q = p + 1;
        let r = b.get(q..).unwrap_or_default();
        // (`port`/`on` need one byte of their run)
        p = if r.starts_with(b"port ") {
            match run(b, q + 5, |c| c.is_ascii_digit()) {
                e if e > q + 5 => e,
                _ => break,
            }
        } else if r.starts_with(b"on ") {
            match run(b, q + 3, |c| !ws(c)) {
                e if e > q + 3 => e,
                _ => break,
            }
        } else if r.starts_with(b"[preauth]") {
            q + 9
        } else {
            break;
        };
    }
    let e = run(b, p, ws);
    if e == b.len() || b[e] == b'\n' {
        return Some(e);
    }
    b[p..e].iter().rposition(|&c| c == b'\n').map(|k| p + k)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::test_util::xorshift;
    use regex_automata::{Anchored, Input, meta};

    pub(in super::super) fn texts() -> Vec<String> {
        let mut v: Vec<String> = [
            "",
            "\n",
            " ",
            " \n",
            " port 22",
            " port 22\n",
            " port 22 ssh2",
            " port 22 [preauth]",
            " port 22 [preauth]\n",
            " port 22 on eth0 [preauth]",
            " port 22 on eth0 [preauth] port 1",
            " port 22 on eth0 [preauth]  \n",
            " port 22 on eth0 [preauth] \n x",
            " port 22  \n \n",
            " port  22",
            " port x",
            " port 22x",
            " port ",
            " port",
            " on ",
            " on x\ny",
            " on \n",
            " [preauth",
            " [preauth]x",
            "  port 22",
            "\t[preauth]",
            " port 2 \t\x0b\x0c\r\x1c\x1d\x1e\x1f ",
            " port 2 \t\n\x0b\n\x0c",
            " port 2 \t\n\x0bx",
            "x",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut rng = xorshift(0x2545_f491_4f6c_dd1d);
        let words = [
            " port ",
            "port",
            " on ",
            "on",
            " [preauth]",
            "[preauth]",
            "22",
            "x",
            " ",
            "\n",
            "\t",
            "\x1c",
            "AllowUsers",
            ":",
            "0",
        ];
        for _ in 0..20_000 {
            let n = rng(8) as usize;
            v.push((0..n).map(|_| words[rng(words.len() as u64) as usize]).collect());
        }
        v
    }

    /// The scanner equals the full engine's anchored match of each tail (as
    /// compiled for ASCII haystacks), with and without literal text first,
    /// at every position of many texts.
    #[test]
    fn scan_equals_full_engine() {
        let opts = super::super::emit::EmitOpts {
            exact_dollar: false,
            relaxed: false,
            fancy: false,
            ascii_hay: true,
            empty_hay: false,
        };
        let mut compared = 0;
        for lead in ["", " not allowed because listed in DenyUsers", "x"] {
            for tail in TAILS {
                for ml in [false, true] {
                    let src = format!("{lead}{tail}");
                    let parsed = pyre::parse(&src, ml).unwrap();
                    let its = items(&src, ml).unwrap();
                    let refs: Vec<&Node> = its.iter().collect();
                    assert_eq!(recognize(&refs).as_deref(), Some(lead.as_bytes()), "{src}");
                    let node = Node::Cat(its.clone());
                    let mut text = String::from("(?-u)");
                    super::super::emit::emit(&node, &parsed.names, opts, &mut text);
                    let re = meta::Regex::builder()
                        .syntax(regex_automata::util::syntax::Config::new().utf8(false).unicode(false))
                        .build(&text)
                        .unwrap();
                    for t in texts() {
                        let hay = format!("{lead}{t}");
                        let b = hay.as_bytes();
                        for pos in 0..=b.len() {
                            let theirs =
                                re.search(&Input::new(b).span(pos..b.len()).anchored(Anchored::Yes)).map(|m| m.end());
                            assert_eq!(scan(b, pos, lead.as_bytes()), theirs, "{src:?} on {hay:?} at {pos}");
                            compared += 1;
                        }
                    }
                }
            }
        }
        assert!(compared > 1_000_000, "{compared}");
    }

    #[test]
    fn recognizes_only_the_tails() {
        for other in [
            r"(?: (?:port \d+|on \S+|\[preauth\])){0,4}\s*$",
            r"(?: (?:port \d+|on \S+)){0,3}\s*$",
            r"(?: (?:port \d+|on \S+|\[preauth\])){0,3}\s+$",
            r"(?: (?:port \d+|on \S+|\[preauth\])){0,3}\s*",
            r"(?i: (?:port \d+|on \S+|\[preauth\])){0,3}\s*$",
            r"\d(?: (?:port \d+|on \S+|\[preauth\])){0,3}\s*$",
        ] {
            let its = items(other, true).unwrap();
            let refs: Vec<&Node> = its.iter().collect();
            assert_eq!(recognize(&refs), None, "{other}");
        }
    }
}
