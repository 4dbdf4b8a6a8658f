//! Extract pool: turns a stored original into text.
//!
//! In: [`DocJob`]s at stage `queued`, dispatched by the Intake through a
//! ractor factory. Out: `Extracted` to the Catalog (which commits the text and
//! the stage advance, then forwards the job to Classify), or a failure to the
//! Scheduler. Plain text, Markdown and HTML are parsed in-process on the
//! blocking pool; PDFs (and later every other untrusted binary format) in a
//! pooled parser process of this same binary, under a time limit and an
//! address-space limit. A parser that panics, hangs or dies fails that one
//! document with a code; the worker replaces its process and goes on.

pub mod detect;
pub mod einvoice;
pub mod email;
pub mod image;
pub mod ocr;
pub mod office;
pub mod pdf;
pub mod rtf;
pub mod sandbox;
pub mod table;
pub mod text;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use ractor::factory::{FactoryMessage, Job, Worker, WorkerId};
use ractor::{ActorProcessingErr, ActorRef};
use serde::{Deserialize, Serialize};

use crate::catalog::CatalogMsg;
use crate::config::{ExtractConfig, OcrConfig};
use crate::counters::Counters;
use crate::model::{DocJob, ErrorInfo, Extracted};
use crate::pipeline::{current_routes, tell, RoutesRx};
use crate::scheduler::SchedulerMsg;
use crate::store::blobs::Blobs;

/// Why a parse failed, with a stable code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ParseError {
    pub code: String,
    pub message: String,
}

impl ParseError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        ParseError {
            code: code.into(),
            message: message.into(),
        }
    }

    /// Deterministic failures (the same bytes fail the same way) are parked at
    /// once; the others (time, crashes, I/O) are retried with backoff.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self.code.as_str(),
            "malformed" | "encrypted" | "unsupported" | "too_large" | "ocr_failed"
        )
    }

    pub fn into_info(self) -> ErrorInfo {
        ErrorInfo::new(self.code, self.message)
    }
}

/// Limits against hostile files, from `pipeline.extract`; sent to the
/// parser process with each document.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ParseLimits {
    pub max_zip_entries: usize,
    pub max_zip_bytes: u64,
    pub max_text_chars: usize,
    pub max_attachments: usize,
    pub max_pages: usize,
    pub max_image_megapixels: u32,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits::new(&ExtractConfig::default(), &OcrConfig::default())
    }
}

impl ParseLimits {
    pub fn new(c: &ExtractConfig, ocr: &OcrConfig) -> Self {
        ParseLimits {
            max_zip_entries: c.max_zip_entries,
            max_zip_bytes: c.max_zip_mb.saturating_mul(1024 * 1024),
            max_text_chars: c.max_text_chars,
            max_attachments: c.max_attachments,
            max_pages: c.max_pages,
            max_image_megapixels: ocr.max_image_megapixels,
        }
    }
}

/// Formats that are parsed in the parser process rather than in-process:
/// everything but plain text, Markdown, HTML and CSV.
pub fn needs_sandbox(mime: &str) -> bool {
    !matches!(
        mime,
        detect::TEXT | detect::MARKDOWN | detect::HTML | detect::CSV
    )
}

/// Parses any supported format and tells the text's language. Called on
/// the blocking pool for the safe formats and inside the parser process for
/// the others, so neither costs the async workers any time.
pub fn parse(mime: &str, bytes: &[u8], limits: &ParseLimits) -> Result<Extracted, ParseError> {
    let mut out = parse_format(mime, bytes, limits)?;
    out.language = detect_language(&out.text);
    Ok(out)
}

