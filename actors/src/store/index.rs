//! The Tantivy index: schema, opening, and the query side. Only the id is
//! stored; titles and snippet text come from SQLite for the top hits, so the
//! text is not kept twice. The Indexer actor is the only writer.

use std::path::Path;

use anyhow::{Context, Result};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, MoreLikeThisQuery, Occur, Query, QueryParser, TermSetQuery};
use tantivy::schema::{Field, OwnedValue, Schema, Value, STORED, STRING, TEXT};

use crate::model::Scope;
use tantivy::{DocAddress, Index, IndexReader, ReloadPolicy, TantivyDocument, Term};

#[derive(Clone, Copy, Debug)]
pub struct Fields {
    pub id: Field,
    pub title: Field,
    pub filename: Field,
    pub body: Field,
    pub doc_type: Field,
    pub workspace: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let fields = Fields {
        id: b.add_text_field("id", STRING | STORED),
        title: b.add_text_field("title", TEXT),
        filename: b.add_text_field("filename", TEXT),
        body: b.add_text_field("body", TEXT),
        doc_type: b.add_text_field("doc_type", STRING),
        workspace: b.add_text_field("workspace", STRING),
    };
    (b.build(), fields)
}

/// The index, a manually reloaded reader (the Indexer reloads it after each
/// commit, so a committed document is visible as soon as it is `indexed`).
#[derive(Clone)]
pub struct SearchIndex {
    pub index: Index,
    pub reader: IndexReader,
    pub fields: Fields,
}

impl SearchIndex {
    /// Opens the index, or creates it. An index written with another schema
    /// (an older docpipe) is set aside and a new one created: `rebuilt` says
    /// so, and the caller sends the documents through indexing again, from the
    /// text SQLite keeps.
    pub fn open(dir: &Path) -> Result<Self> {
        Ok(Self::open_or_rebuild(dir)?.0)
    }

