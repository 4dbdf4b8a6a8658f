//! OCR: tesseract for the recognition, pdftoppm to render PDF pages, both as
//! child processes of their own. Each runs on one thread (`OMP_THREAD_LIMIT=1`:
//! tesseract's own threads make it several times slower on a busy 2-core
//! machine) under an address-space limit and a per-page time limit, and is
//! killed when the page runs out of time. A semaphore shared by every Extract
//! worker bounds the processes at once (`pipeline.ocr.workers`); the pages of
//! one document spread over it.
//!
//! A page is read by tesseract's LSTM engine; when its mean word confidence
//! is below `reread_below_confidence` and the language data also holds the
//! legacy engine, the page is read again by that one, 1.5 times larger, and
//! the more confident reading is kept (the LSTM engine turns faint dot
//! leaders and the small print beside them into letters; the legacy one
//! does not, and reads small print at scan resolution better larger). The words are laid out in rows
//! by their boxes (see [`Page::from_tsv`]).
//!
//! Whether OCR is available is probed once at start (shown in
//! `/api/v1/status`); without it, documents that need it are flagged
//! `needs_ocr` and can be read again later.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::sync::Semaphore;

use crate::config::OcrConfig;
use crate::errors::Code;
use crate::extract::{layout, ParseError};

/// What the probe at start found.
#[derive(Clone, Debug, Serialize)]
pub struct OcrStatus {
    pub available: bool,
    /// Why OCR is not available (switched off, a program missing, a
    /// language not installed).
    pub reason: Option<String>,
    /// The tesseract version, e.g. "5.3.0".
    pub tesseract: Option<String>,
    /// The languages configured (all installed when available).
    pub languages: Vec<String>,
    pub workers: usize,
    /// The language data holds tesseract's legacy engine too, so pages read
    /// with low confidence are read a second time.
    pub legacy_engine: bool,
    /// Poppler's pdftotext is there to read the PDFs the built-in reader
    /// cannot.
    pub pdftotext: bool,
}

/// One page read by OCR.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    /// The words in rows as the page prints them, one space apart.
    pub text: String,
    /// The same rows with each word at its column (see [`layout`]), for
    /// the field rules.
    pub layout: String,
    /// Mean confidence (0–100) of its words; None when there are none.
    pub confidence: Option<f32>,
    /// The legacy engine's second reading was kept.
    pub reread: bool,
}

