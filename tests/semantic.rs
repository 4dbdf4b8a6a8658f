//! Semantic search with the built-in embedder (the table `make deps`
//! distils from all-MiniLM-L6-v2), end to end through the real binary, on
//! the Reuters "acq" and "crude" articles of the labelled sets: documents
//! similar to a crude-oil article are mostly crude-oil articles; a query
//! that shares no word with its document finds it in the top five by
//! meaning and not by words (precision@5 printed); hybrid search finds
//! both kinds; vectors follow indexing, survive a restart, and leave with
//! a deleted document; the status and the documents say what is embedded.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(120);

/// The Reuters articles: (path, label).
fn reuters() -> Vec<(PathBuf, String)> {
    let root = std::env::var("CORPUS_ROOT").unwrap_or_else(|_| "/tmp/docpipe-corpus".into());
    let dir = PathBuf::from(root).join("labeled/reuters-tm");
    let labels = std::fs::read_to_string(dir.join("labels.csv"))
        .expect("the labelled sets are missing: run `make labeled` (make test does it)");
    labels
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split(',');
            Some((dir.join(f.next()?), f.next()?.to_string()))
        })
        .collect()
}

fn embed_status(s: &Server) -> Value {
    get_json(&s.url("/api/v1/status")).1["embed"].clone()
}

fn wait_embedded(s: &Server, docs: u64) {
    wait_until(WAIT, "every document embedded", || {
        let e = embed_status(s);
        e["pending"] == 0 && e["documents"].as_u64() == Some(docs)
    });
}

/// (file, query): the query shares no word with the article, which the
/// test checks.
const PARAPHRASES: &[(&str, &str)] = &[
    ("crude/reut-00016.txt", "vessel collision harbour"),
    ("crude/reut-00010.txt", "emirate spending plan"),
    ("crude/reut-00023.txt", "petroleum declines latin america"),
    ("acq/reut-00032.txt", "inn disposal"),
    ("acq/reut-00029.txt", "lawsuit seeking compensation"),
    (
        "acq/reut-00048.txt",
        "bullion digging venture south america",
    ),
    ("acq/reut-00018.txt", "japanese steelmakers combining"),
    ("acq/reut-00014.txt", "central bank clears thrift"),
    ("acq/reut-00049.txt", "horticulture purchase"),
];

