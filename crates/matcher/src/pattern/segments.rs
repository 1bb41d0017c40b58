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

use regex_automata::util::captures::Captures as RaCaptures;
use regex_automata::{Anchored, Input, meta};

use super::emit::{self, EmitOpts};
use super::pyre::{GroupKind, Node};

struct Segment {
    re: meta::Regex,
    /// The segment is exactly capture group `g` with no groups inside.
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
    Alt(Vec<(meta::Regex, Segments)>),
}

pub(crate) struct Segments {
    parts: Vec<Part>,
}

#[derive(Debug)]
enum PartSrc {
    /// Text, whole group, groups, bytes of literal text after a whole group.
    Seg(String, Option<usize>, Vec<usize>, usize),
    Alt(Vec<(String, SegmentsSrc)>),
}

/// Segment sources, compiled on first use.
#[derive(Debug)]
pub(crate) struct SegmentsSrc {
    parts: Vec<PartSrc>,
}

fn build(text: &str) -> Option<meta::Regex> {
    meta::Regex::builder().configure(meta::Config::new().nfa_size_limit(Some(64 << 20))).build(text).ok()
}

impl SegmentsSrc {
    pub(crate) fn compile(&self) -> Option<Segments> {
        let mut parts = Vec::with_capacity(self.parts.len());
        for p in &self.parts {
            parts.push(match p {
                PartSrc::Seg(text, whole, groups, tail) => {
                    Part::Seg(Segment { re: build(text)?, whole: *whole, groups: groups.clone(), tail: *tail })
                }
                PartSrc::Alt(branches) => {
                    Part::Alt(branches.iter().map(|(t, c)| Some((build(t)?, c.compile()?))).collect::<Option<_>>()?)
                }
            });
        }
        Some(Segments { parts })
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
    Seg { cache: meta::Cache, caps: Option<RaCaptures> },
    Alt(Vec<(meta::Cache, SegScratch)>),
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
        // an alternation with groups at the very end: branch by branch
        let mut last_alt = None;
        if let Some(Node::Group { kind: GroupKind::NonCapture, node }) = flat.last()
            && let Node::Alt(branches) = &**node
        {
            let mut g = Vec::new();
            captures_in(node, &mut g);
            if !g.is_empty() {
                last_alt = Some(branches);
                flat.pop();
            }
        }
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
            let mut groups = Vec::new();
            let mut text = String::from(prefix);
            for c in &part {
                captures_in(c, &mut groups);
                emit::emit(c, names, opts, &mut text);
            }
            let whole = match part.as_slice() {
                [Node::Group { kind: GroupKind::Capture(g), node }] => {
                    let mut inner = Vec::new();
                    captures_in(node, &mut inner);
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
                }
                if next.is_empty() {
                    parts.next();
                }
            }
            segs.push(PartSrc::Seg(text, whole, groups, tail));
        }
        if let Some(branches) = last_alt {
            let alt = branches
                .iter()
                .map(|b| {
                    let mut text = String::from(prefix);
                    emit::emit(b, names, opts, &mut text);
                    let items = match b {
                        Node::Cat(v) => v.as_slice(),
                        one => std::slice::from_ref(one),
                    };
                    (text, Self::chain(items, names, prefix, opts))
                })
                .collect();
            segs.push(PartSrc::Alt(alt));
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
                    Part::Seg(s) => PartScratch::Seg {
                        cache: s.re.create_cache(),
                        caps: (s.whole.is_none() && !s.groups.is_empty()).then(|| s.re.create_captures()),
                    },
                    Part::Alt(b) => {
                        PartScratch::Alt(b.iter().map(|(re, c)| (re.create_cache(), c.scratch())).collect())
                    }
                })
                .collect(),
        }
    }

    /// Runs the chain from `start`; fills `spans` (global group index) and
    /// returns the end, or None when the caller must use the full engine.
    pub(crate) fn run(
        &self,
        hay: &str,
        start: usize,
        s: &mut SegScratch,
        spans: &mut [Option<(usize, usize)>],
    ) -> Option<usize> {
        let mut pos = start;
        for (part, ps) in self.parts.iter().zip(s.parts.iter_mut()) {
            let input = Input::new(hay).span(pos..hay.len()).anchored(Anchored::Yes);
            match (part, ps) {
                (Part::Seg(seg), PartScratch::Seg { cache, caps }) => {
                    if let Some(caps) = caps.as_mut() {
                        seg.re.search_captures_with(cache, &input, caps);
                        let m = caps.get_match()?;
                        for (local, &g) in seg.groups.iter().enumerate() {
                            *spans.get_mut(g)? = caps.get_group(local + 1).map(|sp| (sp.start, sp.end));
                        }
                        pos = m.end();
                    } else {
                        let m = seg.re.search_with(cache, &input)?;
                        if let Some(g) = seg.whole {
                            *spans.get_mut(g)? = Some((m.start(), m.end().checked_sub(seg.tail)?));
                        }
                        pos = m.end();
                    }
                }
                (Part::Alt(branches), PartScratch::Alt(bs)) => {
                    // the last item: leftmost-first takes the first branch
                    // that matches at all; that branch's own chain (if it
                    // gets through) is its first parse
                    let mut done = None;
                    for ((re, chain), (cache, sub)) in branches.iter().zip(bs.iter_mut()) {
                        let Some(m) = re.search_with(cache, &input) else {
                            continue;
                        };
                        let end = chain.run(hay, pos, sub, spans)?;
                        if end != m.end() {
                            return None;
                        }
                        done = Some(end);
                        break;
                    }
                    pos = done?;
                }
                _ => return None,
            }
        }
        Some(pos)
    }
}
