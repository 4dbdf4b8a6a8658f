//! The process's memory: the allocator is told to keep few arenas and to
//! hand freed memory back, so an idle docpipe (and an idle parser process)
//! stays small after a burst of work.

/// At start: at most two malloc arenas (glibc makes up to eight per core,
/// each keeping its own freed memory).
pub fn limit_arenas() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator parameter.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Hands memory the allocator holds but no longer uses back to the system.
pub fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
