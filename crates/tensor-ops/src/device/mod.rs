//! A device-resident backend: activations, gradients and costs stay in device memory for a whole
//! iteration, and only what the caller asks for crosses to the host.
//!
//! The seam is the [`Device`] trait: device buffers, copies, a row-major GEMM and the launch of one
//! of the [`Kernel`]s in [`KERNEL_SOURCE`]. Everything above it — [`DeviceNetwork`]'s forward and backward
//! walks, the launch arguments, the buffer sizes — is written once and runs unchanged on every
//! implementation:
//!
//! - `CudaDevice` (feature `cuda`): cuBLAS for the GEMMs, the kernels compiled by NVRTC at start-up;
//! - a CPU emulator (the test crate `device-emu` of the source repository), which compiles
//!   [`KERNEL_SOURCE`] as C++ and runs every GPU thread of a launch on the CPU, so that the kernels and
//!   this module are tested against the CPU layers on machines without a GPU.
//!
//! Kernels are grid-stride loops, correct for any grid and block size, except the reductions
//! ([`Kernel::needs_full_block`]), which need blocks of exactly [`BLOCK`] threads. No two threads write
//! one element and nothing is atomic: a reduction writes one partial sum per block into a caller's
//! scratch (`partials`, at least [`MAX_REDUCTION_BLOCKS`] long), and the implementation then launches
//! `nst_finish_sum` (one block), which adds them in a fixed order into the accumulator. So every result
//! is the same from run to run on one device; across devices (or emulator launch shapes) the costs
//! differ in their last bits, as the grid of a reduction does.
//!
//! ## The API, by audience
//! - Running layers on a device: [`DeviceNetwork`] over any [`Device`], and `cuda::CudaDevice`.
//! - Computing on device buffers next to the network (costs, an optimizer step): [`Device::launch`] of a
//!   [`Kernel`] (with [`ConvDims`] and [`AdamScalars`] arguments), [`Device::gemm`] of a [`GemmCall`].
//!   Besides the layers' kernels, the set holds a few numeric primitives (squared differences with their
//!   sum, a non-finite count, a squared total-variation stencil, an Adam update); their weights and
//!   schedules come from the caller.
//! - Implementing a [`Device`]: compile [`KERNEL_SOURCE`] (every function in [`Kernel::FUNCTIONS`]),
//!   call [`Kernel::check`] and [`GemmCall::check`] before every launch and GEMM, size grids from
//!   [`Kernel::work`], and launch the reductions ([`Kernel::needs_full_block`]) on the grid
//!   [`reduction_grid`] gives, followed by `nst_finish_sum`.
//!
//! All of these are supported API. The kernels and their argument structs change together with
//! [`KERNEL_SOURCE`], so a new kernel adds a variant to the `#[non_exhaustive]` [`Kernel`].

mod network;

#[cfg(feature = "cuda")]
#[cfg_attr(docsrs, doc(cfg(feature = "cuda")))]
pub mod cuda;

pub use network::DeviceNetwork;

use crate::{Error, Result, Shape};

/// The CUDA C source of every kernel (compiled by NVRTC for the GPU, and as C++ by the emulator).
pub const KERNEL_SOURCE: &str = include_str!("kernels.cu");

/// Threads per block that the reduction kernels are written for (`NST_BLOCK` in [`KERNEL_SOURCE`]).
pub const BLOCK: u32 = 256;

/// Most blocks a reduction is launched with, and so the length its `partials` scratch needs.
pub const MAX_REDUCTION_BLOCKS: u32 = 1024;

/// The grid of a reduction over `work` items: one block per [`BLOCK`] items, at least 1, at most `max_blocks`
/// (itself at most [`MAX_REDUCTION_BLOCKS`]).
pub fn reduction_grid(work: u64, max_blocks: u32) -> u32 {
    let cap = u64::from(max_blocks.clamp(1, MAX_REDUCTION_BLOCKS));
    // Lossless: at most MAX_REDUCTION_BLOCKS.
    work.div_ceil(u64::from(BLOCK)).clamp(1, cap) as u32
}

/// Geometry of a convolution or pooling window on a `[C, H, W]` input, as the kernels take it
/// (`struct ConvDims` in [`KERNEL_SOURCE`]; same field order, all `i32`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConvDims {
    /// Input channels.
    pub c: i32,
    /// Input height.
    pub h: i32,
    /// Input width.
    pub w: i32,
    /// Window height.
    pub kh: i32,
    /// Window width.
    pub kw: i32,
    /// Vertical stride.
    pub sy: i32,
    /// Horizontal stride.
    pub sx: i32,
    /// Top padding.
    pub pt: i32,
    /// Left padding.
    pub pl: i32,
    /// Output height.
    pub oh: i32,
    /// Output width.
    pub ow: i32,
}

