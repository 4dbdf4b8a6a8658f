//! The learned classifier, trained on the types users set by hand: two
//! models over two kinds of features, mixed.
//!
//! - Words: multinomial naive Bayes over hashed word 1- and 2-grams weighted
//!   by TF-IDF (sublinear term frequency, L2-normalised).
//! - Meaning: multinomial logistic regression over the document's vector
//!   from the built-in embedder (centred on the training mean, unit length).
//!   It knows that a changelog and a release-notes page are alike although
//!   they share few words, which words alone learn only from many examples.
//!
//! The two are mixed in log-probability, `(1 − w)·log p_words + w·log
//! p_meaning`, and the weight `w` (0, ¼, ½, ¾ or 1) is the one with the best
//! cross-validated accuracy on the user's own corrections (lowest log-loss
//! among equals): the data says which features to trust.
//!
//! Its confidence is calibrated: the posteriors are a softmax of the class
//! scores divided by a temperature, and the temperature is the one that
//! minimises the log-loss of cross-validated predictions on the training set
//! (naive Bayes alone is far too sure of itself). The same cross-validation
//! gives the accuracy reported by `GET /api/v1/classifier`, and the
//! confidence never exceeds what that record supports: with `r` of `n`
//! held-out documents right, at most (r + 1) / (n + 2) (Laplace's rule of
//! succession; 0.5 before there is any record). Six right of six is not
//! certainty.

use std::collections::HashMap;

/// Feature buckets (2^20): collisions are rare at the vocabulary sizes of a
/// document collection.
const BUCKETS: u32 = 1 << 20;
/// Only the start of a document is read: its type shows early.
const MAX_CHARS: usize = 20_000;
/// Additive smoothing of the per-class feature weights.
const ALPHA: f64 = 0.1;
/// Cross-validation folds at most.
const FOLDS: usize = 5;

/// Mixes of the meaning model's log-probabilities with the words' among
/// which cross-validation chooses (0: words alone, 1: meaning alone).
const MIXES: [f32; 5] = [0.0, 0.25, 0.5, 0.75, 1.0];
/// The meaning model's training: full-batch gradient descent with momentum.
const MEANING_STEPS: usize = 300;
const MEANING_RATE: f32 = 1.0;
const MEANING_MOMENTUM: f32 = 0.9;
const MEANING_L2: f32 = 1e-4;

/// One labelled document: its text and, when the built-in embedder is on,
/// its vector.
pub struct Sample {
    pub label: String,
    pub text: String,
    pub vector: Option<Vec<f32>>,
}

/// Which features a model learns from. `Auto` (what the pipeline trains)
/// lets cross-validation choose the mix; the others fix it, for the
/// benchmark's comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Features {
    Auto,
    Words,
    Meaning,
}

/// The vectors a model reads: which embedder made them (vectors of another
/// are never fed to a model trained on these).
#[derive(Clone, Copy, Debug)]
pub struct Vector<'a> {
    pub embedder: &'a str,
    pub values: &'a [f32],
}

/// A trained model.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub labels: Vec<String>,
    /// Training documents per label.
    pub counts: Vec<u32>,
    /// Cross-validated accuracy of the model in use (None with too few
    /// documents to tell).
    pub accuracy: Option<f32>,
    /// Cross-validated accuracy of the words alone (what reads a document
    /// that has no vector).
    pub words_accuracy: Option<f32>,
    temperature: f32,
    log_prior: Vec<f32>,
    /// Per feature seen in training: its IDF, then its log-probability in
    /// each class.
    features: HashMap<u32, (f32, Vec<f32>)>,
    /// The meaning model, when trained with vectors.
    meaning: Option<Meaning>,
}

/// Logistic regression over document vectors, and how it mixes with the
/// words.
#[derive(Clone, Debug, PartialEq)]
struct Meaning {
    /// The embedder whose vectors it was trained on.
    embedder: String,
    dims: usize,
    /// The training vectors' mean (subtracted before use).
    mean: Vec<f32>,
    /// Per class: `dims` weights, then the bias.
    weights: Vec<f32>,
    /// The meaning's share of the mixed log-probability.
    mix: f32,
    /// The temperature of the mixed scores (calibrated like the words').
    temperature: f32,
}

