//! Ask your documents: the passages that best answer a question (hybrid
//! search in the caller's workspaces, then each document's passage nearest
//! the question), and the prompt that asks the chat model to answer from
//! them alone, citing them by number.

use std::collections::HashSet;

use serde::Serialize;

use super::search::clip;
use super::{Reader, SearchError};
use crate::model::{Scope, PAGE_BREAK};
use crate::store::index::{SearchRequest, Sort};

/// Passages given to the model.
pub const ASK_PASSAGES: usize = 5;
/// Longest passage quoted, in bytes.
const PASSAGE_BYTES: usize = 1_200;

/// A passage an answer may rest on.
#[derive(Clone, Debug, Serialize)]
pub struct Citation {
    pub id: String,
    pub title: String,
    /// 1-based.
    pub page: u32,
    /// The passage, as plain text.
    pub snippet: String,
}

const SYSTEM: &str = "You answer questions about the user's documents. Use only the numbered \
passages you are given, never outside knowledge. After each statement, cite the passages it \
rests on as [1], [2]. If the passages do not answer the question, say so plainly.";

impl Reader {
    /// The best passages for `question`, among the documents `filters`
    /// (its filters only: words, sort and paging are the question's) and
    /// `scope` let through.
    pub async fn retrieve(
        &self,
        question: &str,
        filters: SearchRequest,
        scope: &Scope,
    ) -> Result<Vec<Citation>, SearchError> {
        // A question's words, any of which may match: the query language's
        // own syntax (quotes, colons, AND) is not a question's.
        let words: Vec<String> = question
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.chars().count() > 1)
            .map(str::to_lowercase)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if words.is_empty() {
            return Err(SearchError::Query("the question has no words".into()));
        }
        let req = SearchRequest {
            q: words.join(" OR "),
            limit: ASK_PASSAGES,
            offset: 0,
            cursor: None,
            sort: Sort::default(),
            facets: Vec::new(),
            ..filters
        };
        let hits = self.find(req, None, scope).await?.hits;
        let query_vector = match &self.embedding.embedder {
            Some(e) if !self.embedding.vectors.is_empty() => e
                .embed(vec![question.to_string()])
                .await
                .ok()
                .and_then(|mut v| v.pop().flatten()),
            _ => None,
        };
        let mut out = Vec::with_capacity(hits.len());
        for hit in hits {
            let Some(doc) = self.get(&hit.id, scope).await? else {
                continue;
            };
            let nearest = query_vector
                .as_ref()
                .and_then(|q| self.embedding.vectors.best_chunk(doc.seq, q));
            let seq = doc.seq;
            let stored = match nearest {
                Some(no) => {
                    self.db
                        .run(move |c| crate::store::vectors::passage(c, seq, no))
                        .await?
                }
                None => None,
            };
            let (page, snippet) = match stored {
                Some((page, text)) => (page, clip(&text, PASSAGE_BYTES).to_string()),
                None => {
                    let text = self.text(&hit.id, scope).await?.unwrap_or_default();
                    around_words(&text, &words)
                }
            };
            out.push(Citation {
                id: hit.id,
                title: hit.title,
                page,
                snippet,
            });
        }
        Ok(out)
    }
}

/// The system and user messages that ask for an answer from `passages`.
pub fn prompt(question: &str, passages: &[Citation]) -> (&'static str, String) {
    let mut user = String::from("Passages:\n");
    for (i, p) in passages.iter().enumerate() {
        user.push_str(&format!(
            "[{}] {} (page {}): {}\n",
            i + 1,
            p.title,
            p.page,
            p.snippet.replace('\n', " ")
        ));
    }
    user.push_str(&format!("\nQuestion: {question}\n"));
    (SYSTEM, user)
}

/// The window of the text around the first of `words` it holds (its
/// start when none), and that window's page.
fn around_words(text: &str, words: &[String]) -> (u32, String) {
    let lower = text.to_lowercase();
    // Lower-casing may change byte lengths; fall back to the start then.
    let at = if lower.len() == text.len() {
        words
            .iter()
            .filter_map(|w| lower.find(w.as_str()))
            .min()
            .unwrap_or(0)
    } else {
        0
    };
    let mut start = at.saturating_sub(PASSAGE_BYTES / 3);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let page = text[..start].matches(PAGE_BREAK).count() as u32 + 1;
    let rest = &text[start..];
    let window = rest.split(PAGE_BREAK).next().unwrap_or(rest);
    (page, clip(window, PASSAGE_BYTES).trim().to_string())
}
