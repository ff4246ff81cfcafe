//! Command-line options of the mock backend.

use clap::Parser;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "mock-backend",
    about = "Fake Ollama/OpenAI/llama-server backend for tests and load tests"
)]
pub struct Options {
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 11434)]
    pub port: u16,
    /// Worker threads
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Which API its listings speak: ollama, openai, llama-server
    #[arg(long, default_value = "ollama")]
    pub kind: String,
    /// Advertised models (comma-separated)
    #[arg(long, value_delimiter = ',', default_value = "llama3:latest")]
    pub models: Vec<String>,
    /// Loaded models (comma-separated); default: all advertised
    #[arg(long, value_delimiter = ',')]
    pub loaded: Option<Vec<String>>,
    /// Tokens per answer
    #[arg(long, default_value_t = 5)]
    pub tokens: usize,
    /// Delay before each token, milliseconds
    #[arg(long, default_value_t = 0.0)]
    pub token_delay_ms: f64,
    /// Delay before the response head, milliseconds
    #[arg(long, default_value_t = 0.0)]
    pub first_byte_delay_ms: f64,
    /// Fault for every inference request: none, refuse, 500, hang, die (mid-stream)
    #[arg(long, default_value = "none")]
    pub fault: String,
    /// Refuse requests that carry these, as backends without the capability do: tools, images
    #[arg(long, value_delimiter = ',')]
    pub refuse: Vec<String>,
    /// A context window: a request of more tokens (its JSON bytes / 4) is refused as llama-server
    /// refuses it; 0: none
    #[arg(long, default_value_t = 0)]
    pub n_ctx: usize,
    /// How the refusal reads: `new` (llama-server's exceed_context_size_error with n_ctx) or `old`
    /// (no numbers; n_ctx only in /props)
    #[arg(long, default_value = "new")]
    pub ctx_error: String,
    /// Version reported by /api/version
    #[arg(long, default_value = "0.6.5")]
    pub version: String,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key)
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
}

impl Options {
    pub fn loaded_models(&self) -> Vec<String> {
        self.loaded
            .clone()
            .unwrap_or_else(|| self.models.clone())
            .into_iter()
            .filter(|m| !m.is_empty())
            .collect()
    }
}
