//! Storage the engine owns, by concern: the SQLite catalog (schema and
//! migrations, the read pool, documents, the queue, events, tokens, labels,
//! tasks, edits, links, the classifier's rows), the blob store for
//! originals, and the Tantivy index. All SQL lives here. Only the Catalog
//! writes SQLite (the `write_*` functions, inside its group commit) and only
//! the Indexer writes the index; everyone else reads.

pub mod analytics;
pub mod blobs;
pub mod classifier;
pub mod documents;
pub mod edits;
pub mod events;
pub mod index;
pub mod labels;
pub mod links;
pub mod pool;
pub mod queue;
pub mod schema;
pub mod tasks;
pub mod templates;
#[cfg(test)]
mod tests;
pub mod tokens;
pub mod vectors;
pub mod webhooks;
pub mod workflows;

use anyhow::Result;
use bytes::Bytes;

pub use documents::Flag;
pub use documents::{Cmp, DocExtras, DocOrder, DocQuery, ListFilter, MimeCount, Note};
pub use edits::{Edit, EditResult, UserField};
pub use events::Event;
pub use labels::{Label, LabelFilter, LabelKind};
pub use links::Links;
pub use pool::ReadPool;
pub use tasks::TaskView;
pub use tokens::TokenRow;

/// A document's original, wherever it lives: inline in SQLite, or in the
/// blob store.
pub async fn read_original(db: &ReadPool, blobs: &blobs::Blobs, id: &str) -> Result<Bytes> {
    let owned = id.to_string();
    if let Some(bytes) = db
        .run(move |c| documents::get_inline_original(c, &owned))
        .await?
    {
        return Ok(Bytes::from(bytes));
    }
    blobs.get(id).await
}

/// A blob-store original larger than the reading limit.
#[derive(Debug, thiserror::Error)]
#[error("the original is {size_mb} MB, more than pipeline.extract.max_read_mb ({max_mb} MB); it is kept but not read")]
pub struct TooLargeToRead {
    pub size_mb: u64,
    pub max_mb: u64,
}

/// Refuses to read an original of the blob store larger than `max_mb`
/// (inline originals are small by construction).
pub async fn check_readable(blobs: &blobs::Blobs, id: &str, max_mb: u64) -> Result<()> {
    if let Some(size) = blobs.size(id).await? {
        if size > max_mb.saturating_mul(1024 * 1024) {
            return Err(TooLargeToRead {
                size_mb: size.div_ceil(1024 * 1024),
                max_mb,
            }
            .into());
        }
    }
    Ok(())
}
