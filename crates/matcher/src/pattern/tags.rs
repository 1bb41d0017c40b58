//! fail2ban's tag expansion (`<HOST>`, `<F-USER>`…`</F-USER>`, `<SKIPLINES>`…)
//! and its rewriting of wrapped global flags (`((?i)x)` → `(?i:x)`), written
//! from the behaviour of fail2ban's `Regex` class: the output text is what
//! fail2ban hands to Python's `re.compile`.

/// fail2ban's IPv4 address regex (`IPAddr.IP_4_RE`).
pub(crate) const IP_4_RE: &str = r"(?:\d{1,3}\.){3}\d{1,3}";
/// fail2ban's IPv6 address regex (`IPAddr.IP_6_RE`).
pub(crate) const IP_6_RE: &str = r"(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|(?<=:):)";

fn r_ip4() -> String {
    format!("(?:::f{{4,6}}:)?(?P<ip4>{IP_4_RE})")
}
fn r_ip6() -> String {
    format!("(?P<ip6>{IP_6_RE})")
}
/// `<IP4>`'s expansion.
pub(crate) fn ip4_re() -> String {
    r_ip4()
}
/// `<IP6>`'s expansion.
pub(crate) fn ip6_re() -> String {
    r_ip6()
}
/// `<HOST>`'s expansion (with DNS names).
pub(crate) fn host_re() -> String {
    r_host()
}
const R_DNS: &str = r"(?P<dns>[\w\-.^_]*\w)";
const R_CIDR: &str = r"(?P<cidr>\d+)";

fn r_addr() -> String {
    format!(r"\[?(?:{}|{})\]?", r_ip4(), r_ip6())
}
fn r_host() -> String {
    format!("(?:{}|{})", r_addr(), R_DNS)
}
fn r_subnet() -> String {
    format!(r"\[?(?:{}|{})(?:/{})?\]?", r_ip4(), r_ip6(), R_CIDR)
}

/// A custom `<F-NAME>` … `</F-NAME>` pair as expanded, with the byte
/// positions (in the final text) of the `(` it opened and the `)` it closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TagPair {
    pub name: String,
    pub open: usize,
    pub close: Option<usize>,
}

/// A problem found while expanding tags (mapped to a coded diagnostic).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TagProblem {
    /// `<F-...>`-looking tag fail2ban does not know (left as literal text by fail2ban).
    Unknown(String),
    /// `</F-X>` without an open `<F-X>` (left as literal text by fail2ban).
    CloseWithoutOpen(String),
    /// `</F-X>` a second time: fail2ban emits a stray `)`.
    ClosedTwice(String),
    /// `<F-X>` never closed.
    Unclosed(String),
    /// `<F-X>` opened again while still open (would define the group twice).
    Reopened(String),
}

#[derive(Debug, Default)]
pub(crate) struct Expansion {
    pub text: String,
    pub pairs: Vec<TagPair>,
    pub problems: Vec<TagProblem>,
    pub skiplines: usize,
}

/// Is `c` in Python's Unicode `\w` (alphanumeric or underscore)?
pub(crate) fn py_is_word(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// fail2ban's group name mapping for custom tags (`ID` → `fid`, `PORT` → `fport`).
pub(crate) fn map_tag_to_group(tag: &str) -> String {
    let l = tag.to_lowercase();
    match l.as_str() {
        "id" => "fid".to_string(),
        "port" => "fport".to_string(),
        _ => l,
    }
}

/// Finds the next tag `</?[\w\-]+/?>` at or after `from`; returns (start, end).
fn find_tag(s: &str, from: usize) -> Option<(usize, usize)> {
    let bytes = s.as_bytes();
    let mut i = from;
    while let Some(off) = memchr::memchr(b'<', &bytes[i..]) {
        let start = i + off;
        let mut j = start + 1;
        if bytes.get(j) == Some(&b'/') {
            j += 1;
        }
        let name_start = j;
        let j = s[name_start..]
            .char_indices()
            .find(|&(_, c)| !(py_is_word(c) || c == '-'))
            .map_or(s.len(), |(k, _)| name_start + k);
        if j > name_start {
            let mut k = j;
            if bytes.get(k) == Some(&b'/') {
                k += 1;
            }
            if bytes.get(k) == Some(&b'>') {
                return Some((start, k + 1));
            }
        }
        i = start + 1;
    }
    None
}

/// `^(/?)F-([A-Z0-9_\-]+)$` on the tag name; returns (closing, NAME).
fn custom_name(tn: &str) -> Option<(bool, &str)> {
    let (close, rest) = match tn.strip_prefix('/') {
        Some(r) => (true, r),
        None => (false, tn),
    };
    let name = rest.strip_prefix("F-")?;
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        Some((close, name))
    } else {
        None
    }
}

