//! A feed-forward network: a list of layers, a forward walk that keeps only what backward needs, and the backward walk.

use ndarray::{Array3, ArrayView3, ArrayViewMut3};

use crate::layer::{Saved, check_shape};
use crate::{Error, Layer, Result, Shape};

/// A chain of layers with reusable buffers.
///
/// The forward walk ping-pongs between two buffers and copies out only the tapped outputs; each layer
/// keeps in its [`Saved`] record only what its input gradient needs (ReLU bit masks, max-pooling
/// positions). The backward walk reuses the same two buffers. After the first pass at a given input
/// size, a forward + backward allocates no large buffer (use [`Network::forward_into`] to reuse the tap arrays too).
///
/// # Examples
/// ```
/// use ndarray::{Array1, Array3, Array4};
/// use tensor_ops::{Conv2d, Layer, MaxPool2d, Network, Padding, Relu};
/// let layers: Vec<Box<dyn Layer>> = vec![
///     Box::new(Conv2d::new("conv1", Array4::from_elem((4, 3, 3, 3), 0.1), Array1::zeros(4), [1, 1], Padding::uniform(1))?),
///     Box::new(Relu::new("relu1")),
///     Box::new(MaxPool2d::new("pool1", [2, 2], [2, 2], Padding::ZERO)?),
/// ];
/// let mut net = Network::new(layers);
/// let relu = net.index_of("relu1").expect("the layer exists");
/// let image = Array3::from_elem((3, 6, 6), 1.0_f32);
/// let taps = net.forward(image.view(), &[relu])?;
/// assert_eq!(taps[0].dim(), (4, 6, 6));
/// let grad = net.backward(&[Array3::ones((4, 6, 6)).view()])?; // ∂(Σ relu1)/∂image
/// assert_eq!(grad.dim(), (3, 6, 6));
/// # Ok::<(), tensor_ops::Error>(())
/// ```
#[derive(Debug)]
pub struct Network {
    layers: Vec<Box<dyn Layer>>,
    saved: Vec<Saved>,
    buf_a: Vec<f32>,
    buf_b: Vec<f32>,
    /// `shapes[i]` is the input shape of layer `i`; `shapes[i + 1]` its output (of the last forward).
    shapes: Vec<Shape>,
    /// Taps of the last training forward pass (`None` after an inference pass or before any pass).
    last_taps: Option<Vec<usize>>,
}

impl Network {
    /// A network running `layers` in order.
    pub fn new(layers: Vec<Box<dyn Layer>>) -> Self {
        let saved = layers.iter().map(|_| Saved::default()).collect();
        Network {
            layers,
            saved,
            buf_a: Vec::new(),
            buf_b: Vec::new(),
            shapes: Vec::new(),
            last_taps: None,
        }
    }

