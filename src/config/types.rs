//! The validated configuration: what every other module reads. Built once at startup by `load`.

use std::time::Duration;

/// Which API an endpoint speaks, and so how it is polled and addressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointKind {
    Ollama,
    OpenAi,
    LlamaServer,
}

impl EndpointKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointKind::Ollama => "ollama",
            EndpointKind::OpenAi => "openai",
            EndpointKind::LlamaServer => "llama-server",
        }
    }
}

/// One backend as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointConfig {
    /// Normalised URL (no trailing slash): the endpoint's identity in logs, keys and listings.
    pub url: String,
    pub kind: EndpointKind,
    /// Slots per model on this endpoint.
    pub max_concurrent: u32,
    /// Sent upstream as `Authorization: Bearer`.
    pub api_key: Option<String>,
    pub weight: u32,
}

/// What happens when every candidate slot is busy (SPEC §4.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaturationMode {
    Queue,
    Overflow,
    Reject,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoDriver {
    Auto,
    IoUring,
    Epoll,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    /// Time to the response head when the model is loaded on the chosen endpoint.
    pub first_byte: Duration,
    /// Same, when the model must be loaded first (cold loads take minutes).
    pub first_byte_cold: Duration,
    /// Longest silence between two chunks of a response body.
    pub idle: Duration,
    /// Whole request; zero means no limit.
    pub total: Duration,
}

#[derive(Clone, Debug)]
pub struct QueueConfig {
    pub mode: SaturationMode,
    /// Waiting requests per model; one more gets 429.
    pub max_queue: usize,
    /// Longest wait for a slot; past it the request gets 503.
    pub queue_timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct DiscoveryConfig {
    pub loaded_interval: Duration,
    pub models_interval: Duration,
    pub poll_timeout: Duration,
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_headers: usize,
    pub max_header_bytes: usize,
    pub header_read_timeout: Duration,
    /// Retries on another candidate for failures before the first byte.
    pub max_retries: u32,
    /// Consecutive failed requests after which an endpoint is marked down (until a poll succeeds).
    pub failures_before_down: u32,
    /// Client connections served at once over all workers; past it, workers stop accepting.
    pub max_connections: usize,
    /// Bytes of large request bodies (over `BODY_BUDGET_FROM`) buffered at once over all
    /// connections; past it, a new large body is refused with 503.
    pub max_buffered_body_bytes: usize,
}

/// Where `scripts/fetch-embedding-model.sh` puts the model, and so where the router looks when
/// `cache_embedding_model` is not set.
pub fn default_model_dir() -> std::path::PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| std::path::PathBuf::from(".cache"));
    base.join("nomyo-router").join("all-MiniLM-L6-v2")
}

/// The files the embedding model needs, as `scripts/fetch-embedding-model.sh` unpacks them.
pub const MODEL_FILES: [&str; 3] = ["model.safetensors", "config.json", "tokenizer.json"];

/// The first model file that `dir` lacks.
pub fn missing_model_file(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    MODEL_FILES
        .iter()
        .map(|f| dir.join(f))
        .find(|p| !p.is_file())
}

/// Where threads run (`Config::cpu_plan`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuPlan {
    pub workers: usize,
    /// The embedding core's CPU.
    pub embedding: Option<usize>,
    /// The CPUs the workers may use (`None`: any).
    pub worker_cpus: Option<Vec<usize>>,
}

