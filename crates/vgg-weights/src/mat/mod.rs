//! A standalone reader for MATLAB Level-5 MAT-files (the `-v6` and `-v7` formats, not the HDF5-based 7.3).
//!
//! [`MatFile::open`] memory-maps the file and reads only the directory of its variables (one tag per
//! variable, plus a few hundred decompressed bytes for compressed ones). [`MatFile::decode`] then decodes
//! one variable into a [`Value`] tree; [`MatFile::visit_cell`] hands out the elements of a cell array one
//! at a time and stops when asked, decompressing a compressed variable only as far as it went. Numeric data is never copied while decoding: a [`Numeric`] array
//! keeps a reference to its bytes (in the mapping, or in the decompressed buffer of a compressed variable)
//! and converts them only when asked ([`Numeric::to_f32_vec`], [`Numeric::to_f64_vec`]). Decoding a large
//! uncompressed variable therefore touches only its tags, and the caller converts just the arrays it needs.
//!
//! Supported: both byte orders; small data elements packed into their tag; miCOMPRESSED variables;
//! numeric classes stored in a smaller type than their class (e.g. doubles stored as `miUINT8`);
//! complex numbers; logical arrays; char arrays in UTF-8, UTF-16, UTF-32, `miUINT16` and `miUINT8`;
//! cell arrays; struct arrays; empty arrays.
//! Sparse, object, function-handle and opaque arrays are reported as [`Value::Unsupported`] inside a
//! cell or struct, and as [`Error::Unsupported`] when they are a whole variable; the other variables of the
//! file stay readable. MAT 7.3 (HDF5) and Level-4 files are refused with [`Error::V73`] and [`Error::Level4`].
//!
//! Every size field is checked against the bytes that remain before anything is allocated, nesting is
//! limited to [`MAX_DEPTH`] levels, and decompression output is bounded by the size the compressed
//! element declares (itself bounded by zlib's maximum compression ratio), so a crafted file cannot make
//! the reader allocate much more than the file's size times that ratio.

mod error;
mod value;

use std::io::Read;
use std::ops::{ControlFlow, Deref};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use error::{Error, Location, Result};
pub use value::{Cell, CharArray, Class, Element, Numeric, RawData, Struct, Unsupported, Value};

/// The deepest nesting of cells and structs the reader accepts.
pub const MAX_DEPTH: u32 = 64;

/// zlib cannot compress better than about 1032:1; a compressed element that declares a larger
/// decompressed size than this many times its compressed size is refused as malformed.
pub const MAX_ZLIB_RATIO: u64 = 1100;

/// Byte order of a MAT-file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    /// Little-endian (`IM` in the header).
    Little,
    /// Big-endian (`MI` in the header).
    Big,
}

/// MAT-file data types (the `mi*` constants of the format).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MiType {
    /// `miINT8`
    Int8,
    /// `miUINT8`
    UInt8,
    /// `miINT16`
    Int16,
    /// `miUINT16`
    UInt16,
    /// `miINT32`
    Int32,
    /// `miUINT32`
    UInt32,
    /// `miSINGLE`
    Single,
    /// `miDOUBLE`
    Double,
    /// `miINT64`
    Int64,
    /// `miUINT64`
    UInt64,
    /// `miMATRIX`
    Matrix,
    /// `miCOMPRESSED`
    Compressed,
    /// `miUTF8`
    Utf8,
    /// `miUTF16`
    Utf16,
    /// `miUTF32`
    Utf32,
}

impl MiType {
    /// The data type with this code, if it is one.
    pub fn from_code(code: u32) -> Option<MiType> {
        Some(match code {
            1 => MiType::Int8,
            2 => MiType::UInt8,
            3 => MiType::Int16,
            4 => MiType::UInt16,
            5 => MiType::Int32,
            6 => MiType::UInt32,
            7 => MiType::Single,
            9 => MiType::Double,
            12 => MiType::Int64,
            13 => MiType::UInt64,
            14 => MiType::Matrix,
            15 => MiType::Compressed,
            16 => MiType::Utf8,
            17 => MiType::Utf16,
            18 => MiType::Utf32,
            _ => return None,
        })
    }

    /// The code of this data type in the file.
    pub fn code(self) -> u32 {
        match self {
            MiType::Int8 => 1,
            MiType::UInt8 => 2,
            MiType::Int16 => 3,
            MiType::UInt16 => 4,
            MiType::Int32 => 5,
            MiType::UInt32 => 6,
            MiType::Single => 7,
            MiType::Double => 9,
            MiType::Int64 => 12,
            MiType::UInt64 => 13,
            MiType::Matrix => 14,
            MiType::Compressed => 15,
            MiType::Utf8 => 16,
            MiType::Utf16 => 17,
            MiType::Utf32 => 18,
        }
    }

    /// Size in bytes of one element (1 for the byte-oriented and container types).
    pub fn size(self) -> usize {
        match self {
            MiType::Int8 | MiType::UInt8 | MiType::Utf8 | MiType::Matrix | MiType::Compressed => 1,
            MiType::Int16 | MiType::UInt16 | MiType::Utf16 => 2,
            MiType::Int32 | MiType::UInt32 | MiType::Single | MiType::Utf32 => 4,
            MiType::Double | MiType::Int64 | MiType::UInt64 => 8,
        }
    }

