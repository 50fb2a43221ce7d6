//! [`CudaDevice`]: the [`Device`] of an NVIDIA GPU through `cudarc` (dynamic loading, so it builds
//! without a CUDA toolkit): cuBLAS for the GEMMs, and the kernels of [`KERNEL_SOURCE`] compiled by NVRTC
//! once, at start-up, for the GPU's architecture.
//!
//! All work is queued in order on the context's default stream; `download*` wait for it. Every launch
//! and copy checks its buffers' lengths (and a kernel its geometry) first: on a GPU a short buffer is
//! not a panic but memory corruption.

use std::fmt;
use std::sync::Arc;

use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{CudaBlas, Gemm as _, GemmConfig};
use cudarc::driver::{
    CudaFunction, CudaSlice, CudaStream, DevicePtrMut as _, DeviceRepr, DriverError, LaunchArgs,
    LaunchConfig, PushKernelArg as _, ValidAsZeroBits,
};
use cudarc::nvrtc::{CompileError, CompileOptions};

use super::{
    AdamScalars, BLOCK, ConvDims, Device, GemmCall, KERNEL_SOURCE, Kernel, MAX_REDUCTION_BLOCKS,
    check_lens, device_error, reduction_grid,
};
use crate::{Error, Result};

// SAFETY: `ConvDims` is `#[repr(C)]` with eleven `i32` fields (no padding, no pointers, every bit
// pattern valid), in the order of `struct ConvDims` in `kernels.cu`, whose eleven `int`s have the same
// size, alignment and layout; the kernels take it by value.
unsafe impl DeviceRepr for ConvDims {}

// SAFETY: `AdamScalars` is `#[repr(C)]` with seven `f32` and one `i32` (32 bytes, 4-byte aligned, no
// padding, no pointers, every bit pattern valid), in the order of `struct AdamScalars` in `kernels.cu`.
unsafe impl DeviceRepr for AdamScalars {}

/// Most blocks of a grid-stride kernel's launch: enough to fill any current GPU several times over.
const MAX_BLOCKS: u64 = 65_535 * 8;

/// The [`Device`] of the first NVIDIA GPU: device buffers are [`CudaSlice`]s, GEMMs run in cuBLAS
/// (`sgemm` in its default FP32 math mode), and the kernels of [`KERNEL_SOURCE`] are compiled by NVRTC in
/// [`CudaDevice::new`].
///
/// Clones share the stream, the cuBLAS handle and the kernels: their work is queued in one order.
#[derive(Clone)]
pub struct CudaDevice {
    stream: Arc<CudaStream>,
    blas: Arc<CudaBlas>,
    /// The kernels, in the order of [`Kernel::FUNCTIONS`].
    functions: Vec<CudaFunction>,
    description: String,
}

impl fmt::Debug for CudaDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CudaDevice")
            .field("device", &self.description)
            .finish_non_exhaustive()
    }
}

/// Maps a driver error of `op` to [`Error::Device`].
fn driver(op: &'static str) -> impl FnOnce(DriverError) -> Error {
    move |e| Error::Device {
        op,
        message: e.to_string(),
    }
}

