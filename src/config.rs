//! Configuration: built-in defaults, then `config.toml`, then `DOCPIPE_…`
//! environment variables (`__` separates sections), then command-line flags.
//! Unknown keys and wrong types fail with the key and where its value came
//! from; [`Config::validate`] reports every bad value at once.

use std::net::SocketAddr;
use std::path::PathBuf;

use docpipe_actors::config::{
    default_types, BlobConfig, CatalogConfig, IndexConfig, OllamaConfig, PipelineConfig,
    StorageConfig, TypeConfig,
};
use docpipe_actors::EngineConfig;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the catalog, the index and the originals live.
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub rate_limit: RateLimitConfig,
    pub log: LogConfig,
    pub pipeline: PipelineConfig,
    pub catalog: CatalogConfig,
    pub index: IndexConfig,
    pub blobs: BlobConfig,
    pub storage: StorageConfig,
    pub ollama: OllamaConfig,
    /// Passage vectors for semantic search (`[embed]`).
    pub embed: docpipe_actors::embed::EmbedConfig,
    /// Webhook deliveries (`[webhooks]`).
    pub webhooks: docpipe_actors::WebhooksConfig,
    pub types: Vec<TypeConfig>,
    /// Watched folders (`[[watch]]`).
    pub watch: Vec<crate::watch::WatchConfig>,
    /// Mailboxes (`[[mail]]`).
    pub mail: Vec<crate::mail::MailConfig>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Largest upload request accepted, all files together.
    pub max_upload_bytes: u64,
    /// On SIGTERM, how long to let in-flight documents finish.
    pub shutdown_drain_ms: u64,
    /// Upload requests read at once; more get 503 with Retry-After.
    pub max_concurrent_uploads: usize,
    /// A request body that sends nothing for this long is cut off.
    pub request_body_timeout_ms: u64,
    /// Origins allowed to call the API from a browser (CORS); empty: none.
    pub cors_origins: Vec<String>,
    /// Live event subscribers (SSE and WebSocket) at once; more get 503.
    pub max_subscribers: usize,
    /// Events queued for one subscriber that is not reading.
    pub subscriber_queue: usize,
    /// A subscriber whose queue stays full this long is dropped, with a
    /// notice telling it to resume from its last event id.
    pub subscriber_stall_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// An admin token to accept instead of generating one (automation).
    /// Also `DOCPIPE_ADMIN_TOKEN`. Empty: none.
    pub admin_token: String,
    /// Serve `/metrics` without a token (for a Prometheus on a trusted network).
    pub metrics_public: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Requests per second per token (sustained), and the burst above it. 0: off.
    pub per_token_per_second: u32,
    pub per_token_burst: u32,
    /// Requests per second per client address without a valid token. 0: off.
    pub per_ip_per_second: u32,
    pub per_ip_burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            per_token_per_second: 200,
            per_token_burst: 1000,
            per_ip_per_second: 5,
            per_ip_burst: 20,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter: "info", "docpipe=debug,info", … (RUST_LOG wins if set).
    pub level: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            server: ServerConfig::default(),
            auth: AuthConfig::default(),
            rate_limit: RateLimitConfig::default(),
            log: LogConfig::default(),
            pipeline: PipelineConfig::default(),
            catalog: CatalogConfig::default(),
            index: IndexConfig::default(),
            blobs: BlobConfig::default(),
            storage: StorageConfig::default(),
            ollama: OllamaConfig::default(),
            embed: Default::default(),
            webhooks: Default::default(),
            types: default_types(),
            watch: Vec::new(),
            mail: Vec::new(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8750)),
            max_upload_bytes: 100 * 1024 * 1024,
            shutdown_drain_ms: 30_000,
            max_concurrent_uploads: 64,
            request_body_timeout_ms: 60_000,
            cors_origins: Vec::new(),
            max_subscribers: 256,
            subscriber_queue: 1024,
            subscriber_stall_ms: 10_000,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
        }
    }
}

/// Values given on the command line.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct Flags {
    /// Configuration file (default: ./config.toml if it exists)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (default: ./data)
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on (default: 127.0.0.1:8750)
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

/// A provider under a name of our choosing, so sources read well.
struct Named<P> {
    name: &'static str,
    inner: P,
}

impl<P: Provider> Provider for Named<P> {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name)
    }

    fn data(&self) -> figment::Result<Map<Profile, Dict>> {
        self.inner.data()
    }
}

/// Environment variables that are not configuration keys.
/// (`DOCPIPE_ADMIN_TOKEN` is the short name of `auth.admin_token`.)
const ENV_NOT_CONFIG: &[&str] = &["url", "token", "admin_token"];

