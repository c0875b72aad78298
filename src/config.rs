//! qyl's configuration: the embedded `qyl.toml` defaults, overlaid by the
//! user's file, then `QYL_<SECTION>_<KEY>` environment variables, then flags.
//!
//! The defaults are the repository's `qyl.toml`, compiled in, so the
//! documented file and the behaviour cannot drift apart. Overlays are merged
//! as TOML tables before deserialising, which makes an unknown key an error
//! wherever it comes from.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::{Table, Value};

/// The smallest size limit (MiB) retention can keep to without deleting
/// nearly everything (see `storage.max_db_size_mb` in qyl.toml).
pub const MIN_DB_SIZE_MB: u64 = 64;

/// The documented defaults, compiled in.
pub const DEFAULTS: &str = include_str!("../qyl.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub ingest: IngestConfig,
    pub stream: StreamConfig,
    pub query: QueryConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub functions: FunctionsConfig,
    pub genai: GenAiConfig,
    pub errors: ErrorsConfig,
    pub triage: TriageConfig,
    pub archive: ArchiveConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub bind: String,
    pub http_port: u16,
    pub otlp_http_port: u16,
    pub grpc_port: u16,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    pub path: String,
    pub memory_limit_mb: u64,
    pub threads: u64,
    pub checkpoint_interval_secs: u64,
    pub retention_hours: u64,
    pub max_db_size_mb: u64,
    pub retention_interval_secs: u64,
    pub min_free_disk_mb: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    pub queue_rows: usize,
    pub batch_rows: usize,
    pub batch_ms: u64,
    pub fill_ms: u64,
    pub max_body_mb: u64,
    pub dedup_window: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    pub ring_size: usize,
    pub max_clients: usize,
    pub heartbeat_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryConfig {
    pub pool_size: usize,
    /// Of `pool_size`, how many ad-hoc SQL may hold at once; 0: half.
    pub sql_slots: usize,
    pub timeout_ms: u64,
    pub max_page: usize,
    pub sql_row_limit: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub token: String,
    pub ingest_token: String,
    /// A token that reads (REST GETs, read-only SQL, MCP) but changes
    /// nothing: for coding assistants and shared dashboards.
    pub read_token: String,
    /// `qyl serve --insecure-no-auth`: a flag only, so that serving beyond
    /// loopback without a token is always a visible choice on the command line.
    #[serde(skip)]
    pub insecure_no_auth: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub ingest_per_second: u32,
    pub api_per_second: u32,
    pub burst: u32,
    pub cors_origins: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionsConfig {
    pub dir: PathBuf,
    pub workers: usize,
    pub queue_size: usize,
    pub max_timeout_ms: u64,
    pub when_timeout_ms: u64,
    pub breaker_failures: u32,
    pub breaker_window_secs: u64,
    pub breaker_cooldown_secs: u64,
    pub debounce_ms: u64,
    /// Hosts `runtime.http` may call; empty: none.
    pub http_allow: Vec<String>,
    pub http_timeout_ms: u64,
    pub http_max_request_kb: u64,
    pub http_max_response_kb: u64,
    /// `runtime.secret(name)`: a value, `env:VAR` or `file:PATH`.
    pub secrets: crate::functions::secrets::SecretsConfig,
}

impl FunctionsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        crate::functions::http::AllowList::parse(&self.http_allow)
            .map_err(|e| invalid("functions.http_allow", e))?;
        self.secrets
            .validate()
            .map_err(|e| invalid("functions.secrets", e))?;
        if !(1..=self.max_timeout_ms).contains(&self.http_timeout_ms) {
            return Err(invalid(
                "functions.http_timeout_ms",
                format!(
                    "must be from 1 to functions.max_timeout_ms ({})",
                    self.max_timeout_ms
                ),
            ));
        }
        for (key, kb) in [
            ("functions.http_max_request_kb", self.http_max_request_kb),
            ("functions.http_max_response_kb", self.http_max_response_kb),
        ] {
            if !(1..=65_536).contains(&kb) {
                return Err(invalid(key, "must be from 1 to 65536 (64 MiB)"));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenAiConfig {
    pub builtin_prices: bool,
    pub prices: Vec<crate::ingest::pricing::PriceConfig>,
}

impl GenAiConfig {
    /// The price table these settings describe (validated at start).
    pub fn price_table(
        &self,
    ) -> Result<crate::ingest::pricing::PriceTable, crate::ingest::pricing::PricingError> {
        crate::ingest::pricing::PriceTable::with_overrides(self.builtin_prices, &self.prices)
    }
}

/// `[errors]`: the error engine (grouping rules, status workflow, SLOs).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ErrorsConfig {
    pub in_app_include: Vec<String>,
    pub in_app_exclude: Vec<String>,
    /// A duration (`14d`), or `0` for never.
    pub auto_resolve_after: String,
    /// A duration (`1d`), or `0` for never.
    pub auto_resolve_after_deploy: String,
    /// How long after a deploy groups and rates are laid at its door.
    pub deploy_window: String,
    pub escalation_factor: f64,
    pub escalation_min_events: u64,
    pub duplicate_window_ms: u64,
    /// How often the SLO watcher checks burn rates (a duration, 1s-1h).
    pub slo_check_every: String,
    pub slo: Vec<SloConfig>,
}

/// `[archive]`: old time windows moved to Parquet (`storage::archive`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveConfig {
    pub path: String,
    /// `s3://bucket/prefix`: every file is uploaded there too ("" = none).
    pub url: String,
    pub window_minutes: u64,
    pub after_minutes: u64,
    pub node: String,
}

impl ArchiveConfig {
    fn validate(&self, storage: &StorageConfig) -> Result<(), ConfigError> {
        if self.path.is_empty() {
            if !self.url.is_empty() {
                return Err(invalid(
                    "archive.url",
                    "needs archive.path too: qyl reads the files from that directory, the bucket holds their copies",
                ));
            }
            return Ok(());
        }
        if !self.url.is_empty() && !crate::storage::archive::bucket::is_bucket_url(&self.url) {
            return Err(invalid(
                "archive.url",
                "expected s3://bucket or s3://bucket/prefix",
            ));
        }
        if storage.path == ":memory:" {
            return Err(invalid(
                "archive.path",
                "needs a database file (storage.path is \":memory:\")",
            ));
        }
        if self.window_minutes == 0 || 60 % self.window_minutes != 0 {
            return Err(invalid(
                "archive.window_minutes",
                "must divide an hour (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 or 60)",
            ));
        }
        if self.after_minutes > 87_600 * 60 {
            return Err(invalid(
                "archive.after_minutes",
                "must be at most ten years",
            ));
        }
        if !self.node.is_empty() && !crate::storage::archive::is_node_name(&self.node) {
            return Err(invalid(
                "archive.node",
                "letters, digits, '.', '_' and '-' only (at most 64)",
            ));
        }
        Ok(())
    }
}

/// `[triage]`: automatic triage of new, regressed and escalating error
/// groups (`errors::triage`), and the optional model-written summary.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TriageConfig {
    pub enabled: bool,
    /// An OpenAI-compatible base URL (`…/v1`); empty: no model summary.
    pub endpoint: String,
    pub model: String,
    pub api_key: String,
    pub timeout_ms: u64,
    pub max_prompt_chars: usize,
    pub summaries_per_minute: u32,
}

// By hand so that logging the configuration never prints the API key.
impl std::fmt::Debug for TriageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TriageConfig")
            .field("enabled", &self.enabled)
            .field("endpoint", &self.endpoint)
            .field("model", &self.model)
            .field("api_key", &(!self.api_key.is_empty()).then_some("<set>"))
            .field("timeout_ms", &self.timeout_ms)
            .field("max_prompt_chars", &self.max_prompt_chars)
            .field("summaries_per_minute", &self.summaries_per_minute)
            .finish()
    }
}

