//! The store's errors, classified by kind rather than by their text: a disk fault (redb's
//! I/O errors) makes the store re-open itself and `/health` report it; a row that cannot
//! be decoded is a data error about that row, which re-opening cannot mend.

use super::*;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// redb failed (a disk fault when [`StoreError::is_disk_fault`]).
    #[error("registry database {path}: {source}")]
    Storage {
        path: String,
        #[source]
        source: redb::Error,
    },
    /// The database cannot be used for a reason of our own (being re-opened, a document
    /// file that cannot be read or written).
    #[error("registry database {path}: {msg}")]
    Db { path: String, msg: String },
    #[error("registry database {0} is in use by another process (a running `stelselnode serve` on this data directory, or another command)")]
    Locked(String),
    #[error("no registry at {0}: run `stelselnode init` (or `stelselnode serve --demo`) first")]
    Missing(String),
    #[error("registry database {0}: permission denied; run the command as the user that owns the data directory (the server's user)")]
    Denied(String),
    #[error(transparent)]
    Invalid(#[from] rules::Violations),
    #[error("{0}")]
    Refused(String),
    /// A stored record that cannot be decoded or encoded: a data error.
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// An I/O error of the storage (a full disk): redb refuses every later write until the
    /// database is closed and opened again.
    pub fn is_disk_fault(&self) -> bool {
        matches!(
            self,
            StoreError::Storage {
                source: redb::Error::Io(_) | redb::Error::PreviousIo,
                ..
            }
        )
    }
}

/// What the functions that work inside a transaction fail with: redb's own error, or a
/// row they read that cannot be decoded (or a record that cannot be encoded).
#[derive(Debug, thiserror::Error)]
pub enum RowError {
    #[error(transparent)]
    Redb(#[from] redb::Error),
    #[error("{table} '{key}': {reason}")]
    Decode {
        table: String,
        key: String,
        reason: String,
    },
    #[error("cannot encode a record: {0}")]
    Encode(String),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for RowError {
            fn from(e: $t) -> RowError {
                RowError::Redb(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::DatabaseError,
    redb::CompactionError
);

/// Map a [`RowError`] to a [`StoreError`] naming the database at `path`; a decode error
/// stays a data error.
pub(super) fn db_err(path: &Path) -> impl Fn(RowError) -> StoreError + '_ {
    move |e| match e {
        RowError::Redb(source) => StoreError::Storage {
            path: path.display().to_string(),
            source,
        },
        e @ (RowError::Decode { .. } | RowError::Encode(_)) => StoreError::Corrupt(e.to_string()),
    }
}

impl RowError {
    /// The row `key` of the table named `table` cannot be decoded (`key` clipped).
    pub fn decode(table: &str, key: &str, reason: &dyn std::fmt::Display) -> RowError {
        RowError::Decode {
            table: table.to_string(),
            key: crate::clip::clip(key).into_owned(),
            reason: reason.to_string(),
        }
    }
}

/// A table another module owns, opened in a transaction: `None` before anything was
/// written to it (a registry made before it existed reads as empty).
pub fn open_or_empty<T>(r: Result<T, redb::TableError>) -> Result<Option<T>, RowError> {
    match r {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub(super) fn decode_err(t: Rows, key: &str, e: &dyn std::fmt::Display) -> RowError {
    RowError::decode(t.name(), key, e)
}
