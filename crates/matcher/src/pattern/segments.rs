//! Fast captures for linear patterns: split the top-level concatenation
//! `E1 E2 … Ek` into segments at capture groups and find each segment's span
//! with an anchored DFA search, one after the other.
//!
//! Why this is exact: a backtracking engine (Python's semantics, which the
//! `regex` crate's leftmost-first matching reproduces) tries E1's parses in
//! priority order and, for each, the rest. The first parse of E1 (the one an
//! anchored leftmost-first search of E1 alone reports) followed by the first
//! parse of E2 from there, … — if this chain gets through all segments it is
//! the first successful path, so it *is* the match and its group spans. If it
//! fails anywhere (or ends elsewhere than the whole-pattern match), the
//! caller falls back to the full capture engine. Groups nested inside a
//! segment are resolved by a capture search of that segment alone.

use regex_automata::dfa::{Automaton, StartKind, dense};
use regex_automata::util::captures::Captures as RaCaptures;
use regex_automata::{Anchored, Input, meta};
use std::sync::OnceLock;

use super::emit::{self, EmitOpts};
use super::host;
use super::prefix;
use super::pyre::{GroupKind, Node, RepKind};
use super::tails;

/// A zero-width assertion or literal text of a segment that needs no
/// automaton (exactly one way to match).
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(u8)] // a plain tag byte first: one load decodes it
enum Atom {
    /// `\A`
    Start,
    /// `(?m:^)`
    LineStart,
    /// `(?m:$)`
    LineEnd,
    /// `\z`
    End,
    /// Case-sensitive text.
    Text(String),
}

/// Segments whose first parse is found without an automaton.
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(u8)] // a plain tag byte first: one load decodes it
enum Fast {
    /// A fixed sequence of assertions and literal text.
    Seq(Vec<Atom>),
    /// A whole group `(.*)`, `(.+)`, `(.*?)`, `(.+?)` (no DOTALL: any char
    /// but `\n`) followed by literal text without `\n` (empty: greedy only).
    /// `rare`: the index of the tail's rarest byte ([`rare_index`]).
    Dots { min: usize, lazy: bool, tail: String, rare: usize },
    /// A repetition of one class (or `.`) followed by literal text, on
    /// ASCII haystacks only. `class`: the class's ASCII bytes (as compiled
    /// for ASCII haystacks). When the text does not start with a byte of
    /// the class, the run of class bytes is the only way to match; else
    /// (`scan`) the text is searched in the run, backwards when greedy.
    /// (The table covers every byte, none from 128 on: no range check.)
    /// `stop`: the ASCII bytes not in the class when they are at most three
    /// (`[^:]`, `.`): the run ends at the first of them (memchr), as on an
    /// ASCII haystack no other byte ends it.
    /// `rare`: the index of the tail's rarest byte ([`rare_index`]).
    Run {
        class: Box<[bool; 256]>,
        min: usize,
        max: usize,
        lazy: bool,
        tail: String,
        scan: bool,
        stop: Option<Stop>,
        rare: usize,
    },
    /// `(X)?` (greedy) of a capture group `group` around a fast kind that
    /// cannot match empty: X's first parse if it has one, else nothing.
    Opt { group: usize, inner: Box<Fast> },
    /// Case-sensitive literal text with capture groups around parts of it
    /// (`(?P<a>Received (?P<b>disconnect))`): one way to match, each group
    /// `(g, start, end)` at fixed offsets from the segment's start.
    Fixed { text: String, groups: Vec<(usize, usize, usize)> },
    /// A piece with exactly one way to match, walked step by step (see
    /// [`Step`]).
    /// `ascii`: only valid on ASCII haystacks (it has class runs).
    /// `memo`: the chain remembers the last walk ([`StepsMemo`]; set
    /// when the chain is compiled, for steps with [`memo_ok`]).
    Steps { steps: Vec<Step>, ascii: bool, memo: bool },
    /// fail2ban's `<HOST>` alternation or the `(?:IP4|IP6)` of `<ADDR>`
    /// (see [`host`]), on ASCII haystacks only: the segment's groups are
    /// ip4, ip6 (and dns), the one that took part set, the others None.
    Host { kind: host::Kind },
    /// fail2ban's `__prefix_line` with this daemon name, the whole group
    /// (see [`prefix`]), on ASCII haystacks only; where the scanner cannot
    /// decide, the segment's automaton does (the general case).
    Prefix { daemon: prefix::Daemon },
    /// Literal text, then sshd's tail `(?: (?:port \d+|on \S+|\[preauth\])){0,3}\s*$`
    /// (see [`tails`]; exact), on ASCII haystacks only.
    Tail { lead: Box<[u8]> },
    /// fail2ban's `__on_port_opt` `(?: (?:port \d+|on \S+)){0,2}`, then
    /// steps that cannot start with a space or a digit (see
    /// [`tails::on_port`]; ` on ` there: undecided, the general case), on
    /// ASCII haystacks only; no groups.
    OnPort { steps: Vec<Step> },
}

/// The ASCII bytes (at most three, `n` of them) a [`Fast::Run`]'s class
/// lacks: on an ASCII haystack a run ends at the first of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stop {
    n: u8,
    bytes: [u8; 3],
}

impl Stop {
    /// The class's ASCII complement, if it has at most three bytes.
    fn of(class: &[bool; 256]) -> Option<Stop> {
        let mut bytes = [0u8; 3];
        let mut n = 0;
        for c in 0..128u8 {
            if !class[usize::from(c)] {
                *bytes.get_mut(n)? = c;
                n += 1;
            }
        }
        Some(Stop { n: n as u8, bytes })
    }

    /// Where the first stop byte is in `h` (its length: none).
    #[inline]
    fn find(self, h: &[u8]) -> usize {
        let [a, b, c] = self.bytes;
        if h.len() < SHORT_HAY && self.n > 0 {
            // eight bytes at a time (a call to memchr costs more on a line):
            // the lowest bit flagged for any of the bytes is a true one
            // (see `eq_bits`); fewer than three bytes: the first again
            let b = if self.n >= 2 { b } else { a };
            let c = if self.n >= 3 { c } else { a };
            let (ba, bb, bc) = (LO * u64::from(a), LO * u64::from(b), LO * u64::from(c));
            let mut k = 0;
            while k + 8 <= h.len() {
                let w = word_at(h, k);
                let z = eq_bits(w, ba) | eq_bits(w, bb) | eq_bits(w, bc);
                if z != 0 {
                    return k + (z.trailing_zeros() / 8) as usize;
                }
                k += 8;
            }
            if k == h.len() {
                return k;
            }
            if h.len() >= 8 {
                // the last eight bytes (those before `k` hold none of them)
                let base = h.len() - 8;
                let w = word_at(h, base);
                let z = eq_bits(w, ba) | eq_bits(w, bb) | eq_bits(w, bc);
                return if z != 0 { base + (z.trailing_zeros() / 8) as usize } else { h.len() };
            }
            return k + h[k..].iter().position(|&x| x == a || x == b || x == c).unwrap_or(h.len() - k);
        }
        match self.n {
            0 => None,
            1 => memchr::memchr(a, h),
            2 => memchr::memchr2(a, b, h),
            _ => memchr::memchr3(a, b, c, h),
        }
        .unwrap_or(h.len())
    }
}

/// Does `b` hold `t` at `p`? Short texts: compares of words (the last one
/// overlapping the ones before) or of bytes beat a call to memcmp.
#[inline]
pub(super) fn text_at(b: &[u8], p: usize, t: &[u8]) -> bool {
    let n = t.len();
    let Some(h) = p.checked_add(n).and_then(|e| b.get(p..e)) else { return false };
    if n >= 8 {
        let mut i = 0;
        while i + 8 < n {
            if word_at(h, i) != word_at(t, i) {
                return false;
            }
            i += 8;
        }
        return word_at(h, n - 8) == word_at(t, n - 8);
    }
    if n >= 4 {
        let half = |x: &[u8], i: usize| u32::from_le_bytes([x[i], x[i + 1], x[i + 2], x[i + 3]]);
        return half(h, 0) == half(t, 0) && half(h, n - 4) == half(t, n - 4);
    }
    h.iter().zip(t).all(|(x, y)| x == y)
}

/// Haystacks shorter than this are searched for literal text (and run ends)
/// eight bytes at a time (see [`find_lit`]): below it, `memmem` hashes byte
/// by byte and a call to `memchr` costs more than the words.
const SHORT_HAY: usize = 64;

/// Haystacks up to this length (and from [`SHORT_HAY`]) are searched for
/// literal text by `memchr` on its rarest byte; longer ones by `memmem`
/// (no quadratic worst case).
const MID_HAY: usize = 256;

/// Index of the byte of `t` (not empty) least likely in a haystack (memchr's
/// heuristic ranking: `Pair`'s first index).
fn rare_index(t: &[u8]) -> usize {
    match memchr::arch::all::packedpair::Pair::new(t) {
        Some(p) => usize::from(p.index1()),
        None => 0,
    }
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The eight bytes of `h` from `i` (little-endian).
#[inline(always)]
fn word_at(h: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&h[i..i + 8]);
    u64::from_le_bytes(a)
}

/// The high bit of each byte of `w` equal to the byte broadcast in `bc`,
/// and maybe of some others above one that is (a borrow): every bit found
/// is a candidate the caller checks, and no such byte is missed.
#[inline(always)]
fn eq_bits(w: u64, bc: u64) -> u64 {
    let x = w ^ bc;
    x.wrapping_sub(LO) & !x & HI
}

/// The first place of `t` (not empty) in `h`; `rare`: an index into `t`
/// ([`rare_index`]). On short haystacks each place of that byte (found
/// eight bytes at a time) is a candidate, checked by a compare: lines are
/// far shorter than what `memmem`'s vector search needs (below it, it
/// hashes byte by byte), and a call to `memchr` costs more than the words.
#[inline]
fn find_lit(h: &[u8], t: &[u8], rare: usize) -> Option<usize> {
    let c = t[rare];
    if h.len() >= SHORT_HAY {
        if h.len() > MID_HAY {
            return memchr::memmem::find(h, t);
        }
        return memchr::memchr_iter(c, h).filter(|&k| k >= rare).map(|k| k - rare).find(|&k| text_at(h, k, t));
    }
    // the byte at `k` in `rare..hi` starts a candidate at `k - rare` (its
    // text ends inside `h`)
    let hi = (h.len() + 1).checked_sub(t.len() - rare)?;
    let bc = LO * u64::from(c);
    // the first candidate among the eight places of the word at `base`
    let in_word = |base: usize| {
        let mut z = eq_bits(word_at(h, base), bc);
        while z != 0 {
            let j = base + (z.trailing_zeros() / 8) as usize - rare;
            if text_at(h, j, t) {
                return Some(j);
            }
            z &= z - 1;
        }
        None
    };
    let mut k = rare;
    while k + 8 <= hi {
        if let Some(j) = in_word(k) {
            return Some(j);
        }
        k += 8;
    }
    // the last places: one word ending at `hi` (its places before `k`
    // failed above: checked again, they fail again), unless `hi` is too
    // close to the start
    if k < hi && hi >= rare + 8 {
        return in_word(hi - 8);
    }
    while k < hi {
        if h[k] == c && text_at(h, k - rare, t) {
            return Some(k - rare);
        }
        k += 1;
    }
    None
}

/// The last place of `t` (not empty) in `h` (see [`find_lit`]).
#[inline]
fn rfind_lit(h: &[u8], t: &[u8], rare: usize) -> Option<usize> {
    let c = t[rare];
    if h.len() >= SHORT_HAY {
        if h.len() > MID_HAY {
            return memchr::memmem::rfind(h, t);
        }
        return memchr::memrchr_iter(c, h).filter(|&k| k >= rare).map(|k| k - rare).find(|&k| text_at(h, k, t));
    }
    let hi = (h.len() + 1).checked_sub(t.len() - rare)?;
    let bc = LO * u64::from(c);
    // candidates from the last: words ending at `k`, then bytes
    let mut k = hi;
    while k >= rare + 8 {
        let base = k - 8;
        let mut z = eq_bits(word_at(h, base), bc);
        while z != 0 {
            let bit = 63 - z.leading_zeros();
            let j = base + (bit / 8) as usize - rare;
            if text_at(h, j, t) {
                return Some(j);
            }
            z &= !(1u64 << bit);
        }
        k = base;
    }
    while k > rare {
        k -= 1;
        if h[k] == c && text_at(h, k - rare, t) {
            return Some(k - rare);
        }
    }
    None
}

/// Literal text (not empty) searched with [`find_lit`] on short haystacks,
/// else with its `memmem` finder (built once: its vector search is the
/// fastest there).
struct Lit {
    text: Box<[u8]>,
    rare: usize,
    finder: memchr::memmem::Finder<'static>,
}

impl Lit {
    fn new(t: &str) -> Lit {
        let finder = memchr::memmem::Finder::new(t.as_bytes()).into_owned();
        Lit { text: t.as_bytes().into(), rare: rare_index(t.as_bytes()), finder }
    }

    #[inline]
    fn find(&self, h: &[u8]) -> Option<usize> {
        if h.len() < SHORT_HAY { find_lit(h, &self.text, self.rare) } else { self.finder.find(h) }
    }
}

/// [`Fast::Run`] from `pos` (out of line: [`Fast::run`] stays small enough to
/// be inlined into the chain for its short kinds).
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn class_run(
    b: &[u8],
    pos: usize,
    class: &[bool; 256],
    min: usize,
    max: usize,
    lazy: bool,
    tail: &[u8],
    scan: bool,
    stop: Option<Stop>,
    rare: usize,
) -> Option<usize> {
    if pos > b.len() {
        return None;
    }
    let lim = b.len().min(pos.saturating_add(max));
    let run = match stop {
        // (only used on ASCII haystacks: no byte from 128 on)
        Some(stop) => stop.find(&b[pos..lim]),
        None => b[pos..lim].iter().position(|&c| !class[c as usize]).unwrap_or(lim - pos),
    };
    if run < min {
        return None;
    }
    if scan {
        // the repetition gives back (greedy) or takes (lazy) one
        // byte at a time: the text starts at the last (first)
        // place from `pos + min` to the run's end where it is
        // (the text at `k` in `lo..=hi`: within `b[lo..hi + t.len()]`)
        let t = tail;
        let (lo, hi) = (pos + min, pos + run);
        let win = b.get(lo..b.len().min(hi + t.len()))?;
        let k = lo + if lazy { find_lit(win, t, rare)? } else { rfind_lit(win, t, rare)? };
        return Some(k + t.len());
    }
    // the text cannot start inside the run: its end (lazy: at
    // least `min`) is the only place the text may follow
    let k = pos + if lazy && tail.is_empty() { min } else { run };
    text_at(b, k, tail).then_some(k + tail.len())
}

/// [`Fast::Dots`] from `pos` (out of line, see [`class_run`]).
#[inline(never)]
fn dots(b: &[u8], pos: usize, nl: Option<usize>, min: usize, lazy: bool, tail: &[u8], rare: usize) -> Option<usize> {
    let rest = b.get(pos..)?;
    let line_end = match nl {
        // the first newline of the haystack is known
        Some(nl) if pos <= nl => nl,
        _ => pos + memchr::memchr(b'\n', rest).unwrap_or(rest.len()),
    };
    // an occurrence of (valid UTF-8) text starts at a char
    // boundary, so `min` bytes are at least `min` chars and at
    // most one char (min <= 1) is never more than them
    let from = pos + min;
    if from > line_end {
        return None;
    }
    let k = if tail.is_empty() {
        line_end
    } else if lazy {
        from + find_lit(&b[from..line_end], tail, rare)?
    } else {
        let k = pos + rfind_lit(&b[pos..line_end], tail, rare)?;
        (k >= from).then_some(k)?
    };
    Some(k + tail.len())
}

impl Fast {
    /// End of the first parse from `pos`.
    #[inline(always)]
    fn run(&self, hay: &str, pos: usize, nl: Option<usize>) -> Option<usize> {
        let b = hay.as_bytes();
        match self {
            Fast::Seq(atoms) => {
                let mut p = pos;
                for a in atoms {
                    match a {
                        Atom::Start => (p == 0).then_some(())?,
                        Atom::LineStart => (p == 0 || b.get(p - 1) == Some(&b'\n')).then_some(())?,
                        Atom::LineEnd => (p == b.len() || b.get(p) == Some(&b'\n')).then_some(())?,
                        Atom::End => (p == b.len()).then_some(())?,
                        Atom::Text(t) => {
                            text_at(b, p, t.as_bytes()).then_some(())?;
                            p += t.len();
                        }
                    }
                }
                Some(p)
            }
            Fast::Run { class, min, max, lazy, tail, scan, stop, rare } => {
                class_run(b, pos, class, *min, *max, *lazy, tail.as_bytes(), *scan, *stop, *rare)
            }
            // handled by the caller (it sets the group)
            Fast::Opt { .. } => None,
            Fast::Fixed { text, .. } => text_at(b, pos, text.as_bytes()).then_some(pos + text.len()),
            Fast::Steps { steps, .. } => walk(steps, b, pos),
            // greedy with no text after it, the first `\n` known and not
            // before `pos`: every char to it (as `dots` finds)
            Fast::Dots { min, lazy: false, tail, .. } if tail.is_empty() && nl.is_some_and(|n| pos <= n) => {
                let n = nl?;
                (pos + min <= n).then_some(n)
            }
            Fast::Dots { min, lazy, tail, rare } => dots(b, pos, nl, *min, *lazy, tail.as_bytes(), *rare),
            Fast::Host { kind } => host::scan(*kind, b, pos).map(|(end, _)| end),
            // handled by the caller (its None is "undecided", not "no match")
            Fast::Prefix { .. } => None,
            Fast::Tail { lead } => tails::scan(b, pos, lead),
            // handled by the caller (its None is "undecided", not "no match")
            Fast::OnPort { .. } => None,
        }
    }
}

impl Fast {
    /// Only valid on ASCII haystacks.
    fn ascii_only(&self) -> bool {
        match self {
            Fast::Run { .. } | Fast::Host { .. } | Fast::Prefix { .. } | Fast::Tail { .. } | Fast::OnPort { .. } => {
                true
            }
            Fast::Opt { inner, .. } => inner.ascii_only(),
            Fast::Steps { ascii, .. } => *ascii,
            _ => false,
        }
    }

    /// Never matches the empty string.
    fn non_empty(&self) -> bool {
        match self {
            Fast::Seq(atoms) => atoms.iter().any(|a| matches!(a, Atom::Text(t) if !t.is_empty())),
            Fast::Dots { min, tail, .. } | Fast::Run { min, tail, .. } => *min > 0 || !tail.is_empty(),
            Fast::Opt { .. } | Fast::Prefix { .. } | Fast::Tail { .. } | Fast::OnPort { .. } => false,
            Fast::Fixed { text, .. } => !text.is_empty(),
            Fast::Steps { steps, .. } => consumes(steps),
            // each alternative takes at least one byte
            Fast::Host { .. } => true,
        }
    }
}

/// The ASCII bytes a class (or `.`) matches, as compiled for ASCII haystacks.
fn ascii_class(n: &Node, names: &[Option<String>], aopts: EmitOpts) -> Option<Box<[bool; 128]>> {
    let mut text = String::new();
    emit::emit(n, names, aopts, &mut text);
    class_from_syntax(&text).or_else(|| class_from_engine(&text))
}

/// [`ascii_class`] of a class's regex text from its syntax tree, when that
/// is one class: the bytes below 128 of its ranges (what the engine of
/// [`class_from_engine`] compiles, without building it: a start-up builds
/// dozens of these tables).
fn class_from_syntax(text: &str) -> Option<Box<[bool; 128]>> {
    use regex_syntax::hir::{Class, HirKind};
    let hir = regex_syntax::ParserBuilder::new().unicode(false).utf8(false).build().parse(text).ok()?;
    let HirKind::Class(class) = hir.kind() else { return None };
    let mut table = Box::new([false; 128]);
    let mut set = |lo: u32, hi: u32| {
        for c in lo..=hi.min(127) {
            table[c as usize] = true;
        }
    };
    match class {
        Class::Bytes(c) => c.ranges().iter().for_each(|r| set(u32::from(r.start()), u32::from(r.end()))),
        Class::Unicode(c) => c.ranges().iter().for_each(|r| set(u32::from(r.start()), u32::from(r.end()))),
    }
    Some(table)
}

/// [`ascii_class`] of a class's regex text by asking its compiled engine
/// about each ASCII byte.
fn class_from_engine(text: &str) -> Option<Box<[bool; 128]>> {
    let re = regex::bytes::Regex::new(&format!("(?-u)\\A(?:{text})\\z")).ok()?;
    let mut class = Box::new([false; 128]);
    for (b, slot) in class.iter_mut().enumerate() {
        *slot = re.is_match(&[b as u8]);
    }
    Some(class)
}

/// The segment's nodes as a [`Fast`] kind, if they are one: a special
/// kind, else [`Fast::Steps`].
fn fast_of(
    part: &[&Node],
    tail: &[&Node],
    whole: Option<usize>,
    names: &[Option<String>],
    aopts: EmitOpts,
) -> Option<Fast> {
    fast_special(part, tail, whole, names, aopts).or_else(|| {
        // inside a whole group: its items, then the text after it
        let mut nodes: Vec<&Node> = match (whole, part) {
            (None, _) => part.to_vec(),
            (Some(_), [n @ Node::Group { .. }]) => vec![innermost(n)],
            _ => return None,
        };
        nodes.extend(tail);
        steps_fast(&nodes, names, aopts)
    })
}

/// The segment's nodes as a [`Fast`] kind other than steps, if they are one.
fn fast_special(
    part: &[&Node],
    tail: &[&Node],
    whole: Option<usize>,
    names: &[Option<String>],
    aopts: EmitOpts,
) -> Option<Fast> {
    let text_of = |nodes: &[&Node]| -> Option<String> {
        nodes
            .iter()
            .map(|n| match n {
                Node::Lit { c, icase: false } => Some(*c),
                _ => None,
            })
            .collect()
    };
    // inside a whole group: its items, then the text after it
    let items: Vec<&Node> = if whole.is_some() {
        let [n @ Node::Group { .. }] = part else { return None };
        match innermost(n) {
            Node::Cat(v) => v.iter().collect(),
            one => vec![one],
        }
    } else {
        part.to_vec()
    };
    if let [Node::Repeat { node: cls, min, max, kind }, rest @ ..] = items.as_slice()
        && matches!(**cls, Node::Set(_) | Node::Any { dotall: false })
        && !matches!(kind, RepKind::Possessive)
        && !(whole.is_some() && matches!(**cls, Node::Any { .. }) && max.is_none() && *min <= 1)
    {
        let text: Vec<&Node> = rest.iter().copied().chain(tail.iter().copied()).collect();
        let tail = text_of(&text)?;
        let class = class256(cls, names, aopts)?;
        let scan = tail.as_bytes().first().is_some_and(|&b| class[b as usize]);
        let stop = Stop::of(&class);
        let rare = if tail.is_empty() { 0 } else { rare_index(tail.as_bytes()) };
        return Some(Fast::Run {
            rare,
            stop,
            class,
            min: *min as usize,
            max: max.map_or(usize::MAX, |m| m as usize),
            lazy: matches!(kind, RepKind::Lazy),
            tail,
            scan,
        });
    }
    if whole.is_some() && !matches!(items.as_slice(), [Node::Repeat { .. }]) {
        // a whole group of literal text and assertions
        return seq_of(items.iter().copied().chain(tail.iter().copied()));
    }
    if whole.is_some() {
        let [n @ Node::Group { .. }] = part else { return None };
        let Node::Repeat { node: dot, min, max: None, kind } = innermost(n) else { return None };
        if !matches!(**dot, Node::Any { dotall: false }) || *min > 1 {
            return None;
        }
        let lazy = match kind {
            RepKind::Greedy => false,
            RepKind::Lazy => true,
            RepKind::Possessive => return None,
        };
        let tail = text_of(tail)?;
        if tail.contains('\n') || (lazy && tail.is_empty()) {
            return None;
        }
        let rare = if tail.is_empty() { 0 } else { rare_index(tail.as_bytes()) };
        return Some(Fast::Dots { min: *min as usize, lazy, tail, rare });
    }
    seq_of(part.iter().chain(tail).copied())
}

