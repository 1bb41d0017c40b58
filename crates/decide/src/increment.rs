//! fail2ban's `bantime.increment`.

use serde::Serialize;
use stadtwache_core::Duration;

use crate::PolicyError;

/// fail2ban's default `bantime.formula`, the only formula supported.
pub const DEFAULT_FORMULA: &str = "ban.Time * (1<<(ban.Count if ban.Count<20 else 20)) * banFactor";

/// `bantime.increment = true` and its companions (jail.conf):
///
/// * `factor` — `bantime.factor` (default 1);
/// * `multipliers` — `bantime.multipliers`; when non-empty they replace the
///   formula: `bantime * factor * multipliers[min(n, len - 1)]`;
/// * otherwise the default `bantime.formula`
///   `max(bantime, bantime * 2^min(n, 20) * factor)`;
/// * `maxtime` — `bantime.maxtime`, a cap applied after the formula;
/// * `rndtime` — `bantime.rndtime`: fail2ban adds `random() * rndtime`.
///   We are deterministic: with `rnd_seed = None` nothing is added; with a
///   seed the fraction is a hash of `(seed, ban key, n)`, so a replay gives
///   the same times again.
/// * `purge_age` — fail2ban's `dbpurgeage` (fail2ban.conf, default 1 day):
///   the ban history of an address is forgotten when its last ban is older
///   than `purge_age` and `last ban + 3 × its bantime` is too (fail2ban's
///   `_purge_bips`); permanent bans are never forgotten.
///
/// `n` is the number of *previous* bans of the key (fail2ban's `ban.Count`,
/// read from its database). The first ban (`n = 0`) is never incremented —
/// fail2ban only applies the formula when the address is found in its
/// database — and neither is a permanent (negative) bantime.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BanIncrement {
    pub factor: f64,
    pub multipliers: Vec<u64>,
    pub maxtime: Option<Duration>,
    pub rndtime: Option<Duration>,
    pub rnd_seed: Option<u64>,
    pub purge_age: Duration,
}

impl Default for BanIncrement {
    fn default() -> Self {
        BanIncrement {
            factor: 1.0,
            multipliers: Vec::new(),
            maxtime: None,
            rndtime: None,
            rnd_seed: None,
            purge_age: Duration::from_secs(86_400),
        }
    }
}

/// How an increment was computed, for explanations.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IncrementCalc {
    /// Previous bans (`ban.Count`).
    pub previous_bans: u32,
    /// `"formula"` or `"multipliers"`.
    pub method: &'static str,
    pub factor: f64,
    /// `2^min(n, 20)` or the multiplier used.
    pub multiplier: f64,
    /// Result of the formula before the cap.
    pub computed: Duration,
    /// `Some(maxtime)` when the cap lowered the result.
    pub capped_by: Option<Duration>,
    /// Random part added (zero without a seed).
    pub random: Duration,
    pub result: Duration,
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl BanIncrement {
    /// The ban time for a ban with `previous_bans` earlier bans
    /// (fail2ban's `ObserverThread.calcBanTime` for `n > 0`; see the type docs
    /// for `n = 0`). `salt` feeds the seeded random part (the ban key's hash).
    pub fn calc(&self, base: Duration, previous_bans: u32, salt: u64) -> IncrementCalc {
        let t = base.as_secs_f64();
        let n = previous_bans;
        let (method, multiplier, mut secs) = if self.multipliers.is_empty() {
            let m = f64::from(1u32 << n.min(20));
            ("formula", m, t.max(t * m * self.factor))
        } else {
            let idx = (n as usize).min(self.multipliers.len() - 1);
            let m = self.multipliers[idx] as f64;
            ("multipliers", m, t * self.factor * m)
        };
        if !secs.is_finite() {
            secs = t;
        }
        let computed = Duration::from_secs_f64(secs);
        let mut result = computed;
        let mut capped_by = None;
        if let Some(max) = self.maxtime {
            if result > max {
                result = max;
                capped_by = Some(max);
            }
        }
        let mut random = Duration::ZERO;
        if let (Some(rnd), Some(seed)) = (self.rndtime, self.rnd_seed) {
            let h = splitmix64(seed ^ splitmix64(salt ^ u64::from(n)));
            let frac = (h >> 11) as f64 / (1u64 << 53) as f64;
            random = Duration::from_secs_f64(frac * rnd.as_secs_f64());
            result = Duration(result.0.saturating_add(random.0));
        }
        IncrementCalc { previous_bans: n, method, factor: self.factor, multiplier, computed, capped_by, random, result }
    }

    /// fail2ban's observer (`failureFound`) counts each new failure of a known
    /// bad address `(2^min(n,20))/2 + 1` times (capped at `maxretry`), i.e.
    /// 2, 3, 5, 9 … for `n` = 1, 2, 3, 4 previous bans. Returns the *extra*
    /// retries beyond the one the filter already added (0 for `n = 0`).
    pub fn bad_ip_extra_retries(previous_bans: u32, maxretry: u32) -> u32 {
        if previous_bans == 0 {
            return 0;
        }
        let retry = (1u32 << previous_bans.min(20)) / 2 + 1;
        retry.min(maxretry).saturating_sub(1)
    }

    /// Builds the settings from fail2ban's jail options as written
    /// (`bantime.factor`, `bantime.formula`, `bantime.multipliers`,
    /// `bantime.maxtime`, `bantime.rndtime`). Only the default formula is
    /// supported (`C026` otherwise); `factor` must be a plain number (`C025`).
    pub fn from_fail2ban(
        factor: Option<&str>,
        formula: Option<&str>,
        multipliers: Option<&str>,
        maxtime: Option<&str>,
        rndtime: Option<&str>,
    ) -> Result<BanIncrement, PolicyError> {
        let mut inc = BanIncrement::default();
        if let Some(f) = factor.map(str::trim).filter(|f| !f.is_empty()) {
            inc.factor = match f.parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => v,
                _ => {
                    return Err(PolicyError::InvalidFactor { text: f.to_string() });
                }
            };
        }
        if let Some(f) = formula.map(str::trim).filter(|f| !f.is_empty()) {
            let squash = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
            if squash(f) != squash(DEFAULT_FORMULA) {
                return Err(PolicyError::UnsupportedFormula { text: f.to_string() });
            }
        }
        if let Some(m) = multipliers {
            inc.multipliers = parse_multipliers(m)?;
        }
        let dur = |s: Option<&str>| -> Result<Option<Duration>, PolicyError> {
            match s.map(str::trim).filter(|s| !s.is_empty()) {
                None => Ok(None),
                Some(s) => match Duration::parse(s) {
                    Ok(d) if d.0 >= 0 => Ok(Some(d)),
                    _ => Err(PolicyError::InvalidDuration { text: s.to_string() }),
                },
            }
        };
        inc.maxtime = dur(maxtime)?;
        inc.rndtime = dur(rndtime)?;
        Ok(inc)
    }
}

/// `bantime.multipliers`: integers separated by spaces (fail2ban splits on
/// single spaces and converts with `int()`; we accept any white space).
pub fn parse_multipliers(text: &str) -> Result<Vec<u64>, PolicyError> {
    text.split_whitespace()
        .map(|m| m.parse::<u64>().map_err(|_| PolicyError::InvalidMultipliers { text: text.to_string() }))
        .collect()
}
