//! The logic behind [`CompiledFilter::compile`] and [`FilterRunner`]:
//! fail2ban's `Filter.processLine` / `findFailure` semantics, reimplemented.
//!
//! Per line:
//!
//! 1. find the date (unless given) and cut it out: the line becomes a
//!    "tuple line" `(before, date, after)`; the text searched is
//!    `before + after`, one tuple line per buffered line, joined with `"\n"`
//!    and ended with `"\n"` (fail2ban's `_tupleLinesBuf`);
//! 2. `ignoreregex` up front, only when there are fewer of them than
//!    failregexes minus two (as fail2ban);
//! 3. the literal prefilter (ours): when the searched text contains no
//!    required literal of any failregex, nothing can match — stop here;
//! 4. `prefregex`; its `<F-CONTENT>` (when not empty) replaces the buffer;
//!    single-line filters pick their candidate failregexes only now, on the
//!    text they are searched in: by its first bytes for the failregexes
//!    anchored at its start with literal prefixes (`^Failed …`), by the
//!    literal search for the others ([`Dispatch`]);
//! 5. each failregex (only the prefilter's candidates), `ignoreregex` on a
//!    hit, `<F-MLFID>` merging (`_mergeFailure`), failure id and address.
//!
//! Where fail2ban mutates shared dictionaries, this module keeps an owned
//! [`FailData`] and writes it back to the mlfid cache at the same points, so
//! what a later line sees is what fail2ban's later line would see.
//!
//! fail2ban's switches, as this runner has them: `returnRawHost` (no DNS
//! lookups ever; a DNS name is the id as written), `usedns = warn` for
//! `<HOST>`, `ignorePending` (a pending mlfid failure is only reported with
//! `checkAllRegex`), `checkAllRegex` from [`RunOptions`]. Not here: the
//! `checkFindTime` handling of odd times in operation (a decision for the
//! later stages). Deliberate differences, none of them in what is counted:
//! `matches` holds the lines as read (fail2ban: tuples, with the journal's
//! time text in front for journal entries), and a failure on a line without
//! any usable time gets `now` (fail2ban in operation does the same; its
//! sample test, with `checkFindTime` off, gets None).
//!
//! `tests.rs` checks all of this against fail2ban itself (`f2b_dump.py`):
//! every sample log of fail2ban's own test suite, both `checkAllRegex`
//! modes, and random hand-made scenarios (mlfid, multi-line, ignoreregex).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, OnceLock};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use smallvec::SmallVec;
use stadtwache_core::{Diagnostic, Duration, Spanned, Timestamp};
use stadtwache_datetime::{DateDetector, DateMatch, DateScanner, TimeContext, TimeZone};

use crate::pattern::{Engine, Pattern, PatternKind, PatternOptions, Scratch, all_ascii, first_newline};
use crate::{
    CompileOptions, Compiled, CompiledFilter, DateStatus, Failure, Fid, FieldValue, Fields, FilterSpec, LineResult,
    MatchStats, RunOptions,
};

// ---------------------------------------------------------------------------
// Compiled parts
// ---------------------------------------------------------------------------

/// What a named group means to the runner.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Role {
    /// `alt_NAME[_N]`: fills `NAME` when that is empty.
    Alt(Name),
    /// `tuple_NAME[_N]`: appended to `NAME` as a tuple.
    Tuple(Name),
}

/// A group name, interned: copied into a failure's groups without a
/// reference count to touch (an `Arc<str>` costs two atomic operations per
/// group per hit).
type Name = &'static str;

/// The one `&'static str` for `name`. Group names come from filter files
/// only (a few dozen distinct ones), so the interned set stays small even
/// when filters are compiled again and again.
fn intern(name: &str) -> Name {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut set = NAMES.get_or_init(|| Mutex::new(HashSet::new())).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&n) = set.get(name) {
        return n;
    }
    let n: &'static str = Box::leak(name.to_string().into_boxed_str());
    set.insert(n);
    n
}

#[derive(Clone, Debug)]
struct Group {
    index: usize,
    name: Name,
    /// The name's slot in the filter's [`Slots`] (set by [`Pat::assign_slots`]).
    slot: u16,
    /// Keep the group when it did not take part: only a failregex group
    /// that the prefregex has too needs that (its None overrides the
    /// prefregex's value, as in fail2ban's `dict.update`).
    keep_none: bool,
}

/// The names the runner looks up, at fixed slots (no lookup per line):
/// every filter's slot table starts with them.
const FIXED_NAMES: [&str; 11] =
    ["fid", "ip4", "ip6", "dns", "cidr", "mlfid", "nofail", "mlfgained", "mlfforget", "user", "content"];
const S_FID: u16 = 0;
const S_IP4: u16 = 1;
const S_IP6: u16 = 2;
const S_DNS: u16 = 3;
const S_CIDR: u16 = 4;
const S_MLFID: u16 = 5;
const S_NOFAIL: u16 = 6;
const S_MLFGAINED: u16 = 7;
const S_MLFFORGET: u16 = 8;
const S_USER: u16 = 9;
const S_CONTENT: u16 = 10;

/// A filter's group names, each at one slot: the fixed names, then every
/// other name of its prefregex and failregexes (and `alt_`/`tuple_`
/// targets). A failure's groups are an array by slot ([`Groups`]).
#[derive(Clone, Debug)]
struct Slots(Vec<Name>);

impl Slots {
    fn new() -> Slots {
        Slots(FIXED_NAMES.iter().map(|n| intern(n)).collect())
    }

    fn slot(&mut self, name: Name) -> u16 {
        match self.0.iter().position(|n| *n == name) {
            Some(i) => i as u16,
            None => {
                self.0.push(name);
                (self.0.len() - 1) as u16
            }
        }
    }
}

/// A compiled pattern with what the runner precomputes about its groups.
#[derive(Debug)]
pub(crate) struct Pat {
    pat: Pattern,
    /// Named groups in group-index order.
    groups: Vec<Group>,
    /// `alt_*` groups, sorted by group name (fail2ban sorts them).
    alts: Vec<(Name, Name)>,
    /// `tuple_*` groups, sorted by group name.
    tuples: Vec<(Name, Name)>,
    /// `alts` and `tuples` as slots (group, target).
    alt_slots: Vec<(u16, u16)>,
    tuple_slots: Vec<(u16, u16)>,
    /// Group indices of `skiplines0`, `skiplines1`, … (while they exist).
    skiplines: Vec<usize>,
    /// Group index of `content` (prefregex only).
    content: Option<usize>,
    /// A named group with a slot other than `content`'s (set by
    /// [`Pat::assign_slots`]).
    named_besides_content: bool,
    /// No `alt_`/`tuple_` groups, and no slot below [`FIXED_NAMES`]'s
    /// length held by two groups: [`Pat::fixed`] tells a fixed slot's value
    /// (set by [`Pat::assign_slots`]).
    plain: bool,
    /// Per fixed slot, its group's place in `groups` (`NO_GROUP`: none).
    fixed: [u8; FIXED_NAMES.len()],
    /// A failregex whose hit may be a helper that leaves the mlfid cache
    /// (it or the prefregex has `mlfid`, `mlfforget`, and `nofail` or
    /// `mlfgained`), both [`Pat::plain`]: `find_failure` may decide on
    /// its captures whether to drop it (set by [`compile`]).
    forget_fast: bool,
    /// A failregex with `alt_` groups (no `tuple_` ones) whose hit may
    /// update the work table in place and merge its `alt_` values there
    /// (see [`Pat::update_groups`]): every `alt_` target is a group of its
    /// own or one the prefregex never sets (set by [`compile`]).
    alt_direct: bool,
}

const NO_GROUP: u8 = u8::MAX;

/// Failure-id groups (fail2ban's `FAILURE_ID_PRESENTS`).
const FAILURE_ID_PRESENTS: [&str; 5] = ["fid", "ip4", "ip6", "dns", "mlfid"];
/// `FAILURE_ID_PRESENTS` as a set of slots (all below 64).
const FAILURE_ID_MASK: u64 = 1 << S_FID | 1 << S_IP4 | 1 << S_IP6 | 1 << S_DNS | 1 << S_MLFID;

impl Pat {
    fn new(pat: Pattern) -> Pat {
        let mut groups = Vec::new();
        let mut alts = Vec::new();
        let mut tuples = Vec::new();
        let mut content = None;
        for (index, name) in pat.group_names().iter().enumerate() {
            let Some(name) = name else { continue };
            let name: Name = intern(name);
            if name == "content" && content.is_none() {
                content = Some(index);
            }
            match complex_name(name) {
                Some(Role::Alt(n)) => alts.push((name, n)),
                Some(Role::Tuple(n)) => tuples.push((name, n)),
                _ => {}
            }
            groups.push(Group { index, name, slot: 0, keep_none: false });
        }
        alts.sort();
        tuples.sort();
        let mut skiplines = Vec::new();
        loop {
            let want = format!("skiplines{}", skiplines.len());
            match groups.iter().find(|g| g.name == want) {
                Some(g) => skiplines.push(g.index),
                None => break,
            }
        }
        Pat {
            pat,
            groups,
            alts,
            tuples,
            alt_slots: Vec::new(),
            tuple_slots: Vec::new(),
            skiplines,
            content,
            named_besides_content: false,
            plain: false,
            fixed: [NO_GROUP; FIXED_NAMES.len()],
            forget_fast: false,
            alt_direct: false,
        }
    }

    /// Give every group name (and `alt_`/`tuple_` target) its slot.
    fn assign_slots(&mut self, slots: &mut Slots) {
        for g in &mut self.groups {
            g.slot = slots.slot(g.name);
        }
        self.alt_slots = self.alts.iter().map(|&(k, n)| (slots.slot(k), slots.slot(n))).collect();
        self.tuple_slots = self.tuples.iter().map(|&(k, n)| (slots.slot(k), slots.slot(n))).collect();
        self.named_besides_content = self.groups.iter().any(|g| g.slot != S_CONTENT);
        self.fixed = [NO_GROUP; FIXED_NAMES.len()];
        let mut plain = self.alt_slots.is_empty() && self.tuple_slots.is_empty() && self.groups.len() < 255;
        for (i, g) in self.groups.iter().enumerate() {
            if let Some(f) = self.fixed.get_mut(usize::from(g.slot)) {
                plain &= *f == NO_GROUP;
                *f = i as u8;
            }
        }
        self.plain = plain;
    }

    /// The group of fixed slot `k` (a [`Pat::plain`] pattern has at most one).
    #[inline]
    fn fixed(&self, k: u16) -> Option<&Group> {
        let i = *self.fixed.get(usize::from(k))?;
        self.groups.get(usize::from(i))
    }

    fn has_group(&self, name: &str) -> bool {
        self.groups.iter().any(|g| g.name == name)
    }

    fn has_failure_id(&self) -> bool {
        FAILURE_ID_PRESENTS.iter().any(|n| self.has_group(n))
    }

    /// fail2ban's `getGroups()` into `g` (cleared first): every named group
    /// (one that did not take part as None, only with `keep_none`), then
    /// `alt_` and `tuple_` merging. `skip`: a slot left out (the
    /// prefregex's `content`, which is popped anyway).
    fn fill_groups(&self, caps: &Scratch, hay: &str, skip: Option<u16>, g: &mut Groups) {
        g.clear();
        match caps.span_slice() {
            Some(sp) => self.set_groups(|i| sp.get(i).copied().flatten(), hay, skip, g),
            None => self.set_groups(|i| caps.get(i), hay, skip, g),
        }
        for &(k, n) in &self.alt_slots {
            if g.truthy(k) && !g.truthy(n) {
                g.copy_cell(n, k);
            }
        }
        for &(k, n) in &self.tuple_slots {
            let v = match g.get(k) {
                Some(ValRef::Str(s)) => Some(s.to_string()),
                Some(ValRef::Tuple(t)) => Some(t.iter().flatten().cloned().collect::<Vec<_>>().join(",")),
                None => None,
            };
            let t = match g.get(n) {
                Some(ValRef::Tuple(t)) => {
                    let mut t = t.to_vec();
                    t.push(v);
                    t
                }
                Some(ValRef::Str(s)) => vec![Some(s.to_string()), v],
                None => vec![None, v],
            };
            g.set_tuple(n, t);
        }
    }

    /// `g.update(getGroups())` (None values too). Without `alt_`/`tuple_`
    /// groups straight into `g`; otherwise by way of `tmp` (their merging
    /// looks at this pattern's groups only).
    ///
    /// With `alt_` groups but no `tuple_` ones, when [`Pat::alt_direct`]:
    /// in place too, the `alt_` merging done on `g` afterwards. The same:
    /// the slots it reads (an `alt_` group and its target) hold this
    /// pattern's values as its own dict would (a group that did not take
    /// part is None in `g` with `keep_none`, i.e. whenever the prefregex
    /// could have set it, and absent in both otherwise), or, for a target
    /// that is no group of its own, nothing the prefregex set.
    fn update_groups(&self, caps: &Scratch, hay: &str, g: &mut Groups, tmp: &mut Groups) {
        let plain = self.alt_slots.is_empty() && self.tuple_slots.is_empty();
        if plain || self.alt_direct {
            match caps.span_slice() {
                Some(sp) => self.set_groups(|i| sp.get(i).copied().flatten(), hay, None, g),
                None => self.set_groups(|i| caps.get(i), hay, None, g),
            }
            for &(k, n) in &self.alt_slots {
                if g.truthy(k) && !g.truthy(n) {
                    g.copy_cell(n, k);
                }
            }
        } else {
            self.fill_groups(caps, hay, None, tmp);
            // (`tmp` is filled anew before it is read again)
            g.update_from(tmp);
        }
    }

    /// Every named group but `skip` into `g` (a value, or None with
    /// `keep_none`), its span read with `span` (the captures' own
    /// [`Scratch::get`], or their [`Scratch::span_slice`] picked once for
    /// all groups: one loop each, no choice per group).
    #[inline(always)]
    fn set_groups(&self, span: impl Fn(usize) -> Option<(usize, usize)>, hay: &str, skip: Option<u16>, g: &mut Groups) {
        for grp in &self.groups {
            if skip.is_some_and(|k| k == grp.slot) {
                continue;
            }
            match span(grp.index).and_then(|(s, e)| hay.get(s..e)) {
                Some(s) => g.set_str(grp.slot, s),
                None if grp.keep_none => g.set_null(grp.slot),
                None => {}
            }
        }
    }

    fn lines_of_skips(&self, caps: &Scratch, hay: &str) -> Vec<String> {
        let mut all = String::new();
        for &i in &self.skiplines {
            if let Some(s) = capture_text(caps, i, hay) {
                all.push_str(s);
            }
        }
        py_splitlines(&all)
    }
}

