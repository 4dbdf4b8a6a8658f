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
use feed::FeedCtx;

pub struct NotifierArgs {
    pub config: WebhooksConfig,
    pub db: ReadPool,
    pub events: watch::Receiver<i64>,
    pub routes: RoutesRx,
    pub counters: Arc<Counters>,
}

pub struct NotifierState {
    ctx: Arc<FeedCtx>,
    stop: watch::Sender<bool>,
    feeds: HashMap<String, JoinHandle<()>>,
}

impl NotifierState {
    fn start(&mut self, id: String) {
        if let Some(old) = self.feeds.remove(&id) {
            old.abort();
        }
        let task = tokio::spawn(feed::run(self.ctx.clone(), id.clone()));
        self.feeds.insert(id, task);
        self.feeds.retain(|_, t| !t.is_finished());
        self.ctx
            .counters
            .notifier
            .pool_size
            .store(self.feeds.len() as u64, Relaxed);
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
        let (stop, stopping) = watch::channel(false);
        let ctx = Arc::new(FeedCtx {
            stop: stopping,
            config: args.config,
            db: args.db,
            events: args.events,
            routes: args.routes,
            client,
            counters: args.counters,
        });
        let mut st = NotifierState {
            ctx,
            stop,
            feeds: HashMap::new(),
        };
        for h in hooks {
            st.start(h.id);
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
            NotifierMsg::Quiesce(reply) => {
                st.stop.send_replace(true);
                let limit = std::time::Duration::from_millis(st.ctx.config.timeout_ms + 1_000);
                let feeds: Vec<_> = st.feeds.drain().map(|(_, t)| t).collect();
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
        for (_, t) in st.feeds.drain() {
            t.abort();
        }
        Ok(())
    }
}