/// The grid for `work` items: blocks of [`BLOCK`] threads, at most [`MAX_BLOCKS`] (or
/// [`MAX_REDUCTION_BLOCKS`] for a reduction, [`reduction_grid`]); the kernels' grid-stride loops cover the rest.
fn launch_config(work: u64, reduction: bool) -> LaunchConfig {
    let blocks = if reduction {
        u64::from(reduction_grid(work, MAX_REDUCTION_BLOCKS))
    } else {
        work.div_ceil(u64::from(BLOCK)).clamp(1, MAX_BLOCKS)
    };
    LaunchConfig {
        // Lossless: `blocks` ≤ `MAX_BLOCKS` < 2^32.
        grid_dim: (blocks as u32, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The cuBLAS (column-major) call for a row-major `C[m×n] ← α·op(A)·op(B) + β·C` whose first operand is
/// B and second is A: row-major `C` read column-major is `Cᵀ = op(B)ᵀ·op(A)ᵀ`, and a row-major matrix
/// read column-major is its transpose, so each operand is transposed exactly when it is stored
/// transposed, with `m` and `n` swapped. `[m, n, k]` as `i32`.
fn gemm_config(
    trans_a: bool,
    trans_b: bool,
    [m, n, k]: [i32; 3],
    alpha: f32,
    beta: f32,
) -> GemmConfig<f32> {
    let op = |t: bool| {
        if t {
            cublasOperation_t::CUBLAS_OP_T
        } else {
            cublasOperation_t::CUBLAS_OP_N
        }
    };
    GemmConfig {
        transa: op(trans_b),
        transb: op(trans_a),
        m: n,
        n: m,
        k,
        alpha,
        // B is stored k×n (row-major: column-major n×k, ld n) or, transposed, n×k (ld k).
        lda: if trans_b { k } else { n },
        // A is stored m×k (column-major k×m, ld k) or, transposed, k×m (ld m).
        ldb: if trans_a { m } else { k },
        beta,
        ldc: n,
    }
}

/// The newest architecture NVRTC can compile for that the device `cc` (`major·10 + minor`) runs.
fn nvrtc_arch(cc: i32) -> Result<i32> {
    use cudarc::nvrtc::sys;
    let fail = |e: cudarc::nvrtc::result::NvrtcError| Error::DeviceUnavailable {
        reason: format!("querying NVRTC's architectures failed: {e:?}"),
    };
    let mut n: std::ffi::c_int = 0;
    // SAFETY: writes one int through a valid pointer.
    unsafe { sys::nvrtcGetNumSupportedArchs(&mut n) }
        .result()
        .map_err(fail)?;
    let mut archs: Vec<std::ffi::c_int> = vec![0; usize::try_from(n).unwrap_or(0)];
    if !archs.is_empty() {
        // SAFETY: writes `n` ints, the length of `archs`, as `nvrtcGetNumSupportedArchs` just said.
        unsafe { sys::nvrtcGetSupportedArchs(archs.as_mut_ptr()) }
            .result()
            .map_err(fail)?;
    }
    archs
        .iter()
        .copied()
        .filter(|&a| a <= cc)
        .max()
        .ok_or_else(|| Error::DeviceUnavailable {
            reason: format!(
                "this NVRTC compiles for none of the architectures the device (sm_{cc}) runs: {archs:?}"
            ),
        })
}

/// Compiles [`KERNEL_SOURCE`] for `compute_{arch}` (PTX, which the driver finishes for the device).
///
/// A compilation error (a bug in the source) is an [`Error::Device`] with NVRTC's log; any other NVRTC
/// failure (a rejected option, missing `libnvrtc-builtins`) makes the device unavailable.
fn compile(arch: i32) -> Result<cudarc::nvrtc::Ptx> {
    let opts = CompileOptions {
        // IEEE division and square root, no flush to zero: NVRTC's defaults, spelled out. No contraction
        // into fused multiply-adds either (`fmad`), so that every kernel rounds as its C source reads, as
        // the emulator and the CPU layers do (the GEMMs, where the work is, are cuBLAS's).
        ftz: Some(false),
        prec_div: Some(true),
        prec_sqrt: Some(true),
        fmad: Some(false),
        options: vec![format!("--gpu-architecture=compute_{arch}")],
        name: Some("kernels.cu".to_owned()),
        ..CompileOptions::default()
    };
    cudarc::nvrtc::compile_ptx_with_opts(KERNEL_SOURCE, opts).map_err(|e| match e {
        CompileError::CompileError {
            nvrtc,
            options,
            log,
        } => {
            let message = format!(
                "{nvrtc:?} with options {options:?}:\n{}",
                log.to_string_lossy()
            );
            if nvrtc.0 == cudarc::nvrtc::sys::nvrtcResult::NVRTC_ERROR_COMPILATION {
                device_error("nvrtc compile", message)
            } else {
                Error::DeviceUnavailable {
                    reason: format!("NVRTC failed: {message}"),
                }
            }
        }
        other => Error::DeviceUnavailable {
            reason: format!("NVRTC failed: {other:?}"),
        },
    })
}

/// The kernels as NVRTC compiles them for a device of compute capability `cc` (`major·10 + minor`):
/// the architecture chosen (the newest NVRTC targets that the device runs) and the PTX. Needs libnvrtc,
/// not a GPU or the driver, so it also checks the kernel source where no GPU is.
///
/// # Errors
/// As [`CudaDevice::new`] for NVRTC: [`Error::DeviceUnavailable`] when libnvrtc is missing or targets
/// nothing at or below `cc`; [`Error::Device`] with NVRTC's log when the source does not compile.
pub fn kernels_ptx(cc: i32) -> Result<(i32, String)> {
    // SAFETY: only tries to dlopen libnvrtc by its known names.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(Error::DeviceUnavailable {
            reason: "libnvrtc (CUDA 13) not found".to_owned(),
        });
    }
    let arch = nvrtc_arch(cc)?;
    Ok((arch, compile(arch)?.to_src()))
}

