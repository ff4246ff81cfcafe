//! Logs (SPEC §8.2): `tracing` to stderr as text or JSON lines, at the configured level.
//! Request lines carry route, model, endpoint, status, latency and cache result; never prompts or keys.
//!
//! Workers never write to stderr themselves: a line is formatted on the worker and handed to a
//! writer thread over a bounded queue (`tracing-appender`), so a slow terminal, pipe or journal
//! cannot stall requests. When the queue is full, lines are dropped rather than waited for.

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Lines the writer thread may have queued before new ones are dropped.
const QUEUED_LINES: usize = 128 * 1024;

/// Starts logging; the returned guard flushes the queued lines when dropped (keep it until exit).
pub fn init(level: &str, format: LogFormat) -> WorkerGuard {
    // Our crate at the chosen level; dependencies only warn, so their chatter never floods the log.
    let filter = EnvFilter::try_new(format!("warn,nomyo_router={level}"))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = NonBlockingBuilder::default()
        .buffered_lines_limit(QUEUED_LINES)
        .lossy(true)
        .thread_name("log-writer")
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    install_panic_hook();
    guard
}

/// Panics are logged as one error line with the thread and source location, and without their
/// message: a message can quote the bytes that caused it (a client's key, a prompt), which must
/// never reach a log. The connection that panicked logs what it did about it.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        tracing::error!(
            thread = thread.name().unwrap_or("unnamed"),
            location,
            "panic (message withheld: it may quote client data)"
        );
    }));
}