impl ConvDims {
    /// The kernels' view of a window of `kernel` `[kh, kw]`, `stride`, top/left padding `pad` on `input`
    /// giving `output` (whose height and width already account for the bottom/right padding).
    ///
    /// # Errors
    /// [`Error::TooLarge`] naming `layer` when a dimension does not fit `i32`.
    pub fn new(
        layer: &str,
        input: Shape,
        output: Shape,
        kernel: [usize; 2],
        stride: [usize; 2],
        pad_top_left: [usize; 2],
    ) -> Result<Self> {
        let too_large = || Error::TooLarge {
            layer: layer.to_owned(),
            input,
        };
        let i = |v: usize| i32::try_from(v).map_err(|_| too_large());
        Ok(ConvDims {
            c: i(input.channels)?,
            h: i(input.height)?,
            w: i(input.width)?,
            kh: i(kernel[0])?,
            kw: i(kernel[1])?,
            sy: i(stride[0])?,
            sx: i(stride[1])?,
            pt: i(pad_top_left[0])?,
            pl: i(pad_top_left[1])?,
            oh: i(output.height)?,
            ow: i(output.width)?,
        })
    }
}

/// The scalars of one Adam step as the kernel takes them (`struct AdamScalars` in [`KERNEL_SOURCE`]).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AdamScalars {
    /// `β₁`.
    pub beta1: f32,
    /// `β₂`.
    pub beta2: f32,
    /// `α`.
    pub learning_rate: f32,
    /// `ε` (the paper's `ε̂` in the TensorFlow form).
    pub epsilon: f32,
    /// `1 − β₁ᵗ`.
    pub c1: f32,
    /// `1 − β₂ᵗ`.
    pub c2: f32,
    /// `α·√(1 − β₂ᵗ)/(1 − β₁ᵗ)`.
    pub alpha_t: f32,
    /// 0: Algorithm 1 (`m̂ = m/c1`, `v̂ = v/c2`, `x −= α·m̂/(√v̂ + ε)`); 1: TensorFlow 1's
    /// `m += (g − m)(1 − β₁)`, `v += (g² − v)(1 − β₂)`, `x −= m·αₜ/(√v + ε)`.
    pub form: i32,
}

