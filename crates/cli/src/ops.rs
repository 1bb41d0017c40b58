//! Operator commands on a daemon's state: `decisions`, `alerts`, `bouncers`,
//! `why`, `status`, `firewall remove`. They open the store in the configured
//! data directory (SQLite in WAL mode: safe next to the running daemon,
//! which picks up every change through the store's change stream).

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use stadtwache_core::{Duration, Key, Timestamp};
use stadtwache_enforce::Target as Net;
use stadtwache_store::{AlertFilter, Batch, DecisionId, DecisionRef, NewDecision, Origin, Store, StoredDecision};

use crate::daemon::config::Config;
use crate::daemon::{self, status};
use crate::timectx::{fmt_time, wall_clock};

/// Which daemon: its config (for the data directory and the firewall table).
pub struct Target {
    pub config: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
}

impl Target {
    pub fn config(&self) -> Result<Config> {
        let mut cfg = match &self.config {
            Some(p) => match daemon::load_config(Some(p)) {
                Some(c) => c,
                // A broken file (say, after a failed reload) must not lock
                // the operator out of the state: take its data directory.
                None => match lenient_data_dir(p) {
                    Some(dir) => {
                        eprintln!(
                            "stadtwache: the configuration {} has errors (above); using its data_dir {}",
                            p.display(),
                            dir.display()
                        );
                        let mut c = daemon::config::embedded_default();
                        c.daemon.data_dir = dir;
                        c
                    }
                    None => bail!("K001: the configuration {} has errors (listed above)", p.display()),
                },
            },
            None => daemon::config::embedded_default(),
        };
        if let Some(d) = &self.data_dir {
            cfg.daemon.data_dir = d.clone();
        }
        Ok(cfg)
    }

    fn store(&self) -> Result<(Config, stadtwache_store::SqliteStore)> {
        let cfg = self.config()?;
        let store = daemon::open_store(&cfg)?;
        Ok((cfg, store))
    }
}

/// `[daemon] data_dir` of a config that does not validate (if it parses at all).
fn lenient_data_dir(path: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(path).ok()?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    let dir = table.get("daemon").and_then(|d| d.get("data_dir")).and_then(|v| v.as_str());
    Some(dir.map_or_else(|| daemon::config::DaemonConfig::default().data_dir, PathBuf::from))
}

/// `ADDR` or `ADDR/PREFIX` (host bits cleared, a full-length prefix is the
/// address; the firewall's own normalisation), or any other text key.
pub fn parse_target(text: &str) -> Result<(Key, Option<u8>)> {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p.parse::<u8>().with_context(|| format!("invalid prefix length in {text:?}"))?)),
        None => (text, None),
    };
    let ip: IpAddr = match addr.parse() {
        Ok(ip) => ip,
        Err(_) if prefix.is_none() && !text.is_empty() => return Ok((Key::Text(text.into()), None)),
        Err(_) => bail!("{text:?} is not an address or network"),
    };
    let t = Net::new(ip, prefix).map_err(|e| anyhow::anyhow!("{text:?}: {e}"))?;
    Ok((Key::Ip(t.ip()), t.prefix()))
}

fn until_text(d: &StoredDecision) -> String {
    match d.decision.until {
        None => "permanent".into(),
        Some(u) => fmt_time(u),
    }
}

fn decision_row(d: &StoredDecision) -> String {
    format!(
        "{:>6}  {:<40} {:<9} {:<30} until {}{}",
        d.id.0,
        d.decision.target(),
        d.decision.origin.as_str(),
        d.decision.rule.as_deref().unwrap_or("-"),
        until_text(d),
        if d.decision.simulated { "  (simulated)" } else { "" }
    )
}

