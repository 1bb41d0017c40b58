//! Python `re` syntax -> `fancy_regex` syntax, for the constructs fail2ban's
//! date templates (and users' `datepattern`s) use.
//!
//! - `(?=\b|\W|$)` / `(?=^|\b|\W)` (fail2ban's word bounds) become the
//!   equivalent half word boundaries, so the `regex` crate can run them;
//! - `(?(name)...)` conditionals become `(?(<name>)...)`;
//! - `\Z` becomes `\z`, `\<`/`\>` literal `<`/`>`;
//! - `{` that is no repetition (Python reads it literally) is escaped;
//! - inside classes `[` and the set operators `&&`, `--`, `~~` are escaped.

/// `¬(word(prev) ∧ word(next))`: what both of fail2ban's boundary lookaheads
/// amount to next to a date.
pub(crate) const HALF_BOUNDS: &str = r"(?:\b{start-half}|\b{end-half})";

pub(crate) fn translate(py: &str) -> String {
    let b = py.as_bytes();
    let mut out = String::with_capacity(py.len() + 16);
    let mut i = 0;
    let mut in_class = false;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' {
            // copy the escape (whole char after the backslash)
            let next = py[i + 1..].chars().next();
            match next {
                None => {
                    out.push('\\');
                    i += 1;
                }
                Some('Z') if !in_class => {
                    out.push_str(r"\z");
                    i += 2;
                }
                Some(ch @ ('<' | '>')) => {
                    out.push(ch);
                    i += 2;
                }
                Some(ch) => {
                    out.push('\\');
                    out.push(ch);
                    i += 1 + ch.len_utf8();
                }
            }
            continue;
        }
        if in_class {
            match c {
                b']' => {
                    in_class = false;
                    out.push(']');
                    i += 1;
                }
                b'[' => {
                    out.push_str(r"\[");
                    i += 1;
                }
                b'&' | b'-' | b'~' if b.get(i + 1) == Some(&c) => {
                    out.push('\\');
                    out.push(c as char);
                    i += 1;
                }
                _ => {
                    let ch = py[i..].chars().next().unwrap_or('\0');
                    out.push(ch);
                    i += ch.len_utf8().max(1);
                }
            }
            continue;
        }
        match c {
            b'[' => {
                in_class = true;
                out.push('[');
                i += 1;
                // a leading `^` and/or `]` belong to the class
                if b.get(i) == Some(&b'^') {
                    out.push('^');
                    i += 1;
                }
                if b.get(i) == Some(&b']') {
                    out.push_str(r"\]");
                    i += 1;
                }
            }
            b'(' if py[i..].starts_with("(?(") => {
                // conditional: named reference -> (?(<name>)
                let rest = &py[i + 3..];
                let name_len = rest.bytes().take_while(|c| c.is_ascii_alphanumeric() || *c == b'_').count();
                if name_len > 0 && rest.as_bytes().get(name_len) == Some(&b')') && !rest.as_bytes()[0].is_ascii_digit()
                {
                    out.push_str("(?(<");
                    out.push_str(&rest[..name_len]);
                    out.push_str(">)");
                    i += 3 + name_len + 1;
                } else {
                    out.push_str("(?(");
                    i += 3;
                }
            }
            b'(' if py[i..].starts_with("(?#") => {
                // comment group
                match py[i..].find(')') {
                    Some(end) => i += end + 1,
                    None => {
                        out.push_str(&py[i..]);
                        i = b.len();
                    }
                }
            }
            b'{' => match quantifier_len(&b[i..]) {
                Some((len, min_missing)) => {
                    out.push('{');
                    if min_missing {
                        out.push('0');
                    }
                    out.push_str(&py[i + 1..i + len]);
                    i += len;
                }
                None => {
                    out.push_str(r"\{");
                    i += 1;
                }
            },
            b'}' => {
                out.push_str(r"\}");
                i += 1;
            }
            _ => {
                let ch = py[i..].chars().next().unwrap_or('\0');
                out.push(ch);
                i += ch.len_utf8().max(1);
            }
        }
    }
    out.replace(r"(?=\b|\W|$)", HALF_BOUNDS).replace(r"(?=^|\b|\W)", HALF_BOUNDS)
}

/// Length of a Python repetition `{m}`, `{m,}`, `{,n}`, `{m,n}` at the start
/// of `b`, and whether its minimum is missing.
fn quantifier_len(b: &[u8]) -> Option<(usize, bool)> {
    let mut i = 1;
    let d1 = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    i += d1;
    if b.get(i) == Some(&b'}') {
        return (d1 > 0).then_some((i + 1, false));
    }
    if b.get(i) != Some(&b',') {
        return None;
    }
    i += 1;
    let d2 = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    i += d2;
    if b.get(i) != Some(&b'}') || (d1 == 0 && d2 == 0) {
        return None;
    }
    Some((i + 1, d1 == 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translations() {
        assert_eq!(translate(r"a{^LN-BEG}"), r"a\{^LN-BEG\}");
        assert_eq!(translate(r"\d{2}x{,3}"), r"\d{2}x{0,3}");
        assert_eq!(translate(r"(?(square)(?=\]))"), r"(?(<square>)(?=\]))");
        assert_eq!(translate(r"[[&&]\Z"), r"[\[\&&]\z");
        assert_eq!(translate(r"(?=\b|\W|$)"), HALF_BOUNDS);
        assert_eq!(translate(r"[]a]"), r"[\]a]");
    }
}
