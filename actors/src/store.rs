//! Storage the engine owns: the SQLite catalog (schema, migrations, queries),
//! the blob store for originals, and the Tantivy index.

pub mod blobs;
pub mod db;
pub mod index;
