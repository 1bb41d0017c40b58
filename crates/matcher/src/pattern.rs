// Diagnostic codes of this module (pattern translation/compilation):
//
// code | severity | meaning
// -----+----------+-----------------------------------------------------------
// P001 | error    | empty regex (fail2ban: "Cannot add empty regex")
// P002 | error    | unknown `<F-...>`-looking tag (`<f-user>`, `<F-USER/>`, …);
//      |          | fail2ban would silently match it as literal text
// P003 | error    | closing tag `</F-X>` without an opening `<F-X>`
// P004 | error    | `<F-X>` opened but never closed
// P005 | error    | `</F-X>` closed twice, or `<F-X>` reopened while open
// P006 | error    | `<F-X>`…`</F-X>` not properly nested with the regex's own
//      |          | parentheses (the closing tag closes another group)
// P007 | error    | not valid Python `re` syntax (Python's message and offset)
// P008 | error    | valid Python, but rejected by the regex engine (its message)
// P009 | error    | Python construct we do not support (e.g. unknown `\N{name}`)
// P010 | warning  | prefregex without `<F-CONTENT>`: failregexes see the whole line
// P011 | warning  | capture group inside a repetition whose body can match empty
//      |          | (`(a*)*`): Python keeps the final empty iteration, we the last
//      |          | non-empty one, so that group's value can differ

//! One pattern in fail2ban's regex dialect, translated from Python `re`
//! syntax and compiled for the linear-time `regex` engine, or — when it needs
//! look-around or back-references — for a backtracking engine with a step
//! budget (`fancy-regex`), whose exhaustion is reported, never a hang.
//!
//! PUBLIC API CONTRACT (used by `runner.rs`; keep these signatures):
//! - `Pattern::compile(&Spanned, PatternKind, &CompileOptions) -> Result<Pattern, Vec<Diagnostic>>`
//! - `Pattern::captures(&self, hay: &str) -> Result<Option<Captures>, BudgetExceeded>`
//! - `Pattern::is_match(&self, hay: &str) -> Result<bool, BudgetExceeded>`
//! - `Pattern::group_names(&self) -> &[Option<String>]` (index = capture group index)
//! - `Pattern::expanded(&self) -> &str` (after tag expansion, before translation)
//! - `Pattern::is_multiline(&self) -> bool` (contains `\n` or `<SKIPLINES>`)
//! - `Pattern::engine(&self) -> Engine`
//! - `Captures` : overall span + per-group `Option<(usize, usize)>` spans
//!
//! Additions: [`Pattern::compile_with`] (explicit `MULTILINE` / `usedns`),
//! [`Pattern::captures_with`] + [`Scratch`] (allocation-free captures),
//! [`Pattern::required_literals`] (sound prefilter), [`Pattern::translated`],
//! [`Pattern::warnings`], [`Pattern::has_failure_id_group`],
//! [`Pattern::skiplines_groups`].
//!
//! # Haystack convention
//!
//! The haystack is what fail2ban searches: one line, or the lines of the
//! multi-line buffer joined by `\n`. fail2ban's buffer always ends in `\n`;
//! passing it with or without that final `\n` gives the same results, except
//! for spans of patterns that consume the final newline themselves.
//!
//! # Semantics reproduced
//!
//! - Tags exactly as fail2ban's `Regex._resolveHostTag` (same group names),
//!   then fail2ban's rewrite of wrapped global flags `((?i)x)` → `(?i:x)`.
//!   [`Pattern::expanded`] is the text fail2ban hands to `re.compile`.
//! - fail2ban compiles failregexes with `re.MULTILINE` when `maxlines > 1`,
//!   prefregex and ignoreregex without it, and never with `DOTALL`.
//!   [`Pattern::compile`] uses `MULTILINE` for failregexes (identical to
//!   non-MULTILINE on a one-line haystack without its final `\n`); a runner
//!   that knows `maxlines` should call [`Pattern::compile_with`].
//! - Python `re` → Rust: `^`/`$`/`\A`/`\Z`/`.` by flags; Python's Unicode
//!   `\w` (`[\p{L}\p{N}_]`) and `\s` (also `\x1c`–`\x1f`); classes (`[]x]`,
//!   escapes, `&&`/`--`/`~~`/nested `[` literal); octal, `\x`, `\u`, `\U`;
//!   literal `{`; inline/scoped flags (`(?x)` verbose parsed here); atomic
//!   groups and possessive quantifiers (Python 3.11 has them: backtracking
//!   engine); conditionals `(?(1)a|b)`, `(?P=name)`, `\1`.
//! - Non-MULTILINE `$` (end, or before a final `\n`) is `(?m:$)` in the linear
//!   engine — exact when the haystack has no newline before its last char;
//!   for haystacks with inner newlines an exact backtracking variant
//!   (`(?=\n?\z)`) is used automatically.
//! - Python quirks: repeated look-arounds (`(?=a)*` — the engines refuse
//!   them; rewritten by Python's empty-iteration rule), `\B` never matching
//!   in an empty string, Turkish dotted/dotless i under `(?i)`.
//! - The IPv6 part of `<HOST>`/`<ADDR>`/`<IP6>` ends in `(?<=:):`; that
//!   look-behind is provably always true where it stands (every branch
//!   before it ends in `:`), so it is dropped and `<HOST>` stays linear.
//!
//! # Speed
//!
//! - Patterns that need backtracking only for conditionals or for the
//!   `(?:(?!LIT).)*` idiom where its end is forced are rewritten for the
//!   linear engine (`pattern/linearize.rs`: case split in backtracking
//!   order, group copies mapped back; [`Pattern::linearized`]); e.g. sshd's
//!   `^Failed <cmnfailed> for (?P<cond_inv>invalid user )?…(?(cond_user)…)`.
//! - `is_match`: the `regex` crate's lazy DFA (on ASCII haystacks a byte
//!   variant with Python's classes restricted to ASCII — same results there).
//! - `captures_with`: for linear patterns, the top-level concatenation is
//!   split at capture groups and each piece found by an anchored DFA search
//!   in turn (exact: see `pattern/segments.rs`); otherwise the full capture
//!   engine. No allocation once a [`Scratch`] belongs to the pattern.
//! - [`Pattern::required_literals`]: a sound any-of literal set for an
//!   Aho-Corasick prefilter (also for backtracking patterns).
//!
//! # Known divergences from Python (documented, tested)
//!
//! - P011: a capture group inside a repetition that can match empty (`(a*)*`)
//!   keeps the last non-empty iteration; Python keeps the final empty one.
//!   The match itself is the same.
//! - `\b`/`\B` on non-ASCII text follow Unicode's word characters (e.g. a
//!   combining mark is a word char there, not in Python). `\w`, `\W`,
//!   `\s`, `\S`, `\d`, `\D`, `.` and `(?i)` of the letters tested agree with
//!   Python for every code point below U+30000 assigned in Python's Unicode
//!   database (tests/python_re_translation.rs sweeps them); case folding
//!   beyond Unicode simple folding plus the Turkish i is not reproduced.
//! - `(?a)` together with `(?i)` still folds non-ASCII letters (Kelvin sign).
//! - `\N{name}` knows only a few names, lone surrogates are refused (P009).

