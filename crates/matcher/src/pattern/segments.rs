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
use super::pyre::{GroupKind, Node, RepKind};

/// A zero-width assertion or literal text of a segment that needs no
/// automaton (exactly one way to match).
#[derive(Clone, Debug, PartialEq, Eq)]
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
enum Fast {
    /// A fixed sequence of assertions and literal text.
    Seq(Vec<Atom>),
    /// A whole group `(.*)`, `(.+)`, `(.*?)`, `(.+?)` (no DOTALL: any char
    /// but `\n`) followed by literal text without `\n` (empty: greedy only).
    Dots { min: usize, lazy: bool, tail: String },
    /// A repetition of one class (or `.`) followed by literal text that
    /// does not start with a byte of the class, on ASCII haystacks only:
    /// then the run of class bytes is the only way to match. `class`: the
    /// class's ASCII bytes (as compiled for ASCII haystacks).
    Run { class: Box<[bool; 128]>, min: usize, max: usize, lazy: bool, tail: String },
    /// `(X)?` (greedy) of a capture group `group` around a fast kind that
    /// cannot match empty: X's first parse if it has one, else nothing.
    Opt { group: usize, inner: Box<Fast> },
    /// Case-sensitive literal text with capture groups around parts of it
    /// (`(?P<a>Received (?P<b>disconnect))`): one way to match, each group
    /// `(g, start, end)` at fixed offsets from the segment's start.
    Fixed { text: String, groups: Vec<(usize, usize, usize)> },
}

/// Does `b` hold `t` at `p`? Short texts: a loop beats a call to memcmp.
#[inline]
fn text_at(b: &[u8], p: usize, t: &[u8]) -> bool {
    b.get(p..p + t.len()).is_some_and(|h| h.iter().zip(t).all(|(x, y)| x == y))
}

impl Fast {
    /// End of the first parse from `pos`.
    #[inline]
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
            Fast::Run { class, min, max, lazy, tail } => {
                let rest = b.get(pos..)?;
                let run = rest.iter().take(*max).take_while(|&&c| c < 128 && class[c as usize]).count();
                if run < *min {
                    return None;
                }
                // the text cannot start inside the run: its end (lazy: at
                // least `min`) is the only place the text may follow
                let k = pos + if *lazy && tail.is_empty() { *min } else { run };
                b.get(k..)?.starts_with(tail.as_bytes()).then_some(k + tail.len())
            }
            // handled by the caller (it sets the group)
            Fast::Opt { .. } => None,
            Fast::Fixed { text, .. } => text_at(b, pos, text.as_bytes()).then_some(pos + text.len()),
            Fast::Dots { min, lazy, tail } => {
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
                } else if *lazy {
                    from + memchr::memmem::find(&b[from..line_end], tail.as_bytes())?
                } else {
                    let k = pos + memchr::memmem::rfind(&b[pos..line_end], tail.as_bytes())?;
                    (k >= from).then_some(k)?
                };
                Some(k + tail.len())
            }
        }
    }
}

impl Fast {
    /// Only valid on ASCII haystacks.
    fn ascii_only(&self) -> bool {
        match self {
            Fast::Run { .. } => true,
            Fast::Opt { inner, .. } => inner.ascii_only(),
            _ => false,
        }
    }

    /// Never matches the empty string.
    fn non_empty(&self) -> bool {
        match self {
            Fast::Seq(atoms) => atoms.iter().any(|a| matches!(a, Atom::Text(t) if !t.is_empty())),
            Fast::Dots { min, tail, .. } | Fast::Run { min, tail, .. } => *min > 0 || !tail.is_empty(),
            Fast::Opt { .. } => false,
            Fast::Fixed { text, .. } => !text.is_empty(),
        }
    }
}

/// The ASCII bytes a class (or `.`) matches, as compiled for ASCII haystacks.
fn ascii_class(n: &Node, names: &[Option<String>], aopts: EmitOpts) -> Option<Box<[bool; 128]>> {
    let mut text = String::new();
    emit::emit(n, names, aopts, &mut text);
    let re = regex::bytes::Regex::new(&format!("(?-u)\\A(?:{text})\\z")).ok()?;
    let mut class = Box::new([false; 128]);
    for (b, slot) in class.iter_mut().enumerate() {
        *slot = re.is_match(&[b as u8]);
    }
    Some(class)
}

