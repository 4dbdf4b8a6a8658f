//! The engine's settings. Each section sits beside the component that reads it;
//! defaults are written once, here, in the `Default` impls. The binary merges
//! files, environment and flags with figment and hands the result over.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::FieldSpec;

mod defaults;
pub use defaults::default_types;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Documents admitted into the actor chain at once; the rest wait in SQLite.
    pub max_in_flight: usize,
    /// A worker that has held a document this long is presumed lost with it;
    /// a document waiting in a queue, only once its stage has also taken no
    /// document for this long (see `intake`). Must be longer than the
    /// slowest stage.
    pub lease_ms: u64,
    pub extract: ExtractConfig,
    pub ocr: OcrConfig,
    pub classify: ClassifyPoolConfig,
    pub enrich: EnrichPoolConfig,
    pub retry: RetryConfig,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ExtractConfig {
    pub workers: usize,
    /// Time limit for one document's parse; the parser process is killed after it.
    pub timeout_ms: u64,
    /// Address-space limit of a parser process (setrlimit RLIMIT_AS).
    pub max_memory_mb: u64,
    /// A parser process left larger than this (MiB resident) after a
    /// document is replaced by a fresh one for the next document.
    pub recycle_parser_above_mb: u64,
    /// With poppler's `pdftotext` installed, the built-in PDF reader gets
    /// this much memory (MiB) for a PDF; one that needs more is read by
    /// pdftotext instead, which streams it page by page.
    pub pdf_memory_mb: u64,
    /// A parser process without a document for this long exits (its memory
    /// goes back to the system); the next document starts a fresh one.
    /// 0: never.
    pub parser_idle_exit_ms: u64,
    /// Extracted text beyond this many characters is cut off.
    pub max_text_chars: usize,
    /// Zip containers (DOCX, XLSX, PPTX, ODF) with more entries fail `too_large`.
    pub max_zip_entries: usize,
    /// Zip containers that unpack to more than this (MiB) fail `too_large`;
    /// so do e-mails whose attachments add up to more.
    pub max_zip_mb: u64,
    /// Attachments of one e-mail registered as documents; the rest are noted.
    pub max_attachments: usize,
    /// Attachments inside attachments are unpacked this many levels deep.
    pub max_attachment_depth: usize,
    /// PDFs with more pages fail `too_large`.
    pub max_pages: usize,
    /// Originals larger than this are kept but not read (they fail
    /// `too_large`): reading holds an original whole in memory.
    pub max_read_mb: u64,
}

