//! Just enough ELF64 parsing for image assembly: DT_NEEDED, the interpreter and named sections.

/// A parsed little-endian ELF64 file (borrowed bytes).
pub struct Elf<'a> {
    data: &'a [u8],
}

const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;

impl<'a> Elf<'a> {
    /// Parses the header; `None` for anything but a little-endian ELF64 file.
    pub fn parse(data: &'a [u8]) -> Option<Elf<'a>> {
        (data.len() >= 64 && &data[..4] == b"\x7fELF" && data[4] == 2 && data[5] == 1)
            .then_some(Elf { data })
    }

    fn u16(&self, off: usize) -> Option<u16> {
        Some(u16::from_le_bytes(
            self.data.get(off..off + 2)?.try_into().ok()?,
        ))
    }
    fn u32(&self, off: usize) -> Option<u32> {
        Some(u32::from_le_bytes(
            self.data.get(off..off + 4)?.try_into().ok()?,
        ))
    }
    fn u64(&self, off: usize) -> Option<u64> {
        Some(u64::from_le_bytes(
            self.data.get(off..off + 8)?.try_into().ok()?,
        ))
    }
    fn cstr(&self, off: usize) -> Option<&'a str> {
        let rest = self.data.get(off..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        std::str::from_utf8(&rest[..end]).ok()
    }

    /// Program headers as `(type, offset, vaddr, filesz)`.
    fn segments(&self) -> Vec<(u32, u64, u64, u64)> {
        let (Some(phoff), Some(phentsize), Some(phnum)) =
            (self.u64(0x20), self.u16(0x36), self.u16(0x38))
        else {
            return Vec::new();
        };
        (0..phnum as usize)
            .filter_map(|i| {
                let b = phoff as usize + i * phentsize as usize;
                Some((
                    self.u32(b)?,
                    self.u64(b + 8)?,
                    self.u64(b + 16)?,
                    self.u64(b + 32)?,
                ))
            })
            .collect()
    }

    /// Maps a virtual address to a file offset through the loadable segments.
    fn vaddr_to_offset(&self, vaddr: u64) -> Option<usize> {
        self.segments()
            .into_iter()
            .find(|&(t, _, va, sz)| t == 1 && vaddr >= va && vaddr < va + sz)
            .map(|(_, off, va, _)| (off + vaddr - va) as usize)
    }

    /// The program interpreter (`PT_INTERP`), for dynamically linked executables.
    pub fn interpreter(&self) -> Option<&'a str> {
        let (_, off, _, _) = self.segments().into_iter().find(|s| s.0 == PT_INTERP)?;
        self.cstr(off as usize)
    }

    /// The `DT_NEEDED` library names.
    pub fn needed(&self) -> Vec<&'a str> {
        let Some((_, dyn_off, _, dyn_size)) =
            self.segments().into_iter().find(|s| s.0 == PT_DYNAMIC)
        else {
            return Vec::new();
        };
        let entries: Vec<(u64, u64)> = (0..dyn_size as usize / 16)
            .filter_map(|i| {
                let b = dyn_off as usize + i * 16;
                Some((self.u64(b)?, self.u64(b + 8)?))
            })
            .take_while(|&(tag, _)| tag != 0)
            .collect();
        let Some(strtab) = entries
            .iter()
            .find(|e| e.0 == DT_STRTAB)
            .and_then(|e| self.vaddr_to_offset(e.1))
        else {
            return Vec::new();
        };
        entries
            .iter()
            .filter(|e| e.0 == DT_NEEDED)
            .filter_map(|e| self.cstr(strtab + e.1 as usize))
            .collect()
    }

    /// The contents of the section called `name`, if any.
    pub fn section(&self, name: &str) -> Option<&'a [u8]> {
        let shoff = self.u64(0x28)? as usize;
        let shentsize = self.u16(0x3a)? as usize;
        let shnum = self.u16(0x3c)? as usize;
        let shstrndx = self.u16(0x3e)? as usize;
        let sh = |i: usize| shoff + i * shentsize;
        let strtab = self.u64(sh(shstrndx) + 0x18)? as usize;
        (0..shnum).find_map(|i| {
            let n = self.u32(sh(i))? as usize;
            if self.cstr(strtab + n)? != name {
                return None;
            }
            let off = self.u64(sh(i) + 0x18)? as usize;
            let size = self.u64(sh(i) + 0x20)? as usize;
            self.data.get(off..off + size)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_needed_and_interpreter_of_a_host_binary() {
        let exe = std::fs::read("/bin/sh").expect("/bin/sh exists on Debian");
        let elf = Elf::parse(&exe).expect("/bin/sh is ELF64");
        assert!(elf.needed().contains(&"libc.so.6"), "{:?}", elf.needed());
        assert!(elf.interpreter().unwrap().contains("ld-linux-x86-64"));
        assert!(elf.section(".text").is_some_and(|t| !t.is_empty()));
        assert!(Elf::parse(b"#!/bin/sh\n").is_none());
    }
}
