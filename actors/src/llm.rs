//! Ollama, optional and untrusted: a client over one or more endpoints
//! (ollama-rs), each behind its own circuit breaker, asked for structured
//! JSON and held to a JSON schema.
//!
//! - Load balancing: a request goes to the endpoint with the fewest requests
//!   in flight among those whose breaker lets it through.
//! - Breaker per endpoint: closed → open after `failure_threshold` failures
//!   or timeouts in a row (connection refused, HTTP errors, no answer within
//!   `timeout_ms`) → after `open_ms`, half-open: one probe request; its
//!   success closes the breaker, its failure opens it again.
//! - Answers: the reply must parse as JSON and pass the caller's check; an
//!   invalid, truncated or off-schema one is asked again once, with the
//!   error. Then the caller's built-in result stands.
//! - A request that finds every breaker open, or fails on every endpoint it
//!   tries, is [`Asked::Unavailable`]: the document is marked `needs_llm`,
//!   to be run through the LLM later (`docpipe reprocess --llm`).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use ollama_rs::generation::chat::request::ChatMessageRequest;
use ollama_rs::generation::chat::ChatMessage;
use ollama_rs::generation::embeddings::request::{EmbeddingsInput, GenerateEmbeddingsRequest};
use ollama_rs::generation::parameters::{FormatType, JsonStructure};
use ollama_rs::Ollama;
use serde::Serialize;
use serde_json::Value;

use crate::breaker::Breaker;
use crate::config::OllamaConfig;

struct Endpoint {
    url: String,
    client: Ollama,
    breaker: Breaker,
    in_flight: AtomicU64,
    requests: AtomicU64,
}

/// An endpoint as `/api/v1/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointStatus {
    pub url: String,
    /// "closed", "open" or "half_open".
    pub breaker: &'static str,
    pub in_flight: u64,
    pub requests: u64,
    pub failures: u64,
    /// Times the breaker opened.
    pub opened: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LlmStatus {
    pub configured: bool,
    pub model: Option<String>,
    pub endpoints: Vec<EndpointStatus>,
}

/// What asking gave.
#[derive(Debug)]
pub enum Asked<T> {
    Answer(T),
    /// Two answers failed the check: the built-in result stands.
    Invalid(String),
    /// No endpoint could answer: the built-in result stands, and the
    /// document is to be asked again later.
    Unavailable(String),
}

pub struct Llm {
    cfg: OllamaConfig,
    endpoints: Vec<Endpoint>,
}

