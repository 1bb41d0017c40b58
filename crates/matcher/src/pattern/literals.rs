//! Required-literal analysis: a set of strings such that every match of a
//! pattern contains at least one of them (a sound prefilter for the runner).
//!
//! Works on the `regex-syntax` HIR of a linear *superset* of the pattern
//! (look-arounds dropped, back-references widened), so the set is sound for
//! the backtracking patterns too.

use regex_syntax::hir::{Class, Hir, HirKind};

/// Most literals in one set.
const MAX_LITS: usize = 64;
/// Most chars a class may have to be expanded into literals.
const MAX_CLASS: usize = 8;

#[derive(Clone, Debug)]
struct Lits {
    set: Vec<Vec<u8>>,
    /// Every match of the node is exactly one of `set`.
    exact: bool,
}

impl Lits {
    fn exact(set: Vec<Vec<u8>>) -> Self {
        Lits { set, exact: true }
    }

    fn useful(&self) -> bool {
        !self.set.is_empty() && self.set.iter().all(|l| !l.is_empty())
    }

    /// Higher is better: longest shortest literal, then fewest literals.
    fn score(&self) -> (usize, isize) {
        let min = self.set.iter().map(Vec::len).min().unwrap_or(0);
        (min.min(16), -(self.set.len() as isize))
    }
}

fn cross(a: &Lits, b: &Lits) -> Option<Lits> {
    if a.set.len().saturating_mul(b.set.len()) > MAX_LITS {
        return None;
    }
    let mut set = Vec::with_capacity(a.set.len() * b.set.len());
    for x in &a.set {
        for y in &b.set {
            let mut l = x.clone();
            l.extend_from_slice(y);
            if !set.contains(&l) {
                set.push(l);
            }
        }
    }
    Some(Lits { set, exact: a.exact && b.exact })
}

fn better(a: Option<Lits>, b: Option<Lits>) -> Option<Lits> {
    match (a, b) {
        (Some(a), Some(b)) => {
            if !b.useful() {
                return Some(a);
            }
            if !a.useful() || b.score() > a.score() { Some(b) } else { Some(a) }
        }
        (a, None) => a,
        (None, b) => b,
    }
}

fn class_lits(c: &Class) -> Option<Lits> {
    match c {
        Class::Unicode(u) => {
            let mut n = 0usize;
            for r in u.iter() {
                n += (r.end() as usize) - (r.start() as usize) + 1;
                if n > MAX_CLASS {
                    return None;
                }
            }
            let mut set = Vec::new();
            for r in u.iter() {
                for c in r.start()..=r.end() {
                    set.push(c.to_string().into_bytes());
                }
            }
            Some(Lits::exact(set))
        }
        Class::Bytes(b) => {
            let mut set = Vec::new();
            for r in b.iter() {
                for c in r.start()..=r.end() {
                    if !c.is_ascii() {
                        return None;
                    }
                    set.push(vec![c]);
                    if set.len() > MAX_CLASS {
                        return None;
                    }
                }
            }
            Some(Lits::exact(set))
        }
    }
}

/// Some(lits): every match of `h` contains one of lits (and if `exact`, is one).
fn required(h: &Hir) -> Option<Lits> {
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => Some(Lits::exact(vec![Vec::new()])),
        HirKind::Literal(l) => Some(Lits::exact(vec![l.0.to_vec()])),
        HirKind::Class(c) => class_lits(c),
        HirKind::Capture(c) => required(&c.sub),
        HirKind::Repetition(r) => {
            if r.min == 0 {
                return None;
            }
            let sub = required(&r.sub)?;
            if sub.exact && r.max == Some(r.min) && r.min <= 4 {
                let mut acc = sub.clone();
                for _ in 1..r.min {
                    match cross(&acc, &sub) {
                        Some(x) => acc = x,
                        None => {
                            return Some(Lits { exact: false, ..sub });
                        }
                    }
                }
                return Some(acc);
            }
            Some(Lits { exact: false, ..sub })
        }
        HirKind::Alternation(alts) => {
            let mut set: Vec<Vec<u8>> = Vec::new();
            let mut exact = true;
            for a in alts {
                let l = required(a)?;
                exact &= l.exact;
                for x in l.set {
                    if !set.contains(&x) {
                        set.push(x);
                    }
                }
                if set.len() > MAX_LITS {
                    return None;
                }
            }
            Some(Lits { set, exact })
        }
        HirKind::Concat(parts) => {
            let mut best: Option<Lits> = None;
            let mut run: Option<Lits> = None;
            let mut all_exact = true;
            for p in parts {
                match required(p) {
                    Some(l) if l.exact => {
                        run = match run.take() {
                            None => Some(l),
                            Some(r) => match cross(&r, &l) {
                                Some(x) => Some(x),
                                None => {
                                    all_exact = false;
                                    best = better(best, Some(Lits { exact: false, ..r }));
                                    Some(l)
                                }
                            },
                        };
                    }
                    Some(l) => {
                        all_exact = false;
                        if let Some(r) = run.take() {
                            best = better(best, Some(Lits { exact: false, ..r }));
                        }
                        best = better(best, Some(l));
                    }
                    None => {
                        all_exact = false;
                        if let Some(r) = run.take() {
                            best = better(best, Some(Lits { exact: false, ..r }));
                        }
                    }
                }
            }
            if all_exact && best.is_none() {
                return run.or_else(|| Some(Lits::exact(vec![Vec::new()])));
            }
            if let Some(r) = run {
                best = better(best, Some(Lits { exact: false, ..r }));
            }
            best.map(|b| Lits { exact: false, ..b })
        }
    }
}

