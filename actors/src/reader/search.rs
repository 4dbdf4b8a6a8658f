//! Search: the query parser and the index's top hits, with titles and
//! snippets from SQLite; and documents like a given one.

use anyhow::Result;

use super::{Reader, SearchError, SearchHit, SearchResults};
use crate::model::Scope;
use crate::store::documents::{get_document, get_text_window, query_documents};
use crate::store::index::{QueryError, RawResults, SearchRequest, SNIPPET_WINDOW};
use crate::store::DocQuery;

/// How many of a filtered search's best hits are filtered.
pub const FILTERED_HITS: usize = 10_000;

impl Reader {
    /// A search tolerating typos (see [`SearchIndex::search_with`]).
    ///
    /// [`SearchIndex::search_with`]: crate::store::index::SearchIndex::search_with
    pub async fn search(
        &self,
        q: &str,
        limit: usize,
        offset: usize,
        scope: &Scope,
        typos: bool,
    ) -> Result<SearchResults, SearchError> {
        self.search_where(q, limit, offset, scope, None, typos)
            .await
    }

    /// A search with the index's own filters, sorts, facets and cursor
    /// (`GET /api/v1/search`): totals and facet counts are exact.
    pub async fn find(
        &self,
        req: SearchRequest,
        scope: &Scope,
    ) -> Result<SearchResults, SearchError> {
        let index = self.index.clone();
        let scope = scope.clone();
        let r = self
            .db
            .run(move |conn| {
                let mut raw = match index.find(&req, &scope) {
                    Ok(r) => r,
                    Err(e) => return Ok(Err(e)),
                };
                let hits = hit_details(conn, &mut raw, &scope)?;
                Ok(Ok(SearchResults {
                    total: raw.total,
                    mode: "fulltext",
                    hits,
                    facets: std::mem::take(&mut raw.facets),
                    next_cursor: raw.next_cursor.as_ref().map(|c| c.encode()),
                    fuzzy: raw.fuzzy,
                }))
            })
            .await?;
        r.map_err(|QueryError(m)| SearchError::Query(m))
    }

    /// A search whose hits also pass `filter` (the catalog's conditions, such
    /// as tags or dates): it ranks the best [`FILTERED_HITS`] hits and keeps
    /// those the filter passes, so `total` counts the passing ones among them.
    pub async fn search_where(
        &self,
        q: &str,
        limit: usize,
        offset: usize,
        scope: &Scope,
        filter: Option<DocQuery>,
        typos: bool,
    ) -> Result<SearchResults, SearchError> {
        let index = self.index.clone();
        let q = q.to_string();
        let scope = scope.clone();
        let r = self
            .db
            .run(move |conn| {
                let (window, skip) = match filter {
                    Some(_) => (FILTERED_HITS, 0),
                    None => (limit, offset),
                };
                let mut raw = match index.search_with(&q, window, skip, &scope, typos) {
                    Ok(r) => r,
                    Err(e) => return Ok(Err(e)),
                };
                if let Some(f) = &filter {
                    let (_, _, passing) = query_documents(conn, &scope, f, 0, 0)?;
                    let passing: std::collections::HashSet<i64> = passing.into_iter().collect();
                    let mut kept = Vec::new();
                    for (id, score) in raw.hits {
                        if let Some(doc) = get_document(conn, &id, &scope)? {
                            if passing.contains(&doc.seq) {
                                kept.push((id, score));
                            }
                        }
                    }
                    raw.total = kept.len() as u64;
                    raw.hits = kept.into_iter().skip(offset).take(limit).collect();
                }
                let hits = hit_details(conn, &mut raw, &scope)?;
                Ok(Ok(SearchResults {
                    total: raw.total,
                    mode: "fulltext",
                    hits,
                    facets: Default::default(),
                    next_cursor: None,
                    fuzzy: raw.fuzzy,
                }))
            })
            .await?;
        r.map_err(|QueryError(m)| SearchError::Query(m))
    }

    /// The numbers of a search's best [`FILTERED_HITS`] hits that pass
    /// `filter`, best first (Paperless's `all` of a search).
    pub async fn search_numbers(
        &self,
        q: &str,
        scope: &Scope,
        filter: Option<DocQuery>,
    ) -> Result<Vec<i64>, SearchError> {
        let index = self.index.clone();
        let q = q.to_string();
        let scope = scope.clone();
        let r = self
            .db
            .run(move |conn| {
                let raw = match index.search(&q, FILTERED_HITS, 0, &scope) {
                    Ok(r) => r,
                    Err(e) => return Ok(Err(e)),
                };
                let ids: Vec<&str> = raw.hits.iter().map(|(id, _)| id.as_str()).collect();
                let numbers: std::collections::HashMap<String, i64> = conn
                    .prepare_cached(
                        "SELECT id, seq FROM documents WHERE stage != 'deleting'
                         AND id IN (SELECT value FROM json_each(?1))",
                    )?
                    .query_map([serde_json::to_string(&ids)?], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                let passing: Option<std::collections::HashSet<i64>> = match &filter {
                    Some(f) => Some(
                        query_documents(conn, &scope, f, 0, 0)?
                            .2
                            .into_iter()
                            .collect(),
                    ),
                    None => None,
                };
                Ok(Ok(raw
                    .hits
                    .iter()
                    .filter_map(|(id, _)| numbers.get(id).copied())
                    .filter(|n| passing.as_ref().is_none_or(|p| p.contains(n)))
                    .collect()))
            })
            .await?;
        r.map_err(|QueryError(m)| SearchError::Query(m))
    }

    pub async fn similar(
        &self,
        id: &str,
        limit: usize,
        scope: &Scope,
    ) -> Result<Option<Vec<SearchHit>>> {
        let Some(text) = self.text(id, scope).await? else {
            return Ok(self.get(id, scope).await?.map(|_| Vec::new()));
        };
        let index = self.index.clone();
        let (id, scope) = (id.to_string(), scope.clone());
        let hits = self
            .db
            .run(move |conn| {
                let mut hits = Vec::new();
                for (hit_id, score) in index.similar(&text, &id, limit, &scope)? {
                    if let Some(doc) = get_document(conn, &hit_id, &scope)? {
                        hits.push(SearchHit {
                            title: doc.title.unwrap_or(doc.filename),
                            doc_type: doc.doc_type,
                            id: hit_id,
                            score,
                            snippet: String::new(),
                        });
                    }
                }
                Ok(hits)
            })
            .await?;
        Ok(Some(hits))
    }
}

/// Titles, types and snippets of the hits, from SQLite (a hit whose row is
/// gone, deleted meanwhile, is left out).
fn hit_details(
    conn: &rusqlite::Connection,
    raw: &mut RawResults,
    scope: &Scope,
) -> Result<Vec<SearchHit>> {
    let mut hits = Vec::with_capacity(raw.hits.len());
    let needles = raw.needles();
    for (id, score) in std::mem::take(&mut raw.hits) {
        let Some(doc) = get_document(conn, &id, scope)? else {
            continue;
        };
        let text = get_text_window(conn, &id, scope, &needles, SNIPPET_WINDOW)?.unwrap_or_default();
        hits.push(SearchHit {
            title: doc.title.unwrap_or(doc.filename),
            doc_type: doc.doc_type,
            id,
            score,
            snippet: raw.snippet_html(&text),
        });
    }
    Ok(hits)
}
