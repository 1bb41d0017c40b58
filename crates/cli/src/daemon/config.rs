//! The daemon's configuration file (TOML).
//!
//! Every key is documented in `docs/config.md` and in `examples/stadtwache.toml`;
//! unknown keys are errors. [`load`] reports every problem at once: each
//! top-level section and each `[[source]]` is read on its own, so one typo
//! does not hide the next, and every problem carries a code (`K…`), the
//! file and the line.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use stadtwache_core::{Diagnostic, Duration};
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

/// The whole configuration, after validation.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Where it was read from (`None`: the embedded default).
    pub file: Option<PathBuf>,
    pub daemon: DaemonConfig,
    pub policy: PolicyConfig,
    pub rules: RulesConfig,
    pub sources: Vec<SourceConfig>,
    pub nftables: NftablesSection,
    pub api: ApiSection,
}

/// `[daemon]`
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// State directory: `stadtwache.db` (SQLite, WAL) and `status.json`.
    pub data_dir: PathBuf,
    /// How often detection results are committed (with the sources'
    /// checkpoints, in one transaction) and handed to enforcement.
    pub commit_interval: String,
    /// Lines waiting between the sources and detection, at most. A full
    /// queue stops file and journald reading (they catch up later) and
    /// makes the syslog receiver drop and count.
    pub queue_lines: usize,
    /// How often `status.json` is rewritten.
    pub status_interval: String,
    /// Ended decisions and alerts older than this are purged from the store.
    pub retention: String,
    /// SQLite `synchronous`: `normal` (survives process crashes) or `full`
    /// (also power loss; slower).
    pub synchronous: String,
    /// Zone of log times written without one (IANA name or UTC). Default: the system zone.
    pub timezone: Option<String>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            data_dir: PathBuf::from("/var/lib/stadtwache"),
            commit_interval: "20ms".into(),
            queue_lines: 65_536,
            status_interval: "2s".into(),
            retention: "30d".into(),
            synchronous: "normal".into(),
            timezone: None,
        }
    }
}

/// `[policy]`, and `[source.policy]` overrides (same keys, all optional there).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// fail2ban `maxretry`: failures within `findtime` that trigger a ban (fail2ban filters).
    pub maxretry: u32,
    /// fail2ban `findtime`.
    pub findtime: String,
    /// Ban duration; also the default of native rules without their own.
    pub bantime: String,
    /// Addresses and networks that are never banned, whatever any rule says.
    pub ignoreip: Vec<String>,
    /// fail2ban `bantime.increment` for repeat offenders.
    pub bantime_increment: bool,
    pub bantime_factor: f64,
    pub bantime_multipliers: Option<String>,
    pub bantime_maxtime: Option<String>,
    /// Ban IPv6 offenders as this prefix (e.g. 64).
    pub ipv6_prefix: Option<u8>,
    /// Decide and record, but never enforce.
    pub simulate: bool,
    /// Keys tracked per rule window; the oldest are evicted and counted.
    pub max_keys: usize,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            maxretry: 5,
            findtime: "10m".into(),
            bantime: "10m".into(),
            ignoreip: vec!["127.0.0.0/8".into(), "::1".into()],
            bantime_increment: false,
            bantime_factor: 1.0,
            bantime_multipliers: None,
            bantime_maxtime: None,
            ipv6_prefix: None,
            simulate: false,
            max_keys: 100_000,
        }
    }
}

/// `[source.policy]`: overrides of `[policy]` for one source.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyOverride {
    pub maxretry: Option<u32>,
    pub findtime: Option<String>,
    pub bantime: Option<String>,
    pub ignoreip: Option<Vec<String>>,
    pub bantime_increment: Option<bool>,
    pub bantime_factor: Option<f64>,
    pub bantime_multipliers: Option<String>,
    pub bantime_maxtime: Option<String>,
    pub ipv6_prefix: Option<u8>,
    pub simulate: Option<bool>,
    pub max_keys: Option<usize>,
}

