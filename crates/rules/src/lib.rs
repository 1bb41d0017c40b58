//! Stadtwache's native rule pack: one TOML file per service (`rules/*.toml`
//! at the repository root), each with `[[rule]]` entries that name their
//! patterns (fail2ban's regex dialect, compiled by `stadtwache-match`), the
//! key they count per, how they detect (`count`, `distinct`, `once`) and
//! samples that must and must not match.
//!
//! The format is documented in `docs/rules.md`.
//!
//! - [`load_dir`] / [`load_file`] read rule files from disk;
//! - [`load_embedded`] returns the pack compiled into the binary, so the CLI
//!   works with no rule files on disk.
//!
//! Every problem in every file is reported at once, each as a
//! [`Diagnostic`] with an `R0xx` code, the file and the line (pattern
//! compile errors keep the matcher's own `P`/`D` codes).

pub mod samples;
mod schema;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use stadtwache_core::{Diagnostic, Duration, SourceRef, Spanned};
use stadtwache_match::{CompileOptions, CompiledFilter, FilterSpec};
use toml::de::{DeTable, DeValue, ValueDeserializer};

use schema::{DefaultsDoc, DetectDoc, DurationDoc, RuleDoc, SampleDoc, SamplesDoc};

/// Diagnostic codes of this crate (documented in `docs/rules.md`).
pub mod codes {
    /// TOML syntax error.
    pub const SYNTAX: &str = "R001";
    /// Unknown key.
    pub const UNKNOWN_KEY: &str = "R002";
    /// Required key missing.
    pub const MISSING_KEY: &str = "R003";
    /// Value of the wrong type or shape.
    pub const BAD_VALUE: &str = "R004";
    /// The file could not be read.
    pub const IO: &str = "R005";
    /// No rule files in the directory.
    pub const NO_FILES: &str = "R006";
    /// Rule id used twice (in one file or across the pack).
    pub const DUPLICATE_ID: &str = "R010";
    /// Rule id not of the form `[a-z0-9][a-z0-9-]*`.
    pub const BAD_ID: &str = "R011";
    /// Invalid duration (`window`, `bantime`).
    pub const BAD_DURATION: &str = "R012";
    /// Invalid `detect` table.
    pub const BAD_DETECT: &str = "R013";
    /// `key` or `detect.field` names a field no pattern captures.
    pub const FIELD_NOT_CAPTURED: &str = "R014";
    /// A rule without patterns.
    pub const NO_PATTERNS: &str = "R015";
    /// `maxlines` out of range.
    pub const BAD_MAXLINES: &str = "R016";
    /// A sample without `line`, or otherwise malformed.
    pub const BAD_SAMPLE: &str = "R017";
    /// Unknown severity.
    pub const BAD_SEVERITY: &str = "R018";
    /// Empty or malformed string where text is required (`description`, patterns).
    pub const EMPTY_TEXT: &str = "R019";
}

/// Highest `maxlines` a rule may ask for.
pub const MAX_MAXLINES: i64 = 1000;

/// A loaded rule pack.
#[derive(Clone, Debug, Default)]
pub struct RulePack {
    pub rules: Vec<NativeRule>,
    /// Non-fatal diagnostics (pattern compile warnings, …).
    pub warnings: Vec<Diagnostic>,
}

impl RulePack {
    /// The rule with this id.
    pub fn get(&self, id: &str) -> Option<&NativeRule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// Rules that are enabled (`enabled = true`, the default).
    pub fn enabled(&self) -> impl Iterator<Item = &NativeRule> {
        self.rules.iter().filter(|r| r.enabled)
    }
}

/// How bad a rule's finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuleSeverity {
    Low,
    Medium,
    High,
    Critical,
}

impl RuleSeverity {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "low" => RuleSeverity::Low,
            "medium" => RuleSeverity::Medium,
            "high" => RuleSeverity::High,
            "critical" => RuleSeverity::Critical,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RuleSeverity::Low => "low",
            RuleSeverity::Medium => "medium",
            RuleSeverity::High => "high",
            RuleSeverity::Critical => "critical",
        }
    }
}

impl fmt::Display for RuleSeverity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a rule counts per.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyField {
    /// The source address (`<HOST>`/`<ADDR>`, fail2ban's failure id).
    Host,
    /// The captured user name (`<F-USER>`).
    User,
    /// Any other captured field (`<F-NAME>` → `name`).
    Field(String),
}

