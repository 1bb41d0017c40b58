//! Fuzz pattern translation (Python re + fail2ban tags → regex/fancy-regex)
//! and date patterns: the first line is a failregex, the second a
//! datepattern, the rest are haystacks.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use stadtwache_core::Spanned;
use stadtwache_datetime::{DateDetector, TimeContext};
use stadtwache_match::CompileOptions;
use stadtwache_match::pattern::{Pattern, PatternKind};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\n');
    let regex = parts.next().unwrap_or("");
    let datepattern = parts.next().unwrap_or("");
    let hay = parts.next().unwrap_or("");
    let opts = CompileOptions { backtrack_limit: 10_000 };
    if let Ok(p) = Pattern::compile(&Spanned::new(regex), PatternKind::Failregex, &opts) {
        let _ = p.is_match(hay);
        let _ = p.captures(hay);
    }
    if let Ok(d) = DateDetector::from_datepattern(datepattern) {
        let mut s = Arc::new(d).scanner();
        let ctx = TimeContext::fail2ban_test();
        for line in hay.split('\n').take(8) {
            let _ = s.find(line, &ctx);
        }
    }
});
