//! A small MAT v5 writer (little-endian): numeric double/single, logical, char, cell and struct arrays,
//! each variable optionally compressed; and [`write_simplenn`], which writes a [`VggModel`] in either
//! MatConvNet layout.
//!
//! Files are written atomically: to a temporary file in the same directory, then renamed into place.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, LayerKind, Layout, PoolMethod, Result, VggModel};

/// Whether each variable is stored compressed (miCOMPRESSED, zlib).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// Plain miMATRIX elements (MATLAB's `-v6`).
    #[default]
    None,
    /// Each variable zlib-compressed (MATLAB's `-v7`).
    Zlib,
}

/// An array to write. Data is column-major (MATLAB order).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Array {
    /// `double` array.
    Double {
        /// Dimensions (at least two).
        dims: Vec<usize>,
        /// Column-major data; its length is the product of `dims`.
        data: Vec<f64>,
    },
    /// `single` array.
    Single {
        /// Dimensions (at least two).
        dims: Vec<usize>,
        /// Column-major data.
        data: Vec<f32>,
    },
    /// Logical array.
    Logical {
        /// Dimensions (at least two).
        dims: Vec<usize>,
        /// Column-major data.
        data: Vec<bool>,
    },
    /// A `1×N` char array (written as UTF-8; `N` counts characters).
    Char(String),
    /// Cell array.
    Cell {
        /// Dimensions (at least two).
        dims: Vec<usize>,
        /// Column-major elements.
        elems: Vec<Array>,
    },
    /// Struct array.
    Struct {
        /// Dimensions (at least two).
        dims: Vec<usize>,
        /// Field names (at most 63 bytes each).
        fields: Vec<String>,
        /// `values[elem * fields.len() + field]`, elements column-major.
        values: Vec<Array>,
    },
}

impl Array {
    /// A `1×N` double row vector.
    pub fn row(values: &[f64]) -> Array {
        Array::Double {
            dims: vec![1, values.len()],
            data: values.to_vec(),
        }
    }

    /// A `1×1` double.
    pub fn scalar(value: f64) -> Array {
        Array::row(&[value])
    }

    /// A `1×1` logical.
    pub fn bool(value: bool) -> Array {
        Array::Logical {
            dims: vec![1, 1],
            data: vec![value],
        }
    }

    /// A `1×N` char array.
    pub fn string(s: &str) -> Array {
        Array::Char(s.to_owned())
    }

    /// A `1×N` cell array.
    pub fn cell_row(elems: Vec<Array>) -> Array {
        Array::Cell {
            dims: vec![1, elems.len()],
            elems,
        }
    }

    /// A `1×1` struct with these fields, in this order.
    pub fn struct1(fields: Vec<(&str, Array)>) -> Array {
        let (names, values) = fields.into_iter().map(|(n, v)| (n.to_owned(), v)).unzip();
        Array::Struct {
            dims: vec![1, 1],
            fields: names,
            values,
        }
    }
}

/// Serializes variables into the bytes of a MAT v5 file.
///
/// # Errors
/// [`Error::InvalidModel`] (naming `<memory>`) when an array is inconsistent: data length not the product
/// of its dimensions, fewer than two dimensions, a field name longer than 63 bytes, or an element larger
/// than 4 GiB.
pub fn to_bytes(vars: &[(&str, &Array)], compression: Compression) -> Result<Vec<u8>> {
    to_bytes_for(Path::new("<memory>"), vars, compression)
}

/// Writes variables to a MAT v5 file, atomically.
///
/// # Errors
/// As [`to_bytes`] (naming `path`), and [`Error::Write`] when the file cannot be written.
pub fn write_mat(
    path: impl AsRef<Path>,
    vars: &[(&str, &Array)],
    compression: Compression,
) -> Result<()> {
    let path = path.as_ref();
    let bytes = to_bytes_for(path, vars, compression)?;
    write_atomically(path, &bytes)
}