impl KeyField {
    fn parse(s: &str) -> Self {
        match s {
            "host" => KeyField::Host,
            "user" => KeyField::User,
            other => KeyField::Field(other.to_string()),
        }
    }

    /// The field name as written in the rule (`host`, `user`, …).
    pub fn name(&self) -> &str {
        match self {
            KeyField::Host => "host",
            KeyField::User => "user",
            KeyField::Field(f) => f,
        }
    }
}

/// How a rule turns matches into a finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DetectSpec {
    /// `threshold` matches for one key within `window`.
    Count { threshold: u32, window: Duration },
    /// `threshold` distinct values of `field` for one key within `window`
    /// (user enumeration, port scans).
    Distinct { field: String, threshold: u32, window: Duration },
    /// A single match is enough (exploit probes).
    Once,
}

/// Whether a sample must or must not produce a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleKind {
    Match,
    NoMatch,
}

/// A sample line of a rule, with the captures it must yield.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    pub kind: SampleKind,
    /// The log line (lines separated by `\n` are fed one after the other).
    pub line: String,
    /// Expected captures (`host`, `user`, any field); empty for `NoMatch`.
    pub expect: BTreeMap<String, String>,
    pub source: SourceRef,
}

/// One rule of the pack.
#[derive(Clone, Debug)]
pub struct NativeRule {
    pub id: String,
    pub description: String,
    pub severity: RuleSeverity,
    pub enabled: bool,
    /// The service (file stem, or `service = …`).
    pub service: String,
    pub spec: FilterSpec,
    pub key: KeyField,
    pub detect: DetectSpec,
    pub bantime: Option<Duration>,
    pub samples: Vec<Sample>,
    pub source: SourceRef,
    /// The filter as compiled while loading (with pattern checks on);
    /// `None` otherwise. [`NativeRule::compile`] reuses it.
    pub compiled: Option<Arc<CompiledFilter>>,
}

impl NativeRule {
    /// The compiled filter: the one compiled while loading, or compiled now.
    pub fn compile(&self) -> Result<Arc<CompiledFilter>, Vec<Diagnostic>> {
        match &self.compiled {
            Some(c) => Ok(Arc::clone(c)),
            None => CompiledFilter::compile(&self.spec, &CompileOptions::default()).map(|c| Arc::new(c.filter)),
        }
    }

    pub fn match_samples(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter(|s| s.kind == SampleKind::Match)
    }

    pub fn no_match_samples(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter(|s| s.kind == SampleKind::NoMatch)
    }
}

/// The rule files compiled into the binary: (virtual path, text).
pub const EMBEDDED: &[(&str, &str)] = &[
    ("rules/apache.toml", include_str!("../../../rules/apache.toml")),
    ("rules/dovecot.toml", include_str!("../../../rules/dovecot.toml")),
    ("rules/http.toml", include_str!("../../../rules/http.toml")),
    ("rules/netfilter.toml", include_str!("../../../rules/netfilter.toml")),
    ("rules/nginx.toml", include_str!("../../../rules/nginx.toml")),
    ("rules/openvpn.toml", include_str!("../../../rules/openvpn.toml")),
    ("rules/postfix.toml", include_str!("../../../rules/postfix.toml")),
    ("rules/sshd.toml", include_str!("../../../rules/sshd.toml")),
    ("rules/strongswan.toml", include_str!("../../../rules/strongswan.toml")),
];

/// How loading checks rules.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Compile every rule's patterns with `stadtwache-match` while loading,
    /// so that pattern errors are reported with the other diagnostics
    /// (default). Off: schema checks only.
    pub check_patterns: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { check_patterns: true }
    }
}

/// The embedded rule pack, or every problem in it.
pub fn try_load_embedded() -> Result<RulePack, Vec<Diagnostic>> {
    try_load_embedded_with(&LoadOptions::default())
}

/// [`try_load_embedded`] with options.
pub fn try_load_embedded_with(opts: &LoadOptions) -> Result<RulePack, Vec<Diagnostic>> {
    let sources = EMBEDDED.iter().map(|(p, t)| (PathBuf::from(p), (*t).to_string())).collect();
    load_sources(sources, Vec::new(), opts)
}

