//! The TOML schema of a native rule file, as serde sees it.
//!
//! These types mirror the file one to one (every struct rejects unknown
//! keys) and keep spans so that every later check can name a line. The
//! loader in `lib.rs` turns them into the public [`crate::NativeRule`].

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// A duration as written: seconds as a number, or a string (`"10m"`).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum DurationDoc {
    Int(i64),
    Float(f64),
    Text(String),
}

/// `[defaults]`: values every rule of the file inherits.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DefaultsDoc {
    pub severity: Option<Spanned<String>>,
    pub prefregex: Option<Spanned<String>>,
    pub datepattern: Option<Spanned<String>>,
    pub logtimezone: Option<Spanned<String>>,
    pub maxlines: Option<Spanned<i64>>,
    pub key: Option<Spanned<String>>,
    pub bantime: Option<Spanned<DurationDoc>>,
    #[serde(default)]
    pub ignore: Vec<Spanned<String>>,
}

/// One `[[rule]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleDoc {
    pub id: Spanned<String>,
    pub description: Spanned<String>,
    pub severity: Option<Spanned<String>>,
    #[serde(default = "default_true")]
    pub enabled: bool,
    pub prefregex: Option<Spanned<String>>,
    pub patterns: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub ignore: Vec<Spanned<String>>,
    pub datepattern: Option<Spanned<String>>,
    pub logtimezone: Option<Spanned<String>>,
    pub maxlines: Option<Spanned<i64>>,
    pub key: Option<Spanned<String>>,
    pub detect: Spanned<DetectDoc>,
    pub bantime: Option<Spanned<DurationDoc>>,
    pub samples: Option<Spanned<SamplesDoc>>,
}

fn default_true() -> bool {
    true
}

/// `detect = { kind = …, … }`; checked per kind by the loader.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DetectDoc {
    pub kind: Spanned<String>,
    pub threshold: Option<Spanned<i64>>,
    pub window: Option<Spanned<DurationDoc>>,
    pub field: Option<Spanned<String>>,
}

/// `[rule.samples]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SamplesDoc {
    #[serde(default, rename = "match")]
    pub must_match: Vec<Spanned<SampleDoc>>,
    #[serde(default)]
    pub no_match: Vec<Spanned<String>>,
}

/// A must-match sample: a bare line, or `{ line = "…", host = "…", … }`
/// where every key but `line` is an expected capture.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum SampleDoc {
    Line(String),
    Table(BTreeMap<String, String>),
}