/// The segment's nodes as a [`Fast`] kind, if they are one.
fn fast_of(
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
        let class = ascii_class(cls, names, aopts)?;
        if tail.as_bytes().first().is_some_and(|&b| b < 128 && class[b as usize]) {
            return None;
        }
        return Some(Fast::Run {
            class,
            min: *min as usize,
            max: max.map_or(usize::MAX, |m| m as usize),
            lazy: matches!(kind, RepKind::Lazy),
            tail,
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
        return Some(Fast::Dots { min: *min as usize, lazy, tail });
    }
    seq_of(part.iter().chain(tail).copied())
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
/// filter's patterns are compiled at startup, most pieces never searched).
struct LazyDfa {
    atext: String,
    cell: OnceLock<Option<Box<Dfa>>>,
}

impl LazyDfa {
    fn new(atext: &str) -> LazyDfa {
        LazyDfa { atext: atext.to_string(), cell: OnceLock::new() }
    }

    #[inline]
    fn get(&self) -> Option<&Dfa> {
        self.cell.get_or_init(|| build_dfa(&self.atext)).as_deref()
    }
}

/// A branch of an alternation: the branch as a whole (to tell whether it
/// can match at all), the same as a DFA for ASCII haystacks, its own chain.
type Branch = (LazyMeta, LazyDfa, Segments);

struct Segment {
    re: LazyMeta,
    /// For `(?:X)?`: how to see cheaply that X cannot match here.
    guard: Option<Box<Guard>>,
    /// The same as a fully compiled anchored DFA for ASCII haystacks, when
    /// small enough (built on first use).
    dfa: Option<LazyDfa>,
    fast: Option<Fast>,
    /// The segment is exactly capture group `g` (or groups nested one directly
    /// in the other, all in `groups`) with no groups inside.
    whole: Option<usize>,
    /// Global indices of the segment's own groups 1.. (captures needed).
    groups: Vec<usize>,
    /// Bytes of literal text after the whole group, in the segment.
    tail: usize,
}

/// One link of the chain.
enum Part {
    Seg(Segment),
    /// The last item is an alternation with groups: each branch as a whole
    /// (to find the first branch that matches) and as its own chain.
    Alt(Vec<Branch>),
}

pub(crate) struct Segments {
    parts: Vec<Part>,
    /// Every group the chain sets (cleared when it fails inside an
    /// alternation whose next branch is tried).
    groups: Vec<usize>,
}

#[derive(Debug)]
enum PartSrc {
    /// Text, text for ASCII haystacks, whole group, groups, bytes of literal
    /// text after a whole group, fast kind.
    /// Guard bytes and guard literals (`(?:X)?`).
    #[allow(clippy::type_complexity)]
    Seg(String, String, Option<usize>, Vec<usize>, usize, Option<Fast>, Option<u128>, Vec<Box<[u8]>>),
    /// Each branch: text, text for ASCII haystacks, its chain.
    Alt(Vec<(String, String, SegmentsSrc)>),
}

/// When `(?:X)?` is skipped without a search: the next byte is none of
/// `set` (ASCII bytes X can start with), or the text there starts with none
/// of `lits` (literal text every match of X starts with; empty: not known).
#[derive(Debug)]
struct Guard {
    set: u128,
    lits: Box<[Box<[u8]>]>,
}

/// Segment sources, compiled on first use.
#[derive(Debug)]
pub(crate) struct SegmentsSrc {
    parts: Vec<PartSrc>,
}

fn build(text: &str) -> Option<meta::Regex> {
    meta::Regex::builder().configure(meta::Config::new().nfa_size_limit(Some(64 << 20))).build(text).ok()
}

/// An anchored dense DFA for a segment without groups, from its text for
/// ASCII haystacks (Python's classes restricted to ASCII: small automata;
/// None: too big).
fn build_dfa(atext: &str) -> Option<Box<Dfa>> {
    dense::Builder::new()
        .syntax(regex_automata::util::syntax::Config::new().utf8(false).unicode(false))
        .configure(
            dense::Config::new()
                .start_kind(StartKind::Anchored)
                .dfa_size_limit(Some(256 << 10))
                .determinize_size_limit(Some(1 << 20)),
        )
        .build(atext)
        .ok()
        .map(Box::new)
}

impl SegmentsSrc {
    pub(crate) fn compile(&self) -> Option<Segments> {
        let mut parts = Vec::with_capacity(self.parts.len());
        for p in &self.parts {
            parts.push(match p {
                PartSrc::Seg(text, atext, whole, groups, tail, fast, guard, guard_lits) => {
                    let needs_caps = whole.is_none() && !groups.is_empty();
                    let dfa = (fast.is_none() && !needs_caps).then(|| LazyDfa::new(atext));
                    Part::Seg(Segment {
                        // built on first use, also for the capture search (when
                        // it cannot be built, the search falls back to the
                        // full engine)
                        re: LazyMeta::new(text),
                        dfa,
                        fast: fast.clone(),
                        guard: guard.map(|set| Box::new(Guard { set, lits: guard_lits.clone().into() })),
                        whole: *whole,
                        groups: groups.clone(),
                        tail: *tail,
                    })
                }
                PartSrc::Alt(branches) => Part::Alt(
                    branches
                        .iter()
                        .map(|(t, a, c)| Some((LazyMeta::new(t), LazyDfa::new(a), c.compile()?)))
                        .collect::<Option<_>>()?,
                ),
            });
        }
        let mut groups = Vec::new();
        for p in &parts {
            match p {
                Part::Seg(s) => groups.extend(s.groups.iter().copied().chain(s.whole)),
                Part::Alt(b) => b.iter().for_each(|(_, _, c)| groups.extend(c.groups.iter().copied())),
            }
        }
        groups.sort_unstable();
        groups.dedup();
        Some(Segments { parts, groups })
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
    Seg { cache: Option<meta::Cache>, caps: Option<RaCaptures> },
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
    pub(crate) fn new(node: &Node, names: &[Option<String>], prefix: &str, opts: EmitOpts) -> Option<SegmentsSrc> {
        let Node::Cat(children) = node else {
            return None;
        };
        let src = Self::chain(children, names, prefix, opts);
        (src.parts.len() >= 2).then_some(src)
    }

    /// The chain for a concatenation (possibly a single segment).
    fn chain(children: &[Node], names: &[Option<String>], prefix: &str, opts: EmitOpts) -> SegmentsSrc {
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
            // an alternation with groups: branch by branch, each its own chain
            if let [Node::Group { kind: GroupKind::NonCapture, node }] = part.as_slice()
                && let Node::Alt(branches) = &**node
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
                        (text, atext, Self::chain(items, names, prefix, opts))
                    })
                    .collect();
                segs.push(PartSrc::Alt(alt));
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
                fast_of(&part, &tail_nodes, whole, names, aopts)
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
            // first parse is empty (groups inside do not take part)
            let (guard, guard_lits) = match part.as_slice() {
                [Node::Repeat { node, min: 0, max: Some(1), kind: RepKind::Greedy }]
                    if prefix.is_empty() && fast.is_none() && whole.is_none() && tail_nodes.is_empty() =>
                {
                    let lits = lit_prefixes(node).unwrap_or_default();
                    (first_bytes(node), lits.into_iter().map(|t| t.into_bytes().into_boxed_slice()).collect())
                }
                _ => (None, Vec::new()),
            };
            segs.push(PartSrc::Seg(text, atext, whole, groups, tail, fast, guard, guard_lits));
        }
        SegmentsSrc { parts: segs }
    }
}

