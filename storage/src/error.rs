//! Typed errors of the storage engine. The service maps them to gRPC statuses in one
//! place; nothing here knows gRPC.

use std::io;
use std::path::PathBuf;

use crate::codec::DecodeError;
use crate::log::LogPosition;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An I/O call failed. For writes and syncs this also moves the log to failed.
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },

    /// The log saw a failed write or sync earlier and accepts no more appends.
    /// Restart the process (recovery decides what survived).
    #[error("node log failed earlier and accepts no writes: {reason}")]
    LogFailed { reason: String },

    /// Bytes on disk are not what was written, somewhere a torn write cannot explain.
    #[error("corrupt log data in {file} at offset {offset}: {detail}")]
    Corrupt { file: PathBuf, offset: u64, detail: String },

    #[error("record of {bytes} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge { bytes: usize, max: usize },

    /// Too many appends queued; back off and retry.
    #[error("node log writer queue is full ({queue_depth_max} appends queued)")]
    Overloaded { queue_depth_max: usize },

    #[error("node log is shut down")]
    Closed,

    #[error("no record at segment {} offset {}: {detail}", pos.segment_id, pos.offset)]
    NoRecord { pos: LogPosition, detail: String },

    #[error("cannot decode {what}: {source}")]
    Decode { what: &'static str, source: DecodeError },

    #[error("invalid configuration: {0}")]
    Config(String),
}

impl StorageError {
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io { op, path: path.into(), source }
    }
    pub fn decode(what: &'static str) -> impl FnOnce(DecodeError) -> Self {
        move |source| Self::Decode { what, source }
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;