/// One launch of a kernel of [`KERNEL_SOURCE`] with its arguments. `n` counts elements; every buffer
/// must hold at least the elements the kernel touches (the callers in this crate size them so).
#[derive(Debug)]
#[non_exhaustive]
pub enum Kernel<'a, B, A> {
    /// `cols ← im2col(x)`: `cols[(c·KH + i)·KW + j, y·OW + x] = x[c, y·sy − pt + i, x·sx − pl + j]`, 0 outside.
    Im2col {
        /// `[C, H, W]` input.
        x: &'a B,
        /// `[C·KH·KW, OH·OW]` output.
        cols: &'a mut B,
        /// Geometry.
        d: ConvDims,
    },
    /// `dx ← col2im(cols)`, the adjoint of [`Kernel::Im2col`] (overwrites `dx`).
    Col2im {
        /// `[C·KH·KW, OH·OW]`.
        cols: &'a B,
        /// `[C, H, W]`.
        dx: &'a mut B,
        /// Geometry.
        d: ConvDims,
    },
    /// `y[c, p] += bias[c]` for `y` of `n` elements in rows of `plane`.
    BiasAdd {
        /// `[C, plane]`.
        y: &'a mut B,
        /// `[C]`.
        bias: &'a B,
        /// Elements per channel.
        plane: i64,
        /// `C·plane`.
        n: i64,
    },
    /// `y ← max(x, 0)`.
    ReluForward {
        /// Input.
        x: &'a B,
        /// Output.
        y: &'a mut B,
        /// Elements.
        n: i64,
    },
    /// `dx ← dy · [y > 0]`, with `y` the forward output.
    ReluBackward {
        /// Forward output.
        y: &'a B,
        /// Gradient at the output.
        dy: &'a B,
        /// Gradient at the input (overwritten).
        dx: &'a mut B,
        /// Elements.
        n: i64,
    },
    /// Max over each window clipped to the input.
    MaxPoolForward {
        /// `[C, H, W]`.
        x: &'a B,
        /// `[C, OH, OW]`.
        y: &'a mut B,
        /// Geometry.
        d: ConvDims,
    },
    /// Routes each output gradient to its window's first maximum (recomputed from `x`; overwrites `dx`).
    MaxPoolBackward {
        /// The forward input.
        x: &'a B,
        /// `[C, OH, OW]`.
        dy: &'a B,
        /// `[C, H, W]`.
        dx: &'a mut B,
        /// Geometry.
        d: ConvDims,
    },
    /// Mean over each window clipped to the input.
    AvgPoolForward {
        /// `[C, H, W]`.
        x: &'a B,
        /// `[C, OH, OW]`.
        y: &'a mut B,
        /// Geometry.
        d: ConvDims,
    },
    /// Spreads each output gradient evenly over its clipped window (overwrites `dx`).
    AvgPoolBackward {
        /// `[C, OH, OW]`.
        dy: &'a B,
        /// `[C, H, W]`.
        dx: &'a mut B,
        /// Geometry.
        d: ConvDims,
    },
    /// `y += a·x`.
    Axpy {
        /// Scale.
        a: f32,
        /// Added.
        x: &'a B,
        /// Accumulated into.
        y: &'a mut B,
        /// Elements.
        n: i64,
    },
    /// `out ← a − b` and `acc[slot] += Σ (a − b)²` (differences and sum in f64).
    SubSumSq {
        /// Minuend.
        a: &'a B,
        /// Subtrahend.
        b: &'a B,
        /// Difference (overwritten).
        out: &'a mut B,
        /// Accumulators.
        acc: &'a mut A,
        /// Which accumulator.
        slot: usize,
        /// Scratch of at least [`MAX_REDUCTION_BLOCKS`] partial sums.
        partials: &'a mut A,
        /// Elements.
        n: i64,
    },
    /// `acc[slot] +=` the number of NaN and infinite values among the first `n` of `x`.
    CountNonFinite {
        /// Values.
        x: &'a B,
        /// Accumulators.
        acc: &'a mut A,
        /// Which accumulator.
        slot: usize,
        /// Scratch of at least [`MAX_REDUCTION_BLOCKS`] partial sums.
        partials: &'a mut A,
        /// Elements.
        n: i64,
    },
    /// Squared total variation of a `[C, H, W]` image into `acc[slot]`, and `grad += weight·∂TV/∂x`.
    TvSquared {
        /// The image.
        x: &'a B,
        /// Gradient accumulated into.
        grad: &'a mut B,
        /// Accumulators.
        acc: &'a mut A,
        /// Which accumulator.
        slot: usize,
        /// Scratch of at least [`MAX_REDUCTION_BLOCKS`] partial sums.
        partials: &'a mut A,
        /// Weight of the gradient.
        weight: f32,
        /// Channels, height, width.
        shape: [i32; 3],
    },
    /// One Adam step on `x` with moments `m`, `v` and gradient `g`, in the expression order of
    /// `nst-optim`'s `Adam::step` for the form in `s`.
    Adam {
        /// Parameters.
        x: &'a mut B,
        /// Gradient.
        g: &'a B,
        /// First moments.
        m: &'a mut B,
        /// Second moments.
        v: &'a mut B,
        /// The step's scalars.
        s: AdamScalars,
        /// Elements.
        n: i64,
    },
}

