//! mock-backend: a fast fake LLM server speaking the Ollama and OpenAI APIs, for the integration
//! tests, the load tests and the README demo. Models, tokens per answer, delay per token, slow first
//! byte and faults (refuse, 500, hang, die mid-stream) are set by flags, or per request by headers
//! (`x-mock-fault`, `x-mock-tokens`, `x-mock-delay-ms`). `GET /mock/stats` tells what it served.
//! `--tls-cert`/`--tls-key` make it serve HTTPS.

mod answer;
mod body;
mod options;
mod replies;
mod serve;
mod stats;
mod tls;

use clap::Parser;

fn main() {
    let opts = options::Options::parse();
    let listeners = match nomyo_router::server::listener::bind_all(
        &opts.host,
        opts.port,
        opts.threads,
        false,
    ) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("mock-backend: {e}");
            std::process::exit(1);
        }
    };
    let port = listeners[0].local_addr().map(|a| a.port()).unwrap_or(0);
    println!(
        "mock-backend listening on {}:{port} kind={} models={:?} loaded={:?} tls={}",
        opts.host,
        opts.kind,
        opts.models,
        opts.loaded_models(),
        opts.tls_cert.is_some()
    );
    let tls = match (&opts.tls_cert, &opts.tls_key) {
        (Some(cert), Some(key)) => match tls::acceptor(cert, key) {
            Ok(acceptor) => Some(acceptor),
            Err(e) => {
                eprintln!("mock-backend: {e}");
                std::process::exit(1);
            }
        },
        _ => None,
    };
    let shared = std::sync::Arc::new(serve::MockState::new(opts, tls));
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
