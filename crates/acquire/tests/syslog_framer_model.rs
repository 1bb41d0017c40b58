//! Property tests of the TCP framer: frames do not depend on how the stream
//! is cut into reads, every byte is accounted for, and a stream of valid
//! frames in any mix of framings comes out exactly (cut at the cap).

use proptest::prelude::*;
use stadtwache_acquire::syslog::{Frame, Framer, Framing};

fn run(max: usize, data: &[u8], cuts: &[usize]) -> (Vec<Frame>, Framer) {
    let mut f = Framer::new(max);
    let mut out = Vec::new();
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    cuts.sort_unstable();
    let mut at = 0;
    for c in cuts.into_iter().chain([data.len()]) {
        f.push(&data[at..c], &mut |fr| out.push(fr));
        at = c;
    }
    let pending = f.pending() as u64;
    let s = f.stats();
    assert_eq!(s.bytes_in, data.len() as u64);
    assert_eq!(s.bytes_in, s.frame_bytes + s.framing_bytes + s.discarded_bytes + pending, "{s:?}");
    f.finish(&mut |fr| out.push(fr));
    assert_eq!(f.pending(), 0);
    let total: u64 = out.iter().map(|fr| fr.data.len() as u64).sum();
    let s = f.stats();
    assert_eq!(total, s.frame_bytes);
    assert_eq!(s.bytes_in, s.frame_bytes + s.framing_bytes + s.discarded_bytes, "{s:?}");
    for fr in &out {
        assert!(fr.data.len() <= max);
        assert_eq!(fr.truncated, (fr.data.len() as u64) < fr.original_len);
    }
    (out, f)
}

#[derive(Clone, Debug)]
enum How {
    Octet,
    Lf,
    CrLf,
    Nul,
}

fn message() -> impl Strategy<Value = (Vec<u8>, How)> {
    prop_oneof![
        // Octet counted: any bytes after the `<`.
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(|mut v| {
            v.insert(0, b'<');
            (v, How::Octet)
        }),
        // Delimited: no LF or NUL inside, no CR at the end.
        (proptest::collection::vec(any::<u8>().prop_filter("delimiter", |b| *b != b'\n' && *b != 0), 0..40), 0..3u8)
            .prop_map(|(mut v, k)| {
                v.insert(0, b'<');
                while v.last() == Some(&b'\r') {
                    v.pop();
                }
                (v, [How::Lf, How::CrLf, How::Nul][k as usize].clone())
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_frame_the_same_whatever_the_reads(
        data in proptest::collection::vec(prop_oneof![any::<u8>(), Just(b'\n'), Just(b' '), Just(b'<'), b'0'..=b'9'], 0..300),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
        max in 1usize..64,
    ) {
        let (whole, _) = run(max, &data, &[]);
        let (chunked, _) = run(max, &data, &cuts);
        prop_assert_eq!(whole, chunked);
    }

    #[test]
    fn valid_frames_in_any_framing_come_out_exactly(
        msgs in proptest::collection::vec(message(), 0..12),
        blank_lines in proptest::collection::vec(0..3usize, 12),
        cuts in proptest::collection::vec(any::<usize>(), 0..30),
        max in prop_oneof![Just(1000usize), 1usize..30],
    ) {
        let mut stream = Vec::new();
        for (i, (m, how)) in msgs.iter().enumerate() {
            match how {
                How::Octet => {
                    stream.extend(format!("{} ", m.len()).as_bytes());
                    stream.extend(m);
                }
                How::Lf => { stream.extend(m); stream.push(b'\n'); }
                How::CrLf => { stream.extend(m); stream.extend(b"\r\n"); }
                How::Nul => { stream.extend(m); stream.push(0); }
            }
            stream.extend(std::iter::repeat_n(b'\n', blank_lines[i]));
        }
        let (frames, f) = run(max, &stream, &cuts);
        prop_assert_eq!(frames.len(), msgs.len());
        for (fr, (m, how)) in frames.iter().zip(&msgs) {
            prop_assert_eq!(&fr.data[..], &m[..m.len().min(max)]);
            prop_assert_eq!(fr.truncated, m.len() > max);
            prop_assert_eq!(fr.framing, if matches!(how, How::Octet) { Framing::OctetCounted } else { Framing::Delimited });
        }
        prop_assert_eq!(f.stats().empty, blank_lines.iter().take(msgs.len()).sum::<usize>() as u64);
    }
}