mod emit;
mod host;
mod linearize;
mod literals;
mod prefix;
mod pyre;
mod segments;
mod tags;
mod tails;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use stadtwache_core::{Diagnostic, Spanned};

use crate::CompileOptions;

/// What a pattern is used for; fail2ban expands tags differently for each
/// (e.g. `prefregex` must contain `<F-CONTENT>`, `failregex` needs a host or
/// `<F-ID>` unless `prefregex` supplies it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatternKind {
    Prefregex,
    Failregex,
    Ignoreregex,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// `regex` crate: linear time.
    Linear,
    /// `fancy-regex`: backtracking with a step budget.
    Backtracking,
}

/// The backtracking engine ran out of its step budget on one search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetExceeded;

/// Capture spans of one match (byte offsets into the haystack).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Captures {
    /// Span of the whole match.
    pub span: (usize, usize),
    /// Index = group index (0 is the whole match); None = group did not participate.
    pub groups: Vec<Option<(usize, usize)>>,
}

/// Per-pattern translation switches that fail2ban takes from the filter/jail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatternOptions {
    /// Compile with Python's `re.MULTILINE` (fail2ban: failregex and `maxlines > 1`).
    pub multiline: bool,
    /// fail2ban `usedns` other than `no`: `<HOST>` also matches a DNS name.
    pub use_dns: bool,
}

impl PatternOptions {
    /// The defaults [`Pattern::compile`] uses for a kind.
    pub fn for_kind(kind: PatternKind) -> Self {
        PatternOptions { multiline: kind == PatternKind::Failregex, use_dns: true }
    }
}

/// Reusable capture storage for [`Pattern::captures_with`]; keep one per
/// pattern (and thread) for allocation-free matching.
#[derive(Debug, Default)]
pub struct Scratch {
    owner: u64,
    locs: Option<regex::CaptureLocations>,
    blocs: Option<regex::bytes::CaptureLocations>,
    spans: Vec<Option<(usize, usize)>>,
    /// Spans by original group index (patterns rewritten by `linearize`).
    mapped: Vec<Option<(usize, usize)>>,
    src: ScratchSrc,
    seg: Option<segments::SegScratch>,
    /// The last search with this scratch found no match (the segment chain's
    /// next search then looks for the text every match holds first).
    missed: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum ScratchSrc {
    #[default]
    Spans,
    Locs,
    BLocs,
    Mapped,
}

impl Scratch {
    /// Span of group `i` of the last successful match (0 = whole match).
    /// (Called for each group of each hit: always inlined, it was left a
    /// call.)
    #[inline(always)]
    pub fn get(&self, i: usize) -> Option<(usize, usize)> {
        match self.src {
            // the segment chain's and the remapped spans: the common cases
            ScratchSrc::Spans => self.spans.get(i).copied().flatten(),
            ScratchSrc::Mapped => self.mapped.get(i).copied().flatten(),
            ScratchSrc::Locs => self.locs.as_ref().and_then(|l| l.get(i)),
            ScratchSrc::BLocs => self.blocs.as_ref().and_then(|l| l.get(i)),
        }
    }

