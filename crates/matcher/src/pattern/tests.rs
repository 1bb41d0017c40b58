use super::*;
use stadtwache_core::SourceRef;

fn compile(s: &str, kind: PatternKind) -> Pattern {
    Pattern::compile(&Spanned::new(s), kind, &CompileOptions::default()).unwrap_or_else(|e| panic!("{s:?}: {e:?}"))
}

fn pat(s: &str) -> Pattern {
    compile(s, PatternKind::Failregex)
}

fn err(s: &str) -> Vec<Diagnostic> {
    let src = Spanned { text: s.to_string(), at: SourceRef { file: Some("f.conf".into()), line: 7 } };
    match Pattern::compile(&src, PatternKind::Failregex, &CompileOptions::default()) {
        Ok(p) => panic!("{s:?} compiled to {:?}", p.translated()),
        Err(e) => {
            assert!(!e.is_empty());
            for d in &e {
                assert_eq!(d.file.as_deref(), Some(std::path::Path::new("f.conf")));
                assert_eq!(d.line, 7);
                assert!(d.is_error());
            }
            e
        }
    }
}

fn code(s: &str) -> &'static str {
    err(s)[0].code
}

/// Named group value of the first match.
fn group<'h>(p: &Pattern, hay: &'h str, name: &str) -> Option<&'h str> {
    let c = p.captures(hay).unwrap()?;
    let i = p.group_index(name)?;
    c.groups[i].map(|(a, b)| &hay[a..b])
}

fn m(p: &Pattern, hay: &str) -> bool {
    let a = p.is_match(hay).unwrap();
    let b = p.captures(hay).unwrap().is_some();
    assert_eq!(a, b, "is_match and captures disagree on {hay:?} for {}", p.translated());
    a
}

#[test]
fn host_tag_groups() {
    let p = pat("^fail from <HOST>$");
    assert_eq!(p.engine(), Engine::Linear, "{}", p.translated());
    assert_eq!(group(&p, "fail from 192.0.2.1", "ip4"), Some("192.0.2.1"));
    assert_eq!(group(&p, "fail from ::ffff:192.0.2.1", "ip4"), Some("192.0.2.1"));
    assert_eq!(group(&p, "fail from 2001:db8::1", "ip6"), Some("2001:db8::1"));
    assert_eq!(group(&p, "fail from [2001:db8::1]", "ip6"), Some("2001:db8::1"));
    assert_eq!(group(&p, "fail from fe80::", "ip6"), Some("fe80::"));
    assert_eq!(group(&p, "fail from ::1", "ip6"), Some("::1"));
    assert_eq!(group(&p, "fail from host.example.com", "dns"), Some("host.example.com"));
    assert_eq!(group(&p, "fail from host.example.com", "ip4"), None);
    assert!(p.has_failure_id_group());
    // usedns = no: <HOST> is <ADDR>
    let p = Pattern::compile_with(
        &Spanned::new("from <HOST>$"),
        PatternKind::Failregex,
        &CompileOptions::default(),
        PatternOptions { multiline: false, use_dns: false },
    )
    .unwrap();
    assert!(p.group_index("dns").is_none());
    assert!(!m(&p, "from host.example.com"));
}

#[test]
fn ipv6_lookbehind_is_elided_only_where_always_true() {
    let p = pat("<IP6>");
    assert_eq!(p.engine(), Engine::Linear);
    assert!(!p.translated().contains("(?<="));
    // a look-behind in another context stays (and needs backtracking)
    let p = pat("a(?<=:)b");
    assert_eq!(p.engine(), Engine::Backtracking);
    let p = pat(":(?<=:)b");
    assert_eq!(p.engine(), Engine::Linear);
    assert!(m(&p, ":b"));
}

#[test]
fn simple_tags() {
    for (tag, groups) in [
        ("<IP4>", &["ip4"][..]),
        ("<F-IP4/>", &["ip4"]),
        ("<IP6>", &["ip6"]),
        ("<F-IP6/>", &["ip6"]),
        ("<ADDR>", &["ip4", "ip6"]),
        ("<F-ADDR/>", &["ip4", "ip6"]),
        ("<DNS>", &["dns"]),
        ("<F-DNS/>", &["dns"]),
        ("<CIDR>", &["cidr"]),
        ("<F-CIDR/>", &["cidr"]),
        ("<SUBNET>", &["ip4", "ip6", "cidr"]),
        ("<F-SUBNET/>", &["ip4", "ip6", "cidr"]),
        ("<F-ID/>", &["fid"]),
        ("<F-PORT/>", &["fport"]),
    ] {
        let p = pat(tag);
        for g in groups {
            assert!(p.group_index(g).is_some(), "{tag} lacks {g}");
        }
    }
    let p = pat("net <SUBNET>");
    assert_eq!(group(&p, "net 10.0.0.0/8", "cidr"), Some("8"));
    assert_eq!(group(&p, "net 10.0.0.0/8", "ip4"), Some("10.0.0.0"));
    let p = pat("id <F-ID/> port <F-PORT/>");
    assert_eq!(group(&p, "id abc:12 port ssh", "fid"), Some("abc:12"));
    assert_eq!(group(&p, "id abc:12 port ssh", "fport"), Some("ssh"));
}

