//! The Linux guest's Xen devices a userspace frontend needs: pages granted to another domain
//! (`/dev/xen/gntalloc`) and event channels (`/dev/xen/evtchn`).
//!
//! This is the agent's only `unsafe`: two ioctl-based character devices and a shared mapping,
//! the Linux-side equivalent of the hypercall boundary. Everything above it ([`Pages`]'s
//! bounds-checked reads and writes, [`Evtchn`]'s ports) is safe to use. Ioctl numbers are
//! `_IOC(_IOC_NONE, type, nr, size)` from Linux `include/uapi/xen/{gntalloc,evtchn}.h`.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::sync::atomic::{fence, AtomicU32, Ordering};

extern "C" {
    fn ioctl(fd: i32, request: u64, ...) -> i32;
    fn mmap(addr: *mut u8, len: usize, prot: i32, flags: i32, fd: i32, off: i64) -> *mut u8;
    fn munmap(addr: *mut u8, len: usize) -> i32;
}

/// Size of a granted page.
pub const PAGE: usize = 4096;
const PROT_READ_WRITE: i32 = 0x1 | 0x2;
const MAP_SHARED: i32 = 0x1;
/// `_IOC(0, 'G', 5, 24)`: `struct ioctl_gntalloc_alloc_gref` with one `gref_ids` entry.
const IOCTL_GNTALLOC_ALLOC_GREF: u64 = (24 << 16) | ((b'G' as u64) << 8) | 5;
/// `_IOC(0, 'G', 6, 16)`: `struct ioctl_gntalloc_dealloc_gref`.
const IOCTL_GNTALLOC_DEALLOC_GREF: u64 = (16 << 16) | ((b'G' as u64) << 8) | 6;
/// `GNTALLOC_FLAG_WRITABLE`.
const GNTALLOC_FLAG_WRITABLE: u16 = 1;
/// `_IOC(0, 'E', 2, 4)`: bind an unbound port for a remote domain.
const IOCTL_EVTCHN_BIND_UNBOUND_PORT: u64 = (4 << 16) | ((b'E' as u64) << 8) | 2;
/// `_IOC(0, 'E', 4, 4)`: notify a port.
const IOCTL_EVTCHN_NOTIFY: u64 = (4 << 16) | ((b'E' as u64) << 8) | 4;

fn open_rw(path: &str) -> Result<File, String> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("{path}: {e} (is the module loaded?)"))
}

/// `/dev/xen/gntalloc`: allocates pages granted to one domain.
pub struct Gntalloc {
    file: File,
}

impl Gntalloc {
    /// Opens the device.
    pub fn open() -> Result<Self, String> {
        Ok(Self {
            file: open_rw("/dev/xen/gntalloc")?,
        })
    }

