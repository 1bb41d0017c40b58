//! Strings that remember, byte by byte, in which file and line they were
//! written — through interpolation and tag substitution — so that each
//! regex line of a combined value can be reported where it was written.

use stadtwache_core::SourceRef;

/// Interned source positions; an origin id indexes into this table.
#[derive(Debug, Default, Clone)]
pub(crate) struct Sources {
    refs: Vec<SourceRef>,
}

impl Sources {
    pub(crate) fn new() -> Self {
        // id 0: unknown origin (filter arguments, synthesized text).
        Sources { refs: vec![SourceRef::default()] }
    }

    pub(crate) fn intern(&mut self, r: SourceRef) -> u32 {
        if let Some(last) = self.refs.last()
            && *last == r
        {
            return (self.refs.len() - 1) as u32;
        }
        self.refs.push(r);
        (self.refs.len() - 1) as u32
    }

    pub(crate) fn get(&self, id: u32) -> &SourceRef {
        &self.refs[id as usize]
    }
}

/// A string with an origin id for each of its bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Traced {
    text: String,
    origin: Vec<u32>,
}

impl Traced {
    pub(crate) fn new(text: &str, origin: u32) -> Self {
        Traced { text: text.to_string(), origin: vec![origin; text.len()] }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    pub(crate) fn push_str(&mut self, s: &str, origin: u32) {
        self.text.push_str(s);
        self.origin.extend(std::iter::repeat_n(origin, s.len()));
    }

    pub(crate) fn push(&mut self, t: &Traced) {
        self.text.push_str(&t.text);
        self.origin.extend_from_slice(&t.origin);
    }

    /// `self[range]` (byte range on char boundaries).
    pub(crate) fn slice(&self, start: usize, end: usize) -> Traced {
        Traced { text: self.text[start..end].to_string(), origin: self.origin[start..end].to_vec() }
    }

    /// Remove trailing whitespace (Python `rstrip`).
    pub(crate) fn rstrip(&mut self) {
        let n = self.text.trim_end().len();
        self.text.truncate(n);
        self.origin.truncate(n);
    }

    /// Python `str.replace(needle, repl)`: every non-overlapping occurrence.
    pub(crate) fn replace_all(&self, needle: &str, repl: &Traced) -> Traced {
        if needle.is_empty() {
            return self.clone();
        }
        let mut out = Traced::default();
        let mut last = 0;
        for (i, _) in self.text.match_indices(needle) {
            out.push(&self.slice(last, i));
            out.push(repl);
            last = i + needle.len();
        }
        out.push(&self.slice(last, self.text.len()));
        out
    }

    /// Split on `'\n'` (as Python `split('\n')`).
    pub(crate) fn split_lines(&self) -> Vec<Traced> {
        let mut out = Vec::new();
        let mut start = 0;
        for (i, b) in self.text.bytes().enumerate() {
            if b == b'\n' {
                out.push(self.slice(start, i));
                start = i + 1;
            }
        }
        out.push(self.slice(start, self.text.len()));
        out
    }

    pub(crate) fn origin_at(&self, i: usize) -> u32 {
        self.origin.get(i).copied().unwrap_or(0)
    }

    /// Origin of the first non-whitespace byte (or of the first byte).
    pub(crate) fn first_origin(&self) -> u32 {
        let pos = self.text.find(|c: char| !c.is_whitespace()).unwrap_or(0);
        self.origin.get(pos).copied().unwrap_or(0)
    }
}

/// A small insertion-ordered map (Python `dict` semantics for `update`).
#[derive(Debug, Clone)]
pub(crate) struct OMap<V> {
    items: Vec<(String, V)>,
}

impl<V> Default for OMap<V> {
    fn default() -> Self {
        OMap { items: Vec::new() }
    }
}

impl<V> OMap<V> {
    pub(crate) fn get(&self, k: &str) -> Option<&V> {
        self.items.iter().find(|(n, _)| n == k).map(|(_, v)| v)
    }

    pub(crate) fn get_mut(&mut self, k: &str) -> Option<&mut V> {
        self.items.iter_mut().find(|(n, _)| n == k).map(|(_, v)| v)
    }

    pub(crate) fn contains(&self, k: &str) -> bool {
        self.get(k).is_some()
    }

    /// Insert or overwrite in place (keeps the original position).
    pub(crate) fn insert(&mut self, k: String, v: V) {
        if let Some(slot) = self.get_mut(&k) {
            *slot = v;
        } else {
            self.items.push((k, v));
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.items.iter().map(|(k, v)| (k, v))
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &String> {
        self.items.iter().map(|(k, _)| k)
    }
}