    pub fn open_or_rebuild(dir: &Path) -> Result<(Self, bool)> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create index directory {}", dir.display()))?;
        let (schema, fields) = schema();
        let mut rebuilt = false;
        if dir.join("meta.json").exists() {
            let old = Index::open_in_dir(dir).context("cannot open the search index")?;
            if old.schema() != schema {
                drop(old);
                let aside = dir.with_extension("old");
                let _ = std::fs::remove_dir_all(&aside);
                std::fs::rename(dir, &aside).with_context(|| {
                    format!("cannot move the outdated index to {}", aside.display())
                })?;
                std::fs::create_dir_all(dir)?;
                std::fs::remove_dir_all(&aside)?;
                rebuilt = true;
            }
        }
        let mmap = tantivy::directory::MmapDirectory::open(dir)
            .with_context(|| format!("cannot open index directory {}", dir.display()))?;
        let index = Index::open_or_create(mmap, schema).context("cannot open the search index")?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .context("cannot open an index reader")?;
        Ok((
            SearchIndex {
                index,
                reader,
                fields,
            },
            rebuilt,
        ))
    }

    pub fn id_term(&self, id: &str) -> Term {
        Term::from_field_text(self.fields.id, id)
    }

    pub fn make_doc(
        &self,
        id: &str,
        workspace: &str,
        title: &str,
        filename: &str,
        body: &str,
        doc_type: Option<&str>,
    ) -> TantivyDocument {
        let f = self.fields;
        let mut d = TantivyDocument::default();
        d.add_text(f.id, id);
        d.add_text(f.workspace, workspace);
        d.add_text(f.title, title);
        d.add_text(f.filename, filename);
        d.add_text(f.body, body);
        if let Some(t) = doc_type {
            d.add_text(f.doc_type, t);
        }
        d
    }

    /// The query parser; `typos`: each word also matches words one edit
    /// (a letter wrong, missing, extra or two swapped) away.
    fn parser(&self, typos: bool) -> QueryParser {
        let f = self.fields;
        let mut p = QueryParser::for_index(&self.index, vec![f.title, f.body, f.filename]);
        p.set_conjunction_by_default();
        p.set_field_boost(f.title, 2.0);
        if typos {
            for field in [f.title, f.body, f.filename] {
                p.set_field_fuzzy(field, false, 1, true);
            }
        }
        p
    }

    /// `query`, restricted to the scope's workspaces (a term filter, so hits,
    /// totals and scores never involve other workspaces' documents beyond
    /// the shared term statistics).
    fn scoped(&self, query: Box<dyn Query>, scope: &Scope) -> Box<dyn Query> {
        match scope {
            Scope::All => query,
            Scope::Only(ws) => {
                let terms = ws
                    .iter()
                    .map(|w| Term::from_field_text(self.fields.workspace, w));
                Box::new(BooleanQuery::new(vec![
                    (Occur::Must, query),
                    (Occur::Must, Box::new(TermSetQuery::new(terms))),
                ]))
            }
        }
    }

    /// Runs a query in the scope, tolerating typos; a syntax error comes
    /// back as [`QueryError`].
    pub fn search(
        &self,
        q: &str,
        limit: usize,
        offset: usize,
        scope: &Scope,
    ) -> Result<RawResults, QueryError> {
        self.search_with(q, limit, offset, scope, true)
    }

    /// Runs a query in the scope. With `typos`, a query that matches
    /// nothing as written is run again with each word matching words one
    /// edit away (`fuzzy` in the answer says so): exact matches, when there
    /// are any, are all the hits.
    pub fn search_with(
        &self,
        q: &str,
        limit: usize,
        offset: usize,
        scope: &Scope,
        typos: bool,
    ) -> Result<RawResults, QueryError> {
        let exact = self.run(q, limit, offset, scope, false)?;
        if exact.total > 0 || !typos {
            return Ok(exact);
        }
        let fuzzy = self.run(q, limit, offset, scope, true)?;
        Ok(if fuzzy.total > 0 { fuzzy } else { exact })
    }

    fn run(
        &self,
        q: &str,
        limit: usize,
        offset: usize,
        scope: &Scope,
        typos: bool,
    ) -> Result<RawResults, QueryError> {
        let user_query = self
            .parser(typos)
            .parse_query(q)
            .map_err(|e| QueryError(describe_query_error(q, &e)))?;
        let snippets_query = user_query.box_clone();
        let query = self.scoped(user_query, scope);
        let searcher = self.reader.searcher();
        let collector = (
            TopDocs::with_limit(limit.max(1))
                .and_offset(offset)
                .order_by_score(),
            Count,
        );
        let (top, total) = searcher
            .search(&query, &collector)
            .map_err(|e| QueryError(format!("search failed: {e}")))?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, addr) in top.into_iter().take(limit) {
            hits.push((self.stored_id(&searcher, addr)?, score));
        }
        let snippets = tantivy::snippet::SnippetGenerator::create(
            &searcher,
            &*snippets_query,
            self.fields.body,
        )
        .map_err(|e| QueryError(format!("search failed: {e}")))?;
        let mut terms = Vec::new();
        snippets_query.query_terms(&mut |term, _| {
            if term.field() == self.fields.body {
                if let Some(t) = term.value().as_str() {
                    terms.push(t.to_string());
                }
            }
        });
        Ok(RawResults {
            total: total as u64,
            hits,
            snippets,
            terms,
            fuzzy: typos,
        })
    }

    /// Documents of the scope most like `text` (more-like-this on the body),
    /// without `exclude_id`; (id, score), best first.
    pub fn similar(
        &self,
        text: &str,
        exclude_id: &str,
        limit: usize,
        scope: &Scope,
    ) -> Result<Vec<(String, f32)>> {
        let searcher = self.reader.searcher();
        // Tantivy counts deleted documents in a term's frequency but not in
        // the number of documents, and asserts the one is not above the other
        // (a panic after re-indexing): such terms, common to all, are skipped.
        let mlt = MoreLikeThisQuery::builder()
            .with_max_doc_frequency(searcher.num_docs())
            .with_min_doc_frequency(1)
            .with_min_term_frequency(1)
            .with_min_word_length(3)
            .with_max_query_terms(25)
            .with_document_fields(vec![(
                self.fields.body,
                vec![OwnedValue::Str(text.to_string())],
            )]);
        let query = self.scoped(Box::new(mlt), scope);
        let top = searcher.search(&*query, &TopDocs::with_limit(limit + 1).order_by_score())?;
        let mut out = Vec::with_capacity(limit);
        for (score, addr) in top {
            let id = self.stored_id(&searcher, addr)?;
            if id != exclude_id && out.len() < limit {
                out.push((id, score));
            }
        }
        Ok(out)
    }

    fn stored_id(
        &self,
        searcher: &tantivy::Searcher,
        addr: DocAddress,
    ) -> Result<String, QueryError> {
        let doc: TantivyDocument = searcher
            .doc(addr)
            .map_err(|e| QueryError(format!("search failed: {e}")))?;
        Ok(doc
            .get_first(self.fields.id)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string())
    }

    /// Number of live documents in the current reader (for checks and status).
    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// How many times each id is in the index (live documents only; for
    /// `docpipe check`).
    pub fn all_ids(&self) -> Result<std::collections::HashMap<String, u32>> {
        let searcher = self.reader.searcher();
        let mut out = std::collections::HashMap::new();
        for segment in searcher.segment_readers() {
            let store = segment.get_store_reader(64)?;
            for doc in segment.doc_ids_alive() {
                let d: TantivyDocument = store.get(doc)?;
                if let Some(id) = d.get_first(self.fields.id).and_then(|v| v.as_str()) {
                    *out.entry(id.to_string()).or_insert(0) += 1;
                }
            }
        }
        Ok(out)
    }

    /// Counts live documents carrying exactly this id.
    pub fn count_id(&self, id: &str) -> Result<usize> {
        let q = tantivy::query::TermQuery::new(
            self.id_term(id),
            tantivy::schema::IndexRecordOption::Basic,
        );
        Ok(self.reader.searcher().search(&q, &Count)?)
    }
}

