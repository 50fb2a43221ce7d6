//! [`DeviceNetwork`]: a [`Network`]'s layers with their weights and every activation in device memory.

use std::fmt;

use super::{ConvDims, Device, GemmCall, Kernel};
use crate::{AvgPool2d, Conv2d, Error, MaxPool2d, Network, Relu, Result, Shape};

/// One layer as the device runs it.
enum Op<B> {
    Conv {
        /// `[C_out, C_in·KH·KW]`.
        weight: B,
        bias: B,
        d: ConvDims,
        c_out: usize,
    },
    Relu,
    MaxPool(ConvDims),
    AvgPool(ConvDims),
}

/// The layers `0..=last` of a [`Network`] on a [`Device`], for one input shape.
///
/// Weights are uploaded once; every layer's output has its own buffer and stays on the device, so the
/// backward pass needs no record of the forward one beyond the activations (ReLU reads its output,
/// max pooling recomputes its window's argmax from its input). The convolutions are im2col + GEMM with
/// one scratch matrix shared by all layers. Memory: the sum of the activations, twice the largest one
/// for the backward walk, the largest im2col matrix, and the weights.
///
/// # Examples
/// A forward and backward pass on any device (the crate's tests do the same on the CPU emulator of the `device-emu`
/// crate; with the `cuda` feature, `device::cuda::CudaDevice::new()?` is a GPU):
/// ```
/// use tensor_ops::device::{Device, DeviceNetwork};
/// use tensor_ops::{Network, Shape};
///
/// /// `∂⟨1, output of layer last⟩/∂image`, computed on `dev`.
/// fn input_gradient<D: Device>(dev: D, net: &Network, image: &[f32], shape: Shape, last: usize)
///     -> tensor_ops::Result<Vec<f32>> {
///     let mut gpu = DeviceNetwork::new(dev, net, shape, last)?;
///     gpu.set_input(image)?;
///     gpu.forward()?;
///     let dev = gpu.device();
///     let mut ones = dev.alloc(gpu.output_shape(last).len())?;
///     dev.upload(&vec![1.0; gpu.output_shape(last).len()], &mut ones)?;
///     gpu.backward(&[(last, &ones)])?;
///     let mut grad = vec![0.0; shape.len()];
///     gpu.device().download(gpu.input_grad(), &mut grad)?;
///     Ok(grad)
/// }
/// ```
pub struct DeviceNetwork<D: Device> {
    dev: D,
    names: Vec<String>,
    ops: Vec<Op<D::Buf>>,
    /// `shapes[i]` is the input of layer `i`, `shapes[i + 1]` its output.
    shapes: Vec<Shape>,
    /// `acts[0]` is the input, `acts[i + 1]` the output of layer `i`.
    acts: Vec<D::Buf>,
    cols: D::Buf,
    grad_a: D::Buf,
    grad_b: D::Buf,
    /// Which of the two gradient buffers holds the last input gradient.
    grad_in_b: bool,
}

impl<D: Device> fmt::Debug for DeviceNetwork<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceNetwork")
            .field("device", &self.dev.name())
            .field("layers", &self.names)
            .field("shapes", &self.shapes)
            .finish_non_exhaustive()
    }
}