impl TriageConfig {
    /// Whether reports get a model-written summary.
    pub fn summaries(&self) -> bool {
        !self.endpoint.trim().is_empty()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.summaries() {
            let e = self.endpoint.trim();
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(invalid(
                    "triage.endpoint",
                    format!("{e:?} is not an http:// or https:// URL"),
                ));
            }
            if self.model.trim().is_empty() {
                return Err(invalid(
                    "triage.model",
                    "must name a model when triage.endpoint is set",
                ));
            }
        }
        if !(100..=600_000).contains(&self.timeout_ms) {
            return Err(invalid("triage.timeout_ms", "between 100 and 600000"));
        }
        if !(500..=1_000_000).contains(&self.max_prompt_chars) {
            return Err(invalid(
                "triage.max_prompt_chars",
                "between 500 and 1000000",
            ));
        }
        if self.summaries_per_minute == 0 {
            return Err(invalid(
                "triage.summaries_per_minute",
                "must be at least 1 (leave triage.endpoint empty for no summaries)",
            ));
        }
        Ok(())
    }
}

/// One `[[errors.slo]]` objective.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SloConfig {
    pub name: String,
    pub service: String,
    #[serde(default)]
    pub span_name: Option<String>,
    #[serde(default)]
    pub genai_operation: Option<String>,
    /// Percent of good requests, e.g. 99.9.
    pub objective: f64,
    #[serde(default = "default_slo_window")]
    pub window: String,
    /// A request slower than this is bad too; 0 = errors only.
    #[serde(default)]
    pub latency_threshold_ms: u64,
}