/// Writes `model` as a MatConvNet simplenn file in `layout`.
///
/// - [`Layout::Beta16`]: variables `layers` and `normalization` (with `averageImage`, 1×1×3).
/// - [`Layout::Current`]: variables `layers` and `meta` (with `meta.normalization.averageImage`).
///
/// Conv weights are stored as `single` `[kh kw c_in c_out]` (trailing singleton dimensions kept), biases
/// as `1×c_out` `single`, geometry as `double` rows (pad `[top bottom left right]`).
///
/// # Errors
/// [`Error::InvalidModel`] if a conv layer's bias length differs from its output channels;
/// [`Error::Write`] when the file cannot be written.
pub fn write_simplenn(
    path: impl AsRef<Path>,
    model: &VggModel,
    layout: Layout,
    compression: Compression,
) -> Result<()> {
    let path = path.as_ref();
    let mut layers = Vec::with_capacity(model.layers.len());
    for layer in &model.layers {
        layers.push(layer_struct(path, layer, layout)?);
    }
    let layers = Array::cell_row(layers);
    let mut normalization = Vec::new();
    if let Some(mean) = model.mean_rgb {
        normalization.push((
            "averageImage",
            Array::Double {
                dims: vec![1, 1, 3],
                data: mean.iter().map(|&m| f64::from(m)).collect(),
            },
        ));
    }
    normalization.push(("keepAspect", Array::bool(true)));
    normalization.push(("imageSize", Array::row(&[224.0, 224.0, 3.0])));
    normalization.push(("interpolation", Array::string("bilinear")));
    let normalization = Array::struct1(normalization);
    match layout {
        Layout::Beta16 => write_mat(
            path,
            &[("layers", &layers), ("normalization", &normalization)],
            compression,
        ),
        Layout::Current => {
            let meta = Array::struct1(vec![
                (
                    "inputs",
                    Array::struct1(vec![
                        ("name", Array::string("data")),
                        ("size", Array::row(&[224.0, 224.0, 3.0, 10.0])),
                    ]),
                ),
                ("normalization", normalization),
            ]);
            write_mat(path, &[("layers", &layers), ("meta", &meta)], compression)
        }
    }
}

fn geometry(values: &[usize]) -> Array {
    #[allow(clippy::cast_precision_loss)]
    let v: Vec<f64> = values.iter().map(|&x| x as f64).collect();
    Array::row(&v)
}

fn layer_struct(path: &Path, layer: &crate::Layer, layout: Layout) -> Result<Array> {
    let name = Array::string(&layer.name);
    let beta16 = layout == Layout::Beta16;
    Ok(match &layer.kind {
        LayerKind::Conv(conv) => {
            let &[c_out, c_in, kh, kw] = conv.weights.shape() else {
                unreachable!("Array4 has four dimensions")
            };
            if conv.bias.len() != c_out {
                return Err(Error::InvalidModel {
                    path: path.to_path_buf(),
                    reason: format!(
                        "layer `{}` has {c_out} output channels but {} biases",
                        layer.name,
                        conv.bias.len()
                    ),
                });
            }
            // Row-major [c_out, c_in, kh, kw] → column-major [kh, kw, c_in, c_out]: the latter is the
            // memory of row-major [c_out, c_in, kw, kh], so transpose each kh×kw block.
            let mut data = Vec::with_capacity(conv.weights.len());
            for k in 0..c_out {
                for c in 0..c_in {
                    for x in 0..kw {
                        for y in 0..kh {
                            data.push(conv.weights[[k, c, y, x]]);
                        }
                    }
                }
            }
            let w = Array::Single {
                dims: vec![kh, kw, c_in, c_out],
                data,
            };
            let b = Array::Single {
                dims: vec![1, c_out],
                data: conv.bias.to_vec(),
            };
            let weights = Array::cell_row(vec![w, b]);
            let p = conv.pad;
            let pad = geometry(&[p.top, p.bottom, p.left, p.right]);
            let stride = geometry(&conv.stride);
            let ty = Array::string("conv");
            if beta16 {
                Array::struct1(vec![
                    ("weights", weights),
                    ("pad", pad),
                    ("type", ty),
                    ("name", name),
                    ("stride", stride),
                ])
            } else {
                Array::struct1(vec![
                    ("name", name),
                    ("type", ty),
                    ("weights", weights),
                    ("size", geometry(&[kh, kw, c_in, c_out])),
                    ("pad", pad),
                    ("stride", stride),
                    ("precious", Array::bool(false)),
                    ("dilate", Array::scalar(1.0)),
                ])
            }
        }
        LayerKind::Relu => {
            if beta16 {
                Array::struct1(vec![("type", Array::string("relu")), ("name", name)])
            } else {
                Array::struct1(vec![
                    ("name", name),
                    ("type", Array::string("relu")),
                    ("leak", Array::scalar(0.0)),
                    ("precious", Array::bool(false)),
                ])
            }
        }
        LayerKind::Pool(pool) => {
            let method = Array::string(match pool.method {
                PoolMethod::Max => "max",
                PoolMethod::Avg => "avg",
            });
            let p = pool.pad;
            Array::struct1(vec![
                ("name", name),
                ("stride", geometry(&pool.stride)),
                ("pad", geometry(&[p.top, p.bottom, p.left, p.right])),
                ("type", Array::string("pool")),
                ("method", method),
                ("pool", geometry(&pool.size)),
            ])
        }
        LayerKind::Other { type_name } => {
            Array::struct1(vec![("type", Array::string(type_name)), ("name", name)])
        }
    })
}

