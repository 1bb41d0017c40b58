//! `stadtwache-loggen`: deterministic sshd / nginx log generator.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use stadtwache_loggen::{
    CardinalityOptions, NginxOptions, RunStats, SshdOptions, generate_cardinality, generate_nginx, generate_sshd,
    time::parse_start,
};

#[derive(Parser, Debug)]
#[command(
    name = "stadtwache-loggen",
    version,
    about = "Deterministic synthetic log generator (text only; never sends traffic anywhere)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Debug)]
struct Common {
    /// PRNG seed; the same seed and options give byte-identical output.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Start time (UTC), e.g. 2026-03-02T00:00:00Z.
    #[arg(long, default_value = "2026-03-02T00:00:00Z")]
    start: String,
    /// Share of IPv6 source addresses (0..=1).
    #[arg(long = "ipv6-share", default_value_t = 0.1)]
    ipv6_share: f64,
    /// Output file (default: stdout).
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
    /// Print a summary (lines, time range, speed) on stderr.
    #[arg(long)]
    stats: bool,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// OpenSSH auth.log (classic syslog format) with benign and attack traffic.
    Sshd {
        /// Exact number of lines to write.
        #[arg(long)]
        lines: u64,
        /// Approximate time span in days.
        #[arg(long, default_value_t = 3.0)]
        days: f64,
        /// Number of distinct attacker addresses (Zipf-distributed activity).
        #[arg(long, default_value_t = 5000)]
        attackers: usize,
        /// Host name in the syslog prefix.
        #[arg(long, default_value = "bastion")]
        host: String,
        #[command(flatten)]
        common: Common,
    },
    /// nginx access log (combined format) with scanners among benign traffic.
    Nginx {
        /// Exact number of lines to write.
        #[arg(long)]
        lines: u64,
        /// Approximate time span in days.
        #[arg(long, default_value_t = 3.0)]
        days: f64,
        /// Number of distinct scanner addresses.
        #[arg(long, default_value_t = 3000)]
        attackers: usize,
        #[command(flatten)]
        common: Common,
    },
    /// sshd log in which N distinct addresses each fail once or twice.
    Cardinality {
        /// Number of distinct failing addresses.
        #[arg(long, default_value_t = 1_000_000)]
        addresses: u64,
        /// Approximate time span in days.
        #[arg(long, default_value_t = 1.0)]
        days: f64,
        /// Host name in the syslog prefix.
        #[arg(long, default_value = "bastion")]
        host: String,
        #[command(flatten)]
        common: Common,
    },
}

fn check_common(c: &Common) -> Result<i64> {
    if !(0.0..=1.0).contains(&c.ipv6_share) {
        bail!("--ipv6-share must be within 0..=1");
    }
    parse_start(&c.start).with_context(|| format!("--start {:?}", c.start))
}

fn check_days(days: f64) -> Result<()> {
    if !(days.is_finite() && days > 0.0) {
        bail!("--days must be a positive number");
    }
    Ok(())
}

fn with_output(common: &Common, f: impl FnOnce(&mut dyn Write) -> io::Result<RunStats>) -> Result<RunStats> {
    let began = Instant::now();
    let stats = match &common.output {
        Some(path) => {
            let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
            let mut w = BufWriter::with_capacity(1 << 20, file);
            let s = f(&mut w)?;
            w.flush()?;
            s
        }
        None => {
            let stdout = io::stdout();
            let mut w = BufWriter::with_capacity(1 << 20, stdout.lock());
            let s = match f(&mut w) {
                Ok(s) => s,
                // A closed pipe (e.g. `| head`) is not an error.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(RunStats::default()),
                Err(e) => return Err(e.into()),
            };
            match w.flush() {
                Err(e) if e.kind() != io::ErrorKind::BrokenPipe => return Err(e.into()),
                _ => {}
            }
            s
        }
    };
    if common.stats {
        let secs = began.elapsed().as_secs_f64();
        eprintln!(
            "lines {} first {} last {} span {:.2} days, {:.3} s, {:.0} lines/s",
            stats.lines,
            stats.first_t.unwrap_or(0),
            stats.last_t.unwrap_or(0),
            (stats.last_t.unwrap_or(0) - stats.first_t.unwrap_or(0)) as f64 / 86_400.0,
            secs,
            stats.lines as f64 / secs.max(1e-9)
        );
    }
    Ok(stats)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Sshd { lines, days, attackers, host, common } => {
            let start = check_common(&common)?;
            check_days(days)?;
            if attackers == 0 {
                bail!("--attackers must be at least 1");
            }
            let o =
                SshdOptions { lines, seed: common.seed, start, days, attackers, ipv6_share: common.ipv6_share, host };
            with_output(&common, |w| generate_sshd(&o, w))?;
        }
        Cmd::Nginx { lines, days, attackers, common } => {
            let start = check_common(&common)?;
            check_days(days)?;
            if attackers == 0 {
                bail!("--attackers must be at least 1");
            }
            let o = NginxOptions { lines, seed: common.seed, start, days, attackers, ipv6_share: common.ipv6_share };
            with_output(&common, |w| generate_nginx(&o, w))?;
        }
        Cmd::Cardinality { addresses, days, host, common } => {
            let start = check_common(&common)?;
            check_days(days)?;
            let o =
                CardinalityOptions { addresses, seed: common.seed, start, days, ipv6_share: common.ipv6_share, host };
            with_output(&common, |w| generate_cardinality(&o, w))?;
        }
    }
    Ok(())
}