impl PolicyConfig {
    pub fn merged(&self, o: &PolicyOverride) -> PolicyConfig {
        PolicyConfig {
            maxretry: o.maxretry.unwrap_or(self.maxretry),
            findtime: o.findtime.clone().unwrap_or_else(|| self.findtime.clone()),
            bantime: o.bantime.clone().unwrap_or_else(|| self.bantime.clone()),
            ignoreip: o.ignoreip.clone().unwrap_or_else(|| self.ignoreip.clone()),
            bantime_increment: o.bantime_increment.unwrap_or(self.bantime_increment),
            bantime_factor: o.bantime_factor.unwrap_or(self.bantime_factor),
            bantime_multipliers: o.bantime_multipliers.clone().or_else(|| self.bantime_multipliers.clone()),
            bantime_maxtime: o.bantime_maxtime.clone().or_else(|| self.bantime_maxtime.clone()),
            ipv6_prefix: o.ipv6_prefix.or(self.ipv6_prefix),
            simulate: o.simulate.unwrap_or(self.simulate),
            max_keys: o.max_keys.unwrap_or(self.max_keys),
        }
    }

    pub fn to_args(&self) -> crate::PolicyArgs {
        crate::PolicyArgs {
            maxretry: self.maxretry,
            findtime: self.findtime.clone(),
            bantime: self.bantime.clone(),
            bantime_increment: self.bantime_increment,
            bantime_factor: self.bantime_factor,
            bantime_multipliers: self.bantime_multipliers.clone(),
            bantime_maxtime: self.bantime_maxtime.clone(),
            ignoreip: self.ignoreip.clone(),
            ipv6_prefix: self.ipv6_prefix,
            simulate: self.simulate,
            max_keys: self.max_keys,
        }
    }
}

/// `[rules]`
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Directory of fail2ban filters (`filter.d`), used unchanged.
    pub fail2ban_filter_dir: PathBuf,
    /// Directory of native rule files (`*.toml`) instead of the embedded pack.
    pub native_dir: Option<PathBuf>,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig { fail2ban_filter_dir: PathBuf::from("/etc/fail2ban/filter.d"), native_dir: None }
    }
}

/// What kind of source a `[[source]]` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    File,
    Journald,
    Syslog,
    Stdin,
}

/// Where a line's time comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeFrom {
    /// The date in the line (fail2ban's date detection); lines without one
    /// take the time they were read.
    #[default]
    Line,
    /// The time the line was read (for programs that write undated lines,
    /// like `sshd -E FILE`).
    Arrival,
}

/// `[[source]]`: one stream of log lines and the rules that watch it (like
/// a fail2ban jail: its own windows and decisions).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Unique name: metrics label, checkpoint group, `status` line.
    pub name: String,
    #[serde(rename = "type")]
    pub kind: SourceKind,
    /// `file`: paths or globs to follow.
    #[serde(default)]
    pub paths: Vec<String>,
    /// `journald`: the journal follower (`[source.journald]`: `units`,
    /// `identifiers`, `directory`, `files`, `from_start`, `journalctl`, caps).
    #[serde(default)]
    pub journald: Option<stadtwache_acquire::journald::JournaldConfig>,
    /// `syslog`: the receiver (`[source.syslog]`: `udp`, `tcp`, `allowed_senders`,
    /// `max_message`, `oversize`, `max_connections`, `idle_timeout_secs`, `timezone`).
    #[serde(default)]
    pub syslog: Option<stadtwache_acquire::syslog::SyslogConfig>,
    /// fail2ban filters (`sshd`, `sshd[mode=aggressive]`, a path). Without
    /// them, the native rule pack runs (narrowed by `services`/`only`).
    #[serde(default)]
    pub filters: Vec<String>,
    /// Native rules of these services only (`sshd`, `http`, …).
    #[serde(default)]
    pub services: Vec<String>,
    /// Native rules with these ids only.
    #[serde(default)]
    pub only: Vec<String>,
    /// Where line times come from: `line` (default) or `arrival`.
    #[serde(default)]
    pub time: TimeFrom,
    /// Lines longer than this are skipped and counted.
    #[serde(default = "default_max_line")]
    pub max_line_bytes: usize,
    /// Overrides of `[policy]` for this source.
    #[serde(default)]
    pub policy: PolicyOverride,
}

fn default_max_line() -> usize {
    stadtwache_acquire::DEFAULT_MAX_LINE
}

impl SourceConfig {
    pub fn rule_args(&self, rules: &RulesConfig) -> crate::RuleArgs {
        crate::RuleArgs {
            filters: self.filters.clone(),
            filter_dir: rules.fail2ban_filter_dir.clone(),
            rules: rules.native_dir.clone(),
            only: self.only.clone(),
            service: self.services.clone(),
        }
    }
}

