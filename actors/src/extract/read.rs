//! What an Extract worker does with a document: read its original, parse
//! it (in-process or in the parser process), fall back to pdftotext, read
//! scanned pages by OCR, and stage the attachments found in it.

use std::time::Duration;

use super::parse::{detect_language, parse, truncate_chars, ParseError, ParseLimits};
use super::{detect, pdf, sandbox, ExtractCtx, ExtractorState};
use crate::errors::Code;
use crate::model::{Attachment, DocJob, Extracted, NewDocument, UploadExtras};
use crate::routes::StageOutput;
use crate::store::documents::get_inline_original;

/// In-process documents up to this size are parsed and typed on the
/// worker's own thread (well under a millisecond); larger ones on the
/// blocking pool.
const WORK_IN_PLACE_MAX_BYTES: usize = 16 * 1024;

fn storage_error(e: anyhow::Error) -> ParseError {
    if let Some(t) = e.downcast_ref::<crate::store::TooLargeToRead>() {
        return ParseError::new(Code::TooLarge, t.to_string());
    }
    if let Some(u) = e.downcast_ref::<crate::store::blobs::StoreUnavailable>() {
        return ParseError::new(Code::StorageUnavailable, u.to_string());
    }
    ParseError::new(Code::Storage, format!("cannot read the original: {e:#}"))
}

/// Cuts the text at `max_chars`, and records the cut, so nobody takes the
/// cut text for the whole.
fn cut(out: &mut Extracted, max_chars: usize) {
    if truncate_chars(&mut out.text, max_chars) {
        let fields = out.fields.get_or_insert_with(|| serde_json::json!({}));
        fields["text_truncated_at_chars"] = serde_json::json!(max_chars);
    }
}

impl ExtractCtx {
    /// Reads a stored original of an untrusted format into text in the
    /// parser process (with pdftotext as the second PDF reader), then OCR
    /// for the pages without text, then the cut to `max_text_chars`.
    /// Formats parsed in-process go through [`ExtractCtx::read_in_process`].
    pub(super) async fn read_in_sandbox(
        &self,
        job: &DocJob,
        state: &mut ExtractorState,
    ) -> Result<Extracted, ParseError> {
        let started = std::time::Instant::now();
        let cfg = &self.config;
        crate::store::check_readable(&self.blobs, &job.id, cfg.max_read_mb)
            .await
            .map_err(storage_error)?;
        let bytes = crate::store::read_original(&self.db, &self.blobs, &job.id)
            .await
            .map_err(storage_error)?;
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let mut out = {
            let mut limits = ParseLimits::new(cfg, self.ocr.config());
            // With poppler's pdftotext to fall back on (it reads a 1,000-page
            // manual in ~35 MB), the built-in PDF reader gets less memory.
            let small_pdf_budget = job.mime == detect::PDF
                && self.ocr.status().pdftotext
                && cfg.pdf_memory_mb < cfg.max_memory_mb;
            if small_pdf_budget {
                limits.memory_mb = cfg.pdf_memory_mb;
            }
            let result = self.in_sandbox(state, &job.mime, &bytes, &limits).await;
            let mut out = match result {
                Err(e)
                    if job.mime == detect::PDF
                        && self.ocr.status().pdftotext
                        && (matches!(e.code, Code::Malformed | Code::ParserPanic)
                            || (small_pdf_budget && e.code == Code::Crashed)) =>
                {
                    let out_of_budget = e.code == Code::Crashed;
                    match self.second_pdf_reader(&bytes, e, timeout).await {
                        // Neither fitted the smaller budget nor did pdftotext
                        // read it: the built-in reader tries again with the
                        // whole of it, and its answer stands (a PDF of too
                        // many pages still fails `too_large`).
                        Err(_) if out_of_budget => {
                            limits.memory_mb = cfg.max_memory_mb;
                            self.in_sandbox(state, &job.mime, &bytes, &limits).await?
                        }
                        other => other?,
                    }
                }
                other => other?,
            };
            if !out.ocr_pages.is_empty() {
                self.read_scans(&job.mime, &bytes, &mut out).await?;
            }
            out
        };
        cut(&mut out, cfg.max_text_chars);
        out.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(out)
    }

