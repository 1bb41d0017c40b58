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

#[derive(Debug)]
pub struct Pattern {
    _private: (),
}

impl Pattern {
    pub fn compile(src: &Spanned, kind: PatternKind, opts: &CompileOptions) -> Result<Pattern, Vec<Diagnostic>> {
        let _ = (src, kind, opts);
        todo!("pattern: compile")
    }

    pub fn captures(&self, hay: &str) -> Result<Option<Captures>, BudgetExceeded> {
        let _ = hay;
        todo!("pattern: captures")
    }

    pub fn is_match(&self, hay: &str) -> Result<bool, BudgetExceeded> {
        let _ = hay;
        todo!("pattern: is_match")
    }

    pub fn group_names(&self) -> &[Option<String>] {
        todo!("pattern: group_names")
    }

    pub fn expanded(&self) -> &str {
        todo!("pattern: expanded")
    }

    pub fn is_multiline(&self) -> bool {
        todo!("pattern: is_multiline")
    }

    pub fn engine(&self) -> Engine {
        todo!("pattern: engine")
    }
}