/// Required literals of a (linear, superset) pattern in Rust syntax.
pub(crate) fn required_literals(relaxed_pattern: &str) -> Option<Vec<String>> {
    let hir = regex_syntax::ParserBuilder::new().build().parse(relaxed_pattern).ok()?;
    let lits = required(&hir)?;
    if !lits.useful() {
        return None;
    }
    let mut out = Vec::with_capacity(lits.set.len());
    for l in lits.set {
        out.push(String::from_utf8(l).ok()?);
    }
    out.sort();
    out.dedup();
    Some(out)
}

/// Every match of a linear pattern (in the `regex` crate's syntax, as the
/// engine runs it) starts at the start of the text with one of these
/// (non-empty) prefixes; None when that is not known.
///
/// The prefixes depend only on the pattern's first items: the extractor
/// walks the top-level concatenation and stops at the first item after
/// which every prefix is inexact. So the text up to such an item (one that
/// is not literal text) is parsed alone first, and its answer is taken
/// when it shows that stop; else the whole pattern is parsed. (Most of a
/// pattern's parse is its Unicode classes, most of them after the stop.)
pub(crate) fn anchored_prefixes(translated: &str, heads: &[usize]) -> Option<Vec<Vec<u8>>> {
    for head in heads.iter().filter_map(|&e| translated.get(..e)) {
        if let Some(got) = prefixes_of(head, true) {
            return got;
        }
    }
    prefixes_of(translated, false)?
}

/// Most leading texts [`anchored_prefixes`] tries before the whole pattern.
const MAX_HEADS: usize = 3;

/// Where the leading texts for [`anchored_prefixes`] end in the pattern
/// whose syntax tree is `ast`: after each of its first top-level items that
/// are not literal text, assertions or flags (at most [`MAX_HEADS`]; none
/// when the pattern is not a concatenation). From the tree the compiler
/// parses anyway (the syntax check).
pub(crate) fn head_ends(ast: &regex_syntax::ast::Ast) -> Vec<usize> {
    use regex_syntax::ast::Ast;
    let Ast::Concat(c) = ast else { return Vec::new() };
    c.asts
        .iter()
        .filter(|a| !matches!(a, Ast::Literal(_) | Ast::Assertion(_) | Ast::Flags(_) | Ast::Empty(_)))
        .map(|a| a.span().end.offset)
        .take(MAX_HEADS)
        .collect()
}

