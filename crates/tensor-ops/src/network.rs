//! A feed-forward network: a list of layers, a forward walk that keeps only what backward needs, and the backward walk.

use ndarray::{Array3, ArrayView3, ArrayViewMut3};

use crate::layer::{RowWindow, Saved, check_contiguous, check_shape};
use crate::{Epilogue, Error, Layer, Result, Shape};

/// A chain of layers with reusable buffers.
///
/// The forward walk keeps its values in the tap arrays (a layer writes straight into its tap's array;
/// ReLUs run in place) and in one working buffer, planned per input shape; each layer keeps in its
/// [`Saved`] record only what its input gradient needs (ReLU bit masks, max-pooling positions).
/// A layer followed by a ReLU (and by a 2×2 average pooling after that) runs with them as one step
/// where the layer says it is faster so ([`Layer::fuses`]: F(4×4) convolutions apply the ReLU and
/// the pooling in their output pass and read the gradient through the ReLU's mask, spreading the
/// pooling's, in their input-gradient pass), unless an output that the step would not write is
/// tapped; the values are the same, bit for bit.
/// [`Network::backward_in_place`] works in the gradient arrays and the same buffer;
/// [`Network::backward`], which takes borrowed gradients, uses two halves of a larger one. After the
/// first pass at a given input size, a forward + backward allocates no large buffer (use
/// [`Network::forward_into`] to reuse the tap arrays too).
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
    /// The working buffer: values that live neither in the caller's input nor in a tap array.
    work: Vec<f32>,
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
            work: Vec::new(),
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
        outputs.truncate(taps.len());
        for (j, &t) in taps.iter().enumerate() {
            let dim = self.shapes[t + 1].dim();
            if j < outputs.len() {
                if outputs[j].dim() != dim || !outputs[j].is_standard_layout() {
                    outputs[j] = Array3::zeros(dim);
                }
            } else {
                outputs.push(Array3::zeros(dim));
            }
        }
        let plan = self.plan(taps, last, true);
        self.walk_forward(input, taps, &plan, outputs, keep, &mut |_, _| {
            Ok::<(), Error>(())
        })
    }

    /// Runs layers `0..=max(taps)` on `input` without keeping anything for a backward pass, and hands
    /// each tapped output to `visit(j, output)` as soon as it is computed (`j` its index in `taps`).
    ///
    /// Unlike [`Network::forward_inference`], it keeps no copy of the tapped outputs: the walk needs only
    /// its working buffer, so a caller that reduces each output (a Gram matrix, a mean) never holds the
    /// full set. A later [`Network::backward`] is an error.
    ///
    /// # Errors
    /// As [`Network::forward`] (converted into `E`), and the first error `visit` returns (the walk
    /// stops there).
    ///
    /// # Examples
    /// ```
    /// use ndarray::{Array1, Array3, Array4};
    /// use tensor_ops::{Conv2d, Layer, Network, Padding, Relu};
    /// let layers: Vec<Box<dyn Layer>> = vec![
    ///     Box::new(Conv2d::new("conv1", Array4::from_elem((4, 3, 3, 3), 0.1), Array1::zeros(4), [1, 1], Padding::uniform(1))?),
    ///     Box::new(Relu::new("relu1")),
    /// ];
    /// let mut net = Network::new(layers);
    /// let mut sums = Vec::new();
    /// net.forward_visit(Array3::from_elem((3, 5, 5), 1.0_f32).view(), &[0, 1], |j, out| {
    ///     sums.push((j, out.sum()));
    ///     Ok(())
    /// })?;
    /// assert_eq!(sums.len(), 2);
    /// # Ok::<(), tensor_ops::Error>(())
    /// ```
    pub fn forward_visit<E: From<Error>>(
        &mut self,
        input: ArrayView3<'_, f32>,
        taps: &[usize],
        mut visit: impl FnMut(usize, ArrayView3<'_, f32>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        self.last_taps = None;
        let last = *taps.iter().max().ok_or(Error::NoTaps)?;
        self.shapes = self.shapes(Shape::of(&input), last)?;
        let plan = self.plan(taps, last, false);
        self.walk_forward(input, taps, &plan, &mut Vec::new(), false, &mut visit)
    }

    /// As [`Network::forward_visit`], but over bands of at most about `band_rows` input rows (rounded
    /// up to the network's total stride), so that the working buffers hold one band instead of the
    /// whole input: `visit(j, first_row, rows)` gets consecutive row ranges of tap `j`'s output (the
    /// first at row 0, the last ending at its last row), each exactly once.
    ///
    /// Each band runs on the input rows its tapped rows depend on (the rows above and below are
    /// computed again by the next band), so the outputs are those of a whole pass up to float
    /// rounding (a Winograd tile can fall elsewhere); the bands depend only on the shapes, so results
    /// are the same from run to run and for any thread count. Where a layer does not give its
    /// [`Layer::row_window`], or the first band would need every input row, it is one band.
    ///
    /// # Errors
    /// As [`Network::forward_visit`].
    ///
    /// # Examples
    /// ```
    /// use ndarray::{s, Array1, Array3, Array4};
    /// use tensor_ops::{Conv2d, Layer, MaxPool2d, Network, Padding, Relu};
    /// let layers: Vec<Box<dyn Layer>> = vec![
    ///     Box::new(Conv2d::new("conv1", Array4::from_elem((2, 1, 3, 3), 0.1), Array1::zeros(2), [1, 1], Padding::uniform(1))?),
    ///     Box::new(Relu::new("relu1")),
    ///     Box::new(MaxPool2d::new("pool1", [2, 2], [2, 2], Padding::ZERO)?),
    /// ];
    /// let mut net = Network::new(layers);
    /// let image = Array3::from_shape_fn((1, 40, 6), |(_, y, x)| (y * 6 + x) as f32);
    /// let whole = net.forward_inference(image.view(), &[2])?;
    /// let mut rows = Vec::new();
    /// net.forward_visit_rows(image.view(), &[2], 8, |_, first, band| {
    ///     assert_eq!(band, whole[0].slice(s![.., first..first + band.dim().1, ..]));
    ///     rows.push(first);
    ///     Ok::<(), tensor_ops::Error>(())
    /// })?;
    /// assert_eq!(rows, [0, 4, 8, 12, 16]);
    /// # Ok::<(), tensor_ops::Error>(())
    /// ```
    pub fn forward_visit_rows<E: From<Error>>(
        &mut self,
        input: ArrayView3<'_, f32>,
        taps: &[usize],
        band_rows: usize,
        mut visit: impl FnMut(usize, usize, ArrayView3<'_, f32>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        self.last_taps = None;
        let last = *taps.iter().max().ok_or(Error::NoTaps)?;
        let full = self.shapes(Shape::of(&input), last)?;
        let height = full[0].height;
        let windows: Option<Vec<RowWindow>> = self.layers[..=last]
            .iter()
            .map(|l| l.row_window())
            .collect();
        let Some(windows) = windows.filter(|_| band_rows < height) else {
            return self.forward_visit(input, taps, |j, out| visit(j, 0, out));
        };
        let align: usize = windows.iter().map(|w| w.stride.max(1)).product();
        let step = band_rows.div_ceil(align).max(1) * align;
        let bands = Bands {
            full: &full,
            windows: &windows,
            align,
        };
        // A first band that needs every input row is the whole pass, done once.
        let first = bands.wanted(taps, (0, step.min(height)));
        if bands.input_rows(taps, &first) == Some((0, height)) {
            return self.forward_visit(input, taps, |j, out| visit(j, 0, out));
        }
        let names: Vec<String> = taps
            .iter()
            .map(|&t| self.layers[t].name().to_owned())
            .collect();
        let mut a = 0;
        while a < height {
            let b = (a + step).min(height);
            let wanted = bands.wanted(taps, (a, b));
            if let Some((i0, i1)) = bands.input_rows(taps, &wanted) {
                // Only the taps that want rows of this band, and the layers up to the deepest of
                // them: below it the band may be too short for layers that do not pad.
                let active: Vec<usize> = (0..taps.len())
                    .filter(|&j| wanted[j].0 < wanted[j].1)
                    .collect();
                let band_taps: Vec<usize> = active.iter().map(|&j| taps[j]).collect();
                let band_last = *band_taps
                    .iter()
                    .max()
                    .expect("input_rows found wanted rows");
                let band = input.slice(ndarray::s![.., i0..i1, ..]);
                self.shapes = self.shapes(Shape::of(&band), band_last)?;
                let offsets = bands.offsets(i0, &self.shapes);
                let plan = self.plan(&band_taps, band_last, false);
                self.walk_forward(band, &band_taps, &plan, &mut [], false, &mut |k, out| {
                    let j = active[k];
                    let (r0, r1) = wanted[j];
                    let (off, lo, hi) = offsets[taps[j] + 1];
                    if r0 < lo || r1 > hi {
                        return Err(E::from(Error::InvalidConfig {
                            layer: names[j].clone(),
                            reason: format!(
                                "a band walk computed rows {lo}..{hi} of this layer, not the wanted {r0}..{r1} (a layer's row_window is wrong)"
                            ),
                        }));
                    }
                    visit(j, r0, out.slice(ndarray::s![.., r0 - off..r1 - off, ..]))
                })?;
            }
            a = b;
        }
        Ok(())
    }

    /// Where each layer's output goes (see [`Place`]). With `tap_storage`, a tapped layer writes into
    /// its tap array, and so does the layer before a tapped layer that runs in place; otherwise tapped
    /// outputs live in the working buffers like the others.
    fn plan(&self, taps: &[usize], last: usize, tap_storage: bool) -> Vec<Step> {
        let tap_of = |i: usize| {
            if tap_storage {
                taps.iter().position(|&t| t == i)
            } else {
                None
            }
        };
        let in_place: Vec<bool> = (0..=last)
            .map(|i| i > 0 && !taps.contains(&(i - 1)) && self.runs_in_place(i))
            .collect();
        let fuse = self.fusion(taps, last);
        // The layer that first writes each tap array with its tap's output (the layer before a tapped
        // layer that runs in place writes into it, and a fused step's head writes its last layer's
        // output); until then the array can hold other values.
        let writer: Vec<usize> = taps
            .iter()
            .enumerate()
            .map(|(j, &t)| match taps.iter().position(|&u| u == t) {
                Some(first) if first == j && t > 0 && in_place[t] => head_of(&fuse, t - 1),
                _ => head_of(&fuse, t),
            })
            .collect();
        let mut plan: Vec<Step> = Vec::with_capacity(last + 1);
        for i in 0..=last {
            let place = if in_place[i] {
                plan[i - 1].place
            } else if let Some(j) = tap_of(i) {
                Place::Tap(j)
            } else if let Some(j) = tap_of(i + 1).filter(|_| i < last && in_place[i + 1]) {
                Place::Tap(j)
            } else {
                // The value lives until the first layer after the in-place ones that follow reads it.
                let mut reader = i + 1;
                while reader <= last && in_place[reader] {
                    reader += 1;
                }
                let free = (0..taps.len())
                    .filter(|&k| tap_storage && writer[k] > reader)
                    .map(|k| (k, self.shapes[taps[k] + 1].len()));
                // A fused step writes its last layer's output while it reads its first layer's input.
                let first = (0..i).rev().find(|&h| fuse[h].spans(i - h)).unwrap_or(i);
                let input = (first > 0).then(|| (plan[first - 1].place, self.shapes[first].len()));
                scratch(free, input, self.shapes[i + 1].len())
            };
            plan.push(Step {
                place,
                in_place: in_place[i],
                fuse: fuse[i],
            });
        }
        plan
    }

    /// Which layers run the layers above them as one step ([`Layer::fuses`]): layer `i` takes the
    /// ReLU `i + 1` when that ReLU runs in place over `i`'s output and `i`'s own output is not tapped
    /// (a tap there wants the values before the ReLU, and its gradient would go in after the mask),
    /// and also a 2×2 average pooling `i + 2` when the ReLU is not tapped either (the full-size
    /// values are then never written).
    fn fusion(&self, taps: &[usize], last: usize) -> Vec<Fuse> {
        let mut fuse = vec![Fuse::No; last + 1];
        let mut i = 0;
        while i < last {
            // A head that ran over its own input would write its output over what it reads.
            let head_in_place = i > 0 && !taps.contains(&(i - 1)) && self.runs_in_place(i);
            let relu = !taps.contains(&i)
                && !head_in_place
                && self.layers[i + 1].is_relu()
                && self.runs_in_place(i + 1);
            let pool = relu
                && i + 2 <= last
                && !taps.contains(&(i + 1))
                && self.layers[i + 2].is_avg_pool_2x2()
                && self.shapes[i + 2].height >= 2
                && self.shapes[i + 2].width >= 2;
            let conv = &self.layers[i];
            let epilogue = if pool && conv.fuses(self.shapes[i], Epilogue::ReluAvgPool2) {
                Epilogue::ReluAvgPool2
            } else if relu && conv.fuses(self.shapes[i], Epilogue::Relu) {
                Epilogue::Relu
            } else {
                i += 1;
                continue;
            };
            fuse[i] = Fuse::Head(epilogue);
            let span = Fuse::Head(epilogue).span();
            fuse[i + 1..=i + span].fill(Fuse::Tail);
            i += span + 1;
        }
        fuse
    }

    /// The forward walk of `plan`: keeps the backward records when `keep`, fills the tap arrays of
    /// `outputs` (copying where a tapped output lives elsewhere) and hands every tapped output to `visit`.
    fn walk_forward<E: From<Error>>(
        &mut self,
        input: ArrayView3<'_, f32>,
        taps: &[usize],
        plan: &[Step],
        outputs: &mut [Array3<f32>],
        keep: bool,
        visit: &mut Visitor<'_, E>,
    ) -> std::result::Result<(), E> {
        grow(&mut self.work, work_length(plan, &self.shapes[1..]));
        let mut store = Storage {
            work: &mut self.work,
            taps: outputs,
        };
        for (i, step) in plan.iter().enumerate() {
            let layer = &self.layers[i];
            let saved = if keep { Some(&mut self.saved[i]) } else { None };
            let out_shape = self.shapes[i + 1];
            if let Fuse::Head(epilogue) = step.fuse {
                // The step's output: that of its last layer, where that layer's output goes.
                let top = i + step.fuse.span();
                let (place, shape) = (plan[top].place, self.shapes[top + 1]);
                if i == 0 {
                    let y = store.one(place, shape);
                    layer.forward_fused(input.view(), y, saved, epilogue)?;
                } else {
                    let (x, y) = store.pair(plan[i - 1].place, self.shapes[i], place, shape);
                    layer.forward_fused(x, y, saved, epilogue)?;
                }
            } else if step.fuse == Fuse::Tail {
                // The layer at the head of the step did this layer's work.
            } else if step.in_place {
                layer.forward_in_place(store.one(step.place, out_shape), saved)?;
            } else if i == 0 {
                layer.forward(input.view(), store.one(step.place, out_shape), saved)?;
            } else {
                let (x, y) = store.pair(plan[i - 1].place, self.shapes[i], step.place, out_shape);
                layer.forward(x, y, saved)?;
            }
            for (j, _) in taps.iter().enumerate().filter(|&(_, &t)| t == i) {
                if step.place != Place::Tap(j) && j < store.taps.len() {
                    let (src, dst) = store.pair(step.place, out_shape, Place::Tap(j), out_shape);
                    let mut dst = dst;
                    dst.assign(&src);
                }
                visit(j, store.one(step.place, out_shape).view())?;
            }
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
        self.check_grad_taps(taps, grad_taps.iter().map(|g| g.view()))?;
        let last = *taps
            .iter()
            .max()
            .expect("forward checked that taps is not empty");
        let fuse = self.fusion(taps, last);
        let max_len = self.shapes.iter().map(Shape::len).max().unwrap_or(0);
        grow(&mut self.work, 2 * max_len);
        let (mut cur, mut next) = self.work.split_at_mut(max_len);
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
            if fuse[i] == Fuse::Tail {
                // The head of the step reads this layer's output gradient as it is.
                continue;
            }
            let gi = ArrayViewMut3::from_shape(in_shape.dim(), &mut next[..in_shape.len()])
                .expect("buffer sized to the largest shape");
            if let Fuse::Head(epilogue) = fuse[i] {
                let top = self.shapes[i + fuse[i].span() + 1];
                let g = ArrayView3::from_shape(top.dim(), &cur[..top.len()])
                    .expect("buffer sized to the largest shape");
                self.layers[i].backward_input_fused(&self.saved[i], g, gi, false, epilogue)?;
            } else {
                self.layers[i].backward_input(&self.saved[i], g.view(), gi)?;
            }
            std::mem::swap(&mut cur, &mut next);
        }
        let in_shape = self.shapes[0];
        Ok(
            ArrayView3::from_shape(in_shape.dim(), &cur[..in_shape.len()])
                .expect("buffer sized to the largest shape")
                .to_owned(),
        )
    }
    /// As [`Network::backward`], but works in the gradient arrays themselves and writes the input
    /// gradient into `grad_input` (the input's shape, standard layout).
    ///
    /// The gradient arriving at a tapped layer is added into that tap's array, which then carries it on
    /// down, so the walk needs no copy of the tap gradients and fewer working buffers than
    /// [`Network::backward`]. The arrays' content is lost; they can take the tapped outputs of the next
    /// [`Network::forward_into`] (a caller may even compute each tap's gradient over its output).
    ///
    /// # Errors
    /// As [`Network::backward`]; [`Error::ShapeMismatch`] or [`Error::NotContiguous`] for `grad_input`
    /// or a gradient array that is not in standard layout.
    ///
    /// # Examples
    /// ```
    /// use ndarray::{Array1, Array3, Array4};
    /// use tensor_ops::{Conv2d, Layer, Network, Padding, Relu};
    /// let layers: Vec<Box<dyn Layer>> = vec![
    ///     Box::new(Conv2d::new("conv1", Array4::from_elem((4, 3, 3, 3), 0.1), Array1::zeros(4), [1, 1], Padding::uniform(1))?),
    ///     Box::new(Relu::new("relu1")),
    /// ];
    /// let mut net = Network::new(layers);
    /// let image = Array3::from_elem((3, 5, 5), 1.0_f32);
    /// let mut taps = Vec::new();
    /// net.forward_into(image.view(), &[1], &mut taps)?;
    /// let expected = net.backward(&[Array3::ones((4, 5, 5)).view()])?;
    /// taps[0].fill(1.0); // ∂(Σ relu1)/∂relu1, written over the output
    /// let mut grad = Array3::zeros((3, 5, 5));
    /// net.backward_in_place(&mut taps, grad.view_mut())?;
    /// assert_eq!(grad, expected);
    /// # Ok::<(), tensor_ops::Error>(())
    /// ```
    pub fn backward_in_place(
        &mut self,
        grad_taps: &mut [Array3<f32>],
        mut grad_input: ArrayViewMut3<'_, f32>,
    ) -> Result<()> {
        let taps = self.last_taps.clone().ok_or(Error::NoForwardPass)?;
        self.check_grad_taps(&taps, grad_taps.iter().map(|g| g.view()))?;
        for (j, g) in grad_taps.iter().enumerate() {
            if !g.is_standard_layout() {
                return Err(Error::NotContiguous {
                    layer: self.layers[taps[j]].name().to_owned(),
                    what: format!("grad_taps[{j}]"),
                });
            }
        }
        let first = self.layers[0].name();
        check_shape(first, "grad_input", self.shapes[0], Shape::of(&grad_input))?;
        check_contiguous(first, "grad_input", &grad_input)?;
        let plan = self.backward_plan(&taps);
        grow(&mut self.work, work_length(&plan, &self.shapes[1..]));
        let mut store = Storage {
            work: &mut self.work,
            taps: grad_taps,
        };
        for i in (0..plan.len()).rev() {
            let cur = plan[i].place;
            let out_shape = self.shapes[i + 1];
            for (j, _) in taps.iter().enumerate().filter(|&(_, &t)| t == i) {
                if cur != Place::Tap(j) {
                    let (g, mut sum) = store.pair(Place::Tap(j), out_shape, cur, out_shape);
                    sum += &g;
                }
            }
            let (layer, saved) = (&self.layers[i], &self.saved[i]);
            // Where the step's output gradient is: a fused step's, at its last layer's place.
            let top = i + plan[i].fuse.span();
            let (cur, out_shape) = (plan[top].place, self.shapes[top + 1]);
            let fused = |layer: &dyn Layer, dy, dx, add| match plan[i].fuse {
                Fuse::Head(epilogue) => layer.backward_input_fused(saved, dy, dx, add, epilogue),
                _ if add => layer.backward_input_add(saved, dy, dx),
                _ => layer.backward_input(saved, dy, dx),
            };
            if plan[i].fuse == Fuse::Tail {
                // The head of the step reads this layer's output gradient.
            } else if i == 0 {
                let dy = store.one(cur, out_shape);
                fused(layer.as_ref(), dy.view(), grad_input.view_mut(), false)?;
            } else if plan[i].in_place {
                layer.backward_input_in_place(saved, store.one(cur, out_shape))?;
            } else {
                let below = plan[i - 1].place;
                let (dy, dx) = store.pair(cur, out_shape, below, self.shapes[i]);
                fused(layer.as_ref(), dy, dx, taps.contains(&(i - 1)))?;
            }
        }
        Ok(())
    }

    /// Where the gradient with respect to each layer's output lives in [`Network::backward_in_place`]
    /// (`in_place`: the layer's input gradient is written over it).
    fn backward_plan(&self, taps: &[usize]) -> Vec<Step> {
        let last = *taps
            .iter()
            .max()
            .expect("forward checked that taps is not empty");
        let tap_of = |i: usize| taps.iter().position(|&t| t == i);
        let in_place: Vec<bool> = (0..=last)
            .map(|i| i > 0 && tap_of(i - 1).is_none() && self.runs_in_place(i))
            .collect();
        let fuse = self.fusion(taps, last);
        // The layer whose backward pass reads each tap array last (the gradient stays in it through
        // the layers below the tap that run in place, and a fused step's head reads its last layer's
        // gradient); above that layer the array is free.
        let reader: Vec<usize> = taps
            .iter()
            .enumerate()
            .map(|(j, &t)| {
                let mut r = t;
                while tap_of(t) == Some(j) && r > 0 && in_place[r] {
                    r -= 1;
                }
                head_of(&fuse, r)
            })
            .collect();
        let mut plan: Vec<Step> = fuse
            .into_iter()
            .map(|fuse| Step {
                place: Place::Work(0),
                in_place: false,
                fuse,
            })
            .collect();
        plan[last].place = Place::Tap(tap_of(last).expect("the deepest layer is tapped"));
        for i in (1..=last).rev() {
            plan[i].in_place = in_place[i];
            plan[i - 1].place = if in_place[i] {
                plan[i].place
            } else if let Some(j) = tap_of(i - 1) {
                Place::Tap(j)
            } else {
                let free = (0..taps.len())
                    .filter(|&k| reader[k] > i)
                    .map(|k| (k, self.shapes[taps[k] + 1].len()));
                // Layer i reads its step's output gradient: a fused step's is at its last layer.
                let top = i + plan[i].fuse.span();
                let input = Some((plan[top].place, self.shapes[top + 1].len()));
                scratch(free, input, self.shapes[i].len())
            };
        }
        plan
    }

    /// Whether layer `i` runs in place in this walk: it says it can, and its output has its input's
    /// shape (a layer that says so wrongly still runs, out of place).
    fn runs_in_place(&self, i: usize) -> bool {
        self.layers[i].runs_in_place() && self.shapes[i] == self.shapes[i + 1]
    }

    /// Checks the gradients handed to a backward pass against the taps of the last forward pass.
    fn check_grad_taps<'g>(
        &self,
        taps: &[usize],
        grad_taps: impl ExactSizeIterator<Item = ArrayView3<'g, f32>>,
    ) -> Result<()> {
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
                Shape::of(&g),
            )?;
        }
        Ok(())
    }

    /// A working buffer of at least `len` floats, free between passes: the network uses it during a
    /// forward or backward pass and keeps nothing in it across passes. A caller can use it between a
    /// [`Network::forward_into`] and the following backward pass (for example to compute the tap
    /// gradients) instead of holding memory of its own.
    pub fn workspace(&mut self, len: usize) -> &mut [f32] {
        grow(&mut self.work, len);
        &mut self.work[..len]
    }

    /// Frees the working buffers (they grow back on the next pass): after a pass on a larger input
    /// than the ones that follow, for example the style image's.
    pub fn release_buffers(&mut self) {
        self.work = Vec::new();
    }
}