/// The rule pack compiled into the binary (`rules/*.toml`).
///
/// Its patterns are not compiled here (`compiled` is `None`): the test suite
/// compiles and runs every one of them, so the caller compiles each filter
/// once, when it uses it ([`NativeRule::compile`]).
///
/// # Panics
/// Only if the embedded files are broken, which `cargo test -p
/// stadtwache-rules` rules out before a release; use [`try_load_embedded`]
/// to get the diagnostics instead.
pub fn load_embedded() -> RulePack {
    match try_load_embedded_with(&LoadOptions { check_patterns: false }) {
        Ok(pack) => pack,
        Err(diags) => {
            let text: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
            panic!("embedded rule pack is invalid:\n{}", text.join("\n"))
        }
    }
}

/// Load every `*.toml` file in `dir` (not recursive, sorted by name).
pub fn load_dir(dir: &Path) -> Result<RulePack, Vec<Diagnostic>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            return Err(vec![Diagnostic::error(codes::IO, format!("cannot read rule directory: {e}")).at(dir, 0)]);
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(vec![Diagnostic::error(codes::NO_FILES, "no *.toml rule files in directory").at(dir, 0)]);
    }
    read_and_load(&paths)
}

/// Load a single rule file.
pub fn load_file(path: &Path) -> Result<RulePack, Vec<Diagnostic>> {
    read_and_load(&[path.to_path_buf()])
}

/// Load rule files given as text (for tests and tools); `path` is used in
/// diagnostics and to default `service` to the file stem.
pub fn load_str(path: &Path, text: &str) -> Result<RulePack, Vec<Diagnostic>> {
    load_str_with(path, text, &LoadOptions::default())
}

/// [`load_str`] with options.
pub fn load_str_with(path: &Path, text: &str, opts: &LoadOptions) -> Result<RulePack, Vec<Diagnostic>> {
    load_sources(vec![(path.to_path_buf(), text.to_string())], Vec::new(), opts)
}

fn read_and_load(paths: &[PathBuf]) -> Result<RulePack, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let mut sources = Vec::new();
    for p in paths {
        match std::fs::read_to_string(p) {
            Ok(t) => sources.push((p.clone(), t)),
            Err(e) => diags.push(Diagnostic::error(codes::IO, format!("cannot read rule file: {e}")).at(p, 0)),
        }
    }
    load_sources(sources, diags, &LoadOptions::default())
}

fn load_sources(
    sources: Vec<(PathBuf, String)>,
    mut diags: Vec<Diagnostic>,
    opts: &LoadOptions,
) -> Result<RulePack, Vec<Diagnostic>> {
    let mut pack = RulePack::default();
    let mut seen: HashMap<String, SourceRef> = HashMap::new();
    for (path, text) in &sources {
        let mut fl = FileLoader { path, text, opts, diags: &mut diags, warnings: &mut pack.warnings };
        for rule in fl.load() {
            if let Some(first) = seen.get(&rule.id) {
                let where_ = match &first.file {
                    Some(f) => format!("{}:{}", f.display(), first.line),
                    None => format!("line {}", first.line),
                };
                diags.push(
                    Diagnostic::error(
                        codes::DUPLICATE_ID,
                        format!("rule id `{}` already defined at {where_}", rule.id),
                    )
                    .at(path, rule.source.line),
                );
                continue;
            }
            seen.insert(rule.id.clone(), rule.source.clone());
            pack.rules.push(rule);
        }
    }
    diags.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    if diags.iter().any(|d| d.is_error()) {
        diags.extend(pack.warnings);
        Err(diags)
    } else {
        pack.warnings.extend(diags);
        Ok(pack)
    }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> u32 {
    let end = offset.min(text.len());
    let end = (0..=end).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    text[..end].bytes().filter(|&b| b == b'\n').count() as u32 + 1
}

struct FileLoader<'a> {
    path: &'a Path,
    text: &'a str,
    opts: &'a LoadOptions,
    diags: &'a mut Vec<Diagnostic>,
    warnings: &'a mut Vec<Diagnostic>,
}

impl<'a> FileLoader<'a> {
    fn line(&self, span: std::ops::Range<usize>) -> u32 {
        line_of(self.text, span.start)
    }

    fn err(&mut self, code: &'static str, span: std::ops::Range<usize>, msg: impl Into<String>) {
        let line = self.line(span);
        self.diags.push(Diagnostic::error(code, msg).at(self.path, line));
    }

    fn src(&self, span: std::ops::Range<usize>) -> SourceRef {
        SourceRef { file: Some(self.path.to_path_buf()), line: self.line(span) }
    }

