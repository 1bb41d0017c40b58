//! Load fail2ban `filter.d/*.conf` files, unchanged (plus `.local`
//! overrides and `name.d/` drop-ins), into a [`FilterSpec`].
//!
//! The reading follows fail2ban's own semantics: INI syntax of Python's
//! `configparser` (multi-line values, `;` inline comments, lower-cased option
//! names), `[INCLUDES]` `before`/`after`, `[DEFAULT]`, `%(name)s`
//! interpolation (also `%(section/name)s`, `%(known/name)s`), the `[Init]`
//! section and options given with the filter name (`sshd[mode=aggressive]`),
//! and the recursive `<name>` substitution of those values into the regexes.
//!
//! Every pattern handed on carries the file and line where its text was
//! written, so later errors point at the right place. Features we do not
//! support give a coded diagnostic (see [`codes`]), never silence.

pub mod codes;

mod arg;
mod config;
mod ini;
mod tags;
mod traced;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use stadtwache_core::{Diagnostic, Spanned};
pub use stadtwache_match::FilterSpec;

pub use arg::{format_filter_arg, parse_filter_arg};
use config::{Config, GetError, split_conditional};
use ini::Value;
use traced::{OMap, Traced};

/// The default location of fail2ban filters.
pub const DEFAULT_FILTER_DIR: &str = "/etc/fail2ban/filter.d";

/// Options fail2ban's filter reader takes from `[Definition]`, in its order.
const CONFIG_OPTS: &[&str] =
    &["usedns", "prefregex", "ignoreregex", "failregex", "maxlines", "datepattern", "journalmatch"];

/// Jail-level settings that have no effect when written in a filter.
const JAIL_OPTS: &[&str] =
    &["maxretry", "findtime", "bantime", "ignoreip", "ignoreself", "logpath", "backend", "logencoding", "maxmatches"];

/// A filter loaded and ready to compile.
///
/// `spec.datepattern` is fail2ban's value after `%%` unescaping; like in
/// fail2ban it may hold several templates, one per line (e.g.
/// `^[^\[]*\[({DATE})` and `{^LN-BEG}`), tried in that order.
#[derive(Debug, Clone)]
pub struct LoadedFilter {
    pub spec: FilterSpec,
    /// fail2ban `journalmatch` (one match expression per line), if any.
    pub journalmatch: Option<String>,
    /// Warnings (`F1xx`): the filter loads, but something is not honoured.
    pub warnings: Vec<Diagnostic>,
    /// Files read, in the order they were merged.
    pub files: Vec<PathBuf>,
}

/// Loads filters from a `filter.d` directory (or one `.conf` file).
#[derive(Debug, Clone)]
pub struct FilterLoader {
    dir: PathBuf,
}

impl Default for FilterLoader {
    fn default() -> Self {
        FilterLoader::new(DEFAULT_FILTER_DIR)
    }
}

fn is_common(stem: &str) -> bool {
    stem.ends_with("common")
}

impl FilterLoader {
    /// `dir` is a `filter.d` directory, or the path of a single filter file
    /// (`/path/sshd.conf`), whose siblings (`common.conf`, `sshd.local`) are
    /// then found next to it.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FilterLoader { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// When the loader was given one file: (its directory, its stem).
    fn single_file(&self) -> Option<(PathBuf, String)> {
        if self.dir.is_file() {
            let stem = self.dir.file_stem()?.to_string_lossy().into_owned();
            let parent = self.dir.parent().map(Path::to_path_buf).unwrap_or_default();
            return Some((parent, stem));
        }
        None
    }

    /// The path (without extension) a filter name stands for.
    fn base_path(&self, name: &str) -> PathBuf {
        let looks_like_path = name.contains('/') || name.ends_with(".conf") || name.ends_with(".local");
        if looks_like_path {
            let p = PathBuf::from(name);
            return if name.ends_with(".conf") || name.ends_with(".local") { p.with_extension("") } else { p };
        }
        match self.single_file() {
            Some((dir, stem)) if name.is_empty() || name == stem => dir.join(stem),
            Some((dir, _)) => dir.join(name),
            None => self.dir.join(name),
        }
    }

