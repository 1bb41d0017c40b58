//! Fuzz the syslog TCP framer and the message parser: arbitrary bytes, cut
//! into arbitrary reads, must frame exactly as when read at once, account for
//! every byte (frames + framing + discarded at the cap), respect the cap, and
//! every frame (and the whole input as one datagram) must parse and render
//! without panicking, as one line.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use stadtwache_acquire::syslog::{Frame, Framer, TimeContext, TimeZone, Transport, parse};
use stadtwache_core::Timestamp;

fn berlin() -> &'static TimeZone {
    static TZ: OnceLock<TimeZone> = OnceLock::new();
    TZ.get_or_init(|| TimeZone::get("Europe/Berlin").unwrap_or(TimeZone::UTC))
}

fn frame(max: usize, data: &[u8], mut cuts: impl FnMut() -> usize) -> (Vec<Frame>, Framer) {
    let mut f = Framer::new(max);
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let n = cuts().min(data.len() - at);
        f.push(&data[at..at + n], &mut |fr| out.push(fr));
        at += n;
        let s = f.stats();
        assert_eq!(s.bytes_in, at as u64);
        assert_eq!(s.bytes_in, s.frame_bytes + s.framing_bytes + s.discarded_bytes + f.pending() as u64, "{s:?}");
        assert!(f.pending() <= max + 1 + 10, "framer holds {} bytes", f.pending());
    }
    f.finish(&mut |fr| out.push(fr));
    let s = f.stats();
    assert_eq!(s.bytes_in, s.frame_bytes + s.framing_bytes + s.discarded_bytes, "{s:?}");
    assert_eq!(out.iter().map(|fr| fr.data.len() as u64).sum::<u64>(), s.frame_bytes);
    (out, f)
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 2 {
        return;
    }
    let max = if input[0] & 0x80 != 0 { 8192 } else { 1 + usize::from(input[0]) };
    let mut seed = u32::from(input[1]) | 1;
    let data = &input[2..];

    let (whole, _) = frame(max, data, || usize::MAX);
    let (chunked, _) = frame(max, data, || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        1 + (seed % 23) as usize
    });
    assert_eq!(whole, chunked, "framing depends on how the stream was cut");
    for fr in &whole {
        assert!(fr.data.len() <= max);
        assert_eq!(fr.truncated, (fr.data.len() as u64) < fr.original_len);
    }

    let peer: SocketAddr = "[2001:db8::1]:514".parse().unwrap();
    let utc = TimeContext::utc(Timestamp::from_secs(1_795_780_800));
    let local = TimeContext { now: Timestamp::from_secs(1_774_746_000), tz: berlin().clone() };
    for raw in whole.iter().map(|fr| &fr.data[..]).chain([data]) {
        for ctx in [&utc, &local] {
            let m = parse(raw, peer, Transport::Tcp, ctx);
            let line = m.to_line(&ctx.tz);
            assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
            assert!(m.facility.is_none_or(|f| f < 24) && m.severity.is_none_or(|s| s < 8));
            let _ = m.journal_style_line();
        }
    }
});
