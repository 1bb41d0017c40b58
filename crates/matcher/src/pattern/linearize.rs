//! Rewrites that move backtracking-only patterns onto the linear engine
//! without changing a single match or group span.
//!
//! 1. Conditionals `(?(g)yes|no)` are removed by case-splitting on the
//!    participation of the groups they test, in the backtracking engine's
//!    preference order: a greedy `X?` becomes `(?:X rest | rest)` (lazy: the
//!    other way round), a group over an alternation `(b1|b2) rest` becomes
//!    `(?:(b1) rest | (b2) rest)`. In each case the participation of every
//!    tested group is known, so each conditional in `rest` collapses to one
//!    branch. Leftmost-first alternation tries the cases in exactly the order
//!    a backtracker tries the choices, so the first successful path — match
//!    and group spans — is the same. Groups copied into several cases are
//!    renumbered; [`Linearized::map`] maps each new group to the original.
//! 2. The "avoid a literal" idiom `(?:(?!LIT).)*` (greedy or lazy) is
//!    replaced where its end is forced:
//!    - followed by `LIT` itself: it can only end at the first occurrence of
//!      `LIT` (the look-ahead forbids passing it, and every earlier end would
//!      be an earlier occurrence), so it becomes the regular language "text
//!      without newline whose run through `LIT`'s KMP automaton, followed by
//!      `LIT`, first completes `LIT` at the very end";
//!    - followed by `$`: it can only end at the end of the line (`.` stops at
//!      a newline), so it becomes "text without newline or `LIT`".
//!
//!    Both languages come from `LIT`'s KMP automaton by state elimination.
//!    As the span of the replaced item is forced, the engine's choice among
//!    its parses cannot change anything.

use std::collections::BTreeMap;

use super::pyre::{GroupKind, Node, RepKind, Set, SetItem};

/// A pattern rewritten for the linear engine.
#[derive(Debug)]
pub(crate) struct Linearized {
    pub node: Node,
    /// New group index → original group index (index 0 = whole match).
    pub map: Vec<usize>,
}

/// Most cases a conditional split may create.
const MAX_CASES: usize = 64;
/// Longest literal for the avoid rewrite.
const MAX_LIT: usize = 16;

/// The rewritten pattern, when it needs no backtracking any more.
pub(crate) fn linearize(node: &Node) -> Option<Linearized> {
    if has_backref(node) {
        return None;
    }
    let mut refs = Vec::new();
    cond_refs(node, &mut refs);
    let mut n = if refs.is_empty() {
        node.clone()
    } else {
        let items = match node {
            Node::Cat(v) => v.clone(),
            Node::Alt(_) => vec![Node::Group { kind: GroupKind::NonCapture, node: Box::new(node.clone()) }],
            other => vec![other.clone()],
        };
        let mut cases = 0usize;
        let sp = Splitter { refs: &refs };
        sp.seq(items, BTreeMap::new(), &mut cases)?
    };
    n = avoid(n, &Follow::default());
    if super::emit::needs_backtracking(&n) {
        return None;
    }
    let mut map = vec![0];
    renumber(&mut n, &mut map);
    Some(Linearized { node: n, map })
}

fn has_backref(n: &Node) -> bool {
    match n {
        Node::Backref(_) => true,
        Node::Cat(v) | Node::Alt(v) => v.iter().any(has_backref),
        Node::Group { node, .. } | Node::Repeat { node, .. } | Node::Look { node, .. } => has_backref(node),
        Node::Cond { yes, no, .. } => has_backref(yes) || has_backref(no),
        _ => false,
    }
}

fn cond_refs(n: &Node, out: &mut Vec<usize>) {
    match n {
        Node::Cond { group, yes, no } => {
            out.push(*group);
            cond_refs(yes, out);
            cond_refs(no, out);
        }
        Node::Cat(v) | Node::Alt(v) => v.iter().for_each(|c| cond_refs(c, out)),
        Node::Group { node, .. } | Node::Repeat { node, .. } | Node::Look { node, .. } => cond_refs(node, out),
        _ => {}
    }
}

/// Capture groups anywhere in `n`.
fn groups_in(n: &Node, out: &mut Vec<usize>) {
    match n {
        Node::Group { kind, node } => {
            if let GroupKind::Capture(g) = kind {
                out.push(*g);
            }
            groups_in(node, out);
        }
        Node::Cat(v) | Node::Alt(v) => v.iter().for_each(|c| groups_in(c, out)),
        Node::Repeat { node, .. } | Node::Look { node, .. } => groups_in(node, out),
        Node::Cond { yes, no, .. } => {
            groups_in(yes, out);
            groups_in(no, out);
        }
        _ => {}
    }
}