/// Expands fail2ban's tags. `use_dns == false` is fail2ban's `usedns = no`
/// (`<HOST>` becomes `<ADDR>`).
pub(crate) fn expand(regex: &str, use_dns: bool) -> Expansion {
    let mut out = Expansion::default();
    let mut text = String::with_capacity(regex.len() * 2);
    // open tag name -> index in pairs (fail2ban never forgets an opened tag)
    let mut opened: Vec<(String, usize)> = Vec::new();
    // stack of currently open pairs (for nesting checks)
    let mut pos = 0;
    while let Some((s, e)) = find_tag(regex, pos) {
        text.push_str(&regex[pos..s]);
        let tag = &regex[s..e];
        let tn = &tag[1..tag.len() - 1];
        pos = e;
        let repl: Option<String> = match tn {
            "HOST" => Some(if use_dns { r_host() } else { r_addr() }),
            "SKIPLINES" => {
                let n = out.skiplines;
                out.skiplines += 1;
                Some(format!(r"\n(?P<skiplines{n}>(?:(?:.*\n)*?))"))
            }
            "IP4" | "F-IP4/" => Some(r_ip4()),
            "IP6" | "F-IP6/" => Some(r_ip6()),
            "ADDR" | "F-ADDR/" => Some(r_addr()),
            "CIDR" | "F-CIDR/" => Some(R_CIDR.to_string()),
            "SUBNET" | "F-SUBNET/" => Some(r_subnet()),
            "DNS" | "F-DNS/" => Some(R_DNS.to_string()),
            "F-ID/" => Some(r"(?P<fid>\S+)".to_string()),
            "F-PORT/" => Some(r"(?P<fport>\w+)".to_string()),
            _ => None,
        };
        if let Some(r) = repl {
            text.push_str(&r);
            continue;
        }
        match custom_name(tn) {
            Some((true, name)) => {
                if let Some((_, idx)) = opened.iter().find(|(n, _)| n == name) {
                    let idx = *idx;
                    if out.pairs[idx].close.is_some() {
                        out.problems.push(TagProblem::ClosedTwice(name.to_string()));
                    } else {
                        out.pairs[idx].close = Some(text.len());
                    }
                    text.push(')');
                } else {
                    out.problems.push(TagProblem::CloseWithoutOpen(name.to_string()));
                    text.push_str(tag);
                }
            }
            Some((false, name)) => {
                if let Some((_, idx)) = opened.iter().find(|(n, _)| n == name) {
                    if out.pairs[*idx].close.is_none() {
                        out.problems.push(TagProblem::Reopened(name.to_string()));
                    }
                    // fail2ban: the tag stays "open"; a later close closes the new one
                    let idx = out.pairs.len();
                    out.pairs.push(TagPair { name: name.to_string(), open: text.len(), close: None });
                    if let Some(o) = opened.iter_mut().find(|(n, _)| n == name) {
                        o.1 = idx;
                    }
                } else {
                    opened.push((name.to_string(), out.pairs.len()));
                    out.pairs.push(TagPair { name: name.to_string(), open: text.len(), close: None });
                }
                text.push_str("(?P<");
                text.push_str(&map_tag_to_group(name));
                text.push('>');
            }
            None => {
                let t = tn.trim_start_matches('/');
                // (bytes: a tag name may hold any word character, `ؼ` too)
                if t.as_bytes().get(..2).is_some_and(|p| p.eq_ignore_ascii_case(b"F-")) {
                    out.problems.push(TagProblem::Unknown(tag.to_string()));
                }
                text.push_str(tag);
            }
        }
    }
    text.push_str(&regex[pos..]);
    for p in &out.pairs {
        if p.close.is_none() {
            out.problems.push(TagProblem::Unclosed(p.name.clone()));
        }
    }
    out.text = text;
    out
}

/// fail2ban's `R_GLOB2LOCFLAGS`: `(?<!\\)\((?:\?:)?(\(\?[a-z]+)\)` → `\1:`,
/// i.e. `((?i)x)` and `(?:(?i)x)` become `(?i:x)`. Returns the new text and
/// a position map (old byte offset → new byte offset) for tag positions.
pub(crate) fn glob_to_local_flags(s: &str) -> (String, Vec<(usize, isize)>) {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut edits = Vec::new(); // (old position after which delta applies, cumulative delta)
    let mut delta: isize = 0;
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        if b[i] == b'(' && (i == 0 || b[i - 1] != b'\\') {
            let mut j = i + 1;
            if b[j..].starts_with(b"?:") {
                j += 2;
            }
            if b[j..].starts_with(b"(?") {
                let mut k = j + 2;
                while k < b.len() && b[k].is_ascii_lowercase() {
                    k += 1;
                }
                if k > j + 2 && b.get(k) == Some(&b')') {
                    out.push_str(&s[copied..i]);
                    out.push_str(&s[j..k]);
                    out.push(':');
                    let old_len = k + 1 - i;
                    let new_len = k - j + 1;
                    delta += new_len as isize - old_len as isize;
                    edits.push((k + 1, delta));
                    i = k + 1;
                    copied = i;
                    continue;
                }
            }
        }
        i += 1;
    }
    out.push_str(&s[copied..]);
    (out, edits)
}