/// Text from scans and images: tesseract, with pdftoppm to render PDF pages.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OcrConfig {
    /// false: never run OCR; scans are indexed with their metadata and
    /// flagged `needs_ocr`.
    pub enabled: bool,
    /// OCR processes at once, one thread each, shared by all documents; the
    /// pages of one document spread over them.
    pub workers: usize,
    /// tesseract languages, joined with '+', e.g. "eng+deu".
    pub languages: String,
    /// Where tesseract finds its language data ("" = its own default).
    pub tessdata_dir: String,
    /// A page whose mean word confidence (0–100) is below this is read a
    /// second time by tesseract's legacy engine, when the language data has
    /// it, and the more confident reading is kept. 0 switches this off.
    pub reread_below_confidence: u32,
    /// A page still read with a mean word confidence below this (after any
    /// second reading) is noise, not text: it is left out of the document's
    /// text, listed in `ocr_low_confidence_pages`, and the document is
    /// flagged `needs_review`. 0 keeps every reading.
    pub review_below_confidence: u32,
    /// The programs (a name on PATH or a path).
    pub tesseract: String,
    pub pdftoppm: String,
    /// Poppler's text extractor: a second reader for the PDFs that the
    /// built-in one cannot parse (used when installed).
    pub pdftotext: String,
    /// Time limit for one page (rendering and recognition).
    pub page_timeout_ms: u64,
    /// Time limit for all the OCR of one document.
    pub timeout_ms: u64,
    /// Pages of one document read by OCR; those beyond are noted in its fields.
    pub max_pages: usize,
    /// PDF pages are rendered to fit this many pixels on their longer side
    /// (about 300 dpi for A4).
    pub max_page_pixels: u32,
    /// Images larger than this many megapixels fail `too_large`.
    pub max_image_megapixels: u32,
    /// Address-space limit of each OCR process, in MiB.
    pub max_memory_mb: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClassifyPoolConfig {
    pub workers: usize,
    /// Documents typed by the learned classifier with a lower confidence
    /// are flagged `needs_review`.
    pub review_threshold: f32,
    /// The classifier retrains once corrections have stopped for this long.
    pub retrain_delay_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EnrichPoolConfig {
    pub workers: usize,
}

impl Default for EnrichPoolConfig {
    fn default() -> Self {
        EnrichPoolConfig { workers: 2 }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts per stage before a document is parked as `failed`.
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogConfig {
    /// Most stage updates written in one SQLite transaction (group commit).
    pub max_batch: usize,
    /// "full": every acknowledged change survives power loss (the Catalog
    /// flushes the WAL before it answers; see `catalog/writer.rs`); "normal":
    /// no flush (a process crash loses nothing, a power cut may).
    pub synchronous: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IndexConfig {
    /// Commit when this many documents are waiting...
    pub commit_batch: usize,
    /// ...or when the oldest has waited this long.
    pub commit_interval_ms: u64,
    pub writer_memory_mb: usize,
    pub writer_threads: usize,
}

/// The largest `blobs.inline_max_bytes` allowed: an inline upload is
/// buffered whole (the blob store streams larger ones in parts this size).
pub const MAX_INLINE_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BlobConfig {
    /// fsync every stored original before the upload is acknowledged.
    pub fsync: bool,
    /// Originals up to this size are kept in SQLite, written in the same
    /// group commit as their row; larger ones stream to the blob store.
    /// 0 sends every original to the blob store.
    pub inline_max_bytes: u64,
}

/// Where the originals live: the data directory's `blobs/` (`local`), or
/// an S3-compatible bucket (`s3`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub backend: StorageBackend,
    pub s3: S3Config,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    #[default]
    Local,
    S3,
}

/// An S3-compatible bucket. Keys left empty come from the standard AWS
/// environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`, `AWS_REGION`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// e.g. `http://127.0.0.1:9000`; empty: AWS itself.
    pub endpoint: String,
    /// Empty: `AWS_REGION`, else `us-east-1`.
    pub region: String,
    pub bucket: String,
    /// Keys are stored under this prefix (`docpipe/`…); empty: the bucket's root.
    pub prefix: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Plain HTTP to a non-loopback endpoint (a loopback one may always
    /// use it).
    pub allow_http: bool,
    /// `http://endpoint/bucket/key` rather than `http://bucket.endpoint/key`
    /// (MinIO, moto, most self-hosted servers).
    pub path_style: bool,
    /// Each request's limit, and the connection's.
    pub timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// Tries after the first, with exponential backoff, for errors that may pass.
    pub retries: usize,
    /// Calls failing in a row that open the store's circuit breaker; then
    /// calls are refused at once for `open_ms` before one tries again.
    pub failure_threshold: u32,
    pub open_ms: u64,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            endpoint: String::new(),
            region: String::new(),
            bucket: String::new(),
            prefix: String::new(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            allow_http: false,
            path_style: true,
            timeout_ms: 30_000,
            connect_timeout_ms: 5_000,
            retries: 3,
            failure_threshold: 3,
            open_ms: 5_000,
        }
    }
}

/// Ollama, optional: with endpoints, Classify asks it for the type and
/// Enrich for the type's fields (structured output, validated).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OllamaConfig {
    /// Base URLs, e.g. ["http://127.0.0.1:11434"]; empty: no LLM. Several
    /// are load-balanced (least requests in flight).
    pub endpoints: Vec<String>,
    pub model: String,
    /// Ask for the document's type.
    pub classify: bool,
    /// Ask for the type's fields.
    pub extract: bool,
    /// One request's time limit.
    pub timeout_ms: u64,
    /// Failures or timeouts in a row that open an endpoint's breaker.
    pub failure_threshold: u32,
    /// How long an open breaker waits before one probe request.
    pub open_ms: u64,
    /// The start of the text sent in a prompt.
    pub max_text_chars: usize,
}

impl Default for OllamaConfig {
    fn default() -> Self {
        OllamaConfig {
            endpoints: Vec::new(),
            model: "qwen2.5:7b-instruct".into(),
            classify: true,
            extract: true,
            timeout_ms: 60_000,
            failure_threshold: 3,
            open_ms: 30_000,
            max_text_chars: 8_000,
        }
    }
}

/// How a type's keywords and patterns are matched (see
/// the rules classifier).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Matching {
    #[default]
    Any,
    All,
    Literal,
    Regex,
    Fuzzy,
}