    /// fail2ban `ConfigReaderUnshared.read`: `name.conf`, `name.d/*.conf`,
    /// `name.local`, `name.d/*.local`, those that exist.
    fn config_files(base: &Path) -> Vec<PathBuf> {
        let with = |ext: &str| {
            let mut s = base.as_os_str().to_owned();
            s.push(ext);
            PathBuf::from(s)
        };
        let drop_ins = |ext: &str| {
            let mut v: Vec<PathBuf> = std::fs::read_dir(with(".d"))
                .map(|rd| {
                    rd.filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|x| x == ext))
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            v
        };
        let mut files = vec![with(".conf")];
        files.extend(drop_ins("conf"));
        files.push(with(".local"));
        files.extend(drop_ins("local"));
        files.into_iter().filter(|p| p.exists()).collect()
    }

    /// Load one filter with options (as given in `name[opt=value]`).
    ///
    /// `name` is a filter name in the directory (`sshd`), or a path to a
    /// `.conf` file. On error, every problem found (errors and warnings).
    ///
    /// `name` may itself carry options (`sshd[mode=ddos]`, as
    /// [`check_all`](Self::check_all) names variants); `options` override them.
    pub fn load(&self, name: &str, options: &BTreeMap<String, String>) -> Result<LoadedFilter, Vec<Diagnostic>> {
        if name.contains('[') && name.trim_end().ends_with(']') {
            let (n, mut o) = parse_filter_arg(name).map_err(|d| vec![d])?;
            o.extend(options.iter().map(|(k, v)| (k.clone(), v.clone())));
            return self.load(&n, &o);
        }
        let base = self.base_path(name);
        let display_stem = base.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let files = Self::config_files(&base);
        if files.is_empty() {
            return Err(vec![Diagnostic::error(
                codes::FILTER_NOT_FOUND,
                format!("filter {name:?} not found: no {0}.conf or {0}.local", base.display()),
            )]);
        }
        let mut diags = Vec::new();
        let mut cfg = Config::new();
        cfg.read(&files, &mut diags);
        if diags.iter().any(Diagnostic::is_error) {
            return Err(diags);
        }
        let result = resolve(&cfg, options, &mut diags);
        match result {
            Some(mut spec) if !diags.iter().any(Diagnostic::is_error) => {
                spec.0.name = format_filter_arg(&display_stem, options);
                Ok(LoadedFilter { spec: spec.0, journalmatch: spec.1, warnings: diags, files: cfg.files })
            }
            _ => Err(diags),
        }
    }

    /// Parse `name[opt=value, ...]` and load it.
    pub fn load_arg(&self, arg: &str) -> Result<LoadedFilter, Vec<Diagnostic>> {
        let (name, opts) = parse_filter_arg(arg).map_err(|d| vec![d])?;
        self.load(&name, &opts)
    }

    /// Names of all filters in the directory (stems of `*.conf`/`*.local`),
    /// sorted. Include-only files (`*common`) are listed too.
    pub fn filter_names(&self) -> Vec<String> {
        if let Some((_, stem)) = self.single_file() {
            return vec![stem];
        }
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "conf" || x == "local"))
                    .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names.dedup();
        names
    }

    /// Option combinations a filter declares: the default, and for each
    /// parameter selected through a nested tag (`<mdre-<mode>>`,
    /// `<lt_<logtype>/datepattern>`), each value that has a definition.
    pub fn declared_variants(&self, name: &str) -> Vec<BTreeMap<String, String>> {
        let files = Self::config_files(&self.base_path(name));
        let mut out = vec![BTreeMap::new()];
        if files.is_empty() {
            return out;
        }
        let mut cfg = Config::new();
        let mut diags = Vec::new();
        cfg.read(&files, &mut diags);
        for (param, values) in declared_params(&cfg) {
            let default = cfg
                .get("Definition", &param, &OMap::default())
                .ok()
                .or_else(|| cfg.get("Init", &param, &OMap::default()).ok())
                .or_else(|| cfg.get("DEFAULT", &param, &OMap::default()).ok());
            for v in values {
                if default.as_ref().is_some_and(|d| d.as_str() == v) {
                    continue;
                }
                out.push(BTreeMap::from([(param.clone(), v)]));
            }
        }
        out
    }

    /// Load every filter of the directory in every declared variant and
    /// report every problem at once: one entry per filter (name as
    /// displayed, e.g. `sshd[mode=ddos]`) with its diagnostics, errors and
    /// warnings; filters without any problem are included with an empty list.
    /// Include-only files (`*common`) are only checked for syntax. A
    /// variant does not repeat a diagnostic its filter's default already
    /// reported. Each name is valid input to [`load`](Self::load).
    pub fn check_all(&self) -> Vec<(String, Vec<Diagnostic>)> {
        let mut out = Vec::new();
        for name in self.filter_names() {
            if is_common(&name) {
                let mut cfg = Config::new();
                let mut diags = Vec::new();
                cfg.read(&Self::config_files(&self.base_path(&name)), &mut diags);
                out.push((name, diags));
                continue;
            }
            let mut seen: Vec<Diagnostic> = Vec::new();
            for opts in self.declared_variants(&name) {
                let diags = match self.load(&name, &opts) {
                    Ok(f) => f.warnings,
                    Err(d) => d,
                };
                let fresh: Vec<Diagnostic> = diags.into_iter().filter(|d| !seen.contains(d)).collect();
                seen.extend(fresh.iter().cloned());
                out.push((format_filter_arg(&name, &opts), fresh));
            }
        }
        out
    }
}