impl Page {
    /// The text and mean word confidence from tesseract's TSV output (one
    /// row per page, block, paragraph, line and word; words are level 5,
    /// with their boxes).
    ///
    /// The words are laid out by their boxes, not in the order tesseract
    /// lists its blocks: that order follows how it cut the page into
    /// blocks, which on a table or a form changes from one scan to the next
    /// (a column of labels, then the column of their values, or the other
    /// way round); rows as printed keep a label beside its value and read
    /// the same on every scan. Each word sits on its tesseract line's
    /// baseline (the median bottom of its words), so the cells of one row
    /// that tesseract put in different blocks share a row.
    pub fn from_tsv(tsv: &str) -> Page {
        struct Read<'a> {
            line: (&'a str, &'a str, &'a str),
            x: f64,
            bottom: f64,
            width: f64,
            height: f64,
            text: &'a str,
        }
        let (mut sum, mut counted) = (0.0f64, 0u32);
        let mut read = Vec::new();
        for row in tsv.lines().skip(1) {
            let cols: Vec<&str> = row.split('\t').collect();
            if cols.len() < 12 || cols[0] != "5" {
                continue;
            }
            let text = cols[11].trim();
            if text.is_empty() {
                continue;
            }
            let num = |i: usize| cols[i].parse::<f64>().unwrap_or(0.0);
            read.push(Read {
                line: (cols[2], cols[3], cols[4]),
                x: num(6),
                bottom: num(7) + num(9),
                width: num(8),
                height: num(9),
                text,
            });
            if let Ok(c) = cols[10].parse::<f64>() {
                if c >= 0.0 {
                    sum += c;
                    counted += 1;
                }
            }
        }
        // Each tesseract line's baseline and size: the median bottom and
        // height of its words (a descender or a tall capital moves neither).
        let mut lines: std::collections::HashMap<_, (Vec<f64>, Vec<f64>)> = Default::default();
        for w in &read {
            let (bottoms, heights) = lines.entry(w.line).or_default();
            bottoms.push(w.bottom);
            heights.push(w.height);
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let lines: std::collections::HashMap<_, (f64, f64)> = lines
            .into_iter()
            .map(|(k, (mut b, mut h))| (k, (median(&mut b), median(&mut h))))
            .collect();
        let mut phrases = std::collections::HashMap::new();
        let words = read
            .iter()
            .map(|w| {
                let (y, size) = lines[&w.line];
                let next = phrases.len();
                layout::Word {
                    x0: w.x,
                    x1: w.x + w.width,
                    y,
                    size: size.max(1.0),
                    text: w.text.to_string(),
                    phrase: Some(*phrases.entry(w.line).or_insert(next)),
                }
            })
            .collect();
        let layout = layout::render_words(words);
        let text = layout
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join("\n");
        Page {
            text,
            layout,
            confidence: (counted > 0).then(|| (sum / counted as f64) as f32),
            reread: false,
        }
    }
}

pub struct Ocr {
    cfg: OcrConfig,
    status: OcrStatus,
    permits: Arc<Semaphore>,
    scratch: PathBuf,
}

impl Ocr {
    /// Probes the programs and languages; `scratch` holds the temporary
    /// copies of PDFs that pdftoppm renders from.
    pub async fn probe(cfg: &OcrConfig, scratch: PathBuf) -> Ocr {
        let languages: Vec<String> = cfg.languages.split('+').map(str::to_string).collect();
        let mut status = OcrStatus {
            available: false,
            reason: None,
            tesseract: None,
            languages: languages.clone(),
            workers: cfg.workers,
            legacy_engine: false,
            pdftotext: probe_output(&cfg.pdftotext, &["-v"]).await.is_ok(),
        };
        let found = async {
            if !cfg.enabled {
                return Err("switched off (pipeline.ocr.enabled = false)".to_string());
            }
            let version = probe_output(&cfg.tesseract, &["--version"]).await?;
            status.tesseract = version
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .map(str::to_string);
            let mut list = tessdata_args(cfg);
            list.push("--list-langs");
            let listed = probe_output(&cfg.tesseract, &list).await?;
            let installed: Vec<&str> = listed.lines().skip(1).map(str::trim).collect();
            let missing: Vec<&String> = languages
                .iter()
                .filter(|l| !installed.contains(&l.as_str()))
                .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "tesseract has no data for {missing:?} (installed: {installed:?}); \
                     install e.g. the Debian package tesseract-ocr-<lang>"
                ));
            }
            probe_output(&cfg.pdftoppm, &["-v"]).await?;
            status.legacy_engine = cfg.reread_below_confidence > 0 && legacy_engine(cfg).await;
            Ok(())
        }
        .await;
        match found {
            Ok(()) => status.available = true,
            Err(reason) => {
                tracing::warn!(%reason, "OCR is not available: scans are indexed without their text and flagged needs_ocr");
                status.reason = Some(reason);
            }
        }
        Ocr {
            permits: Arc::new(Semaphore::new(cfg.workers.max(1))),
            cfg: cfg.clone(),
            status,
            scratch,
        }
    }

    pub fn status(&self) -> &OcrStatus {
        &self.status
    }

    pub fn available(&self) -> bool {
        self.status.available
    }

    pub fn config(&self) -> &OcrConfig {
        &self.cfg
    }

    /// The text of an image (PNG, JPEG, TIFF; every page of a TIFF).
    pub async fn image(&self, bytes: &[u8]) -> Result<Page, ParseError> {
        let _permit = self.permits.acquire().await.map_err(closed)?;
        let deadline = Duration::from_millis(self.cfg.page_timeout_ms);
        tokio::time::timeout(deadline, self.recognise(bytes))
            .await
            .map_err(|_| self.page_timeout())?
    }

    /// The text of the given pages (from 1) of a PDF, page by page: each
    /// page's own result, so one page failing costs only its text.
    pub async fn pdf_pages(
        &self,
        pdf: &[u8],
        pages: &[u32],
    ) -> Result<Vec<Result<Page, ParseError>>, ParseError> {
        let file = self.scratch_copy(pdf).await?;
        let path = file.path().to_path_buf();
        let jobs = pages.iter().map(|&page| {
            let path = &path;
            async move {
                let _permit = self.permits.acquire().await.map_err(closed)?;
                let deadline = Duration::from_millis(self.cfg.page_timeout_ms);
                tokio::time::timeout(deadline, async {
                    let image = self.render(path, page).await?;
                    self.recognise(&image).await
                })
                .await
                .map_err(|_| self.page_timeout())?
            }
        });
        let results = futures::future::join_all(jobs).await;
        drop(file);
        Ok(results)
    }

    /// The text of a PDF by poppler's pdftotext, page by page (at most
    /// `max_pages`), within `deadline`.
    pub async fn pdf_text(
        &self,
        pdf: &[u8],
        max_pages: usize,
        deadline: Duration,
    ) -> Result<Vec<String>, ParseError> {
        let file = self.scratch_copy(pdf).await?;
        let mut cmd = self.command(&self.cfg.pdftotext);
        cmd.args(["-q", "-enc", "UTF-8", "-l", &max_pages.to_string()])
            .arg(file.path())
            .arg("-");
        let out = tokio::time::timeout(deadline, run(cmd, None))
            .await
            .map_err(|_| {
                ParseError::new(
                    Code::Timeout,
                    format!("pdftotext took longer than {} ms", deadline.as_millis()),
                )
            })??;
        let text = String::from_utf8_lossy(&out);
        // pdftotext ends every page with a form feed.
        let mut pages: Vec<String> = text.split('\u{c}').map(|p| p.trim().to_string()).collect();
        if pages.len() > 1 {
            pages.pop();
        }
        Ok(pages)
    }

    /// One PDF page as a grey PGM image, scaled to fit `max_page_pixels`.
    async fn render(&self, pdf: &Path, page: u32) -> Result<Vec<u8>, ParseError> {
        let page = page.to_string();
        let scale = self.cfg.max_page_pixels.to_string();
        let args = [
            "-f",
            page.as_str(),
            "-l",
            page.as_str(),
            "-scale-to",
            scale.as_str(),
            "-gray",
        ];
        let mut cmd = self.command(&self.cfg.pdftoppm);
        cmd.args(args).arg(pdf);
        let out = run(cmd, None).await?;
        if out.is_empty() {
            return Err(ParseError::new(
                Code::OcrFailed,
                format!("pdftoppm rendered nothing for page {page}"),
            ));
        }
        Ok(out)
    }

    /// tesseract over an image given on its stdin: the LSTM engine, then the
    /// legacy one when the first reading is not confident enough.
    async fn recognise(&self, image: &[u8]) -> Result<Page, ParseError> {
        let first = self.tesseract(image, "1").await?;
        let threshold = self.cfg.reread_below_confidence as f32;
        match first.confidence {
            Some(c) if c < threshold && self.status.legacy_engine => {
                // The legacy engine reads faint dot leaders and small print
                // at scan resolution better at 1.5 times the size (a table
                // of contents at 200 dpi: 0.64 of its text as it is, 0.99
                // larger).
                let larger = upscaled(image).await;
                let second = self
                    .tesseract(larger.as_deref().unwrap_or(image), "0")
                    .await?;
                if second.confidence.unwrap_or(0.0) > c {
                    return Ok(Page {
                        reread: true,
                        ..second
                    });
                }
                Ok(first)
            }
            _ => Ok(first),
        }
    }

    /// One tesseract run with the given engine (`--oem`), its words and
    /// their confidences as TSV.
    async fn tesseract(&self, image: &[u8], engine: &str) -> Result<Page, ParseError> {
        let mut cmd = self.command(&self.cfg.tesseract);
        cmd.args(tessdata_args(&self.cfg)).args([
            "--oem",
            engine,
            "-l",
            &self.cfg.languages,
            "--psm",
            "3",
            "-c",
            "tessedit_create_tsv=1",
            "stdin",
            "stdout",
        ]);
        let out = run(cmd, Some(image)).await?;
        Ok(Page::from_tsv(&String::from_utf8_lossy(&out)))
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("OMP_THREAD_LIMIT", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let bytes = self.cfg.max_memory_mb.saturating_mul(1024 * 1024) as libc::rlim_t;
        // SAFETY: only setrlimit between fork and exec (async-signal-safe).
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: bytes,
                    rlim_max: bytes,
                };
                libc::setrlimit(libc::RLIMIT_AS, &lim);
                Ok(())
            });
        }
        cmd
    }

    /// The bytes in a temporary file of the scratch directory (removed when
    /// the handle drops, and at the next start after a crash).
    async fn scratch_copy(&self, bytes: &[u8]) -> Result<tempfile::NamedTempFile, ParseError> {
        let storage = |e: std::io::Error| {
            ParseError::new(Code::Storage, format!("cannot write a scratch copy: {e}"))
        };
        tokio::fs::create_dir_all(&self.scratch)
            .await
            .map_err(storage)?;
        let file = tempfile::Builder::new()
            .prefix("ocr-")
            .suffix(".pdf")
            .tempfile_in(&self.scratch)
            .map_err(storage)?;
        tokio::fs::write(file.path(), bytes)
            .await
            .map_err(storage)?;
        Ok(file)
    }

    fn page_timeout(&self) -> ParseError {
        ParseError::new(
            Code::Timeout,
            format!(
                "OCR of a page took longer than {} ms (pipeline.ocr.page_timeout_ms)",
                self.cfg.page_timeout_ms
            ),
        )
    }
}

