//! A hand-written scanner for fail2ban's common `__prefix_line` (the
//! `<F-MLFID>` group of most filters' `prefregex`, e.g. sshd's), with the
//! daemon name `D` literal text:
//!
//! ```text
//! (?:\[\])?\s*(?:<[^.]+\.[^.]+>\s+)?(?:\S+\s+)?(?:kernel:\s?\[ *\d+\.\d+\]:?\s+)?
//! (?:@vserver_\S+\s+)?(?:(?:(?:\[\d+\])?:\s+[\[\(]?D(?:\(\S+\))?[\]\)]?:?|
//! [\[\(]?D(?:\(\S+\))?[\]\)]?:?(?:\[\d+\])?:?)\s+)?(?:\[ID \d+ \S+\]\s+)?
//! ```
//!
//! It runs on every line a filter reads. The scanner decides only the
//! common shape `[ws] HOST ws D[PID][:] ws REST` and answers "undecided"
//! otherwise (the segment's automaton then decides), on ASCII haystacks.
//!
//! Why its answer is the first parse (the one Python's backtracking takes,
//! which the automaton's leftmost-first search reports): every item of the
//! concatenation is optional or a greedy repetition, so the first path a
//! backtracking engine tries — each optional group taken when its first
//! attempt gets through, each greedy run as long as it goes — is a match
//! as soon as it gets to the end, and then it *is* the first parse. The
//! scanner follows that first path and gives up wherever it would have to
//! backtrack or where an item's first attempt is not obvious:
//! 1. `(?:\[\])?`: a `[` first → undecided; else the group cannot match.
//! 2. `\s*`: the whole run of white space.
//! 3. `(?:<…>\s+)?`: a `<` → undecided; else it cannot match.
//! 4. `(?:\S+\s+)?`: the run of non-space (at least one), then the run of
//!    white space (at least one; else undecided: a shorter `\S+` leaves a
//!    non-space byte where `\s+` must start, the group would be skipped).
//! 5. `(?:kernel:…)?`, 6. `(?:@vserver_…)?`: their text there → undecided.
//! 7. The daemon group: the first branch starts with `[` or `:` (→
//!    undecided); the second, with no `[`/`(` first (→ undecided), needs
//!    `D` (else undecided); after it, `(?:\(\S+\))?`, `[\]\)]?` and `:?`
//!    cannot match at a `[` (anything else there → undecided), then
//!    `(?:\[\d+\])?` takes `[`, the run of digits (at least one) and `]`
//!    (else undecided: a shorter run leaves a digit where `]` must be),
//!    `:?` a `:` if there is one, and `\s+` the run of white space (at
//!    least one, else undecided).
//! 8. `(?:\[ID …)?`: a `[` → undecided; else it cannot match.
//!
//! `\s` on an ASCII haystack is Python's `[\t\n\v\f\r\x1c-\x1f ]` (the
//! pattern's classes as compiled for ASCII haystacks), `\d` is `[0-9]`.

use super::pyre::{self, GroupKind, Node};

/// The template, `{D}` standing for the daemon's name.
const TEMPLATE: &str = r"(?:\[\])?\s*(?:<[^.]+\.[^.]+>\s+)?(?:\S+\s+)?(?:kernel:\s?\[ *\d+\.\d+\]:?\s+)?(?:@vserver_\S+\s+)?(?:(?:(?:\[\d+\])?:\s+[\[\(]?{D}(?:\(\S+\))?[\]\)]?:?|[\[\(]?{D}(?:\(\S+\))?[\]\)]?:?(?:\[\d+\])?:?)\s+)?(?:\[ID \d+ \S+\]\s+)?";

/// The template for daemon `d` as Python source.
pub(super) fn template(d: &str) -> String {
    TEMPLATE.replace("{D}", d)
}