    /// Whether the type holds numbers (as opposed to text or containers).
    pub fn is_numeric(self) -> bool {
        !matches!(
            self,
            MiType::Matrix | MiType::Compressed | MiType::Utf8 | MiType::Utf16 | MiType::Utf32
        )
    }
}

/// One variable of a MAT-file, as listed by [`MatFile::variables`] without decoding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarInfo {
    /// The variable's name.
    pub name: String,
    /// Its class, from the array flags (`None` when the code is unknown).
    pub class: Option<Class>,
    /// Its dimensions.
    pub dims: Vec<usize>,
    /// Whether it is stored in a miCOMPRESSED element.
    pub compressed: bool,
    /// File offset of its element tag.
    pub offset: u64,
    /// Size in bytes of its element data in the file.
    pub stored_len: u64,
}

/// An opened MAT Level-5 file: its header and the directory of its variables.
///
/// Create it with [`MatFile::open`] (memory-mapped) or [`MatFile::from_bytes`]; decode variables with
/// [`MatFile::decode`].
#[derive(Debug)]
pub struct MatFile {
    path: PathBuf,
    buf: Arc<Storage>,
    endian: Endian,
    header_text: String,
    vars: Vec<VarInfo>,
}

impl MatFile {
    /// Memory-maps the file at `path` and reads its header and the directory of its variables.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be opened or mapped; [`Error::V73`] or [`Error::Level4`] for those
    /// formats; [`Error::BadHeader`], [`Error::Truncated`], [`Error::SizeTooLarge`], [`Error::Malformed`] or
    /// [`Error::Decompress`] when the file is damaged.
    pub fn open(path: impl AsRef<Path>) -> Result<MatFile> {
        let path = path.as_ref();
        let io_err = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        if meta.is_dir() {
            // Opening a directory succeeds on Unix; mapping it then fails with a baffling ENODEV.
            return Err(io_err(std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                "is a directory, not a MAT-file",
            )));
        }
        let len = meta.len();
        let storage = if len == 0 {
            // Mapping an empty file fails on some platforms; an empty buffer gives the right error.
            Storage::Owned(Vec::new())
        } else {
            // SAFETY: this is the mmap(2) call site. The mapping is read-only and private to this
            // process; the one hazard is another process truncating or rewriting the file while it is
            // mapped, which the caller of `open` accepts (documented on `MatFile`). Every access is
            // bounds-checked against the length the mapping had when it was made.
            let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err)?;
            Storage::Mapped(map)
        };
        MatFile::from_storage(path.to_path_buf(), storage)
    }

    /// Reads a MAT-file held in memory. Errors name the file `<memory>`.
    ///
    /// # Errors
    /// As [`MatFile::open`], except for [`Error::Io`].
    pub fn from_bytes(bytes: Vec<u8>) -> Result<MatFile> {
        MatFile::from_bytes_with_label(bytes, "<memory>")
    }

    /// Reads a MAT-file held in memory; errors name it `label`.
    ///
    /// # Errors
    /// As [`MatFile::from_bytes`].
    pub fn from_bytes_with_label(bytes: Vec<u8>, label: impl Into<PathBuf>) -> Result<MatFile> {
        MatFile::from_storage(label.into(), Storage::Owned(bytes))
    }

    /// The path (or label) errors name.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's byte order.
    pub fn endian(&self) -> Endian {
        self.endian
    }

    /// The descriptive text at the start of the header (trailing spaces and NULs removed).
    pub fn header_text(&self) -> &str {
        &self.header_text
    }

    /// The variables, in file order.
    pub fn variables(&self) -> &[VarInfo] {
        &self.vars
    }

    /// The first variable called `name`, if any.
    pub fn variable(&self, name: &str) -> Option<&VarInfo> {
        self.vars.iter().find(|v| v.name == name)
    }

    /// Decodes the variable called `name` (the first one, if several have that name).
    ///
    /// A compressed variable is decompressed whole; numeric data is not copied or converted.
    ///
    /// # Errors
    /// [`Error::MissingVariable`] if there is none; [`Error::Unsupported`] if it is sparse, an object,
    /// a function handle or opaque; otherwise the errors of a damaged file.
    pub fn decode(&self, name: &str) -> Result<Value> {
        let info = self.require(name)?.clone();
        self.decode_info(&info)
    }

    /// Decodes the variable that `info` (one of [`MatFile::variables`]) describes.
    ///
    /// # Errors
    /// As [`MatFile::decode`].
    pub fn decode_info(&self, info: &VarInfo) -> Result<Value> {
        let value = if info.compressed {
            let inflated = self.inflate(info)?;
            let buf = Arc::new(Storage::Owned(inflated));
            let parser = Parser {
                buf: &buf,
                endian: self.endian,
                path: &self.path,
                compressed_at: Some(info.offset),
                base: 0,
            };
            let tag = parser.tag(0, buf.len())?;
            if tag.mi != MiType::Matrix.code() {
                return Err(
                    parser.malformed(0, "a compressed variable must hold one miMATRIX element")
                );
            }
            parser.matrix(tag.data_start, tag.data_end, 0)?
        } else {
            let parser = Parser {
                buf: &self.buf,
                endian: self.endian,
                path: &self.path,
                compressed_at: None,
                base: 0,
            };
            let (start, end) = self.data_range(info)?;
            parser.matrix(start, end, 0)?
        };
        if let Value::Unsupported(u) = &value {
            return Err(Error::Unsupported {
                path: self.path.clone(),
                name: info.name.clone(),
                class: u.class,
            });
        }
        Ok(value)
    }

    /// The variable called `name`, or [`Error::MissingVariable`] listing the variables there are.
    ///
    /// # Errors
    /// [`Error::MissingVariable`].
    pub fn require(&self, name: &str) -> Result<&VarInfo> {
        self.variable(name).ok_or_else(|| Error::MissingVariable {
            path: self.path.clone(),
            name: name.to_owned(),
            available: self.vars.iter().map(|v| v.name.clone()).collect(),
        })
    }

    /// Decodes the elements of the cell-array variable `name` one at a time, in column-major order,
    /// handing each to `visit` with its index; stops as soon as `visit` returns
    /// [`ControlFlow::Break`]. Returns the number of elements visited.
    ///
    /// Nothing after the last element visited is decoded; for a compressed variable, nothing after it
    /// is even decompressed, and each element owns a copy of its own decompressed bytes, so memory
    /// stays proportional to what the caller keeps. This is how a model's first layers are read
    /// without inflating the 400 MB of fully connected weights that follow them.
    ///
    /// # Errors
    /// [`Error::MissingVariable`]; [`Error::Malformed`] if the variable is not a cell array; otherwise the
    /// errors of a damaged file, for the elements visited.
    pub fn visit_cell(
        &self,
        name: &str,
        mut visit: impl FnMut(usize, Value) -> ControlFlow<()>,
    ) -> Result<usize> {
        let info = self.require(name)?.clone();
        if info.compressed {
            return self.visit_compressed_cell(&info, visit);
        }
        let (start, end) = self.data_range(&info)?;
        let parser = Parser {
            buf: &self.buf,
            endian: self.endian,
            path: &self.path,
            compressed_at: None,
            base: 0,
        };
        let head = parser.header(start, end)?;
        let numel = parser.cell_len(&head, start, head.after, end)?;
        let mut pos = head.after;
        for i in 0..numel {
            let (value, next) = parser.element(pos, end, 0)?;
            pos = next;
            if visit(i, value).is_break() {
                return Ok(i + 1);
            }
        }
        Ok(numel)
    }

    /// [`MatFile::visit_cell`] for a compressed variable: inflates incrementally, only as far as needed.
    fn visit_compressed_cell(
        &self,
        info: &VarInfo,
        mut visit: impl FnMut(usize, Value) -> ControlFlow<()>,
    ) -> Result<usize> {
        let (start, end) = self.data_range(info)?;
        let mut stream = Inflater::new(self, info, &self.buf[start..end])?;
        // The array header (flags, dimensions, name) lies within the first few hundred bytes. A stream
        // error here is not final: the header may be complete before the damage, and the elements
        // visited are what must be intact.
        let _ = stream.fill_to(stream.total.min(8 + 4096));
        let (head, numel) = {
            let prefix = Arc::new(Storage::Owned(stream.pending.clone()));
            let parser = stream.parser(&prefix, 0);
            let head = parser.header(8, prefix.len())?;
            let numel = parser.cell_len(&head, 8, head.after, stream.total)?;
            (head, numel)
        };
        let mut pos = head.after;
        for i in 0..numel {
            if stream.total.saturating_sub(pos) < 8 {
                return Err(Error::Truncated {
                    path: self.path.clone(),
                    at: Location {
                        offset: pos as u64,
                        compressed_at: Some(info.offset),
                    },
                    needed: 8,
                    available: stream.total.saturating_sub(pos) as u64,
                });
            }
            stream.fill_to(pos + 8)?;
            let tag_at = pos - stream.base;
            let word = |k: usize| {
                let b: [u8; 4] = stream.pending[tag_at + k..tag_at + k + 4]
                    .try_into()
                    .expect("4 bytes");
                match self.endian {
                    Endian::Little => u32::from_le_bytes(b),
                    Endian::Big => u32::from_be_bytes(b),
                }
            };
            let (mi, size) = (word(0), word(4) as usize);
            let loc = Location {
                offset: pos as u64,
                compressed_at: Some(info.offset),
            };
            if mi != MiType::Matrix.code() {
                return Err(Error::Malformed {
                    path: self.path.clone(),
                    at: loc,
                    reason: format!("expected an miMATRIX element, found type {mi}"),
                });
            }
            let available = stream.total - (pos + 8);
            if size > available {
                return Err(Error::SizeTooLarge {
                    path: self.path.clone(),
                    at: loc,
                    declared: size as u64,
                    available: available as u64,
                });
            }
            let elem_end = pos + 8 + size;
            stream.fill_to(elem_end)?;
            // The element gets its own buffer, so the stream's buffer can be reused.
            let bytes = stream.pending[tag_at..elem_end - stream.base].to_vec();
            let own = Arc::new(Storage::Owned(bytes));
            let (value, _) = stream.parser(&own, pos).element(0, own.len(), 0)?;
            pos = (pos + 8 + pad8(size)).min(stream.total);
            stream.consume_to(pos.min(elem_end));
            if visit(i, value).is_break() {
                return Ok(i + 1);
            }
        }
        stream.finish()?;
        Ok(numel)
    }

    /// The data range of a variable's element, checked against the file.
    fn data_range(&self, info: &VarInfo) -> Result<(usize, usize)> {
        let range = usize::try_from(info.offset)
            .ok()
            .and_then(|o| o.checked_add(8))
            .and_then(|s| Some((s, s.checked_add(usize::try_from(info.stored_len).ok()?)?)))
            .filter(|&(_, e)| e <= self.buf.len());
        range.ok_or_else(|| Error::Malformed {
            path: self.path.clone(),
            at: Location {
                offset: info.offset,
                compressed_at: None,
            },
            reason: "not a variable of this file".into(),
        })
    }

    fn from_storage(path: PathBuf, storage: Storage) -> Result<MatFile> {
        let bytes: &[u8] = &storage;
        let (endian, header_text) = read_header(&path, bytes)?;
        let buf = Arc::new(storage);
        let mut file = MatFile {
            path,
            buf,
            endian,
            header_text,
            vars: Vec::new(),
        };
        file.vars = file.scan()?;
        Ok(file)
    }

    /// Walks the top-level elements and records each variable's name, class and dimensions.
    fn scan(&self) -> Result<Vec<VarInfo>> {
        let bytes: &[u8] = &self.buf;
        let parser = Parser {
            buf: &self.buf,
            endian: self.endian,
            path: &self.path,
            compressed_at: None,
            base: 0,
        };
        let mut vars = Vec::new();
        let mut pos = 128;
        while pos < bytes.len() {
            let tag = parser.tag(pos, bytes.len())?;
            if tag.small {
                return Err(parser.malformed(pos, "a top-level element cannot be a small element"));
            }
            let stored_len = (tag.data_end - tag.data_start) as u64;
            let (head, compressed) = if tag.mi == MiType::Matrix.code() {
                (parser.header(tag.data_start, tag.data_end)?, false)
            } else if tag.mi == MiType::Compressed.code() {
                (
                    self.compressed_header(pos, tag.data_start, tag.data_end)?,
                    true,
                )
            } else {
                return Err(parser.malformed(
                    pos,
                    format!(
                        "top-level element of type {} (expected miMATRIX or miCOMPRESSED)",
                        tag.mi
                    ),
                ));
            };
            vars.push(VarInfo {
                name: head.name,
                class: head.class,
                dims: head.dims,
                compressed,
                offset: pos as u64,
                stored_len,
            });
            // A compressed element is not padded to 8 bytes after it; an miMATRIX element is.
            pos = if compressed { tag.data_end } else { tag.next };
        }
        Ok(vars)
    }

    /// Decompresses the first few hundred bytes of a compressed variable to read its name.
    fn compressed_header(&self, at: usize, start: usize, end: usize) -> Result<Header> {
        const PREFIX: usize = 4096;
        let mut prefix = vec![0u8; PREFIX];
        let mut filled = 0;
        let mut decoder = flate2::read::ZlibDecoder::new(&self.buf[start..end]);
        // Read until the prefix is full or the stream ends. A damaged stream is not an error here if
        // the header came through before the damage: the variable is listed, and decoding it fails.
        let mut stream_error = None;
        while filled < PREFIX {
            match decoder.read(&mut prefix[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => {
                    stream_error = Some(e.to_string());
                    break;
                }
            }
        }
        prefix.truncate(filled);
        let decompress_error = |reason: String| Error::Decompress {
            path: self.path.clone(),
            at: at as u64,
            reason,
        };
        let buf = Arc::new(Storage::Owned(prefix));
        let parser = Parser {
            buf: &buf,
            endian: self.endian,
            path: &self.path,
            compressed_at: Some(at as u64),
            base: 0,
        };
        if buf.len() < 8 {
            let reason = stream_error
                .unwrap_or_else(|| format!("the stream holds only {} bytes", buf.len()));
            return Err(decompress_error(reason));
        }
        let mi = parser.u32(0);
        if mi != MiType::Matrix.code() {
            return Err(parser.malformed(0, "a compressed variable must hold one miMATRIX element"));
        }
        // The prefix may end inside the element: parse the header against the prefix only.
        let declared = parser.u32(4) as usize;
        let data_end = buf.len().min(8usize.saturating_add(declared));
        parser
            .header(8, data_end)
            .map_err(|e| stream_error.map_or(e, decompress_error))
    }

    /// Decompresses a whole compressed variable, bounded by the size it declares.
    fn inflate(&self, info: &VarInfo) -> Result<Vec<u8>> {
        let (start, end) = self.data_range(info)?;
        let mut stream = Inflater::new(self, info, &self.buf[start..end])?;
        stream.fill_to(stream.total)?;
        stream.check_end()?;
        Ok(stream.pending)
    }
}