/// Grows `buf` to at least `len` elements (never shrinks, so buffers are reused across passes).
fn grow(buf: &mut Vec<f32>, len: usize) {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
}

/// The geometry of a walk over bands of rows ([`Network::forward_visit_rows`]).
struct Bands<'g> {
    /// Whole-input shapes: `full[i]` is layer `i`'s input.
    full: &'g [Shape],
    windows: &'g [RowWindow],
    /// The product of the strides: band inputs start at multiples of it, so that each layer's
    /// windows fall where they fall in the whole pass.
    align: usize,
}

impl Bands<'_> {
    /// The rows `[r0, r1)` of each tap's output that the band of input rows `[a, b)` hands over:
    /// the band's share at each tap's scale (`a` is a multiple of `align`; the last band, `b` the
    /// input height, takes the rest).
    fn wanted(&self, taps: &[usize], (a, b): (usize, usize)) -> Vec<(usize, usize)> {
        let last_band = b == self.full[0].height;
        taps.iter()
            .map(|&t| {
                let scale: usize = self.windows[..=t].iter().map(|w| w.stride.max(1)).product();
                let h = self.full[t + 1].height;
                let r1 = if last_band { h } else { (b / scale).min(h) };
                ((a / scale).min(h), r1)
            })
            .collect()
    }

    /// The input rows that the wanted rows depend on, starting at a multiple of `align`; `None` when
    /// nothing is wanted.
    fn input_rows(&self, taps: &[usize], wanted: &[(usize, usize)]) -> Option<(usize, usize)> {
        let mut need: Option<(usize, usize)> = None;
        for (&t, &(mut r0, mut r1)) in taps.iter().zip(wanted) {
            if r0 >= r1 {
                continue;
            }
            for i in (0..=t).rev() {
                let w = self.windows[i];
                r0 = (r0 * w.stride).saturating_sub(w.pad_top);
                r1 = ((r1 - 1) * w.stride + w.kernel)
                    .saturating_sub(w.pad_top)
                    .min(self.full[i].height);
            }
            need = Some(need.map_or((r0, r1), |(n0, n1)| (n0.min(r0), n1.max(r1))));
        }
        need.map(|(n0, n1)| (n0 / self.align * self.align, n1))
    }

    /// For each layer's output (index `i + 1`; index 0 is the band input starting at row `i0`): the
    /// whole-pass row of the band's first row, and the whole-pass rows `[lo, hi)` the band computes
    /// as the whole pass does (the others read the band's padding where the whole pass reads data).
    fn offsets(&self, i0: usize, band: &[Shape]) -> Vec<(usize, usize, usize)> {
        let mut out = vec![(i0, i0, i0 + band[0].height)];
        for (i, w) in self.windows.iter().enumerate().take(band.len() - 1) {
            let (off_in, lo_in, hi_in) = out[i];
            let (h_in, h_out) = (self.full[i].height, self.full[i + 1].height);
            let off = off_in / w.stride.max(1);
            let end = (off + band[i + 1].height).min(h_out);
            // Row R reads rows [R·s − p, R·s − p + k): each must be computed, or padding of the whole input.
            let good = |r: usize| {
                let first = (r * w.stride) as isize - w.pad_top as isize;
                let past = first + w.kernel as isize;
                (lo_in == 0 || first >= lo_in as isize) && (hi_in == h_in || past <= hi_in as isize)
            };
            let lo = (off..end).find(|&r| good(r)).unwrap_or(end);
            let hi = (lo..end).find(|&r| !good(r)).unwrap_or(end);
            out.push((off, lo, hi));
        }
        out
    }
}