/// Can a daemon name be taken as literal text here (letters, digits, `_`,
/// `-`: no byte the scanner's decisions look at)?
fn plain_daemon(d: &str) -> bool {
    !d.is_empty() && d.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

/// The parsed node of `text` as the chain sees a group's inside.
fn canonical(text: &str) -> Option<Node> {
    let parsed = pyre::parse(text, false).ok()?;
    Some(super::emit::simplify_zero_width_repeats(super::emit::elide_lookbehinds(parsed.node, None)))
}

/// The daemon's name when `inner` (the inside of a capture group, with no
/// groups of its own) is exactly the template for it.
pub(super) fn recognize(inner: &Node) -> Option<Daemon> {
    // cheap first: a concatenation of eight items, the seventh a `(?:…)?`
    // whose inside starts with an alternation of two branches
    let Node::Cat(items) = inner else { return None };
    if items.len() != 8 {
        return None;
    }
    let Node::Repeat { node, min: 0, max: Some(1), .. } = &items[6] else { return None };
    let Node::Group { kind: GroupKind::NonCapture, node } = &**node else { return None };
    let Node::Cat(v) = &**node else { return None };
    let Some(Node::Group { kind: GroupKind::NonCapture, node }) = v.first() else { return None };
    let Node::Alt(branches) = &**node else { return None };
    let [_, Node::Cat(second)] = branches.as_slice() else { return None };
    // the second branch: `[\[\(]?` then the name's letters
    let d: String = second
        .iter()
        .skip(1)
        .map_while(|n| match n {
            Node::Lit { c, icase: false } => Some(*c),
            _ => None,
        })
        .collect();
    if !plain_daemon(&d) {
        return None;
    }
    // the whole inside equals the template for that name
    (canonical(&template(&d))? == *inner).then(|| Daemon::new(d.as_bytes()))
}

/// Python's `\s` on an ASCII haystack.
#[inline(always)]
fn ws(c: u8) -> bool {
    matches!(c, b'\t'..=b'\r' | 0x1c..=b' ')
}

/// The end of the run of white space from `p`.
#[inline(always)]
fn ws_run(b: &[u8], mut p: usize) -> usize {
    while b.get(p).is_some_and(|&c| ws(c)) {
        p += 1;
    }
    p
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The eight bytes of `b` from `i` (little-endian), if there are eight.
#[inline(always)]
fn word(b: &[u8], i: usize) -> Option<u64> {
    let w = b.get(i..i.checked_add(8)?)?;
    Some(u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]))
}

/// The end of the run of non-space bytes from `p` (`\S+` taken whole), or
/// None when it ends at a control byte that is not white space (the
/// scanner then leaves it undecided: rare, and no word trick for it). Eight
/// bytes at a time: the lowest byte below `0x21` flagged by the borrow
/// trick is a true one (borrows disturb only the bytes above it; on an
/// ASCII haystack no byte has its high bit).
#[inline(always)]
fn non_space_run(b: &[u8], mut p: usize) -> Option<usize> {
    while let Some(w) = word(b, p) {
        let z = w.wrapping_sub(0x21 * LO) & !w & HI;
        if z != 0 {
            p += (z.trailing_zeros() / 8) as usize;
            return ws(b[p]).then_some(p);
        }
        p += 8;
    }
    while let Some(&c) = b.get(p) {
        if c <= b' ' {
            return ws(c).then_some(p);
        }
        p += 1;
    }
    Some(p)
}

/// The end of the run of ASCII digits from `p`. Eight bytes at a time: a
/// byte above `9` gets its high bit from the add, one below `0` from the
/// subtract; below the lowest such byte all are digits (no carry, no
/// borrow), so the lowest flagged byte is the first non-digit.
#[inline(always)]
fn digit_run(b: &[u8], mut p: usize) -> usize {
    while let Some(w) = word(b, p) {
        let z = (w.wrapping_add(0x46 * LO) | w.wrapping_sub(0x30 * LO)) & HI;
        if z != 0 {
            return p + (z.trailing_zeros() / 8) as usize;
        }
        p += 8;
    }
    while b.get(p).is_some_and(u8::is_ascii_digit) {
        p += 1;
    }
    p
}

/// The daemon's name for [`scan`]: its bytes, and when it has at most
/// eight, the same as a word with the mask of its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Daemon {
    text: Box<[u8]>,
    word: u64,
    mask: u64,
}

impl Daemon {
    pub(super) fn new(text: &[u8]) -> Daemon {
        let (mut word, mut mask) = (0u64, 0u64);
        if text.len() <= 8 {
            for (k, &c) in text.iter().enumerate() {
                word |= u64::from(c) << (8 * k);
                mask |= 0xff << (8 * k);
            }
        }
        Daemon { text: text.into(), word, mask }
    }

    /// Is the name at `p` in `b`?
    #[inline(always)]
    fn at(&self, b: &[u8], p: usize) -> bool {
        match word(b, p) {
            Some(w) if self.text.len() <= 8 => (w ^ self.word) & self.mask == 0,
            _ => {
                b.get(p..).is_some_and(|r| r.len() >= self.text.len() && r.iter().zip(&*self.text).all(|(x, y)| x == y))
            }
        }
    }
}