/// Incremental decompression of one miCOMPRESSED variable: `pending` holds the decompressed bytes from
/// offset `base` on; `total` is the size of the element it declares (tag included).
struct Inflater<'f> {
    file: &'f MatFile,
    at: u64,
    decoder: flate2::read::ZlibDecoder<&'f [u8]>,
    compressed_len: usize,
    pending: Vec<u8>,
    base: usize,
    total: usize,
}

impl<'f> Inflater<'f> {
    /// Starts decompressing; reads the element tag and checks its declared size.
    fn new(file: &'f MatFile, info: &VarInfo, compressed: &'f [u8]) -> Result<Inflater<'f>> {
        let mut s = Inflater {
            file,
            at: info.offset,
            decoder: flate2::read::ZlibDecoder::new(compressed),
            compressed_len: compressed.len(),
            pending: Vec::new(),
            base: 0,
            total: 8,
        };
        s.fill_to(8)?;
        let word = |b: &[u8]| {
            let b: [u8; 4] = b.try_into().expect("4 bytes");
            match file.endian {
                Endian::Little => u32::from_le_bytes(b),
                Endian::Big => u32::from_be_bytes(b),
            }
        };
        if word(&s.pending[0..4]) != MiType::Matrix.code() {
            return Err(s.err("a compressed variable must hold one miMATRIX element".into()));
        }
        let declared = u64::from(word(&s.pending[4..8]));
        let bound = (compressed.len() as u64)
            .saturating_mul(MAX_ZLIB_RATIO)
            .saturating_add(1024);
        if declared > bound {
            return Err(s.err(format!(
                "it declares {declared} decompressed bytes from only {} compressed bytes, \
                 more than zlib can produce",
                compressed.len()
            )));
        }
        s.total = usize::try_from(declared + 8).map_err(|_| s.err("too large".into()))?;
        Ok(s)
    }

    fn err(&self, reason: String) -> Error {
        Error::Decompress {
            path: self.file.path.clone(),
            at: self.at,
            reason,
        }
    }

    fn parser<'a>(&'a self, buf: &'a Arc<Storage>, base: usize) -> Parser<'a> {
        Parser {
            buf,
            endian: self.file.endian,
            path: &self.file.path,
            compressed_at: Some(self.at),
            base,
        }
    }

    /// Decompresses until the bytes before offset `end` (at most `total`) are in `pending`.
    fn fill_to(&mut self, end: usize) -> Result<()> {
        let end = end.min(self.total);
        let mut chunk = [0u8; 16 << 10];
        while self.base + self.pending.len() < end {
            let want = (self.total - self.base - self.pending.len()).min(chunk.len());
            let n = self
                .decoder
                .read(&mut chunk[..want])
                .map_err(|e| self.err(e.to_string()))?;
            if n == 0 {
                return Err(self.err(format!(
                    "the stream ends after {} of the {} bytes its element declares",
                    self.base + self.pending.len(),
                    self.total
                )));
            }
            if self.pending.capacity() - self.pending.len() < n {
                // Grow with the data actually produced, never past the declared size: a stream that
                // declares much more than it holds costs no more memory than it yields.
                let remaining = self.total - self.base - self.pending.len();
                let grow = n.max(self.pending.len().min(remaining));
                self.pending
                    .try_reserve_exact(grow)
                    .map_err(|e| self.err(format!("cannot allocate {grow} bytes: {e}")))?;
            }
            self.pending.extend_from_slice(&chunk[..n]);
        }
        Ok(())
    }

    /// Forgets the bytes before offset `pos`.
    fn consume_to(&mut self, pos: usize) {
        let k = pos.saturating_sub(self.base).min(self.pending.len());
        self.pending.drain(..k);
        self.base += k;
    }

    /// Reads the rest of the stream and checks that it ends exactly at the declared size, with a valid
    /// checksum.
    fn finish(mut self) -> Result<()> {
        self.fill_to(self.total)?;
        self.check_end()
    }

    /// Checks that the stream ends here, with a valid checksum: a cut or corrupted stream can still
    /// yield the declared number of bytes.
    fn check_end(&mut self) -> Result<()> {
        let mut extra = [0u8; 1];
        match self.decoder.read(&mut extra) {
            Ok(0) => {}
            Ok(_) => {
                return Err(self.err(format!(
                    "the stream holds more than the {} bytes its element declares",
                    self.total
                )));
            }
            Err(e) => return Err(self.err(e.to_string())),
        }
        if self.decoder.total_in() != self.compressed_len as u64 {
            return Err(self.err(format!(
                "the zlib stream ends after {} of its {} bytes",
                self.decoder.total_in(),
                self.compressed_len
            )));
        }
        Ok(())
    }
}

