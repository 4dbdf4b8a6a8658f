//! The built-in embedder: a static table, one vector per vocabulary token,
//! distilled from all-MiniLM-L6-v2 (see `distill`). A text's vector is the
//! mean of its tokens' rows, normalised: no transformer runs at ingest.
//!
//! File layout (`*.dpemb`): the magic `DPEMB001`, a little-endian `u32`
//! length and that many bytes of JSON ([`TableHeader`]: name, dimensions,
//! the vocabulary), then one row per token: an `f32` scale and `dims`
//! signed bytes (the row is `scale * byte`).

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::wordpiece::WordPiece;

const MAGIC: &[u8; 8] = b"DPEMB001";

#[derive(Serialize, Deserialize)]
pub struct TableHeader {
    /// What it was distilled from, e.g. `all-MiniLM-L6-v2`.
    pub name: String,
    pub dims: usize,
    pub vocab: Vec<String>,
    /// The SHA-256 of the weights it was distilled from.
    pub source_sha256: String,
}

pub struct StaticTable {
    pub name: String,
    /// Names this table's vectors apart from any other's: vectors made by
    /// another table (or another embedder) are not compared with these.
    pub id: String,
    pub dims: usize,
    scales: Vec<f32>,
    rows: Vec<i8>,
    tokens: WordPiece,
    /// Tokens that carry no meaning of their own ([CLS], [SEP], [PAD]).
    skip: [u32; 3],
}

impl StaticTable {
    pub fn load(path: &Path) -> anyhow::Result<StaticTable> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read the embedding table {}", path.display()))?;
        Self::parse(&bytes).with_context(|| format!("{} is not an embedding table", path.display()))
    }

    fn parse(bytes: &[u8]) -> anyhow::Result<StaticTable> {
        if bytes.len() < 12 || &bytes[..8] != MAGIC {
            bail!("it does not start with {MAGIC:?}");
        }
        let hlen = u32::from_le_bytes(bytes[8..12].try_into()?) as usize;
        let body = bytes.get(12 + hlen..).context("truncated header")?;
        let header: TableHeader = serde_json::from_slice(&bytes[12..12 + hlen])?;
        let dims = header.dims;
        let n = header.vocab.len();
        if dims == 0 || body.len() != n * (4 + dims) {
            bail!(
                "{} bytes of rows for {n} tokens of {dims} dimensions",
                body.len()
            );
        }
        let mut scales = Vec::with_capacity(n);
        let mut rows = Vec::with_capacity(n * dims);
        for row in body.chunks_exact(4 + dims) {
            scales.push(f32::from_le_bytes(row[..4].try_into()?));
            rows.extend(row[4..].iter().map(|&b| b as i8));
        }
        let tokens = WordPiece::new(&header.vocab)?;
        let special = |p: &str| tokens.id(p).unwrap_or(u32::MAX);
        let skip = [special("[CLS]"), special("[SEP]"), special("[PAD]")];
        let id = format!(
            "builtin:{}:{}",
            header.name,
            &hex::encode(Sha256::digest(bytes))[..12]
        );
        Ok(StaticTable {
            name: header.name,
            id,
            dims,
            scales,
            rows,
            tokens,
            skip,
        })
    }

    /// Writes a table: `vectors` holds `header.vocab.len()` rows of
    /// `header.dims` values.
    pub fn write(path: &Path, header: &TableHeader, vectors: &[f32]) -> anyhow::Result<()> {
        let json = serde_json::to_vec(header)?;
        let tmp = path.with_extension("partial");
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        f.write_all(MAGIC)?;
        f.write_all(&(json.len() as u32).to_le_bytes())?;
        f.write_all(&json)?;
        for row in vectors.chunks_exact(header.dims) {
            let (scale, q) = quantize(row);
            f.write_all(&scale.to_le_bytes())?;
            f.write_all(&q.iter().map(|&b| b as u8).collect::<Vec<u8>>())?;
        }
        f.into_inner()?.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// The normalised vector of `text`, or `None` when it has no token the
    /// table knows.
    pub fn embed(&self, text: &str, scratch: &mut Vec<u32>) -> Option<Vec<f32>> {
        scratch.clear();
        self.tokens.tokenize(text, scratch);
        let mut acc = vec![0f32; self.dims];
        let mut any = false;
        for &t in scratch.iter() {
            if self.skip.contains(&t) {
                continue;
            }
            let t = t as usize;
            let s = self.scales[t];
            let row = &self.rows[t * self.dims..(t + 1) * self.dims];
            for (a, &q) in acc.iter_mut().zip(row) {
                *a += s * q as f32;
            }
            any = true;
        }
        any.then_some(())?;
        normalize(&mut acc).then_some(acc)
    }
}

/// Scales `v` to unit length; false when it is all zeros.
pub fn normalize(v: &mut [f32]) -> bool {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n <= f32::MIN_POSITIVE || !n.is_finite() {
        return false;
    }
    v.iter_mut().for_each(|x| *x /= n);
    true
}

/// `row ≈ scale * q`, with the largest magnitude at ±127.
pub fn quantize(row: &[f32]) -> (f32, Vec<i8>) {
    let max = row.iter().fold(0f32, |m, x| m.max(x.abs()));
    if max == 0.0 || !max.is_finite() {
        return (0.0, vec![0; row.len()]);
    }
    let scale = max / 127.0;
    (
        scale,
        row.iter().map(|x| (x / scale).round() as i8).collect(),
    )
}
