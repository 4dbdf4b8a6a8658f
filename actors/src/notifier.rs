//! Notifier: sends webhooks their events, from the events table (the
//! durable outbox), one feed task per webhook (see `notifier/feed.rs`).
//!
//! In: `Changed(webhook)` from the Catalog after a webhook is created or
//! deleted, or one of its failed deliveries is made due again: that
//! webhook's feed starts over from what the catalog holds. Out: each
//! delivery's outcome and each webhook's cursor to the Catalog. The live
//! stream's subscribers (SSE, WebSocket) read the same table in the HTTP
//! layer; both wait on the Catalog's last durable event.

pub mod deliver;
pub mod feed;
pub mod flows;
pub mod workflow;

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::WebhooksConfig;
use crate::counters::Counters;
use crate::model::Scope;
use crate::routes::{NotifierMsg, RoutesRx};
use crate::store::pool::ReadPool;
use crate::store::webhooks::list_webhooks;
use crate::store::workflows::list_workflows;
use feed::FeedCtx;

pub struct NotifierArgs {
    pub config: WebhooksConfig,
    pub db: ReadPool,
    pub events: watch::Receiver<i64>,
    pub routes: RoutesRx,
    pub counters: Arc<Counters>,
    /// The document types in force (a workflow's field kinds).
    pub types: crate::types::TypesSlot,
}

pub struct NotifierState {
    ctx: Arc<FeedCtx>,
    stop: watch::Sender<bool>,
    /// Per webhook: its feed, and how to tell it of deliveries made due.
    feeds: HashMap<String, (JoinHandle<()>, watch::Sender<()>)>,
    flows: HashMap<String, JoinHandle<()>>,
}

impl NotifierState {
    fn start(&mut self, id: String) {
        if let Some((old, _)) = self.feeds.remove(&id) {
            old.abort();
        }
        let (poke, poked) = watch::channel(());
        let task = tokio::spawn(feed::run(self.ctx.clone(), id.clone(), poked));
        self.feeds.insert(id, (task, poke));
        self.feeds.retain(|_, (t, _)| !t.is_finished());
        self.ctx
            .counters
            .notifier
            .pool_size
            .store(self.feeds.len() as u64, Relaxed);
    }

    fn start_flow(&mut self, name: String) {
        if let Some(old) = self.flows.remove(&name) {
            old.abort();
        }
        let task = tokio::spawn(flows::run(self.ctx.clone(), name.clone()));
        self.flows.insert(name, task);
        self.flows.retain(|_, t| !t.is_finished());
    }
}

pub struct Notifier;

impl Actor for Notifier {
    type Msg = NotifierMsg;
    type State = NotifierState;
    type Arguments = NotifierArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<NotifierMsg>,
        args: NotifierArgs,
    ) -> Result<NotifierState, ActorProcessingErr> {
        let client = deliver::client(&args.config)?;
        let hooks = args.db.run(|c| list_webhooks(c, &Scope::All)).await?;
        let flows = args.db.run(|c| list_workflows(c, &Scope::All)).await?;
        let (stop, stopping) = watch::channel(false);
        let ctx = Arc::new(FeedCtx {
            stop: stopping,
            config: args.config,
            db: args.db,
            events: args.events,
            routes: args.routes,
            client,
            counters: args.counters,
            types: args.types,
        });
        let mut st = NotifierState {
            ctx,
            stop,
            feeds: HashMap::new(),
            flows: HashMap::new(),
        };
        for h in hooks {
            st.start(h.id);
        }
        for f in flows {
            st.start_flow(f.name);
        }
        Ok(st)
    }

    async fn handle(
        &self,
        _me: ActorRef<NotifierMsg>,
        msg: NotifierMsg,
        st: &mut NotifierState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            // A deleted webhook's feed finds no webhook and ends.
            NotifierMsg::Changed(id) => {
                if !*st.ctx.stop.borrow() {
                    st.start(id)
                }
            }
            NotifierMsg::Poke(id) => match st.feeds.get(&id) {
                Some((_, poke)) => {
                    poke.send_replace(());
                }
                None => st.start(id),
            },
            NotifierMsg::Workflow(name) => {
                if !*st.ctx.stop.borrow() {
                    st.start_flow(name)
                }
            }
            NotifierMsg::Quiesce(reply) => {
                st.stop.send_replace(true);
                let limit = std::time::Duration::from_millis(st.ctx.config.timeout_ms + 1_000);
                let mut feeds: Vec<_> = st.feeds.drain().map(|(_, (t, _))| t).collect();
                feeds.extend(st.flows.drain().map(|(_, t)| t));
                let all = futures::future::join_all(feeds);
                if tokio::time::timeout(limit, all).await.is_err() {
                    tracing::warn!("webhook deliveries still in the air at shutdown; they are sent again at the next start");
                }
                let _ = reply.send(Ok(()));
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _me: ActorRef<NotifierMsg>,
        st: &mut NotifierState,
    ) -> Result<(), ActorProcessingErr> {
        for (_, (t, _)) in st.feeds.drain() {
            t.abort();
        }
        for (_, t) in st.flows.drain() {
            t.abort();
        }
        Ok(())
    }
}