impl<B, A> Kernel<'_, B, A> {
    /// The kernel's function name in [`KERNEL_SOURCE`].
    pub fn function(&self) -> &'static str {
        match self {
            Kernel::Im2col { .. } => "nst_im2col",
            Kernel::Col2im { .. } => "nst_col2im",
            Kernel::BiasAdd { .. } => "nst_bias_add",
            Kernel::ReluForward { .. } => "nst_relu_fwd",
            Kernel::ReluBackward { .. } => "nst_relu_bwd",
            Kernel::MaxPoolForward { .. } => "nst_max_pool_fwd",
            Kernel::MaxPoolBackward { .. } => "nst_max_pool_bwd",
            Kernel::AvgPoolForward { .. } => "nst_avg_pool_fwd",
            Kernel::AvgPoolBackward { .. } => "nst_avg_pool_bwd",
            Kernel::Axpy { .. } => "nst_axpy",
            Kernel::SubSumSq { .. } => "nst_sub_sumsq",
            Kernel::CountNonFinite { .. } => "nst_count_nonfinite",
            Kernel::TvSquared { .. } => "nst_tv_squared",
            Kernel::Adam { .. } => "nst_adam",
        }
    }

    /// Every kernel function name, for compiling and loading them all at start-up (the last one,
    /// `nst_finish_sum`, is launched by the implementations after each reduction).
    pub const FUNCTIONS: [&'static str; 15] = [
        "nst_im2col",
        "nst_col2im",
        "nst_bias_add",
        "nst_relu_fwd",
        "nst_relu_bwd",
        "nst_max_pool_fwd",
        "nst_max_pool_bwd",
        "nst_avg_pool_fwd",
        "nst_avg_pool_bwd",
        "nst_axpy",
        "nst_sub_sumsq",
        "nst_count_nonfinite",
        "nst_tv_squared",
        "nst_adam",
        "nst_finish_sum",
    ];

    /// Number of work items (loop iterations of the grid-stride loop), for sizing the grid.
    pub fn work(&self) -> u64 {
        // Negative fields count as 0 and products saturate: an implementation checks the geometry
        // before launching, and this must not overflow first.
        let u = |v: i32| u64::try_from(v).unwrap_or(0);
        let prod = |vs: &[i32]| vs.iter().fold(1_u64, |p, &v| p.saturating_mul(u(v)));
        let out = |d: &ConvDims| prod(&[d.c, d.oh, d.ow]);
        let inp = |d: &ConvDims| prod(&[d.c, d.h, d.w]);
        let n = |n: &i64| u64::try_from(*n).unwrap_or(0);
        match self {
            Kernel::Im2col { d, .. } => out(d).saturating_mul(prod(&[d.kh, d.kw])),
            Kernel::Col2im { d, .. }
            | Kernel::MaxPoolBackward { d, .. }
            | Kernel::AvgPoolBackward { d, .. } => inp(d),
            Kernel::MaxPoolForward { d, .. } | Kernel::AvgPoolForward { d, .. } => out(d),
            Kernel::BiasAdd { n: e, .. }
            | Kernel::ReluForward { n: e, .. }
            | Kernel::ReluBackward { n: e, .. }
            | Kernel::Axpy { n: e, .. }
            | Kernel::SubSumSq { n: e, .. }
            | Kernel::CountNonFinite { n: e, .. }
            | Kernel::Adam { n: e, .. } => n(e),
            Kernel::TvSquared { shape, .. } => prod(shape),
        }
    }

    /// Checks, before a launch, everything that could make the kernel touch memory outside its buffers:
    /// every buffer holds the elements the kernel indexes (`len` and `acc_len` give a buffer's length),
    /// an accumulator slot exists, the `partials` scratch holds [`MAX_REDUCTION_BLOCKS`] sums, and a
    /// window geometry is non-negative, has strides ≥ 1, keeps its `int` indices below 2³¹ and (for
    /// pooling) has every window overlap the input. Every [`Device`] implementation calls it.
    ///
    /// # Errors
    /// [`Error::Device`] naming the kernel and what is wrong.
    pub fn check(&self, len: impl Fn(&B) -> usize, acc_len: impl Fn(&A) -> usize) -> Result<()> {
        let op = self.function();
        let n = |n: &i64| product(op, &[*n]);
        let need = |pairs: &[(usize, u64)]| check_lens(op, pairs);
        let reduction = |acc: &A, slot: usize, partials: &A| {
            need(&[
                (acc_len(acc), (slot as u64).saturating_add(1)),
                (acc_len(partials), u64::from(MAX_REDUCTION_BLOCKS)),
            ])
        };
        match self {
            Kernel::Im2col { x, cols, d } => {
                let (input, output) = check_dims(op, d, false)?;
                let rows = product(op, &[i64::from(d.kh), i64::from(d.kw)])?;
                let cols_len = output
                    .checked_mul(rows)
                    .ok_or_else(|| device_error(op, "element count overflows u64"))?;
                need(&[(len(x), input), (len(cols), cols_len)])
            }
            Kernel::Col2im { cols, dx, d } => {
                let (input, output) = check_dims(op, d, false)?;
                let rows = product(op, &[i64::from(d.kh), i64::from(d.kw)])?;
                let cols_len = output
                    .checked_mul(rows)
                    .ok_or_else(|| device_error(op, "element count overflows u64"))?;
                need(&[(len(cols), cols_len), (len(dx), input)])
            }
            Kernel::BiasAdd {
                y,
                bias,
                plane,
                n: e,
            } => {
                if *plane < 1 {
                    return Err(device_error(op, format!("plane of {plane} elements")));
                }
                let e = n(e)?;
                need(&[(len(y), e), (len(bias), e.div_ceil(n(plane)?))])
            }
            Kernel::ReluForward { x, y, n: e } => {
                let e = n(e)?;
                need(&[(len(x), e), (len(y), e)])
            }
            Kernel::ReluBackward { y, dy, dx, n: e } => {
                let e = n(e)?;
                need(&[(len(y), e), (len(dy), e), (len(dx), e)])
            }
            Kernel::MaxPoolForward { x, y, d } | Kernel::AvgPoolForward { x, y, d } => {
                let (input, output) = check_dims(op, d, true)?;
                need(&[(len(x), input), (len(y), output)])
            }
            Kernel::MaxPoolBackward { x, dy, dx, d } => {
                let (input, output) = check_dims(op, d, true)?;
                need(&[(len(x), input), (len(dy), output), (len(dx), input)])
            }
            Kernel::AvgPoolBackward { dy, dx, d } => {
                let (input, output) = check_dims(op, d, true)?;
                need(&[(len(dy), output), (len(dx), input)])
            }
            Kernel::Axpy { x, y, n: e, .. } => {
                let e = n(e)?;
                need(&[(len(x), e), (len(y), e)])
            }
            Kernel::SubSumSq {
                a,
                b,
                out,
                acc,
                slot,
                partials,
                n: e,
            } => {
                let e = n(e)?;
                need(&[(len(a), e), (len(b), e), (len(out), e)])?;
                reduction(acc, *slot, partials)
            }
            Kernel::CountNonFinite {
                x,
                acc,
                slot,
                partials,
                n: e,
            } => {
                need(&[(len(x), n(e)?)])?;
                reduction(acc, *slot, partials)
            }
            Kernel::TvSquared {
                x,
                grad,
                acc,
                slot,
                partials,
                shape,
                ..
            } => {
                let e = product(op, &shape.map(i64::from))?;
                if shape.iter().any(|&v| v > i32::MAX / 2) {
                    return Err(device_error(op, format!("shape {shape:?} too large")));
                }
                need(&[(len(x), e), (len(grad), e)])?;
                reduction(acc, *slot, partials)
            }
            Kernel::Adam {
                x, g, m, v, n: e, ..
            } => {
                let e = n(e)?;
                need(&[(len(x), e), (len(g), e), (len(m), e), (len(v), e)])
            }
        }
    }

    /// Whether the kernel reduces within a block and so must be launched with exactly [`BLOCK`] threads per block.
    pub fn needs_full_block(&self) -> bool {
        matches!(
            self,
            Kernel::SubSumSq { .. } | Kernel::CountNonFinite { .. } | Kernel::TvSquared { .. }
        )
    }
}