impl CudaDevice {
    /// Opens device 0, creates a cuBLAS handle on its default stream and compiles the kernels.
    ///
    /// # Errors
    /// - [`Error::DeviceUnavailable`] naming the missing library (libcuda, libcublas, libnvrtc), when
    ///   there is no device, when NVRTC cannot target it or fails for a reason other than the source,
    ///   or when the driver rejects the compiled module (for instance a driver older than NVRTC);
    /// - [`Error::Device`] with NVRTC's log when the kernels do not compile (a bug), or when a kernel is
    ///   missing from the module.
    pub fn new() -> Result<Self> {
        let ctx = crate::cuda::open_context(true)?;
        let unavailable = |what: &str, e: &dyn fmt::Debug| Error::DeviceUnavailable {
            reason: format!("{what}: {e:?}"),
        };
        let name = ctx
            .name()
            .map_err(|e| unavailable("reading the device name failed", &e))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| unavailable("reading the compute capability failed", &e))?;
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone())
            .map_err(|e| unavailable("creating a cuBLAS handle failed", &e))?;
        let arch = nvrtc_arch(major * 10 + minor)?;
        let ptx = compile(arch)?;
        let module = ctx
            .load_module(ptx)
            .map_err(|e| unavailable("loading the NVRTC-compiled kernels failed", &e))?;
        let functions = Kernel::<(), ()>::FUNCTIONS
            .iter()
            .map(|f| {
                module
                    .load_function(f)
                    .map_err(driver("cuModuleGetFunction"))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(CudaDevice {
            stream,
            blas: Arc::new(blas),
            functions,
            description: format!(
                "{name} (compute capability {major}.{minor}; kernels compiled for compute_{arch})"
            ),
        })
    }

    /// The device's name and compute capability, and the architecture the kernels were compiled for.
    pub fn describe(&self) -> String {
        self.description.clone()
    }

    /// The loaded kernel called `name` (one of [`Kernel::FUNCTIONS`]).
    fn function(&self, name: &'static str) -> Result<&CudaFunction> {
        Kernel::<(), ()>::FUNCTIONS
            .iter()
            .position(|&f| f == name)
            .and_then(|i| self.functions.get(i))
            .ok_or_else(|| device_error(name, "kernel not loaded"))
    }

    /// A zeroed device buffer of `len` elements of `T`.
    fn alloc_zeroed<T: DeviceRepr + ValidAsZeroBits>(
        &self,
        op: &'static str,
        len: usize,
    ) -> Result<CudaSlice<T>> {
        if len.checked_mul(size_of::<T>()).is_none() {
            return Err(device_error(
                op,
                format!("{len} elements overflow usize bytes"),
            ));
        }
        if len > 0 {
            return self.stream.alloc_zeros(len).map_err(driver(op));
        }
        // `cuMemAlloc` rejects 0 bytes: allocate one element and hand out an empty slice of it.
        let one = self.stream.alloc_zeros::<T>(1).map_err(driver(op))?;
        let ptr = one.leak();
        // SAFETY: `ptr` is a live allocation of one `T` made on `self.stream`, now owned by nobody; the
        // new slice owns it and frees it on the same stream, and its length 0 lets nothing read it.
        Ok(unsafe { self.stream.upgrade_device_ptr(ptr, 0) })
    }

    /// Queues one launch.
    ///
    /// # Safety
    /// `args` must match the C signature of kernel `name` in number, order and type, and every buffer
    /// among them must hold the elements the kernel touches for this launch's geometry.
    unsafe fn submit(
        &self,
        mut args: LaunchArgs<'_>,
        cfg: LaunchConfig,
        name: &'static str,
    ) -> Result<()> {
        // SAFETY: the caller's contract is `launch`'s.
        unsafe { args.launch(cfg) }.map(drop).map_err(driver(name))
    }

    /// After a reduction launched with `cfg`: `acc[slot] += Σ partials[0..grid)` by `nst_finish_sum`
    /// (one block, a fixed order).
    fn finish_sum(
        &self,
        cfg: LaunchConfig,
        partials: &CudaSlice<f64>,
        acc: &mut CudaSlice<f64>,
        slot: usize,
    ) -> Result<()> {
        let count = cfg.grid_dim.0;
        check_lens(
            "nst_finish_sum",
            &[
                (partials.len(), u64::from(count)),
                (acc.len(), slot as u64 + 1),
            ],
        )?;
        let count =
            i32::try_from(count).map_err(|_| device_error("nst_finish_sum", "grid exceeds i32"))?;
        let f = self.function("nst_finish_sum")?;
        let mut args = self.stream.launch_builder(f);
        let mut one = acc.slice_mut(slot..=slot);
        args.arg(partials).arg(&count).arg(&mut one);
        let cfg = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: nst_finish_sum(const double* partials, int count, double* acc); partials holds
        // `count` sums, `one` is one accumulator, and the launch is one block of BLOCK threads.
        unsafe { self.submit(args, cfg, "nst_finish_sum") }
    }

    /// `c[..len] *= beta` through cuBLAS (`cublasSscal`), for a GEMM with `k = 0`.
    fn scale(&self, c: &mut CudaSlice<f32>, len: usize, beta: f32) -> Result<()> {
        use cudarc::cublas::sys;
        let n = i32::try_from(len)
            .map_err(|_| device_error("cublasSscal", format!("{len} elements exceed i32")))?;
        // cuBLAS runs in the context current on the calling thread.
        self.stream
            .context()
            .bind_to_thread()
            .map_err(driver("cublasSscal"))?;
        let mut view = c.slice_mut(0..len);
        let (ptr, _record) = view.device_ptr_mut(&self.stream);
        // SAFETY: `ptr` addresses `len` floats of `c` (the caller checked `c.len() ≥ len`); the handle's
        // stream is `self.stream`, which `_record` orders the write on; `beta` is a host scalar, the
        // handle's default pointer mode.
        unsafe { sys::cublasSscal_v2(*self.blas.handle(), n, &beta, ptr as *mut f32, 1) }
            .result()
            .map_err(|e| device_error("cublasSscal", format!("{e:?}")))
    }
}