/// The bytes of a file: mapped, or owned (in memory, or decompressed).
pub(crate) enum Storage {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Storage::Mapped(m) => write!(f, "Mapped({} bytes)", m.len()),
            Storage::Owned(v) => write!(f, "Owned({} bytes)", v.len()),
        }
    }
}

impl Deref for Storage {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

/// Checks the 128-byte header; returns the byte order and the descriptive text.
fn read_header(path: &Path, bytes: &[u8]) -> Result<(Endian, String)> {
    let path_buf = || path.to_path_buf();
    if bytes.len() >= 128 {
        let text = &bytes[..116];
        let version_endian = &bytes[124..128];
        let endian = match &version_endian[2..4] {
            b"IM" => Some(Endian::Little),
            b"MI" => Some(Endian::Big),
            _ => None,
        };
        if let Some(endian) = endian {
            let v = [version_endian[0], version_endian[1]];
            let version = match endian {
                Endian::Little => u16::from_le_bytes(v),
                Endian::Big => u16::from_be_bytes(v),
            };
            let header_text = String::from_utf8_lossy(text)
                .trim_end_matches(['\0', ' '])
                .to_owned();
            return match version {
                0x0100 => Ok((endian, header_text)),
                0x0200 => Err(Error::V73 { path: path_buf() }),
                other => Err(Error::BadHeader {
                    path: path_buf(),
                    reason: format!("unknown version 0x{other:04x} (Level 5 is 0x0100)"),
                }),
            };
        }
        if bytes.starts_with(b"MATLAB 7.3") || bytes.get(512..520) == Some(b"\x89HDF\r\n\x1a\n") {
            return Err(Error::V73 { path: path_buf() });
        }
    }
    if looks_like_level4(bytes) {
        return Err(Error::Level4 { path: path_buf() });
    }
    if bytes.len() < 128 {
        return Err(Error::Truncated {
            path: path_buf(),
            at: Location {
                offset: 0,
                compressed_at: None,
            },
            needed: 128,
            available: bytes.len() as u64,
        });
    }
    Err(Error::BadHeader {
        path: path_buf(),
        reason: "the endian indicator at byte 126 is neither `IM` nor `MI`".into(),
    })
}

/// A Level-4 file starts with a 20-byte header of five 32-bit integers: the type code `MOPT`
/// (M = byte order 0..=4, O = 0, P = precision 0..=5, T = 0..=2), rows, columns, an imaginary flag
/// and the name length (including its NUL).
fn looks_like_level4(bytes: &[u8]) -> bool {
    let Some(head) = bytes.get(..20) else {
        return false;
    };
    let words = |big: bool| -> [u32; 5] {
        std::array::from_fn(|i| {
            let b: [u8; 4] = head[i * 4..i * 4 + 4].try_into().expect("4 bytes");
            if big {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        })
    };
    [false, true].into_iter().any(|big| {
        let [mopt, _rows, _cols, imag, name_len] = words(big);
        let (m, o, p, t) = (mopt / 1000, (mopt / 100) % 10, (mopt / 10) % 10, mopt % 10);
        mopt < 5000
            && m <= 4
            && o == 0
            && p <= 5
            && t <= 2
            && imag <= 1
            && (1..=4096).contains(&name_len)
    })
}

/// Round up to a multiple of 8.
fn pad8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

/// A parsed element tag.
#[derive(Debug, Clone, Copy)]
struct Tag {
    mi: u32,
    small: bool,
    data_start: usize,
    data_end: usize,
    /// Where the next element starts (after padding, clamped to the enclosing end).
    next: usize,
}

/// The array flags, dimensions and name of an miMATRIX element.
#[derive(Debug)]
struct Header {
    class: Option<Class>,
    class_code: u8,
    flags: u8,
    dims: Vec<usize>,
    name: String,
    /// Offset just after the name element.
    after: usize,
}

/// Decodes elements of one buffer (the mapped file, or one decompressed variable).
struct Parser<'a> {
    buf: &'a Arc<Storage>,
    endian: Endian,
    path: &'a Path,
    compressed_at: Option<u64>,
    /// Offset of `buf[0]` in the file or decompressed variable, for error locations.
    base: usize,
}

impl Parser<'_> {
    fn bytes(&self) -> &[u8] {
        self.buf
    }

