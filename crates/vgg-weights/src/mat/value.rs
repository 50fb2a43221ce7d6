//! Decoded MAT-file values: numeric, char, cell and struct arrays.

use std::fmt;
use std::sync::Arc;

use super::{Endian, MiType, Storage};

/// The class of a MATLAB array (`mx*_CLASS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Class {
    /// Cell array.
    Cell,
    /// Struct array.
    Struct,
    /// Object (not decoded).
    Object,
    /// Character array.
    Char,
    /// Sparse matrix (not decoded).
    Sparse,
    /// `double`.
    Double,
    /// `single`.
    Single,
    /// `int8`.
    Int8,
    /// `uint8` (also the class of logical arrays).
    UInt8,
    /// `int16`.
    Int16,
    /// `uint16`.
    UInt16,
    /// `int32`.
    Int32,
    /// `uint32`.
    UInt32,
    /// `int64`.
    Int64,
    /// `uint64`.
    UInt64,
    /// Function handle (not decoded).
    Function,
    /// Opaque MATLAB object (not decoded).
    Opaque,
}

impl Class {
    /// The class with this code, if it is one.
    pub fn from_code(code: u8) -> Option<Class> {
        Some(match code {
            1 => Class::Cell,
            2 => Class::Struct,
            3 => Class::Object,
            4 => Class::Char,
            5 => Class::Sparse,
            6 => Class::Double,
            7 => Class::Single,
            8 => Class::Int8,
            9 => Class::UInt8,
            10 => Class::Int16,
            11 => Class::UInt16,
            12 => Class::Int32,
            13 => Class::UInt32,
            14 => Class::Int64,
            15 => Class::UInt64,
            16 => Class::Function,
            17 => Class::Opaque,
            _ => return None,
        })
    }

    /// The code of this class in the file.
    pub fn code(self) -> u8 {
        match self {
            Class::Cell => 1,
            Class::Struct => 2,
            Class::Object => 3,
            Class::Char => 4,
            Class::Sparse => 5,
            Class::Double => 6,
            Class::Single => 7,
            Class::Int8 => 8,
            Class::UInt8 => 9,
            Class::Int16 => 10,
            Class::UInt16 => 11,
            Class::Int32 => 12,
            Class::UInt32 => 13,
            Class::Int64 => 14,
            Class::UInt64 => 15,
            Class::Function => 16,
            Class::Opaque => 17,
        }
    }

    /// Whether arrays of this class are numeric.
    pub fn is_numeric(self) -> bool {
        self.code() >= 6 && self.code() <= 15
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Class::Cell => "cell",
            Class::Struct => "struct",
            Class::Object => "object",
            Class::Char => "char",
            Class::Sparse => "sparse",
            Class::Double => "double",
            Class::Single => "single",
            Class::Int8 => "int8",
            Class::UInt8 => "uint8",
            Class::Int16 => "int16",
            Class::UInt16 => "uint16",
            Class::Int32 => "int32",
            Class::UInt32 => "uint32",
            Class::Int64 => "int64",
            Class::UInt64 => "uint64",
            Class::Function => "function handle",
            Class::Opaque => "opaque",
        };
        f.write_str(s)
    }
}

/// The stored bytes of a numeric array, not yet converted: a view into the file or into a
/// decompressed variable.
#[derive(Clone)]
pub struct RawData {
    pub(super) buf: Arc<Storage>,
    pub(super) start: usize,
    pub(super) len: usize,
    pub(super) mi: MiType,
    pub(super) endian: Endian,
}

impl fmt::Debug for RawData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawData")
            .field("start", &self.start)
            .field("len", &self.len)
            .field("mi", &self.mi)
            .field("endian", &self.endian)
            .finish()
    }
}

impl RawData {
    pub(super) fn empty(buf: Arc<Storage>, endian: Endian) -> RawData {
        RawData {
            buf,
            start: 0,
            len: 0,
            mi: MiType::Double,
            endian,
        }
    }

    /// The stored bytes, in the file's byte order.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }

    /// The type the data is stored as (may be smaller than the array's class).
    pub fn mi_type(&self) -> MiType {
        self.mi
    }

    /// The byte order of the stored data.
    pub fn endian(&self) -> Endian {
        self.endian
    }

