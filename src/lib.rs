//! nomyo-router: a thread-per-core router for fleets of Ollama and OpenAI-compatible LLM servers.
//! `main.rs` reads flags and configuration, then `server::run` serves until SIGTERM.

pub mod accounting;
pub mod api;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod config;
pub mod discovery;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod proxy;
pub mod reload;
pub mod routing;
pub mod rt;
pub mod server;
pub mod state;
pub mod translate;
