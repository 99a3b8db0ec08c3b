//! How the process's heap hands large buffers back to the system.
//!
//! A pull moves large, short-lived buffers: response bodies and pages of tens of megabytes (a
//! Bulk API results chunk of 50,000 records is about 50 MB). glibc's malloc serves such blocks
//! with `mmap` and unmaps them when they are freed, but after the first such free it raises its
//! mmap threshold (up to 32 MiB) and serves later ones from the heap, where freed memory stays
//! resident: the peak RSS of a 1M-record Bulk backfill then reads about 70 MB higher. Fixing
//! the threshold keeps every buffer over 1 MiB in a mapping of its own, returned when freed.

/// The size from which glibc's malloc always maps a block of its own.
const MMAP_THRESHOLD: i32 = 1 << 20;

/// Fixes glibc's mmap threshold at 1 MiB (nothing elsewhere). Call it once, first thing in
/// `main`.
pub fn return_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: mallopt only sets one of malloc's tuning parameters, from a constant; glibc
    // takes its own lock for it, so it is sound whatever other threads are doing.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}