    /// Number of stored elements.
    pub fn len(&self) -> usize {
        self.len / self.mi.size()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Converts every element into `out`, which must have exactly [`RawData::len`] elements.
    ///
    /// # Panics
    /// If `out.len() != self.len()`.
    #[track_caller]
    pub fn convert_into<T: Element>(&self, out: &mut [T]) {
        assert_eq!(
            out.len(),
            self.len(),
            "output length must equal the element count"
        );
        let bytes = self.bytes();
        macro_rules! conv {
            ($n:literal, $from:ident, $ty:ty) => {{
                let read = match self.endian {
                    Endian::Little => <$ty>::from_le_bytes,
                    Endian::Big => <$ty>::from_be_bytes,
                };
                for (o, c) in out.iter_mut().zip(bytes.chunks_exact($n)) {
                    *o = T::$from(read(c.try_into().expect("chunk size")).into());
                }
            }};
        }
        match self.mi {
            MiType::Single => conv!(4, from_f32, f32),
            MiType::Double => conv!(8, from_f64, f64),
            MiType::Int8 => conv!(1, from_i64, i8),
            MiType::UInt8 => conv!(1, from_i64, u8),
            MiType::Int16 => conv!(2, from_i64, i16),
            MiType::UInt16 => conv!(2, from_i64, u16),
            MiType::Int32 => conv!(4, from_i64, i32),
            MiType::UInt32 => conv!(4, from_i64, u32),
            MiType::Int64 => conv!(8, from_i64, i64),
            MiType::UInt64 => conv!(8, from_u64, u64),
            MiType::Matrix | MiType::Compressed | MiType::Utf8 | MiType::Utf16 | MiType::Utf32 => {
                unreachable!("RawData holds numeric types only")
            }
        }
    }
}

/// A floating-point type numeric data can be converted to (`f32` or `f64`).
pub trait Element: Copy + Default {
    /// From a stored `f32`.
    fn from_f32(v: f32) -> Self;
    /// From a stored `f64`.
    fn from_f64(v: f64) -> Self;
    /// From a stored signed integer.
    fn from_i64(v: i64) -> Self;
    /// From a stored unsigned 64-bit integer.
    fn from_u64(v: u64) -> Self;
}

impl Element for f32 {
    fn from_f32(v: f32) -> f32 {
        v
    }
    #[allow(clippy::cast_possible_truncation)]
    fn from_f64(v: f64) -> f32 {
        v as f32
    }
    #[allow(clippy::cast_precision_loss)]
    fn from_i64(v: i64) -> f32 {
        v as f32
    }
    #[allow(clippy::cast_precision_loss)]
    fn from_u64(v: u64) -> f32 {
        v as f32
    }
}

impl Element for f64 {
    fn from_f32(v: f32) -> f64 {
        f64::from(v)
    }
    fn from_f64(v: f64) -> f64 {
        v
    }
    #[allow(clippy::cast_precision_loss)]
    fn from_i64(v: i64) -> f64 {
        v as f64
    }
    #[allow(clippy::cast_precision_loss)]
    fn from_u64(v: u64) -> f64 {
        v as f64
    }
}

/// A numeric (or logical) array. Its data stays in the file until converted.
#[derive(Debug, Clone)]
pub struct Numeric {
    pub(super) class: Class,
    pub(super) dims: Vec<usize>,
    pub(super) logical: bool,
    pub(super) real: RawData,
    pub(super) imag: Option<RawData>,
}

impl Numeric {
    pub(super) fn empty_double() -> Numeric {
        Numeric {
            class: Class::Double,
            dims: vec![0, 0],
            logical: false,
            real: RawData::empty(Arc::new(Storage::Owned(Vec::new())), Endian::Little),
            imag: None,
        }
    }

    /// The array's class (`Double`, `Single`, an integer class; `UInt8` for logical arrays).
    pub fn class(&self) -> Class {
        self.class
    }

    /// Dimensions, as MATLAB gives them (at least two).
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.real.len()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this is a logical array.
    pub fn is_logical(&self) -> bool {
        self.logical
    }

    /// Whether the array has an imaginary part.
    pub fn is_complex(&self) -> bool {
        self.imag.is_some()
    }

    /// The stored real part.
    pub fn real(&self) -> &RawData {
        &self.real
    }

    /// The stored imaginary part, if complex.
    pub fn imag(&self) -> Option<&RawData> {
        self.imag.as_ref()
    }

    /// The real part as `f64`, in column-major (MATLAB) order.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        let mut out = vec![0.0; self.len()];
        self.real.convert_into(&mut out);
        out
    }

    /// The real part as `f32`, in column-major (MATLAB) order.
    pub fn to_f32_vec(&self) -> Vec<f32> {
        let mut out = vec![0.0; self.len()];
        self.real.convert_into(&mut out);
        out
    }

    /// The imaginary part as `f64`, column-major, if complex.
    pub fn imag_to_f64_vec(&self) -> Option<Vec<f64>> {
        self.imag.as_ref().map(|raw| {
            let mut out = vec![0.0; raw.len()];
            raw.convert_into(&mut out);
            out
        })
    }

    /// The single element of a 1-element array.
    pub fn scalar(&self) -> Option<f64> {
        (self.len() == 1).then(|| self.to_f64_vec()[0])
    }
}

/// A character array, decoded to Unicode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharArray {
    pub(super) dims: Vec<usize>,
    pub(super) chars: Vec<char>,
}

