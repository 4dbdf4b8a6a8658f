//! Reads of documents: one by id or number, their text, events, original
//! and links; lists and pages.

use anyhow::Result;
use bytes::Bytes;

use super::{Original, Reader};
use crate::model::{Document, Scope};
use crate::store::documents::{
    extras_of, get_by_seq, get_document, get_inline_original, get_text, list_documents,
    page_documents, query_documents,
};
use crate::store::events::events_for;
use crate::store::links::links;
use crate::store::{DocExtras, DocQuery, Event, Links, ListFilter};

impl Reader {
    pub async fn get(&self, id: &str, scope: &Scope) -> Result<Option<Document>> {
        let (id, scope) = (id.to_string(), scope.clone());
        self.db.run(move |c| get_document(c, &id, &scope)).await
    }

    pub async fn text(&self, id: &str, scope: &Scope) -> Result<Option<String>> {
        let (id, scope) = (id.to_string(), scope.clone());
        self.db.run(move |c| get_text(c, &id, &scope)).await
    }

    pub async fn events(&self, id: &str, scope: &Scope) -> Result<Vec<Event>> {
        let (id, scope) = (id.to_string(), scope.clone());
        self.db.run(move |c| events_for(c, &id, &scope)).await
    }

    /// The id of the last durable event, changed whenever a batch with new
    /// events becomes durable: what a live subscriber waits on.
    pub fn event_watch(&self) -> tokio::sync::watch::Receiver<i64> {
        self.events.clone()
    }

    /// The live stream's events after `after` up to `upto` (a durable
    /// event's id, from [`Reader::event_watch`]).
    pub async fn stream_events(
        &self,
        after: i64,
        upto: i64,
        filter: crate::store::events::StreamFilter,
        scope: &Scope,
        limit: usize,
    ) -> Result<Vec<crate::store::events::StreamEvent>> {
        if after >= upto {
            return Ok(Vec::new());
        }
        let scope = scope.clone();
        self.db
            .run(move |c| {
                crate::store::events::stream_events(c, after, upto, &filter, &scope, limit)
            })
            .await
    }

    pub async fn content(&self, id: &str, scope: &Scope) -> Result<Option<(Document, Original)>> {
        use futures::StreamExt;
        let Some(doc) = self.get(id, scope).await? else {
            return Ok(None);
        };
        let owned = id.to_string();
        if let Some(bytes) = self.db.run(move |c| get_inline_original(c, &owned)).await? {
            let stream = futures::stream::once(async move { Ok(Bytes::from(bytes)) }).boxed();
            return Ok(Some((doc, stream)));
        }
        Ok(Some((doc, self.blobs.stream(id).await?)))
    }

    /// A document's tags (id, name, by name) and its date (its own, else
    /// the day it was added), if it is in the scope.
    pub async fn tags_and_date(
        &self,
        id: &str,
        scope: &Scope,
    ) -> Result<Option<(Vec<(i64, String)>, String)>> {
        let (id, scope) = (id.to_string(), scope.clone());
        self.db
            .run(move |c| {
                let Some(d) = get_document(c, &id, &scope)? else {
                    return Ok(None);
                };
                Ok(Some(crate::store::documents::tags_and_date(c, d.seq)?))
            })
            .await
    }

    pub async fn links(&self, id: &str, scope: &Scope) -> Result<Links> {
        let (id, scope) = (id.to_string(), scope.clone());
        self.db.run(move |c| links(c, &id, &scope)).await
    }

    pub async fn list(&self, filter: ListFilter) -> Result<(Vec<Document>, Option<i64>)> {
        self.db.run(move |c| list_documents(c, &filter)).await
    }

    pub async fn get_by_number(
        &self,
        number: i64,
        scope: &Scope,
    ) -> Result<Option<(Document, DocExtras)>> {
        let scope = scope.clone();
        self.db
            .run(move |c| {
                let Some(d) = get_by_seq(c, number, &scope)? else {
                    return Ok(None);
                };
                let x = extras_of(c, &d)?;
                Ok(Some((d, x)))
            })
            .await
    }

    pub async fn get_many(
        &self,
        ids: Vec<String>,
        scope: &Scope,
    ) -> Result<Vec<(Document, DocExtras)>> {
        let scope = scope.clone();
        self.db
            .run(move |c| {
                let mut out = Vec::with_capacity(ids.len());
                for id in &ids {
                    if let Some(d) = get_document(c, id, &scope)? {
                        let x = extras_of(c, &d)?;
                        out.push((d, x));
                    }
                }
                Ok(out)
            })
            .await
    }

    /// Every document whose original is in the blob store: id, SHA-256, size.
    pub async fn blob_documents(&self) -> Result<Vec<(String, String, u64)>> {
        self.db.run(crate::store::documents::blob_documents).await
    }

    /// The ids of the documents brought from `source` so far, with the
    /// documents they became.
    pub async fn imported(&self, source: &str) -> Result<Vec<(i64, String)>> {
        let source = source.to_string();
        self.db
            .run(move |c| crate::store::documents::imported_from(c, &source))
            .await
    }

    /// The numbers of all the scope's documents, newest first.
    pub async fn numbers(&self, scope: &Scope) -> Result<Vec<i64>> {
        let scope = scope.clone();
        self.db
            .run(move |c| crate::store::documents::document_numbers(c, &scope))
            .await
    }

    /// A page of the documents `q` picks, how many it picks, and all their
    /// numbers in order.
    pub async fn query(
        &self,
        scope: &Scope,
        q: DocQuery,
        offset: usize,
        limit: usize,
    ) -> Result<(u64, Vec<(Document, DocExtras)>, Vec<i64>)> {
        let scope = scope.clone();
        self.db
            .run(move |c| {
                let (total, docs, all) = query_documents(c, &scope, &q, offset, limit)?;
                let mut out = Vec::with_capacity(docs.len());
                for d in docs {
                    let x = extras_of(c, &d)?;
                    out.push((d, x));
                }
                Ok((total, out, all))
            })
            .await
    }

    pub async fn page(
        &self,
        scope: &Scope,
        offset: usize,
        limit: usize,
    ) -> Result<(u64, Vec<(Document, DocExtras)>)> {
        let scope = scope.clone();
        self.db
            .run(move |c| {
                let (total, docs) = page_documents(c, &scope, offset, limit)?;
                let mut out = Vec::with_capacity(docs.len());
                for d in docs {
                    let x = extras_of(c, &d)?;
                    out.push((d, x));
                }
                Ok((total, out))
            })
            .await
    }
}
