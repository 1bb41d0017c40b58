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
    pub samples: Option<SamplesField>,
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

/// `samples`: one `[rule.samples]` table, or several `[[rule.samples]]`
/// tables (e.g. one per log format), whose samples are concatenated.
#[derive(Clone, Debug)]
pub(crate) enum SamplesField {
    One(Spanned<SamplesDoc>),
    Many(Vec<Spanned<SamplesDoc>>),
}

impl SamplesField {
    pub fn into_docs(self) -> Vec<SamplesDoc> {
        match self {
            SamplesField::One(d) => vec![d.into_inner()],
            SamplesField::Many(v) => v.into_iter().map(Spanned::into_inner).collect(),
        }
    }
}

impl<'de> Deserialize<'de> for SamplesField {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = SamplesField;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a `[rule.samples]` table or `[[rule.samples]]` tables")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                SamplesDoc::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|d| SamplesField::One(Spanned::new(0..0, d)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::<Spanned<SamplesDoc>>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(SamplesField::Many)
            }
        }
        d.deserialize_any(V)
    }
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
