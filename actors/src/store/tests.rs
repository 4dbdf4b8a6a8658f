//! Tests of the SQL: migrations, dedup, conditional advances, scopes.
use rusqlite::Connection;

use super::documents::*;
use super::events::*;
use super::pool::ReadPool;
use super::queue::*;
use super::schema::*;
use crate::model::{ErrorInfo, NewDocument, Origin, RetryOutcome, Scope, Stage};

fn new_doc(id: &str, sha: &str) -> NewDocument {
    NewDocument {
        id: id.into(),
        workspace: "default".into(),
        filename: format!("{id}.txt"),
        title: None,
        mime: "text/plain".into(),
        size: 3,
        sha256: sha.into(),
        inline: Some(bytes::Bytes::from_static(b"abc")),
        extra: Default::default(),
    }
}

fn o() -> Origin {
    Origin {
        token_id: Some("tok".into()),
        request_id: Some("req".into()),
    }
}

#[test]
fn cached_statements_are_not_parsed_again_for_new_bindings() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = open_writer(&dir.path().join("c.sqlite"), "normal").unwrap();
    let tx = conn.transaction().unwrap();
    for i in 0..20 {
        write_insert(&tx, &new_doc(&format!("d{i}"), &format!("s{i}")), &o(), 0).unwrap();
    }
    tx.commit().unwrap();
    let reader = ReadPool::new(dir.path().join("c.sqlite")).take().unwrap();
    // A LIMIT bound to a parameter, and a parameter beside a column that
    // a partial index mentions: both made SQLite re-parse on each binding.
    let queries = [
        "SELECT id FROM documents WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        "SELECT id FROM documents WHERE needs_ocr = ?2 AND seq > ?1",
    ];
    for sql in queries {
        let mut st = reader.prepare_cached(sql).unwrap();
        for i in 0..10i64 {
            let n = st
                .query_map([i, i % 3], |r| r.get::<_, String>(0))
                .unwrap()
                .count();
            assert!(n <= 20);
        }
        let again = st.get_status(rusqlite::StatementStatus::RePrepare);
        assert_eq!(again, 0, "{sql} was prepared again {again} times");
    }
}

#[test]
fn workspaces_scope_reads_and_dedup() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = open_writer(&dir.path().join("c.sqlite"), "normal").unwrap();
    let tx = conn.transaction().unwrap();
    let mut b = new_doc("b", "s1");
    b.workspace = "acme".into();
    write_insert(&tx, &new_doc("a", "s1"), &o(), 1).unwrap();
    // The same bytes in another workspace are a new document there.
    assert!(matches!(
        write_insert(&tx, &b, &o(), 2).unwrap(),
        Inserted::New
    ));
    tx.commit().unwrap();
    let acme = Scope::only(["acme"]);
    assert!(get_document(&conn, "a", &acme).unwrap().is_none());
    assert_eq!(
        get_document(&conn, "b", &acme).unwrap().unwrap().workspace,
        "acme"
    );
    assert!(events_for(&conn, "a", &acme).unwrap().is_empty());
    let ev = events_for(&conn, "b", &acme).unwrap();
    assert_eq!(ev[0].kind, "uploaded");
    assert_eq!(ev[0].token_id.as_deref(), Some("tok"));
    assert_eq!(ev[0].request_id.as_deref(), Some("req"));
    let f = ListFilter {
        scope: Some(acme.clone()),
        limit: 10,
        ..Default::default()
    };
    let ids: Vec<_> = list_documents(&conn, &f)
        .unwrap()
        .0
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ids, ["b"]);
    assert_eq!(stage_counts(&conn, &acme).unwrap(), [(Stage::Queued, 1)]);
    assert_eq!(
        stage_counts(&conn, &Scope::All).unwrap(),
        [(Stage::Queued, 2)]
    );
    assert_eq!(
        audit_events(&conn, Some("acme"), None, None, 10)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(audit_events(&conn, None, None, None, 10).unwrap().len(), 2);
}