/// A query the parser rejected, with a message for the user.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

fn describe_query_error(q: &str, e: &tantivy::query::QueryParserError) -> String {
    use tantivy::query::QueryParserError as E;
    match e {
        E::SyntaxError(_) => {
            // The lenient grammar says where (a byte offset; told as the
            // character it is at, counted from 1).
            let (_, errors) = tantivy_query_grammar::parse_query_lenient(q);
            match errors.first() {
                Some(err) => {
                    let at = q
                        .get(..err.pos.min(q.len()))
                        .map_or(0, |p| p.chars().count());
                    format!(
                        "query syntax error at character {} of {:?}: {}",
                        at + 1,
                        q,
                        err.message
                    )
                }
                None => format!("query syntax error in {q:?}"),
            }
        }
        E::FieldDoesNotExist(f) => {
            format!("unknown field {f:?}; searchable fields are title, body and filename")
        }
        other => format!("invalid query: {other}"),
    }
}

pub struct RawResults {
    pub total: u64,
    pub hits: Vec<(String, f32)>,
    pub snippets: tantivy::snippet::SnippetGenerator,
    /// The query's words in the body, as the index holds them (lower case).
    pub terms: Vec<String>,
    /// The hits match the words give or take a typo (none matched exactly).
    pub fuzzy: bool,
}

/// The most a snippet is looked for in: a window this long around the
/// first place a query word occurs, so a snippet's work is bounded however
/// long the document (a 1,000-page manual is not tokenised whole per hit).
pub const SNIPPET_WINDOW: usize = 8 * 1024;

impl RawResults {
    /// The query's words as a text may hold them: as indexed (lower case),
    /// capitalised and upper case.
    pub fn needles(&self) -> Vec<String> {
        self.terms
            .iter()
            .filter(|t| !t.is_empty())
            .flat_map(|t| {
                let mut cap = t.clone();
                if let Some(c) = cap.get_mut(..1) {
                    c.make_ascii_uppercase();
                }
                [t.clone(), cap, t.to_uppercase()]
            })
            .collect()
    }