impl Llm {
    /// None when no endpoint is configured.
    pub fn new(cfg: &OllamaConfig) -> anyhow::Result<Option<Llm>> {
        if cfg.endpoints.is_empty() {
            return Ok(None);
        }
        let endpoints = cfg
            .endpoints
            .iter()
            .map(|url| {
                Ok(Endpoint {
                    url: url.clone(),
                    client: Ollama::try_new(url.as_str())
                        .map_err(|e| anyhow::anyhow!("ollama.endpoints: {url:?}: {e}"))?,
                    breaker: Breaker::new(
                        cfg.failure_threshold,
                        Duration::from_millis(cfg.open_ms),
                    ),
                    in_flight: AtomicU64::new(0),
                    requests: AtomicU64::new(0),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Some(Llm {
            cfg: cfg.clone(),
            endpoints,
        }))
    }

    pub fn config(&self) -> &OllamaConfig {
        &self.cfg
    }

    pub fn status(&self) -> LlmStatus {
        LlmStatus {
            configured: true,
            model: Some(self.cfg.model.clone()),
            endpoints: self
                .endpoints
                .iter()
                .map(|e| {
                    let (failures, opened) = e.breaker.counts();
                    EndpointStatus {
                        url: e.url.clone(),
                        breaker: e.breaker.state(),
                        in_flight: e.in_flight.load(Relaxed),
                        requests: e.requests.load(Relaxed),
                        failures,
                        opened,
                    }
                })
                .collect(),
        }
    }

    /// The endpoint to ask, skipping `tried`: the least busy one whose
    /// breaker lets a request through (an open breaker whose time is up lets
    /// exactly one probe through).
    fn pick(&self, tried: &[usize]) -> Option<usize> {
        let mut candidates: Vec<usize> = (0..self.endpoints.len())
            .filter(|i| !tried.contains(i))
            .collect();
        // Least in flight; among equals, the one asked least (turns).
        candidates.sort_by_key(|&i| {
            let e = &self.endpoints[i];
            (e.in_flight.load(Relaxed), e.requests.load(Relaxed))
        });
        candidates
            .into_iter()
            .find(|&i| self.endpoints[i].breaker.allow().is_ok())
    }

    fn record(&self, i: usize, ok: bool) {
        let e = &self.endpoints[i];
        if e.breaker.record(ok) {
            tracing::warn!(endpoint = %e.url, open_ms = self.cfg.open_ms, "Ollama endpoint failing: its circuit breaker opened");
        }
    }

    /// One request to endpoint `i` (`request` is its call on the
    /// endpoint's client), within the time limit, counted and recorded by
    /// the endpoint's breaker.
    async fn call<T>(
        &self,
        i: usize,
        request: impl std::future::Future<Output = Result<T, ollama_rs::error::OllamaError>>,
    ) -> Result<T, String> {
        let e = &self.endpoints[i];
        e.requests.fetch_add(1, Relaxed);
        e.in_flight.fetch_add(1, Relaxed);
        let deadline = Duration::from_millis(self.cfg.timeout_ms);
        let result = tokio::time::timeout(deadline, request).await;
        e.in_flight.fetch_sub(1, Relaxed);
        let out = match result {
            Err(_) => Err(format!(
                "{}: no answer within {} ms",
                e.url, self.cfg.timeout_ms
            )),
            Ok(Err(err)) => Err(format!("{}: {err}", e.url)),
            Ok(Ok(reply)) => Ok(reply),
        };
        self.record(i, out.is_ok());
        out
    }

    /// One chat request to one endpoint; the reply's content.
    async fn chat(
        &self,
        i: usize,
        messages: Vec<ChatMessage>,
        schema: &Value,
    ) -> Result<String, String> {
        let format = schemars::Schema::try_from(schema.clone())
            .map(|s| FormatType::StructuredJson(Box::new(JsonStructure::new_for_schema(s))))
            .unwrap_or(FormatType::Json);
        let request = ChatMessageRequest::new(self.cfg.model.clone(), messages).format(format);
        let client = &self.endpoints[i].client;
        let reply = self.call(i, client.send_chat_messages(request)).await?;
        Ok(reply.message.content)
    }

    /// Asks for JSON matching `schema`, checked by `check`. An endpoint that
    /// fails is left for another (each endpoint once); an answer that fails
    /// the check is asked again once, with the error.
    pub async fn ask<T>(
        &self,
        system: &str,
        user: &str,
        schema: &Value,
        check: impl Fn(&Value) -> Result<T, String>,
    ) -> Asked<T> {
        let mut messages = vec![
            ChatMessage::system(system.to_string()),
            ChatMessage::user(user.to_string()),
        ];
        let mut tried = Vec::new();
        let mut invalid = None;
        let mut last_error = "every endpoint's circuit breaker is open".to_string();
        while let Some(i) = self.pick(&tried) {
            let content = match self.chat(i, messages.clone(), schema).await {
                Ok(c) => c,
                Err(e) => {
                    tried.push(i);
                    last_error = e;
                    continue;
                }
            };
            let checked = serde_json::from_str::<Value>(content.trim())
                .map_err(|e| format!("not JSON ({e})"))
                .and_then(|v| check(&v));
            match checked {
                Ok(t) => return Asked::Answer(t),
                Err(e) if invalid.is_none() => {
                    messages.push(ChatMessage::assistant(
                        content.chars().take(4_000).collect(),
                    ));
                    messages.push(ChatMessage::user(format!(
                        "That answer is not valid: {e}. Answer again with only JSON that matches the schema."
                    )));
                    invalid = Some(e);
                }
                Err(e) => return Asked::Invalid(e),
            }
        }
        match invalid {
            // The model answered once; the retry found no endpoint.
            Some(e) => Asked::Invalid(e),
            None => Asked::Unavailable(last_error),
        }
    }
}

/// A free-text answer as it comes, piece by piece.
pub type AnswerStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<String, String>> + Send>>;

impl Llm {
    /// Asks the chat model for free text, streamed: from the least busy
    /// endpoint whose breaker lets it through, trying each once until one
    /// starts answering (a failure after that ends the stream with an
    /// error).
    pub async fn answer(&self, system: &str, user: &str) -> Result<AnswerStream, String> {
        use futures::StreamExt;
        let mut tried = Vec::new();
        let mut last_error = "every endpoint's circuit breaker is open".to_string();
        while let Some(i) = self.pick(&tried) {
            let e = &self.endpoints[i];
            let messages = vec![
                ChatMessage::system(system.to_string()),
                ChatMessage::user(user.to_string()),
            ];
            let request = ChatMessageRequest::new(self.cfg.model.clone(), messages);
            match self
                .call(i, e.client.send_chat_messages_stream(request))
                .await
            {
                Ok(s) => {
                    let url = e.url.clone();
                    return Ok(Box::pin(s.map(move |r| {
                        r.map(|m| m.message.content)
                            .map_err(|()| format!("{url}: the answer broke off"))
                    })));
                }
                Err(err) => {
                    tried.push(i);
                    last_error = err;
                }
            }
        }
        Err(last_error)
    }

    /// Embeddings of `texts` by `model` (`/api/embed`), from the least busy
    /// endpoint whose breaker lets it through, trying each once.
    pub async fn embed(&self, model: &str, texts: Vec<String>) -> Result<Vec<Vec<f32>>, String> {
        let mut tried = Vec::new();
        let mut last_error = "every endpoint's circuit breaker is open".to_string();
        while let Some(i) = self.pick(&tried) {
            let e = &self.endpoints[i];
            let request = GenerateEmbeddingsRequest::new(
                model.to_string(),
                EmbeddingsInput::Multiple(texts.clone()),
            );
            let out = match self.call(i, e.client.generate_embeddings(request)).await {
                Ok(r) if r.embeddings.len() != texts.len() => Err(format!(
                    "{}: {} embeddings for {} texts",
                    e.url,
                    r.embeddings.len(),
                    texts.len()
                )),
                r => r.map(|r| r.embeddings),
            };
            match out {
                Ok(v) => return Ok(v),
                Err(err) => {
                    tried.push(i);
                    last_error = err;
                }
            }
        }
        Err(last_error)
    }
}

/// The start of a text, at most `max` characters.
pub fn truncate(text: &str, max: usize) -> &str {
    text.char_indices()
        .nth(max)
        .map_or(text, |(i, _)| &text[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn llm(threshold: u32, open_ms: u64) -> Llm {
        Llm::new(&OllamaConfig {
            endpoints: vec!["http://127.0.0.1:9".into(), "http://127.0.0.1:10".into()],
            failure_threshold: threshold,
            open_ms,
            ..OllamaConfig::default()
        })
        .unwrap()
        .unwrap()
    }

    #[test]
    fn breakers_open_after_failures_and_let_one_probe_through() {
        let l = llm(2, 0);
        assert_eq!(l.pick(&[]), Some(0));
        l.record(0, false);
        assert_eq!(l.status().endpoints[0].breaker, "closed");
        l.record(0, false);
        // Open, and its time is up at once (open_ms 0): one probe.
        assert_eq!(l.pick(&[1]), Some(0));
        assert_eq!(l.status().endpoints[0].breaker, "half_open");
        assert_eq!(l.pick(&[1]), None, "one probe at a time");
        l.record(0, true);
        assert_eq!(l.status().endpoints[0].breaker, "closed");
        assert_eq!(l.status().endpoints[0].opened, 1);
    }

    #[test]
    fn an_open_breaker_waits() {
        let l = llm(1, 60_000);
        l.record(0, false);
        l.record(1, false);
        assert_eq!(l.status().endpoints[0].breaker, "open");
        assert_eq!(l.pick(&[]), None);
    }

    #[test]
    fn least_in_flight_first() {
        let l = llm(3, 1000);
        l.endpoints[0].in_flight.store(2, Relaxed);
        assert_eq!(l.pick(&[]), Some(1));
    }
}