#[test]
fn migration_3_keeps_every_row_and_puts_it_in_the_default_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.sqlite");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(MIGRATIONS[1]).unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        conn.execute_batch(
            "INSERT INTO documents (seq, id, filename, mime, size, sha256, stage, created_at, updated_at)
               VALUES (7, 'old', 'old.txt', 'text/plain', 3, 'sha', 'indexed', 1, 1);
             INSERT INTO texts (seq, text) VALUES (7, 'old text');
             INSERT INTO originals (seq, bytes) VALUES (7, x'616263');
             INSERT INTO events (doc_id, kind, at) VALUES ('old', 'uploaded', 1);",
        )
        .unwrap();
    }
    let conn = open_writer(&path, "full").unwrap();
    let d = get_document(&conn, "old", &Scope::only(["default"]))
        .unwrap()
        .unwrap();
    assert_eq!(
        (d.seq, d.stage, d.workspace.as_str()),
        (7, Stage::Indexed, "default")
    );
    assert_eq!(
        get_text(&conn, "old", &Scope::All).unwrap().as_deref(),
        Some("old text")
    );
    assert_eq!(
        get_inline_original(&conn, "old").unwrap().as_deref(),
        Some(&b"abc"[..])
    );
    assert_eq!(
        events_for(&conn, "old", &Scope::only(["default"]))
            .unwrap()
            .len(),
        1
    );
    // The foreign keys survived the rebuild: deleting cascades.
    conn.execute("DELETE FROM documents WHERE seq = 7", [])
        .unwrap();
    let left: i64 = conn
        .query_row("SELECT COUNT(*) FROM texts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
}

#[test]
fn migrations_run_once_and_reopen_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.sqlite");
    drop(open_writer(&path, "full").unwrap());
    let conn = open_writer(&path, "full").unwrap();
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v as usize, MIGRATIONS.len());
}

#[test]
fn insert_dedups_by_sha_and_advance_is_conditional() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = open_writer(&dir.path().join("c.sqlite"), "normal").unwrap();
    let tx = conn.transaction().unwrap();
    assert!(matches!(
        write_insert(&tx, &new_doc("a", "s1"), &o(), 1).unwrap(),
        Inserted::New
    ));
    match write_insert(&tx, &new_doc("b", "s1"), &o(), 2).unwrap() {
        Inserted::Duplicate(d) => assert_eq!(d.id, "a"),
        Inserted::New => panic!("same sha inserted twice"),
    }
    let seq = get_document(&tx, "a", &Scope::All).unwrap().unwrap().seq;
    assert_eq!(
        get_inline_original(&tx, "a").unwrap().as_deref(),
        Some(&b"abc"[..])
    );
    assert!(write_advance(&tx, seq, Stage::Queued, Stage::Extracted, 3).unwrap());
    // A stale completion of the same stage changes nothing.
    assert!(!write_advance(&tx, seq, Stage::Queued, Stage::Extracted, 4).unwrap());
    tx.commit().unwrap();
    assert_eq!(
        get_document(&conn, "a", &Scope::All)
            .unwrap()
            .unwrap()
            .stage,
        Stage::Extracted
    );
}

#[test]
fn failure_parks_and_retry_restores_the_failed_stage() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = open_writer(&dir.path().join("c.sqlite"), "normal").unwrap();
    let tx = conn.transaction().unwrap();
    write_insert(&tx, &new_doc("a", "s1"), &o(), 1).unwrap();
    let seq = get_document(&tx, "a", &Scope::All).unwrap().unwrap().seq;
    let err = ErrorInfo::new("timeout", "parser took too long");
    assert!(write_failure(&tx, seq, Stage::Queued, 1, Some(100), &err, 2).unwrap());
    assert_eq!(
        ready_documents(&tx, 50, 10).unwrap().len(),
        0,
        "not due before retry_at"
    );
    assert_eq!(ready_documents(&tx, 100, 10).unwrap().len(), 1);
    assert_eq!(earliest_retry(&tx).unwrap(), Some(100));
    assert!(write_failure(&tx, seq, Stage::Queued, 2, None, &err, 3).unwrap());
    let d = get_document(&tx, "a", &Scope::All).unwrap().unwrap();
    assert_eq!((d.stage, d.attempts), (Stage::Failed, 2));
    assert_eq!(d.error, Some(err));
    assert!(matches!(
        write_retry(&tx, "a", &Scope::only(["elsewhere"]), &o(), 4).unwrap(),
        RetryOutcome::NotFound
    ));
    assert!(matches!(
        write_retry(&tx, "a", &Scope::All, &o(), 4).unwrap(),
        RetryOutcome::Requeued(Stage::Queued)
    ));
    let d = get_document(&tx, "a", &Scope::All).unwrap().unwrap();
    assert_eq!((d.stage, d.attempts, d.error), (Stage::Queued, 0, None));
}

