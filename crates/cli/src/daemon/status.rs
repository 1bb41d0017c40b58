//! `status.json` in the data directory: what `stadtwache status` shows.
//! Rewritten atomically (temp file + rename) every `status_interval`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::config::Config;
use super::sources::SourceStatus;
use super::{Committer, Running, stages};
use crate::timectx::wall_clock;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ReloadStatus {
    pub attempts: u64,
    pub failures: u64,
    pub last_ok_unix: Option<f64>,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RuleStatus {
    pub source: String,
    pub rule: String,
    pub hits: u64,
    pub alerts: u64,
    pub bans: u64,
    pub allowlisted: u64,
    /// Failures older than the rule's window when read (ignored, as fail2ban).
    pub stale: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Status {
    pub pid: u32,
    pub running: bool,
    pub updated_unix: f64,
    pub config: Option<String>,
    pub sources: Vec<SourceStatus>,
    pub rules: Vec<RuleStatus>,
    pub tracked_keys: u64,
    pub evicted_keys: u64,
    pub commits: u64,
    pub commit_failures: u64,
    pub last_commit_error: Option<String>,
    pub stages: stages::StageStatus,
    pub reload: ReloadStatus,
}

impl Status {
    pub fn stopped(cfg: &Config) -> Status {
        Status {
            pid: std::process::id(),
            running: false,
            updated_unix: wall_clock().as_secs_f64(),
            config: cfg.file.as_ref().map(|p| p.display().to_string()),
            ..Status::default()
        }
    }
}

pub(super) fn collect(
    cfg: &Config,
    running: &Running,
    committer: &Committer,
    stages: &stages::Stages,
    reloads: &std::sync::Mutex<ReloadStatus>,
) -> Status {
    let mut sources = Vec::new();
    for (h, e) in running.sources.iter().zip(&running.engine.sources) {
        let s = h.status.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = s.clone();
        out.processed = e.lines;
        out.lag_seconds = e.lag_seconds;
        sources.push(out);
    }
    let mut rules = Vec::new();
    let (mut tracked, mut evicted) = (0, 0);
    for e in &running.engine.sources {
        let p = &e.pipeline;
        for (i, c) in p.stats.rules.iter().enumerate() {
            rules.push(RuleStatus {
                source: e.config.name.clone(),
                rule: c.name.clone(),
                hits: c.hits,
                alerts: c.alerts,
                bans: c.bans,
                allowlisted: c.allowlisted,
                stale: p.stale.get(i).copied().unwrap_or(0),
            });
        }
        let ds = p.detector_stats();
        tracked += ds.tracked_keys as u64;
        evicted += ds.evicted;
    }
    Status {
        pid: std::process::id(),
        running: true,
        updated_unix: wall_clock().as_secs_f64(),
        config: cfg.file.as_ref().map(|p| p.display().to_string()),
        sources,
        rules,
        tracked_keys: tracked,
        evicted_keys: evicted,
        commits: committer.commits,
        commit_failures: committer.failures,
        last_commit_error: committer.last_error.clone(),
        stages: stages.status(),
        reload: reloads.lock().unwrap_or_else(|p| p.into_inner()).clone(),
    }
}

pub const FILE: &str = "status.json";

pub fn write(dir: &Path, st: &Status) -> std::io::Result<()> {
    let tmp = dir.join(".status.json.tmp");
    let text = serde_json::to_vec_pretty(st).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, dir.join(FILE))
}

pub fn read(dir: &Path) -> std::io::Result<Status> {
    let text = std::fs::read(dir.join(FILE))?;
    serde_json::from_slice(&text).map_err(std::io::Error::other)
}