/// `[nftables]`: stage 1, the network edge. Besides `enabled` and
/// `reconcile_interval`, every key of [`stadtwache_enforce::NftConfig`]
/// (`table`, `input`, `forward`, `priority`, `counter`, `command`,
/// `timeout_tolerance_secs`, `timeout_ms`, `max_output_bytes`,
/// `max_split_transactions`).
#[derive(Clone, Debug, PartialEq)]
pub struct NftablesSection {
    /// Off by default: decisions are then recorded and served by the API,
    /// and the firewall stage runs dry (counted, nothing changed).
    pub enabled: bool,
    /// How often the kernel sets are compared with the stored decisions and repaired.
    pub reconcile_interval: String,
    pub nft: stadtwache_enforce::NftConfig,
}

impl Default for NftablesSection {
    fn default() -> Self {
        NftablesSection {
            enabled: false,
            reconcile_interval: "30s".into(),
            nft: stadtwache_enforce::NftConfig::default(),
        }
    }
}

/// `[api]`: stage 2, the HTTP decision API. Besides `enabled`, every key of
/// [`stadtwache_api::ApiConfig`] (`listen`, `admin_token_file`,
/// `trusted_proxies`, `stale_after`, `fail_mode`, caps, …).
#[derive(Clone, Debug, PartialEq)]
pub struct ApiSection {
    pub enabled: bool,
    pub api: stadtwache_api::ApiConfig,
}

impl Default for ApiSection {
    fn default() -> Self {
        let api = stadtwache_api::ApiConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], DEFAULT_API_PORT)),
            ..stadtwache_api::ApiConfig::default()
        };
        ApiSection { enabled: true, api }
    }
}

/// Our API's default port (CrowdSec's LAPI has 8080; both may run on one host).
pub const DEFAULT_API_PORT: u16 = 8089;

/// The result of reading a configuration: the config if nothing is an
/// error, and every diagnostic either way.
pub struct Loaded {
    pub config: Option<Config>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Read and validate a config file.
pub fn load(path: &Path) -> Loaded {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, Some(path)),
        Err(e) => Loaded {
            config: None,
            diagnostics: vec![Diagnostic::error("K001", format!("cannot read config: {e}")).at(path, 0)],
        },
    }
}

/// The embedded default: the usual log files that exist on this machine.
pub fn embedded_default() -> Config {
    let mut sources = Vec::new();
    let candidates: [(&str, &str, &[&str]); 5] = [
        ("auth", "/var/log/auth.log", &["sshd"]),
        ("nginx", "/var/log/nginx/access.log", &["http", "nginx"]),
        ("apache", "/var/log/apache2/access.log", &["http", "apache"]),
        ("mail", "/var/log/mail.log", &["postfix", "dovecot"]),
        ("kern", "/var/log/kern.log", &["netfilter"]),
    ];
    for (name, path, services) in candidates {
        if Path::new(path).exists() {
            sources.push(file_source(name, path, services));
        }
    }
    if sources.is_empty() && Path::new("/usr/bin/journalctl").exists() {
        let mut s = file_source("journal", "", &[]);
        s.kind = SourceKind::Journald;
        s.paths.clear();
        s.time = TimeFrom::Line;
        sources.push(s);
    }
    Config {
        file: None,
        daemon: DaemonConfig::default(),
        policy: PolicyConfig::default(),
        rules: RulesConfig::default(),
        sources,
        nftables: NftablesSection::default(),
        api: ApiSection::default(),
    }
}

fn file_source(name: &str, path: &str, services: &[&str]) -> SourceConfig {
    SourceConfig {
        name: name.into(),
        kind: SourceKind::File,
        paths: vec![path.into()],
        journald: None,
        syslog: None,
        filters: vec![],
        services: services.iter().map(|s| s.to_string()).collect(),
        only: vec![],
        time: TimeFrom::Line,
        max_line_bytes: default_max_line(),
        policy: PolicyOverride::default(),
    }
}

/// Line (1-based) of a byte offset.
fn line_of(text: &str, offset: usize) -> u32 {
    let end = offset.min(text.len());
    text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() as u32 + 1
}