/// What a forward walk hands each tapped output to.
type Visitor<'v, E> = dyn FnMut(usize, ArrayView3<'_, f32>) -> std::result::Result<(), E> + 'v;

/// Where an activation or a gradient lives during a walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// The tap array `j` (the caller's output or gradient array): its tap's value, or, before the
    /// walk writes that (after it has read it, backward), another value that fits.
    Tap(usize),
    /// The working buffer, from this offset.
    Work(usize),
}

/// One layer's step in a walk: where its output (forward) or output gradient (backward) lives,
/// whether it runs in place over its input, and whether it is half of a fused pair.
#[derive(Debug, Clone, Copy)]
struct Step {
    place: Place,
    in_place: bool,
    fuse: Fuse,
}

/// A layer's part in a step of layers run as one ([`Layer::forward_fused`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fuse {
    /// Not fused.
    No,
    /// The first layer: it applies the epilogue's layers above it, and reads the gradient of the
    /// last one's output.
    Head(Epilogue),
    /// A layer of the epilogue: the head does its work.
    Tail,
}

impl Fuse {
    /// The number of layers above this one in its step (0 unless it is a head).
    fn span(self) -> usize {
        match self {
            Fuse::Head(Epilogue::Relu) => 1,
            Fuse::Head(Epilogue::ReluAvgPool2) => 2,
            Fuse::No | Fuse::Tail => 0,
        }
    }

