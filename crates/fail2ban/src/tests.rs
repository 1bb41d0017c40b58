use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "stadtwache-f2b-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }

    fn loader(&self) -> FilterLoader {
        FilterLoader::new(&self.0)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn no_opts() -> BTreeMap<String, String> {
    BTreeMap::new()
}

fn opts(s: &str) -> BTreeMap<String, String> {
    parse_filter_arg(&format!("x[{s}]")).unwrap().1
}

fn texts(v: &[Spanned]) -> Vec<&str> {
    v.iter().map(|s| s.text.as_str()).collect()
}

const COMMON: &str = "\
[INCLUDES]
after = base.local

[DEFAULT]
logtype = file
_daemon = \\S*
__pid_re = (?:\\[\\d+\\])
__prefix_line = <lt_<logtype>/__prefix_line>
datepattern = <lt_<logtype>/datepattern>

[lt_file]
__prefix_line = \\s*<_daemon><__pid_re>?:\\s+
datepattern = {^LN-BEG}

[lt_journal]
__prefix_line = \\s*
datepattern = %(lt_file/datepattern)s
";

const DEMO: &str = "\
# a demo filter
[INCLUDES]
before = base.conf

[DEFAULT]
_daemon = demo

[Definition]
prefregex = ^%(__prefix_line)s<F-CONTENT>.+</F-CONTENT>$

cmn = ^Auth failure for <F-USER>\\S+</F-USER> from <HOST>$
      # a comment inside the list
      ^Bad password from <HOST> ; inline comment

mdre-normal =
mdre-aggressive = ^Probe from <HOST>$
failregex = %(cmn)s
            <mdre-<mode>>

ignoreregex = ^ok from <HOST>

mode = normal

[Init]
maxlines = 1
";

#[test]
fn loads_includes_interpolation_tags_and_modes() {
    let t = TempDir::new();
    let base = t.write("base.conf", COMMON);
    let demo = t.write("demo.conf", DEMO);
    let f = t.loader().load("demo", &no_opts()).unwrap();
    assert!(f.warnings.is_empty(), "{:?}", f.warnings);
    assert_eq!(f.files, vec![base.clone(), demo.clone()]);
    assert_eq!(f.spec.name, "demo");
    assert_eq!(f.spec.prefregex.as_ref().unwrap().text, r"^\s*demo(?:\[\d+\])?:\s+<F-CONTENT>.+</F-CONTENT>$");
    assert_eq!(
        texts(&f.spec.failregex),
        vec![r"^Auth failure for <F-USER>\S+</F-USER> from <HOST>$", "^Bad password from <HOST>"]
    );
    assert_eq!(texts(&f.spec.ignoreregex), vec!["^ok from <HOST>"]);
    assert_eq!(f.spec.datepattern.as_ref().unwrap().text, "{^LN-BEG}");
    assert_eq!(f.spec.maxlines, 1);
    // Each regex points at the line where its text was written.
    assert_eq!(f.spec.failregex[0].at, at(&demo, 11));
    assert_eq!(f.spec.failregex[1].at, at(&demo, 13));
    assert_eq!(f.spec.prefregex.as_ref().unwrap().at, at(&demo, 9));
    assert_eq!(f.spec.datepattern.as_ref().unwrap().at, at(&base, 13));

    let g = t.loader().load("demo", &opts("mode=aggressive, maxlines=3, logtype=journal")).unwrap();
    assert_eq!(g.spec.name, "demo[logtype=journal, maxlines=3, mode=aggressive]");
    assert_eq!(g.spec.failregex.len(), 3);
    assert_eq!(g.spec.failregex[2].text, "^Probe from <HOST>$");
    assert_eq!(g.spec.failregex[2].at, at(&demo, 16));
    assert_eq!(g.spec.maxlines, 3);
    assert_eq!(g.spec.prefregex.as_ref().unwrap().text, r"^\s*<F-CONTENT>.+</F-CONTENT>$");
    assert_eq!(g.spec.datepattern.as_ref().unwrap().text, "{^LN-BEG}");

    let h = t.loader().load("demo[mode=aggressive]", &opts("maxlines=2")).unwrap();
    assert_eq!(h.spec.failregex.len(), 3);
    assert_eq!(h.spec.maxlines, 2);
    let h = t.loader().load_arg("demo[mode=aggressive]").unwrap();
    assert_eq!(h.spec.name, "demo[mode=aggressive]");

    let variants = t.loader().declared_variants("demo");
    let names: Vec<String> = variants.iter().map(|o| format_filter_arg("demo", o)).collect();
    assert_eq!(names, vec!["demo", "demo[logtype=journal]", "demo[mode=aggressive]"]);
}

fn at(file: &Path, line: u32) -> stadtwache_core::SourceRef {
    stadtwache_core::SourceRef { file: Some(file.to_path_buf()), line }
}

#[test]
fn local_overrides_and_known_values() {
    let t = TempDir::new();
    t.write("base.conf", COMMON);
    t.write("demo.conf", DEMO);
    let local = t.write(
        "demo.local",
        "[Definition]\nfailregex = %(known/failregex)s\n            ^Extra <HOST>$\nignoreregex =\n",
    );
    t.write("base.local", "[lt_file]\n__prefix_line = X\n");
    t.write("demo.d/10-more.conf", "[Definition]\ncmn = ^Only <HOST>$\n");
    let f = t.loader().load("demo", &no_opts()).unwrap();
    assert_eq!(texts(&f.spec.failregex), vec!["^Only <HOST>$", "^Extra <HOST>$"]);
    assert_eq!(f.spec.failregex[1].at, at(&local, 3));
    assert!(f.spec.ignoreregex.is_empty());
    assert_eq!(f.spec.prefregex.as_ref().unwrap().text, "^X<F-CONTENT>.+</F-CONTENT>$");
    assert!(f.files.iter().any(|p| p.ends_with("demo.d/10-more.conf")));
}

#[test]
fn default_section_refs_name_and_percent_escape() {
    let t = TempDir::new();
    t.write(
        "x.conf",
        "[DEFAULT]\na = A\n[Definition]\nfailregex = %(default/a)s %(__name__)s %(Definition/b)s <HOST>\n\
         b = B\ndatepattern = ^%%Y-%%m-%%d\n",
    );
    let f = t.loader().load("x", &no_opts());
    // `%(Definition/b)s` has upper case, which fail2ban cannot resolve either.
    let d = f.unwrap_err();
    assert_eq!(d[0].code, codes::INTERP_MISSING);
    t.write(
        "y.conf",
        "[DEFAULT]\na = A\n[Definition]\nfailregex = %(default/a)s %(__name__)s <HOST>\ndatepattern = ^%%Y-%%m-%%d\n",
    );
    let f = t.loader().load("y", &no_opts()).unwrap();
    assert_eq!(f.spec.failregex[0].text, "A Definition <HOST>");
    assert_eq!(f.spec.datepattern.unwrap().text, "^%Y-%m-%d");
}

#[test]
fn single_file_and_path_names() {
    let t = TempDir::new();
    let p = t.write("one.conf", "[Definition]\nfailregex = ^x <HOST>\n");
    let f = FilterLoader::new(&p).load("", &no_opts()).unwrap();
    assert_eq!(f.spec.failregex.len(), 1);
    assert_eq!(FilterLoader::new(&p).filter_names(), vec!["one"]);
    let g = FilterLoader::default().load(p.to_str().unwrap(), &no_opts()).unwrap();
    assert_eq!(g.spec.name, "one");
    assert_eq!(FilterLoader::new(&p).check_all().len(), 1);
}

#[test]
fn args_override_definition_and_options_substitute() {
    let t = TempDir::new();
    t.write(
        "x.conf",
        "[Definition]\nuser = \\S+\nfailregex = ^<user> from <HOST>\nmaxlines = 1\n\
         datepattern = ^%%H\njournalmatch = _COMM=x\n   _COMM=\"y z\"\n",
    );
    let f = t.loader().load("x", &opts(r"user=root, maxlines=2, datepattern=^%H:%M")).unwrap();
    assert_eq!(f.spec.failregex[0].text, "^root from <HOST>");
    assert_eq!(f.spec.failregex[0].at.line, 3);
    assert_eq!(f.spec.maxlines, 2);
    assert_eq!(f.spec.datepattern.unwrap().text, "^%H:%M");
    assert_eq!(f.journalmatch.as_deref(), Some("_COMM=x\n_COMM=\"y z\""));
    t.write("m.conf", "[Definition]\nfailregex = ^x <HOST>\ndatepattern = ^%%Y\n              {^LN-BEG}\n\n");
    let m = t.loader().load("m", &no_opts()).unwrap();
    assert_eq!(m.spec.datepattern.unwrap().text, "^%Y\n{^LN-BEG}");
    let g = t.loader().load("x", &opts("logtimezone=UTC")).unwrap();
    assert_eq!(g.spec.logtimezone.as_deref(), Some("UTC"));
}

/// Load a one-file filter and return all diagnostics (errors or warnings).
fn diags_of(conf: &str, arg: &str) -> Vec<Diagnostic> {
    let t = TempDir::new();
    t.write("f.conf", conf);
    match t.loader().load("f", &opts(arg)) {
        Ok(f) => f.warnings,
        Err(d) => d,
    }
}

fn code_scenarios() -> Vec<(&'static str, Vec<Diagnostic>)> {
    let ok = "failregex = ^x <HOST>\n";
    let mut v = vec![
        (codes::FILTER_NOT_FOUND, {
            let t = TempDir::new();
            t.loader().load("nope", &no_opts()).unwrap_err()
        }),
        (codes::FILE_UNREADABLE, {
            let t = TempDir::new();
            std::fs::write(t.0.join("f.conf"), b"[Definition]\nfailregex = \xff <HOST>\n").unwrap();
            t.loader().load("f", &no_opts()).unwrap_err()
        }),
        (codes::INI_SYNTAX, diags_of(&format!("[Definition]\n{ok}no delimiter here\n"), "")),
        (codes::INI_NO_SECTION, diags_of(&format!("{ok}[Definition]\n{ok}"), "")),
        (codes::INI_DUPLICATE_SECTION, diags_of(&format!("[Definition]\n{ok}[Definition]\na = 1\n"), "")),
        (codes::INI_DUPLICATE_OPTION, diags_of(&format!("[Definition]\n{ok}{ok}"), "")),
        (codes::INTERP_MISSING, diags_of("[Definition]\nfailregex = %(nope)s <HOST>\n", "")),
        (codes::INTERP_SYNTAX, diags_of("[Definition]\nfailregex = 100% <HOST>\n", "")),
        (codes::INTERP_DEPTH, diags_of("[Definition]\na = %(b)s\nb = %(a)s\nfailregex = %(a)s\n", "")),
        (codes::TAG_RECURSION, diags_of("[Definition]\na = <b>\nb = <a>\nfailregex = <a> <HOST>\n", "")),
        (codes::ARG_SYNTAX, vec![parse_filter_arg("f[mode").unwrap_err()]),
        (codes::TOO_LARGE, {
            // Each level doubles: 2^25 copies without the cap.
            let mut conf = String::from("[Definition]\n");
            for i in 0..24 {
                conf.push_str(&format!("a{i} = <a{}><a{}>\n", i + 1, i + 1));
            }
            conf.push_str("a24 = xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\nfailregex = <a0> <HOST>\n");
            diags_of(&conf, "")
        }),
        (codes::NO_DEFINITION, diags_of("[Init]\na = 1\n", "")),
        (codes::NO_FAILREGEX, diags_of("[Definition]\nfailregex =\n", "")),
        (codes::BAD_MAXLINES, diags_of(&format!("[Definition]\n{ok}maxlines = two\n"), "")),
        (codes::BAD_JOURNALMATCH, diags_of(&format!("[Definition]\n{ok}journalmatch = _COMM=\"x\n"), "")),
        (codes::IGNORECOMMAND_UNSUPPORTED, diags_of(&format!("[Definition]\n{ok}ignorecommand = /bin/true\n"), "")),
        (codes::USEDNS_IGNORED, diags_of(&format!("[Definition]\n{ok}usedns = yes\n"), "")),
        (codes::TAG_UNRESOLVED, diags_of("[Definition]\nfailregex = ^<mdre-<mode>> <HOST>\nmode = x\n", "")),
        (codes::CONDITIONAL_IGNORED, diags_of(&format!("[Definition]\n{ok}[Definition?logtype=journal]\na = 1\n"), "")),
        (codes::INCLUDE_MISSING, diags_of(&format!("[INCLUDES]\nbefore = missing.conf\n[Definition]\n{ok}"), "")),
        (codes::JAIL_OPTION_IGNORED, diags_of(&format!("[Definition]\n{ok}maxretry = 3\n"), "")),
    ];
    v.push((codes::TOO_LARGE, {
        // %(…)s doubling, 9 levels deep (within the depth limit), 4 KiB at the bottom.
        let mut conf = String::from("[Definition]\n");
        for i in 0..9 {
            conf.push_str(&format!("a{i} = %(a{})s%(a{})s%(a{})s%(a{})s\n", i + 1, i + 1, i + 1, i + 1));
        }
        conf.push_str(&format!("a9 = {}\nfailregex = %(a0)s <HOST>\n", "y".repeat(4096)));
        diags_of(&conf, "")
    }));
    v.push((codes::JAIL_OPTION_IGNORED, diags_of(&format!("[Definition]\n{ok}"), "findtime=10")));
    v
}

#[test]
fn every_code_is_produced_with_file_and_line() {
    let scenarios = code_scenarios();
    for (code, is_error, meaning) in codes::ALL {
        assert!(!meaning.is_empty());
        assert_eq!(code.starts_with("F0"), *is_error, "{code}: F0xx are errors, F1xx warnings");
        let (_, diags) = scenarios.iter().find(|(c, _)| c == code).unwrap_or_else(|| panic!("{code} untested"));
        let d = diags.iter().find(|d| d.code == *code).unwrap_or_else(|| panic!("{code} not produced: {diags:?}"));
        assert_eq!(d.is_error(), *is_error, "{d}");
        match *code {
            codes::FILTER_NOT_FOUND | codes::ARG_SYNTAX => {}
            codes::FILE_UNREADABLE | codes::NO_DEFINITION => {
                assert!(d.file.is_some(), "{code} lacks a file: {d}")
            }
            _ => assert!(d.file.is_some() && d.line > 0, "{code} lacks a position: {d}"),
        }
    }
    for (code, diags) in &scenarios {
        assert!(diags.iter().any(|d| d.code == *code), "{code} not produced: {diags:?}");
    }
    let mut all: Vec<&str> = codes::ALL.iter().map(|c| c.0).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), codes::ALL.len(), "duplicate codes");
}

