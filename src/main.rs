//! CLI → Config → serve.

use clap::Parser;

use nomyo_router::cli::Cli;
use nomyo_router::config::load_config;
use nomyo_router::state::Shared;

fn main() {
    let cli = Cli::parse();
    let config = match load_config(cli.config.as_deref(), &cli.overrides()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("nomyo-router: configuration error: {e}");
            std::process::exit(1);
        }
    };
    let extra_roots = match nomyo_router::http::tls_roots::init_from_env() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("nomyo-router: configuration error: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = nomyo_router::rt::check(config.io_driver) {
        eprintln!("nomyo-router: configuration error: {e}");
        std::process::exit(1);
    }
    if cli.check_config {
        for w in &config.warnings {
            println!("warning: {w}");
        }
        println!(
            "configuration OK ({}): {} endpoint(s)",
            config.source,
            config.endpoints.len()
        );
        for e in &config.endpoints {
            println!(
                "  {} [{}] slots per model: {}{}",
                e.url,
                e.kind.as_str(),
                e.max_concurrent,
                if e.api_key.is_some() {
                    ", api key set"
                } else {
                    ""
                }
            );
        }
        println!(
            "listen {}:{}, workers {}, queue {:?}",
            config.host,
            config.port,
            config.worker_count(),
            config.queue.mode
        );
        if extra_roots > 0 {
            println!(
                "HTTPS upstreams also trust {extra_roots} certificate(s) from {}",
                nomyo_router::http::tls_roots::ENV
            );
        }
        return;
    }
    let log_writer = nomyo_router::logging::init(&config.log_level, config.log_format);
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    if extra_roots > 0 {
        tracing::info!(
            certificates = extra_roots,
            "HTTPS upstreams also trust the certificates of {}",
            nomyo_router::http::tls_roots::ENV
        );
    }
    if config.cache.semantic() {
        // The embedding core is one thread: candle's matrix products and the tokenizer would
        // otherwise spread over a pool on every CPU, the workers' too. Set before any thread.
        std::env::set_var("RAYON_NUM_THREADS", "1");
        std::env::set_var("TOKENIZERS_PARALLELISM", "false");
    }
    nomyo_router::reload::remember_source(nomyo_router::reload::ConfigSource {
        file: cli.config.clone(),
        flags: cli.overrides(),
    });
    let shared = match Shared::new(config) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("nomyo-router: cannot start: {e}");
            drop(log_writer);
            std::process::exit(1);
        }
    };
    if let Err(e) = nomyo_router::server::run(shared) {
        tracing::error!(error = %e, "cannot start");
        eprintln!("nomyo-router: {e}");
        drop(log_writer);
        std::process::exit(1);
    }
}