/// fail2ban's `COMPLNAME_CRE` on a group name: `alt_`/`tuple_` prefix, an
/// optional `_<digits>` suffix, the rest mapped like a tag name.
fn complex_name(name: &str) -> Option<Role> {
    if name.len() <= "alt_".len() {
        return None;
    }
    let (alt, rest) = if let Some(r) = name.strip_prefix("alt_") {
        (true, r)
    } else if let Some(r) = name.strip_prefix("tuple_") {
        (false, r)
    } else {
        return None;
    };
    let base = match rest.rfind('_') {
        Some(p) if p + 1 < rest.len() && rest[p + 1..].bytes().all(|b| b.is_ascii_digit()) => &rest[..p],
        _ => rest,
    };
    let n: Name = intern(&map_tag_name(base));
    Some(if alt { Role::Alt(n) } else { Role::Tuple(n) })
}

/// fail2ban's `mapTag2Opt`.
fn map_tag_name(tag: &str) -> String {
    let t = tag.to_lowercase();
    match t.as_str() {
        "id" => "fid".to_string(),
        "port" => "fport".to_string(),
        _ => t,
    }
}

fn capture_text<'h>(caps: &Scratch, index: usize, hay: &'h str) -> Option<&'h str> {
    capture_text_inline(caps, index, hay)
}

/// [`capture_text`] inlined: for [`merged_value`] (a helper hit reads five
/// values; inlined everywhere it makes the rest slower).
#[inline(always)]
fn capture_text_inline<'h>(caps: &Scratch, index: usize, hay: &'h str) -> Option<&'h str> {
    let (s, e) = caps.get(index)?;
    hay.get(s..e)
}

/// The value of fixed slot `k` (below [`FIXED_NAMES`]'s length, not
/// `content`) in fail2ban's `preGroups.copy()` updated with the failregex's
/// groups, read from the captures (what [`Pat::fill_groups`] of the
/// prefregex then [`Pat::update_groups`] of `fr` would leave there, where
/// both are [`Pat::plain`]): None for no key or a None value. `pre`: the
/// prefregex with its captures in its text.
#[inline(always)]
fn merged_value<'h>(
    pre: Option<(&Pat, &Scratch, &'h str)>,
    fr: &Pat,
    caps: &Scratch,
    hay: &'h str,
    k: u16,
) -> Option<&'h str> {
    if let Some(g) = fr.fixed(k) {
        match capture_text_inline(caps, g.index, hay) {
            Some(s) => return Some(s),
            // the failregex's None overrides the prefregex's value
            None if g.keep_none => return None,
            None => {}
        }
    }
    let (pr, pcaps, phay) = pre?;
    capture_text_inline(pcaps, pr.fixed(k)?.index, phay)
}

/// Python's `str.splitlines(False)`.
fn py_splitlines(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push(std::mem::take(&mut cur));
            }
            '\n' | '\x0b' | '\x0c' | '\x1c' | '\x1d' | '\x1e' | '\u{85}' | '\u{2028}' | '\u{2029}' => {
                out.push(std::mem::take(&mut cur));
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Literal prefilter over all failregexes: a failregex is a candidate for a
/// text when the text contains one of its required literals (or it has none).
#[derive(Debug)]
pub(crate) struct Prefilter {
    /// All occurrences (overlapping search).
    ac: Option<AhoCorasick>,
    /// Same literals, leftmost-first: its search can use the SIMD "packed"
    /// prefilter, which tells quickly that a line has no literal at all.
    any: Option<AhoCorasick>,
    /// Literal (automaton pattern id) → failregex indices.
    owners: Vec<SmallVec<[u32; 2]>>,
    /// Failregexes that are always candidates.
    always: Vec<u64>,
    words: usize,
    nregex: usize,
    /// Single-line filters: candidates picked on the text the failregexes
    /// are searched in (after the prefregex), see [`Dispatch`].
    dispatch: Option<Box<Dispatch>>,
}

/// Candidate selection for single-line filters on the text the failregexes
/// see (the `<F-CONTENT>`, or the line): a failregex anchored at the start
/// of that text (`^Literal…`, non-MULTILINE, so only position 0) is a
/// candidate only when the text starts with one of its prefixes (and, when
/// the prefix does not already contain one, holds one of its required
/// literals). The others keep the literal search, on that text.
#[derive(Debug)]
pub(crate) struct Dispatch {
    /// First byte of the text → the prefixes with that first byte, each
    /// once, with the failregexes it leads (a prefix that extends another
    /// of the same failregex is left out: the shorter one decides).
    by_byte: Vec<Vec<Entry>>,
    /// Per failregex: one of these must occur in the text (empty: nothing
    /// to check beyond the prefix).
    verify: Vec<Vec<memchr::memmem::Finder<'static>>>,
    /// The literal prefilter over the failregexes without prefixes (None:
    /// every failregex has one).
    rest: Option<Prefilter>,
}

/// A [`Dispatch`] prefix: its bytes, their [`Head`], its failregexes,
/// those of them (below 64) with nothing to verify as a mask of the first
/// word (the prefix alone makes them candidates), and whether that is all
/// of them.
type Entry = (Box<[u8]>, Head, SmallVec<[u32; 2]>, u64, bool);

impl Dispatch {
    /// `prefixes[i]`: Some(set) when every match of failregex `i` starts at
    /// position 0 of the searched text with one of `set` (none empty).
    fn build(prefixes: &[Option<Vec<Vec<u8>>>], literals: &[Option<Vec<String>>]) -> Dispatch {
        let mut by_byte: Vec<Vec<Entry>> = vec![Vec::new(); 256];
        let mut verify = Vec::with_capacity(prefixes.len());
        let mut rest_lits = Vec::with_capacity(prefixes.len());
        let mut any_rest = false;
        for (i, pre) in prefixes.iter().enumerate() {
            let lits: Vec<&str> = literals
                .get(i)
                .and_then(Option::as_ref)
                .map(|l| l.iter().map(|s| s.trim_end_matches('\n')).filter(|s| !s.is_empty()).collect())
                .unwrap_or_default();
            match pre {
                Some(set) if !set.is_empty() && set.iter().all(|p| !p.is_empty()) => {
                    // "starts with one of `set`" is "starts with one of its
                    // prefixes that extend no other of them"
                    for (k, p) in set.iter().enumerate() {
                        let extends = set
                            .iter()
                            .enumerate()
                            .any(|(j, q)| j != k && p.starts_with(q) && (q.len() < p.len() || j < k));
                        if extends {
                            continue;
                        }
                        let list = &mut by_byte[p[0] as usize];
                        match list.iter_mut().find(|e| *e.0 == p[..]) {
                            Some(e) if e.2.contains(&(i as u32)) => {}
                            Some(e) => e.2.push(i as u32),
                            None => list.push((
                                p.clone().into_boxed_slice(),
                                Head::of_prefix(p),
                                smallvec::smallvec![i as u32],
                                0,
                                false,
                            )),
                        }
                    }
                    // a prefix that holds a required literal proves it present
                    let implied =
                        set.iter().all(|p| lits.iter().any(|l| memchr::memmem::find(p, l.as_bytes()).is_some()));
                    verify.push(if implied || lits.is_empty() {
                        Vec::new()
                    } else {
                        lits.iter().map(|l| memchr::memmem::Finder::new(l.as_bytes()).into_owned()).collect()
                    });
                    rest_lits.push(Some(Vec::new()));
                }
                _ => {
                    any_rest = true;
                    verify.push(Vec::new());
                    rest_lits.push(literals.get(i).cloned().flatten());
                }
            }
        }
        // regexes handled here take no part in the rest's search
        let rest = any_rest.then(|| Prefilter::build_with(&rest_lits, false));
        for e in by_byte.iter_mut().flatten() {
            let quick = |i: u32| i < 64 && verify[i as usize].is_empty();
            e.3 = e.2.iter().filter(|&&i| quick(i)).fold(0, |m, &i| m | 1 << i);
            e.4 = e.2.iter().all(|&i| quick(i));
        }
        Dispatch { by_byte, verify, rest }
    }

    /// Candidates for `text` into `bits` (cleared first); true if any.
    fn candidates(&self, text: &str, words: usize, bits: &mut Vec<u64>) -> bool {
        match bits.as_mut_slice() {
            // (one word: no call to memset)
            [w] if words == 1 => *w = 0,
            _ => {
                bits.clear();
                bits.resize(words, 0);
            }
        }
        let b = text.as_bytes();
        if let Some(&b0) = b.first() {
            let head = head_word(b);
            for (p, h, regs, quick, all_quick) in &self.by_byte[b0 as usize] {
                if !h.starts(head, b, p) {
                    continue;
                }
                if let Some(w) = bits.first_mut() {
                    *w |= quick;
                }
                if *all_quick {
                    continue;
                }
                for &i in regs {
                    let i = i as usize;
                    if bit(bits, i) {
                        continue;
                    }
                    let v = &self.verify[i];
                    if v.is_empty() || v.iter().any(|f| f.find(b).is_some()) {
                        bits[i / 64] |= 1 << (i % 64);
                    }
                }
            }
        }
        if let Some(rest) = &self.rest {
            rest.add_candidates(text, bits);
        }
        bits.iter().any(|&w| w != 0)
    }

    /// [`candidates`](Self::candidates) with `starts_with` for the words
    /// of [`Head`] (the tests compare the two).
    #[cfg(test)]
    fn candidates_naive(&self, text: &str, words: usize) -> (bool, Vec<u64>) {
        let mut bits = vec![0u64; words];
        let b = text.as_bytes();
        for (p, _, regs, ..) in self.by_byte.iter().flatten() {
            if !b.starts_with(p) {
                continue;
            }
            for &i in regs {
                let i = i as usize;
                let v = &self.verify[i];
                if v.is_empty() || v.iter().any(|f| f.find(b).is_some()) {
                    bits[i / 64] |= 1 << (i % 64);
                }
            }
        }
        if let Some(rest) = &self.rest {
            rest.add_candidates(text, &mut bits);
        }
        (bits.iter().any(|&w| w != 0), bits)
    }
}

/// The first [`HEAD`] bytes of a text as one word (zeros past its end).
const HEAD: usize = 16;

#[inline]
fn head_word(b: &[u8]) -> u128 {
    if let Some(w) = b.first_chunk::<HEAD>() {
        return u128::from_le_bytes(*w);
    }
    let mut a = [0u8; HEAD];
    let n = b.len().min(HEAD);
    a[..n].copy_from_slice(&b[..n]);
    u128::from_le_bytes(a)
}

/// A [`Dispatch`] prefix's first [`HEAD`] bytes as a word and the mask of
/// those it has, and the same for its next [`HEAD`] bytes: most prefixes
/// differ from a text in the first word, which one comparison tells; the
/// longer ones (`Received disconnect from `, `Connection closed by `, …)
/// are told by a second comparison instead of a loop over their bytes
/// (whose varying length the branch predictor missed).
#[derive(Clone, Copy, Debug)]
struct Head {
    word: u128,
    mask: u128,
    next: u128,
    next_mask: u128,
}

impl Head {
    fn of_prefix(p: &[u8]) -> Head {
        let mask = |n: usize| {
            let mut m = [0u8; HEAD];
            m[..n].fill(0xff);
            u128::from_le_bytes(m)
        };
        let rest = p.get(HEAD..).unwrap_or_default();
        Head {
            word: head_word(p),
            mask: mask(p.len().min(HEAD)),
            next: head_word(rest),
            next_mask: mask(rest.len().min(HEAD)),
        }
    }

    /// `b.starts_with(p)`; `head`: [`head_word`] of `b`, `self` that of `p`.
    #[inline]
    fn starts(&self, head: u128, b: &[u8], p: &[u8]) -> bool {
        // (the length first: a shorter text's zeros could equal a prefix's)
        b.len() >= p.len()
            && (head ^ self.word) & self.mask == 0
            && (p.len() <= HEAD
                || ((head_word(&b[HEAD..]) ^ self.next) & self.next_mask == 0
                    // (a loop: short rests, cheaper than a call to memcmp)
                    && b[(2 * HEAD).min(p.len())..p.len()]
                        .iter()
                        .zip(&p[(2 * HEAD).min(p.len())..])
                        .all(|(x, y)| x == y)))
    }
}

impl Prefilter {
    /// `literals[i]` = Some(set): every match of failregex `i` contains one
    /// of `set`; None: no such set known.
    fn build(literals: &[Option<Vec<String>>]) -> Prefilter {
        Self::build_with(literals, true)
    }

    /// [`build`](Self::build); `none_always`: a failregex with no literal
    /// set (None) is always a candidate; otherwise only Some(empty) means
    /// "never from here" (a failregex another selection handles).
    fn build_with(literals: &[Option<Vec<String>>], none_always: bool) -> Prefilter {
        let nregex = literals.len();
        let words = nregex.div_ceil(64).max(1);
        let mut always = vec![0u64; words];
        let mut pats: Vec<String> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut owners: Vec<SmallVec<[u32; 2]>> = Vec::new();
        for (i, lits) in literals.iter().enumerate() {
            // The searched text may be the `<F-CONTENT>` of the line plus a
            // "\n" that was not there after the content; a literal that ends
            // in "\n" is cut before it so that it stays required there too.
            let trimmed: Option<Vec<&str>> =
                lits.as_ref().map(|l| l.iter().map(|s| s.trim_end_matches('\n')).collect());
            match trimmed {
                Some(set) if !set.is_empty() && set.iter().all(|s| !s.is_empty()) => {
                    for s in set {
                        let id = *index.entry(s.to_string()).or_insert_with(|| {
                            pats.push(s.to_string());
                            owners.push(SmallVec::new());
                            pats.len() - 1
                        });
                        if !owners[id].contains(&(i as u32)) {
                            owners[id].push(i as u32);
                        }
                    }
                }
                Some(set) if !none_always && set.is_empty() => {}
                _ => always[i / 64] |= 1 << (i % 64),
            }
        }
        let ac = if pats.is_empty() {
            None
        } else {
            // A literal that cannot be built into the automaton makes its
            // regexes unconditional candidates (sound, only slower).
            match AhoCorasickBuilder::new().match_kind(MatchKind::Standard).build(&pats) {
                Ok(ac) => Some(ac),
                Err(_) => {
                    for o in &owners {
                        for &i in o {
                            always[i as usize / 64] |= 1 << (i % 64);
                        }
                    }
                    owners.clear();
                    None
                }
            }
        };
        let any = if ac.is_some() {
            AhoCorasickBuilder::new().match_kind(MatchKind::LeftmostFirst).build(&pats).ok()
        } else {
            None
        };
        Prefilter { ac, any, owners, always, words, nregex, dispatch: None }
    }

    /// Fill `bits` with the candidate failregexes for `hay`; true if any.
    fn candidates(&self, hay: &str, bits: &mut Vec<u64>) -> bool {
        bits.clear();
        bits.resize(self.words, 0);
        self.add_candidates(hay, bits)
    }

    /// Could any failregex match in a text within `hay`: does `hay` hold a
    /// literal of any of them (or has one none)?
    fn any_literal(&self, hay: &str) -> bool {
        if self.always.iter().any(|&w| w != 0) {
            return true;
        }
        match (&self.any, &self.ac) {
            (Some(any), _) => any.find(hay).is_some(),
            (None, Some(_)) => true,
            (None, None) => false,
        }
    }

    /// [`candidates`](Self::candidates) added to `bits` (as long as `always`).
    fn add_candidates(&self, hay: &str, bits: &mut [u64]) -> bool {
        for (b, a) in bits.iter_mut().zip(&self.always) {
            *b |= a;
        }
        if let Some(ac) = &self.ac {
            // Most lines contain no literal at all: a leftmost search (which
            // uses the automaton's fast SIMD prefilter) says so quickly. Its
            // match starts where the first occurrence of any literal starts,
            // so every occurrence (overlapping search) is found from there.
            let first = match &self.any {
                Some(any) => any.find(hay).map(|m| m.start()),
                None => Some(0),
            };
            let Some(first) = first else {
                return bits.iter().any(|&w| w != 0);
            };
            let input = aho_corasick::Input::new(hay).span(first..hay.len());
            for m in ac.find_overlapping_iter(input) {
                for &i in &self.owners[m.pattern().as_usize()] {
                    bits[i as usize / 64] |= 1 << (i % 64);
                }
            }
        }
        bits.iter().any(|&w| w != 0)
    }

    fn all(&self, bits: &mut Vec<u64>) {
        bits.clear();
        bits.resize(self.words, 0);
        for i in 0..self.nregex {
            bits[i / 64] |= 1 << (i % 64);
        }
    }
}

/// The first set bit at or after `from` (below `n`).
#[inline]
fn next_bit(bits: &[u64], from: usize, n: usize) -> Option<usize> {
    let mut wi = from / 64;
    let mut w = bits.get(wi)? & (u64::MAX << (from % 64));
    loop {
        if w != 0 {
            let i = wi * 64 + w.trailing_zeros() as usize;
            return (i < n).then_some(i);
        }
        wi += 1;
        w = *bits.get(wi)?;
    }
}

#[inline]
fn bit(bits: &[u64], i: usize) -> bool {
    bits.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
}

/// The required literals of a pattern for the prefilter.
fn required_literals(p: &Pattern) -> Option<Vec<String>> {
    p.required_literals()
}

// ---------------------------------------------------------------------------
// Compile
// ---------------------------------------------------------------------------

fn default_detector() -> Arc<DateDetector> {
    static DEFAULT: OnceLock<Arc<DateDetector>> = OnceLock::new();
    Arc::clone(DEFAULT.get_or_init(|| Arc::new(DateDetector::fail2ban_default())))
}

fn diag_at(d: Diagnostic, at: &Spanned) -> Diagnostic {
    match &at.at.file {
        Some(f) => d.at(f.clone(), at.at.line),
        None => Diagnostic { line: at.at.line, ..d },
    }
}

pub(crate) fn compile(spec: &FilterSpec, opts: &CompileOptions) -> Result<Compiled, Vec<Diagnostic>> {
    let mut errors: Vec<Diagnostic> = Vec::new();
    let mut warnings: Vec<Diagnostic> = Vec::new();
    let maxlines = if spec.maxlines == 0 {
        warnings.push(Diagnostic::warning("P103", format!("filter {}: maxlines 0 is not allowed; using 1", spec.name)));
        1
    } else {
        spec.maxlines
    };
    let multiline = maxlines > 1;

    let mut sort = |r: Result<Pattern, Vec<Diagnostic>>, warnings: &mut Vec<Diagnostic>| -> Option<Pat> {
        match r {
            Ok(p) => Some(Pat::new(p)),
            Err(ds) => {
                for d in ds {
                    if d.is_error() { errors.push(d) } else { warnings.push(d) }
                }
                None
            }
        }
    };

    // fail2ban: prefregex and ignoreregex never MULTILINE, failregex when
    // maxlines > 1; `<HOST>` with DNS names (its default `usedns = warn`).
    let popts = |multiline| PatternOptions { multiline, use_dns: true };
    let mut prefregex = match &spec.prefregex {
        Some(src) if !src.text.is_empty() => {
            sort(Pattern::compile_with(src, PatternKind::Prefregex, opts, popts(false)), &mut warnings)
        }
        _ => None,
    };
    let pref_has_id = prefregex.as_ref().is_some_and(Pat::has_failure_id);

    let mut failregex = Vec::with_capacity(spec.failregex.len());
    let mut failed = false;
    for src in &spec.failregex {
        match sort(Pattern::compile_with(src, PatternKind::Failregex, opts, popts(multiline)), &mut warnings) {
            Some(p) => {
                if !p.has_failure_id() && !pref_has_id {
                    warnings.push(diag_at(
                        Diagnostic::warning(
                            "P101",
                            format!(
                                "failregex has no failure-id group (<HOST>, <ADDR>, <IP4>, <IP6>, <DNS>, <F-ID> or \
                                 <F-MLFID>), and no prefregex supplies one: its matches cannot be counted: {}",
                                src.text
                            ),
                        ),
                        src,
                    ));
                }
                let mut p = p;
                if let Some(pr) = &prefregex {
                    for g in &mut p.groups {
                        g.keep_none =
                            pr.has_group(g.name) || pr.alts.iter().chain(&pr.tuples).any(|(_, n)| *n == g.name);
                    }
                }
                failregex.push(p);
            }
            None => failed = true,
        }
    }
    let mut ignoreregex = Vec::with_capacity(spec.ignoreregex.len());
    for src in &spec.ignoreregex {
        match sort(Pattern::compile_with(src, PatternKind::Ignoreregex, opts, popts(false)), &mut warnings) {
            Some(p) => ignoreregex.push(p),
            None => failed = true,
        }
    }
    for p in prefregex.iter().chain(&failregex).chain(&ignoreregex) {
        warnings.extend(p.pat.warnings().iter().cloned());
    }
    if spec.failregex.is_empty() {
        warnings.push(Diagnostic::warning("P102", format!("filter {} has no failregex: it never matches", spec.name)));
    }

    // None = fail2ban's default templates (shared, built on first use).
    let detector = match &spec.datepattern {
        Some(dp) => match DateDetector::from_datepattern(&dp.text) {
            Ok(d) => Some(Some(Arc::new(d))),
            Err(e) => {
                let msg = e.to_string();
                let msg = msg.strip_prefix("D001: ").unwrap_or(&msg).to_string();
                errors.push(diag_at(Diagnostic::error("D001", msg), dp));
                None
            }
        },
        None => Some(None),
    };

    let logtz = match &spec.logtimezone {
        Some(tz) if !tz.trim().is_empty() => match stadtwache_datetime::parse_logtimezone(tz) {
            Ok(z) => Ok(Some(z)),
            Err(e) => {
                let msg = e.to_string();
                let msg = msg.strip_prefix("D002: ").unwrap_or(&msg).to_string();
                errors.push(Diagnostic::error("D002", format!("filter {}: {msg}", spec.name)));
                Err(())
            }
        },
        _ => Ok(None),
    };

    if !errors.is_empty() || failed {
        if errors.is_empty() {
            errors.push(Diagnostic::error("P100", format!("filter {}: a pattern failed to compile", spec.name)));
        }
        return Err(errors);
    }
    let (Some(detector), Ok(logtz)) = (detector, logtz) else {
        return Err(errors);
    };

    let literals: Vec<Option<Vec<String>>> = failregex.iter().map(|p| required_literals(&p.pat)).collect();
    let mut prefilter = Prefilter::build(&literals);
    if !multiline {
        let prefixes: Vec<Option<Vec<Vec<u8>>>> = failregex.iter().map(|p| p.pat.anchored_prefixes()).collect();
        if prefixes.iter().any(Option::is_some) {
            prefilter.dispatch = Some(Box::new(Dispatch::build(&prefixes, &literals)));
        }
    }
    let mut slots = Slots::new();
    for p in prefregex.iter_mut().chain(&mut failregex) {
        p.assign_slots(&mut slots);
    }
    for fr in &mut failregex {
        let pr = prefregex.as_ref();
        let any = |k: u16| fr.fixed(k).is_some() || pr.is_some_and(|pr| pr.fixed(k).is_some());
        let forget_fast = fr.plain
            && pr.is_none_or(|pr| pr.plain)
            && any(S_MLFID)
            && any(S_MLFFORGET)
            && (any(S_NOFAIL) || any(S_MLFGAINED));
        fr.forget_fast = forget_fast;
        // the slots the prefregex may set: its groups, its `alt_`/`tuple_` targets
        let pref_sets = |k: u16| {
            pr.is_some_and(|pr| {
                pr.groups.iter().any(|g| g.slot == k)
                    || pr.alt_slots.iter().chain(&pr.tuple_slots).any(|&(_, n)| n == k)
            })
        };
        fr.alt_direct = fr.tuple_slots.is_empty()
            && fr.alt_slots.iter().all(|&(_, n)| fr.groups.iter().any(|g| g.slot == n) || !pref_sets(n));
    }
    let pref_linear = prefregex.as_ref().is_none_or(|pr| pr.pat.engine() == Engine::Linear);
    let date_key = DateKey {
        datepattern: spec.datepattern.as_ref().map(|d| d.text.clone()),
        logtz: spec.logtimezone.clone().filter(|tz| !tz.trim().is_empty()),
    };
    let parts =
        Parts { prefregex, pref_linear, failregex, ignoreregex, maxlines, detector, date_key, logtz, prefilter, slots };
    Ok(Compiled {
        filter: CompiledFilter { name: spec.name.clone(), failregex_src: spec.failregex.clone(), parts },
        warnings,
    })
}

/// A filter's date configuration: filters with equal keys find the same
/// date on the same line with the same date state (see [`Dater`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DateKey {
    datepattern: Option<String>,
    logtz: Option<String>,
}

