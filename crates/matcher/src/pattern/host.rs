//! A hand-written scanner for fail2ban's address alternations: `<HOST>`
//! (`(?:\[?(?:IP4|IP6)\]?|DNS)`) and the `(?:IP4|IP6)` inside `<ADDR>`, as
//! [`super::tags`] expands them. It finds the alternation's first parse (the
//! one a backtracking engine with Python's leftmost-first order takes when
//! nothing follows it) on ASCII haystacks, and which group took part, so
//! that a segment chain needs no nested chain per branch for it. As every
//! segment of a chain, it gives the first parse only: a chain that fails
//! after it falls back to the full engine, which backtracks into it.
//!
//! The expansions, with Python's order of trying:
//! - IP4 `(?:::f{4,6}:)?(?P<ip4>(?:\d{1,3}\.){3}\d{1,3})`: the optional
//!   prefix first; each `\d{1,3}\.` needs a run of 1 to 3 digits then `.`
//!   (a shorter take of the run leaves a digit where `.` must be), the last
//!   `\d{1,3}` takes up to three digits (nothing follows it);
//! - IP6 `(?P<ip6>(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|(?<=:):))`:
//!   a depth-first search in the engine's order (another iteration before
//!   leaving the loop, `::?` with its second `:` first), the tail's hex run
//!   up to four, else `:` (every iteration ends with `:`: the lookbehind
//!   holds);
//! - DNS `(?P<dns>[\w\-.^_]*\w)`: the run of class bytes, backed off to its
//!   last word byte.

use super::pyre::{self, GroupKind, Node};
use super::tags;
use std::sync::OnceLock;

/// Which address alternation a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// `<HOST>`: groups ip4, ip6, dns.
    Host,
    /// The `(?:IP4|IP6)` of `<ADDR>`: groups ip4, ip6.
    Addr,
}

/// Compares `a` with the pattern `b` up to the indices of capture groups;
/// collects `a`'s indices in order.
fn same_shape(a: &Node, b: &Node, caps: &mut Vec<usize>) -> bool {
    match (a, b) {
        (
            Node::Group { kind: GroupKind::Capture(g), node: x },
            Node::Group { kind: GroupKind::Capture(_), node: y },
        ) => {
            caps.push(*g);
            same_shape(x, y, caps)
        }
        (Node::Group { kind: k1, node: x }, Node::Group { kind: k2, node: y }) => k1 == k2 && same_shape(x, y, caps),
        (Node::Cat(v), Node::Cat(w)) | (Node::Alt(v), Node::Alt(w)) => {
            v.len() == w.len() && v.iter().zip(w).all(|(x, y)| same_shape(x, y, caps))
        }
        (
            Node::Repeat { node: x, min: m1, max: x1, kind: k1 },
            Node::Repeat { node: y, min: m2, max: x2, kind: k2 },
        ) => m1 == m2 && x1 == x2 && k1 == k2 && same_shape(x, y, caps),
        // leaves (and anything holding a node the expansions do not have)
        _ => {
            let mut g = Vec::new();
            captures_of(a, &mut g);
            g.is_empty() && a == b
        }
    }
}

fn captures_of(n: &Node, out: &mut Vec<usize>) {
    match n {
        Node::Group { kind, node } => {
            if let GroupKind::Capture(g) = kind {
                out.push(*g);
            }
            captures_of(node, out);
        }
        Node::Cat(v) | Node::Alt(v) => v.iter().for_each(|c| captures_of(c, out)),
        Node::Repeat { node, .. } | Node::Look { node, .. } => captures_of(node, out),
        Node::Cond { yes, no, .. } => {
            captures_of(yes, out);
            captures_of(no, out);
        }
        _ => {}
    }
}

/// The expansion as the compiler sees it (parsed, lookbehinds elided,
/// zero-width repeats simplified), a single-item concatenation unwrapped.
fn canonical(text: &str) -> Option<Node> {
    let parsed = pyre::parse(text, false).ok()?;
    let node = super::emit::simplify_zero_width_repeats(super::emit::elide_lookbehinds(parsed.node, None));
    Some(match node {
        Node::Cat(mut v) if v.len() == 1 => v.pop()?,
        n => n,
    })
}

