//! Wiring between the CLI's rule set and the pure `detect` and `decide`
//! crates: window specs, policy from flags, what a decision counts as, and
//! how decisions are shown.

use stadtwache_core::{Diagnostic, Duration, Timestamp};
use stadtwache_decide::{Allowlist, BanIncrement, Decider, Decision, Outcome, Policy, Step};
use stadtwache_detect::{Detector, DetectorOptions, WindowSpec};
use stadtwache_match::Failure;
use stadtwache_rules::RulePack;

use crate::PolicyArgs;
use crate::replay::DecisionView;
use crate::report::RuleCounters;
use crate::ruleset::{RuleSet, Window};
use crate::timectx::fmt_time;

/// The key of the detector's and decider's map hasher (HashDoS: addresses
/// and captured values are attacker-chosen): drawn from the OS once per
/// process (std's `RandomState` keys come from the OS), the same for every
/// pipeline of the process. Nothing the pipelines output depends on it.
pub fn hash_seed() -> u64 {
    use std::hash::BuildHasher;
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| std::collections::hash_map::RandomState::new().hash_one(0x5374_6164_7477_6163_u64))
}

fn window_spec(w: &Window) -> WindowSpec {
    match w {
        Window::Fail2ban { maxretry, findtime } => WindowSpec::Fail2ban { maxretry: *maxretry, findtime: *findtime },
        Window::Count { threshold, window } => WindowSpec::Count { threshold: *threshold, window: *window },
        Window::Distinct { threshold, window, .. } => WindowSpec::Distinct { threshold: *threshold, window: *window },
        Window::Once => WindowSpec::Once,
    }
}

pub fn detector(rules: &RuleSet, policy: &PolicyArgs) -> Result<Detector, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let specs: Vec<WindowSpec> = rules
        .rules
        .iter()
        .map(|r| {
            let spec = window_spec(&r.window);
            if let Err(e) = spec.validate() {
                diags.push(Diagnostic::error(e.code(), format!("rule {}: {e}", r.name)));
            }
            spec
        })
        .collect();
    if !diags.is_empty() {
        return Err(diags);
    }
    if policy.max_keys == 0 {
        return Err(vec![Diagnostic::error("C004", "--max-keys must be at least 1")]);
    }
    let opts = DetectorOptions { max_keys: policy.max_keys, hash_seed: hash_seed(), ..DetectorOptions::default() };
    Ok(Detector::new(specs, opts))
}

pub fn decider(rules: &RuleSet, args: &PolicyArgs) -> Result<Decider, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let bantime = match Duration::parse(&args.bantime) {
        Ok(d) => d,
        Err(e) => {
            diags.push(Diagnostic::error("C005", format!("--bantime: {e}")));
            Duration::ZERO
        }
    };
    let mut allowlist = Allowlist::default();
    for entry in &args.ignoreip {
        if let Err(e) = allowlist.add(entry) {
            diags.push(e.to_diagnostic());
        }
    }
    let increment = if args.bantime_increment {
        let factor = args.bantime_factor.to_string();
        match BanIncrement::from_fail2ban(
            Some(&factor),
            None,
            args.bantime_multipliers.as_deref(),
            args.bantime_maxtime.as_deref(),
            None,
        ) {
            Ok(i) => Some(i),
            Err(e) => {
                diags.push(e.to_diagnostic());
                None
            }
        }
    } else {
        None
    };
    let policy = Policy { bantime, increment, allowlist, ipv6_prefix: args.ipv6_prefix, simulate: args.simulate };
    if let Err(e) = policy.validate() {
        diags.push(e.to_diagnostic());
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let bantimes = rules.rules.iter().map(|r| r.bantime).collect();
    Ok(Decider::new(policy).with_hash_seed(hash_seed()).with_rule_bantimes(bantimes))
}

/// How many failures one match counts for. fail2ban's filter always adds a
/// failure with count 1 (also for multi-line failures); so do we.
pub fn weight(_f: &Failure) -> u32 {
    1
}

/// Counts a decision; a ban also goes to `bans` (when kept) as (trigger
/// time, key, prefix) — formatted ([`stadtwache_decide::target_string`]) only when written out.
pub fn count_decision(d: &Decision, c: &mut RuleCounters, trigger_time: Timestamp, bans: Option<&mut Vec<BanRow>>) {
    match d {
        Decision::Ban { key, prefix, .. } => {
            c.bans += 1;
            if let Some(bans) = bans {
                bans.push((trigger_time, key.clone(), *prefix));
            }
        }
        Decision::AlreadyBanned { .. } => c.already_banned += 1,
        Decision::Allowlisted { .. } => c.allowlisted += 1,
        Decision::Expired { .. } => c.expired += 1,
    }
}