/// A row-major GEMM `C[m×n] ← α·op(A)·op(B) + β·C` on device buffers, where `op(A)` is `m×k` (A is
/// stored `m×k`, or `k×m` when `trans_a`) and `op(B)` is `k×n` (stored `k×n`, or `n×k` when `trans_b`).
/// With `β = 0`, `C` is not read.
#[derive(Debug)]
pub struct GemmCall<'a, B> {
    /// Whether A is stored transposed.
    pub trans_a: bool,
    /// Whether B is stored transposed.
    pub trans_b: bool,
    /// Rows of C.
    pub m: usize,
    /// Columns of C.
    pub n: usize,
    /// Inner dimension.
    pub k: usize,
    /// α.
    pub alpha: f32,
    /// A.
    pub a: &'a B,
    /// B.
    pub b: &'a B,
    /// β.
    pub beta: f32,
    /// C (its first `m·n` elements).
    pub c: &'a mut B,
}

impl<B> GemmCall<'_, B> {
    /// Checks, before the GEMM is queued, that A, B and C hold the `m·k`, `k·n` and `m·n` floats the
    /// call reads and writes (`len` gives a buffer's length). Every [`Device`] implementation calls it.
    ///
    /// # Errors
    /// [`Error::Device`] naming the operation when a buffer is too short.
    ///
    /// # Examples
    /// ```
    /// use tensor_ops::device::GemmCall;
    /// let (a, b, mut c) = (vec![0.0_f32; 6], vec![0.0_f32; 12], vec![0.0_f32; 8]);
    /// let call = GemmCall { trans_a: false, trans_b: false, m: 2, n: 4, k: 3, alpha: 1.0, a: &a, b: &b, beta: 0.0, c: &mut c };
    /// assert!(call.check(Vec::len).is_ok());
    /// let short = GemmCall { k: 4, ..call }; // A would need 8 floats
    /// assert!(short.check(Vec::len).is_err());
    /// ```
    pub fn check(&self, len: impl Fn(&B) -> usize) -> Result<()> {
        let (m, n, k) = (self.m as u64, self.n as u64, self.k as u64);
        check_lens(
            "gemm",
            &[
                (len(self.a), m.saturating_mul(k)),
                (len(self.b), k.saturating_mul(n)),
                (len(self.c), m.saturating_mul(n)),
            ],
        )
    }
}