    /// Parses in this worker's parser process (started, or replaced when it
    /// may be exiting). A process that died or hangs, or that a document
    /// left large, is replaced for the next document.
    async fn in_sandbox(
        &self,
        state: &mut ExtractorState,
        mime: &str,
        bytes: &[u8],
        limits: &ParseLimits,
    ) -> Result<Extracted, ParseError> {
        let cfg = &self.config;
        if state.sandbox.as_ref().is_some_and(|sb| sb.is_stale()) {
            state.sandbox = None;
        }
        let sb = match state.sandbox.as_mut() {
            Some(sb) => sb,
            None => state.sandbox.insert(
                sandbox::Sandbox::spawn(
                    &self.parser_command,
                    cfg.max_memory_mb,
                    Duration::from_millis(cfg.parser_idle_exit_ms),
                )
                .map_err(|e| {
                    ParseError::new(
                        Code::ParserUnavailable,
                        format!("cannot start a parser process: {e}"),
                    )
                })?,
            ),
        };
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let result = sb.parse(mime, bytes, limits, timeout).await;
        if matches!(&result, Err(e) if matches!(e.code, Code::Timeout | Code::Crashed))
            || sb.rss_mb() > cfg.recycle_parser_above_mb
        {
            state.sandbox = None;
        }
        result
    }

