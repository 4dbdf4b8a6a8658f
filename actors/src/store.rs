//! Storage the engine owns, by concern: the SQLite catalog (schema and
//! migrations, the read pool, documents, the queue, events, tokens, labels,
//! tasks, edits, links, the classifier's rows), the blob store for
//! originals, and the Tantivy index. All SQL lives here. Only the Catalog
//! writes SQLite (the `write_*` functions, inside its group commit) and only
//! the Indexer writes the index; everyone else reads.

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
#[cfg(test)]
mod tests;
pub mod tokens;

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
