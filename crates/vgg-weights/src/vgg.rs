//! Extraction of a MatConvNet "simplenn" model (a chain of conv/relu/pool layers) from a decoded MAT-file.
//!
//! Everything is looked up by field name, never by position: the two published VGG files store their
//! struct fields in different orders.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array4};

use crate::mat::{Class, MatFile, Value};
use crate::{
    Conv, Error, Layer, LayerKind, Layout, LoadOptions, Pad, Pool, PoolMethod, Result, VggModel,
};

/// Largest stride, pad or pool size accepted; anything larger is a damaged file.
const MAX_GEOMETRY: f64 = 65_536.0;

/// Extracts the model from an opened MAT-file.
pub(crate) fn from_mat(file: &MatFile, opts: &LoadOptions) -> Result<VggModel> {
    let cx = Cx {
        path: file.path().to_path_buf(),
    };
    let layout = if file.variable("meta").is_some() {
        Layout::Current
    } else {
        Layout::Beta16
    };
    let info = file.require("layers")?;
    if info.class != Some(Class::Cell) {
        let found = match info.class {
            Some(c) => c,
            None => file.decode("layers")?.class(),
        };
        return Err(Error::WrongClass {
            path: cx.path.clone(),
            what: "variable `layers`".into(),
            expected: "a cell array of layer structs".into(),
            found,
        });
    }
    // Layers are decoded one at a time and converted at once; nothing after `last_layer` is decoded
    // (or, in a compressed file, even decompressed).
    let mut layers: Vec<Layer> = Vec::new();
    let mut failure = None;
    let mut found_last = false;
    file.visit_cell("layers", |i, value| match cx.layer(i, &value, &layers) {
        Ok(layer) => {
            let stop = opts.last_layer.as_deref() == Some(layer.name.as_str());
            layers.push(layer);
            if stop {
                found_last = true;
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        }
        Err(e) => {
            failure = Some(e);
            ControlFlow::Break(())
        }
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    if layers.is_empty() {
        return Err(Error::NotAChain {
            path: cx.path.clone(),
            layer: String::new(),
            reason: "the model has no layers".into(),
        });
    }
    if let Some(want) = opts.last_layer.as_ref().filter(|_| !found_last) {
        return Err(Error::UnknownLayer {
            path: cx.path.clone(),
            name: want.clone(),
            available: layers.iter().map(|l| l.name.clone()).collect(),
        });
    }
    // Channel counts are not chained here: MatConvNet's files need not agree across the fully connected
    // layers (the fake fixtures do not), and the network builder checks shapes when it runs.
    if !layers.iter().any(|l| matches!(l.kind, LayerKind::Conv(_))) {
        return Err(Error::NotAChain {
            path: cx.path.clone(),
            layer: layers.last().map(|l| l.name.clone()).unwrap_or_default(),
            reason: "no convolution among the layers loaded".into(),
        });
    }
    let mean_rgb = match layout {
        Layout::Beta16 => match file.variable("normalization") {
            Some(_) => cx.mean(&file.decode("normalization")?, "variable `normalization`")?,
            None => None,
        },
        Layout::Current => {
            let meta = file.decode("meta")?;
            let meta = cx.struct1(&meta, "variable `meta`")?;
            match meta.field("normalization") {
                Some(n) => cx.mean(n, "`meta.normalization`")?,
                None => None,
            }
        }
    };
    Ok(VggModel {
        layout,
        mean_rgb,
        layers,
    })
}

/// Context for error messages.
struct Cx {
    path: PathBuf,
}

impl Cx {
    fn path(&self) -> &Path {
        &self.path
    }

    /// Converts element `i` of `layers`; `previous` are the layers before it.
    fn layer(&self, i: usize, value: &Value, previous: &[Layer]) -> Result<Layer> {
        let what = format!("element {} of `layers`", i + 1);
        let s = self.struct1(value, &what)?;
        let name = self.string(
            self.required(s, "name", &what)?,
            &format!("field `name` of {what}"),
        )?;
        if previous.iter().any(|l| l.name == name) {
            return Err(Error::NotAChain {
                path: self.path.clone(),
                layer: name,
                reason: "two layers have this name".into(),
            });
        }
        let context = format!("layer `{name}`");
        let ty = self.string(
            self.required(s, "type", &context)?,
            &format!("field `type` of {context}"),
        )?;
        let kind = match ty.as_str() {
            "conv" => LayerKind::Conv(self.conv(s, &name)?),
            "relu" => {
                if let Some(leak) = s.field("leak") {
                    let leak = self.numbers(leak, &format!("field `leak` of {context}"))?;
                    if leak.iter().any(|&v| v != 0.0) {
                        return Err(Error::UnsupportedLayer {
                            path: self.path.clone(),
                            layer: name,
                            reason: format!("a leaky ReLU (leak {leak:?})"),
                        });
                    }
                }
                LayerKind::Relu
            }
            "pool" => LayerKind::Pool(self.pool(s, &name)?),
            _ => LayerKind::Other { type_name: ty },
        };
        Ok(Layer { name, kind })
    }

    fn wrong_shape(&self, what: &str, expected: &str, found: impl Into<String>) -> Error {
        Error::WrongShape {
            path: self.path.clone(),
            what: what.to_owned(),
            expected: expected.to_owned(),
            found: found.into(),
        }
    }

    /// A 1×1 struct.
    fn struct1<'v>(&self, v: &'v Value, what: &str) -> Result<&'v Value> {
        match v {
            Value::Struct(s) if s.len() == 1 => Ok(v),
            Value::Struct(s) => {
                Err(self.wrong_shape(what, "a 1×1 struct", format!("{:?}", s.dims())))
            }
            other => Err(Error::WrongClass {
                path: self.path.clone(),
                what: what.to_owned(),
                expected: "a struct".into(),
                found: other.class(),
            }),
        }
    }

    fn required<'v>(&self, s: &'v Value, field: &str, context: &str) -> Result<&'v Value> {
        s.field(field).ok_or_else(|| Error::MissingField {
            path: self.path().to_path_buf(),
            context: context.to_owned(),
            field: field.to_owned(),
        })
    }

    fn string(&self, v: &Value, what: &str) -> Result<String> {
        match v {
            Value::Char(c) => Ok(c.text()),
            other => Err(Error::WrongClass {
                path: self.path.clone(),
                what: what.to_owned(),
                expected: "a char array".into(),
                found: other.class(),
            }),
        }
    }

    /// All elements of a small numeric array as `f64`.
    fn numbers(&self, v: &Value, what: &str) -> Result<Vec<f64>> {
        match v {
            Value::Numeric(n) => Ok(n.to_f64_vec()),
            other => Err(Error::WrongClass {
                path: self.path.clone(),
                what: what.to_owned(),
                expected: "numeric".into(),
                found: other.class(),
            }),
        }
    }

    /// A small numeric array of non-negative integers (geometry), with `allowed` element counts.
    fn geometry(&self, v: &Value, what: &str, allowed: &[usize], min: usize) -> Result<Vec<usize>> {
        let values = self.numbers(v, what)?;
        let counts = allowed
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(" or ");
        if !allowed.contains(&values.len()) {
            return Err(self.wrong_shape(
                what,
                &format!("{counts} numbers"),
                format!("{values:?}"),
            ));
        }
        values
            .iter()
            .map(|&x| {
                if x.is_finite() && x.fract() == 0.0 && x >= min as f64 && x <= MAX_GEOMETRY {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    Ok(x as usize)
                } else {
                    Err(self.wrong_shape(
                        what,
                        &format!("integers in {min}..={MAX_GEOMETRY}"),
                        format!("{values:?}"),
                    ))
                }
            })
            .collect()
    }

    /// `[y, x]` from a scalar or a 2-vector (MatConvNet's stride and pool size).
    fn pair(
        &self,
        s: &Value,
        field: &str,
        layer: &str,
        default: usize,
        min: usize,
    ) -> Result<[usize; 2]> {
        let Some(v) = s.field(field) else {
            return Ok([default, default]);
        };
        let g = self.geometry(
            v,
            &format!("field `{field}` of layer `{layer}`"),
            &[1, 2],
            min,
        )?;
        Ok(if g.len() == 1 {
            [g[0], g[0]]
        } else {
            [g[0], g[1]]
        })
    }

    /// MatConvNet's pad: `[top bottom left right]`, a scalar (all four sides), or (by analogy with
    /// stride, which MatConvNet itself does not accept for pad) `[vertical horizontal]`.
    fn pad(&self, s: &Value, layer: &str) -> Result<Pad> {
        let Some(v) = s.field("pad") else {
            return Ok(Pad::default());
        };
        let g = self.geometry(v, &format!("field `pad` of layer `{layer}`"), &[1, 2, 4], 0)?;
        Ok(match g.as_slice() {
            [p] => Pad::uniform(*p),
            [y, x] => Pad {
                top: *y,
                bottom: *y,
                left: *x,
                right: *x,
            },
            [top, bottom, left, right] => Pad {
                top: *top,
                bottom: *bottom,
                left: *left,
                right: *right,
            },
            _ => unreachable!("geometry() checked the count"),
        })
    }

    fn conv(&self, s: &Value, name: &str) -> Result<Conv> {
        let context = format!("layer `{name}`");
        let (w, b) = if let Some(weights) = s.field("weights") {
            let what = format!("field `weights` of {context}");
            let cell = weights.as_cell().ok_or_else(|| Error::WrongClass {
                path: self.path.clone(),
                what: what.clone(),
                expected: "a cell {filters, biases}".into(),
                found: weights.class(),
            })?;
            match cell.elems() {
                [w] => (w, None),
                [w, b, ..] => (w, Some(b)),
                [] => {
                    return Err(self.wrong_shape(
                        &what,
                        "a cell {filters, biases}",
                        "an empty cell",
                    ));
                }
            }
        } else if let Some(filters) = s.field("filters") {
            (filters, s.field("biases"))
        } else {
            return Err(Error::MissingField {
                path: self.path.clone(),
                context,
                field: "weights".into(),
            });
        };
        let weights = self.filters(w, name)?;
        let c_out = weights.shape()[0];
        let bias = match b {
            None => Array1::zeros(c_out),
            Some(b) => self.bias(b, name, c_out)?,
        };
        if let Some(d) = s.field("dilate") {
            let d = self.numbers(d, &format!("field `dilate` of {context}"))?;
            if d.iter().any(|&v| v != 1.0) {
                return Err(Error::UnsupportedLayer {
                    path: self.path.clone(),
                    layer: name.to_owned(),
                    reason: format!("dilation {d:?}"),
                });
            }
        }
        Ok(Conv {
            weights,
            bias,
            stride: self.pair(s, "stride", name, 1, 1)?,
            pad: self.pad(s, name)?,
        })
    }

    /// MatConvNet filters `[kh, kw, c_in, c_out]`, column-major → `[c_out, c_in, kh, kw]`, row-major.
    fn filters(&self, w: &Value, name: &str) -> Result<Array4<f32>> {
        let what = format!("the filters of layer `{name}`");
        let n = match w {
            Value::Numeric(n) if !n.is_complex() && !n.is_logical() => n,
            other => {
                return Err(Error::WrongClass {
                    path: self.path.clone(),
                    what,
                    expected: "a real numeric array".into(),
                    found: other.class(),
                });
            }
        };
        // MATLAB drops trailing singleton dimensions: a [3 3 64 1] array is stored as [3 3 64].
        let dims = n.dims();
        let mut d = [1usize; 4];
        for (i, &v) in dims.iter().enumerate() {
            if i < 4 {
                d[i] = v;
            } else if v != 1 {
                return Err(self.wrong_shape(&what, "[kh kw c_in c_out]", format!("{dims:?}")));
            }
        }
        let [kh, kw, c_in, c_out] = d;
        if kh * kw * c_in * c_out == 0 {
            return Err(self.wrong_shape(
                &what,
                "non-empty [kh kw c_in c_out]",
                format!("{dims:?}"),
            ));
        }
        // Column-major [kh, kw, c_in, c_out] is the same memory as row-major [c_out, c_in, kw, kh]:
        // convert in place, then transpose each kw×kh block into kh×kw.
        let mut data = vec![0.0f32; n.len()];
        n.real().convert_into(&mut data);
        let block = kh * kw;
        if kh > 1 && kw > 1 {
            let mut scratch = vec![0.0f32; block];
            for chunk in data.chunks_exact_mut(block) {
                scratch.copy_from_slice(chunk);
                for y in 0..kh {
                    for x in 0..kw {
                        chunk[y * kw + x] = scratch[y + kh * x];
                    }
                }
            }
        }
        Ok(Array4::from_shape_vec((c_out, c_in, kh, kw), data)
            .expect("the element count is the product of the dimensions"))
    }

    fn bias(&self, b: &Value, name: &str, c_out: usize) -> Result<Array1<f32>> {
        let what = format!("the biases of layer `{name}`");
        let n = match b {
            Value::Numeric(n) if !n.is_complex() => n,
            other => {
                return Err(Error::WrongClass {
                    path: self.path.clone(),
                    what,
                    expected: "a real numeric vector".into(),
                    found: other.class(),
                });
            }
        };
        if n.is_empty() {
            return Ok(Array1::zeros(c_out));
        }
        let non_singleton = n.dims().iter().filter(|&&d| d != 1).count();
        if n.len() != c_out || non_singleton > 1 {
            return Err(self.wrong_shape(
                &what,
                &format!("a vector of {c_out} elements (1×{c_out} or {c_out}×1)"),
                format!("{:?}", n.dims()),
            ));
        }
        Ok(Array1::from(n.to_f32_vec()))
    }

    fn pool(&self, s: &Value, name: &str) -> Result<Pool> {
        let method = match s.field("method") {
            None => PoolMethod::Max,
            Some(m) => {
                let what = format!("field `method` of layer `{name}`");
                match self.string(m, &what)?.as_str() {
                    "max" => PoolMethod::Max,
                    "avg" => PoolMethod::Avg,
                    other => {
                        return Err(self.wrong_shape(
                            &what,
                            "'max' or 'avg'",
                            format!("'{other}'"),
                        ));
                    }
                }
            }
        };
        if s.field("pool").is_none() {
            return Err(Error::MissingField {
                path: self.path.clone(),
                context: format!("layer `{name}`"),
                field: "pool".into(),
            });
        }
        Ok(Pool {
            method,
            size: self.pair(s, "pool", name, 1, 1)?,
            stride: self.pair(s, "stride", name, 1, 1)?,
            pad: self.pad(s, name)?,
        })
    }

    /// The mean pixel from a normalization struct's `averageImage`: a 3-vector, 1×1×3, or an H×W×3
    /// image (averaged per channel).
    fn mean(&self, normalization: &Value, what: &str) -> Result<Option<[f32; 3]>> {
        let s = self.struct1(normalization, what)?;
        let Some(avg) = s.field("averageImage") else {
            return Ok(None);
        };
        let what = format!("`averageImage` of {what}");
        let values = self.numbers(avg, &what)?;
        let dims = avg.dims();
        if values.is_empty() {
            return Ok(None);
        }
        let per_channel = values.len() / 3;
        let last_is_3 = dims.len() == 3 && dims[2] == 3;
        let vector = values.len() == 3 && dims.iter().filter(|&&d| d != 1).count() == 1;
        if !(last_is_3 || vector) {
            return Err(self.wrong_shape(
                &what,
                "a 3-vector or an H×W×3 array",
                format!("{dims:?}"),
            ));
        }
        // Column-major H×W×3: each channel is one contiguous block of H·W values.
        let mut mean = [0.0f32; 3];
        for (c, m) in mean.iter_mut().enumerate() {
            let block = &values[c * per_channel..(c + 1) * per_channel];
            #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
            {
                *m = (block.iter().sum::<f64>() / per_channel as f64) as f32;
            }
        }
        Ok(Some(mean))
    }
}