impl Segments {
    pub(crate) fn scratch(&self) -> SegScratch {
        SegScratch {
            parts: self
                .parts
                .iter()
                .map(|p| match p {
                    Part::Seg(_) => PartScratch::Seg { cache: None, caps: None },
                    Part::Alt(b) => PartScratch::Alt(b.iter().map(|(_, _, c)| (None, c.scratch())).collect()),
                })
                .collect(),
        }
    }

    /// Runs the chain from `start`; fills `spans` (global group index) and
    /// returns the end, or None when the caller must use the full engine.
    /// `nl`: where the haystack's first `\n` is (its length: none), if known.
    pub(crate) fn run(
        &self,
        hay: &str,
        ascii: bool,
        nl: Option<usize>,
        start: usize,
        s: &mut SegScratch,
        spans: &mut [Option<(usize, usize)>],
    ) -> Option<usize> {
        let mut pos = start;
        for (part, ps) in self.parts.iter().zip(s.parts.iter_mut()) {
            let input = Input::new(hay).span(pos..hay.len()).anchored(Anchored::Yes);
            match (part, ps) {
                (Part::Seg(seg), PartScratch::Seg { .. })
                    if seg.guard.as_ref().is_some_and(|g| {
                        hay.as_bytes().get(pos).is_none_or(|&b| b >= 128 || g.set & (1u128 << b) == 0)
                            || (!g.lits.is_empty() && !g.lits.iter().any(|t| text_at(hay.as_bytes(), pos, t)))
                    }) =>
                {
                    for &g in &seg.groups {
                        *spans.get_mut(g)? = None;
                    }
                }
                (Part::Seg(seg), PartScratch::Seg { cache, caps }) => {
                    if let Some(f @ Fast::Fixed { groups, .. }) = &seg.fast {
                        let end = f.run(hay, pos, nl)?;
                        for &(g, a, b) in groups {
                            *spans.get_mut(g)? = Some((pos + a, pos + b));
                        }
                        pos = end;
                    } else if let Some(Fast::Opt { group, inner }) =
                        seg.fast.as_ref().filter(|f| ascii || !f.ascii_only())
                    {
                        let m = inner.run(hay, pos, nl);
                        *spans.get_mut(*group)? = m.map(|end| (pos, end));
                        pos = m.unwrap_or(pos);
                    } else if let Some(fast) = seg.fast.as_ref().filter(|f| ascii || !f.ascii_only()) {
                        let end = fast.run(hay, pos, nl)?;
                        if seg.whole.is_some() {
                            let span = Some((pos, end.checked_sub(seg.tail)?));
                            for &g in &seg.groups {
                                *spans.get_mut(g)? = span;
                            }
                        }
                        pos = end;
                    } else if seg.whole.is_none() && !seg.groups.is_empty() {
                        let re = seg.re.get()?;
                        let caps = caps.get_or_insert_with(|| re.create_captures());
                        re.search_captures_with(cache.get_or_insert_with(|| re.create_cache()), &input, caps);
                        let m = caps.get_match()?;
                        for (local, &g) in seg.groups.iter().enumerate() {
                            *spans.get_mut(g)? = caps.get_group(local + 1).map(|sp| (sp.start, sp.end));
                        }
                        pos = m.end();
                    } else {
                        let dfa = seg.dfa.as_ref().filter(|_| ascii).and_then(LazyDfa::get);
                        let end = match dfa.map(|d| d.try_search_fwd(&input)) {
                            Some(Ok(m)) => m?.offset(),
                            _ => seg.re.search(cache, &input)?,
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
                (Part::Alt(branches), PartScratch::Alt(bs)) => {
                    // leftmost-first takes the first branch that matches at
                    // all, with its first parse: the branch's own chain when
                    // that gets through (a complete chain is the first
                    // parse). A branch whose chain fails is skipped only
                    // when it cannot match at all.
                    let mut done = None;
                    for ((re, dfa, chain), (cache, sub)) in branches.iter().zip(bs.iter_mut()) {
                        if let Some(end) = chain.run(hay, ascii, nl, pos, sub, spans) {
                            done = Some(end);
                            break;
                        }
                        // what the failed chain set does not take part
                        for &g in &chain.groups {
                            *spans.get_mut(g)? = None;
                        }
                        let matches = match Some(dfa)
                            .filter(|_| ascii)
                            .and_then(LazyDfa::get)
                            .map(|d| d.try_search_fwd(&input))
                        {
                            Some(Ok(m)) => m.is_some(),
                            _ => re.search(cache, &input).is_some(),
                        };
                        if matches {
                            return None;
                        }
                    }
                    pos = done?;
                }
                _ => return None,
            }
        }
        Some(pos)
    }
}
