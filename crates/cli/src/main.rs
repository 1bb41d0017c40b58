//! `stadtwache` — the command line.
//!
//! This file only parses arguments and maps results to exit codes; the work
//! is in the modules: `ruleset` (assemble compiled rules and window specs),
//! `replay` (the offline pipeline acquire → match → detect → decide),
//! `report` (human and JSON output), `explain`, `testfilter`, `check`.

mod check;
mod daemon;
mod engine;
mod explain;
mod ops;
mod replay;
mod report;
mod ruleset;
mod testfilter;
mod timectx;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Detect and block automated attacks: log-based detection with fail2ban
/// filters (unchanged) and Stadtwache's own rule pack.
#[derive(Parser, Debug)]
#[command(name = "stadtwache", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Replay log files (plain, .gz, or - for stdin) through rules, windows and policy.
    Replay(ReplayArgs),
    /// Why was (or wasn't) an address banned? Replays and prints the lineage of every decision.
    Explain(ExplainArgs),
    /// Test one filter against a log file, like fail2ban-regex.
    TestFilter(TestFilterArgs),
    /// Check fail2ban filters and native rules, or a daemon config; print every problem, exit 1 on errors.
    Check(CheckArgs),
    /// Run the daemon: follow log sources, detect, decide, enforce (nftables, decision API).
    Run(RunArgs),
    /// List, add or delete decisions (bans) in the daemon's store.
    #[command(subcommand)]
    Decisions(DecisionsCmd),
    /// List alerts (rules that triggered).
    #[command(subcommand)]
    Alerts(AlertsCmd),
    /// Manage API keys of bouncers (CrowdSec-compatible clients).
    #[command(subcommand)]
    Bouncers(BouncersCmd),
    /// The lineage of every decision about an address: lines → rule → window → policy → enforcement.
    Why(WhyArgs),
    /// Sources, lag, counts and enforcement health of the running daemon.
    Status(StatusArgs),
    /// Firewall maintenance.
    #[command(subcommand)]
    Firewall(FirewallCmd),
}