/// Capture groups that take part in every match of `n`.
fn definite_groups(n: &Node, out: &mut Vec<usize>) {
    match n {
        Node::Group { kind, node } => {
            if let GroupKind::Capture(g) = kind {
                out.push(*g);
            }
            definite_groups(node, out);
        }
        Node::Cat(v) => v.iter().for_each(|c| definite_groups(c, out)),
        Node::Repeat { node, min, .. } if *min >= 1 => definite_groups(node, out),
        _ => {}
    }
}

fn has_cond(n: &Node) -> bool {
    match n {
        Node::Cond { .. } => true,
        Node::Cat(v) | Node::Alt(v) => v.iter().any(has_cond),
        Node::Group { node, .. } | Node::Repeat { node, .. } | Node::Look { node, .. } => has_cond(node),
        _ => false,
    }
}

/// `n` with every conditional decided by `known` (None: one is not).
fn resolve(n: &Node, known: &BTreeMap<usize, bool>) -> Option<Node> {
    Some(match n {
        Node::Cond { group, yes, no } => {
            let b = if *known.get(group)? { yes } else { no };
            resolve(b, known)?
        }
        Node::Cat(v) => Node::Cat(v.iter().map(|c| resolve(c, known)).collect::<Option<_>>()?),
        Node::Alt(v) => Node::Alt(v.iter().map(|c| resolve(c, known)).collect::<Option<_>>()?),
        Node::Group { kind, node } => Node::Group { kind: kind.clone(), node: Box::new(resolve(node, known)?) },
        Node::Repeat { node, min, max, kind } => {
            Node::Repeat { node: Box::new(resolve(node, known)?), min: *min, max: *max, kind: *kind }
        }
        Node::Look { ahead, neg, node } => {
            Node::Look { ahead: *ahead, neg: *neg, node: Box::new(resolve(node, known)?) }
        }
        other => other.clone(),
    })
}

fn non_capture(n: Node) -> Node {
    Node::Group { kind: GroupKind::NonCapture, node: Box::new(n) }
}

struct Splitter<'a> {
    refs: &'a [usize],
}

impl Splitter<'_> {
    /// Does `n` contain a conditional or define a tested group?
    fn mentions(&self, n: &Node) -> bool {
        if has_cond(n) {
            return true;
        }
        let mut g = Vec::new();
        groups_in(n, &mut g);
        g.iter().any(|g| self.refs.contains(g))
    }

    /// The sequence `items` (a concatenation) with all conditionals decided.
    fn seq(&self, items: Vec<Node>, mut known: BTreeMap<usize, bool>, cases: &mut usize) -> Option<Node> {
        let mut out = Vec::with_capacity(items.len());
        let mut it = items.into_iter();
        while let Some(item) = it.next() {
            if !self.mentions(&item) {
                out.push(item);
                continue;
            }
            match item {
                Node::Cond { group, yes, no } => {
                    let b = if *known.get(&group)? { *yes } else { *no };
                    let mut rest = flatten(b);
                    rest.extend(it);
                    out.push(self.seq(rest, known, cases)?);
                    return Some(Node::Cat(out));
                }
                Node::Group { kind: GroupKind::NonCapture, node } if matches!(*node, Node::Cat(_)) => {
                    let mut rest = flatten(*node);
                    rest.extend(it);
                    out.push(self.seq(rest, known, cases)?);
                    return Some(Node::Cat(out));
                }
                Node::Group { kind: kind @ (GroupKind::Capture(_) | GroupKind::NonCapture), node } => {
                    let rest: Vec<Node> = it.collect();
                    let branches = match *node {
                        Node::Alt(v) => v,
                        // a capture group whose body decides nothing
                        body if !has_cond(&body) && !self.mentions_inner(&body) => {
                            if let GroupKind::Capture(g) = kind {
                                known.insert(g, true);
                            }
                            out.push(Node::Group { kind, node: Box::new(body) });
                            out.push(self.seq(rest, known, cases)?);
                            return Some(Node::Cat(out));
                        }
                        body => vec![body],
                    };
                    let mut all = Vec::new();
                    for b in &branches {
                        groups_in(b, &mut all);
                    }
                    let mut alts = Vec::with_capacity(branches.len());
                    for b in &branches {
                        let mut inner = Vec::new();
                        groups_in(b, &mut inner);
                        // the branch must not test its own groups, and the
                        // tested ones it defines must take part for sure
                        let mut def = Vec::new();
                        definite_groups(b, &mut def);
                        if inner.iter().any(|g| self.refs.contains(g) && !def.contains(g)) {
                            return None;
                        }
                        let mut local = Vec::new();
                        cond_refs(b, &mut local);
                        if local.iter().any(|g| inner.contains(g)) {
                            return None;
                        }
                        let rb = resolve(b, &known)?;
                        let mut k = known.clone();
                        if let GroupKind::Capture(g) = kind {
                            k.insert(g, true);
                        }
                        for g in &all {
                            k.insert(*g, inner.contains(g));
                        }
                        *cases += 1;
                        if *cases > MAX_CASES {
                            return None;
                        }
                        let head = Node::Group { kind: kind.clone(), node: Box::new(rb) };
                        let tail = self.seq(rest.clone(), k, cases)?;
                        alts.push(Node::Cat(vec![head, tail]));
                    }
                    out.push(non_capture(Node::Alt(alts)));
                    return Some(Node::Cat(out));
                }
                Node::Repeat { node, min: 0, max: Some(1), kind: kind @ (RepKind::Greedy | RepKind::Lazy) } => {
                    let rest: Vec<Node> = it.collect();
                    let mut inner = Vec::new();
                    groups_in(&node, &mut inner);
                    let mut absent_known = known.clone();
                    for g in inner {
                        absent_known.insert(g, false);
                    }
                    *cases += 2;
                    if *cases > MAX_CASES {
                        return None;
                    }
                    let mut with = vec![*node];
                    with.extend(rest.iter().cloned());
                    let present = self.seq(with, known, cases)?;
                    let absent = self.seq(rest, absent_known, cases)?;
                    let alts = match kind {
                        RepKind::Lazy => vec![absent, present],
                        _ => vec![present, absent],
                    };
                    out.push(non_capture(Node::Alt(alts)));
                    return Some(Node::Cat(out));
                }
                _ => return None,
            }
        }
        Some(Node::Cat(out))
    }

    /// Does the body of a group define a tested group?
    fn mentions_inner(&self, body: &Node) -> bool {
        let mut g = Vec::new();
        groups_in(body, &mut g);
        g.iter().any(|g| self.refs.contains(g))
    }
}

