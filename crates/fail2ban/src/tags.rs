//! fail2ban's recursive `<tag>` substitution of option values
//! (`substituteRecursiveTags`): `b = <a>_3` becomes `3_3` when `a = 3`.

use crate::traced::{OMap, Traced};

const MAX_TAG_REPLACE_COUNT: usize = 25;

/// Find the next `<name>` (name without spaces and angle brackets) at or after `from`.
pub(crate) fn find_tag(s: &str, from: usize) -> Option<(usize, usize)> {
    let b = s.as_bytes();
    let mut i = from;
    while i < b.len() {
        if b[i] == b'<' {
            let mut j = i + 1;
            while j < b.len() && !matches!(b[j], b' ' | b'<' | b'>') {
                j += 1;
            }
            if j < b.len() && b[j] == b'>' && j > i + 1 {
                return Some((i, j + 1));
            }
        }
        i += 1;
    }
    None
}

/// Error: the named tag refers to itself.
#[derive(Debug)]
pub(crate) struct Recursion {
    pub tag: String,
    pub found: String,
    pub value: String,
    pub too_large: bool,
}

/// Substitute tags in every value; `addrepl` supplies values of tags that
/// are not keys of `tags` (fail2ban: `getCombOption`). Values that stay
/// unresolved are left as written.
pub(crate) fn substitute_recursive<E>(
    tags: &mut OMap<Traced>,
    ignore: &[String],
    addrepl: &mut dyn FnMut(&str) -> Result<Option<Traced>, E>,
) -> Result<Result<(), Recursion>, E> {
    let mut done: Vec<String> = Vec::new();
    let mut rep_counts: OMap<OMap<usize>> = OMap::default();
    loop {
        let mut rep_flag = false;
        let keys: Vec<String> = tags.keys().cloned().collect();
        for tag in keys {
            if ignore.contains(&tag) || done.contains(&tag) {
                continue;
            }
            let orgval = tags.get(&tag).cloned().unwrap_or_default();
            let mut value = orgval.clone();
            let mut rplc = rep_counts.get(&tag).cloned().unwrap_or_default();
            let mut m = find_tag(value.as_str(), 0);
            while let Some((start, end)) = m {
                let rtag = value.as_str()[start + 1..end - 1].to_string();
                if ignore.contains(&rtag) {
                    m = find_tag(value.as_str(), end);
                    continue;
                }
                if rtag == tag || rplc.get(&rtag).copied().unwrap_or(1) > MAX_TAG_REPLACE_COUNT {
                    return Ok(Err(Recursion {
                        tag,
                        found: rtag,
                        value: value.as_str().to_string(),
                        too_large: false,
                    }));
                }
                let repl = match tags.get(&rtag) {
                    Some(v) => Some(v.clone()),
                    None => addrepl(&rtag)?,
                };
                let Some(repl) = repl else {
                    m = find_tag(value.as_str(), end);
                    continue;
                };
                value = value.replace_all(&format!("<{rtag}>"), &repl);
                if value.as_str().len() > crate::config::MAX_VALUE_SIZE {
                    return Ok(Err(Recursion {
                        tag,
                        found: rtag,
                        value: value.as_str().chars().take(80).collect(),
                        too_large: true,
                    }));
                }
                let c = rplc.get(&rtag).copied().unwrap_or(0) + 1;
                rplc.insert(rtag, c);
                m = find_tag(value.as_str(), start);
            }
            if value != orgval {
                if find_tag(value.as_str(), 0).is_some() {
                    rep_counts.insert(tag.clone(), rplc);
                    rep_flag = true;
                }
                tags.insert(tag.clone(), value.clone());
            }
            if !value.as_str().contains('<') {
                done.push(tag);
            }
        }
        if !rep_flag {
            break;
        }
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(items: &[(&str, &str)]) -> OMap<Traced> {
        let mut m = OMap::default();
        for (k, v) in items {
            m.insert(k.to_string(), Traced::new(v, 0));
        }
        m
    }

    #[test]
    fn nested_and_embedded_tags() {
        let mut m = map(&[("a", "3"), ("b", "<a>_3"), ("c", "<x-<a>>"), ("x-3", "ok<HOST>")]);
        let r: Result<_, ()> = substitute_recursive(&mut m, &[], &mut |_| Ok(None));
        assert!(r.unwrap().is_ok());
        assert_eq!(m.get("b").unwrap().as_str(), "3_3");
        assert_eq!(m.get("c").unwrap().as_str(), "ok<HOST>");
    }

    #[test]
    fn self_reference_is_an_error() {
        let mut m = map(&[("a", "<b>"), ("b", "<a>")]);
        let r: Result<_, ()> = substitute_recursive(&mut m, &[], &mut |_| Ok(None));
        assert!(r.unwrap().is_err());
    }

    #[test]
    fn tag_finder() {
        assert_eq!(find_tag("a <b c> <d>", 0), Some((8, 11)));
        assert_eq!(find_tag("<<x>>", 0), Some((1, 4)));
        assert_eq!(find_tag("<>", 0), None);
    }
}