/// A segment `__on_port_opt S` ([`Fast::OnPort`]): S as steps that commit
/// ([`steps_fast`]) and cannot start with a space or a digit (every match
/// of S starts with a byte of its first set, or at the end of the haystack).
fn on_port_of(part: &[&Node], names: &[Option<String>], aopts: EmitOpts) -> Option<Fast> {
    let rest = tails::after_on_port(part)?;
    let Some(Fast::Steps { steps, .. }) = steps_fast(rest, names, aopts) else { return None };
    let mut avoid = [false; 256];
    avoid[usize::from(b' ')] = true;
    avoid[usize::from(b'0')..=usize::from(b'9')].fill(true);
    first_of(&steps, None).is_some_and(|f| f.disjoint(First::class(&avoid))).then_some(Fast::OnPort { steps })
}

/// [`Fast::OnPort`] from `pos` on an ASCII haystack: the end of its first
/// parse (None inside: no match), or None when undecided (` on ` next).
#[inline]
fn on_port_end(steps: &[Step], b: &[u8], pos: usize) -> Option<Option<usize>> {
    Some(walk(steps, b, tails::on_port(b, pos)?))
}

/// Inside capture groups nested one directly in the other: the first node
/// that is not such a group.
fn innermost(mut n: &Node) -> &Node {
    while let Node::Group { kind: GroupKind::Capture(_), node } = n {
        n = node;
    }
    n
}

/// The ASCII bytes every match of `n` starts with (None: not known, or
/// `n` may match empty or start otherwise).
fn first_bytes(n: &Node) -> Option<u128> {
    match n {
        Node::Lit { c, icase: false } if c.is_ascii() => Some(1u128 << (*c as u32)),
        Node::Group { kind: GroupKind::Capture(_) | GroupKind::NonCapture, node } => first_bytes(node),
        Node::Alt(v) => v.iter().try_fold(0u128, |acc, b| Some(acc | first_bytes(b)?)),
        // the first item decides when it cannot match empty
        Node::Cat(v) => first_bytes(v.first()?),
        Node::Repeat { node, min, .. } if *min >= 1 => first_bytes(node),
        _ => None,
    }
}

/// Most strings in a [`lit_set`] or [`lit_prefixes`] set.
const MAX_LITS: usize = 16;

/// The exact (finite, case-sensitive) set of strings `n` matches, if small.
fn lit_set(n: &Node) -> Option<Vec<String>> {
    let out = match n {
        Node::Empty => vec![String::new()],
        Node::Lit { c, icase: false } => vec![c.to_string()],
        Node::Group { kind: GroupKind::Capture(_) | GroupKind::NonCapture, node } => lit_set(node)?,
        Node::Alt(v) => {
            let mut out = Vec::new();
            for b in v {
                out.extend(lit_set(b)?);
            }
            out
        }
        Node::Cat(v) => {
            let mut out = vec![String::new()];
            for item in v {
                out = cross(&out, &lit_set(item)?)?;
            }
            out
        }
        // `X?` (greedy): X's strings first, then none
        Node::Repeat { node, min: 0, max: Some(1), kind: RepKind::Greedy } => {
            let mut out = lit_set(node)?;
            out.push(String::new());
            out
        }
        _ => return None,
    };
    (out.len() <= MAX_LITS).then_some(out)
}

fn cross(a: &[String], b: &[String]) -> Option<Vec<String>> {
    if a.len() * b.len() > MAX_LITS {
        return None;
    }
    Some(a.iter().flat_map(|x| b.iter().map(move |y| format!("{x}{y}"))).collect())
}

/// Literal text one of which every match of `n` starts with (each
/// non-empty; None: not known).
fn lit_prefixes(n: &Node) -> Option<Vec<String>> {
    let out = match n {
        Node::Group { kind: GroupKind::Capture(_) | GroupKind::NonCapture, node } => lit_prefixes(node)?,
        Node::Alt(v) => {
            let mut out = Vec::new();
            for b in v {
                out.extend(lit_prefixes(b)?);
            }
            out
        }
        Node::Cat(v) => {
            let mut out = vec![String::new()];
            for item in v {
                if let Some(set) = lit_set(item) {
                    out = cross(&out, &set)?;
                } else {
                    // every match of the item starts with one of these, if known
                    if let Some(set) = lit_prefixes(item) {
                        out = cross(&out, &set)?;
                    }
                    break;
                }
            }
            out
        }
        other => lit_set(other)?,
    };
    (!out.is_empty() && out.len() <= MAX_LITS && out.iter().all(|t| !t.is_empty())).then_some(out)
}

/// Case-sensitive literal text, possibly in groups, as a [`Fast::Fixed`].
fn fixed_of(nodes: &[&Node]) -> Option<Fast> {
    fn walk(n: &Node, text: &mut String, groups: &mut Vec<(usize, usize, usize)>) -> Option<()> {
        match n {
            Node::Empty => {}
            Node::Lit { c, icase: false } => text.push(*c),
            Node::Cat(v) => v.iter().try_for_each(|c| walk(c, text, groups))?,
            Node::Group { kind: GroupKind::NonCapture, node } => walk(node, text, groups)?,
            Node::Group { kind: GroupKind::Capture(g), node } => {
                let (k, start) = (groups.len(), text.len());
                groups.push((*g, start, start));
                walk(node, text, groups)?;
                groups[k].2 = text.len();
            }
            _ => return None,
        }
        Some(())
    }
    let (mut text, mut groups) = (String::new(), Vec::new());
    nodes.iter().try_for_each(|n| walk(n, &mut text, &mut groups))?;
    Some(Fast::Fixed { text, groups })
}

/// Literal text and assertions as a [`Fast::Seq`].
fn seq_of<'n>(nodes: impl Iterator<Item = &'n Node>) -> Option<Fast> {
    let mut atoms: Vec<Atom> = Vec::new();
    for n in nodes {
        let a = match n {
            Node::Empty => continue,
            Node::Lit { c, icase: false } => {
                if let Some(Atom::Text(t)) = atoms.last_mut() {
                    t.push(*c);
                    continue;
                }
                Atom::Text(c.to_string())
            }
            Node::Start { multiline: false } | Node::StartText => Atom::Start,
            Node::Start { multiline: true } => Atom::LineStart,
            // segments are compiled without the exact `$` (see `new`)
            Node::End { .. } => Atom::LineEnd,
            Node::EndText => Atom::End,
            _ => return None,
        };
        atoms.push(a);
    }
    Some(Fast::Seq(atoms))
}

/// One step of a [`Fast::Steps`] piece.
///
/// A piece of steps `s1 s2 … sn` is walked left to right, each step taking
/// its own first parse (the one a leftmost-first search of the step alone
/// reports): literal text its one way, a greedy run the longest run (up to
/// `max`), a choice the first of its strings that is there, a greedy
/// repetition as many first parses of its body as are there (up to `max`).
///
/// Why the walk is exact (it gives the piece's first parse, and fails only
/// when the piece cannot match at the position): [`check`] admits a step
/// `si` only when *every match of `si s(i+1) … sn` at a position goes
/// through `si`'s first parse there* ("the step commits"): then the first
/// parse of the whole is `si`'s first parse followed by the first parse of
/// the rest, and when the rest fails after it, nothing else can match. A step
/// commits when
/// - it has one parse: literal text, an assertion, a run `{n}`, a choice of
///   strings no one of which is a prefix of another (at most one is there);
/// - or it is a greedy run `{min,max}` whose class holds no byte the rest
///   can start with (every byte a match of the rest can start with is known,
///   and the rest cannot match empty there): a shorter run leaves a class
///   byte next, where the rest cannot start;
/// - or it is a greedy repetition `X{min,max}` of a body that commits itself
///   (checked against what follows it: more `X` or the rest), cannot match
///   empty, and where an optional `X` matches the rest cannot (the two are
///   [`exclusive`]): then a match takes `X` exactly where the walk does;
/// - or nothing after it can fail (the rest matches empty anywhere: the end
///   of the piece, where the chain wants the first parse of the piece
///   alone): then the first parse of the step is the one the piece takes.
///
/// Class runs are valid on ASCII haystacks only (the class as compiled
/// for them, see `ascii_class`); pieces with runs fall back to the automata
/// on other haystacks.
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(u8)] // a plain tag byte first: one load decodes it
enum Step {
    /// `\A`
    Start,
    /// `(?m:^)`
    LineStart,
    /// `(?m:$)`
    LineEnd,
    /// `\z`
    End,
    /// Case-sensitive text (not empty).
    Text(Box<[u8]>),
    /// Greedy run of `min..=max` bytes of an ASCII class (the table: the
    /// class's ASCII bytes, no byte from 128 on).
    Run { class: Box<[bool; 256]>, min: usize, max: usize },
    /// Case-sensitive strings (none empty), in priority order.
    Choice(Box<[Box<[u8]>]>),
    /// Greedy `body{min,max}`; the body never matches empty.
    Rep { body: Vec<Step>, min: usize, max: usize },
}

/// Walks `steps` from `p`: the end of their first parse (see [`Step`]).
fn walk(steps: &[Step], b: &[u8], mut p: usize) -> Option<usize> {
    for s in steps {
        p = match s {
            Step::Start => (p == 0).then_some(p)?,
            Step::LineStart => (p == 0 || b.get(p - 1) == Some(&b'\n')).then_some(p)?,
            Step::LineEnd => (p == b.len() || b.get(p) == Some(&b'\n')).then_some(p)?,
            Step::End => (p == b.len()).then_some(p)?,
            Step::Text(t) if t.len() == 1 => (b.get(p) == Some(&t[0])).then_some(p + 1)?,
            Step::Text(t) => text_at(b, p, t).then_some(p + t.len())?,
            Step::Run { class, min, max } if *max <= 8 && p + *max <= b.len() => {
                // a short run: no branch on the bytes (an exit that depends
                // on them is mispredicted, dearer than the few loads)
                let (mut n, mut on) = (0, true);
                for &c in &b[p..p + *max] {
                    on &= class[c as usize];
                    n += on as usize;
                }
                (n >= *min).then_some(p + n)?
            }
            Step::Run { class, min, max } => {
                let lim = b.len().min(p.saturating_add(*max));
                let mut q = p;
                while q < lim && class[b[q] as usize] {
                    q += 1;
                }
                (q - p >= *min).then_some(q)?
            }
            Step::Choice(set) => p + set.iter().find(|t| text_at(b, p, t))?.len(),
            Step::Rep { body, min, max } => {
                let mut i = 0;
                while i < *max {
                    match walk(body, b, p) {
                        Some(e) => p = e,
                        None => break,
                    }
                    i += 1;
                }
                (i >= *min).then_some(p)?
            }
        };
    }
    Some(p)
}

/// [`walk`], also telling what its answer depends on: `seen` is raised to
/// the end of the bytes from `p` the answer is a function of, or past
/// `b.len()` when it depends on where the haystack ends. (Steps that look
/// before `p` or at `p == 0`, [`Step::Start`] and [`Step::LineStart`], are
/// not walked here: see [`memo_ok`].) Each step's answer is a function of:
/// - text `t` at `p`: the bytes `p..p + t.len()` (past the end: the length);
/// - a greedy run of at most `max`: its bytes, and the byte that ends it
///   (`q + 1`), or none when it took `max` (`q`), or the length when the
///   haystack ended it first;
/// - a choice: the bytes of every string tried up to the one taken;
/// - `$` (multi-line): the byte at `p`, or the length at the end;
/// - `\z`: whether a byte is at `p` (`p + 1`: past the end when not);
/// - a repetition: its body's walks, the failing last one too.
///
/// So a haystack holding the same bytes from `p` up to `seen` (and the
/// same length from `p` when `seen` passed the end) walks the same way.
fn walk_seen(steps: &[Step], b: &[u8], mut p: usize, seen: &mut usize) -> Option<usize> {
    for s in steps {
        p = match s {
            Step::Start | Step::LineStart => return None,
            Step::LineEnd => {
                *seen = (*seen).max(p + 1);
                (p == b.len() || b.get(p) == Some(&b'\n')).then_some(p)?
            }
            Step::End => {
                *seen = (*seen).max(p + 1);
                (p == b.len()).then_some(p)?
            }
            Step::Text(t) => {
                *seen = (*seen).max(p + t.len());
                (b.get(p..p + t.len()) == Some(&t[..])).then_some(p + t.len())?
            }
            Step::Run { class, min, max } => {
                let cap = p.saturating_add(*max);
                let lim = b.len().min(cap);
                let mut q = p.min(lim);
                while q < lim && class[b[q] as usize] {
                    q += 1;
                }
                *seen = (*seen).max(match q {
                    _ if q < lim => q + 1,
                    _ if q == cap => q,
                    // the haystack's end stopped it
                    _ => b.len() + 1,
                });
                (q >= p && q - p >= *min).then_some(q)?
            }
            Step::Choice(set) => {
                let mut got = None;
                for t in set.iter() {
                    *seen = (*seen).max(p + t.len());
                    if b.get(p..p + t.len()) == Some(&t[..]) {
                        got = Some(p + t.len());
                        break;
                    }
                }
                got?
            }
            Step::Rep { body, min, max } => {
                let mut i = 0;
                while i < *max {
                    match walk_seen(body, b, p, seen) {
                        Some(e) => p = e,
                        None => break,
                    }
                    i += 1;
                }
                (i >= *min).then_some(p)?
            }
        };
    }
    Some(p)
}

/// Can a [`Fast::Steps`] piece's walks be remembered ([`StepsMemo`])? Its
/// answer must depend on the bytes from where it starts alone: no step
/// that looks before it or at the haystack's start.
fn memo_ok(steps: &[Step]) -> bool {
    steps.iter().all(|s| match s {
        Step::Start | Step::LineStart => false,
        Step::Rep { body, .. } => memo_ok(body),
        _ => true,
    })
}

/// Most bytes a [`StepsMemo`] keeps.
const MEMO_BYTES: usize = 128;

/// A walk that reads fewer bytes costs about what the compare does, and a
/// piece tried on lines of several kinds reads other short texts in turn
/// (`by`/`from`): a miss, and the dearer walk that remembers, nearly every
/// time. So when a short walk follows a miss, the next [`MEMO_SKIP`] walks
/// of the piece are plain ones (on lines of one kind the short texts repeat
/// and are kept).
const MEMO_MIN: usize = 24;
const MEMO_SKIP: u8 = 64;

/// The last walk of a [`Fast::Steps`] piece (see [`walk_seen`]): the bytes
/// from its start its answer depends on, whether it depends on where the
/// haystack ends (then the haystack ended right after `bytes`), and its
/// answer (the end, from the start). Lines of one kind mostly repeat the
/// text such a piece reads (`logname= uid=0 euid=0 tty=ssh ruser=`): a
/// compare instead of the walk.
#[derive(Debug)]
pub(crate) struct StepsMemo {
    bytes: Vec<u8>,
    eot: bool,
    end: Option<usize>,
    valid: bool,
    /// Plain walks still to go ([`MEMO_SKIP`]).
    skip: u8,
    /// [`MEMO_MIN`] (tests: also 0, never plain walks).
    min: usize,
}

impl Default for StepsMemo {
    fn default() -> StepsMemo {
        StepsMemo { bytes: Vec::new(), eot: false, end: None, valid: false, skip: 0, min: MEMO_MIN }
    }
}

impl StepsMemo {
    /// [`walk`] of `steps` (with [`memo_ok`]) from `p`, remembered.
    #[inline]
    fn walk(&mut self, steps: &[Step], b: &[u8], p: usize) -> Option<usize> {
        if self.skip > 0 {
            self.skip -= 1;
            return walk(steps, b, p);
        }
        let n = self.bytes.len();
        if self.valid && b.get(p..p + n) == Some(&self.bytes[..]) && (!self.eot || b.len() == p + n) {
            return self.end.map(|e| p + e);
        }
        self.remember(steps, b, p)
    }

    #[cold]
    #[inline(never)]
    fn remember(&mut self, steps: &[Step], b: &[u8], p: usize) -> Option<usize> {
        let mut seen = p;
        let end = walk_seen(steps, b, p, &mut seen);
        let stop = seen.min(b.len());
        // (`remember` runs on a miss, or with nothing kept)
        if self.valid && p <= stop && stop - p < self.min {
            self.skip = MEMO_SKIP;
        }
        self.valid = p <= stop && stop - p <= MEMO_BYTES;
        if self.valid {
            self.bytes.clear();
            self.bytes.extend_from_slice(&b[p..stop]);
            self.eot = seen > b.len();
            self.end = end.map(|e| e - p);
        }
        end
    }
}

/// Bytes a match can start with (`eot`: or be at the end of the haystack);
/// None: not known (anything).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct First {
    bytes: [u128; 2],
    eot: bool,
}

impl First {
    fn byte(b: u8) -> First {
        let mut f = First::default();
        f.bytes[(b >> 7) as usize] |= 1u128 << (b & 127);
        f
    }

    fn class(class: &[bool; 256]) -> First {
        let mut f = First::default();
        for (b, _) in class.iter().enumerate().filter(|(_, on)| **on) {
            f.bytes[0] |= 1u128 << b;
        }
        f
    }

    fn union(self, o: First) -> First {
        First { bytes: [self.bytes[0] | o.bytes[0], self.bytes[1] | o.bytes[1]], eot: self.eot || o.eot }
    }

    fn disjoint(self, o: First) -> bool {
        self.bytes[0] & o.bytes[0] == 0 && self.bytes[1] & o.bytes[1] == 0 && !(self.eot && o.eot)
    }
}

/// What every match of `steps` followed by something starting with `fol`
/// (None: anything) starts with.
fn first_of(steps: &[Step], fol: Option<First>) -> Option<First> {
    let mut acc = First::default();
    for s in steps {
        match s {
            // only narrow where a match may be
            Step::Start | Step::LineStart => {}
            Step::LineEnd => return Some(acc.union(First { eot: true, ..First::byte(b'\n') })),
            Step::End => return Some(acc.union(First { eot: true, ..First::default() })),
            Step::Text(t) => return Some(acc.union(First::byte(t[0]))),
            Step::Run { class, min, .. } => {
                acc = acc.union(First::class(class));
                if *min > 0 {
                    return Some(acc);
                }
            }
            Step::Choice(set) => return Some(set.iter().fold(acc, |a, t| a.union(First::byte(t[0])))),
            Step::Rep { body, min, .. } => {
                acc = acc.union(first_of(body, None)?);
                if *min > 0 {
                    return Some(acc);
                }
            }
        }
    }
    fol.map(|f| acc.union(f))
}

/// Matches the empty string at any position (so nothing after it can fail
/// when it ends the piece).
fn always_empty(s: &Step) -> bool {
    matches!(s, Step::Run { min: 0, .. } | Step::Rep { min: 0, .. })
}

/// Consumes at least one byte in every match.
fn consumes(steps: &[Step]) -> bool {
    steps.iter().any(|s| match s {
        Step::Text(_) | Step::Choice(_) => true,
        Step::Run { min, .. } => *min > 0,
        Step::Rep { body, min, .. } => *min > 0 && consumes(body),
        _ => false,
    })
}

fn prefix_free(set: &[Box<[u8]>]) -> bool {
    set.iter().enumerate().all(|(i, a)| set.iter().enumerate().all(|(j, b)| i == j || !b.starts_with(a)))
}

/// Does every step commit (see [`Step`])? `fol`: what anything after the
/// steps starts with (None: not known); `end`: nothing after them can fail.
fn check(steps: &[Step], fol: Option<First>, end: bool) -> bool {
    steps.iter().enumerate().all(|(i, s)| {
        let rest = &steps[i + 1..];
        let rest_end = end && rest.iter().all(always_empty);
        let rest_first = first_of(rest, fol);
        match s {
            Step::Start | Step::LineStart | Step::LineEnd | Step::End | Step::Text(_) => true,
            Step::Run { min, max, .. } if min == max => true,
            Step::Run { class, .. } => rest_end || rest_first.is_some_and(|f| f.disjoint(First::class(class))),
            Step::Choice(set) => rest_end || prefix_free(set),
            Step::Rep { body, min, max } => {
                // after the body: the body again (while below max) or the rest
                let body_fol =
                    if *max > 1 { first_of(body, None).zip(rest_first).map(|(a, b)| a.union(b)) } else { rest_first };
                consumes(body)
                    && check(body, body_fol, rest_end && *min <= 1)
                    && (max == min || rest_end || exclusive(body, rest, fol))
            }
        }
    })
}

/// Can `a` (which commits) and `b` followed by `fol` never both match at
/// the same position? Steps both start with and that take the same bytes
/// in every match are passed in lockstep, then the bytes they can start
/// with must differ.
fn exclusive(a: &[Step], b: &[Step], fol: Option<First>) -> bool {
    match (a.first(), b.first()) {
        (Some(Step::Text(x)), Some(Step::Text(y))) => {
            let k = x.len().min(y.len());
            if x[..k] != y[..k] {
                return true;
            }
            // pass the common text
            let (mut a2, mut b2) = (a[1..].to_vec(), b[1..].to_vec());
            if x.len() > k {
                a2.insert(0, Step::Text(x[k..].into()));
            }
            if y.len() > k {
                b2.insert(0, Step::Text(y[k..].into()));
            }
            exclusive(&a2, &b2, fol)
        }
        (Some(x), Some(y)) if x == y => {
            let same = match x {
                Step::Start | Step::LineStart | Step::LineEnd | Step::End => true,
                Step::Run { min, max, .. } if min == max => true,
                // the longest run in every match of either
                Step::Run { class, .. } => {
                    let c = First::class(class);
                    first_of(&a[1..], None).is_some_and(|f| f.disjoint(c))
                        && first_of(&b[1..], fol).is_some_and(|f| f.disjoint(c))
                }
                Step::Choice(set) => prefix_free(set),
                _ => false,
            };
            same && exclusive(&a[1..], &b[1..], fol)
        }
        _ => first_of(a, None).zip(first_of(b, fol)).is_some_and(|(x, y)| x.disjoint(y)),
    }
}