#[test]
fn list_pages_by_keyset_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = open_writer(&dir.path().join("c.sqlite"), "normal").unwrap();
    let tx = conn.transaction().unwrap();
    for i in 0..5 {
        write_insert(&tx, &new_doc(&format!("d{i}"), &format!("s{i}")), &o(), i).unwrap();
    }
    tx.commit().unwrap();
    let mut f = ListFilter {
        limit: 2,
        ..Default::default()
    };
    let mut seen = Vec::new();
    loop {
        let (page, next) = list_documents(&conn, &f).unwrap();
        seen.extend(page.into_iter().map(|d| d.id));
        match next {
            Some(c) => f.after_seq = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, ["d4", "d3", "d2", "d1", "d0"]);
}

/// What a migration writes with a document: the number it asks for (if
/// free), values set by hand, notes, where it came from (also for a
/// duplicate), and metadata that typing and enrichment leave alone.
#[test]
fn a_brought_document_keeps_its_number_metadata_and_origin() {
    use super::edits::write_found_fields;
    use super::labels::{list_labels, LabelFilter, LabelKind};
    use crate::model::{Classification, Found, Kind, NewNote, UserField};
    let dir = tempfile::tempdir().unwrap();
    let mut conn = open_writer(&dir.path().join("c.sqlite"), "normal").unwrap();
    let tx = conn.transaction().unwrap();
    write_insert(&tx, &new_doc("first", "s0"), &o(), 0).unwrap();
    let brought = |id: &str, sha: &str, number: i64| {
        let mut d = new_doc(id, sha);
        d.extra.number = Some(number);
        d.extra.keep_metadata = true;
        d.extra.imported_from = Some(("paperless:x".into(), number));
        d.extra.fields = vec![(
            "issuer".into(),
            UserField {
                kind: Kind::Party,
                value: "Acme Bank".into(),
                currency: None,
            },
        )];
        d.extra.notes = vec![NewNote {
            note: "checked".into(),
            author: "ann".into(),
            created_at: Some(1_000),
        }];
        d
    };
    write_insert(&tx, &brought("b40", "s40", 40), &o(), 5).unwrap();
    // Number 1 is taken (by "first"): the next free one.
    write_insert(&tx, &brought("b1", "s1", 1), &o(), 6).unwrap();
    // The same bytes again: not a document, but remembered as brought.
    write_insert(&tx, &brought("again", "s40", 77), &o(), 7).unwrap();
    let class = Classification {
        doc_type: Some("invoice".into()),
        confidence: 0.9,
        source: Some("rule".into()),
        ..Default::default()
    };
    let seq40 = get_document(&tx, "b40", &Scope::All).unwrap().unwrap().seq;
    let kept = write_classification(&tx, seq40, &class, 8).unwrap();
    assert_eq!(kept.doc_type, None, "no type came with it: none is given");
    let found = Found {
        name: "total".into(),
        kind: Kind::Money,
        value: "12.00".into(),
        currency: None,
        confidence: 0.9,
        source: "rule",
    };
    write_found_fields(&tx, seq40, &[found], 9).unwrap();
    tx.commit().unwrap();

    let d40 = get_document(&conn, "b40", &Scope::All).unwrap().unwrap();
    assert_eq!(d40.seq, 40);
    let names: Vec<&str> = d40.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["issuer"], "found fields are not added");
    let d1 = get_document(&conn, "b1", &Scope::All).unwrap().unwrap();
    assert_eq!(d1.seq, 41, "number 1 was taken");
    let x = extras_of(&conn, &d40).unwrap();
    assert_eq!(x.notes.len(), 1);
    assert_eq!(
        (x.notes[0].author.as_str(), x.notes[0].note.as_str()),
        ("ann", "checked")
    );
    assert!(x.issuer_id.is_some());
    let mut from = imported_from(&conn, "paperless:x").unwrap();
    from.sort();
    assert_eq!(
        from,
        [
            (1, "b1".to_string()),
            (40, "b40".to_string()),
            (77, "b40".to_string())
        ]
    );
    let (n, issuers) = list_labels(
        &conn,
        LabelKind::Issuer,
        &Scope::All,
        &LabelFilter {
            name_contains: Some("acme".into()),
            ..Default::default()
        },
        0,
        10,
    )
    .unwrap();
    assert_eq!((n, issuers[0].document_count), (1, 2));
    let q = DocQuery {
        issuers: Some(vec![issuers[0].id]),
        order: Some((DocOrder::Number, false)),
        ..Default::default()
    };
    let (total, _, numbers) = query_documents(&conn, &Scope::All, &q, 0, 10).unwrap();
    assert_eq!((total, numbers), (2, vec![40, 41]));
}
