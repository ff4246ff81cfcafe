//! The whole-body translators on arbitrary bytes: requests both ways for every route, whole responses
//! both ways for every route, upstream error messages. Asserts: no panic; every translated body is
//! JSON; a translated request targets an absolute path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nomyo_router::translate::{request, response, OllamaRoute, OpenAiRoute};
use nomyo_router_fuzz::assert_json;

const OLLAMA: [OllamaRoute; 4] = [
    OllamaRoute::Chat,
    OllamaRoute::Generate,
    OllamaRoute::Embed,
    OllamaRoute::Embeddings,
];
const OPENAI: [OpenAiRoute; 3] = [
    OpenAiRoute::Chat,
    OpenAiRoute::Completions,
    OpenAiRoute::Embeddings,
];

fuzz_target!(|data: &[u8]| {
    for route in OLLAMA {
        if let Ok(t) = request::ollama_to_openai(route, data, "up-model") {
            assert!(t.path.starts_with('/'));
            assert_json(&t.body);
        }
        if let Ok(body) = response::openai_to_ollama_response(route, data, "fuzz-model") {
            assert_json(&body);
        }
    }
    for route in OPENAI {
        if let Ok(t) = request::openai_to_ollama(route, data, "up-model") {
            assert!(t.path.starts_with('/'));
            assert_json(&t.body);
        }
        if let Ok(body) = response::ollama_to_openai_response(route, data, "fuzz-model") {
            assert_json(&body);
        }
    }
    assert!(!response::error_message(data).is_empty());
    let _ = request::stream_include_usage(data);
});