    /// Index of the first layer named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.layers.iter().position(|l| l.name() == name)
    }

    /// The layers.
    pub fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether the network has no layer.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Output shapes of layers `0..=last` for an input of shape `input`.
    ///
    /// # Errors
    /// The first layer that does not accept its input, or [`Error::TapOutOfRange`].
    pub fn shapes(&self, input: Shape, last: usize) -> Result<Vec<Shape>> {
        if last >= self.layers.len() {
            return Err(Error::TapOutOfRange {
                tap: last,
                n_layers: self.layers.len(),
            });
        }
        let mut shapes = Vec::with_capacity(last + 2);
        shapes.push(input);
        for layer in &self.layers[..=last] {
            let next = layer.output_shape(*shapes.last().expect("starts non-empty"))?;
            shapes.push(next);
        }
        Ok(shapes)
    }

    /// Runs layers `0..=max(taps)` on `input` and returns the outputs of the tapped layers, in the order
    /// of `taps` (a layer may be tapped twice). Keeps what [`Network::backward`] needs.
    ///
    /// # Errors
    /// [`Error::NoTaps`], [`Error::TapOutOfRange`], or the first layer that does not accept its input.
    pub fn forward(
        &mut self,
        input: ArrayView3<'_, f32>,
        taps: &[usize],
    ) -> Result<Vec<Array3<f32>>> {
        let mut outputs = Vec::new();
        self.forward_into(input, taps, &mut outputs)?;
        Ok(outputs)
    }

    /// As [`Network::forward`], but writes the tapped outputs into `outputs`, reusing its arrays where
    /// their shapes already match (so repeated passes allocate nothing).
    ///
    /// # Errors
    /// As [`Network::forward`].
    pub fn forward_into(
        &mut self,
        input: ArrayView3<'_, f32>,
        taps: &[usize],
        outputs: &mut Vec<Array3<f32>>,
    ) -> Result<()> {
        self.last_taps = None;
        self.run(input, taps, outputs, true)?;
        self.last_taps = Some(taps.to_vec());
        Ok(())
    }

    /// As [`Network::forward`], but keeps nothing for a backward pass (a later `backward` is an error).
    ///
    /// # Errors
    /// As [`Network::forward`].
    pub fn forward_inference(
        &mut self,
        input: ArrayView3<'_, f32>,
        taps: &[usize],
    ) -> Result<Vec<Array3<f32>>> {
        let mut outputs = Vec::new();
        self.last_taps = None;
        self.run(input, taps, &mut outputs, false)?;
        Ok(outputs)
    }

    fn run(
        &mut self,
        input: ArrayView3<'_, f32>,
        taps: &[usize],
        outputs: &mut Vec<Array3<f32>>,
        keep: bool,
    ) -> Result<()> {
        let last = *taps.iter().max().ok_or(Error::NoTaps)?;
        self.shapes = self.shapes(Shape::of(&input), last)?;
        let max_len = self
            .shapes
            .iter()
            .map(Shape::len)
            .max()
            .expect("at least one layer runs");
        grow(&mut self.buf_a, max_len);
        grow(&mut self.buf_b, max_len);
        outputs.truncate(taps.len());
        for (j, &t) in taps.iter().enumerate() {
            let dim = self.shapes[t + 1].dim();
            if j < outputs.len() {
                if outputs[j].dim() != dim {
                    outputs[j] = Array3::zeros(dim);
                }
            } else {
                outputs.push(Array3::zeros(dim));
            }
        }
        let (mut src, mut dst) = (&mut self.buf_a, &mut self.buf_b);
        for i in 0..=last {
            let out_shape = self.shapes[i + 1];
            let saved = if keep { Some(&mut self.saved[i]) } else { None };
            let mut out = ArrayViewMut3::from_shape(out_shape.dim(), &mut dst[..out_shape.len()])
                .expect("buffer sized to the largest shape");
            if i == 0 {
                self.layers[i].forward(input.view(), out.view_mut(), saved)?;
            } else {
                let in_shape = self.shapes[i];
                let x = ArrayView3::from_shape(in_shape.dim(), &src[..in_shape.len()])
                    .expect("buffer sized to the largest shape");
                self.layers[i].forward(x, out.view_mut(), saved)?;
            }
            for (j, _) in taps.iter().enumerate().filter(|&(_, &t)| t == i) {
                outputs[j].assign(&out);
            }
            std::mem::swap(&mut src, &mut dst);
        }
        Ok(())
    }

    /// Gradient with respect to the input of the last [`Network::forward`], given `grad_taps[j]`, the gradient
    /// with respect to the output of tap `j` (same order and shapes as that forward's taps). Gradients
    /// arriving at several taps are summed on the way down.
    ///
    /// # Errors
    /// [`Error::NoForwardPass`], [`Error::TapCount`], or [`Error::ShapeMismatch`] naming the tapped layer.
    pub fn backward(&mut self, grad_taps: &[ArrayView3<'_, f32>]) -> Result<Array3<f32>> {
        let taps = self.last_taps.as_ref().ok_or(Error::NoForwardPass)?;
        if grad_taps.len() != taps.len() {
            return Err(Error::TapCount {
                expected: taps.len(),
                actual: grad_taps.len(),
            });
        }
        for (j, (&t, g)) in taps.iter().zip(grad_taps).enumerate() {
            check_shape(
                self.layers[t].name(),
                &format!("grad_taps[{j}]"),
                self.shapes[t + 1],
                Shape::of(g),
            )?;
        }
        let last = *taps
            .iter()
            .max()
            .expect("forward checked that taps is not empty");
        let (mut cur, mut next) = (&mut self.buf_a, &mut self.buf_b);
        cur[..self.shapes[last + 1].len()].fill(0.0);
        for i in (0..=last).rev() {
            let out_shape = self.shapes[i + 1];
            let in_shape = self.shapes[i];
            let mut g = ArrayViewMut3::from_shape(out_shape.dim(), &mut cur[..out_shape.len()])
                .expect("buffer sized to the largest shape");
            for (&t, gt) in taps.iter().zip(grad_taps) {
                if t == i {
                    g += gt;
                }
            }
            let gi = ArrayViewMut3::from_shape(in_shape.dim(), &mut next[..in_shape.len()])
                .expect("buffer sized to the largest shape");
            self.layers[i].backward_input(&self.saved[i], g.view(), gi)?;
            std::mem::swap(&mut cur, &mut next);
        }
        let in_shape = self.shapes[0];
        Ok(
            ArrayView3::from_shape(in_shape.dim(), &cur[..in_shape.len()])
                .expect("buffer sized to the largest shape")
                .to_owned(),
        )
    }
}

/// Grows `buf` to at least `len` elements (never shrinks, so buffers are reused across passes).
fn grow(buf: &mut Vec<f32>, len: usize) {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
}