/// A document type and the rules that recognise it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TypeConfig {
    pub name: String,
    pub description: String,
    /// How `keywords` and `patterns` are matched: any (default), all,
    /// literal, regex or fuzzy.
    pub matching: Matching,
    /// Case-insensitive words or phrases; each one found counts once.
    pub keywords: Vec<String>,
    /// Regular expressions; each one that matches counts once.
    pub patterns: Vec<String>,
    /// The fields of documents of this type (besides the common ones:
    /// date, issuer, iban, vat_id, email, url, phone).
    pub fields: Vec<FieldSpec>,
}

/// `[embed]`: which embedder makes the passages' vectors.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EmbedConfig {
    pub backend: EmbedBackend,
    /// builtin: the name of the table (its file is `table`); ollama: the
    /// embedding model, e.g. `nomic-embed-text`.
    pub model: String,
    /// The built-in embedder's table (`docpipe distill-embedder` writes
    /// it); empty: `<data_dir>/embed/<model>.dpemb`.
    pub table: String,
    /// Longest passage, in bytes of text.
    pub chunk_chars: usize,
    /// Documents embedded in one step (and one Catalog transaction).
    pub batch: usize,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EmbedBackend {
    #[default]
    Builtin,
    Ollama,
    Off,
}

impl EmbedBackend {
    pub fn as_str(self) -> &'static str {
        match self {
            EmbedBackend::Builtin => "builtin",
            EmbedBackend::Ollama => "ollama",
            EmbedBackend::Off => "off",
        }
    }
}

impl Default for EmbedConfig {
    fn default() -> Self {
        EmbedConfig {
            backend: EmbedBackend::Builtin,
            model: "all-MiniLM-L6-v2".into(),
            table: String::new(),
            chunk_chars: 1000,
            batch: 16,
        }
    }
}

/// `[webhooks]`: how deliveries are sent and retried.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Let a webhook target loopback, private, link-local and other
    /// non-public addresses (refused by default: a token holder must not
    /// reach the host's own services through docpipe).
    pub allow_private: bool,
    /// Attempts of one delivery before it is listed as failed.
    pub max_attempts: u32,
    /// The wait before the second attempt; doubled for each one after.
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// How long one attempt may take (connect, send, answer).
    pub timeout_ms: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            allow_private: false,
            max_attempts: 10,
            initial_backoff_ms: 5_000,
            max_backoff_ms: 3_600_000,
            timeout_ms: 10_000,
        }
    }
}

/// Everything the engine needs, assembled by the binary.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub data_dir: PathBuf,
    pub pipeline: PipelineConfig,
    pub catalog: CatalogConfig,
    pub index: IndexConfig,
    pub blobs: BlobConfig,
    pub storage: StorageConfig,
    pub types: Vec<TypeConfig>,
    pub ollama: OllamaConfig,
    pub embed: EmbedConfig,
    pub webhooks: WebhooksConfig,
    /// Index every document again at start (`docpipe reindex`).
    pub rebuild_index: bool,
    /// The program and arguments that start a parser process (the docpipe
    /// binary itself in its parser mode).
    pub parser_command: Vec<String>,
}

impl Default for ExtractConfig {
    fn default() -> Self {
        ExtractConfig {
            workers: 2,
            timeout_ms: 30_000,
            max_memory_mb: 1024,
            recycle_parser_above_mb: 64,
            pdf_memory_mb: 96,
            parser_idle_exit_ms: 10_000,
            max_text_chars: 5_000_000,
            max_zip_entries: 10_000,
            max_zip_mb: 256,
            max_attachments: 100,
            max_attachment_depth: 3,
            max_pages: 5_000,
            max_read_mb: 1024,
        }
    }
}

