//! The `Layer` trait: one type per layer kind, forward and gradient with respect to the input.

use std::fmt;

use ndarray::{ArrayView3, ArrayViewMut3};

use crate::{Error, Result, Shape};

/// One layer of a feed-forward network on `[C, H, W]` f32 activations.
///
/// A layer writes its output into a caller-provided buffer and records in a [`Saved`] only what its
/// backward pass needs (ReLU: a bit mask; max pooling: the argmax position in each window, one byte for small windows; convolution and average
/// pooling: nothing, since their input gradient depends only on the weights and the shapes).
/// Weight gradients, where a caller wants them, are separate methods of the concrete types
/// (e.g. [`Conv2d::backward_params`](crate::Conv2d::backward_params)).
///
/// A layer may also run the ReLU above it, and a 2×2 average pooling above that, as part of its own
/// passes ([`forward_fused`](Layer::forward_fused), [`backward_input_fused`](Layer::backward_input_fused));
/// every layer can (the defaults add passes), and a [`Network`](crate::Network) joins them where
/// [`fuses`](Layer::fuses) says it is faster.
///
/// # Examples
/// ```
/// use ndarray::{Array1, Array3, Array4};
/// use tensor_ops::{Conv2d, Epilogue, Layer, Padding, Saved};
/// let conv = Conv2d::new("conv", Array4::from_elem((16, 16, 3, 3), -0.01), Array1::zeros(16), [1, 1], Padding::uniform(1))?;
/// let x = Array3::from_shape_fn((16, 40, 40), |(c, y, x)| (c + y + x) as f32 % 3.0 - 1.0);
/// assert!(conv.fuses(tensor_ops::Shape::of(&x), Epilogue::Relu)); // F(4×4): 100 tiles of 4×4
/// let (mut plain, mut fused) = (Array3::zeros((16, 40, 40)), Array3::zeros((16, 40, 40)));
/// conv.forward(x.view(), plain.view_mut(), None)?;
/// let mut saved = Saved::default();
/// conv.forward_fused(x.view(), fused.view_mut(), Some(&mut saved), Epilogue::Relu)?;
/// assert_eq!(fused, plain.mapv(|v| v.max(0.0)));
/// assert_eq!(saved.row_mask.len(), 16 * 40 * 2); // two 32-bit words per row of 40
/// # Ok::<(), tensor_ops::Error>(())
/// ```
pub trait Layer: Send + Sync + fmt::Debug {
    /// The layer's name (e.g. `conv1_1`), used in errors and for tap lookup.
    fn name(&self) -> &str;

    /// The layer as [`Any`](std::any::Any), so that a backend can recognise the layer types it has
    /// kernels for (implementations return `self`).
    fn as_any(&self) -> &dyn std::any::Any;

    /// Output shape for an input of shape `input`.
    ///
    /// # Errors
    /// When the input does not fit the layer (channel count, smaller than the window).
    fn output_shape(&self, input: Shape) -> Result<Shape>;

    /// Computes the output into `output` (of shape `output_shape(input)`, standard layout, any prior
    /// content). When `saved` is given, records there what [`backward_input`](Layer::backward_input) needs,
    /// reusing its buffers.
    ///
    /// # Errors
    /// When `input` does not fit the layer or `output` has the wrong shape.
    fn forward(
        &self,
        input: ArrayView3<'_, f32>,
        output: ArrayViewMut3<'_, f32>,
        saved: Option<&mut Saved>,
    ) -> Result<()>;

    /// Computes the gradient with respect to the input into `grad_input` (of the input's shape, any
    /// prior content), given the gradient `grad_output` with respect to the output and what `forward` saved.
    ///
    /// # Errors
    /// When the shapes do not agree with each other or with what `forward` saved.
    fn backward_input(
        &self,
        saved: &Saved,
        grad_output: ArrayView3<'_, f32>,
        grad_input: ArrayViewMut3<'_, f32>,
    ) -> Result<()>;

    /// How the layer's output rows depend on its input rows, for walks over bands of rows
    /// ([`Network::forward_visit_rows`](crate::Network::forward_visit_rows)). `None`, the default,
    /// means the layer does not say, and such a walk then runs on the whole input at once.
    fn row_window(&self) -> Option<RowWindow> {
        None
    }

    /// Whether the layer can run in place: its output has its input's shape and
    /// [`forward_in_place`](Layer::forward_in_place) / [`backward_input_in_place`](Layer::backward_input_in_place)
    /// are worth calling (a [`Network`](crate::Network) then needs no second buffer for it). `false` by default.
    fn runs_in_place(&self) -> bool {
        false
    }

