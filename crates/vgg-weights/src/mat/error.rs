//! Errors of the MAT-file reader.

use std::fmt;
use std::path::PathBuf;

use super::Class;

/// Where in a file something went wrong.
///
/// For data inside a compressed (miCOMPRESSED) variable, `offset` counts bytes of the decompressed
/// variable, and `compressed_at` gives the file offset of the compressed element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Byte offset (in the file, or in the decompressed variable).
    pub offset: u64,
    /// File offset of the enclosing miCOMPRESSED element, if any.
    pub compressed_at: Option<u64>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.compressed_at {
            None => write!(f, "byte {}", self.offset),
            Some(at) => write!(
                f,
                "byte {} of the variable decompressed from byte {at}",
                self.offset
            ),
        }
    }
}

/// Everything that can go wrong while reading a MAT-file.
///
/// Every variant names the file (`path`; data given in memory uses the label passed to
/// [`MatFile::from_bytes_with_label`](super::MatFile::from_bytes_with_label), `<memory>` by default).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be opened or mapped.
    #[error("{}: cannot read the file", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file ends in the middle of an element.
    #[error("{}: truncated file: at {at} {needed} bytes are needed but only {available} remain", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Where the element starts.
        at: Location,
        /// Bytes the element needs.
        needed: u64,
        /// Bytes left.
        available: u64,
    },
    /// The 128-byte header is not a MAT Level-5 header.
    #[error("{}: not a MAT-file (bad header): {reason}", path.display())]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A size field declares more bytes than remain in the file (or in the enclosing element).
    #[error("{}: the size field at {at} declares {declared} bytes but only {available} remain", path.display())]
    SizeTooLarge {
        /// The file.
        path: PathBuf,
        /// Where the size field is.
        at: Location,
        /// The declared size.
        declared: u64,
        /// Bytes left in the file or enclosing element.
        available: u64,
    },
    /// The file is a MATLAB 7.3 MAT-file, which is an HDF5 container.
    #[error(
        "{}: this is a MATLAB 7.3 MAT-file (an HDF5 container), which this reader does not read; \
         re-save it from MATLAB with `save(file, '-v7')` (or '-v6'), or read it with an HDF5 library",
        path.display()
    )]
    V73 {
        /// The file.
        path: PathBuf,
    },
    /// The file is a Level-4 (MATLAB 4) MAT-file.
    #[error(
        "{}: this is a Level-4 (MATLAB 4) MAT-file, which this reader does not read; \
         load it in MATLAB or Octave and re-save it with `save(file, '-v7')`",
        path.display()
    )]
    Level4 {
        /// The file.
        path: PathBuf,
    },
    /// A variable of a class this reader does not decode (sparse, object, function handle, opaque).
    #[error("{}: variable `{name}` is a {class} array, which this reader does not support", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The variable.
        name: String,
        /// Its class.
        class: Class,
    },
    /// The bytes do not follow the MAT Level-5 format.
    #[error("{}: malformed data at {at}: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Where.
        at: Location,
        /// What is wrong.
        reason: String,
    },
    /// A compressed variable could not be decompressed.
    #[error("{}: cannot decompress the variable at byte {at}: {reason}", path.display())]
    Decompress {
        /// The file.
        path: PathBuf,
        /// File offset of the miCOMPRESSED element.
        at: u64,
        /// What went wrong.
        reason: String,
    },
    /// No variable of that name.
    #[error("{}: no variable `{name}` (the file has: {})", path.display(), available.join(", "))]
    MissingVariable {
        /// The file.
        path: PathBuf,
        /// The name asked for.
        name: String,
        /// The variables the file has.
        available: Vec<String>,
    },
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