impl Default for OcrConfig {
    fn default() -> Self {
        OcrConfig {
            enabled: true,
            workers: 2,
            languages: "eng".into(),
            tessdata_dir: String::new(),
            reread_below_confidence: 60,
            review_below_confidence: 30,
            tesseract: "tesseract".into(),
            pdftoppm: "pdftoppm".into(),
            pdftotext: "pdftotext".into(),
            page_timeout_ms: 60_000,
            timeout_ms: 300_000,
            max_pages: 200,
            max_page_pixels: 3_600,
            max_image_megapixels: 60,
            max_memory_mb: 1024,
        }
    }
}

impl Default for ClassifyPoolConfig {
    fn default() -> Self {
        ClassifyPoolConfig {
            workers: 1,
            review_threshold: 0.7,
            retrain_delay_ms: 2_000,
        }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 3,
            initial_backoff_ms: 2_000,
            max_backoff_ms: 300_000,
        }
    }
}

impl Default for CatalogConfig {
    fn default() -> Self {
        CatalogConfig {
            max_batch: 1024,
            synchronous: "full".into(),
        }
    }
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            commit_batch: 2000,
            commit_interval_ms: 250,
            writer_memory_mb: 64,
            writer_threads: 1,
        }
    }
}

impl Default for BlobConfig {
    fn default() -> Self {
        BlobConfig {
            fsync: true,
            inline_max_bytes: 64 * 1024,
        }
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            max_in_flight: 64,
            lease_ms: 600_000,
            extract: ExtractConfig::default(),
            ocr: OcrConfig::default(),
            classify: ClassifyPoolConfig::default(),
            enrich: EnrichPoolConfig::default(),
            retry: RetryConfig::default(),
        }
    }
}