    /// [`forward`](Layer::forward) with the output written over the input `data`. The default copies
    /// the input and calls `forward`; layers that return `true` from
    /// [`runs_in_place`](Layer::runs_in_place) do it without the copy.
    ///
    /// # Errors
    /// As [`forward`](Layer::forward).
    fn forward_in_place(
        &self,
        mut data: ArrayViewMut3<'_, f32>,
        saved: Option<&mut Saved>,
    ) -> Result<()> {
        let input = data.to_owned();
        self.forward(input.view(), data.view_mut(), saved)
    }

    /// [`backward_input`](Layer::backward_input) with the input gradient written over the output
    /// gradient `grad`. The default copies `grad` first.
    ///
    /// # Errors
    /// As [`backward_input`](Layer::backward_input).
    fn backward_input_in_place(
        &self,
        saved: &Saved,
        mut grad: ArrayViewMut3<'_, f32>,
    ) -> Result<()> {
        let grad_output = grad.to_owned();
        self.backward_input(saved, grad_output.view(), grad.view_mut())
    }

    /// [`backward_input`](Layer::backward_input), but adds the input gradient into `grad_input`
    /// (which holds gradient from elsewhere, such as a tap). The default computes into a temporary
    /// array and adds it; [`Conv2d`](crate::Conv2d) adds in its output pass (F(2×2) Winograd and im2col).
    ///
    /// # Errors
    /// As [`backward_input`](Layer::backward_input).
    fn backward_input_add(
        &self,
        saved: &Saved,
        grad_output: ArrayView3<'_, f32>,
        grad_input: ArrayViewMut3<'_, f32>,
    ) -> Result<()> {
        add_through_temporary(self, saved, grad_output, grad_input)
    }

    /// Whether the layer is exactly `y = max(x, 0)` element by element ([`Relu`](crate::Relu)), so
    /// that a [`Network`](crate::Network) may hand it to the layer below (see
    /// [`fuses`](Layer::fuses)). `false` by default.
    fn is_relu(&self) -> bool {
        false
    }

    /// Whether the layer is exactly a 2×2 average pooling with stride 2 and no padding
    /// ([`AvgPool2d`](crate::AvgPool2d) with those settings), so that a [`Network`](crate::Network)
    /// may hand it, with the ReLU below it, to the layer below that ([`Epilogue::ReluAvgPool2`]).
    /// `false` by default.
    fn is_avg_pool_2x2(&self) -> bool {
        false
    }

    /// Whether, for an input of shape `input`, [`forward_fused`](Layer::forward_fused) and
    /// [`backward_input_fused`](Layer::backward_input_fused) with `epilogue` are faster than this
    /// layer followed by the epilogue's layers; a [`Network`](crate::Network) then runs them as one.
    /// `false` by default (the two methods still work, through temporaries and extra passes).
    fn fuses(&self, input: Shape, epilogue: Epilogue) -> bool {
        let _ = (input, epilogue);
        false
    }

    /// The forward pass and `epilogue` after it: `output = max(layer(input), 0)`, pooled for
    /// [`Epilogue::ReluAvgPool2`] (then `output` has [`Epilogue::output_shape`]). When `saved` is
    /// given, records what [`backward_input_fused`](Layer::backward_input_fused) needs: the layer's own
    /// record and the ReLU's mask, one bit per element of the layer's output in [`Saved::row_mask`].
    /// The default runs [`forward`](Layer::forward) (into a temporary when pooling), then the ReLU
    /// and the pooling.
    ///
    /// # Errors
    /// As [`forward`](Layer::forward).
    fn forward_fused(
        &self,
        input: ArrayView3<'_, f32>,
        output: ArrayViewMut3<'_, f32>,
        saved: Option<&mut Saved>,
        epilogue: Epilogue,
    ) -> Result<()> {
        crate::row_mask::forward_then_epilogue(self, input, output, saved, epilogue)
    }

    /// The input gradient of [`forward_fused`](Layer::forward_fused) with `epilogue`, given
    /// `grad_output`, the gradient with respect to its output: the layer's input gradient for
    /// `mask ⊙ (the pooling's input gradient of grad_output)` (for [`Epilogue::Relu`], `mask ⊙
    /// grad_output`), added into `grad_input` with `accumulate`. The default builds that gradient in
    /// a temporary.
    ///
    /// # Errors
    /// As [`backward_input`](Layer::backward_input), and [`Error::ShapeMismatch`](crate::Error::ShapeMismatch)
    /// when `saved` holds no mask of the layer's output shape (the forward pass was not `forward_fused`).
    fn backward_input_fused(
        &self,
        saved: &Saved,
        grad_output: ArrayView3<'_, f32>,
        grad_input: ArrayViewMut3<'_, f32>,
        accumulate: bool,
        epilogue: Epilogue,
    ) -> Result<()> {
        crate::row_mask::epilogue_then_backward(
            self,
            saved,
            (grad_output, grad_input),
            accumulate,
            epilogue,
        )
    }
}