/// Parameters chosen by nested tags, with the values that have definitions.
fn declared_params(cfg: &Config) -> Vec<(String, Vec<String>)> {
    // Every option name (and `section/option`) that exists.
    let mut names: Vec<String> = cfg.defaults.keys().cloned().collect();
    for (sec, s) in cfg.sections.iter() {
        if sec.starts_with("KNOWN/") {
            continue;
        }
        for k in s.keys() {
            names.push(k.clone());
            names.push(format!("{sec}/{k}"));
        }
    }
    let mut raw: Vec<(&str, &str)> = cfg.defaults.iter().map(|(k, v)| (k.as_str(), v.v.as_str())).collect();
    for (_, s) in cfg.sections.iter() {
        raw.extend(s.iter().map(|(k, v)| (k.as_str(), v.v.as_str())));
    }
    let mut params: Vec<(String, Option<Vec<String>>)> = Vec::new();
    for (key, text) in raw {
        let mut from = 0;
        while let Some((s, e)) = tags::find_tag(text, from) {
            from = e;
            let param = &text[s + 1..e - 1];
            // The enclosing tag: `<prefix` before, `suffix>` after.
            let before = &text[..s];
            let Some(open) = before.rfind('<') else {
                continue;
            };
            let prefix = &before[open + 1..];
            if prefix.contains([' ', '>']) {
                continue;
            }
            let after = &text[e..];
            let Some(close) = after.find('>') else {
                continue;
            };
            let suffix = &after[..close];
            if suffix.contains([' ', '<']) {
                continue;
            }
            let cands: Vec<String> = names
                .iter()
                .filter_map(|n| {
                    // An option cannot select itself.
                    if n == key {
                        return None;
                    }
                    let mid = n.strip_prefix(prefix)?.strip_suffix(suffix)?;
                    (!mid.is_empty() && !mid.contains(['<', '>', '/', ' '])).then(|| mid.to_string())
                })
                .collect();
            let param = param.to_lowercase();
            match params.iter_mut().find(|(p, _)| *p == param) {
                Some((_, Some(set))) => {
                    let inter: Vec<String> = set.iter().filter(|v| cands.contains(v)).cloned().collect();
                    if !inter.is_empty() {
                        *set = inter;
                    }
                }
                Some((_, slot)) => *slot = Some(cands),
                None => params.push((param, Some(cands))),
            }
        }
    }
    params
        .into_iter()
        .filter_map(|(p, v)| {
            let mut v = v?;
            v.sort();
            v.dedup();
            (!v.is_empty()).then_some((p, v))
        })
        .collect()
}

fn spanned(cfg: &Config, t: &Traced) -> Spanned {
    Spanned { text: t.as_str().to_string(), at: cfg.source(t.first_origin()) }
}

fn diag_at(cfg: &Config, mut d: Diagnostic, origin: u32) -> Diagnostic {
    let src = cfg.source(origin);
    d.file = src.file;
    d.line = src.line;
    d
}

/// Where an option of `[Definition]` (or the defaults) was written.
fn option_origin(cfg: &Config, section: &str, opt: &str) -> u32 {
    cfg.sections.get(section).and_then(|s| s.get(opt)).or_else(|| cfg.defaults.get(opt)).map(|v| v.at).unwrap_or(0)
}

/// Regex tags fail2ban itself understands (not option references).
fn is_regex_tag(name: &str) -> bool {
    matches!(name, "HOST" | "ADDR" | "IP4" | "IP6" | "DNS" | "CIDR" | "SUBNET" | "SKIPLINES")
        || name.starts_with("F-")
        || name.starts_with("/F-")
}

/// Does `s` contain an unbalanced quote (Python `shlex.split` would fail)?
fn shlex_unbalanced(s: &str) -> bool {
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (None, '\\') | (Some('"'), '\\') if chars.next().is_none() => return true,
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
    }
    quote.is_some()
}