impl<D: Device> DeviceNetwork<D> {
    /// Uploads layers `0..=last` of `network` and allocates every buffer for inputs of shape `input`.
    ///
    /// # Errors
    /// [`Error::TapOutOfRange`] or the first layer that does not accept its input (as
    /// [`Network::shapes`]); [`Error::NoDeviceKernel`] for a layer type without device kernels;
    /// [`Error::TooLarge`] when a size does not fit the kernels' `i32` dimensions; [`Error::Device`].
    pub fn new(dev: D, network: &Network, input: Shape, last: usize) -> Result<Self> {
        let shapes = network.shapes(input, last)?;
        let mut ops = Vec::with_capacity(last + 1);
        let mut names = Vec::with_capacity(last + 1);
        let mut cols_len = 0;
        for (i, layer) in network.layers()[..=last].iter().enumerate() {
            let (x, y) = (shapes[i], shapes[i + 1]);
            let any = layer.as_any();
            let op = if let Some(conv) = any.downcast_ref::<Conv2d>() {
                let [c_out, _, kh, kw] = conv.weight_dims();
                let pad = conv.padding();
                let d = ConvDims::new(
                    layer.name(),
                    x,
                    y,
                    [kh, kw],
                    conv.stride(),
                    [pad.top, pad.left],
                )?;
                let k = x.channels * kh * kw;
                cols_len = cols_len.max(k * y.plane());
                let w = conv.weight_matrix();
                let w = w.as_standard_layout();
                let mut weight = dev.alloc(w.len())?;
                dev.upload(w.as_slice().expect("standard layout"), &mut weight)?;
                let b = conv.bias();
                let b = b.as_standard_layout();
                let mut bias = dev.alloc(b.len())?;
                dev.upload(b.as_slice().expect("standard layout"), &mut bias)?;
                Op::Conv {
                    weight,
                    bias,
                    d,
                    c_out,
                }
            } else if any.is::<Relu>() {
                Op::Relu
            } else if let Some(pool) = any.downcast_ref::<MaxPool2d>() {
                let g = pool.geometry(x)?;
                Op::MaxPool(pool_dims(layer.name(), &g)?)
            } else if let Some(pool) = any.downcast_ref::<AvgPool2d>() {
                let g = pool.geometry(x)?;
                Op::AvgPool(pool_dims(layer.name(), &g)?)
            } else {
                return Err(Error::NoDeviceKernel {
                    layer: layer.name().to_owned(),
                });
            };
            ops.push(op);
            names.push(layer.name().to_owned());
        }
        let largest = shapes.iter().map(Shape::len).max().unwrap_or(0);
        let acts = shapes
            .iter()
            .map(|s| dev.alloc(s.len()))
            .collect::<Result<Vec<_>>>()?;
        Ok(DeviceNetwork {
            cols: dev.alloc(cols_len)?,
            grad_a: dev.alloc(largest)?,
            grad_b: dev.alloc(largest)?,
            grad_in_b: false,
            dev,
            names,
            ops,
            shapes,
            acts,
        })
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// The input shape this network was built for.
    pub fn input_shape(&self) -> Shape {
        self.shapes[0]
    }

    /// Output shape of layer `i`.
    ///
    /// # Panics
    /// When `i` is past the last uploaded layer.
    pub fn output_shape(&self, i: usize) -> Shape {
        self.shapes[i + 1]
    }

    /// Number of uploaded layers (`last + 1`).
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether no layer was uploaded (never: `new` uploads at least layer 0).
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Name of layer `i`.
    ///
    /// # Panics
    /// When `i` is past the last uploaded layer.
    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// Copies a `[C, H, W]` image (standard layout, the input shape) from the host into the input buffer.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for a wrong length; [`Error::Device`].
    pub fn set_input(&mut self, image: &[f32]) -> Result<()> {
        let shape = self.shapes[0];
        if image.len() != shape.len() {
            return Err(Error::ShapeMismatch {
                layer: "network".to_owned(),
                what: format!("input of {} values", image.len()),
                expected: shape,
                actual: shape,
            });
        }
        self.dev.upload(image, &mut self.acts[0])
    }

    /// Copies an image already on the device (e.g. an optimizer's iterate) into the input buffer.
    ///
    /// # Errors
    /// [`Error::Device`] when `image` is shorter than the input, or the copy fails.
    pub fn set_input_from(&mut self, image: &D::Buf) -> Result<()> {
        let n = self.shapes[0].len();
        self.dev.copy(image, &mut self.acts[0], n)
    }

    /// The input buffer.
    pub fn input(&self) -> &D::Buf {
        &self.acts[0]
    }

    /// The device, the input and, mutably, the input gradient of the last
    /// [`backward`](DeviceNetwork::backward), for adding a term computed on the image itself (e.g. a
    /// smoothness cost) into the gradient.
    pub fn input_and_grad_mut(&mut self) -> (&D, &D::Buf, &mut D::Buf) {
        let grad = if self.grad_in_b {
            &mut self.grad_b
        } else {
            &mut self.grad_a
        };
        (&self.dev, &self.acts[0], grad)
    }

    /// The output of layer `i` from the last [`forward`](DeviceNetwork::forward).
    ///
    /// # Panics
    /// When `i` is past the last uploaded layer.
    pub fn output(&self, i: usize) -> &D::Buf {
        &self.acts[i + 1]
    }

    /// Runs every uploaded layer on the input buffer.
    ///
    /// # Errors
    /// [`Error::Device`].
    pub fn forward(&mut self) -> Result<()> {
        for i in 0..self.ops.len() {
            let (done, rest) = self.acts.split_at_mut(i + 1);
            let (x, y) = (&done[i], &mut rest[0]);
            let out = self.shapes[i + 1];
            let n = len_i64(out.len());
            match &self.ops[i] {
                Op::Conv {
                    weight,
                    bias,
                    d,
                    c_out,
                } => {
                    let k = self.shapes[i].channels * d.kh as usize * d.kw as usize;
                    self.dev.launch(Kernel::Im2col {
                        x,
                        cols: &mut self.cols,
                        d: *d,
                    })?;
                    self.dev.gemm(GemmCall {
                        trans_a: false,
                        trans_b: false,
                        m: *c_out,
                        n: out.plane(),
                        k,
                        alpha: 1.0,
                        a: weight,
                        b: &self.cols,
                        beta: 0.0,
                        c: y,
                    })?;
                    self.dev.launch(Kernel::BiasAdd {
                        y,
                        bias,
                        plane: len_i64(out.plane()),
                        n,
                    })?;
                }
                Op::Relu => self.dev.launch(Kernel::ReluForward { x, y, n })?,
                Op::MaxPool(d) => self.dev.launch(Kernel::MaxPoolForward { x, y, d: *d })?,
                Op::AvgPool(d) => self.dev.launch(Kernel::AvgPoolForward { x, y, d: *d })?,
            }
        }
        Ok(())
    }

    /// Gradient with respect to the input of the last [`forward`](DeviceNetwork::forward), given the
    /// gradients `grad_taps` `(layer, ∂J/∂output of layer)`; gradients at several layers are summed on
    /// the way down, and only layers `0..=max(layer)` are walked. The result is in
    /// [`input_grad`](DeviceNetwork::input_grad).
    ///
    /// # Errors
    /// [`Error::NoTaps`], [`Error::TapOutOfRange`], or [`Error::Device`] (a gradient buffer shorter than
    /// its layer's output among them).
    pub fn backward(&mut self, grad_taps: &[(usize, &D::Buf)]) -> Result<()> {
        let last = grad_taps
            .iter()
            .map(|&(i, _)| i)
            .max()
            .ok_or(Error::NoTaps)?;
        if last >= self.ops.len() {
            return Err(Error::TapOutOfRange {
                tap: last,
                n_layers: self.ops.len(),
            });
        }
        let (mut cur, mut next) = (&mut self.grad_a, &mut self.grad_b);
        self.dev.zero(cur, self.shapes[last + 1].len())?;
        for i in (0..=last).rev() {
            let out = self.shapes[i + 1];
            let inp = self.shapes[i];
            for &(_, g) in grad_taps.iter().filter(|&&(t, _)| t == i) {
                self.dev.launch(Kernel::Axpy {
                    a: 1.0,
                    x: g,
                    y: cur,
                    n: len_i64(out.len()),
                })?;
            }
            match &self.ops[i] {
                Op::Conv {
                    weight, d, c_out, ..
                } => {
                    let k = inp.channels * d.kh as usize * d.kw as usize;
                    self.dev.gemm(GemmCall {
                        trans_a: true,
                        trans_b: false,
                        m: k,
                        n: out.plane(),
                        k: *c_out,
                        alpha: 1.0,
                        a: weight,
                        b: cur,
                        beta: 0.0,
                        c: &mut self.cols,
                    })?;
                    self.dev.launch(Kernel::Col2im {
                        cols: &self.cols,
                        dx: next,
                        d: *d,
                    })?;
                }
                Op::Relu => self.dev.launch(Kernel::ReluBackward {
                    y: &self.acts[i + 1],
                    dy: cur,
                    dx: next,
                    n: len_i64(out.len()),
                })?,
                Op::MaxPool(d) => self.dev.launch(Kernel::MaxPoolBackward {
                    x: &self.acts[i],
                    dy: cur,
                    dx: next,
                    d: *d,
                })?,
                Op::AvgPool(d) => self.dev.launch(Kernel::AvgPoolBackward {
                    dy: cur,
                    dx: next,
                    d: *d,
                })?,
            }
            std::mem::swap(&mut cur, &mut next);
        }
        // One swap per layer walked: after an odd number the result is in `grad_b`.
        self.grad_in_b = (last + 1) % 2 == 1;
        Ok(())
    }

    /// The gradient with respect to the input computed by the last [`backward`](DeviceNetwork::backward)
    /// (its first `input_shape().len()` elements).
    pub fn input_grad(&self) -> &D::Buf {
        if self.grad_in_b {
            &self.grad_b
        } else {
            &self.grad_a
        }
    }
}

fn pool_dims(name: &str, g: &crate::PoolGeometry) -> Result<ConvDims> {
    ConvDims::new(
        name,
        g.input(),
        g.output(),
        g.window,
        g.stride,
        [g.pad.top, g.pad.left],
    )
}

/// Element counts as the kernels' `long long` (a `usize` that does not fit cannot be allocated anyway).
pub(crate) fn len_i64(n: usize) -> i64 {
    i64::try_from(n).expect("a buffer length fits i64")
}