    /// Reads a document of a format parsed in-process (text, Markdown,
    /// HTML, CSV) and runs the cheap stages on it: on this thread when its
    /// original is inline in SQLite and small, else in one blocking task.
    pub(super) async fn read_in_process(
        &self,
        job: &DocJob,
    ) -> Result<(Extracted, Vec<StageOutput>), ParseError> {
        let started = std::time::Instant::now();
        let cfg = &self.config;
        let limits = ParseLimits::new(cfg, self.ocr.config());
        let (analyzer, job2) = (self.analyzer.clone(), job.clone());
        let max_chars = cfg.max_text_chars;
        let work = move |bytes: &[u8]| -> Result<(Extracted, Vec<StageOutput>), ParseError> {
            let mut out = parse(&job2.mime, bytes, &limits)?;
            cut(&mut out, max_chars);
            let cheap = analyzer.cheap_stages(&job2, &out);
            Ok((out, cheap))
        };
        // An inline original is one indexed read, quick enough for this
        // thread; so is the work on a small one, which then costs no hop
        // to the blocking pool at all (a panic is still contained).
        let inline = self
            .db
            .with(|c| get_inline_original(c, &job.id))
            .map_err(storage_error)?;
        let (mut out, cheap) = match inline {
            Some(bytes) if bytes.len() <= WORK_IN_PLACE_MAX_BYTES => {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&bytes)))
                    .map_err(|_| ParseError::new(Code::ParserPanic, "the parser panicked"))??
            }
            Some(bytes) => self.in_blocking_task(move || work(&bytes)).await??,
            None => {
                crate::store::check_readable(&self.blobs, &job.id, cfg.max_read_mb)
                    .await
                    .map_err(storage_error)?;
                let bytes = self.blobs.get(&job.id).await.map_err(storage_error)?;
                self.in_blocking_task(move || work(&bytes)).await??
            }
        };
        out.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok((out, cheap))
    }

    /// Runs `f` on the blocking pool within the parse time limit.
    async fn in_blocking_task<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ParseError> {
        let limit_ms = self.config.timeout_ms;
        match tokio::time::timeout(
            Duration::from_millis(limit_ms),
            tokio::task::spawn_blocking(f),
        )
        .await
        {
            Err(_) => Err(ParseError::new(
                Code::Timeout,
                format!("parsing took longer than {limit_ms} ms"),
            )),
            Ok(Err(join)) => Err(ParseError::new(
                Code::ParserPanic,
                format!("the parser panicked: {join}"),
            )),
            Ok(Ok(r)) => Ok(r),
        }
    }
    /// A PDF the built-in reader could not parse gets a second reader,
    /// poppler's pdftotext, when it is installed. If that fails too, the
    /// first reader's error stands.
    pub(super) async fn second_pdf_reader(
        &self,
        bytes: &[u8],
        first: ParseError,
        timeout: Duration,
    ) -> Result<Extracted, ParseError> {
        let pages = match self
            .ocr
            .pdf_text(bytes, self.config.max_pages, timeout)
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
    pub(super) async fn read_scans(
        &self,
        mime: &str,
        bytes: &[u8],
        out: &mut Extracted,
    ) -> Result<(), ParseError> {
        let ocr = &self.ocr;
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
                Code::Timeout,
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
        // A short document's pages laid out (for the field rules): the text
        // layer's layout where the parser made one, OCR's rows elsewhere.
        let mut page_layouts: Option<Vec<String>> =
            (page_texts.len() <= pdf::LAYOUT_PAGES).then(|| match &out.layout {
                Some(l) => l.split(pdf::PAGE_BREAK).map(str::to_string).collect(),
                None => page_texts.clone(),
            });
        let mut failed = Vec::new();
        let mut first_error = None;
        let mut reread = Vec::new();
        let mut confidences = Vec::new();
        let mut noise = Vec::new();
        let floor = cfg.review_below_confidence as f32;
        for (&page, result) in pages.iter().zip(results) {
            match result {
                Ok(read) => {
                    if read.reread {
                        reread.push(page);
                    }
                    confidences.extend(read.confidence);
                    // Too unsure to be text: left for a person, not indexed.
                    if read.confidence.is_some_and(|c| c < floor) {
                        noise.push(page);
                        continue;
                    }
                    let slot = page as usize - 1;
                    if let Some(l) = page_layouts.as_mut().and_then(|l| l.get_mut(slot)) {
                        *l = read.layout;
                    }
                    if let Some(t) = page_texts.get_mut(slot) {
                        *t = read.text;
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
        if !noise.is_empty() {
            fields["ocr_low_confidence_pages"] = serde_json::json!(noise);
        }
        out.text = if has_text { text } else { String::new() };
        out.layout = page_layouts
            .map(|l| l.join(&pdf::PAGE_BREAK.to_string()))
            .filter(|l| has_text && l.chars().any(char::is_alphanumeric));
        out.language = detect_language(&out.text);
        Ok(())
    }

    /// Stages the attachments a parser found as uploads of the document's
    /// workspace (blobs written like any upload's, registered by the Catalog
    /// with the parent's stage advance). Too deep, empty or unreadable ones
    /// are noted in the parent's fields instead.
    pub(super) async fn stage_children(
        &self,
        parent: &DocJob,
        attachments: Vec<Attachment>,
        out: &mut Extracted,
    ) -> Result<Vec<NewDocument>, ParseError> {
        if attachments.is_empty() {
            return Ok(Vec::new());
        }
        let storage = |e: anyhow::Error| ParseError::new(Code::Storage, format!("{e:#}"));
        let max_depth = self.config.max_attachment_depth;
        let id = parent.id.clone();
        let depth = self
            .db
            .run(move |c| crate::store::links::attachment_depth(c, &id))
            .await
            .map_err(storage)?;
        let mut skipped = Vec::new();
        let mut children: Vec<NewDocument> = Vec::new();
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
                let mut up = self.blobs.begin(&id);
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
                            self.blobs.discard(&c.id).await;
                        }
                        return Err(storage(e));
                    }
                };
                children.push(NewDocument {
                    id,
                    workspace: parent.workspace.clone(),
                    filename,
                    title: None,
                    mime: mime.to_string(),
                    size: staged.size,
                    sha256: staged.sha256,
                    inline: staged.inline,
                    extra: UploadExtras {
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
