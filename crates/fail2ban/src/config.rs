//! Several INI files merged the way fail2ban merges them: `[INCLUDES]`
//! `before`/`after`, `.local` overrides, `KNOWN/<section>` copies of the
//! values a later file overrode, and `%(name)s` interpolation including
//! `%(section/name)s`, `%(known/name)s`, `%(default/name)s` and `%(__name__)s`.

use std::path::{Path, PathBuf};

use stadtwache_core::{Diagnostic, SourceRef};

use crate::codes;
use crate::ini::{self, DEFAULT_SECTION, IniFile, Section, Value};
use crate::traced::{OMap, Sources, Traced};

const MAX_INTERPOLATION_DEPTH: usize = 10;
/// Largest file read (filters are a few KiB).
const MAX_FILE_SIZE: u64 = 4 << 20;
/// Largest value after `%(name)s` or `<tag>` expansion.
pub(crate) const MAX_VALUE_SIZE: usize = 1 << 20;

/// Read at most `MAX_FILE_SIZE` bytes; None = too large.
fn read_capped(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(path)?.take(MAX_FILE_SIZE + 1).read_to_end(&mut buf)?;
    Ok((buf.len() as u64 <= MAX_FILE_SIZE).then_some(buf))
}

/// Why a `get` found nothing (not an error in most callers).
#[derive(Debug)]
pub(crate) enum GetError {
    NoSection,
    NoOption,
    /// A real problem (interpolation).
    Fatal(Diagnostic),
}

/// Merged configuration of a filter and everything it includes.
#[derive(Debug, Default)]
pub(crate) struct Config {
    pub sources: Sources,
    pub defaults: Section,
    pub sections: OMap<Section>,
    /// Files actually read, in merge order.
    pub files: Vec<PathBuf>,
}

/// Does `name` match fail2ban's `^(\w+)(\?.+)$` (a conditional section/option)?
pub(crate) fn split_conditional(name: &str) -> Option<(&str, &str)> {
    let q = name.find('?')?;
    let (base, cond) = name.split_at(q);
    if base.is_empty() || !base.chars().all(is_word) || cond.len() < 2 {
        return None;
    }
    Some((base, cond))
}

pub(crate) fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// A file read on its own (cached per load).
struct FileCache {
    entries: Vec<(PathBuf, Option<IniFile>)>,
}

impl Config {
    pub(crate) fn new() -> Self {
        Config { sources: Sources::new(), ..Default::default() }
    }

    fn read_one(&mut self, cache: &mut FileCache, path: &Path, diags: &mut Vec<Diagnostic>) -> Option<IniFile> {
        if let Some((_, f)) = cache.entries.iter().find(|(p, _)| p == path) {
            return f.clone();
        }
        let parsed = if path.is_file() {
            match read_capped(path) {
                Ok(None) => {
                    diags.push(
                        Diagnostic::error(codes::TOO_LARGE, format!("file larger than {MAX_FILE_SIZE} bytes"))
                            .at(path, 0),
                    );
                    None
                }
                Ok(Some(bytes)) => match String::from_utf8(bytes) {
                    Ok(text) => {
                        let (f, d) = ini::parse(path, &text, &mut self.sources);
                        diags.extend(d);
                        Some(f)
                    }
                    Err(e) => {
                        diags.push(Diagnostic::error(codes::FILE_UNREADABLE, format!("not UTF-8: {e}")).at(path, 0));
                        None
                    }
                },
                Err(e) => {
                    diags.push(Diagnostic::error(codes::FILE_UNREADABLE, format!("cannot read: {e}")).at(path, 0));
                    None
                }
            }
        } else {
            None
        };
        cache.entries.push((path.to_path_buf(), parsed.clone()));
        parsed
    }

