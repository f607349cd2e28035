//! A slice of the owned device as the backend sees it: a [`DeviceSlice`] (the volume source
//! a device opens) and a [`DeviceVolume`] (one device's handle, its offset applied and its
//! range and access checked).

use alloc::boxed::Box;
use alloc::string::String;

use super::Shared;
use crate::backend::VolumeSource;
use crate::store::{
    check_range, Completion, DataPort, Io, Started, StoreError, Volume, VolumeInfo,
};

/// A slice of the device as a volume source: each device gets its own handle.
pub struct DeviceSlice {
    pub(super) store: Shared,
    pub(super) offset: u64,
    pub(super) info: VolumeInfo,
}

impl DeviceSlice {
    /// What guests see of the slice.
    pub fn info(&self) -> &VolumeInfo {
        &self.info
    }
}

impl VolumeSource for DeviceSlice {
    fn open(&self, read_only: bool) -> Result<Box<dyn Volume>, String> {
        let handle = self.store.borrow_mut().open_handle();
        let mut info = self.info.clone();
        if read_only {
            info.read_only = true;
            info.discard = None;
        }
        Ok(Box::new(DeviceVolume {
            store: self.store.clone(),
            handle,
            offset: self.offset,
            info,
        }))
    }
}

/// One device's handle on a slice.
pub struct DeviceVolume {
    store: Shared,
    handle: u32,
    offset: u64,
    info: VolumeInfo,
}

/// `io` on a slice at `offset` of `info.size` bytes, in device offsets: range and access
/// checked (a flush stays a flush).
pub fn on_device(io: Io, offset: u64, info: &VolumeInfo) -> Result<Io, StoreError> {
    let (at, len) = match io {
        Io::Flush => return Ok(Io::Flush),
        Io::Read { offset: o, len } | Io::Write { offset: o, len } => (o, len),
        Io::Discard { offset: o, len, .. } => (o, len),
    };
    check_range(at, len, info.size)?;
    let at = offset.checked_add(at).ok_or(StoreError::OutOfRange)?;
    Ok(match io {
        Io::Read { .. } => Io::Read { offset: at, len },
        Io::Write { .. } | Io::Discard { .. } if info.read_only => {
            return Err(StoreError::ReadOnly)
        }
        Io::Write { .. } => Io::Write { offset: at, len },
        Io::Discard { secure, .. } => Io::Discard {
            offset: at,
            len,
            secure,
        },
        Io::Flush => Io::Flush,
    })
}

impl Volume for DeviceVolume {
    fn info(&self) -> &VolumeInfo {
        &self.info
    }

    fn start(&mut self, tag: u64, io: Io, data: &mut dyn DataPort) -> Started {
        match on_device(io, self.offset, &self.info) {
            Ok(io) => self.store.borrow_mut().start(self.handle, tag, io, data),
            Err(e) => Started::Done(Err(e)),
        }
    }

    fn completed(&mut self) -> Option<Completion> {
        let mut s = self.store.borrow_mut();
        if s.handles
            .get(&self.handle)
            .is_some_and(|st| st.done.is_empty())
        {
            s.pump();
        }
        s.handles.get_mut(&self.handle)?.done.pop_front()
    }

    fn in_flight(&self) -> usize {
        self.store
            .borrow()
            .handles
            .get(&self.handle)
            .map_or(0, |st| st.in_flight)
    }

    fn detach(&mut self) {
        self.store.borrow_mut().detach_handle(self.handle);
    }
}

impl Drop for DeviceVolume {
    fn drop(&mut self) {
        if let Ok(mut s) = self.store.try_borrow_mut() {
            s.close_handle(self.handle);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(size: u64, read_only: bool) -> VolumeInfo {
        VolumeInfo {
            name: "v".into(),
            size,
            sector_size: 512,
            read_only,
            discard: None,
        }
    }

    #[test]
    fn slices_shift_and_bound_their_requests() {
        let i = info(1 << 20, false);
        let r = Io::Read {
            offset: 4096,
            len: 8192,
        };
        assert_eq!(
            on_device(r, 32 << 20, &i),
            Ok(Io::Read {
                offset: (32 << 20) + 4096,
                len: 8192
            })
        );
        let past = Io::Write {
            offset: (1 << 20) - 4096,
            len: 8192,
        };
        assert_eq!(on_device(past, 0, &i), Err(StoreError::OutOfRange));
        let huge = Io::Read {
            offset: u64::MAX - 10,
            len: 20,
        };
        assert_eq!(on_device(huge, 0, &i), Err(StoreError::OutOfRange));
        assert_eq!(on_device(Io::Flush, 7, &i), Ok(Io::Flush));
    }

    #[test]
    fn read_only_slices_refuse_writes_and_discards() {
        let i = info(1 << 20, true);
        let w = Io::Write {
            offset: 0,
            len: 4096,
        };
        assert_eq!(on_device(w, 0, &i), Err(StoreError::ReadOnly));
        let d = Io::Discard {
            offset: 0,
            len: 4096,
            secure: false,
        };
        assert_eq!(on_device(d, 0, &i), Err(StoreError::ReadOnly));
        let r = Io::Read {
            offset: 0,
            len: 4096,
        };
        assert!(on_device(r, 0, &i).is_ok());
    }
}
