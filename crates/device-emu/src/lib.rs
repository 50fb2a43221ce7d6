//! Test-only: a [`Device`] that runs the device backend's CUDA kernels on the CPU.
//!
//! `build.rs` compiles `tensor-ops/src/device/kernels.cu` as C++20 with `emu.h`, which stands in for
//! CUDA's built-in variables, `__syncthreads` and `__float_as_uint`. A launch runs every GPU thread of every
//! block: the threads of a block one after another on the calling thread, or, for the reduction kernels
//! that synchronize within a block, each on its own OS thread meeting at a barrier. The GEMMs are
//! `matrixmultiply`'s. So the tests of `tensor_ops::device` and of the pipeline's device path run the
//! kernels' own index arithmetic, the launch shapes and the host-side orchestration on any machine; what
//! only a GPU can show (the CUDA driver calls, races between concurrent blocks, speed) it cannot.
//!
//! [`Emulator::new`] takes the launch shape, so the tests can run the grid-stride loops with grids and
//! blocks of any size, down to one thread.

use tensor_ops::device::{BLOCK, Device, GemmCall, Kernel, reduction_grid};
use tensor_ops::{Error, Result};

mod ffi {
    use tensor_ops::device::{AdamScalars, ConvDims};

    unsafe extern "C" {
        pub(crate) fn emu_set_launch(grid: u32, block: u32);
        pub(crate) fn emu_set_thread(block: u32, thread: u32);
        pub(crate) fn emu_begin_block(threads: u32);
        pub(crate) fn emu_end_block();

        pub(crate) fn nst_im2col(x: *const f32, cols: *mut f32, d: ConvDims);
        pub(crate) fn nst_col2im(cols: *const f32, dx: *mut f32, d: ConvDims);
        pub(crate) fn nst_bias_add(y: *mut f32, bias: *const f32, plane: i64, n: i64);
        pub(crate) fn nst_relu_fwd(x: *const f32, y: *mut f32, n: i64);
        pub(crate) fn nst_relu_bwd(y: *const f32, dy: *const f32, dx: *mut f32, n: i64);
        pub(crate) fn nst_max_pool_fwd(x: *const f32, y: *mut f32, d: ConvDims);
        pub(crate) fn nst_max_pool_bwd(x: *const f32, dy: *const f32, dx: *mut f32, d: ConvDims);
        pub(crate) fn nst_avg_pool_fwd(x: *const f32, y: *mut f32, d: ConvDims);
        pub(crate) fn nst_avg_pool_bwd(dy: *const f32, dx: *mut f32, d: ConvDims);
        pub(crate) fn nst_axpy(a: f32, x: *const f32, y: *mut f32, n: i64);
        pub(crate) fn nst_sub_sumsq(
            a: *const f32,
            b: *const f32,
            out: *mut f32,
            partials: *mut f64,
            n: i64,
        );
        pub(crate) fn nst_count_nonfinite(x: *const f32, partials: *mut f64, n: i64);
        pub(crate) fn nst_finish_sum(partials: *const f64, count: i32, acc: *mut f64);
        pub(crate) fn nst_tv_squared(
            x: *const f32,
            grad: *mut f32,
            partials: *mut f64,
            weight: f32,
            c: i32,
            h: i32,
            w: i32,
        );
        pub(crate) fn nst_adam(
            x: *mut f32,
            g: *const f32,
            m: *mut f32,
            v: *mut f32,
            s: AdamScalars,
            n: i64,
        );
    }
}

/// The CPU emulation of a GPU; see the crate docs.
#[derive(Debug, Clone, Copy)]
pub struct Emulator {
    block: u32,
    max_grid: u32,
}

impl Emulator {
    /// Launches kernels with `block` threads per block (the reductions always take [`BLOCK`]) and at most
    /// `max_grid` blocks, the grid-stride loops covering the rest.
    ///
    /// # Panics
    /// When `block` or `max_grid` is 0.
    pub fn new(block: u32, max_grid: u32) -> Self {
        assert!(
            block > 0 && max_grid > 0,
            "a launch has at least one thread"
        );
        Emulator { block, max_grid }
    }
}

impl Default for Emulator {
    /// 64 threads per block, at most 4 blocks: small enough that every grid-stride loop goes round.
    fn default() -> Self {
        Emulator::new(64, 4)
    }
}

/// A raw pointer that may cross to the block's worker threads (the kernels' own discipline makes the
/// accesses disjoint, as on a GPU).
#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
impl<T> SendPtr<T> {
    /// The pointer (a method, so that closures capture the whole `Send` wrapper, not its field).
    fn p(self) -> *mut T {
        self.0
    }
}

// SAFETY: only the kernels dereference these, under the same rules as on a GPU: no two threads write
// one element.
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SendPtr<T> {}

/// Fails with [`Error::Device`] unless a buffer of `len` elements holds `needed` (the message
/// `tensor-ops` gives for a short buffer).
fn need(op: &'static str, len: usize, needed: usize) -> Result<()> {
    if len < needed {
        return Err(Error::Device {
            op,
            message: format!("buffer of {len} elements, {needed} needed"),
        });
    }
    Ok(())
}

