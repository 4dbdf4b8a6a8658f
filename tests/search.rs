//! Search end to end, on documents of the shared corpus and generated
//! invoices, through the real binary: phrases rank their document first;
//! every filter's total and every facet count agrees with a count in the
//! SQLite catalog; field prefixes and comparisons; sorts and cursor pages;
//! snippets highlight and escape; stemmed words rank below exact ones;
//! one letter wrong is tolerated; a bad query is a 400 naming the place; a
//! deleted document leaves hits and facets.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use common::invoices::samples;
use common::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(120);

/// The id of a tag, created if need be (tags are made over the
/// Paperless-ngx API and set by id).
fn tag_id(s: &Server, name: &str) -> i64 {
    let (code, v) = post_json(s, "/api/tags/", serde_json::json!({ "name": name }));
    if code == 201 || code == 200 {
        return v["id"].as_i64().unwrap();
    }
    let (_, list) = get_json(&s.url("/api/tags/?page_size=100"));
    list["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("tag {name}: {v}"))["id"]
        .as_i64()
        .unwrap()
}

/// Uploads one file; once indexed, gives it tags and a date (edits the
/// index must follow); returns its id.
fn upload_with(s: &Server, name: &str, bytes: Vec<u8>, tags: &[&str], created: &str) -> String {
    let id = upload_one(s, name, bytes);
    if wait_terminal(s, &id, WAIT)["stage"] != "indexed" {
        return id;
    }
    let tags: Vec<i64> = tags.iter().map(|t| tag_id(s, t)).collect();
    let (code, v) = patch_json(
        s,
        &format!("/api/v1/documents/{id}"),
        serde_json::json!({ "tags": tags, "created": created }),
    );
    assert_eq!(code, 200, "{v}");
    id
}

fn find(s: &Server, params: &[(&str, &str)]) -> (u16, Value) {
    let url = ::reqwest::Url::parse_with_params(&s.url("/api/v1/search"), params).unwrap();
    get_json(url.as_str())
}

fn total(s: &Server, params: &[(&str, &str)]) -> u64 {
    search_ok(s, params)["total"].as_u64().unwrap()
}

/// `SELECT key, COUNT(*)` over the indexed documents, as a map.
fn counts(db: &rusqlite::Connection, sql: &str) -> BTreeMap<String, u64> {
    let mut st = db.prepare(sql).unwrap();
    st.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn facet(v: &Value, name: &str) -> BTreeMap<String, u64> {
    v["facets"][name]
        .as_object()
        .unwrap_or_else(|| panic!("no facet {name}: {v}"))
        .iter()
        .map(|(k, n)| (k.clone(), n.as_u64().unwrap()))
        .collect()
}

fn one(db: &rusqlite::Connection, sql: &str) -> u64 {
    db.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap() as u64
}

/// Five words from the middle of a text, each a plain word of three
/// letters or more, written so in the text and in no other document's:
/// a phrase only its document holds.
fn distinctive_phrase(db: &rusqlite::Connection, text: &str) -> Option<String> {
    let words: Vec<&str> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let mid = words.len() / 2;
    (mid..words.len().saturating_sub(5))
        .map(|i| words[i..i + 5].join(" "))
        .filter(|p| {
            p.split(' ')
                .all(|x| x.len() >= 3 && x.chars().all(|c| c.is_ascii_alphabetic()))
                && text.contains(p.as_str())
        })
        .take(50)
        .find(|p| {
            one_with(
                db,
                "SELECT COUNT(*) FROM texts WHERE instr(text, ?1) > 0",
                p,
            ) == 1
        })
}

fn one_with(db: &rusqlite::Connection, sql: &str, arg: &str) -> u64 {
    db.query_row(sql, [arg], |r| r.get::<_, i64>(0)).unwrap() as u64
}

#[test]
fn search_filters_facets_sorts_pages_and_stays_consistent_with_the_catalog() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, FAST_CONFIG, &[]);

    // Real documents of three kinds, tagged and dated in a pattern, and
    // generated invoices whose totals the fields rules read.
    let files = corpus_files(
        &[
            "html-python-docs",
            "markdown-crates",
            "debian-manuals/developers-reference",
        ],
        12,
    );
    let mut ids_all = Vec::new();
    for (i, p) in files.iter().enumerate() {
        let mut tags = Vec::new();
        if i % 3 == 0 {
            tags.push("Archive");
        }
        if i % 4 == 0 {
            tags.push("tax 2024");
        }
        let created = format!("{}-0{}-15", 2020 + i % 4, 1 + i % 9);
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        ids_all.push(upload_with(
            &s,
            &name,
            std::fs::read(p).unwrap(),
            &tags,
            &created,
        ));
    }
    for smp in samples(12).into_iter().filter(|x| !x.columns).take(6) {
        ids_all.push(upload_with(
            &s,
            &format!("{}.txt", smp.name),
            smp.text.into_bytes(),
            &["invoices"],
            "2024-11-02",
        ));
    }
    // Two notes that differ in one word's form, and one with markup.
    let exact = upload_with(
        &s,
        "exact.txt",
        b"The zorblax engine keeps running all night.".to_vec(),
        &[],
        "2022-02-02",
    );
    let stemmed = upload_with(
        &s,
        "stemmed.txt",
        b"The zorblax engine runs all night.".to_vec(),
        &[],
        "2022-02-02",
    );
    let markup = upload_with(
        &s,
        "markup.txt",
        b"Escaping matters: <script>alert(1)</script> & the word quixotical.".to_vec(),
        &[],
        "2022-02-02",
    );
    ids_all.extend([exact.clone(), stemmed.clone(), markup.clone()]);
    let mut indexed = Vec::new();
    for id in &ids_all {
        let d = wait_terminal(&s, id, WAIT);
        if d["stage"] == "indexed" {
            indexed.push(id.clone());
        }
    }
    assert!(indexed.len() >= 40, "{} indexed", indexed.len());
    let db = rusqlite::Connection::open_with_flags(
        Path::new(&data).join("catalog.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();

    // A distinctive phrase ranks its document first.
    let mut phrases = 0;
    for id in indexed.iter().take(30) {
        let text: String = db
            .query_row(
                "SELECT t.text FROM texts t JOIN documents d ON d.seq = t.seq WHERE d.id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        let Some(p) = distinctive_phrase(&db, &text) else {
            continue;
        };
        let v = search_ok(&s, &[("q", &format!("\"{p}\""))]);
        assert_eq!(hit_ids(&v).first(), Some(id), "phrase {p:?}: {v}");
        phrases += 1;
    }
    assert!(phrases >= 20, "only {phrases} documents had a phrase");

    // Facets over everything agree with the catalog, and so does each
    // filter's total.
    let all = search_ok(&s, &[("q", "*"), ("facets", "type,tags,year,language")]);
    let n_indexed = one(
        &db,
        "SELECT COUNT(*) FROM documents WHERE stage = 'indexed'",
    );
    assert_eq!(all["total"].as_u64().unwrap(), n_indexed, "{all}");
    assert_eq!(all["mode"], "fulltext");
    let types = counts(
        &db,
        "SELECT doc_type, COUNT(*) FROM documents WHERE stage = 'indexed'
         AND doc_type IS NOT NULL GROUP BY doc_type",
    );
    assert_eq!(facet(&all, "type"), types);
    let tags = counts(
        &db,
        "SELECT t.name, COUNT(*) FROM document_tags dt JOIN tags t ON t.id = dt.tag_id
         JOIN documents d ON d.seq = dt.doc_seq WHERE d.stage = 'indexed' GROUP BY t.name",
    );
    assert_eq!(tags.len(), 3, "{tags:?}");
    assert_eq!(facet(&all, "tags"), tags);
    let years = counts(
        &db,
        "SELECT substr(COALESCE(substr(doc_date, 1, 10), date(created_at / 1000, 'unixepoch')), 1, 4),
         COUNT(*) FROM documents WHERE stage = 'indexed' GROUP BY 1",
    );
    assert!(years.len() >= 4, "{years:?}");
    assert_eq!(facet(&all, "year"), years);
    let languages = counts(
        &db,
        "SELECT language, COUNT(*) FROM documents WHERE stage = 'indexed'
         AND language IS NOT NULL GROUP BY language",
    );
    assert_eq!(facet(&all, "language"), languages);
    for (t, n) in &types {
        assert_eq!(total(&s, &[("q", "*"), ("type", t)]), *n, "type={t}");
        assert_eq!(
            total(&s, &[("q", &format!("type:{t}"))]),
            *n,
            "type:{t} in the query"
        );
    }
    for (t, n) in &tags {
        assert_eq!(total(&s, &[("tag", t)]), *n, "tag={t}");
        assert_eq!(
            total(&s, &[("q", &format!("tag:\"{}\"", t.to_uppercase()))]),
            *n,
            "tag:{t} in the query, case-blind"
        );
    }
    let both = one(
        &db,
        "SELECT COUNT(*) FROM documents d WHERE stage = 'indexed'
         AND (SELECT COUNT(*) FROM document_tags dt JOIN tags t ON t.id = dt.tag_id
              WHERE dt.doc_seq = d.seq AND t.name IN ('Archive', 'tax 2024')) = 2",
    );
    assert!(both > 0);
    assert_eq!(total(&s, &[("tag", "Archive,tax 2024")]), both);
    let created = "COALESCE(substr(doc_date, 1, 10), date(created_at / 1000, 'unixepoch'))";
    let in_2021 = one(
        &db,
        &format!(
            "SELECT COUNT(*) FROM documents WHERE stage = 'indexed'
             AND {created} BETWEEN '2021-03-01' AND '2021-12-31'"
        ),
    );
    assert!(in_2021 > 0);
    assert_eq!(
        total(&s, &[("from", "2021-03-01"), ("to", "2021-12-31")]),
        in_2021
    );
    assert_eq!(
        total(&s, &[("q", "created>=2021-03 created<2022")]),
        in_2021
    );
    for (lang, n) in &languages {
        assert_eq!(total(&s, &[("language", lang)]), *n, "language={lang}");
    }

    // A word's facets add up with its filters.
    let word = search_ok(&s, &[("q", "package"), ("facets", "type,tags")]);
    assert!(word["total"].as_u64().unwrap() > 0, "{word}");
    for (t, n) in facet(&word, "type") {
        assert_eq!(total(&s, &[("q", "package"), ("type", &t)]), n, "type={t}");
    }
    for (t, n) in facet(&word, "tags") {
        assert_eq!(total(&s, &[("q", "package"), ("tag", &t)]), n, "tag={t}");
    }

    // Fields: a comparison, and a word in a field.
    let over_100 = one(
        &db,
        "SELECT COUNT(*) FROM doc_fields f JOIN documents d ON d.seq = f.doc_seq
         WHERE d.stage = 'indexed' AND f.name = 'total' AND CAST(f.value AS REAL) >= 100",
    );
    let with_total = one(
        &db,
        "SELECT COUNT(*) FROM doc_fields f JOIN documents d ON d.seq = f.doc_seq
         WHERE d.stage = 'indexed' AND f.name = 'total'",
    );
    assert!(with_total >= 4, "{with_total} documents with a total");
    assert_eq!(total(&s, &[("q", "total>=100")]), over_100);
    assert_eq!(
        total(&s, &[("q", "total<100")]),
        with_total - over_100,
        "the others"
    );
    let (issuer_seq, issuer): (i64, String) = db
        .query_row(
            "SELECT doc_seq, value FROM doc_fields WHERE name = 'issuer' LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("an invoice with its issuer");
    let issuer_id: String = db
        .query_row(
            "SELECT id FROM documents WHERE seq = ?1",
            [issuer_seq],
            |r| r.get(0),
        )
        .unwrap();
    let issuer_word = issuer
        .split(|c: char| !c.is_alphanumeric())
        .find(|w| w.len() >= 3)
        .unwrap();
    let v = search_ok(
        &s,
        &[("q", &format!("issuer:{issuer_word}")), ("limit", "100")],
    );
    assert!(
        hit_ids(&v).contains(&issuer_id),
        "issuer:{issuer_word}: {v}"
    );

    // Sorted by date, oldest first, and paged by cursor: every document
    // once, in the catalog's order of dates.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let v = search_ok(
            &s,
            &[
                ("q", "*"),
                ("sort", "date:asc"),
                ("limit", "7"),
                ("cursor", &cursor),
            ],
        );
        seen.extend(hit_ids(&v));
        match v["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(seen.len() as u64, n_indexed);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), seen.len());
    let dates: Vec<String> = seen
        .iter()
        .map(|id| {
            db.query_row(
                &format!("SELECT {created} FROM documents WHERE id = ?1"),
                [id],
                |r| r.get(0),
            )
            .unwrap()
        })
        .collect();
    assert!(dates.windows(2).all(|w| w[0] <= w[1]), "{dates:?}");
    // By a field, highest first; documents without it come last.
    let v = search_ok(&s, &[("q", "*"), ("sort", "total"), ("limit", "100")]);
    let totals: Vec<Option<f64>> = hit_ids(&v)
        .iter()
        .map(|id| {
            db.query_row(
                "SELECT CAST(f.value AS REAL) FROM doc_fields f JOIN documents d
                 ON d.seq = f.doc_seq WHERE d.id = ?1 AND f.name = 'total'",
                [id],
                |r| r.get(0),
            )
            .ok()
        })
        .collect();
    let known: Vec<f64> = totals.iter().map_while(|t| *t).collect();
    assert_eq!(known.len() as u64, with_total, "{totals:?}");
    assert!(known.windows(2).all(|w| w[0] >= w[1]), "{known:?}");
    let (code, v) = find(&s, &[("q", "*"), ("sort", "date"), ("cursor", &cursor)]);
    assert_eq!(
        (code, v["code"].as_str()),
        (400, Some("invalid_parameter")),
        "{v}"
    );

    // Snippets highlight the words and escape the text.
    let v = search_ok(&s, &[("q", "quixotical")]);
    assert_eq!(hit_ids(&v), std::slice::from_ref(&markup));
    let snippet = v["hits"][0]["snippet"].as_str().unwrap();
    assert!(snippet.contains("<b>quixotical</b>"), "{snippet}");
    assert!(snippet.contains("&lt;script&gt;"), "{snippet}");
    assert!(!snippet.contains("<script"), "{snippet}");
    let v = search_ok(&s, &[("q", "package"), ("limit", "20")]);
    for h in v["hits"].as_array().unwrap() {
        let sn = h["snippet"].as_str().unwrap();
        assert!(sn.contains("<b>"), "{h}");
        assert!(
            !sn.replace("<b>", "").replace("</b>", "").contains('<'),
            "{h}"
        );
    }

    // Stemming: "running" finds "runs" too, below the exact word.
    let v = search_ok(&s, &[("q", "zorblax running")]);
    assert_eq!(hit_ids(&v), [exact.clone(), stemmed.clone()], "{v}");

    // One letter wrong is tolerated, and said; not when turned off.
    let v = search_ok(&s, &[("q", "quixotocal")]);
    assert_eq!(
        (hit_ids(&v), v["fuzzy"].as_bool()),
        (vec![markup.clone()], Some(true))
    );
    assert_eq!(total(&s, &[("q", "quixotocal"), ("typos", "false")]), 0);

    // A bad query names the place; a bad parameter names itself.
    let (code, v) = find(&s, &[("q", "package AND (title:x")]);
    assert_eq!(code, 400, "{v}");
    assert_eq!(v["code"], "invalid_query");
    assert!(
        v["detail"].as_str().unwrap().contains("at character"),
        "{v}"
    );
    for (params, what) in [
        (vec![("q", "x"), ("sort", "size:up")], "sort"),
        (vec![("q", "x"), ("facets", "colour")], "facet"),
        (vec![("q", "x"), ("mode", "psychic")], "mode"),
        (vec![("q", "x"), ("from", "yesterday")], "from"),
        (vec![("q", "total>=lots")], "total"),
    ] {
        let (code, v) = find(&s, &params);
        assert_eq!(code, 400, "{params:?}: {v}");
        assert!(
            v["detail"].as_str().unwrap().contains(what),
            "{params:?}: {v}"
        );
    }
    let (code, v) = find(&s, &[]);
    assert_eq!((code, v["code"].as_str()), (400, Some("missing_query")));

    // A deleted document leaves hits, totals and facets.
    let (gone, gone_type): (String, String) = db
        .query_row(
            "SELECT d.id, d.doc_type FROM documents d WHERE d.stage = 'indexed'
             AND d.doc_type IS NOT NULL
             AND EXISTS (SELECT 1 FROM document_tags dt WHERE dt.doc_seq = d.seq) LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("a tagged, typed document");
    let (code, _, _) =
        reqwest::send(reqwest::async_client().delete(s.url(&format!("/api/v1/documents/{gone}"))));
    assert_eq!(code, 204);
    let after = search_ok(&s, &[("q", "*"), ("facets", "type,tags"), ("limit", "100")]);
    assert_eq!(after["total"].as_u64().unwrap(), n_indexed - 1);
    assert!(!hit_ids(&after).contains(&gone));
    assert_eq!(
        facet(&after, "type").get(&gone_type).copied().unwrap_or(0),
        types[&gone_type] - 1
    );
    let tags_after = counts(
        &db,
        "SELECT t.name, COUNT(*) FROM document_tags dt JOIN tags t ON t.id = dt.tag_id
         JOIN documents d ON d.seq = dt.doc_seq WHERE d.stage = 'indexed' GROUP BY t.name",
    );
    assert_eq!(facet(&after, "tags"), tags_after);
    assert_ne!(tags_after, tags);
}

/// An edit of tags or fields reaches the index: the filters see it.
#[test]
fn an_edit_of_tags_and_fields_reaches_the_filters() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), FAST_CONFIG, &[]);
    let a = upload_with(
        &s,
        "a.txt",
        b"plain words about gardening".to_vec(),
        &["Home"],
        "2023-05-01",
    );
    let b = upload_with(
        &s,
        "b.txt",
        b"more words about gardening".to_vec(),
        &["Work"],
        "2023-05-02",
    );
    for id in [&a, &b] {
        assert_eq!(wait_terminal(&s, id, WAIT)["stage"], "indexed");
    }
    assert_eq!(
        hit_ids(&search_ok(&s, &[("q", "gardening"), ("tag", "work")])),
        std::slice::from_ref(&b)
    );
    let work = tag_id(&s, "Work");
    let (code, v) = patch_json(
        &s,
        &format!("/api/v1/documents/{a}"),
        serde_json::json!({"tags": [work]}),
    );
    assert_eq!(code, 200, "{v}");
    wait_until(WAIT, "the edit indexed", || {
        total(&s, &[("q", "gardening"), ("tag", "work")]) == 2
    });
    assert_eq!(total(&s, &[("q", "gardening"), ("tag", "home")]), 0);
    let d = wait_terminal(&s, &a, WAIT);
    assert_eq!(d["stage"], "indexed");
    // The document says what it carries now.
    assert_eq!(
        d["tags"],
        serde_json::json!([{"id": work, "name": "Work"}]),
        "{d}"
    );
    assert_eq!(d["created"], "2023-05-01", "{d}");

    // Tags by name and a date at upload: a new tag is made, a known one
    // reused.
    let form = ::reqwest::multipart::Form::new()
        .part(
            "file",
            ::reqwest::multipart::Part::bytes(b"gardening in the rain".to_vec()).file_name("c.txt"),
        )
        .text("tags", "Work")
        .text("tags", "Rainy days")
        .text("created", "2020-01-02");
    let c = upload_form(&s, form);
    let d = wait_terminal(&s, &c, WAIT);
    let names: Vec<&str> = d["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Rainy days", "Work"], "{d}");
    assert_eq!(d["tags"][1]["id"], work);
    assert_eq!(d["created"], "2020-01-02");
    assert_eq!(total(&s, &[("q", "gardening"), ("tag", "work")]), 3);
    assert_eq!(
        hit_ids(&search_ok(
            &s,
            &[("tag", "rainy days"), ("to", "2020-12-31")]
        )),
        std::slice::from_ref(&c)
    );
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Deleted documents free their space (segments are merged); `docpipe
/// check` finds an index that lost documents and one that kept documents
/// the catalog no longer has, `--repair` mends both; `docpipe reindex`
/// rebuilds the index from the catalog alone.
#[test]
fn deletes_free_space_and_check_and_reindex_mend_a_damaged_index() {
    use docpipe_actors::store::index::SearchIndex;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = tmp.path().join("config.toml");
    std::fs::write(&config, FAST_CONFIG).unwrap();
    let mut s = Server::start(&data, FAST_CONFIG, &[]);
    let files = corpus_files(&["markdown-crates", "html-python-docs"], 30);
    let mut uploaded = Vec::new();
    for p in &files {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        uploaded.push(upload_one(&s, &name, std::fs::read(p).unwrap()));
    }
    let mut indexed = Vec::new();
    for id in &uploaded {
        if wait_terminal(&s, id, WAIT)["stage"] == "indexed" {
            indexed.push(id.clone());
        }
    }
    assert!(indexed.len() >= 50, "{}", indexed.len());
    let index_dir = data.join("index");
    let before = dir_bytes(&index_dir);
    let (gone, kept) = indexed.split_at(indexed.len() / 2);
    for id in gone {
        let (code, _, _) = reqwest::send(
            reqwest::async_client().delete(s.url(&format!("/api/v1/documents/{id}"))),
        );
        assert_eq!(code, 204);
    }
    assert_eq!(total(&s, &[("q", "*")]), kept.len() as u64);
    wait_until(Duration::from_secs(60), "the index to shrink", || {
        dir_bytes(&index_dir) < before * 3 / 4
    });
    eprintln!(
        "index: {before} bytes with {} documents, {} after deleting {}",
        indexed.len(),
        dir_bytes(&index_dir),
        gone.len()
    );
    s.stop();

    // Damage: three documents lost from the index, two rows gone from the
    // catalog (their index entries kept).
    {
        let idx = SearchIndex::open(&index_dir).unwrap();
        let mut w: tantivy::IndexWriter = idx.index.writer_with_num_threads(1, 15_000_000).unwrap();
        for id in &kept[..3] {
            w.delete_term(idx.id_term(id));
        }
        w.commit().unwrap();
        let db = rusqlite::Connection::open(data.join("catalog.sqlite")).unwrap();
        db.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        for id in &kept[3..5] {
            db.execute("DELETE FROM documents WHERE id = ?1", [id])
                .unwrap();
        }
    }
    let (code, out, err) = on_data_dir(&["check", "--quick"], &data, &config);
    assert_ne!(code, 0, "{out}{err}");
    for id in &kept[..3] {
        assert!(out.contains(&format!("not_in_index {id}")), "{out}");
    }
    for id in &kept[3..5] {
        assert!(out.contains(&format!("index_orphan {id}")), "{out}");
    }
    let (code, out, err) = on_data_dir(&["check", "--quick", "--repair"], &data, &config);
    assert_eq!(code, 0, "{out}{err}");
    // (Their originals, where stored as blobs, are orphans too: mended.)
    assert!(out.matches("(repaired)").count() >= 5, "{out}");
    let (code, out, err) = on_data_dir(&["check", "--quick"], &data, &config);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("agree"), "{out}");

    // The index rebuilt from the catalog alone.
    let (code, out, err) = on_data_dir(&["reindex"], &data, &config);
    assert_eq!(code, 0, "{out}{err}");
    let left = kept.len() - 2;
    assert!(
        out.contains(&format!("indexed {left} documents again")),
        "{out}"
    );
    let (code, out, err) = on_data_dir(&["check", "--quick"], &data, &config);
    assert_eq!(code, 0, "{out}{err}");
    s.restart();
    let all = search_ok(&s, &[("q", "*"), ("limit", "100")]);
    assert_eq!(all["total"].as_u64().unwrap(), left as u64);
    let found: HashSet<String> = hit_ids(&all).into_iter().collect();
    for id in &kept[5..] {
        assert!(found.contains(id), "{id} lost by reindex");
    }
}