impl Device for CudaDevice {
    type Buf = CudaSlice<f32>;
    type Acc = CudaSlice<f64>;

    fn name(&self) -> &'static str {
        "cuda"
    }

    fn alloc(&self, len: usize) -> Result<Self::Buf> {
        self.alloc_zeroed("alloc", len)
    }

    fn alloc_acc(&self, len: usize) -> Result<Self::Acc> {
        self.alloc_zeroed("alloc_acc", len)
    }

    fn len(&self, buf: &Self::Buf) -> usize {
        buf.len()
    }

    fn upload(&self, src: &[f32], dst: &mut Self::Buf) -> Result<()> {
        check_lens("upload", &[(dst.len(), src.len() as u64)])?;
        if src.is_empty() {
            return Ok(());
        }
        // Pageable memory is staged before `cuMemcpyHtoDAsync` returns, so `src` may change afterwards.
        self.stream
            .memcpy_htod(src, &mut dst.slice_mut(0..src.len()))
            .map_err(driver("upload"))
    }

    fn download(&self, src: &Self::Buf, dst: &mut [f32]) -> Result<()> {
        check_lens("download", &[(src.len(), dst.len() as u64)])?;
        if !dst.is_empty() {
            // The copy reads as many elements as `dst` holds: give it a view of exactly that many.
            self.stream
                .memcpy_dtoh(&src.slice(0..dst.len()), dst)
                .map_err(driver("download"))?;
        }
        // A copy to pageable memory returns once done; this also reports any failed earlier launch.
        self.stream.synchronize().map_err(driver("download"))
    }

    fn download_acc(&self, src: &Self::Acc, dst: &mut [f64]) -> Result<()> {
        if src.len() != dst.len() {
            return Err(device_error(
                "download_acc",
                format!("{} accumulators into {} values", src.len(), dst.len()),
            ));
        }
        if !dst.is_empty() {
            self.stream
                .memcpy_dtoh(src, dst)
                .map_err(driver("download_acc"))?;
        }
        self.stream.synchronize().map_err(driver("download_acc"))
    }

    fn copy(&self, src: &Self::Buf, dst: &mut Self::Buf, len: usize) -> Result<()> {
        check_lens("copy", &[(src.len(), len as u64), (dst.len(), len as u64)])?;
        if len == 0 {
            return Ok(());
        }
        self.stream
            .memcpy_dtod(&src.slice(0..len), &mut dst.slice_mut(0..len))
            .map_err(driver("copy"))
    }

    fn zero(&self, buf: &mut Self::Buf, len: usize) -> Result<()> {
        check_lens("zero", &[(buf.len(), len as u64)])?;
        if len == 0 {
            return Ok(());
        }
        self.stream
            .memset_zeros(&mut buf.slice_mut(0..len))
            .map_err(driver("zero"))
    }

    fn zero_acc(&self, acc: &mut Self::Acc) -> Result<()> {
        if acc.is_empty() {
            return Ok(());
        }
        self.stream.memset_zeros(acc).map_err(driver("zero_acc"))
    }

    /// Row-major `C[m×n] = op(A)·op(B)` is column-major `Cᵀ[n×m] = op(B)ᵀ·op(A)ᵀ`, and a row-major
    /// matrix read as column-major is its transpose: so cuBLAS gets `B` as its first operand and `A` as
    /// its second, each transposed exactly when stored transposed, with `m` and `n` swapped.
    fn gemm(&self, call: GemmCall<'_, Self::Buf>) -> Result<()> {
        let dim = |v: usize| {
            i32::try_from(v)
                .map_err(|_| device_error("cublasSgemm", format!("dimension {v} exceeds i32")))
        };
        let (mi, ni, ki) = (dim(call.m)?, dim(call.n)?, dim(call.k)?);
        call.check(|b| self.len(b))?;
        let GemmCall {
            trans_a,
            trans_b,
            m,
            n,
            k,
            alpha,
            a,
            b,
            beta,
            c,
        } = call;
        if m == 0 || n == 0 {
            return Ok(());
        }
        if k == 0 {
            // C ← β·C, and with β = 0 C is not read (NaNs in it do not survive).
            return if beta == 0.0 {
                self.zero(c, m * n)
            } else if beta == 1.0 {
                Ok(())
            } else {
                self.scale(c, m * n, beta)
            };
        }
        let cfg = gemm_config(trans_a, trans_b, [mi, ni, ki], alpha, beta);
        // cuBLAS runs in the context current on the calling thread.
        self.stream
            .context()
            .bind_to_thread()
            .map_err(driver("cublasSgemm"))?;
        // SAFETY: `GemmCall::check` saw k·n floats in B, m·k in A and m·n in C. Read column-major, B is
        // n×k (ld n) or, stored transposed, k×n (ld k); A is k×m (ld k) or m×k (ld m); C is n×m (ld n):
        // every element this sgemm touches lies inside its buffer, and the leading dimensions are at
        // least the row counts cuBLAS requires.
        unsafe { self.blas.gemm(cfg, b, a, c) }
            .map_err(|e| device_error("cublasSgemm", format!("{e:?}")))
    }

    fn launch(&self, kernel: Kernel<'_, Self::Buf, Self::Acc>) -> Result<()> {
        // Buffer lengths and geometry: on a GPU a short buffer is memory corruption, not a panic.
        kernel.check(CudaSlice::len, CudaSlice::len)?;
        let name = kernel.function();
        let work = kernel.work();
        if work == 0 {
            return Ok(());
        }
        let cfg = launch_config(work, kernel.needs_full_block());
        let f = self.function(name)?;
        let mut args = self.stream.launch_builder(f);
        // SAFETY (every `submit` below): the arguments are pushed in the number, order and types of the
        // kernel's C signature in kernels.cu (quoted at each arm), `Kernel::check` has checked that every
        // buffer holds what the kernel indexes for this geometry, and reductions get BLOCK threads per block.
        match kernel {
            Kernel::Im2col { x, cols, d } => {
                // nst_im2col(const float* x, float* cols, ConvDims d)
                args.arg(x).arg(cols).arg(&d);
                unsafe { self.submit(args, cfg, name) }
            }
            Kernel::Col2im { cols, dx, d } => {
                // nst_col2im(const float* cols, float* dx, ConvDims d)
                args.arg(cols).arg(dx).arg(&d);
                unsafe { self.submit(args, cfg, name) }
            }
            Kernel::BiasAdd { y, bias, plane, n } => {
                // nst_bias_add(float* y, const float* bias, long long plane, long long n)
                args.arg(y).arg(bias).arg(&plane).arg(&n);
                unsafe { self.submit(args, cfg, name) }
            }
            Kernel::ReluForward { x, y, n } => {
                // nst_relu_fwd(const float* x, float* y, long long n)
                args.arg(x).arg(y).arg(&n);
                unsafe { self.submit(args, cfg, name) }
            }
            Kernel::ReluBackward { y, dy, dx, n } => {
                // nst_relu_bwd(const float* y, const float* dy, float* dx, long long n)
                args.arg(y).arg(dy).arg(dx).arg(&n);
                unsafe { self.submit(args, cfg, name) }
            }
            Kernel::MaxPoolForward { x, y, d } | Kernel::AvgPoolForward { x, y, d } => {
                // nst_max_pool_fwd / nst_avg_pool_fwd(const float* x, float* y, ConvDims d)
                args.arg(x).arg(y).arg(&d);
                unsafe { self.submit(args, cfg, name) }
            }
            Kernel::MaxPoolBackward { x, dy, dx, d } => {
                // nst_max_pool_bwd(const float* x, const float* dy, float* dx, ConvDims d)
                args.arg(x).arg(dy).arg(dx).arg(&d);
                unsafe { self.submit(args, cfg, name) }
            }
            Kernel::AvgPoolBackward { dy, dx, d } => {
                // nst_avg_pool_bwd(const float* dy, float* dx, ConvDims d)
                args.arg(dy).arg(dx).arg(&d);
                unsafe { self.submit(args, cfg, name) }
            }
            Kernel::Axpy { a, x, y, n } => {
                // nst_axpy(float a, const float* x, float* y, long long n)
                args.arg(&a).arg(x).arg(y).arg(&n);
                unsafe { self.submit(args, cfg, name) }
            }
            Kernel::SubSumSq {
                a,
                b,
                out,
                acc,
                slot,
                partials,
                n,
            } => {
                // nst_sub_sumsq(const float* a, const float* b, float* out, double* partials, long long n)
                args.arg(a).arg(b).arg(out).arg(&mut *partials).arg(&n);
                unsafe { self.submit(args, cfg, name) }?;
                self.finish_sum(cfg, partials, acc, slot)
            }
            Kernel::CountNonFinite {
                x,
                acc,
                slot,
                partials,
                n,
            } => {
                // nst_count_nonfinite(const float* x, double* partials, long long n)
                args.arg(x).arg(&mut *partials).arg(&n);
                unsafe { self.submit(args, cfg, name) }?;
                self.finish_sum(cfg, partials, acc, slot)
            }
            Kernel::TvSquared {
                x,
                grad,
                acc,
                slot,
                partials,
                weight,
                shape: [c, h, w],
            } => {
                // nst_tv_squared(const float* x, float* grad, double* partials, float weight, int c,
                // int h, int w)
                args.arg(x)
                    .arg(grad)
                    .arg(&mut *partials)
                    .arg(&weight)
                    .arg(&c)
                    .arg(&h)
                    .arg(&w);
                unsafe { self.submit(args, cfg, name) }?;
                self.finish_sum(cfg, partials, acc, slot)
            }
            Kernel::Adam { x, g, m, v, s, n } => {
                // nst_adam(float* x, const float* g, float* m, float* v, AdamScalars s, long long n)
                args.arg(x).arg(g).arg(m).arg(v).arg(&s).arg(&n);
                unsafe { self.submit(args, cfg, name) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BLAS `sgemm` as the standard defines it (column-major, `C ← α·op(A)·op(B) + β·C`), naively.
    fn reference_sgemm(cfg: &GemmConfig<f32>, a: &[f32], b: &[f32], c: &mut [f32]) {
        let t = |o: cublasOperation_t| o == cublasOperation_t::CUBLAS_OP_T;
        let (m, n, k) = (cfg.m as usize, cfg.n as usize, cfg.k as usize);
        let (lda, ldb, ldc) = (cfg.lda as usize, cfg.ldb as usize, cfg.ldc as usize);
        let at = |i: usize, l: usize| {
            if t(cfg.transa) {
                a[l + i * lda]
            } else {
                a[i + l * lda]
            }
        };
        let bt = |l: usize, j: usize| {
            if t(cfg.transb) {
                b[j + l * ldb]
            } else {
                b[l + j * ldb]
            }
        };
        for j in 0..n {
            for i in 0..m {
                let sum: f32 = (0..k).map(|l| at(i, l) * bt(l, j)).sum();
                c[i + j * ldc] = cfg.alpha * sum + cfg.beta * c[i + j * ldc];
            }
        }
    }

    /// The mapping, run through the BLAS definition, computes the row-major product for every storage.
    #[test]
    fn gemm_config_computes_the_row_major_product() {
        let (m, n, k) = (3_usize, 5_usize, 4_usize);
        let opa = |i: usize, l: usize| (i * 7 + l * 3) as f32 * 0.25 - 1.0;
        let opb = |l: usize, j: usize| (l * 5 + j * 2) as f32 * 0.125 - 0.5;
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a: Vec<f32> = if ta {
                (0..k * m).map(|e| opa(e % m, e / m)).collect()
            } else {
                (0..m * k).map(|e| opa(e / k, e % k)).collect()
            };
            let b: Vec<f32> = if tb {
                (0..n * k).map(|e| opb(e % k, e / k)).collect()
            } else {
                (0..k * n).map(|e| opb(e / n, e % n)).collect()
            };
            let c0: Vec<f32> = (0..m * n).map(|e| e as f32).collect();
            let mut c = c0.clone();
            let cfg = gemm_config(ta, tb, [m as i32, n as i32, k as i32], 2.0, 0.5);
            // cuBLAS gets B as its first operand and A as its second.
            reference_sgemm(&cfg, &b, &a, &mut c);
            for i in 0..m {
                for j in 0..n {
                    let want = 2.0 * (0..k).map(|l| opa(i, l) * opb(l, j)).sum::<f32>()
                        + 0.5 * c0[i * n + j];
                    assert!(
                        (c[i * n + j] - want).abs() < 1e-4,
                        "({ta}, {tb}) C[{i}][{j}] = {}, want {want}",
                        c[i * n + j]
                    );
                }
            }
        }
    }

    #[test]
    fn launch_shapes() {
        let plain = launch_config(10_000_000_000, false);
        assert_eq!(
            (plain.grid_dim.0 as u64, plain.block_dim.0),
            (MAX_BLOCKS, BLOCK)
        );
        let red = launch_config(10_000_000, true);
        assert_eq!(red.grid_dim.0, MAX_REDUCTION_BLOCKS);
        assert_eq!(launch_config(1, true).grid_dim.0, 1);
        assert_eq!(launch_config(257, false).grid_dim.0, 2);
    }
}
