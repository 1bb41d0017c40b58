//! Deterministic synthetic log generator for Stadtwache benchmarks.
//!
//! Everything is a pure function of the options (notably `seed`): the same
//! options always produce the same bytes. Output timestamps never decrease.
//! Generated addresses are public-looking text; nothing is ever contacted.

pub mod addr;
pub mod engine;
pub mod nginx;
pub mod rng;
pub mod sshd;
pub mod time;

pub use engine::RunStats;
pub use nginx::{NginxOptions, generate_nginx};
pub use sshd::{CardinalityOptions, SshdOptions, generate_cardinality, generate_sshd};