#[test]
fn check_all_reports_every_problem() {
    let t = TempDir::new();
    t.write("good.conf", "[Definition]\nfailregex = ^x <HOST>\n");
    t.write("bad1.conf", "[Definition]\nfailregex = %(nope)s\n");
    t.write("bad2.conf", "[Definition]\nfailregex = ^x <HOST>\nfailregex = ^y <HOST>\nzzz\n");
    t.write("x-common.conf", "[DEFAULT]\na = 1\n");
    t.write("base.conf", COMMON);
    t.write("demo.conf", &DEMO.replace("failregex = %(cmn)s", "failregex = <undefined-tag> %(cmn)s"));
    let all = t.loader().check_all();
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"demo[mode=aggressive]"), "{names:?}");
    for n in &names {
        if !n.contains("common") && !n.starts_with("bad") && !n.starts_with("base") {
            assert!(t.loader().load(n, &no_opts()).is_ok(), "{n}");
        }
    }
    // The same warning is reported once, for the default variant only.
    let f103: Vec<&str> = all
        .iter()
        .filter(|(_, d)| d.iter().any(|d| d.code == codes::TAG_UNRESOLVED))
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(f103, vec!["demo"]);
    let get = |n: &str| all.iter().find(|(name, _)| name == n).map(|(_, d)| d.clone()).unwrap();
    assert!(get("good").is_empty());
    assert!(get("x-common").is_empty());
    assert_eq!(get("bad1")[0].code, codes::INTERP_MISSING);
    let b2: Vec<&str> = get("bad2").iter().map(|d| d.code).collect();
    assert_eq!(b2, vec![codes::INI_DUPLICATE_OPTION, codes::INI_SYNTAX]);
}

#[test]
fn bad_input_never_panics() {
    for conf in
        ["", "[", "[]", "=", " x", "[Definition]\n  cont\n", "[Definition]\nfailregex = %(", "\u{feff}[Definition]"]
    {
        let _ = diags_of(conf, "");
    }
}
