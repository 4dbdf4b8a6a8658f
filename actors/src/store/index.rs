//! The Tantivy index: schema, opening, and the query side. Only the id is
//! stored; titles and snippet text come from SQLite for the top hits, so the
//! text is not kept twice. The Indexer actor is the only writer.
//!
//! Beside the words (title, file name, body), a document carries what the
//! filters, facets and sorts need: its type, tags and language as keywords
//! (matched case-blind, counted as written), its date (`created`: the
//! document's own, else the day it was added), the day it was added, the
//! year, and its fields in one JSON field (`fields.total`, `fields.issuer`):
//! amounts and numbers as numbers, dates as dates, the rest as words.
//!
//! Stemming is done when a query is read, not when a document is indexed:
//! a word also matches the other forms of it the index holds (terms that
//! share its stem in one of [`STEMMED`]'s languages), worth less, so exact
//! words rank first. Stemming each document's body into a field of its
//! own cost 37 % of the bare indexing rate (the load bench's baseline,
//! 17,700 → 11,100 documents/s) and twenty fields per query word.

mod facets;
mod query;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, MoreLikeThisQuery, Occur, Query, QueryParser, TermSetQuery};
use tantivy::schema::{
    DateOptions, Field, IndexRecordOption, JsonObjectOptions, NumericOptions, OwnedValue, Schema,
    TextFieldIndexing, TextOptions, Value, STORED, STRING, TEXT,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RawTokenizer, RemoveLongFilter, SimpleTokenizer, Stemmer, TextAnalyzer,
};

pub use facets::{FacetCounts, FacetKind};
pub use query::{Cursor, Sort, SortKey};

use crate::model::{Kind, Scope};
use tantivy::{DateTime, DocAddress, Index, IndexReader, ReloadPolicy, TantivyDocument, Term};

/// The languages a query word is stemmed in (whatlang's codes), each with
/// its tokenizer `stem_<code>`.
pub const STEMMED: [(&str, Language); 17] = [
    ("eng", Language::English),
    ("deu", Language::German),
    ("fra", Language::French),
    ("spa", Language::Spanish),
    ("ita", Language::Italian),
    ("por", Language::Portuguese),
    ("nld", Language::Dutch),
    ("swe", Language::Swedish),
    ("dan", Language::Danish),
    ("nob", Language::Norwegian),
    ("fin", Language::Finnish),
    ("hun", Language::Hungarian),
    ("ron", Language::Romanian),
    ("tur", Language::Turkish),
    ("rus", Language::Russian),
    ("ell", Language::Greek),
    ("ara", Language::Arabic),
];

/// A clause of a boolean query.
type Clause = (Occur, Box<dyn Query>);

/// How much a match of another form of a word counts beside a match of the
/// word as written.
const STEM_BOOST: f32 = 0.3;

#[derive(Clone, Copy, Debug)]
pub struct Fields {
    pub id: Field,
    pub seq: Field,
    pub title: Field,
    pub filename: Field,
    pub body: Field,
    pub doc_type: Field,
    pub tag: Field,
    pub language: Field,
    pub workspace: Field,
    pub created: Field,
    pub added: Field,
    pub year: Field,
    pub fields: Field,
}

/// The name of the keyword tokenizer: the whole value, lower case.
const KEYWORD: &str = "keyword";

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let keyword = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(KEYWORD)
                .set_index_option(IndexRecordOption::Basic),
        )
        .set_fast("raw");
    let date = DateOptions::default().set_indexed().set_fast();
    let fields = Fields {
        id: b.add_text_field("id", STRING | STORED),
        seq: b.add_u64_field("seq", NumericOptions::default().set_fast()),
        title: b.add_text_field("title", TEXT),
        filename: b.add_text_field("filename", TEXT),
        body: b.add_text_field("body", TEXT),
        doc_type: b.add_text_field("type", keyword.clone()),
        tag: b.add_text_field("tag", keyword.clone()),
        language: b.add_text_field("language", keyword.clone()),
        workspace: b.add_text_field("workspace", STRING),
        created: b.add_date_field("created", date.clone()),
        added: b.add_date_field("added", date),
        year: b.add_u64_field("year", NumericOptions::default().set_indexed().set_fast()),
        fields: b.add_json_field(
            "fields",
            JsonObjectOptions::default()
                .set_indexing_options(
                    TextFieldIndexing::default()
                        .set_tokenizer("default")
                        .set_index_option(IndexRecordOption::WithFreqsAndPositions),
                )
                .set_fast("raw"),
        ),
    };
    (b.build(), fields)
}