/// A piece's nodes as steps (not yet checked), merging adjacent text.
fn steps_of(nodes: &[&Node], names: &[Option<String>], aopts: EmitOpts, out: &mut Vec<Step>) -> Option<()> {
    fn push(out: &mut Vec<Step>, s: Step) {
        if let (Step::Text(t), Some(Step::Text(prev))) = (&s, out.last_mut()) {
            *prev = [&prev[..], &t[..]].concat().into();
        } else {
            out.push(s);
        }
    }
    for n in nodes {
        match n {
            Node::Empty => {}
            Node::Lit { c, icase: false } => push(out, Step::Text(c.to_string().into_bytes().into())),
            Node::Lit { icase: true, .. } | Node::Set(_) | Node::Any { .. } => {
                out.push(Step::Run { class: class256(n, names, aopts)?, min: 1, max: 1 });
            }
            Node::Start { multiline: false } | Node::StartText => out.push(Step::Start),
            Node::Start { multiline: true } => out.push(Step::LineStart),
            // segments are compiled without the exact `$` (see `new`)
            Node::End { .. } => out.push(Step::LineEnd),
            Node::EndText => out.push(Step::End),
            // groups with captures are not walked (the caller strips the whole group)
            Node::Group { kind: GroupKind::NonCapture, node } => steps_of(&[&**node], names, aopts, out)?,
            Node::Cat(v) => steps_of(&v.iter().collect::<Vec<_>>(), names, aopts, out)?,
            Node::Alt(_) => {
                let set = lit_set(n)?;
                if set.iter().any(String::is_empty) {
                    return None;
                }
                out.push(Step::Choice(set.into_iter().map(|t| t.into_bytes().into_boxed_slice()).collect()));
            }
            Node::Repeat { node, min, max, kind: RepKind::Greedy } => {
                let (min, max) = (*min as usize, max.map_or(usize::MAX, |m| m as usize));
                if matches!(**node, Node::Lit { .. } | Node::Set(_) | Node::Any { .. }) {
                    out.push(Step::Run { class: class256(node, names, aopts)?, min, max });
                } else {
                    let mut body = Vec::new();
                    steps_of(&[&**node], names, aopts, &mut body)?;
                    if min == max && min <= 4 && body.len() <= 4 {
                        // `X{n}`: n times X (one step list, no loop)
                        for _ in 0..min {
                            body.iter().for_each(|s| push(out, s.clone()));
                        }
                    } else {
                        out.push(Step::Rep { body, min, max });
                    }
                }
            }
            _ => return None,
        }
    }
    Some(())
}

/// [`ascii_class`] as a table for all bytes (none from 128 on).
fn class256(n: &Node, names: &[Option<String>], aopts: EmitOpts) -> Option<Box<[bool; 256]>> {
    let class = ascii_class(n, names, aopts)?;
    let mut t = Box::new([false; 256]);
    t[..128].copy_from_slice(&class[..]);
    Some(t)
}

/// The piece's nodes as [`Fast::Steps`], when every step commits.
fn steps_fast(nodes: &[&Node], names: &[Option<String>], aopts: EmitOpts) -> Option<Fast> {
    let mut steps = Vec::new();
    steps_of(nodes, names, aopts, &mut steps)?;
    check(&steps, None, true).then(|| Fast::Steps { ascii: steps_ascii_only(&steps), steps, memo: false })
}

/// Do the steps need an ASCII haystack (class runs)?
fn steps_ascii_only(steps: &[Step]) -> bool {
    steps.iter().any(|s| match s {
        Step::Run { .. } => true,
        Step::Rep { body, .. } => steps_ascii_only(body),
        _ => false,
    })
}

/// A segment's regex for the general case, built on first use (most
/// searches are on ASCII haystacks and take the DFA or a fast kind).
struct LazyMeta {
    text: String,
    cell: std::sync::OnceLock<Option<meta::Regex>>,
}

impl LazyMeta {
    fn new(text: &str) -> LazyMeta {
        LazyMeta { text: text.to_string(), cell: std::sync::OnceLock::new() }
    }

    #[inline]
    fn get(&self) -> Option<&meta::Regex> {
        self.cell.get_or_init(|| build(&self.text)).as_ref()
    }

    /// Search anchored at the input's start with a cache made on first use.
    #[inline]
    fn search(&self, cache: &mut Option<meta::Cache>, input: &Input<'_>) -> Option<usize> {
        let re = self.get()?;
        re.search_with(cache.get_or_insert_with(|| re.create_cache()), input).map(|m| m.end())
    }
}

type Dfa = dense::DFA<Vec<u32>>;

/// A segment's anchored DFA for ASCII haystacks, built on first use (a
/// filter's patterns are compiled at startup, most pieces never searched),
/// as a [`Walk`].
struct LazyDfa {
    atext: String,
    cell: OnceLock<Option<Box<Walk>>>,
}

impl LazyDfa {
    fn new(atext: &str) -> LazyDfa {
        LazyDfa { atext: atext.to_string(), cell: OnceLock::new() }
    }

    #[inline]
    fn get(&self) -> Option<&Walk> {
        self.cell.get_or_init(|| Self::make(&self.atext)).as_deref()
    }

    /// The walk of `atext` (None: too big).
    fn make(atext: &str) -> Option<Box<Walk>> {
        build_dfa(atext).and_then(|d| Walk::new(&d)).map(Box::new)
    }
}

/// An anchored dense DFA's transition table, walked by hand: the same
/// answer as its `try_search_fwd` without the search's setup (most walks
/// are 10–40 bytes). Its states are numbered again (premultiplied by the
/// alphabet's length): the dead state first, then the quit state, then the
/// match states, then the others, so one compare tells the states a walk
/// must look at.
struct Walk {
    /// Byte to its class (the DFA's byte classes).
    classes: [u8; 256],
    /// The transitions, `alphabet` entries per state (the last one is the
    /// end of input).
    trans: Box<[u32]>,
    /// The anchored start state after each byte (index 256: at the text's
    /// start): the DFA's start depends on the look-behind byte when the
    /// pattern has look-around. After a quit byte: the quit state.
    starts: Box<[u32; 257]>,
    /// The end-of-input class.
    eoi: usize,
    /// The first match state (below it: dead 0 and quit `alphabet`).
    lo: u32,
    /// After the last match state.
    hi: u32,
    /// The DFA matches the empty text and is in UTF-8 mode.
    utf8empty: bool,
}

impl Walk {
    /// The table of the states reachable from the anchored starts; None
    /// when the DFA has no anchored starts or more than one pattern.
    fn new(dfa: &Dfa) -> Option<Walk> {
        use regex_automata::util::{primitives::StateID, start};
        use std::collections::HashMap;
        if dfa.pattern_len() != 1 {
            return None;
        }
        let classes = dfa.byte_classes();
        let alphabet = classes.alphabet_len();
        let eoi = classes.eoi().as_usize();
        let mut starts = Vec::with_capacity(257);
        for b in (0..=255u8).map(Some).chain([None]) {
            let cfg = start::Config::new().anchored(Anchored::Yes).look_behind(b);
            // None: the byte before is a quit byte
            starts.push(match dfa.start_state(&cfg) {
                Ok(s) => Some(s),
                Err(regex_automata::dfa::StartError::Quit { .. }) => None,
                Err(_) => return None,
            });
        }
        // every reachable state and its successors (one byte of each class,
        // then the end of input)
        let mut reps = [0u8; 256];
        let mut seen_class = vec![false; alphabet];
        let mut nreps = 0;
        for b in 0..=255u8 {
            let c = usize::from(classes.get(b));
            if !seen_class[c] {
                seen_class[c] = true;
                reps[nreps] = b;
                nreps += 1;
            }
        }
        let dead = StateID::ZERO;
        let mut found: Vec<StateID> = vec![dead];
        let mut index: HashMap<StateID, usize> = HashMap::from([(dead, 0)]);
        let mut quit = None;
        let mut i = 0;
        for &s in starts.iter().flatten() {
            index.entry(s).or_insert_with(|| {
                found.push(s);
                found.len() - 1
            });
        }
        while i < found.len() {
            let s = found[i];
            i += 1;
            let nexts = reps[..nreps].iter().map(|&b| dfa.next_state(s, b)).chain([dfa.next_eoi_state(s)]);
            for n in nexts {
                if dfa.is_quit_state(n) {
                    quit = Some(n);
                    continue;
                }
                index.entry(n).or_insert_with(|| {
                    found.push(n);
                    found.len() - 1
                });
            }
        }
        // the new order: dead, quit, matches, the rest
        let matches: Vec<StateID> = found.iter().copied().filter(|&s| dfa.is_match_state(s)).collect();
        let others = found.iter().copied().filter(|&s| s != dead && !dfa.is_match_state(s));
        let order: Vec<StateID> = [dead].into_iter().chain(matches.iter().copied()).chain(others).collect();
        let id = |k: usize| -> Option<u32> { u32::try_from(k.checked_mul(alphabet)?).ok() };
        let mut new_id: HashMap<StateID, u32> = HashMap::new();
        for (k, &s) in order.iter().enumerate() {
            // slot 1 is the quit state's
            new_id.insert(s, id(if k == 0 { 0 } else { k + 1 })?);
        }
        if let Some(q) = quit {
            new_id.insert(q, id(1)?);
        }
        let quit_id = id(1)?;
        let mut trans = vec![0u32; (order.len() + 1).checked_mul(alphabet)?];
        // the quit state stays in itself
        trans[alphabet..2 * alphabet].fill(quit_id);
        for &s in &order {
            let row = new_id[&s] as usize;
            for &b in &reps[..nreps] {
                trans[row + usize::from(classes.get(b))] = new_id[&dfa.next_state(s, b)];
            }
            trans[row + eoi] = new_id[&dfa.next_eoi_state(s)];
        }
        let mut table = [0u32; 257];
        for (t, s) in table.iter_mut().zip(&starts) {
            *t = s.map_or(quit_id, |s| new_id[&s]);
        }
        let mut cls = [0u8; 256];
        for b in 0..=255u8 {
            cls[usize::from(b)] = classes.get(b);
        }
        Some(Walk {
            classes: cls,
            trans: trans.into(),
            starts: Box::new(table),
            eoi,
            lo: id(2)?,
            hi: id(2 + matches.len())?,
            utf8empty: dfa.has_empty() && dfa.is_utf8(),
        })
    }

    /// The end of the leftmost-first match anchored at `pos` (as the DFA's
    /// `try_search_fwd` on `hay[pos..]` with look-behind), or Err when the
    /// walk meets a quit byte. (Out of line, as [`Walk::find_start`]: the
    /// walk's loop keeps its registers, not spilled by the chain's.)
    #[inline(never)]
    fn find(&self, hay: &[u8], pos: usize) -> Result<Option<usize>, ()> {
        let mat = self.walk(hay, pos)?;
        // as the search: in UTF-8 mode, a match (an empty one) that splits a
        // character is none
        if self.utf8empty && mat.is_some_and(|e| hay.get(e).is_some_and(|&b| (0x80..0xc0).contains(&b))) {
            return Ok(None);
        }
        Ok(mat)
    }

    /// [`Walk::find`] at the haystack's start, resuming where the last walk
    /// with `memo` (on this DFA) was after the words of eight bytes it shares
    /// with this one: lines of a log share their first bytes (` host
    /// sshd[1`). Exact: a DFA's state after given bytes from its start state
    /// is always the same, and so is where the last match among them ends.
    #[inline(never)]
    fn find_start(&self, hay: &[u8], memo: &mut WalkMemo) -> Result<Option<usize>, ()> {
        let mat = self.walk_start(hay, memo)?;
        if self.utf8empty && mat.is_some_and(|e| hay.get(e).is_some_and(|&b| (0x80..0xc0).contains(&b))) {
            return Ok(None);
        }
        Ok(mat)
    }

    fn walk_start(&self, h: &[u8], memo: &mut WalkMemo) -> Result<Option<usize>, ()> {
        let word =
            |i: usize| h.get(i..i + 8).map(|w| u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]));
        let mut w = 0;
        while w < memo.n && word(8 * w) == Some(memo.words[w]) {
            w += 1;
        }
        let (mut s, mut mat) = match w.checked_sub(1) {
            None => (self.starts[256], None),
            Some(j) => {
                let (s, m) = memo.at[j];
                (s, m.checked_sub(1).map(|m| m as usize))
            }
        };
        memo.n = w;
        // as `walk`: matches are reported one byte late, the row's start is
        // added in the load (off the loop's chain of dependent loads)
        let mut i = 8 * w;
        let end = loop {
            let Some(&b) = h.get(i) else { break None };
            s = self.trans[usize::from(self.classes[usize::from(b)])..][s as usize];
            i += 1;
            if s < self.hi {
                if s < self.lo {
                    break Some(if s == 0 { Ok(mat) } else { Err(()) });
                }
                mat = Some(i - 1);
            }
            // a checkpoint after each word (the walk goes on from there)
            if i & 7 == 0
                && let Some(j) = (i / 8).checked_sub(1).filter(|&j| j < MEMO_WORDS)
                && let Some(wd) = word(i - 8)
            {
                memo.words[j] = wd;
                // (`mat` < `i` <= 8 * MEMO_WORDS)
                memo.at[j] = (s, mat.map_or(0, |m| m as u32 + 1));
                memo.n = j + 1;
            }
        };
        if let Some(r) = end {
            return r;
        }
        s = self.trans[s as usize + self.eoi];
        if s < self.hi {
            if s >= self.lo {
                mat = Some(h.len());
            } else if s != 0 {
                return Err(());
            }
        }
        Ok(mat)
    }

    /// Is there a match anchored at `pos` at all, on an ASCII haystack (no
    /// empty match splits a character there)? The walk stops at the first
    /// match state (a match ends there) instead of going on to the dead
    /// state for the leftmost-first end. Err when it meets a quit byte first.
    #[inline]
    fn any(&self, hay: &[u8], pos: usize) -> Result<bool, ()> {
        let mut s = self.starts[pos.checked_sub(1).map_or(256, |i| usize::from(hay[i]))];
        for &b in hay.get(pos..).unwrap_or_default() {
            s = self.trans[usize::from(self.classes[usize::from(b)])..][s as usize];
            if s < self.hi {
                // dead 0, quit, or a match state
                return if s >= self.lo {
                    Ok(true)
                } else if s == 0 {
                    Ok(false)
                } else {
                    Err(())
                };
            }
        }
        s = self.trans[s as usize + self.eoi];
        if s < self.hi && s < self.lo && s != 0 {
            return Err(());
        }
        Ok(s >= self.lo && s < self.hi)
    }

    #[inline]
    fn walk(&self, hay: &[u8], pos: usize) -> Result<Option<usize>, ()> {
        let mut s = self.starts[pos.checked_sub(1).map_or(256, |i| usize::from(hay[i]))];
        let mut mat = None;
        // matches are reported one byte late: entering a match state on
        // the byte at `at` means a match ends at `at`
        for (i, &b) in hay.get(pos..).unwrap_or_default().iter().enumerate() {
            // the row's start is added in the load (`trans + class` does
            // not wait for the state): the add is off the loop's chain of
            // dependent loads
            s = self.trans[usize::from(self.classes[usize::from(b)])..][s as usize];
            if s < self.hi {
                if s < self.lo {
                    return if s == 0 { Ok(mat) } else { Err(()) };
                }
                mat = Some(pos + i);
            }
        }
        s = self.trans[s as usize + self.eoi];
        if s < self.hi {
            if s >= self.lo {
                mat = Some(hay.len());
            } else if s != 0 {
                // quit before any byte (the byte before `pos`)
                return Err(());
            }
        }
        Ok(mat)
    }
}

/// Words (of eight bytes) of a walk [`WalkMemo`] keeps.
const MEMO_WORDS: usize = 6;

/// The first words of the last walk of a DFA from the haystack's start, and
/// after each the state and where the last match so far ends (+1; 0: none).
/// See [`Walk::find_start`].
#[derive(Debug, Default)]
struct WalkMemo {
    /// Words kept.
    n: usize,
    words: [u64; MEMO_WORDS],
    at: [(u32, u32); MEMO_WORDS],
}

/// A branch of an alternation: the branch as a whole (to tell whether it
/// can match at all), the same as a DFA for ASCII haystacks, its own chain.
type Branch = (LazyMeta, LazyDfa, Segments);

/// A segment: what the chain reads for the fast kinds first, together; the
/// automata (used by the general case only) behind a pointer, out of the way.
struct Segment {
    fast: Option<Fast>,
    /// For `(?:X)?`: how to see cheaply that X cannot match here.
    guard: Option<Box<Guard>>,
    /// Global indices of the segment's own groups 1.. (captures needed).
    groups: Box<[usize]>,
    /// Bytes of literal text after the whole group, in the segment.
    tail: usize,
    /// The segment is exactly capture group `g` (or groups nested one directly
    /// in the other, all in `groups`) with no groups inside.
    whole: Option<usize>,
    /// `fast` is only valid on ASCII haystacks ([`Fast::ascii_only`]).
    fast_ascii: bool,
    /// A segment without groups `P(?:(?!T).)*$` where P can match empty
    /// ([`free_tail`]): T. When the haystack from the segment's start has
    /// no `\n` but maybe a last byte `\n` (a runner's line), and no T
    /// before that, it matches (P empty, then every char to the `\n` or
    /// the end) and every match ends there (`.` does not take the `\n`,
    /// and `$` holds before a final `\n` and at the end), so that is its
    /// end; else the general search decides.
    free: Option<Box<Lit>>,
    /// The anchored DFA of `cold.dfa` as a [`Walk`], built on first use
    /// (here, not behind `cold`: the general case's most frequent search).
    walk: OnceLock<Option<Box<Walk>>>,
    cold: Box<SegCold>,
}

impl Segment {
    /// The segment's fast kind from `pos` (its groups set in `spans`): the
    /// end of its first parse (None: it cannot match), or None when the
    /// segment has no fast kind for this haystack. (The guard, the free
    /// tail and remembered steps, [`Segment::run_memo`], are the caller's.)
    #[inline(always)]
    fn run_fast(
        &self,
        hay: &str,
        ascii: bool,
        nl: Option<usize>,
        pos: usize,
        spans: &mut [Option<(usize, usize)>],
    ) -> Option<Option<usize>> {
        let end = match &self.fast {
            // the caller's, with its memo
            Some(Fast::Steps { memo: true, .. }) => return None,
            Some(f @ Fast::Fixed { groups, .. }) => {
                let Some(end) = f.run(hay, pos, nl) else { return Some(None) };
                for &(g, a, b) in groups {
                    let Some(slot) = spans.get_mut(g) else { return Some(None) };
                    *slot = Some((pos + a, pos + b));
                }
                end
            }
            Some(Fast::Host { kind }) if ascii => {
                let Some((end, (which, s, e))) = host::scan(*kind, hay.as_bytes(), pos) else { return Some(None) };
                for (k, &g) in self.groups.iter().enumerate() {
                    let Some(slot) = spans.get_mut(g) else { return Some(None) };
                    *slot = (k == which).then_some((s, e));
                }
                end
            }
            // the caller's, with its memo ([`Segment::run_prefix`])
            Some(Fast::Prefix { .. }) => return None,
            // the caller's ([`Segment::run_on_port`])
            Some(Fast::OnPort { .. }) => return None,
            Some(Fast::Opt { group, inner }) if ascii || !self.fast_ascii => {
                let m = inner.run(hay, pos, nl);
                let Some(slot) = spans.get_mut(*group) else { return Some(None) };
                *slot = m.map(|end| (pos, end));
                m.unwrap_or(pos)
            }
            Some(fast) if ascii || !self.fast_ascii => {
                let Some(end) = fast.run(hay, pos, nl) else { return Some(None) };
                if self.whole.is_some() {
                    let Some(g_end) = end.checked_sub(self.tail) else { return Some(None) };
                    for &g in &self.groups {
                        let Some(slot) = spans.get_mut(g) else { return Some(None) };
                        *slot = Some((pos, g_end));
                    }
                }
                end
            }
            _ => return None,
        };
        Some(Some(end))
    }

    /// The end of a free tail ([`Segment::free`]) from `pos` when the text T
    /// is not there (none: the general search decides).
    #[inline(always)]
    fn free_end(&self, b: &[u8], nl: Option<usize>, pos: usize) -> Option<usize> {
        let t = self.free.as_ref()?;
        // the first `\n` from `pos` (the haystack's length: none)
        let n = match nl {
            Some(n) if n >= pos => n,
            _ => pos + memchr::memchr(b'\n', b.get(pos..)?).unwrap_or(b.len() - pos),
        };
        (n + 1 >= b.len() && t.find(&b[pos..n]).is_none()).then_some(n)
    }

    /// The segment's prefix scanner ([`Fast::Prefix`]) from `pos` through the
    /// memo `m`, on ASCII haystacks: its end (its groups set in `spans`), or
    /// None when it cannot decide (the general case decides).
    #[inline]
    fn run_prefix(
        &self,
        m: &mut prefix::Memo,
        b: &[u8],
        ascii: bool,
        pos: usize,
        spans: &mut [Option<(usize, usize)>],
    ) -> Option<usize> {
        let Some(Fast::Prefix { daemon }) = &self.fast else { return None };
        let end = if ascii { prefix::scan_memo(b, pos, daemon, m)? } else { return None };
        for &g in &self.groups {
            *spans.get_mut(g)? = Some((pos, end));
        }
        Some(end)
    }

    /// The segment's [`Fast::OnPort`] from `pos` on an ASCII haystack: the
    /// end of its first parse (None inside: no match), or None when it has
    /// none or is undecided (the general case decides).
    #[inline]
    fn run_on_port(&self, b: &[u8], ascii: bool, pos: usize) -> Option<Option<usize>> {
        match &self.fast {
            Some(Fast::OnPort { steps }) if ascii => on_port_end(steps, b, pos),
            _ => None,
        }
    }

    /// The segment's steps (`memo`) from `pos`, through the memo `m`; the
    /// groups set in `spans` as [`Segment::run_fast`] sets them.
    #[inline]
    fn run_memo(&self, m: &mut StepsMemo, b: &[u8], pos: usize, spans: &mut [Option<(usize, usize)>]) -> Option<usize> {
        let Some(Fast::Steps { steps, .. }) = &self.fast else { return None };
        let end = m.walk(steps, b, pos)?;
        if self.whole.is_some() {
            let span = Some((pos, end.checked_sub(self.tail)?));
            for &g in &self.groups {
                *spans.get_mut(g)? = span;
            }
        }
        Some(end)
    }

    /// The anchored DFA for ASCII haystacks (see `walk`).
    #[inline]
    fn walk(&self) -> Option<&Walk> {
        self.walk.get_or_init(|| LazyDfa::make(self.cold.dfa.as_deref()?)).as_deref()
    }
}

