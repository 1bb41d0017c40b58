//! Differential test: random log lines (with zero, one or two failures each)
//! through `Detector` + `Decider` (wired as the `stadtwache-decide` crate docs
//! prescribe, plus `Detector::service` before each line) against fail2ban
//! 1.0.2's own `Filter.performSvc`, `FailManager` and `BanManager`, driven by
//! /usr/bin/python3 the way `bench/fail2ban_replay.py` drives them: per line
//! the clock is pinned to `max(clock, line time)`, `performSvc()` runs (its
//! own 5 s throttle decides whether the failure list is cleaned up), the
//! unban check runs, then the line's failures go through `addFailure` and, on
//! maxretry, `toBan` + `BanManager.addBanTicket` + `performSvc()` (as
//! `Filter.performBan`), and `performSvc()` runs again every 100 lines (as
//! `Filter.processLineAndAdd`).
//!
//! Prints `SKIPPED: …` when fail2ban is not installed (fails instead when
//! STADTWACHE_REQUIRE_FAIL2BAN=1).

use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use stadtwache_core::{Duration, Event, Key, RuleId, Timestamp};
use stadtwache_decide::{Decider, Decision, Policy};
use stadtwache_detect::{Detector, DetectorOptions, WindowSpec};

const PYTHON: &str = "/usr/bin/python3";

const SCRIPT: &str = r#"
import sys
from fail2ban.server.filter import Filter
from fail2ban.server.failmanager import FailManagerEmpty
from fail2ban.server.banmanager import BanManager
from fail2ban.server.ticket import FailTicket, BanTicket
from fail2ban.server.mytime import MyTime

def us(x):
    return "perm" if x >= BanTicket.MAX_TIME else str(int(round(x * 1e6)))

def svc_again(flt):
    # performSvc on the line path (after a ban, every 100 lines) runs at the
    # clock of the line's own performSvc, so its throttle always skips it:
    # checked here, which is why `Detector::service` once per line suffices.
    assert MyTime.time() < flt._Filter__nextSvcTime, "line-path performSvc cleaned up"
    flt.performSvc()

out = []
flt = fm = bm = None
now = None
mr = 0
bt = 0
lines = 0
for line in sys.stdin:
    f = line.split()
    if not f:
        continue
    if f[0] == "S":
        mr, ft, bt = int(f[1]), int(f[2]), int(f[3])
        flt = Filter(None); flt.setMaxRetry(mr); flt.setFindTime(ft)
        fm = flt.failManager
        bm = BanManager(); bm.setBanTime(bt)
        now = None
        lines = 0
        out.append("S")
        continue
    if f[0] == "L":
        # a new line: end of the previous one, then clock, service, unbans
        if lines and lines % 100 == 0:
            svc_again(flt)
        lines += 1
        t = float(f[1])
        now = t if now is None else max(now, t)
        MyTime.setTime(now)
        flt.performSvc()
        for tk in sorted(bm.unBanList(now), key=lambda x: str(x.getID())):
            out.append("unban %s" % tk.getID())
        continue
    ip, t, c = f[1], float(f[2]), int(f[3])
    a = fm.addFailure(FailTicket(ip, t), c)
    if a >= mr:
        try:
            tk = fm.toBan(ip)
        except FailManagerEmpty:
            continue
        b = BanTicket.wrap(tk)
        reason = {}
        if bm.addBanTicket(b, reason):
            out.append("ban %s %s %s" % (b.getID(), us(b.getTime()), us(b.getEndOfBanTime(bt))))
        elif reason.get("expired"):
            out.append("expired %s" % b.getID())
        else:
            out.append("already %s %s" % (b.getID(), us(reason["ticket"].getEndOfBanTime(bt))))
        svc_again(flt)
print("\n".join(out))
"#;

