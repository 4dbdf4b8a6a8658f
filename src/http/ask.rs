//! `POST /api/v1/ask`: an answer from the caller's documents.
//!
//! `{question, filters: {type, tag, language, from, to}}` → the best
//! passages (hybrid search in the caller's workspaces), then the Ollama chat
//! model asked to answer from them alone: `{answer, citations: [{id, title,
//! page, snippet}]}`. With `Accept: text/event-stream` the answer streams:
//! an event `citations` first, then `answer` events (`{"text": …}`, pieces
//! as the model writes them), then `done` (`{"answer": …}`), or `error`
//! (`{code, detail}`) if the model breaks off. Without Ollama, or with no
//! endpoint answering: `409 llm_unavailable`, the passages still in
//! `citations`.

use std::convert::Infallible;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use docpipe_actors::errors::Code;
use docpipe_actors::reader::ask::{prompt, Citation};
use docpipe_actors::store::index::SearchRequest;
use docpipe_actors::SearchError;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;

use super::gateway::Caller;
use super::problem::Problem;
use super::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AskBody {
    question: String,
    #[serde(default)]
    filters: Filters,
}

/// The search filters, as `GET /api/v1/search` takes them (lists or
/// comma-separated strings).
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Filters {
    #[serde(rename = "type")]
    doc_type: Option<OneOrMany>,
    tag: Option<OneOrMany>,
    language: Option<OneOrMany>,
    from: Option<String>,
    to: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn list(v: &Option<OneOrMany>) -> Vec<String> {
        let all = match v {
            None => Vec::new(),
            Some(OneOrMany::One(s)) => s.split(',').map(str::to_string).collect(),
            Some(OneOrMany::Many(v)) => v.clone(),
        };
        all.into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

pub async fn ask(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Json<AskBody>, JsonRejection>,
) -> Result<Response, Problem> {
    let Json(body) = body.map_err(|e| Problem::new(Code::InvalidBody, e.body_text()))?;
    let question = body.question.trim().to_string();
    if question.is_empty() {
        return Err(Problem::new(Code::MissingQuery, "give a question").on_field("question"));
    }
    if question.chars().count() > 2_000 {
        return Err(Problem::new(
            Code::InvalidBody,
            "the question is longer than 2000 characters",
        )
        .on_field("question"));
    }
    let f = &body.filters;
    let filters = SearchRequest {
        types: OneOrMany::list(&f.doc_type),
        tags: OneOrMany::list(&f.tag),
        languages: OneOrMany::list(&f.language),
        from: f.from.clone(),
        to: f.to.clone(),
        ..SearchRequest::default()
    };
    let reader = app.pipeline.reader();
    let citations = match reader.retrieve(&question, filters, &caller.scope()).await {
        Ok(c) => c,
        Err(SearchError::Query(m)) => return Err(Problem::new(Code::InvalidQuery, m)),
        Err(SearchError::NoEmbeddings(m)) => return Err(Problem::new(Code::NoEmbeddings, m)),
        Err(SearchError::Internal(e)) => return Err(Problem::internal(e)),
    };
    let unavailable = |why: String, citations: &[Citation]| {
        Problem::new(Code::LlmUnavailable, why).with("citations", json!(citations))
    };
    let Some(llm) = reader.llm() else {
        return Err(unavailable(
            "no language model to answer with: set ollama.endpoints (and ollama.model); \
             the passages that would be used are in citations"
                .into(),
            &citations,
        ));
    };
    if citations.is_empty() {
        let answer = "None of your documents seems to answer this question.";
        return Ok(Json(json!({"answer": answer, "citations": citations})).into_response());
    }
    let (system, user) = prompt(&question, &citations);
    let stream = match llm.answer(system, &user).await {
        Ok(s) => s,
        Err(why) => {
            return Err(unavailable(
                format!("the language model did not answer: {why}"),
                &citations,
            ))
        }
    };
    let wants_events = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    if !wants_events {
        let mut answer = String::new();
        let mut stream = stream;
        while let Some(piece) = stream.next().await {
            match piece {
                Ok(p) => answer.push_str(&p),
                Err(why) => {
                    return Err(unavailable(
                        format!("the language model broke off: {why}"),
                        &citations,
                    ))
                }
            }
        }
        return Ok(Json(json!({"answer": answer.trim(), "citations": citations})).into_response());
    }
    let first = Event::default()
        .event("citations")
        .json_data(&citations)
        .map_err(Problem::internal)?;
    let events = futures::stream::once(async move { first })
        .chain(answer_events(stream))
        .map(Ok::<_, Infallible>);
    Ok(Sse::new(events).into_response())
}

/// `answer` events as the pieces come, then `done` with the whole answer
/// (or `error`).
fn answer_events(
    stream: docpipe_actors::llm::AnswerStream,
) -> impl futures::Stream<Item = Event> + Send {
    futures::stream::unfold(
        (stream, String::new(), false),
        |(mut stream, mut answer, finished)| async move {
            if finished {
                return None;
            }
            match stream.next().await {
                Some(Ok(piece)) => {
                    answer.push_str(&piece);
                    let ev = Event::default()
                        .event("answer")
                        .data(json!({ "text": piece }).to_string());
                    Some((ev, (stream, answer, false)))
                }
                Some(Err(why)) => {
                    let ev = Event::default().event("error").data(
                        json!({"code": Code::LlmUnavailable, "detail": format!("the language model broke off: {why}")})
                            .to_string(),
                    );
                    Some((ev, (stream, answer, true)))
                }
                None => {
                    let ev = Event::default()
                        .event("done")
                        .data(json!({ "answer": answer.trim() }).to_string());
                    Some((ev, (stream, answer, true)))
                }
            }
        },
    )
}