impl SloConfig {
    /// The budget window in nanoseconds (validated at start; 30 days if
    /// it somehow does not parse).
    pub fn window_ns(&self) -> u64 {
        humantime::parse_duration(self.window.trim())
            .map_or(30 * 86_400 * 1_000_000_000, |d| d.as_nanos() as u64)
    }
}

fn default_slo_window() -> String {
    "30d".into()
}

impl ErrorsConfig {
    /// `auto_resolve_after` as a duration; `None` when auto-resolve is off.
    pub fn auto_resolve_after(&self) -> Option<std::time::Duration> {
        let t = self.auto_resolve_after.trim();
        if t.is_empty() || t == "0" {
            return None;
        }
        humantime::parse_duration(t).ok().filter(|d| !d.is_zero())
    }

    /// `slo_check_every` as a duration (validated at start).
    pub fn slo_check_every(&self) -> std::time::Duration {
        humantime::parse_duration(self.slo_check_every.trim())
            .unwrap_or(std::time::Duration::from_secs(15))
    }

    /// `auto_resolve_after_deploy` as a duration; `None` when off.
    pub fn auto_resolve_after_deploy(&self) -> Option<std::time::Duration> {
        let t = self.auto_resolve_after_deploy.trim();
        if t.is_empty() || t == "0" {
            return None;
        }
        humantime::parse_duration(t).ok().filter(|d| !d.is_zero())
    }