    fn spanned(&self, s: &toml::Spanned<String>) -> Spanned {
        Spanned { text: s.get_ref().clone(), at: self.src(s.span()) }
    }

    /// Map a serde/toml error to a diagnostic.
    fn de_error(&mut self, e: &toml::de::Error, fallback: std::ops::Range<usize>) {
        let msg = e.message().trim().to_string();
        let code = if msg.contains("unknown field") {
            codes::UNKNOWN_KEY
        } else if msg.contains("missing field") {
            codes::MISSING_KEY
        } else {
            codes::BAD_VALUE
        };
        let msg = match msg.as_str() {
            m if m.starts_with("data did not match any variant of untagged enum DurationDoc") => {
                "duration must be a number of seconds or a string such as \"10m\"".to_string()
            }
            m if m.starts_with("data did not match any variant of untagged enum SampleDoc") => {
                "sample must be a string or a table of strings with `line`".to_string()
            }
            _ => msg,
        };
        let span = e.span().unwrap_or(fallback);
        self.err(code, span, msg);
    }

    fn deserialize<T: for<'de> Deserialize<'de>>(&mut self, v: toml::Spanned<DeValue<'_>>) -> Option<T> {
        let span = v.span();
        match T::deserialize(ValueDeserializer::from(v)) {
            Ok(t) => Some(t),
            Err(e) => {
                self.de_error(&e, span);
                None
            }
        }
    }

    fn load(&mut self) -> Vec<NativeRule> {
        let (root, errors) = DeTable::parse_recoverable(self.text);
        if !errors.is_empty() {
            for e in &errors {
                let span = e.span().unwrap_or(0..0);
                let msg = format!("TOML syntax: {}", e.message().trim());
                self.err(codes::SYNTAX, span, msg);
            }
            return Vec::new();
        }
        let root = root.into_inner();
        let mut service: Option<String> = None;
        let mut defaults = DefaultsDoc::default();
        let mut rule_values: Vec<toml::Spanned<DeValue<'_>>> = Vec::new();
        for (k, v) in root {
            let kspan = k.span();
            match k.get_ref().as_ref() {
                "service" => {
                    if let Some(s) = self.deserialize::<String>(v) {
                        service = Some(s);
                    }
                }
                "description" => {
                    let _ = self.deserialize::<String>(v);
                }
                "defaults" => {
                    if let Some(d) = self.deserialize::<DefaultsDoc>(v) {
                        defaults = d;
                    }
                }
                "rule" => {
                    let span = v.span();
                    match v.into_inner() {
                        DeValue::Array(items) => rule_values.extend(items),
                        _ => self.err(codes::BAD_VALUE, span, "`rule` must be an array of tables (`[[rule]]`)"),
                    }
                }
                other => {
                    let msg =
                        format!("unknown key `{other}`, expected one of `service`, `description`, `defaults`, `rule`");
                    self.err(codes::UNKNOWN_KEY, kspan, msg);
                }
            }
        }
        let service = service
            .unwrap_or_else(|| self.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default());
        self.check_defaults(&defaults);
        let mut rules = Vec::new();
        let mut ids: HashMap<String, u32> = HashMap::new();
        for v in rule_values {
            let span = v.span();
            if !matches!(v.get_ref(), DeValue::Table(_)) {
                self.err(codes::BAD_VALUE, span, "`rule` entries must be tables");
                continue;
            }
            let Some(doc) = self.deserialize::<RuleDoc>(v) else {
                continue;
            };
            if let Some(first) = ids.get(doc.id.get_ref()) {
                let msg = format!("rule id `{}` already defined on line {first}", doc.id.get_ref());
                self.err(codes::DUPLICATE_ID, doc.id.span(), msg);
                continue;
            }
            ids.insert(doc.id.get_ref().clone(), self.line(doc.id.span()));
            if let Some(rule) = self.build_rule(&service, &defaults, doc) {
                rules.push(rule);
            }
        }
        rules
    }

    fn check_defaults(&mut self, d: &DefaultsDoc) {
        if let Some(s) = &d.severity {
            self.severity(s);
        }
        if let Some(b) = &d.bantime {
            self.duration(b, "bantime");
        }
        if let Some(m) = &d.maxlines {
            self.maxlines(m);
        }
    }