fn invalid(path: &Path, reason: impl Into<String>) -> Error {
    Error::InvalidModel {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn to_bytes_for(path: &Path, vars: &[(&str, &Array)], compression: Compression) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    let text = b"MATLAB 5.0 MAT-file, written by the vgg-weights crate";
    let mut header = [b' '; 116];
    header[..text.len()].copy_from_slice(text);
    out.extend_from_slice(&header);
    out.extend_from_slice(&[0; 8]); // subsystem data offset: none
    out.extend_from_slice(&0x0100u16.to_le_bytes());
    out.extend_from_slice(b"IM");
    for (name, array) in vars {
        let mut element = Vec::new();
        write_matrix(path, &mut element, name, array)?;
        match compression {
            Compression::None => out.extend_from_slice(&element),
            Compression::Zlib => {
                let mut enc =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                enc.write_all(&element)
                    .and_then(|()| enc.finish())
                    .map_err(|e| invalid(path, format!("compression failed: {e}")))
                    .and_then(|z| {
                        let len = u32::try_from(z.len())
                            .map_err(|_| invalid(path, "a compressed variable over 4 GiB"))?;
                        out.extend_from_slice(&15u32.to_le_bytes());
                        out.extend_from_slice(&len.to_le_bytes());
                        // A compressed element is not padded after its data.
                        out.extend_from_slice(&z);
                        Ok(())
                    })?;
            }
        }
    }
    Ok(out)
}

/// Writes a tag and data, padded to 8 bytes (small elements of up to 4 bytes are packed into the tag).
fn write_element(out: &mut Vec<u8>, mi: u32, data: &[u8]) {
    if data.len() <= 4 && mi != 14 {
        let len = u32::try_from(data.len()).expect("at most 4");
        out.extend_from_slice(&(mi | (len << 16)).to_le_bytes());
        let mut word = [0u8; 4];
        word[..data.len()].copy_from_slice(data);
        out.extend_from_slice(&word);
        return;
    }
    let len = u32::try_from(data.len()).expect("checked by the caller");
    out.extend_from_slice(&mi.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(8), 0);
}

fn write_matrix(path: &Path, out: &mut Vec<u8>, name: &str, array: &Array) -> Result<()> {
    let start = out.len();
    out.extend_from_slice(&14u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // patched below
    let (class, flags, dims): (u8, u8, Vec<usize>) = match array {
        Array::Double { dims, .. } => (6, 0, dims.clone()),
        Array::Single { dims, .. } => (7, 0, dims.clone()),
        Array::Logical { dims, .. } => (9, 0x02, dims.clone()),
        Array::Char(s) => (4, 0, vec![1, s.chars().count()]),
        Array::Cell { dims, .. } => (1, 0, dims.clone()),
        Array::Struct { dims, .. } => (2, 0, dims.clone()),
    };
    if dims.len() < 2 {
        return Err(invalid(
            path,
            format!("array `{name}` has fewer than two dimensions"),
        ));
    }
    let numel = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| invalid(path, "dimensions overflow"))?;
    let mut flag_bytes = Vec::with_capacity(8);
    flag_bytes.extend_from_slice(&(u32::from(class) | (u32::from(flags) << 8)).to_le_bytes());
    flag_bytes.extend_from_slice(&0u32.to_le_bytes());
    write_element(out, 6, &flag_bytes);
    let mut dim_bytes = Vec::with_capacity(dims.len() * 4);
    for &d in &dims {
        let d = i32::try_from(d).map_err(|_| invalid(path, format!("dimension {d} too large")))?;
        dim_bytes.extend_from_slice(&d.to_le_bytes());
    }
    write_element(out, 5, &dim_bytes);
    write_element(out, 1, name.as_bytes());
    let check_len = |len: usize| {
        if len == numel {
            Ok(())
        } else {
            Err(invalid(
                path,
                format!("array `{name}` has {len} elements but dimensions {dims:?}"),
            ))
        }
    };
    let too_big = || invalid(path, format!("array `{name}` is larger than 4 GiB"));
    match array {
        Array::Double { data, .. } => {
            check_len(data.len())?;
            let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
            u32::try_from(bytes.len()).map_err(|_| too_big())?;
            write_element(out, 9, &bytes);
        }
        Array::Single { data, .. } => {
            check_len(data.len())?;
            let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
            u32::try_from(bytes.len()).map_err(|_| too_big())?;
            write_element(out, 7, &bytes);
        }
        Array::Logical { data, .. } => {
            check_len(data.len())?;
            let bytes: Vec<u8> = data.iter().map(|&b| u8::from(b)).collect();
            u32::try_from(bytes.len()).map_err(|_| too_big())?;
            write_element(out, 2, &bytes);
        }
        Array::Char(s) => {
            u32::try_from(s.len()).map_err(|_| too_big())?;
            write_element(out, 16, s.as_bytes());
        }
        Array::Cell { elems, .. } => {
            check_len(elems.len())?;
            for e in elems {
                write_matrix(path, out, "", e)?;
            }
        }
        Array::Struct { fields, values, .. } => {
            let longest = fields.iter().map(String::len).max().unwrap_or(0);
            if longest > 63 {
                return Err(invalid(
                    path,
                    format!("a field name of `{name}` is longer than 63 bytes"),
                ));
            }
            if fields.iter().any(|f| f.is_empty() || f.contains('\0')) {
                return Err(invalid(path, format!("an empty field name in `{name}`")));
            }
            if values.len() != numel * fields.len() {
                return Err(invalid(
                    path,
                    format!(
                        "struct `{name}` has {} values for {numel} elements of {} fields",
                        values.len(),
                        fields.len()
                    ),
                ));
            }
            let name_len = longest + 1;
            write_element(
                out,
                5,
                &u32::try_from(name_len).expect("at most 64").to_le_bytes(),
            );
            let mut names = vec![0u8; name_len * fields.len()];
            for (i, f) in fields.iter().enumerate() {
                names[i * name_len..i * name_len + f.len()].copy_from_slice(f.as_bytes());
            }
            write_element(out, 1, &names);
            for v in values {
                write_matrix(path, out, "", v)?;
            }
        }
    }
    let size = u32::try_from(out.len() - start - 8).map_err(|_| too_big())?;
    out[start + 4..start + 8].copy_from_slice(&size.to_le_bytes());
    Ok(())
}

/// Writes `bytes` to a temporary file next to `path`, syncs it, and renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let err = |source| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    let file_name = path.file_name().ok_or_else(|| {
        err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path has no file name",
        ))
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(
        ".{}.{}-{n}.tmp",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        // Best effort: the temporary file may not exist if creating it failed.
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    Ok(())
}
