//! mock-backend: a fast fake LLM server speaking the Ollama and OpenAI APIs, for the integration
//! tests, the load tests and the README demo. Models, tokens per answer, delay per token, slow first
//! byte and faults (refuse, 500, hang, die mid-stream) are set by flags, or per request by headers
//! (`x-mock-fault`, `x-mock-tokens`, `x-mock-delay-ms`). `GET /mock/stats` tells what it served.

mod answer;
mod body;
mod options;
mod replies;
mod serve;
mod stats;

use clap::Parser;

fn main() {
    let opts = options::Options::parse();
    let listeners =
        match nomyo_router::server::listener::bind_all(&opts.host, opts.port, opts.threads) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("mock-backend: {e}");
                std::process::exit(1);
            }
        };
    let port = listeners[0].local_addr().map(|a| a.port()).unwrap_or(0);
    println!(
        "mock-backend listening on {}:{port} kind={} models={:?} loaded={:?}",
        opts.host,
        opts.kind,
        opts.models,
        opts.loaded_models()
    );
    let shared = std::sync::Arc::new(serve::MockState::new(opts));
    let threads: Vec<_> = listeners
        .into_iter()
        .map(|l| {
            let shared = shared.clone();
            std::thread::spawn(move || serve::run(l, shared))
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}
