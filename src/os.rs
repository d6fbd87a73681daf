//! The process's dealings with the operating system and allocators that need `unsafe`:
//! the open-file limit and handing freed memory back. A leaf: it uses nothing of the crate.
#![allow(unsafe_code)]

/// Open connections are file descriptors: use the hard limit, not the (often 1024) soft
/// one, so many idle clients cannot lock normal ones out.
pub fn raise_file_limit() {
    // SAFETY: getrlimit/setrlimit on our own process with a valid struct.
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

/// Hand memory freed by a large command (an import preview of hundreds of MB) back to the
/// operating system: glibc keeps freed heap in its arenas otherwise, and mimalloc (libxml2's
/// allocator, see `xml::libxml`) its freed pages, and a long-running server would stay at
/// the command's peak.
pub fn release_memory() {
    // SAFETY: these only set up this thread's allocator state and release memory that is
    // free; none has preconditions. mi_collect does nothing on a thread mimalloc has not
    // seen (a blocking-pool thread whose libxml2 work ran on scoped threads), hence the init.
    unsafe {
        libmimalloc_sys::mi_thread_init();
        libmimalloc_sys::mi_collect(true);
        #[cfg(target_env = "gnu")]
        libc::malloc_trim(0);
    }
}