    fn loc(&self, offset: usize) -> Location {
        Location {
            offset: (self.base + offset) as u64,
            compressed_at: self.compressed_at,
        }
    }

    fn malformed(&self, offset: usize, reason: impl Into<String>) -> Error {
        Error::Malformed {
            path: self.path.to_path_buf(),
            at: self.loc(offset),
            reason: reason.into(),
        }
    }

    /// Reads a `u32` at `pos`; the caller has checked the bounds.
    fn u32(&self, pos: usize) -> u32 {
        let b: [u8; 4] = self.bytes()[pos..pos + 4].try_into().expect("4 bytes");
        match self.endian {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        }
    }

    /// Reads the tag at `pos` of an element that must end by `end`.
    fn tag(&self, pos: usize, end: usize) -> Result<Tag> {
        if end.saturating_sub(pos) < 8 {
            return Err(Error::Truncated {
                path: self.path.to_path_buf(),
                at: self.loc(pos),
                needed: 8,
                available: end.saturating_sub(pos) as u64,
            });
        }
        let first = self.u32(pos);
        if first >> 16 != 0 {
            // Small data element: size in the upper 16 bits, type in the lower, data in the next 4 bytes.
            let size = (first >> 16) as usize;
            if size > 4 {
                return Err(self.malformed(
                    pos,
                    format!("small data element of {size} bytes (at most 4)"),
                ));
            }
            return Ok(Tag {
                mi: first & 0xffff,
                small: true,
                data_start: pos + 4,
                data_end: pos + 4 + size,
                next: pos + 8,
            });
        }
        let size = self.u32(pos + 4) as usize;
        let data_start = pos + 8;
        let available = end - data_start;
        if size > available {
            return Err(Error::SizeTooLarge {
                path: self.path.to_path_buf(),
                at: self.loc(pos + 4),
                declared: size as u64,
                available: available as u64,
            });
        }
        let data_end = data_start + size;
        Ok(Tag {
            mi: first,
            small: false,
            data_start,
            data_end,
            next: (data_start + pad8(size)).min(end),
        })
    }