/// A segment's automata for the general case.
struct SegCold {
    re: LazyMeta,
    /// The text of the same for ASCII haystacks, compiled as an anchored DFA
    /// when small enough (on first use, into `walk`).
    dfa: Option<String>,
}

/// One link of the chain.
#[repr(u8)] // a plain tag byte first: one load decodes it
enum Part {
    Seg(Segment),
    /// An alternation with groups: each branch as a whole (to find the
    /// first branch that matches) and as its own chain. Also a greedy
    /// `(?:X)?` with groups as `(?:X|)`, with the guard that skips X (to the
    /// empty branch) when it cannot start here.
    Alt(Vec<Branch>, Option<Box<Guard>>),
}

pub(crate) struct Segments {
    parts: Vec<Part>,
    /// Every group the chain sets (cleared when it fails inside an
    /// alternation whose next branch is tried).
    groups: Vec<usize>,
    /// Literal text every match of the chain contains (its top-level
    /// case-sensitive literal runs of 2+ bytes), last first: as a branch whose
    /// chain failed, it cannot match at all when one is missing after `pos`.
    need: Vec<Lit>,
    /// As a branch, look for the first of `need` before the chain runs: not
    /// when the chain's first part searches for a literal tail that holds it
    /// (dots, a run that scans): the part fails without it, and finding it
    /// is the part's own work.
    pre_need: bool,
    /// The chain is segments (no alternation): as a branch, it is run in
    /// the alternation's loop while their fast kinds (if they have them for
    /// the haystack) or free tails get through ([`Segments::run_flat`]).
    flat: bool,
    /// Literal text one of which every match of the chain starts with
    /// (empty: not known): as a branch, when none is at `pos` it cannot
    /// match and its chain is not run.
    lead: Box<[Box<[u8]>]>,
    /// Per part: a segment whose fast kind has at most one parse from a
    /// given start (see [`one_parse`]), for [`Segments::cannot_match`].
    one: Vec<bool>,
    /// The chain started with a part that is only `\A` (dropped from
    /// `parts`): it gets through only from 0.
    at_start: bool,
}

#[derive(Debug)]
enum PartSrc {
    /// Text, text for ASCII haystacks, whole group, groups, bytes of literal
    /// text after a whole group, fast kind.
    /// Guard bytes and guard literals (`(?:X)?`). The text T of a segment
    /// `P(?:(?!T).)*$` ([`free_tail`]).
    #[allow(clippy::type_complexity)]
    Seg(String, String, Option<usize>, Vec<usize>, usize, Option<Fast>, Option<u128>, Vec<Box<[u8]>>, Option<String>),
    /// Each branch: text, text for ASCII haystacks, its chain; guard bytes
    /// and guard literals of the first branch (`(?:X)?` as `(?:X|)`).
    #[allow(clippy::type_complexity)]
    Alt(Vec<(String, String, SegmentsSrc)>, Option<u128>, Vec<Box<[u8]>>),
}

/// When `(?:X)?` is skipped without a search: the next byte is none of
/// `set` (ASCII bytes X can start with), or the text there starts with none
/// of `lits` (literal text every match of X starts with; empty: not known).
#[derive(Debug)]
struct Guard {
    /// `set` as a table of every byte (one load instead of a 128-bit shift).
    start: [bool; 256],
    lits: Box<[Box<[u8]>]>,
}

impl Guard {
    fn new(set: u128, lits: &[Box<[u8]>]) -> Box<Guard> {
        let mut start = [false; 256];
        for (c, on) in start.iter_mut().enumerate().take(128) {
            *on = set & (1u128 << c) != 0;
        }
        Box::new(Guard { start, lits: lits.into() })
    }

    /// X cannot start at `pos` (so `(?:X)?` takes the empty branch).
    #[inline]
    fn skips(&self, b: &[u8], pos: usize) -> bool {
        b.get(pos).is_none_or(|&c| !self.start[c as usize])
            || (!self.lits.is_empty() && !self.lits.iter().any(|t| text_at(b, pos, t)))
    }
}

/// Are the `(?m:$)` parts after [`Fast::Dots`] and a first `\A` part kept
/// (tests of the general path)?
#[inline]
fn keep_asserts() -> bool {
    #[cfg(test)]
    return KEEP_ASSERTS.with(std::cell::Cell::get);
    #[cfg(not(test))]
    false
}

/// The atoms of a part that is only a [`Fast::Seq`] (no groups, no guard,
/// no free tail).
fn bare_seq(p: &Part) -> Option<&[Atom]> {
    match p {
        Part::Seg(Segment { fast: Some(Fast::Seq(atoms)), guard: None, free: None, whole: None, groups, .. })
            if groups.is_empty() =>
        {
            Some(atoms.as_slice())
        }
        _ => None,
    }
}

/// A part that is only `\A`.
fn start_only(p: &Part) -> bool {
    bare_seq(p) == Some(&[Atom::Start])
}

/// A part that always ends at the first `\n` from its start or at the end of
/// the haystack: a greedy [`Fast::Dots`] with no text after it, for every
/// haystack (not ASCII-only: no general search with another end), no guard,
/// no free tail.
fn dots_to_line_end(p: &Part) -> bool {
    matches!(p, Part::Seg(Segment {
        fast: Some(Fast::Dots { lazy: false, tail, .. }),
        guard: None,
        free: None,
        fast_ascii: false,
        tail: 0,
        ..
    }) if tail.is_empty())
}

/// A part that is only `(?m:$)`: it holds at a `\n` and at the end of the
/// haystack.
fn line_end_only(p: &Part) -> bool {
    bare_seq(p).is_some_and(|a| !a.is_empty() && a.iter().all(|a| *a == Atom::LineEnd))
}

/// Segment sources, compiled on first use.
#[derive(Debug)]
pub(crate) struct SegmentsSrc {
    parts: Vec<PartSrc>,
    need: Vec<String>,
    lead: Vec<String>,
}

fn build(text: &str) -> Option<meta::Regex> {
    meta::Regex::builder().configure(meta::Config::new().nfa_size_limit(Some(64 << 20))).build(text).ok()
}

/// An anchored dense DFA for a segment without groups, from its text for
/// ASCII haystacks (Python's classes restricted to ASCII: small automata;
/// None: too big).
fn build_dfa(atext: &str) -> Option<Dfa> {
    dense::Builder::new()
        .syntax(regex_automata::util::syntax::Config::new().utf8(false).unicode(false))
        .configure(
            dense::Config::new()
                .start_kind(StartKind::Anchored)
                // walked by hand (see [`Walk`]), acceleration unused
                .accelerate(false)
                .dfa_size_limit(Some(256 << 10))
                .determinize_size_limit(Some(1 << 20)),
        )
        .build(atext)
        .ok()
}

impl SegmentsSrc {
    /// Renumbers every group the chain sets by `map` (compiled group index →
    /// the index reported; e.g. `linearize`'s copies of a group → the
    /// original group). Exact when at most one group of those mapped to the
    /// same index can be set on any path through the chain (the copies sit in
    /// different branches of an alternation): a part sets only its own
    /// groups, and a failed branch clears only its own. None when an index
    /// is not in `map`.
    pub(crate) fn map_groups(&mut self, map: &[usize]) -> Option<()> {
        let m = |g: &mut usize| -> Option<()> {
            *g = *map.get(*g)?;
            Some(())
        };
        for p in &mut self.parts {
            match p {
                PartSrc::Seg(_, _, whole, groups, _, fast, _, _, _) => {
                    whole.as_mut().map_or(Some(()), m)?;
                    groups.iter_mut().try_for_each(m)?;
                    match fast {
                        Some(Fast::Opt { group, .. }) => m(group)?,
                        Some(Fast::Fixed { groups, .. }) => groups.iter_mut().try_for_each(|(g, _, _)| m(g))?,
                        _ => {}
                    }
                }
                PartSrc::Alt(branches, _, _) => {
                    branches.iter_mut().try_for_each(|(_, _, chain)| chain.map_groups(map))?;
                }
            }
        }
        Some(())
    }

    pub(crate) fn compile(&self) -> Option<Segments> {
        let mut parts = Vec::with_capacity(self.parts.len());
        for p in &self.parts {
            parts.push(match p {
                PartSrc::Seg(text, atext, whole, groups, tail, fast, guard, guard_lits, free) => {
                    let needs_caps = whole.is_none() && !groups.is_empty();
                    // (the prefix scanner's undecided cases: the general case)
                    let general = fast.as_ref().is_none_or(|f| matches!(f, Fast::Prefix { .. }));
                    let dfa = (general && !needs_caps).then(|| atext.clone());
                    Part::Seg(Segment {
                        fast: fast.clone().map(|f| match f {
                            Fast::Steps { steps, ascii, .. } => Fast::Steps { memo: memo_ok(&steps), steps, ascii },
                            f => f,
                        }),
                        fast_ascii: fast.as_ref().is_some_and(Fast::ascii_only),
                        free: free.as_ref().map(|t| Box::new(Lit::new(t))),
                        guard: guard.map(|set| Guard::new(set, guard_lits)),
                        whole: *whole,
                        groups: groups.clone().into(),
                        tail: *tail,
                        // built on first use, also for the capture search (when
                        // it cannot be built, the search falls back to the
                        // full engine)
                        walk: OnceLock::new(),
                        cold: Box::new(SegCold { re: LazyMeta::new(text), dfa }),
                    })
                }
                PartSrc::Alt(branches, guard, guard_lits) => Part::Alt(
                    branches
                        .iter()
                        .map(|(t, a, c)| Some((LazyMeta::new(t), LazyDfa::new(a), c.compile()?)))
                        .collect::<Option<_>>()?,
                    guard.map(|set| Guard::new(set, guard_lits)),
                ),
            });
        }
        // `(?m:$)` right after a greedy `(.*)`/`(.+)` with no text after it
        // ([`Fast::Dots`], which takes every char up to the first `\n` or the
        // end, on every haystack): it holds there, so the part is dropped
        // (one part less per run; see `dollar_after_dots_is_dropped`)
        let mut k = 1;
        while k < parts.len() {
            if !keep_asserts() && dots_to_line_end(&parts[k - 1]) && line_end_only(&parts[k]) {
                parts.remove(k);
            } else {
                k += 1;
            }
        }
        // (decided on the parts as written: only a branch's pre-check)
        let pre_need = match (parts.first(), self.need.first()) {
            (
                Some(Part::Seg(Segment {
                    guard: None,
                    free: None,
                    fast: Some(Fast::Run { tail, scan: true, .. } | Fast::Dots { tail, .. }),
                    ..
                })),
                Some(t),
            ) => !tail.contains(t.as_str()),
            _ => true,
        };
        // a first part that is only `\A`: the chain's start must be 0 (one
        // part less per run; see `start_part_is_a_check`)
        let at_start = !keep_asserts() && parts.first().is_some_and(start_only);
        if at_start {
            parts.remove(0);
        }
        let mut groups = Vec::new();
        for p in &parts {
            match p {
                Part::Seg(s) => groups.extend(s.groups.iter().copied().chain(s.whole)),
                Part::Alt(b, _) => b.iter().for_each(|(_, _, c)| groups.extend(c.groups.iter().copied())),
            }
        }
        groups.sort_unstable();
        groups.dedup();
        let need = self.need.iter().map(|t| Lit::new(t)).collect();
        let one = parts.iter().map(|p| matches!(p, Part::Seg(Segment { fast: Some(f), .. }) if one_parse(f))).collect();
        let lead = self.lead.iter().map(|t| t.as_bytes().into()).collect();
        let flat = !parts.is_empty() && parts.iter().all(|p| matches!(p, Part::Seg(_)));
        Some(Segments { parts, groups, need, lead, one, pre_need, flat, at_start })
    }
}

impl std::fmt::Debug for Segments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Segments({})", self.parts.len())
    }
}

#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per link, in a Vec
enum PartScratch {
    Seg {
        cache: Option<meta::Cache>,
        caps: Option<RaCaptures>,
        memo: Option<Box<WalkMemo>>,
        steps: StepsMemo,
        prefix: prefix::Memo,
    },
    Alt(Vec<(Option<meta::Cache>, SegScratch)>),
}

/// Per-search state for [`Segments`].
#[derive(Debug, Default)]
pub(crate) struct SegScratch {
    parts: Vec<PartScratch>,
}

fn captures_in(n: &Node, out: &mut Vec<usize>) {
    match n {
        Node::Group { kind, node } => {
            if let GroupKind::Capture(g) = kind {
                out.push(*g);
            }
            captures_in(node, out);
        }
        Node::Cat(v) | Node::Alt(v) => v.iter().for_each(|c| captures_in(c, out)),
        Node::Repeat { node, .. } | Node::Look { node, .. } => captures_in(node, out),
        Node::Cond { yes, no, .. } => {
            captures_in(yes, out);
            captures_in(no, out);
        }
        _ => {}
    }
}

impl SegmentsSrc {
    /// Segments for a linear pattern, or None when splitting does not help.
    #[cfg(test)]
    pub(crate) fn new(node: &Node, names: &[Option<String>], prefix: &str, opts: EmitOpts) -> Option<SegmentsSrc> {
        Self::new_with(node, names, prefix, opts, &[])
    }

    /// [`SegmentsSrc::new`] for a pattern whose `(?:(?!T).)*$` idioms (each
    /// T in `avoid`) were rewritten by `linearize` into T's KMP language:
    /// segments ending so are recognized ([`free_tail`]).
    pub(crate) fn new_with(
        node: &Node,
        names: &[Option<String>],
        prefix: &str,
        opts: EmitOpts,
        avoid: &[Vec<char>],
    ) -> Option<SegmentsSrc> {
        let Node::Cat(children) = node else {
            return None;
        };
        let src = Self::chain(children, names, prefix, opts, avoid);
        (src.parts.len() >= 2).then_some(src)
    }

    /// The chain for a concatenation (possibly a single segment).
    fn chain(
        children: &[Node],
        names: &[Option<String>],
        prefix: &str,
        opts: EmitOpts,
        avoid: &[Vec<char>],
    ) -> SegmentsSrc {
        let aopts = EmitOpts { ascii_hay: true, ..opts };
        let mut flat: Vec<&Node> = Vec::with_capacity(children.len());
        fn splice<'n>(v: &'n [Node], out: &mut Vec<&'n Node>) {
            for c in v {
                match c {
                    Node::Cat(inner) => splice(inner, out),
                    other => out.push(other),
                }
            }
        }
        splice(children, &mut flat);
        // every match holds each run of literal text of the concatenation
        // (case-sensitive literals, no global flags)
        let mut need: Vec<String> = Vec::new();
        if prefix.is_empty() {
            let mut run = String::new();
            for c in flat.iter().map(Some).chain([None]) {
                match c {
                    Some(Node::Lit { c, icase: false }) => run.push(*c),
                    _ if run.len() >= 2 => need.push(std::mem::take(&mut run)),
                    _ => run.clear(),
                }
            }
            need.reverse();
        }
        let lead = if prefix.is_empty() { lead_of(&flat) } else { Vec::new() };
        // group children: each child with captures alone, others merged
        let mut parts: Vec<Vec<&Node>> = Vec::new();
        let mut plain: Vec<&Node> = Vec::new();
        for c in flat {
            let mut g = Vec::new();
            captures_in(c, &mut g);
            if g.is_empty() {
                plain.push(c);
            } else {
                if !plain.is_empty() {
                    parts.push(std::mem::take(&mut plain));
                }
                parts.push(vec![c]);
            }
        }
        if !plain.is_empty() {
            parts.push(plain);
        }
        let mut segs = Vec::with_capacity(parts.len() + 1);
        let mut parts = parts.into_iter().peekable();
        while let Some(part) = parts.next() {
            // fail2ban's `<HOST>` / `<ADDR>` alternation: one segment, its
            // first parse and groups found by a scanner (ASCII haystacks;
            // others: the capture search of the segment)
            if prefix.is_empty()
                && !host_off()
                && let [n] = part.as_slice()
                && let Some((kind, groups)) = host::recognize(n)
            {
                let mut text = String::new();
                emit::emit(n, names, opts, &mut text);
                let mut atext = String::from("(?-u)");
                emit::emit(n, names, aopts, &mut atext);
                segs.push(PartSrc::Seg(
                    text,
                    atext,
                    None,
                    groups,
                    0,
                    Some(Fast::Host { kind }),
                    None,
                    Vec::new(),
                    None,
                ));
                continue;
            }
            // an alternation with groups: branch by branch, each its own chain
            // (not one without groups that a fast kind takes whole, such as a
            // choice of literal text: one segment, no chain per branch)
            if let [Node::Group { kind: GroupKind::NonCapture, node }] = part.as_slice()
                && let Node::Alt(branches) = &**node
                && !(prefix.is_empty()
                    && {
                        let mut g = Vec::new();
                        captures_in(node, &mut g);
                        g.is_empty()
                    }
                    && fast_of(&part, &[], None, names, aopts).is_some())
            {
                let alt = branches
                    .iter()
                    .map(|b| {
                        let mut text = String::from(prefix);
                        emit::emit(b, names, opts, &mut text);
                        let mut atext = format!("(?-u){prefix}");
                        emit::emit(b, names, aopts, &mut atext);
                        let items = match b {
                            Node::Cat(v) => v.as_slice(),
                            one => std::slice::from_ref(one),
                        };
                        (text, atext, Self::chain(items, names, prefix, opts, avoid))
                    })
                    .flat_map(|(text, atext, chain)| match chain.parts.as_slice() {
                        // a branch that is itself just an alternation (a
                        // group around it, as `linearize` makes): its
                        // branches in its place, one chain less to enter.
                        // Exact: leftmost-first `A|(?:C|D)` is `A|C|D`.
                        [PartSrc::Alt(_, None, _)] => {
                            let Some(PartSrc::Alt(sub, _, _)) = chain.parts.into_iter().next() else {
                                unreachable!("matched above")
                            };
                            sub
                        }
                        _ => vec![(text, atext, chain)],
                    })
                    .collect();
                segs.push(PartSrc::Alt(alt, None, Vec::new()));
                continue;
            }
            let mut groups = Vec::new();
            let mut text = String::from(prefix);
            let mut atext = format!("(?-u){prefix}");
            for c in &part {
                captures_in(c, &mut groups);
                emit::emit(c, names, opts, &mut text);
                emit::emit(c, names, aopts, &mut atext);
            }
            // a capture group (or groups nested one in the other, all with
            // the same span) around something without groups
            let whole = match part.as_slice() {
                [n @ Node::Group { kind: GroupKind::Capture(g), .. }] => {
                    let mut inner = Vec::new();
                    captures_in(innermost(n), &mut inner);
                    inner.is_empty().then_some(*g)
                }
                _ => None,
            };
            // A group alone often has another first parse than in context
            // (`(.*?) from`, `([^:]+) from`): take the literal text after it
            // into its segment; the group ends that many bytes before the
            // segment's end. (Case-sensitive literals only: their length
            // is fixed.)
            let mut tail = 0;
            let mut tail_nodes: Vec<&Node> = Vec::new();
            if whole.is_some()
                && prefix.is_empty()
                && let Some(next) = parts.peek_mut()
            {
                let mut g = Vec::new();
                next.iter().for_each(|n| captures_in(n, &mut g));
                let k = if g.is_empty() {
                    next.iter().take_while(|n| matches!(n, Node::Lit { icase: false, .. })).count()
                } else {
                    0
                };
                for n in next.drain(..k) {
                    if let Node::Lit { c, .. } = n {
                        tail += c.len_utf8();
                    }
                    emit::emit(n, names, opts, &mut text);
                    emit::emit(n, names, aopts, &mut atext);
                    tail_nodes.push(n);
                }
                if next.is_empty() {
                    parts.next();
                }
            }
            // fast kinds only without global flags (the literals' case)
            let fast = if !prefix.is_empty() {
                None
            } else if whole.is_some() || groups.is_empty() {
                prefix_group(&part, &tail_nodes, whole)
                    .or_else(|| {
                        // (no groups: `tail_nodes` is empty)
                        (whole.is_none() && groups.is_empty())
                            .then(|| {
                                tails::recognize(&part)
                                    .map(|lead| Fast::Tail { lead })
                                    .or_else(|| on_port_of(&part, names, aopts))
                            })
                            .flatten()
                    })
                    .or_else(|| avoid_group(&part, &tail_nodes, whole, avoid))
                    .or_else(|| fast_of(&part, &tail_nodes, whole, names, aopts))
            } else if let [Node::Repeat { node: grp, min: 0, max: Some(1), kind: RepKind::Greedy }] = part.as_slice()
                && let Node::Group { kind: GroupKind::Capture(g), node: inner } = &**grp
                && groups.len() == 1
                && tail_nodes.is_empty()
            {
                let items: Vec<&Node> = match &**inner {
                    Node::Cat(v) => v.iter().collect(),
                    one => vec![one],
                };
                fast_of(&items, &[], None, names, aopts)
                    .filter(Fast::non_empty)
                    .map(|f| Fast::Opt { group: *g, inner: Box::new(f) })
            } else if tail_nodes.is_empty() {
                // literal text in groups: no capture search
                fixed_of(&part)
            } else {
                None
            };
            // `(?:X)?` where X starts with one of a few ASCII bytes: when
            // the next byte is none of them, X cannot match and the
            // first parse is empty (groups inside do not take part); also
            // in front of steps (a byte test is cheaper than the walk)
            let (guard, guard_lits) = match part.as_slice() {
                [Node::Repeat { node, min: 0, max: Some(1), kind: RepKind::Greedy }]
                    if prefix.is_empty()
                        && fast.as_ref().is_none_or(|f| matches!(f, Fast::Steps { .. }))
                        && whole.is_none()
                        && tail_nodes.is_empty() =>
                {
                    let lits = lit_prefixes(node).unwrap_or_default();
                    (first_bytes(node), lits.into_iter().map(|t| t.into_bytes().into_boxed_slice()).collect())
                }
                _ => (None, Vec::new()),
            };
            // `(?:X)?` (greedy) with groups that no fast kind takes: as the
            // alternation `(?:X|)`, X as its own chain (no capture search).
            // Exact: a greedy `X?` tries X (its parses in priority order)
            // before the empty string, which is `(?:X|)` in leftmost-first
            // order (Python's and the `regex` crate's), branch by branch.
            // The guard above still skips X when it cannot start here.
            if let [Node::Repeat { node: x, min: 0, max: Some(1), kind: RepKind::Greedy }] = part.as_slice()
                && fast.is_none()
                && whole.is_none()
                && !groups.is_empty()
            {
                // `(?:A B)` in a concatenation is `A B` (no flags: NonCapture
                // only); other X stay whole (`(?:A|B)`: an alternation part)
                let mut inner: &Node = x;
                while let Node::Group { kind: GroupKind::NonCapture, node } = inner {
                    inner = node;
                }
                let items = match inner {
                    Node::Cat(v) => v.as_slice(),
                    _ => std::slice::from_ref(&**x),
                };
                let mut xtext = String::from(prefix);
                emit::emit(x, names, opts, &mut xtext);
                let mut xatext = format!("(?-u){prefix}");
                emit::emit(x, names, aopts, &mut xatext);
                let alt = vec![
                    (xtext, xatext, Self::chain(items, names, prefix, opts, avoid)),
                    // the empty branch: no parts, gets through anywhere
                    (
                        prefix.to_string(),
                        format!("(?-u){prefix}"),
                        SegmentsSrc { parts: Vec::new(), need: Vec::new(), lead: Vec::new() },
                    ),
                ];
                segs.push(PartSrc::Alt(alt, guard, guard_lits));
                continue;
            }
            // `P(?:(?!T).)*$` without groups: see `Segment::free`
            let free = (prefix.is_empty() && whole.is_none() && groups.is_empty() && tail_nodes.is_empty())
                .then(|| free_tail(&part, avoid))
                .flatten();
            segs.push(PartSrc::Seg(text, atext, whole, groups, tail, fast, guard, guard_lits, free));
        }
        SegmentsSrc { parts: segs, need, lead }
    }
}

