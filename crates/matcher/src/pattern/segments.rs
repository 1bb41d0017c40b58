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
}

pub(crate) struct Segments {
    segs: Vec<Segment>,
}

/// Segment sources, compiled on first use.
#[derive(Debug)]
pub(crate) struct SegmentsSrc {
    parts: Vec<(String, Option<usize>, Vec<usize>)>,
}

impl SegmentsSrc {
    pub(crate) fn compile(&self) -> Option<Segments> {
        let mut segs = Vec::with_capacity(self.parts.len());
        for (text, whole, groups) in &self.parts {
            let re = meta::Regex::builder()
                .configure(meta::Config::new().nfa_size_limit(Some(64 << 20)))
                .build(text)
                .ok()?;
            segs.push(Segment {
                re,
                whole: *whole,
                groups: groups.clone(),
            });
        }
        Some(Segments { segs })
    }
}

impl std::fmt::Debug for Segments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Segments({})", self.segs.len())
    }
}

/// Per-search state for [`Segments`].
#[derive(Debug, Default)]
pub(crate) struct SegScratch {
    caches: Vec<meta::Cache>,
    caps: Vec<Option<RaCaptures>>,
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
    pub(crate) fn new(
        node: &Node,
        names: &[Option<String>],
        prefix: &str,
        opts: EmitOpts,
    ) -> Option<SegmentsSrc> {
        let Node::Cat(children) = node else {
            return None;
        };
        // group children: each child with captures alone, others merged
        let mut parts: Vec<Vec<&Node>> = Vec::new();
        let mut plain: Vec<&Node> = Vec::new();
        for c in children {
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
        if parts.len() < 2 {
            return None;
        }
        let mut segs = Vec::with_capacity(parts.len());
        for part in parts {
            let mut groups = Vec::new();
            let mut text = String::from(prefix);
            for c in &part {
                captures_in(c, &mut groups);
                emit::emit(c, names, opts, &mut text);
            }
            let whole = match part.as_slice() {
                [
                    Node::Group {
                        kind: GroupKind::Capture(g),
                        node,
                    },
                ] => {
                    let mut inner = Vec::new();
                    captures_in(node, &mut inner);
                    inner.is_empty().then_some(*g)
                }
                _ => None,
            };
            segs.push((text, whole, groups));
        }
        Some(SegmentsSrc { parts: segs })
    }
}

impl Segments {
    pub(crate) fn scratch(&self) -> SegScratch {
        SegScratch {
            caches: self.segs.iter().map(|s| s.re.create_cache()).collect(),
            caps: self
                .segs
                .iter()
                .map(|s| {
                    (s.whole.is_none() && !s.groups.is_empty()).then(|| s.re.create_captures())
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
        for (i, seg) in self.segs.iter().enumerate() {
            let input = Input::new(hay).span(pos..hay.len()).anchored(Anchored::Yes);
            let cache = s.caches.get_mut(i)?;
            if let Some(caps) = s.caps.get_mut(i).and_then(Option::as_mut) {
                seg.re.search_captures_with(cache, &input, caps);
                let m = caps.get_match()?;
                for (local, &g) in seg.groups.iter().enumerate() {
                    *spans.get_mut(g)? = caps.get_group(local + 1).map(|sp| (sp.start, sp.end));
                }
                pos = m.end();
            } else {
                let m = seg.re.search_with(cache, &input)?;
                if let Some(g) = seg.whole {
                    *spans.get_mut(g)? = Some((m.start(), m.end()));
                }
                pos = m.end();
            }
        }
        Some(pos)
    }
}
