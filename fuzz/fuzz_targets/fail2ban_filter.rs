//! Fuzz the fail2ban filter loader and the compiler behind it: arbitrary
//! bytes as a `filter.d` file (before the first NUL), the rest as log lines
//! run through the compiled filter. Nothing may panic or hang.
#![no_main]

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use stadtwache_datetime::TimeContext;
use stadtwache_fail2ban::FilterLoader;
use stadtwache_match::{CompileOptions, CompiledFilter, FilterRunner, RunOptions};

fn dir() -> &'static std::path::Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("sw-fuzz-f2b-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        // A second file so that [INCLUDES] before/after can resolve something.
        std::fs::write(d.join("common.conf"), "[DEFAULT]\n_daemon = \\S*\n__prefix_line = \\s*\n").unwrap();
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (conf, lines) = text.split_once('\0').unwrap_or((&text, ""));
    std::fs::write(dir().join("fz.conf"), conf).unwrap();
    let loader = FilterLoader::new(dir());
    let Ok(loaded) = loader.load("fz", &BTreeMap::new()) else { return };
    let opts = CompileOptions { backtrack_limit: 10_000 };
    let Ok(compiled) = CompiledFilter::compile(&loaded.spec, &opts) else { return };
    let mut runner = FilterRunner::new(Arc::new(compiled.filter), RunOptions { check_all_regex: true });
    let ctx = TimeContext::fail2ban_test();
    for line in lines.split('\n').take(64) {
        let _ = runner.process_line(line, &ctx);
    }
});
