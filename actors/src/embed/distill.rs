//! Distils the built-in embedder's table from a sentence-transformers BERT
//! model (all-MiniLM-L6-v2: `model.safetensors`, `tokenizer.json`), the
//! model2vec way: every vocabulary token goes through the transformer once,
//! as the one-token sentence `[CLS] token [SEP]`, mean-pooled as the model
//! pools a sentence; the rows are then centred (their mean taken off, which
//! is what PCA does before it rotates) and weighted by how rare the token
//! is, estimated from its rank (the vocabulary is in frequency order after
//! its single characters): `w = a / (a + p)`, `p` from Zipf's law (SIF).
//!
//! The forward pass is written out here (six layers, 384 wide, sequences of
//! three): it runs once, at `make deps`, and needs no inference crate.

use std::path::Path;

use anyhow::{bail, Context};
use safetensors::SafeTensors;
use sha2::{Digest, Sha256};

use super::table::{StaticTable, TableHeader};

/// The SIF constant.
const SIF_A: f64 = 1e-4;
const LN_EPS: f32 = 1e-12;

pub struct Distilled {
    pub tokens: usize,
    pub dims: usize,
    pub seconds: f64,
}

/// Reads the model in `dir` and writes the table to `out`.
pub fn distill(dir: &Path, name: &str, out: &Path, threads: usize) -> anyhow::Result<Distilled> {
    let start = std::time::Instant::now();
    let weights = std::fs::read(dir.join("model.safetensors"))
        .with_context(|| format!("cannot read {}/model.safetensors", dir.display()))?;
    let tok: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("tokenizer.json"))
            .with_context(|| format!("cannot read {}/tokenizer.json", dir.display()))?,
    )?;
    let vocab = vocabulary(&tok)?;
    let model = Bert::load(&SafeTensors::deserialize(&weights)?)?;
    if model.vocab != vocab.len() {
        bail!(
            "{} token embeddings for {} vocabulary entries",
            model.vocab,
            vocab.len()
        );
    }
    let id = |p: &str| {
        vocab
            .iter()
            .position(|v| v == p)
            .with_context(|| format!("the vocabulary has no {p}"))
    };
    let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
    // Frequency order starts at "the" in BERT's vocabulary.
    let first_word = vocab.iter().position(|v| v == "the").unwrap_or(0);
    let dims = model.hidden;
    let n = vocab.len();
    let mut vectors = vec![0f32; n * dims];
    let per = n.div_ceil(threads.max(1));
    std::thread::scope(|s| {
        for (part, rows) in vectors.chunks_mut(per * dims).enumerate() {
            let model = &model;
            s.spawn(move || {
                let first = part * per;
                for (batch_no, batch) in rows.chunks_mut(BATCH * dims).enumerate() {
                    let ids: Vec<usize> = (0..batch.len() / dims)
                        .map(|i| first + batch_no * BATCH + i)
                        .collect();
                    model.pooled(&ids, cls, sep, batch);
                }
            });
        }
    });
    // Centre, then weight.
    let mut mean = vec![0f64; dims];
    for row in vectors.chunks_exact(dims) {
        for (m, &x) in mean.iter_mut().zip(row) {
            *m += x as f64 / n as f64;
        }
    }
    let harmonic = (n as f64).ln() + 0.5772;
    for (i, row) in vectors.chunks_exact_mut(dims).enumerate() {
        let rank = i.saturating_sub(first_word) + 1;
        let p = 1.0 / (rank as f64 * harmonic);
        let w = SIF_A / (SIF_A + p);
        for (x, m) in row.iter_mut().zip(&mean) {
            *x = ((*x as f64 - m) * w) as f32;
        }
    }
    let header = TableHeader {
        name: name.into(),
        dims,
        vocab,
        source_sha256: hex::encode(Sha256::digest(&weights)),
    };
    StaticTable::write(out, &header, &vectors)?;
    Ok(Distilled {
        tokens: n,
        dims,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn vocabulary(tok: &serde_json::Value) -> anyhow::Result<Vec<String>> {
    let map = tok["model"]["vocab"]
        .as_object()
        .context("tokenizer.json has no model.vocab")?;
    let mut vocab = vec![String::new(); map.len()];
    for (piece, id) in map {
        let id = id.as_u64().context("a vocabulary id is not a number")? as usize;
        *vocab.get_mut(id).context("vocabulary ids are not 0..n")? = piece.clone();
    }
    Ok(vocab)
}

/// Tokens put through the model together.
const BATCH: usize = 64;
const SEQ: usize = 3;

struct Linear {
    /// `out × inp`, row-major (PyTorch's layout).
    w: Vec<f32>,
    b: Vec<f32>,
    out: usize,
    inp: usize,
}

struct Norm {
    g: Vec<f32>,
    b: Vec<f32>,
}

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    attn_out: Linear,
    ln1: Norm,
    up: Linear,
    down: Linear,
    ln2: Norm,
}

struct Bert {
    vocab: usize,
    hidden: usize,
    heads: usize,
    word: Vec<f32>,
    pos: Vec<f32>,
    kind: Vec<f32>,
    ln: Norm,
    layers: Vec<Layer>,
}

fn tensor(st: &SafeTensors<'_>, name: &str) -> anyhow::Result<(Vec<f32>, Vec<usize>)> {
    let t = st
        .tensor(name)
        .or_else(|_| st.tensor(&format!("bert.{name}")))
        .with_context(|| format!("the model has no tensor {name}"))?;
    if t.dtype() != safetensors::Dtype::F32 {
        bail!("{name} is {:?}, not F32", t.dtype());
    }
    let data = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok((data, t.shape().to_vec()))
}

impl Bert {
    fn load(st: &SafeTensors<'_>) -> anyhow::Result<Bert> {
        let linear = |name: &str| -> anyhow::Result<Linear> {
            let (w, shape) = tensor(st, &format!("{name}.weight"))?;
            let (b, _) = tensor(st, &format!("{name}.bias"))?;
            Ok(Linear {
                w,
                b,
                out: shape[0],
                inp: shape[1],
            })
        };
        let norm = |name: &str| -> anyhow::Result<Norm> {
            Ok(Norm {
                g: tensor(st, &format!("{name}.weight"))?.0,
                b: tensor(st, &format!("{name}.bias"))?.0,
            })
        };
        let (word, shape) = tensor(st, "embeddings.word_embeddings.weight")?;
        let mut layers = Vec::new();
        while st
            .tensor(&format!(
                "encoder.layer.{}.attention.self.query.weight",
                layers.len()
            ))
            .is_ok()
        {
            let p = format!("encoder.layer.{}", layers.len());
            layers.push(Layer {
                q: linear(&format!("{p}.attention.self.query"))?,
                k: linear(&format!("{p}.attention.self.key"))?,
                v: linear(&format!("{p}.attention.self.value"))?,
                attn_out: linear(&format!("{p}.attention.output.dense"))?,
                ln1: norm(&format!("{p}.attention.output.LayerNorm"))?,
                up: linear(&format!("{p}.intermediate.dense"))?,
                down: linear(&format!("{p}.output.dense"))?,
                ln2: norm(&format!("{p}.output.LayerNorm"))?,
            });
        }
        if layers.is_empty() {
            bail!("the model has no encoder layers");
        }
        let hidden = shape[1];
        Ok(Bert {
            vocab: shape[0],
            hidden,
            // MiniLM-L6-H384: 12 heads of 32.
            heads: hidden / 32,
            word,
            pos: tensor(st, "embeddings.position_embeddings.weight")?.0,
            kind: tensor(st, "embeddings.token_type_embeddings.weight")?.0,
            ln: norm("embeddings.LayerNorm")?,
            layers,
        })
    }

    /// The mean-pooled output of `[CLS] id [SEP]` for each id, into `out`.
    fn pooled(&self, ids: &[usize], cls: usize, sep: usize, out: &mut [f32]) {
        let h = self.hidden;
        let rows = ids.len() * SEQ;
        let mut x = vec![0f32; rows * h];
        for (i, &id) in ids.iter().enumerate() {
            for (p, tok) in [cls, id, sep].into_iter().enumerate() {
                let r = &mut x[(i * SEQ + p) * h..(i * SEQ + p + 1) * h];
                for (j, v) in r.iter_mut().enumerate() {
                    *v = self.word[tok * h + j] + self.pos[p * h + j] + self.kind[j];
                }
                layer_norm(r, &self.ln);
            }
        }
        let (mut q, mut k, mut v, mut ctx, mut tmp, mut up) =
            (vec![], vec![], vec![], vec![0f32; rows * h], vec![], vec![]);
        let hd = h / self.heads;
        let scale = 1.0 / (hd as f32).sqrt();
        for l in &self.layers {
            l.q.apply(&x, &mut q);
            l.k.apply(&x, &mut k);
            l.v.apply(&x, &mut v);
            for s in 0..ids.len() {
                for head in 0..self.heads {
                    let at = |p: usize| {
                        (s * SEQ + p) * h + head * hd..(s * SEQ + p) * h + (head + 1) * hd
                    };
                    for i in 0..SEQ {
                        let qi = &q[at(i)];
                        let mut w = [0f32; SEQ];
                        for (j, wj) in w.iter_mut().enumerate() {
                            *wj = dot(qi, &k[at(j)]) * scale;
                        }
                        let max = w.iter().fold(f32::MIN, |a, &b| a.max(b));
                        let mut sum = 0.0;
                        for wj in w.iter_mut() {
                            *wj = (*wj - max).exp();
                            sum += *wj;
                        }
                        let c = &mut ctx[at(i)];
                        c.fill(0.0);
                        for (j, wj) in w.iter().enumerate() {
                            for (cv, vv) in c.iter_mut().zip(&v[at(j)]) {
                                *cv += wj / sum * vv;
                            }
                        }
                    }
                }
            }
            l.attn_out.apply(&ctx, &mut tmp);
            for (xr, tr) in x.chunks_exact_mut(h).zip(tmp.chunks_exact(h)) {
                xr.iter_mut().zip(tr).for_each(|(a, b)| *a += b);
                layer_norm(xr, &l.ln1);
            }
            l.up.apply(&x, &mut up);
            up.iter_mut().for_each(|u| *u = gelu(*u));
            l.down.apply(&up, &mut tmp);
            for (xr, tr) in x.chunks_exact_mut(h).zip(tmp.chunks_exact(h)) {
                xr.iter_mut().zip(tr).for_each(|(a, b)| *a += b);
                layer_norm(xr, &l.ln2);
            }
        }
        for (i, o) in out.chunks_exact_mut(h).enumerate() {
            o.fill(0.0);
            for p in 0..SEQ {
                let r = &x[(i * SEQ + p) * h..(i * SEQ + p + 1) * h];
                o.iter_mut().zip(r).for_each(|(a, b)| *a += b / SEQ as f32);
            }
        }
    }
}

impl Linear {
    /// `y = x Wᵀ + b` for each row of `x`.
    fn apply(&self, x: &[f32], y: &mut Vec<f32>) {
        let rows = x.len() / self.inp;
        y.clear();
        y.resize(rows * self.out, 0.0);
        for o in 0..self.out {
            let w = &self.w[o * self.inp..(o + 1) * self.inp];
            for r in 0..rows {
                y[r * self.out + o] = self.b[o] + dot(&x[r * self.inp..(r + 1) * self.inp], w);
            }
        }
    }
}

/// Sixteen running sums, so that the compiler can keep them in vector
/// registers (a single float sum must be added in order).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let mut ca = a.chunks_exact(16);
    let mut cb = b.chunks_exact(16);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    acc.iter().sum::<f32>() + tail
}

fn layer_norm(x: &mut [f32], n: &Norm) {
    let len = x.len() as f32;
    let mean = x.iter().sum::<f32>() / len;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / len;
    let inv = 1.0 / (var + LN_EPS).sqrt();
    for ((v, g), b) in x.iter_mut().zip(&n.g).zip(&n.b) {
        *v = (*v - mean) * inv * g + b;
    }
}

/// GELU with erf, as BERT's "gelu" (erf by Abramowitz–Stegun 7.1.26,
/// within 1.5e-7).
fn gelu(x: f32) -> f32 {
    let z = x as f64 / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.3275911 * z.abs());
    let poly = t
        * (0.254829592
            + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let erf = (1.0 - poly * (-z * z).exp()).copysign(z);
    (0.5 * x as f64 * (1.0 + erf)) as f32
}