    /// Whether this layer's step reaches `n` layers above it.
    fn spans(self, n: usize) -> bool {
        n > 0 && n <= self.span()
    }
}

/// Where a value of `len` floats goes, given the tap arrays that are free for it (index, length) and
/// the layer's input (place, length), which must not be overwritten: the smallest free tap array
/// that holds it, else the working buffer, at its start or, when that would overlap the input, after
/// the input.
fn scratch(
    free: impl Iterator<Item = (usize, usize)>,
    input: Option<(Place, usize)>,
    len: usize,
) -> Place {
    let busy = input.map(|(p, _)| p);
    let tap = free
        .filter(|&(k, cap)| cap >= len && busy != Some(Place::Tap(k)))
        .min_by_key(|&(k, cap)| (cap, k));
    match (tap, input) {
        (Some((k, _)), _) => Place::Tap(k),
        (None, Some((Place::Work(start), n))) if start < len && n > 0 => Place::Work(start + n),
        _ => Place::Work(0),
    }
}

/// The head of the fused step that layer `l` belongs to (`l` itself outside fused steps).
fn head_of(fuse: &[Fuse], l: usize) -> usize {
    if fuse[l] != Fuse::Tail {
        return l;
    }
    (0..l).rev().find(|&h| fuse[h].spans(l - h)).unwrap_or(l)
}