    /// Allocates `count` zeroed pages, granted writable to `domid`, and maps them.
    pub fn alloc(&self, domid: u16, count: usize) -> Result<Pages, String> {
        assert!(count > 0);
        // The struct (24 bytes with one gref) grows by 4 bytes per further gref; u64 words
        // keep it aligned.
        let mut buf = vec![0u64; (24 + 4 * count).div_ceil(8)];
        buf[0] =
            u64::from(domid) | (u64::from(GNTALLOC_FLAG_WRITABLE) << 16) | ((count as u64) << 32);
        let fd = self.file.as_raw_fd();
        // SAFETY: `buf` is a live, writable buffer large enough for the struct with `count`
        // gref_ids, as the ioctl requires.
        let r = unsafe { ioctl(fd, IOCTL_GNTALLOC_ALLOC_GREF, buf.as_mut_ptr()) };
        if r != 0 {
            return Err(format!(
                "gntalloc alloc of {count} pages: {}",
                std::io::Error::last_os_error()
            ));
        }
        let index = buf[1];
        let grefs: Vec<u32> = (0..count)
            .map(|i| {
                let word = buf[2 + i / 2];
                (if i % 2 == 0 { word } else { word >> 32 }) as u32
            })
            .collect();
        let len = count * PAGE;
        // SAFETY: a fresh shared mapping of the pages just allocated at `index`; the kernel
        // picks the address; failure is checked below.
        let ptr = unsafe {
            mmap(
                std::ptr::null_mut(),
                len,
                PROT_READ_WRITE,
                MAP_SHARED,
                fd,
                index as i64,
            )
        };
        let pages = Pages {
            file: self.file.try_clone().map_err(|e| e.to_string())?,
            index,
            grefs,
            ptr: if ptr as isize == -1 {
                std::ptr::null_mut()
            } else {
                ptr
            },
            len,
        };
        if pages.ptr.is_null() {
            return Err(format!(
                "gntalloc mmap: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(pages)
    }
}

/// Pages granted to another domain, mapped here. Dropping them unmaps them and ends the
/// grants (the kernel defers that while the other domain still maps a page).
pub struct Pages {
    file: File,
    index: u64,
    grefs: Vec<u32>,
    ptr: *mut u8,
    len: usize,
}

impl Pages {
    /// The grant reference of page `i`.
    pub fn gref(&self, i: usize) -> u32 {
        self.grefs[i]
    }

    fn check(&self, off: usize, len: usize) {
        assert!(
            off.checked_add(len).is_some_and(|end| end <= self.len),
            "access {off}+{len} beyond {} mapped bytes",
            self.len
        );
    }

    /// Copies `data` into the pages at byte offset `off` (page `i` starts at `i * PAGE`).
    pub fn write(&self, off: usize, data: &[u8]) {
        self.check(off, data.len());
        for (i, b) in data.iter().enumerate() {
            // SAFETY: in bounds of the live mapping (checked above); volatile because the
            // other domain reads it concurrently.
            unsafe { self.ptr.add(off + i).write_volatile(*b) };
        }
        fence(Ordering::SeqCst);
    }

    /// Fills `len` bytes at `off` with `byte`.
    pub fn fill(&self, off: usize, len: usize, byte: u8) {
        self.write(off, &vec![byte; len]);
    }

    /// Copies bytes at `off` out of the pages.
    pub fn read(&self, off: usize, len: usize) -> Vec<u8> {
        self.check(off, len);
        fence(Ordering::SeqCst);
        (0..len)
            // SAFETY: in bounds of the live mapping (checked above); volatile because the
            // other domain writes it concurrently.
            .map(|i| unsafe { self.ptr.add(off + i).read_volatile() })
            .collect()
    }

    fn atomic(&self, off: usize) -> &AtomicU32 {
        self.check(off, 4);
        assert_eq!(off % 4, 0, "unaligned index");
        // SAFETY: in bounds and 4-byte aligned (the mapping is page-aligned); the mapping
        // lives as long as `self`, and the other domain accesses it only atomically.
        unsafe { AtomicU32::from_ptr(self.ptr.add(off).cast::<u32>()) }
    }

    /// Reads a ring index (acquire).
    pub fn load_u32(&self, off: usize) -> u32 {
        self.atomic(off).load(Ordering::SeqCst)
    }

    /// Writes a ring index (release, after every earlier write).
    pub fn store_u32(&self, off: usize, v: u32) {
        fence(Ordering::SeqCst);
        self.atomic(off).store(v, Ordering::SeqCst)
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `alloc`; no reference into it outlives
        // `self` (accessors copy).
        unsafe { munmap(self.ptr, self.len) };
        let mut arg = [self.index, self.grefs.len() as u64];
        // SAFETY: `arg` has the layout of `struct ioctl_gntalloc_dealloc_gref`.
        unsafe {
            ioctl(
                self.file.as_raw_fd(),
                IOCTL_GNTALLOC_DEALLOC_GREF,
                arg.as_mut_ptr(),
            )
        };
    }
}

/// `/dev/xen/evtchn`: event channels of this process (closed with it).
pub struct Evtchn {
    file: File,
}

impl Evtchn {
    /// Opens the device.
    pub fn open() -> Result<Self, String> {
        Ok(Self {
            file: open_rw("/dev/xen/evtchn")?,
        })
    }

    /// Allocates a port that domain `remote` may bind to; returns the local port.
    pub fn bind_unbound(&self, remote: u16) -> Result<u32, String> {
        let mut arg = u32::from(remote);
        // SAFETY: `arg` has the layout of `struct ioctl_evtchn_bind_unbound_port`.
        let r = unsafe {
            ioctl(
                self.file.as_raw_fd(),
                IOCTL_EVTCHN_BIND_UNBOUND_PORT,
                &mut arg as *mut u32,
            )
        };
        if r < 0 {
            return Err(format!(
                "evtchn bind unbound port: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(r as u32)
    }

    /// Notifies the remote end of `port`.
    pub fn notify(&self, port: u32) -> Result<(), String> {
        let mut arg = port;
        // SAFETY: `arg` has the layout of `struct ioctl_evtchn_notify`.
        let r = unsafe {
            ioctl(
                self.file.as_raw_fd(),
                IOCTL_EVTCHN_NOTIFY,
                &mut arg as *mut u32,
            )
        };
        if r < 0 {
            return Err(format!(
                "evtchn notify: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(())
    }
}