fn closed(_: tokio::sync::AcquireError) -> ParseError {
    ParseError::new(Code::Internal, "the OCR pool is closed")
}

/// Runs a prepared command, feeding `input` on its stdin, and returns its
/// stdout; a failure carries the end of its stderr. Dropping the future
/// kills the process.
async fn run(mut cmd: Command, input: Option<&[u8]>) -> Result<Vec<u8>, ParseError> {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    let mut child = cmd.spawn().map_err(|e| {
        ParseError::new(Code::OcrUnavailable, format!("cannot start {program}: {e}"))
    })?;
    let stdin = child.stdin.take();
    let feed = async move {
        if let (Some(mut stdin), Some(input)) = (stdin, input) {
            // A program that stops reading early closes the pipe: its exit
            // status tells what happened.
            let _ = stdin.write_all(input).await;
        }
    };
    let (_, out) = tokio::join!(feed, child.wait_with_output());
    let out = out.map_err(|e| ParseError::new(Code::OcrFailed, format!("{program}: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: String = stderr
            .lines()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join(" / ");
        return Err(ParseError::new(
            Code::OcrFailed,
            format!("{program} failed ({}): {tail}", out.status),
        ));
    }
    Ok(out.stdout)
}

/// The output (stdout, else stderr) of a short probing command.
async fn probe_output(program: &str, args: &[&str]) -> Result<String, String> {
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| format!("{program} {} did not answer", args.join(" ")))?
    .map_err(|e| {
        format!("{program} cannot be started ({e}); install tesseract-ocr and poppler-utils")
    })?;
    if !out.status.success() {
        return Err(format!(
            "{program} {} failed ({})",
            args.join(" "),
            out.status
        ));
    }
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    Ok(String::from_utf8_lossy(&text).into_owned())
}

/// `--tessdata-dir DIR` when one is configured.
fn tessdata_args(cfg: &OcrConfig) -> Vec<&str> {
    if cfg.tessdata_dir.is_empty() {
        Vec::new()
    } else {
        vec!["--tessdata-dir", cfg.tessdata_dir.as_str()]
    }
}

/// Whether the language data holds the legacy engine: tesseract refuses to
/// start `--oem 0` without it. Tried on an 8×8 white image.
async fn legacy_engine(cfg: &OcrConfig) -> bool {
    let mut image = b"P5\n8 8\n255\n".to_vec();
    image.extend([255u8; 64]);
    let mut cmd = Command::new(&cfg.tesseract);
    cmd.args(tessdata_args(cfg))
        .args(["--oem", "0", "-l", &cfg.languages, "stdin", "stdout"])
        .env("OMP_THREAD_LIMIT", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    matches!(
        tokio::time::timeout(Duration::from_secs(10), run(cmd, Some(&image))).await,
        Ok(Ok(_))
    )
}

/// The page 1.5 times larger, as a grey PGM, for the second reading; None
/// when it is large already (its longer side 3,000 pixels or more: 300 dpi) or cannot
/// be decoded. Decoded in the blocking pool, within a bounded allocation.
async fn upscaled(image: &[u8]) -> Option<Vec<u8>> {
    const LONGEST: u32 = 3000;
    let image = image.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut reader = image::ImageReader::new(std::io::Cursor::new(image))
            .with_guessed_format()
            .ok()?;
        let mut limits = image::Limits::default();
        limits.max_alloc = Some(256 * 1024 * 1024);
        reader.limits(limits);
        let grey = reader.decode().ok()?.into_luma8();
        let (w, h) = grey.dimensions();
        if w.max(h) >= LONGEST || w == 0 || h == 0 {
            return None;
        }
        let (w2, h2) = (w * 3 / 2, h * 3 / 2);
        let larger = image::imageops::resize(&grey, w2, h2, image::imageops::FilterType::Triangle);
        let mut pgm = format!("P5\n{w2} {h2}\n255\n").into_bytes();
        pgm.extend_from_slice(larger.as_raw());
        Some(pgm)
    })
    .await
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::Page;

    /// A TSV word row: (block, line, word), (left, top, width), conf, text
    /// (30 px high).
    fn w(
        (block, line, n): (u32, u32, u32),
        (left, top, width): (u32, u32, u32),
        conf: i32,
        text: &str,
    ) -> String {
        format!("5\t1\t{block}\t1\t{line}\t{n}\t{left}\t{top}\t{width}\t30\t{conf}\t{text}\n")
    }

    const HEAD: &str = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
                        1\t1\t0\t0\t0\t0\t0\t0\t2000\t3000\t-1\t\n";

    #[test]
    fn tsv_becomes_rows_and_paragraphs_with_their_mean_confidence() {
        let tsv = [
            HEAD.to_string(),
            w((1, 1, 1), (100, 100, 75), 90, "Total"),
            // A wide gap inside one of tesseract's lines stays a space.
            w((1, 1, 2), (230, 100, 45), 80, "due"),
            w((1, 2, 1), (100, 150, 75), 70, "12.00"),
            w((2, 1, 1), (100, 300, 90), 60, "Thanks"),
            w((2, 1, 2), (200, 300, 10), -1, " "),
        ]
        .concat();
        let page = Page::from_tsv(&tsv);
        assert_eq!(page.text, "Total due\n12.00\n\nThanks");
        assert!(page.layout.starts_with("Total due\n"), "{}", page.layout);
        assert_eq!(page.confidence, Some(75.0));
        assert_eq!(Page::from_tsv("level\n").confidence, None);
    }

    #[test]
    fn a_table_read_column_by_column_comes_out_in_rows() {
        // tesseract's blocks: the amounts column first, then the labels.
        let tsv = [
            HEAD.to_string(),
            w((1, 1, 1), (1500, 402, 75), 90, "$4.11"),
            w((1, 2, 1), (1500, 452, 75), 90, "$0.00"),
            w((2, 1, 1), (100, 400, 105), 90, "Charges"),
            w((2, 2, 1), (100, 450, 105), 90, "Credits"),
        ]
        .concat();
        let page = Page::from_tsv(&tsv);
        assert_eq!(page.text, "Charges $4.11\nCredits $0.00");
        let rows: Vec<&str> = page.layout.lines().collect();
        assert_eq!(rows[0].find('$'), rows[1].find('$'), "{}", page.layout);
        assert!(rows[0].find('$').unwrap() > 20, "{}", page.layout);
    }
}