struct Ctx<'a> {
    text: &'a str,
    file: PathBuf,
    diags: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn err(&mut self, code: &'static str, offset: usize, msg: impl Into<String>) {
        let line = line_of(self.text, offset);
        self.diags.push(Diagnostic::error(code, msg).at(self.file.clone(), line));
    }

    /// Remove `key` from a section read as a table: its bool value, or an error.
    fn take_bool(&mut self, section: &str, table: &mut toml::Table, key: &str, at: usize) -> Option<bool> {
        let v = table.remove(key)?;
        let b = v.as_bool();
        if b.is_none() {
            self.err("K003", at, format!("{section} {key}: expected true or false"));
        }
        b
    }

    fn section<T: DeserializeOwned>(&mut self, name: &str, value: Spanned<DeValue<'_>>) -> Option<T> {
        let start = value.span().start;
        match T::deserialize(ValueDeserializer::from(value)) {
            Ok(v) => Some(v),
            Err(e) => {
                let at = e.span().map_or(start, |s| s.start);
                self.err("K003", at, format!("{name}: {}", e.message().trim()));
                None
            }
        }
    }
}

/// Parse and validate config text (`file` for messages).
pub fn parse(text: &str, file: Option<&Path>) -> Loaded {
    let mut cx = Ctx { text, file: file.map_or_else(|| PathBuf::from("<config>"), Path::to_path_buf), diags: vec![] };
    let root = match DeTable::parse(text) {
        Ok(t) => t,
        Err(e) => {
            let at = e.span().map_or(0, |s| s.start);
            cx.err("K002", at, format!("TOML syntax: {}", e.message().trim()));
            return Loaded { config: None, diagnostics: cx.diags };
        }
    };
    let mut daemon = DaemonConfig::default();
    let mut policy = PolicyConfig::default();
    let mut rules = RulesConfig::default();
    let mut nftables = NftablesSection::default();
    let mut api = ApiSection::default();
    let mut sources: Vec<(usize, SourceConfig)> = Vec::new();
    let mut had_error = false;
    let mut at = std::collections::HashMap::new();
    for (key, value) in root.into_inner() {
        let key_start = key.span().start;
        let name = key.into_inner();
        at.insert(name.to_string(), key_start);
        macro_rules! sec {
            ($slot:ident) => {
                match cx.section(&format!("[{name}]"), value) {
                    Some(v) => $slot = v,
                    None => had_error = true,
                }
            };
        }
        match name.as_ref() {
            "daemon" => sec!(daemon),
            "policy" => sec!(policy),
            "rules" => sec!(rules),
            "nftables" => {
                let Some(mut own) = cx.section::<toml::Table>("[nftables]", value) else {
                    had_error = true;
                    continue;
                };
                if let Some(b) = cx.take_bool("[nftables]", &mut own, "enabled", key_start) {
                    nftables.enabled = b;
                }
                if let Some(v) = own.remove("reconcile_interval") {
                    match v.as_str() {
                        Some(t) => nftables.reconcile_interval = t.to_string(),
                        None => cx.err("K003", key_start, "[nftables] reconcile_interval: expected a duration text"),
                    }
                }
                match stadtwache_enforce::NftConfig::deserialize(toml::Value::Table(own)) {
                    Ok(n) => nftables.nft = n,
                    Err(e) => cx.err("K003", key_start, format!("[nftables]: {}", e.message().trim())),
                }
            }
            "api" => {
                let Some(mut own) = cx.section::<toml::Table>("[api]", value) else {
                    had_error = true;
                    continue;
                };
                if let Some(b) = cx.take_bool("[api]", &mut own, "enabled", key_start) {
                    api.enabled = b;
                }
                let listen_given = own.contains_key("listen");
                match stadtwache_api::ApiConfig::deserialize(toml::Value::Table(own)) {
                    Ok(mut a) => {
                        if !listen_given {
                            a.listen = api.api.listen;
                        }
                        api.api = a;
                    }
                    Err(e) => cx.err("K003", key_start, format!("[api]: {}", e.message().trim())),
                }
            }
            "source" => {
                let DeValue::Array(items) = value.into_inner() else {
                    cx.err("K003", key_start, "`source` must be an array of tables: write [[source]]");
                    continue;
                };
                for (i, item) in items.into_iter().enumerate() {
                    let start = item.span().start;
                    match cx.section::<SourceConfig>(&format!("[[source]] #{}", i + 1), item) {
                        Some(s) => sources.push((start, s)),
                        None => had_error = true,
                    }
                }
            }
            other => cx.err(
                "K004",
                key_start,
                format!("unknown section `{other}` (expected daemon, policy, rules, source, nftables, api)"),
            ),
        }
    }
    // Semantic checks, all of them.
    let at_of = |k: &str| at.get(k).copied().unwrap_or(0);
    validate_daemon(&mut cx, at_of("daemon"), &daemon);
    validate_policy(&mut cx, "[policy]", at_of("policy"), &policy);
    let (nft_at, api_at) = (at_of("nftables"), at_of("api"));
    let mut names = BTreeSet::new();
    for (at, s) in &sources {
        validate_source(&mut cx, *at, s, &policy, &rules);
        if !names.insert(s.name.clone()) {
            cx.err("K010", *at, format!("source name {:?} used twice", s.name));
        }
    }
    if let Err(e) = Duration::parse(&nftables.reconcile_interval) {
        cx.err("K005", nft_at, format!("[nftables] reconcile_interval: {e}"));
    }
    if let Err(e) = nftables.nft.validate() {
        cx.err("K006", nft_at, format!("[nftables] {e}"));
    }
    if api.enabled {
        if let Err(e) = api.api.validate() {
            cx.err("K007", api_at, format!("[api] {e}"));
        }
    }
    let bad = cx.diags.iter().any(Diagnostic::is_error) || had_error;
    let config = (!bad).then(|| Config {
        file: file.map(Path::to_path_buf),
        daemon,
        policy,
        rules,
        sources: sources.into_iter().map(|(_, s)| s).collect(),
        nftables,
        api,
    });
    Loaded { config, diagnostics: cx.diags }
}

