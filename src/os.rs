//! The process's dealings with the operating system and allocators that need `unsafe`:
//! the open-file limit, handing freed memory back, starting writeback and mapping a file
//! read-only. A leaf: it uses nothing of the crate.
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

/// Start writing `len` bytes of `file` from `offset` to the disk, without waiting: a
/// large file written then synced takes the disk's time once after the writes; started
/// as it is written, most of that time passes while the rest is still being written.
/// Only speed depends on it: an error is ignored (the final sync waits for everything).
#[cfg(target_os = "linux")]
pub fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: sync_file_range on an open descriptor we own only starts writeback of the
    // file's pages; it reads and writes no memory of ours.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
pub fn start_writeback(_file: &std::fs::File, _offset: u64, _len: u64) {}

/// Takes a file that is being written to the disk as it grows, on a thread of its own:
/// the writeback of every [`Writeback::STEP`] written is started, and every
/// [`Writeback::SYNC_EVERY`] steps the file is synced. A quarter of a gigabyte synced
/// only when complete takes the disk's time after the writing; this way most of it passes
/// during the writing, and the writer never waits for the disk. Only speed depends on it:
/// the writer's own final sync waits for everything and reports any error (the thread
/// syncs through a descriptor of its own: a duplicate would share the kernel's error
/// cursor, and an error it met would not reach the final sync).
/// Dropped, it lets the thread end after what it was handed.
pub struct Writeback {
    ranges: std::sync::mpsc::Sender<(u64, u64)>,
    started: u64,
}

impl Writeback {
    pub const STEP: u64 = 16 << 20;
    pub const SYNC_EVERY: usize = 4;

    /// For the file at `path` (opened again, read-only). `None` if it cannot be opened or
    /// no thread can be started: then the final sync does it all.
    pub fn start(path: &std::path::Path) -> Option<Writeback> {
        let file = std::fs::File::open(path).ok()?;
        let (ranges, to_start) = std::sync::mpsc::channel::<(u64, u64)>();
        std::thread::Builder::new()
            .name("writeback".into())
            .spawn(move || {
                for (i, (offset, len)) in to_start.into_iter().enumerate() {
                    start_writeback(&file, offset, len);
                    if (i + 1) % Self::SYNC_EVERY == 0 {
                        let _ = file.sync_data();
                    }
                }
            })
            .ok()?;
        Some(Writeback { ranges, started: 0 })
    }

    /// Whether a file of `len` bytes has a step's worth not yet handed to the thread.
    pub fn due(&self, len: u64) -> bool {
        len >= self.started + Self::STEP
    }

    /// The file now holds `len` bytes (written, not buffered): a step's worth not yet
    /// started is handed to the thread.
    pub fn written(&mut self, len: u64) {
        if self.due(len) {
            // The thread gone, only speed is lost.
            let _ = self.ranges.send((self.started, len - self.started));
            self.started = len;
        }
    }

    /// Whether the thread has been handed anything yet.
    #[cfg(test)]
    pub fn busy(&self) -> bool {
        self.started > 0
    }
}

/// A file's bytes, mapped read-only with its pages populated (no copy into fresh memory).
/// For a file that is replaced only by renaming another over it, never rewritten in
/// place: `sync`'s own copy of a list. Written to in place meanwhile, the bytes seen may
/// change (what is made from them is checked against a hash before use); truncated
/// meanwhile, reading past the new end stops the process (SIGBUS) before it has changed
/// anything.
pub fn map_read_only(file: &std::fs::File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: see above; the mapping is private and read-only, and the bytes are only
    // read as `[u8]`, for which every value is valid.
    unsafe { memmap2::MmapOptions::new().populate().map(file) }
}