fn parse_format(mime: &str, bytes: &[u8], limits: &ParseLimits) -> Result<Extracted, ParseError> {
    match mime {
        detect::PDF => pdf::extract(bytes, limits),
        detect::PNG | detect::JPEG | detect::TIFF => image::extract(bytes, limits),
        detect::CSV => table::extract(bytes, limits),
        detect::EML => email::extract(bytes, limits),
        detect::RTF => rtf::extract(bytes),
        detect::DOCX
        | detect::PPTX
        | detect::XLSX
        | detect::XLS
        | detect::ODT
        | detect::ODS
        | detect::ODP
        | detect::ZIP => office::extract(mime, bytes, limits),
        detect::HTML => {
            let (title, text) = text::html_to_text(&text::decode(bytes));
            Ok(Extracted {
                text,
                title,
                pages: None,
                ..Default::default()
            })
        }
        detect::MARKDOWN => {
            let (title, text) = text::markdown_to_text(&text::decode(bytes));
            Ok(Extracted {
                text,
                title,
                pages: None,
                ..Default::default()
            })
        }
        detect::TEXT => Ok(Extracted {
            text: text::decode(bytes),
            title: None,
            pages: None,
            ..Default::default()
        }),
        other => Err(ParseError::new(
            "unsupported",
            format!("docpipe cannot read {other}"),
        )),
    }
}

/// Cuts text at a character boundary after `max_chars` characters.
pub fn truncate_chars(text: &mut String, max_chars: usize) -> bool {
    match text.char_indices().nth(max_chars) {
        Some((byte, _)) => {
            text.truncate(byte);
            true
        }
        None => false,
    }
}

/// What every Extract worker shares.
pub struct ExtractCtx {
    /// DOCPIPE_TEST_FAULTS=1: honour the test-only fault markers.
    pub test_faults: bool,
    pub config: ExtractConfig,
    pub parser_command: Vec<String>,
    pub blobs: Blobs,
    pub db: crate::store::db::ReadPool,
    pub routes: RoutesRx,
    pub counters: Arc<Counters>,
    pub ocr: Arc<ocr::Ocr>,
}

pub struct Extractor {
    pub ctx: Arc<ExtractCtx>,
}

pub struct ExtractorState {
    sandbox: Option<sandbox::Sandbox>,
}

impl Extractor {
    async fn extract(
        &self,
        job: &DocJob,
        state: &mut ExtractorState,
    ) -> Result<Extracted, ParseError> {
        let started = std::time::Instant::now();
        let cfg = &self.ctx.config;
        let bytes = crate::store::read_original(&self.ctx.db, &self.ctx.blobs, &job.id)
            .await
            .map_err(|e| ParseError::new("storage", format!("cannot read the original: {e:#}")))?;
        if self.ctx.test_faults
            && bytes
                .windows(26)
                .any(|w| w == b"DOCPIPE-FAULT:worker-panic")
        {
            // Test hook: the worker actor itself dies with the job, which only
            // the Intake's lease can notice.
            panic!("injected worker fault");
        }
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let mut out = if needs_sandbox(&job.mime) {
            let sb = match state.sandbox.as_mut() {
                Some(sb) => sb,
                None => state.sandbox.insert(
                    sandbox::Sandbox::spawn(&self.ctx.parser_command, cfg.max_memory_mb).map_err(
                        |e| {
                            ParseError::new(
                                "parser_unavailable",
                                format!("cannot start a parser process: {e}"),
                            )
                        },
                    )?,
                ),
            };
            let limits = ParseLimits::new(cfg, self.ctx.ocr.config());
            let result = sb.parse(&job.mime, &bytes, &limits, timeout).await;
            if matches!(&result, Err(e) if e.code == "timeout" || e.code == "crashed") {
                // The process is dead or stuck: replace it for the next document.
                state.sandbox = None;
            }
            let mut out = match result {
                Err(e)
                    if job.mime == detect::PDF
                        && matches!(e.code.as_str(), "malformed" | "parser_panic")
                        && self.ctx.ocr.status().pdftotext =>
                {
                    self.second_pdf_reader(&bytes, e, timeout).await?
                }
                other => other?,
            };
            if !out.ocr_pages.is_empty() {
                self.read_scans(&job.mime, &bytes, &mut out).await?;
            }
            out
        } else {
            let mime = job.mime.clone();
            let limits = ParseLimits::new(cfg, self.ctx.ocr.config());
            let task = tokio::task::spawn_blocking(move || parse(&mime, &bytes, &limits));
            match tokio::time::timeout(timeout, task).await {
                Err(_) => {
                    return Err(ParseError::new(
                        "timeout",
                        format!("parsing took longer than {} ms", cfg.timeout_ms),
                    ))
                }
                Ok(Err(join)) => {
                    return Err(ParseError::new(
                        "parser_panic",
                        format!("the parser panicked: {join}"),
                    ))
                }
                Ok(Ok(r)) => r?,
            }
        };
        if truncate_chars(&mut out.text, cfg.max_text_chars) {
            // Recorded, so nobody takes the cut text for the whole.
            let fields = out.fields.get_or_insert_with(|| serde_json::json!({}));
            fields["text_truncated_at_chars"] = serde_json::json!(cfg.max_text_chars);
        }
        out.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(out)
    }
}