    /// Reads the array flags, dimensions and name of the miMATRIX element with data `[start, end)`.
    fn header(&self, start: usize, end: usize) -> Result<Header> {
        let flags_tag = self.tag(start, end)?;
        if flags_tag.mi != MiType::UInt32.code() || flags_tag.data_end - flags_tag.data_start != 8 {
            return Err(self.malformed(start, "array flags must be an miUINT32 element of 8 bytes"));
        }
        let word = self.u32(flags_tag.data_start);
        let class_code = (word & 0xff) as u8;
        let flags = ((word >> 8) & 0xff) as u8;
        let dims_tag = self.tag(flags_tag.next, end)?;
        if dims_tag.mi != MiType::Int32.code() && dims_tag.mi != MiType::UInt32.code() {
            return Err(self.malformed(flags_tag.next, "dimensions must be an miINT32 element"));
        }
        let dims_len = dims_tag.data_end - dims_tag.data_start;
        if dims_len % 4 != 0 || dims_len == 0 {
            return Err(self.malformed(
                flags_tag.next,
                format!("dimensions element of {dims_len} bytes"),
            ));
        }
        let mut dims = Vec::with_capacity(dims_len / 4);
        for i in 0..dims_len / 4 {
            let d = self.u32(dims_tag.data_start + 4 * i) as i32;
            let d = usize::try_from(d)
                .map_err(|_| self.malformed(flags_tag.next, format!("negative dimension {d}")))?;
            dims.push(d);
        }
        let name_tag = self.tag(dims_tag.next, end)?;
        let name_ok = [MiType::Int8, MiType::UInt8, MiType::Utf8]
            .iter()
            .any(|t| t.code() == name_tag.mi);
        if !name_ok {
            return Err(self.malformed(dims_tag.next, "the array name must be an miINT8 element"));
        }
        let name = String::from_utf8_lossy(&self.bytes()[name_tag.data_start..name_tag.data_end])
            .trim_end_matches('\0')
            .to_owned();
        Ok(Header {
            class: Class::from_code(class_code),
            class_code,
            flags,
            dims,
            name,
            after: name_tag.next,
        })
    }

