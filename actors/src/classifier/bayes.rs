//! The learned classifier: multinomial naive Bayes over hashed word 1- and
//! 2-grams weighted by TF-IDF (sublinear term frequency, L2-normalised),
//! trained on the types users set by hand.
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

/// One labelled document.
pub struct Sample {
    pub label: String,
    pub text: String,
}

/// A trained model.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub labels: Vec<String>,
    /// Training documents per label.
    pub counts: Vec<u32>,
    /// Cross-validated accuracy (None with too few documents to tell).
    pub accuracy: Option<f32>,
    temperature: f32,
    log_prior: Vec<f32>,
    /// Per feature seen in training: its IDF, then its log-probability in
    /// each class.
    features: HashMap<u32, (f32, Vec<f32>)>,
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
    /// Trains on the samples; None without at least two labels.
    pub fn train(samples: &[Sample]) -> Option<Model> {
        let mut labels: Vec<String> = samples.iter().map(|s| s.label.clone()).collect();
        labels.sort();
        labels.dedup();
        if labels.len() < 2 {
            return None;
        }
        let index: HashMap<&str, usize> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.as_str(), i))
            .collect();
        let docs: Vec<(usize, HashMap<u32, u32>)> = samples
            .iter()
            .map(|s| (index[s.label.as_str()], features(&s.text)))
            .collect();
        let mut counts = vec![0u32; labels.len()];
        for (l, _) in &docs {
            counts[*l] += 1;
        }
        // Cross-validation: stratified folds (every class spread over
        // them); needs two documents of each class at least.
        let folds = (*counts.iter().min().unwrap() as usize).min(FOLDS);
        let (mut accuracy, mut temperature) = (None, 1.0);
        if folds >= 2 {
            let mut seen = vec![0usize; labels.len()];
            let fold_of: Vec<usize> = docs
                .iter()
                .map(|(l, _)| {
                    seen[*l] += 1;
                    seen[*l] % folds
                })
                .collect();
            let mut held_out: Vec<(usize, Vec<f32>)> = Vec::with_capacity(docs.len());
            for k in 0..folds {
                let train: Vec<(usize, HashMap<u32, u32>)> = docs
                    .iter()
                    .zip(&fold_of)
                    .filter(|(_, &f)| f != k)
                    .map(|(d, _)| d.clone())
                    .collect();
                let fit = fit(&train, labels.len());
                for ((l, doc), _) in docs.iter().zip(&fold_of).filter(|(_, &f)| f == k) {
                    held_out.push((*l, fit.scores(doc)));
                }
            }
            let right = held_out.iter().filter(|(l, s)| argmax(s) == *l).count();
            accuracy = Some(right as f32 / held_out.len() as f32);
            temperature = calibrate(&held_out);
        }
        let fit = fit(&docs, labels.len());
        Some(Model {
            labels,
            counts,
            accuracy,
            temperature,
            log_prior: fit.log_prior,
            features: fit.features,
        })
    }

    /// The prediction for a document's title and text (read the way the
    /// training documents are: title, newline, the start of the text).
    pub fn predict_document(&self, title: &str, text: &str) -> Prediction {
        let end = text
            .char_indices()
            .nth(MAX_CHARS)
            .map_or(text.len(), |(i, _)| i);
        self.predict(&format!("{title}\n{}", &text[..end]))
    }

    pub fn predict(&self, text: &str) -> Prediction {
        let s = scores(&self.log_prior, &self.features, &features(text));
        let p = softmax(&s, self.temperature);
        let best = argmax(&p);
        Prediction {
            label: self.labels[best].clone(),
            confidence: p[best].min(self.ceiling()),
        }
    }

    /// The highest confidence the cross-validation record supports.
    fn ceiling(&self) -> f32 {
        let n = self.counts.iter().sum::<u32>() as f32;
        match self.accuracy {
            Some(a) => (a * n + 1.0) / (n + 2.0),
            None => 0.5,
        }
    }

    /// The model as bytes, for SQLite.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.features.len() * (8 + 4 * self.labels.len()));
        let put = |out: &mut Vec<u8>, v: u32| out.extend_from_slice(&v.to_le_bytes());
        let putf = |out: &mut Vec<u8>, v: f32| out.extend_from_slice(&v.to_le_bytes());
        out.extend_from_slice(b"DPNB1");
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
        out
    }

    /// A model from [`Model::encode`]'s bytes; None if they are not one.
    pub fn decode(bytes: &[u8]) -> Option<Model> {
        let mut r = Reader(bytes.strip_prefix(b"DPNB1")?);
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
        r.0.is_empty().then_some(Model {
            labels,
            counts,
            accuracy,
            temperature,
            log_prior,
            features,
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

/// Multinomial logistic regression over the same features (TF-IDF, L2
/// normalised), trained by SGD with L2 regularisation. Kept beside naive
/// Bayes so the benchmark can compare the two on the same documents; naive
/// Bayes is the one in use (see `benches/classify.rs`).
pub struct Logistic {
    labels: Vec<String>,
    idf: HashMap<u32, f32>,
    weights: HashMap<u32, Vec<f32>>,
    bias: Vec<f32>,
}

impl Logistic {
    pub fn train(samples: &[Sample]) -> Option<Logistic> {
        let mut labels: Vec<String> = samples.iter().map(|s| s.label.clone()).collect();
        labels.sort();
        labels.dedup();
        if labels.len() < 2 {
            return None;
        }
        let c = labels.len();
        let docs: Vec<(usize, HashMap<u32, u32>)> = samples
            .iter()
            .map(|s| {
                (
                    labels.binary_search(&s.label).unwrap_or(0),
                    features(&s.text),
                )
            })
            .collect();
        let n = docs.len() as f32;
        let mut df: HashMap<u32, u32> = HashMap::new();
        for (_, f) in &docs {
            for &k in f.keys() {
                *df.entry(k).or_default() += 1;
            }
        }
        let idf: HashMap<u32, f32> = df
            .iter()
            .map(|(&k, &d)| (k, ((1.0 + n) / (1.0 + d as f32)).ln() + 1.0))
            .collect();
        let xs: Vec<(usize, Vec<(u32, f32)>)> = docs
            .iter()
            .map(|(l, f)| (*l, weigh(f, |k| idf.get(&k).copied())))
            .collect();
        let mut weights: HashMap<u32, Vec<f32>> = HashMap::new();
        let mut bias = vec![0f32; c];
        let (epochs, l2) = (30, 1e-4f32);
        let mut order: Vec<usize> = (0..xs.len()).collect();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for epoch in 0..epochs {
            let rate = 1.0 / (1.0 + epoch as f32 * 0.2);
            for i in (1..order.len()).rev() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                order.swap(i, (seed % (i as u64 + 1)) as usize);
            }
            for &i in &order {
                let (label, x) = &xs[i];
                let mut z = bias.clone();
                for (k, v) in x {
                    if let Some(w) = weights.get(k) {
                        for (z, w) in z.iter_mut().zip(w) {
                            *z += w * v;
                        }
                    }
                }
                let p = softmax(&z, 1.0);
                for j in 0..c {
                    let g = p[j] - if j == *label { 1.0 } else { 0.0 };
                    bias[j] -= rate * g;
                    for (k, v) in x {
                        let w = weights.entry(*k).or_insert_with(|| vec![0.0; c]);
                        w[j] -= rate * (g * v + l2 * w[j]);
                    }
                }
            }
        }
        Some(Logistic {
            labels,
            idf,
            weights,
            bias,
        })
    }

    pub fn predict(&self, text: &str) -> Prediction {
        let mut z = self.bias.clone();
        for (k, v) in weigh(&features(text), |k| self.idf.get(&k).copied()) {
            if let Some(w) = self.weights.get(&k) {
                for (z, w) in z.iter_mut().zip(w) {
                    *z += w * v;
                }
            }
        }
        let p = softmax(&z, 1.0);
        let best = argmax(&p);
        Prediction {
            label: self.labels[best].clone(),
            confidence: p[best],
        }
    }
}

/// The temperature that minimises the log-loss of held-out predictions,
/// searched on a log scale from 0.01 to 100. The targets are smoothed (the
/// true class gets 1 − ε, ε = 1/(n + 2), the others share ε): otherwise a
/// training set that cross-validation separates perfectly drives the
/// temperature to zero and every prediction, however vague, to certainty.
fn calibrate(held_out: &[(usize, Vec<f32>)]) -> f32 {
    let eps = 1.0 / (held_out.len() as f64 + 2.0);
    let loss = |t: f32| -> f64 {
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
    };
    (0..=80)
        .map(|i| 10f32.powf(-2.0 + i as f32 * 0.05))
        .map(|t| (t, loss(t)))
        .fold(
            (1.0, f64::MAX),
            |b, (t, l)| if l < b.1 { (t, l) } else { b },
        )
        .0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(label: &str, text: &str) -> Sample {
        Sample {
            label: label.into(),
            text: text.into(),
        }
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
        let m = Model::train(&corpus()).unwrap();
        assert_eq!(m.labels, vec!["car", "recipe"]);
        assert_eq!(m.counts, vec![6, 6]);
        assert_eq!(m.accuracy, Some(1.0));
        let p = m.predict("bake the cake with eggs and sugar");
        assert_eq!(p.label, "recipe");
        let vague = m.predict("the and with");
        assert!(p.confidence > vague.confidence, "{p:?} vs {vague:?}");
        assert!(vague.confidence < 0.8, "{vague:?}");
        // 12 of 12 right in cross-validation: at most 13/14.
        assert!(p.confidence <= 13.0 / 14.0 + 1e-6, "{p:?}");
        assert_eq!(m.predict("brake fluid and engine").label, "car");
    }

    #[test]
    fn logistic_regression_learns_too() {
        let m = Logistic::train(&corpus()).unwrap();
        assert_eq!(
            m.predict("bake the cake with eggs and sugar").label,
            "recipe"
        );
        assert_eq!(m.predict("brake fluid and engine").label, "car");
    }

    #[test]
    fn needs_two_labels() {
        assert!(Model::train(&[sample("a", "x y"), sample("a", "z")]).is_none());
    }

    #[test]
    fn survives_encoding() {
        let m = Model::train(&corpus()).unwrap();
        let d = Model::decode(&m.encode()).unwrap();
        assert_eq!(d, m);
        assert!(Model::decode(b"DPNB1\x02").is_none());
        assert!(Model::decode(b"nonsense").is_none());
    }

    #[test]
    fn bigrams_and_case() {
        let f = features("Amount Due amount due");
        // "amount", "due" and "amount due" twice, "due amount" once.
        assert_eq!(f.len(), 4);
        assert_eq!(f.values().filter(|&&n| n == 2).count(), 3);
    }
}
