//! Byte images of the fixed-size structs that live in shared memory.
//!
//! A backend copies a request out of a shared page exactly once (XSA-155) as bytes and decodes
//! it with [`WireStruct::read_from`]; it emits a response with [`WireStruct::write_to`], which
//! writes every byte of the slot, padding included, as zero where the struct has none
//! (XSA-216). Both are plain little-endian field copies at the C offsets: no `unsafe`, no
//! alignment requirement on the buffer.

use core::fmt;

/// A buffer was shorter than the struct it should hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShortBuffer {
    /// Bytes the struct needs.
    pub need: usize,
    /// Bytes the buffer had.
    pub have: usize,
}

impl fmt::Display for ShortBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "buffer of {} bytes is shorter than the {} bytes needed",
            self.have, self.need
        )
    }
}

/// A `#[repr(C)]` struct with a defined little-endian byte image of `SIZE` bytes.
pub trait WireStruct: Sized {
    /// Size of the byte image; equals `size_of::<Self>()`.
    const SIZE: usize;

    /// Decodes the struct from the first [`SIZE`](Self::SIZE) bytes of `src`.
    fn read_from(src: &[u8]) -> Result<Self, ShortBuffer>;

    /// Encodes the struct into the first [`SIZE`](Self::SIZE) bytes of `dst`, writing every
    /// one of them (bytes between fields become zero).
    fn write_to(&self, dst: &mut [u8]) -> Result<(), ShortBuffer>;
}

/// Returns the first `need` bytes of `buf`, or the shortfall.
pub(crate) fn prefix(buf: &[u8], need: usize) -> Result<&[u8], ShortBuffer> {
    buf.get(..need).ok_or(ShortBuffer {
        need,
        have: buf.len(),
    })
}

/// Returns the first `need` bytes of `buf` mutably, or the shortfall.
pub(crate) fn prefix_mut(buf: &mut [u8], need: usize) -> Result<&mut [u8], ShortBuffer> {
    let have = buf.len();
    buf.get_mut(..need).ok_or(ShortBuffer { need, have })
}

/// A field type with a little-endian byte image. Callers guarantee the slice is long enough
/// (the struct's image was length-checked and offsets come from `offset_of!`).
pub(crate) trait Field: Sized {
    /// Size of the field's image.
    const SIZE: usize;
    /// Reads the field from the start of `b`.
    fn get(b: &[u8]) -> Self;
    /// Writes the field to the start of `b`.
    fn put(&self, b: &mut [u8]);
}

macro_rules! int_field {
    ($($t:ty),*) => {$(
        impl Field for $t {
            const SIZE: usize = core::mem::size_of::<$t>();
            fn get(b: &[u8]) -> Self {
                let mut raw = [0u8; core::mem::size_of::<$t>()];
                raw.copy_from_slice(&b[..Self::SIZE]);
                <$t>::from_le_bytes(raw)
            }
            fn put(&self, b: &mut [u8]) {
                b[..Self::SIZE].copy_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
int_field!(u8, i8, u16, i16, u32, i32, u64, i64);

impl<T: Field, const N: usize> Field for [T; N] {
    const SIZE: usize = T::SIZE * N;
    fn get(b: &[u8]) -> Self {
        core::array::from_fn(|i| T::get(&b[i * T::SIZE..]))
    }
    fn put(&self, b: &mut [u8]) {
        for (i, item) in self.iter().enumerate() {
            item.put(&mut b[i * T::SIZE..]);
        }
    }
}

/// Implements [`WireStruct`] (and the internal `Field`, so the struct can nest) for a
/// `#[repr(C)]` struct from the list of its fields, at their `offset_of!` positions.
macro_rules! impl_wire {
    ($t:ty { $($f:ident),* $(,)? }) => {
        impl $crate::wire::WireStruct for $t {
            const SIZE: usize = core::mem::size_of::<$t>();
            fn read_from(src: &[u8]) -> Result<Self, $crate::wire::ShortBuffer> {
                let src = $crate::wire::prefix(src, <Self as $crate::wire::WireStruct>::SIZE)?;
                Ok(Self {
                    $($f: $crate::wire::Field::get(&src[core::mem::offset_of!($t, $f)..]),)*
                })
            }
            fn write_to(&self, dst: &mut [u8]) -> Result<(), $crate::wire::ShortBuffer> {
                let dst = $crate::wire::prefix_mut(dst, <Self as $crate::wire::WireStruct>::SIZE)?;
                dst.fill(0);
                // Braces copy the field out, which also works for packed structs.
                $($crate::wire::Field::put(&{ self.$f }, &mut dst[core::mem::offset_of!($t, $f)..]);)*
                Ok(())
            }
        }
        impl $crate::wire::Field for $t {
            const SIZE: usize = core::mem::size_of::<$t>();
            fn get(b: &[u8]) -> Self {
                match <$t as $crate::wire::WireStruct>::read_from(b) {
                    Ok(v) => v,
                    Err(_) => unreachable!("nested field image was length-checked by its parent"),
                }
            }
            fn put(&self, b: &mut [u8]) {
                // Cannot fail: the parent struct's image was length-checked.
                let _ = <$t as $crate::wire::WireStruct>::write_to(self, b);
            }
        }
    };
}
pub(crate) use impl_wire;

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Inner {
        a: u16,
        b: u8,
    }
    impl_wire!(Inner { a, b });

    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Outer {
        x: u8,
        y: u64,
        inner: [Inner; 2],
        z: i16,
    }
    impl_wire!(Outer { x, y, inner, z });

    #[test]
    fn round_trip_zeroes_padding() {
        let v = Outer {
            x: 0xaa,
            y: 0x0102_0304_0506_0708,
            inner: [Inner { a: 0x1122, b: 0x33 }, Inner { a: 0x4455, b: 0x66 }],
            z: -2,
        };
        let mut buf = [0xffu8; 32];
        v.write_to(&mut buf).unwrap();
        assert_eq!(
            buf,
            [
                0xaa, 0, 0, 0, 0, 0, 0, 0, // x + padding
                8, 7, 6, 5, 4, 3, 2, 1, // y
                0x22, 0x11, 0x33, 0, 0x55, 0x44, 0x66, 0, // inner[0..2]
                0xfe, 0xff, 0, 0, 0, 0, 0, 0, // z + tail padding
            ]
        );
        assert_eq!(Outer::read_from(&buf).unwrap(), v);
    }

    #[test]
    fn short_buffers_are_errors() {
        assert_eq!(
            Outer::read_from(&[0u8; 31]),
            Err(ShortBuffer { need: 32, have: 31 })
        );
        let mut small = [0u8; 4];
        let v = Outer::read_from(&[0u8; 40]).unwrap();
        assert_eq!(
            v.write_to(&mut small),
            Err(ShortBuffer { need: 32, have: 4 })
        );
    }
}