fn flatten(n: Node) -> Vec<Node> {
    match n {
        Node::Cat(v) => v,
        other => vec![other],
    }
}

/// Nested concatenations spliced into one.
fn flatten_cat(v: Vec<Node>) -> Vec<Node> {
    let mut out = Vec::with_capacity(v.len());
    for c in v {
        match c {
            Node::Cat(inner) => out.extend(flatten_cat(inner)),
            other => out.push(other),
        }
    }
    out
}

fn renumber(n: &mut Node, map: &mut Vec<usize>) {
    match n {
        Node::Group { kind, node } => {
            if let GroupKind::Capture(g) = kind {
                map.push(*g);
                *g = map.len() - 1;
            }
            renumber(node, map);
        }
        Node::Cat(v) | Node::Alt(v) => v.iter_mut().for_each(|c| renumber(c, map)),
        Node::Repeat { node, .. } | Node::Look { node, .. } => renumber(node, map),
        Node::Cond { yes, no, .. } => {
            renumber(yes, map);
            renumber(no, map);
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// (?:(?!LIT).)*

/// What surely comes right after a node.
#[derive(Clone, Debug, Default)]
struct Follow {
    /// These chars (case-sensitive literals) …
    lit: Vec<char>,
    /// … and then `$`.
    end: bool,
}

/// `LIT` when `n` is the body `(?!LIT).` (`.` without DOTALL).
pub(super) fn avoid_body(n: &Node) -> Option<Vec<char>> {
    let n = match n {
        Node::Group { kind: GroupKind::NonCapture, node } => node,
        other => other,
    };
    let Node::Cat(v) = n else { return None };
    let [Node::Look { ahead: true, neg: true, node }, Node::Any { dotall: false }] = v.as_slice() else {
        return None;
    };
    let lits = match &**node {
        Node::Cat(l) => l.as_slice(),
        one => std::slice::from_ref(one),
    };
    let mut out = Vec::new();
    for l in lits {
        match l {
            Node::Lit { c, icase: false } if *c != '\n' => out.push(*c),
            _ => return None,
        }
    }
    (!out.is_empty() && out.len() <= MAX_LIT).then_some(out)
}

fn avoid(n: Node, f: &Follow) -> Node {
    match n {
        Node::Cat(v) => {
            let v = flatten_cat(v);
            let mut out = Vec::with_capacity(v.len());
            for i in 0..v.len() {
                let mut lit = Vec::new();
                let mut j = i + 1;
                while let Some(Node::Lit { c, icase: false }) = v.get(j) {
                    lit.push(*c);
                    j += 1;
                }
                let fi = match v.get(j) {
                    None => Follow { lit: lit.iter().chain(&f.lit).copied().collect(), end: f.end },
                    Some(Node::End { .. }) => Follow { lit, end: true },
                    Some(_) => Follow { lit, end: false },
                };
                out.push(avoid(v[i].clone(), &fi));
            }
            Node::Cat(out)
        }
        Node::Alt(v) => Node::Alt(v.into_iter().map(|c| avoid(c, f)).collect()),
        Node::Group { kind, node } => Node::Group { kind, node: Box::new(avoid(*node, f)) },
        Node::Repeat { node, min: 0, max: None, kind: kind @ (RepKind::Greedy | RepKind::Lazy) } => {
            if let Some(lit) = avoid_body(&node) {
                let lang = if !f.lit.is_empty() && f.lit.starts_with(&lit) {
                    kmp_language(&lit, true)
                } else if f.lit.is_empty() && f.end {
                    kmp_language(&lit, false)
                } else {
                    None
                };
                if let Some(l) = lang {
                    return l;
                }
            }
            Node::Repeat { node: Box::new(avoid(*node, &Follow::default())), min: 0, max: None, kind }
        }
        Node::Repeat { node, min, max, kind } => {
            Node::Repeat { node: Box::new(avoid(*node, &Follow::default())), min, max, kind }
        }
        other => other,
    }
}

/// KMP automaton state after reading `c` in state `k` (`k < lit.len()`).
fn kmp_next(lit: &[char], k: usize, c: char) -> usize {
    let mut s: Vec<char> = lit[..k].to_vec();
    s.push(c);
    (0..=s.len().min(lit.len())).rev().find(|&j| s[s.len() - j..] == lit[..j]).unwrap_or(0)
}

fn alt2(a: Option<Node>, b: Node) -> Node {
    match a {
        None => b,
        Some(Node::Group { kind: GroupKind::NonCapture, node }) if matches!(*node, Node::Alt(_)) => {
            let Node::Alt(mut v) = *node else { unreachable!() };
            v.push(b);
            non_capture(Node::Alt(v))
        }
        Some(a) => non_capture(Node::Alt(vec![a, b])),
    }
}

/// Text without newline that never completes `lit` (`before_lit` = false),
/// or that, followed by `lit`, completes it first at the very end.
#[allow(clippy::needless_range_loop)] // state-elimination over a matrix
pub(super) fn kmp_language(lit: &[char], before_lit: bool) -> Option<Node> {
    let m = lit.len();
    let (s, fin) = (m, m + 1);
    let n = m + 2;
    let mut r: Vec<Vec<Option<Node>>> = vec![vec![None; n]; n];
    r[s][0] = Some(Node::Empty);
    let mut distinct: Vec<char> = lit.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    for k in 0..m {
        for &c in &distinct {
            let j = kmp_next(lit, k, c);
            if j < m {
                let e = r[k][j].take();
                r[k][j] = Some(alt2(e, Node::Lit { c, icase: false }));
            }
        }
        let mut items: Vec<SetItem> = distinct.iter().map(|&c| SetItem::Char(c)).collect();
        items.push(SetItem::Char('\n'));
        let other = Node::Set(Set { negated: true, items, icase: false });
        let e = r[k][0].take();
        r[k][0] = Some(alt2(e, other));
        let ok = if before_lit {
            let mut st = k;
            let mut ok = true;
            for (i, &c) in lit.iter().enumerate() {
                st = kmp_next(lit, st, c);
                if st == m && i + 1 < m {
                    ok = false;
                    break;
                }
                if st == m {
                    break;
                }
            }
            ok && st == m
        } else {
            true
        };
        if ok {
            r[k][fin] = Some(Node::Empty);
        }
    }
    for k in (0..m).rev() {
        let lp = r[k][k].take().map(|l| Node::Repeat {
            node: Box::new(non_capture(l)),
            min: 0,
            max: None,
            kind: RepKind::Greedy,
        });
        for p in 0..n {
            if p == k {
                continue;
            }
            let Some(pk) = r[p][k].clone() else { continue };
            for q in 0..n {
                if q == k {
                    continue;
                }
                let Some(kq) = r[k][q].clone() else { continue };
                let mut cat = vec![pk.clone()];
                if let Some(l) = &lp {
                    cat.push(l.clone());
                }
                cat.push(kq);
                let path = non_capture(Node::Cat(cat));
                let e = r[p][q].take();
                r[p][q] = Some(alt2(e, path));
            }
        }
        for p in 0..n {
            r[p][k] = None;
            r[k][p] = None;
        }
    }
    r[s][fin].take()
}
