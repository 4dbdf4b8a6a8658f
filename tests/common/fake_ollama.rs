//! A fake Ollama server for the tests: it speaks the Ollama HTTP API
//! (`/api/tags`, `/api/show`, `/api/chat`, `/api/generate`, `/api/embed`,
//! NDJSON streaming when asked) so that ollama-rs talks to it unchanged, and
//! can be told how to behave: answer well, answer invalid or truncated JSON,
//! answer off-schema, stall, fail with 500, or refuse connections (its port
//! is really closed, then opened again).
//!
//! Answering well: for a type question (a `doc_type` enum in the schema) it
//! picks the first allowed name that the document's text contains, else the
//! first; for fields it gives the values it was told (`fields`), null for
//! the others.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    Good,
    InvalidJson,
    TruncatedJson,
    OffSchema,
    /// Answers after this long (past the client's timeout).
    Stall(Duration),
    Error500,
}

#[derive(Default)]
struct Shared {
    behaviour: Mutex<Option<Behaviour>>,
    fields: Mutex<HashMap<String, String>>,
    chats: AtomicU64,
}

pub struct FakeOllama {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    rt: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

pub const MODEL: &str = "fake-model:1b";

impl FakeOllama {
    pub fn start(behaviour: Behaviour) -> FakeOllama {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let shared = Arc::new(Shared::default());
        *shared.behaviour.lock().unwrap() = Some(behaviour);
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let mut fake = FakeOllama {
            addr,
            shared,
            rt,
            stop: None,
        };
        fake.serve(listener);
        fake
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let app = Router::new()
            .route("/api/tags", get(tags))
            .route("/api/show", post(show))
            .route("/api/chat", post(chat))
            .route("/api/generate", post(generate))
            .route("/api/embed", post(embed))
            .with_state(self.shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        self.rt.spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        self.stop = Some(tx);
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.shared.behaviour.lock().unwrap() = Some(behaviour);
    }

    /// The values to give for fields.
    pub fn set_fields(&self, fields: &[(&str, &str)]) {
        *self.shared.fields.lock().unwrap() = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }

    /// Chat requests answered so far (whatever the answer).
    pub fn chats(&self) -> u64 {
        self.shared.chats.load(Relaxed)
    }

    /// Closes the port: connections are refused.
    pub fn refuse(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Wait until the port no longer accepts.
        let addr = self.addr;
        for _ in 0..500 {
            if std::net::TcpStream::connect(addr).is_err() {
                return;
            }
            std::thread::yield_now();
            std::thread::sleep(Duration::from_millis(2));
        }
        panic!("the fake Ollama server did not close its port");
    }

    /// Listens on the same port again.
    pub fn accept(&mut self, behaviour: Behaviour) {
        self.set(behaviour);
        let listener = self
            .rt
            .block_on(tokio::net::TcpListener::bind(self.addr))
            .expect("rebind the fake Ollama port");
        self.serve(listener);
    }
}

impl Drop for FakeOllama {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn now() -> String {
    "2026-11-21T12:00:00.000000000Z".to_string()
}

async fn tags() -> Json<Value> {
    Json(json!({"models": [{
        "name": MODEL, "model": MODEL, "modified_at": now(), "size": 1_000_000, "digest": "0123456789abcdef",
        "details": {"parent_model": "", "format": "gguf", "family": "fake", "families": ["fake"],
                    "parameter_size": "1B", "quantization_level": "Q4_0"}
    }]}))
}

async fn show() -> Json<Value> {
    Json(json!({
        "modelfile": "FROM fake", "parameters": "", "template": "{{ .Prompt }}",
        "details": {"parent_model": "", "format": "gguf", "family": "fake", "families": ["fake"],
                    "parameter_size": "1B", "quantization_level": "Q4_0"},
        "model_info": {}, "capabilities": ["completion"]
    }))
}

/// A free-text question (no schema), as `POST /api/v1/ask` puts it: the
/// answer quotes the first five words of passage [1] and cites it (ASCII
/// only, so that it splits into two pieces anywhere).
pub fn free_answer(prompt: &str) -> String {
    let first = prompt
        .lines()
        .find_map(|l| l.strip_prefix("[1] "))
        .and_then(|l| l.split_once("): ").map(|(_, p)| p))
        .unwrap_or("");
    let words: Vec<&str> = first.split_whitespace().take(5).collect();
    let quote: String = words.join(" ").chars().filter(|c| c.is_ascii()).collect();
    format!("The documents say: {quote} [1].")
}

/// The content a well-behaved model would answer.
fn good_answer(shared: &Shared, req: &Value) -> Value {
    let schema = &req["format"];
    let text: String = req["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter(|m| m["role"] == "user")
                .filter_map(|m| m["content"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .or_else(|| req["prompt"].as_str().map(str::to_string))
        .unwrap_or_default();
    if schema.is_null() {
        return json!(free_answer(&text));
    }
    let text = text.to_lowercase();
    if let Some(names) = schema["properties"]["doc_type"]["enum"].as_array() {
        let names: Vec<&str> = names.iter().filter_map(|n| n.as_str()).collect();
        let pick = names
            .iter()
            .find(|n| text.contains(&n.to_lowercase()))
            .or(names.first())
            .copied()
            .unwrap_or("other");
        return json!({"doc_type": pick, "confidence": 0.9});
    }
    let fields = shared.fields.lock().unwrap();
    let mut out = serde_json::Map::new();
    if let Some(props) = schema["properties"].as_object() {
        for name in props.keys() {
            out.insert(
                name.clone(),
                fields.get(name).map_or(Value::Null, |v| json!(v)),
            );
        }
    }
    Value::Object(out)
}

/// The reply text for the current behaviour, or an HTTP failure.
async fn content(shared: &Shared, req: &Value) -> Result<String, Response> {
    shared.chats.fetch_add(1, Relaxed);
    let behaviour = shared.behaviour.lock().unwrap().unwrap_or(Behaviour::Good);
    let good = match good_answer(shared, req) {
        Value::String(s) => s,
        v => v.to_string(),
    };
    match behaviour {
        Behaviour::Good => Ok(good),
        Behaviour::InvalidJson => Ok("Sure! The type is invoice, I think.".into()),
        Behaviour::TruncatedJson => Ok(good[..good.len() / 2].to_string()),
        Behaviour::OffSchema => Ok(json!({"answer": "invoice", "certainty": "high"}).to_string()),
        Behaviour::Stall(d) => {
            tokio::time::sleep(d).await;
            Ok(good)
        }
        Behaviour::Error500 => Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "model runner has unexpectedly stopped"})),
        )
            .into_response()),
    }
}

fn final_data() -> Value {
    json!({"total_duration": 1_000_000, "load_duration": 1000, "prompt_eval_count": 10,
           "prompt_eval_duration": 1000, "eval_count": 5, "eval_duration": 1000})
}

/// NDJSON: the content in two chunks, then the final message.
fn stream(chunks: Vec<Value>) -> Response {
    let body: String = chunks.iter().map(|c| format!("{c}\n")).collect();
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from(body))
        .unwrap()
}