fn words(text: &str) -> HashSet<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn meaning_finds_what_words_cannot_and_similar_articles_share_a_topic() {
    let tmp = tempfile::tempdir().unwrap();
    let config = format!("{FAST_CONFIG}\n[embed]\ntable = {:?}\n", embed_table());
    let mut s = Server::start(&tmp.path().join("data"), &config, &[]);
    let articles = reuters();
    let mut label_of: HashMap<String, String> = HashMap::new();
    let mut id_of: HashMap<String, String> = HashMap::new();
    for (path, label) in &articles {
        let name = path.file_name().unwrap().to_str().unwrap();
        let id = upload_one(&s, name, std::fs::read(path).unwrap());
        let rel = path
            .strip_prefix(path.parent().unwrap().parent().unwrap())
            .unwrap();
        id_of.insert(rel.to_str().unwrap().to_string(), id.clone());
        label_of.insert(id, label.clone());
    }
    for id in id_of.values() {
        assert_eq!(wait_terminal(&s, id, WAIT)["stage"], "indexed");
    }
    let n = articles.len() as u64;
    wait_embedded(&s, n);
    let e = embed_status(&s);
    assert_eq!(e["backend"], "builtin", "{e}");
    assert_eq!(e["available"], true, "{e}");
    assert!(e["passages"].as_u64().unwrap() >= n, "{e}");
    assert_eq!(doc(&s, id_of.values().next().unwrap())["embedded"], true);

    // Similar documents of each crude article: mostly crude (a fifth of
    // the articles are).
    let crude: Vec<&String> = label_of
        .iter()
        .filter(|(_, l)| *l == "crude")
        .map(|(id, _)| id)
        .collect();
    let base = crude.len() as f64 / n as f64;
    let mut precision = 0.0;
    for id in &crude {
        let (code, v) = get_json(&s.url(&format!("/api/v1/documents/{id}/similar?limit=5")));
        assert_eq!(code, 200, "{v}");
        let hits = v["hits"].as_array().or(v.as_array()).unwrap().clone();
        assert_eq!(hits.len(), 5, "{v}");
        assert!(
            hits.iter().all(|h| h["id"] != **id),
            "a document is not its own neighbour"
        );
        let same = hits
            .iter()
            .filter(|h| label_of[h["id"].as_str().unwrap()] == "crude")
            .count();
        precision += same as f64 / 5.0;
    }
    precision /= crude.len() as f64;
    println!(
        "similar documents of {} crude articles: {:.0}% crude (base rate {:.0}%)",
        crude.len(),
        precision * 100.0,
        base * 100.0
    );
    assert!(
        precision >= 0.6,
        "precision@5 of similar crude articles: {precision:.2}"
    );

    // Paraphrases: no shared word, found by meaning, not by words.
    let mut found = 0;
    for (file, q) in PARAPHRASES {
        let id = &id_of[*file];
        let path = articles
            .iter()
            .find(|(p, _)| p.ends_with(file))
            .map(|(p, _)| p.clone())
            .unwrap();
        let text = words(&std::fs::read_to_string(path).unwrap());
        let shared: Vec<String> = words(q).intersection(&text).cloned().collect();
        assert!(shared.is_empty(), "{q:?} shares {shared:?} with {file}");
        let by_words = search_ok(&s, &[("q", q), ("mode", "fulltext"), ("limit", "5")]);
        assert!(
            !hit_ids(&by_words).contains(id),
            "{q:?} found {file} by words: {by_words}"
        );
        let by_meaning = search_ok(&s, &[("q", q), ("mode", "semantic"), ("limit", "5")]);
        assert_eq!(by_meaning["mode"], "semantic");
        let rank = hit_ids(&by_meaning).iter().position(|h| h == id);
        println!("{q:?} → {file}: semantic rank {rank:?}");
        found += rank.is_some() as usize;
    }
    let p5 = found as f64 / PARAPHRASES.len() as f64;
    println!(
        "paraphrase precision@5: semantic {p5:.2}, full-text 0.00 ({} pairs)",
        PARAPHRASES.len()
    );
    assert!(
        p5 >= 0.75,
        "paraphrases found by meaning: {found} of {}",
        PARAPHRASES.len()
    );

    // Hybrid is the default once vectors exist: a word match and a
    // meaning match both come back, and the filters still hold.
    let word_hit = &id_of["crude/reut-00016.txt"];
    let v = search_ok(&s, &[("q", "tanker vessel collision"), ("limit", "10")]);
    assert_eq!(v["mode"], "hybrid", "{v}");
    assert_eq!(hit_ids(&v)[0], *word_hit, "{v}");
    let v = search_ok(
        &s,
        &[
            ("q", "emirate spending plan"),
            ("mode", "hybrid"),
            ("limit", "5"),
        ],
    );
    assert!(hit_ids(&v).contains(&id_of["crude/reut-00010.txt"]), "{v}");
    let v = search_ok(
        &s,
        &[("q", "oil"), ("mode", "semantic"), ("type", "no-such-type")],
    );
    assert_eq!(v["total"], 0, "{v}");
    // A semantic hit shows its passage, escaped.
    let v = search_ok(
        &s,
        &[("q", "inn disposal"), ("mode", "semantic"), ("limit", "5")],
    );
    let hit = v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] == id_of["acq/reut-00032.txt"])
        .unwrap()
        .clone();
    assert!(
        hit["snippet"].as_str().unwrap().contains("Marriott"),
        "{hit}"
    );

    // Vectors come back from SQLite after a restart; a deleted document
    // leaves the semantic hits at once.
    s.stop();
    s.restart();
    assert_eq!(embed_status(&s)["documents"], n);
    let target = &id_of["crude/reut-00016.txt"];
    let before = search_ok(
        &s,
        &[("q", "vessel collision harbour"), ("mode", "semantic")],
    );
    assert!(hit_ids(&before).contains(target));
    let (code, _, _) = reqwest::send(
        reqwest::async_client().delete(s.url(&format!("/api/v1/documents/{target}"))),
    );
    assert!(code == 200 || code == 204, "delete: {code}");
    let after = search_ok(
        &s,
        &[("q", "vessel collision harbour"), ("mode", "semantic")],
    );
    assert!(!hit_ids(&after).contains(target), "{after}");
    wait_embedded(&s, n - 1);

    // Vectors lost behind the server's back: `docpipe check` finds them,
    // `--repair` has the document embedded again.
    s.stop();
    let data = tmp.path().join("data");
    let damaged = &id_of["crude/reut-00010.txt"];
    {
        let db = rusqlite::Connection::open(data.join("catalog.sqlite")).unwrap();
        let gone = db
            .execute(
                "DELETE FROM chunks WHERE doc_seq = (SELECT seq FROM documents WHERE id = ?1)",
                [damaged],
            )
            .unwrap();
        assert!(gone >= 1);
    }
    let config_path = data.with_extension("toml");
    let (code, out, err) = on_data_dir(&["check"], &data, &config_path);
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("vectors_missing {damaged}")),
        "{out}{err}"
    );
    let (_, out, err) = on_data_dir(&["check", "--repair"], &data, &config_path);
    assert!(out.contains("(repaired)"), "{out}{err}");
    s.restart();
    wait_embedded(&s, n - 1);
    let v = search_ok(
        &s,
        &[
            ("q", "emirate spending plan"),
            ("mode", "semantic"),
            ("limit", "5"),
        ],
    );
    assert!(hit_ids(&v).contains(damaged), "{v}");
    s.stop();
    let (code, out, err) = on_data_dir(&["check"], &data, &config_path);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("{} documents with vectors", n - 1)),
        "{out}{err}"
    );
}