/// What a device-resident backend provides: f32 buffers, f64 accumulators, copies, a GEMM and the
/// kernels of [`KERNEL_SOURCE`]. Work is queued in order on one stream; `download*` waits for it.
///
/// Buffers are addressed from their start: an operation on `n` elements touches the first `n`.
pub trait Device {
    /// A device buffer of `f32`.
    type Buf;
    /// A device buffer of `f64` accumulators.
    type Acc;

    /// A short name (`cuda`, `emulator`).
    fn name(&self) -> &'static str;

    /// A zeroed buffer of `len` floats.
    ///
    /// # Errors
    /// [`Error::Device`] when the device is out of memory or fails.
    fn alloc(&self, len: usize) -> Result<Self::Buf>;

    /// A zeroed buffer of `len` f64 accumulators.
    ///
    /// # Errors
    /// As [`Device::alloc`].
    fn alloc_acc(&self, len: usize) -> Result<Self::Acc>;

    /// Number of floats in `buf`.
    fn len(&self, buf: &Self::Buf) -> usize;

    /// Copies `src` into the start of `dst`.
    ///
    /// # Errors
    /// [`Error::Device`] when `src` is longer than `dst` or the copy fails.
    fn upload(&self, src: &[f32], dst: &mut Self::Buf) -> Result<()>;

    /// Copies the start of `src` into `dst`, after all queued work.
    ///
    /// # Errors
    /// [`Error::Device`] when `dst` is longer than `src` or the copy fails.
    fn download(&self, src: &Self::Buf, dst: &mut [f32]) -> Result<()>;

    /// Copies the accumulators into `dst` (same length), after all queued work.
    ///
    /// # Errors
    /// [`Error::Device`] when the lengths differ or the copy fails.
    fn download_acc(&self, src: &Self::Acc, dst: &mut [f64]) -> Result<()>;

    /// Copies the first `len` floats of `src` into `dst` on the device.
    ///
    /// # Errors
    /// [`Error::Device`] when a buffer is shorter than `len` or the copy fails.
    fn copy(&self, src: &Self::Buf, dst: &mut Self::Buf, len: usize) -> Result<()>;

    /// Zeroes the first `len` floats of `buf`.
    ///
    /// # Errors
    /// [`Error::Device`] when `buf` is shorter than `len` or the device fails.
    fn zero(&self, buf: &mut Self::Buf, len: usize) -> Result<()>;

    /// Zeroes every accumulator.
    ///
    /// # Errors
    /// [`Error::Device`] when the device fails.
    fn zero_acc(&self, acc: &mut Self::Acc) -> Result<()>;