impl Emulator {
    /// Runs `thread` as every thread of a launch sized for `work` items.
    fn run(&self, work: u64, full_block: bool, thread: impl Fn() + Sync) {
        if work == 0 {
            return;
        }
        let block = if full_block { BLOCK } else { self.block };
        let grid = u32::try_from(work.div_ceil(u64::from(block)))
            .unwrap_or(u32::MAX)
            .min(self.max_grid);
        self.run_grid(grid, block, full_block, thread);
    }

    /// A reduction: `thread` on the grid [`reduction_grid`] gives (blocks of [`BLOCK`] threads, each
    /// writing its partial sum into `partials`, which `Kernel::check` saw hold `MAX_REDUCTION_BLOCKS`),
    /// then `nst_finish_sum` adding the partials into `acc`.
    fn reduce(
        &self,
        work: u64,
        partials: &mut [f64],
        acc: &mut f64,
        thread: impl Fn(SendPtr<f64>) + Sync,
    ) {
        let grid = reduction_grid(work, self.max_grid);
        let p = SendPtr(partials.as_mut_ptr());
        self.run_grid(grid, BLOCK, true, || thread(p));
        let a = SendPtr(std::ptr::from_mut(acc));
        let count = i32::try_from(grid).expect("at most MAX_REDUCTION_BLOCKS");
        self.run_grid(1, BLOCK, true, || unsafe {
            // SAFETY: `partials` holds the `grid` sums written above; `a` is one accumulator.
            ffi::nst_finish_sum(p.p(), count, a.p());
        });
    }

    /// Runs `thread` as every thread of `grid` blocks of `block` threads.
    fn run_grid(&self, grid: u32, block: u32, full_block: bool, thread: impl Fn() + Sync) {
        // SAFETY: plain stores into the emulator's globals; launches are not run concurrently (the
        // tests that use one emulator run it from one thread, and `emu_lock` serializes the rest).
        let _guard = emu_lock();
        unsafe { ffi::emu_set_launch(grid, block) };
        for b in 0..grid {
            if full_block {
                // SAFETY: creates the block's barrier for `block` threads, deleted below after they joined.
                unsafe { ffi::emu_begin_block(block) };
                std::thread::scope(|s| {
                    for t in 0..block {
                        let thread = &thread;
                        s.spawn(move || {
                            // SAFETY: sets this OS thread's own thread-local indices.
                            unsafe { ffi::emu_set_thread(b, t) };
                            thread();
                        });
                    }
                });
                // SAFETY: every thread of the block has joined.
                unsafe { ffi::emu_end_block() };
            } else {
                for t in 0..block {
                    // SAFETY: as above, on the calling thread.
                    unsafe { ffi::emu_set_thread(b, t) };
                    thread();
                }
            }
        }
    }
}

