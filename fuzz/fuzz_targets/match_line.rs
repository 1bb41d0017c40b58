//! Fuzz line matching: arbitrary lines through every rule of the embedded
//! native pack (dates, prefregex, failregex, ignoreregex, multi-line state).
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use stadtwache_core::Timestamp;
use stadtwache_datetime::{TimeContext, TimeZone};
use stadtwache_match::{CompileOptions, CompiledFilter, FilterRunner, RunOptions};

fn filters() -> &'static Vec<Arc<CompiledFilter>> {
    static F: OnceLock<Vec<Arc<CompiledFilter>>> = OnceLock::new();
    F.get_or_init(|| {
        stadtwache_rules::load_embedded()
            .rules
            .iter()
            .filter_map(|r| CompiledFilter::compile(&r.spec, &CompileOptions::default()).ok())
            .map(|c| Arc::new(c.filter))
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let ctx = TimeContext { now: Timestamp::from_secs(1_790_000_000), tz: TimeZone::UTC };
    for f in filters() {
        let mut runner = FilterRunner::new(Arc::clone(f), RunOptions { check_all_regex: true });
        for line in text.split('\n').take(16) {
            let _ = runner.process_line(line, &ctx);
        }
    }
});
