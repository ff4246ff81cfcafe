//! A request body sniffed for every inference route; an accepted body is rewritten (`nomyo` dropped,
//! `model` replaced, usage asked for) and must still be accepted, with the new model, the same
//! `stream`, and usage asked.
#![no_main]

use http::StatusCode;
use libfuzzer_sys::fuzz_target;
use nomyo_router::api::routes::Inference;
use nomyo_router::api::sniff::{rewrite, sniff};

const ROUTES: [Inference; 8] = [
    Inference::Chat,
    Inference::Generate,
    Inference::Embed,
    Inference::Embeddings,
    Inference::OaiChat,
    Inference::OaiCompletions,
    Inference::OaiEmbeddings,
    Inference::Rerank,
];

fuzz_target!(|data: &[u8]| {
    for route in ROUTES {
        match sniff(data, route) {
            Ok(s) => {
                assert!(!s.model.trim().is_empty());
                let body =
                    rewrite(data, Some("fuzz-model"), true).expect("an accepted body rewrites");
                let again = sniff(&body, route).expect("a rewritten body is accepted");
                assert_eq!(again.model, "fuzz-model");
                assert_eq!(again.stream, s.stream);
                assert!(!again.has_nomyo);
                assert!(again.usage_asked);
            }
            Err(e) => assert_eq!(e.status, StatusCode::BAD_REQUEST),
        }
    }
    let _ = rewrite(data, None, false);
});