/// What a layer applies after its own output in a fused step ([`Layer::forward_fused`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Epilogue {
    /// A ReLU, `max(y, 0)`.
    Relu,
    /// A ReLU, then a 2×2 average pooling with stride 2 and no padding: `⌊H/2⌋ × ⌊W/2⌋` outputs,
    /// each `(0 + a + b + c + d) / 4` of its window (as [`AvgPool2d`](crate::AvgPool2d) computes it).
    ReluAvgPool2,
}

impl Epilogue {
    /// The shape of the fused step's output, given the layer's own output shape.
    ///
    /// # Examples
    /// ```
    /// use tensor_ops::{Epilogue, Shape};
    /// assert_eq!(Epilogue::ReluAvgPool2.output_shape(Shape::new(8, 75, 100)), Shape::new(8, 37, 50));
    /// ```
    pub fn output_shape(self, layer_output: Shape) -> Shape {
        match self {
            Epilogue::Relu => layer_output,
            Epilogue::ReluAvgPool2 => Shape::new(
                layer_output.channels,
                layer_output.height / 2,
                layer_output.width / 2,
            ),
        }
    }
}

/// The rows of a layer's input that one output row reads: output row `r` reads input rows
/// `r·stride − pad_top .. r·stride − pad_top + kernel` (those outside the input are padding).
///
/// # Examples
/// ```
/// use tensor_ops::{Layer, MaxPool2d, Padding, RowWindow};
/// let pool = MaxPool2d::new("pool1", [2, 2], [2, 2], Padding::ZERO)?;
/// assert_eq!(pool.row_window(), Some(RowWindow { kernel: 2, stride: 2, pad_top: 0 }));
/// # Ok::<(), tensor_ops::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowWindow {
    /// Rows of the window.
    pub kernel: usize,
    /// Rows between the windows of consecutive output rows.
    pub stride: usize,
    /// Padding rows above the input.
    pub pad_top: usize,
}

/// What a layer's forward pass keeps for its backward pass. Buffers are reused from pass to pass.
#[derive(Debug, Clone, Default)]
pub struct Saved {
    /// Shape of the input of the forward pass that filled this record.
    pub input_shape: Shape,
    /// One bit per output element (bit `i % 64` of word `i / 64`); ReLU sets it where the input was positive.
    pub mask: Vec<u64>,
    /// One byte per output element; max pooling with windows of at most 256 elements stores the
    /// position of each window's maximum inside the window, `(r − r0)·KW + (c − c0)`.
    pub offsets: Vec<u8>,
    /// One index per output element; max pooling with larger windows stores the same positions here.
    pub indices: Vec<u32>,
    /// The mask of a ReLU that the layer applied itself ([`Layer::forward_fused`]): bit `x % 32` of
    /// word `(c·H + y)·⌈W/32⌉ + x / 32` set where output `(c, y, x)` was positive before the ReLU
    /// (each row of the output starts a word).
    pub row_mask: Vec<u32>,
}

/// [`Layer::backward_input_add`] for any layer: the input gradient into a temporary array, then added.
pub(crate) fn add_through_temporary<L: Layer + ?Sized>(
    layer: &L,
    saved: &Saved,
    grad_output: ArrayView3<'_, f32>,
    mut grad_input: ArrayViewMut3<'_, f32>,
) -> Result<()> {
    let mut own = ndarray::Array3::zeros(grad_input.raw_dim());
    layer.backward_input(saved, grad_output, own.view_mut())?;
    grad_input += &own;
    Ok(())
}

/// Checks that an array handed to `layer` has the expected shape.
pub(crate) fn check_shape(layer: &str, what: &str, expected: Shape, actual: Shape) -> Result<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            layer: layer.to_owned(),
            what: what.to_owned(),
            expected,
            actual,
        })
    }
}

/// Checks that a buffer a layer writes into is in standard layout.
pub(crate) fn check_contiguous(layer: &str, what: &str, a: &ArrayViewMut3<'_, f32>) -> Result<()> {
    if a.is_standard_layout() {
        Ok(())
    } else {
        Err(Error::NotContiguous {
            layer: layer.to_owned(),
            what: what.to_owned(),
        })
    }
}
