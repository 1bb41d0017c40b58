//! The text format `src/runner/f2b_dump.py spec` writes: one `KIND\tvalue`
//! per line (`P` prefregex, `R` failregex, `I` ignoreregex, `M` maxlines,
//! `D` datepattern), values with `\t`, `\n`, `\r` and `\\` escaped.
//!
//! Shared by the runner's unit tests, `examples/runner_bench.rs` and
//! `benches/matcher.rs` through `#[path]`, so each uses only part of it;
//! the includer brings `FilterSpec` and `Spanned` into scope.
#![allow(dead_code)]

use super::{FilterSpec, Spanned};

pub fn unescape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('t') => o.push('\t'),
                Some('n') => o.push('\n'),
                Some('r') => o.push('\r'),
                Some(c) => o.push(c),
                None => {}
            }
        } else {
            o.push(c);
        }
    }
    o
}

pub fn parse_spec(name: &str, text: &str) -> FilterSpec {
    let mut spec = FilterSpec { name: name.to_string(), maxlines: 1, ..FilterSpec::default() };
    for line in text.lines() {
        let Some((kind, value)) = line.split_once('\t') else { continue };
        let v = unescape(value);
        match kind {
            "P" => spec.prefregex = Some(Spanned::new(v)),
            "R" => spec.failregex.push(Spanned::new(v)),
            "I" => spec.ignoreregex.push(Spanned::new(v)),
            "M" => spec.maxlines = v.trim().parse().unwrap_or(1),
            "D" => spec.datepattern = Some(Spanned::new(v)),
            _ => {}
        }
    }
    spec
}