impl CharArray {
    /// Dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// The characters in column-major (MATLAB) order.
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// The rows of a 2-D char array (a string array in MATLAB's old sense). An empty array has no rows;
    /// `None` for N-D arrays and for arrays whose stored characters do not fill their dimensions.
    pub fn rows(&self) -> Option<Vec<String>> {
        if self.dims.len() != 2 {
            return None;
        }
        if self.chars.is_empty() {
            return Some(Vec::new());
        }
        let (n_rows, n_cols) = (self.dims[0], self.dims[1]);
        if n_rows.checked_mul(n_cols) != Some(self.chars.len()) {
            // A vector whose stored length differs from its dimensions.
            return None;
        }
        Some(
            (0..n_rows)
                .map(|r| (0..n_cols).map(|c| self.chars[r + c * n_rows]).collect())
                .collect(),
        )
    }

    /// The text: the single row of a `1×N` array, the characters of any vector, or the rows of a 2-D
    /// array joined by `'\n'`.
    pub fn text(&self) -> String {
        let non_singleton = self.dims.iter().filter(|&&d| d != 1).count();
        if non_singleton <= 1 {
            return self.chars.iter().collect();
        }
        match self.rows() {
            Some(rows) => rows.join("\n"),
            None => self.chars.iter().collect(),
        }
    }
}

/// A cell array.
#[derive(Debug, Clone)]
pub struct Cell {
    pub(super) dims: Vec<usize>,
    pub(super) elems: Vec<Value>,
}

impl Cell {
    /// Dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// The elements in column-major order.
    pub fn elems(&self) -> &[Value] {
        &self.elems
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.elems.len()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.elems.is_empty()
    }
}

/// A struct array: `len()` elements (column-major), each with the same fields.
#[derive(Debug, Clone)]
pub struct Struct {
    pub(super) dims: Vec<usize>,
    pub(super) fields: Vec<String>,
    /// `values[elem * fields.len() + field]`.
    pub(super) values: Vec<Value>,
}

impl Struct {
    /// Dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// The field names, in file order.
    pub fn field_names(&self) -> &[String] {
        &self.fields
    }

    /// Number of elements (the product of the dimensions).
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    /// Whether the struct array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All field values, element by element: `values()[elem * field_names().len() + field]`.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// Field `name` of element `elem` (column-major index), if both exist.
    pub fn field(&self, elem: usize, name: &str) -> Option<&Value> {
        let f = self.fields.iter().position(|n| n == name)?;
        self.values.get(elem * self.fields.len() + f)
    }

    /// The fields of element `elem` as `(name, value)` pairs, in file order.
    pub fn element(&self, elem: usize) -> impl Iterator<Item = (&str, &Value)> {
        let n = self.fields.len();
        let values = self.values.get(elem * n..(elem + 1) * n).unwrap_or(&[]);
        self.fields.iter().map(String::as_str).zip(values)
    }
}

/// An array of a class this reader does not decode (sparse, object, function handle, opaque).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// Its class.
    pub class: Class,
    /// Its dimensions.
    pub dims: Vec<usize>,
    /// Its name in the file (usually empty inside cells and structs).
    pub name: String,
}

/// A decoded MATLAB array.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Value {
    /// Numeric or logical array.
    Numeric(Numeric),
    /// Character array.
    Char(CharArray),
    /// Cell array.
    Cell(Cell),
    /// Struct array.
    Struct(Struct),
    /// An array of a class this reader does not decode.
    Unsupported(Unsupported),
}

impl Value {
    /// The array's class.
    pub fn class(&self) -> Class {
        match self {
            Value::Numeric(n) => n.class,
            Value::Char(_) => Class::Char,
            Value::Cell(_) => Class::Cell,
            Value::Struct(_) => Class::Struct,
            Value::Unsupported(u) => u.class,
        }
    }

    /// The array's dimensions.
    pub fn dims(&self) -> &[usize] {
        match self {
            Value::Numeric(n) => &n.dims,
            Value::Char(c) => &c.dims,
            Value::Cell(c) => &c.dims,
            Value::Struct(s) => &s.dims,
            Value::Unsupported(u) => &u.dims,
        }
    }

    /// Number of elements (the product of the dimensions).
    pub fn numel(&self) -> usize {
        self.dims().iter().product()
    }

    /// The numeric array, if this is one.
    pub fn as_numeric(&self) -> Option<&Numeric> {
        match self {
            Value::Numeric(n) => Some(n),
            _ => None,
        }
    }

    /// The char array, if this is one.
    pub fn as_char(&self) -> Option<&CharArray> {
        match self {
            Value::Char(c) => Some(c),
            _ => None,
        }
    }

    /// The cell array, if this is one.
    pub fn as_cell(&self) -> Option<&Cell> {
        match self {
            Value::Cell(c) => Some(c),
            _ => None,
        }
    }

    /// The struct array, if this is one.
    pub fn as_struct(&self) -> Option<&Struct> {
        match self {
            Value::Struct(s) => Some(s),
            _ => None,
        }
    }

    /// Field `name` of a 1×1 struct.
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.as_struct().filter(|s| s.len() == 1)?.field(0, name)
    }
}