#[test]
fn custom_group_tags() {
    let p =
        pat("^<F-MLFID>\\d+</F-MLFID> <F-NOFAIL>x</F-NOFAIL> <F-USER>\\S+</F-USER> <F-ALT_USER1>\\S+</F-ALT_USER1> \
         <F-TUPLE_ID_1>\\d</F-TUPLE_ID_1> <F-ID>\\w+</F-ID> <F-PORT>\\d+</F-PORT> <F-CONTENT>.+</F-CONTENT>");
    let names: Vec<_> = p.group_names().iter().flatten().cloned().collect();
    assert_eq!(names, ["mlfid", "nofail", "user", "alt_user1", "tuple_id_1", "fid", "fport", "content"]);
    let hay = "42 x bob alice 7 conn 22 rest of it";
    assert_eq!(group(&p, hay, "mlfid"), Some("42"));
    assert_eq!(group(&p, hay, "user"), Some("bob"));
    assert_eq!(group(&p, hay, "alt_user1"), Some("alice"));
    assert_eq!(group(&p, hay, "fid"), Some("conn"));
    assert_eq!(group(&p, hay, "fport"), Some("22"));
    assert_eq!(group(&p, hay, "content"), Some("rest of it"));
    let p = pat("<F-MLFFORGET><F-MLFGAINED>Accepted</F-MLFGAINED></F-MLFFORGET> <HOST>");
    assert_eq!(group(&p, "Accepted 1.2.3.4", "mlfforget"), Some("Accepted"));
    assert_eq!(group(&p, "Accepted 1.2.3.4", "mlfgained"), Some("Accepted"));
}

#[test]
fn skiplines() {
    let p = pat("^a <HOST><SKIPLINES>^b$");
    assert!(p.is_multiline());
    assert_eq!(p.skiplines_groups(), 1);
    let hay = "a 1.2.3.4\nx\ny\nb\n";
    assert_eq!(group(&p, hay, "skiplines0"), Some("x\ny\n"));
    assert_eq!(group(&p, hay, "ip4"), Some("1.2.3.4"));
    assert!(!pat("^a <HOST>$").is_multiline());
    assert!(pat(r"^a\nb <HOST>").is_multiline());
}

#[test]
fn tag_errors_are_coded() {
    assert_eq!(code(""), "P001");
    assert_eq!(code("   "), "P001");
    assert_eq!(code("<f-user>x</f-user>"), "P002");
    assert_eq!(code("<F-USER/> <HOST>"), "P002");
    assert_eq!(code("x</F-USER> <HOST>"), "P003");
    assert_eq!(code("<F-USER>x <HOST>"), "P004");
    assert_eq!(code("<F-A>x</F-A></F-A> <HOST>"), "P005");
    assert_eq!(code("<F-A>x<F-A>y</F-A> <HOST>"), "P005");
    assert_eq!(code("(<F-USER>x)</F-USER> <HOST>"), "P006");
    assert_eq!(code("<F-A><F-B>x</F-A></F-B>"), "P006");
    assert_eq!(code("(unclosed <HOST>"), "P007");
    assert_eq!(code(r"\q <HOST>"), "P007");
    assert_eq!(code(r"\N{SNOWMAN} <HOST>"), "P009");
    // the message carries Python's wording
    assert!(err("a{3,1}")[0].message.contains("min repeat greater than max repeat"));
}

#[test]
fn prefregex_without_content_warns() {
    let p = compile("^foo .*$", PatternKind::Prefregex);
    assert_eq!(p.warnings()[0].code, "P010");
    let p = compile("^foo <F-CONTENT>.*</F-CONTENT>$", PatternKind::Prefregex);
    assert!(p.warnings().is_empty());
}

#[test]
fn python_anchors() {
    // `$` also matches before a final newline (fail2ban's buffer ends in \n)
    let p = compile("^foo$", PatternKind::Ignoreregex);
    assert!(m(&p, "foo"));
    assert!(m(&p, "foo\n"));
    assert!(!m(&p, "foo\nbar\n"));
    assert!(!m(&p, "xfoo"));
    // non-MULTILINE: `$` only at the very end / before the final \n, even with inner newlines
    let p = compile("foo$", PatternKind::Prefregex);
    assert!(!m(&p, "foo\nbar\n"));
    assert!(m(&p, "bar\nfoo\n"));
    // MULTILINE (failregex): ^ and $ at every line
    let p = compile("^foo$", PatternKind::Failregex);
    assert!(m(&p, "bar\nfoo\nbaz\n"));
    // \Z is the very end only; \A the very start
    let p = pat(r"foo\Z");
    assert!(m(&p, "foo"));
    assert!(!m(&p, "foo\n"));
    let p = pat(r"\Afoo");
    assert!(!m(&p, "x\nfoo"));
}

#[test]
fn literal_brace_and_quantifiers() {
    let p = pat(r"a{x}");
    assert!(m(&p, "a{x}"));
    let p = pat(r"a{,2}b");
    assert!(m(&p, "aab"));
    assert_eq!(p.captures("aaab").unwrap().unwrap().span, (1, 4));
    let p = pat(r"a{}");
    assert!(m(&p, "a{}"));
    let p = pat(r"x{1,");
    assert!(m(&p, "x{1,"));
    let p = pat(r"a{2}?");
    assert!(m(&p, "aa"));
}

