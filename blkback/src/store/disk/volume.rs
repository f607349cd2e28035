//! A slice of the backing disk as the backend sees it: a [`DiskSlice`] (the volume source
//! a device opens) and a [`DiskVolume`] (one device's handle, its offset applied and its
//! range checked).

use alloc::string::String;

use minios::platform::Platform;

use super::Shared;
use crate::backend::VolumeSource;
use crate::store::{
    check_range, Completion, DataPort, Io, Started, StoreError, Volume, VolumeInfo,
};

/// A slice of the backing disk as a volume source: each device gets its own handle.
pub struct DiskSlice<P: Platform> {
    pub(super) store: Shared<P>,
    pub(super) offset: u64,
    pub(super) info: VolumeInfo,
}

impl<P: Platform + Clone + 'static> VolumeSource for DiskSlice<P> {
    fn open(&self, read_only: bool) -> Result<alloc::boxed::Box<dyn Volume>, String> {
        let handle = self.store.borrow_mut().open_handle();
        let mut info = self.info.clone();
        if read_only {
            info.read_only = true;
            info.discard = None;
        }
        Ok(alloc::boxed::Box::new(DiskVolume {
            store: self.store.clone(),
            handle,
            offset: self.offset,
            info,
        }))
    }
}

/// One device's handle on a disk slice.
pub struct DiskVolume<P: Platform> {
    store: Shared<P>,
    handle: u32,
    offset: u64,
    info: VolumeInfo,
}

impl<P: Platform + Clone + 'static> Volume for DiskVolume<P> {
    fn info(&self) -> &VolumeInfo {
        &self.info
    }

    fn start(&mut self, tag: u64, io: Io, data: &mut dyn DataPort) -> Started {
        let size = self.info.size;
        let shifted = match io {
            Io::Read { offset, len }
            | Io::Write { offset, len }
            | Io::Discard { offset, len, .. } => {
                if check_range(offset, len, size).is_err() {
                    return Started::Done(Err(StoreError::OutOfRange));
                }
                let at = self.offset + offset;
                match io {
                    Io::Read { .. } => Io::Read { offset: at, len },
                    Io::Write { .. } if self.info.read_only => {
                        return Started::Done(Err(StoreError::ReadOnly))
                    }
                    Io::Write { .. } => Io::Write { offset: at, len },
                    Io::Discard { .. } if self.info.read_only => {
                        return Started::Done(Err(StoreError::ReadOnly))
                    }
                    Io::Discard { secure, .. } => Io::Discard {
                        offset: at,
                        len,
                        secure,
                    },
                    Io::Flush => Io::Flush,
                }
            }
            Io::Flush => Io::Flush,
        };
        self.store
            .borrow_mut()
            .start(self.handle, tag, shifted, data)
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

impl<P: Platform> Drop for DiskVolume<P> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.store.try_borrow_mut() {
            s.close_handle(self.handle);
        }
    }
}