impl EngineConfig {
    /// Every problem with the values, at once (unknown keys and wrong types are
    /// caught earlier, by deserialisation).
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let p = &self.pipeline;
        let mut positive = |key: &str, v: u64| {
            if v == 0 {
                problems.push(format!("{key} must be at least 1"));
            }
        };
        positive("pipeline.max_in_flight", p.max_in_flight as u64);
        positive("pipeline.extract.workers", p.extract.workers as u64);
        positive("pipeline.extract.timeout_ms", p.extract.timeout_ms);
        positive("pipeline.extract.max_memory_mb", p.extract.max_memory_mb);
        positive(
            "pipeline.extract.max_text_chars",
            p.extract.max_text_chars as u64,
        );
        positive("pipeline.extract.max_pages", p.extract.max_pages as u64);
        positive("pipeline.extract.max_read_mb", p.extract.max_read_mb);
        positive("pipeline.ocr.workers", p.ocr.workers as u64);
        positive("pipeline.enrich.workers", p.enrich.workers as u64);
        positive("pipeline.ocr.page_timeout_ms", p.ocr.page_timeout_ms);
        positive("pipeline.ocr.timeout_ms", p.ocr.timeout_ms);
        positive("pipeline.ocr.max_memory_mb", p.ocr.max_memory_mb);
        positive("pipeline.ocr.max_page_pixels", p.ocr.max_page_pixels as u64);
        positive(
            "pipeline.ocr.max_image_megapixels",
            p.ocr.max_image_megapixels as u64,
        );
        positive("pipeline.classify.workers", p.classify.workers as u64);
        positive("pipeline.retry.max_attempts", p.retry.max_attempts as u64);
        positive("catalog.max_batch", self.catalog.max_batch as u64);
        positive("index.commit_batch", self.index.commit_batch as u64);
        positive("index.commit_interval_ms", self.index.commit_interval_ms);
        positive("index.writer_threads", self.index.writer_threads as u64);
        let w = &self.webhooks;
        positive("webhooks.max_attempts", w.max_attempts as u64);
        positive("webhooks.initial_backoff_ms", w.initial_backoff_ms);
        positive("webhooks.timeout_ms", w.timeout_ms);
        if w.max_backoff_ms < w.initial_backoff_ms {
            problems.push(
                "webhooks.max_backoff_ms must be at least webhooks.initial_backoff_ms".into(),
            );
        }
        if self.storage.backend == StorageBackend::S3 {
            let s3 = &self.storage.s3;
            if s3.bucket.trim().is_empty() {
                problems.push("storage.s3.bucket must be set when storage.backend = \"s3\"".into());
            }
            let url = |e: &str| e.starts_with("http://") || e.starts_with("https://");
            if !(s3.endpoint.is_empty() || url(&s3.endpoint)) {
                problems.push(format!(
                    "storage.s3.endpoint: {:?} is not an http:// or https:// URL",
                    s3.endpoint
                ));
            }
            if s3.timeout_ms == 0 || s3.connect_timeout_ms == 0 {
                problems
                    .push("storage.s3.timeout_ms and connect_timeout_ms must be at least 1".into());
            }
        }
        for e in &self.ollama.endpoints {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                problems.push(format!(
                    "ollama.endpoints: {e:?} is not an http:// or https:// URL"
                ));
            }
        }
        if !self.ollama.endpoints.is_empty() {
            if self.ollama.timeout_ms == 0
                || self.ollama.failure_threshold == 0
                || self.ollama.open_ms == 0
            {
                problems.push(
                    "ollama.timeout_ms, failure_threshold and open_ms must be at least 1".into(),
                );
            }
            if self.ollama.model.trim().is_empty() {
                problems.push("ollama.model must name a model".into());
            }
            // One question may try every endpoint once, then ask again once.
            let ask_ms =
                (self.ollama.endpoints.len() as u64 + 1).saturating_mul(self.ollama.timeout_ms);
            if p.lease_ms <= ask_ms {
                problems.push(format!(
                    "pipeline.lease_ms ({}) must be longer than one question to the LLM can take: \
                     (endpoints + 1) x ollama.timeout_ms = {ask_ms}",
                    p.lease_ms
                ));
            }
        }
        if !(0.0..=1.0).contains(&p.classify.review_threshold) {
            problems.push(format!(
                "pipeline.classify.review_threshold is a confidence from 0 to 1, not {}",
                p.classify.review_threshold
            ));
        }
        for (name, v) in [
            ("reread_below_confidence", p.ocr.reread_below_confidence),
            ("review_below_confidence", p.ocr.review_below_confidence),
        ] {
            if v > 100 {
                problems.push(format!(
                    "pipeline.ocr.{name} is a confidence from 0 to 100, not {v}"
                ));
            }
        }
        if p.lease_ms <= p.extract.timeout_ms.saturating_add(p.ocr.timeout_ms) {
            problems.push(format!(
                "pipeline.lease_ms ({}) must be longer than pipeline.extract.timeout_ms ({}) \
                 and pipeline.ocr.timeout_ms ({}) together",
                p.lease_ms, p.extract.timeout_ms, p.ocr.timeout_ms
            ));
        }
        if p.ocr.languages.split('+').any(|l| {
            l.is_empty()
                || !l
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        }) {
            problems.push(format!(
                "pipeline.ocr.languages must be tesseract language names joined by '+', not {:?}",
                p.ocr.languages
            ));
        }
        if p.retry.max_backoff_ms < p.retry.initial_backoff_ms {
            problems.push(
                "pipeline.retry.max_backoff_ms must be at least pipeline.retry.initial_backoff_ms"
                    .into(),
            );
        }
        if self.index.writer_memory_mb < 15 * self.index.writer_threads.max(1) {
            problems.push("index.writer_memory_mb must be at least 15 per writer thread".into());
        }
        if self.blobs.inline_max_bytes > MAX_INLINE_BYTES {
            problems.push(format!(
                "blobs.inline_max_bytes must be at most {}",
                MAX_INLINE_BYTES
            ));
        }
        if !matches!(self.catalog.synchronous.as_str(), "full" | "normal") {
            problems.push(format!(
                "catalog.synchronous must be \"full\" or \"normal\", not {:?}",
                self.catalog.synchronous
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, t) in self.types.iter().enumerate() {
            if t.name.trim().is_empty() {
                problems.push(format!("types[{i}].name must not be empty"));
            } else if !names.insert(t.name.as_str()) {
                problems.push(format!("types[{i}].name {:?} is defined twice", t.name));
            }
            for (j, pat) in t.patterns.iter().enumerate() {
                if let Err(e) = regex::Regex::new(pat) {
                    problems.push(format!(
                        "types[{i}].patterns[{j}] is not a valid regex: {e}"
                    ));
                }
            }
        }
        problems
    }
}
