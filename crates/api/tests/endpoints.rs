//! Endpoint behaviour against an in-memory SqliteStore.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use stadtwache_api::{ApiConfig, FailMode};
use stadtwache_store::Store;

const NGINX: &str = "127.0.0.1:40000";
const REMOTE: &str = "203.0.113.9:5555";

#[tokio::test]
async fn auth_allows_unknown_and_denies_banned_addresses_and_prefixes() {
    let f = fixture(config());
    let id = f.ban("198.51.100.7", "sshd", Some(3600));
    f.ban("192.0.2.0/24", "nginx-botsearch", None);
    f.ban("2001:db8:1::/48", "sshd", Some(60));
    f.refresh();

    let (s, h, _) = f.get("/v1/auth", "198.51.100.8:1", &[]).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(h.get("x-stadtwache-reason").is_none());

    let (s, h, body) = f.get("/v1/auth", "198.51.100.7:1", &[]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let reason = h["x-stadtwache-reason"].to_str().unwrap();
    assert_eq!(reason, format!("rule sshd until 2026-11-27T11:15:00Z on 198.51.100.7 (decision {id})"));
    assert!(message(&body).contains("sshd"));

    // Network bans, v4 and v6, and a v4-mapped v6 peer.
    let (s, h, _) = f.get("/v1/auth", "192.0.2.200:1", &[]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(h["x-stadtwache-reason"].to_str().unwrap().contains("permanent on 192.0.2.0/24"));
    assert_eq!(f.get("/v1/auth", "[::ffff:192.0.2.1]:1", &[]).await.0, StatusCode::FORBIDDEN);
    assert_eq!(f.get("/v1/auth", "[2001:db8:1:ffff::1]:1", &[]).await.0, StatusCode::FORBIDDEN);
    assert_eq!(f.get("/v1/auth", "[2001:db8:2::1]:1", &[]).await.0, StatusCode::NO_CONTENT);

    // Past its `until` (not yet expired in the store): no longer denied.
    f.advance(61);
    assert_eq!(f.get("/v1/auth", "[2001:db8:1::1]:1", &[]).await.0, StatusCode::NO_CONTENT);

    // Deleting in the store reaches the index on refresh.
    f.store
        .lock()
        .unwrap()
        .delete_decisions(&stadtwache_store::DecisionRef::Id(stadtwache_store::DecisionId(id)), f.now())
        .unwrap();
    assert_eq!(f.get("/v1/auth", "198.51.100.7:1", &[]).await.0, StatusCode::FORBIDDEN, "index not refreshed yet");
    f.refresh();
    assert_eq!(f.get("/v1/auth", "198.51.100.7:1", &[]).await.0, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn client_header_is_believed_only_from_trusted_proxies() {
    let f = fixture(config());
    f.ban("198.51.100.7", "sshd", Some(3600));
    f.refresh();
    // nginx on loopback passes the client address.
    let (s, _, _) = f.get("/v1/auth", NGINX, &[("X-Real-IP", "198.51.100.7")]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = f.get("/v1/auth", NGINX, &[("X-Forwarded-For", "198.51.100.7, 127.0.0.1")]).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "rightmost untrusted hop");
    // A client spoofing XFF in front of nginx: nginx appends the real one.
    let (s, _, _) = f.get("/v1/auth", NGINX, &[("X-Forwarded-For", "198.51.100.7, 203.0.113.5")]).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // A banned client connecting directly cannot clear itself with a header…
    let (s, _, _) = f.get("/v1/auth", "198.51.100.7:9", &[("X-Real-IP", "203.0.113.5")]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // …and an untrusted peer cannot get someone else judged.
    let (s, _, _) = f.get("/v1/auth", REMOTE, &[("X-Real-IP", "198.51.100.7")]).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // Garbage in the header from a trusted proxy is a 400 with a JSON message.
    let (s, _, body) = f.get("/v1/auth", NGINX, &[("X-Real-IP", "not-an-ip")]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(message(&body).contains("X-Real-IP") || message(&body).contains("x-real-ip"), "{body}");
}

#[tokio::test]
async fn stale_index_fails_open_by_default_with_header_and_counter() {
    let f = fixture(config());
    f.ban("198.51.100.7", "sshd", None);
    // Never refreshed: stale. Open: allowed (the index knows nothing yet).
    let (s, h, _) = f.get("/v1/auth", "198.51.100.7:1", &[]).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(h["x-stadtwache-stale"], "never-refreshed");
    f.refresh();
    let (s, h, _) = f.get("/v1/auth", "198.51.100.7:1", &[]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(h.get("x-stadtwache-stale").is_none());
    // 11 s without refresh (stale_after 10 s): still answers from what it knew.
    f.advance(11);
    let (s, h, _) = f.get("/v1/auth", "198.51.100.7:1", &[]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(h["x-stadtwache-stale"], "11");
    let (s, h, _) = f.get("/v1/auth", "198.51.100.8:1", &[]).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(h["x-stadtwache-stale"], "11");
    let metrics = f.get("/metrics", NGINX, &[]).await.2;
    assert!(metrics.contains("stadtwache_api_stale_answers_total 3\n"), "{metrics}");
    assert!(metrics.contains("stadtwache_api_index_age_seconds 11\n"), "{metrics}");
}

#[tokio::test]
async fn stale_index_fails_closed_when_configured() {
    let f = fixture(ApiConfig { fail_mode: FailMode::Closed, ..config() });
    f.refresh();
    assert_eq!(f.get("/v1/auth", "198.51.100.8:1", &[]).await.0, StatusCode::NO_CONTENT);
    f.advance(11);
    let (s, h, body) = f.get("/v1/auth", "198.51.100.8:1", &[]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(h["x-stadtwache-reason"], "stale");
    assert_eq!(h["x-stadtwache-stale"], "11");
    assert!(message(&body).contains("stale"));
    f.refresh();
    assert_eq!(f.get("/v1/auth", "198.51.100.8:1", &[]).await.0, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn lapi_decisions_shapes_and_filters() {
    let f = fixture(config());
    let key = f.bouncer_key("nginx-bouncer");
    let id = f.ban("198.51.100.7", "sshd", Some(4 * 3600));
    let net = f.ban("192.0.2.0/24", "sshd", Some(60));
    f.refresh();
    f.advance(2);
    let k = [("X-Api-Key", key.as_str())];

    let (s, h, body) = f.get("/v1/decisions?ip=198.51.100.7", REMOTE, &k).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(
        json(&body),
        serde_json::json!([{
            "duration": "3h59m58s", "id": id, "origin": "rule", "scenario": "sshd",
            "scope": "Ip", "type": "ban", "until": "2026-11-27T14:15:00Z", "value": "198.51.100.7"
        }])
    );
    // Keys in CrowdSec's order.
    assert!(body.starts_with("[{\"duration\":\"3h59m58s\",\"id\":"), "{body}");

    // None: the literal `null`, as CrowdSec.
    let (s, _, body) = f.get("/v1/decisions?ip=198.51.100.8", REMOTE, &k).await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "null"));

    // An address inside a banned range, via ip= and scope/value.
    let (_, _, body) = f.get("/v1/decisions?ip=192.0.2.55", REMOTE, &k).await;
    let v = json(&body);
    assert_eq!(v[0]["scope"], "Range");
    assert_eq!(v[0]["value"], "192.0.2.0/24");
    assert_eq!(v[0]["id"], net);
    assert_eq!(v[0]["duration"], "58s");
    // `scope` filters the decision's scope (as CrowdSec's ScopeIn): an Ip
    // query does not return the range.
    let (_, _, body) = f.get("/v1/decisions?scope=ip&value=192.0.2.55", REMOTE, &k).await;
    assert_eq!(body, "null");
    let (_, _, body) = f.get("/v1/decisions?scope=Ip&value=198.51.100.7", REMOTE, &k).await;
    assert_eq!(json(&body)[0]["id"], id);
    let (_, _, body) = f.get("/v1/decisions?scope=range&value=192.0.2.0/24", REMOTE, &k).await;
    assert_eq!(json(&body)[0]["id"], net);
    let (_, _, body) = f.get("/v1/decisions?range=192.0.2.128/25", REMOTE, &k).await;
    assert_eq!(json(&body)[0]["id"], net, "contains=true: ranges containing it");
    let (_, _, body) = f.get("/v1/decisions?range=198.51.100.0/24&contains=false", REMOTE, &k).await;
    assert_eq!(json(&body)[0]["id"], id, "contains=false: decisions inside it");
    let (_, _, body) = f.get("/v1/decisions?type=captcha&ip=198.51.100.7", REMOTE, &k).await;
    assert_eq!(body, "null");
    // IPv6 percent-encoded.
    f.ban("2001:db8::1", "sshd", None);
    f.refresh();
    let (_, _, body) = f.get("/v1/decisions?ip=2001%3Adb8%3A%3A1", REMOTE, &k).await;
    assert_eq!(json(&body)[0]["value"], "2001:db8::1");
    assert_eq!(json(&body)[0]["duration"], "8760h0m0s", "permanent → permanent_duration");
    // All of them.
    let (_, _, body) = f.get("/v1/decisions", REMOTE, &k).await;
    assert_eq!(json(&body).as_array().unwrap().len(), 3);

    // Bad input: 400 JSON.
    for uri in
        ["/v1/decisions?ip=1.2.3", "/v1/decisions?range=10.0.0.0/33", "/v1/decisions?bogus=1", "/v1/decisions?ip=%ZZ"]
    {
        let (s, _, body) = f.get(uri, REMOTE, &k).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}");
        message(&body);
    }
}

#[tokio::test]
async fn unknown_or_missing_api_key_is_403_with_crowdsec_error_shape() {
    let f = fixture(config());
    f.bouncer_key("fw");
    for headers in [&[][..], &[("X-Api-Key", "0000")][..], &[("X-Api-Key", "a".repeat(64).as_str())][..]] {
        for uri in ["/v1/decisions?ip=1.2.3.4", "/v1/decisions/stream?startup=true"] {
            let (s, _, body) = f.get(uri, REMOTE, headers).await;
            assert_eq!(s, StatusCode::FORBIDDEN);
            assert_eq!(body, r#"{"message":"access forbidden"}"#);
        }
    }
}

#[tokio::test]
async fn stream_startup_incremental_and_deleted() {
    let f = fixture(config());
    let key = f.bouncer_key("crowdsec-firewall-bouncer");
    let k = [("X-Api-Key", key.as_str())];
    let a = f.ban("198.51.100.7", "sshd", Some(3600));
    let b = f.ban("2001:db8::/64", "sshd", Some(7200));
    let gone = f.ban("198.51.100.9", "sshd", Some(10));
    f.store
        .lock()
        .unwrap()
        .delete_decisions(&stadtwache_store::DecisionRef::Id(stadtwache_store::DecisionId(gone)), f.now())
        .unwrap();

    let (s, _, body) = f.get("/v1/decisions/stream?startup=true", REMOTE, &k).await;
    assert_eq!(s, StatusCode::OK);
    let v = json(&body);
    assert_eq!(v["deleted"], serde_json::Value::Null, "no deletions at start-up: {body}");
    let new = v["new"].as_array().unwrap();
    assert_eq!(new.len(), 2);
    assert_eq!(new[0]["id"], a);
    assert_eq!(new[0]["duration"], "1h0m0s");
    assert_eq!(new[1]["id"], b);
    assert_eq!(new[1]["scope"], "Range");
    assert_eq!(new[1]["value"], "2001:db8::/64");
    assert!(body.starts_with("{\"deleted\":null,\"new\":["), "Go map key order: {body}");

    // Nothing happened: both null.
    let (_, _, body) = f.get("/v1/decisions/stream?startup=false", REMOTE, &k).await;
    assert_eq!(body, r#"{"deleted":null,"new":null}"#);

    // One new, one deleted.
    f.advance(5);
    let c = f.ban("203.0.113.77", "nginx", Some(600));
    f.store
        .lock()
        .unwrap()
        .delete_decisions(&stadtwache_store::DecisionRef::Id(stadtwache_store::DecisionId(a)), f.now())
        .unwrap();
    let (_, _, body) = f.get("/v1/decisions/stream", REMOTE, &k).await;
    let v = json(&body);
    assert_eq!(v["new"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(v["new"][0]["id"], c);
    assert_eq!(v["new"][0]["value"], "203.0.113.77");
    assert_eq!(v["deleted"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(v["deleted"][0]["id"], a);
    assert_eq!(v["deleted"][0]["value"], "198.51.100.7");
    assert_eq!(v["deleted"][0]["type"], "ban");

    // The cursor was persisted per bouncer: a second bouncer starts from scratch.
    let info = f.store.lock().unwrap().list_bouncers().unwrap();
    let fw = info.iter().find(|b| b.name == "crowdsec-firewall-bouncer").unwrap();
    assert!(fw.cursor.0 > 0 && fw.last_pull == Some(f.now()));
    let key2 = f.bouncer_key("other");
    let (_, _, body) = f.get("/v1/decisions/stream", REMOTE, &[("X-Api-Key", key2.as_str())]).await;
    assert_eq!(json(&body)["new"].as_array().unwrap().len(), 2, "first pull without startup = everything live");

    // scopes filter.
    let (_, _, body) = f.get("/v1/decisions/stream?startup=true&scopes=range", REMOTE, &k).await;
    let v = json(&body);
    assert_eq!(v["new"].as_array().unwrap().len(), 1);
    assert_eq!(v["new"][0]["id"], b);
    // HEAD: 200, nothing recorded.
    let req = Request::head("/v1/decisions/stream").header("X-Api-Key", &key).body(Body::empty()).unwrap();
    let (s, _, body) = f.call(req, REMOTE).await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, ""));
    // Bad startup value.
    let (s, _, body) = f.get("/v1/decisions/stream?startup=maybe", REMOTE, &k).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    message(&body);
}

#[tokio::test]
async fn admin_requires_token_and_writes_refresh_the_index() {
    let f = fixture(config());
    f.refresh();
    let body = r#"{"value": "198.51.100.0/24", "duration": "4h", "reason": "scanner", "scenario": "manual"}"#;
    let post = |token: Option<&str>| {
        let mut b = Request::post("/v1/admin/decisions").header("content-type", "application/json");
        if let Some(t) = token {
            b = b.header("Authorization", format!("Bearer {t}"));
        }
        b.body(Body::from(body)).unwrap()
    };
    let (s, h, b) = f.call(post(None), NGINX).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(h["www-authenticate"], "Bearer");
    message(&b);
    assert_eq!(f.call(post(Some("wrong")), NGINX).await.0, StatusCode::UNAUTHORIZED);
    let (s, _, b) = f.call(post(Some(ADMIN)), NGINX).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let created = json(&b);
    assert_eq!(created["value"], "198.51.100.0/24");
    assert_eq!(created["scope"], "Range");
    assert_eq!(created["origin"], "admin");
    assert_eq!(created["until"], "2026-11-27T14:15:00Z");
    let id = created["id"].as_i64().unwrap();
    // Immediately enforced (no refresh in between).
    let (s, h, _) = f.get("/v1/auth", "198.51.100.44:1", &[]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(h["x-stadtwache-reason"].to_str().unwrap().starts_with("admin manual until"));

    let auth = [("Authorization", &*format!("Bearer {ADMIN}"))];
    let (s, _, b) = f.get("/v1/admin/decisions", NGINX, &auth).await;
    assert_eq!(s, StatusCode::OK);
    let list = json(&b);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["reason"]["text"], "scanner");
    assert_eq!(f.get("/v1/admin/decisions", NGINX, &[]).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(f.get("/v1/admin/alerts", NGINX, &[]).await.0, StatusCode::UNAUTHORIZED);
    let (s, _, b) = f.get("/v1/admin/alerts?limit=5", NGINX, &auth).await;
    assert_eq!((s, b.as_str()), (StatusCode::OK, "[]"));

    // Delete by id, then by value.
    let del = |uri: &str| {
        Request::delete(uri).header("Authorization", format!("Bearer {ADMIN}")).body(Body::empty()).unwrap()
    };
    let (s, _, b) = f.call(del(&format!("/v1/admin/decisions/{id}")), NGINX).await;
    assert_eq!((s, json(&b)["deleted"].as_i64()), (StatusCode::OK, Some(1)));
    assert_eq!(f.get("/v1/auth", "198.51.100.44:1", &[]).await.0, StatusCode::NO_CONTENT);
    let (s, _, _) = f.call(del(&format!("/v1/admin/decisions/{id}")), NGINX).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    f.ban("203.0.113.5", "sshd", None);
    f.refresh();
    let (s, _, b) = f.call(del("/v1/admin/decisions?value=203.0.113.5"), NGINX).await;
    assert_eq!((s, json(&b)["deleted"].as_i64()), (StatusCode::OK, Some(1)));
    assert_eq!(f.get("/v1/auth", "203.0.113.5:1", &[]).await.0, StatusCode::NO_CONTENT);

    // Bad bodies: 400 JSON.
    for bad in [
        "",
        "{",
        r#"{"value": "1.2.3.4"}"#,
        r#"{"value": "1.2.3.4/40", "duration": "1h"}"#,
        r#"{"value": "1.2.3.4", "duration": "-5"}"#,
        r#"{"value": "1.2.3.4", "duration": "soon"}"#,
        r#"{"value": "1.2.3.4", "duration": "1h", "extra": 1}"#,
        "\u{0}\u{ff}garbage",
    ] {
        let req = Request::post("/v1/admin/decisions")
            .header("Authorization", format!("Bearer {ADMIN}"))
            .body(Body::from(bad))
            .unwrap();
        let (s, _, b) = f.call(req, NGINX).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad:?}: {b}");
        message(&b);
    }
}

#[tokio::test]
async fn admin_without_configured_token_is_disabled() {
    let f = fixture(ApiConfig::default());
    let (s, _, b) = f.get("/v1/admin/decisions", NGINX, &[("Authorization", "Bearer ")]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(message(&b).contains("disabled"));
}

#[tokio::test]
async fn garbage_requests_get_4xx_json_and_are_counted() {
    let f = fixture(ApiConfig { max_body_bytes: 1024, ..config() });
    let cases: Vec<(Request<Body>, StatusCode)> = vec![
        (Request::get("/nope").body(Body::empty()).unwrap(), StatusCode::NOT_FOUND),
        (Request::get("/v1/admin/decisions/x/y").body(Body::empty()).unwrap(), StatusCode::NOT_FOUND),
        (Request::post("/v1/auth").body(Body::empty()).unwrap(), StatusCode::METHOD_NOT_ALLOWED),
        (Request::put("/v1/decisions").body(Body::empty()).unwrap(), StatusCode::METHOD_NOT_ALLOWED),
        (Request::get("/v1/admin/decisions/12").body(Body::empty()).unwrap(), StatusCode::METHOD_NOT_ALLOWED),
        (
            Request::post("/v1/admin/decisions")
                .header("Authorization", format!("Bearer {ADMIN}"))
                .body(Body::from(vec![b'x'; 4096]))
                .unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            Request::post("/v1/admin/decisions")
                .header("Authorization", format!("Bearer {ADMIN}"))
                .header("content-length", "99999999")
                .body(Body::from("{}"))
                .unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            Request::get("/v1/auth").header("x-big", "a".repeat(20_000)).body(Body::empty()).unwrap(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        ),
    ];
    for (req, want) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let (s, h, b) = f.call(req, NGINX).await;
        assert_eq!(s, want, "{what}: {b}");
        assert_eq!(h["content-type"], "application/json", "{what}");
        message(&b);
    }
    // A streamed (chunked) body without content-length over the cap.
    let stream = futures_body(8192);
    let req =
        Request::post("/v1/admin/decisions").header("Authorization", format!("Bearer {ADMIN}")).body(stream).unwrap();
    let (s, _, b) = f.call(req, NGINX).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{b}");

    let metrics = f.get("/metrics", NGINX, &[]).await.2;
    for line in [
        "stadtwache_api_requests_total{endpoint=\"other\",status=\"404\"} 1\n",
        "stadtwache_api_requests_total{endpoint=\"admin_decisions\",status=\"404\"} 1\n",
        "stadtwache_api_requests_total{endpoint=\"auth\",status=\"405\"} 1\n",
        "stadtwache_api_requests_total{endpoint=\"admin_decisions\",status=\"413\"} 3\n",
        "stadtwache_api_requests_total{endpoint=\"auth\",status=\"431\"} 1\n",
        "# TYPE stadtwache_api_request_duration_seconds histogram\n",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    assert!(!metrics.contains("203.0.113"), "no addresses in metrics");
}

/// A body sent in 512-byte chunks without a length (like chunked encoding).
fn futures_body(n: usize) -> Body {
    struct Chunks(usize);
    impl hyper::body::Body for Chunks {
        type Data = axum::body::Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
            if self.0 == 0 {
                return std::task::Poll::Ready(None);
            }
            self.0 -= 1;
            std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(axum::body::Bytes::from(vec![b'{'; 512])))))
        }
    }
    Body::new(Chunks(n / 512))
}

#[tokio::test]
async fn metrics_endpoint_renders_the_shared_registry() {
    let f = fixture(config());
    let lines = f.registry.counter_vec("stadtwache_lines_total", "Lines read.", &["source"]).unwrap();
    lines.with(&["sshd"]).inc_by(42);
    f.refresh();
    let (s, h, body) = f.get("/metrics", NGINX, &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    assert!(
        body.contains("# TYPE stadtwache_lines_total counter\nstadtwache_lines_total{source=\"sshd\"} 42\n"),
        "{body}"
    );
    assert!(body.contains("stadtwache_api_index_decisions 0\n"), "{body}");
    let (s, _, body) = f.get("/health", NGINX, &[]).await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, r#"{"status":"up"}"#));
}

#[test]
fn config_rejects_unknown_keys_and_bad_values() {
    let ok: ApiConfig = serde_json::from_str(
        r#"{"listen": "[::1]:9000", "stale_after": "30s", "fail_mode": "closed", "trusted_proxies": ["10.0.0.0/8"]}"#,
    )
    .unwrap();
    assert_eq!(ok.stale_after, stadtwache_core::Duration::from_secs(30));
    assert_eq!(ok.fail_mode, FailMode::Closed);
    ok.validate().unwrap();
    assert!(serde_json::from_str::<ApiConfig>(r#"{"listen_addr": "1.2.3.4:1"}"#).is_err());
    let bad = ApiConfig { trusted_proxies: vec!["nginx".into()], ..ApiConfig::default() };
    assert!(bad.validate().is_err());
    let bad = ApiConfig { admin_token: Some("  ".into()), ..ApiConfig::default() };
    assert!(bad.validate().is_err());
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("token");
    std::fs::write(&p, "from-file\n").unwrap();
    let c = ApiConfig { admin_token_file: Some(p), ..ApiConfig::default() };
    assert_eq!(c.resolve_admin_token().unwrap().as_deref(), Some("from-file"));
    assert_eq!(ApiConfig::default().listen.to_string(), "127.0.0.1:8080");
}