impl Meaning {
    /// The vector as the model reads it: centred, unit length (zeros for a
    /// document with nothing the embedder knows).
    fn prepare(mean: &[f32], v: Option<&[f32]>) -> Vec<f32> {
        let mut x: Vec<f32> = match v {
            Some(v) => v.iter().zip(mean).map(|(a, m)| a - m).collect(),
            None => vec![0.0; mean.len()],
        };
        let norm = x.iter().map(|a| a * a).sum::<f32>().sqrt();
        if norm > 0.0 {
            x.iter_mut().for_each(|a| *a /= norm);
        }
        x
    }

    fn logits(&self, x: &[f32]) -> Vec<f32> {
        logits(&self.weights, self.dims, x)
    }
}

fn logits(weights: &[f32], dims: usize, x: &[f32]) -> Vec<f32> {
    weights
        .chunks_exact(dims + 1)
        .map(|w| w[dims] + w[..dims].iter().zip(x).map(|(a, b)| a * b).sum::<f32>())
        .collect()
}

/// Softmax regression with L2 over prepared vectors: the weights.
fn fit_meaning(xs: &[(usize, Vec<f32>)], classes: usize, dims: usize) -> Vec<f32> {
    let stride = dims + 1;
    let mut w = vec![0f32; classes * stride];
    let mut velocity = vec![0f32; w.len()];
    let mut grad = vec![0f32; w.len()];
    let n = xs.len().max(1) as f32;
    for _ in 0..MEANING_STEPS {
        grad.iter_mut().for_each(|g| *g = 0.0);
        for (label, x) in xs {
            let p = softmax(&logits(&w, dims, x), 1.0);
            for (c, pc) in p.iter().enumerate() {
                let g = (pc - if c == *label { 1.0 } else { 0.0 }) / n;
                let row = &mut grad[c * stride..(c + 1) * stride];
                for (r, xi) in row.iter_mut().zip(x) {
                    *r += g * xi;
                }
                row[dims] += g;
            }
        }
        for ((wi, vi), gi) in w.iter_mut().zip(&mut velocity).zip(&grad) {
            *vi = MEANING_MOMENTUM * *vi - MEANING_RATE * (gi + MEANING_L2 * *wi);
            *wi += *vi;
        }
    }
    w
}

fn log_softmax(scores: &[f32], temperature: f32) -> Vec<f32> {
    softmax(scores, temperature)
        .into_iter()
        .map(|p| p.max(1e-12).ln())
        .collect()
}

fn mixed(words: &[f32], meaning: &[f32], mix: f32) -> Vec<f32> {
    words
        .iter()
        .zip(meaning)
        .map(|(a, b)| (1.0 - mix) * a + mix * b)
        .collect()
}

/// A prediction: the label and its calibrated probability.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    pub label: String,
    pub confidence: f32,
}

/// Hashed 1- and 2-grams of lower-cased words, with their counts.
pub fn features(text: &str) -> HashMap<u32, u32> {
    let end = text
        .char_indices()
        .nth(MAX_CHARS)
        .map_or(text.len(), |(i, _)| i);
    let mut out: HashMap<u32, u32> = HashMap::new();
    let mut prev: Option<u64> = None;
    for word in text[..end]
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && w.chars().count() <= 40)
    {
        let h = word
            .chars()
            .flat_map(char::to_lowercase)
            .fold(0xcbf2_9ce4_8422_2325u64, |h, c| fnv(h, c as u64));
        *out.entry(bucket(h)).or_default() += 1;
        if let Some(p) = prev {
            *out.entry(bucket(fnv(fnv(p, 0x2f), h))).or_default() += 1;
        }
        prev = Some(h);
    }
    out
}

fn fnv(h: u64, v: u64) -> u64 {
    (h ^ v).wrapping_mul(0x0000_0100_0000_01b3)
}

fn bucket(h: u64) -> u32 {
    ((h ^ (h >> 32)) as u32) % BUCKETS
}

