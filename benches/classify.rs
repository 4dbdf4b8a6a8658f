//! Classifier accuracy through the API (`make bench`).
//!
//! For each labelled set of `../shared/scripts/fetch-labeled.sh`
//! (SpamAssassin ham/spam, Reuters acq/crude) and each k in 5, 10, 50: a
//! fresh server with no configured types; k documents per class (a fixed
//! shuffle) are uploaded and typed by hand with `PATCH`, the classifier
//! retrains, then the rest are uploaded and typed by it. Prints macro-F1,
//! accuracy, the mean confidence and the share flagged `needs_review`.
//! Target: SpamAssassin with k = 50, macro-F1 ≥ 0.95.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};

mod common;

struct Server {
    served: common::Served,
    _dir: tempfile::TempDir,
}

fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "types = []\n[pipeline.classify]\nretrain_delay_ms = 300\n[index]\ncommit_interval_ms = 100\n",
    )
    .unwrap();
    let served = common::serve(|cmd| {
        cmd.arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            // Attachments of the mails that fail (broken images) would log.
            .stderr(std::process::Stdio::null());
    });
    Server { served, _dir: dir }
}

impl Server {
    async fn get(&self, path: &str) -> Value {
        self.served
            .client
            .get(format!("{}{path}", self.served.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Uploads the files 16 at a time; their document ids, in order.
    async fn upload(&self, files: &[PathBuf]) -> Vec<String> {
        futures::stream::iter(files)
            .map(|path| async move {
                let part = reqwest::multipart::Part::bytes(std::fs::read(path).unwrap())
                    .file_name(path.file_name().unwrap().to_string_lossy().into_owned());
                let v: Value = self
                    .served
                    .client
                    .post(format!("{}/api/v1/documents", self.served.base))
                    .multipart(reqwest::multipart::Form::new().part("file", part))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                v["documents"][0]["id"]
                    .as_str()
                    .unwrap_or_else(|| panic!("upload of {}: {v}", path.display()))
                    .to_string()
            })
            .buffered(16)
            .collect()
            .await
    }

    /// Waits until no document is in an active stage.
    async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(1800);
        loop {
            let st = self.get("/api/v1/status").await;
            let active: u64 = ["queued", "extracted", "classified", "enriched"]
                .iter()
                .map(|s| st["stages"][s]["documents"].as_u64().unwrap_or(0))
                .sum();
            if active == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "the pipeline did not settle");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// (path, label) of a labelled set.
fn labelled(dir: &Path) -> Vec<(PathBuf, String)> {
    let csv = std::fs::read_to_string(dir.join("labels.csv")).unwrap_or_default();
    csv.lines()
        .skip(1)
        .filter_map(|l| {
            let mut cols = l.split(',');
            Some((dir.join(cols.next()?), cols.next()?.to_string()))
        })
        .collect()
}

/// A fixed shuffle (xorshift), so every run trains on the same documents.
fn shuffle<T>(v: &mut [T]) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
}

struct Outcome {
    train: usize,
    test: usize,
    macro_f1: f64,
    accuracy: f64,
    mean_confidence: f64,
    review: f64,
    cv_accuracy: Option<f64>,
    secs: f64,
}

async fn run(set: &[(PathBuf, String)], k: usize) -> Outcome {
    let started = Instant::now();
    let s = start();
    let mut per_class: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (path, label) in set {
        let n = per_class.entry(label).or_default();
        if *n < k {
            *n += 1;
            train.push((path.clone(), label.clone()));
        } else {
            test.push((path.clone(), label.clone()));
        }
    }
    let paths: Vec<PathBuf> = train.iter().map(|(p, _)| p.clone()).collect();
    let ids = s.upload(&paths).await;
    s.settle().await;
    for (id, (_, label)) in ids.iter().zip(&train) {
        let r = s
            .served
            .client
            .patch(format!("{}/api/v1/documents/{id}", s.served.base))
            .json(&json!({ "doc_type": label }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "PATCH {id}: {}", r.status());
    }
    let learned: HashSet<&String> = ids.iter().collect();
    let deadline = Instant::now() + Duration::from_secs(600);
    let info = loop {
        let c = s.get("/api/v1/classifier").await;
        if c["samples"].as_u64() == Some(learned.len() as u64) {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "the classifier did not train: {c}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let paths: Vec<PathBuf> = test.iter().map(|(p, _)| p.clone()).collect();
    let ids = s.upload(&paths).await;
    s.settle().await;
    let docs: Vec<Value> = futures::stream::iter(&ids)
        .map(|id| s.get_owned(id))
        .buffered(16)
        .collect()
        .await;
    // Duplicates of training documents (same bytes) are not predictions.
    let mut seen = HashSet::new();
    let pairs: Vec<(&str, Option<&str>, f64, bool)> = docs
        .iter()
        .zip(&test)
        .filter(|(d, _)| {
            let id = d["id"].as_str().unwrap_or_default().to_string();
            !learned.contains(&id) && seen.insert(id)
        })
        .map(|(d, (_, label))| {
            (
                label.as_str(),
                d["doc_type"].as_str(),
                d["confidence"].as_f64().unwrap_or(0.0),
                d["needs_review"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    let labels: Vec<&str> = per_class.keys().copied().collect();
    let f1s: Vec<f64> = labels
        .iter()
        .map(|&l| {
            let tp = pairs.iter().filter(|p| p.0 == l && p.1 == Some(l)).count() as f64;
            let fp = pairs.iter().filter(|p| p.0 != l && p.1 == Some(l)).count() as f64;
            let fn_ = pairs.iter().filter(|p| p.0 == l && p.1 != Some(l)).count() as f64;
            if tp == 0.0 {
                0.0
            } else {
                2.0 * tp / (2.0 * tp + fp + fn_)
            }
        })
        .collect();
    let n = pairs.len() as f64;
    Outcome {
        train: learned.len(),
        test: pairs.len(),
        macro_f1: f1s.iter().sum::<f64>() / f1s.len() as f64,
        accuracy: pairs.iter().filter(|p| Some(p.0) == p.1).count() as f64 / n,
        mean_confidence: pairs.iter().map(|p| p.2).sum::<f64>() / n,
        review: pairs.iter().filter(|p| p.3).count() as f64 / n,
        cv_accuracy: info["accuracy"].as_f64(),
        secs: started.elapsed().as_secs_f64(),
    }
}

impl Server {
    async fn get_owned(&self, id: &String) -> Value {
        self.get(&format!("/api/v1/documents/{id}")).await
    }
}

fn main() {
    let root = PathBuf::from(
        std::env::var("CORPUS_ROOT").unwrap_or_else(|_| "/tmp/docpipe-corpus".into()),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    println!("Classifier accuracy through the API (train k per class by PATCH, predict the rest):");
    println!(
        "{:<14} {:>3} {:>6} {:>6} {:>9} {:>9} {:>8} {:>8} {:>8} {:>7}",
        "set",
        "k",
        "train",
        "test",
        "macro-F1",
        "accuracy",
        "cv acc",
        "mean conf",
        "review",
        "secs"
    );
    let mut spam50 = None;
    for name in ["spamassassin", "reuters-tm"] {
        let mut set = labelled(&root.join("labeled").join(name));
        if set.is_empty() {
            println!("{name}: missing; run ../shared/scripts/fetch-labeled.sh (make bench does)");
            continue;
        }
        shuffle(&mut set);
        let mut sizes: HashMap<&str, usize> = HashMap::new();
        for (_, l) in &set {
            *sizes.entry(l).or_default() += 1;
        }
        let smallest = sizes.values().copied().min().unwrap_or(0);
        for k in [5, 10, 50] {
            if k >= smallest {
                println!("{name:<14} {k:>3}  (a class has only {smallest} documents)");
                continue;
            }
            let o = rt.block_on(run(&set, k));
            println!(
                "{:<14} {:>3} {:>6} {:>6} {:>9.3} {:>9.3} {:>8} {:>9.2} {:>7.0}% {:>7.1}",
                name,
                k,
                o.train,
                o.test,
                o.macro_f1,
                o.accuracy,
                o.cv_accuracy.map_or("-".to_string(), |a| format!("{a:.3}")),
                o.mean_confidence,
                o.review * 100.0,
                o.secs
            );
            if name == "spamassassin" && k == 50 {
                spam50 = Some(o.macro_f1);
            }
        }
    }
    if let Some(f1) = spam50 {
        println!(
            "SpamAssassin, k = 50: macro-F1 {f1:.3} (target ≥ 0.95: {})",
            if f1 >= 0.95 { "met" } else { "MISSED" }
        );
    }
}