/// The tokenizers the schema names beside Tantivy's own.
fn register_tokenizers(index: &Index) {
    let t = index.tokenizers();
    t.register(
        KEYWORD,
        TextAnalyzer::builder(RawTokenizer::default())
            .filter(LowerCaser)
            .build(),
    );
    for (code, lang) in STEMMED {
        t.register(
            &format!("stem_{code}"),
            TextAnalyzer::builder(SimpleTokenizer::default())
                .filter(RemoveLongFilter::limit(40))
                .filter(LowerCaser)
                .filter(Stemmer::new(lang))
                .build(),
        );
    }
}

/// What the index keeps of a document beside its words (read from SQLite
/// by the Indexer for each batch).
#[derive(Clone, Debug, Default)]
pub struct IndexMeta {
    pub tags: Vec<String>,
    pub language: Option<String>,
    /// `YYYY-MM-DD`: the document's own date, else the day it was added.
    pub created: Option<String>,
    /// When it was added (ms since the epoch).
    pub added_ms: i64,
    /// (name, kind, value) of each field.
    pub fields: Vec<(String, Kind, String)>,
}

/// One document as the Indexer adds it.
pub struct IndexDoc<'a> {
    pub id: &'a str,
    pub seq: i64,
    pub workspace: &'a str,
    pub title: &'a str,
    pub filename: &'a str,
    pub body: &'a str,
    pub doc_type: Option<&'a str>,
    pub meta: &'a IndexMeta,
}

