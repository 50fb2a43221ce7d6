//! The binary's global allocator: the system allocator, asking Linux for transparent huge pages
//! (`madvise(MADV_HUGEPAGE)`) on every block of at least [`HUGE_BLOCK`] bytes.
//!
//! The numerical kernels stream through buffers of tens of megabytes (activations, the Winograd
//! transforms' `U`, `V` and `M`) with dozens of streams at once; on 4 KiB pages that is a TLB miss
//! every few kilobytes. Where the kernel's THP mode is `madvise` (Debian's default), only advised
//! memory gets 2 MiB pages; with `always` the advice changes nothing, with `never` it is ignored.
//! These blocks are written whole, so huge pages barely raise the resident size
//! (`docs/performance.md`, 2026-12-05: peak RSS at 400×300 +3.5 MB, an iteration 0.479 → 0.471 s).

use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks from this size on are advised (4 MiB: at least one whole 2 MiB page inside).
const HUGE_BLOCK: usize = 4 << 20;

/// [`System`], with the huge-page advice on large blocks.
pub(crate) struct HugePages;

// SAFETY: every method hands the request to `System` unchanged and returns its answer; the advice
// only changes how the kernel backs the pages of a block `System` just gave out.
unsafe impl GlobalAlloc for HugePages {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract, which `System` has too.
        let p = unsafe { System.alloc(layout) };
        advise(p, layout.size());
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        advise(p, layout.size());
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` (every block of this allocator does) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`, and the caller upholds `realloc`'s contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        advise(p, new_size);
        p
    }
}

/// Advises the whole 2 MiB pages inside `[p, p + size)` as huge-page memory, when the block is
/// large (a failed advice only leaves the pages small, so its result is not checked).
fn advise(p: *mut u8, size: usize) {
    #[cfg(target_os = "linux")]
    if !p.is_null() && size >= HUGE_BLOCK {
        const PAGE: usize = 2 << 20;
        let start = (p as usize).next_multiple_of(PAGE);
        let end = (p as usize + size) / PAGE * PAGE;
        if end > start {
            // SAFETY: `[start, end)` lies inside the block just allocated (rounded inwards to whole
            // pages); `MADV_HUGEPAGE` changes no contents and no mapping, only how pages are backed.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (p, size);
}
