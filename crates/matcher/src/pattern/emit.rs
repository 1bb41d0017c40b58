//! AST → Rust regex syntax (accepted by both `regex` and `fancy-regex`),
//! plus the rewrite that removes look-behinds which are provably always true
//! (fail2ban's IPv6 regex ends in `(?<=:):` right after a repetition whose
//! every branch ends in `:`), so `<HOST>` stays on the linear engine.

use super::pyre::{GroupKind, Node, Perl, PerlKind, RepKind, Set, SetItem};

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct EmitOpts {
    /// Python's non-MULTILINE `$` exactly (`(?=\n?\z)`, needs look-ahead);
    /// otherwise `(?m:$)`, exact whenever the haystack has no newline
    /// except possibly a final one.
    pub exact_dollar: bool,
    /// Emit a linear superset of the pattern (look-arounds dropped,
    /// back-references as `(?s:.*)`, …) for literal analysis.
    pub relaxed: bool,
    /// Target is `fancy-regex` (no `(?-u:…)` there).
    pub fancy: bool,
    /// A variant only ever run on ASCII haystacks: Python's Unicode classes
    /// restricted to ASCII (same results there, much smaller automata).
    pub ascii_hay: bool,
    /// For empty haystacks: Python's `\B` never matches in an empty string.
    pub empty_hay: bool,
}

/// Does the (rewritten) AST need the backtracking engine?
pub(crate) fn needs_backtracking(n: &Node) -> bool {
    match n {
        Node::Look { .. } | Node::Backref(_) | Node::Cond { .. } => true,
        Node::Group { kind: GroupKind::Atomic, .. } => true,
        Node::Repeat { kind: RepKind::Possessive, .. } => true,
        Node::Cat(v) | Node::Alt(v) => v.iter().any(needs_backtracking),
        Node::Group { node, .. } | Node::Repeat { node, .. } => needs_backtracking(node),
        _ => false,
    }
}

/// Does the AST contain `\B`?
pub(crate) fn has_non_boundary(n: &Node) -> bool {
    match n {
        Node::WordB { neg: true, .. } => true,
        Node::Cat(v) | Node::Alt(v) => v.iter().any(has_non_boundary),
        Node::Group { node, .. } | Node::Repeat { node, .. } | Node::Look { node, .. } => has_non_boundary(node),
        Node::Cond { yes, no, .. } => has_non_boundary(yes) || has_non_boundary(no),
        _ => false,
    }
}

/// Does the AST contain a non-MULTILINE `$`?
pub(crate) fn has_plain_dollar(n: &Node) -> bool {
    match n {
        Node::End { multiline: false } => true,
        Node::Cat(v) | Node::Alt(v) => v.iter().any(has_plain_dollar),
        Node::Group { node, .. } | Node::Repeat { node, .. } | Node::Look { node, .. } => has_plain_dollar(node),
        Node::Cond { yes, no, .. } => has_plain_dollar(yes) || has_plain_dollar(no),
        _ => false,
    }
}

/// Does the AST match a newline explicitly (a literal `\n` or a set naming it)?
pub(crate) fn has_explicit_newline(n: &Node) -> bool {
    match n {
        Node::Lit { c: '\n', .. } => true,
        Node::Set(s) => s.items.iter().any(|i| match i {
            SetItem::Char(c) => *c == '\n',
            SetItem::Range(a, b) => (*a..=*b).contains(&'\n'),
            SetItem::Perl(_) => false,
        }),
        Node::Cat(v) | Node::Alt(v) => v.iter().any(has_explicit_newline),
        Node::Group { node, .. } | Node::Repeat { node, .. } | Node::Look { node, .. } => has_explicit_newline(node),
        Node::Cond { yes, no, .. } => has_explicit_newline(yes) || has_explicit_newline(no),
        _ => false,
    }
}