/// TF-IDF weights of a document's known features, L2-normalised.
fn weigh(counts: &HashMap<u32, u32>, idf: impl Fn(u32) -> Option<f32>) -> Vec<(u32, f32)> {
    let mut v: Vec<(u32, f32)> = counts
        .iter()
        .filter_map(|(&f, &n)| idf(f).map(|idf| (f, (1.0 + (n as f32).ln()) * idf)))
        .collect();
    let norm = v.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|(_, w)| *w /= norm);
    }
    v
}

/// Naive Bayes fitted to documents already turned into features.
struct Fit {
    log_prior: Vec<f32>,
    features: HashMap<u32, (f32, Vec<f32>)>,
}

fn fit(docs: &[(usize, HashMap<u32, u32>)], classes: usize) -> Fit {
    let n = docs.len() as f32;
    let mut df: HashMap<u32, u32> = HashMap::new();
    for (_, f) in docs {
        for &k in f.keys() {
            *df.entry(k).or_default() += 1;
        }
    }
    let idf: HashMap<u32, f32> = df
        .iter()
        .map(|(&k, &d)| (k, ((1.0 + n) / (1.0 + d as f32)).ln() + 1.0))
        .collect();
    let mut mass: HashMap<u32, Vec<f64>> = HashMap::with_capacity(idf.len());
    let mut total = vec![0f64; classes];
    let mut docs_in = vec![0u32; classes];
    for (label, f) in docs {
        docs_in[*label] += 1;
        for (k, w) in weigh(f, |k| idf.get(&k).copied()) {
            mass.entry(k).or_insert_with(|| vec![0.0; classes])[*label] += w as f64;
            total[*label] += w as f64;
        }
    }
    let vocab = mass.len() as f64;
    let features = mass
        .into_iter()
        .map(|(k, m)| {
            let logp = m
                .iter()
                .zip(&total)
                .map(|(m, t)| ((m + ALPHA) / (t + ALPHA * vocab)).ln() as f32)
                .collect();
            (k, (idf[&k], logp))
        })
        .collect();
    let log_prior = docs_in
        .iter()
        .map(|&d| ((d as f32 + 1.0) / (n + classes as f32)).ln())
        .collect();
    Fit {
        log_prior,
        features,
    }
}

impl Fit {
    fn scores(&self, doc: &HashMap<u32, u32>) -> Vec<f32> {
        scores(&self.log_prior, &self.features, doc)
    }
}

/// Each class's log-prior plus the weighted log-probabilities of the
/// document's known features.
fn scores(
    log_prior: &[f32],
    features: &HashMap<u32, (f32, Vec<f32>)>,
    doc: &HashMap<u32, u32>,
) -> Vec<f32> {
    let mut s = log_prior.to_vec();
    for (k, w) in weigh(doc, |k| features.get(&k).map(|f| f.0)) {
        for (s, lp) in s.iter_mut().zip(&features[&k].1) {
            *s += w * lp;
        }
    }
    s
}

fn softmax(scores: &[f32], temperature: f32) -> Vec<f32> {
    let max = scores.iter().copied().fold(f32::MIN, f32::max);
    let e: Vec<f32> = scores
        .iter()
        .map(|s| ((s - max) / temperature).exp())
        .collect();
    let sum: f32 = e.iter().sum();
    e.into_iter().map(|x| x / sum).collect()
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::MIN), |b, (i, &x)| if x > b.1 { (i, x) } else { b })
        .0
}