/// Days since the epoch of a `YYYY-MM-DD` date (the proleptic Gregorian
/// calendar), or None if it is not one.
pub(crate) fn days_from_ymd(s: &str) -> Option<i64> {
    let s = s.get(..10)?;
    let mut parts = s.split('-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

fn date_of_days(days: i64) -> DateTime {
    DateTime::from_timestamp_secs(days * 86_400)
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

    /// Whether the index in `dir` was written with another schema (by
    /// another version): `open_or_rebuild` then starts it afresh.
    pub fn outdated(dir: &Path) -> Result<bool> {
        if !dir.join("meta.json").exists() {
            return Ok(false);
        }
        let old = Index::open_in_dir(dir).context("cannot open the search index")?;
        Ok(old.schema() != schema().0)
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
        register_tokenizers(&index);
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

    pub fn make_doc(&self, x: &IndexDoc<'_>) -> TantivyDocument {
        let f = self.fields;
        let m = x.meta;
        let mut d = TantivyDocument::default();
        d.add_text(f.id, x.id);
        d.add_u64(f.seq, x.seq.max(0) as u64);
        d.add_text(f.workspace, x.workspace);
        d.add_text(f.title, x.title);
        d.add_text(f.filename, x.filename);
        d.add_text(f.body, x.body);
        if let Some(t) = x.doc_type {
            d.add_text(f.doc_type, t);
        }
        for t in &m.tags {
            d.add_text(f.tag, t);
        }
        if let Some(l) = &m.language {
            d.add_text(f.language, l);
        }
        if let Some(days) = m.created.as_deref().and_then(days_from_ymd) {
            d.add_date(f.created, date_of_days(days));
            if let Some(y) = m
                .created
                .as_deref()
                .and_then(|c| c.get(..4)?.parse::<u64>().ok())
            {
                d.add_u64(f.year, y);
            }
        }
        d.add_date(f.added, DateTime::from_timestamp_millis(m.added_ms));
        let mut values = BTreeMap::new();
        for (name, kind, value) in &m.fields {
            let v = match kind {
                Kind::Money | Kind::Number => match value.trim().parse::<f64>() {
                    Ok(n) if n.is_finite() => OwnedValue::F64(n),
                    _ => OwnedValue::Str(value.clone()),
                },
                Kind::Date => match days_from_ymd(value) {
                    Some(days) => OwnedValue::Date(date_of_days(days)),
                    None => OwnedValue::Str(value.clone()),
                },
                _ => OwnedValue::Str(value.clone()),
            };
            values.insert(name.clone(), v);
        }
        if !values.is_empty() {
            d.add_object(f.fields, values);
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

    /// Runs a query in the scope, by relevance, with no filters or facets.
    pub fn search_with(
        &self,
        q: &str,
        limit: usize,
        offset: usize,
        scope: &Scope,
        typos: bool,
    ) -> Result<RawResults, QueryError> {
        self.find(
            &SearchRequest {
                q: q.to_string(),
                limit,
                offset,
                typos,
                ..SearchRequest::default()
            },
            scope,
        )
    }

    /// Runs a search in the scope. With `typos`, a query that matches
    /// nothing as written is run again with each word matching words one
    /// edit away (`fuzzy` in the answer says so): exact matches, when there
    /// are any, are all the hits.
    pub fn find(&self, req: &SearchRequest, scope: &Scope) -> Result<RawResults, QueryError> {
        let exact = self.run(req, scope, false)?;
        if exact.total > 0 || !req.typos || req.q.trim().is_empty() {
            return Ok(exact);
        }
        let fuzzy = self.run(req, scope, true)?;
        Ok(if fuzzy.total > 0 { fuzzy } else { exact })
    }

    /// The request's filters, as clauses every hit must match.
    fn filters(&self, req: &SearchRequest) -> Result<Vec<Clause>, QueryError> {
        let f = self.fields;
        let keyword = |field: Field, v: &str| Term::from_field_text(field, &v.to_lowercase());
        let mut out: Vec<Clause> = Vec::new();
        if !req.types.is_empty() {
            let terms = req.types.iter().map(|t| keyword(f.doc_type, t));
            out.push((Occur::Must, Box::new(TermSetQuery::new(terms))));
        }
        for t in &req.tags {
            out.push((
                Occur::Must,
                Box::new(tantivy::query::TermQuery::new(
                    keyword(f.tag, t),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        if !req.languages.is_empty() {
            let terms = req.languages.iter().map(|l| keyword(f.language, l));
            out.push((Occur::Must, Box::new(TermSetQuery::new(terms))));
        }
        let day = |v: &Option<String>, name: &str| -> Result<Option<i64>, QueryError> {
            v.as_deref()
                .map(|d| {
                    days_from_ymd(d).filter(|_| d.len() == 10).ok_or_else(|| {
                        QueryError(format!("{name} must be a date (YYYY-MM-DD), not {d:?}"))
                    })
                })
                .transpose()
        };
        let (from, to) = (day(&req.from, "from")?, day(&req.to, "to")?);
        if from.is_some() || to.is_some() {
            use std::ops::Bound;
            let term = |d| Term::from_field_date_for_search(f.created, date_of_days(d));
            out.push((
                Occur::Must,
                Box::new(tantivy::query::RangeQuery::new(
                    from.map_or(Bound::Unbounded, |d| Bound::Included(term(d))),
                    to.map_or(Bound::Unbounded, |d| Bound::Excluded(term(d + 1))),
                )),
            ));
        }
        Ok(out)
    }

    fn run(
        &self,
        req: &SearchRequest,
        scope: &Scope,
        typos: bool,
    ) -> Result<RawResults, QueryError> {
        let searcher = self.reader.searcher();
        let ctx = query::Ctx {
            idx: self,
            parser: self.parser(typos),
            searcher: &searcher,
            forms: !typos,
        };
        let user_query = query::build(&ctx, &req.q)?;
        let snippets_query = user_query.box_clone();
        let matching: Box<dyn Query> = match &req.near {
            None => user_query,
            Some(near) => {
                // Zero-scored, so that a word match's score is its BM25 alone.
                let ids = near.ids.iter().map(|(id, _)| self.id_term(id));
                let near_q: Box<dyn Query> = Box::new(tantivy::query::BoostQuery::new(
                    Box::new(TermSetQuery::new(ids)),
                    0.0,
                ));
                if near.hybrid {
                    Box::new(BooleanQuery::new(vec![
                        (Occur::Should, user_query),
                        (Occur::Should, near_q),
                    ]))
                } else {
                    near_q
                }
            }
        };
        let mut clauses = vec![(Occur::Must, matching)];
        clauses.extend(self.filters(req)?);
        let query = self.scoped(Box::new(BooleanQuery::new(clauses)), scope);
        let offset = if req.cursor.is_some() { 0 } else { req.offset };
        let limit = req.limit.max(1);
        if let Some(near) = req
            .near
            .as_ref()
            .filter(|_| req.sort.key == SortKey::Relevance)
        {
            return self.run_fused(req, near, &searcher, &*query, snippets_query, typos);
        }
        let collector = (
            TopDocs::with_limit(limit + 1)
                .and_offset(offset)
                .tweak_score(query::sort_keys(req.sort.clone(), req.cursor.clone())),
            Count,
            facets::Facets(req.facets.clone()),
        );
        let (top, total, facets) = searcher
            .search(&query, &collector)
            .map_err(|e| QueryError(format!("search failed: {e}")))?;
        let top: Vec<_> = top
            .into_iter()
            .filter(|(k, _)| *k != query::PASSED)
            .collect();
        let next_cursor =
            (top.len() > limit).then(|| query::Cursor::after(&req.sort, top[limit - 1].0));
        let mut hits = Vec::with_capacity(top.len().min(limit));
        for (key, addr) in top.into_iter().take(limit) {
            hits.push((self.stored_id(&searcher, addr)?, key.2));
        }
        let mut out = self.results(&searcher, &*snippets_query, hits, total, facets)?;
        out.fuzzy = typos;
        out.next_cursor = next_cursor;
        Ok(out)
    }

    /// The results of a page of hits, with what their snippets need.
    fn results(
        &self,
        searcher: &tantivy::Searcher,
        snippets_query: &dyn Query,
        hits: Vec<(String, f32)>,
        total: usize,
        facets: FacetCounts,
    ) -> Result<RawResults, QueryError> {
        let snippets = self
            .snippet_generator(searcher, snippets_query, self.fields.body)
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
            fuzzy: false,
            facets,
            next_cursor: None,
        })
    }

    /// A semantic or hybrid search ranked by relevance: the word matches
    /// in BM25 order and the near documents in similarity order, fused by
    /// reciprocal rank (semantic: the similarity order alone). Totals and
    /// facets count every document of either list the filters pass.
    fn run_fused(
        &self,
        req: &SearchRequest,
        near: &NearDocs,
        searcher: &tantivy::Searcher,
        query: &dyn Query,
        snippets_query: Box<dyn Query>,
        typos: bool,
    ) -> Result<RawResults, QueryError> {
        let limit = req.limit.max(1);
        // Deeper than the page by the near list's length: a word match
        // ranked lower cannot be fused onto the page.
        let depth = req.offset + limit + near.ids.len();
        let collector = (
            TopDocs::with_limit(depth.max(1)).order_by_score(),
            Count,
            facets::Facets(req.facets.clone()),
        );
        let (top, total, facets) = searcher
            .search(query, &collector)
            .map_err(|e| QueryError(format!("search failed: {e}")))?;
        let mut fused: std::collections::HashMap<String, f32> = std::collections::HashMap::new();
        let mut passed = std::collections::HashSet::new();
        let mut rank = 0;
        for (score, addr) in top {
            let id = self.stored_id(searcher, addr)?;
            if near.hybrid && score > 0.0 {
                rank += 1;
                *fused.entry(id.clone()).or_default() += 1.0 / (RRF_K + rank as f32);
            }
            passed.insert(id);
        }
        let mut rank = 0;
        for (id, sim) in &near.ids {
            if !passed.contains(id) {
                continue;
            }
            rank += 1;
            let s = if near.hybrid {
                1.0 / (RRF_K + rank as f32)
            } else {
                *sim
            };
            *fused.entry(id.clone()).or_default() += s;
        }
        let mut hits: Vec<(String, f32)> = fused.into_iter().collect();
        hits.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let hits: Vec<(String, f32)> = hits.into_iter().skip(req.offset).take(limit).collect();
        let mut out = self.results(searcher, &*snippets_query, hits, total, facets)?;
        out.fuzzy = typos;
        Ok(out)
    }

    /// The numbers of the documents the request's filters (not its words)
    /// and the scope pass; `None` when that is every document.
    pub fn allowed_seqs(
        &self,
        req: &SearchRequest,
        scope: &Scope,
    ) -> Result<Option<std::collections::HashSet<i64>>, QueryError> {
        let filters = self.filters(req)?;
        if filters.is_empty() && *scope == Scope::All {
            return Ok(None);
        }
        let mut clauses: Vec<Clause> = vec![(Occur::Must, Box::new(tantivy::query::AllQuery))];
        clauses.extend(filters);
        let query = self.scoped(Box::new(BooleanQuery::new(clauses)), scope);
        let searcher = self.reader.searcher();
        let seqs = searcher
            .search(&*query, &facets::Seqs)
            .map_err(|e| QueryError(format!("search failed: {e}")))?;
        Ok(Some(seqs))
    }

    /// Marks the query's words of `field` in a text, rarer words first:
    /// Tantivy's `SnippetGenerator::create`, built from the query's terms
    /// directly.
    fn snippet_generator(
        &self,
        searcher: &tantivy::Searcher,
        query: &dyn Query,
        field: Field,
    ) -> tantivy::Result<tantivy::snippet::SnippetGenerator> {
        let mut terms = BTreeMap::new();
        let mut wanted = Vec::new();
        query.query_terms(&mut |term, _| {
            if term.field() == field {
                wanted.push(term.clone());
            }
        });
        for term in wanted {
            if let Some(text) = term.value().as_str() {
                let df = searcher.doc_freq(&term)?;
                terms.insert(text.to_string(), 1.0 / (1.0 + df as f32));
            }
        }
        Ok(tantivy::snippet::SnippetGenerator::new(
            terms,
            self.index.tokenizer_for_field(field)?,
            field,
            150,
        ))
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

/// Where `q` breaks the grammar, for the user.
fn describe_syntax_error(q: &str) -> String {
    // The lenient grammar says where (a byte offset; told as the character
    // it is at, counted from 1).
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

fn describe_query_error(q: &str, e: &tantivy::query::QueryParserError) -> String {
    use tantivy::query::QueryParserError as E;
    match e {
        E::SyntaxError(_) => describe_syntax_error(q),
        E::FieldDoesNotExist(f) => format!(
            "unknown field {f:?} in {q:?}; fields are title, body, filename, type, tag, \
             language, created, added, year and the document's own fields"
        ),
        other => format!("invalid query {q:?}: {other}"),
    }
}

pub struct RawResults {
    pub total: u64,
    pub hits: Vec<(String, f32)>,
    pub snippets: tantivy::snippet::SnippetGenerator,
    /// The query's words in the body, as the index holds them (lower case),
    /// with the other forms of them it looked for.
    pub terms: Vec<String>,
    /// The hits match the words give or take a typo (none matched exactly).
    pub fuzzy: bool,
    /// Counts over all hits, for the facets asked for.
    pub facets: FacetCounts,
    /// Where the next page starts, when there is one.
    pub next_cursor: Option<Cursor>,
}

/// A search as the API asks for it.
#[derive(Clone, Debug)]
pub struct SearchRequest {
    /// The query; blank: every document the filters pass.
    pub q: String,
    /// Any of these types.
    pub types: Vec<String>,
    /// All of these tags.
    pub tags: Vec<String>,
    /// Any of these languages.
    pub languages: Vec<String>,
    /// The document's date from this day on (`YYYY-MM-DD`).
    pub from: Option<String>,
    /// … up to and including this day.
    pub to: Option<String>,
    pub sort: Sort,
    pub limit: usize,
    /// Ignored with a cursor.
    pub offset: usize,
    pub cursor: Option<Cursor>,
    pub facets: Vec<FacetKind>,
    pub typos: bool,
    /// The documents nearest the query's meaning, best first: the search
    /// is then semantic (these only) or hybrid (these and the word
    /// matches, their ranks fused).
    pub near: Option<NearDocs>,
}

#[derive(Clone, Debug, Default)]
pub struct NearDocs {
    /// (id, cosine similarity), best first.
    pub ids: Vec<(String, f32)>,
    pub hybrid: bool,
}

/// Reciprocal rank fusion's constant: a hit at rank `r` of a list scores
/// `1 / (RRF_K + r)` from it.
pub const RRF_K: f32 = 60.0;

impl Default for SearchRequest {
    fn default() -> Self {
        SearchRequest {
            q: String::new(),
            types: Vec::new(),
            tags: Vec::new(),
            languages: Vec::new(),
            from: None,
            to: None,
            sort: Sort::default(),
            limit: 10,
            offset: 0,
            cursor: None,
            facets: Vec::new(),
            typos: true,
            near: None,
        }
    }
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

    fn add(
        w: &tantivy::IndexWriter,
        idx: &SearchIndex,
        id: &str,
        ws: &str,
        title: &str,
        body: &str,
    ) {
        let filename = format!("{id}.txt");
        w.add_document(idx.make_doc(&IndexDoc {
            id,
            seq: id.bytes().next().unwrap_or(0) as i64,
            workspace: ws,
            title,
            filename: &filename,
            body,
            doc_type: None,
            meta: &IndexMeta::default(),
        }))
        .unwrap();
    }

    #[test]
    fn indexes_searches_and_replaces_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let idx = SearchIndex::open(dir.path()).unwrap();
        let mut w: tantivy::IndexWriter = idx.index.writer_with_num_threads(1, 15_000_000).unwrap();
        add(
            &w,
            &idx,
            "a",
            "default",
            "Quarterly report",
            "zebra finance",
        );
        // Re-adding the same id after a delete leaves one copy (idempotent indexing).
        w.delete_term(idx.id_term("a"));
        add(
            &w,
            &idx,
            "a",
            "default",
            "Quarterly report",
            "zebra finance",
        );
        add(&w, &idx, "b", "other", "b", "zebra finance");
        add(&w, &idx, "c", "default", "c", "llama budget");
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