/// The length the working buffer needs for `plan` (`shapes[i]` the shape at step `i`): the places
/// written, that is every step's own outside fused steps and each fused step's last layer's (the
/// layers in between are never written).
fn work_length(plan: &[Step], shapes: &[Shape]) -> usize {
    plan.iter()
        .enumerate()
        .filter_map(|(i, step)| match step.fuse {
            Fuse::No => Some(i),
            Fuse::Head(_) => Some(i + step.fuse.span()),
            Fuse::Tail => None,
        })
        .map(|i| match plan[i].place {
            Place::Work(offset) => offset + shapes[i].len(),
            Place::Tap(_) => 0,
        })
        .max()
        .unwrap_or(0)
}

/// The buffers of a walk.
struct Storage<'s> {
    work: &'s mut [f32],
    taps: &'s mut [Array3<f32>],
}

impl Storage<'_> {
    /// The array of `shape` at `place`.
    fn one(&mut self, place: Place, shape: Shape) -> ArrayViewMut3<'_, f32> {
        match place {
            Place::Work(offset) => view_mut(&mut self.work[offset..], shape),
            Place::Tap(j) => view_mut(tap_slice(&mut self.taps[j]), shape),
        }
    }

    /// The array of `src_shape` at `src` to read and the one of `dst_shape` at `dst` to write (two
    /// places that do not overlap).
    fn pair(
        &mut self,
        src: Place,
        src_shape: Shape,
        dst: Place,
        dst_shape: Shape,
    ) -> (ArrayView3<'_, f32>, ArrayViewMut3<'_, f32>) {
        let Storage { work, taps } = self;
        match (src, dst) {
            (Place::Work(a), Place::Work(b)) => {
                let (la, lb) = (src_shape.len(), dst_shape.len());
                if a + la <= b {
                    let (x, y) = work.split_at_mut(b);
                    (view(&x[a..], src_shape), view_mut(y, dst_shape))
                } else {
                    assert!(
                        b + lb <= a,
                        "a layer never reads and writes overlapping buffers"
                    );
                    let (y, x) = work.split_at_mut(a);
                    (view(x, src_shape), view_mut(&mut y[b..], dst_shape))
                }
            }
            (Place::Work(a), Place::Tap(k)) => (
                view(&work[a..], src_shape),
                view_mut(tap_slice(&mut taps[k]), dst_shape),
            ),
            (Place::Tap(j), Place::Work(b)) => (
                view(tap_slice(&mut taps[j]), src_shape),
                view_mut(&mut work[b..], dst_shape),
            ),
            (Place::Tap(j), Place::Tap(k)) => {
                let [x, y] = taps
                    .get_disjoint_mut([j, k])
                    .expect("a layer reads and writes different tap arrays");
                (
                    view(tap_slice(x), src_shape),
                    view_mut(tap_slice(y), dst_shape),
                )
            }
        }
    }
}