    fn severity(&mut self, s: &toml::Spanned<String>) -> Option<RuleSeverity> {
        let r = RuleSeverity::parse(s.get_ref());
        if r.is_none() {
            let msg = format!("unknown severity `{}`, expected low, medium, high or critical", s.get_ref());
            self.err(codes::BAD_SEVERITY, s.span(), msg);
        }
        r
    }

    fn maxlines(&mut self, m: &toml::Spanned<i64>) -> Option<usize> {
        let v = *m.get_ref();
        if !(1..=MAX_MAXLINES).contains(&v) {
            self.err(codes::BAD_MAXLINES, m.span(), format!("maxlines must be between 1 and {MAX_MAXLINES}, got {v}"));
            return None;
        }
        Some(v as usize)
    }

    fn duration(&mut self, d: &toml::Spanned<DurationDoc>, what: &str) -> Option<Duration> {
        let r = match d.get_ref() {
            DurationDoc::Int(i) => Ok(Duration::from_secs(*i)),
            DurationDoc::Float(f) if f.is_finite() => Ok(Duration::from_secs_f64(*f)),
            DurationDoc::Float(f) => Err(format!("{f} is not a finite number")),
            DurationDoc::Text(t) => Duration::parse(t).map_err(|e| e.to_string()),
        };
        match r {
            Ok(v) if v > Duration::ZERO => Some(v),
            Ok(v) => {
                self.err(codes::BAD_DURATION, d.span(), format!("{what} must be positive, got {v}"));
                None
            }
            Err(e) => {
                self.err(codes::BAD_DURATION, d.span(), format!("{what}: {e}"));
                None
            }
        }
    }

    fn text_nonempty(&mut self, s: &toml::Spanned<String>, what: &str) -> bool {
        if s.get_ref().trim().is_empty() {
            self.err(codes::EMPTY_TEXT, s.span(), format!("{what} must not be empty"));
            false
        } else {
            true
        }
    }

