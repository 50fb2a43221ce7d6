//! Compute-backend selection: the CPU by default, cuBLAS behind the `cuda` feature.

#[cfg(not(feature = "cuda"))]
use crate::Error;
use crate::{CpuGemm, Gemm, Result};

/// A compute backend, chosen once at run time by the binary.
///
/// Asking for a backend that was not compiled in is [`Error::NotCompiled`](crate::Error::NotCompiled);
/// a compiled-in backend without a usable device is [`Error::DeviceUnavailable`](crate::Error::DeviceUnavailable).
/// Falling back to the CPU is the caller's decision.
///
/// # Examples
/// ```
/// use tensor_ops::Backend;
/// let cpu = Backend::Cpu;
/// assert_eq!(cpu.gemm().name(), "cpu");
/// #[cfg(not(feature = "cuda"))]
/// assert_eq!(Backend::cuda().unwrap_err(), tensor_ops::Error::NotCompiled { feature: "cuda" });
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Backend {
    /// `matrixmultiply` on the CPU, parallel over fixed blocks with rayon.
    Cpu,
    /// GPU 0: cuBLAS for the host-side GEMMs ([`Backend::gemm`]) and the device-resident backend
    /// with its kernels compiled ([`Backend::cuda_device`]).
    #[cfg(feature = "cuda")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cuda")))]
    Cuda(crate::CublasGemm, crate::device::cuda::CudaDevice),
}

impl Backend {
    /// GPU 0, once everything the device-resident backend needs works there: the driver, cuBLAS,
    /// NVRTC, and the kernels compiled and loaded.
    ///
    /// # Errors
    /// [`Error::NotCompiled`](crate::Error::NotCompiled) without the `cuda` feature;
    /// [`Error::DeviceUnavailable`](crate::Error::DeviceUnavailable) naming what is missing (driver, cuBLAS,
    /// NVRTC, device, an architecture NVRTC can target).
    pub fn cuda() -> Result<Self> {
        #[cfg(feature = "cuda")]
        {
            let device = crate::device::cuda::CudaDevice::new()?;
            Ok(Backend::Cuda(crate::CublasGemm::new()?, device))
        }
        #[cfg(not(feature = "cuda"))]
        {
            Err(Error::NotCompiled { feature: "cuda" })
        }
    }

    /// This backend's GEMM.
    pub fn gemm(&self) -> &dyn Gemm {
        match self {
            Backend::Cpu => &CpuGemm,
            #[cfg(feature = "cuda")]
            Backend::Cuda(g, _) => g,
        }
    }

    /// The GPU's device-resident backend, for `Backend::Cuda`.
    #[cfg(feature = "cuda")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cuda")))]
    pub fn cuda_device(&self) -> Option<&crate::device::cuda::CudaDevice> {
        match self {
            Backend::Cuda(_, d) => Some(d),
            Backend::Cpu => None,
        }
    }

    /// What the backend runs on, for telling the user (`cpu`, or the GPU's name and compute capability).
    pub fn describe(&self) -> String {
        match self {
            Backend::Cpu => "cpu".to_owned(),
            #[cfg(feature = "cuda")]
            Backend::Cuda(_, d) => format!("cuda: {}", d.describe()),
        }
    }

    /// `"cpu"` or `"cuda"`.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            #[cfg(feature = "cuda")]
            Backend::Cuda(..) => "cuda",
        }
    }
}