/// The response cache (SPEC §6): the reference's keys, and the bounds and timeouts it lacks.
#[derive(Clone, Debug, PartialEq)]
pub struct CacheConfig {
    pub enabled: bool,
    pub backend: CacheBackend,
    pub similarity: f64,
    /// Seconds an entry lives; `None` (`cache_ttl: null`): until evicted.
    pub ttl: Option<u64>,
    pub history_weight: f64,
    /// The `sqlite` backend's file.
    pub db_path: String,
    /// The `mmap` backend's entry log.
    pub mmap_path: String,
    pub redis_url: String,
    /// Only requests with `"nomyo": {"cache": true}` use the cache (the reference's mode).
    pub opt_in: bool,
    pub max_entries: usize,
    pub max_bytes: usize,
    /// An answer larger than this, as sent to the client, is not stored.
    pub max_entry_bytes: usize,
    /// How long a lookup may wait on its store before it counts as a miss.
    pub lookup_timeout: Duration,
    /// Answers that look personal (an e-mail address, a UUID, a long number) are not stored unless
    /// the system prompt (part of the scope) is itself personal.
    pub privacy_guard: bool,
    /// The folder with the embedding model (`scripts/fetch-embedding-model.sh` fills the default).
    pub embedding_model: std::path::PathBuf,
    /// The CPU the embedding core is pinned to; `None`: the last one (when there are several).
    pub embedding_core: Option<usize>,
    /// How long a lookup may wait for the embedding core before it counts as a miss.
    pub semantic_budget: Duration,
}

impl CacheConfig {
    /// Semantic matching is asked for: the cache is on and its threshold below 1.
    pub fn semantic(&self) -> bool {
        self.enabled && self.similarity < 1.0
    }
}

/// Where cache entries are kept (`cache_backend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheBackend {
    Memory,
    Mmap,
    Sqlite,
    Redis,
}

impl CacheBackend {
    pub fn name(self) -> &'static str {
        match self {
            CacheBackend::Memory => "memory",
            CacheBackend::Mmap => "mmap",
            CacheBackend::Sqlite => "sqlite",
            CacheBackend::Redis => "redis",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    /// Where the configuration came from ("built-in defaults" or a path).
    pub source: String,
    pub host: String,
    pub port: u16,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    pub io_driver: IoDriver,
    pub endpoints: Vec<EndpointConfig>,
    pub router_api_key: Option<String>,
    pub cors_origins: Vec<String>,
    pub timeouts: Timeouts,
    pub queue: QueueConfig,
    pub discovery: DiscoveryConfig,
    pub limits: Limits,
    pub cache: CacheConfig,
    /// The token database (SQLite).
    pub db_path: String,
    /// Count tokens per endpoint × model into `db_path` (`token_accounting`).
    pub token_accounting: bool,
    /// Serve `/metrics` and keep its counters (`metrics`).
    pub metrics: bool,
    /// Ask OpenAI-API streams for their usage chunk and hide it from clients that did not ask
    /// (`stream_usage`), so that every stream is counted.
    pub stream_usage: bool,
    /// Candidate answers of a `moe-<model>` chat (`moe_candidates`).
    pub moe_candidates: usize,
    /// Cut a chat's oldest messages to fit the model's context (`context_trim`).
    pub context_trim: bool,
    pub log_level: String,
    pub log_format: LogFormat,
    /// How long in-flight requests may run after SIGTERM.
    pub shutdown_grace: Duration,
    /// Warnings found while loading (printed once logging is up).
    pub warnings: Vec<String>,
}

impl Config {
    /// Workers: `workers`, or one per CPU — but for the embedding core's, when it has one.
    pub fn worker_count(&self) -> usize {
        self.cpu_plan().workers
    }

    /// Which CPUs do what. With semantic matching on a machine of several CPUs, the embedding
    /// core gets one to itself (`cache_embedding_core`, by default the last) and the workers the
    /// others.
    pub fn cpu_plan(&self) -> CpuPlan {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let embedding = match (self.cache.semantic(), self.cache.embedding_core) {
            (false, _) => None,
            (true, Some(cpu)) => Some(cpu),
            (true, None) => (cpus > 1).then_some(cpus - 1),
        };
        let free = cpus - usize::from(embedding.is_some() && cpus > 1);
        CpuPlan {
            workers: if self.workers > 0 {
                self.workers
            } else {
                free.max(1)
            },
            embedding,
            worker_cpus: embedding
                .filter(|_| cpus > 1)
                .map(|e| (0..cpus).filter(|&c| c != e).collect()),
        }
    }
}