#[cfg(test)]
thread_local! {
    /// Tests: build chains without [`Fast::Host`] (the general path).
    static HOST_OFF: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[cfg(test)]
thread_local! {
    /// Tests: keep every `(?m:$)` part (see `dots_to_line_end`) and a first
    /// `\A` part (see `start_only`).
    static KEEP_ASSERTS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Are [`Fast::Host`] segments off (tests of the general path)?
#[inline]
fn host_off() -> bool {
    #[cfg(test)]
    return HOST_OFF.with(std::cell::Cell::get);
    #[cfg(not(test))]
    false
}

impl Segments {
    /// [`Segments::run`] of a `flat` chain, as long as its segments have
    /// fast kinds for the haystack or free tails that decide, in the same
    /// order as `run` (None when one has not: the caller runs the chain from
    /// the start, which takes the same steps up to there).
    #[inline(always)]
    fn run_flat(
        &self,
        hay: &str,
        ascii: bool,
        nl: Option<usize>,
        start: usize,
        spans: &mut [Option<(usize, usize)>],
    ) -> Option<Option<usize>> {
        let b = hay.as_bytes();
        let mut pos = start;
        if self.at_start && start != 0 {
            return Some(None);
        }
        for part in &self.parts {
            let Part::Seg(seg) = part else { return None };
            if seg.guard.as_ref().is_some_and(|g| g.skips(b, pos)) {
                continue;
            }
            match seg.run_fast(hay, ascii, nl, pos, spans) {
                Some(Some(end)) => pos = end,
                Some(None) => return Some(None),
                // a free tail that decides (as in `run`), else the caller's
                None => pos = seg.free_end(b, nl, pos)?,
            }
        }
        Some(Some(pos))
    }

    /// Is some literal text every match of the chain holds missing from
    /// `b` (so that the pattern matches nowhere in it)?
    #[inline]
    pub(crate) fn lacks_needed_text(&self, b: &[u8]) -> bool {
        self.need.iter().any(|f| f.find(b).is_none())
    }

    pub(crate) fn scratch(&self) -> SegScratch {
        SegScratch {
            parts: self
                .parts
                .iter()
                .map(|p| match p {
                    Part::Seg(_) => PartScratch::Seg {
                        cache: None,
                        caps: None,
                        memo: None,
                        steps: StepsMemo::default(),
                        prefix: prefix::Memo::default(),
                    },
                    Part::Alt(b, _) => PartScratch::Alt(b.iter().map(|(_, _, c)| (None, c.scratch())).collect()),
                })
                .collect(),
        }
    }

    /// Runs the chain from `start`; fills `spans` (global group index) and
    /// returns the end, or None when the caller must use the full engine.
    /// `nl`: where the haystack's first `\n` is (its length: none), if known.
    ///
    /// The spans of the chain's groups must be None on entry (each part sets
    /// only its own groups, an alternation clears those of a branch whose
    /// chain failed): a part or branch that is skipped leaves them so.
    pub(crate) fn run(
        &self,
        hay: &str,
        ascii: bool,
        nl: Option<usize>,
        start: usize,
        s: &mut SegScratch,
        spans: &mut [Option<(usize, usize)>],
    ) -> Option<usize> {
        let b = hay.as_bytes();
        let mut pos = start;
        // (the dropped `\A` part fails elsewhere: so does the chain)
        if self.at_start && start != 0 {
            return None;
        }
        // the scratch is looked up only where used (the general case, an
        // alternation's branches): the loop walks the parts alone
        for (i, part) in self.parts.iter().enumerate() {
            match part {
                Part::Seg(seg) => {
                    if seg.guard.as_ref().is_some_and(|g| g.skips(b, pos)) {
                        // (its groups do not take part: None already)
                        continue;
                    }
                    match seg.run_fast(hay, ascii, nl, pos, spans) {
                        Some(end) => pos = end?,
                        None => {
                            // the general case: built only here (the fast
                            // kinds above need no `Input`)
                            let Some(PartScratch::Seg { cache, caps, memo, steps, prefix }) = s.parts.get_mut(i) else {
                                return None;
                            };
                            // the prefix scanner, through its memo
                            if let Some(end) = seg.run_prefix(prefix, b, ascii, pos, spans) {
                                pos = end;
                                continue;
                            }
                            // `__on_port_opt` and steps (no groups)
                            if let Some(end) = seg.run_on_port(b, ascii, pos) {
                                pos = end?;
                                continue;
                            }
                            // steps whose last walk read the same bytes: its answer
                            if let Some(Fast::Steps { memo: true, .. }) = &seg.fast
                                && (ascii || !seg.fast_ascii)
                            {
                                pos = seg.run_memo(steps, b, pos, spans)?;
                                continue;
                            }
                            if let Some(n) = seg.free_end(b, nl, pos) {
                                pos = n;
                                continue;
                            }
                            let input = Input::new(hay).span(pos..hay.len()).anchored(Anchored::Yes);
                            if seg.whole.is_none() && !seg.groups.is_empty() {
                                let re = seg.cold.re.get()?;
                                let caps = caps.get_or_insert_with(|| re.create_captures());
                                re.search_captures_with(cache.get_or_insert_with(|| re.create_cache()), &input, caps);
                                let m = caps.get_match()?;
                                for (local, &g) in seg.groups.iter().enumerate() {
                                    *spans.get_mut(g)? = caps.get_group(local + 1).map(|sp| (sp.start, sp.end));
                                }
                                pos = m.end();
                            } else {
                                let dfa = ascii.then(|| seg.walk()).flatten();
                                // from the start (a line's first bytes): with the memo
                                let walked = dfa.map(|d| match pos {
                                    0 => d.find_start(b, memo.get_or_insert_with(Box::default)),
                                    _ => d.find(b, pos),
                                });
                                let end = match walked {
                                    Some(Ok(m)) => m?,
                                    _ => seg.cold.re.search(cache, &input)?,
                                };
                                if seg.whole.is_some() {
                                    let span = Some((pos, end.checked_sub(seg.tail)?));
                                    for &g in &seg.groups {
                                        *spans.get_mut(g)? = span;
                                    }
                                }
                                pos = end;
                            }
                        }
                    }
                }
                Part::Alt(_, Some(g)) if g.skips(b, pos) => {
                    // `(?:X|)` where X cannot start here: the empty branch
                    // (the groups of X do not take part: None already)
                }
                Part::Alt(branches, _) => {
                    let Some(PartScratch::Alt(bs)) = s.parts.get_mut(i) else {
                        return None;
                    };
                    // leftmost-first takes the first branch that matches at
                    // all, with its first parse: the branch's own chain when
                    // that gets through (a complete chain is the first
                    // parse). A branch whose chain fails is skipped only
                    // when it cannot match at all.
                    let mut done = None;
                    for ((re, dfa, chain), (cache, sub)) in branches.iter().zip(bs.iter_mut()) {
                        // every match of the branch starts with text that is not
                        // here: it cannot match (its chain would fail)
                        // (its groups do not take part: None already)
                        if !chain.lead.is_empty() && !chain.lead.iter().any(|t| text_at(b, pos, t)) {
                            continue;
                        }
                        // text every match of the branch holds (the last
                        // literal of the branch, the likeliest to be
                        // missing when the branch does not match) is not
                        // there: the branch cannot match, its chain is not run
                        // (unless the chain's first part searches it itself)
                        if chain.pre_need && chain.need.first().is_some_and(|f| f.find(&b[pos..]).is_none()) {
                            continue;
                        }
                        // a chain of segments of fast kinds: run here
                        let flat = if chain.flat { chain.run_flat(hay, ascii, nl, pos, spans) } else { None };
                        let got = match flat {
                            Some(got) => got,
                            None => chain.run(hay, ascii, nl, pos, sub, spans),
                        };
                        if let Some(end) = got {
                            done = Some(end);
                            break;
                        }
                        // what the failed chain set does not take part
                        for &g in &chain.groups {
                            *spans.get_mut(g)? = None;
                        }
                        // the branch's other literal text is not there
                        if chain.need.iter().skip(usize::from(chain.pre_need)).any(|f| f.find(&b[pos..]).is_none()) {
                            continue;
                        }
                        // the chain's own pieces prove that nothing matches
                        if chain.cannot_match(hay, ascii, nl, pos) {
                            continue;
                        }
                        // (an ASCII haystack: no empty match splits a character)
                        let matches = match Some(dfa).filter(|_| ascii).and_then(LazyDfa::get).map(|d| d.any(b, pos)) {
                            Some(Ok(m)) => m,
                            _ => {
                                // the general case: the `Input` built only here
                                let input = Input::new(hay).span(pos..hay.len()).anchored(Anchored::Yes);
                                re.search(cache, &input).is_some()
                            }
                        };
                        if matches {
                            return None;
                        }
                    }
                    pos = done?;
                }
            }
        }
        Some(pos)
    }
}

/// For a segment's nodes `P (?:(?!T).)* $` (greedy, `.` without DOTALL,
/// T case-sensitive literal text without `\n`, `$` either kind) where P is
/// items that each can match empty (repetitions from 0, empty), possibly inside
/// non-capturing groups: T. (The caller checks that there are no groups
/// and no global flags.) The idiom as written (`Node::Look`), or as
/// `linearize` rewrote it for a T of `avoid` (T's KMP language: "text
/// without newline or T", the same language).
fn free_tail(part: &[&Node], avoid: &[Vec<char>]) -> Option<String> {
    fn flat<'n>(n: &'n Node, out: &mut Vec<&'n Node>) {
        match n {
            Node::Cat(v) => v.iter().for_each(|c| flat(c, out)),
            Node::Group { kind: GroupKind::NonCapture, node } => flat(node, out),
            other => out.push(other),
        }
    }
    fn bare(mut n: &Node) -> &Node {
        while let Node::Group { kind: GroupKind::NonCapture, node } = n {
            n = node;
        }
        n
    }
    let mut items = Vec::new();
    part.iter().for_each(|n| flat(n, &mut items));
    let [body @ .., Node::End { .. }] = items.as_slice() else {
        return None;
    };
    let nullable = |pre: &[&Node]| pre.iter().all(|n| matches!(n, Node::Repeat { min: 0, .. } | Node::Empty));
    // linearized: the items before `$` end with T's language, as built
    for t in avoid.iter().filter(|t| !t.is_empty() && !t.contains(&'\n')) {
        let Some(lang) = super::linearize::kmp_language(t, false) else { continue };
        let mut l = Vec::new();
        flat(&lang, &mut l);
        if let Some(k) = body.len().checked_sub(l.len())
            && body[k..] == l[..]
            && nullable(&body[..k])
        {
            return Some(t.iter().collect());
        }
    }
    let [pre @ .., Node::Repeat { node, min: 0, max: None, kind: RepKind::Greedy }] = body else {
        return None;
    };
    if !nullable(pre) {
        return None;
    }
    let Node::Cat(v) = bare(node) else { return None };
    let [Node::Look { ahead: true, neg: true, node: look }, Node::Any { dotall: false }] = v.as_slice() else {
        return None;
    };
    let mut lits = Vec::new();
    flat(look, &mut lits);
    let t: String = lits
        .iter()
        .map(|n| match n {
            Node::Lit { c, icase: false } if *c != '\n' => Some(*c),
            _ => None,
        })
        .collect::<Option<_>>()?;
    (!t.is_empty()).then_some(t)
}

/// A whole group around `(?:(?!T).)*?` (or greedy) followed by T, as
/// `linearize` rewrote it (T's KMP language "text without newline that,
/// followed by T, holds T first at its end"; T in `avoid`), with exactly T
/// after the group in the segment: as [`Fast::Dots`] (lazy, to the first T).
/// Exact: a match of the segment from `pos` ends its group at some `k` with
/// no newline in `pos..k`, T at `k` and at no place in `pos..k` (an
/// occurrence there ends before `k + |T|`, inside the language's text
/// followed by T), so `k` is the first place of T from `pos`, if no newline
/// comes before it: one parse, the one the lazy dots find.
fn avoid_group(part: &[&Node], tail: &[&Node], whole: Option<usize>, avoid: &[Vec<char>]) -> Option<Fast> {
    whole?;
    let [n @ Node::Group { .. }] = part else { return None };
    let text: String = tail
        .iter()
        .map(|n| match n {
            Node::Lit { c, icase: false } => Some(*c),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let inner = innermost(n);
    let t = avoid.iter().find(|t| !t.is_empty() && !t.contains(&'\n') && t.iter().copied().eq(text.chars()))?;
    let lang = super::linearize::kmp_language(t, true)?;
    if *inner != lang {
        return None;
    }
    let rare = rare_index(text.as_bytes());
    Some(Fast::Dots { min: 0, lazy: true, tail: text, rare })
}

/// A whole group around fail2ban's `__prefix_line` (see [`prefix`]) with
/// no text after it in the segment: [`Fast::Prefix`].
fn prefix_group(part: &[&Node], tail: &[&Node], whole: Option<usize>) -> Option<Fast> {
    whole?;
    let ([n @ Node::Group { .. }], []) = (part, tail) else { return None };
    prefix::recognize(innermost(n)).map(|daemon| Fast::Prefix { daemon })
}

/// Literal text one of which every match of the concatenation `items`
/// starts with (case-sensitive literals; empty: not known). The items'
/// exact string sets are crossed while they are known (when the set grows
/// too big, the texts so far are still prefixes of every match), then the
/// prefixes of the next item, if known.
fn lead_of(items: &[&Node]) -> Vec<String> {
    let mut out = vec![String::new()];
    for item in items {
        if let Some(set) = lit_set(item) {
            match cross(&out, &set) {
                Some(o) => out = o,
                None => break,
            }
        } else {
            if let Some(o) = lit_prefixes(item).and_then(|set| cross(&out, &set)) {
                out = o;
            }
            break;
        }
    }
    if out.iter().any(String::is_empty) { Vec::new() } else { out }
}

/// Has a fast kind at most one parse from a given start (on the haystacks
/// it is used on)? Then the parse its run finds is the only one.
/// - literal text and assertions (`Seq`, `Fixed`): one way to match;
/// - a class run followed by text that does not start with a class byte
///   (`Run` without `scan`): a parse whose run stops short of the longest
///   (capped at `max`) has a class byte where the text must start, so the
///   run is the longest one; with no text, only a run of fixed length;
/// - steps that all commit whatever follows them (`check` with nothing
///   known after them and not at the piece's end): every parse of the
///   steps followed by anything takes each step's first parse, so there is
///   one (walks admitted only as the piece's end, `a\d*`, have several);
/// - `.*` runs (`Dots`) and optional groups (`Opt`): several in general.
fn one_parse(f: &Fast) -> bool {
    match f {
        Fast::Seq(_) | Fast::Fixed { .. } => true,
        Fast::Run { scan, tail, min, max, .. } => !scan && (!tail.is_empty() || min == max),
        Fast::Steps { steps, .. } => check(steps, None, false),
        Fast::Dots { .. }
        | Fast::Opt { .. }
        | Fast::Host { .. }
        | Fast::Prefix { .. }
        | Fast::Tail { .. }
        | Fast::OnPort { .. } => false,
    }
}

impl Segments {
    /// Is it proven that the chain's pattern (the concatenation of its
    /// parts) has no match at all anchored at `pos`? Walks the parts while
    /// each has exactly one parse from where the walk is: a fast kind of at
    /// most one parse ([`one_parse`]) that matches, a `(?:X)?` whose guard
    /// says X cannot start (only the empty parse), a `Fast::Opt` whose X
    /// does not match (the same). Every match of the pattern goes through
    /// the ends the walk takes, so when the next part is a fast kind that
    /// finds no parse there (its run fails only when the part cannot match
    /// at all), there is none. Anything else (a part with several parses,
    /// one searched by an automaton, an alternation) proves nothing: false.
    /// The fast kinds are used as the chain uses them (the ASCII-only ones
    /// on ASCII haystacks only).
    fn cannot_match(&self, hay: &str, ascii: bool, nl: Option<usize>, mut pos: usize) -> bool {
        let b = hay.as_bytes();
        if self.at_start && pos != 0 {
            return true;
        }
        for (part, &one) in self.parts.iter().zip(&self.one) {
            match part {
                Part::Seg(Segment { guard: Some(g), .. }) | Part::Alt(_, Some(g)) if g.skips(b, pos) => {}
                Part::Seg(Segment { guard: None, fast: Some(f), .. }) if ascii || !f.ascii_only() => match f {
                    Fast::Opt { inner, .. } if inner.run(hay, pos, nl).is_none() => {}
                    Fast::Opt { .. } | Fast::Prefix { .. } | Fast::OnPort { .. } => return false,
                    f => match f.run(hay, pos, nl) {
                        None => return true,
                        Some(end) if one => pos = end,
                        Some(_) => return false,
                    },
                },
                _ => return false,
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    /// A class's table from its syntax tree equals the one its engine
    /// gives, for the classes and dots of the stock filters and odd ones.
    #[test]
    fn class_table_from_syntax_equals_engine() {
        let texts = [
            r"\d",
            r"\D",
            r"\s",
            r"\S",
            r"\w",
            r"\W",
            r".",
            r"(?s:.)",
            r"[^:]",
            r"[^\]]",
            r"[^\s]",
            r"[a-z0-9_.-]",
            r"[\w\-.^_]",
            r"(?i:[a-f])",
            r"(?i:k)",
            r"[[:alpha:]]",
            r"[[:^digit:]\n]",
            r"[^\x00-\x7f]",
            r"[\x00-\xff]",
            r"[\[\]]",
            r"(?u:\w)",
            r"(?u:[^a])",
            r"[^\n]",
            r"\p{L}",
            r"[^\w\s]",
            r"x",
            r"(?:\d)",
        ];
        let mut classes = 0;
        for t in texts {
            let from_syntax = class_from_syntax(t);
            if let Some(table) = &from_syntax {
                classes += 1;
                assert_eq!(Some(table), class_from_engine(t).as_ref(), "{t}");
            }
        }
        // (the last ones are no single class: the engine answers those)
        assert!(classes >= 20, "{classes}");
    }

    use super::super::pyre;
    use super::*;

    use crate::test_util::xorshift;

    const OPTS: EmitOpts =
        EmitOpts { exact_dollar: false, relaxed: false, fancy: false, ascii_hay: false, empty_hay: false };
    const AOPTS: EmitOpts = EmitOpts { ascii_hay: true, ..OPTS };

    #[test]
    fn text_at_equals_slice_compare() {
        // texts of every length up to 20, at every
        // place of haystacks that hold them, miss them by one byte at either
        // end or the middle, or end too soon
        let mut next = xorshift(0x1f83_d9ab_fb41_bd6bu64);
        for n in 0..=40usize {
            for _ in 0..400 {
                let t: Vec<u8> = (0..n).map(|_| b"ab "[next(3) as usize]).collect();
                let mut b: Vec<u8> = (0..next(30) as usize).map(|_| b"ab "[next(3) as usize]).collect();
                let at = next(b.len() as u64 + 1) as usize;
                b.splice(at..at, t.iter().copied());
                if n > 0 && next(2) == 0 {
                    let k = [0, n / 2, n - 1][next(3) as usize];
                    b[at + k] ^= 0x40;
                }
                if next(4) == 0 {
                    b.truncate(next(b.len() as u64 + 1) as usize);
                }
                for p in 0..=b.len() + 1 {
                    assert_eq!(text_at(&b, p, &t), b.get(p..p + n) == Some(&t[..]), "{b:?} at {p}: {t:?}");
                }
            }
        }
    }

    #[test]
    fn find_lit_equals_memmem() {
        // texts of 1..8 bytes over a small alphabet (many near misses), in
        // haystacks short and long (past `SHORT_HAY`: memmem), at every rare index
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15u64);
        let alpha = b"ab :";
        for _ in 0..4000 {
            let n = 1 + next(8) as usize;
            let t: Vec<u8> = (0..n).map(|_| alpha[next(4) as usize]).collect();
            let len = match next(8) {
                0 => SHORT_HAY - 4 + next(10) as usize,
                1 => MID_HAY - 4 + next(10) as usize,
                _ => next(80) as usize,
            };
            let mut h: Vec<u8> = (0..len).map(|_| alpha[next(4) as usize]).collect();
            if next(2) == 0 {
                let at = next(h.len() as u64 + 1) as usize;
                h.splice(at..at, t.iter().copied());
            }
            for rare in 0..n {
                assert_eq!(find_lit(&h, &t, rare), memchr::memmem::find(&h, &t), "{h:?} {t:?} {rare}");
                assert_eq!(rfind_lit(&h, &t, rare), memchr::memmem::rfind(&h, &t), "{h:?} {t:?} {rare}");
            }
            let lit = Lit::new(std::str::from_utf8(&t).unwrap());
            assert_eq!(lit.find(&h), memchr::memmem::find(&h, &t));
            // the stop bytes of a run: one to three of them (and none)
            let n = next(4) as usize;
            let mut bytes = [0u8; 3];
            bytes.iter_mut().for_each(|x| *x = alpha[next(4) as usize]);
            let stop = Stop { n: n as u8, bytes };
            for from in 0..h.len().min(9) {
                let want = h[from..].iter().position(|x| bytes[..n].contains(x)).unwrap_or(h.len() - from);
                assert_eq!(stop.find(&h[from..]), want, "{h:?} from {from}: {stop:?}");
            }
        }
    }

    /// The inline end of a greedy `.*`/`.+` with no text after it (the
    /// first `\n` known) equals `dots`, at every position of texts with `\n`
    /// before, at and after it, non-ASCII text and none.
    #[test]
    fn dots_to_known_newline_equal_dots() {
        let hays = ["", "a", "\n", "ab\ncd", "abc\n", "\n\n", "\u{e9}x\ny", "xyz", "a\r\nb"];
        let mut compared = 0;
        for h in hays {
            let nl = crate::pattern::first_newline(h.as_bytes());
            for min in [0, 1] {
                let f = Fast::Dots { min, lazy: false, tail: String::new(), rare: 0 };
                for pos in (0..=h.len()).filter(|&p| h.is_char_boundary(p)) {
                    for known in [Some(nl), None] {
                        let want = dots(h.as_bytes(), pos, known, min, false, b"", 0);
                        assert_eq!(f.run(h, pos, known), want, "{h:?} at {pos}, min {min}, nl {known:?}");
                        compared += 1;
                    }
                }
            }
        }
        assert!(compared > 100, "{compared}");
    }

    /// The piece as steps (if it is walked step by step) and as the
    /// general engine's regex.
    fn piece(src: &str) -> (Option<Fast>, meta::Regex) {
        piece_as(src, |nodes, names| steps_fast(nodes, names, AOPTS))
    }

    /// The piece as the fast kind `make` gives for its top-level nodes, and
    /// as the general engine's regex.
    fn piece_as(src: &str, make: impl Fn(&[&Node], &[Option<String>]) -> Option<Fast>) -> (Option<Fast>, meta::Regex) {
        let parsed = pyre::parse(src, true).unwrap();
        let nodes: Vec<&Node> = match &parsed.node {
            Node::Cat(v) => v.iter().collect(),
            one => vec![one],
        };
        let mut text = String::new();
        emit::emit(&parsed.node, &parsed.names, OPTS, &mut text);
        (make(&nodes, &parsed.names), build(&text).unwrap())
    }

    /// `fast` ends where the general engine's anchored match of `re` ends,
    /// at every char boundary of `hay`; returns how many places it compared.
    fn ends_equal(src: &str, fast: &Fast, re: &meta::Regex, hay: &str) -> usize {
        let mut compared = 0;
        for pos in (0..=hay.len()).filter(|&p| hay.is_char_boundary(p)) {
            let input = Input::new(hay).span(pos..hay.len()).anchored(Anchored::Yes);
            let theirs = re.search(&input).map(|m| m.end());
            assert_eq!(fast.run(hay, pos, None), theirs, "{src:?} on {hay:?} at {pos}");
            compared += 1;
        }
        compared
    }

    /// The chain from the start of `hay` (with `nl` as the first-newline
    /// hint): when it gets through, its end and every group equal the full
    /// engine's anchored match. Returns whether the chain got through.
    #[allow(clippy::too_many_arguments)]
    fn chain_agrees(
        src: &str,
        segs: &Segments,
        re: &meta::Regex,
        ngroups: usize,
        hay: &str,
        nl: Option<usize>,
        scratch: &mut SegScratch,
        caps: &mut RaCaptures,
    ) -> bool {
        let mut spans = vec![None; ngroups];
        let Some(end) = segs.run(hay, hay.is_ascii(), nl, 0, scratch, &mut spans) else {
            return false;
        };
        re.search_captures(&Input::new(hay).anchored(Anchored::Yes), caps);
        let m = caps.get_match().unwrap_or_else(|| panic!("{src:?} on {hay:?}: chain but no match"));
        assert_eq!(end, m.end(), "{src:?} on {hay:?}");
        for (g, span) in spans.iter().enumerate().skip(1) {
            let theirs = caps.get_group(g).map(|s| (s.start, s.end));
            assert_eq!(*span, theirs, "{src:?} on {hay:?}: group {g}");
        }
        true
    }

    /// sshd's `__on_port_opt` tails ([`Fast::OnPort`]): where the scanner
    /// decides, it equals the general engine's anchored match (ASCII
    /// haystacks, every position); it decides on most; segments whose
    /// text after the loop may start with a space or a digit are not taken.
    #[test]
    fn on_port_equals_general_engine() {
        let taken = [
            r"(?: (?:port \d+|on \S+)){0,2}:\s*11:",
            r"(?: (?:port \d+|on \S+)){0,2}:\s*14: No(?: supported)? authentication methods available",
            r"(?: (?:port \d+|on \S+)){0,2}: invalid format",
            r"(?: (?:port \d+|on \S+)){0,2}x",
            r"(?: (?:port \d+|on \S+)){0,2}$",
        ];
        let words = [
            " port ",
            " on ",
            "22",
            "1",
            "x",
            ":",
            " ",
            "11:",
            ": ",
            "14: No authentication methods available",
            "14: No supported authentication methods available",
            " ssh2",
            "\n",
            "eth0:11:",
            " invalid format",
        ];
        let mut rng = xorshift(0x9e37_79b9_7f4a_7c15);
        let mut texts: Vec<String> = [
            " port 22:11: bye",
            " port 22:  11:",
            " on eth0:11:",
            " port 1 on eth0:11:",
            " port 1 port 2:11:",
            " port 1 port 2 port 3:11:",
            " port :11:",
            " port 22x:11:",
            ":11:",
            " port 22: invalid format",
        ]
        .iter()
        .map(|t| t.to_string())
        .collect();
        for _ in 0..4000 {
            let n = rng(7) as usize;
            texts.push((0..n).map(|_| words[rng(words.len() as u64) as usize]).collect());
        }
        let (mut decided, mut undecided) = (0, 0);
        for src in taken {
            let (fast, re) = piece_as(src, |nodes, names| on_port_of(nodes, names, AOPTS));
            let Some(Fast::OnPort { steps }) = fast else { panic!("{src}: not taken") };
            for hay in &texts {
                let b = hay.as_bytes();
                for pos in 0..=b.len() {
                    let Some(ours) = on_port_end(&steps, b, pos) else {
                        undecided += 1;
                        continue;
                    };
                    let input = Input::new(hay).span(pos..hay.len()).anchored(Anchored::Yes);
                    assert_eq!(ours, re.search(&input).map(|m| m.end()), "{src:?} on {hay:?} at {pos}");
                    decided += 1;
                }
            }
        }
        assert!(decided > 20 * undecided && undecided > 0, "{decided} {undecided}");
        for src in [
            r"(?: (?:port \d+|on \S+)){0,2}(?: ssh\d*)?: ",
            r"(?: (?:port \d+|on \S+)){0,2}\d",
            r"(?: (?:port \d+|on \S+)){0,2}\s*$",
            r"(?: (?:port \d+|on \S+)){0,3}:",
            r"(?: (?:port \d+|on \S+)){0,2}",
            r"(?: (?:port \d+|on \S+)){0,2}.",
        ] {
            assert_eq!(piece_as(src, |nodes, names| on_port_of(nodes, names, AOPTS)).0, None, "{src}");
        }
    }

    /// sshd's pieces (and a few made to probe the rules) are walked step
    /// by step; each walk gives the end of the piece's first parse exactly as
    /// the general engine, on ASCII haystacks (and on others when the steps
    /// have no class runs).
    #[test]
    fn steps_equal_general_engine() {
        let steps = [
            r"(?:\d{1,3}\.){3}\d{1,3}",
            r"pam_[a-z]+\(sshd:auth\):\s+authentication failure;",
            r"(?:Connection (?:closed|reset)|Disconnected) ",
            r"\A[iI](?:llegal|nvalid) user ",
            r"(?:(?:error|fatal): (?:PAM: )?)?",
            r"(?:\s+(?:(?:logname|e?uid|tty)=\S*)){0,4}\s+ruser=",
            r"Accepted \w+ for ",
            r"(?:::f{4,6}:)?",
            r"\[?",
            r"(?:a+b)?a+c",
            r"(?:a+b){1,3}a+c",
            r"(?:a|ab)",
            r"\d+$",
            r"\d+\n?",
            r"(?:ab){2}a",
            r"(?:ab|a)",
            r"[ab]{2,3}c",
        ];
        let general = [
            r"(?:ab)?a",
            r"(?:ab|a)c",
            r"x\d{2,4}\d",
            r"\s+\S*\s",
            r"(?:a+)?a",
            r"(?:a+b)*a+b",
            r"[ab]{2,3}b",
            r"(?:\s+x=\S*)?\s+",
        ];
        let hays = [
            "",
            "1",
            "1.2.3.4",
            "1234.1.1.1",
            "1.2.3.4567",
            "12.34.56.789x",
            "1.2.3.",
            "1.2.3.4\n",
            "1.2.3.\n4",
            "255.255.255.255 ",
            "\u{e9}1.2.3.4",
            "1.2.3.4\u{e9}",
            "\u{661}.2.3.4",
            "pam_unix(sshd:auth): authentication failure;",
            "pam_(sshd:auth): authentication failure;",
            "pam_unix(sshd:auth):authentication failure;",
            "pam_unix(sshd:auth):\t\x1c authentication failure; x",
            "pam_unix(sshd:auth):\u{a0}authentication failure;",
            "Connection closed ",
            "Connection reset",
            "Connection closedX",
            "Disconnected ",
            "Disconnected\n",
            "Illegal user ",
            "invalid user x",
            "iNvalid user ",
            "\u{130}nvalid user ",
            "error: PAM: x",
            "fatal: ",
            "error: PAM:",
            "errorx",
            "error: PAM: PAM: ",
            " logname= uid=0 euid=0 tty=ssh ruser=",
            " uid=0 uid=0 uid=0 uid=0 uid=0 ruser=",
            " uid=0 uid=0 uid=0 uid=0 ruser=",
            " ruser=",
            "\truser=x",
            " logname ruser=",
            " uid=\u{e9} ruser=",
            " euid=0\n ruser=",
            "\n\nruser=",
            " tty= \u{a0}ruser=",
            "Accepted publickey for ",
            "Accepted  for ",
            "Accepted\u{e9} for",
            "Accepted \u{e9}x for ",
            "::ffff:1.2.3.4",
            "::fff:",
            "::ffffff:",
            "::fffffff:",
            "[",
            "aab",
            "aac",
            "abac",
            "aaabaac",
            "abababac",
            "ab",
            "a",
            "123\n",
            "123",
            "12a",
            "x12345",
            "x123",
            "ac",
            "abc",
            "ababa",
            "abab",
            "aabbc",
            "abbbc",
            "abc ",
            "  x=1 ",
        ];
        let mut walked = 0;
        for (src, want) in steps.iter().map(|s| (s, true)).chain(general.iter().map(|s| (s, false))) {
            let (fast, re) = piece(src);
            assert_eq!(fast.is_some(), want, "{src}: {fast:?}");
            let Some(fast @ Fast::Steps { ascii, .. }) = fast else { continue };
            for hay in hays {
                if ascii && !hay.is_ascii() {
                    continue;
                }
                walked += ends_equal(src, &fast, &re, hay);
            }
        }
        assert!(walked > 5_000, "{walked}");
    }

    /// A remembered walk ([`StepsMemo`]) answers as [`walk`] does, and so
    /// does [`walk_seen`]: pieces of steps (sshd's, and ones made to probe
    /// what an answer depends on: runs stopped by `max`, by a byte or by
    /// the end, choices tried past the end, `$`, `\z`, repetitions whose
    /// last body fails late) on random texts and on mutations of texts that
    /// match (one memo per piece through them all, so that consecutive
    /// haystacks share the bytes read, differ right after them or end
    /// there), from every position; without plain walks, and (as the chain
    /// does) with them after a miss of a short walk.
    #[test]
    fn remembered_walks_equal_walks() {
        use crate::test_util::{mutated_texts, random_texts};
        let pieces = [
            r"pam_[a-z]+\(sshd:auth\):\s+authentication failure;",
            r"(?:\s+(?:(?:logname|e?uid|tty)=\S*)){0,4}\s+ruser=",
            r"(?:Connection (?:closed|reset)|Disconnected) ",
            r"(?:(?:error|fatal): (?:PAM: )?)?",
            r"Accepted \w+ for ",
            r"(?:::f{4,6}:)?",
            r"a{2,4}b",
            r"a{0,3}",
            r"\d+$",
            r"\d+\n?",
            r"ab\Z",
            r"a+\Z",
            r"(?:ab|ac)\d*$",
            r"(?:x=\d*;){1,3}\Z",
            r"(?:\s+(?:logname|e?uid)=\S*){0,2}",
        ];
        let seeds = [
            "pam_unix(sshd:auth): authentication failure;",
            " logname= uid=0 euid=0 tty=ssh ruser= rhost=1.2.3.4",
            " uid=0 uid=0 uid=0 uid=0 uid=0 ruser=",
            "Connection closed by 1.2.3.4",
            "error: PAM: x",
            "Accepted publickey for x",
            "::ffff:1.2.3.4",
            "aaaab",
            "aaa",
            "123\n",
            "ab",
            "aaaa",
            "ac12",
            "x=1;x=22;x=;",
            " logname=a euid=",
            " logname= uid=0 euid=0 tty=ssh ruser= rhost=1.2.3.4  user=root",
            " logname=root uid=1000 euid=1000 tty=/dev/pts/0 ruser=root rhost=h",
            "pam_unix(sshd:auth): authentication failure; logname=",
        ];
        let mut next = xorshift(0x5eed_0f3e_307a_1c0du64);
        let alphabet = b"a bcx=;0123456789\n\t:(_)ruselognmidtyp";
        let mut hays = mutated_texts(&mut next, &seeds, alphabet, 3_000);
        hays.extend(random_texts(&mut next, alphabet, 1_000, 24));
        // runs of the same text cut at every length, and grown by a byte
        for seed in seeds {
            for k in 0..=seed.len() {
                hays.push(seed[..k].to_string());
                hays.push(format!("{}{}", &seed[..k], ['a', ' ', '1', '\n'][k % 4]));
            }
        }
        // neighbours share long texts: walked in turn from each position
        hays.sort();
        let longest = hays.iter().map(String::len).max().unwrap_or(0);
        let (mut compared, mut hits, mut eot_hits, mut long_hits) = (0, 0, 0, 0);
        for src in pieces {
            let (fast, _) = piece(src);
            let Some(Fast::Steps { steps, .. }) = fast else { panic!("{src}: not steps") };
            assert!(memo_ok(&steps), "{src}");
            for min in [0, MEMO_MIN] {
                let mut memo = StepsMemo { min, ..StepsMemo::default() };
                for pos in 0..=longest {
                    for hay in hays.iter().filter(|h| pos <= h.len()) {
                        let b = hay.as_bytes();
                        let want = walk(&steps, b, pos);
                        let mut seen = pos;
                        assert_eq!(walk_seen(&steps, b, pos, &mut seen), want, "{src:?} on {hay:?} at {pos}");
                        let hit = memo.skip == 0
                            && memo.valid
                            && text_at(b, pos, &memo.bytes)
                            && (!memo.eot || b.len() == pos + memo.bytes.len());
                        let was = (memo.bytes.clone(), memo.eot, memo.end);
                        assert_eq!(memo.walk(&steps, b, pos), want, "{src:?} on {hay:?} at {pos} after {was:?}");
                        hits += usize::from(hit);
                        eot_hits += usize::from(hit && was.1);
                        long_hits += usize::from(hit && min > 0);
                        compared += 1;
                    }
                }
            }
        }
        assert!(
            compared > 100_000 && hits > 10_000 && eot_hits > 500 && long_hits > 300,
            "{compared} {hits} {eot_hits} {long_hits}"
        );
        eprintln!(
            "remembered walks: {compared} compared, {hits} from the memo ({eot_hits} at the haystack's end, \
             {long_hits} with plain walks after short misses)"
        );
    }

    /// `Fast::Run` (a class repetition and literal text), also where the
    /// text can start inside the run (`scan`: found with memchr): its end
    /// is the general engine's anchored match end at every position.
    #[test]
    fn class_runs_equal_general_engine() {
        let pats = [
            r"[a-z]+abc",
            r"[a-z]+?abc",
            r"[a-z]*a",
            r"[a-z]*?a",
            r"[ab]{2,5}ab",
            r"[ab]{2,5}?ab",
            r"\S+ from",
            r"\S+x",
            r"\S+?x",
            r"\w{0,3}ww",
            r"\d+\.",
            r"[^:]+: ",
            r"[^:]+a:",
            r".+?ab",
            r".{2,}ab",
            r"[a-c]{1,}cc",
            // classes that lack at most three ASCII bytes (`stop`: memchr)
            r"[^:]+ from ",
            r"[^:]+? from ",
            r"[^:]{2,5}a",
            r"[^:,]+,",
            r"[^:,]*?a",
            r"[^:,;]+;",
            r"[^:,;]{0,3}",
            r"[^\n]+b",
            r".+ab",
            r".*",
            r"[\s\S]+b",
            r"[\s\S]{1,4}?a",
        ];
        let hays = [
            "",
            "a",
            "abc",
            "aabc",
            "abcabc",
            "abcabcx",
            "xabcabc",
            "ab",
            "abab",
            "ababab",
            "bbbbbbab",
            "bab",
            "aaaaaaaaaaaaaaaaaaaaaaab",
            "root from 1.2.3.4 from x",
            "rootx xx",
            "xxxx",
            "x",
            "www",
            "wwwww",
            "wwwwww ww",
            "12.34.",
            "1.",
            "a: b: c",
            "aa:a: ",
            ":a:",
            "abab\nab",
            "ccc",
            "cccc cc",
            "\u{e9}abcab",
            "ab\u{e9}ab",
            "a\u{e9}:a: ",
            "root from 1.2.3.4 port 22 ssh2",
            "a from b: from c",
            "a,b;c:d from ,; from ",
            "ab\nab from \n from ab",
        ];
        // and random haystacks of the bytes the patterns care about
        let mut rng = xorshift(0x5eed_c1a5);
        let alphabet = b"ab:,; \nfromx";
        let random: Vec<String> = (0..300)
            .map(|_| {
                let len = rng(24) as usize;
                (0..len).map(|_| char::from(alphabet[rng(alphabet.len() as u64) as usize])).collect()
            })
            .collect();
        let mut compared = 0;
        let mut stops = 0;
        for src in pats {
            let (fast, re) = piece_as(src, |nodes, names| fast_special(nodes, &[], None, names, AOPTS));
            let Some(fast @ Fast::Run { stop, .. }) = fast else { panic!("{src}: {fast:?}") };
            stops += usize::from(stop.is_some());
            for hay in hays.iter().map(|h| h.to_string()).chain(random.iter().cloned()).filter(|h| h.is_ascii()) {
                compared += ends_equal(src, &fast, &re, &hay);
            }
        }
        assert!(compared > 20_000, "{compared}");
        // the memchr end of a run is exercised (`[^:]`, `[^:,]`, `[^:,;]`, `.`, all ASCII)
        assert!(stops >= 12, "{stops}");
    }

    /// The guard's byte table says exactly what its 128-bit set says, for
    /// every byte (none from 128 on), and the literal check still applies.
    #[test]
    fn guard_table_equals_set() {
        let set: u128 = (1u128 << b'e') | (1u128 << b'f') | (1u128 << 0) | (1u128 << 127);
        let g = Guard::new(set, &[]);
        for c in 0..=255u8 {
            let by_set = c < 128 && set & (1u128 << c) != 0;
            assert_eq!(g.skips(&[c], 0), !by_set, "{c}");
            assert_eq!(g.skips(&[b'x', c], 1), !by_set, "{c}");
        }
        assert!(g.skips(b"e", 1));
        let lits: Vec<Box<[u8]>> = vec![b"error".to_vec().into(), b"fatal".to_vec().into()];
        let g = Guard::new(set, &lits);
        assert!(!g.skips(b"error: x", 0));
        assert!(!g.skips(b"xfatal", 1));
        assert!(g.skips(b"errxr", 0));
        assert!(g.skips(b"fata", 0));
    }

    /// A greedy `(?:X)?` with groups runs as `(?:X|)` (X its own chain, the
    /// empty branch, the guard), and a branch whose chain failed is skipped
    /// when literal text it needs is missing: wherever the chain gets
    /// through, its end and every group's span are the full engine's
    /// (anchored at the start).
    #[test]
    fn optional_group_as_alternation_equals_full_engine() {
        let pats = [
            r"\Aby(?: (?:invalid|authenticating) user (?P<user>\S+|.*?))? (?P<host>\S+) port",
            r"\Ax(?:\s+user=(?P<user>\S*))?(?: (?P<tail>y+))?$",
            r"\Ax(?:\s+user=(?P<user>\S*))?\s+rhost=(?P<h>\S+)",
            r"\A(?:(?P<a>a+)b)?a+c",
            r"\A(?:(?P<a>ab)|(?P<b>a))?b(?P<c>.*)",
            r"\A(?:(?P<u>\w+)@)?(?P<h>\w+)",
            r"\A(?:(?P<u>.*?)x)?(?P<r>.*)",
            r"\Aa(?:(?P<g>b)c|(?P<h>bd)e?)?(?P<t>\w*)",
            // a failed branch chain is skipped when literal text it needs is missing
            r"\AFailed \S+ for (?:(?P<u>\S+) from (?P<h>\S+)(?: port \d+)?: |(?P<v>[^:]+) from (?P<w>\S+).*$)",
            r"\AFailed \S+ for (?:(?P<u>\S+) from (?P<h>\S+)(?: port \d+)?: |(?P<v>.+?) from (?P<w>\S+).*$)",
        ];
        let hays = [
            "",
            "by invalid user bob 1.2.3.4 port 22",
            "by authenticating user  1.2.3.4 port 22",
            "by authenticating user bob bob 1.2.3.4 port",
            "by invalid user  port",
            "by invalid user 1.2.3.4 port",
            "by invalid usr bob 1.2.3.4 port",
            "by invalid user",
            "by 1.2.3.4 port 22",
            "by  port",
            "by invalid user b\u{e9}b 1.2.3.4 port",
            "by invalid user \u{e9} h\u{e9} port",
            "by invalid user\u{a0}bob 1.2.3.4 port",
            "x user=root y",
            "x user= yy",
            "x\tuser=r\u{e9}ot rhost=h",
            "x user=root rhost=1.2.3.4",
            "x  user=",
            "x user",
            "x rhost=a",
            "x user=a\nrhost=b",
            "x\u{a0}user=a rhost=b",
            "x\u{85}user=a rhost=b",
            "aabaac",
            "aac",
            "abac",
            "ab",
            "abb",
            "bx",
            "a",
            "bob@host",
            "@host",
            "b\u{f6}b@h\u{f6}st",
            "host",
            "a\u{661}@x",
            "axbx",
            "x",
            "\u{e9}x\u{e9}",
            "abc",
            "abde",
            "abdz",
            "abcd",
            "ab\u{e9}",
            "ax",
            "Failed password for root from 1.2.3.4 port 22 ssh2",
            "Failed password for root from 1.2.3.4 port 22: x",
            "Failed password for root from 1.2.3.4: ",
            "Failed password for root from 1.2.3.4:: ",
            "Failed password for a: b from c",
            "Failed password for a b from c port 1: ",
            "Failed password for a from b from c: ",
            "Failed password for a from b port x: ",
            "Failed password for r\u{e9}t from h\u{e9} port 22: ",
            "Failed password for root from 1.2.3.4 port 22 ssh2\n: ",
        ];
        let (mut alts, mut compared) = (0, 0);
        for src in pats {
            let parsed = pyre::parse(src, true).unwrap();
            let mut text = String::new();
            emit::emit(&parsed.node, &parsed.names, OPTS, &mut text);
            let re = build(&text).unwrap();
            let segs = SegmentsSrc::new(&parsed.node, &parsed.names, "", OPTS).unwrap().compile().unwrap();
            alts += segs.parts.iter().filter(|p| matches!(p, Part::Alt(b, _) if b.len() == 2)).count();
            let mut scratch = segs.scratch();
            let mut caps = re.create_captures();
            for hay in hays {
                for p in (0..=hay.len()).filter(|&p| hay.is_char_boundary(p)) {
                    let hay = &hay[p..];
                    let n = parsed.names.len();
                    compared += usize::from(chain_agrees(src, &segs, &re, n, hay, None, &mut scratch, &mut caps));
                }
            }
        }
        assert!(alts >= pats.len(), "{alts}");
        assert!(compared > 500, "{compared}");
    }

    /// The hand walk over a piece's DFA gives exactly the DFA's own anchored
    /// search (`try_search_fwd` from `pos` with the byte before as
    /// look-behind), at every position: sshd's pieces (as built for the
    /// sshd filter, the prefregex's `mlfid` among them), pieces with
    /// look-around, on tricky, sshd-like and random text and random bytes.
    #[test]
    fn dfa_walk_equals_dfa_search() {
        let mut texts = vec![
            r"(?-u)(?P<ip6>(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|:))",
            r"(?-u)(?:::f{4,6}:)?(?P<ip4>(?:[0-9]{1,3}\.){3}[0-9]{1,3})",
            r"(?-u)(?:::f{4,6}:)?((?:[0-9]{1,3}\.){3}[0-9]{1,3})",
            r"(?-u)(?: (?:port [0-9]+|on [^\x{9}-\x{D}\x{1C}-\x{20}]+|\[preauth\])){0,3}[\x{9}-\x{D}\x{1C}-\x{20}]*(?m:$)",
            r"(?-u)((?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|:))",
            r"(?-u)(?P<user>[^\x{9}-\x{D}\x{1C}-\x{20}]+|.*?)",
            r"(?-u)(?: (?:port [0-9]+|on [^\x{9}-\x{D}\x{1C}-\x{20}]+)){0,2}(?: ssh[0-9]*)?: ",
            r"(?-u)(?: (?:port [0-9]+|on [^\x{9}-\x{D}\x{1C}-\x{20}]+)){0,2}(?: ssh[0-9]*)?(?:(?:(?:(?:f|m|o|r|[^ fmor\x{A}]|(?: (?:(?: |(?:f(?: |(?:r(?: |(?:o )))))))*(?:m|o|r|[^ fmor\x{A}]|(?:f(?:f|m|o|[^ fmor\x{A}]|(?:r(?:f|m|r|[^ fmor\x{A}]|(?:o(?:f|o|r|[^ fmor\x{A}]|(?:m(?:f|m|o|r|[^ fmor\x{A}]))))))))))))*(?:|(?: (?:(?: |(?:f(?: |(?:r(?: |(?:o )))))))*(?:|(?:f(?:|(?:r(?:|(?:o(?:|(?:m))))))))))))(?m:$)",
            r"(?-u)\[?(?:(?:::f{4,6}:)?(?P<ip4>(?:[0-9]{1,3}\.){3}[0-9]{1,3})|(?P<ip6>(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|:)))\]?",
            r"(?-u)(publickey)",
            r"(?-u)(invalid user )(?:(([^\x{9}-\x{D}\x{1C}-\x{20}]+)) from (?:\[?(?:(?:::f{4,6}:)?((?:[0-9]{1,3}\.){3}[0-9]{1,3})|((?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|:)))\]?|([0-9A-Za-z_\-\.\^_]*[0-9A-Za-z_]))(?: (?:port [0-9]+|on [^\x{9}-\x{D}\x{1C}-\x{20}]+)){0,2}(?: ssh[0-9]*)?: |((?:(?:(?:f|m|o|r|[^ fmor\x{A}]|(?: (?:(?: |(?:f(?: |(?:r(?: |(?:o )))))))*(?:m|o|r|[^ fmor\x{A}]|(?:f(?:f|m|o|[^ fmor\x{A}]|(?:r(?:f|m|r|[^ fmor\x{A}]|(?:o(?:f|o|r|[^ fmor\x{A}]|(?:m(?:f|m|o|r|[^ fmor\x{A}]))))))))))))*(?:|(?: (?:(?: |(?:f(?: |(?:r(?: |(?:o )))))))*(?:|(?:f(?:|(?:r(?:|(?:o)))))))))) from (?:\[?(?:(?:::f{4,6}:)?((?:[0-9]{1,3}\.){3}[0-9]{1,3})|((?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|:)))\]?|([0-9A-Za-z_\-\.\^_]*[0-9A-Za-z_]))(?: (?:port [0-9]+|on [^\x{9}-\x{D}\x{1C}-\x{20}]+)){0,2}(?: ssh[0-9]*)?(?:(?:(?:(?:f|m|o|r|[^ fmor\x{A}]|(?: (?:(?: |(?:f(?: |(?:r(?: |(?:o )))))))*(?:m|o|r|[^ fmor\x{A}]|(?:f(?:f|m|o|[^ fmor\x{A}]|(?:r(?:f|m|r|[^ fmor\x{A}]|(?:o(?:f|o|r|[^ fmor\x{A}]|(?:m(?:f|m|o|r|[^ fmor\x{A}]))))))))))))*(?:|(?: (?:(?: |(?:f(?: |(?:r(?: |(?:o )))))))*(?:|(?:f(?:|(?:r(?:|(?:o(?:|(?:m))))))))))))(?m:$))",
            r"(?-u)(?P<user>[^\x{9}-\x{D}\x{1C}-\x{20}]+|.*?) from ",
            r"(?-u)(?P<mlfid>(?:\[\])?[\x{9}-\x{D}\x{1C}-\x{20}]*(?:<[^\.]+\.[^\.]+>[\x{9}-\x{D}\x{1C}-\x{20}]+)?(?:[^\x{9}-\x{D}\x{1C}-\x{20}]+[\x{9}-\x{D}\x{1C}-\x{20}]+)?(?:kernel:[\x{9}-\x{D}\x{1C}-\x{20}]?\[ *[0-9]+\.[0-9]+\]:?[\x{9}-\x{D}\x{1C}-\x{20}]+)?(?:@vserver_[^\x{9}-\x{D}\x{1C}-\x{20}]+[\x{9}-\x{D}\x{1C}-\x{20}]+)?(?:(?:(?:\[[0-9]+\])?:[\x{9}-\x{D}\x{1C}-\x{20}]+[\[\(]?sshd(?:\([^\x{9}-\x{D}\x{1C}-\x{20}]+\))?[\]\)]?:?|[\[\(]?sshd(?:\([^\x{9}-\x{D}\x{1C}-\x{20}]+\))?[\]\)]?:?(?:\[[0-9]+\])?:?)[\x{9}-\x{D}\x{1C}-\x{20}]+)?(?:\[ID [0-9]+ [^\x{9}-\x{D}\x{1C}-\x{20}]+\][\x{9}-\x{D}\x{1C}-\x{20}]+)?)",
            r"(?-u)(?P<dns>[0-9A-Za-z_\-\.\^_]*[0-9A-Za-z_])",
            r"(?-u)(?:(?: (?:port [0-9]+|on [^\x{9}-\x{D}\x{1C}-\x{20}]+|\[preauth\])){0,3}[\x{9}-\x{D}\x{1C}-\x{20}]*|[\x{9}-\x{D}\x{1C}-\x{20}]*)(?m:$)",
            r"(?-u)(?: (?:port [0-9]+|on [^\x{9}-\x{D}\x{1C}-\x{20}]+)){0,2}:[\x{9}-\x{D}\x{1C}-\x{20}]*3: .*: Auth fail(?: (?:port [0-9]+|on [^\x{9}-\x{D}\x{1C}-\x{20}]+|\[preauth\])){0,3}[\x{9}-\x{D}\x{1C}-\x{20}]*(?m:$)",
            r"(?-u)(?: (?:port [0-9]+|on [^\x{9}-\x{D}\x{1C}-\x{20}]+)){0,2}:[\x{9}-\x{D}\x{1C}-\x{20}]*11:",
            r"(?-u)(?: (?:port [0-9]+|on [^\x{9}-\x{D}\x{1C}-\x{20}]+)){0,2}(?: ssh[0-9]*)?(?: (?:port [0-9]+|on [^\x{9}-\x{D}\x{1C}-\x{20}]+|\[preauth\])){0,3}[\x{9}-\x{D}\x{1C}-\x{20}]*(?m:$)",
            r"(?-u)((?:(?:(?:f|m|o|r|[^ fmor\x{A}]|(?: (?:(?: |(?:f(?: |(?:r(?: |(?:o )))))))*(?:m|o|r|[^ fmor\x{A}]|(?:f(?:f|m|o|[^ fmor\x{A}]|(?:r(?:f|m|r|[^ fmor\x{A}]|(?:o(?:f|o|r|[^ fmor\x{A}]|(?:m(?:f|m|o|r|[^ fmor\x{A}]))))))))))))*(?:|(?: (?:(?: |(?:f(?: |(?:r(?: |(?:o )))))))*(?:|(?:f(?:|(?:r(?:|(?:o)))))))))) from ",
            r"(?-u) not allowed because not listed in AllowUsers(?: (?:port [0-9]+|on [^\x{9}-\x{D}\x{1C}-\x{20}]+|\[preauth\])){0,3}[\x{9}-\x{D}\x{1C}-\x{20}]*(?m:$)",
        ];
        for t in [
            r"(?m:$)",
            r"(?m:^)",
            r"\b",
            r"\B",
            r"\A",
            r"\z",
            r"\b\w+\b",
            r"a\B\w*",
            r"(?m:^)\d+(?m:$)",
            r"(?Rm:^)x|(?Rm:$)",
            r"\d+(?m:$)\n?",
            r"\Aab|b",
            r"a*?",
            r"(?:a|ab)(?:c|bcd)",
            r"(?:ab|a)+b?",
            r"[ab]{2,3}c|a",
            r"\s*(?:port \d+)?\s*(?m:$)",
            r"\b(?:root|admin)\b|\B\d",
            r"[^a]",
            r"",
        ] {
            texts.push(t);
        }
        let mut next = xorshift(0x51ed_270b_2f3a_8c4du64);
        let mut hays: Vec<Vec<u8>> = [
            "",
            "\n",
            "a",
            "ab",
            "abcd",
            "aab\nab",
            "1.2.3.4",
            "1.2.3.4567",
            "::ffff:1.2.3.4]",
            "[::1] port 22",
            "fe80::1:2 port 22 [preauth]",
            "root from 1.2.3.4 port 22 ssh2: x",
            " port 22 on eth0 [preauth]  \n",
            "\r\n x\r",
            " port 1 port 2 port 3 port 4",
            "foo from bar from baz",
            "from ",
            " ssh2: ",
            ":11: Bye Bye [preauth]",
            ": 3: x: Auth fail [preauth]",
            " not allowed because not listed in AllowUsers",
            "sshd[123]: ",
            "kernel: [ 12.34]: sshd(pam)[1]: ",
            "<a.b> host sshd[1]: [ID 12 auth.info] ",
            "@vserver_x h sshd: ",
            "publickey",
            "user with spaces from 1.2.3.4",
            "invalid user x from 1.2.3.4 port 1 ssh2: ",
            "invalid user  from host.example.org",
            "Mar  2 00:00:48 bastion sshd[18287]: Invalid user debian from 36.108.238.51 port 23588",
            "Mar  2 00:00:59 bastion sshd[18361]: Failed password for invalid user hadoop from 36.108.238.51 port 25800 ssh2",
            "Mar  2 00:00:48 bastion sshd[18287]: Received disconnect from 36.108.238.51 port 23588:11: Bye Bye [preauth]",
            "Mar  2 00:00:48 bastion sshd[18287]: Disconnected from invalid user debian 36.108.238.51 port 23588 [preauth]",
            "Mar  2 00:00:59 bastion sshd[18361]: Connection closed by invalid user hadoop 36.108.238.51 port 25800 [preauth]",
            "Mar  2 00:02:41 bastion sshd[18477]: PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=144.73.7.193  user=git",
            "Mar  2 00:03:41 bastion sshd[18769]: User root from 94.237.199.19 not allowed because not listed in AllowUsers",
            "Mar  2 00:03:00 bastion sshd[18510]: error: maximum authentication attempts exceeded for root from 144.73.7.193 port 18793 ssh2 [preauth]",
            "Mar  2 00:00:00 bastion sshd[18262]: Accepted publickey for bob from 83.145.206.0 port 61199 ssh2: ED25519 SHA256:9vdf6IvecwQgzn9",
            "Mar  4 10:11:09 bastion sshd[376823]: Failed password for invalid user administrator from 2001:db8::1 port 37346 ssh2",
            "Mar  3 20:45:16 bastion sshd[296643]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=42.163.156.143  user=root",
            "1.2.3.4\u{e9}",
            "\u{e9}root from",
        ]
        .iter()
        .map(|h| h.as_bytes().to_vec())
        .collect();
        let pieces: [&[u8]; 16] = [
            b"1",
            b"255.",
            b".",
            b"::",
            b"f",
            b"ffff",
            b":",
            b" ",
            b"port ",
            b"on ",
            b"from ",
            b"[preauth]",
            b"\n",
            b"ssh2",
            b"root",
            b": ",
        ];
        const MIX: &[u8] = b" \t\r\n.:[]()abfmor019Xz_-";
        for _ in 0..400 {
            let mut h = Vec::new();
            for _ in 0..next(12) {
                match next(3) {
                    0 => h.extend_from_slice(pieces[next(pieces.len() as u64) as usize]),
                    1 => h.push(MIX[next(MIX.len() as u64) as usize]),
                    _ => h.push(next(128) as u8),
                }
            }
            hays.push(h);
        }
        for _ in 0..100 {
            hays.push((0..next(40)).map(|_| next(256) as u8).collect());
        }
        let mut walked = 0;
        let mut matched = 0;
        for t in &texts {
            let text = if t.starts_with("(?-u)") { t.to_string() } else { format!("(?-u){t}") };
            let dfa = build_dfa(&text).unwrap_or_else(|| panic!("{text}"));
            let walk = Walk::new(&dfa).unwrap_or_else(|| panic!("{text}"));
            for h in &hays {
                for pos in 0..=h.len() {
                    let input = Input::new(h).span(pos..h.len()).anchored(Anchored::Yes);
                    let want = dfa.try_search_fwd(&input).map(|m| m.map(|m| m.offset())).map_err(|_| ());
                    let got = walk.find(h, pos);
                    assert_eq!(got, want, "{text} on {:?} at {pos}", String::from_utf8_lossy(h));
                    walked += 1;
                    matched += usize::from(matches!(got, Ok(Some(_))));
                }
            }
        }
        assert!(matched > walked / 10, "{matched} of {walked}");
        // from the start with a memo kept across haystacks that share their
        // first words (cut anywhere, with another's tail), on every DFA
        let mut shared = Vec::new();
        for (k, h) in hays.iter().enumerate() {
            let other = &hays[(k * 7 + 3) % hays.len()];
            for cut in [7, 8, 9, 15, 16, 17, 24, 40, 47, 48, 49, 56, h.len()] {
                let mut v = h[..cut.min(h.len())].to_vec();
                v.extend_from_slice(&other[other.len() / 3..]);
                shared.push(v);
            }
            let mut long: Vec<u8> = h.iter().copied().cycle().take(70).collect();
            shared.push(long.clone());
            long.truncate(50);
            shared.push(long);
        }
        let quitting = [
            dense::Builder::new()
                .syntax(regex_automata::util::syntax::Config::new().utf8(false).unicode(false))
                .configure(dense::Config::new().start_kind(StartKind::Anchored).quit(b'\n', true))
                .build(r"(?-u)[a-z]+ \d+|[a-z]+\s|")
                .unwrap(),
            dense::Builder::new()
                .configure(dense::Config::new().start_kind(StartKind::Anchored).unicode_word_boundary(true))
                .build(r"\b\w+|\B")
                .unwrap(),
        ];
        let dfas: Vec<Dfa> = texts
            .iter()
            .map(|t| if t.starts_with("(?-u)") { t.to_string() } else { format!("(?-u){t}") })
            .map(|t| build_dfa(&t).unwrap())
            .chain(quitting.iter().cloned())
            .collect();
        let mut resumed = 0;
        for dfa in &dfas {
            let walk = Walk::new(dfa).unwrap();
            let mut memo = WalkMemo::default();
            for h in &shared {
                let input = Input::new(h).anchored(Anchored::Yes);
                let want = dfa.try_search_fwd(&input).map(|m| m.map(|m| m.offset())).map_err(|_| ());
                resumed += usize::from(memo.n > 0 && h.get(..8).is_some_and(|w| w == memo.words[0].to_le_bytes()));
                assert_eq!(walk.find_start(h, &mut memo), want, "{:?}", String::from_utf8_lossy(h));
                assert_eq!(walk.find(h, 0), want, "{:?}", String::from_utf8_lossy(h));
            }
        }
        assert!(resumed > 1000, "{resumed}");
        // DFAs that quit (on `\n`; on non-ASCII bytes for Unicode word
        // boundaries, also as the byte before): the walk says so where the
        // search does
        for dfa in &quitting {
            let walk = Walk::new(dfa).unwrap();
            let mut quits = 0;
            for h in &hays {
                for pos in 0..=h.len() {
                    let input = Input::new(h).span(pos..h.len()).anchored(Anchored::Yes);
                    let want = dfa.try_search_fwd(&input).map(|m| m.map(|m| m.offset())).map_err(|_| ());
                    assert_eq!(walk.find(h, pos), want, "{:?} at {pos}", String::from_utf8_lossy(h));
                    quits += usize::from(want.is_err());
                }
            }
            assert!(quits > 100, "{quits}");
        }
    }

    /// Every alternation branch of a chain, nested ones too: its text and chain.
    fn branches_of<'s>(segs: &'s Segments, out: &mut Vec<(&'s str, &'s Segments)>) {
        for p in &segs.parts {
            if let Part::Alt(b, _) = p {
                for (re, _, chain) in b {
                    out.push((&re.text, chain));
                    branches_of(chain, out);
                }
            }
        }
    }

    /// A failed branch chain is skipped without the branch's DFA only when
    /// the chain's pieces prove it cannot match ([`Segments::cannot_match`]):
    /// wherever it says so, the branch as a whole (the `regex` crate, anchored
    /// at the position, with the haystack around it) has no match; on inputs
    /// where the chain fails but the branch matches (a piece with several
    /// parses took the wrong one: `a*`, `a\d*` at a piece's end, `(xy)?`,
    /// `[^:]+ from`, `.*?`), it does not. Where none of a branch's lead
    /// texts is at the position, it has no match either. The chains with the skips then
    /// give the whole pattern's captures.
    fn has_host(segs: &Segments) -> bool {
        segs.parts.iter().any(|p| match p {
            Part::Seg(s) => matches!(s.fast, Some(Fast::Host { .. })),
            Part::Alt(b, _) => b.iter().any(|(_, _, c)| has_host(c)),
        })
    }

    /// Chains with fail2ban's `<HOST>` / `<ADDR>` (expanded as fail2ban does,
    /// compiled as the pattern compiler does) with the scanner segment
    /// ([`Fast::Host`]) and without it (nested chains per branch): where both
    /// get through they agree, the scanner's chain gets through wherever the
    /// other does, and every chain that gets through equals the full engine
    /// (span and groups), on address-like texts in context (trailing ports,
    /// brackets, `-\d+` that backtracks into a DNS name, `:\d+` into an
    /// IPv6 address, non-ASCII text: the segment's capture search).
    #[test]
    fn host_segment_equals_general_chain_and_full_engine() {
        let pats = [
            r"^Failed password for <F-USER>\S+</F-USER> from <HOST>(?: (?:port \d+|on \S+)){0,2}(?: ssh\d*)?$",
            r"^Received disconnect from <HOST>(?: (?:port \d+|on \S+)){0,2}:\s*11:",
            r"^SSH: Server;Ltype: (?:Authname|Version|Kex);Remote: <HOST>-\d+;[A-Z]\w+:",
            r"^refused connect from \S+ \(<HOST>\)",
            r"^Connection from <ADDR> port \d+",
            r"^x <HOST>\]",
            r"^x <HOST>:\d+$",
            r"^<HOST>$",
            r"^(?:from )?<HOST> \[preauth\]\s*$",
            r"^(?:by|from) (?:(?P<u>\S+) )?<HOST>(?: port \d+)?$",
            r"^a (?:<ADDR>|<F-X>\S+</F-X>) b",
        ];
        let templates = [
            "Failed password for root from ",
            "Received disconnect from ",
            "SSH: Server;Ltype: Kex;Remote: ",
            "refused connect from x (",
            "Connection from ",
            "x ",
            "from ",
            "by u ",
            "a ",
            "",
        ];
        let suffixes = [
            "",
            " port 22",
            " port 22 ssh2",
            ":22",
            "]",
            "-22;Kex:",
            ")",
            " [preauth]",
            " port 22:11:",
            " b",
            "\u{e9}",
            "\n",
        ];
        let mut hosts: Vec<String> = host::tests::texts().into_iter().take(90).collect();
        let mut next = xorshift(0x0123_4567_89ab_cdefu64);
        let alphabet = b"0123456789abcdefABF:.[]-_^ ()";
        for _ in 0..150 {
            let n = next(18) as usize;
            hosts.push((0..n).map(|_| alphabet[next(alphabet.len() as u64) as usize] as char).collect());
        }
        hosts.push("h\u{e9}st".into());
        let (mut agreed, mut fast_only) = (0, 0);
        for src in pats {
            let exp = super::super::tags::expand(src, true);
            let (fast, general, re, n) = two_chains(&exp.text, &HOST_OFF);
            assert!(has_host(&fast) && !has_host(&general), "{src}");
            let (mut fs, mut gs) = (fast.scratch(), general.scratch());
            let mut caps = re.create_captures();
            let before = agreed;
            for t in templates {
                for h in &hosts {
                    for sfx in suffixes {
                        let hay = format!("{t}{h}{sfx}");
                        let mut a = vec![None; n];
                        let mut b = vec![None; n];
                        let ea = fast.run(&hay, hay.is_ascii(), None, 0, &mut fs, &mut a);
                        let eb = general.run(&hay, hay.is_ascii(), None, 0, &mut gs, &mut b);
                        match (ea, eb) {
                            (Some(x), Some(y)) => assert_eq!((x, &a), (y, &b), "{src:?} on {hay:?}"),
                            (None, Some(_)) => panic!("{src:?} on {hay:?}: only the general chain gets through"),
                            (Some(_), None) => fast_only += 1,
                            (None, None) => {}
                        }
                        if chain_agrees(src, &fast, &re, n, &hay, None, &mut fs, &mut caps) {
                            agreed += 1;
                        }
                    }
                }
            }
            assert!(agreed - before >= 10, "{src}: {}", agreed - before);
        }
        assert!(agreed > 2_000, "{agreed}");
        eprintln!("host chains: {agreed} through and equal to the full engine, {fast_only} only with the scanner");
    }

    /// A `(?m:$)` part right after a greedy `(.*)`/`(.+)` with no text after
    /// it is dropped: the chains without it give the same end and groups as
    /// the chains with it, and as the full engine, on haystacks with `\n`
    /// here and there (none, in the middle, last, doubled), `\r`, empty
    /// content and non-ASCII text; not after a lazy one, one with text after
    /// it, or before other assertions.
    #[test]
    fn dollar_after_dots_is_dropped() {
        let pats = [
            (r"^(?P<a>x)?(?P<c>.+)$", true),
            (r"^ab(?P<c>.*)$", true),
            (r"^(?P<m>\S+) (?:(?:error|fatal): (?:PAM: )?)?(?P<c>.+)$", true),
            (r"^ab(?P<c>.+)$(?P<d>\n?)", true),
            (r"^ab(?P<c>.+?)$", false),
            (r"^ab(?P<c>.+)x$", false),
            (r"^ab(?P<c>.+)\Z", false),
        ];
        let hays = [
            "",
            "ab",
            "abc",
            "ab\n",
            "abc\n",
            "abc\ndef",
            "abc\n\n",
            "ab\r\n",
            "x",
            "xy\n",
            "xab",
            "abx",
            "abx\n",
            "m error: PAM: hi",
            "m fatal: x\n",
            "m \n",
            "m  ",
            "ab\u{e9}\n",
            "ab\u{e9}",
            "\u{e9}\n\u{e9}",
            "abc\nx",
        ];
        let mut through = 0;
        for (src, dropped) in pats {
            let (lean, full, re, n) = two_chains(src, &KEEP_ASSERTS);
            // (a first `\A` part is dropped too)
            assert_eq!(lean.parts.len() + usize::from(dropped) + usize::from(lean.at_start), full.parts.len(), "{src}");
            let (mut ls, mut fs) = (lean.scratch(), full.scratch());
            let mut caps = re.create_captures();
            for h in hays {
                for nl in [None, Some(h.find('\n').unwrap_or(h.len()))] {
                    let mut a = vec![None; n];
                    let mut b = vec![None; n];
                    let ea = lean.run(h, h.is_ascii(), nl, 0, &mut ls, &mut a);
                    let eb = full.run(h, h.is_ascii(), nl, 0, &mut fs, &mut b);
                    assert_eq!((ea, &a), (eb, &b), "{src:?} on {h:?}");
                    if chain_agrees(src, &lean, &re, n, h, nl, &mut ls, &mut caps) {
                        through += 1;
                    }
                }
            }
        }
        assert!(through > 20, "{through}");
    }

    /// The chain of `src` as compiled, and as compiled with the test switch
    /// `off` on (a fast path left out: `HOST_OFF`; parts the compiler may
    /// drop kept: `KEEP_ASSERTS`), the full engine's regex and the number of
    /// groups.
    fn two_chains(
        src: &str,
        off: &'static std::thread::LocalKey<std::cell::Cell<bool>>,
    ) -> (Segments, Segments, meta::Regex, usize) {
        let parsed = pyre::parse(src, false).unwrap();
        let node = emit::simplify_zero_width_repeats(emit::elide_lookbehinds(parsed.node.clone(), None));
        let mut text = String::new();
        emit::emit(&node, &parsed.names, OPTS, &mut text);
        let re = build(&text).unwrap();
        let on = SegmentsSrc::new(&node, &parsed.names, "", OPTS).unwrap().compile().unwrap();
        off.with(|c| c.set(true));
        let switched = SegmentsSrc::new(&node, &parsed.names, "", OPTS).unwrap().compile().unwrap();
        off.with(|c| c.set(false));
        (on, switched, re, parsed.names.len())
    }

    /// A first part that is only `\A` is dropped and checked as the chain's
    /// start: the chains without it give the same end and groups as the
    /// chains with it, from every start (run, flat run, `cannot_match`), and
    /// the full engine's, on haystacks where the rest matches at 0 and
    /// elsewhere.
    #[test]
    fn start_part_is_a_check() {
        let pats = [
            r"\A(?P<a>x)?(?P<c>.+)$",
            r"\A(?P<m>[^ ]+) (?:(?:error|fatal): (?:PAM: )?)?(?P<c>.+)$",
            r"\A(?:(?P<a>a)|(?P<b>b))c",
            r"\A(?P<a>ab)",
        ];
        let hays =
            ["", "x", "xy", "ab", "abc", "ac", "bc", "cbc", "m error: x", " m x", "m x\n", "aab", "xab\n", "\u{e9}ab"];
        let mut through = 0;
        for src in pats {
            let (lean, full, re, n) = two_chains(src, &KEEP_ASSERTS);
            assert!(lean.at_start && !full.at_start && lean.parts.len() < full.parts.len(), "{src}");
            let (mut ls, mut fs) = (lean.scratch(), full.scratch());
            let mut caps = re.create_captures();
            for h in hays {
                for start in (0..=h.len()).filter(|&p| h.is_char_boundary(p)) {
                    for nl in [None, Some(h.find('\n').unwrap_or(h.len()))] {
                        let mut a = vec![None; n];
                        let mut b = vec![None; n];
                        let ea = lean.run(h, h.is_ascii(), nl, start, &mut ls, &mut a);
                        let eb = full.run(h, h.is_ascii(), nl, start, &mut fs, &mut b);
                        assert_eq!((ea, &a), (eb, &b), "{src:?} on {h:?} from {start}");
                        if lean.flat && full.flat {
                            let mut a = vec![None; n];
                            let mut b = vec![None; n];
                            let fa = lean.run_flat(h, h.is_ascii(), nl, start, &mut a);
                            let fb = full.run_flat(h, h.is_ascii(), nl, start, &mut b);
                            assert_eq!((fa, &a), (fb, &b), "{src:?} on {h:?} from {start}: flat");
                        }
                        assert_eq!(
                            lean.cannot_match(h, h.is_ascii(), nl, start),
                            full.cannot_match(h, h.is_ascii(), nl, start),
                            "{src:?} on {h:?} from {start}: cannot_match"
                        );
                    }
                }
                if chain_agrees(src, &lean, &re, n, h, None, &mut ls, &mut caps) {
                    through += 1;
                }
            }
        }
        assert!(through > 8, "{through}");
    }

    #[test]
    fn alternation_proofs_equal_full_engine() {
        let pats = [
            // sshd's Failed line, its conditionals as alternations
            r"\AFailed (?:(?P<nf>publickey)|\S+) for (?:(?P<inv>invalid user )(?:(?P<u>\S+) from (?P<h>\S+)(?: port \d+)?: |(?P<v>.*?) from (?P<w>\S+)$)|(?:(?P<u2>\S+) from (?P<h2>\S+): |(?P<v2>[^:]+) from (?P<w2>\S+)$))",
            r"\Afrom (?:\[?(?:(?:::f{4,6}:)?(?P<ip4>(?:\d{1,3}\.){3}\d{1,3})|(?P<ip6>(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|:)))\]?|(?P<dns>[\w\-.^_]*\w))(?: port \d+)?",
            r"\A(?:(?:::f{4,6}:)?(?P<ip4>(?:\d{1,3}\.){3}\d{1,3})|(?P<o>\S+))",
            // a run of several parses before the failing piece
            r"\A(?:(?P<a>a*)(?P<b>ab)|(?P<c>a+)c|(?P<d>\w*))",
            // steps admitted only at a piece's end (`a\d*` has several parses)
            r"\A(?:(?P<x>a\d*)(?P<y>1z)|(?P<x2>a\d{2})(?P<y2>!)|(?P<r>.*))",
            // `(xy)?` taken where it must not be
            r"\A(?:(?P<o>xy)?(?P<t>xyz)|(?P<s>.+))",
            // a guarded `(?:X)?` with groups, then a unique run
            r"\A(?:(?:x(?P<g>\d))?(?P<t>y+)!|(?P<z>.*))",
            // scanning runs and `.*?` (several parses)
            r"\A(?:(?P<a>[^:]+) from (?P<b>\S+)$|(?P<c>.*?) from (?P<d>\w+)|(?P<e>.*))",
            // fixed text, class runs with text after them, choices, repetitions
            r"\A(?:(?P<k>key)(?P<n>\d+)=|(?P<p>(?:ab|cd){2})(?P<q>[a-z]+):|(?P<w>\w+)(?P<v>=\d))",
            // branches whose first run searches their literal text (no
            // search before the chain), branches of one fast segment
            r"\A(?:(?P<a>[^:]+) from (?P<b>\d+)|(?P<c>\w+) to (?P<d>\w)|(?P<e>[a-z]+)|(?P<f>.*? from )(?P<g>.)|(?P<h>.+))",
        ];
        let mut hays: Vec<String> = [
            "",
            "Failed password for root from 1.2.3.4 port 22 ssh2",
            "Failed password for root from 1.2.3.4: ",
            "Failed publickey for root from 1.2.3.4 port 22: ",
            "Failed password for invalid user bob from 1.2.3.4 port 22 ssh2",
            "Failed password for invalid user bob from 1.2.3.4 port 22: ",
            "Failed password for invalid user a b from c",
            "Failed password for invalid user  from c",
            "Failed password for a: b from c",
            "Failed password for a from b from c",
            "Failed password for invalid user r\u{e9}t from h",
            "Failed password for r\u{e9}t from h\u{e9}: ",
            "from 1.2.3.4 port 22",
            "from ::ffff:1.2.3.4 port 22",
            "from [2001:db8::1] port 22",
            "from 1.2.3.4567 port",
            "from 1.2.3 port",
            "from host.example.org",
            "from h\u{e9}st",
            "::ffff:1.2.3.4",
            "::fff:1.2.3.4",
            "1.2.3.4",
            "1.2.3",
            "aab",
            "aaac",
            "ab",
            "b",
            "a11z",
            "a1z",
            "a12!",
            "a123!",
            "a\u{e9}",
            "xyz",
            "xyxyz",
            "xy",
            "x1yy!",
            "x1yy?",
            "yy!",
            "yy",
            "x1",
            "a: b from c",
            "a from b from c d",
            "a from b",
            "key12=",
            "key=",
            "keyx12=1",
            "abcdxy:",
            "abcd:",
            "abab=1",
            "w=1",
        ]
        .iter()
        .map(|h| h.to_string())
        .collect();
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15u64);
        let pieces = [
            "a",
            "b",
            "x",
            "y",
            "z",
            "1",
            "12",
            ".",
            ":",
            "::",
            "ffff",
            " ",
            "!",
            "=",
            "from ",
            " from ",
            "xy",
            "key",
            "ab",
            "cd",
            "invalid user ",
            " to ",
            ": ",
            "1.2.3.4",
            "\u{e9}",
            "\n",
        ];
        for _ in 0..600 {
            let mut h = String::new();
            for _ in 0..next(10) {
                h.push_str(pieces[next(pieces.len() as u64) as usize]);
            }
            hays.push(h);
        }
        let (mut proofs, mut fail_match, mut compared, mut leads) = (0, 0, 0, 0);
        for src in pats {
            let parsed = pyre::parse(src, true).unwrap();
            let mut text = String::new();
            emit::emit(&parsed.node, &parsed.names, OPTS, &mut text);
            let re = build(&text).unwrap();
            let segs = SegmentsSrc::new(&parsed.node, &parsed.names, "", OPTS).unwrap().compile().unwrap();
            let mut branches = Vec::new();
            branches_of(&segs, &mut branches);
            assert!(branches.len() >= 2, "{src}");
            for (btext, chain) in &branches {
                let bre = build(btext).unwrap();
                let mut scratch = chain.scratch();
                for hay in &hays {
                    for pos in (0..=hay.len()).filter(|&p| hay.is_char_boundary(p)) {
                        let mut spans = vec![None; parsed.names.len()];
                        let failed = chain.run(hay, hay.is_ascii(), None, pos, &mut scratch, &mut spans).is_none();
                        let input = Input::new(hay.as_str()).span(pos..hay.len()).anchored(Anchored::Yes);
                        let matches = bre.search(&input).is_some();
                        if chain.cannot_match(hay, hay.is_ascii(), None, pos) {
                            assert!(!matches, "{btext:?} on {hay:?} at {pos}: proven not to match, but does");
                            assert!(failed, "{btext:?} on {hay:?} at {pos}: proven not to match, the chain does");
                            proofs += 1;
                        }
                        if !chain.lead.is_empty() && !chain.lead.iter().any(|t| text_at(hay.as_bytes(), pos, t)) {
                            assert!(!matches, "{btext:?} on {hay:?} at {pos}: no lead text, but a match");
                            leads += 1;
                        }
                        fail_match += usize::from(failed && matches);
                    }
                }
            }
            // the whole chain (skips included) as the full engine
            let mut scratch = segs.scratch();
            let mut caps = re.create_captures();
            for hay in &hays {
                for p in (0..=hay.len()).filter(|&p| hay.is_char_boundary(p)) {
                    let hay = &hay[p..];
                    let n = parsed.names.len();
                    compared += usize::from(chain_agrees(src, &segs, &re, n, hay, None, &mut scratch, &mut caps));
                }
            }
        }
        assert!(proofs > 50_000, "{proofs}");
        assert!(fail_match > 150, "{fail_match}");
        assert!(leads > 20_000, "{leads}");
        assert!(compared > 5000, "{compared}");
    }

    /// A group `((?:(?!T).)*?)T` rewritten by `linearize` runs as lazy dots
    /// to the first T (`avoid_group`): the chain's end and groups are the
    /// full engine's, on every haystack.
    #[test]
    fn avoid_group_equals_full_engine() {
        let pats = [
            r"\A(?P<u>(?:(?! from ).)*?) from (?P<h>\S+)",
            r"\A(?P<u>(?:(?! from ).)*) from (?P<h>\S+)$",
            r"\Ax(?:(?P<u>(?:(?!ab).)*?)ab|(?P<v>.*))",
            r"\A(?P<u>(?:(?!aa).)*?)aa(?P<r>.*)",
            r"\A(?P<u>(?:(?!aba).)*?)aba(?P<r>b?)",
        ];
        let pieces = ["a", "b", "x", "ab", "aa", "aba", " from ", "from", " fro", "m ", "\n", "\u{e9}", " "];
        let mut next = xorshift(0xa701_d6e5);
        let mut hays: Vec<String> = ["", "x from y", "xab", "aaa", "ababa", "a\naa"].map(String::from).into();
        for _ in 0..2000 {
            hays.push((0..next(9)).map(|_| pieces[next(pieces.len() as u64) as usize]).collect());
        }
        fn dots(segs: &Segments) -> usize {
            segs.parts
                .iter()
                .map(|p| match p {
                    Part::Seg(Segment { fast: Some(Fast::Dots { lazy: true, tail, .. }), .. }) if !tail.is_empty() => 1,
                    Part::Seg(_) => 0,
                    Part::Alt(b, _) => b.iter().map(|(_, _, c)| dots(c)).sum(),
                })
                .sum()
        }
        let (mut compared, mut found) = (0, 0);
        for src in pats {
            let parsed = pyre::parse(src, true).unwrap();
            let lin = super::super::linearize::linearize(&parsed.node).unwrap_or_else(|| panic!("{src}"));
            assert_eq!(lin.map, (0..parsed.names.len()).collect::<Vec<_>>(), "{src}");
            let mut avoid = Vec::new();
            super::super::avoid_lits(&parsed.node, &mut avoid);
            let mut text = String::new();
            emit::emit(&lin.node, &parsed.names, OPTS, &mut text);
            let re = build(&text).unwrap();
            let segs = SegmentsSrc::new_with(&lin.node, &parsed.names, "", OPTS, &avoid).unwrap().compile().unwrap();
            found += usize::from(dots(&segs) > 0);
            let mut scratch = segs.scratch();
            let mut caps = re.create_captures();
            for hay in &hays {
                for p in (0..=hay.len()).filter(|&p| hay.is_char_boundary(p)) {
                    let hay = &hay[p..];
                    for nl in [None, Some(crate::pattern::first_newline(hay.as_bytes()))] {
                        let n = parsed.names.len();
                        compared += usize::from(chain_agrees(src, &segs, &re, n, hay, nl, &mut scratch, &mut caps));
                    }
                }
            }
        }
        // the lazy idiom before its text is recognized (the greedy one
        // before `$` is a free tail, not this)
        assert!(found >= 4, "{found}");
        assert!(compared > 5_000, "{compared}");
    }

    /// A segment `P(?:(?!T).)*$` ends at the haystack's end without a search
    /// when neither T nor `\n` follows its start (`Segment::free`): the
    /// chain's end and groups are the full engine's, on every haystack.
    #[test]
    fn free_tail_equals_full_engine() {
        let pats = [
            r"\A(?P<h>\S+)(?: (?:port \d+|on \S+)){0,2}(?: ssh\d*)?(?:(?:(?! from ).)*)$",
            r"\A(?P<h>\S+)(?: (?:port \d+|on \S+)){0,2}(?: ssh\d*)?(?:(?! from ).)*$",
            r"\A(?P<a>a+)(?:x)?(?:(?!ab).)*$",
            r"\A(?P<a>a+)(?:)(?:x)?(?:(?!ab).)*$",
            r"\A(?P<a>\w)(?:\d)*(?:(?!o).)*$",
            r"\A(?P<a>[^:]+) from (?P<b>\S+)(?: on \S+)*(?:(?!:).)*$",
        ];
        let pieces = [
            "a", "b", "x", "ab", "on", " on ", " on x", " from ", "from", " port 22", " ssh2", ":", "\n", "\u{e9}", " ",
        ];
        let mut next = xorshift(0xf4ee_7a11);
        let mut hays: Vec<String> =
            ["", "a", "h port 22 ssh2", "h on from x", "h on x from y", "ab\n", "a:b from c on d"]
                .map(String::from)
                .into();
        for _ in 0..2000 {
            hays.push((0..next(9)).map(|_| pieces[next(pieces.len() as u64) as usize]).collect());
        }
        let (mut compared, mut frees, mut flat_through) = (0, 0, 0);
        for src in pats {
            let parsed = pyre::parse(src, true).unwrap();
            // as `Pattern::compile`: the idiom rewritten by `linearize`
            let lin = super::super::linearize::linearize(&parsed.node).unwrap_or_else(|| panic!("{src}"));
            assert_eq!(lin.map, (0..parsed.names.len()).collect::<Vec<_>>(), "{src}");
            let mut avoid = Vec::new();
            super::super::avoid_lits(&parsed.node, &mut avoid);
            let mut text = String::new();
            emit::emit(&lin.node, &parsed.names, OPTS, &mut text);
            let re = build(&text).unwrap();
            let segs = SegmentsSrc::new_with(&lin.node, &parsed.names, "", OPTS, &avoid).unwrap().compile().unwrap();
            let f = segs.parts.iter().filter(|p| matches!(p, Part::Seg(Segment { free: Some(_), .. }))).count();
            frees += f;
            let mut scratch = segs.scratch();
            let mut caps = re.create_captures();
            for hay in &hays {
                for p in (0..=hay.len()).filter(|&p| hay.is_char_boundary(p)) {
                    let hay = &hay[p..];
                    for nl in [None, Some(crate::pattern::first_newline(hay.as_bytes()))] {
                        let n = parsed.names.len();
                        compared += usize::from(chain_agrees(src, &segs, &re, n, hay, nl, &mut scratch, &mut caps));
                        // the chain as a branch: its flat run (free tail
                        // included) equals its run wherever it decides
                        assert!(segs.flat, "{src}");
                        let mut a = vec![None; n];
                        if let Some(got) = segs.run_flat(hay, hay.is_ascii(), nl, 0, &mut a) {
                            let mut b = vec![None; n];
                            let want = segs.run(hay, hay.is_ascii(), nl, 0, &mut scratch, &mut b);
                            assert_eq!(got, want, "{src:?} on {hay:?}");
                            if got.is_some() {
                                assert_eq!(a, b, "{src:?} on {hay:?}");
                                flat_through += 1;
                            }
                        }
                    }
                }
            }
        }
        // each pattern's tail segment is recognized (the fast end is taken)
        assert_eq!(frees, pats.len(), "{frees}");
        assert!(compared > 10_000, "{compared}");
        assert!(flat_through > 5_000, "{flat_through}");
    }

    /// [`Walk::any`] (stop at the first match state) tells what the DFA's
    /// own anchored search does: a match or none, Err where the search
    /// quits before a match state.
    #[test]
    fn dfa_any_equals_dfa_search() {
        let texts = [
            r"(?-u)(?:::f{4,6}:)?(?P<ip4>(?:[0-9]{1,3}\.){3}[0-9]{1,3})",
            r"(?-u)(?P<ip6>(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|:))",
            r"(?-u)publickey",
            r"(?-u)(invalid user )(?:([^\s]+) from ([^\s]+): |(.*?) from ([^\s]+)$)",
            r"(?-u)[^:]+ from [^\s]+(?m:$)",
            r"(?-u)(?m:^)\d+(?m:$)",
            r"(?-u)\b\w+\b",
            r"(?-u)a*?",
            r"(?-u)",
        ];
        let mut next = xorshift(0x2545_f491_4f6c_dd1du64);
        let mut hays: Vec<Vec<u8>> =
            ["", "\n", "publickey", "publick", "1.2.3.4", "::ffff:1.2.3.4", "a from b", "a: b"]
                .iter()
                .map(|h| h.as_bytes().to_vec())
                .collect();
        const MIX: &[u8] = b" \t\n.:[]abfikpuy019_-";
        for _ in 0..300 {
            hays.push((0..next(24)).map(|_| MIX[next(MIX.len() as u64) as usize]).collect());
        }
        for _ in 0..100 {
            hays.push((0..next(24)).map(|_| next(256) as u8).collect());
        }
        let mut quit_dfa = dense::Builder::new();
        quit_dfa
            .syntax(regex_automata::util::syntax::Config::new().utf8(false).unicode(false))
            .configure(dense::Config::new().start_kind(StartKind::Anchored).quit(b'\n', true));
        let mut dfas: Vec<Dfa> = texts.iter().map(|t| build_dfa(t).unwrap()).collect();
        dfas.push(quit_dfa.build(r"(?-u)[a-z]+ \d+|[a-z]+\s|").unwrap());
        let (mut yes, mut no) = (0, 0);
        for dfa in &dfas {
            let walk = Walk::new(dfa).unwrap();
            for h in &hays {
                // (on other haystacks an empty match that splits a character is none)
                if !h.is_ascii() && walk.utf8empty {
                    continue;
                }
                for pos in 0..=h.len() {
                    let input = Input::new(h).span(pos..h.len()).anchored(Anchored::Yes);
                    let want = dfa.try_search_fwd(&input).map(|m| m.is_some());
                    match (walk.any(h, pos), want) {
                        (Ok(a), Ok(b)) => assert_eq!(a, b, "{:?} at {pos}", String::from_utf8_lossy(h)),
                        // a match state before the quit byte
                        (Ok(a), Err(_)) => assert!(a, "{:?} at {pos}", String::from_utf8_lossy(h)),
                        (Err(()), w) => assert!(w.is_err(), "{:?} at {pos}", String::from_utf8_lossy(h)),
                    }
                    if let Ok(a) = walk.any(h, pos) {
                        if a { yes += 1 } else { no += 1 }
                    }
                }
            }
        }
        assert!(yes > 1000 && no > 1000, "{yes} {no}");
    }
}