impl Model {
    /// Trains on the samples; None without at least two labels. `embedder`:
    /// the id of the embedder that made the samples' vectors (None: no
    /// vectors, words alone).
    pub fn train(samples: &[Sample], embedder: Option<&str>, use_: Features) -> Option<Model> {
        let mut labels: Vec<String> = samples.iter().map(|s| s.label.clone()).collect();
        labels.sort();
        labels.dedup();
        if labels.len() < 2 {
            return None;
        }
        let classes = labels.len();
        let index: HashMap<&str, usize> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.as_str(), i))
            .collect();
        let docs: Vec<(usize, HashMap<u32, u32>)> = samples
            .iter()
            .map(|s| (index[s.label.as_str()], features(&s.text)))
            .collect();
        let mut counts = vec![0u32; classes];
        for (l, _) in &docs {
            counts[*l] += 1;
        }
        // The meaning model, when there are vectors to learn from.
        let dims = samples
            .iter()
            .find_map(|s| s.vector.as_ref().map(Vec::len))
            .unwrap_or(0);
        let with_meaning = use_ != Features::Words && embedder.is_some() && dims > 0;
        let mean_of = |rows: &mut dyn Iterator<Item = &Sample>| {
            let mut mean = vec![0f32; dims];
            let mut n = 0usize;
            for v in rows.filter_map(|s| s.vector.as_deref().filter(|v| v.len() == dims)) {
                mean.iter_mut().zip(v).for_each(|(m, x)| *m += x);
                n += 1;
            }
            mean.iter_mut().for_each(|m| *m /= n.max(1) as f32);
            mean
        };
        let prepared = |mean: &[f32], s: &Sample| {
            Meaning::prepare(mean, s.vector.as_deref().filter(|v| v.len() == dims))
        };
        // Cross-validation: stratified folds (every class spread over
        // them); needs two documents of each class at least.
        let folds = (*counts.iter().min().unwrap() as usize).min(FOLDS);
        let mut words_accuracy = None;
        let (mut temperature, mut mix, mut mixed_temperature) = (1.0, 0.5, 1.0);
        let mut accuracy = None;
        if use_ == Features::Meaning {
            mix = 1.0;
        }
        if folds >= 2 {
            let mut seen = vec![0usize; classes];
            let fold_of: Vec<usize> = docs
                .iter()
                .map(|(l, _)| {
                    seen[*l] += 1;
                    seen[*l] % folds
                })
                .collect();
            // Held-out scores of each document: words, then meaning.
            let mut held_out: Vec<(usize, Vec<f32>, Vec<f32>)> = Vec::with_capacity(docs.len());
            for k in 0..folds {
                let train: Vec<(usize, HashMap<u32, u32>)> = docs
                    .iter()
                    .zip(&fold_of)
                    .filter(|(_, &f)| f != k)
                    .map(|(d, _)| d.clone())
                    .collect();
                let fit = fit(&train, classes);
                let meaning = with_meaning.then(|| {
                    let mut rows = samples
                        .iter()
                        .zip(&fold_of)
                        .filter(|(_, &f)| f != k)
                        .map(|(s, _)| s);
                    let mean = mean_of(&mut rows);
                    let xs: Vec<(usize, Vec<f32>)> = samples
                        .iter()
                        .zip(&docs)
                        .zip(&fold_of)
                        .filter(|(_, &f)| f != k)
                        .map(|((s, (l, _)), _)| (*l, prepared(&mean, s)))
                        .collect();
                    (fit_meaning(&xs, classes, dims), mean)
                });
                for (((l, doc), s), _) in docs
                    .iter()
                    .zip(samples)
                    .zip(&fold_of)
                    .filter(|(_, &f)| f == k)
                {
                    let m = meaning.as_ref().map_or_else(
                        || vec![0.0; classes],
                        |(w, mean)| logits(w, dims, &prepared(mean, s)),
                    );
                    held_out.push((*l, fit.scores(doc), m));
                }
            }
            let right = |scored: &[(usize, Vec<f32>)]| {
                scored.iter().filter(|(l, s)| argmax(s) == *l).count() as f32 / scored.len() as f32
            };
            let words: Vec<(usize, Vec<f32>)> =
                held_out.iter().map(|(l, w, _)| (*l, w.clone())).collect();
            words_accuracy = Some(right(&words));
            temperature = calibrate(&words);
            accuracy = words_accuracy;
            if with_meaning {
                // Each mix's held-out accuracy; the best (lowest log-loss
                // among equals) is the model's.
                let candidates: &[f32] = if use_ == Features::Meaning {
                    &[1.0]
                } else {
                    &MIXES
                };
                let mut best: Option<(f32, f64, f32, f32)> = None; // accuracy, loss, mix, temperature
                for &w in candidates {
                    let scored: Vec<(usize, Vec<f32>)> = held_out
                        .iter()
                        .map(|(l, s, m)| {
                            (
                                *l,
                                mixed(&log_softmax(s, temperature), &log_softmax(m, 1.0), w),
                            )
                        })
                        .collect();
                    let a = right(&scored);
                    let t = calibrate(&scored);
                    let loss = log_loss(&scored, t);
                    if best.is_none_or(|(ba, bl, _, _)| a > ba || (a == ba && loss < bl)) {
                        best = Some((a, loss, w, t));
                    }
                }
                if let Some((a, _, w, t)) = best {
                    (accuracy, mix, mixed_temperature) = (Some(a), w, t);
                }
            }
        }
        let fit = fit(&docs, classes);
        let meaning = with_meaning.then(|| {
            let mean = mean_of(&mut samples.iter());
            let xs: Vec<(usize, Vec<f32>)> = samples
                .iter()
                .zip(&docs)
                .map(|(s, (l, _))| (*l, prepared(&mean, s)))
                .collect();
            Meaning {
                embedder: embedder.unwrap_or_default().to_string(),
                dims,
                weights: fit_meaning(&xs, classes, dims),
                mean,
                mix,
                temperature: mixed_temperature,
            }
        });
        Some(Model {
            labels,
            counts,
            accuracy,
            words_accuracy,
            temperature,
            log_prior: fit.log_prior,
            features: fit.features,
            meaning,
        })
    }

    /// How much of the prediction the meaning model makes (0 without one).
    pub fn meaning_share(&self) -> f32 {
        self.meaning.as_ref().map_or(0.0, |m| m.mix)
    }

    /// The embedder whose vectors the model reads, if any.
    pub fn embedder(&self) -> Option<&str> {
        self.meaning.as_ref().map(|m| m.embedder.as_str())
    }

    /// The prediction for a document's title and text (read the way the
    /// training documents are: title, newline, the start of the text) and
    /// its vector.
    pub fn predict_document(
        &self,
        title: &str,
        text: &str,
        vector: Option<Vector<'_>>,
    ) -> Prediction {
        let end = text
            .char_indices()
            .nth(MAX_CHARS)
            .map_or(text.len(), |(i, _)| i);
        self.predict(&format!("{title}\n{}", &text[..end]), vector)
    }

    pub fn predict(&self, text: &str, vector: Option<Vector<'_>>) -> Prediction {
        let s = scores(&self.log_prior, &self.features, &features(text));
        let meaning = self.meaning.as_ref().filter(|m| {
            vector.is_some_and(|v| v.embedder == m.embedder && v.values.len() == m.dims)
        });
        let (p, record) = match (meaning, vector) {
            (Some(m), Some(v)) => {
                let lm = log_softmax(&m.logits(&Meaning::prepare(&m.mean, Some(v.values))), 1.0);
                let lw = log_softmax(&s, self.temperature);
                (
                    softmax(&mixed(&lw, &lm, m.mix), m.temperature),
                    self.accuracy,
                )
            }
            _ => (softmax(&s, self.temperature), self.words_accuracy),
        };
        let best = argmax(&p);
        Prediction {
            label: self.labels[best].clone(),
            confidence: p[best].min(self.ceiling(record)),
        }
    }

    /// The highest confidence a cross-validation record supports.
    fn ceiling(&self, accuracy: Option<f32>) -> f32 {
        let n = self.counts.iter().sum::<u32>() as f32;
        match accuracy {
            Some(a) => (a * n + 1.0) / (n + 2.0),
            None => 0.5,
        }
    }

    /// The model as bytes, for SQLite.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.features.len() * (8 + 4 * self.labels.len()));
        let put = |out: &mut Vec<u8>, v: u32| out.extend_from_slice(&v.to_le_bytes());
        let putf = |out: &mut Vec<u8>, v: f32| out.extend_from_slice(&v.to_le_bytes());
        out.extend_from_slice(b"DPNB2");
        put(&mut out, self.labels.len() as u32);
        for ((l, c), p) in self.labels.iter().zip(&self.counts).zip(&self.log_prior) {
            put(&mut out, l.len() as u32);
            out.extend_from_slice(l.as_bytes());
            put(&mut out, *c);
            putf(&mut out, *p);
        }
        putf(&mut out, self.accuracy.unwrap_or(-1.0));
        putf(&mut out, self.temperature);
        put(&mut out, self.features.len() as u32);
        for (k, (idf, logp)) in &self.features {
            put(&mut out, *k);
            putf(&mut out, *idf);
            for v in logp {
                putf(&mut out, *v);
            }
        }
        putf(&mut out, self.words_accuracy.unwrap_or(-1.0));
        match &self.meaning {
            None => put(&mut out, 0),
            Some(m) => {
                put(&mut out, m.dims as u32);
                put(&mut out, m.embedder.len() as u32);
                out.extend_from_slice(m.embedder.as_bytes());
                putf(&mut out, m.mix);
                putf(&mut out, m.temperature);
                for v in m.mean.iter().chain(&m.weights) {
                    putf(&mut out, *v);
                }
            }
        }
        out
    }

    /// A model from [`Model::encode`]'s bytes (or an older words-only
    /// one's); None if they are not one.
    pub fn decode(bytes: &[u8]) -> Option<Model> {
        let (v2, rest) = match bytes.strip_prefix(b"DPNB2") {
            Some(rest) => (true, rest),
            None => (false, bytes.strip_prefix(b"DPNB1")?),
        };
        let mut r = Reader(rest);
        let n = r.u32()? as usize;
        let (mut labels, mut counts, mut log_prior) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let len = r.u32()? as usize;
            labels.push(String::from_utf8(r.take(len)?.to_vec()).ok()?);
            counts.push(r.u32()?);
            log_prior.push(r.f32()?);
        }
        let accuracy = Some(r.f32()?).filter(|a| *a >= 0.0);
        let temperature = r.f32()?;
        let m = r.u32()? as usize;
        let mut features = HashMap::with_capacity(m);
        for _ in 0..m {
            let k = r.u32()?;
            let idf = r.f32()?;
            let logp = (0..n).map(|_| r.f32()).collect::<Option<Vec<f32>>>()?;
            features.insert(k, (idf, logp));
        }
        let (mut words_accuracy, mut meaning) = (accuracy, None);
        if v2 {
            words_accuracy = Some(r.f32()?).filter(|a| *a >= 0.0);
            let dims = r.u32()? as usize;
            if dims > 0 {
                let len = r.u32()? as usize;
                let embedder = String::from_utf8(r.take(len)?.to_vec()).ok()?;
                let (mix, temperature) = (r.f32()?, r.f32()?);
                let mut floats = |k: usize| (0..k).map(|_| r.f32()).collect::<Option<Vec<f32>>>();
                let mean = floats(dims)?;
                let weights = floats(n * (dims + 1))?;
                meaning = Some(Meaning {
                    embedder,
                    dims,
                    mean,
                    weights,
                    mix,
                    temperature,
                });
            }
        }
        r.0.is_empty().then_some(Model {
            labels,
            counts,
            accuracy,
            words_accuracy,
            temperature,
            log_prior,
            features,
            meaning,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn f32(&mut self) -> Option<f32> {
        Some(f32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
}

/// The temperature that minimises the log-loss of held-out predictions,
/// searched on a log scale from 0.01 to 100. The targets are smoothed (the
/// true class gets 1 − ε, ε = 1/(n + 2), the others share ε): otherwise a
/// training set that cross-validation separates perfectly drives the
/// temperature to zero and every prediction, however vague, to certainty.
fn calibrate(held_out: &[(usize, Vec<f32>)]) -> f32 {
    (0..=80)
        .map(|i| 10f32.powf(-2.0 + i as f32 * 0.05))
        .map(|t| (t, log_loss(held_out, t)))
        .fold(
            (1.0, f64::MAX),
            |b, (t, l)| if l < b.1 { (t, l) } else { b },
        )
        .0
}

/// The smoothed log-loss of held-out scores at a temperature (see
/// [`calibrate`]).
fn log_loss(held_out: &[(usize, Vec<f32>)], t: f32) -> f64 {
    let eps = 1.0 / (held_out.len() as f64 + 2.0);
    held_out
        .iter()
        .map(|(l, s)| {
            let p = softmax(s, t);
            let others = eps / (p.len() as f64 - 1.0);
            p.iter()
                .enumerate()
                .map(|(j, &pj)| {
                    let target = if j == *l { 1.0 - eps } else { others };
                    -target * (pj.max(1e-9) as f64).ln()
                })
                .sum::<f64>()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(label: &str, text: &str) -> Sample {
        Sample {
            label: label.into(),
            text: text.into(),
            vector: None,
        }
    }

    /// Two types whose words say nothing (each document's words are its
    /// own) but whose vectors point two ways, as meaning does.
    fn by_meaning() -> Vec<Sample> {
        (0..12)
            .map(|i| {
                let label = if i % 2 == 0 { "north" } else { "south" };
                let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
                let mut v = vec![0.1 * (i as f32).sin(); 8];
                v[0] = sign;
                v[1] = 0.3;
                Sample {
                    label: label.into(),
                    text: format!("word{i} other{i}"),
                    vector: Some(v),
                }
            })
            .collect()
    }

    fn corpus() -> Vec<Sample> {
        let mut v = Vec::new();
        for i in 0..6 {
            v.push(sample(
                "recipe",
                &format!("Preheat the oven, whisk {i} eggs with flour and sugar, bake the cake for 30 minutes"),
            ));
            v.push(sample(
                "car",
                &format!("The engine needs new spark plugs; check tyre pressure and brake fluid, service {i}"),
            ));
        }
        v
    }

    #[test]
    fn learns_the_labels_and_is_surer_of_clear_cases() {
        let m = Model::train(&corpus(), None, Features::Auto).unwrap();
        assert_eq!(m.labels, vec!["car", "recipe"]);
        assert_eq!(m.counts, vec![6, 6]);
        assert_eq!(m.accuracy, Some(1.0));
        let p = m.predict("bake the cake with eggs and sugar", None);
        assert_eq!(p.label, "recipe");
        let vague = m.predict("the and with", None);
        assert!(p.confidence > vague.confidence, "{p:?} vs {vague:?}");
        assert!(vague.confidence < 0.8, "{vague:?}");
        // 12 of 12 right in cross-validation: at most 13/14.
        assert!(p.confidence <= 13.0 / 14.0 + 1e-6, "{p:?}");
        assert_eq!(m.predict("brake fluid and engine", None).label, "car");
    }

    #[test]
    fn needs_two_labels() {
        assert!(Model::train(
            &[sample("a", "x y"), sample("a", "z")],
            None,
            Features::Auto
        )
        .is_none());
    }

    #[test]
    fn survives_encoding() {
        let m = Model::train(&corpus(), None, Features::Auto).unwrap();
        let d = Model::decode(&m.encode()).unwrap();
        assert_eq!(d, m);
        assert!(Model::decode(b"DPNB1\x02").is_none());
        assert!(Model::decode(b"nonsense").is_none());
    }

    #[test]
    fn learns_from_vectors_where_words_say_nothing() {
        let samples = by_meaning();
        let m = Model::train(&samples, Some("e1"), Features::Auto).unwrap();
        assert_eq!(m.words_accuracy.map(|a| a < 0.7), Some(true), "{m:?}");
        assert_eq!(m.accuracy, Some(1.0));
        assert!(m.meaning_share() > 0.0, "{}", m.meaning_share());
        let mut v = vec![0.0; 8];
        v[0] = -0.9;
        let south = Vector {
            embedder: "e1",
            values: &v,
        };
        assert_eq!(m.predict("word99", Some(south)).label, "south");
        // Vectors of another embedder are not read.
        let other = Vector {
            embedder: "e2",
            values: &v,
        };
        assert!(m.predict("word99", Some(other)).confidence < 0.7);
        let d = Model::decode(&m.encode()).unwrap();
        assert_eq!(d, m);
        let words = Model::train(&samples, Some("e1"), Features::Words).unwrap();
        assert_eq!(words.meaning_share(), 0.0);
        assert_eq!(words.embedder(), None);
    }

    #[test]
    fn bigrams_and_case() {
        let f = features("Amount Due amount due");
        // "amount", "due" and "amount due" twice, "due amount" once.
        assert_eq!(f.len(), 4);
        assert_eq!(f.values().filter(|&&n| n == 2).count(), 3);
    }
}