    /// The hit's snippet as HTML (escaped, words in `<b>`).
    pub fn snippet_html(&self, text: &str) -> String {
        if text.len() <= SNIPPET_WINDOW {
            return self.snippets.snippet(text).to_html();
        }
        // The first occurrence of a word, as written or capitalised (a byte
        // search, not a tokenisation); the start when there is none.
        let first = self
            .needles()
            .iter()
            .filter_map(|t| memchr::memmem::find(text.as_bytes(), t.as_bytes()))
            .min()
            .unwrap_or(0);
        let start = floor_boundary(text, first.saturating_sub(SNIPPET_WINDOW / 2));
        let end = floor_boundary(text, (start + SNIPPET_WINDOW).min(text.len()));
        self.snippets.snippet(&text[start..end]).to_html()
    }
}

fn floor_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_searches_and_replaces_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let idx = SearchIndex::open(dir.path()).unwrap();
        let mut w: tantivy::IndexWriter = idx.index.writer_with_num_threads(1, 15_000_000).unwrap();
        w.add_document(idx.make_doc(
            "a",
            "default",
            "Quarterly report",
            "a.txt",
            "zebra finance",
            None,
        ))
        .unwrap();
        // Re-adding the same id after a delete leaves one copy (idempotent indexing).
        w.delete_term(idx.id_term("a"));
        w.add_document(idx.make_doc(
            "a",
            "default",
            "Quarterly report",
            "a.txt",
            "zebra finance",
            None,
        ))
        .unwrap();
        w.add_document(idx.make_doc("b", "other", "b", "b.txt", "zebra finance", None))
            .unwrap();
        w.add_document(idx.make_doc("c", "default", "c", "c.txt", "llama budget", None))
            .unwrap();
        w.commit().unwrap();
        idx.reader.reload().unwrap();
        let r = idx
            .search("zebra", 10, 0, &Scope::only(["default"]))
            .unwrap();
        assert_eq!(r.total, 1);
        assert_eq!(r.hits[0].0, "a");
        assert_eq!(idx.search("zebra", 10, 0, &Scope::All).unwrap().total, 2);
        assert_eq!(
            idx.search("zebra", 10, 0, &Scope::only(["nobody"]))
                .unwrap()
                .total,
            0
        );
        let like = idx
            .similar("zebra finance", "a", 5, &Scope::only(["other"]))
            .unwrap();
        assert_eq!(like.iter().map(|h| h.0.as_str()).collect::<Vec<_>>(), ["b"]);
        assert!(idx
            .similar("zebra finance", "a", 5, &Scope::only(["default"]))
            .unwrap()
            .is_empty());
        let html = r.snippets.snippet("a zebra <b>bold</b> zebra").to_html();
        assert!(
            html.contains("<b>zebra</b>") && html.contains("&lt;b&gt;bold"),
            "{html}"
        );
        let Err(QueryError(m)) = idx.search("zebra AND (title:x", 10, 0, &Scope::All) else {
            panic!("a broken query parsed");
        };
        assert!(
            m.contains("at character") && m.contains("zebra AND (title:x"),
            "{m}"
        );
        // A long text: the snippet is taken from around the word, wherever
        // it is, and escaped.
        let long = format!(
            "{}The <Zebra> crossed at last.{}",
            "Filler words about nothing at all. ".repeat(4000),
            " More filler.".repeat(2000)
        );
        assert!(long.len() > 10 * SNIPPET_WINDOW);
        let html = r.snippet_html(&long);
        assert!(html.contains("&lt;<b>Zebra</b>&gt; crossed"), "{html}");
        // One letter wrong: found, and said so; not without typos.
        let r = idx.search("zebre", 10, 0, &Scope::All).unwrap();
        assert_eq!((r.total, r.fuzzy), (2, true));
        let r = idx.search_with("zebre", 10, 0, &Scope::All, false).unwrap();
        assert_eq!((r.total, r.fuzzy), (0, false));
        let r = idx.search("zebra", 10, 0, &Scope::All).unwrap();
        assert!(!r.fuzzy);
        let none = idx.search("finance", 10, 0, &Scope::All).unwrap();
        assert!(!none.snippet_html(&long).contains("<b>"));
    }
}