/// Maps an old offset through the edits of [`glob_to_local_flags`].
pub(crate) fn map_pos(edits: &[(usize, isize)], pos: usize) -> usize {
    let mut d = 0;
    for &(at, cum) in edits {
        if at <= pos {
            d = cum;
        } else {
            break;
        }
    }
    (pos as isize + d) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_tags() {
        let e = expand("from <HOST>", true);
        assert!(e.problems.is_empty());
        assert_eq!(e.text, format!("from {}", r_host()));
        let e = expand("from <HOST>", false);
        assert_eq!(e.text, format!("from {}", r_addr()));
        assert_eq!(expand("<IP4>", true).text, r_ip4());
        assert_eq!(expand("<F-IP6/>", true).text, r_ip6());
        assert_eq!(expand("<F-ID/>", true).text, r"(?P<fid>\S+)");
        assert_eq!(expand("<F-PORT/>", true).text, r"(?P<fport>\w+)");
        assert_eq!(expand("<CIDR>", true).text, r"(?P<cidr>\d+)");
        assert_eq!(expand("<DNS>", true).text, R_DNS);
        assert_eq!(expand("<SUBNET>", true).text, r_subnet());
    }

    #[test]
    fn custom_tags() {
        let e = expand("<F-USER>x</F-USER> <F-ID>y</F-ID> <F-ALT_USER1>z</F-ALT_USER1>", true);
        assert!(e.problems.is_empty(), "{:?}", e.problems);
        assert_eq!(e.text, "(?P<user>x) (?P<fid>y) (?P<alt_user1>z)");
        assert_eq!(e.pairs.len(), 3);
        assert_eq!(e.pairs[0].open, 0);
        assert_eq!(e.pairs[0].close, Some(10));
    }

    #[test]
    fn tag_problems() {
        assert_eq!(expand("</F-USER>", true).problems, vec![TagProblem::CloseWithoutOpen("USER".into())]);
        assert_eq!(expand("</F-USER>", true).text, "</F-USER>");
        assert_eq!(expand("<F-USER>", true).problems, vec![TagProblem::Unclosed("USER".into())]);
        assert_eq!(expand("<f-user>x</f-user>", true).problems.len(), 2);
        assert_eq!(expand("<F-USER/>", true).problems, vec![TagProblem::Unknown("<F-USER/>".into())]);
        assert_eq!(expand("<F-A>x</F-A></F-A>", true).problems, vec![TagProblem::ClosedTwice("A".into())]);
        // non-F tags are left alone, as fail2ban does
        assert!(expand("<foo> <HOSTX>", true).problems.is_empty());
        assert_eq!(expand("<foo> <HOSTX>", true).text, "<foo> <HOSTX>");
        // a non-ASCII word character right after the first byte (found by
        // the fail2ban_filter fuzz target: the check sliced inside it)
        assert!(expand("<F\u{63c}ONTENT>", true).problems.is_empty());
        assert_eq!(expand("<F\u{63c}ONTENT>", true).text, "<F\u{63c}ONTENT>");
        assert_eq!(expand("<f-\u{63c}>", true).problems, vec![TagProblem::Unknown("<f-\u{63c}>".into())]);
    }

    #[test]
    fn skiplines() {
        let e = expand("a<SKIPLINES>b<SKIPLINES>c", true);
        assert_eq!(e.skiplines, 2);
        assert_eq!(e.text, r"a\n(?P<skiplines0>(?:(?:.*\n)*?))b\n(?P<skiplines1>(?:(?:.*\n)*?))c");
    }

    #[test]
    fn glob_flags() {
        assert_eq!(glob_to_local_flags("((?i)abc)").0, "(?i:abc)");
        assert_eq!(glob_to_local_flags("x(?:(?i)abc)").0, "x(?i:abc)");
        assert_eq!(glob_to_local_flags(r"\((?i)abc)").0, r"\((?i)abc)");
        assert_eq!(glob_to_local_flags("(?i)abc").0, "(?i)abc");
        let (t, edits) = glob_to_local_flags("ab((?i)c)d");
        assert_eq!(t, "ab(?i:c)d");
        assert_eq!(map_pos(&edits, 9), 8);
        assert_eq!(map_pos(&edits, 1), 1);
    }
}