/// fail2ban `FilterReader.getOptions` + `getCombined` + `convert`.
fn resolve(
    cfg: &Config,
    options: &BTreeMap<String, String>,
    diags: &mut Vec<Diagnostic>,
) -> Option<(FilterSpec, Option<String>)> {
    let fatal = |e: GetError, diags: &mut Vec<Diagnostic>| {
        if let GetError::Fatal(d) = e {
            diags.push(d);
        }
    };
    // Options given with the name: vars for %(…)s (lower-cased), and initial Init values.
    let mut vars: OMap<Value> = OMap::default();
    let mut init: OMap<Traced> = OMap::default();
    for (k, v) in options {
        vars.insert(k.to_lowercase(), Value { v: Traced::new(v, 0), at: 0 });
        init.insert(k.clone(), Traced::new(v, 0));
    }
    if !cfg.has_section("Definition") {
        diags.push(
            Diagnostic::error(codes::NO_DEFINITION, "filter has no [Definition] section")
                .at(cfg.files.last().cloned().unwrap_or_default(), 0),
        );
        return None;
    }
    let mut opts: OMap<Traced> = OMap::default();
    for &opt in CONFIG_OPTS {
        if options.contains_key(opt) {
            continue;
        }
        match cfg.get("Definition", opt, &vars) {
            Ok(v) => opts.insert(opt.to_string(), v),
            Err(e) => fatal(e, diags),
        }
    }
    if cfg.has_section("Init") {
        for opt in cfg.own_options("Init") {
            let v = match cfg.get("Init", &opt, &OMap::default()) {
                Ok(v) => v,
                Err(e) => {
                    fatal(e, diags);
                    continue;
                }
            };
            if !opt.starts_with("known/") {
                init.insert(format!("known/{opt}"), v.clone());
            }
            if !init.contains(&opt) {
                init.insert(opt, v);
            }
        }
    }
    if diags.iter().any(Diagnostic::is_error) {
        return None;
    }
    let mut combined = opts;
    for (k, v) in init.iter() {
        combined.insert(k.clone(), v.clone());
    }
    let mut ignore = Vec::new();
    for k in combined.keys() {
        if let Some((base, _)) = split_conditional(k) {
            ignore.push(base.to_string());
        }
    }
    // Conditional options are never selected by the filter reader.
    for sec in ["Definition", "Init"] {
        if let Some(s) = cfg.sections.get(sec) {
            for (k, v) in s.iter() {
                if split_conditional(k).is_some() {
                    diags.push(diag_at(
                        cfg,
                        Diagnostic::warning(
                            codes::CONDITIONAL_IGNORED,
                            format!("conditional option {k:?} in [{sec}] is ignored"),
                        ),
                        v.at,
                    ));
                }
            }
        }
    }
    let mut cache: OMap<Option<Traced>> = OMap::default();
    let mut addrepl = |name: &str| -> Result<Option<Traced>, Diagnostic> {
        if let Some(v) = cache.get(name) {
            return Ok(v.clone());
        }
        let v = match cfg.get_ex("Definition", name, &vars) {
            Ok(v) => Some(v),
            Err(GetError::Fatal(d)) => return Err(d),
            Err(_) => None,
        };
        cache.insert(name.to_string(), v.clone());
        Ok(v)
    };
    match tags::substitute_recursive(&mut combined, &ignore, &mut addrepl) {
        Err(d) => {
            diags.push(d);
            return None;
        }
        Ok(Err(rec)) => {
            let origin = combined.get(&rec.tag).map(Traced::first_origin).unwrap_or(0);
            let d = if rec.too_large {
                Diagnostic::error(
                    codes::TOO_LARGE,
                    format!(
                        "<{}> grows beyond {} bytes while substituting <{}> (starts {:?})",
                        rec.tag,
                        config::MAX_VALUE_SIZE,
                        rec.found,
                        rec.value
                    ),
                )
            } else {
                Diagnostic::error(
                    codes::TAG_RECURSION,
                    format!(
                        "<{}> refers to itself through <{}> and cannot be resolved (value {:?})",
                        rec.tag, rec.found, rec.value
                    ),
                )
            };
            diags.push(diag_at(cfg, d, origin));
            return None;
        }
        Ok(Ok(())) => {}
    }

    let mut spec = FilterSpec { maxlines: 1, ..Default::default() };
    let lines = |v: &Traced| -> Vec<Traced> { v.split_lines().into_iter().filter(|l| !l.is_empty()).collect() };
    let check_tags = |t: &Traced, what: &str, diags: &mut Vec<Diagnostic>| {
        let s = t.as_str();
        let mut from = 0;
        while let Some((a, b)) = tags::find_tag(s, from) {
            from = b;
            let name = &s[a + 1..b - 1];
            let identifier = name.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'));
            // All-capital names are literal log text (`<NOSRV>`) or regex tags.
            let looks_literal = !name.chars().any(char::is_lowercase);
            if !identifier || looks_literal || is_regex_tag(name) || s[..a].ends_with("(?P") {
                continue;
            }
            diags.push(diag_at(
                cfg,
                Diagnostic::warning(
                    codes::TAG_UNRESOLVED,
                    format!("<{name}> in {what} is not defined; it is kept literally"),
                ),
                t.origin_at(a),
            ));
        }
    };
    if let Some(v) = combined.get("prefregex")
        && !v.is_empty()
    {
        check_tags(v, "prefregex", diags);
        spec.prefregex = Some(spanned(cfg, v));
    }
    for (key, target) in [("failregex", &mut spec.failregex), ("ignoreregex", &mut spec.ignoreregex)] {
        if let Some(v) = combined.get(key) {
            for l in lines(v) {
                check_tags(&l, key, diags);
                target.push(spanned(cfg, &l));
            }
        }
    }
    if let Some(v) = combined.get("datepattern") {
        spec.datepattern = Some(spanned(cfg, v));
    }
    if let Some(v) = combined.get("maxlines") {
        match v.as_str().trim().replace('_', "").parse::<i64>() {
            Ok(n) if n > 0 => spec.maxlines = n as usize,
            _ => diags.push(diag_at(
                cfg,
                Diagnostic::error(
                    codes::BAD_MAXLINES,
                    format!("maxlines must be an integer greater than zero, not {:?}", v.as_str()),
                ),
                v.first_origin().max(option_origin(cfg, "Definition", "maxlines")),
            )),
        }
    }
    let mut journalmatch = None;
    if let Some(v) = combined.get("journalmatch") {
        let ls: Vec<&str> = v.as_str().split('\n').filter(|l| !l.is_empty()).collect();
        for l in &ls {
            if shlex_unbalanced(l) {
                diags.push(diag_at(
                    cfg,
                    Diagnostic::error(codes::BAD_JOURNALMATCH, format!("journalmatch has unbalanced quotes: {l:?}")),
                    v.first_origin(),
                ));
            }
        }
        if !ls.is_empty() {
            journalmatch = Some(ls.join("\n"));
        }
    }
    if let Some(v) = combined.get("usedns") {
        diags.push(diag_at(
            cfg,
            Diagnostic::warning(
                codes::USEDNS_IGNORED,
                format!("usedns = {:?} is not supported in filters (no DNS look-ups); ignored", v.as_str()),
            ),
            option_origin(cfg, "Definition", "usedns"),
        ));
    }
    // logtimezone: given with the name, or written in [Definition] (extension).
    let tz = match options.get("logtimezone") {
        Some(v) => Some(v.clone()),
        None => cfg.get("Definition", "logtimezone", &vars).ok().map(|t| t.as_str().trim().to_string()),
    };
    spec.logtimezone = tz.filter(|t| !t.is_empty());
    // Settings that fail2ban applies to the jail, not the filter.
    let own_def: Vec<String> = cfg.own_options("Definition");
    for opt in own_def.iter().chain(options.keys()) {
        let at = option_origin(cfg, "Definition", opt);
        if opt == "ignorecommand" {
            diags.push(diag_at(
                cfg,
                Diagnostic::warning(
                    codes::IGNORECOMMAND_UNSUPPORTED,
                    "ignorecommand is not supported: the command is not run and ignores nothing",
                ),
                at,
            ));
        } else if JAIL_OPTS.contains(&opt.as_str()) {
            diags.push(diag_at(
                cfg,
                Diagnostic::warning(
                    codes::JAIL_OPTION_IGNORED,
                    format!("{opt} is a jail setting; in a filter it is ignored"),
                ),
                at,
            ));
        }
    }
    if spec.failregex.is_empty() {
        diags.push(diag_at(
            cfg,
            Diagnostic::error(codes::NO_FAILREGEX, "filter defines no failregex"),
            option_origin(cfg, "Definition", "failregex"),
        ));
        if option_origin(cfg, "Definition", "failregex") == 0
            && let Some(last) = diags.last_mut()
        {
            last.file = cfg.files.last().cloned();
        }
    }
    Some((spec, journalmatch))
}

#[cfg(test)]
mod tests;