fn validate_daemon(cx: &mut Ctx<'_>, at: usize, d: &DaemonConfig) {
    for (what, text) in
        [("commit_interval", &d.commit_interval), ("status_interval", &d.status_interval), ("retention", &d.retention)]
    {
        match Duration::parse(text) {
            Ok(v) if v.0 > 0 => {}
            Ok(_) => cx.err("K005", at, format!("[daemon] {what} must be positive")),
            Err(e) => cx.err("K005", at, format!("[daemon] {what}: {e}")),
        }
    }
    if !matches!(d.synchronous.as_str(), "normal" | "full") {
        cx.err("K005", at, format!("[daemon] synchronous {:?}: use normal or full", d.synchronous));
    }
    if d.queue_lines == 0 {
        cx.err("K005", at, "[daemon] queue_lines must be at least 1");
    }
}

fn validate_policy(cx: &mut Ctx<'_>, what: &str, at: usize, p: &PolicyConfig) {
    for (k, text) in [("findtime", &p.findtime), ("bantime", &p.bantime)] {
        if let Err(e) = Duration::parse(text) {
            cx.err("K005", at, format!("{what} {k}: {e}"));
        }
    }
    let mut allow = stadtwache_decide::Allowlist::default();
    for entry in &p.ignoreip {
        if let Err(e) = allow.add(entry) {
            let d = e.to_diagnostic();
            cx.err("K008", at, format!("{what} ignoreip: {}", d.message));
        }
    }
    if p.max_keys == 0 {
        cx.err("K005", at, format!("{what} max_keys must be at least 1"));
    }
}

