//! Search: the query parser and the index's top hits, with titles and
//! snippets from SQLite; and documents like a given one.

use anyhow::Result;

use super::{Reader, SearchError, SearchHit, SearchMode, SearchResults};
use crate::embed::vectors::Near;
use crate::model::Scope;
use crate::store::documents::{get_by_seq, get_document, get_text_window, query_documents};
use crate::store::index::{NearDocs, QueryError, RawResults, SearchRequest, SNIPPET_WINDOW};
use crate::store::vectors::passage;
use crate::store::DocQuery;

/// How many of a filtered search's best hits are filtered.
pub const FILTERED_HITS: usize = 10_000;

/// How many documents near the query's meaning a semantic or hybrid search
/// considers (more when the page reaches deeper).
pub const NEAR_DOCS: usize = 100;
/// Of those, the ones at least this fraction as similar as the best: a
/// query's meaning-matches end where similarity falls off, not at a count.
pub const NEAR_FLOOR: f32 = 0.6;

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
    ///
    /// `mode`: `None` is hybrid once documents have vectors, full-text
    /// before; hybrid without vectors is full-text (the answer names the
    /// mode used); semantic without vectors is an error.
    pub async fn find(
        &self,
        mut req: SearchRequest,
        mode: Option<SearchMode>,
        scope: &Scope,
    ) -> Result<SearchResults, SearchError> {
        let has_vectors = self.embedding.embedder.is_some() && !self.embedding.vectors.is_empty();
        let mut mode = match mode {
            Some(SearchMode::Semantic) if !has_vectors => {
                return Err(SearchError::NoEmbeddings(match &self.embedding.problem {
                    Some(why) => format!("semantic search is off: {why}"),
                    None if self.embedding.embedder.is_none() => {
                        "semantic search is off (embed.backend = \"off\"): use mode=fulltext".into()
                    }
                    None => "no document has vectors yet: use mode=fulltext or mode=hybrid".into(),
                }))
            }
            Some(SearchMode::Semantic) if req.q.trim().is_empty() => {
                return Err(SearchError::Query(
                    "semantic search needs words in q".into(),
                ))
            }
            Some(m) if has_vectors => m,
            None if has_vectors => SearchMode::Hybrid,
            _ => SearchMode::Fulltext,
        };
        let mut passages = std::collections::HashMap::new();
        if mode != SearchMode::Fulltext && !req.q.trim().is_empty() {
            match self.near(&req, scope).await {
                Ok(near) => {
                    req.near = Some(NearDocs {
                        ids: near.iter().map(|(id, n)| (id.clone(), n.score)).collect(),
                        hybrid: mode == SearchMode::Hybrid,
                    });
                    passages = near
                        .into_iter()
                        .map(|(id, n)| (id, (n.seq, n.chunk)))
                        .collect();
                }
                // The embedder could not take the query (Ollama down):
                // hybrid ranks by words, semantic cannot rank at all.
                Err(SearchError::Internal(e)) if mode == SearchMode::Hybrid => {
                    tracing::warn!(error = %format!("{e:#}"), "searching by words only");
                    mode = SearchMode::Fulltext;
                }
                Err(SearchError::Internal(e)) => {
                    return Err(SearchError::NoEmbeddings(format!("{e:#}")))
                }
                Err(e) => return Err(e),
            }
        }
        let index = self.index.clone();
        let scope = scope.clone();
        let r = self
            .db
            .run(move |conn| {
                let mut raw = match index.find(&req, &scope) {
                    Ok(r) => r,
                    Err(e) => return Ok(Err(e)),
                };
                let hits = hit_details(conn, &mut raw, &scope, &passages)?;
                Ok(Ok(SearchResults {
                    total: raw.total,
                    mode: mode.as_str(),
                    hits,
                    facets: std::mem::take(&mut raw.facets),
                    next_cursor: raw.next_cursor.as_ref().map(|c| c.encode()),
                    fuzzy: raw.fuzzy,
                }))
            })
            .await?;
        r.map_err(|QueryError(m)| SearchError::Query(m))
    }

    /// The documents nearest the query's meaning that the request's
    /// filters and the scope pass, with their best passage, best first.
    async fn near(
        &self,
        req: &SearchRequest,
        scope: &Scope,
    ) -> Result<Vec<(String, Near)>, SearchError> {
        let Some(embedder) = self.embedding.embedder.clone() else {
            return Ok(Vec::new());
        };
        let q = req.q.clone();
        let Some(qv) = embedder.embed(vec![q]).await?.pop().flatten() else {
            return Ok(Vec::new());
        };
        let k = (req.offset + req.limit.max(1)).max(NEAR_DOCS);
        let (index, vectors, r) = (
            self.index.clone(),
            self.embedding.vectors.clone(),
            req.clone(),
        );
        let scope = scope.clone();
        let near = self
            .db
            .run(move |conn| {
                let allowed = match index.allowed_seqs(&r, &scope) {
                    Ok(a) => a,
                    Err(e) => return Ok(Err(e)),
                };
                let mut near = vectors.nearest(&qv, k, &|seq| {
                    allowed.as_ref().is_none_or(|a| a.contains(&seq))
                });
                let floor = near.first().map_or(0.0, |n| n.score * NEAR_FLOOR);
                near.retain(|n| n.score >= floor);
                let seqs: Vec<i64> = near.iter().map(|n| n.seq).collect();
                let ids: std::collections::HashMap<i64, String> = conn
                    .prepare_cached(
                        "SELECT seq, id FROM documents WHERE stage = 'indexed'
                         AND seq IN (SELECT value FROM json_each(?1))",
                    )?
                    .query_map([serde_json::to_string(&seqs)?], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                Ok(Ok(near
                    .into_iter()
                    .filter_map(|n| ids.get(&n.seq).map(|id| (id.clone(), n)))
                    .collect()))
            })
            .await?;
        near.map_err(|QueryError(m)| SearchError::Query(m))
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
                let hits = hit_details(conn, &mut raw, &scope, &Default::default())?;
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

    /// Documents like `id`: by their vectors when it has some (the mean
    /// of its passages against every document's best passage), else by
    /// its words (Tantivy's more-like-this).
    pub async fn similar(
        &self,
        id: &str,
        limit: usize,
        scope: &Scope,
    ) -> Result<Option<Vec<SearchHit>>> {
        let Some(doc) = self.get(id, scope).await? else {
            return Ok(None);
        };
        if let Some(v) = self.embedding.vectors.doc_vector(doc.seq) {
            let (index, vectors, scope) = (
                self.index.clone(),
                self.embedding.vectors.clone(),
                scope.clone(),
            );
            let own = doc.seq;
            let hits = self
                .db
                .run(move |conn| {
                    let allowed = index
                        .allowed_seqs(&SearchRequest::default(), &scope)
                        .map_err(|QueryError(m)| anyhow::anyhow!(m))?;
                    let near = vectors.nearest(&v, limit, &|seq| {
                        seq != own && allowed.as_ref().is_none_or(|a| a.contains(&seq))
                    });
                    let mut hits = Vec::new();
                    for n in near {
                        if let Some(d) = get_by_seq(conn, n.seq, &scope)? {
                            hits.push(SearchHit {
                                title: d.title.unwrap_or(d.filename),
                                doc_type: d.doc_type,
                                id: d.id,
                                score: n.score,
                                snippet: String::new(),
                            });
                        }
                    }
                    Ok(hits)
                })
                .await?;
            return Ok(Some(hits));
        }
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
/// gone, deleted meanwhile, is left out). A hit found by its meaning, none
/// of whose words are in the window, shows its nearest passage.
fn hit_details(
    conn: &rusqlite::Connection,
    raw: &mut RawResults,
    scope: &Scope,
    passages: &std::collections::HashMap<String, (i64, u32)>,
) -> Result<Vec<SearchHit>> {
    let mut hits = Vec::with_capacity(raw.hits.len());
    let needles = raw.needles();
    for (id, score) in std::mem::take(&mut raw.hits) {
        let Some(doc) = get_document(conn, &id, scope)? else {
            continue;
        };
        let text = get_text_window(conn, &id, scope, &needles, SNIPPET_WINDOW)?.unwrap_or_default();
        let mut snippet = raw.snippet_html(&text);
        if let Some(&(seq, no)) = passages.get(&id).filter(|_| !snippet.contains("<b>")) {
            if let Some((_, p)) = passage(conn, seq, no)? {
                snippet = escape_html(clip(&p, SNIPPET_WINDOW));
            }
        }
        hits.push(SearchHit {
            title: doc.title.unwrap_or(doc.filename),
            doc_type: doc.doc_type,
            id,
            score,
            snippet,
        });
    }
    Ok(hits)
}

/// At most `max` bytes of `s`, cut at a character boundary.
pub(crate) fn clip(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

pub(crate) fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