impl Extractor {
    /// A PDF the built-in reader could not parse gets a second reader,
    /// poppler's pdftotext, when it is installed. If that fails too, the
    /// first reader's error stands.
    async fn second_pdf_reader(
        &self,
        bytes: &[u8],
        first: ParseError,
        timeout: Duration,
    ) -> Result<Extracted, ParseError> {
        let pages = match self
            .ctx
            .ocr
            .pdf_text(bytes, self.ctx.config.max_pages, timeout)
            .await
        {
            Ok(pages) if pages.iter().any(|p| !p.is_empty()) => pages,
            _ => return Err(first),
        };
        tracing::debug!(error = %first, "the built-in PDF reader failed; pdftotext read the file");
        let mut out = pdf::from_pages(pages);
        out.language = detect_language(&out.text);
        out.fields = Some(serde_json::json!({
            "text_reader": "pdftotext",
            "builtin_reader_error": first.message,
        }));
        Ok(out)
    }

    /// Reads the pages without a text layer (or the image) by OCR and puts
    /// their text in its place. Without OCR the document keeps the text it
    /// has and is flagged `needs_ocr`; so is one whose OCR failed on some
    /// pages (noted in its fields). If every page failed and there is no
    /// text at all, the document fails with the first page's error.
    async fn read_scans(
        &self,
        mime: &str,
        bytes: &[u8],
        out: &mut Extracted,
    ) -> Result<(), ParseError> {
        let ocr = &self.ctx.ocr;
        let mut pages = std::mem::take(&mut out.ocr_pages);
        if !ocr.available() {
            out.needs_ocr = true;
            return Ok(());
        }
        let cfg = ocr.config();
        let fields = out.fields.get_or_insert_with(|| serde_json::json!({}));
        if pages.len() > cfg.max_pages {
            fields["ocr_skipped_pages"] = serde_json::json!(pages.split_off(cfg.max_pages));
        }
        let deadline = Duration::from_millis(cfg.timeout_ms);
        let work = async {
            if mime == detect::PDF {
                ocr.pdf_pages(bytes, &pages).await
            } else {
                Ok(vec![ocr.image(bytes).await])
            }
        };
        let results = tokio::time::timeout(deadline, work).await.map_err(|_| {
            ParseError::new(
                "timeout",
                format!(
                    "OCR of the document took longer than {} ms (pipeline.ocr.timeout_ms)",
                    cfg.timeout_ms
                ),
            )
        })??;
        let mut page_texts: Vec<String> = if mime == detect::PDF {
            let n = out.pages.unwrap_or(0) as usize;
            let mut v: Vec<String> = out
                .text
                .split(pdf::PAGE_BREAK)
                .map(str::to_string)
                .collect();
            v.resize(n.max(v.len()), String::new());
            v
        } else {
            vec![String::new()]
        };
        let mut failed = Vec::new();
        let mut first_error = None;
        let mut reread = Vec::new();
        let mut confidences = Vec::new();
        for (&page, result) in pages.iter().zip(results) {
            match result {
                Ok(read) => {
                    if read.reread {
                        reread.push(page);
                    }
                    confidences.extend(read.confidence);
                    if let Some(slot) = page_texts.get_mut(page as usize - 1) {
                        *slot = read.text;
                    }
                }
                Err(e) => {
                    failed.push(
                        serde_json::json!({"page": page, "code": e.code, "message": e.message}),
                    );
                    first_error.get_or_insert(e);
                }
            }
        }
        let text = page_texts.join(&pdf::PAGE_BREAK.to_string());
        let has_text = text.chars().any(char::is_alphanumeric);
        if let Some(e) = first_error {
            if failed.len() == pages.len() && !has_text {
                return Err(e);
            }
            out.needs_ocr = true;
            fields["ocr_failed_pages"] = serde_json::Value::Array(failed);
        }
        fields["ocr_pages"] = serde_json::json!(pages);
        if !confidences.is_empty() {
            let mean = confidences.iter().sum::<f32>() / confidences.len() as f32;
            fields["ocr_confidence"] = serde_json::json!(mean.round());
        }
        if !reread.is_empty() {
            fields["ocr_reread_pages"] = serde_json::json!(reread);
        }
        out.text = if has_text { text } else { String::new() };
        out.language = detect_language(&out.text);
        Ok(())
    }