async fn chat(State(shared): State<Arc<Shared>>, Json(req): Json<Value>) -> Response {
    let text = match content(&shared, &req).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let model = req["model"].as_str().unwrap_or(MODEL).to_string();
    let message = |c: &str| json!({"role": "assistant", "content": c});
    if req["stream"] != false {
        let (a, b) = text.split_at(text.len() / 2);
        let mut last = json!({"model": model, "created_at": now(), "message": message(""), "done": true, "done_reason": "stop"});
        for (k, v) in final_data().as_object().unwrap() {
            last[k] = v.clone();
        }
        return stream(vec![
            json!({"model": model, "created_at": now(), "message": message(a), "done": false}),
            json!({"model": model, "created_at": now(), "message": message(b), "done": false}),
            last,
        ]);
    }
    let mut out = json!({"model": model, "created_at": now(), "message": message(&text), "done": true, "done_reason": "stop"});
    for (k, v) in final_data().as_object().unwrap() {
        out[k] = v.clone();
    }
    Json(out).into_response()
}

async fn generate(State(shared): State<Arc<Shared>>, Json(req): Json<Value>) -> Response {
    let text = match content(&shared, &req).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let model = req["model"].as_str().unwrap_or(MODEL).to_string();
    let mut last = json!({"model": model, "created_at": now(), "response": "", "done": true, "done_reason": "stop", "context": [1, 2, 3]});
    for (k, v) in final_data().as_object().unwrap() {
        last[k] = v.clone();
    }
    if req["stream"] != false {
        return stream(vec![
            json!({"model": model, "created_at": now(), "response": text, "done": false}),
            last,
        ]);
    }
    last["response"] = json!(text);
    Json(last).into_response()
}

async fn embed(Json(req): Json<Value>) -> Json<Value> {
    let inputs: Vec<String> = match &req["input"] {
        Value::Array(a) => a
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect(),
        Value::String(s) => vec![s.clone()],
        _ => Vec::new(),
    };
    let embeddings: Vec<Vec<f32>> = inputs.iter().map(|s| embedding_of(s)).collect();
    Json(json!({"model": req["model"], "embeddings": embeddings}))
}

/// The words the fake's embeddings count, one dimension each.
pub const EMBED_AXES: [&str; 8] = [
    "oil", "gold", "ship", "bank", "steel", "wheat", "court", "hotel",
];

/// The fake's embedding of a text: how often each of [`EMBED_AXES`]
/// occurs in it (plus a small constant, so that no vector is zero), as a
/// unit vector.
pub fn embedding_of(text: &str) -> Vec<f32> {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric()).collect();
    let mut v: Vec<f32> = EMBED_AXES
        .iter()
        .map(|a| words.iter().filter(|w| *w == a).count() as f32 + 0.01)
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}