/// [`count_decision`] for a [`Decider::decide_quiet`] outcome.
pub fn count_outcome(o: Outcome, c: &mut RuleCounters, trigger_time: Timestamp, bans: Option<&mut Vec<BanRow>>) {
    match o {
        Outcome::Ban { key, prefix } => {
            c.bans += 1;
            if let Some(bans) = bans {
                bans.push((trigger_time, key, prefix));
            }
        }
        Outcome::AlreadyBanned => c.already_banned += 1,
        Outcome::Allowlisted => c.allowlisted += 1,
        Outcome::Expired => c.expired += 1,
    }
}

/// A ban for `--bans-out`: trigger time, key, IPv6 aggregation prefix.
pub type BanRow = (Timestamp, stadtwache_core::Key, Option<u8>);

pub fn decision_json(d: &DecisionView<'_>) -> serde_json::Value {
    serde_json::to_value(d.decision).unwrap_or_else(|e| serde_json::json!({"error": e.to_string()}))
}

fn dur(d: Option<Duration>) -> String {
    match d {
        Some(d) if d.0 >= 0 => d.to_string(),
        _ => "permanent".to_string(),
    }
}

/// A human narrative of one decision: window → policy steps → outcome.
pub fn decision_text(v: &DecisionView<'_>) -> String {
    let d = v.decision;
    let r = d.reason();
    let w = &r.window;
    let mut s = String::new();
    s.push_str(&format!(
        "-- {} at {}: rule {} [{}] ({:?} window: {} events since {}, threshold {} within {})\n",
        match d {
            Decision::Ban { simulated: true, .. } => "BAN (simulated)",
            Decision::Ban { .. } => "BAN",
            Decision::AlreadyBanned { .. } => "already banned",
            Decision::Allowlisted { .. } => "NOT banned: allowlisted",
            Decision::Expired { .. } => "NOT banned: ban would already have expired",
        },
        fmt_time(r.trigger_time),
        v.rule.name,
        v.rule.origin_text(),
        w.kind,
        r.count,
        fmt_time(r.first_seen),
        w.threshold,
        w.window,
    ));
    if !w.distinct_values.is_empty() {
        let vals: Vec<&str> = w.distinct_values.iter().map(|s| &**s).collect();
        s.push_str(&format!("   distinct values: {}\n", vals.join(", ")));
    }
    for step in &r.steps {
        let line = match step {
            Step::Allowlist { matched: Some(e) } => {
                format!("allowlist: matches {e}; nothing overrides it")
            }
            Step::Allowlist { matched: None } => "allowlist: no entry matches".to_string(),
            Step::MappedToIpv4 { from, to } => {
                format!("IPv4-mapped address {from} treated as {to}")
            }
            Step::Aggregated { prefix, network } => {
                format!("IPv6 aggregated to {network}/{prefix}")
            }
            Step::AggregationSkipped { prefix, allowlist_entry } => {
                format!("IPv6 /{prefix} aggregation skipped: it would cover allowlisted {allowlist_entry}")
            }
            Step::ExpiredBeforeNow { until, now } => {
                format!("ban would end {} which is before now {}", fmt_time(*until), fmt_time(*now))
            }
            Step::AlreadyBanned { until, prolonged, new_until } => {
                let t = |u: &Option<Timestamp>| u.map(fmt_time).unwrap_or_else(|| "ever".into());
                if *prolonged {
                    format!("already banned until {}; prolonged to {}", t(until), t(new_until))
                } else {
                    format!("already banned until {}", t(until))
                }
            }
            Step::BaseBantime { bantime, from_rule } => {
                format!("base ban time {} (from {})", dur(*bantime), if *from_rule { "the rule" } else { "the policy" })
            }
            Step::Increment(calc) => format!("bantime.increment: {}", serde_json::to_string(calc).unwrap_or_default()),
            Step::IncrementNotApplied { previous_bans } => {
                format!("bantime.increment not applied ({previous_bans} previous bans)")
            }
            Step::Simulated => "simulation mode: decided, not enforced".to_string(),
        };
        s.push_str("   ");
        s.push_str(&line);
        s.push('\n');
    }
    if let Decision::Ban { until, duration, ban_count, .. } = d {
        s.push_str(&format!(
            "   => banned for {} until {} (ban #{} of this address)\n",
            dur(*duration),
            until.map(fmt_time).unwrap_or_else(|| "forever".into()),
            ban_count
        ));
    }
    s
}

/// Run every native rule's samples (`stadtwache check --samples`); each
/// failing sample is an error at the sample's file and line.
pub fn run_samples(pack: &RulePack) -> (String, Vec<Diagnostic>) {
    use stadtwache_rules::samples::{check_pack, sample_context};
    let report = check_pack(pack, &sample_context());
    (report.summary(), report.failed)
}