#[test]
fn without_a_table_semantic_search_is_a_409_and_hybrid_falls_back() {
    let tmp = tempfile::tempdir().unwrap();
    let config = format!("{FAST_CONFIG}\n[embed]\ntable = \"/nonexistent/table.dpemb\"\n");
    let s = Server::start(&tmp.path().join("data"), &config, &[]);
    let id = upload_one(
        &s,
        "a.txt",
        b"Crude oil prices fell sharply today.".to_vec(),
    );
    assert_eq!(wait_terminal(&s, &id, WAIT)["stage"], "indexed");
    let e = embed_status(&s);
    assert_eq!(e["available"], false, "{e}");
    assert!(
        e["problem"].as_str().unwrap().contains("distill-embedder"),
        "{e}"
    );
    let url = ::reqwest::Url::parse_with_params(
        &s.url("/api/v1/search"),
        &[("q", "petroleum"), ("mode", "semantic")],
    )
    .unwrap();
    let (code, v) = get_json(url.as_str());
    assert_eq!(code, 409, "{v}");
    assert_eq!(v["code"], "no_embeddings", "{v}");
    let v = search_ok(&s, &[("q", "crude"), ("mode", "hybrid")]);
    assert_eq!(v["mode"], "fulltext", "{v}");
    assert_eq!(hit_ids(&v).as_slice(), std::slice::from_ref(&id));
    assert_eq!(doc(&s, &id)["embedded"], false);

    // Asking without Ollama: the documented 409, with the passages.
    let (code, v) = post_json(
        &s,
        "/api/v1/ask",
        serde_json::json!({"question": "Why did crude prices fall?"}),
    );
    assert_eq!(
        (code, v["code"].as_str()),
        (409, Some("llm_unavailable")),
        "{v}"
    );
    assert!(
        v["detail"].as_str().unwrap().contains("ollama.endpoints"),
        "{v}"
    );
    assert_eq!(v["citations"][0]["id"], id.as_str(), "{v}");
    assert_eq!(v["citations"][0]["page"], 1, "{v}");
    assert!(
        v["citations"][0]["snippet"]
            .as_str()
            .unwrap()
            .contains("Crude oil prices"),
        "{v}"
    );
}