fn validate_source(cx: &mut Ctx<'_>, at: usize, s: &SourceConfig, policy: &PolicyConfig, rules: &RulesConfig) {
    let what = format!("[[source]] {:?}", s.name);
    if s.name.is_empty() || s.name.len() > 64 || !s.name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        cx.err("K010", at, format!("{what}: name must be 1–64 letters, digits, _ - ."));
    }
    let misplaced =
        |field: &str, set: bool| set.then(|| format!("{what}: `{field}` does not apply to type {:?}", s.kind));
    let mut wrong = Vec::new();
    match s.kind {
        SourceKind::File => {
            if s.paths.is_empty() {
                cx.err("K011", at, format!("{what}: a file source needs `paths`"));
            }
            for p in &s.paths {
                if let Err(e) = glob::Pattern::new(p) {
                    cx.err("K011", at, format!("{what}: path pattern {p:?}: {e}"));
                }
            }
        }
        SourceKind::Syslog => match &s.syslog {
            None => cx.err("K012", at, format!("{what}: a syslog source needs a [source.syslog] table (udp/tcp)")),
            Some(sc) => {
                if sc.udp.is_empty() && sc.tcp.is_empty() {
                    cx.err("K012", at, format!("{what}: [source.syslog] needs `udp` and/or `tcp` addresses"));
                }
                for a in &sc.allowed_senders {
                    if let Err(e) = a.parse::<stadtwache_acquire::syslog::Cidr>() {
                        cx.err("K012", at, format!("{what}: [source.syslog]: {e}"));
                    }
                }
                if sc.max_message == 0 {
                    cx.err("K012", at, format!("{what}: [source.syslog] max_message must be at least 1"));
                }
            }
        },
        SourceKind::Journald | SourceKind::Stdin => {}
    }
    if s.kind != SourceKind::File {
        wrong.extend(misplaced("paths", !s.paths.is_empty()));
    }
    if s.kind != SourceKind::Journald {
        wrong.extend(misplaced("journald", s.journald.is_some()));
    }
    if s.kind != SourceKind::Syslog {
        wrong.extend(misplaced("syslog", s.syslog.is_some()));
    }
    for w in wrong {
        cx.err("K013", at, w);
    }
    if !s.filters.is_empty() && (!s.services.is_empty() || !s.only.is_empty()) {
        cx.err("K014", at, format!("{what}: `filters` (fail2ban) and `services`/`only` (native) exclude each other"));
    }
    let merged = policy.merged(&s.policy);
    // `[policy]` itself is checked once; here only what the source overrides.
    if s.policy != PolicyOverride::default() {
        validate_policy(cx, &format!("{what} policy"), at, &merged);
    }
    // The rules themselves: compile now, so `check --config` finds every
    // broken filter, not the daemon at start.
    if let Err(diags) = crate::ruleset::build(&s.rule_args(rules), &merged.to_args()) {
        let line = line_of(cx.text, at);
        for d in diags.into_iter().filter(Diagnostic::is_error) {
            // Keep the rule file's own location when it has one.
            let d = if d.file.is_some() { d } else { d.at(cx.file.clone(), line) };
            cx.diags.push(Diagnostic { message: format!("{what}: {}", d.message), ..d });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(l: &Loaded) -> Vec<(&'static str, u32)> {
        l.diagnostics.iter().map(|d| (d.code, d.line)).collect()
    }

    #[test]
    fn empty_config_is_valid_and_has_defaults() {
        let l = parse("", None);
        let c = l.config.expect("valid");
        assert_eq!(c.daemon.data_dir, PathBuf::from("/var/lib/stadtwache"));
        assert!(!c.nftables.enabled);
        assert!(c.sources.is_empty());
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = "\
[daemon]
data_dir = \"/tmp/x\"
bogus = 1

[policy]
bantime = \"ten minutes please\"

[[source]]
name = \"a\"
type = \"file\"

[[source]]
name = \"b\"
type = \"nonsense\"

[whatever]
x = 1
";
        let l = parse(text, Some(Path::new("t.toml")));
        assert!(l.config.is_none());
        let c = codes(&l);
        assert!(c.contains(&("K003", 3)), "{c:?}");
        assert!(c.contains(&("K004", 16)), "{c:?}");
        assert!(c.contains(&("K011", 8)), "{c:?}");
        assert!(c.iter().any(|(code, line)| *code == "K003" && *line == 14), "{c:?}");
        assert!(c.iter().any(|(code, _)| *code == "K005"), "{c:?}");
    }

    #[test]
    fn syntax_error_has_a_line() {
        let l = parse("[daemon]\ndata_dir = \n", None);
        assert_eq!(codes(&l), vec![("K002", 2)]);
    }

    #[test]
    fn misplaced_keys_and_duplicate_names() {
        let text = "\
[[source]]
name = \"s\"
type = \"stdin\"
paths = [\"/x\"]
[[source]]
name = \"s\"
type = \"stdin\"
";
        let l = parse(text, None);
        let c = codes(&l);
        assert!(c.contains(&("K013", 1)), "{c:?}");
        assert!(c.contains(&("K010", 5)), "{c:?}");
    }
}