    /// Decodes the miMATRIX element with data `[start, end)`.
    fn matrix(&self, start: usize, end: usize, depth: u32) -> Result<Value> {
        if depth > MAX_DEPTH {
            return Err(self.malformed(
                start,
                format!("cells and structs nested deeper than {MAX_DEPTH}"),
            ));
        }
        if start == end {
            // MATLAB writes empty cell elements as an miMATRIX with no data: an empty double.
            return Ok(Value::Numeric(Numeric::empty_double()));
        }
        let head = self.header(start, end)?;
        let Some(class) = head.class else {
            return Err(self.malformed(start, format!("unknown array class {}", head.class_code)));
        };
        let numel = head
            .dims
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| self.malformed(start, format!("dimensions {:?} overflow", head.dims)))?;
        let pos = head.after;
        match class {
            Class::Cell => self.cell(head, numel, pos, end, depth),
            Class::Struct => self.structure(head, numel, pos, end, depth),
            Class::Char => self.char_array(head, numel, pos, end),
            Class::Sparse | Class::Object | Class::Function | Class::Opaque => {
                Ok(Value::Unsupported(Unsupported {
                    class,
                    dims: head.dims,
                    name: head.name,
                }))
            }
            _ => self.numeric(head, class, numel, pos, end),
        }
    }

    fn raw(&self, tag: &Tag) -> Result<RawData> {
        let mi = MiType::from_code(tag.mi)
            .filter(|m| m.is_numeric())
            .ok_or_else(|| {
                self.malformed(
                    tag.data_start,
                    format!("numeric data of unknown type {}", tag.mi),
                )
            })?;
        Ok(RawData {
            buf: Arc::clone(self.buf),
            start: tag.data_start,
            len: tag.data_end - tag.data_start,
            mi,
            endian: self.endian,
        })
    }

    fn numeric(
        &self,
        head: Header,
        class: Class,
        numel: usize,
        pos: usize,
        end: usize,
    ) -> Result<Value> {
        let complex = head.flags & 0x08 != 0;
        let logical = head.flags & 0x02 != 0;
        let part = |pos: usize, what: &str| -> Result<(Option<RawData>, usize)> {
            if pos >= end && numel == 0 {
                return Ok((None, pos));
            }
            let tag = self.tag(pos, end)?;
            let raw = self.raw(&tag)?;
            if raw.len % raw.mi.size() != 0 || raw.len / raw.mi.size() != numel {
                return Err(self.malformed(
                    pos,
                    format!(
                        "{what} data holds {} bytes of {:?}, but the dimensions {:?} need {numel} elements",
                        raw.len, raw.mi, head.dims
                    ),
                ));
            }
            Ok((Some(raw), tag.next))
        };
        let (real, next) = part(pos, "real")?;
        let imag = if complex {
            part(next, "imaginary")?.0
        } else {
            None
        };
        let real = real.unwrap_or_else(|| RawData::empty(Arc::clone(self.buf), self.endian));
        Ok(Value::Numeric(Numeric {
            class,
            dims: head.dims,
            logical,
            real,
            imag,
        }))
    }

    fn char_array(&self, head: Header, numel: usize, pos: usize, end: usize) -> Result<Value> {
        if pos >= end && numel == 0 {
            return Ok(Value::Char(CharArray {
                dims: head.dims,
                chars: Vec::new(),
            }));
        }
        let tag = self.tag(pos, end)?;
        let bytes = &self.bytes()[tag.data_start..tag.data_end];
        let word16 = |c: &[u8]| {
            let b = [c[0], c[1]];
            match self.endian {
                Endian::Little => u16::from_le_bytes(b),
                Endian::Big => u16::from_be_bytes(b),
            }
        };
        let chars: Vec<char> = match MiType::from_code(tag.mi) {
            Some(MiType::Utf8) => String::from_utf8_lossy(bytes).chars().collect(),
            Some(MiType::UInt8 | MiType::Int8) => bytes.iter().map(|&b| char::from(b)).collect(),
            Some(MiType::Utf16 | MiType::UInt16 | MiType::Int16) => {
                if !bytes.len().is_multiple_of(2) {
                    return Err(self.malformed(pos, "UTF-16 text of an odd number of bytes"));
                }
                char::decode_utf16(bytes.chunks_exact(2).map(word16))
                    .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                    .collect()
            }
            Some(MiType::Utf32 | MiType::UInt32 | MiType::Int32) => {
                if !bytes.len().is_multiple_of(4) {
                    return Err(self.malformed(pos, "UTF-32 text not a multiple of 4 bytes"));
                }
                bytes
                    .chunks_exact(4)
                    .map(|c| {
                        let b: [u8; 4] = c.try_into().expect("4 bytes");
                        let v = match self.endian {
                            Endian::Little => u32::from_le_bytes(b),
                            Endian::Big => u32::from_be_bytes(b),
                        };
                        char::from_u32(v).unwrap_or(char::REPLACEMENT_CHARACTER)
                    })
                    .collect()
            }
            _ => {
                return Err(self.malformed(pos, format!("char data of type {}", tag.mi)));
            }
        };
        // MATLAB counts UTF-16 code units and sometimes writes a 1×1 char with no data; accept a count
        // mismatch for empty data and for vectors, where the order of the characters is unambiguous.
        let vector = head.dims.iter().filter(|&&d| d != 1).count() <= 1;
        if chars.len() != numel && !chars.is_empty() && !vector {
            return Err(self.malformed(
                pos,
                format!(
                    "char data holds {} characters, but the dimensions {:?} need {numel}",
                    chars.len(),
                    head.dims
                ),
            ));
        }
        Ok(Value::Char(CharArray {
            dims: head.dims,
            chars,
        }))
    }

    /// Checks that `count` elements of at least 8 bytes each can fit in `[pos, end)` before allocating.
    fn check_count(&self, count: usize, pos: usize, end: usize) -> Result<()> {
        let available = end.saturating_sub(pos);
        if count > available / 8 {
            return Err(Error::SizeTooLarge {
                path: self.path.to_path_buf(),
                at: self.loc(pos),
                declared: (count as u64).saturating_mul(8),
                available: available as u64,
            });
        }
        Ok(())
    }

    fn element(&self, pos: usize, end: usize, depth: u32) -> Result<(Value, usize)> {
        let tag = self.tag(pos, end)?;
        if tag.mi != MiType::Matrix.code() || tag.small {
            return Err(self.malformed(
                pos,
                format!("expected an miMATRIX element, found type {}", tag.mi),
            ));
        }
        let value = self.matrix(tag.data_start, tag.data_end, depth + 1)?;
        Ok((value, tag.next))
    }

    /// The element count of a cell array's header, checked to fit in `[pos, end)`.
    fn cell_len(&self, head: &Header, start: usize, pos: usize, end: usize) -> Result<usize> {
        if head.class != Some(Class::Cell) {
            return Err(self.malformed(
                start,
                format!(
                    "`{}` is not a cell array (class code {})",
                    head.name, head.class_code
                ),
            ));
        }
        let numel = head
            .dims
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| self.malformed(start, format!("dimensions {:?} overflow", head.dims)))?;
        self.check_count(numel, pos, end)?;
        Ok(numel)
    }

    fn cell(
        &self,
        head: Header,
        numel: usize,
        mut pos: usize,
        end: usize,
        depth: u32,
    ) -> Result<Value> {
        self.check_count(numel, pos, end)?;
        let mut elems = Vec::with_capacity(numel);
        for _ in 0..numel {
            let (value, next) = self.element(pos, end, depth)?;
            elems.push(value);
            pos = next;
        }
        Ok(Value::Cell(Cell {
            dims: head.dims,
            elems,
        }))
    }

    fn structure(
        &self,
        head: Header,
        numel: usize,
        pos: usize,
        end: usize,
        depth: u32,
    ) -> Result<Value> {
        let len_tag = self.tag(pos, end)?;
        if len_tag.data_end - len_tag.data_start != 4 {
            return Err(self.malformed(pos, "the field-name length must be one 32-bit integer"));
        }
        let name_len = self.u32(len_tag.data_start) as usize;
        let names_tag = self.tag(len_tag.next, end)?;
        let names_bytes = &self.bytes()[names_tag.data_start..names_tag.data_end];
        let fields: Vec<String> = if name_len == 0 {
            if !names_bytes.is_empty() {
                return Err(
                    self.malformed(len_tag.next, "field names with a field-name length of 0")
                );
            }
            Vec::new()
        } else {
            if !names_bytes.len().is_multiple_of(name_len) {
                return Err(self.malformed(
                    len_tag.next,
                    format!(
                        "{} bytes of field names is not a multiple of the length {name_len}",
                        names_bytes.len()
                    ),
                ));
            }
            names_bytes
                .chunks_exact(name_len)
                .map(|c| {
                    let n = c.iter().position(|&b| b == 0).unwrap_or(c.len());
                    String::from_utf8_lossy(&c[..n]).into_owned()
                })
                .collect()
        };
        let mut pos = names_tag.next;
        let total = numel
            .checked_mul(fields.len())
            .ok_or_else(|| self.malformed(pos, "struct size overflows"))?;
        self.check_count(total, pos, end)?;
        let mut values = Vec::with_capacity(total);
        for _ in 0..total {
            let (value, next) = self.element(pos, end, depth)?;
            values.push(value);
            pos = next;
        }
        Ok(Value::Struct(Struct {
            dims: head.dims,
            fields,
            values,
        }))
    }
}

#[cfg(test)]
mod tests;