    /// Queues a GEMM.
    ///
    /// # Errors
    /// [`Error::Device`] when a buffer is too short, a dimension does not fit the library, or the call fails.
    fn gemm(&self, call: GemmCall<'_, Self::Buf>) -> Result<()>;

    /// Queues a kernel launch.
    ///
    /// # Errors
    /// [`Error::Device`] when the launch fails.
    fn launch(&self, kernel: Kernel<'_, Self::Buf, Self::Acc>) -> Result<()>;
}

/// An [`Error::Device`] of `op` with `message`.
pub(crate) fn device_error(op: &'static str, message: impl Into<String>) -> Error {
    Error::Device {
        op,
        message: message.into(),
    }
}

/// Fails with [`too_short`] unless each `(buffer length, elements needed)` pair has enough elements.
pub(crate) fn check_lens(op: &'static str, pairs: &[(usize, u64)]) -> Result<()> {
    for &(len, needed) in pairs {
        if (len as u64) < needed {
            let needed = usize::try_from(needed).unwrap_or(usize::MAX);
            return Err(too_short(op, needed, len));
        }
    }
    Ok(())
}

/// The product of non-negative `dims`, or [`Error::Device`] for a negative one or an overflow.
fn product(op: &'static str, dims: &[i64]) -> Result<u64> {
    dims.iter().try_fold(1u64, |acc, &d| {
        let d =
            u64::try_from(d).map_err(|_| device_error(op, format!("negative dimension {d}")))?;
        acc.checked_mul(d)
            .ok_or_else(|| device_error(op, "element count overflows u64"))
    })
}

/// Checks the geometry of a window kernel, so that no index the kernel computes overflows its `int`s
/// or leaves its buffers; `pool` also requires every window to overlap the input (the pooling kernels
/// read the first element of each clipped window). Returns the elements of the input `[C, H, W]` and
/// of the output `[C, OH, OW]`.
fn check_dims(op: &'static str, d: &ConvDims, pool: bool) -> Result<(u64, u64)> {
    let bad = |what: &str| device_error(op, format!("{what} in {d:?}"));
    let fields = [
        d.c, d.h, d.w, d.kh, d.kw, d.sy, d.sx, d.pt, d.pl, d.oh, d.ow,
    ];
    if fields.iter().any(|&v| v < 0) {
        return Err(bad("negative dimension"));
    }
    if d.sy < 1 || d.sx < 1 {
        return Err(bad("zero stride"));
    }
    let [h, w, kh, kw, sy, sx, pt, pl, oh, ow] =
        [d.h, d.w, d.kh, d.kw, d.sy, d.sx, d.pt, d.pl, d.oh, d.ow].map(i64::from);
    let int_max = i64::from(i32::MAX);
    // Plane indices (`r·W + c`, `oy·OW + ox`) and window coordinates (`oy·sy − pt + i`, `iy + pt`) are `int`s.
    if h * w > int_max
        || oh * ow > int_max
        || oh * sy + kh + h + pt > int_max
        || ow * sx + kw + w + pl > int_max
    {
        return Err(bad("a plane or window index overflows i32"));
    }
    if pool && oh > 0 && ow > 0 {
        // Window rows [oy·sy − pt, oy·sy − pt + kh) for oy in 0..oh meet [0, h) iff these hold (sy ≥ 1).
        let rows = h > 0 && kh > pt && (oh - 1) * sy - pt < h;
        let cols = w > 0 && kw > pl && (ow - 1) * sx - pl < w;
        if !rows || !cols {
            return Err(bad("a pooling window lies outside the input"));
        }
    }
    let c = i64::from(d.c);
    Ok((product(op, &[c, h, w])?, product(op, &[c, oh, ow])?))
}

/// The error for a buffer shorter than an operation needs.
fn too_short(op: &'static str, needed: usize, len: usize) -> Error {
    Error::Device {
        op,
        message: format!("buffer of {len} elements, {needed} needed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_checks_refuse_what_could_corrupt_memory() {
        let ok = ConvDims {
            c: 2,
            h: 4,
            w: 4,
            kh: 2,
            kw: 2,
            sy: 2,
            sx: 2,
            pt: 0,
            pl: 0,
            oh: 2,
            ow: 2,
        };
        assert_eq!(check_dims("t", &ok, true).unwrap(), (32, 8));
        for bad in [
            ConvDims { sy: 0, ..ok },
            ConvDims { c: -1, ..ok },
            ConvDims {
                h: 70_000,
                w: 70_000,
                ..ok
            },
            ConvDims { oh: 5, ..ok }, // the last window starts below the input
            ConvDims { pt: 2, ..ok }, // the first window lies above the input
        ] {
            assert!(check_dims("t", &bad, true).is_err(), "{bad:?}");
        }
        assert!(check_lens("t", &[(3, 4)]).is_err());
        assert!(check_lens("t", &[(4, 4)]).is_ok());
        assert!(product("t", &[i64::MAX, 4]).is_err());
        assert!(product("t", &[-1]).is_err());
    }

    type K<'a> = Kernel<'a, Vec<f32>, Vec<f64>>;

    #[test]
    fn kernel_check_sizes_every_buffer() {
        let len = |v: &Vec<f32>| v.len();
        let acc_len = |v: &Vec<f64>| v.len();
        let d = ConvDims {
            c: 2,
            h: 4,
            w: 4,
            kh: 3,
            kw: 3,
            sy: 1,
            sx: 1,
            pt: 1,
            pl: 1,
            oh: 4,
            ow: 4,
        };
        let (x, mut cols) = (vec![0.0; 32], vec![0.0; 2 * 9 * 16]);
        assert!(
            K::Im2col {
                x: &x,
                cols: &mut cols,
                d
            }
            .check(len, acc_len)
            .is_ok()
        );
        let mut short = vec![0.0; 2 * 9 * 16 - 1];
        let err = K::Im2col {
            x: &x,
            cols: &mut short,
            d,
        }
        .check(len, acc_len)
        .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Device {
                    op: "nst_im2col",
                    ..
                }
            ),
            "{err}"
        );
        let (a, mut out) = (vec![0.0; 10], vec![0.0; 10]);
        let (mut acc, mut partials) = (vec![0.0; 2], vec![0.0; MAX_REDUCTION_BLOCKS as usize]);
        let ok = K::SubSumSq {
            a: &a,
            b: &a,
            out: &mut out,
            acc: &mut acc,
            slot: 1,
            partials: &mut partials,
            n: 10,
        };
        assert!(ok.check(len, acc_len).is_ok());
        let no_slot = K::SubSumSq {
            a: &a,
            b: &a,
            out: &mut out,
            acc: &mut acc,
            slot: 2,
            partials: &mut partials,
            n: 10,
        };
        assert!(no_slot.check(len, acc_len).is_err());
        let mut few = vec![0.0; 3];
        let few_partials = K::SubSumSq {
            a: &a,
            b: &a,
            out: &mut out,
            acc: &mut acc,
            slot: 0,
            partials: &mut few,
            n: 10,
        };
        assert!(few_partials.check(len, acc_len).is_err());
        let negative = K::Axpy {
            a: 1.0,
            x: &a,
            y: &mut out,
            n: -1,
        };
        assert!(negative.check(len, acc_len).is_err());
    }

    /// Every other kind: exact buffers pass, one element short fails, naming the kernel.
    #[test]
    fn kernel_check_covers_every_kind() {
        let len = |v: &Vec<f32>| v.len();
        let acc_len = |v: &Vec<f64>| v.len();
        let d = ConvDims {
            c: 2,
            h: 5,
            w: 4,
            kh: 2,
            kw: 2,
            sy: 2,
            sx: 2,
            pt: 0,
            pl: 0,
            oh: 2,
            ow: 2,
        };
        let (input, output) = (2 * 5 * 4, 2 * 2 * 2);
        let bufs = |n: usize, short: bool| vec![0.0_f32; if short { n - 1 } else { n }];
        let mut accs = (
            vec![0.0_f64; 1],
            vec![0.0_f64; MAX_REDUCTION_BLOCKS as usize],
        );
        for short in [false, true] {
            let (x, mut y) = (bufs(input, false), bufs(output, short));
            let r = [
                (
                    "pool y",
                    K::MaxPoolForward {
                        x: &x,
                        y: &mut y,
                        d,
                    }
                    .check(len, acc_len),
                ),
                (
                    "avg y",
                    K::AvgPoolForward {
                        x: &x,
                        y: &mut bufs(output, short),
                        d,
                    }
                    .check(len, acc_len),
                ),
                (
                    "max bwd dy",
                    K::MaxPoolBackward {
                        x: &x,
                        dy: &bufs(output, short),
                        dx: &mut bufs(input, false),
                        d,
                    }
                    .check(len, acc_len),
                ),
                (
                    "avg bwd dx",
                    K::AvgPoolBackward {
                        dy: &bufs(output, false),
                        dx: &mut bufs(input, short),
                        d,
                    }
                    .check(len, acc_len),
                ),
                (
                    "col2im dx",
                    K::Col2im {
                        cols: &bufs(output * 4, false),
                        dx: &mut bufs(input, short),
                        d,
                    }
                    .check(len, acc_len),
                ),
                (
                    "bias",
                    K::BiasAdd {
                        y: &mut bufs(12, false),
                        bias: &bufs(3, short),
                        plane: 4,
                        n: 12,
                    }
                    .check(len, acc_len),
                ),
                (
                    "relu fwd",
                    K::ReluForward {
                        x: &bufs(7, short),
                        y: &mut bufs(7, false),
                        n: 7,
                    }
                    .check(len, acc_len),
                ),
                (
                    "relu bwd",
                    K::ReluBackward {
                        y: &bufs(7, false),
                        dy: &bufs(7, false),
                        dx: &mut bufs(7, short),
                        n: 7,
                    }
                    .check(len, acc_len),
                ),
                (
                    "count",
                    K::CountNonFinite {
                        x: &bufs(7, short),
                        acc: &mut accs.0,
                        slot: 0,
                        partials: &mut accs.1,
                        n: 7,
                    }
                    .check(len, acc_len),
                ),
                (
                    "tv",
                    K::TvSquared {
                        x: &bufs(input, false),
                        grad: &mut bufs(input, short),
                        acc: &mut accs.0,
                        slot: 0,
                        partials: &mut accs.1,
                        weight: 1.0,
                        shape: [2, 5, 4],
                    }
                    .check(len, acc_len),
                ),
                (
                    "adam",
                    K::Adam {
                        x: &mut bufs(7, false),
                        g: &bufs(7, false),
                        m: &mut bufs(7, false),
                        v: &mut bufs(7, short),
                        s: AdamScalars::default(),
                        n: 7,
                    }
                    .check(len, acc_len),
                ),
            ];
            for (what, result) in r {
                assert_eq!(
                    result.is_err(),
                    short,
                    "{what} with short = {short}: {result:?}"
                );
            }
        }
    }

    #[test]
    fn reduction_grids() {
        assert_eq!(reduction_grid(0, 1000), 1);
        assert_eq!(reduction_grid(u64::from(BLOCK) + 1, 1000), 2);
        assert_eq!(reduction_grid(u64::MAX, u32::MAX), MAX_REDUCTION_BLOCKS);
        assert_eq!(reduction_grid(1 << 20, 3), 3);
    }
}