    /// Stages the attachments a parser found as uploads of the document's
    /// workspace (blobs written like any upload's, registered by the Catalog
    /// with the parent's stage advance). Too deep, empty or unreadable ones
    /// are noted in the parent's fields instead.
    async fn stage_children(
        &self,
        parent: &DocJob,
        attachments: Vec<crate::model::Attachment>,
        out: &mut Extracted,
    ) -> Result<Vec<crate::model::NewDocument>, ParseError> {
        if attachments.is_empty() {
            return Ok(Vec::new());
        }
        let storage = |e: anyhow::Error| ParseError::new("storage", format!("{e:#}"));
        let max_depth = self.ctx.config.max_attachment_depth;
        let id = parent.id.clone();
        let depth = self
            .ctx
            .db
            .run(move |c| crate::store::meta::attachment_depth(c, &id))
            .await
            .map_err(storage)?;
        let mut skipped = Vec::new();
        let mut children: Vec<crate::model::NewDocument> = Vec::new();
        if depth >= max_depth {
            skipped.push(serde_json::json!({
                "files": attachments.iter().map(|a| a.filename.clone()).collect::<Vec<_>>(),
                "reason": format!("attachments {max_depth} levels deep are not unpacked (pipeline.extract.max_attachment_depth)"),
            }));
        } else {
            for a in attachments {
                let filename = crate::model::clean_filename(&a.filename);
                let head = &a.bytes[..a.bytes.len().min(crate::store::blobs::HEAD_BYTES)];
                let mime = match detect::sniff(head, &filename) {
                    detect::Sniffed::Supported(m) => m,
                    detect::Sniffed::Empty => continue,
                    detect::Sniffed::Unsupported(t) => {
                        skipped.push(serde_json::json!({"files": [filename], "reason": format!("{t} is not a format docpipe reads")}));
                        continue;
                    }
                };
                let id = uuid::Uuid::now_v7().simple().to_string();
                let mut up = self.ctx.blobs.begin(&id);
                let written = match up.write(&a.bytes).await {
                    Ok(()) => up.finish().await,
                    Err(e) => {
                        up.abort().await;
                        Err(e)
                    }
                };
                let staged = match written {
                    Ok(staged) => staged,
                    Err(e) => {
                        // Nothing of this document's attachments is kept:
                        // the attempt is retried whole.
                        for c in children.iter().filter(|c| c.inline.is_none()) {
                            self.ctx.blobs.discard(&c.id).await;
                        }
                        return Err(storage(e));
                    }
                };
                children.push(crate::model::NewDocument {
                    id,
                    workspace: parent.workspace.clone(),
                    filename,
                    title: None,
                    mime: mime.to_string(),
                    size: staged.size,
                    sha256: staged.sha256,
                    inline: staged.inline,
                    extra: crate::model::UploadExtras {
                        parent: Some(parent.id.clone()),
                        ..Default::default()
                    },
                });
            }
        }
        if !skipped.is_empty() {
            let fields = out.fields.get_or_insert_with(|| serde_json::json!({}));
            fields["attachments_not_unpacked"] = serde_json::Value::Array(skipped);
        }
        Ok(children)
    }
}

