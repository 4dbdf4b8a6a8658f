//! Mailboxes (`[[mail]]`): each new message of an IMAP folder is ingested
//! as an e-mail document (its attachments become documents as any e-mail's
//! do), then flagged, moved or deleted on the server, as configured.
//!
//! One task per mailbox connects (TLS, STARTTLS, or plain to a loopback
//! host), logs in, selects the folder and looks for messages: `UID SEARCH`
//! with the configured sender and subject filters, then each new one
//! fetched with `BODY.PEEK[]` (it stays unread) and registered like an
//! upload. The registration records the mailbox, its UIDVALIDITY and the
//! message's UID in the same transaction (the `imported` table), so a
//! message is never ingested twice, across restarts; one registered but
//! not yet flagged, moved or deleted (a crash in between) is handled on the
//! next look. Between looks it waits in IDLE where the server offers it
//! (woken by new mail), else `interval_s`; IDLE is left every `interval_s`
//! anyway. A server that is down or refuses the login shows so in
//! `/api/v1/status` and is tried again with backoff; `password_file` is read
//! at each connection, so a fixed password needs no restart.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_imap::{Client, Session};
use docpipe_actors::{
    sniff, NewDocument, Origin, Pipeline, Sniffed, UploadExtras, DEFAULT_WORKSPACE,
};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    #[default]
    Tls,
    Starttls,
    /// Plain IMAP: only to a loopback host (the password would travel in
    /// the clear).
    None,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MailAfter {
    /// Sets `\Flagged`; the message stays.
    #[default]
    Flag,
    /// To `move_to`.
    Move,
    Delete,
}

/// One mailbox.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// What the status calls it; default `username@host/folder`.
    pub name: String,
    pub host: String,
    /// Default 993 with `tls`, else 143.
    pub port: u16,
    pub tls: TlsMode,
    pub username: String,
    pub password: String,
    /// A file holding the password (read at each connection).
    pub password_file: Option<PathBuf>,
    pub folder: String,
    pub after: MailAfter,
    pub move_to: String,
    /// Seconds between looks when the server has no IDLE, and the longest
    /// an IDLE lasts.
    pub interval_s: u64,
    pub workspace: String,
    /// Only messages whose sender contains this (IMAP `FROM`).
    pub from: String,
    /// Only messages whose subject contains this (IMAP `SUBJECT`).
    pub subject: String,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            name: String::new(),
            host: String::new(),
            port: 0,
            tls: TlsMode::Tls,
            username: String::new(),
            password: String::new(),
            password_file: None,
            folder: "INBOX".into(),
            after: MailAfter::Flag,
            move_to: String::new(),
            interval_s: 60,
            workspace: DEFAULT_WORKSPACE.into(),
            from: String::new(),
            subject: String::new(),
        }
    }
}

impl MailConfig {
    pub fn display_name(&self) -> String {
        if self.name.is_empty() {
            format!("{}@{}/{}", self.username, self.host, self.folder)
        } else {
            self.name.clone()
        }
    }

    fn port(&self) -> u16 {
        match (self.port, self.tls) {
            (0, TlsMode::Tls) => 993,
            (0, _) => 143,
            (p, _) => p,
        }
    }

    /// What is wrong with it, for the configuration check.
    pub fn problems(&self, i: usize) -> Vec<String> {
        let mut out = Vec::new();
        if self.host.is_empty() || self.username.is_empty() {
            out.push(format!("mail[{i}]: host and username must be set"));
        }
        if self.password.is_empty() && self.password_file.is_none() {
            out.push(format!("mail[{i}]: password or password_file must be set"));
        }
        if self.after == MailAfter::Move && self.move_to.is_empty() {
            out.push(format!("mail[{i}]: after = \"move\" needs move_to"));
        }
        if self.tls == TlsMode::None && !is_loopback(&self.host) {
            out.push(format!(
                "mail[{i}]: tls = \"none\" would send the password in the clear; it is only allowed to a loopback host, not {:?}",
                self.host
            ));
        }
        if !docpipe_actors::valid_workspace(&self.workspace) {
            out.push(format!(
                "mail[{i}].workspace {:?}: 1 to 64 letters, digits, '-' or '_'",
                self.workspace
            ));
        }
        if self.interval_s == 0 {
            out.push(format!("mail[{i}].interval_s must be at least 1"));
        }
        for (k, v) in [
            ("from", &self.from),
            ("subject", &self.subject),
            ("folder", &self.folder),
            ("move_to", &self.move_to),
        ] {
            if v.contains(['"', '\\', '\r', '\n']) {
                out.push(format!(
                    "mail[{i}].{k}: quotes, backslashes and line breaks are not allowed"
                ));
            }
        }
        out
    }

