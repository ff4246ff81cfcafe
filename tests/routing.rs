//! Routing as SPEC §4: placement affinity, overflow by least in-flight, FIFO queueing, saturation
//! modes, unknown model, no healthy endpoint.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;

const CHAT: &str = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":false}"#;

/// Starts a request that holds the only slot for five tokens of `ms_per_token`, and lets it take the slot.
fn hold_the_slot(url: &str, ms_per_token: &str) -> std::thread::JoinHandle<Resp> {
    let (url, ms) = (url.to_string(), ms_per_token.to_string());
    let holder = std::thread::spawn(move || {
        post_with(
            &url,
            CHAT,
            &[("x-mock-delay-ms", &ms), ("x-mock-tokens", "5")],
        )
    });
    std::thread::sleep(Duration::from_millis(150));
    holder
}

#[test]
fn loaded_model_goes_to_its_endpoint_then_overflow_spreads_by_least_in_flight() {
    let a = Mock::start(&["--models", "m", "--loaded", ""]);
    let b = Mock::start(&["--models", "m", "--loaded", "m"]);
    let c = Mock::start(&["--models", "m", "--loaded", ""]);
    let router = Router::start(
        &config_for(
            &[a.url(), b.url(), c.url()],
            "max_concurrent_connections: 2\n",
        ),
        &["--log-level", "warn"],
    );
    // Sequential requests: B has the model loaded and a free slot every time.
    for _ in 0..10 {
        let r = post(&router.url("/api/chat"), CHAT);
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("x-router-endpoint"), Some(b.url().as_str()));
    }
    assert_eq!(b.stats()["inference"], 10);
    assert_eq!(a.stats()["inference"], 0);
    // Six slow requests at once: B takes two, the overflow spreads over A and C by least in-flight.
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let url = router.url("/api/chat");
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(i * 60));
                post_with(
                    &url,
                    CHAT,
                    &[("x-mock-delay-ms", "150"), ("x-mock-tokens", "6")],
                )
            })
        })
        .collect();
    let mut by_endpoint: HashMap<String, usize> = HashMap::new();
    for h in handles {
        let r = h.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        *by_endpoint
            .entry(r.header("x-router-endpoint").unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(by_endpoint.get(&b.url()), Some(&2), "{by_endpoint:?}");
    assert_eq!(by_endpoint.get(&a.url()), Some(&2), "{by_endpoint:?}");
    assert_eq!(by_endpoint.get(&c.url()), Some(&2), "{by_endpoint:?}");
    let idle = router.wait_idle();
    assert_eq!(idle["total_in_flight"], 0, "{idle}");
}

#[test]
fn full_slots_queue_in_order_then_429_when_the_queue_is_full() {
    let m = Mock::start(&["--models", "m"]);
    let router = Router::start(
        &config_for(
            &[m.url()],
            "max_concurrent_connections: 1\nqueue:\n  max_queue: 5\n  queue_timeout: 30s\n",
        ),
        &["--log-level", "warn"],
    );
    let url = router.url("/api/chat");
    // Request 0 holds the only slot for ~1 s; 1..=5 arrive in order and must be served in that order.
    let first = {
        let url = url.clone();
        std::thread::spawn(move || {
            post_with(
                &url,
                CHAT,
                &[
                    ("x-test-id", "0"),
                    ("x-mock-delay-ms", "100"),
                    ("x-mock-tokens", "10"),
                ],
            )
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let mut waiting = Vec::new();
    for i in 1..=5 {
        let url = url.clone();
        waiting.push(std::thread::spawn(move || {
            post_with(&url, CHAT, &[("x-test-id", &i.to_string())])
        }));
        std::thread::sleep(Duration::from_millis(60));
    }
    let usage = router.usage();
    assert_eq!(usage["queue_depth"]["m"], 5, "{usage}");
    // The sixth waiter finds the line full.
    let over = post(&url, CHAT);
    assert_eq!(over.status, 429, "{}", over.body);
    assert!(over.header("retry-after").is_some());
    assert!(over.json()["error"].as_str().unwrap().contains("queue"));
    assert_eq!(first.join().unwrap().status, 200);
    for w in waiting {
        assert_eq!(w.join().unwrap().status, 200);
    }
    let order: Vec<String> = m.stats()["order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(order, vec!["0", "1", "2", "3", "4", "5"]);
    assert_eq!(router.wait_idle()["total_in_flight"], 0);
}

#[test]
fn queue_timeout_gives_503_and_frees_its_place() {
    let m = Mock::start(&["--models", "m"]);
    let router = Router::start(
        &config_for(&[m.url()], "queue:\n  queue_timeout: 300ms\n"),
        &["--log-level", "warn"],
    );
    let url = router.url("/api/chat");
    let holder = hold_the_slot(&url, "200");
    let r = post(&url, CHAT);
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.header("retry-after").is_some());
    assert_eq!(holder.join().unwrap().status, 200);
    let u = router.wait_idle();
    assert_eq!(
        (u["total_in_flight"].as_u64(), u["total_queued"].as_u64()),
        (Some(0), Some(0)),
        "{u}"
    );
}

#[test]
fn reject_and_overflow_modes() {
    let m = Mock::start(&["--models", "m"]);
    let reject = Router::start(
        &config_for(&[m.url()], "queue:\n  mode: reject\n"),
        &["--log-level", "warn"],
    );
    let overflow = Router::start(
        &config_for(&[m.url()], "queue:\n  mode: overflow\n"),
        &["--log-level", "warn"],
    );
    for (router, expect_second) in [(&reject, 429), (&overflow, 200)] {
        let url = router.url("/api/chat");
        let holder = hold_the_slot(&url, "100");
        let r = post(&url, CHAT);
        assert_eq!(r.status, expect_second, "{}", r.body);
        assert_eq!(holder.join().unwrap().status, 200);
        assert_eq!(router.wait_idle()["total_in_flight"], 0);
    }
}

#[test]
fn unknown_model_is_404_in_each_api_format() {
    let m = Mock::start(&["--models", "m"]);
    let router = Router::start(&config_for(&[m.url()], ""), &["--log-level", "warn"]);
    let r = post(
        &router.url("/api/chat"),
        r#"{"model":"nope","messages":[]}"#,
    );
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].as_str().unwrap().contains("nope"));
    let r = post(
        &router.url("/v1/chat/completions"),
        r#"{"model":"nope","messages":[]}"#,
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["type"], "not_found_error");
}

#[test]
fn name_and_latest_tag_resolve_to_the_same_model() {
    let m = Mock::start(&["--models", "llama3:latest"]);
    let router = Router::start(&config_for(&[m.url()], ""), &["--log-level", "warn"]);
    for name in ["llama3", "llama3:latest"] {
        let body = format!(r#"{{"model":"{name}","messages":[],"stream":false}}"#);
        assert_eq!(post(&router.url("/api/chat"), &body).status, 200, "{name}");
    }
}

#[test]
fn no_healthy_endpoint_is_503() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let router = Router::start(&config_for(&[dead], ""), &["--log-level", "warn"]);
    let r = get(&router.url("/health"));
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["status"], "error");
    let r = post(&router.url("/api/chat"), CHAT);
    assert_eq!(r.status, 503, "{}", r.body);
    let r = post(
        &router.url("/v1/chat/completions"),
        r#"{"model":"m","messages":[]}"#,
    );
    assert_eq!(r.status, 503);
    assert!(r.json()["error"]["message"].is_string());
}

#[test]
fn upstream_keys_go_upstream_and_the_client_key_does_not() {
    let m = Mock::start(&["--models", "m"]);
    let yaml = config_for(
        &[m.url()],
        &format!(
            "nomyo-router-api-key: router-secret\napi_keys:\n  \"{}\": upstream-secret\n",
            m.url()
        ),
    );
    let router = Router::start(&yaml, &["--log-level", "warn"]);
    let r = post_with(
        &router.url("/api/chat"),
        CHAT,
        &[("authorization", "Bearer router-secret")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let auth = m.stats()["auth"].clone();
    let seen: Vec<&str> = auth
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        seen.iter().all(|a| *a == "Bearer upstream-secret"),
        "{seen:?}"
    );
    assert!(!seen.is_empty());
}
