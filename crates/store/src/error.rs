//! Errors, with the operation and the database path.

use std::path::PathBuf;

/// `Result` with a [`StoreError`].
pub type Result<T> = std::result::Result<T, StoreError>;

/// What went wrong, where (the database path) and while doing what (`op`).
/// The store never panics on a corrupt, locked or unwritable database: it
/// returns one of these.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An SQLite error (locked, corrupt, disk full, read-only, …).
    #[error("store {op} on {}: {source}", path.display())]
    Sqlite {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// A file system error (creating the data directory or the database file).
    #[error("store {op} on {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The database was written by a newer version (refusing a downgrade).
    #[error(
        "store {}: schema version {found} is newer than this build knows ({known}); \
         use a newer stadtwache or restore a backup",
        path.display()
    )]
    SchemaTooNew { path: PathBuf, found: i64, known: i64 },
    /// A row that does not decode (a damaged or hand-edited database).
    #[error("store {op} on {}: corrupt row: {what}", path.display())]
    Corrupt { op: &'static str, path: PathBuf, what: String },
    /// The caller's data cannot be stored as given.
    #[error("store {op}: {what}")]
    Invalid { op: &'static str, what: String },
    /// A bouncer with this name exists already.
    #[error("store add_bouncer: a bouncer named {name:?} exists already")]
    BouncerExists { name: String },
    /// The system's random number generator failed.
    #[error("store {op}: no randomness from the system: {what}")]
    Random { op: &'static str, what: String },
}

impl StoreError {
    /// The database is locked by another writer (longer than the busy timeout).
    pub fn is_busy(&self) -> bool {
        matches!(self.sqlite_code(), Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
    }

    /// The file is not a database, or the database is damaged.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, StoreError::Corrupt { .. })
            || matches!(
                self.sqlite_code(),
                Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
            )
    }

    fn sqlite_code(&self) -> Option<rusqlite::ErrorCode> {
        match self {
            StoreError::Sqlite { source, .. } => source.sqlite_error_code(),
            _ => None,
        }
    }
}