pub fn figment(flags: &Flags) -> Result<Figment, String> {
    let mut fig = Figment::from(Named {
        name: "built-in default",
        inner: Serialized::defaults(Config::default()),
    });
    let file = match &flags.config {
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from("config.toml")).filter(|p| p.exists()),
    };
    if let Some(path) = file {
        if !path.is_file() {
            return Err(format!(
                "configuration file {} does not exist",
                path.display()
            ));
        }
        fig = fig.merge(Toml::file_exact(path));
    }
    fig = fig.merge(Env::prefixed(ENV_PREFIX).split("__").ignore(ENV_NOT_CONFIG));
    if let Ok(t) = std::env::var("DOCPIPE_ADMIN_TOKEN") {
        fig = fig.merge(Named {
            name: "environment variable DOCPIPE_ADMIN_TOKEN",
            inner: Serialized::default("auth.admin_token", t),
        });
    }
    if let Some(d) = &flags.data_dir {
        fig = fig.merge(Named {
            name: "--data-dir flag",
            inner: Serialized::default("data_dir", d),
        });
    }
    if let Some(l) = &flags.listen {
        fig = fig.merge(Named {
            name: "--listen flag",
            inner: Serialized::default("server.listen", l),
        });
    }
    Ok(fig)
}

/// Loads and validates the configuration; the error is ready to print.
pub fn load(flags: &Flags) -> Result<(Config, Figment), String> {
    let fig = figment(flags)?;
    let cfg: Config = fig.extract().map_err(|e| {
        e.into_iter()
            .map(|e| describe_error(&e))
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let problems = cfg.validate();
    if !problems.is_empty() {
        return Err(problems
            .iter()
            .map(|p| format!("invalid configuration: {p}"))
            .collect::<Vec<_>>()
            .join("\n"));
    }
    Ok((cfg, fig))
}

/// The settings `SIGHUP` applies while running.
pub const LIVE_KEYS: [&str; 3] = [
    "pipeline.extract.workers",
    "pipeline.classify.workers",
    "pipeline.enrich.workers",
];

/// The dotted keys whose values differ between two configurations.
pub fn changed_keys(a: &Config, b: &Config) -> Vec<String> {
    fn walk(prefix: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
        match (a, b) {
            (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    let null = serde_json::Value::Null;
                    walk(
                        &key,
                        x.get(k).unwrap_or(&null),
                        y.get(k).unwrap_or(&null),
                        out,
                    );
                }
            }
            _ if a != b => out.push(prefix.to_string()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    match (serde_json::to_value(a), serde_json::to_value(b)) {
        (Ok(x), Ok(y)) => walk("", &x, &y, &mut out),
        _ => out.push("(the configuration)".into()),
    }
    out
}

impl Config {
    pub fn engine(&self, parser_command: Vec<String>) -> EngineConfig {
        EngineConfig {
            data_dir: self.data_dir.clone(),
            pipeline: self.pipeline.clone(),
            catalog: self.catalog.clone(),
            index: self.index.clone(),
            blobs: self.blobs.clone(),
            storage: self.storage.clone(),
            types: self.types.clone(),
            ollama: self.ollama.clone(),
            embed: self.embed.clone(),
            webhooks: self.webhooks.clone(),
            rebuild_index: false,
            parser_command,
        }
    }

    pub fn validate(&self) -> Vec<String> {
        let mut problems = self.engine(Vec::new()).validate();
        if self.server.max_upload_bytes == 0 {
            problems.push("server.max_upload_bytes must be at least 1".into());
        }
        if self.server.max_concurrent_uploads == 0 {
            problems.push("server.max_concurrent_uploads must be at least 1".into());
        }
        for (name, v) in [
            ("max_subscribers", self.server.max_subscribers as u64),
            ("subscriber_queue", self.server.subscriber_queue as u64),
            ("subscriber_stall_ms", self.server.subscriber_stall_ms),
        ] {
            if v == 0 {
                problems.push(format!("server.{name} must be at least 1"));
            }
        }
        if self.server.request_body_timeout_ms == 0 {
            problems.push("server.request_body_timeout_ms must be at least 1".into());
        }
        for o in &self.server.cors_origins {
            if axum::http::HeaderValue::from_str(o).is_err() || !o.contains("://") {
                problems.push(format!(
                    "server.cors_origins: {o:?} is not an origin like https://example.org"
                ));
            }
        }
        let t = &self.auth.admin_token;
        if !t.is_empty() && (t.len() < 16 || t.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            problems.push("auth.admin_token must be at least 16 characters, without spaces".into());
        }
        for (i, w) in self.watch.iter().enumerate() {
            if w.path.as_os_str().is_empty() {
                problems.push(format!("watch[{i}].path must be set"));
            }
            if !docpipe_actors::valid_workspace(&w.workspace) {
                problems.push(format!(
                    "watch[{i}].workspace {:?}: 1 to 64 letters, digits, '-' or '_'",
                    w.workspace
                ));
            }
            if w.settle_ms == 0 || w.scan_ms == 0 {
                problems.push(format!(
                    "watch[{i}].settle_ms and scan_ms must be at least 1"
                ));
            }
        }
        for (i, m) in self.mail.iter().enumerate() {
            problems.extend(m.problems(i));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            problems.push(format!(
                "log.level {:?} is not a valid filter",
                self.log.level
            ));
        }
        problems
    }
}

const ENV_PREFIX: &str = "DOCPIPE_";

/// The environment variable that sets `key` (`pipeline.extract.workers` is
/// `DOCPIPE_PIPELINE__EXTRACT__WORKERS`).
fn env_var_name(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.to_ascii_uppercase().replace('.', "__")
    )
}

/// "key: what is wrong (set by where)".
fn describe_error(e: &figment::Error) -> String {
    let mut path: Vec<String> = e.path.iter().map(|p| p.to_ascii_lowercase()).collect();
    if path.first().is_some_and(|p| p == "default") {
        path.remove(0); // figment's profile name, not part of the key
    }
    let key = path.join(".");
    let mut msg = String::from("invalid configuration: ");
    if !key.is_empty() {
        msg.push_str(&format!("{key}: "));
    }
    msg.push_str(&e.kind.to_string());
    if let Some(m) = &e.metadata {
        msg.push_str(&format!(" (set by {})", source_of(m, &key)));
    }
    msg
}

/// Every setting with its effective value and where it came from, one per
/// line, for `docpipe config`.
pub fn describe(cfg: &Config, fig: &Figment) -> String {
    let value = serde_json::to_value(cfg).unwrap_or_default();
    let mut lines = Vec::new();
    walk(&value, String::new(), &mut |key, v| {
        let secret = ["token", "secret_access_key", "password"]
            .iter()
            .any(|s| key.ends_with(s));
        let v = if secret && v != "\"\"" {
            "\"(hidden)\"".to_string()
        } else {
            v
        };
        let source = fig
            .find_metadata(key)
            .map(|m| source_of(m, key))
            .unwrap_or_else(|| "built-in default".into());
        lines.push((format!("{key} = {v}"), source));
    });
    let width = lines
        .iter()
        .map(|(l, _)| l.len())
        .max()
        .unwrap_or(0)
        .min(60);
    lines
        .into_iter()
        .map(|(l, s)| format!("{l:width$}  # {s}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn source_of(m: &Metadata, key: &str) -> String {
    match &m.source {
        Some(figment::Source::File(p)) => format!("{} {}", m.name, p.display()),
        _ if m.name.starts_with("environment variable DOCPIPE_") => m.name.to_string(),
        _ if m.name.contains("environment variable") => {
            format!("environment variable {}", env_var_name(key))
        }
        _ => m.name.to_string(),
    }
}

/// Visits leaves; arrays (the document types) are shown whole.
fn walk(v: &serde_json::Value, prefix: String, f: &mut dyn FnMut(&str, String)) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                walk(child, key, f);
            }
        }
        other => f(&prefix, other.to_string()),
    }
}

/// The engine's parser processes are this binary in parser mode.
pub fn parser_command() -> Vec<String> {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("docpipe"));
    vec![exe.display().to_string(), crate::PARSER_MODE.to_string()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn shipped_config_toml_parses_and_matches_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        let cfg: Config = Figment::from(Toml::file_exact(&path))
            .extract()
            .expect("config.toml parses");
        assert_eq!(
            cfg,
            Config::default(),
            "config.toml and the built-in defaults disagree"
        );
        assert!(cfg.validate().is_empty());
    }

    #[test]
    fn unknown_keys_are_named() {
        let fig = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string("[pipeline]\nmax_in_flite = 3\n"));
        let err = fig.extract::<Config>().unwrap_err().to_string();
        assert!(err.contains("max_in_flite"), "{err}");
    }

    #[test]
    fn validate_reports_every_problem() {
        let mut c = Config::default();
        c.pipeline.max_in_flight = 0;
        c.pipeline.extract.workers = 0;
        c.types[0].patterns.push("(".into());
        let p = c.validate();
        assert_eq!(p.len(), 3, "{p:?}");
    }

    #[test]
    fn the_lease_must_outlast_one_question_to_the_llm() {
        let mut c = Config::default();
        c.ollama.endpoints = vec!["http://a:11434".into(), "http://b:11434".into()];
        c.ollama.timeout_ms = 200_000;
        let p = c.validate();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("pipeline.lease_ms (600000)") && p[0].contains("= 600000"),
            "{p:?}"
        );
        c.ollama.timeout_ms = 199_999;
        assert!(c.validate().is_empty());
    }
}
