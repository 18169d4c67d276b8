//! What can go wrong, as messages a user can act on.

use strata_format::FormatError;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// No GPU adapter (on Linux CI: install Mesa's lavapipe,
    /// `apt-get install mesa-vulkan-drivers`).
    #[error("no GPU adapter found ({0}); on Linux without a GPU install Mesa's lavapipe: apt-get install mesa-vulkan-drivers libvulkan1")]
    NoAdapter(String),
    #[error("cannot open the GPU device: {0}")]
    Device(String),
    /// The archive itself is damaged or not an archive.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The volume (or one grid of it) exceeds what this GPU allows.
    #[error("{0}")]
    TooLarge(String),
    /// The GPU reported an error (validation, out of memory, lost device).
    #[error("GPU error: {0}")]
    Gpu(String),
    /// The caller asked for something that is not there yet.
    #[error("{0}")]
    Usage(String),
}