pub fn decisions_list(t: &Target, json: bool) -> Result<ExitCode> {
    let (_, store) = t.store()?;
    let list = store.active_decisions(wall_clock())?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &list)?;
        writeln!(out)?;
    } else {
        writeln!(out, "{:>6}  {:<40} {:<9} {:<30} until", "id", "target", "origin", "rule")?;
        for d in &list {
            writeln!(out, "{}", decision_row(d))?;
        }
        writeln!(out, "{} active decision(s)", list.len())?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn decisions_add(t: &Target, target: &str, duration: &str, reason: Option<String>) -> Result<ExitCode> {
    let (key, prefix) = parse_target(target)?;
    let now = wall_clock();
    let until = if duration == "permanent" || duration == "-1" {
        None
    } else {
        let d = Duration::parse(duration).map_err(|e| anyhow::anyhow!("--duration {duration:?}: {e}"))?;
        if d.0 <= 0 {
            bail!("--duration must be positive (or `permanent`)");
        }
        Some(now.saturating_add(d))
    };
    let (_, mut store) = t.store()?;
    let mut d = NewDecision::new(key, prefix, Origin::Admin, now, until);
    d.rule = Some("manual".into());
    d.reason = serde_json::json!({ "by": "cli", "reason": reason });
    let done = store.commit_batch(&Batch { decisions: vec![d], ..Batch::default() })?;
    let id = done.decisions.first().map_or(0, |i| i.0);
    println!("decision {id} added: {target} until {}", until.map_or("permanent".into(), fmt_time));
    Ok(ExitCode::SUCCESS)
}

pub fn decisions_delete(t: &Target, what: &str) -> Result<ExitCode> {
    let which = match what.strip_prefix('#').unwrap_or(what).parse::<i64>() {
        Ok(id) if what.starts_with('#') || !what.contains('.') && !what.contains(':') => {
            DecisionRef::Id(DecisionId(id))
        }
        _ => {
            let (key, prefix) = parse_target(what)?;
            DecisionRef::Target { key, prefix }
        }
    };
    let (_, mut store) = t.store()?;
    let n = store.delete_decisions(&which, wall_clock())?;
    println!("{n} decision(s) deleted");
    Ok(if n > 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

pub fn alerts_list(
    t: &Target,
    rule: Option<String>,
    key: Option<String>,
    limit: usize,
    json: bool,
) -> Result<ExitCode> {
    let (_, store) = t.store()?;
    let key = match key {
        Some(k) => Some(parse_target(&k)?.0),
        None => None,
    };
    let alerts = store.alerts(&AlertFilter { rule, key, since: None, before: None }, limit)?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &alerts)?;
        writeln!(out)?;
    } else {
        for a in &alerts {
            writeln!(
                out,
                "{:>6}  {}  {:<40} {:<30} count {}",
                a.id.0,
                fmt_time(a.alert.time),
                a.alert.key.to_string(),
                a.alert.rule,
                a.alert.count
            )?;
        }
        writeln!(out, "{} alert(s)", alerts.len())?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn bouncers_add(t: &Target, name: &str) -> Result<ExitCode> {
    let (_, mut store) = t.store()?;
    let key = store.add_bouncer(name, wall_clock())?;
    println!("bouncer {name} added; its API key (shown only now, store it in the bouncer's config):");
    println!("{key}");
    Ok(ExitCode::SUCCESS)
}

pub fn bouncers_list(t: &Target, json: bool) -> Result<ExitCode> {
    let (_, store) = t.store()?;
    let list = store.list_bouncers()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        for b in &list {
            println!(
                "{:<30} created {}  last pull {}",
                b.name,
                fmt_time(b.created),
                b.last_pull.map_or("never".into(), fmt_time)
            );
        }
        println!("{} bouncer(s)", list.len());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn bouncers_delete(t: &Target, name: &str) -> Result<ExitCode> {
    let (_, mut store) = t.store()?;
    if store.delete_bouncer(name)? {
        println!("bouncer {name} deleted");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("no bouncer named {name}");
        Ok(ExitCode::from(1))
    }
}

/// `why IP`: every decision about the address (and networks containing it),
/// with the lines, rule, window and policy that led to it, and where it is
/// enforced now.
pub fn why(t: &Target, target: &str, json: bool) -> Result<ExitCode> {
    let (cfg, store) = t.store()?;
    let (key, _) = parse_target(target)?;
    let now = wall_clock();
    let mut decisions = store.decisions_for(&key)?;
    // Networks that contain the address.
    if let Key::Ip(ip) = &key {
        for d in store.active_decisions(now)? {
            if let (Key::Ip(net), Some(p)) = (&d.decision.key, d.decision.prefix) {
                let covers = Net::new(*net, Some(p)).is_ok_and(|t| t.contains(*ip));
                if covers && !decisions.iter().any(|x| x.id == d.id) {
                    decisions.push(d);
                }
            }
        }
    }
    let alerts = store.alerts(&AlertFilter { key: Some(key.clone()), ..AlertFilter::default() }, 50)?;
    let fw = crate::daemon::stages::firewall_state(&cfg);
    let st = status::read(&cfg.daemon.data_dir).ok();
    if json {
        let v = serde_json::json!({
            "target": target,
            "decisions": decisions.iter().map(|d| {
                let full = store.decision(d.id).ok().flatten().unwrap_or_else(|| d.clone());
                serde_json::json!({
                    "decision": full,
                    "active": d.is_active(now),
                    "enforcement": stage_state(&fw, d, now, st.as_ref()),
                })
            }).collect::<Vec<_>>(),
            "alerts": alerts,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    if decisions.is_empty() {
        writeln!(out, "{target}: no decision recorded ({} alert(s))", alerts.len())?;
    }
    for d in &decisions {
        let full = store.decision(d.id)?.unwrap_or_else(|| d.clone());
        let nd = &full.decision;
        writeln!(
            out,
            "decision {} on {} — {}",
            full.id.0,
            nd.target(),
            if d.is_active(now) { "ACTIVE" } else { "ended" }
        )?;
        writeln!(out, "  origin    {} {}", nd.origin.as_str(), nd.rule.as_deref().unwrap_or(""))?;
        writeln!(out, "  created   {}", fmt_time(nd.created))?;
        writeln!(out, "  until     {}", until_text(&full))?;
        if let (Some(at), Some(end)) = (full.deleted_at, full.end) {
            writeln!(out, "  ended     {} ({end:?})", fmt_time(at))?;
        }
        if !nd.evidence.is_empty() {
            writeln!(out, "  lines:")?;
            for e in &nd.evidence {
                writeln!(out, "    {}:{}: {}", e.input, e.line, e.text)?;
            }
        }
        let r = &nd.reason;
        if let Some(count) = r.get("count") {
            let ts = |k: &str| r.get(k).and_then(|v| v.as_i64()).map_or("?".into(), |t| fmt_time(Timestamp(t)));
            writeln!(
                out,
                "  window    {count} failure(s) from {} to {} (rule {}), window {}",
                ts("first_seen"),
                ts("trigger_time"),
                nd.rule.as_deref().unwrap_or("?"),
                r.get("window").map_or(String::new(), |w| w.to_string())
            )?;
        }
        if let Some(steps) = r.get("steps").and_then(|s| s.as_array()) {
            writeln!(out, "  policy:")?;
            for s in steps {
                writeln!(out, "    - {s}")?;
            }
        } else if !r.is_null() {
            writeln!(out, "  reason    {r}")?;
        }
        let stages = stage_state(&fw, d, now, st.as_ref());
        writeln!(out, "  enforcement:")?;
        for (k, v) in stages.as_object().into_iter().flatten() {
            writeln!(out, "    {k}: {}", v.as_str().unwrap_or(&v.to_string()))?;
        }
    }
    if !alerts.is_empty() {
        writeln!(out, "alerts:")?;
        for a in &alerts {
            writeln!(out, "  {}  {}  count {}", fmt_time(a.alert.time), a.alert.rule, a.alert.count)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn stage_state(
    fw: &Result<Vec<String>, String>,
    d: &StoredDecision,
    now: Timestamp,
    st: Option<&status::Status>,
) -> serde_json::Value {
    let target = d.decision.target();
    let active = d.is_active(now);
    let nft = match fw {
        _ if d.decision.simulated => "not enforced (simulated)".to_string(),
        Ok(set) if set.iter().any(|e| e == &target) => "in the nftables set (traffic dropped)".to_string(),
        Ok(_) if active => "MISSING from the nftables set (the next reconciliation repairs it)".to_string(),
        Ok(_) => "not in the nftables set".to_string(),
        Err(e) => e.clone(),
    };
    let api = match st {
        _ if d.decision.simulated => "not served (simulated)".to_string(),
        Some(s) if s.running && active => format!("served as deny by the decision API ({})", s.stages.api),
        Some(_) if active => "the daemon is not running; bouncers get it at their next pull".to_string(),
        _ => "not served (ended)".to_string(),
    };
    serde_json::json!({ "nftables": nft, "api": api })
}

pub fn status(t: &Target, json: bool) -> Result<ExitCode> {
    let cfg = t.config()?;
    let st = match status::read(&cfg.daemon.data_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "no status in {} ({e}): the daemon has not run with this data directory",
                cfg.daemon.data_dir.display()
            );
            return Ok(ExitCode::from(1));
        }
    };
    let age = wall_clock().as_secs_f64() - st.updated_unix;
    let alive = st.running && Path::new(&format!("/proc/{}", st.pid)).exists() && age < 60.0;
    if json {
        let mut v = serde_json::to_value(&st)?;
        v["alive"] = serde_json::Value::Bool(alive);
        v["age_seconds"] = serde_json::json!(age);
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(if alive { ExitCode::SUCCESS } else { ExitCode::from(3) });
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "daemon: {} (pid {}, status {:.0} s old, config {})",
        if alive { "running" } else { "NOT running" },
        st.pid,
        age,
        st.config.as_deref().unwrap_or("embedded default")
    )?;
    writeln!(out, "sources:")?;
    for s in &st.sources {
        let dropped: Vec<String> = s.dropped.iter().filter(|(_, v)| **v > 0).map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(
            out,
            "  {:<16} {:<8} {} lines read, {} processed, lag {}{}{}",
            s.name,
            s.kind,
            s.lines,
            s.processed,
            match s.lag_seconds {
                Some(l) if s.kind != "file" => format!("{l:.3} s"),
                _ => format!("{} bytes", s.lag_bytes),
            },
            if dropped.is_empty() { String::new() } else { format!(", dropped: {}", dropped.join(", ")) },
            if s.running { "" } else { " (stopped)" }
        )?;
        for i in &s.issues {
            writeln!(out, "      ! {i}")?;
        }
    }
    writeln!(out, "detection: {} tracked keys, {} evicted", st.tracked_keys, st.evicted_keys)?;
    for r in st.rules.iter().filter(|r| r.hits > 0) {
        writeln!(
            out,
            "  {}/{}: {} hits, {} alerts, {} bans, {} allowlisted, {} stale",
            r.source, r.rule, r.hits, r.alerts, r.bans, r.allowlisted, r.stale
        )?;
    }
    writeln!(
        out,
        "store: {} commits, {} failed{}",
        st.commits,
        st.commit_failures,
        st.last_commit_error.as_ref().map_or(String::new(), |e| format!(" (last: {e})"))
    )?;
    writeln!(out, "enforcement:")?;
    writeln!(out, "  nftables: {}", st.stages.nftables)?;
    writeln!(out, "  api:      {}", st.stages.api)?;
    if st.reload.attempts > 0 {
        writeln!(
            out,
            "reloads: {} ({} failed){}",
            st.reload.attempts,
            st.reload.failures,
            st.reload.last_error.as_ref().map_or(String::new(), |e| format!("; last error:\n{e}"))
        )?;
    }
    Ok(if alive { ExitCode::SUCCESS } else { ExitCode::from(3) })
}

pub fn firewall_remove(t: &Target) -> Result<ExitCode> {
    let cfg = t.config()?;
    crate::daemon::stages::firewall_remove(&cfg)?;
    println!("removed table inet {} (nothing else was touched)", cfg.nftables.nft.table);
    Ok(ExitCode::SUCCESS)
}

pub fn check_config(path: &Path) -> ExitCode {
    let loaded = daemon::config::load(path);
    for d in &loaded.diagnostics {
        eprintln!("{d}");
    }
    match loaded.config {
        Some(c) => {
            println!("{}: ok ({} source(s))", path.display(), c.sources.len());
            ExitCode::SUCCESS
        }
        None => {
            let n = loaded.diagnostics.iter().filter(|d| d.is_error()).count();
            println!("{}: {n} error(s)", path.display());
            ExitCode::from(1)
        }
    }
}
