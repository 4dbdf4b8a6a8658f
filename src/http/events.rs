//! Live events: every stage change of a document, pushed to subscribers by
//! server-sent events (`GET /api/v1/events/stream`) and over a WebSocket
//! (`/api/v1/ws`).
//!
//! The events table is the stream. The Catalog's syncer publishes the id of
//! the last durable event on a watch channel; each subscriber has a task
//! that reads the events after its last one from SQLite (in the caller's
//! workspaces, through its filters) and queues them for the connection.
//! So a subscriber that resumes (`Last-Event-ID`, `?since=`) is replayed
//! from the table and misses nothing, an event a crash could undo is never
//! sent, and the pipeline never waits for anyone: it only sets a number. A
//! subscriber whose queue stays full for `server.subscriber_stall_ms` is
//! dropped with a notice; it resumes from its last id.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use docpipe_actors::{Code, Scope, StreamEvent, StreamFilter, STREAM_STAGES};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::gateway::Caller;
use super::problem::Problem;
use super::AppState;
use crate::config::ServerConfig;

/// Events read from the table at once for one subscriber.
const BATCH: usize = 256;

/// How long a browser's ticket stands in for its token.
pub const TICKET_TTL: Duration = Duration::from_secs(60);

/// The live subscribers: how many, within what limits; and the browsers'
/// tickets.
pub struct Subscribers {
    count: Arc<AtomicUsize>,
    max: usize,
    queue: usize,
    stall: Duration,
    /// Ticket → (token id, when it expires).
    tickets: Mutex<std::collections::HashMap<String, (String, Instant)>>,
}

impl Subscribers {
    pub fn new(cfg: &ServerConfig) -> Self {
        Subscribers {
            count: Arc::default(),
            max: cfg.max_subscribers,
            queue: cfg.subscriber_queue,
            stall: Duration::from_millis(cfg.subscriber_stall_ms),
            tickets: Mutex::default(),
        }
    }

    /// Subscribers connected now.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// A new ticket for the token, good for [`TICKET_TTL`].
    pub fn issue_ticket(&self, token_id: &str) -> String {
        let ticket = uuid::Uuid::new_v4().simple().to_string();
        let now = Instant::now();
        let mut t = self.tickets.lock().expect("tickets poisoned");
        t.retain(|_, (_, until)| *until > now);
        t.insert(ticket.clone(), (token_id.to_string(), now + TICKET_TTL));
        ticket
    }

    /// The token id a ticket stands for, while it has not expired.
    pub fn redeem(&self, ticket: &str) -> Option<String> {
        let t = self.tickets.lock().expect("tickets poisoned");
        t.get(ticket)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(id, _)| id.clone())
    }
}

/// One place in the subscriber count, given back when the subscriber goes.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Deserialize)]
pub struct StreamParams {
    since: Option<String>,
    document: Option<String>,
    /// One stage or several, comma-separated.
    stage: Option<String>,
    workspace: Option<String>,
    // `ticket` is the token check's (see `gateway::ticket_of`).
}

/// What a connection sends: an event, or the notice that it is dropped.
enum Item {
    Event(StreamEvent),
    Dropped(String),
}

/// Checks the request and starts its subscriber: the items to send, in
/// order, ending after a drop notice or when the server stops.
fn subscribe(
    app: &AppState,
    caller: &Caller,
    p: StreamParams,
    headers: &HeaderMap,
) -> Result<impl Stream<Item = Item> + Send + 'static, Problem> {
    let bad = |m: String| Problem::new(Code::InvalidParameter, m);
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(p.since);
    let watch = app.pipeline.reader().event_watch();
    let after = match resume.as_deref().map(str::trim) {
        None | Some("") => *watch.borrow(),
        Some(s) => s.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            bad(format!(
                "since / Last-Event-ID is an event id (a whole number from 0), not {s:?}"
            ))
        })?,
    };
    let stages = match p.stage.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(list) => {
            let stages: Vec<String> = list.split(',').map(|s| s.trim().to_string()).collect();
            if let Some(s) = stages.iter().find(|s| !STREAM_STAGES.contains(&s.as_str())) {
                return Err(bad(format!(
                    "unknown stage {s:?}; the stages are {}",
                    STREAM_STAGES.join(", ")
                )));
            }
            Some(stages)
        }
    };
    let scope = caller.principal.scope();
    if let Some(w) = &p.workspace {
        if !scope.allows(w) {
            return Err(Problem::new(
                Code::WorkspaceForbidden,
                format!("the token may not read workspace {w:?}"),
            ));
        }
    }
    let subs = &app.subscribers;
    if subs.count.fetch_add(1, Ordering::Relaxed) >= subs.max {
        subs.count.fetch_sub(1, Ordering::Relaxed);
        return Err(Problem::new(
            Code::TooManySubscribers,
            format!(
                "{} subscribers are connected, as many as server.max_subscribers allows; try again later",
                subs.max
            ),
        ));
    }
    let slot = Slot(subs.count.clone());
    let filter = StreamFilter {
        document: p.document,
        stages,
        workspace: p.workspace,
    };
    let (tx, rx) = mpsc::channel(subs.queue);
    let (notice_tx, notice_rx) = oneshot::channel();
    let pump = Pump {
        app: app.clone(),
        scope,
        filter,
        watch,
        tx,
        stall: subs.stall,
        _slot: slot,
    };
    tokio::spawn(pump.run(after, notice_tx));
    // The notice goes before what is still queued: the subscriber resumes
    // from the last event it got.
    Ok(futures::stream::unfold(
        Some((rx, notice_rx)),
        |state| async move {
            let (mut rx, mut notice) = state?;
            tokio::select! {
                biased;
                Ok(why) = &mut notice => Some((Item::Dropped(why), None)),
                item = rx.recv() => item.map(|i| (i, Some((rx, notice)))),
            }
        },
    ))
}