fn skip(why: &str) {
    println!("SKIPPED: {why}");
    if std::env::var("STADTWACHE_REQUIRE_FAIL2BAN").as_deref() == Ok("1") {
        panic!("STADTWACHE_REQUIRE_FAIL2BAN=1 but {why}");
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Scenario {
    maxretry: u32,
    findtime: i64,
    bantime: i64,
    lines: Vec<Line>,
}

/// One log line: its time (quarter seconds; not monotone) and its failures
/// `(address, count)`, all at the line's time.
struct Line {
    q: i64,
    failures: Vec<(&'static str, u32)>,
}

const ADDRS: &[&str] = &["192.0.2.1", "192.0.2.2", "2001:db8::7", "::ffff:192.0.2.1", "198.51.100.9"];

fn scenarios() -> Vec<Scenario> {
    let mut rng = Rng(0x5eed_f00d_1234_5678);
    let mut out = Vec::new();
    for _ in 0..300 {
        let maxretry = 1 + rng.below(6) as u32;
        let findtime = [10, 30, 60, 300, 600][rng.below(5) as usize];
        let bantime = [30, 120, 600, -1][rng.below(4) as usize];
        let n = 20 + rng.below(300) as usize;
        let nkeys = 1 + rng.below(ADDRS.len() as u64) as usize;
        // mean gap relative to findtime, so that aging, cleanup and bans all
        // happen, and lines without failures (which run the service too)
        let gap = 1 + rng.below(4 * findtime as u64 / maxretry as u64 + 1) as i64;
        let quiet = rng.below(3);
        let mut t: i64 = 4 * 1_000_000_000;
        let mut lines = Vec::with_capacity(n);
        for _ in 0..n {
            t += rng.below(4 * gap as u64 + 1) as i64; // quarter seconds
            let jitter = if rng.below(10) == 0 { rng.below(4 * 40) as i64 } else { 0 };
            let nfail = match rng.below(12) {
                k if k < 4 * quiet => 0,
                11 => 2,
                _ => 1,
            };
            let failures = (0..nfail)
                .map(|_| {
                    let count = if rng.below(15) == 0 { 2 + rng.below(2) as u32 } else { 1 };
                    (ADDRS[rng.below(nkeys as u64) as usize], count)
                })
                .collect();
            lines.push(Line { q: t - jitter, failures });
        }
        out.push(Scenario { maxretry, findtime, bantime, lines });
    }
    out
}

/// When our side cleans up the failure list.
#[derive(Clone, Copy, PartialEq)]
enum Cleanup {
    /// `Detector::service` before each line: fail2ban's schedule.
    Service,
    /// `Detector::cleanup` before each line, unthrottled (the limit the
    /// detector used to implement; must differ from fail2ban somewhere here,
    /// or the scenarios do not exercise the schedule).
    EveryLine,
}

fn key(a: &str) -> Key {
    Key::Ip(a.parse::<IpAddr>().unwrap())
}

fn ours(s: &Scenario, cleanup: Cleanup) -> Vec<String> {
    let mut det = Detector::new(
        vec![WindowSpec::Fail2ban { maxretry: s.maxretry, findtime: Duration::from_secs(s.findtime) }],
        DetectorOptions::default(),
    );
    let mut dec = Decider::new(Policy { bantime: Duration::from_secs(s.bantime), ..Policy::default() });
    let us = |t: Option<Timestamp>| t.map_or("perm".to_string(), |t| t.0.to_string());
    let mut out = vec!["S".to_string()];
    let mut clock: Option<Timestamp> = None;
    for (n, line) in s.lines.iter().enumerate() {
        let time = Timestamp(line.q * 250_000);
        let now = clock.map_or(time, |c| c.max(time));
        clock = Some(now);
        match cleanup {
            Cleanup::Service => det.service(now),
            Cleanup::EveryLine => det.cleanup(now),
        };
        let mut unbans: Vec<String> = dec.expire(now).into_iter().map(|u| format!("unban {}", u.key)).collect();
        unbans.sort();
        out.extend(unbans);
        for &(a, c) in &line.failures {
            let ev = Event { rule: RuleId(0), key: key(a), time, weight: c, distinct: None, line_no: n as u64 };
            if let Some(tr) = det.observe(&ev) {
                out.push(match dec.decide(&tr, now) {
                    Decision::Ban { key, until, .. } => {
                        format!("ban {key} {} {}", tr.time.0, us(until))
                    }
                    Decision::AlreadyBanned { key, until, .. } => {
                        format!("already {key} {}", us(until))
                    }
                    Decision::Expired { key, .. } => format!("expired {key}"),
                    Decision::Allowlisted { entry, .. } => format!("allowlisted {entry}"),
                });
            }
        }
    }
    out
}

/// Index of the first difference of two outputs, if any.
fn first_difference(ours: &[String], theirs: &[String]) -> Option<usize> {
    ours.iter()
        .zip(theirs)
        .position(|(a, b)| a != b)
        .or_else(|| (ours.len() != theirs.len()).then_some(ours.len().min(theirs.len())))
}

#[test]
fn detector_and_decider_ban_like_fail2ban() {
    let probe = Command::new(PYTHON).args(["-c", "import fail2ban.server.failmanager"]).output();
    if !matches!(probe, Ok(ref o) if o.status.success()) {
        skip("fail2ban's Python modules are not importable with /usr/bin/python3");
        return;
    }
    let scenarios = scenarios();
    let theirs_by_scenario = run_python(SCRIPT, &scenarios);
    let mut bans = 0;
    let mut already = 0;
    let mut unbans = 0;
    let mut schedule_matters = 0;
    for (i, (s, theirs)) in scenarios.iter().zip(&theirs_by_scenario).enumerate() {
        if first_difference(&ours(s, Cleanup::EveryLine), theirs).is_some() {
            schedule_matters += 1;
        }
        let ours = ours(s, Cleanup::Service);
        if let Some(k) = first_difference(&ours, theirs) {
            panic!(
                "scenario {i} (maxretry {}, findtime {}, bantime {}) differs at output {k}:\n ours:   {:?}\n theirs: {:?}",
                s.maxretry,
                s.findtime,
                s.bantime,
                ours.get(k),
                theirs.get(k)
            );
        }
        bans += theirs.iter().filter(|l| l.starts_with("ban ")).count();
        already += theirs.iter().filter(|l| l.starts_with("already ")).count();
        unbans += theirs.iter().filter(|l| l.starts_with("unban ")).count();
    }
    println!(
        "jail vs fail2ban: {} scenarios, {bans} bans, {already} already-banned, {unbans} unbans identical; \
         {schedule_matters} scenarios differ with a cleanup before every line",
        scenarios.len()
    );
    // the generator must actually exercise bans, re-bans, unbans and the
    // service schedule (stale tickets aged between two cleanups)
    assert!(
        bans > 300 && already > 100 && unbans > 100 && schedule_matters >= 10,
        "{bans} {already} {unbans} {schedule_matters}"
    );
}

const SCRIPT_INCREMENT: &str = r#"
import sys
from fail2ban.server.filter import Filter
from fail2ban.server.failmanager import FailManagerEmpty
from fail2ban.server.banmanager import BanManager
from fail2ban.server.ticket import FailTicket, BanTicket
from fail2ban.server.mytime import MyTime
from fail2ban.server.jail import Jail
from fail2ban.server.database import Fail2BanDb
from fail2ban.server.observer import ObserverThread

def us(x):
    return "perm" if x >= BanTicket.MAX_TIME else str(int(round(x * 1e6)))

def svc_again(flt):
    # see SCRIPT: never cleans up, by the throttle
    assert MyTime.time() < flt._Filter__nextSvcTime, "line-path performSvc cleaned up"
    flt.performSvc()

out = []
n = 0
for line in sys.stdin:
    f = line.split()
    if not f:
        continue
    if f[0] == "S":
        mr, ft, bt = int(f[1]), int(f[2]), int(f[3])
        n += 1
        db = Fail2BanDb(':memory:')
        jail = Jail("j%d" % n, backend="polling", db=db)
        jail.isAlive = lambda: True
        jail.actions.setBanTime(bt)
        jail.setBanTimeExtra("increment", "true")
        db.addJail(jail)
        obs = ObserverThread()
        obs.add_timer = lambda *a, **k: None
        # the real Filter for performSvc (throttle + FailManager.cleanup)
        svc = Filter(None); svc.setMaxRetry(mr); svc.setFindTime(ft)
        fm = svc.failManager
        bm = BanManager(); bm.setBanTime(bt)
        class Flt:
            pass
        flt = Flt()
        flt.failManager = fm
        def performBan(ip, fm=fm, bm=bm, jail=jail, obs=obs, bt=bt, svc=svc):
            try:
                tk = fm.toBan(ip)
            except FailManagerEmpty:
                return
            b = BanTicket.wrap(tk)
            btime = b.getBanTime(bm.getBanTime())
            reason = {}
            if bm.addBanTicket(b, reason):
                obs.banFound(b, jail, btime)
                out.append("ban %s %s %s %d" % (b.getID(), us(b.getTime()), us(b.getEndOfBanTime(bt)), b.getBanCount()))
            elif reason.get("expired"):
                out.append("expired %s" % b.getID())
            else:
                out.append("already %s %s" % (b.getID(), us(reason["ticket"].getEndOfBanTime(bt))))
            svc_again(svc)
        flt.performBan = performBan
        jail._Jail__filter = flt
        now = None
        lines = 0
        out.append("S")
        continue
    if f[0] == "L":
        if lines and lines % 100 == 0:
            svc_again(svc)
        lines += 1
        t = float(f[1])
        now = t if now is None else max(now, t)
        MyTime.setTime(now)
        svc.performSvc()
        for tk in sorted(bm.unBanList(now), key=lambda x: str(x.getID())):
            out.append("unban %s" % tk.getID())
        continue
    ip, t, c = f[1], float(f[2]), int(f[3])
    tick = FailTicket(ip, t)
    a = fm.addFailure(tick, c)
    if a >= mr:
        flt.performBan(ip)
    obs.failureFound(jail, tick)
print("\n".join(out))
"#;

fn ours_increment(s: &Scenario) -> Vec<String> {
    let mut det = Detector::new(
        vec![WindowSpec::Fail2ban { maxretry: s.maxretry, findtime: Duration::from_secs(s.findtime) }],
        DetectorOptions::default(),
    );
    let inc = stadtwache_decide::BanIncrement { purge_age: Duration(i64::MAX), ..Default::default() };
    let mut dec =
        Decider::new(Policy { bantime: Duration::from_secs(s.bantime), increment: Some(inc), ..Policy::default() });
    let us = |t: Option<Timestamp>| t.map_or("perm".to_string(), |t| t.0.to_string());
    let mut out = vec!["S".to_string()];
    let record = |d: Decision, tr: &stadtwache_detect::Trigger, out: &mut Vec<String>| {
        out.push(match d {
            Decision::Ban { key, until, ban_count, .. } => format!("ban {key} {} {} {ban_count}", tr.time.0, us(until)),
            Decision::AlreadyBanned { key, until, .. } => format!("already {key} {}", us(until)),
            Decision::Expired { key, .. } => format!("expired {key}"),
            Decision::Allowlisted { entry, .. } => format!("allowlisted {entry}"),
        })
    };
    let mut clock: Option<Timestamp> = None;
    for (n, line) in s.lines.iter().enumerate() {
        let time = Timestamp(line.q * 250_000);
        let now = clock.map_or(time, |c| c.max(time));
        clock = Some(now);
        det.service(now);
        let mut unbans: Vec<String> = dec.expire(now).into_iter().map(|u| format!("unban {}", u.key)).collect();
        unbans.sort();
        out.extend(unbans);
        for &(a, c) in &line.failures {
            let ev = Event { rule: RuleId(0), key: key(a), time, weight: c, distinct: None, line_no: n as u64 };
            if let Some(tr) = det.observe(&ev) {
                let d = dec.decide(&tr, now);
                record(d, &tr, &mut out);
            }
            let extra = dec.bad_ip_extra_retries(&ev.key, time, s.maxretry);
            if extra > 0 {
                if let Some(tr) = det.add_observed(RuleId(0), &ev.key, time, extra) {
                    let d = dec.decide(&tr, now);
                    record(d, &tr, &mut out);
                }
            }
        }
    }
    out
}

fn run_python(script: &str, scenarios: &[Scenario]) -> Vec<Vec<String>> {
    let mut input = String::new();
    for s in scenarios {
        input.push_str(&format!("S {} {} {}\n", s.maxretry, s.findtime, s.bantime));
        for line in &s.lines {
            let t = line.q as f64 / 4.0;
            input.push_str(&format!("L {t}\n"));
            for &(a, c) in &line.failures {
                input.push_str(&format!("E {a} {t} {c}\n"));
            }
        }
    }
    let mut child = Command::new(PYTHON)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "python failed: {}", String::from_utf8_lossy(&output.stderr));
    let mut by_scenario: Vec<Vec<String>> = Vec::new();
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        if line == "S" {
            by_scenario.push(vec!["S".to_string()]);
        } else if let Some(last) = by_scenario.last_mut() {
            last.push(line.to_string());
        }
    }
    assert_eq!(by_scenario.len(), scenarios.len());
    by_scenario
}

#[test]
fn increment_and_bad_ip_bonus_like_fail2ban() {
    let probe = Command::new(PYTHON).args(["-c", "import fail2ban.server.observer"]).output();
    if !matches!(probe, Ok(ref o) if o.status.success()) {
        skip("fail2ban's Python modules are not importable with /usr/bin/python3");
        return;
    }
    // Whole seconds only: fail2ban's database stores the time of a ban as
    // int(round(t)), which the bad-address check compares against.
    let mut rng = Rng(0x00ba_d1b5_2024);
    let mut scenarios = Vec::new();
    for _ in 0..60 {
        let maxretry = 2 + rng.below(5) as u32;
        let findtime = [60, 300, 600][rng.below(3) as usize];
        let bantime = [30, 60, 120][rng.below(3) as usize];
        let nkeys = 1 + rng.below(3) as usize;
        let mut t: i64 = 4 * 1_000_000_000;
        let mut lines = Vec::new();
        for _ in 0..(50 + rng.below(250)) {
            t += 4 * rng.below(3 * findtime as u64 / maxretry as u64 + 1) as i64;
            let failures = if rng.below(4) == 0 {
                Vec::new() // a line without failure still runs the service
            } else {
                vec![(ADDRS[rng.below(nkeys as u64) as usize], 1)]
            };
            lines.push(Line { q: t, failures });
        }
        scenarios.push(Scenario { maxretry, findtime, bantime, lines });
    }
    let theirs = run_python(SCRIPT_INCREMENT, &scenarios);
    let (mut bans, mut rebans) = (0, 0);
    for (i, (s, theirs)) in scenarios.iter().zip(&theirs).enumerate() {
        let ours = ours_increment(s);
        if let Some(k) = first_difference(&ours, theirs) {
            panic!(
                "scenario {i} (maxretry {}, findtime {}, bantime {}) differs at output {k}:\n ours:   {:?}\n theirs: {:?}",
                s.maxretry,
                s.findtime,
                s.bantime,
                ours.get(k),
                theirs.get(k)
            );
        }
        bans += theirs.iter().filter(|l| l.starts_with("ban ")).count();
        rebans += theirs.iter().filter(|l| l.starts_with("ban ") && !l.ends_with(" 1")).count();
    }
    println!("increment vs fail2ban: {} scenarios, {bans} bans ({rebans} repeat bans) identical", scenarios.len());
    assert!(rebans > 100, "{rebans}");
}