    /// fail2ban `_expandConfFilesWithLocal`.
    fn expand_with_local(files: &[PathBuf]) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for f in files {
            out.push(f.clone());
            let local = f.with_extension("local");
            if !files.contains(&local) && local.is_file() {
                out.push(local);
            }
        }
        out
    }

    fn includes(
        &mut self,
        cache: &mut FileCache,
        files: &[PathBuf],
        seen: &[PathBuf],
        diags: &mut Vec<Diagnostic>,
    ) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for f in Self::expand_with_local(files) {
            out.extend(self.includes_one(cache, &f, seen, diags));
        }
        out
    }

    fn includes_one(
        &mut self,
        cache: &mut FileCache,
        resource: &Path,
        seen: &[PathBuf],
        diags: &mut Vec<Diagnostic>,
    ) -> Vec<PathBuf> {
        let Some(ini) = self.read_one(cache, resource, diags) else {
            return Vec::new();
        };
        let dir = resource.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut before = Vec::new();
        let mut after = Vec::new();
        if ini.sections.contains("INCLUDES") {
            // Interpolated against this file alone, as fail2ban does.
            let single = Config {
                sources: self.sources.clone(),
                defaults: ini.defaults.clone(),
                sections: ini.sections.clone(),
                files: Vec::new(),
            };
            for (opt, list) in [("before", &mut before), ("after", &mut after)] {
                let val = match single.get("INCLUDES", opt, &OMap::default()) {
                    Ok(v) => v,
                    Err(GetError::Fatal(d)) => {
                        diags.push(d);
                        continue;
                    }
                    Err(_) => continue,
                };
                let at = single
                    .sections
                    .get("INCLUDES")
                    .and_then(|s| s.get(opt))
                    .or_else(|| single.defaults.get(opt))
                    .map(|v| v.at)
                    .unwrap_or(0);
                for name in val.as_str().split('\n') {
                    if name.is_empty() {
                        continue;
                    }
                    let r = if Path::new(name).is_absolute() { PathBuf::from(name) } else { dir.join(name) };
                    if seen.contains(&r) {
                        continue;
                    }
                    if !r.exists() && r.extension().is_none_or(|e| e != "local") {
                        let src = self.sources.get(at).clone();
                        diags.push(
                            Diagnostic::warning(
                                codes::INCLUDE_MISSING,
                                format!("included file {} does not exist", r.display()),
                            )
                            .at(src.file.unwrap_or_else(|| resource.to_path_buf()), src.line),
                        );
                    }
                    let mut s = seen.to_vec();
                    s.push(resource.to_path_buf());
                    list.extend(self.includes(cache, std::slice::from_ref(&r), &s, diags));
                }
            }
        }
        let mut out = before;
        out.push(resource.to_path_buf());
        out.extend(after);
        out
    }

    /// Read `files` with their includes and merge them (fail2ban
    /// `SafeConfigParserWithIncludes.read`).
    pub(crate) fn read(&mut self, files: &[PathBuf], diags: &mut Vec<Diagnostic>) {
        let mut cache = FileCache { entries: Vec::new() };
        let full = self.includes(&mut cache, files, &[], diags);
        for f in full {
            let Some(ini) = self.read_one(&mut cache, &f, diags) else {
                continue;
            };
            self.files.push(f.clone());
            for (k, v) in ini.defaults.iter() {
                self.defaults.insert(k.clone(), v.clone());
            }
            for (name, sec) in ini.sections.iter() {
                let (name, sec) = match split_conditional(name) {
                    Some((base, cond)) => {
                        let mut s = Section::default();
                        for (k, v) in sec.iter() {
                            s.insert(format!("{k}{cond}"), v.clone());
                        }
                        (base.to_string(), s)
                    }
                    None => (name.clone(), sec.clone()),
                };
                if let Some(existing) = self.sections.get(&name) {
                    let mut known = Section::default();
                    for (k, v) in existing.iter() {
                        if sec.contains(k) {
                            known.insert(k.clone(), v.clone());
                        }
                    }
                    let kname = format!("KNOWN/{name}");
                    if self.sections.get(&kname).is_none() {
                        self.sections.insert(kname.clone(), Section::default());
                    }
                    let ks = self.sections.get_mut(&kname).expect("just inserted");
                    for (k, v) in known.iter() {
                        ks.insert(k.clone(), v.clone());
                    }
                    let ex = self.sections.get_mut(&name).expect("exists");
                    for (k, v) in sec.iter() {
                        ex.insert(k.clone(), v.clone());
                    }
                } else {
                    self.sections.insert(name, sec);
                }
            }
        }
    }

    pub(crate) fn has_section(&self, s: &str) -> bool {
        self.sections.contains(s)
    }

    /// Raw value lookup through vars → section → defaults.
    fn lookup<'a>(&'a self, section: &str, vars: &'a OMap<Value>, key: &str) -> Result<Option<&'a Value>, GetError> {
        let sec = if section == DEFAULT_SECTION {
            None
        } else {
            Some(self.sections.get(section).ok_or(GetError::NoSection)?)
        };
        Ok(vars.get(key).or_else(|| sec.and_then(|s| s.get(key))).or_else(|| self.defaults.get(key)))
    }

    /// Python `ConfigParser.get(section, option, vars=vars)` with fail2ban's
    /// interpolation. `vars` keys must be lower-case.
    pub(crate) fn get(&self, section: &str, option: &str, vars: &OMap<Value>) -> Result<Traced, GetError> {
        let option = option.to_lowercase();
        let val = self.lookup(section, vars, &option)?.ok_or(GetError::NoOption)?;
        let mut out = Traced::default();
        self.interpolate(section, &option, &val.v, val.at, vars, 1, &mut out)?;
        Ok(out)
    }

    /// The raw value a `%(sec/opt)s` reference maps to (fail2ban `_map_section_options`).
    fn section_ref(&self, section: &str, name: &str) -> Option<&Value> {
        let slash = name.find('/')?;
        let (sec, opt) = (&name[..slash], &name[slash + 1..]);
        if sec.is_empty() || !sec.chars().all(|c| is_word(c) || c == '-') || opt.is_empty() {
            return None;
        }
        let seclwr = sec.to_lowercase();
        let found = if seclwr == "default" {
            None
        } else if seclwr == "known" {
            self.sections.get(&format!("KNOWN/{section}")).and_then(|s| s.get(opt))
        } else {
            match self.sections.get(sec) {
                None => return None,
                Some(s) => s.get(opt),
            }
        };
        found.or_else(|| self.defaults.get(opt))
    }

    #[allow(clippy::too_many_arguments)]
    fn interpolate(
        &self,
        section: &str,
        option: &str,
        rest: &Traced,
        at: u32,
        vars: &OMap<Value>,
        depth: usize,
        out: &mut Traced,
    ) -> Result<(), GetError> {
        let fatal = |code: &'static str, msg: String| {
            let src = self.sources.get(rest.first_origin().max(at)).clone();
            let src = if src.file.is_some() { src } else { self.sources.get(at).clone() };
            let mut d = Diagnostic::error(code, msg);
            d.file = src.file;
            d.line = src.line;
            GetError::Fatal(d)
        };
        if depth > MAX_INTERPOLATION_DEPTH {
            return Err(fatal(
                codes::INTERP_DEPTH,
                format!("[{section}] {option}: %(…)s references nest deeper than {MAX_INTERPOLATION_DEPTH} levels"),
            ));
        }
        let text = rest.as_str();
        let mut pos = 0;
        while pos < text.len() {
            let Some(p) = text[pos..].find('%').map(|p| p + pos) else {
                out.push(&rest.slice(pos, text.len()));
                break;
            };
            out.push(&rest.slice(pos, p));
            let after = &text[p + 1..];
            if after.starts_with('%') {
                out.push(&rest.slice(p, p + 1));
                pos = p + 2;
            } else if let Some(inner) = after.strip_prefix('(') {
                let close = inner.find(')').filter(|&c| c > 0 && inner[c + 1..].starts_with('s'));
                let Some(close) = close else {
                    return Err(fatal(
                        codes::INTERP_SYNTAX,
                        format!("[{section}] {option}: bad interpolation reference {:?}", &text[p..]),
                    ));
                };
                let name = &inner[..close];
                pos = p + 2 + close + 2;
                let var = name.to_lowercase();
                let v: Traced = if var == "__name__" {
                    Traced::new(section, rest.origin_at(p))
                } else {
                    let found = match self.lookup(section, vars, &var)? {
                        Some(v) => Some(v),
                        None if name == var => self.section_ref(section, name),
                        None => None,
                    };
                    match found {
                        Some(v) => v.v.clone(),
                        None => {
                            return Err(fatal(
                                codes::INTERP_MISSING,
                                format!("[{section}] {option}: %({name})s refers to an undefined option"),
                            ));
                        }
                    }
                };
                if v.as_str().contains('%') {
                    self.interpolate(section, option, &v, at, vars, depth + 1, out)?;
                } else {
                    out.push(&v);
                }
                if out.as_str().len() > MAX_VALUE_SIZE {
                    return Err(fatal(
                        codes::TOO_LARGE,
                        format!("[{section}] {option}: value grows beyond {MAX_VALUE_SIZE} bytes while interpolating"),
                    ));
                }
            } else {
                return Err(fatal(
                    codes::INTERP_SYNTAX,
                    format!("[{section}] {option}: '%' must be followed by '%' or '(', found {:?}", &text[p..]),
                ));
            }
        }
        Ok(())
    }

    /// fail2ban `get_ex`: like `get`, but `sec/opt` names a section's option.
    pub(crate) fn get_ex(&self, section: &str, option: &str, vars: &OMap<Value>) -> Result<Traced, GetError> {
        if let Some(slash) = option.find('/') {
            let (sec, opt) = (&option[..slash], &option[slash + 1..]);
            let ok_sec = !sec.is_empty() && sec.chars().all(|c| is_word(c) || c == '-');
            let ok_opt = !opt.is_empty() && !opt.chars().any(|c| c.is_whitespace() || c == '>');
            if ok_sec && ok_opt {
                let seclwr = sec.to_lowercase();
                let tries: Vec<String> = if seclwr == "known" {
                    vec![format!("KNOWN/{section}"), section.to_string()]
                } else if seclwr == "default" {
                    vec![DEFAULT_SECTION.to_string()]
                } else {
                    vec![sec.to_string()]
                };
                for s in tries {
                    match self.get(&s, opt, &OMap::default()) {
                        Ok(v) => return Ok(v),
                        Err(GetError::Fatal(d)) => return Err(GetError::Fatal(d)),
                        Err(_) => {}
                    }
                }
            }
        }
        self.get(section, option, vars)
    }

    /// Own option names of a section (without defaults).
    pub(crate) fn own_options(&self, section: &str) -> Vec<String> {
        self.sections.get(section).map(|s| s.keys().cloned().collect()).unwrap_or_default()
    }

    pub(crate) fn source(&self, id: u32) -> SourceRef {
        self.sources.get(id).clone()
    }
}
