//! How NftEnforcer treats the nft process: missing program, hangs, floods,
//! failures, garbage. Uses `sh` as a stand-in for nft; no root needed.

use std::time::{Duration, Instant};

use stadtwache_enforce::{Ban, EnforceError, Enforcer, NftConfig, NftEnforcer, STDERR_CAP};

/// An enforcer whose "nft" is the shell snippet `script` (nft's arguments
/// become `$1…`; the script on stdin is readable with `cat`), with 30 s for
/// each call: a shell started on a loaded machine may take seconds.
fn fake(script: &str) -> NftEnforcer {
    fake_with_timeout(script, 30_000)
}

fn fake_with_timeout(script: &str, timeout_ms: u64) -> NftEnforcer {
    let command = vec!["sh".to_string(), "-c".to_string(), script.to_string(), "fake-nft".to_string()];
    NftEnforcer::new(NftConfig { command, timeout_ms, max_output_bytes: 10_000, ..NftConfig::default() }).unwrap()
}

fn ban() -> Ban {
    Ban::new("192.0.2.1".parse().unwrap(), Duration::from_secs(60))
}

#[test]
fn missing_program_is_a_spawn_error() {
    let mut e = NftEnforcer::new(NftConfig {
        command: vec!["/nonexistent/stadtwache-nft".to_string()],
        ..NftConfig::default()
    })
    .unwrap();
    assert!(matches!(e.ensure(), Err(EnforceError::Spawn { .. })));
    let h = e.health();
    assert_eq!((h.transactions, h.failures), (1, 1));
    assert!(h.last_error.unwrap().contains("/nonexistent/stadtwache-nft"));
}

#[test]
fn a_hanging_nft_is_killed() {
    let mut e = fake_with_timeout("sleep 30", 2_000);
    let start = Instant::now();
    assert!(matches!(e.apply(&[ban()], &[]), Err(EnforceError::Timeout { timeout_ms: 2_000, .. })));
    assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
}

#[test]
fn the_script_reaches_stdin_in_one_process() {
    let dir = std::env::temp_dir().join(format!("sw-enf-proc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("calls");
    let mut e = fake(&format!("echo \"$@\" >> {0}; cat >> {0}", log.display()));
    let bans: Vec<Ban> = (0..1000u32)
        .map(|i| Ban::new(std::net::Ipv4Addr::from(0x0a00_0000 + i).into(), Duration::from_secs(60)))
        .collect();
    let st = e.apply(&bans, &["2001:db8::/32".parse().unwrap()]).unwrap();
    assert_eq!((st.added, st.removed, st.transactions), (1000, 1, 1));
    let calls = std::fs::read_to_string(&log).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(calls.matches("-f -").count(), 1, "{calls}");
    assert!(calls.contains("add element inet stadtwache v4 { 10.0.0.0 timeout 60s, 10.0.0.1 timeout 60s,"));
    assert!(calls.contains("delete element inet stadtwache v6net { 2001:db8::/32 }\n"));
}

#[test]
fn nft_errors_carry_capped_stderr() {
    let mut e = fake("cat >/dev/null; yes 'Error: something' | head -c 100000 >&2; exit 1");
    match e.apply(&[ban()], &[]) {
        Err(EnforceError::Nft { stderr, .. }) => {
            assert!(stderr.starts_with("Error: something"));
            assert!(stderr.len() <= STDERR_CAP + 4, "{}", stderr.len());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_unknown_failure_is_not_split_per_element() {
    // A failure that is not about elements must not cause one process per element.
    let dir = std::env::temp_dir().join(format!("sw-enf-proc2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("calls");
    let mut e = fake(&format!(
        "cat >/dev/null; echo x >> {}; echo 'Error: Operation not permitted' >&2; exit 1",
        log.display()
    ));
    let bans: Vec<Ban> = (0..100u32).map(|i| Ban::permanent(std::net::Ipv4Addr::from(i + 1).into())).collect();
    assert!(e.apply(&bans, &[]).is_err());
    let calls = std::fs::read_to_string(&log).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(calls.lines().count(), 1);
}

#[test]
fn listings_are_capped_and_checked() {
    let mut flood = fake("yes '{' | head -c 1000000");
    assert_eq!(flood.list(), Err(EnforceError::OutputTooLarge(10_000)));
    for garbage in ["echo not json", "echo '{\"nftables\": 7}'", "printf '\\377\\376'", "true"] {
        let mut e = fake(garbage);
        assert!(matches!(e.list(), Err(EnforceError::Parse(_))), "{garbage}");
    }
    let mut ok = fake(
        r#"echo '{"nftables": [{"set": {"name": "v4", "elem": ["192.0.2.9", {"elem": {"val": "::1", "timeout": 9}}]}}]}'"#,
    );
    let l = ok.list().unwrap();
    assert_eq!(l.len(), 2);
    assert_eq!(l[1].1, Some(Duration::from_secs(9)));
}

#[test]
fn a_probe_that_cannot_read_the_kernel_falls_back_to_add_delete_add() {
    // Transactions "succeed", listings are empty: the probe cannot confirm.
    let mut e = fake("cat >/dev/null");
    e.ensure().unwrap();
    assert_eq!(e.readd_replaces_timeouts(), Some(false));
    assert!(e.health().last_error.unwrap().contains("cannot parse"));
}
