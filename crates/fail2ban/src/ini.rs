//! One INI file, read the way fail2ban reads it (Python `configparser` with
//! `inline_comment_prefixes=";"`, strict duplicates, empty lines kept inside
//! multi-line values, option names lower-cased).

use std::path::Path;

use stadtwache_core::{Diagnostic, SourceRef};

use crate::codes;
use crate::traced::{OMap, Sources, Traced};

/// A raw (not yet interpolated) option value with where its option was written.
#[derive(Debug, Clone)]
pub(crate) struct Value {
    pub v: Traced,
    /// Origin id of the `name = ...` line.
    pub at: u32,
}

pub(crate) type Section = OMap<Value>;

#[derive(Debug, Clone, Default)]
pub(crate) struct IniFile {
    pub defaults: Section,
    pub sections: OMap<Section>,
}

pub(crate) const DEFAULT_SECTION: &str = "DEFAULT";

/// Split text into lines the way Python's universal newlines mode does.
fn py_lines(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\n' => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            b'\r' => {
                out.push(&text[start..i]);
                if i + 1 < b.len() && b[i + 1] == b'\n' {
                    i += 1;
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < b.len() {
        out.push(&text[start..]);
    }
    out
}

/// Byte index where an inline `;` comment starts (only after whitespace or at 0).
fn inline_comment_start(line: &str) -> Option<usize> {
    let mut prev: Option<char> = None;
    for (i, c) in line.char_indices() {
        if c == ';' && (i == 0 || prev.is_some_and(char::is_whitespace)) {
            return Some(i);
        }
        prev = Some(c);
    }
    None
}

struct Pending {
    /// (section name or None for DEFAULT, option name)
    section: Option<String>,
    option: String,
    lines: Vec<(String, u32)>,
    at: u32,
}

/// Parse one file. Problems are returned alongside whatever could be read.
pub(crate) fn parse(path: &Path, text: &str, sources: &mut Sources) -> (IniFile, Vec<Diagnostic>) {
    let mut file = IniFile::default();
    let mut diags = Vec::new();
    let mut seen_sections: Vec<String> = Vec::new();
    let mut seen_options: Vec<(String, String)> = Vec::new();
    // Current section: None = no header yet; Some(None) = DEFAULT; Some(Some(name)).
    let mut cur: Option<Option<String>> = None;
    let mut pending: Option<Pending> = None;
    let mut indent_level: usize = 0;
    let err = |code: &'static str, msg: String, line: u32| Diagnostic::error(code, msg).at(path, line);

    let flush = |p: Option<Pending>, file: &mut IniFile, sources: &mut Sources| {
        let Some(p) = p else { return };
        let mut v = Traced::default();
        for (i, (l, n)) in p.lines.iter().enumerate() {
            let id = sources.intern(SourceRef { file: Some(path.to_path_buf()), line: *n });
            if i > 0 {
                v.push_str("\n", id);
            }
            v.push_str(l, id);
        }
        v.rstrip();
        let val = Value { v, at: p.at };
        match p.section {
            None => file.defaults.insert(p.option, val),
            Some(s) => {
                if let Some(sec) = file.sections.get_mut(&s) {
                    sec.insert(p.option, val);
                }
            }
        }
    };

    for (idx, line) in py_lines(text).into_iter().enumerate() {
        let lineno = (idx + 1) as u32;
        let mut comment_start = inline_comment_start(line);
        let stripped = line.trim();
        if stripped.starts_with('#') || stripped.starts_with(';') {
            comment_start = Some(0);
        }
        let value = match comment_start {
            Some(c) => line[..c].trim(),
            None => stripped,
        };
        if value.is_empty() {
            if comment_start.is_none()
                && let Some(p) = pending.as_mut()
            {
                p.lines.push((String::new(), lineno));
            }
            continue;
        }
        let cur_indent = line.chars().take_while(|c| c.is_whitespace()).count();
        if cur.is_some() && pending.is_some() && cur_indent > indent_level {
            if let Some(p) = pending.as_mut() {
                p.lines.push((value.to_string(), lineno));
            }
            continue;
        }
        indent_level = cur_indent;
        // Section header: `[` ... last `]`, at least one char between.
        if let Some(rest) = value.strip_prefix('[')
            && let Some(close) = rest.rfind(']')
            && close > 0
        {
            flush(pending.take(), &mut file, sources);
            let name = rest[..close].to_string();
            if name == DEFAULT_SECTION {
                cur = Some(None);
            } else {
                if seen_sections.contains(&name) {
                    diags.push(err(
                        codes::INI_DUPLICATE_SECTION,
                        format!("section [{name}] appears twice in this file"),
                        lineno,
                    ));
                } else {
                    seen_sections.push(name.clone());
                }
                if !file.sections.contains(&name) {
                    file.sections.insert(name.clone(), Section::default());
                }
                cur = Some(Some(name));
            }
            continue;
        }
        let Some(section) = cur.clone() else {
            diags.push(err(
                codes::INI_NO_SECTION,
                format!("option line before any [section] header: {value:?}"),
                lineno,
            ));
            flush(pending.take(), &mut file, sources);
            continue;
        };
        // Option: name up to the first '=' or ':'.
        let Some(delim) = value.find(['=', ':']) else {
            diags.push(err(
                codes::INI_SYNTAX,
                format!("expected `name = value`, a [section] or an indented continuation: {value:?}"),
                lineno,
            ));
            continue;
        };
        flush(pending.take(), &mut file, sources);
        let name = value[..delim].trim_end().to_lowercase();
        if name.is_empty() {
            diags.push(err(codes::INI_SYNTAX, format!("option without a name: {value:?}"), lineno));
            continue;
        }
        let sec_key = section.clone().unwrap_or_else(|| DEFAULT_SECTION.to_string());
        if seen_options.iter().any(|(s, o)| *s == sec_key && *o == name) {
            diags.push(err(
                codes::INI_DUPLICATE_OPTION,
                format!("option {name:?} appears twice in section [{sec_key}] of this file"),
                lineno,
            ));
        } else {
            seen_options.push((sec_key, name.clone()));
        }
        let at = sources.intern(SourceRef { file: Some(path.to_path_buf()), line: lineno });
        let first = value[delim + 1..].trim().to_string();
        pending = Some(Pending { section, option: name, lines: vec![(first, lineno)], at });
    }
    flush(pending.take(), &mut file, sources);
    (file, diags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> (IniFile, Vec<Diagnostic>) {
        let mut s = Sources::new();
        parse(Path::new("t.conf"), text, &mut s)
    }

    #[test]
    fn multiline_values_comments_and_blank_lines() {
        let (f, d) = p("[A]\nx = one ; c\n  two;three\n# comment\n\n  four\ny: z\n[DEFAULT]\nK = v\n");
        assert!(d.is_empty(), "{d:?}");
        let a = f.sections.get("A").unwrap();
        assert_eq!(a.get("x").unwrap().v.as_str(), "one\ntwo;three\n\nfour");
        assert_eq!(a.get("y").unwrap().v.as_str(), "z");
        assert_eq!(f.defaults.get("k").unwrap().v.as_str(), "v");
    }

    #[test]
    fn crlf_and_trailing_blank_lines() {
        let (f, d) = p("[A]\r\nx = 1\r\n  2\r\n\r\n\r\n");
        assert!(d.is_empty());
        assert_eq!(f.sections.get("A").unwrap().get("x").unwrap().v.as_str(), "1\n2");
    }
}