/// The emulator's globals (grid and block sizes, the barrier) are process-wide: one launch at a time.
fn emu_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Device for Emulator {
    type Buf = Vec<f32>;
    type Acc = Vec<f64>;

    fn name(&self) -> &'static str {
        "emulator"
    }

    fn alloc(&self, len: usize) -> Result<Vec<f32>> {
        Ok(vec![0.0; len])
    }

    fn alloc_acc(&self, len: usize) -> Result<Vec<f64>> {
        Ok(vec![0.0; len])
    }

    fn len(&self, buf: &Vec<f32>) -> usize {
        buf.len()
    }

    fn upload(&self, src: &[f32], dst: &mut Vec<f32>) -> Result<()> {
        need("upload", dst.len(), src.len())?;
        dst[..src.len()].copy_from_slice(src);
        Ok(())
    }

    fn download(&self, src: &Vec<f32>, dst: &mut [f32]) -> Result<()> {
        need("download", src.len(), dst.len())?;
        dst.copy_from_slice(&src[..dst.len()]);
        Ok(())
    }

    fn download_acc(&self, src: &Vec<f64>, dst: &mut [f64]) -> Result<()> {
        if src.len() != dst.len() {
            return Err(Error::Device {
                op: "download_acc",
                message: format!("{} accumulators into {}", src.len(), dst.len()),
            });
        }
        dst.copy_from_slice(src);
        Ok(())
    }

    fn copy(&self, src: &Vec<f32>, dst: &mut Vec<f32>, len: usize) -> Result<()> {
        need("copy", src.len(), len)?;
        need("copy", dst.len(), len)?;
        dst[..len].copy_from_slice(&src[..len]);
        Ok(())
    }

    fn zero(&self, buf: &mut Vec<f32>, len: usize) -> Result<()> {
        need("zero", buf.len(), len)?;
        buf[..len].fill(0.0);
        Ok(())
    }

    fn zero_acc(&self, acc: &mut Vec<f64>) -> Result<()> {
        acc.fill(0.0);
        Ok(())
    }

    fn gemm(&self, call: GemmCall<'_, Vec<f32>>) -> Result<()> {
        call.check(Vec::len)?;
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
        // Row and column strides of op(A) (m×k) and op(B) (k×n) in their row-major storage.
        let (rsa, csa) = if trans_a { (1, m) } else { (k, 1) };
        let (rsb, csb) = if trans_b { (1, k) } else { (n, 1) };
        let stride = |v: usize| isize::try_from(v).expect("a buffer's dimension fits isize");
        // SAFETY: `GemmCall::check` checked that A, B and C hold m·k, k·n and m·n floats, and these strides
        // address exactly those row-major matrices.
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                alpha,
                a.as_ptr(),
                stride(rsa),
                stride(csa),
                b.as_ptr(),
                stride(rsb),
                stride(csb),
                beta,
                c.as_mut_ptr(),
                stride(n),
                1,
            );
        }
        Ok(())
    }

    fn launch(&self, kernel: Kernel<'_, Vec<f32>, Vec<f64>>) -> Result<()> {
        // The checks every implementation makes: a short buffer would be memory corruption here as on a GPU.
        kernel.check(Vec::len, Vec::len)?;
        let work = kernel.work();
        let full = kernel.needs_full_block();
        let r = |v: &Vec<f32>| SendPtr(v.as_ptr().cast_mut());
        let w = |v: &mut Vec<f32>| SendPtr(v.as_mut_ptr());
        // SAFETY (all `unsafe` calls below): `Kernel::check` saw that the buffers hold what the kernel
        // touches for these dimensions, and they stay borrowed for the whole launch.
        match kernel {
            Kernel::Im2col { x, cols, d } => {
                let (x, cols) = (r(x), w(cols));
                self.run(work, full, || unsafe {
                    ffi::nst_im2col(x.p(), cols.p(), d)
                });
            }
            Kernel::Col2im { cols, dx, d } => {
                let (cols, dx) = (r(cols), w(dx));
                self.run(work, full, || unsafe {
                    ffi::nst_col2im(cols.p(), dx.p(), d)
                });
            }
            Kernel::BiasAdd { y, bias, plane, n } => {
                let (y, bias) = (w(y), r(bias));
                self.run(work, full, || unsafe {
                    ffi::nst_bias_add(y.p(), bias.p(), plane, n)
                });
            }
            Kernel::ReluForward { x, y, n } => {
                let (x, y) = (r(x), w(y));
                self.run(work, full, || unsafe { ffi::nst_relu_fwd(x.p(), y.p(), n) });
            }
            Kernel::ReluBackward { y, dy, dx, n } => {
                let (y, dy, dx) = (r(y), r(dy), w(dx));
                self.run(work, full, || unsafe {
                    ffi::nst_relu_bwd(y.p(), dy.p(), dx.p(), n)
                });
            }
            Kernel::MaxPoolForward { x, y, d } => {
                let (x, y) = (r(x), w(y));
                self.run(work, full, || unsafe {
                    ffi::nst_max_pool_fwd(x.p(), y.p(), d)
                });
            }
            Kernel::MaxPoolBackward { x, dy, dx, d } => {
                let (x, dy, dx) = (r(x), r(dy), w(dx));
                self.run(work, full, || unsafe {
                    ffi::nst_max_pool_bwd(x.p(), dy.p(), dx.p(), d)
                });
            }
            Kernel::AvgPoolForward { x, y, d } => {
                let (x, y) = (r(x), w(y));
                self.run(work, full, || unsafe {
                    ffi::nst_avg_pool_fwd(x.p(), y.p(), d)
                });
            }
            Kernel::AvgPoolBackward { dy, dx, d } => {
                let (dy, dx) = (r(dy), w(dx));
                self.run(work, full, || unsafe {
                    ffi::nst_avg_pool_bwd(dy.p(), dx.p(), d)
                });
            }
            Kernel::Axpy { a, x, y, n } => {
                let (x, y) = (r(x), w(y));
                self.run(work, full, || unsafe { ffi::nst_axpy(a, x.p(), y.p(), n) });
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
                let (a, b, out) = (r(a), r(b), w(out));
                self.reduce(work, partials, &mut acc[slot], |p| unsafe {
                    ffi::nst_sub_sumsq(a.p(), b.p(), out.p(), p.p(), n);
                });
            }
            Kernel::CountNonFinite {
                x,
                acc,
                slot,
                partials,
                n,
            } => {
                let x = r(x);
                self.reduce(work, partials, &mut acc[slot], |p| unsafe {
                    ffi::nst_count_nonfinite(x.p(), p.p(), n);
                });
            }
            Kernel::TvSquared {
                x,
                grad,
                acc,
                slot,
                partials,
                weight,
                shape: [c, h, wd],
            } => {
                let (x, grad) = (r(x), w(grad));
                self.reduce(work, partials, &mut acc[slot], |p| unsafe {
                    ffi::nst_tv_squared(x.p(), grad.p(), p.p(), weight, c, h, wd);
                });
            }
            Kernel::Adam { x, g, m, v, s, n } => {
                let (x, g, m, v) = (w(x), r(g), w(m), w(v));
                self.run(work, full, || unsafe {
                    ffi::nst_adam(x.p(), g.p(), m.p(), v.p(), s, n)
                });
            }
            other => {
                return Err(Error::Device {
                    op: "launch",
                    message: format!("the emulator has no {}", other.function()),
                });
            }
        }
        Ok(())
    }
}
