//! Storage the engine owns: the SQLite catalog (schema, migrations, queries),
//! the blob store for originals, and the Tantivy index.

pub mod blobs;
pub mod db;
pub mod index;
pub mod meta;

use anyhow::Result;
use bytes::Bytes;

/// A document's original, wherever it lives: inline in SQLite, or in the
/// blob store.
pub async fn read_original(db: &db::ReadPool, blobs: &blobs::Blobs, id: &str) -> Result<Bytes> {
    let owned = id.to_string();
    if let Some(bytes) = db.run(move |c| db::get_inline_original(c, &owned)).await? {
        return Ok(Bytes::from(bytes));
    }
    blobs.get(id).await
}
