//! Shared pieces of the crate's unit tests: a tiny ring protocol.

use xen_abi::{ShortBuffer, WireStruct};

fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A request of the test protocol: 8 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TestReq {
    pub(crate) id: u32,
    pub(crate) value: u32,
}

/// A response: a `u32` and a `u16`, so 2 bytes of tail padding a backend must zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TestRsp {
    pub(crate) id: u32,
    pub(crate) status: u16,
}

impl WireStruct for TestReq {
    const SIZE: usize = 8;
    fn read_from(src: &[u8]) -> Result<Self, ShortBuffer> {
        let b = src.get(..8).ok_or(ShortBuffer {
            need: 8,
            have: src.len(),
        })?;
        Ok(Self {
            id: get_u32(b, 0),
            value: get_u32(b, 4),
        })
    }
    fn write_to(&self, dst: &mut [u8]) -> Result<(), ShortBuffer> {
        let have = dst.len();
        let b = dst.get_mut(..8).ok_or(ShortBuffer { need: 8, have })?;
        b[..4].copy_from_slice(&self.id.to_le_bytes());
        b[4..].copy_from_slice(&self.value.to_le_bytes());
        Ok(())
    }
}

impl WireStruct for TestRsp {
    const SIZE: usize = 8;
    fn read_from(src: &[u8]) -> Result<Self, ShortBuffer> {
        let b = src.get(..8).ok_or(ShortBuffer {
            need: 8,
            have: src.len(),
        })?;
        Ok(Self {
            id: get_u32(b, 0),
            status: u16::from_le_bytes([b[4], b[5]]),
        })
    }
    fn write_to(&self, dst: &mut [u8]) -> Result<(), ShortBuffer> {
        let have = dst.len();
        let b = dst.get_mut(..8).ok_or(ShortBuffer { need: 8, have })?;
        b.fill(0);
        b[..4].copy_from_slice(&self.id.to_le_bytes());
        b[4..6].copy_from_slice(&self.status.to_le_bytes());
        Ok(())
    }
}
