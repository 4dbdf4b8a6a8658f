//! The read pool: read-only connections on the blocking pool, which never
//! queue behind the writer (WAL).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::schema::configure;
use anyhow::{Context, Result};
use rusqlite::Connection;

/// A small pool of read-only connections; reads run on the blocking pool and
/// never queue behind the writer (WAL).
#[derive(Clone)]
pub struct ReadPool {
    path: PathBuf,
    idle: Arc<Mutex<Vec<Connection>>>,
}

const MAX_IDLE_READERS: usize = 8;

impl ReadPool {
    pub fn new(path: PathBuf) -> Self {
        ReadPool {
            path,
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub(crate) fn take(&self) -> Result<Connection> {
        if let Some(c) = self
            .idle
            .lock()
            .map_err(|_| anyhow::anyhow!("read pool poisoned"))?
            .pop()
        {
            return Ok(c);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("failed to open {}", self.path.display()))?;
        configure(&conn)?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
        }
    }

    /// Runs `f` on a pooled connection on this thread (a blocking one).
    pub fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.take()?;
        let out = f(&conn);
        self.give_back(conn);
        out
    }

    /// Runs `f` on a pooled connection in a blocking task.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.take()?;
            let out = f(&conn);
            pool.give_back(conn);
            out
        })
        .await
        .context("read task failed")?
    }
}