    /// The spans by group index when they are one vector (the segment
    /// chain's and the remapped ones: the common cases), `get(i)` being
    /// `slice.get(i).copied().flatten()`; None: read them with
    /// [`Scratch::get`]. For a caller that reads several groups: the
    /// vector picked once, not per group.
    #[inline(always)]
    pub fn span_slice(&self) -> Option<&[Option<(usize, usize)>]> {
        match self.src {
            ScratchSrc::Spans => Some(&self.spans),
            ScratchSrc::Mapped => Some(&self.mapped),
            ScratchSrc::Locs | ScratchSrc::BLocs => None,
        }
    }

    /// Number of groups (including group 0).
    pub fn len(&self) -> usize {
        match self.src {
            ScratchSrc::Locs => self.locs.as_ref().map_or(0, |l| l.len()),
            ScratchSrc::BLocs => self.blocs.as_ref().map_or(0, |l| l.len()),
            ScratchSrc::Spans => self.spans.len(),
            ScratchSrc::Mapped => self.mapped.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A regex compiled on first use from its source (None = not applicable or
/// failed to compile: the optimisation it serves is then skipped).
struct Lazy<T> {
    src: Option<String>,
    cell: OnceLock<Option<T>>,
}

impl<T> std::fmt::Debug for Lazy<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Lazy({:?}, compiled: {})", self.src, self.cell.get().is_some())
    }
}

impl<T> Lazy<T> {
    fn new(src: Option<String>) -> Self {
        Lazy { src, cell: OnceLock::new() }
    }

    fn get(&self, build: impl FnOnce(&str) -> Option<T>) -> Option<&T> {
        let src = self.src.as_deref()?;
        self.cell.get_or_init(|| build(src)).as_ref()
    }
}

/// The compiled engines. The `ascii` variants are the same pattern with
/// Python's Unicode classes restricted to ASCII: identical results on ASCII
/// haystacks (the common case for logs), much smaller automata.
enum Compiled {
    /// `uni`: compiled from [`Pattern::translated`] on first use.
    Linear {
        uni: OnceLock<Option<regex::Regex>>,
        ascii: Lazy<regex::bytes::Regex>,
    },
    Fancy {
        uni: fancy_regex::Regex,
        ascii: Lazy<fancy_regex::Regex>,
    },
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Compiled::Linear { uni, .. } => write!(f, "Linear(compiled: {})", uni.get().is_some()),
            Compiled::Fancy { uni, .. } => write!(f, "Fancy({:?})", uni.as_str()),
        }
    }
}

fn build_ascii_linear(src: &str) -> Option<regex::bytes::Regex> {
    regex::bytes::RegexBuilder::new(src).size_limit(64 << 20).build().ok()
}

#[derive(Debug)]
pub struct Pattern {
    id: u64,
    kind: PatternKind,
    expanded: String,
    translated: String,
    names: Vec<Option<String>>,
    /// Groups of the compiled regex (more than `names` after `linearize`).
    ngroups: usize,
    /// Compiled group index → group index of `names` (after `linearize`).
    remap: Option<Vec<usize>>,
    /// Needed backtracking as written; runs linear after `linearize`.
    linearized: bool,
    multiline_pat: bool,
    compiled: Compiled,
    /// Exact non-MULTILINE `$` for haystacks with inner newlines.
    exact: Lazy<fancy_regex::Regex>,
    /// Python's `\B` never matches in an empty string: variant for `""`.
    empty_hay: Lazy<fancy_regex::Regex>,
    /// Backtracking patterns without required literals: a linear superset
    /// (look-arounds dropped, …) that rejects most non-matching haystacks
    /// before the backtracker runs.
    superset: Lazy<regex::Regex>,
    /// Segment-chain fast path for captures (linear engine only).
    seg_src: Option<segments::SegmentsSrc>,
    segments: OnceLock<Option<segments::Segments>>,
    backtrack_limit: usize,
    literals: Option<Vec<String>>,
    /// Where [`Pattern::anchored_prefixes`] may cut `translated`
    /// ([`literals::head_ends`]).
    heads: Vec<usize>,
    warnings: Vec<Diagnostic>,
    skiplines: usize,
    /// Scratch space for [`Pattern::captures`].
    pool: std::sync::Mutex<Vec<Scratch>>,
}

fn diag(src: &Spanned, code: &'static str, msg: String) -> Diagnostic {
    let d = Diagnostic::error(code, msg);
    match &src.at.file {
        Some(f) => d.at(f.clone(), src.at.line),
        None => Diagnostic { line: src.at.line, ..d },
    }
}

fn map_fancy_err(e: &fancy_regex::Error) -> BudgetExceeded {
    let _ = e;
    BudgetExceeded
}

fn build_fancy(pat: &str, backtrack_limit: usize) -> Result<fancy_regex::Regex, String> {
    fancy_regex::RegexBuilder::new(pat)
        .backtrack_limit(backtrack_limit)
        .delegate_size_limit(64 << 20)
        .build()
        .map_err(|e| e.to_string())
}

/// The literal T of each `(?:(?!T).)*` (greedy or lazy) in `n`.
fn avoid_lits(n: &pyre::Node, out: &mut Vec<Vec<char>>) {
    use pyre::Node;
    match n {
        Node::Repeat { node, min: 0, max: None, .. } if linearize::avoid_body(node).is_some() => {
            out.extend(linearize::avoid_body(node));
        }
        Node::Cat(v) | Node::Alt(v) => v.iter().for_each(|c| avoid_lits(c, out)),
        Node::Group { node, .. } | Node::Repeat { node, .. } | Node::Look { node, .. } => avoid_lits(node, out),
        Node::Cond { yes, no, .. } => {
            avoid_lits(yes, out);
            avoid_lits(no, out);
        }
        _ => {}
    }
}

/// Index of the first `\n` in `b` (its length: none). Eight bytes at a time:
/// haystacks are short lines, where this beats a call to `memchr`.
#[inline]
pub(crate) fn first_newline(b: &[u8]) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut chunks = b.chunks_exact(8);
    let mut i = 0;
    for c in chunks.by_ref() {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        let x = u64::from_le_bytes(a) ^ (LO * u64::from(b'\n'));
        // the lowest set bit marks the first zero byte (borrows only
        // disturb the bytes above it)
        let z = x.wrapping_sub(LO) & !x & HI;
        if z != 0 {
            return i + (z.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    chunks.remainder().iter().position(|&c| c == b'\n').map_or(b.len(), |k| i + k)
}

/// `b.is_ascii()`, eight bytes at a time without an early exit: the
/// standard one takes the last up to 63 bytes of a haystack one at a time
/// (most of a log line's content).
#[inline]
pub(crate) fn all_ascii(b: &[u8]) -> bool {
    const HI: u64 = 0x8080_8080_8080_8080;
    let word = |c: &[u8]| {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        u64::from_le_bytes(a)
    };
    let Some(last) = b.len().checked_sub(8) else {
        return b.iter().all(|&c| c < 0x80);
    };
    let mut acc = 0;
    for c in b.chunks_exact(8) {
        acc |= word(c);
    }
    // the last eight bytes (they overlap the chunks read)
    (acc | word(&b[last..])) & HI == 0
}

impl Pattern {
    pub fn compile(src: &Spanned, kind: PatternKind, opts: &CompileOptions) -> Result<Pattern, Vec<Diagnostic>> {
        Self::compile_with(src, kind, opts, PatternOptions::for_kind(kind))
    }

    /// [`Pattern::compile`] with explicit `MULTILINE` / `usedns` switches.
    pub fn compile_with(
        src: &Spanned,
        kind: PatternKind,
        opts: &CompileOptions,
        popts: PatternOptions,
    ) -> Result<Pattern, Vec<Diagnostic>> {
        let mut errors = Vec::new();
        let exp = tags::expand(&src.text, popts.use_dns);
        for p in &exp.problems {
            let (code, msg) = match p {
                tags::TagProblem::Unknown(t) => (
                    "P002",
                    format!(
                        "unknown tag {t} (fail2ban tags: <F-NAME>…</F-NAME> in upper case, <F-ID/>, <F-PORT/>, <HOST>, …)"
                    ),
                ),
                tags::TagProblem::CloseWithoutOpen(t) => {
                    ("P003", format!("closing tag </F-{t}> without an opening <F-{t}>"))
                }
                tags::TagProblem::Unclosed(t) => ("P004", format!("tag <F-{t}> is never closed by </F-{t}>")),
                tags::TagProblem::ClosedTwice(t) => ("P005", format!("tag </F-{t}> closes <F-{t}> a second time")),
                tags::TagProblem::Reopened(t) => ("P005", format!("tag <F-{t}> opened again before </F-{t}>")),
            };
            errors.push(diag(src, code, msg));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        if exp.text.trim_start().is_empty() {
            return Err(vec![diag(src, "P001", "empty regex".to_string())]);
        }
        let (expanded, edits) = tags::glob_to_local_flags(&exp.text);
        let parsed = match pyre::parse(&expanded, popts.multiline) {
            Ok(p) => p,
            Err(e) => {
                let code = if e.msg.starts_with("unsupported") { "P009" } else { "P007" };
                return Err(vec![diag(
                    src,
                    code,
                    format!("invalid regex: {} at position {} in {:?}", e.msg, e.pos, expanded),
                )]);
            }
        };
        // tag pairs must close the group they opened
        for pair in &exp.pairs {
            let (Some(close), open) = (pair.close, tags::map_pos(&edits, pair.open)) else {
                continue;
            };
            let close = tags::map_pos(&edits, close);
            if let Some(g) = parsed.spans.iter().skip(1).position(|s| s.0 == open).map(|g| g + 1)
                && parsed.spans[g].1 != close
            {
                errors.push(diag(
                    src,
                    "P006",
                    format!("<F-{0}>…</F-{0}> is not properly nested with the regex's parentheses", pair.name),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let names = parsed.names.clone();
        let multiline_pat = exp.skiplines > 0 || emit::has_explicit_newline(&parsed.node);
        let node = emit::simplify_zero_width_repeats(emit::elide_lookbehinds(parsed.node, None));
        let orig_node = node;
        let mut linearized = false;
        let (node, cnames, remap) =
            match emit::needs_backtracking(&orig_node).then(|| linearize::linearize(&orig_node)).flatten() {
                Some(l) => {
                    linearized = true;
                    if l.map.iter().enumerate().all(|(i, &o)| i == o) {
                        (l.node, names.clone(), None)
                    } else {
                        let unnamed = vec![None; l.map.len()];
                        (l.node, unnamed, Some(l.map))
                    }
                }
                None => (orig_node.clone(), names.clone(), None),
            };
        let ngroups = cnames.len();
        let plain_dollar = emit::has_plain_dollar(&node);
        let backtracking = emit::needs_backtracking(&node);
        let prefix = if parsed.global.i { "(?i)" } else { "" };
        let render = |o: emit::EmitOpts| {
            let mut s = String::from(prefix);
            emit::emit(&node, &cnames, o, &mut s);
            s
        };
        let eo = |exact_dollar, relaxed, fancy, ascii_hay| emit::EmitOpts {
            exact_dollar,
            relaxed,
            fancy,
            ascii_hay,
            empty_hay: false,
        };
        let translated = render(eo(backtracking, false, backtracking, false));
        // literals and the superset from the pattern as written
        let relaxed = {
            let mut s = String::from(prefix);
            emit::emit(&orig_node, &names, eo(false, true, false, false), &mut s);
            s
        };
        // where `anchored_prefixes` may cut the pattern (linear engine)
        let mut heads = Vec::new();
        let compiled = if backtracking {
            match build_fancy(&translated, opts.backtrack_limit) {
                Ok(uni) => {
                    let ascii = Lazy::new(Some(render(eo(true, false, true, true))));
                    Compiled::Fancy { uni, ascii }
                }
                Err(e) => {
                    return Err(vec![diag(
                        src,
                        "P008",
                        format!("regex not supported by the backtracking engine: {e} (translated: {translated:?})"),
                    )]);
                }
            }
        } else {
            // The Unicode engine is compiled on first use: the segment chain
            // and the ASCII variant serve ASCII lines, so most filters never
            // need it, and compiling it was two thirds of a filter's load
            // time. Its syntax is checked here; what only the build can find
            // (the size limit) is a budget failure of the searches that need
            // it (counted per rule, see `uni_linear`).
            match regex_syntax::ast::parse::Parser::new().parse(&translated) {
                Ok(ast) => {
                    heads = literals::head_ends(&ast);
                    let uni = OnceLock::new();
                    let ascii = Lazy::new(Some(format!("(?-u){}", render(eo(false, false, false, true)))));
                    Compiled::Linear { uni, ascii }
                }
                Err(e) => {
                    return Err(vec![diag(
                        src,
                        "P008",
                        format!("regex not supported by the regex engine: {e} (translated: {translated:?})"),
                    )]);
                }
            }
        };
        // only where the runner has no literal prefilter (keeps the cost off
        // patterns whose literal set already screens lines)
        let literals = literals::required_literals(&relaxed);
        let superset = Lazy::new((backtracking && literals.is_none()).then(|| relaxed.clone()));
        let empty_hay = Lazy::new(
            emit::has_non_boundary(&node)
                .then(|| render(emit::EmitOpts { empty_hay: true, ..eo(true, false, true, false) })),
        );
        let exact = Lazy::new((plain_dollar && !backtracking).then(|| render(eo(true, false, true, false))));
        let mut seg_src = if backtracking {
            None
        } else {
            // the avoid idioms `linearize` may have rewritten (see `free_tail`)
            let mut avoid = Vec::new();
            if linearized {
                avoid_lits(&orig_node, &mut avoid);
            }
            segments::SegmentsSrc::new_with(&node, &cnames, prefix, eo(false, false, false, false), &avoid)
        };
        // the chain reports the original groups itself (no copying per match)
        if let (Some(src), Some(map)) = (seg_src.as_mut(), &remap)
            && src.map_groups(map).is_none()
        {
            seg_src = None;
        }
        let mut warnings = Vec::new();
        if emit::has_capture_in_nullable_repeat(&orig_node) {
            let mut w = diag(
                src,
                "P011",
                "a capture group inside a repetition that can match empty may capture a different value \
                 than Python (which keeps the final empty iteration)"
                    .into(),
            );
            w.severity = stadtwache_core::Severity::Warning;
            warnings.push(w);
        }
        if kind == PatternKind::Prefregex && !names.iter().any(|n| n.as_deref() == Some("content")) {
            let mut w = diag(
                src,
                "P010",
                "prefregex without <F-CONTENT>…</F-CONTENT>: failregexes are applied to the whole line".into(),
            );
            w.severity = stadtwache_core::Severity::Warning;
            warnings.push(w);
        }
        Ok(Pattern {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            kind,
            expanded,
            translated,
            names,
            ngroups,
            remap,
            linearized,
            multiline_pat,
            compiled,
            exact,
            empty_hay,
            superset,
            seg_src,
            segments: OnceLock::new(),
            backtrack_limit: opts.backtrack_limit,
            literals,
            heads,
            warnings,
            skiplines: exp.skiplines,
            pool: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Does `hay` have a newline before its last char (so non-MULTILINE `$`
    /// needs the exact variant)? `nl`: index of its first newline (its
    /// length: none).
    #[inline]
    fn exact_for(&self, hay: &str, nl: usize) -> Option<&fancy_regex::Regex> {
        if hay.is_empty() && self.empty_hay.src.is_some() {
            return self.empty_hay.get(|src| build_fancy(src, self.backtrack_limit).ok());
        }
        self.exact.src.as_ref()?;
        (nl + 1 < hay.len()).then_some(())?;
        self.exact.get(|src| build_fancy(src, self.backtrack_limit).ok())
    }

    /// The Unicode linear engine, compiled on first use (its syntax was
    /// checked at compile time; a failure here is the size limit).
    fn uni_linear(&self) -> Result<&regex::Regex, BudgetExceeded> {
        match &self.compiled {
            Compiled::Linear { uni, .. } => uni
                .get_or_init(|| regex::RegexBuilder::new(&self.translated).size_limit(64 << 20).build().ok())
                .as_ref()
                .ok_or(BudgetExceeded),
            Compiled::Fancy { .. } => Err(BudgetExceeded),
        }
    }

    /// Whether the Unicode linear engine has been compiled (tests).
    #[cfg(test)]
    fn uni_compiled(&self) -> bool {
        matches!(&self.compiled, Compiled::Linear { uni, .. } if uni.get().is_some())
    }

    fn ascii_linear(&self) -> Option<&regex::bytes::Regex> {
        match &self.compiled {
            Compiled::Linear { ascii, .. } => ascii.get(build_ascii_linear),
            Compiled::Fancy { .. } => None,
        }
    }

    fn ascii_fancy(&self) -> Option<&fancy_regex::Regex> {
        match &self.compiled {
            Compiled::Fancy { ascii, .. } => ascii.get(|src| build_fancy(src, self.backtrack_limit).ok()),
            Compiled::Linear { .. } => None,
        }
    }

    /// False when the linear superset of a backtracking pattern rules a match out.
    #[inline]
    fn superset_allows(&self, hay: &str) -> bool {
        self.superset
            .get(|src| regex::RegexBuilder::new(src).size_limit(64 << 20).build().ok())
            .is_none_or(|r| r.is_match(hay))
    }

    fn segments(&self) -> Option<&segments::Segments> {
        let src = self.seg_src.as_ref()?;
        self.segments.get_or_init(|| src.compile()).as_ref()
    }

    pub fn captures(&self, hay: &str) -> Result<Option<Captures>, BudgetExceeded> {
        let pooled = self.pool.lock().ok().and_then(|mut p| p.pop());
        let mut s = pooled.unwrap_or_else(|| self.new_scratch());
        let res = self.captures_with(hay, &mut s).map(|matched| {
            matched.then(|| {
                let groups: Vec<Option<(usize, usize)>> = (0..s.len()).map(|i| s.get(i)).collect();
                let span = groups.first().copied().flatten().unwrap_or((0, 0));
                Captures { span, groups }
            })
        });
        if let Ok(mut p) = self.pool.lock()
            && p.len() < 8
        {
            p.push(s);
        }
        res
    }

    /// A scratch sized for this pattern.
    pub fn new_scratch(&self) -> Scratch {
        let mut s = Scratch::default();
        self.prepare(&mut s);
        s
    }

    #[inline]
    fn prepare(&self, s: &mut Scratch) {
        if s.owner != self.id {
            self.adopt(s);
        }
    }

    /// Makes `s` this pattern's scratch (once per scratch).
    #[cold]
    fn adopt(&self, s: &mut Scratch) {
        s.owner = self.id;
        // the ASCII variant's locations are made when first needed (it
        // is compiled on first use)
        (s.locs, s.blocs) = match &self.compiled {
            Compiled::Linear { .. } => (None, None),
            Compiled::Fancy { .. } => (None, None),
        };
        s.spans.clear();
        s.seg = self.segments().map(segments::Segments::scratch);
    }

    /// Captures into `scratch` (no allocation on the linear engine once the
    /// scratch belongs to this pattern); returns whether it matched.
    pub fn captures_with(&self, hay: &str, scratch: &mut Scratch) -> Result<bool, BudgetExceeded> {
        self.captures_with_nl(hay, first_newline(hay.as_bytes()), scratch)
    }

    /// [`Pattern::captures_with`] where the caller knows `nl`, the index of
    /// the first `\n` in `hay` (its length when there is none).
    pub(crate) fn captures_with_nl(&self, hay: &str, nl: usize, scratch: &mut Scratch) -> Result<bool, BudgetExceeded> {
        self.captures_with_nl_ascii(hay, nl, all_ascii(hay.as_bytes()), scratch)
    }

    /// [`Pattern::captures_with_nl`] where the caller also knows whether
    /// `hay` is all ASCII (`ascii == hay.is_ascii()`: the runner checks a
    /// line once, not once per pattern that searches it or its content).
    pub(crate) fn captures_with_nl_ascii(
        &self,
        hay: &str,
        nl: usize,
        ascii: bool,
        scratch: &mut Scratch,
    ) -> Result<bool, BudgetExceeded> {
        debug_assert_eq!(nl, first_newline(hay.as_bytes()));
        debug_assert_eq!(ascii, hay.is_ascii());
        self.prepare(scratch);
        let m = self.captures_raw(hay, nl, ascii, scratch)?;
        // (the segment chain's spans are mapped already)
        if m && scratch.src != ScratchSrc::Mapped
            && let Some(map) = &self.remap
        {
            // copies of a group sit in different alternatives: at most one
            // of them takes part
            let mut mapped = std::mem::take(&mut scratch.mapped);
            mapped.clear();
            mapped.resize(self.names.len(), None);
            if scratch.src == ScratchSrc::Spans {
                // the backtracking engine's spans, read directly (`get`
                // past their end is None, as `zip` stops there)
                for (&sp, &o) in scratch.spans.iter().zip(map) {
                    if let Some(sp) = sp
                        && let Some(slot) = mapped.get_mut(o)
                    {
                        *slot = Some(sp);
                    }
                }
            } else {
                for (ci, &o) in map.iter().enumerate() {
                    if let Some(sp) = scratch.get(ci)
                        && let Some(slot) = mapped.get_mut(o)
                    {
                        *slot = Some(sp);
                    }
                }
            }
            scratch.mapped = mapped;
            scratch.src = ScratchSrc::Mapped;
        }
        Ok(m)
    }

    /// [`Pattern::captures_with`] by compiled group index (the segment
    /// chain: by original group index, `ScratchSrc::Mapped`).
    #[inline]
    fn captures_raw(
        &self,
        hay: &str,
        nl: usize,
        is_ascii: bool,
        scratch: &mut Scratch,
    ) -> Result<bool, BudgetExceeded> {
        let fancy = match (&self.compiled, self.exact_for(hay, nl)) {
            (_, Some(ex)) => ex,
            (Compiled::Linear { .. }, None) => {
                // compiled on first use: not needed while the chain gets through
                let ascii = || if is_ascii { self.ascii_linear() } else { None };
                if let (Some(segs), Some(ss)) = (self.segments(), scratch.seg.as_mut()) {
                    // the chain's groups are the original ones (see
                    // `SegmentsSrc::map_groups`)
                    let (spans, src, n) = match self.remap {
                        Some(_) => (&mut scratch.mapped, ScratchSrc::Mapped, self.names.len()),
                        None => (&mut scratch.spans, ScratchSrc::Spans, self.ngroups),
                    };
                    // no match anywhere without the text every match holds:
                    // looked for first after a miss (a candidate that keeps
                    // failing on lines like this one skips its chain), else
                    // when the chain fails (a line the prefilter let through)
                    let missed = std::mem::replace(&mut scratch.missed, true);
                    if missed && segs.lacks_needed_text(hay.as_bytes()) {
                        return Ok(false);
                    }
                    // a complete chain from 0 is the leftmost-first match
                    reset_spans(spans, n);
                    if let Some(end) = segs.run(hay, is_ascii, Some(nl), 0, ss, spans) {
                        spans[0] = Some((0, end));
                        scratch.src = src;
                        scratch.missed = false;
                        return Ok(true);
                    }
                    if !missed && segs.lacks_needed_text(hay.as_bytes()) {
                        return Ok(false);
                    }
                    // (the full engine decides from here: not a cheap miss)
                    scratch.missed = false;
                    let whole = match ascii() {
                        Some(a) => a.find(hay.as_bytes()).map(|m| (m.start(), m.end())),
                        None => self.uni_linear()?.find(hay).map(|m| (m.start(), m.end())),
                    };
                    let Some((start, end)) = whole else {
                        return Ok(false);
                    };
                    spans.clear();
                    spans.resize(n, None);
                    if segs.run(hay, is_ascii, Some(nl), start, ss, spans) == Some(end) {
                        spans[0] = Some((start, end));
                        scratch.src = src;
                        return Ok(true);
                    }
                }
                if let Some(a) = ascii() {
                    let locs = scratch.blocs.get_or_insert_with(|| a.capture_locations());
                    scratch.src = ScratchSrc::BLocs;
                    return Ok(a.captures_read(locs, hay.as_bytes()).is_some());
                }
                let uni = self.uni_linear()?;
                let locs = scratch.locs.get_or_insert_with(|| uni.capture_locations());
                scratch.src = ScratchSrc::Locs;
                return Ok(uni.captures_read(locs, hay).is_some());
            }
            (Compiled::Fancy { .. }, None) if !self.superset_allows(hay) => return Ok(false),
            (Compiled::Fancy { uni, .. }, None) => match self.ascii_fancy() {
                Some(a) if is_ascii => a,
                _ => uni,
            },
        };
        scratch.src = ScratchSrc::Spans;
        scratch.spans.clear();
        match fancy.captures(hay) {
            Ok(Some(c)) => {
                scratch.spans.extend((0..c.len()).map(|i| c.get(i).map(|m| (m.start(), m.end()))));
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(e) => Err(map_fancy_err(&e)),
        }
    }

    pub fn is_match(&self, hay: &str) -> Result<bool, BudgetExceeded> {
        if let Some(ex) = self.exact_for(hay, first_newline(hay.as_bytes())) {
            return ex.is_match(hay).map_err(|e| map_fancy_err(&e));
        }
        let ascii = all_ascii(hay.as_bytes());
        match &self.compiled {
            Compiled::Linear { .. } => match self.ascii_linear() {
                Some(a) if ascii => Ok(a.is_match(hay.as_bytes())),
                _ => Ok(self.uni_linear()?.is_match(hay)),
            },
            Compiled::Fancy { .. } if !self.superset_allows(hay) => Ok(false),
            Compiled::Fancy { uni, .. } => {
                let re = match self.ascii_fancy() {
                    Some(a) if ascii => a,
                    _ => uni,
                };
                re.is_match(hay).map_err(|e| map_fancy_err(&e))
            }
        }
    }

    pub fn group_names(&self) -> &[Option<String>] {
        &self.names
    }

    pub fn expanded(&self) -> &str {
        &self.expanded
    }

    /// The Rust regex syntax actually compiled.
    pub fn translated(&self) -> &str {
        &self.translated
    }

    pub fn is_multiline(&self) -> bool {
        self.multiline_pat
    }

    pub fn engine(&self) -> Engine {
        match self.compiled {
            Compiled::Linear { .. } => Engine::Linear,
            Compiled::Fancy { .. } => Engine::Backtracking,
        }
    }

    /// Did the pattern need the backtracking engine as written and run on
    /// the linear one after rewriting (conditionals split into cases,
    /// `(?:(?!LIT).)*` where its end is forced)?
    pub fn linearized(&self) -> bool {
        self.linearized
    }

    pub fn kind(&self) -> PatternKind {
        self.kind
    }

    /// Non-fatal findings (P010, P011).
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// Number of `<SKIPLINES>` tags (groups `skiplines0`, `skiplines1`, …).
    pub fn skiplines_groups(&self) -> usize {
        self.skiplines
    }

    /// Index of the group called `name`.
    pub fn group_index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n.as_deref() == Some(name))
    }

    /// fail2ban's `FAILURE_ID_PRESENTS` check: does the pattern have a
    /// `fid`, `ip4`, `ip6`, `dns` or `mlfid` group?
    pub fn has_failure_id_group(&self) -> bool {
        ["fid", "ip4", "ip6", "dns", "mlfid"].iter().any(|g| self.group_index(g).is_some())
    }

    /// Literals such that every match contains at least one of them (None:
    /// no such set found). Sound for both engines.
    pub fn required_literals(&self) -> Option<Vec<String>> {
        self.literals.clone()
    }

    /// Literal prefixes, one of which every match starts with, at the start
    /// of the text (the pattern is anchored there; None: not so, or not
    /// known). Linear patterns only.
    pub fn anchored_prefixes(&self) -> Option<Vec<Vec<u8>>> {
        match self.engine() {
            Engine::Linear => literals::anchored_prefixes(self.translated(), &self.heads),
            Engine::Backtracking => None,
        }
    }
}

/// `n` spans, every one None: in place when there are `n` already (the
/// pattern's own scratch: a fill, without `resize`'s capacity check and
/// length updates), else cleared and resized.
#[inline(always)]
fn reset_spans(spans: &mut Vec<Option<(usize, usize)>>, n: usize) {
    if spans.len() == n {
        spans.fill(None);
    } else {
        spans.clear();
        spans.resize(n, None);
    }
}

#[cfg(test)]
mod tests;