/// Everything compiled, behind `CompiledFilter`.
#[derive(Debug)]
pub(crate) struct Parts {
    prefregex: Option<Pat>,
    /// No prefregex, or one on the linear engine (no budget to count): the
    /// whole-line literal reject may be skipped (see [`Reject`]).
    pref_linear: bool,
    failregex: Vec<Pat>,
    ignoreregex: Vec<Pat>,
    maxlines: usize,
    /// The `datepattern` detector; None: fail2ban's default templates.
    detector: Option<Arc<DateDetector>>,
    /// What `detector` and `logtz` were built from.
    pub(crate) date_key: DateKey,
    logtz: Option<TimeZone>,
    prefilter: Prefilter,
    /// The group names of prefregex and failregexes, by slot.
    slots: Slots,
}

impl Parts {
    pub(crate) fn maxlines(&self) -> usize {
        self.maxlines
    }

    pub(crate) fn failregex_expanded(&self, i: usize) -> Option<&str> {
        self.failregex.get(i).map(|p| p.pat.expanded())
    }
}

// ---------------------------------------------------------------------------
// Failure data (fail2ban's `fail` dict)
// ---------------------------------------------------------------------------

/// A group's value, borrowed from its [`Groups`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ValRef<'a> {
    Str(&'a str),
    /// `tuple_*` merging: the parts (None: did not take part).
    Tuple(&'a [Option<String>]),
}

impl<'a> ValRef<'a> {
    /// Python truthiness.
    fn truthy(self) -> bool {
        match self {
            ValRef::Str(s) => !s.is_empty(),
            ValRef::Tuple(t) => !t.is_empty(),
        }
    }

    fn text(self) -> std::borrow::Cow<'a, str> {
        match self {
            ValRef::Str(s) => std::borrow::Cow::Borrowed(s),
            ValRef::Tuple(_) => std::borrow::Cow::Owned(self.key_text()),
        }
    }

    fn key_text(self) -> String {
        let mut out = String::new();
        self.push_key(&mut out);
        out
    }

    /// The value as a key: a tuple's parts joined by NUL.
    fn push_key(self, out: &mut String) {
        match self {
            ValRef::Str(s) => out.push_str(s),
            ValRef::Tuple(t) => {
                for (i, v) in t.iter().enumerate() {
                    if i > 0 {
                        out.push('\u{0}');
                    }
                    out.push_str(v.as_deref().unwrap_or(""));
                }
            }
        }
    }
}

/// A [`Cell`]'s state: Python's "key missing", "None", a value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Has {
    #[default]
    Absent,
    Null,
    Str,
    Tuple,
}

/// One slot of a [`Groups`]. Its buffers keep their capacity while the
/// slot is emptied and filled again (no allocation per value once warm).
#[derive(Debug)]
struct Cell {
    name: Name,
    has: Has,
    s: String,
    t: Vec<Option<String>>,
}

impl Cell {
    fn new(name: Name) -> Cell {
        Cell { name, has: Has::Absent, s: String::new(), t: Vec::new() }
    }

    fn get(&self) -> Option<ValRef<'_>> {
        match self.has {
            Has::Str => Some(ValRef::Str(&self.s)),
            Has::Tuple => Some(ValRef::Tuple(&self.t)),
            Has::Absent | Has::Null => None,
        }
    }

    /// Take `src`'s state and value (not its name).
    fn assign(&mut self, src: &Cell) {
        self.has = src.has;
        match src.has {
            Has::Str => {
                self.s.clear();
                self.s.push_str(&src.s);
            }
            Has::Tuple => self.t.clone_from(&src.t),
            Has::Absent | Has::Null => {}
        }
    }
}

impl Cell {
    /// [`assign`](Self::assign) by swapping the value's buffer with `src`
    /// (whose value is then a leftover of `self`'s).
    #[inline]
    fn take_from(&mut self, src: &mut Cell) {
        self.has = src.has;
        match src.has {
            Has::Str => std::mem::swap(&mut self.s, &mut src.s),
            Has::Tuple => std::mem::swap(&mut self.t, &mut src.t),
            Has::Absent | Has::Null => {}
        }
    }
}

impl Clone for Cell {
    fn clone(&self) -> Cell {
        let mut c = Cell::new(self.name);
        c.assign(self);
        c
    }

    fn clone_from(&mut self, src: &Cell) {
        self.name = src.name;
        self.assign(src);
    }
}

/// Named groups by slot (see [`Slots`]): a group that did not take part is
/// `Null` (Python's `groupdict()` keeps those as `None`). Only the cells
/// whose bit is set in `live` are keys of the dict (the others are
/// leftovers, buffers kept for reuse), so clearing and copying touch only
/// the few keys there are.
#[derive(Debug, Default)]
struct Groups {
    cells: Vec<Cell>,
    live: Bits,
}

/// A set of slots: the first 64 in one word (every stock filter has
/// fewer names: one branch, no indirection), the others in `hi`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Bits {
    lo: u64,
    hi: Vec<u64>,
}

impl Bits {
    /// Room for slots `0..n`.
    fn new(n: usize) -> Bits {
        Bits { lo: 0, hi: vec![0; n.saturating_sub(64).div_ceil(64)] }
    }