    fn build_rule(&mut self, service: &str, defaults: &DefaultsDoc, doc: RuleDoc) -> Option<NativeRule> {
        let errors_before = self.diags.iter().filter(|d| d.is_error()).count();
        let source = self.src(doc.id.span());

        let id = doc.id.get_ref().clone();
        if !valid_id(&id) {
            let msg =
                format!("rule id `{id}` must be lower-case letters, digits and `-`, starting with a letter or digit");
            self.err(codes::BAD_ID, doc.id.span(), msg);
        }
        self.text_nonempty(&doc.description, "description");

        let severity = match doc.severity.as_ref().or(defaults.severity.as_ref()) {
            Some(s) => self.severity(s).unwrap_or(RuleSeverity::Medium),
            None => RuleSeverity::Medium,
        };
        let maxlines = match doc.maxlines.as_ref() {
            Some(m) => self.maxlines(m).unwrap_or(1),
            None => defaults.maxlines.as_ref().and_then(|m| usize::try_from(*m.get_ref()).ok()).unwrap_or(1),
        };
        let bantime = match doc.bantime.as_ref() {
            Some(b) => self.duration(b, "bantime"),
            None => defaults.bantime.as_ref().and_then(|b| duration_quiet(b.get_ref())),
        };

        // Patterns.
        let patterns_span = doc.patterns.span();
        let patterns = doc.patterns.into_inner();
        if patterns.is_empty() {
            self.err(codes::NO_PATTERNS, patterns_span, format!("rule `{id}` has no patterns"));
        }
        for p in &patterns {
            self.text_nonempty(p, "pattern");
        }
        let failregex: Vec<Spanned> = patterns.iter().map(|p| self.spanned(p)).collect();
        let prefregex = doc.prefregex.as_ref().or(defaults.prefregex.as_ref()).map(|p| self.spanned(p));
        let mut ignoreregex: Vec<Spanned> = defaults.ignore.iter().map(|p| self.spanned(p)).collect();
        ignoreregex.extend(doc.ignore.iter().map(|p| self.spanned(p)));
        let datepattern = doc.datepattern.as_ref().or(defaults.datepattern.as_ref()).map(|p| self.spanned(p));
        let logtimezone = doc.logtimezone.as_ref().or(defaults.logtimezone.as_ref()).map(|s| s.get_ref().clone());

        // Key and detection.
        let key_src = doc.key.as_ref().or(defaults.key.as_ref());
        let key = key_src.map(|k| KeyField::parse(k.get_ref())).unwrap_or(KeyField::Host);
        let captured_anywhere =
            |field: &str| prefregex.iter().chain(failregex.iter()).any(|p| captures_field(&p.text, field));
        let captured = |field: &str| {
            prefregex.iter().any(|p| captures_field(&p.text, field))
                || (!failregex.is_empty() && failregex.iter().all(|p| captures_field(&p.text, field)))
        };
        if let Some(k) = key_src {
            if k.get_ref().trim().is_empty() {
                self.err(codes::EMPTY_TEXT, k.span(), "key must not be empty");
            } else if !captured(key.name()) {
                let msg = format!(
                    "key `{}` is not captured by every pattern of rule `{id}` (use <F-{}>…</F-{}>)",
                    key.name(),
                    key.name().to_ascii_uppercase(),
                    key.name().to_ascii_uppercase()
                );
                self.err(codes::FIELD_NOT_CAPTURED, k.span(), msg);
            }
        }
        let detect_span = doc.detect.span();
        let detect = self.detect(doc.detect.into_inner(), detect_span.clone());
        if let Some(DetectSpec::Distinct { field, .. }) = &detect
            && !captured(field)
        {
            let msg = format!(
                "detect.field `{field}` is not captured by every pattern of rule `{id}` (use <F-{}>…</F-{}>)",
                field.to_ascii_uppercase(),
                field.to_ascii_uppercase()
            );
            self.err(codes::FIELD_NOT_CAPTURED, detect_span.clone(), msg);
        }

        // Samples.
        let mut samples = Vec::new();
        for s in doc.samples.map(|s| s.into_docs()).unwrap_or_default() {
            let SamplesDoc { must_match, no_match } = s;
            for m in must_match {
                let at = self.src(m.span());
                let span = m.span();
                match m.into_inner() {
                    SampleDoc::Line(line) => {
                        samples.push(Sample { kind: SampleKind::Match, line, expect: BTreeMap::new(), source: at })
                    }
                    SampleDoc::Table(mut t) => match t.remove("line") {
                        Some(line) => {
                            for k in t.keys() {
                                let known = ["host", "ip4", "ip6", "dns", "fid", "mlfid"].contains(&k.as_str())
                                    || captured_anywhere(k);
                                if !known {
                                    let msg = format!("sample expects `{k}`, which no pattern of rule `{id}` captures");
                                    self.err(codes::BAD_SAMPLE, span.clone(), msg);
                                }
                            }
                            samples.push(Sample { kind: SampleKind::Match, line, expect: t, source: at })
                        }
                        None => self.err(codes::BAD_SAMPLE, span, "sample table needs a `line` key"),
                    },
                }
            }
            for n in no_match {
                let at = self.src(n.span());
                samples.push(Sample {
                    kind: SampleKind::NoMatch,
                    line: n.into_inner(),
                    expect: BTreeMap::new(),
                    source: at,
                });
            }
        }

        let spec = FilterSpec {
            name: format!("native:{id}"),
            prefregex,
            failregex,
            ignoreregex,
            datepattern,
            maxlines,
            logtimezone,
        };

        let errors_now = self.diags.iter().filter(|d| d.is_error()).count();
        if errors_now > errors_before {
            return None;
        }
        // Compile now so that pattern errors surface at load time, with file and line.
        let compiled = if self.opts.check_patterns {
            Some(CompiledFilter::compile(&spec, &CompileOptions::default()))
        } else {
            None
        };
        let compiled = match compiled {
            None => None,
            Some(Ok(c)) => {
                for w in c.warnings {
                    self.warnings.push(self.locate(w, &source));
                }
                Some(Arc::new(c.filter))
            }
            Some(Err(ds)) => {
                for d in ds {
                    let d = self.locate(d, &source);
                    self.diags.push(d);
                }
                return None;
            }
        };

        Some(NativeRule {
            id,
            description: doc.description.into_inner(),
            severity,
            enabled: doc.enabled,
            service: service.to_string(),
            spec,
            key,
            detect: detect?,
            bantime,
            samples,
            source,
            compiled,
        })
    }

    /// Give a matcher diagnostic this file (and the rule's line when it has none).
    fn locate(&self, mut d: Diagnostic, rule: &SourceRef) -> Diagnostic {
        if d.file.is_none() {
            d.file = Some(self.path.to_path_buf());
            if d.line == 0 {
                d.line = rule.line;
            }
        }
        d
    }