/// One subscriber's reader: from the table to its queue.
struct Pump {
    app: AppState,
    scope: Scope,
    filter: StreamFilter,
    watch: tokio::sync::watch::Receiver<i64>,
    tx: mpsc::Sender<Item>,
    stall: Duration,
    _slot: Slot,
}

impl Pump {
    async fn run(mut self, mut after: i64, notice: oneshot::Sender<String>) {
        let reader = self.app.pipeline.reader().clone();
        loop {
            let upto = *self.watch.borrow_and_update();
            let batch = match reader
                .stream_events(after, upto, self.filter.clone(), &self.scope, BATCH)
                .await
            {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "the event stream could not read the catalog");
                    let _ = notice.send("the catalog could not be read; resume later".into());
                    return;
                }
            };
            // A batch that is not full holds every event of this subscriber
            // up to `upto`; a full one, those up to its last.
            let more = batch.len() == BATCH;
            after = match batch.last() {
                Some(last) if more => last.id,
                _ => after.max(upto),
            };
            for ev in batch {
                // Queued at once while the subscriber keeps up; a timer only
                // when its queue is full.
                let item = match self.tx.try_send(Item::Event(ev)) {
                    Ok(()) => continue,
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                    Err(mpsc::error::TrySendError::Full(item)) => item,
                };
                match tokio::time::timeout(self.stall, self.tx.send(item)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return,
                    Err(_) => {
                        let _ = notice.send(format!(
                            "not reading: {} events waited for {} ms (server.subscriber_stall_ms); \
                             resume with the last event id received",
                            self.tx.max_capacity(),
                            self.stall.as_millis()
                        ));
                        return;
                    }
                }
            }
            if !more {
                tokio::select! {
                    changed = self.watch.changed() => if changed.is_err() { return },
                    _ = self.tx.closed() => return,
                }
            }
        }
    }
}

fn params(p: Result<Query<StreamParams>, QueryRejection>) -> Result<StreamParams, Problem> {
    p.map(|Query(p)| p)
        .map_err(|e| Problem::new(Code::InvalidParameter, e.body_text()))
}

/// `GET /api/v1/events/stream`: the events as server-sent events, each
/// `id: N`, `event: stage`, `data: {id, document, workspace, stage, at,
/// request_id}`; a dropped subscriber gets `event: dropped` last.
pub async fn stream(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    p: Result<Query<StreamParams>, QueryRejection>,
) -> Result<Response, Problem> {
    let items = subscribe(&app, &caller, params(p)?, &headers)?;
    let events = items.map(|item| {
        Ok::<_, Infallible>(match item {
            Item::Event(e) => Event::default()
                .id(e.id.to_string())
                .event("stage")
                .json_data(&e)
                .unwrap_or_else(|_| Event::default().comment("unserialisable event")),
            Item::Dropped(why) => Event::default()
                .event("dropped")
                .json_data(json!({ "reason": why }))
                .unwrap_or_default(),
        })
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// `GET /api/v1/ws`: the same events as JSON text messages; a dropped
/// subscriber gets `{"dropped": reason}` and a close frame.
pub async fn ws(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    p: Result<Query<StreamParams>, QueryRejection>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, Problem> {
    let items = subscribe(&app, &caller, params(p)?, &headers)?;
    Ok(upgrade.on_upgrade(move |socket| send_all(socket, items)))
}

async fn send_all(mut socket: WebSocket, items: impl Stream<Item = Item> + Send + 'static) {
    let mut items = std::pin::pin!(items);
    loop {
        tokio::select! {
            item = items.next() => {
                let (text, last) = match item {
                    Some(Item::Event(e)) => (serde_json::to_string(&e).unwrap_or_default(), false),
                    Some(Item::Dropped(why)) => (json!({ "dropped": why }).to_string(), true),
                    None => break,
                };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
                if last {
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame {
                            code: 1013,
                            reason: "dropped: not reading".into(),
                        })))
                        .await;
                    return;
                }
            }
            // Reading keeps pings answered and sees the client go.
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

/// `POST /api/v1/events/ticket`: a ticket a browser passes as `?ticket=` to
/// the stream or the WebSocket, where it cannot send a header; it stands for
/// the caller's token for 60 seconds.
pub async fn ticket(State(app): State<AppState>, caller: Caller) -> Response {
    let ticket = app.subscribers.issue_ticket(&caller.principal.token_id);
    Json(json!({ "ticket": ticket, "expires_in": TICKET_TTL.as_secs() })).into_response()
}