/// The floats of a tap array (in standard layout: the walk made it, or checked it).
fn tap_slice(a: &mut Array3<f32>) -> &mut [f32] {
    a.as_slice_mut().expect("tap arrays are in standard layout")
}

/// The first `shape.len()` floats of `buf` as an array of `shape`.
fn view(buf: &[f32], shape: Shape) -> ArrayView3<'_, f32> {
    ArrayView3::from_shape(shape.dim(), &buf[..shape.len()])
        .expect("buffers are sized for their largest shape")
}

/// [`view`], writable.
fn view_mut(buf: &mut [f32], shape: Shape) -> ArrayViewMut3<'_, f32> {
    ArrayViewMut3::from_shape(shape.dim(), &mut buf[..shape.len()])
        .expect("buffers are sized for their largest shape")
}

#[cfg(test)]
mod tests {
    use ndarray::{Array1, Array3, Array4};

    use super::*;
    use crate::{AvgPool2d, Conv2d, Padding, Relu};

    /// VGG-19's layers to `relu5_1` (zero weights: only the shapes matter here).
    fn vgg19() -> Network {
        let mut layers: Vec<Box<dyn Layer>> = Vec::new();
        let mut c_in = 3;
        for (block, (convs, c)) in [(2, 64), (2, 128), (4, 256), (4, 512), (1, 512)]
            .into_iter()
            .enumerate()
        {
            for k in 0..convs {
                let name = format!("{}_{}", block + 1, k + 1);
                let w = Array4::zeros((c, c_in, 3, 3));
                layers.push(Box::new(
                    Conv2d::new(
                        format!("conv{name}"),
                        w,
                        Array1::zeros(c),
                        [1, 1],
                        Padding::uniform(1),
                    )
                    .unwrap(),
                ));
                layers.push(Box::new(Relu::new(format!("relu{name}"))));
                c_in = c;
            }
            if block < 4 {
                let pool =
                    AvgPool2d::new(format!("pool{}", block + 1), [2, 2], [2, 2], Padding::ZERO);
                layers.push(Box::new(pool.unwrap()));
            }
        }
        Network::new(layers)
    }