/// The ISO 639-3 code of the text's language, when whatlang is confident.
/// It runs on every document, so it is kept cheap: the first 500 characters
/// (a language shows in far fewer) against the languages people file
/// documents in most. Measured on 2 KB of English: all 69 languages and the
/// whole text 59 µs a call, this 20–25 µs; under the load bench the whole
/// text cost ~0.2 ms of CPU per document.
fn detect_language(text: &str) -> Option<String> {
    use std::sync::LazyLock;
    use whatlang::Lang::*;
    static DETECTOR: LazyLock<whatlang::Detector> = LazyLock::new(|| {
        whatlang::Detector::with_allowlist(vec![
            Eng, Deu, Fra, Spa, Ita, Por, Nld, Swe, Dan, Nob, Fin, Pol, Ces, Slk, Hun, Ron, Tur,
            Rus, Ukr, Ell, Ara, Heb, Hin, Cmn, Jpn, Kor,
        ])
    });
    let sample: String = text.chars().take(500).collect();
    let info = DETECTOR.detect(&sample)?;
    info.is_reliable().then(|| info.lang().code().to_string())
}

impl Worker for Extractor {
    type Key = ();
    type Message = DocJob;
    type Arguments = ();
    type State = ExtractorState;

    async fn pre_start(
        &self,
        _wid: WorkerId,
        _factory: &ActorRef<FactoryMessage<(), DocJob>>,
        _args: (),
    ) -> Result<ExtractorState, ActorProcessingErr> {
        Ok(ExtractorState { sandbox: None })
    }

    async fn handle(
        &self,
        _wid: WorkerId,
        _factory: &ActorRef<FactoryMessage<(), DocJob>>,
        job: Job<(), DocJob>,
        state: &mut ExtractorState,
    ) -> Result<(), ActorProcessingErr> {
        let doc = job.msg;
        crate::intake::started(&self.ctx.routes, &doc);
        let counters = &self.ctx.counters.extract;
        let result = async {
            let _timer = counters.start_job();
            let mut out = self.extract(&doc, state).await?;
            let attachments = std::mem::take(&mut out.attachments);
            let children = self.stage_children(&doc, attachments, &mut out).await?;
            Ok::<_, ParseError>((out, children))
        }
        .await;
        let routes = current_routes(&self.ctx.routes)?;
        match result {
            Ok((out, children)) => {
                counters.num_processed.fetch_add(1, Relaxed);
                tell(
                    &routes.catalog,
                    CatalogMsg::Extracted {
                        job: doc,
                        out,
                        children,
                    },
                    "catalog",
                );
            }
            Err(e) => {
                counters.num_failed.fetch_add(1, Relaxed);
                tracing::info!(doc_id = %doc.id, request_id = doc.request_id.as_deref().unwrap_or("-"), stage = "extract", code = %e.code, error = %e.message, "extraction failed");
                let retryable = e.is_retryable();
                let failed = SchedulerMsg::Failed {
                    job: Box::new(doc),
                    error: e.into_info(),
                    retryable,
                };
                tell(&routes.scheduler, failed, "scheduler");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_respects_char_boundaries() {
        let mut s = "äöü".to_string();
        assert!(truncate_chars(&mut s, 2));
        assert_eq!(s, "äö");
        assert!(!truncate_chars(&mut s, 5));
    }

    #[test]
    fn parse_rejects_unknown_types_and_broken_pdfs() {
        let l = ParseLimits::default();
        assert_eq!(
            parse("image/gif", b"x", &l).unwrap_err().code,
            "unsupported"
        );
        let e = parse(detect::PDF, b"%PDF-1.4\n garbage", &l).unwrap_err();
        assert_eq!(e.code, "malformed");
        assert!(!e.is_retryable());
    }
}