/// [`anchored_prefixes`] of `text`; with `head`, None (undecided) unless
/// the extraction stopped inside `text`: its prefixes are all inexact
/// (the extractor stops there) and its last item is not literal text (the
/// whole pattern's next item cannot join it), so the whole pattern has
/// the same first items and the same answer.
fn prefixes_of(text: &str, head: bool) -> Option<Option<Vec<Vec<u8>>>> {
    use regex_syntax::hir::{HirKind, Look, literal};
    let Ok(hir) = regex_syntax::ParserBuilder::new().build().parse(text) else {
        return (!head).then_some(None);
    };
    let HirKind::Concat(parts) = hir.kind() else { return (!head).then_some(None) };
    if head && parts.last().is_none_or(|h| matches!(h.kind(), HirKind::Literal(_))) {
        return None;
    }
    let anchored = parts.iter().take_while(|h| matches!(h.kind(), HirKind::Look(Look::Start))).count();
    if anchored == 0 {
        // (the same first item in the whole pattern)
        return Some(None);
    }
    let rest = regex_syntax::hir::Hir::concat(parts[anchored..].to_vec());
    let seq = literal::Extractor::new().kind(literal::ExtractKind::Prefix).extract(&rest);
    if head && !seq.is_inexact() {
        return None;
    }
    let Some(lits) = seq.literals() else { return Some(None) };
    if lits.is_empty() || lits.iter().any(|l| l.as_bytes().is_empty()) {
        return Some(None);
    }
    let mut out: Vec<Vec<u8>> = lits.iter().map(|l| l.as_bytes().to_vec()).collect();
    out.sort();
    out.dedup();
    Some(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_sets() {
        assert_eq!(required_literals("abc"), Some(vec!["abc".to_string()]));
        assert_eq!(required_literals("a.*bcd"), Some(vec!["bcd".to_string()]));
        assert_eq!(required_literals("(?:foo|bar)x"), Some(vec!["barx".to_string(), "foox".to_string()]));
        assert_eq!(required_literals(".*"), None);
        assert_eq!(required_literals("a?"), None);
        assert_eq!(required_literals("(?:foo|.*)"), None);
        assert_eq!(required_literals("[aA]uth"), Some(vec!["Auth".to_string(), "auth".to_string()]));
    }

    /// Every match of a linear pattern (in the `regex` crate's syntax, as the
    /// engine runs it) starts at the start of the text with one of these
    /// (non-empty) prefixes; None when that is not known.
    fn anchored_prefixes_reference(translated: &str) -> Option<Vec<Vec<u8>>> {
        use regex_syntax::hir::{HirKind, Look, literal};
        let hir = regex_syntax::ParserBuilder::new().build().parse(translated).ok()?;
        let HirKind::Concat(parts) = hir.kind() else { return None };
        let anchored = parts.iter().take_while(|h| matches!(h.kind(), HirKind::Look(Look::Start))).count();
        if anchored == 0 {
            return None;
        }
        let rest = regex_syntax::hir::Hir::concat(parts[anchored..].to_vec());
        let seq = literal::Extractor::new().kind(literal::ExtractKind::Prefix).extract(&rest);
        let lits = seq.literals()?;
        if lits.is_empty() || lits.iter().any(|l| l.as_bytes().is_empty()) {
            return None;
        }
        let mut out: Vec<Vec<u8>> = lits.iter().map(|l| l.as_bytes().to_vec()).collect();
        out.sort();
        out.dedup();
        Some(out)
    }

    /// Parsing leading texts first gives the same prefixes as parsing the
    /// whole pattern, on sshd-like patterns and random concatenations of
    /// pieces (literal text, small and big classes, groups that end in
    /// literal text, repetitions, alternations, flags, a literal longer
    /// than the extractor keeps).
    #[test]
    fn anchored_prefixes_equal_the_whole_parse() {
        use crate::test_util::xorshift;
        let mut texts: Vec<String> = [
            r"^Failed \S+ for (?P<u>invalid user )?(?P<v>\S+) from (?P<h>\d+\.\d+)",
            r"^[aA]uthentication (?:failure|error|failed) for (?P<u>.*) from x$",
            r"(?i)^user (?P<u>\S+) from",
            r"^(?:error|fatal): (?:PAM: )?.+$",
            r"^",
            r"^abc",
            r"abc\S+",
            r"^(?:a|b)",
        ]
        .iter()
        .map(|t| t.to_string())
        .collect();
        let pieces = [
            "a", "bc ", r"\S+", r"\d{1,3}", "[aA]", "[^:]+", "(?:x|yz)", "(?:q)", "(?:r\\S)", "(t)?", ".*", "(?i)k",
            "(?-i)m", "(?:e|f)+", r"\s*", "w{2}", "(?:)", "$",
        ];
        let long = "L".repeat(120);
        let mut next = xorshift(0xa9c4_0d11);
        let mut decided = 0;
        for _ in 0..4000 {
            let n = 1 + next(7) as usize;
            let mut t = String::from(if next(4) == 0 { "" } else { "^" });
            for _ in 0..n {
                match next(pieces.len() as u64 + 1) as usize {
                    k if k < pieces.len() => t.push_str(pieces[k]),
                    _ => t.push_str(&long),
                }
            }
            texts.push(t);
        }
        for t in &texts {
            let want = anchored_prefixes_reference(t);
            let heads = regex_syntax::ast::parse::Parser::new().parse(t).map(|a| head_ends(&a)).unwrap_or_default();
            decided += usize::from(heads.iter().any(|&e| prefixes_of(&t[..e], true).is_some()));
            assert_eq!(anchored_prefixes(t, &heads), want, "{t:?}");
        }
        assert!(decided > 1000, "{decided}");
    }
}