    /// `deploy_window` in nanoseconds (validated at start; 1 h otherwise).
    pub fn deploy_window_ns(&self) -> u64 {
        humantime::parse_duration(self.deploy_window.trim())
            .map_or(3_600_000_000_000, |d| d.as_nanos() as u64)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        match humantime::parse_duration(self.slo_check_every.trim()) {
            Ok(d)
                if d >= std::time::Duration::from_secs(1)
                    && d <= std::time::Duration::from_secs(3600) => {}
            _ => {
                return Err(invalid(
                    "errors.slo_check_every",
                    format!(
                        "{:?} must be a duration between 1s and 1h",
                        self.slo_check_every
                    ),
                ))
            }
        }
        for (key, value) in [
            ("errors.auto_resolve_after", &self.auto_resolve_after),
            (
                "errors.auto_resolve_after_deploy",
                &self.auto_resolve_after_deploy,
            ),
        ] {
            let t = value.trim();
            if !(t.is_empty() || t == "0") && humantime::parse_duration(t).is_err() {
                return Err(invalid(
                    key,
                    format!("{t:?} is not a duration (like 14d or 12h) or 0"),
                ));
            }
        }
        match humantime::parse_duration(self.deploy_window.trim()) {
            Ok(d)
                if d >= std::time::Duration::from_secs(60)
                    && d <= std::time::Duration::from_secs(7 * 86_400) => {}
            _ => {
                return Err(invalid(
                    "errors.deploy_window",
                    format!(
                        "{:?} must be a duration between 1m and 7d",
                        self.deploy_window
                    ),
                ))
            }
        }
        if !(self.escalation_factor.is_finite() && self.escalation_factor > 1.0) {
            return Err(invalid(
                "errors.escalation_factor",
                "must be greater than 1",
            ));
        }
        if self.duplicate_window_ms > 60_000 {
            return Err(invalid(
                "errors.duplicate_window_ms",
                "must be at most 60000",
            ));
        }
        for rule in self.in_app_include.iter().chain(&self.in_app_exclude) {
            if rule.trim().is_empty() {
                return Err(invalid(
                    "errors.in_app_include / in_app_exclude",
                    "rules may not be empty",
                ));
            }
        }
        let mut names = std::collections::HashSet::new();
        for slo in &self.slo {
            let origin = format!("errors.slo {:?}", slo.name);
            if slo.name.trim().is_empty() || !names.insert(slo.name.as_str()) {
                return Err(invalid(origin, "every SLO needs a unique, non-empty name"));
            }
            if slo.service.trim().is_empty() {
                return Err(invalid(origin, "service may not be empty"));
            }
            if !(slo.objective > 0.0 && slo.objective < 100.0) {
                return Err(invalid(
                    origin,
                    "objective must be a percentage between 0 and 100 (exclusive)",
                ));
            }
            match humantime::parse_duration(slo.window.trim()) {
                Ok(d)
                    if d >= std::time::Duration::from_secs(3600)
                        && d <= std::time::Duration::from_secs(90 * 86_400) => {}
                _ => {
                    return Err(invalid(
                        origin,
                        format!(
                            "window {:?} must be a duration between 1h and 90d",
                            slo.window
                        ),
                    ))
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

fn invalid(origin: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        origin: origin.into(),
        message: message.into(),
    }
}

impl Config {
    /// The embedded defaults alone.
    pub fn defaults() -> Config {
        Self::from_layers(None, std::iter::empty::<(String, String)>())
            .expect("the embedded qyl.toml is valid")
    }

    /// This configuration on ports the OS picks (0 each) with its database
    /// at `db`: how tests and benchmarks run instances side by side.
    pub fn on_free_ports(mut self, db: &std::path::Path) -> Config {
        self.server.http_port = 0;
        self.server.otlp_http_port = 0;
        self.server.grpc_port = 0;
        self.storage.path = db.to_string_lossy().into_owned();
        self
    }

    /// Defaults, then `file` (if any), then the `QYL_*` variables in `env`.
    pub fn from_layers(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table: Table = DEFAULTS
            .parse()
            .map_err(|e: toml::de::Error| invalid("embedded qyl.toml", e.to_string()))?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let user: Table = text
                .parse()
                .map_err(|e: toml::de::Error| invalid(path.display().to_string(), e.to_string()))?;
            merge(&mut table, user, &path.display().to_string())?;
        }
        apply_env(&mut table, env)?;
        let config: Config = Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| invalid("configuration", e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("ingest.queue_rows", self.ingest.queue_rows as u64),
            ("ingest.batch_rows", self.ingest.batch_rows as u64),
            ("ingest.max_body_mb", self.ingest.max_body_mb),
            ("stream.ring_size", self.stream.ring_size as u64),
            (
                "storage.checkpoint_interval_secs",
                self.storage.checkpoint_interval_secs,
            ),
            (
                "storage.retention_interval_secs",
                self.storage.retention_interval_secs,
            ),
            ("stream.max_clients", self.stream.max_clients as u64),
            ("stream.heartbeat_secs", self.stream.heartbeat_secs),
            ("query.pool_size", self.query.pool_size as u64),
            ("query.timeout_ms", self.query.timeout_ms),
            ("query.max_page", self.query.max_page as u64),
            ("query.sql_row_limit", self.query.sql_row_limit as u64),
            ("limits.burst", self.limits.burst as u64),
            ("functions.workers", self.functions.workers as u64),
            ("functions.queue_size", self.functions.queue_size as u64),
            ("functions.max_timeout_ms", self.functions.max_timeout_ms),
            ("functions.when_timeout_ms", self.functions.when_timeout_ms),
            (
                "functions.breaker_failures",
                self.functions.breaker_failures as u64,
            ),
            (
                "functions.breaker_window_secs",
                self.functions.breaker_window_secs,
            ),
            ("functions.debounce_ms", self.functions.debounce_ms),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        if self.query.pool_size > 1 && self.query.sql_slots >= self.query.pool_size {
            // Explicitly set to the whole pool (0 means half of it).
            return Err(invalid(
                "query.sql_slots",
                format!(
                    "must be smaller than query.pool_size ({}), so other reads keep a connection while SQL runs",
                    self.query.pool_size
                ),
            ));
        }
        let at_most = [
            ("ingest.max_body_mb", self.ingest.max_body_mb, 1024),
            (
                "ingest.queue_rows",
                self.ingest.queue_rows as u64,
                100_000_000,
            ),
            (
                "ingest.batch_rows",
                self.ingest.batch_rows as u64,
                1_000_000,
            ),
            ("ingest.batch_ms", self.ingest.batch_ms, 60_000),
            ("ingest.fill_ms", self.ingest.fill_ms, 60_000),
            (
                "ingest.dedup_window",
                self.ingest.dedup_window as u64,
                100_000_000,
            ),
            ("stream.ring_size", self.stream.ring_size as u64, 10_000_000),
            (
                "storage.checkpoint_interval_secs",
                self.storage.checkpoint_interval_secs,
                86_400,
            ),
            (
                "storage.retention_interval_secs",
                self.storage.retention_interval_secs,
                86_400,
            ),
            (
                "stream.max_clients",
                self.stream.max_clients as u64,
                100_000,
            ),
            ("stream.heartbeat_secs", self.stream.heartbeat_secs, 3600),
            // Ten years; a longer retention is "forever", which is 0.
            (
                "storage.retention_hours",
                self.storage.retention_hours,
                87_600,
            ),
            // About 95 TiB: beyond any disk qyl runs on, and far from overflow
            // when converted to bytes.
            (
                "storage.max_db_size_mb",
                self.storage.max_db_size_mb,
                100_000_000,
            ),
            (
                "storage.min_free_disk_mb",
                self.storage.min_free_disk_mb,
                100_000_000,
            ),
            ("query.pool_size", self.query.pool_size as u64, 256),
            ("query.timeout_ms", self.query.timeout_ms, 3_600_000),
            ("query.max_page", self.query.max_page as u64, 100_000),
            (
                "query.sql_row_limit",
                self.query.sql_row_limit as u64,
                10_000_000,
            ),
            ("limits.burst", self.limits.burst as u64, 1_000_000),
            ("functions.workers", self.functions.workers as u64, 256),
            (
                "functions.queue_size",
                self.functions.queue_size as u64,
                1_000_000,
            ),
            (
                "functions.max_timeout_ms",
                self.functions.max_timeout_ms,
                crate::functions::spec::MAX_TIMEOUT_MS,
            ),
            (
                "functions.when_timeout_ms",
                self.functions.when_timeout_ms,
                10_000,
            ),
            (
                "functions.breaker_failures",
                self.functions.breaker_failures as u64,
                1_000_000,
            ),
            (
                "functions.breaker_window_secs",
                self.functions.breaker_window_secs,
                86_400,
            ),
            (
                "functions.breaker_cooldown_secs",
                self.functions.breaker_cooldown_secs,
                86_400,
            ),
            ("functions.debounce_ms", self.functions.debounce_ms, 10_000),
        ];
        for (key, value, max) in at_most {
            if value > max {
                return Err(invalid(key, format!("must be at most {max}")));
            }
        }
        // DuckDB frees space by whole row groups of every table (several MB
        // each), so a smaller limit would delete nearly everything each pass.
        if self.storage.max_db_size_mb != 0 && self.storage.max_db_size_mb < MIN_DB_SIZE_MB {
            return Err(invalid(
                "storage.max_db_size_mb",
                format!("must be 0 (no limit) or at least {MIN_DB_SIZE_MB}"),
            ));
        }
        if let Err(e) = self.genai.price_table() {
            return Err(invalid("genai.prices", e.to_string()));
        }
        self.errors.validate()?;
        self.triage.validate()?;
        self.archive.validate(&self.storage)?;
        self.functions.validate()?;
        if self.server.bind.parse::<std::net::IpAddr>().is_err() && self.server.bind != "localhost"
        {
            return Err(invalid(
                "server.bind",
                format!("{:?} is not an IP address", self.server.bind),
            ));
        }
        Ok(())
    }

    pub fn max_body_bytes(&self) -> usize {
        (self.ingest.max_body_mb as usize) << 20
    }
}

/// Overlays `user` on `base`; keys must already exist in `base` (the
/// defaults name every key), so typos are caught with their origin.
fn merge(base: &mut Table, user: Table, origin: &str) -> Result<(), ConfigError> {
    for (section, value) in user {
        let Some(Value::Table(base_section)) = base.get_mut(&section) else {
            return Err(invalid(origin, format!("unknown section [{section}]")));
        };
        let Value::Table(user_section) = value else {
            return Err(invalid(origin, format!("[{section}] must be a table")));
        };
        for (key, v) in user_section {
            if !base_section.contains_key(&key) {
                return Err(invalid(origin, format!("unknown key {section}.{key}")));
            }
            base_section.insert(key, v);
        }
    }
    Ok(())
}

/// Applies `QYL_<SECTION>_<KEY>=value`. The value is read as the type of the
/// default it replaces. Variables whose section qyl does not know are left
/// alone (they may belong to tools around qyl); an unknown key in a known
/// section is an error.
fn apply_env(
    table: &mut Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix("QYL_") else {
            continue;
        };
        let rest = rest.to_ascii_lowercase();
        let Some((section, key)) = rest.split_once('_') else {
            continue;
        };
        let Some(Value::Table(section_table)) = table.get_mut(section) else {
            continue;
        };
        let Some(default) = section_table.get(key) else {
            return Err(invalid(&name, format!("unknown key {section}.{key}")));
        };
        let parsed = match default {
            Value::Integer(_) => raw
                .trim()
                .parse::<i64>()
                .map(Value::Integer)
                .map_err(|_| "an integer"),
            Value::Float(_) => raw
                .trim()
                .parse::<f64>()
                .map(Value::Float)
                .map_err(|_| "a number"),
            Value::Boolean(_) => match raw.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(Value::Boolean(true)),
                "false" | "0" | "no" | "off" => Ok(Value::Boolean(false)),
                _ => Err("true or false"),
            },
            // Lists of strings (in-app rules) as comma-separated text.
            Value::Array(_) => Ok(Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_string()))
                    .collect(),
            )),
            _ => Ok(Value::String(raw.clone())),
        }
        .map_err(|expected| invalid(&name, format!("expected {expected}, got {raw:?}")))?;
        section_table.insert(key.to_string(), parsed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn embedded_defaults_load() {
        let c = Config::defaults();
        assert_eq!(c.server.http_port, 5100);
        assert_eq!(c.server.otlp_http_port, 4318);
        assert_eq!(c.server.grpc_port, 4317);
        assert_eq!(c.storage.path, "data/qyl.duckdb");
    }

    #[test]
    fn file_then_env_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qyl.toml");
        std::fs::write(&path, "[ingest]\nbatch_rows = 10\nbatch_ms = 7\n").unwrap();
        let c = Config::from_layers(
            Some(&path),
            env(&[
                ("QYL_INGEST_BATCH_ROWS", "99"),
                ("QYL_SERVER_BIND", "0.0.0.0"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(c.ingest.batch_rows, 99);
        assert_eq!(c.ingest.batch_ms, 7);
        assert_eq!(c.server.bind, "0.0.0.0");
        assert_eq!(c.ingest.queue_rows, 100_000);
    }

    #[test]
    fn typos_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qyl.toml");
        std::fs::write(&path, "[ingest]\nbatch_rowz = 10\n").unwrap();
        let err = Config::from_layers(Some(&path), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown key ingest.batch_rowz"), "{err}");

        let err = Config::from_layers(None, env(&[("QYL_INGEST_BATCH_ROWS", "many")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("QYL_INGEST_BATCH_ROWS") && err.contains("an integer"),
            "{err}"
        );

        let err = Config::from_layers(None, env(&[("QYL_STORAGE_PAHT", "x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown key storage.paht"), "{err}");

        let err = Config::from_layers(None, env(&[("QYL_INGEST_BATCH_ROWS", "0")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("ingest.batch_rows"), "{err}");

        let err = Config::from_layers(None, env(&[("QYL_INGEST_BATCH_MS", "99999999999")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("ingest.batch_ms: must be at most"), "{err}");

        let err = Config::from_layers(None, env(&[("QYL_STORAGE_MAX_DB_SIZE_MB", "10")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("storage.max_db_size_mb: must be 0 (no limit) or at least 64"),
            "{err}"
        );
        let err = Config::from_layers(None, env(&[("QYL_STORAGE_MIN_FREE_DISK_MB", "100000001")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("storage.min_free_disk_mb: must be at most"),
            "{err}"
        );
        let err = Config::from_layers(None, env(&[("QYL_STORAGE_RETENTION_HOURS", "100000")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("storage.retention_hours: must be at most"),
            "{err}"
        );
        let err = Config::from_layers(None, env(&[("QYL_ARCHIVE_URL", "s3://b/p")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("archive.url: needs archive.path"), "{err}");
        let err = Config::from_layers(
            None,
            env(&[
                ("QYL_ARCHIVE_PATH", "data/archive"),
                ("QYL_ARCHIVE_URL", "https://b/p"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("archive.url: expected s3://bucket"), "{err}");
        let c = Config::from_layers(
            None,
            env(&[
                ("QYL_STORAGE_MAX_DB_SIZE_MB", "64"),
                ("QYL_STORAGE_MIN_FREE_DISK_MB", "100000000"),
                ("QYL_STORAGE_RETENTION_HOURS", "0"),
            ]),
        )
        .unwrap();
        assert_eq!(c.storage.max_db_size_mb, 64);

        // Price overrides are checked at start, with the entry named.
        std::fs::write(
            &path,
            "[genai]\n[[genai.prices]]\nmodel = \"m\"\ninput_per_mtok = -1\noutput_per_mtok = 1\n",
        )
        .unwrap();
        let err = Config::from_layers(Some(&path), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("genai.prices[0] (m)"), "{err}");
        std::fs::write(
            &path,
            "[[genai.prices]]\nmodel = \"my-llm\"\nvalid_from = \"2025-01-01\"\ninput_per_mtok = 1\noutput_per_mtok = 2\n",
        )
        .unwrap();
        let c = Config::from_layers(Some(&path), env(&[("QYL_GENAI_BUILTIN_PRICES", "false")]))
            .unwrap();
        assert_eq!(c.genai.price_table().unwrap().entries().len(), 1);

        // Variables of sections qyl does not have are not qyl's business.
        assert!(Config::from_layers(None, env(&[("QYL_TEST_PYTHON", "/x")])).is_ok());
    }

    #[test]
    fn errors_section_defaults_lists_and_slos() {
        let c = Config::defaults();
        assert_eq!(
            c.errors.auto_resolve_after(),
            Some(std::time::Duration::from_secs(14 * 86_400))
        );
        assert!(c.errors.slo.is_empty());
        assert_eq!(c.errors.auto_resolve_after_deploy(), None);
        assert_eq!(c.errors.deploy_window_ns(), 3_600_000_000_000);
        let c = Config::from_layers(
            None,
            env(&[
                ("QYL_ERRORS_AUTO_RESOLVE_AFTER_DEPLOY", "2h"),
                ("QYL_ERRORS_DEPLOY_WINDOW", "15m"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.errors.auto_resolve_after_deploy(),
            Some(std::time::Duration::from_secs(7200))
        );
        assert_eq!(c.errors.deploy_window_ns(), 900_000_000_000);
        let c = Config::from_layers(
            None,
            env(&[
                ("QYL_ERRORS_IN_APP_INCLUDE", "acme_sdk, vendor/acme"),
                ("QYL_ERRORS_AUTO_RESOLVE_AFTER", "0"),
            ]),
        )
        .unwrap();
        assert_eq!(c.errors.in_app_include, vec!["acme_sdk", "vendor/acme"]);
        assert_eq!(c.errors.auto_resolve_after(), None);
        for (key, value, want) in [
            (
                "QYL_ERRORS_ESCALATION_FACTOR",
                "0.5",
                "errors.escalation_factor",
            ),
            (
                "QYL_ERRORS_AUTO_RESOLVE_AFTER",
                "soon",
                "errors.auto_resolve_after",
            ),
            (
                "QYL_ERRORS_DUPLICATE_WINDOW_MS",
                "90000",
                "errors.duplicate_window_ms",
            ),
            (
                "QYL_ERRORS_AUTO_RESOLVE_AFTER_DEPLOY",
                "later",
                "errors.auto_resolve_after_deploy",
            ),
            ("QYL_ERRORS_DEPLOY_WINDOW", "10s", "errors.deploy_window"),
        ] {
            let err = Config::from_layers(None, env(&[(key, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{key}={value}: {err}");
        }

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("qyl.toml");
        let slo = |body: &str| {
            std::fs::write(&file, body).unwrap();
            Config::from_layers(Some(&file), env(&[]))
        };
        let c = slo("[[errors.slo]]\nname = \"a\"\nservice = \"api\"\nobjective = 99.5\n").unwrap();
        assert_eq!(c.errors.slo[0].window, "30d");
        assert_eq!(c.errors.slo[0].latency_threshold_ms, 0);
        for (body, want) in [
            ("[[errors.slo]]\nname = \"a\"\nservice = \"api\"\nobjective = 100.0\n", "objective"),
            ("[[errors.slo]]\nname = \"a\"\nservice = \"\"\nobjective = 99.0\n", "service"),
            ("[[errors.slo]]\nname = \"a\"\nservice = \"x\"\nobjective = 99.0\nwindow = \"1y\"\n", "window"),
            ("[[errors.slo]]\nname = \"a\"\nservice = \"x\"\nobjective = 99.0\n[[errors.slo]]\nname = \"a\"\nservice = \"y\"\nobjective = 99.0\n", "unique"),
            ("[[errors.slo]]\nname = \"a\"\nservice = \"x\"\nobjective = 99.0\ncolour = 1\n", "colour"),
        ] {
            let err = slo(body).unwrap_err().to_string();
            assert!(err.contains(want), "{body}: {err}");
        }
    }

    #[test]
    fn functions_http_allow_and_secrets() {
        let c = Config::defaults();
        assert!(c.functions.http_allow.is_empty());
        assert!(c.functions.secrets.0.is_empty());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("qyl.toml");
        std::fs::write(
            &file,
            "[functions]\nhttp_allow = [\"hooks.slack.com\"]\n[functions.secrets]\nslack_webhook = \"env:SLACK_WEBHOOK_URL\"\nkey = \"literal-value\"\n",
        )
        .unwrap();
        let c = Config::from_layers(
            Some(&file),
            env(&[("QYL_FUNCTIONS_HTTP_TIMEOUT_MS", "2500")]),
        )
        .unwrap();
        assert_eq!(c.functions.http_allow, vec!["hooks.slack.com"]);
        assert_eq!(c.functions.http_timeout_ms, 2500);
        assert_eq!(
            c.functions
                .secrets
                .0
                .get("slack_webhook")
                .map(String::as_str),
            Some("env:SLACK_WEBHOOK_URL")
        );
        // Logging the configuration never shows a secret's value.
        assert!(!format!("{c:?}").contains("literal-value"));
        let c = Config::from_layers(
            None,
            env(&[("QYL_FUNCTIONS_HTTP_ALLOW", "a.example.com, 127.0.0.1:8080")]),
        )
        .unwrap();
        assert_eq!(c.functions.http_allow, ["a.example.com", "127.0.0.1:8080"]);
        for (key, value, want) in [
            ("QYL_FUNCTIONS_HTTP_ALLOW", "*", "functions.http_allow"),
            (
                "QYL_FUNCTIONS_HTTP_ALLOW",
                "x.com/path",
                "functions.http_allow",
            ),
            (
                "QYL_FUNCTIONS_HTTP_TIMEOUT_MS",
                "0",
                "functions.http_timeout_ms",
            ),
            (
                "QYL_FUNCTIONS_HTTP_TIMEOUT_MS",
                "999999",
                "functions.http_timeout_ms",
            ),
            (
                "QYL_FUNCTIONS_HTTP_MAX_RESPONSE_KB",
                "0",
                "functions.http_max_response_kb",
            ),
        ] {
            let err = Config::from_layers(None, env(&[(key, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{key}={value}: {err}");
        }
        std::fs::write(&file, "[functions.secrets]\n\"bad name\" = \"x\"\n").unwrap();
        let err = Config::from_layers(Some(&file), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("functions.secrets"), "{err}");
    }
}