/// The address alternation `n` is, with its groups (ip4, ip6[, dns]).
pub(super) fn recognize(n: &Node) -> Option<(Kind, Vec<usize>)> {
    static CANON: OnceLock<Option<[Node; 2]>> = OnceLock::new();
    let canon = CANON.get_or_init(|| {
        // the `(?:IP4|IP6)` group inside `<ADDR>`
        let addr = format!("(?:{}|{})", tags::ip4_re(), tags::ip6_re());
        Some([canonical(&tags::host_re())?, canonical(&addr)?])
    });
    let [host, addr] = canon.as_ref()?;
    // cheap first: the shapes are a group around an alternation
    if !matches!(n, Node::Group { kind: GroupKind::NonCapture, node } if matches!(**node, Node::Alt(_))) {
        return None;
    }
    for (kind, canon, n_groups) in [(Kind::Host, host, 3), (Kind::Addr, addr, 2)] {
        let mut caps = Vec::new();
        if same_shape(n, canon, &mut caps) && caps.len() == n_groups {
            return Some((kind, caps));
        }
    }
    None
}

#[inline]
fn is_digit(c: u8) -> bool {
    c.is_ascii_digit()
}

#[inline]
fn is_hex(c: u8) -> bool {
    c.is_ascii_hexdigit()
}

#[inline]
fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// How many bytes from `p` satisfy `f` (at most `cap`).
#[inline]
fn run(b: &[u8], p: usize, cap: usize, f: impl Fn(u8) -> bool) -> usize {
    let mut k = 0;
    while k < cap
        && let Some(&c) = b.get(p + k)
        && f(c)
    {
        k += 1;
    }
    k
}