#[test]
fn classes() {
    let p = pat(r"[]a]+");
    assert_eq!(p.captures("x]a]").unwrap().unwrap().span, (1, 4));
    let p = pat(r"^[^]a]+$");
    assert!(m(&p, "xyz"));
    assert!(!m(&p, "x]z"));
    // Rust set operators are plain chars in Python
    let p = pat(r"^[a&&b]+$");
    assert!(m(&p, "a&b"));
    let p = pat(r"^[-a~~c]+$");
    assert!(m(&p, "a-~c"));
    // Python: `a--` is a (bad) range
    assert_eq!(code(r"[a--b]"), "P007");
    let p = pat(r"^[[a]+$");
    assert!(m(&p, "[a["));
    let p = pat(r"^[\]\-\\]+$");
    assert!(m(&p, r"]-\"));
    let p = pat(r"^[\d-]+$");
    assert!(m(&p, "1-2"));
    let p = pat(r"^[\b]$");
    assert!(m(&p, "\x08"));
    let p = pat(r"^[\W\d]+$");
    assert!(m(&p, "1 !"));
    assert!(!m(&p, "a"));
}

#[test]
fn unicode_classes_like_python() {
    // Python str \w: alphanumerics (incl. No like '²') and '_'; not marks
    let p = pat(r"^\w+$");
    assert!(m(&p, "Grüße_²"));
    assert!(!m(&p, "a\u{301}"));
    // Python \s includes \x1c-\x1f
    let p = pat(r"^a\sb$");
    assert!(m(&p, "a\x1cb"));
    assert!(m(&p, "a\u{3000}b"));
    let p = pat(r"^\d$");
    assert!(m(&p, "٣"));
    // ASCII flag
    let p = pat(r"(?a)^\w+$");
    assert!(!m(&p, "ü"));
    assert!(m(&p, "u_1"));
}

#[test]
fn escapes() {
    let p = pat(r"^\101\x42\u0043\U00000044\0$");
    assert!(m(&p, "ABCD\0"));
    let p = pat(r"^\<\>\#\ \-\:\/\@$");
    assert!(m(&p, "<># -:/@"));
    let p = pat(r"^\a\f\t\v$");
    assert!(m(&p, "\x07\x0c\t\x0b"));
    let p = pat(r"^#&~$");
    assert!(m(&p, "#&~"));
}

#[test]
fn flags() {
    let p = pat("(?i)^abc$");
    assert!(m(&p, "ABC"));
    let p = pat("^a(?i:b)c$");
    assert!(m(&p, "aBc"));
    assert!(!m(&p, "aBC"));
    let p = pat("(?i)^a(?-i:b)c$");
    assert!(m(&p, "AbC"));
    assert!(!m(&p, "ABC"));
    // fail2ban rewrites wrapped global flags into scoped ones
    let p = pat("^x((?i)abc)y$");
    assert_eq!(p.expanded(), "^x(?i:abc)y$");
    assert!(m(&p, "xABCy"));
    assert!(!m(&p, "XABCy"));
    let p = pat("^x(?:(?i)abc)y$");
    assert!(m(&p, "xABCy"));
    // global flags later in the pattern are a Python error
    assert_eq!(code("a(?i)b"), "P007");
    // verbose
    let p = pat("(?x) ^ a b # comment\n c [ ]$");
    assert!(m(&p, "abc "));
    // dotall
    let p = pat("(?s)^a.b$");
    assert!(m(&p, "a\nb"));
    let p = pat("^a.b$");
    assert!(!m(&p, "a\nb"));
    // global flags apply to later top-level branches
    let p = pat("(?i)x|y");
    assert!(m(&p, "Y"));
}

#[test]
fn backtracking_fallback() {
    let p = pat(r"^(?P<a>\w+) (?P=a)$");
    assert_eq!(p.engine(), Engine::Backtracking);
    assert!(m(&p, "ab ab"));
    assert!(!m(&p, "ab ac"));
    let p = pat(r"^(\w+) \1$");
    assert!(m(&p, "x x"));
    let p = pat(r"^(?!root)\w+$");
    assert!(!m(&p, "root"));
    assert!(m(&p, "bob"));
    let p = pat(r"^(a)?(?(1)b|c)$");
    assert!(m(&p, "ab"));
    assert!(m(&p, "c"));
    assert!(!m(&p, "ac"));
    let p = pat(r"^(?>a+)b$");
    assert_eq!(p.engine(), Engine::Backtracking);
    assert!(m(&p, "aab"));
    let p = pat(r"^a*+a$");
    assert!(!m(&p, "aaa"));
    let p = pat(r"(?a)\bx(?=y)");
    assert!(m(&p, "xy"));
    assert!(!m(&p, "axy"));
}

#[test]
fn budget_exceeded_is_reported_not_hung() {
    let opts = CompileOptions { backtrack_limit: 10_000 };
    let p = Pattern::compile(&Spanned::new(r"^(a|a)*(?=c)b"), PatternKind::Failregex, &opts).unwrap();
    assert_eq!(p.engine(), Engine::Backtracking);
    let hay = format!("{}b", "a".repeat(40));
    assert_eq!(p.is_match(&hay), Err(BudgetExceeded));
    assert_eq!(p.captures(&hay), Err(BudgetExceeded));
    // without literals, a linear superset (look-arounds dropped) rules most
    // lines out before backtracking
    let p = Pattern::compile(&Spanned::new(r"^(a|a)*(?=c)[-+*/=<>!~%^]"), PatternKind::Failregex, &opts).unwrap();
    assert_eq!(p.required_literals(), None);
    assert_eq!(p.is_match(&format!("{}b", "a".repeat(40))), Ok(false));
}

#[test]
fn scratch_captures() {
    let p = pat(r"^(?P<user>\w+) from <HOST>$");
    let mut s = p.new_scratch();
    assert!(p.captures_with("bob from 1.2.3.4", &mut s).unwrap());
    let u = p.group_index("user").unwrap();
    assert_eq!(s.get(u), Some((0, 3)));
    assert_eq!(s.get(0), Some((0, 16)));
    assert!(!p.captures_with("nope", &mut s).unwrap());
    // a scratch moved to another pattern re-sizes itself
    let q = pat(r"(x)(y)(z)");
    assert!(q.captures_with("xyz", &mut s).unwrap());
    assert_eq!(s.get(3), Some((2, 3)));
    assert_eq!(s.len(), 4);
}

#[test]
fn required_literals_examples() {
    let p = pat(r"^[aA]uthentication (?:failure|error|failed) for <F-USER>.*</F-USER> from <HOST>");
    let lits = p.required_literals().unwrap();
    assert!(lits.iter().all(|l| l.contains("uthentication ")), "{lits:?}");
    assert_eq!(pat(r"^.*$").required_literals(), None);
    // backtracking patterns get sound sets too
    let p = pat(r"^(?!x)Failed (\w+) \1 from <HOST>");
    assert!(p.required_literals().unwrap().iter().any(|l| l.contains("Failed ")));
}

#[test]
fn bad_input_never_panics() {
    for s in [
        "(",
        ")",
        "[",
        "\\",
        "(?",
        "(?P",
        "(?P<",
        "(?P<>x)",
        "(?P=",
        "(?(",
        "(?<",
        "(?<x",
        "x{99999999999}",
        "[z-a]",
        "(?i",
        "(?-",
        "\\x",
        "\\u12",
        "\\U0011FFFF",
        "\\ud800",
        "<F-",
        "</F-X>",
        "<F-X>(",
        "a**",
        "(?<=a+)",
        "(?#",
        "[\\",
        "\u{0}",
        "é{2,1}",
        "(?x)#",
        "(?P<é>x)",
    ] {
        let _ = Pattern::compile(&Spanned::new(s), PatternKind::Failregex, &CompileOptions::default());
        let _ = Pattern::compile(&Spanned::new(s), PatternKind::Prefregex, &CompileOptions::default());
    }
}

#[test]
fn turkish_i_folds_like_python() {
    let p = pat("(?i)^admin$");
    assert!(m(&p, "ADMİN"));
    assert!(m(&p, "admın"));
    let p = pat("(?i)^[a-z]+$");
    assert!(m(&p, "İı"));
    let p = pat("(?i)^[^a-z]$");
    assert!(!m(&p, "İ"));
}

#[test]
fn nullable_repeat_capture_warns() {
    assert_eq!(pat("(a*)*").warnings()[0].code, "P011");
    assert!(pat("(a+)*").warnings().is_empty());
    assert!(pat("(?:a*)*").warnings().is_empty());
}

/// The segment chain must give exactly the full engine's captures.
/// Every group's span in the `regex` crate's own captures (the reference
/// the fast paths are compared with).
fn full_engine_groups(full: &regex::Regex, hay: &str) -> Option<Vec<Option<(usize, usize)>>> {
    full.captures(hay).map(|c| (0..c.len()).map(|i| c.get(i).map(|m| (m.start(), m.end()))).collect())
}

/// Each of `pats` runs on the linear engine and captures on every one of
/// `hays` exactly the group spans of the `regex` crate's own captures.
fn linear_captures_equal_full_engine(pats: &[&str], hays: &[&str]) {
    for src in pats {
        let p = pat(src);
        assert_eq!(p.engine(), Engine::Linear, "{src}");
        let full = regex::Regex::new(p.translated()).unwrap();
        for hay in hays {
            let ours = p.captures(hay).unwrap();
            let theirs = full_engine_groups(&full, hay);
            assert_eq!(ours.map(|c| c.groups), theirs, "{src:?} on {hay:?}");
        }
    }
}

#[test]
fn segment_chain_equals_full_engine_on_random_patterns() {
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let atoms = [
        "a", "b", "ab", "a*", "b+", "a?", "[ab]", r"\w+", r"\s*", r"\S+", ".", ".*", ".*?", "a|b", "ab|a", "(?:a|ab)",
        "$", "^", r"\b", "x{0,2}", "(?:ab)*", "(?:a*)+?",
    ];
    let hays = ["", "a", "ab", "aab", "abab", "ba", "a b", "ab ab x", "xx ab", "a\n", "b a\nab", "aaaa", "bbb aa"];
    let mut checked = 0;
    for _ in 0..800 {
        let k = 2 + rnd(4);
        let mut src = String::new();
        for _ in 0..k {
            let a = atoms[rnd(atoms.len())];
            match rnd(3) {
                0 => src.push_str(&format!("(?:{a})")),
                1 => src.push_str(&format!("({a})")),
                _ => src.push_str(&format!("(x?({a})|{})", atoms[rnd(atoms.len())])),
            }
        }
        // failregex: MULTILINE, so `$` is `(?m:$)` and the reference below is exact
        let Ok(p) = Pattern::compile(&Spanned::new(src.as_str()), PatternKind::Failregex, &CompileOptions::default())
        else {
            continue;
        };
        if p.engine() != Engine::Linear {
            continue;
        }
        let full = regex::Regex::new(p.translated()).unwrap();
        for hay in hays {
            let ours = p.captures(hay).unwrap();
            let theirs = full_engine_groups(&full, hay);
            assert_eq!(ours.map(|c| c.groups), theirs, "{src:?} on {hay:?}");
            checked += 1;
        }
    }
    assert!(checked > 3_000, "{checked}");
}

/// Literal text in nested groups (`Fast::Fixed`), also where the chain
/// fails and the full engine decides: same captures as the full engine.
#[test]
fn fixed_groups_equal_full_engine() {
    let pats = [
        r"^(?P<a>Rec (?P<b>dis))(?: from (\S+|x))? (\d{1,3})",
        r"\A(?P<a>Rec (?P<b>dis)) (a|ab)(c)",
        r"^(?:x(y)z)(a|ab)(c|bcd)$",
        r"^(a|ab)(?P<n>(?:b)(c))(d)?",
        r"^(?P<x>(?P<y>)ab)(.*) (\d+)$",
        r"\Aab(c)|b(c)",
        r"^((a)|ab)+(c)",
    ];
    let hays = [
        "Rec dis 12",
        "Rec dis from 1.2 34",
        "Rec dis from x 5",
        "Rec dix 1",
        "Rec dis abc",
        "Rec dis ac",
        "Rec dis abx",
        "xyzabc",
        "xyzabcd",
        "xyzac",
        "abbc",
        "abcd",
        "abbcd",
        "abc",
        "ab 12",
        "ab x 3\n",
        "bc",
        "xbc",
        "aabc",
        "",
        "Rec dis abc\n",
    ];
    for src in pats {
        for kind in [PatternKind::Prefregex, PatternKind::Failregex] {
            let p = compile(src, kind);
            assert_eq!(p.engine(), Engine::Linear, "{src}");
            let full = regex::Regex::new(p.translated()).unwrap();
            for hay in hays {
                let ours = p.captures(hay).unwrap().map(|c| c.groups);
                let theirs = full_engine_groups(&full, hay);
                assert_eq!(ours, theirs, "{src:?} ({kind:?}) on {hay:?}");
            }
        }
    }
}

#[test]
fn failed_chain_without_needed_text_equals_full_engine() {
    // the chain fails at the start; the pattern matches elsewhere, by
    // another parse, or not at all (with or without its literal text)
    let pats = [
        r"Received (disconnect) from (\S+)(?: port \d+)?:\s*3: .*: Auth fail",
        r"^Received (disconnect) from (\S+)(?: (?:port \d+|on \S+)){0,2}:\s*3: .*: Auth fail\s*$",
        r"(a+)b: x(y|z)",
        r"(\d+)\.(\d+) ok",
    ];
    let hays = [
        "Received disconnect from 1.2.3.4 port 22:11: Bye",
        "Received disconnect from 1.2.3.4 port 22:3: x: Auth fail",
        "Received disconnect from a:3: Auth fail",
        "Received disconnect from a:3: : Auth fail",
        "xx Received disconnect from a b:3: y: Auth fail",
        "Received disconnect from a: Auth fail Received disconnect from b:3: c: Auth fail",
        "aab: xz",
        "ab: aab: xy",
        "aab: x",
        "1.2 no 3.4 ok",
        "1.2.3 ok",
        "1.2 ok",
        "",
    ];
    linear_captures_equal_full_engine(&pats, &hays);
}

#[test]
fn pattern_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Pattern>();
    check::<Scratch>();
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!("{}a{}", "(".repeat(100_000), ")".repeat(100_000));
    assert_eq!(code(&deep), "P009");
    let deep = format!("{}a{}", "(?:".repeat(150), ")".repeat(150));
    let _ = Pattern::compile(&Spanned::new(deep), PatternKind::Failregex, &CompileOptions::default());
}

/// Random garbage from regex/tag syntax: compile, match, capture — never panic.
#[test]
fn random_input_never_panics() {
    let pieces = [
        "(",
        ")",
        "[",
        "]",
        "^",
        "$",
        "\\",
        "\\d",
        "\\w",
        "\\s",
        "\\b",
        "\\Z",
        "\\1",
        "\\x4",
        "\\u12",
        "{",
        "}",
        "{1,2}",
        "{,",
        "*",
        "+",
        "?",
        "|",
        ".",
        "-",
        "a",
        "é",
        "<HOST>",
        "<F-USER>",
        "</F-USER>",
        "<F-ID/>",
        "<SKIPLINES>",
        "(?i)",
        "(?P<n>",
        "(?P=n)",
        "(?=",
        "(?!",
        "(?<=",
        "(?<!",
        "(?(1)",
        "(?>",
        "(?#",
        "(?x)",
        "(?s:",
        "\n",
        " ",
        "#",
        "&&",
        "~~",
        "\\N{",
        "(?:",
    ];
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut rnd = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let opts = CompileOptions { backtrack_limit: 10_000 };
    let mut ok = 0;
    for _ in 0..3000 {
        let n = 1 + rnd(8);
        let s: String = (0..n).map(|_| pieces[rnd(pieces.len())]).collect();
        for kind in [PatternKind::Failregex, PatternKind::Prefregex] {
            if let Ok(p) = Pattern::compile(&Spanned::new(s.as_str()), kind, &opts) {
                ok += 1;
                for hay in ["", "a", "a\nb\n", "é 1.2.3.4 x", "user=x from ::1\n"] {
                    let _ = p.is_match(hay);
                    let _ = p.captures(hay);
                }
                let _ = p.required_literals();
            }
        }
    }
    assert!(ok > 100, "{ok}");
}

#[test]
fn first_newline_matches_memchr() {
    let mut hays: Vec<Vec<u8>> = vec![Vec::new(), b"\n".to_vec(), b"abc".to_vec()];
    for len in 0..40 {
        for at in 0..=len {
            let mut h: Vec<u8> = (0..len).map(|i| b"ab\x8a\xff\x0b\x09 "[i % 7]).collect();
            if at < len {
                h[at] = b'\n';
                if at + 3 < len {
                    h[at + 3] = b'\n';
                }
            }
            hays.push(h);
        }
    }
    for h in &hays {
        assert_eq!(first_newline(h), memchr::memchr(b'\n', h).unwrap_or(h.len()), "{h:?}");
    }
}

#[test]
fn all_ascii_matches_std() {
    // every length up to 40, one non-ASCII byte (of several kinds) at every
    // place, or none
    for len in 0..40usize {
        for at in 0..=len {
            for bad in [0x80u8, 0xff, 0xc3, 0x7f] {
                let mut h: Vec<u8> = (0..len).map(|i| b"ab\n\x0b\x09 ~"[i % 7]).collect();
                if at < len {
                    h[at] = bad;
                }
                assert_eq!(all_ascii(&h), h.is_ascii(), "{h:?}");
            }
        }
    }
}

#[test]
fn exact_dollar_still_used_for_inner_newlines() {
    // non-MULTILINE `$`: end, or before a final newline only
    let p = compile("^a <F-USER>.+</F-USER>$", PatternKind::Prefregex);
    assert_eq!(group(&p, "a b\n", "user"), Some("b"));
    assert_eq!(group(&p, "a b", "user"), Some("b"));
    assert_eq!(p.captures("a b\nc\n").unwrap(), None);
    assert_eq!(p.captures("a b\nc").unwrap(), None);
}

/// `(?:X)?` skipped when the text does not start with one of X's literal
/// prefixes: the same captures as the full engine.
#[test]
fn optional_with_literal_prefix_guard_equals_full_engine() {
    let pats = [
        r"^(Connection closed|Disconnected) (?:by|from)(?: (?:invalid|authenticating) user (\S+|.*?))? (\S+) port$",
        r"^x(?: (?:in|au(?:th|)) (\S+))?(\s*)(\S*)$",
        r"^x(?:ab(c|d)(e))?(.*)$",
        r"^x(?:é(a))?(.*)$",
        r"^x(?:(?:|a)b(c))?(.*)$",
    ];
    let hays = [
        "Connection closed by 1.2.3.4 port",
        "Connection closed by invalid user bob 1.2.3.4 port",
        "Connection closed by invalid user  1.2.3.4 port",
        "Connection closed by authenticating user x y 1.2.3.4 port",
        "Disconnected from invalid use 1.2.3.4 port",
        "Disconnected from invalid user",
        "Disconnected from authenticating",
        "x in a",
        "x inb",
        "x auth q",
        "x au q",
        "x a",
        "x",
        "xabce",
        "xabc",
        "xabde z",
        "xab",
        "xéa",
        "xé",
        "xbc",
        "xabc",
        "xac",
        "xb",
    ];
    linear_captures_equal_full_engine(&pats, &hays);
}

/// Chains with pieces walked step by step (sshd's) and a class run whose
/// text is searched in it (`([^:]+) from `): the same captures as the full
/// engine, also where the chain fails and the full engine decides.
#[test]
fn step_pieces_in_chains_equal_full_engine() {
    let pats = [
        r"^(?P<ip4>(?:\d{1,3}\.){3}\d{1,3})(.*)$",
        r"^(?:(?:error|fatal): (?:PAM: )?)?(?P<x>\S+) (\S*)",
        r"^(?P<nofail>pam_[a-z]+\(sshd:auth\):\s+authentication failure;)(?:\s+(?:(?:logname|e?uid|tty)=\S*)){0,4}\s+ruser=(?P<u>\S*)\s+rhost=(\S+)",
        r"^(?P<n>(?P<m>(Connection (?:closed|reset)|Disconnected))) (?:by|from) (.*)$",
        r"^[iI](?:llegal|nvalid) user (.*?) from (\S+)$",
        r"^(?P<a>(?P<b>Accepted \w+)) for (\S+)",
        r"^Failed (\S+) for ([^:]+) from (\S+)",
        r"^x([^:]+?) from (\S*)",
        r"^(?:\[?(?:(?:::f{4,6}:)?(?P<ip4>(?:\d{1,3}\.){3}\d{1,3})|(?P<ip6>[0-9a-f:]+))\]?)(.*)",
        r"^(x\d{1,3})(\d)",
        r"^(?:a+b)?a+c(.)",
    ];
    let hays = [
        "1.2.3.4",
        "1.2.3.4 x",
        "1234.1.1.1",
        "1.2.3.4567",
        "1.2.3.",
        "1.2.3.4\n5",
        "1.2.3.4é",
        "error: PAM: bob x",
        "fatal: x",
        "errorx y",
        "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=1.2.3.4",
        "pam_unix(sshd:auth): authentication failure; uid=0 uid=0 uid=0 uid=0 uid=0 ruser= rhost=1.2.3.4",
        "pam_unix(sshd:auth): authentication failure; ruser=é rhost=h",
        "pam_unix(sshd:auth): authentication failure; tty=é ruser=x rhost=h",
        "pam_unix(sshd:auth):authentication failure; ruser= rhost=h",
        "Connection closed by 1.2.3.4 port 22",
        "Connection reset from x",
        "Disconnected from é",
        "Connection close by x",
        "Illegal user bob from 1.2.3.4",
        "invalid user  from  from x",
        "Accepted publickey for bob",
        "Accepted é for bob",
        "Failed password for bob from 1.2.3.4",
        "Failed password for bob from x from 1.2.3.4",
        "Failed password for bob: from 1.2.3.4",
        "Failed password for from 1.2.3.4",
        "Failed password for é from x",
        "Failed password for bob from\nx from y",
        "xa from b from c",
        "x from b",
        "x: from b",
        "[::ffff:1.2.3.4] x",
        "::fff:1.2.3.4",
        "[1.2.3.4]",
        "x1234",
        "x123",
        "x12",
        "aabaacd",
        "aacd",
        "abc",
        "",
    ];
    linear_captures_equal_full_engine(&pats, &hays);
}

/// fail2ban's sshd prefregex (its `__prefix_line` taken by the prefix
/// scanner where it decides, by the automaton elsewhere) captures exactly
/// the full engine's groups on many lines, with and without the runner's
/// final newline; the scanner takes part.
#[test]
fn prefix_line_prefregex_equals_full_engine() {
    let mlfid = super::prefix::template("sshd");
    let src = format!("^<F-MLFID>{mlfid}</F-MLFID>(?:(?:error|fatal): (?:PAM: )?)?<F-CONTENT>.+</F-CONTENT>$");
    let p = compile(&src, PatternKind::Prefregex);
    assert_eq!(p.engine(), Engine::Linear);
    let segs = p.segments().unwrap();
    assert!(format!("{:?}", p.seg_src).contains("Prefix"), "{:?}", p.seg_src);
    let full = regex::Regex::new(p.translated()).unwrap();
    let mut scanned = 0;
    let mut s = p.new_scratch();
    for text in super::prefix::tests::texts() {
        for hay in [text.clone(), format!("{text}\n"), format!("{text} error: PAM: x\n"), format!("{text}x\u{e9}\n")] {
            // (inner newlines: Python's `$` is not the reference's `(?m:$)`
            // there, the exact backtracking variant decides)
            if first_newline(hay.as_bytes()) + 1 < hay.len() {
                continue;
            }
            if hay.is_ascii() {
                let b = hay.as_bytes();
                scanned += usize::from(super::prefix::scan(b, 0, &super::prefix::Daemon::new(b"sshd")).is_some());
            }
            let ours = p.captures_with(&hay, &mut s).unwrap().then(|| (0..s.len()).map(|i| s.get(i)).collect());
            assert_eq!(ours, full_engine_groups(&full, &hay), "{hay:?}");
        }
    }
    let _ = segs;
    assert!(scanned > 5_000, "{scanned}");
}

/// sshd's failregexes that end with the `port`/`on`/`[preauth]` tail (taken
/// by the tail scanner) capture exactly the full engine's groups.
#[test]
fn port_tail_chains_equal_full_engine() {
    let pats = [
        r"^[iI](?:llegal|nvalid) user <F-USER>.*?</F-USER> from <HOST>(?: (?:port \d+|on \S+|\[preauth\])){0,3}\s*$",
        r"^User <F-USER>\S+|.*?</F-USER> from <HOST> not allowed because listed in DenyUsers(?: (?:port \d+|on \S+|\[preauth\])){0,3}\s*$",
        r"^<F-NOFAIL><F-MLFFORGET>(Connection (?:closed|reset)|Disconnected)</F-MLFFORGET></F-NOFAIL> (?:by|from)(?: (?:invalid|authenticating) user <F-USER>\S+|.*?</F-USER>)? <HOST>(?:(?: (?:port \d+|on \S+|\[preauth\])){0,3}\s*|\s*)$",
        r"^Disconnecting: Too many authentication failures(?: for <F-USER>\S+|.*?</F-USER>)?(?: (?:port \d+|on \S+|\[preauth\])){0,3}\s*$",
    ];
    let heads = [
        "Invalid user bob from 1.2.3.4",
        "User bob from 1.2.3.4 not allowed because listed in DenyUsers",
        "User a b from 1.2.3.4 not allowed because listed in DenyUsers",
        "Connection closed by invalid user bob 1.2.3.4",
        "Disconnected from authenticating user root 2001:db8::1",
        "Connection reset by 1.2.3.4",
        "Disconnecting: Too many authentication failures for root",
        "Disconnecting: Too many authentication failures",
    ];
    let tails: Vec<String> = super::tails::tests::texts().into_iter().take(3_000).collect();
    let mut used = 0;
    for src in pats {
        let p = pat(src);
        assert_eq!(p.engine(), Engine::Linear, "{src}");
        used += usize::from(format!("{:?}", p.seg_src).contains("Tail"));
        let full = regex::Regex::new(p.translated()).unwrap();
        let mut s = p.new_scratch();
        for h in heads {
            for t in &tails {
                for hay in [format!("{h}{t}"), format!("{h}{t}\n")] {
                    if first_newline(hay.as_bytes()) + 1 < hay.len() {
                        continue;
                    }
                    let ours = p.captures_with(&hay, &mut s).unwrap().then(|| (0..s.len()).map(|i| s.get(i)).collect());
                    assert_eq!(ours, full_engine_groups(&full, &hay), "{src:?} on {hay:?}");
                }
            }
        }
    }
    assert_eq!(used, pats.len());
}

/// One scratch across lines that alternately match, miss for want of the
/// text every match holds (looked for first after a miss), and miss
/// otherwise: the captures equal the full engine's on each.
#[test]
fn needed_text_first_after_a_miss_equals_full_engine() {
    let src = r"^Received disconnect from <HOST>(?: (?:port \d+|on \S+)){0,2}:\s*3: .*: Auth fail(?: (?:port \d+|on \S+|\[preauth\])){0,3}\s*$";
    let p = pat(src);
    let full = regex::Regex::new(p.translated()).unwrap();
    let hays = [
        "Received disconnect from 1.2.3.4 port 22:11: Bye Bye [preauth]\n",
        "Received disconnect from 1.2.3.4 port 22:3: x: Auth fail [preauth]\n",
        "Received disconnect from 1.2.3.4 port 22:11: Bye Bye [preauth]\n",
        "Received disconnect from 1.2.3.4 port 22:11: Bye Bye [preauth]\n",
        "Received disconnect from 1.2.3.4 port 22:3: x: Auth fail\n",
        "Received disconnect from 1.2.3.4 port 22:4: x: Auth fail\n",
        "Received disconnect from 1.2.3.4 port 22:3: x: Auth fail x\n",
        "Received disconnect from 1.2.3.4 port 22:3: x: Auth fail\n",
        "Received disconnect from 1.2.3.4:3: : Auth fail\n",
        "x Received disconnect from 1.2.3.4:3: : Auth fail\n",
        "Received disconnect from 1.2.3.4 port 22:11: Auth fail\n",
    ];
    let mut s = p.new_scratch();
    for round in 0..3 {
        for (i, hay) in hays.iter().enumerate() {
            let hay = hays[(i * (round + 1)) % hays.len()].to_string() + &hay[..0];
            let ours = p.captures_with(&hay, &mut s).unwrap().then(|| (0..s.len()).map(|i| s.get(i)).collect());
            assert_eq!(ours, full_engine_groups(&full, &hay), "{hay:?}");
        }
    }
}

/// The Unicode engine of a linear pattern is compiled when a search first
/// needs it (a non-ASCII haystack the segment chain does not decide), and
/// then gives what an eagerly compiled engine gives.
#[test]
fn unicode_engine_is_compiled_on_first_use() {
    let p = pat(r"^user (?P<u>\w+) from (\S+) port \d+$");
    assert_eq!(p.engine(), Engine::Linear);
    assert!(!p.uni_compiled());
    assert_eq!(group(&p, "user alice from 10.0.0.1 port 22", "u"), Some("alice"));
    assert!(!m(&p, "user alice from 10.0.0.1"));
    assert!(!p.uni_compiled(), "ASCII lines need no Unicode engine");
    let full = regex::Regex::new(p.translated()).unwrap();
    for hay in ["user jürgen from ::1 port 2", "user ü from x port 9", "user ü from  port 9", "usér a from b port 1"]
    {
        let got = p.captures(hay).unwrap().map(|c| c.groups);
        assert_eq!(got, full_engine_groups(&full, hay), "{hay:?}");
    }
    assert!(p.uni_compiled());
}

/// A pattern whose Unicode engine exceeds the size limit still loads (its
/// syntax is valid) and serves ASCII lines; a line that needs the Unicode
/// engine is a budget failure, counted by the runner, never a silent miss.
#[test]
fn unicode_engine_over_the_size_limit_is_a_budget_failure() {
    let p = pat(r"^(?:\w{100}){60}x$");
    let ascii = format!("{}x", "a".repeat(6000));
    assert_eq!(p.is_match(&ascii), Ok(true));
    assert_eq!(p.is_match(&format!("{}x", "a".repeat(5999))), Ok(false));
    let uni = format!("{}x", "ä".repeat(6000));
    assert_eq!(p.is_match(&uni), Err(BudgetExceeded));
    assert_eq!(p.captures(&uni), Err(BudgetExceeded));
}

/// `reset_spans` leaves exactly `n` spans, every one None, whatever the
/// vector held (the same as clearing and resizing).
#[test]
fn reset_spans_equals_clear_and_resize() {
    let some = Some((3, 7));
    for len in 0..6 {
        for n in 0..6 {
            let mut ours: Vec<Option<(usize, usize)>> = vec![some; len];
            let mut theirs = ours.clone();
            reset_spans(&mut ours, n);
            theirs.clear();
            theirs.resize(n, None);
            assert_eq!(ours, theirs, "{len} -> {n}");
        }
    }
}

/// One scratch over lines where a group takes part, then does not: the
/// spans the chain set for a line are gone on the next (the in-place reset).
#[test]
fn scratch_reuse_clears_the_last_lines_groups() {
    let p = pat(r"^a (?P<x>b+ )?(?:(?P<y>c) )?d(?P<z>e)?$");
    let mut s = p.new_scratch();
    for (hay, want) in [
        ("a bb c de", [Some("bb "), Some("c"), Some("e")]),
        ("a d", [None, None, None]),
        ("a b d", [Some("b "), None, None]),
        ("a c de", [None, Some("c"), Some("e")]),
        ("a d", [None, None, None]),
    ] {
        assert_eq!(p.captures_with(hay, &mut s), Ok(true), "{hay:?}");
        let got: Vec<Option<&str>> = (1..=3).map(|g| s.get(g).map(|(a, b)| &hay[a..b])).collect();
        assert_eq!(got, want, "{hay:?}");
        // the same as a fresh scratch
        let fresh = p.captures(hay).unwrap().unwrap();
        assert_eq!(fresh.groups[1..].to_vec(), (1..=3).map(|g| s.get(g)).collect::<Vec<_>>(), "{hay:?}");
    }
}

/// [`Scratch::span_slice`] (the spans read as one vector) gives what
/// [`Scratch::get`] gives, group by group, for every way a scratch is
/// filled (segment chain, remapped spans, the regex engines' locations).
#[test]
fn span_slice_agrees_with_get() {
    let cases: &[(&str, &[&str])] = &[
        (r"^(?P<user>\w+) from <HOST>$", &["bob from 1.2.3.4", "bob from ::1", "nope"]),
        (
            r"^Failed \S+ for (?:invalid user )?<F-USER>\S+</F-USER> from <HOST>(?: port \d+)?(?: ssh\d*)?\s*$",
            &["Failed password for root from 1.2.3.4 port 22 ssh2", "Failed password for invalid user x from ::1"],
        ),
        (r"^(?:(?P<a>x)|y)(?P<b>z)?$", &["x", "yz", "xz", "q"]),
        // a conditional: split into cases, the spans remapped
        (r"^(<)?(?P<w>\w+)(?(1)>) (?P<n>\d+)$", &["<ab> 1", "ab 2", "<ab 3"]),
        (r"^(?P<q>\[)?(?P<h>[a-z]+)(?(q)\]|:)(?P<p>\d*)$", &["[ab]12", "ab:3", "[ab:"]),
        (r"(x)(y)(z)", &["xyz", "axyzb"]),
        (r"^(?P<w>\w+)(?=!)", &["hi!", "hi"]),
        (r"^(?P<u>\w+)\s+(?P=u)$", &["ab ab", "ab ac"]),
        (r"^é(?P<v>\w+)$", &["éabc", "ébç"]),
    ];
    let mut seen = Vec::new();
    for (src, hays) in cases {
        let p = pat(src);
        let mut s = p.new_scratch();
        for hay in *hays {
            if !p.captures_with(hay, &mut s).unwrap() {
                continue;
            }
            seen.push(s.src);
            match s.span_slice() {
                Some(sl) => {
                    for i in 0..s.len() + 3 {
                        assert_eq!(sl.get(i).copied().flatten(), s.get(i), "{src:?} on {hay:?}, group {i}");
                    }
                }
                None => assert!(matches!(s.src, ScratchSrc::Locs | ScratchSrc::BLocs), "{src:?} on {hay:?}"),
            }
        }
    }
    assert!(seen.contains(&ScratchSrc::Spans) && seen.contains(&ScratchSrc::Mapped), "{seen:?}");
}