    fn password(&self) -> Result<String, String> {
        match &self.password_file {
            Some(p) => std::fs::read_to_string(p)
                .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
                .map_err(|e| format!("cannot read password_file {}: {e}", p.display())),
            None => Ok(self.password.clone()),
        }
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A mailbox's figures, for `/api/v1/status`.
#[derive(Debug)]
pub struct MailState {
    pub name: String,
    /// `connecting`, `idle` (waiting in IDLE), `waiting` (until the next
    /// look), `reading`, `login_refused`, `unreachable`, `error`.
    pub state: Mutex<&'static str>,
    pub ingested: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

impl MailState {
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "state": *self.state.lock().unwrap_or_else(|p| p.into_inner()),
            "ingested": self.ingested.load(Relaxed),
            "last_error": *self.last_error.lock().unwrap_or_else(|p| p.into_inner()),
        })
    }

    fn set(&self, s: &'static str) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }

    fn fail(&self, f: &Failure) {
        tracing::warn!(mailbox = %self.name, error = %f.message, "mailbox");
        self.set(f.state);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(f.message.clone());
    }
}

/// Why a round with the server ended, and the state it leaves.
struct Failure {
    state: &'static str,
    message: String,
}

fn unreachable(m: impl fmt::Display) -> Failure {
    Failure {
        state: "unreachable",
        message: m.to_string(),
    }
}

fn error(m: impl fmt::Display) -> Failure {
    Failure {
        state: "error",
        message: m.to_string(),
    }
}

/// Starts one task per mailbox; their figures.
pub fn start(pipeline: &Pipeline, boxes: &[MailConfig], max_bytes: u64) -> Vec<Arc<MailState>> {
    let mut states = Vec::new();
    for m in boxes {
        let state = Arc::new(MailState {
            name: m.display_name(),
            state: Mutex::new("connecting"),
            ingested: AtomicU64::new(0),
            last_error: Mutex::new(None),
        });
        states.push(state.clone());
        let (pipeline, m) = (pipeline.clone(), m.clone());
        tokio::spawn(async move {
            let mut backoff = Duration::from_secs(1);
            let cap = Duration::from_secs(m.interval_s.clamp(5, 300));
            loop {
                state.set("connecting");
                let mut logged_in = false;
                let f = round(&pipeline, &m, &state, max_bytes, &mut logged_in).await;
                state.fail(&f);
                if logged_in {
                    backoff = Duration::from_secs(1);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(cap);
            }
        });
    }
    states
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug> Io for T {}
type Stream = Box<dyn Io>;

fn tls_connector() -> Result<tokio_rustls::TlsConnector, Failure> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(error)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

async fn tls_wrap(m: &MailConfig, tcp: tokio::net::TcpStream) -> Result<Stream, Failure> {
    let name = rustls::pki_types::ServerName::try_from(m.host.clone())
        .map_err(|e| error(format!("{:?} is not a host name: {e}", m.host)))?;
    let s = tls_connector()?
        .connect(name, tcp)
        .await
        .map_err(|e| unreachable(format!("TLS with {}: {e}", m.host)))?;
    Ok(Box::new(s))
}

/// Connects and logs in.
async fn connect(m: &MailConfig) -> Result<Session<Stream>, Failure> {
    let addr = format!("{}:{}", m.host, m.port());
    let tcp = tokio::time::timeout(
        Duration::from_secs(15),
        tokio::net::TcpStream::connect(&addr),
    )
    .await
    .map_err(|_| unreachable(format!("{addr} did not answer in 15 s")))?
    .map_err(|e| unreachable(format!("cannot connect to {addr}: {e}")))?;
    let greet = |e: std::io::Error| unreachable(format!("{addr}: {e}"));
    let client: Client<Stream> = match m.tls {
        TlsMode::Starttls => {
            // No greeting after STARTTLS: the exchange is done on the
            // plain connection, then the client starts over TLS.
            let tcp = starttls(tcp, &addr).await?;
            Client::new(tls_wrap(m, tcp).await?)
        }
        TlsMode::Tls | TlsMode::None => {
            let stream: Stream = match m.tls {
                TlsMode::Tls => tls_wrap(m, tcp).await?,
                _ => Box::new(tcp),
            };
            let mut c = Client::new(stream);
            c.read_response().await.map_err(greet)?.ok_or_else(|| {
                unreachable(format!("{addr} closed the connection before its greeting"))
            })?;
            c
        }
    };
    let password = m.password().map_err(error)?;
    client
        .login(&m.username, &password)
        .await
        .map_err(|(e, _)| Failure {
            state: "login_refused",
            message: format!("{addr} refused the login of {:?}: {e}", m.username),
        })
}

/// The greeting and `STARTTLS` on a plain connection (RFC 3501 6.2.1).
async fn starttls(
    mut tcp: tokio::net::TcpStream,
    addr: &str,
) -> Result<tokio::net::TcpStream, Failure> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    async fn line(tcp: &mut tokio::net::TcpStream) -> std::io::Result<String> {
        let mut out = Vec::new();
        let mut b = [0u8; 1];
        while out.len() < 8192 {
            if tcp.read(&mut b).await? == 0 {
                break;
            }
            out.push(b[0]);
            if b[0] == b'\n' {
                break;
            }
        }
        Ok(String::from_utf8_lossy(&out).trim_end().to_string())
    }
    let io = |e: std::io::Error| unreachable(format!("{addr}: {e}"));
    let greeting = line(&mut tcp).await.map_err(io)?;
    if !greeting.starts_with("* OK") {
        return Err(unreachable(format!("{addr} greeted with {greeting:?}")));
    }
    tcp.write_all(b"a0 STARTTLS\r\n").await.map_err(io)?;
    loop {
        let l = line(&mut tcp).await.map_err(io)?;
        if l.is_empty() {
            return Err(unreachable(format!(
                "{addr} closed the connection at STARTTLS"
            )));
        }
        if let Some(status) = l.strip_prefix("a0 ") {
            if status.starts_with("OK") {
                return Ok(tcp);
            }
            return Err(error(format!("{addr} refused STARTTLS: {status}")));
        }
    }
}

/// One connection's life: log in, then look and wait until something
/// fails; what failed.
async fn round(
    pipeline: &Pipeline,
    m: &MailConfig,
    state: &MailState,
    max_bytes: u64,
    logged_in: &mut bool,
) -> Failure {
    let mut session = match connect(m).await {
        Ok(s) => s,
        Err(f) => return f,
    };
    *logged_in = true;
    let io = |e: async_imap::error::Error| unreachable(format!("{}: {e}", m.host));
    let caps = match session.capabilities().await {
        Ok(c) => c,
        Err(e) => return io(e),
    };
    let (idle, can_move) = (caps.has_str("IDLE"), caps.has_str("MOVE"));
    loop {
        state.set("reading");
        let mailbox = match session.select(&m.folder).await {
            Ok(b) => b,
            Err(e) => return error(format!("cannot select {:?}: {e}", m.folder)),
        };
        let Some(validity) = mailbox.uid_validity else {
            return error(format!(
                "{:?} has no UIDVALIDITY: the server keeps no UIDs",
                m.folder
            ));
        };
        if let Err(f) = look(
            pipeline,
            m,
            state,
            &mut session,
            validity,
            can_move,
            max_bytes,
        )
        .await
        {
            return f;
        }
        let wait = Duration::from_secs(m.interval_s);
        if idle {
            state.set("idle");
            let mut handle = session.idle();
            if let Err(e) = handle.init().await {
                return io(e);
            }
            let (fut, _stop) = handle.wait_with_timeout(wait);
            if let Err(e) = fut.await {
                return io(e);
            }
            session = match handle.done().await {
                Ok(s) => s,
                Err(e) => return io(e),
            };
        } else {
            state.set("waiting");
            tokio::time::sleep(wait).await;
            if let Err(e) = session.noop().await {
                return io(e);
            }
        }
    }
}

/// One look at the folder: each new message registered, then handled.
async fn look(
    pipeline: &Pipeline,
    m: &MailConfig,
    state: &MailState,
    session: &mut Session<Stream>,
    validity: u32,
    can_move: bool,
    max_bytes: u64,
) -> Result<(), Failure> {
    let io = |e: async_imap::error::Error| unreachable(format!("{}: {e}", m.host));
    let source = format!("mail:{}:{validity}", m.display_name());
    let done: HashSet<u32> = pipeline
        .reader()
        .imported(&source)
        .await
        .map_err(|e| error(format!("{e:#}")))?
        .into_iter()
        .map(|(n, _)| n as u32)
        .collect();
    // Every message still to handle: those that leave are gone once
    // handled, flagged ones are left out by UNFLAGGED. So a message taken
    // but not yet handled (a crash in between) is found again and handled,
    // never taken twice (`done`).
    let mut query = String::from("ALL");
    if !m.from.is_empty() {
        query.push_str(&format!(" FROM \"{}\"", m.from));
    }
    if !m.subject.is_empty() {
        query.push_str(&format!(" SUBJECT \"{}\"", m.subject));
    }
    if m.after == MailAfter::Flag {
        query.push_str(" UNFLAGGED");
    }
    let mut uids: Vec<u32> = session
        .uid_search(&query)
        .await
        .map_err(io)?
        .into_iter()
        .collect();
    uids.sort_unstable();
    let origin = Origin {
        token_id: None,
        request_id: Some(format!("mail-{}", uuid::Uuid::new_v4().simple())),
    };
    for uid in uids {
        if !done.contains(&uid) {
            let fetched: Vec<_> = session
                .uid_fetch(uid.to_string(), "(UID RFC822.SIZE BODY.PEEK[])")
                .await
                .map_err(io)?
                .try_collect()
                .await
                .map_err(io)?;
            let Some(body) = fetched.iter().find_map(|f| f.body()) else {
                continue; // expunged meanwhile
            };
            if body.len() as u64 > max_bytes {
                state.fail(&error(format!(
                    "message UID {uid} is larger than server.max_upload_bytes ({max_bytes} bytes); left in the folder"
                )));
                continue;
            }
            register(pipeline, m, &source, uid, body, &origin).await?;
            state.ingested.fetch_add(1, Relaxed);
        }
        handle(session, m, uid, can_move).await.map_err(io)?;
    }
    Ok(())
}

async fn register(
    pipeline: &Pipeline,
    m: &MailConfig,
    source: &str,
    uid: u32,
    body: &[u8],
    origin: &Origin,
) -> Result<(), Failure> {
    let storage = |e: anyhow::Error| error(format!("cannot store message UID {uid}: {e:#}"));
    let filename = format!("message-{uid}.eml");
    let (id, mut up) = pipeline.begin_upload();
    if let Err(e) = up.write(body).await {
        up.abort().await;
        return Err(storage(e));
    }
    let staged = up.finish().await.map_err(storage)?;
    let mime = match sniff(&staged.head, &filename) {
        Sniffed::Supported(m) => m.to_string(),
        _ => "message/rfc822".to_string(),
    };
    let doc = NewDocument {
        id,
        workspace: m.workspace.clone(),
        filename,
        title: None,
        mime,
        size: staged.size,
        sha256: staged.sha256,
        inline: staged.inline,
        extra: UploadExtras {
            imported_from: Some((source.to_string(), i64::from(uid))),
            ..Default::default()
        },
    };
    pipeline
        .register(vec![doc], origin)
        .await
        .map_err(|e| error(format!("cannot register message UID {uid}: {e:#}")))?;
    Ok(())
}

/// Flags, moves or deletes a message that is registered.
async fn handle(
    session: &mut Session<Stream>,
    m: &MailConfig,
    uid: u32,
    can_move: bool,
) -> Result<(), async_imap::error::Error> {
    let set = uid.to_string();
    match m.after {
        MailAfter::Flag => {
            drain(session.uid_store(&set, "+FLAGS (\\Flagged)").await?).await?;
        }
        MailAfter::Move if can_move => session.uid_mv(&set, &m.move_to).await?,
        MailAfter::Move | MailAfter::Delete => {
            if m.after == MailAfter::Move {
                session.uid_copy(&set, &m.move_to).await?;
            }
            drain(session.uid_store(&set, "+FLAGS (\\Deleted)").await?).await?;
            let gone: Vec<_> = session.uid_expunge(&set).await?.try_collect().await?;
            drop(gone);
        }
    }
    Ok(())
}

async fn drain<S, T>(s: S) -> Result<(), async_imap::error::Error>
where
    S: futures::Stream<Item = Result<T, async_imap::error::Error>>,
{
    futures::pin_mut!(s);
    while s.try_next().await?.is_some() {}
    Ok(())
}