/// Which daemon's state to work on.
#[derive(Args, Debug, Clone)]
struct TargetArgs {
    /// The daemon's config file (default: the embedded default).
    #[arg(long, short = 'c', value_name = "FILE", env = "STADTWACHE_CONFIG")]
    config: Option<PathBuf>,
    /// Override the config's data directory.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

impl TargetArgs {
    fn target(&self) -> ops::Target {
        ops::Target { config: self.config.clone(), data_dir: self.data_dir.clone() }
    }
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Config file (TOML). Without it: the embedded default (the usual log files that exist,
    /// SQLite under /var/lib/stadtwache, nftables in dry-run, API on 127.0.0.1:8089).
    #[arg(long, short = 'c', value_name = "FILE", env = "STADTWACHE_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum DecisionsCmd {
    /// Active decisions.
    List {
        #[command(flatten)]
        t: TargetArgs,
        #[arg(long)]
        json: bool,
    },
    /// Ban an address or network by hand.
    Add {
        /// Address, network (CIDR) or other key.
        target: String,
        /// How long: 4h, 1d, 30m, or `permanent`.
        #[arg(long, default_value = "4h")]
        duration: String,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        t: TargetArgs,
    },
    /// End decisions: by id (`#12` or `12`) or every decision on a target.
    Delete {
        what: String,
        #[command(flatten)]
        t: TargetArgs,
    },
}

#[derive(Subcommand, Debug)]
enum AlertsCmd {
    List {
        #[arg(long)]
        rule: Option<String>,
        /// Only alerts about this address.
        #[arg(long)]
        ip: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        t: TargetArgs,
    },
}

#[derive(Subcommand, Debug)]
enum BouncersCmd {
    /// Create a bouncer and print its API key (once).
    Add {
        name: String,
        #[command(flatten)]
        t: TargetArgs,
    },
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        t: TargetArgs,
    },
    Delete {
        name: String,
        #[command(flatten)]
        t: TargetArgs,
    },
}

#[derive(Args, Debug)]
struct WhyArgs {
    /// The address (or network, or other key).
    target: String,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    t: TargetArgs,
}

#[derive(Args, Debug)]
struct StatusArgs {
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    t: TargetArgs,
}

#[derive(Subcommand, Debug)]
enum FirewallCmd {
    /// Remove everything Stadtwache created in nftables (its table), and nothing else.
    Remove {
        #[command(flatten)]
        t: TargetArgs,
    },
}

/// Which rules to run and where they come from.
#[derive(Args, Debug, Clone)]
pub struct RuleArgs {
    /// A fail2ban filter by name or path, with options: `sshd`, `sshd[mode=aggressive]`,
    /// `/etc/fail2ban/filter.d/nginx-http-auth.conf`. Repeatable. Without it, the native rule pack runs.
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Directory of fail2ban filters.
    #[arg(long, value_name = "DIR", default_value = "/etc/fail2ban/filter.d")]
    pub filter_dir: PathBuf,
    /// Directory of native rule files (*.toml) instead of the embedded pack.
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// Run only these native rules (ids, comma-separated).
    #[arg(long, value_name = "IDS", value_delimiter = ',')]
    pub only: Vec<String>,
    /// Run only the native rules of these services (sshd, http, postfix, …; comma-separated).
    #[arg(long, value_name = "SERVICES", value_delimiter = ',')]
    pub service: Vec<String>,
}

/// Time context for dates in logs.
#[derive(Args, Debug, Clone)]
pub struct TimeArgs {
    /// Zone of log times written without one (IANA name like Europe/Berlin, or UTC).
    /// Default: the system zone.
    #[arg(long, value_name = "ZONE")]
    pub tz: Option<String>,
    /// "Now" used to complete dates written without a year (RFC 3339). Default: the
    /// modification time of the newest input file, or the current time for stdin.
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
}

/// Window and policy settings for fail2ban filters (native rules carry their own windows).
#[derive(Args, Debug, Clone)]
pub struct PolicyArgs {
    /// Failures within --findtime that trigger a ban (fail2ban maxretry).
    #[arg(long, default_value_t = 5)]
    pub maxretry: u32,
    /// Window for --maxretry (fail2ban findtime): 600, 10m, 1h.
    #[arg(long, default_value = "10m")]
    pub findtime: String,
    /// Ban duration (fail2ban bantime), also the default for native rules without one.
    #[arg(long, default_value = "10m")]
    pub bantime: String,
    /// Increase the ban time for repeat offenders (fail2ban bantime.increment).
    #[arg(long)]
    pub bantime_increment: bool,
    /// fail2ban bantime.factor.
    #[arg(long, default_value_t = 1.0)]
    pub bantime_factor: f64,
    /// fail2ban bantime.multipliers, e.g. "1 2 4 8 16 32 64".
    #[arg(long, value_name = "LIST")]
    pub bantime_multipliers: Option<String>,
    /// fail2ban bantime.maxtime: upper bound of an increased ban.
    #[arg(long, value_name = "DURATION")]
    pub bantime_maxtime: Option<String>,
    /// Addresses and networks never banned (fail2ban ignoreip); repeatable, comma-separated.
    #[arg(long = "ignoreip", value_name = "CIDR", value_delimiter = ',')]
    pub ignoreip: Vec<String>,
    /// Aggregate IPv6 bans to this prefix length (e.g. 64).
    #[arg(long, value_name = "LEN")]
    pub ipv6_prefix: Option<u8>,
    /// Decide, but mark every ban as simulated (nothing would be enforced).
    #[arg(long)]
    pub simulate: bool,
    /// Upper bound of keys tracked per rule window; the oldest are evicted and counted.
    #[arg(long, default_value_t = 100_000)]
    pub max_keys: usize,
}

#[derive(Args, Debug)]
struct ReplayArgs {
    /// Log files: plain, gzip (detected by content), or - for stdin.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    #[command(flatten)]
    rules: RuleArgs,
    #[command(flatten)]
    time: TimeArgs,
    #[command(flatten)]
    policy: PolicyArgs,
    /// One JSON object per hit and per decision on stdout, then a summary object.
    #[arg(long)]
    json: bool,
    /// Write bans as `<epoch seconds> <address>` lines, sorted, to FILE.
    #[arg(long, value_name = "FILE")]
    bans_out: Option<PathBuf>,
    /// Also explain every decision about this address (repeatable).
    #[arg(long = "why", value_name = "ADDR")]
    why: Vec<String>,
    /// Longest line accepted, in bytes; longer lines are skipped and counted.
    #[arg(long, default_value_t = stadtwache_acquire::DEFAULT_MAX_LINE)]
    max_line_bytes: usize,
    /// Never show a progress bar.
    #[arg(long)]
    no_progress: bool,
}

#[derive(Args, Debug)]
struct ExplainArgs {
    /// The address (or other key) to explain.
    key: String,
    /// Log files to replay.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    #[command(flatten)]
    rules: RuleArgs,
    #[command(flatten)]
    time: TimeArgs,
    #[command(flatten)]
    policy: PolicyArgs,
    /// Print the explanation as JSON.
    #[arg(long)]
    json: bool,
    #[arg(long, default_value_t = stadtwache_acquire::DEFAULT_MAX_LINE)]
    max_line_bytes: usize,
}

#[derive(Args, Debug)]
struct TestFilterArgs {
    /// fail2ban filter (name, path, with [options]) or `native:<rule-id>`.
    filter: String,
    /// Log file (plain, gzip, or -).
    file: PathBuf,
    #[arg(long, value_name = "DIR", default_value = "/etc/fail2ban/filter.d")]
    filter_dir: PathBuf,
    #[arg(long, value_name = "DIR")]
    rules: Option<PathBuf>,
    #[command(flatten)]
    time: TimeArgs,
    /// Print the lines no failregex matched.
    #[arg(long)]
    print_missed: bool,
    /// Print every matched line (default: the first 20 per regex).
    #[arg(long)]
    print_all_matched: bool,
    /// Report every matching failregex per line (fail2ban checkAllRegex).
    #[arg(long)]
    all_regex: bool,
    #[arg(long, default_value_t = stadtwache_acquire::DEFAULT_MAX_LINE)]
    max_line_bytes: usize,
}

#[derive(Args, Debug)]
struct CheckArgs {
    /// Directory of fail2ban filters to check (every *.conf in it).
    #[arg(long, value_name = "DIR")]
    filter_dir: Option<PathBuf>,
    /// Single fail2ban filters to check (name or path, with options).
    #[arg(long = "filter", value_name = "FILTER")]
    filters: Vec<String>,
    /// Directory of native rules to check (default: the embedded pack).
    #[arg(long, value_name = "DIR")]
    rules: Option<PathBuf>,
    /// Also run every native rule's samples.
    #[arg(long)]
    samples: bool,
    /// Check a daemon config file (every key, source and rule it names).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay(a) => replay::run_cli(replay::ReplayRequest {
            files: a.files,
            rules: a.rules,
            time: a.time,
            policy: a.policy,
            json: a.json,
            bans_out: a.bans_out,
            why: a.why,
            max_line: a.max_line_bytes,
            progress: !a.no_progress,
        }),
        Command::Explain(a) => explain::run_cli(explain::ExplainRequest {
            key: a.key,
            files: a.files,
            rules: a.rules,
            time: a.time,
            policy: a.policy,
            json: a.json,
            max_line: a.max_line_bytes,
        }),
        Command::TestFilter(a) => testfilter::run_cli(testfilter::TestFilterRequest {
            filter: a.filter,
            file: a.file,
            filter_dir: a.filter_dir,
            rules: a.rules,
            time: a.time,
            print_missed: a.print_missed,
            print_all_matched: a.print_all_matched,
            all_regex: a.all_regex,
            max_line: a.max_line_bytes,
        }),
        Command::Check(CheckArgs { config: Some(path), .. }) => Ok(ops::check_config(&path)),
        Command::Check(a) => check::run_cli(check::CheckRequest {
            filter_dir: a.filter_dir,
            filters: a.filters,
            rules: a.rules,
            samples: a.samples,
        }),
        Command::Run(a) => daemon::run(daemon::RunRequest { config: a.config }),
        Command::Decisions(DecisionsCmd::List { t, json }) => ops::decisions_list(&t.target(), json),
        Command::Decisions(DecisionsCmd::Add { target, duration, reason, t }) => {
            ops::decisions_add(&t.target(), &target, &duration, reason)
        }
        Command::Decisions(DecisionsCmd::Delete { what, t }) => ops::decisions_delete(&t.target(), &what),
        Command::Alerts(AlertsCmd::List { rule, ip, limit, json, t }) => {
            ops::alerts_list(&t.target(), rule, ip, limit, json)
        }
        Command::Bouncers(BouncersCmd::Add { name, t }) => ops::bouncers_add(&t.target(), &name),
        Command::Bouncers(BouncersCmd::List { json, t }) => ops::bouncers_list(&t.target(), json),
        Command::Bouncers(BouncersCmd::Delete { name, t }) => ops::bouncers_delete(&t.target(), &name),
        Command::Why(a) => ops::why(&a.t.target(), &a.target, a.json),
        Command::Status(a) => ops::status(&a.t.target(), a.json),
        Command::Firewall(FirewallCmd::Remove { t }) => ops::firewall_remove(&t.target()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("stadtwache: {e:#}");
            ExitCode::from(2)
        }
    }
}
