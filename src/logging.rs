//! Logs (SPEC §8.2): `tracing` to stderr as text or JSON lines, at the configured level.
//! Request lines carry route, model, endpoint, status, latency and cache result; never prompts or keys.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(level: &str, format: LogFormat) {
    // Our crate at the chosen level; dependencies only warn, so their chatter never floods the log.
    let filter = EnvFilter::try_new(format!("warn,nomyo_router={level}"))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