/// Is there a capture group inside a repetition whose body can match empty?
/// (Python records the final empty iteration in such groups; the Rust
/// engines keep the last non-empty one.)
pub(crate) fn has_capture_in_nullable_repeat(n: &Node) -> bool {
    fn has_capture(n: &Node) -> bool {
        match n {
            Node::Group { kind: GroupKind::Capture(_), .. } => true,
            Node::Cat(v) | Node::Alt(v) => v.iter().any(has_capture),
            Node::Group { node, .. } | Node::Repeat { node, .. } | Node::Look { node, .. } => has_capture(node),
            Node::Cond { yes, no, .. } => has_capture(yes) || has_capture(no),
            _ => false,
        }
    }
    match n {
        Node::Repeat { node, max, .. } => {
            (max.is_none_or(|m| m > 1) && super::pyre::width(node).0 == 0 && has_capture(node))
                || has_capture_in_nullable_repeat(node)
        }
        Node::Cat(v) | Node::Alt(v) => v.iter().any(has_capture_in_nullable_repeat),
        Node::Group { node, .. } | Node::Look { node, .. } => has_capture_in_nullable_repeat(node),
        Node::Cond { yes, no, .. } => has_capture_in_nullable_repeat(yes) || has_capture_in_nullable_repeat(no),
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// Look-behind elimination

const MAX_SET: usize = 64;

/// Chars a node's match can end with (None = unknown/too many) and whether
/// it can match the empty string.
fn last_chars(n: &Node) -> (Option<Vec<char>>, bool) {
    match n {
        Node::Empty
        | Node::Start { .. }
        | Node::End { .. }
        | Node::StartText
        | Node::EndText
        | Node::WordB { .. }
        | Node::Look { .. } => (Some(Vec::new()), true),
        Node::Lit { c, icase } => (lit_chars(*c, *icase), false),
        Node::Any { .. } => (None, false),
        Node::Set(s) => (set_chars(s), false),
        Node::Cat(v) => {
            let mut acc: Option<Vec<char>> = Some(Vec::new());
            for child in v.iter().rev() {
                let (l, nullable) = last_chars(child);
                acc = union(acc, l);
                if !nullable {
                    return (acc, false);
                }
            }
            (acc, true)
        }
        Node::Alt(v) => {
            let mut acc = Some(Vec::new());
            let mut nullable = false;
            for child in v {
                let (l, nl) = last_chars(child);
                acc = union(acc, l);
                nullable |= nl;
            }
            (acc, nullable)
        }
        Node::Group { node, .. } => last_chars(node),
        Node::Repeat { node, min, max, .. } => {
            let (l, nl) = last_chars(node);
            if *max == Some(0) {
                return (Some(Vec::new()), true);
            }
            (l, nl || *min == 0)
        }
        Node::Backref(_) | Node::Cond { .. } => (None, true),
    }
}

fn lit_chars(c: char, icase: bool) -> Option<Vec<char>> {
    if !icase {
        return Some(vec![c]);
    }
    if c.is_ascii() {
        let mut v = vec![c.to_ascii_lowercase(), c.to_ascii_uppercase()];
        // Unicode simple case folding adds a few non-ASCII equivalents
        match c.to_ascii_lowercase() {
            'k' => v.push('\u{212A}'),
            's' => v.push('\u{17F}'),
            _ => {}
        }
        v.dedup();
        Some(v)
    } else {
        None
    }
}

fn set_chars(s: &Set) -> Option<Vec<char>> {
    if s.negated {
        return None;
    }
    let mut v = Vec::new();
    for item in &s.items {
        match item {
            SetItem::Char(c) => v.extend(lit_chars(*c, s.icase)?),
            SetItem::Range(a, b) => {
                if (*b as u32) - (*a as u32) > MAX_SET as u32 {
                    return None;
                }
                for c in *a..=*b {
                    v.extend(lit_chars(c, s.icase)?);
                }
            }
            SetItem::Perl(_) => return None,
        }
        if v.len() > MAX_SET {
            return None;
        }
    }
    Some(v)
}

fn union(a: Option<Vec<char>>, b: Option<Vec<char>>) -> Option<Vec<char>> {
    let (mut a, b) = (a?, b?);
    for c in b {
        if !a.contains(&c) {
            a.push(c);
        }
    }
    if a.len() > MAX_SET { None } else { Some(a) }
}

/// Set membership of `c` in a single-char look-behind body, if decidable.
fn body_contains(body: &Node, c: char) -> Option<bool> {
    match body {
        Node::Lit { c: l, icase } => Some(lit_chars(*l, *icase)?.contains(&c)),
        Node::Set(s) => {
            let chars = set_chars(&Set { negated: false, ..s.clone() })?;
            Some(chars.contains(&c) != s.negated)
        }
        Node::Group { kind: GroupKind::NonCapture, node } => body_contains(node, c),
        _ => None,
    }
}

/// Rewrites always-true single-char look-behinds to nothing; `prev` is the set
/// of chars that may precede the node (None = unknown, incl. start of text).
pub(crate) fn elide_lookbehinds(n: Node, prev: Option<Vec<char>>) -> Node {
    match n {
        Node::Look { ahead: false, neg, node } => {
            if let Some(p) = &prev
                && !p.is_empty()
            {
                let decided: Option<Vec<bool>> = p.iter().map(|&c| body_contains(&node, c)).collect();
                if let Some(d) = decided {
                    // positive: every possible preceding char is in the body set
                    // negative: none is
                    if (!neg && d.iter().all(|&x| x)) || (neg && d.iter().all(|&x| !x)) {
                        return Node::Empty;
                    }
                }
            }
            Node::Look { ahead: false, neg, node }
        }
        Node::Cat(v) => {
            let mut out = Vec::with_capacity(v.len());
            let mut cur = prev;
            for child in v {
                let (l, nullable) = last_chars(&child);
                let next = if nullable { union(l, cur.clone()) } else { l };
                out.push(elide_lookbehinds(child, cur));
                cur = next;
            }
            Node::Cat(out)
        }
        Node::Alt(v) => Node::Alt(v.into_iter().map(|c| elide_lookbehinds(c, prev.clone())).collect()),
        Node::Group { kind, node } => Node::Group { kind, node: Box::new(elide_lookbehinds(*node, prev)) },
        Node::Repeat { node, min, max, kind } => {
            let (l, _) = last_chars(&node);
            let inner_prev = union(prev, l);
            Node::Repeat { node: Box::new(elide_lookbehinds(*node, inner_prev)), min, max, kind }
        }
        other => other,
    }
}

/// Python lets zero-width items (look-arounds, empty groups) be repeated;
/// the engines do not. Python's empty-iteration rule makes `X*`/`X?` try X
/// once (`(?:X|)`), `X*?` skip it, and `X+`/`X{n}` equal X.
pub(crate) fn simplify_zero_width_repeats(n: Node) -> Node {
    match n {
        Node::Repeat { node, min, max, kind } => {
            let node = simplify_zero_width_repeats(*node);
            if super::pyre::width(&node) != (0, Some(0)) {
                return Node::Repeat { node: Box::new(node), min, max, kind };
            }
            if max == Some(0) {
                return Node::Empty;
            }
            if min >= 1 {
                return node;
            }
            match kind {
                RepKind::Lazy => Node::Empty,
                _ => Node::Group { kind: GroupKind::NonCapture, node: Box::new(Node::Alt(vec![node, Node::Empty])) },
            }
        }
        Node::Cat(v) => Node::Cat(v.into_iter().map(simplify_zero_width_repeats).collect()),
        Node::Alt(v) => Node::Alt(v.into_iter().map(simplify_zero_width_repeats).collect()),
        Node::Group { kind, node } => Node::Group { kind, node: Box::new(simplify_zero_width_repeats(*node)) },
        Node::Look { ahead, neg, node } => {
            Node::Look { ahead, neg, node: Box::new(simplify_zero_width_repeats(*node)) }
        }
        Node::Cond { group, yes, no } => Node::Cond {
            group,
            yes: Box::new(simplify_zero_width_repeats(*yes)),
            no: Box::new(simplify_zero_width_repeats(*no)),
        },
        other => other,
    }
}

// ---------------------------------------------------------------------------
// Emission

fn push_char(out: &mut String, c: char, in_class: bool) {
    if c != ' ' && (c.is_control() || c.is_whitespace() || c == '\u{FEFF}') {
        out.push_str(&format!("\\x{{{:X}}}", c as u32));
    } else if regex_syntax::is_meta_character(c) || (in_class && matches!(c, '&' | '~' | '-' | '[' | ']' | '^')) {
        out.push('\\');
        out.push(c);
    } else {
        out.push(c);
    }
}

const UNI_WORD: &str = r"\p{L}\p{N}_";
const ASCII_WORD: &str = "0-9A-Za-z_";
const UNI_SPACE: &str = r"\s\x{1C}-\x{1F}";
/// Python's `(?a)` `\s`.
const ASCII_SPACE: &str = r"\x{9}-\x{D}\x{20}";
/// Python's Unicode `\s` restricted to ASCII.
const UNI_SPACE_IN_ASCII: &str = r"\x{9}-\x{D}\x{1C}-\x{20}";

fn perl_items(p: Perl, ascii_hay: bool) -> &'static str {
    match (p.kind, p.ascii, ascii_hay) {
        (PerlKind::Digit, false, false) => r"\d",
        (PerlKind::Digit, _, _) => "0-9",
        (PerlKind::Word, false, false) => UNI_WORD,
        (PerlKind::Word, _, _) => ASCII_WORD,
        (PerlKind::Space, false, false) => UNI_SPACE,
        (PerlKind::Space, false, true) => UNI_SPACE_IN_ASCII,
        (PerlKind::Space, true, _) => ASCII_SPACE,
    }
}

fn emit_perl_in_class(out: &mut String, p: Perl, ascii_hay: bool) {
    if p.neg {
        out.push_str("[^");
        out.push_str(perl_items(p, ascii_hay));
        out.push(']');
    } else {
        out.push_str(perl_items(p, ascii_hay));
    }
}

fn emit_set(out: &mut String, s: &Set, ascii_hay: bool) {
    if !s.negated
        && let [SetItem::Perl(p)] = s.items.as_slice()
    {
        // `\d` / `\D` are Python's exactly in Unicode mode
        if p.kind == PerlKind::Digit && !p.ascii && !ascii_hay {
            out.push_str(if p.neg { r"\D" } else { r"\d" });
            return;
        }
        out.push('[');
        if p.neg {
            out.push('^');
        }
        out.push_str(perl_items(*p, ascii_hay));
        out.push(']');
        return;
    }
    out.push('[');
    if s.negated {
        out.push('^');
    }
    if s.icase
        && !ascii_hay
        && s.items.iter().any(|i| match i {
            SetItem::Char(c) => matches!(c, 'i' | 'I'),
            SetItem::Range(a, b) => (*a..=*b).contains(&'i') || (*a..=*b).contains(&'I'),
            SetItem::Perl(_) => false,
        })
    {
        out.push_str(r"\x{130}\x{131}");
    }
    for item in &s.items {
        match item {
            SetItem::Char(c) => push_char(out, *c, true),
            SetItem::Range(a, b) => {
                push_char(out, *a, true);
                out.push('-');
                push_char(out, *b, true);
            }
            SetItem::Perl(p) => emit_perl_in_class(out, *p, ascii_hay),
        }
    }
    out.push(']');
}

fn is_atom(n: &Node) -> bool {
    matches!(n, Node::Lit { .. } | Node::Any { .. } | Node::Set(_) | Node::Group { .. })
}

pub(crate) fn emit(n: &Node, names: &[Option<String>], opts: EmitOpts, out: &mut String) {
    match n {
        Node::Empty => {}
        // Python's ignore-case also folds the dotted/dotless Turkish i (simple
        // lower-case mapping); Unicode simple case folding does not.
        Node::Lit { c: 'i' | 'I', icase: true } => out.push_str(r"[iI\x{130}\x{131}]"),
        Node::Lit { c, .. } => push_char(out, *c, false),
        Node::Any { dotall } => out.push_str(if *dotall { "(?s:.)" } else { "." }),
        Node::Set(s) => emit_set(out, s, opts.ascii_hay),
        Node::Start { multiline } => out.push_str(if *multiline { "(?m:^)" } else { r"\A" }),
        Node::End { multiline } => {
            out.push_str(if *multiline || !opts.exact_dollar || opts.relaxed { "(?m:$)" } else { r"(?=\n?\z)" })
        }
        Node::StartText => out.push_str(r"\A"),
        Node::EndText => out.push_str(r"\z"),
        Node::WordB { neg: true, .. } if opts.empty_hay => out.push_str(r"[^\x{0}-\x{10FFFF}]"),
        Node::WordB { neg, ascii } => out.push_str(match (neg, ascii, opts.fancy) {
            (false, false, _) => r"\b",
            (true, false, _) => r"\B",
            (false, true, false) => r"(?-u:\b)",
            (true, true, false) => r"(?-u:\B)",
            (false, true, true) => r"(?:(?<![0-9A-Za-z_])(?=[0-9A-Za-z_])|(?<=[0-9A-Za-z_])(?![0-9A-Za-z_]))",
            (true, true, true) => r"(?:(?<=[0-9A-Za-z_])(?=[0-9A-Za-z_])|(?<![0-9A-Za-z_])(?![0-9A-Za-z_]))",
        }),
        Node::Cat(v) => {
            for c in v {
                emit(c, names, opts, out);
            }
        }
        Node::Alt(v) => {
            for (i, c) in v.iter().enumerate() {
                if i > 0 {
                    out.push('|');
                }
                emit(c, names, opts, out);
            }
        }
        Node::Group { kind, node } => {
            match kind {
                GroupKind::Capture(g) => match names.get(*g).and_then(|n| n.as_deref()) {
                    Some(name) => {
                        out.push_str("(?P<");
                        out.push_str(name);
                        out.push('>');
                    }
                    None => out.push('('),
                },
                GroupKind::NonCapture => out.push_str("(?:"),
                GroupKind::Atomic => out.push_str(if opts.relaxed { "(?:" } else { "(?>" }),
                GroupKind::Flags(Some(true)) => out.push_str("(?i:"),
                GroupKind::Flags(Some(false)) => out.push_str("(?-i:"),
                GroupKind::Flags(None) => out.push_str("(?:"),
            }
            emit(node, names, opts, out);
            out.push(')');
        }
        Node::Repeat { node, min, max, kind } => {
            if is_atom(node) {
                emit(node, names, opts, out);
            } else {
                out.push_str("(?:");
                emit(node, names, opts, out);
                out.push(')');
            }
            match (min, max) {
                (0, None) => out.push('*'),
                (1, None) => out.push('+'),
                (0, Some(1)) => out.push('?'),
                (m, None) => out.push_str(&format!("{{{m},}}")),
                (m, Some(x)) if m == x => out.push_str(&format!("{{{m}}}")),
                (m, Some(x)) => out.push_str(&format!("{{{m},{x}}}")),
            }
            match kind {
                RepKind::Greedy => {}
                RepKind::Lazy => out.push('?'),
                RepKind::Possessive => {
                    if !opts.relaxed {
                        out.push('+')
                    }
                }
            }
        }
        Node::Backref(g) => {
            if opts.relaxed {
                out.push_str("(?s:.*)");
            } else {
                out.push_str(&format!("\\k<{g}>"));
            }
        }
        Node::Cond { group, yes, no } => {
            if opts.relaxed {
                out.push_str("(?:");
                emit(yes, names, opts, out);
                out.push('|');
                emit(no, names, opts, out);
                out.push(')');
            } else {
                out.push_str(&format!("(?({group})"));
                emit(yes, names, opts, out);
                out.push('|');
                emit(no, names, opts, out);
                out.push(')');
            }
        }
        Node::Look { ahead, neg, node } => {
            if opts.relaxed {
                return;
            }
            out.push_str(match (ahead, neg) {
                (true, false) => "(?=",
                (true, true) => "(?!",
                (false, false) => "(?<=",
                (false, true) => "(?<!",
            });
            emit(node, names, opts, out);
            out.push(')');
        }
    }
}