/// The end of the template's first parse for daemon `d` anchored at `p` on
/// an ASCII haystack, or None when the scanner cannot decide (see the
/// module's comment: None says nothing about whether it matches).
/// (The chain runs [`scan_memo`]; this is its reference in tests.)
#[cfg(test)]
pub(super) fn scan(b: &[u8], p: usize, d: &Daemon) -> Option<usize> {
    after_bracket(b, to_bracket(b, p, d)?)
}

/// Bytes a [`Memo`] keeps.
const MEMO_BYTES: usize = 48;

/// The bytes from the scan's start through the `[` after the daemon's name
/// of the last line whose [`scan`] got there (the same host and daemon on
/// most lines of a log).
#[derive(Clone, Debug)]
pub(super) struct Memo {
    len: usize,
    bytes: [u8; MEMO_BYTES],
}

impl Default for Memo {
    fn default() -> Memo {
        Memo { len: 0, bytes: [0; MEMO_BYTES] }
    }
}

/// [`scan`] through `m`: when the bytes from `p` start with the remembered
/// ones, the scan from there (steps 1 to 7 up to the `[` decide on those
/// bytes alone: the runs of white space and non-space end inside them, the
/// name and the `[` are among them, and neither `kernel:` nor `@` can
/// start where the name and `[` are; so they take the same path and end at
/// the same offset); else the whole scan, remembered.
#[inline]
pub(super) fn scan_memo(b: &[u8], p: usize, d: &Daemon, m: &mut Memo) -> Option<usize> {
    let n = m.len;
    if n > 0 && super::segments::text_at(b, p, &m.bytes[..n]) {
        return after_bracket(b, p + n);
    }
    let q = to_bracket(b, p, d)?;
    if let Some(src) = b.get(p..q)
        && let Some(dst) = m.bytes.get_mut(..src.len())
    {
        dst.copy_from_slice(src);
        m.len = src.len();
    }
    after_bracket(b, q)
}

/// Steps 1 to 7 of [`scan`] up to the `[` after the daemon's name: the
/// index after it.
#[inline(always)]
fn to_bracket(b: &[u8], p: usize, d: &Daemon) -> Option<usize> {
    // 1, 2, 3
    if b.get(p) == Some(&b'[') {
        return None;
    }
    let p = ws_run(b, p);
    if matches!(b.get(p), None | Some(&b'<')) {
        return None;
    }
    // 4: a non-space byte here (the white space is all taken)
    let q = non_space_run(b, p + 1)?;
    let p = ws_run(b, q);
    if p == q {
        return None;
    }
    // 5, 6: their text is not there
    if b.get(p) == Some(&b'@') || b.get(p..).is_some_and(|r| r.starts_with(b"kernel:")) {
        return None;
    }
    // 7: the name (plain: it starts with none of `[ ( :`)
    if !d.at(b, p) {
        return None;
    }
    let p = p + d.text.len();
    if b.get(p) != Some(&b'[') {
        return None;
    }
    Some(p + 1)
}