/// End of `(?:\d{1,3}\.){3}\d{1,3}`'s first parse from `p`: from the
/// sixteen bytes there at once when there are that many ([`ip4_words`]),
/// else byte by byte.
#[inline]
fn ip4(b: &[u8], p: usize) -> Option<usize> {
    match ip4_words(b, p) {
        Some(end) => end,
        None => ip4_bytes(b, p),
    }
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `w` that is not an ASCII digit; exact when
/// no byte of `w` has its high bit (no carry or borrow crosses a byte: a
/// byte from `:` on gets its high bit from the add, `0x7f + 0x46` stays
/// below `0x100`; one below `0` loses the high bit set before the subtract).
#[inline(always)]
fn non_digits(w: u64) -> u64 {
    (w.wrapping_add(0x46 * LO) | !(w | HI).wrapping_sub(0x30 * LO)) & HI
}

/// Flags in the high bits of bytes as bits 0..8 (byte `k`: bit `k`).
#[inline(always)]
fn bits8(x: u64) -> u32 {
    ((x >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32
}

/// [`ip4_bytes`] from the sixteen bytes at `p` (the most the first parse
/// reads: three parts of at most three digits and a dot, then at most three
/// digits): a bit mask of the non-digits, one test per part.
/// None when there are fewer than sixteen bytes or one of them is not
/// ASCII (the caller goes byte by byte); else the same answer as
/// [`ip4_bytes`] — each part needs 1 to 3 digits then a dot (the first
/// non-digit, at most 3 bytes on, is a dot), the last takes up to three.
#[inline(always)]
fn ip4_words(b: &[u8], p: usize) -> Option<Option<usize>> {
    let w = b.get(p..p.checked_add(16)?)?.first_chunk::<16>()?;
    let lo = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
    let hi = u64::from_le_bytes([w[8], w[9], w[10], w[11], w[12], w[13], w[14], w[15]]);
    if (lo | hi) & HI != 0 {
        return None;
    }
    let nd = bits8(non_digits(lo)) | bits8(non_digits(hi)) << 8;
    let mut k = 0;
    for _ in 0..3 {
        // digits from `k` to the first non-digit (past the sixteen: 32 - k);
        // with `d <= 3` and `k <= 8`, the byte after them is among the
        // sixteen (one load: cheaper than a mask of the dots)
        let d = (nd >> k).trailing_zeros();
        if !(1..=3).contains(&d) || w[(k + d) as usize] != b'.' {
            return Some(None);
        }
        k += d + 1;
    }
    // k <= 12: the last part's three bytes are among the sixteen
    let d = (nd >> k).trailing_zeros().min(3);
    Some((d > 0).then_some(p + (k + d) as usize))
}

/// [`ip4`] byte by byte.
#[inline]
fn ip4_bytes(b: &[u8], mut p: usize) -> Option<usize> {
    for _ in 0..3 {
        let d = run(b, p, 4, is_digit);
        if !(1..=3).contains(&d) || b.get(p + d) != Some(&b'.') {
            return None;
        }
        p += d + 1;
    }
    let d = run(b, p, 3, is_digit);
    (d > 0).then_some(p + d)
}

/// The IP4 branch `(?:::f{4,6}:)?(IP4)` from `p`: the group's span.
#[inline]
fn ip4_branch(b: &[u8], p: usize) -> Option<(usize, usize)> {
    if b.get(p..p + 2) == Some(b"::") {
        let r = run(b, p + 2, 7, |c| c == b'f');
        if (4..=6).contains(&r) && b.get(p + 2 + r) == Some(&b':') {
            let q = p + 3 + r;
            if let Some(e) = ip4(b, q) {
                return Some((q, e));
            }
        }
    }
    ip4(b, p).map(|e| (p, e))
}

/// `(?:H{1,4}::?|::){1,7}(?:H{1,4}|:)` from `p` after `i` iterations, in the
/// engine's order; `failed`: (iterations, offset from `start`) pairs known to
/// fail (an offset is at most 6 bytes per iteration: below 64).
fn ip6_from(b: &[u8], start: usize, p: usize, i: usize, failed: &mut [u64; 8]) -> Option<usize> {
    let off = p - start;
    if failed[i] & (1u64 << off) != 0 {
        return None;
    }
    if i < 7 {
        let h = run(b, p, 5, is_hex);
        if (1..=4).contains(&h) && b.get(p + h) == Some(&b':') {
            if b.get(p + h + 1) == Some(&b':')
                && let Some(e) = ip6_from(b, start, p + h + 2, i + 1, failed)
            {
                return Some(e);
            }
            if let Some(e) = ip6_from(b, start, p + h + 1, i + 1, failed) {
                return Some(e);
            }
        }
        if b.get(p..p + 2) == Some(b"::")
            && let Some(e) = ip6_from(b, start, p + 2, i + 1, failed)
        {
            return Some(e);
        }
    }
    if i >= 1 {
        let h = run(b, p, 4, is_hex);
        if h > 0 {
            return Some(p + h);
        }
        // (?<=:): — the byte before is the last iteration's `:`
        if b.get(p) == Some(&b':') {
            return Some(p + 1);
        }
    }
    failed[i] |= 1u64 << off;
    None
}

/// The IP6 branch from `p`: the group's end.
#[inline(never)]
fn ip6(b: &[u8], p: usize) -> Option<usize> {
    // it starts with a hex digit or `::`
    match b.get(p) {
        Some(&c) if is_hex(c) => ip6_full(b, p).or_else(|| ip6_from(b, p, p, 0, &mut [0; 8])),
        Some(&b':') if b.get(p + 1) == Some(&b':') => ip6_from(b, p, p, 0, &mut [0; 8]),
        _ => None,
    }
}

/// A full address from `p`: seven groups `H{1,4}` each followed by a single
/// `:` (no `::`), then a hex run: the IP6 branch's first parse ends after
/// that run, capped at four (None: another shape, [`ip6_from`] decides).
/// Exact: in [`ip6_from`]'s order each of the seven iterations' first
/// option is `H{1,4}:` (the hex run, at most four, then `:`; `::` is tried
/// first only where a second `:` follows), and another iteration comes
/// before leaving the loop; after seven, the tail `H{1,4}` takes the run
/// (at least one digit). Each first option gets through, so that path is
/// the first parse.
#[inline]
fn ip6_full(b: &[u8], p: usize) -> Option<usize> {
    match ip6_full_words(b, p) {
        Some(end) => end,
        None => ip6_full_bytes(b, p),
    }
}

/// The high bit of each byte of `w` in `lo..=hi` (`0 < lo <= hi < 0x80`);
/// exact when no byte of `w` has its high bit (no add carries out of a
/// byte: `0x7f + 0x80 - lo < 0x100`, `0x7f + 0x7f - hi < 0x100`).
#[inline(always)]
fn in_range(w: u64, lo: u8, hi: u8) -> u64 {
    let ge = w.wrapping_add(u64::from(0x80 - lo) * LO);
    let gt = w.wrapping_add(u64::from(0x7f - hi) * LO);
    ge & !gt & HI
}

/// The high bit of each byte of `w` that is an ASCII hex digit; exact when
/// no byte of `w` has its high bit (`| 0x20` maps `A-F` to `a-f` and no
/// other byte there; the digits are tested on `w` itself).
#[inline(always)]
fn hex_bits(w: u64) -> u64 {
    in_range(w, b'0', b'9') | in_range(w | (0x20 * LO), b'a', b'f')
}

/// The high bit of each byte of `w` equal to `:`; exact when no byte of `w`
/// has its high bit (the add to the low seven bits carries into the high
/// bit exactly for a non-zero byte, and never out of the byte).
#[inline(always)]
fn colons(w: u64) -> u64 {
    let x = w ^ (u64::from(b':') * LO);
    !((x & !HI).wrapping_add(!HI) | x) & HI
}

/// [`ip6_full_bytes`] from the forty bytes at `p` (the most it reads: seven
/// groups of at most five bytes, a hex run of at most four after them):
/// bit masks of the hex digits and the colons, one test per group (the
/// first one on the first word, before the others are read). None when
/// there are fewer than forty bytes or one of those it reads is not ASCII
/// (the caller goes byte by byte); else the same answer as
/// [`ip6_full_bytes`].
/// Why exact: the group at `k` (at most 30) has the hex run `d`, the
/// trailing zeros of the non-hex mask from `k`, which the forty bytes hold
/// up to its fifth byte (`k + 5 <= 35`): `1..=4` equals the byte loop's
/// capped run being `1..=4`; the bytes at `k + d` and `k + d + 1` (at most
/// 35) are among the forty; the tail's run from `k <= 35` capped at four
/// ends by byte 39.
#[inline]
fn ip6_full_words(b: &[u8], p: usize) -> Option<Option<usize>> {
    let w = b.get(p..p.checked_add(40)?)?;
    let word = |i: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&w[i * 8..i * 8 + 8]);
        u64::from_le_bytes(a)
    };
    let x = word(0);
    if x & HI != 0 {
        return None;
    }
    let (mut hex, mut colon) = (u64::from(bits8(hex_bits(x))), u64::from(bits8(colons(x))));
    // the first group from the first word alone (its bytes `..=5`): most
    // texts that are no address fail there (`authenticating`)
    let d = (!hex).trailing_zeros();
    if !(1..=4).contains(&d) || (colon >> d) & 0b11 != 0b01 {
        return Some(None);
    }
    let mut high = 0u64;
    for i in 1..5 {
        let x = word(i);
        high |= x;
        hex |= u64::from(bits8(hex_bits(x))) << (i * 8);
        colon |= u64::from(bits8(colons(x))) << (i * 8);
    }
    if high & HI != 0 {
        return None;
    }
    // (bits from 40 on: not hex, not colons)
    let non_hex = !hex;
    let mut k = d + 1;
    for _ in 1..7 {
        let d = (non_hex >> k).trailing_zeros();
        // `H{1,4}:` and no second `:`
        if !(1..=4).contains(&d) || (colon >> (k + d)) & 0b11 != 0b01 {
            return Some(None);
        }
        k += d + 1;
    }
    let d = (non_hex >> k).trailing_zeros().min(4);
    Some((d > 0).then_some(p + (k + d) as usize))
}

/// [`ip6_full`] byte by byte.
#[inline]
fn ip6_full_bytes(b: &[u8], mut p: usize) -> Option<usize> {
    for _ in 0..7 {
        let h = run(b, p, 5, is_hex);
        if !(1..=4).contains(&h) || b.get(p + h) != Some(&b':') || b.get(p + h + 1) == Some(&b':') {
            return None;
        }
        p += h + 1;
    }
    let h = run(b, p, 4, is_hex);
    (h > 0).then_some(p + h)
}

/// The DNS branch `[\w\-.^_]*\w` from `p`: its end.
#[inline(never)]
fn dns(b: &[u8], p: usize) -> Option<usize> {
    let r = run(b, p, b.len(), |c| is_word(c) || c == b'-' || c == b'.' || c == b'^');
    let h = &b[p..p + r];
    h.iter().rposition(|&c| is_word(c)).map(|k| p + k + 1)
}

/// The group that took part in a [`scan`]: 0 ip4, 1 ip6, 2 dns.
pub(super) type Took = (usize, usize, usize);

/// The first parse of the alternation from `p` on an ASCII haystack: its end
/// and (which group, the group's start, end). A plain IPv4 address (the
/// common case) on a short path that needs few registers (no frame to
/// save); the rest in [`scan_general`].
///
/// Why the short path is exact: an address [`ip4_words`] finds from `p`
/// starts with a digit, where neither `\[?` (`<HOST>`) nor the IP4
/// branch's `::f{4,6}:` prefix can take a byte, so the branch's first parse
/// is [`ip4`]'s from `p`, which [`ip4_words`] gives when it answers; an IP4
/// match is the alternation's first parse (its first branch), and `\]?`
/// then takes a `]` (`<HOST>` only).
#[inline(never)]
pub(super) fn scan(kind: Kind, b: &[u8], p: usize) -> Option<(usize, Took)> {
    // (an address from `p` starts with a digit)
    if let Some(Some(e)) = ip4_words(b, p) {
        let end = if kind == Kind::Host && b.get(e) == Some(&b']') { e + 1 } else { e };
        return Some((end, (0, p, e)));
    }
    scan_general(kind, b, p)
}

/// [`scan`] without its short path.
#[inline(never)]
fn scan_general(kind: Kind, b: &[u8], p: usize) -> Option<(usize, Took)> {
    let host = kind == Kind::Host;
    // `<HOST>`: `\[?` takes a `[` first; without it the inner part would
    // start at `[`, where neither IP4 nor IP6 can (nor DNS: `[` is not in
    // its class)
    let q = if host && b.get(p) == Some(&b'[') { p + 1 } else { p };
    // `\]?` after the address (`<HOST>` only)
    let close = |e: usize| if host && b.get(e) == Some(&b']') { e + 1 } else { e };
    if let Some((s, e)) = ip4_branch(b, q) {
        return Some((close(e), (0, s, e)));
    }
    if let Some(e) = ip6(b, q) {
        return Some((close(e), (1, q, e)));
    }
    if host { dns(b, p).map(|e| (e, (2, p, e))) } else { None }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::test_util::{mutated_texts, random_texts, xorshift};
    use regex_automata::{Anchored, Input, meta};

    pub(in super::super) fn texts() -> Vec<String> {
        let mut v: Vec<String> = [
            "",
            "1.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "256.1.1.1",
            "001.002.003.004",
            "1.2.3.4567",
            "1234.1.1.1",
            "1.2.3.",
            "1..2.3",
            ".1.2.3.4",
            "::ffff:1.2.3.4",
            "::fff:1.2.3.4",
            "::fffffff:1.2.3.4",
            "::ffffff:1.2.3.4",
            "::FFFF:1.2.3.4",
            "::ffff:1.2.3",
            "::ffff:",
            "::",
            ":::",
            "::1",
            "1::",
            "1:",
            "1:2",
            "fe80::1%eth0",
            "2001:db8::1",
            "2001:0db8:0000:0000:0000:ff00:0042:8329",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7::",
            "12345::1",
            "abcd:",
            "abcd::ef01",
            "a:::b",
            "::::::::::::::::",
            "1::::::::::",
            "[1.2.3.4]",
            "[1.2.3.4",
            "[::1]:22",
            "[host]",
            "[",
            "]",
            "[]",
            "host.example.org",
            "host-1.example.org.",
            "-",
            "-a",
            "a-",
            "a.",
            ".",
            "^x",
            "_",
            "a_b",
            "1.2.3.4:22",
            "1.2.3.4 port 22",
            "host port 22",
            "h\u{e9}st",
            "1.2.3.4-5",
            "dead:beef",
            "dead:beef:",
            "g::1",
            "::g",
            "1.2.3.4]",
            "::ffff:1.2.3.4]",
            "[2001:db8::1] port 22",
            "0:0:0:0:0:0:0:0",
            "::ffff:1.2.3.4.5",
            "1.2.3.4.",
            "10.0.0.1/24",
            "a:b:c:d:e:f:0:1:2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut rng = xorshift(0x5eed_4057);
        let alphabet = b"0123456789abcdefABF:.[]-_^ xyz/%";
        v.extend(random_texts(&mut rng, alphabet, 20_000, 24));
        // mutations of address-like texts
        let seeds = [
            "1.2.3.4",
            "::ffff:10.0.0.1",
            "2001:db8::1",
            "fe80::a:b:c:d",
            "host-1.example.org",
            "2a0e:1224:e307:9341:76ad:6d55:42e0:8c9c",
            "1:22:333:4444:5:66:777:8888",
        ];
        v.extend(mutated_texts(&mut rng, &seeds, alphabet, 20_000));
        v
    }

    /// `base` with every byte value in each of its first `n` places.
    fn every_byte_in(base: &[u8], n: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for k in 0..n {
            for v in 0..=255u8 {
                let mut h = base.to_vec();
                h[k] = v;
                out.push(h);
            }
        }
        out
    }

    /// At every position of every haystack: the word-at-a-time test `words`
    /// equals the byte-by-byte one `bytes` wherever it answers, and `both`
    /// (the two combined, as the scanner calls them) always does. Returns
    /// how often `words` answered, and answered with a match.
    fn words_agree(
        hays: &[Vec<u8>],
        words: fn(&[u8], usize) -> Option<Option<usize>>,
        bytes: fn(&[u8], usize) -> Option<usize>,
        both: fn(&[u8], usize) -> Option<usize>,
    ) -> (usize, usize) {
        let (mut answered, mut compared) = (0, 0);
        for h in hays {
            for pos in 0..=h.len() {
                let want = bytes(h, pos);
                if let Some(got) = words(h, pos) {
                    assert_eq!(got, want, "{:?} at {pos}", String::from_utf8_lossy(h));
                    answered += 1;
                    if want.is_some() {
                        compared += 1;
                    }
                }
                assert_eq!(both(h, pos), want);
            }
        }
        (answered, compared)
    }

    /// The sixteen-byte IP4 test equals the byte-by-byte one wherever it
    /// answers, at every position of address-like texts followed by what
    /// lines have there (so that sixteen bytes are there), with every byte
    /// value next to the parts (digits, dots, the bytes around `0`-`9` and
    /// `.`, high bits: then it must not answer).
    #[test]
    fn ip4_words_equal_ip4_bytes() {
        let mut hays: Vec<Vec<u8>> = Vec::new();
        let tails: [&[u8]; 6] =
            [b"", b" port 22 ssh2", b"0000000000000000", b"................", b"/:-", b"\xff\x80abc"];
        for t in texts() {
            for tail in tails {
                let mut h = t.clone().into_bytes();
                h.extend_from_slice(tail);
                hays.push(h);
            }
        }
        let parts = ["1", "12", "123", "1234", "", "0"];
        for a in parts {
            for b in parts {
                for c in parts {
                    for d in ["1", "12", "123", "1234", "12345", ""] {
                        hays.push(format!("{a}.{b}.{c}.{d} port 22 ssh2").into_bytes());
                        hays.push(format!("{a}.{b}.{c}.{d}").into_bytes());
                    }
                }
            }
        }
        // each byte value in each of the sixteen places of an address
        hays.extend(every_byte_in(b"123.45.6.789 port 22", 16));
        let (answered, compared) = words_agree(&hays, ip4_words, ip4_bytes, ip4);
        assert!(answered > 100_000 && compared > 1_000, "{answered} {compared}");
    }

    /// `scan`'s short IPv4 path gives what the general path gives, at every
    /// position of address-like texts followed by what lines have there (so
    /// that the short path answers).
    #[test]
    fn scan_short_path_equals_general() {
        let tails: [&str; 5] = ["", " port 22 ssh2", "] port 22 ssh2", "0000000000000000", "................"];
        let mut short = 0;
        for t in texts() {
            for tail in tails {
                let h = format!("{t}{tail}");
                let b = h.as_bytes();
                for pos in 0..=b.len() {
                    for kind in [Kind::Host, Kind::Addr] {
                        let want = scan_general(kind, b, pos);
                        assert_eq!(scan(kind, b, pos), want, "{kind:?} {h:?} at {pos}");
                        short += usize::from(matches!(ip4_words(b, pos), Some(Some(_))));
                    }
                }
            }
        }
        assert!(short > 10_000, "{short}");
    }

    /// The forty-byte full IPv6 test equals the byte-by-byte one wherever it
    /// answers, at every position of address-like texts followed by what
    /// lines have there, with every byte value in each of the forty places
    /// of full addresses (hex digits, colons, the bytes around `0`-`9`,
    /// `A`-`F`, `a`-`f` and `:`, high bits: then it must not answer).
    #[test]
    fn ip6_full_words_equal_ip6_full_bytes() {
        let mut hays: Vec<Vec<u8>> = Vec::new();
        let tails: [&[u8]; 6] = [
            b"",
            b" port 22 ssh2 and some more text to the end",
            b"::::::::::::::::::::::::::::::::::::::::",
            b"abcdefABCDEF0123456789abcdefABCDEF0123456789",
            b"/:-gG@`",
            b"\xff\x80abc",
        ];
        for t in texts() {
            for tail in tails {
                let mut h = t.clone().into_bytes();
                h.extend_from_slice(tail);
                hays.push(h);
            }
        }
        let groups = ["1", "ab", "c0D", "fFfF", "12345", "", "g"];
        let mut rng = xorshift(0x1b6_f011);
        let mut pick = |n: usize| rng(n as u64) as usize;
        for _ in 0..20_000 {
            let n = 6 + pick(4);
            let parts: Vec<&str> = (0..n).map(|_| groups[pick(groups.len())]).collect();
            let seps = [":", ":", ":", "::", "."];
            let mut s = String::new();
            for (i, g) in parts.iter().enumerate() {
                if i > 0 {
                    s.push_str(seps[pick(seps.len())]);
                }
                s.push_str(g);
            }
            s.push_str(" port 22 ssh2 and some more text to the end");
            hays.push(s.into_bytes());
        }
        hays.extend(every_byte_in(b"2a0e:1224:e307:9341:76ad:6d55:42e0:8c9c port 41840 ssh2", 40));
        hays.extend(every_byte_in(b"1:22:333:4444:a:bB:CcC:dDdD port 41840 ssh2 and more", 40));
        let (answered, compared) = words_agree(&hays, ip6_full_words, ip6_full_bytes, ip6_full);
        assert!(answered > 100_000 && compared > 10_000, "{answered} {compared}");
    }

    /// The scanner's first parse (end and groups) equals the full engine's
    /// anchored match of the expansion alone, at every position of many texts.
    #[test]
    fn scan_equals_full_engine() {
        let addr = format!("(?:{}|{})", tags::ip4_re(), tags::ip6_re());
        for (kind, text) in [(Kind::Host, tags::host_re()), (Kind::Addr, addr)] {
            let node = canonical(&text).unwrap();
            let (k, caps) = recognize(&node).unwrap();
            assert_eq!(k, kind);
            let parsed = pyre::parse(&text, false).unwrap();
            let mut etext = String::new();
            let opts = super::super::emit::EmitOpts {
                exact_dollar: false,
                relaxed: false,
                fancy: false,
                ascii_hay: false,
                empty_hay: false,
            };
            super::super::emit::emit(&node, &parsed.names, opts, &mut etext);
            let re = meta::Regex::new(&etext).unwrap();
            let mut c = re.create_captures();
            let mut compared = 0;
            for hay in texts() {
                if !hay.is_ascii() {
                    continue;
                }
                for pos in 0..=hay.len() {
                    re.search_captures(&Input::new(&hay).span(pos..hay.len()).anchored(Anchored::Yes), &mut c);
                    let theirs = c.get_match().map(|m| {
                        let g: Vec<_> = (1..=caps.len()).map(|g| c.get_group(g).map(|s| (s.start, s.end))).collect();
                        (m.end(), g)
                    });
                    let ours = scan(kind, hay.as_bytes(), pos).map(|(end, (which, s, e))| {
                        let g: Vec<_> = (0..caps.len()).map(|k| (k == which).then_some((s, e))).collect();
                        (end, g)
                    });
                    assert_eq!(ours, theirs, "{kind:?} on {hay:?} at {pos}");
                    compared += 1;
                }
            }
            assert!(compared > 100_000);
        }
    }
}
