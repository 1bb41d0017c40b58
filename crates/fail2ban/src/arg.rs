//! fail2ban's filter argument syntax: `sshd[mode=aggressive, maxlines=2]`,
//! values optionally quoted with `"` or `'`, several groups `[a=1][b=2]`.

use std::collections::BTreeMap;

use stadtwache_core::Diagnostic;

use crate::codes;

fn is_opt_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-' || c == '.'
}

/// Parse `name[opt=value, opt2="value, with comma"][opt3='x']`.
///
/// Returns the filter name (trimmed) and its options (names and values
/// trimmed). Errors carry code `F011`.
pub fn parse_filter_arg(s: &str) -> Result<(String, BTreeMap<String, String>), Diagnostic> {
    let bad = |msg: String| Diagnostic::error(codes::ARG_SYNTAX, format!("filter argument {s:?}: {msg}"));
    let trimmed_end = s.trim_end();
    let (name, optstr) = match s.find('[') {
        None => (s, None),
        Some(open) => {
            if !trimmed_end.ends_with(']') {
                return Err(bad("'[' without closing ']' at the end".into()));
            }
            (&s[..open], Some(&trimmed_end[open + 1..trimmed_end.len() - 1]))
        }
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(bad("empty filter name".into()));
    }
    let mut opts = BTreeMap::new();
    let Some(optstr) = optstr else {
        return Ok((name.to_string(), opts));
    };
    let chars: Vec<(usize, char)> = optstr.char_indices().collect();
    let n = chars.len();
    let mut i = 0;
    let at = |i: usize| chars.get(i).map(|c| c.1);
    loop {
        while i < n && chars[i].1.is_whitespace() {
            i += 1;
        }
        // `,?\s*$`: a trailing comma or nothing.
        {
            let mut j = i;
            if at(j) == Some(',') {
                j += 1;
            }
            while j < n && chars[j].1.is_whitespace() {
                j += 1;
            }
            if j >= n {
                break;
            }
        }
        let name_start = i;
        while i < n && is_opt_char(chars[i].1) {
            i += 1;
        }
        if i == name_start || at(i) != Some('=') {
            return Err(bad(format!("expected `option=value` at {:?}", &optstr[chars[name_start].0..])));
        }
        let opt = optstr[chars[name_start].0..chars[i].0].to_string();
        i += 1;
        let byte = |i: usize| chars.get(i).map(|c| c.0).unwrap_or(optstr.len());
        let value = match at(i) {
            Some(q @ ('"' | '\'')) => match chars[i + 1..].iter().position(|c| c.1 == q) {
                Some(p) => {
                    let v = &optstr[byte(i + 1)..byte(i + 1 + p)];
                    i = i + 1 + p + 1;
                    v
                }
                None => return Err(bad(format!("unclosed quote in value of {opt:?}"))),
            },
            _ => {
                let st = i;
                while i < n && chars[i].1 != ',' && chars[i].1 != ']' {
                    i += 1;
                }
                &optstr[byte(st)..byte(i)]
            }
        };
        opts.insert(opt.trim().to_string(), value.trim().to_string());
        // Separator: `,` or `]\s*[` or end.
        match at(i) {
            None => break,
            Some(',') => i += 1,
            Some(']') => {
                let mut j = i + 1;
                while j < n && chars[j].1.is_whitespace() {
                    j += 1;
                }
                if at(j) == Some('[') {
                    i = j + 1;
                } else {
                    return Err(bad(format!("unexpected text after option {opt:?}: {:?}", &optstr[byte(i)..])));
                }
            }
            Some(_) => {
                return Err(bad(format!("unexpected text after option {opt:?}: {:?}", &optstr[byte(i)..])));
            }
        }
    }
    Ok((name.to_string(), opts))
}

/// Render a name and options back in the same syntax (for display names).
pub fn format_filter_arg(name: &str, opts: &BTreeMap<String, String>) -> String {
    if opts.is_empty() {
        return name.to_string();
    }
    let parts: Vec<String> = opts
        .iter()
        .map(|(k, v)| {
            if v.contains([',', ']', '"']) || v.trim() != v {
                if v.contains('"') { format!("{k}='{v}'") } else { format!("{k}=\"{v}\"") }
            } else {
                format!("{k}={v}")
            }
        })
        .collect();
    format!("{name}[{}]", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> (String, Vec<(String, String)>) {
        let (n, o) = parse_filter_arg(s).unwrap();
        (n, o.into_iter().collect())
    }

    #[test]
    fn plain_and_options() {
        assert_eq!(ok("sshd"), ("sshd".into(), vec![]));
        assert_eq!(
            ok("sshd[mode=aggressive, maxlines=2]"),
            ("sshd".into(), vec![("maxlines".into(), "2".into()), ("mode".into(), "aggressive".into())])
        );
        assert_eq!(
            ok(r#"f[a="x, ]y", b='q"', c=][d= e ,]"#),
            (
                "f".into(),
                vec![
                    ("a".into(), "x, ]y".into()),
                    ("b".into(), "q\"".into()),
                    ("c".into(), "".into()),
                    ("d".into(), "e".into())
                ]
            )
        );
        assert_eq!(ok("sshd[]").1, vec![]);
    }

    #[test]
    fn syntax_errors_have_code() {
        for bad in ["sshd[mode=x", "[mode=x]", "sshd[=x]", "sshd[mode]", "sshd[a=\"x\"y]", "sshd[a=1] [b=2"] {
            let e = parse_filter_arg(bad).unwrap_err();
            assert_eq!(e.code, codes::ARG_SYNTAX, "{bad}");
        }
    }

    #[test]
    fn round_trip_display() {
        let (n, o) = parse_filter_arg(r#"sshd[mode=aggressive, x="a, b"]"#).unwrap();
        let s = format_filter_arg(&n, &o);
        assert_eq!(s, r#"sshd[mode=aggressive, x="a, b"]"#);
        assert_eq!(parse_filter_arg(&s).unwrap(), (n, o));
    }
}