    /// With the six Gatys taps, the walk needs one working buffer of `conv2_1`'s output, half the
    /// largest activation, in both directions: `conv1_2`'s output (the largest) is never written, as
    /// `conv1_2`, `relu1_2` and `pool1` run as one step; the poolings' outputs and the deeper layers'
    /// values go into tap arrays not yet written (forward) or already read (backward), or beside each
    /// other in that buffer. (Before the fusion it was one buffer of `conv1_2`'s output.)
    #[test]
    fn vgg19_walk_needs_one_buffer_of_half_the_largest_activation() {
        let mut net = vgg19();
        let names = [
            "relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1",
        ];
        let taps: Vec<usize> = names.iter().map(|n| net.index_of(n).unwrap()).collect();
        let (h, w) = (48, 40);
        let x = Array3::zeros((3, h, w));
        let mut outs = Vec::new();
        net.forward_into(x.view(), &taps, &mut outs).unwrap();
        assert_eq!(net.work.len(), 128 * (h / 2) * (w / 2), "forward");
        let mut grad = Array3::zeros((3, h, w));
        net.backward_in_place(&mut outs, grad.view_mut()).unwrap();
        assert_eq!(net.work.len(), 128 * (h / 2) * (w / 2), "backward");
        let plan = net.plan(&taps, *taps.iter().max().unwrap(), true);
        let pool1 = net.index_of("pool1").unwrap();
        assert_eq!(
            plan[pool1].place,
            Place::Tap(2),
            "pool1's output waits in relu3_1's array"
        );
    }
}