    #[inline]
    fn has(&self, k: usize) -> bool {
        if k < 64 { self.lo >> k & 1 != 0 } else { self.hi.get(k / 64 - 1).is_some_and(|w| w >> (k % 64) & 1 != 0) }
    }

    #[inline]
    fn insert(&mut self, k: usize) {
        if k < 64 {
            self.lo |= 1 << k;
        } else if let Some(w) = self.hi.get_mut(k / 64 - 1) {
            *w |= 1 << (k % 64);
        }
    }

    #[inline]
    fn remove(&mut self, k: usize) {
        if k < 64 {
            self.lo &= !(1 << k);
        } else if let Some(w) = self.hi.get_mut(k / 64 - 1) {
            *w &= !(1 << (k % 64));
        }
    }

    #[inline]
    fn clear(&mut self) {
        self.lo = 0;
        if !self.hi.is_empty() {
            self.hi.fill(0);
        }
    }

    /// `self = other` (of the same size).
    #[inline]
    fn copy_from(&mut self, other: &Bits) {
        self.lo = other.lo;
        if !self.hi.is_empty() {
            self.hi.copy_from_slice(&other.hi);
        }
    }

    /// The members, in order.
    #[inline]
    fn each(&self, mut f: impl FnMut(usize)) {
        let mut w = self.lo;
        while w != 0 {
            f(w.trailing_zeros() as usize);
            w &= w - 1;
        }
        for (wi, &w) in self.hi.iter().enumerate() {
            let mut w = w;
            while w != 0 {
                f((wi + 1) * 64 + w.trailing_zeros() as usize);
                w &= w - 1;
            }
        }
    }
}

impl Clone for Groups {
    fn clone(&self) -> Groups {
        let mut g = Groups { cells: self.cells.iter().map(|c| Cell::new(c.name)).collect(), live: self.live.clone() };
        self.live.each(|i| g.cells[i].assign(&self.cells[i]));
        g
    }

    /// Copies only the keys (buffers reused); `src` of the same filter.
    fn clone_from(&mut self, src: &Groups) {
        if self.cells.len() != src.cells.len() || self.live.hi.len() != src.live.hi.len() {
            *self = src.clone();
            return;
        }
        let cells = &mut self.cells;
        src.live.each(|i| cells[i].assign(&src.cells[i]));
        self.live.copy_from(&src.live);
    }
}

impl Groups {
    fn new(names: &[Name]) -> Groups {
        Groups { cells: names.iter().map(|&n| Cell::new(n)).collect(), live: Bits::new(names.len()) }
    }

    /// Every key removed (buffers kept).
    fn clear(&mut self) {
        self.live.clear();
    }

    /// The key is in the dict (None or a value).
    #[inline]
    fn present(&self, k: u16) -> bool {
        self.live.has(usize::from(k))
    }

    #[inline]
    fn get(&self, k: u16) -> Option<ValRef<'_>> {
        if !self.present(k) {
            return None;
        }
        self.cells.get(usize::from(k)).and_then(Cell::get)
    }

    /// Whether one of the slots of `mask` (slots below 64) is a key with a
    /// value (not None): `any(get(k).is_some())` over them.
    #[inline]
    fn any_value(&self, mask: u64) -> bool {
        let mut w = self.live.lo & mask;
        while w != 0 {
            let k = w.trailing_zeros() as usize;
            if self.cells.get(k).is_some_and(|c| c.get().is_some()) {
                return true;
            }
            w &= w - 1;
        }
        false
    }

    #[inline]
    fn truthy(&self, k: u16) -> bool {
        self.get(k).is_some_and(ValRef::truthy)
    }

    /// The cell of key `k`, made a key of the dict (its value to be set).
    #[inline]
    fn cell_mut(&mut self, k: u16) -> Option<&mut Cell> {
        let k = usize::from(k);
        let c = self.cells.get_mut(k)?;
        self.live.insert(k);
        Some(c)
    }

    fn set_str(&mut self, k: u16, v: &str) {
        if let Some(c) = self.cell_mut(k) {
            c.has = Has::Str;
            c.s.clear();
            c.s.push_str(v);
        }
    }

    fn set_null(&mut self, k: u16) {
        if let Some(c) = self.cell_mut(k) {
            c.has = Has::Null;
        }
    }

    fn set_tuple(&mut self, k: u16, t: Vec<Option<String>>) {
        if let Some(c) = self.cell_mut(k) {
            c.has = Has::Tuple;
            c.t = t;
        }
    }

    /// `self[dst] = self[src]` (`src` a key with a value).
    fn copy_cell(&mut self, dst: u16, src: u16) {
        if !self.present(src) {
            return;
        }
        let (d, s) = (usize::from(dst), usize::from(src));
        if d == s || d.max(s) >= self.cells.len() {
            return;
        }
        self.live.insert(d);
        if d < s {
            let (a, b) = self.cells.split_at_mut(s);
            a[d].assign(&b[0]);
        } else {
            let (a, b) = self.cells.split_at_mut(d);
            b[0].assign(&a[s]);
        }
    }

    /// Remove the key; whether its value was truthy.
    fn pop_truthy(&mut self, k: u16) -> bool {
        let t = self.truthy(k);
        self.live.remove(usize::from(k));
        t
    }

    /// `dict.update(other)`: every key of `other` (None values too).
    #[cfg(test)]
    fn update(&mut self, other: &Groups) {
        other.live.each(|i| {
            if let Some(c) = self.cells.get_mut(i) {
                c.assign(&other.cells[i]);
                self.live.insert(i);
            }
        });
    }

    /// [`update`](Self::update), the values moved: their buffers are
    /// swapped, not copied (`other` keeps its keys and states, with values
    /// left over from `self`: only for an `other` that is filled anew
    /// before it is read again).
    fn update_from(&mut self, other: &mut Groups) {
        let (cells, live) = (&mut self.cells, &mut self.live);
        let src = &mut other.cells;
        other.live.each(|i| {
            if let (Some(c), Some(o)) = (cells.get_mut(i), src.get_mut(i)) {
                c.take_from(o);
                live.insert(i);
            }
        });
    }

    /// [`update`](Self::update) with the keys of `other` that have a value,
    /// moved: their buffers are swapped, not copied (`other`'s cells keep
    /// their keys and states, with values left over from `self`: only for
    /// an `other` that is cleared or refilled before it is read again).
    fn update_values_from(&mut self, other: &mut Groups) {
        let (cells, live) = (&mut self.cells, &mut self.live);
        let src = &mut other.cells;
        other.live.each(|i| {
            let Some(o) = src.get_mut(i) else { return };
            if matches!(o.has, Has::Str | Has::Tuple) {
                if let Some(c) = cells.get_mut(i) {
                    c.take_from(o);
                    live.insert(i);
                }
            }
        });
    }

    /// The keys with their names, in slot order.
    fn for_each(&self, mut f: impl FnMut(&Cell)) {
        self.live.each(|i| f(&self.cells[i]));
    }
}

/// A list of strings whose buffers are kept when it is cleared: filled
/// again without allocating once warm. Derefs to the live part.
#[derive(Debug, Default)]
struct StrList {
    items: Vec<String>,
    len: usize,
}

impl Clone for StrList {
    fn clone(&self) -> StrList {
        StrList { items: self.as_slice().to_vec(), len: self.len }
    }
}

impl StrList {
    fn as_slice(&self) -> &[String] {
        self.items.get(..self.len).unwrap_or(&[])
    }

    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn clear(&mut self) {
        self.len = 0;
    }

    fn push(&mut self, s: &str) {
        match self.items.get_mut(self.len) {
            Some(x) => {
                x.clear();
                x.push_str(s);
            }
            None => self.items.push(s.to_string()),
        }
        self.len += 1;
    }

    fn extend<'s>(&mut self, it: impl IntoIterator<Item = &'s str>) {
        for s in it {
            self.push(s);
        }
    }

    /// `s` is in the (sorted) list.
    fn contains(&self, s: &str) -> bool {
        self.as_slice().binary_search_by(|x| x.as_str().cmp(s)).is_ok()
    }

    /// Insert `s` in sorted order (a set: nothing when it is there).
    fn insert_sorted(&mut self, s: &str) {
        if let Err(at) = self.as_slice().binary_search_by(|x| x.as_str().cmp(s)) {
            self.push(s);
            if at + 1 < self.len {
                self.items[at..self.len].rotate_right(1);
            }
        }
    }
}

/// fail2ban's `fail` dict: the groups plus the keys the filter adds.
///
/// A reported [`Failure`] shares it (behind an `Arc`, with the mlfid cache
/// when it goes there) and builds its fields from it only when asked.
/// Its buffers are reused for later failures once nothing refers to it
/// ([`MlfidCache::fresh`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct FailData {
    groups: Groups,
    /// `users`: every user of a multi-line failure (a set in fail2ban),
    /// sorted; empty: no `users` key.
    users: StrList,
    /// `matches`: the matched lines (no key and empty are the same here).
    matches: StrList,
    /// `nofail-matches`: lines of helper matches kept for a later failure.
    nofail_matches: StrList,
    /// `mlfpending`: a failure waits for its id.
    mlfpending: bool,
    /// `ip`: the address when the failure id is something else.
    ip: Option<String>,
}

impl FailData {
    fn new(names: &[Name]) -> FailData {
        FailData { groups: Groups::new(names), ..FailData::default() }
    }

    /// Empty again (buffers kept).
    fn reset(&mut self) {
        self.groups.clear();
        self.users.clear();
        self.matches.clear();
        self.nofail_matches.clear();
        self.mlfpending = false;
        self.ip = None;
    }

    /// The matched lines (fail2ban's `matches`).
    pub(crate) fn matches(&self) -> &[String] {
        self.matches.as_slice()
    }

    /// `matches = nofail_matches + matches`, `nofail_matches` emptied.
    fn join_nofail_matches(&mut self) {
        if self.nofail_matches.is_empty() {
            return;
        }
        let (old, nofail) = (&self.matches, &mut self.nofail_matches);
        nofail.extend(old.as_slice().iter().map(String::as_str));
        std::mem::swap(&mut self.matches, &mut self.nofail_matches);
        self.nofail_matches.clear();
    }

    pub(crate) fn fields(&self) -> BTreeMap<String, FieldValue> {
        let mut out = BTreeMap::new();
        self.groups.for_each(|c| {
            match c.get() {
                Some(ValRef::Str(s)) => {
                    out.insert(c.name.to_string(), FieldValue::One(s.to_string()));
                }
                // fail2ban's tuple; a part that did not take part is None there
                Some(ValRef::Tuple(t)) => {
                    out.insert(
                        c.name.to_string(),
                        FieldValue::Many(t.iter().map(|v| v.clone().unwrap_or_default()).collect()),
                    );
                }
                None => {}
            }
        });
        if !self.users.is_empty() {
            out.insert("users".to_string(), FieldValue::Many(self.users.as_slice().to_vec()));
        }
        if let Some(ip) = &self.ip {
            out.insert("ip".to_string(), FieldValue::One(ip.clone()));
        }
        out
    }
}

/// fail2ban's `_updateUsers` on a failure's `users`: add the current user;
/// the users' count (0: no `users` key).
fn update_users(users: &mut StrList, user: Option<ValRef<'_>>) -> usize {
    if let Some(u) = user.filter(|u| u.truthy()) {
        match u {
            ValRef::Str(s) => users.insert_sorted(s),
            ValRef::Tuple(_) => users.insert_sorted(&u.key_text().replace('\u{0}', ",")),
        }
    }
    users.len()
}

// ---------------------------------------------------------------------------
// mlfid cache (fail2ban's `Utils.Cache(maxCount=100, maxTime=5*60)`)
// ---------------------------------------------------------------------------

const MLFID_MAX_COUNT: usize = 100;
const MLFID_MAX_TIME: Duration = Duration(300 * Timestamp::MICROS_PER_SEC);

