//! Command-line flags. Each one overrides the file and the environment (SPEC §1.3).

use clap::Parser;

const ENV_HELP: &str = "\
ENVIRONMENT:
  NOMYO_ROUTER_CONFIG_PATH   config file when --config is not given (else ./config.yaml or ./config/config.yaml, else built-in defaults)
  NOMYO_ROUTER_API_KEY       the router's own API key (clients send it as Authorization: Bearer or ?api_key=)
  NOMYO_ROUTER_<KEY>         any config key, e.g. NOMYO_ROUTER_PORT=8080, NOMYO_ROUTER_ENDPOINTS=http://a:11434,http://b:11434,
                             NOMYO_ROUTER_MAX_CONCURRENT_CONNECTIONS=4; nested keys join with '_': NOMYO_ROUTER_QUEUE_MODE=reject,
                             NOMYO_ROUTER_TIMEOUTS_CONNECT=2s
  NOMYO_ROUTER_IO_DRIVER     auto | io_uring | epoll (same as --io-driver)
  ${NAME} and ${NAME:-default} inside any string value of the file are expanded from the environment.

PRECEDENCE: flag > environment > file > built-in default.";

#[derive(Parser, Debug, Default)]
#[command(name = "nomyo-router", version, about = "Thread-per-core router for fleets of Ollama and OpenAI-compatible LLM servers", after_help = ENV_HELP)]
pub struct Cli {
    /// Config file (YAML). Default: $NOMYO_ROUTER_CONFIG_PATH, else ./config.yaml or ./config/config.yaml, else built-in defaults.
    #[arg(long, value_name = "PATH")]
    pub config: Option<String>,
    /// Address to listen on [default: 0.0.0.0]
    #[arg(long)]
    pub host: Option<String>,
    /// Port to listen on [default: 12434]
    #[arg(long)]
    pub port: Option<u16>,
    /// Worker threads, each with its own io_uring runtime and listener [default: one per core]
    #[arg(long)]
    pub workers: Option<usize>,
    /// I/O driver: auto (io_uring when the kernel allows it, else epoll), io_uring, epoll
    #[arg(long, value_name = "DRIVER")]
    pub io_driver: Option<String>,
    /// Backend URL; repeat for several. Replaces `endpoints` of the file.
    #[arg(long = "endpoint", value_name = "URL")]
    pub endpoints: Vec<String>,
    /// Slots per endpoint×model [default: 1]
    #[arg(long)]
    pub max_concurrent_connections: Option<u32>,
    /// Log level: trace, debug, info, warn, error, off [default: info]
    #[arg(long)]
    pub log_level: Option<String>,
    /// Log format: text or json [default: text]
    #[arg(long)]
    pub log_format: Option<String>,
    /// Validate the configuration, print a summary and exit 0 (valid) or 1 (invalid)
    #[arg(long)]
    pub check_config: bool,
}

impl Cli {
    /// The flags that were given, as `(config key, value, flag)` overrides.
    pub fn overrides(&self) -> Vec<(&'static str, String, &'static str)> {
        let mut out = Vec::new();
        let mut push = |key, value: Option<String>, flag| {
            if let Some(v) = value {
                out.push((key, v, flag));
            }
        };
        push("host", self.host.clone(), "--host");
        push("port", self.port.map(|p| p.to_string()), "--port");
        push("workers", self.workers.map(|w| w.to_string()), "--workers");
        push("io_driver", self.io_driver.clone(), "--io-driver");
        push(
            "max_concurrent_connections",
            self.max_concurrent_connections.map(|m| m.to_string()),
            "--max-concurrent-connections",
        );
        push("log_level", self.log_level.clone(), "--log-level");
        push("log_format", self.log_format.clone(), "--log-format");
        if !self.endpoints.is_empty() {
            out.push((
                "endpoints",
                format!("[{}]", self.endpoints.join(", ")),
                "--endpoint",
            ));
        }
        out
    }
}
