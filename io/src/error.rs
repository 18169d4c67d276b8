//! The one error type of this crate: which file, and what is wrong with it.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// Reading or writing a volume file failed. Displays as one line,
/// `PATH: what is wrong`, fit to show a user as it is.
#[derive(Debug, Error)]
#[error("{}: {kind}", path.display())]
pub struct IoError {
    /// The file the problem is about (for a raw volume, the data file or its
    /// JSON sidecar, whichever is at fault).
    pub path: PathBuf,
    pub kind: IoErrorKind,
}

/// What went wrong; see [`IoError`].
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum IoErrorKind {
    /// The operating system failed the operation. The `io::Error` is part of
    /// the message rather than a `source()`, so that the one-line Display is
    /// complete and error-chain printers do not repeat it.
    #[error("{action}: {error}")]
    Io {
        action: &'static str,
        error: std::io::Error,
    },
    /// The path's extension names no format this crate can handle.
    #[error("unsupported file type: {0}")]
    UnsupportedFileType(&'static str),
    /// The data is not as long as the declared shape and sample type need.
    #[error("expected {expected} bytes for {shape} {dtype}, found {found}")]
    SizeMismatch {
        expected: u64,
        found: u64,
        /// Dims as declared, e.g. "256x256x128".
        shape: String,
        /// Sample type name, e.g. "uint8".
        dtype: String,
    },
    /// The declared dims hold more voxels than allowed (see `ReadOptions`).
    #[error("dims {shape} exceed the limit of {limit} voxels")]
    TooLarge { shape: String, limit: u64 },
    /// A sample type this crate does not read.
    #[error("unsupported data type {0}")]
    UnsupportedDtype(String),
    /// The volume would not fit in memory.
    #[error("cannot allocate {0} bytes for the volume")]
    OutOfMemory(u64),
    /// Malformed content: bad header, bad JSON, bad dims, corrupt data.
    #[error("{0}")]
    Invalid(String),
}

impl IoError {
    pub(crate) fn new(path: &Path, kind: IoErrorKind) -> IoError {
        IoError {
            path: path.to_path_buf(),
            kind,
        }
    }

    pub(crate) fn io(path: &Path, action: &'static str, error: std::io::Error) -> IoError {
        IoError::new(path, IoErrorKind::Io { action, error })
    }

    pub(crate) fn invalid(path: &Path, message: impl Into<String>) -> IoError {
        IoError::new(path, IoErrorKind::Invalid(message.into()))
    }
}