/// FNV-1a (word-wise, mixed at the end): the cache holds at most 100 keys,
/// so hash flooding cannot hurt,
/// and SipHash costs more than the rest of a lookup.
#[derive(Clone, Copy, Debug)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        // the word-wise steps leave a word's high bytes in the high bits
        // only: mix them into the low ones (the bucket index)
        let h = (self.0 ^ (self.0 >> 32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^ (h >> 29)
    }

    /// FNV-1a over 8-byte words, the last partial word as one (the key is
    /// hashed once per hit).
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let w = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
            self.0 = (self.0 ^ w).wrapping_mul(0x0100_0000_01b3);
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            // the last 1..=7 bytes as one word, with their count on top (the
            // text's last 8 bytes shifted when it has them: no copy)
            let n = rest.len();
            let low = match bytes.last_chunk::<8>() {
                Some(w) => u64::from_le_bytes(*w) >> (8 * (8 - n)),
                None => rest.iter().rev().fold(0, |a, &c| a << 8 | u64::from(c)),
            };
            self.0 = (self.0 ^ (low | (n as u64) << 56)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// One cached failure under its key.
#[derive(Debug)]
struct CacheEntry {
    key: String,
    /// Insertion number (unique): the entry's place in `order`.
    seq: u64,
    exp: Timestamp,
    /// The failure, shared with the [`Failure`] reported from it (if any);
    /// None while a hit has it taken out. Changed in place (`make_mut`):
    /// copied only while that failure is still alive.
    data: Option<Arc<FailData>>,
}

/// The key's hash (the same for a lookup by text and for a stored entry):
/// [`Fnv`] over its bytes, without the `Hash` trait's terminator byte (one
/// more word step) and the hasher plumbing.
#[inline]
fn key_hash(k: &str) -> u64 {
    use std::hash::Hasher;
    let mut h = Fnv::default();
    h.write(k.as_bytes());
    h.finish()
}

/// Failures kept for reuse: at most this many unused ones …
const SPARE_FREE: usize = 16;
/// … and this many still shared with a reported [`Failure`] (reused once
/// the caller has dropped it).
const SPARE_HELD: usize = 8;

/// fail2ban's cache of pending multi-line failures. A hit finds its entry
/// once by the key's text and then refers to it by hash and insertion
/// number (unique): the data is taken out and written back in place, the
/// entry and its key stay where they are.
///
/// It also keeps the failures (and keys) that left it, and those reported
/// without going into it, for reuse: a new failure takes their buffers
/// instead of allocating.
#[derive(Debug, Default)]
struct MlfidCache {
    table: hashbrown::HashTable<CacheEntry>,
    /// Insertion order (FIFO eviction): (seq, the entry's hash), oldest
    /// first. Entries removed meanwhile stay until popped or compacted
    /// away (their seq is no longer in the table).
    order: VecDeque<(u64, u64)>,
    seq: u64,
    /// The filter's group names (slots) for a new failure.
    names: Vec<Name>,
    /// Unused failures, emptied.
    free: Vec<Arc<FailData>>,
    /// Failures still shared with a reported [`Failure`], oldest first.
    held: VecDeque<Arc<FailData>>,
    /// Keys of removed entries.
    free_keys: Vec<String>,
    /// Reuse failures and keys (off: always new ones; tests compare both).
    reuse: bool,
}

#[cfg(test)]
thread_local! {
    /// Taken entries found again at their bucket (tests).
    static TAKEN_AT_BUCKET: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// An entry taken with [`MlfidCache::take`]: where to write it back.
#[derive(Clone, Copy, Debug)]
struct Taken {
    hash: u64,
    seq: u64,
    /// The entry's bucket in the table when it was taken: found there again
    /// without a probe (its `seq` checked; by `hash` and `seq` otherwise).
    idx: usize,
}

impl MlfidCache {
    fn new(names: Vec<Name>) -> MlfidCache {
        MlfidCache { names, reuse: true, ..MlfidCache::default() }
    }

    /// `get`: an expired entry is removed and not returned. The entry keeps
    /// its place (and key) with its data taken out; `put_back` returns it.
    /// `hash`: [`key_hash`] of `k`.
    fn take(&mut self, k: &str, hash: u64, now: Timestamp) -> Option<(Taken, Arc<FailData>)> {
        let entry = self.table.find_entry(hash, |e| e.key == k).ok()?;
        if entry.get().exp > now {
            let idx = entry.bucket_index();
            let e = entry.into_mut();
            let d = match e.data.take() {
                Some(d) => d,
                None => Arc::new(FailData::new(&self.names)),
            };
            return Some((Taken { hash, seq: e.seq, idx }, d));
        }
        let (e, _) = entry.remove();
        self.recycle_entry(e);
        None
    }

    /// Return an entry taken with [`take`](Self::take), same place in order.
    fn put_back(&mut self, t: Taken, d: Arc<FailData>) {
        if let Some(e) = self.taken_mut(t) {
            e.data = Some(d);
        }
    }

    /// The entry taken as `t`: at its bucket when it is still there (seq
    /// numbers are unique), else (the table changed meanwhile) by its hash.
    #[inline]
    fn taken_mut(&mut self, t: Taken) -> Option<&mut CacheEntry> {
        if self.table.get_bucket(t.idx).is_some_and(|e| e.seq == t.seq) {
            #[cfg(test)]
            TAKEN_AT_BUCKET.with(|c| c.set(c.get() + 1));
            return self.table.get_bucket_mut(t.idx);
        }
        self.table.find_mut(t.hash, |e| e.seq == t.seq)
    }

    /// Remove an entry taken with `take` for good.
    fn forget(&mut self, t: Taken) {
        let entry = if self.table.get_bucket(t.idx).is_some_and(|e| e.seq == t.seq) {
            self.table.get_bucket_entry(t.idx).ok()
        } else {
            self.table.find_entry(t.hash, |e| e.seq == t.seq).ok()
        };
        if let Some(e) = entry {
            let (e, _) = e.remove();
            self.recycle_entry(e);
        }
    }

    /// [`merge_failure`]'s `discard` without taking the entry out: a helper
    /// hit (`nofail` truthy after the merge) that forgets key `k` (`hash`:
    /// its [`key_hash`]), `gained` its `mlfgained` truthy, `user` its
    /// truthy `user`. When the merge would give such a helper that leaves
    /// the cache (a new failure, or one not pending, with at most one
    /// user), the entry is removed (as `take` then `forget` would) and true
    /// returned; otherwise nothing changes.
    fn forget_helper(&mut self, k: &str, hash: u64, now: Timestamp, gained: bool, user: Option<&str>) -> bool {
        let Ok(entry) = self.table.find_entry(hash, |e| e.key == k) else {
            return true;
        };
        let e = entry.get();
        if e.exp > now {
            // (an entry's data is only ever out while a hit has it taken)
            let (pending, users, has) = match &e.data {
                Some(d) => (d.mlfpending, d.users.len(), user.is_some_and(|u| d.users.contains(u))),
                None => (false, 0, false),
            };
            let users = users + usize::from(user.is_some() && !has);
            if (pending && !gained) || users > 1 {
                return false;
            }
        }
        let (e, _) = entry.remove();
        self.recycle_entry(e);
        true
    }

    /// Remove the entry `seq` (hash `hash`); whether it was alive at `now`.
    fn remove_seq(&mut self, hash: u64, seq: u64, now: Timestamp) -> bool {
        match self.table.find_entry(hash, |e| e.seq == seq) {
            Ok(e) => {
                let (e, _) = e.remove();
                let alive = e.exp > now;
                self.recycle_entry(e);
                alive
            }
            Err(_) => false,
        }
    }

    /// `set` of a key that is not in the cache (its [`take`](Self::take)
    /// just gave None; `hash`: [`key_hash`] of `k`).
    #[cfg(test)]
    fn set(&mut self, k: &str, hash: u64, d: Arc<FailData>, now: Timestamp) {
        let key = self.key_of(ValRef::Str(k));
        self.set_key(key, hash, d, now);
    }

    /// `v` as a key, in a buffer of a removed entry if there is one.
    fn key_of(&mut self, v: ValRef<'_>) -> String {
        let mut key = self.free_keys.pop().unwrap_or_default();
        key.clear();
        v.push_key(&mut key);
        key
    }

    /// [`set`](Self::set) with the key made by [`key_of`](Self::key_of).
    fn set_key(&mut self, key: String, hash: u64, d: Arc<FailData>, now: Timestamp) {
        if self.table.len() >= MLFID_MAX_COUNT {
            while let Some((seq, h)) = self.order.pop_front() {
                let alive = self.remove_seq(h, seq, now);
                if alive && self.table.len() < MLFID_MAX_COUNT {
                    break;
                }
            }
        }
        debug_assert!(self.table.find(hash, |e| e.key == key).is_none(), "set of a key in the cache");
        self.seq += 1;
        self.order.push_back((self.seq, hash));
        if self.order.len() > 2 * MLFID_MAX_COUNT + 16 {
            // drop the places of entries removed meanwhile
            let table = &self.table;
            self.order.retain(|&(seq, h)| table.find(h, |e| e.seq == seq).is_some());
        }
        let e = CacheEntry { key, seq: self.seq, exp: now.saturating_add(MLFID_MAX_TIME), data: Some(d) };
        self.table.insert_unique(hash, e, |e| key_hash(&e.key));
    }

    fn recycle_entry(&mut self, e: CacheEntry) {
        if self.reuse && self.free_keys.len() < SPARE_FREE {
            self.free_keys.push(e.key);
        }
        if let Some(d) = e.data {
            self.release(d);
        }
    }

    /// A new, empty failure: one whose buffers are free again if there is one.
    fn fresh(&mut self) -> Arc<FailData> {
        if let Some(d) = self.free.pop() {
            return d;
        }
        if let Some(mut d) = self.held.pop_front() {
            if let Some(m) = Arc::get_mut(&mut d) {
                m.reset();
                return d;
            }
            self.held.push_front(d);
        }
        Arc::new(FailData::new(&self.names))
    }

    /// A failure the runner is done with: kept for [`fresh`](Self::fresh)
    /// (if still shared, until the caller drops it).
    fn release(&mut self, mut d: Arc<FailData>) {
        if !self.reuse {
            return;
        }
        match Arc::get_mut(&mut d) {
            Some(m) => {
                if self.free.len() < SPARE_FREE {
                    m.reset();
                    self.free.push(d);
                }
            }
            None => {
                if self.held.len() >= SPARE_HELD {
                    self.held.pop_front();
                }
                self.held.push_back(d);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.table.len()
    }

    #[cfg(test)]
    fn contains_key(&self, k: &str) -> bool {
        self.table.find(key_hash(k), |e| e.key == k).is_some()
    }
}

// ---------------------------------------------------------------------------
// Runner state
// ---------------------------------------------------------------------------

/// One buffered line (fail2ban's tuple line): the original text and the
/// span of the date cut out of it.
#[derive(Clone, Debug)]
struct OwnedLine {
    text: String,
    cut: Option<(usize, usize)>,
}

#[derive(Clone, Copy, Debug)]
struct Tl<'a> {
    text: &'a str,
    cut: Option<(usize, usize)>,
}

impl<'a> Tl<'a> {
    /// The searched parts: text before and after the date.
    #[inline]
    fn parts(&self) -> (&'a str, &'a str) {
        match self.cut {
            Some((s, e)) => (&self.text[..s], &self.text[e..]),
            None => (self.text, ""),
        }
    }

    fn eq_joined(&self, other: &str) -> bool {
        let (a, b) = self.parts();
        other.len() == a.len() + b.len() && other.starts_with(a) && other.ends_with(b)
    }
}

/// fail2ban's `_tupleLinesBuf`: the searched parts joined with "\n", plus "\n".
fn push_buf(out: &mut String, lines: impl Iterator<Item = usize>, org: &[Tl<'_>]) {
    let mut first = true;
    for i in lines {
        if !first {
            out.push('\n');
        }
        first = false;
        let (a, b) = org[i].parts();
        // (one reservation; a date at the line's start leaves `a` empty)
        out.reserve(a.len() + b.len() + 1);
        if !a.is_empty() {
            out.push_str(a);
        }
        out.push_str(b);
    }
    out.push('\n');
}

/// [`push_buf`] of one line, inline (a single-line buffer).
#[inline(always)]
fn push_line(out: &mut String, line: &Tl<'_>) {
    let (a, b) = line.parts();
    out.reserve(a.len() + b.len() + 1);
    if !a.is_empty() {
        out.push_str(a);
    }
    out.push_str(b);
    out.push('\n');
}

/// The whole-line literal reject of single-line filters that pick their
/// candidates after the prefregex: it costs a literal search on every line
/// and saves a prefregex search (a few times dearer) on the lines without
/// any literal. Measured over `SAMPLE` lines: when fewer than a quarter of
/// them are rejected, the next `SKIP` lines go without it (those without a
/// literal then fail the prefregex or get no candidate: the same result).
/// The sample is short next to the skip (1 line in 129 pays the search
/// while it is off): 64 lines tell a quarter from the few percent of a
/// log whose lines mostly match (at 10 %, 16 or more of 64 rejected has a
/// chance of about 1 in 2,000), and a wrong call only costs speed for
/// `SKIP` lines.
#[derive(Debug, Default)]
struct Reject {
    checked: u32,
    rejected: u32,
    skip: u32,
}

impl Reject {
    const SAMPLE: u32 = 64;
    const SKIP: u32 = 8192;

    fn record(&mut self, rejected: bool) {
        self.checked += 1;
        self.rejected += u32::from(rejected);
        if self.checked == Self::SAMPLE {
            if self.rejected * 4 < self.checked {
                self.skip = Self::SKIP;
            }
            self.checked = 0;
            self.rejected = 0;
        }
    }
}

/// fail2ban's `__lineBuffer` relative to the buffer the line started with.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Cur {
    /// Unchanged.
    Org,
    /// `[('', '', content)]` (the content is in `State::content`, with "\n").
    Content,
    /// A selection of the original lines.
    Idx(SmallVec<[usize; 4]>),
}

/// Per-stream state behind `FilterRunner`.
#[derive(Debug)]
pub(crate) struct State {
    /// The runner's own date state (unused when a shared one hands in dates).
    dater: Dater,
    /// fail2ban's `__lastDate`.
    last_date: Option<Timestamp>,
    /// fail2ban's `__lineBuffer` (maxlines > 1 only).
    lines: Vec<OwnedLine>,
    hay: String,
    hay2: String,
    /// `<F-CONTENT>` + "\n" while the line buffer is the content.
    content: String,
    bits: Vec<u64>,
    /// How the whole-line literal reject has fared lately.
    reject: Reject,
    cache: MlfidCache,
    /// The prefregex's groups (valid from the first failregex hit of a line).
    pre: Groups,
    /// The failregex's groups of a hit.
    cur: Groups,
    /// Both merged: the hit's `fail` dict before it goes where it belongs.
    work: Groups,
    /// The hit's mlfid key.
    key: String,
    /// Addresses seen lately (see [`AddrMemo`]).
    addrs: AddrMemo,
    pref_scratch: Scratch,
    /// One capture scratch per failregex.
    scratch: Vec<Scratch>,
    /// Skip merging a helper match that leaves the mlfid cache (see
    /// [`merge_failure`]; off: always merge, tests compare both).
    discard_helpers: bool,
}

impl State {
    pub(crate) fn new(f: &CompiledFilter) -> State {
        let p = &f.parts;
        State {
            dater: Dater::new(f),
            last_date: None,
            lines: Vec::new(),
            hay: String::new(),
            hay2: String::new(),
            content: String::new(),
            bits: Vec::new(),
            reject: Reject::default(),
            cache: MlfidCache::new(p.slots.0.clone()),
            pre: Groups::new(&p.slots.0),
            cur: Groups::new(&p.slots.0),
            work: Groups::new(&p.slots.0),
            key: String::new(),
            addrs: AddrMemo::default(),
            pref_scratch: p.prefregex.as_ref().map(|r| r.pat.new_scratch()).unwrap_or_default(),
            scratch: p.failregex.iter().map(|r| r.pat.new_scratch()).collect(),
            discard_helpers: true,
        }
    }
}

const RECENT: Duration = Duration(60 * Timestamp::MICROS_PER_SEC);

/// `processLine` for a line from a file: find and cut out the date.
pub(crate) fn process_line(
    f: &CompiledFilter,
    opts: &RunOptions,
    st: &mut State,
    stats: &mut MatchStats,
    line: &str,
    ctx: &TimeContext,
    res: &mut LineResult,
) {
    let hit = st.dater.find(line, ctx);
    process_line_dated(f, opts, st, stats, line, hit, ctx.now, res)
}

/// The date state of one date configuration (`datepattern`, `logtimezone`):
/// fail2ban's `DateDetector` of a filter, with its "last used template"
/// memory. Runners whose filters share the configuration may share one.
#[derive(Debug)]
pub struct Dater {
    /// None: fail2ban's default templates.
    detector: Option<Arc<DateDetector>>,
    /// Created on the first line that needs date detection.
    scanner: Option<DateScanner>,
    /// `TimeContext` with the filter's `logtimezone`, `now` updated per line.
    tz_ctx: Option<TimeContext>,
}

impl Dater {
    pub(crate) fn new(f: &CompiledFilter) -> Dater {
        let p = &f.parts;
        Dater {
            detector: p.detector.clone(),
            scanner: None,
            tz_ctx: p.logtz.as_ref().map(|tz| TimeContext { now: Timestamp(0), tz: tz.clone() }),
        }
    }

    /// fail2ban's `findDate` on `line` (the scanner's memory moves on).
    pub fn find(&mut self, line: &str, ctx: &TimeContext) -> Option<DateMatch> {
        let detector = &self.detector;
        let scanner = self.scanner.get_or_insert_with(|| match detector {
            Some(d) => d.scanner(),
            None => default_detector().scanner(),
        });
        match &mut self.tz_ctx {
            Some(c) => {
                c.now = ctx.now;
                scanner.find_match(line, c)
            }
            None => scanner.find_match(line, ctx),
        }
    }
}

/// `processLine` after the date search: `hit` is what a [`Dater`] of the
/// filter's date configuration found on `line` (`now`: the context's clock).
/// The result goes into `res` (its old failures dropped, its buffer kept).
#[allow(clippy::too_many_arguments)]
pub(crate) fn process_line_dated(
    f: &CompiledFilter,
    opts: &RunOptions,
    st: &mut State,
    stats: &mut MatchStats,
    line: &str,
    hit: Option<DateMatch>,
    now: Timestamp,
    res: &mut LineResult,
) {
    stats.lines += 1;
    // (`get`: start <= end <= len, both character boundaries)
    let hit = hit.filter(|h| line.get(h.start..h.end).is_some());
    // fail2ban's `processLine`: the last date is used for a line without one
    // when it is less than a minute before now (looked at only then).
    let recent_last = |last: Option<Timestamp>| last.filter(|&d| d > now.saturating_sub(RECENT));
    let (time, status, cut) = match hit {
        Some(h) if h.start < h.end => match h.time {
            Some(t) => {
                st.last_date = Some(t);
                (Some(t), DateStatus::Found, Some((h.start, h.end)))
            }
            // a span that is no valid date: cut out all the same, unless
            // the last date is used (then the line stays whole)
            None => {
                stats.no_date += 1;
                match recent_last(st.last_date) {
                    Some(t) => (Some(t), DateStatus::NotFound, None),
                    None => (None, DateStatus::NotFound, Some((h.start, h.end))),
                }
            }
        },
        // an empty date match (optional date): the last date, or now
        Some(_) => {
            stats.no_date += 1;
            (Some(recent_last(st.last_date).unwrap_or(now)), DateStatus::NotFound, None)
        }
        None => {
            stats.no_date += 1;
            (recent_last(st.last_date), DateStatus::NotFound, None)
        }
    };
    res.reset(time, status);
    // fail2ban in operation treats a failure without any time as "now".
    run(f, opts, st, stats, Tl { text: line, cut }, time.unwrap_or(now), now, res);
}

/// `processLine` with a known time (journal entries): no date detection.
pub(crate) fn process_line_at(
    f: &CompiledFilter,
    opts: &RunOptions,
    st: &mut State,
    stats: &mut MatchStats,
    line: &str,
    time: Timestamp,
    res: &mut LineResult,
) {
    stats.lines += 1;
    st.last_date = Some(time);
    res.reset(Some(time), DateStatus::Given);
    run(f, opts, st, stats, Tl { text: line, cut: None }, time, time, res);
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn run(
    f: &CompiledFilter,
    opts: &RunOptions,
    st: &mut State,
    stats: &mut MatchStats,
    line: Tl<'_>,
    date: Timestamp,
    now: Timestamp,
    res: &mut LineResult,
) {
    let p = &f.parts;
    if p.maxlines <= 1 {
        let org = [line];
        find_failure(p, opts, st, stats, &org, date, now, res);
        return;
    }
    let mut lines = std::mem::take(&mut st.lines);
    lines.push(OwnedLine { text: line.text.to_string(), cut: line.cut });
    if lines.len() > p.maxlines {
        let drop = lines.len() - p.maxlines;
        lines.drain(..drop);
    }
    let cur = {
        let org: Vec<Tl<'_>> = lines.iter().map(|l| Tl { text: &l.text, cut: l.cut }).collect();
        find_failure(p, opts, st, stats, &org, date, now, res)
    };
    st.lines = match cur {
        Cur::Org => lines,
        Cur::Content => {
            vec![OwnedLine { text: st.content.strip_suffix('\n').unwrap_or(&st.content).to_string(), cut: None }]
        }
        Cur::Idx(idx) => idx.iter().filter_map(|&i| lines.get(i).cloned()).collect(),
    };
}

/// Where a failregex matched in the buffer: fail2ban's matched and
/// unmatched tuple lines (indices into the original buffer).
struct Hit {
    matched: SmallVec<[usize; 4]>,
    unmatched: SmallVec<[usize; 4]>,
}

/// fail2ban's `Regex.search` line bookkeeping.
fn locate(pat: &Pat, caps: &Scratch, hay: &str, org: &[Tl<'_>]) -> Hit {
    if org.len() <= 1 {
        let mut matched = SmallVec::new();
        if org.len() == 1 {
            matched.push(0);
        }
        return Hit { matched, unmatched: SmallVec::new() };
    }
    let b = hay.as_bytes();
    let (ms, me) = caps.get(0).unwrap_or((0, 0));
    let ms = ms.min(b.len());
    let me = me.min(b.len());
    // rindex("\n", 0, start + 1) + 1
    let upto = (ms + 1).min(b.len());
    let line_start = memchr::memrchr(b'\n', &b[..upto]).map_or(0, |p| p + 1);
    // index("\n", end - 1) + 1 ; Python's -1 means the last character
    let from = if me == 0 { b.len().saturating_sub(1) } else { me - 1 };
    let line_end = memchr::memchr(b'\n', &b[from..]).map_or(b.len(), |p| from + p + 1);
    let lc1 = memchr::memchr_iter(b'\n', &b[..line_start]).count();
    let lc2 = memchr::memchr_iter(b'\n', &b[..line_end]).count();
    let n = org.len();
    let (lc1c, lc2c) = (lc1.min(n), lc2.min(n));
    let mut matched: SmallVec<[usize; 4]> = (lc1c..lc2c.max(lc1c)).collect();
    let mut unmatched: SmallVec<[usize; 4]> = (0..lc1c).collect();
    let mut k = 0usize;
    for skipped in pat.lines_of_skips(caps, hay) {
        let rest = matched.get(k..).unwrap_or(&[]);
        if let Some(m) = rest.iter().position(|&i| org[i].eq_joined(&skipped)) {
            unmatched.push(matched.remove(k + m));
            k += m;
        }
    }
    unmatched.extend(lc2c..n);
    Hit { matched, unmatched }
}

/// Search with captures into `scratch`, the budget counted; true on a match.
/// `nl`: the first `\n` in `hay`, `ascii`: whether it is all ASCII (see
/// [`Pattern::captures_with_nl_ascii`]).
fn captures(p: &Pat, hay: &str, nl: usize, ascii: bool, scratch: &mut Scratch, stats: &mut MatchStats) -> bool {
    match p.pat.captures_with_nl_ascii(hay, nl, ascii, scratch) {
        Ok(m) => m,
        Err(_) => {
            stats.budget_exhausted += 1;
            false
        }
    }
}

fn is_match(p: &Pat, hay: &str, stats: &mut MatchStats) -> bool {
    match p.pat.is_match(hay) {
        Ok(m) => m,
        Err(_) => {
            stats.budget_exhausted += 1;
            false
        }
    }
}

/// `(first_newline(b), all_ascii(b))` in one pass for the common buffer: a
/// text that is all ASCII with its only newline at its end (32 bytes a
/// step as four words, which the compiler makes vector instructions); the
/// two scans otherwise (and for a text shorter than that).
#[inline]
fn nl_ascii(b: &[u8]) -> (usize, bool) {
    if let Some((&b'\n', body)) = b.split_last() {
        if let Some(last) = body.len().checked_sub(32) {
            const LO: u64 = 0x0101_0101_0101_0101;
            const HI: u64 = 0x8080_8080_8080_8080;
            let word = |c: &[u8]| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                u64::from_le_bytes(a)
            };
            // `bad`: a byte's top bit set (not ASCII); `ok`: for an ASCII
            // byte, its top bit is set after `^ "\n"` and `+ 0x7f` (no carry
            // out of it) exactly when it is no "\n"
            let (mut bad, mut ok) = ([0u64; 4], [HI; 4]);
            let mut step = |c: &[u8]| {
                for k in 0..4 {
                    let w = word(&c[8 * k..8 * k + 8]);
                    bad[k] |= w;
                    ok[k] &= (w ^ (LO * u64::from(b'\n'))).wrapping_add(LO * 0x7f);
                }
            };
            for c in body.chunks_exact(32) {
                step(c);
            }
            // the last 32 bytes (overlapping the chunks read)
            step(&body[last..]);
            let bad = bad[0] | bad[1] | bad[2] | bad[3];
            let ok = ok[0] & ok[1] & ok[2] & ok[3];
            if bad & HI == 0 && ok & HI == HI {
                return (body.len(), true);
            }
        }
    }
    (first_newline(b), all_ascii(b))
}

/// `findFailure`. Returns the new line buffer relative to `org`.
#[allow(clippy::too_many_arguments)]
fn find_failure(
    p: &Parts,
    opts: &RunOptions,
    st: &mut State,
    stats: &mut MatchStats,
    org: &[Tl<'_>],
    date: Timestamp,
    now: Timestamp,
    res: &mut LineResult,
) -> Cur {
    let multi = p.maxlines > 1;
    let check_all = opts.check_all_regex;
    // a helper that leaves the mlfid cache is dropped at once
    let discard = st.discard_helpers && !check_all;
    let mut cur = Cur::Org;

    st.hay.clear();
    if let [line] = org {
        // (one line, as always with a single-line buffer)
        push_line(&mut st.hay, line);
    } else {
        push_buf(&mut st.hay, 0..org.len(), org);
    }
    // the engines need the first newline of what they search: found once
    // per buffer here, not per pattern
    // (and whether it is all ASCII: one pass over it for both)
    let (mut hay_nl, mut hay_ascii) = nl_ascii(st.hay.as_bytes());

    // ignoreregex up front (only with few of them, as fail2ban).
    if !p.ignoreregex.is_empty() && (p.ignoreregex.len() as isize) < (p.failregex.len() as isize - 2) {
        for ig in &p.ignoreregex {
            if is_match(ig, &st.hay, stats) {
                res.ignored = true;
                return cur;
            }
        }
    }

    // With a multi-line buffer, prefregex changes the buffer even when no
    // failregex matches; otherwise the prefilter may stop before it.
    let pref_first = multi && p.prefregex.is_some();
    let dispatch = if multi { None } else { p.prefilter.dispatch.as_deref() };
    let any = match dispatch {
        // candidates are picked on the searched text, after the prefregex;
        // the literal search over the whole line only saves the prefregex
        // search on lines without any literal, and is left out while few
        // lines are so (see `Reject`) where that changes nothing else: a
        // linear prefregex on a text with no newline but the last one (no
        // backtracking engine, so no budget to count)
        Some(_) if p.pref_linear && st.hay.len() == hay_nl + 1 => {
            if st.reject.skip > 0 {
                st.reject.skip -= 1;
                true
            } else {
                let any = p.prefilter.any_literal(&st.hay);
                st.reject.record(!any);
                any
            }
        }
        Some(_) => p.prefilter.any_literal(&st.hay),
        None => p.prefilter.candidates(&st.hay, &mut st.bits),
    };
    if !any && !pref_first {
        return cur;
    }

    // Prefregex groups are made on each failregex hit straight into the work
    // table from the prefregex's captures in `hay`, which keeps the whole
    // buffer until it is rebuilt; before that they are saved into `st.pre`
    // (`pre_saved`) when there are any. The content goes to `st.content`.
    let mut pre_saved = false;
    let mut have_pre = false;
    let mut in_content = false;
    // where the content starts in `hay` when `hay[at..]` is `content + "\n"`
    // itself (it runs to the line's end), so that it is not copied
    let mut content_at: Option<usize> = None;
    let mut content_nl = 0;
    // whether the buffer (`hay_ascii`) and the content (`content_ascii`)
    // are all ASCII: checked once, not by each pattern that searches them
    // (the content is part of the buffer: ASCII when it is)
    let mut content_ascii = hay_ascii;
    if let Some(pr) = &p.prefregex {
        let caps = &mut st.pref_scratch;
        if !captures(pr, &st.hay, hay_nl, hay_ascii, caps, stats) {
            return cur;
        }
        have_pre = pr.named_besides_content;
        // (in an ASCII text every place is a character boundary)
        let content = pr
            .content
            .and_then(|i| caps.get(i))
            .filter(|&(s, e)| s < e && e <= st.hay.len() && (hay_ascii || st.hay.get(s..e).is_some()));
        // fail2ban replaces the buffer only with a non-empty content.
        if let Some((s, e)) = content {
            // (`hay` ends with "\n"; a multi-line buffer keeps its content
            // in `st.content` for the next line)
            if !multi && e + 1 == st.hay.len() {
                content_at = Some(s);
                content_nl = match hay_nl.checked_sub(s) {
                    Some(k) => k,
                    None => first_newline(&st.hay.as_bytes()[s..]),
                };
                content_ascii = hay_ascii || all_ascii(&st.hay.as_bytes()[s..]);
            } else {
                st.content.clear();
                st.content.push_str(&st.hay[s..e]);
                st.content.push('\n');
                content_nl = first_newline(st.content.as_bytes());
                content_ascii = hay_ascii || all_ascii(st.content.as_bytes());
            }
            cur = Cur::Content;
            in_content = true;
        }
        if pref_first && !any {
            return cur;
        }
    }
    if let Some(d) = dispatch {
        let text: &str = if in_content { content_of(&st.hay, &st.content, content_at) } else { &st.hay };
        if !d.candidates(text, p.prefilter.words, &mut st.bits) {
            return cur;
        }
    }

    let mut hay_valid = true;
    // the failregexes in order, only the candidates (bits set)
    let mut next = 0usize;
    loop {
        if !hay_valid && next < p.failregex.len() {
            if have_pre && !pre_saved {
                // `hay` is still the buffer the prefregex matched (saved
                // before it may change)
                if let Some(pr) = &p.prefregex {
                    pr.fill_groups(&st.pref_scratch, &st.hay, Some(S_CONTENT), &mut st.pre);
                    st.pre.pop_truthy(S_CONTENT);
                    pre_saved = true;
                }
            }
            // fail2ban rebuilds its buffer from the (changed) line buffer
            match &cur {
                Cur::Org => {
                    st.hay.clear();
                    push_buf(&mut st.hay, 0..org.len(), org);
                    hay_nl = first_newline(st.hay.as_bytes());
                    hay_ascii = all_ascii(st.hay.as_bytes());
                    in_content = false;
                }
                // the content (`st.content` or the end of `st.hay`, which is
                // rebuilt only in the other cases) still is `content + "\n"`
                Cur::Content => in_content = true,
                Cur::Idx(idx) => {
                    st.hay.clear();
                    if idx.is_empty() {
                        st.hay.push('\n');
                    } else {
                        push_buf(&mut st.hay, idx.iter().copied(), org);
                    }
                    hay_nl = first_newline(st.hay.as_bytes());
                    hay_ascii = all_ascii(st.hay.as_bytes());
                    in_content = false;
                    // lines joined anew: the prefilter's answer no longer holds
                    p.prefilter.all(&mut st.bits);
                }
            }
            hay_valid = true;
        }
        let Some(fi) = next_bit(&st.bits, next, p.failregex.len()) else { break };
        next = fi + 1;
        let Some(fr) = p.failregex.get(fi) else { break };
        let Some(caps) = st.scratch.get_mut(fi) else { continue };
        let (hay, nl, ascii) = if in_content {
            (content_of(&st.hay, &st.content, content_at), content_nl, content_ascii)
        } else {
            (&st.hay[..], hay_nl, hay_ascii)
        };
        if !captures(fr, hay, nl, ascii, caps, stats) {
            continue;
        }
        // (a single line is the matched one: no bookkeeping to do, nothing
        // to move into `cur`)
        let mut hit = if org.len() == 1 { None } else { Some(locate(fr, caps, hay, org)) };
        let matched_idx: &[usize] = hit.as_ref().map_or(&[0], |h| &h.matched);

        // ignoreregex on a hit.
        if !p.ignoreregex.is_empty() {
            let ig_hay: &str = if multi {
                st.hay2.clear();
                if matched_idx.is_empty() {
                    st.hay2.push('\n');
                } else {
                    push_buf(&mut st.hay2, matched_idx.iter().copied(), org);
                }
                &st.hay2
            } else if in_content {
                content_of(&st.hay, &st.content, content_at)
            } else {
                &st.hay
            };
            let mut found = false;
            for ig in &p.ignoreregex {
                if is_match(ig, ig_hay, stats) {
                    found = true;
                    if !check_all {
                        break;
                    }
                }
            }
            if found {
                if !check_all || multi {
                    cur = Cur::Idx(hit.as_mut().map(|h| std::mem::take(&mut h.unmatched)).unwrap_or_default());
                }
                res.ignored = true;
                hay_valid = false;
                if !check_all {
                    break;
                }
                continue;
            }
        }

        if !check_all || multi {
            cur = Cur::Idx(hit.as_mut().map(|h| std::mem::take(&mut h.unmatched)).unwrap_or_default());
            hay_valid = false;
        }

        // A helper match that leaves the mlfid cache and is dropped at once
        // (see `merge_failure`'s `discard`), decided on the captures: no
        // groups copied, no failure made. Only on the first hit of the line
        // (the prefregex's captures still refer to `st.hay`), without
        // `alt_`/`tuple_` groups (their merging is left to the general path).
        if discard && !pre_saved && fr.forget_fast {
            let pre = p.prefregex.as_ref().map(|pr| (pr, &st.pref_scratch, &st.hay[..]));
            if forget_helper(&mut st.cache, pre, fr, caps, hay, now) {
                return cur;
            }
        }

        // fail2ban: `preGroups.copy()` updated with the failregex's groups
        // (None values too)
        match &p.prefregex {
            Some(_) if pre_saved => st.work.clone_from(&st.pre),
            // `hay` is still the whole buffer the prefregex matched (the
            // content goes anyway, not even copied)
            Some(pr) if have_pre => {
                pr.fill_groups(&st.pref_scratch, &st.hay, Some(S_CONTENT), &mut st.work);
                st.work.pop_truthy(S_CONTENT);
            }
            _ => st.work.clear(),
        }
        fr.update_groups(caps, hay, &mut st.work, &mut st.cur);
        // No failure id at all (fail2ban: "No group found", logged; the
        // regex is skipped). Checked on the merged groups before merging.
        if !st.work.any_value(FAILURE_ID_MASK) {
            continue;
        }
        // (one line, as always with a single-line buffer: no collecting)
        let one: [&str; 1];
        let many: SmallVec<[&str; 4]>;
        let matched: &[&str] = match *hit.as_ref().map_or(&[0][..], |h| &h.matched[..]) {
            [i] => {
                one = [org[i].text];
                &one
            }
            ref m => {
                many = m.iter().map(|&i| org[i].text).collect();
                &many
            }
        };

        let mut slot: Option<Slot> = None;
        // the failure as the cache shares it (merged in place there)
        let mut fail: Arc<FailData> = if let Some(key) = st.work.get(S_MLFID) {
            // the key's text: the value itself (a tuple's parts joined)
            let k: &str = match key {
                ValRef::Str(k) => k,
                ValRef::Tuple(_) => {
                    st.key.clear();
                    key.push_key(&mut st.key);
                    &st.key
                }
            };
            let hash = key_hash(k);
            let taken = st.cache.take(k, hash, now);
            let Some((merged, s)) = merge_failure(&mut st.cache, taken, &mut st.work, matched, hash, discard) else {
                // a helper match that forgets its entry: nothing to keep
                return cur;
            };
            slot = s;
            if merged.groups.truthy(S_NOFAIL) && !check_all {
                write_back(&mut st.cache, slot, merged, now);
                return cur;
            }
            merged
        } else {
            let mut d = st.cache.fresh();
            let m = Arc::make_mut(&mut d);
            // the work table becomes the failure's (its old buffers the next
            // work table): no copy
            std::mem::swap(&mut m.groups, &mut st.work);
            m.matches.extend(matched.iter().copied());
            d
        };

        // failure id and address (texts borrowed from the groups)
        let id = {
            let g = &fail.groups;
            let fid_grp = g.get(S_FID).map(ValRef::text);
            let (ip_text, cidr) = if let Some(v) = g.get(S_IP4) {
                (Some(v.text()), Cidr::parse(g.get(S_CIDR), Cidr::V4))
            } else if let Some(v) = g.get(S_IP6) {
                (Some(v.text()), Cidr::parse(g.get(S_CIDR), Cidr::V6))
            } else if let Some(v) = g.get(S_DNS) {
                (Some(v.text()), Cidr::Raw)
            } else {
                // (no id at all was skipped above)
                (fid_grp.clone(), Cidr::Raw)
            };
            ip_text.map(|ip| match &fid_grp {
                // an id other than the address: the address goes to `ip`
                Some(fid) if *fid != ip => {
                    let (text, addr) = st.addrs.ip_addr(&ip, cidr);
                    let (fid_text, fid_addr) = ip_addr(fid, Cidr::Raw);
                    (fid_text, addr.or(fid_addr), Some(String::from(text)))
                }
                _ => {
                    let (text, addr) = st.addrs.ip_addr(&ip, cidr);
                    (text, addr, None)
                }
            })
        };
        let (fid, ip) = match id {
            None => {
                Arc::make_mut(&mut fail).mlfpending = true;
                if !check_all {
                    write_back(&mut st.cache, slot, fail, now);
                    return cur;
                }
                (None, None)
            }
            Some((fid, ip, other)) => {
                if other.is_some() {
                    Arc::make_mut(&mut fail).ip = other;
                }
                (Some(fid), ip)
            }
        };
        // fields and matches (one handle) are the failure's as they are now: shared with
        // the cache (copied there on the next write while still alive)
        let nofail = fail.groups.truthy(S_NOFAIL);
        res.failures.push(Failure {
            regex_index: fi,
            fid,
            time: date,
            ip,
            fields: Fields::shared(Arc::clone(&fail)),
            nofail,
        });
        write_back(&mut st.cache, slot, fail, now);
        if !check_all {
            break;
        }
    }
    cur
}

#[cfg(test)]
thread_local! {
    /// Helper hits dropped by the fast path of `find_failure` (tests).
    static HELPERS_FORGOT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The fast path of a helper hit (`fr`'s captures in `hay`, `pre` the
/// prefregex with its captures) that leaves the mlfid cache and is dropped
/// at once (see [`merge_failure`]'s `discard`), decided on the captures:
/// no groups copied, no failure made. True: the hit is done with (its
/// entry removed, as the merge would have); false: nothing changed, the
/// general path goes on. For a [`Pat::forget_fast`] failregex only.
/// (Out of line: the common hits keep a smaller `find_failure`.)
#[inline(never)]
fn forget_helper(
    cache: &mut MlfidCache,
    pre: Option<(&Pat, &Scratch, &str)>,
    fr: &Pat,
    caps: &Scratch,
    hay: &str,
    now: Timestamp,
) -> bool {
    let truthy = |s: Option<&str>| s.is_some_and(|s| !s.is_empty());
    let Some(key) = merged_value(pre, fr, caps, hay, S_MLFID) else {
        return false;
    };
    let gained = truthy(merged_value(pre, fr, caps, hay, S_MLFGAINED));
    if !truthy(merged_value(pre, fr, caps, hay, S_MLFFORGET))
        || !(gained || truthy(merged_value(pre, fr, caps, hay, S_NOFAIL)))
    {
        return false;
    }
    let user = merged_value(pre, fr, caps, hay, S_USER).filter(|u| !u.is_empty());
    let done = cache.forget_helper(key, key_hash(key), now, gained, user);
    #[cfg(test)]
    HELPERS_FORGOT.with(|c| c.set(c.get() + usize::from(done)));
    done
}

/// The searched content: `hay[at..]` when it is that, else `content`.
#[inline(always)]
fn content_of<'a>(hay: &'a str, content: &'a str, at: Option<usize>) -> &'a str {
    match at {
        Some(s) => &hay[s..],
        None => content,
    }
}

/// Where a merged mlfid failure lives in the cache.
#[derive(Debug)]
enum Slot {
    /// Taken out of the cache; goes back to its place.
    Existing(Taken),
    /// New entry under the hit's key, which has this hash (fail2ban `set` it).
    New(u64),
}

/// Store the merged failure where fail2ban's shared dict would be. A new
/// entry's key is the failure's `mlfid` (the hit's, which made its
/// [`Slot::New`]). A failure that goes nowhere is kept for reuse.
fn write_back(cache: &mut MlfidCache, slot: Option<Slot>, fail: Arc<FailData>, now: Timestamp) {
    match slot {
        Some(Slot::Existing(t)) => cache.put_back(t, fail),
        Some(Slot::New(hash)) => match fail.groups.get(S_MLFID) {
            Some(v) => {
                let key = cache.key_of(v);
                cache.set_key(key, hash, fail, now);
            }
            // (never: a new entry is made only for a failure with an mlfid)
            None => cache.release(fail),
        },
        None => cache.release(fail),
    }
}

/// fail2ban's `_mergeFailure`: `fail` is the hit's groups (changed here as
/// fail2ban changes its dict; left holding anything afterwards), `taken`
/// the cache's entry for its key (as `cache.take` gave it), `hash` the
/// key's hash.
///
/// `discard`: the caller drops a merged failure that is a helper
/// (`nofail`) at once (no `checkAllRegex`). Then a merge whose outcome is
/// known to be such a helper that leaves the cache (`mlfforget`) is not
/// made: its entry is removed, and None returned. Known without merging:
/// the hit's `nofail` is truthy (it is what the merged failure gets) and
/// the merge would not pop it (no pending failure, at most one user).
fn merge_failure(
    cache: &mut MlfidCache,
    taken: Option<(Taken, Arc<FailData>)>,
    fail: &mut Groups,
    matched: &[&str],
    hash: u64,
    discard: bool,
) -> Option<(Arc<FailData>, Option<Slot>)> {
    let mut nf: u8 = 0;
    if fail.truthy(S_MLFGAINED) {
        nf |= 8 | 1;
        if !fail.truthy(S_NOFAIL) {
            fail.copy_cell(S_NOFAIL, S_MLFGAINED);
        }
    } else if fail.truthy(S_NOFAIL) {
        nf |= 1;
    }
    if fail.pop_truthy(S_MLFFORGET) {
        nf |= 2;
    }
    if discard && nf & 2 != 0 && fail.truthy(S_NOFAIL) {
        match &taken {
            // a new failure: no users, not pending
            None => return None,
            Some((t, shared)) => {
                let pending = shared.mlfpending && nf & 8 == 0;
                let users = match fail.get(S_USER).filter(|u| u.truthy()) {
                    None => Some(shared.users.len()),
                    Some(ValRef::Str(u)) => Some(shared.users.len() + usize::from(!shared.users.contains(u))),
                    // (a tuple's text is made only by the merge)
                    Some(ValRef::Tuple(_)) => None,
                };
                if !pending && users.is_some_and(|n| n <= 1) {
                    let t = *t;
                    cache.forget(t);
                    if let Some((_, shared)) = taken {
                        cache.release(shared);
                    }
                    return None;
                }
            }
        }
    }
    // each branch changes its failure through one `&mut` (one `make_mut`)
    Some(match taken {
        Some((t, mut shared)) => {
            // in place: a copy only while the failure reported from it lives
            let g = Arc::make_mut(&mut shared);
            let users = update_users(&mut g.users, fail.get(S_USER));
            if g.groups.pop_truthy(S_NOFAIL) {
                nf |= 4;
            }
            if g.groups.pop_truthy(S_MLFGAINED) {
                nf |= 4;
            }
            if nf & 8 != 0 {
                g.mlfpending = false;
            }
            if nf & 4 == 0 && !g.mlfpending {
                g.matches.clear();
            }
            // (`fail` is refilled before it is read again)
            g.groups.update_values_from(fail);
            merge_tail(g, nf, users, matched);
            let slot = if nf & 2 != 0 {
                cache.forget(t);
                None
            } else {
                Some(Slot::Existing(t))
            };
            (shared, slot)
        }
        None => {
            let mut d = cache.fresh();
            let m = Arc::make_mut(&mut d);
            // `fail` becomes the failure's groups (swapped, not copied: the
            // caller is done with it)
            std::mem::swap(&mut m.groups, fail);
            let (users, slot) = if nf & 2 == 0 {
                let users = update_users(&mut m.users, m.groups.get(S_USER));
                (users, m.groups.get(S_MLFID).is_some().then_some(Slot::New(hash)))
            } else {
                (0, None)
            };
            merge_tail(m, nf, users, matched);
            (d, slot)
        }
    })
}

/// The end of `_mergeFailure` on the merged failure (`users`: their count).
fn merge_tail(fail: &mut FailData, mut nf: u8, users: usize, matched: &[&str]) {
    let pending = std::mem::take(&mut fail.mlfpending);
    if pending || users > 1 {
        fail.groups.pop_truthy(S_NOFAIL);
        fail.groups.pop_truthy(S_MLFGAINED);
        nf &= !(8 | 1);
    }
    if nf & 1 == 0 {
        fail.join_nofail_matches();
        if nf & 8 == 0 {
            fail.matches.extend(matched.iter().copied());
        }
    } else if nf & 3 == 1 {
        fail.nofail_matches.extend(matched.iter().copied());
    }
}

// ---------------------------------------------------------------------------
// Addresses (fail2ban's IPAddr, in raw-host mode: no DNS)
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cidr {
    /// Keep the text as it is.
    Raw,
    /// IPv4 only, full length unless masked.
    V4,
    /// IPv6 only (IPv4-mapped becomes IPv4).
    V6,
    /// A prefix length from the `cidr` group: either family, masked.
    Len(u32),
}

impl Cidr {
    fn parse(v: Option<ValRef<'_>>, default: Cidr) -> Cidr {
        match v {
            Some(ValRef::Str(s)) if !s.is_empty() => match s.trim().parse::<u64>() {
                Ok(n) => Cidr::Len(n.min(u32::MAX as u64) as u32),
                Err(_) => default,
            },
            _ => default,
        }
    }
}

/// One decimal octet of std's IPv4 grammar at `b[i..]`: one to three
/// digits, at most 255, no leading zero; its value and the index after it.
/// (A digit right after three is left to the caller, who wants a `.` or
/// the end there.)
#[inline(always)]
fn v4_octet(b: &[u8], i: usize) -> Option<(u8, usize)> {
    let digit = |j: usize| b.get(j).map_or(10, |c| c.wrapping_sub(b'0'));
    let d0 = digit(i);
    if d0 > 9 {
        return None;
    }
    let d1 = digit(i + 1);
    if d1 > 9 {
        return Some((d0, i + 1));
    }
    if d0 == 0 {
        return None;
    }
    let d2 = digit(i + 2);
    if d2 > 9 {
        return Some((d0 * 10 + d1, i + 2));
    }
    let v = u32::from(d0) * 100 + u32::from(d1) * 10 + u32::from(d2);
    u8::try_from(v).ok().map(|v| (v, i + 3))
}

/// A dotted quad at `b[i..]` (std's `read_ipv4_addr`): the address and
/// the index after it.
#[inline(always)]
fn v4_at(b: &[u8], i: usize) -> Option<(Ipv4Addr, usize)> {
    let (o0, i) = v4_octet(b, i)?;
    let dot = |i: usize| (b.get(i) == Some(&b'.')).then_some(i + 1);
    let (o1, i) = v4_octet(b, dot(i)?)?;
    let (o2, i) = v4_octet(b, dot(i)?)?;
    let (o3, i) = v4_octet(b, dot(i)?)?;
    Some((Ipv4Addr::new(o0, o1, o2, o3), i))
}

/// `Ipv4Addr::from_str`, exactly (std's rules: four decimal octets of one
/// to three digits, each at most 255, no leading zero, nothing else; at
/// most 15 bytes), without its general number reader.
fn parse_v4(text: &str) -> Option<Ipv4Addr> {
    let b = text.as_bytes();
    if !(7..=15).contains(&b.len()) {
        return None;
    }
    v4_at(b, 0).and_then(|(a, end)| (end == b.len()).then_some(a))
}

/// The value of a hex digit (either case), 16 for any other byte.
const HEX_VAL: [u8; 256] = {
    let mut t = [16u8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// std's `read_groups` of its IPv6 reader at `b[i..]` into `groups`: the
/// groups read, whether the last two were a dotted quad (tried first
/// while two groups are left), and the index after them. A group is one to
/// four hex digits after a `:` (none before the first); a group that
/// fails leaves its `:` unread.
fn v6_groups(b: &[u8], mut i: usize, groups: &mut [u16]) -> (usize, bool, usize) {
    let limit = groups.len();
    for k in 0..limit {
        let start = match k {
            0 => i,
            _ if b.get(i) == Some(&b':') => i + 1,
            _ => return (k, false, i),
        };
        // the run of hex digits (a fifth: no group at all, std's limit)
        let (mut v, mut j) = (0u16, start);
        while let Some(&c) = b.get(j) {
            let d = HEX_VAL[usize::from(c)];
            if d > 15 {
                break;
            }
            if j - start == 4 {
                return (k, false, i);
            }
            v = v << 4 | u16::from(d);
            j += 1;
        }
        if j == start {
            return (k, false, i);
        }
        // std tries a dotted quad first; one can only start here when a
        // `.` ends the run (its first octet's digits are hex digits too)
        if k + 1 < limit && b.get(j) == Some(&b'.') {
            if let Some((a, end)) = v4_at(b, start) {
                let o = a.octets();
                groups[k] = u16::from_be_bytes([o[0], o[1]]);
                groups[k + 1] = u16::from_be_bytes([o[2], o[3]]);
                return (k + 2, true, end);
            }
        }
        groups[k] = v;
        i = j;
    }
    (limit, false, i)
}

/// `Ipv6Addr::from_str`, exactly (std's grammar, the same steps), without
/// its closures and rewinds.
fn parse_v6(text: &str) -> Option<Ipv6Addr> {
    let b = text.as_bytes();
    let mut head = [0u16; 8];
    let (n, v4, i) = v6_groups(b, 0, &mut head);
    if n == 8 {
        return (i == b.len()).then(|| Ipv6Addr::from(head));
    }
    // a dotted quad only at the end; then `::` for one or more zero groups
    if v4 || b.get(i..i + 2) != Some(b"::") {
        return None;
    }
    let mut tail = [0u16; 7];
    let (t, _, end) = v6_groups(b, i + 2, &mut tail[..7 - n]);
    if end != b.len() {
        return None;
    }
    head[8 - t..].copy_from_slice(&tail[..t]);
    Some(Ipv6Addr::from(head))
}

/// `IpAddr::from_str`, exactly: an IPv4 address, else an IPv6 one (which
/// holds a `:`; a text that starts with a dotted quad is no IPv6 address).
fn parse_ip(text: &str) -> Option<IpAddr> {
    if let Some(a) = parse_v4(text) {
        return Some(IpAddr::V4(a));
    }
    if !text.as_bytes().contains(&b':') {
        return None;
    }
    parse_v6(text).map(IpAddr::V6)
}

/// `str(IPAddr(text, cidr))` and the address (the network base when masked).
fn ip_addr(text: &str, cidr: Cidr) -> (Fid, Option<IpAddr>) {
    let parsed_v4 = || parse_v4(text);
    let parsed_v6 = || if text.as_bytes().contains(&b':') { parse_v6(text) } else { None };
    match cidr {
        Cidr::Raw => (Fid::new(text), parse_ip(text)),
        // std's parser takes only the canonical dotted quad (no leading
        // zeros, no spaces), which is exactly what `Display` writes back
        Cidr::V4 => match parsed_v4() {
            Some(a) => (Fid::new(text), Some(IpAddr::V4(a))),
            None => (Fid::new(text), None),
        },
        Cidr::V6 => match parsed_v6() {
            Some(a) => match a.to_ipv4_mapped() {
                Some(v4) => {
                    let mut t = AddrText::new();
                    t.push_v4(v4);
                    (Fid::new(t.as_str()), Some(IpAddr::V4(v4)))
                }
                None => {
                    let mut t = AddrText::new();
                    t.push_v6(a);
                    (Fid::new(t.as_str()), Some(IpAddr::V6(a)))
                }
            },
            None => (Fid::new(text), None),
        },
        Cidr::Len(plen) => {
            let mut t = AddrText::new();
            if let Some(a) = parsed_v4() {
                let bits = u32::from(a);
                let masked = if plen >= 32 { bits } else { bits & !(u32::MAX.checked_shr(plen).unwrap_or(0)) };
                let m = Ipv4Addr::from(masked);
                t.push_v4(m);
                if plen > 0 && plen < 32 {
                    t.push_prefix(plen);
                }
                (Fid::new(t.as_str()), Some(IpAddr::V4(m)))
            } else if let Some(a) = parsed_v6() {
                let bits = u128::from(a);
                let masked = if plen >= 128 { bits } else { bits & !(u128::MAX.checked_shr(plen).unwrap_or(0)) };
                let m = Ipv6Addr::from(masked);
                t.push_v6(m);
                if plen > 0 && plen < 128 {
                    t.push_prefix(plen);
                }
                (Fid::new(t.as_str()), Some(IpAddr::V6(m)))
            } else {
                (Fid::new(text), None)
            }
        }
    }
}

/// What [`ip_addr`] made of the address texts seen lately, for [`Cidr::V4`]
/// and [`Cidr::V6`] (the `<HOST>` groups): a log names the same addresses
/// again and again (an attacker's lines), and a look-up by the text costs
/// less than parsing it (≈ 140 instructions for an IPv4 address, ≈ 1,800
/// for an IPv6 one with its canonical text). Direct-mapped by a hash of the
/// text, compared in full: a collision only costs a parse. Only texts that
/// parse and are their own id text are kept (a `None`, and an address not
/// written as `inet_ntop` would, go the long way every time): an entry is
/// the text and the address, the id is the text again (no copy of an id
/// kept, a small table).
#[derive(Debug, Default)]
struct AddrMemo {
    /// `MEMO_SLOTS` entries once the first address came (empty before).
    slots: Vec<AddrEntry>,
}

/// One [`AddrMemo`] entry: the text as captured (`len` 0: unused), its
/// family, and `ip_addr`'s address (its id text is the text).
#[derive(Clone, Debug)]
struct AddrEntry {
    len: u8,
    v6: bool,
    text: [u8; MEMO_TEXT],
    ip: IpAddr,
}

/// The longest text kept (an IPv6 address with a dotted quad: 45 bytes).
const MEMO_TEXT: usize = 46;
/// A power of two.
const MEMO_SLOTS: usize = 256;

impl AddrMemo {
    /// `ip_addr(text, cidr)`.
    #[inline]
    fn ip_addr(&mut self, text: &str, cidr: Cidr) -> (Fid, Option<IpAddr>) {
        let v6 = match cidr {
            Cidr::V4 => false,
            Cidr::V6 => true,
            Cidr::Raw | Cidr::Len(_) => return ip_addr(text, cidr),
        };
        let b = text.as_bytes();
        if b.is_empty() || b.len() > MEMO_TEXT {
            return ip_addr(text, cidr);
        }
        let i = memo_index(b);
        if let Some(e) = self.slots.get(i) {
            if usize::from(e.len) == b.len() && e.v6 == v6 && memo_text_eq(&e.text, b) {
                return (Fid::new(text), Some(e.ip));
            }
        }
        let (fid, ip) = ip_addr(text, cidr);
        if let Some(a) = ip.filter(|_| fid.as_str() == text) {
            if self.slots.is_empty() {
                let empty =
                    AddrEntry { len: 0, v6: false, text: [0; MEMO_TEXT], ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED) };
                self.slots = vec![empty; MEMO_SLOTS];
            }
            if let Some(e) = self.slots.get_mut(i) {
                e.len = b.len() as u8;
                e.v6 = v6;
                e.text[..b.len()].copy_from_slice(b);
                e.ip = a;
            }
        }
        (fid, ip)
    }
}

/// `text[..b.len()] == b` (`b` of 1..=`MEMO_TEXT` bytes): by two words
/// when those cover `b` (every IPv4 address), no `memcmp` call.
#[inline(always)]
fn memo_text_eq(text: &[u8; MEMO_TEXT], b: &[u8]) -> bool {
    let n = b.len();
    match (b.first_chunk::<8>(), b.last_chunk::<8>()) {
        (Some(a), Some(z)) if n <= 16 => {
            let (ta, tz) = (text.first_chunk::<8>(), text.get(n - 8..n).and_then(|t| t.first_chunk::<8>()));
            ta == Some(a) && tz == Some(z)
        }
        _ => text.get(..n) == Some(b),
    }
}

/// An [`AddrMemo`] slot for a text of 1..=`MEMO_TEXT` bytes: its first and
/// last eight bytes (all of an IPv4 address's) and its length, mixed.
#[inline]
fn memo_index(b: &[u8]) -> usize {
    let n = b.len();
    let (a, z) = match (b.first_chunk::<8>(), b.last_chunk::<8>()) {
        (Some(a), Some(z)) => (u64::from_le_bytes(*a), u64::from_le_bytes(*z)),
        _ => (b.iter().fold(0u64, |h, &c| h << 8 | u64::from(c)), 0),
    };
    let h = (a ^ z.rotate_left(29) ^ n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> 56) as usize & (MEMO_SLOTS - 1)
}

/// An address's text, written on the stack (the longest: an IPv6 address
/// with a dotted quad, `/` and a prefix length, 45 + 4 bytes), ASCII only.
struct AddrText {
    buf: [u8; 56],
    len: usize,
}

impl AddrText {
    fn new() -> AddrText {
        AddrText { buf: [0; 56], len: 0 }
    }

    fn as_str(&self) -> &str {
        // only ASCII is ever pushed
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }

    #[inline]
    fn push(&mut self, c: u8) {
        if let Some(b) = self.buf.get_mut(self.len) {
            *b = c;
            self.len += 1;
        }
    }

    /// `{:x}` of a word.
    fn push_hex(&mut self, w: u16) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut started = false;
        for shift in [12, 8, 4, 0] {
            let d = usize::from((w >> shift) & 0xf);
            if d != 0 || started || shift == 0 {
                self.push(HEX[d]);
                started = true;
            }
        }
    }

    /// `{}` of a byte.
    fn push_dec(&mut self, b: u8) {
        if b >= 100 {
            self.push(b'0' + b / 100);
        }
        if b >= 10 {
            self.push(b'0' + b / 10 % 10);
        }
        self.push(b'0' + b % 10);
    }

    /// `Ipv4Addr`'s `Display`.
    fn push_v4(&mut self, a: Ipv4Addr) {
        for (k, &o) in a.octets().iter().enumerate() {
            if k > 0 {
                self.push(b'.');
            }
            self.push_dec(o);
        }
    }

    /// `/` and a prefix length (`{}` of a u32).
    fn push_prefix(&mut self, plen: u32) {
        self.push(b'/');
        let mut digits = [0u8; 10];
        let (mut n, mut v) = (0, plen);
        loop {
            digits[n] = b'0' + (v % 10) as u8;
            n += 1;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        for &d in digits[..n].iter().rev() {
            self.push(d);
        }
    }

    /// glibc's `inet_ntop(AF_INET6, …)`.
    fn push_v6(&mut self, a: Ipv6Addr) {
        let w = a.segments();
        // longest run of zero words (length >= 2), first one on a tie
        let (mut best, mut best_len) = (usize::MAX, 0usize);
        let mut i = 0;
        while i < 8 {
            if w[i] == 0 {
                let s = i;
                while i < 8 && w[i] == 0 {
                    i += 1;
                }
                if i - s > best_len {
                    best = s;
                    best_len = i - s;
                }
            } else {
                i += 1;
            }
        }
        if best_len < 2 {
            best = usize::MAX;
        }
        let mut i = 0;
        while i < 8 {
            if i == best {
                if i == 0 {
                    self.push(b':');
                }
                self.push(b':');
                i += best_len;
                continue;
            }
            if i == 6 && best == 0 && (best_len == 6 || (best_len == 5 && w[5] == 0xffff)) {
                self.push_v4(Ipv4Addr::from(u32::from(w[6]) << 16 | u32::from(w[7])));
                break;
            }
            self.push_hex(w[i]);
            if i < 7 {
                self.push(b':');
            }
            i += 1;
        }
    }
}

/// glibc's `inet_ntop(AF_INET6, …)`.
#[cfg(test)]
fn ntop6(a: Ipv6Addr) -> String {
    let mut t = AddrText::new();
    t.push_v6(a);
    t.as_str().to_string()
}

#[cfg(test)]
#[path = "runner/tests.rs"]
mod tests;