/// The rest of [`scan`] from `p`, after the `[`: the digits, `]`, `:`, the
/// white space and step 8.
#[inline(always)]
fn after_bracket(b: &[u8], p: usize) -> Option<usize> {
    let q = digit_run(b, p);
    if q == p || b.get(q) != Some(&b']') {
        return None;
    }
    let q = if b.get(q + 1) == Some(&b':') { q + 2 } else { q + 1 };
    let p = ws_run(b, q);
    // 8
    if p == q || b.get(p) == Some(&b'[') {
        return None;
    }
    Some(p)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::test_util::{mutated_texts, random_texts, xorshift};
    use regex_automata::{Anchored, Input, meta};

    /// Lines of many shapes: real ones, near misses of each decision,
    /// random bytes and mutations of real lines.
    pub(in super::super) fn texts() -> Vec<String> {
        let mut v: Vec<String> = [
            "",
            " ",
            "\n",
            " bastion sshd[18357]: Failed password for root from 1.2.3.4 port 22 ssh2\n",
            "bastion sshd[18357]: Failed password",
            " bastion sshd[1]:x",
            " bastion sshd[1]: ",
            " bastion sshd[1]:\n",
            " bastion sshd[1] : x",
            " bastion sshd[1]:: x",
            " bastion sshd[]: x",
            " bastion sshd[12a]: x",
            " bastion sshd[12 x",
            " bastion sshd: x",
            " bastion sshd x",
            " bastion sshd(pam)[1]: x",
            " bastion sshd[1]: [ID 123 auth.info] x",
            " bastion sshd[1]: [x",
            " bastion sshd[1]: [ID 1 x] y",
            " bastion [sshd][1]: x",
            " bastion (sshd)[1]: x",
            " bastion [1]: sshd[2]: x",
            " bastion :  sshd[2]: x",
            " sshd[1]: x",
            " sshd[1]: sshd[2]: x",
            " [] bastion sshd[1]: x",
            "[] bastion sshd[1]: x",
            " <auth.info> bastion sshd[1]: x",
            " <auth> bastion sshd[1]: x",
            " bastion kernel: [ 12.5] sshd[1]: x",
            " bastion kernel:sshd[1]: x",
            " bastion @vserver_x sshd[1]: x",
            " bastion @x sshd[1]: x",
            " bastion\tsshd[1]:\t\tx",
            " bastion \x1csshd[1]:\x1fx",
            "\x0b\x0cbastion\x0d sshd[1]:\x0bx",
            " bastion sshd[1]:\nx",
            " bastion\nsshd[1]: x",
            " bastion sshdx[1]: x",
            " bastion ssh[1]: x",
            " bastion Sshd[1]: x",
            " bastion  sshd[123456789]:    x y z",
            "bastion",
            "bastion ",
            " bastion sshd",
            " bastion sshd[",
            " bastion sshd[1",
            " bastion sshd[1]",
            " bastion sshd[1]:",
            " bastion sshd[1] x",
            " bastion sshd[1]  x",
            " x y sshd[1]: z",
            " bastion sshd[1]: sshd[2]: x",
            "  bastion   sshd[99]:   Failed",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut rng = xorshift(0x9e37_79b9_7f4a_7c15);
        let alphabet = b"sshdkernel:@vserver_ID[]()<>.:0123456789 \t\nxabc\x1c\x01\x1b!";
        v.extend(random_texts(&mut rng, alphabet, 20_000, 30));
        let seeds = [
            " bastion sshd[18357]: Failed password for root",
            "bastion sshd[1]: x",
            " host kernel: [ 1.5]: sshd[2]: x",
            " <a.b> h @vserver_x [1]: sshd(pam)[2]: [ID 1 a.b] x",
            " h [sshd]: x",
            " a-rather-long.host.name.example sshd[123456]: y",
        ];
        v.extend(mutated_texts(&mut rng, &seeds, alphabet, 30_000));
        v
    }

    /// The template (as compiled for ASCII haystacks) and its recognized name.
    fn engine(d: &str) -> meta::Regex {
        let node = canonical(&template(d)).unwrap();
        assert_eq!(recognize(&node), Some(Daemon::new(d.as_bytes())));
        let parsed = pyre::parse(&template(d), false).unwrap();
        let opts = super::super::emit::EmitOpts {
            exact_dollar: false,
            relaxed: false,
            fancy: false,
            ascii_hay: true,
            empty_hay: false,
        };
        let mut text = String::from("(?-u)");
        super::super::emit::emit(&node, &parsed.names, opts, &mut text);
        meta::Regex::builder()
            .syntax(regex_automata::util::syntax::Config::new().utf8(false).unicode(false))
            .build(&text)
            .unwrap()
    }

    /// Where the scanner decides, it ends where the full engine's anchored
    /// leftmost-first match of the template ends, at every position of many
    /// texts; and it decides on the common shapes.
    #[test]
    fn scan_equals_full_engine() {
        for d in ["sshd", "named", "postfix-smtpd", "k", "dovecot-auth2"] {
            let re = engine(d);
            let (mut decided, mut compared) = (0, 0);
            for hay in texts() {
                let hay = hay.replace("sshd", d);
                let b = hay.as_bytes();
                for pos in 0..=b.len() {
                    compared += 1;
                    let Some(end) = scan(b, pos, &Daemon::new(d.as_bytes())) else { continue };
                    decided += 1;
                    let theirs = re.search(&Input::new(b).span(pos..b.len()).anchored(Anchored::Yes)).map(|m| m.end());
                    assert_eq!(Some(end), theirs, "{d}: {hay:?} at {pos}");
                }
            }
            assert!(decided > 5_000 && compared > 500_000, "{d}: {decided} of {compared}");
            for common in [" bastion sshd[18357]: Failed", "h sshd[1]: x", "  h \t sshd[1]:\t x"] {
                let hay = common.replace("sshd", d);
                assert!(scan(hay.as_bytes(), 0, &Daemon::new(d.as_bytes())).is_some(), "{hay:?}");
            }
        }
    }

    /// The remembered scan equals the scan, line after line, on lines that
    /// share the remembered bytes or differ from them anywhere (the host,
    /// its length, the white space, the name, the `[`, after it), in orders
    /// where the memo is both kept and replaced.
    #[test]
    fn memo_equals_scan() {
        let mut lines: Vec<String> = texts();
        let base = " bastion sshd[18357]: Failed password for root";
        let mut rng = xorshift(0x3e30_5ca9);
        let alphabet = b" \tbastion sshd[]:0123456789@kernel<>.(x)";
        for _ in 0..4000 {
            let mut t = base.as_bytes().to_vec();
            for _ in 0..rng(3) {
                let k = rng(t.len() as u64) as usize;
                match rng(3) {
                    0 => t[k] = alphabet[rng(alphabet.len() as u64) as usize],
                    1 => t.insert(k, alphabet[rng(alphabet.len() as u64) as usize]),
                    _ => {
                        t.remove(k);
                    }
                }
            }
            lines.push(String::from_utf8(t).unwrap());
            lines.push(base.to_string());
        }
        lines.push(format!(" {} sshd[1]: x", "h".repeat(60)));
        lines.push(format!(" {} sshd[1]: x", "h".repeat(60)));
        for d in ["sshd", "named", "k", "kernel"] {
            let dd = Daemon::new(d.as_bytes());
            let (mut hits, mut decided) = (0, 0);
            for p in [0, 1] {
                let mut m = Memo::default();
                for line in &lines {
                    let line = line.replace("sshd", d);
                    let b = line.as_bytes();
                    if !b.is_ascii() {
                        continue;
                    }
                    let before = m.len > 0 && super::super::segments::text_at(b, p, &m.bytes[..m.len]);
                    let got = scan_memo(b, p, &dd, &mut m);
                    assert_eq!(got, scan(b, p, &dd), "{d}: {line:?} at {p}");
                    hits += usize::from(before);
                    decided += usize::from(got.is_some());
                }
            }
            assert!(hits > 2_000 && decided > 2_000, "{d}: {hits} {decided}");
        }
    }

    /// The word-wise runs equal byte loops, for every byte after runs of
    /// every length (and every byte value inside words).
    #[test]
    fn runs_equal_byte_loops() {
        for n in 0..20 {
            for c in 0..=255u8 {
                for pad in [0usize, 3, 9] {
                    let mut b: Vec<u8> = (0..n).map(|k| b"0123456789"[k % 10]).collect();
                    b.push(c);
                    b.extend(std::iter::repeat_n(b'7', pad));
                    let slow = b.iter().position(|x| !x.is_ascii_digit()).unwrap_or(b.len());
                    assert_eq!(digit_run(&b, 0), slow, "{b:?}");
                    let mut h: Vec<u8> = (0..n).map(|k| b"ab-.:[]"[k % 7]).collect();
                    h.push(c);
                    h.extend(std::iter::repeat_n(b'x', pad));
                    if h.is_ascii() {
                        let end = h.iter().position(|&x| ws(x)).unwrap_or(h.len());
                        let slow = match h.iter().position(|&x| x <= b' ') {
                            Some(k) if !ws(h[k]) => None,
                            _ => Some(end),
                        };
                        assert_eq!(non_space_run(&h, 0), slow, "{h:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn recognizes_only_the_template() {
        let node = |t: &str| canonical(t).unwrap();
        assert_eq!(recognize(&node(&template("sshd"))), Some(Daemon::new(b"sshd")));
        for other in [
            template("(?:sshd|ssh)"),
            template("s.hd"),
            template("sshd").replace(r"(?:\S+\s+)?", r"(?:\S+\s+)??"),
            template("sshd").replace(r"\s*", r"\s+"),
            template("sshd").replace("[ID ", "[Id "),
            template("sshd").replacen("sshd", "ssh", 1),
            r"(?i:".to_string() + &template("sshd") + ")",
            "sshd".to_string(),
        ] {
            assert_eq!(recognize(&node(&other)), None, "{other}");
        }
    }
}