    fn detect(&mut self, d: DetectDoc, span: std::ops::Range<usize>) -> Option<DetectSpec> {
        let kind = d.kind.get_ref().as_str();
        let mut ok = true;
        let threshold = |this: &mut Self| -> Option<u32> {
            match &d.threshold {
                None => {
                    this.err(codes::BAD_DETECT, span.clone(), format!("detect kind `{kind}` needs `threshold`"));
                    None
                }
                Some(t) => match u32::try_from(*t.get_ref()) {
                    Ok(v) if v >= 1 => Some(v),
                    _ => {
                        let msg = format!("threshold must be a whole number ≥ 1, got {}", t.get_ref());
                        this.err(codes::BAD_DETECT, t.span(), msg);
                        None
                    }
                },
            }
        };
        match kind {
            "count" | "distinct" => {
                let t = threshold(self);
                let w = match &d.window {
                    None => {
                        self.err(codes::BAD_DETECT, span.clone(), format!("detect kind `{kind}` needs `window`"));
                        None
                    }
                    Some(w) => self.duration(w, "window"),
                };
                let f = if kind == "distinct" {
                    match &d.field {
                        None => {
                            self.err(codes::BAD_DETECT, span.clone(), "detect kind `distinct` needs `field`");
                            None
                        }
                        Some(f) if f.get_ref().trim().is_empty() => {
                            self.err(codes::BAD_DETECT, f.span(), "detect.field must not be empty");
                            None
                        }
                        Some(f) => Some(f.get_ref().clone()),
                    }
                } else {
                    if let Some(f) = &d.field {
                        self.err(codes::BAD_DETECT, f.span(), "`field` only applies to detect kind `distinct`");
                        ok = false;
                    }
                    None
                };
                let (t, w) = (t?, w?);
                if !ok {
                    return None;
                }
                match f {
                    Some(field) => Some(DetectSpec::Distinct { field, threshold: t, window: w }),
                    None if kind == "count" => Some(DetectSpec::Count { threshold: t, window: w }),
                    None => None,
                }
            }
            "once" => {
                let extra = [
                    (d.threshold.as_ref().map(|t| t.span()), "threshold"),
                    (d.window.as_ref().map(|w| w.span()), "window"),
                    (d.field.as_ref().map(|f| f.span()), "field"),
                ];
                for (present, name) in extra {
                    if let Some(s) = present {
                        self.err(codes::BAD_DETECT, s, format!("`{name}` does not apply to detect kind `once`"));
                        ok = false;
                    }
                }
                ok.then_some(DetectSpec::Once)
            }
            other => {
                let msg = format!("unknown detect kind `{other}`, expected count, distinct or once");
                self.err(codes::BAD_DETECT, d.kind.span(), msg);
                None
            }
        }
    }
}

fn duration_quiet(d: &DurationDoc) -> Option<Duration> {
    match d {
        DurationDoc::Int(i) => Some(Duration::from_secs(*i)),
        DurationDoc::Float(f) if f.is_finite() => Some(Duration::from_secs_f64(*f)),
        DurationDoc::Float(_) => None,
        DurationDoc::Text(t) => Duration::parse(t).ok(),
    }
    .filter(|d| *d > Duration::ZERO)
}

fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Whether a pattern (in fail2ban's dialect) captures `field`: `<F-FIELD>`,
/// a Python named group `(?P<field>`, or for `host` any address tag.
pub fn captures_field(pattern: &str, field: &str) -> bool {
    let lower = pattern.to_ascii_lowercase();
    let f = field.to_ascii_lowercase();
    if f == "host" && (lower.contains("<host>") || lower.contains("<addr>") || lower.contains("<cidr>")) {
        return true;
    }
    if f == "fid" && lower.contains("<f-id>") {
        return true;
    }
    lower.contains(&format!("<f-{f}>")) || lower.contains(&format!("(?p<{f}>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_numbers_are_one_based() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 4), 3);
        assert_eq!(line_of("a", 99), 1);
    }

    #[test]
    fn ids_and_fields() {
        assert!(valid_id("sshd-auth-failure"));
        assert!(!valid_id("SSHD"));
        assert!(!valid_id("-x"));
        assert!(!valid_id(""));
        assert!(captures_field("from <HOST> port", "host"));
        assert!(captures_field("user <F-USER>\\S+</F-USER>", "user"));
        assert!(captures_field("DPT=<F-DPT>\\d+</F-DPT>", "dpt"));
        assert!(!captures_field("from <HOST>", "user"));
    }
}
