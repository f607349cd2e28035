//! Writes initramfs archives in the `newc` cpio format the Linux kernel unpacks.
//!
//! Archives may be concatenated (also compressed with uncompressed), which the testbed uses to
//! add per-scenario files to a prebuilt guest initramfs.

use std::collections::BTreeMap;
use std::io::{self, Write};

/// One entry of an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory with permission bits.
    Dir { mode: u32 },
    /// A regular file with permission bits and contents.
    File { mode: u32, data: Vec<u8> },
    /// A symbolic link to `target`.
    Symlink { target: String },
}

/// An archive being assembled: paths (without leading `/`) to entries, parents created on demand.
#[derive(Debug, Default, Clone)]
pub struct Archive {
    entries: BTreeMap<String, Entry>,
}

fn normalise(path: &str) -> String {
    path.trim_start_matches('/')
        .trim_end_matches('/')
        .to_string()
}

impl Archive {
    /// An empty archive.
    pub fn new() -> Archive {
        Archive::default()
    }

    /// True when `path` is already in the archive.
    pub fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(&normalise(path))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the archive has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds a directory and its parents (mode 0755).
    pub fn dir(&mut self, path: &str) {
        let p = normalise(path);
        if p.is_empty() {
            return;
        }
        if let Some((parent, _)) = p.rsplit_once('/') {
            self.dir(parent);
        }
        self.entries.entry(p).or_insert(Entry::Dir { mode: 0o755 });
    }

    fn parent_of(&mut self, path: &str) {
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
    }

    /// Adds (or replaces) a file.
    pub fn file(&mut self, path: &str, mode: u32, data: impl Into<Vec<u8>>) {
        let p = normalise(path);
        self.parent_of(&p);
        self.entries.insert(
            p,
            Entry::File {
                mode,
                data: data.into(),
            },
        );
    }

    /// Adds (or replaces) a symbolic link.
    pub fn symlink(&mut self, path: &str, target: &str) {
        let p = normalise(path);
        self.parent_of(&p);
        self.entries.insert(
            p,
            Entry::Symlink {
                target: target.to_string(),
            },
        );
    }

    /// Total bytes of file contents.
    pub fn payload_bytes(&self) -> usize {
        self.entries
            .values()
            .map(|e| match e {
                Entry::File { data, .. } => data.len(),
                _ => 0,
            })
            .sum()
    }

    /// Writes the archive in newc format, parents before children, with the trailer.
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let mut offset = 0usize;
        for (ino, (path, entry)) in self.entries.iter().enumerate() {
            let (mode, data): (u32, &[u8]) = match entry {
                Entry::Dir { mode } => (0o040000 | mode, &[]),
                Entry::File { mode, data } => (0o100000 | mode, data),
                Entry::Symlink { target } => (0o120777, target.as_bytes()),
            };
            let nlink = if matches!(entry, Entry::Dir { .. }) {
                2
            } else {
                1
            };
            offset += write_header(out, offset, ino as u32 + 1, mode, nlink, path, data)?;
        }
        write_header(out, offset, 0, 0, 1, "TRAILER!!!", &[])?;
        Ok(())
    }

    /// The archive as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.payload_bytes() + self.entries.len() * 128);
        self.write_to(&mut v).expect("writing to a Vec cannot fail");
        v
    }
}

fn pad4(out: &mut impl Write, len: usize) -> io::Result<usize> {
    let pad = (4 - len % 4) % 4;
    out.write_all(&[0u8; 3][..pad])?;
    Ok(pad)
}

fn write_header(
    out: &mut impl Write,
    offset: usize,
    ino: u32,
    mode: u32,
    nlink: u32,
    name: &str,
    data: &[u8],
) -> io::Result<usize> {
    let header = format!(
        "070701{ino:08x}{mode:08x}{uid:08x}{gid:08x}{nlink:08x}{mtime:08x}{size:08x}\
         {dmaj:08x}{dmin:08x}{rmaj:08x}{rmin:08x}{namesize:08x}{check:08x}",
        uid = 0,
        gid = 0,
        mtime = 0,
        size = data.len(),
        dmaj = 0,
        dmin = 0,
        rmaj = 0,
        rmin = 0,
        namesize = name.len() + 1,
        check = 0,
    );
    out.write_all(header.as_bytes())?;
    out.write_all(name.as_bytes())?;
    out.write_all(&[0])?;
    let mut n = header.len() + name.len() + 1;
    n += pad4(out, offset + n)?;
    out.write_all(data)?;
    n += data.len();
    n += pad4(out, offset + n)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_and_alignment() {
        let mut a = Archive::new();
        a.file("/etc/hostname", 0o644, b"dom0\n".to_vec());
        let bytes = a.to_bytes();
        // "etc" directory first, then the file, then the trailer; every record 4-aligned.
        let s = String::from_utf8_lossy(&bytes);
        assert!(s.starts_with("070701"));
        let etc = s.find("etc\0").unwrap();
        let file = s.find("etc/hostname\0").unwrap();
        assert!(etc < file);
        assert_eq!(file % 4, 2, "name follows the 110-byte header");
        // The file's header says size 5, mode 0100644.
        let h = &s[file - 110..file];
        assert_eq!(&h[14..22], "000081a4");
        assert_eq!(&h[54..62], "00000005");
        assert!(s.contains("dom0\n"));
        assert!(s.ends_with("\0") && s.contains("TRAILER!!!"));
        assert_eq!(bytes.len() % 4, 0);
    }

    #[test]
    fn unpacks_with_gnu_cpio() {
        if std::process::Command::new("cpio")
            .arg("--version")
            .output()
            .is_err()
        {
            panic!("cpio is needed for this test: apt-get install cpio");
        }
        let mut a = Archive::new();
        a.file("bin/hello", 0o755, b"#!/bin/sh\necho hi\n".to_vec());
        a.symlink("bin/hi", "hello");
        a.dir("var/empty");
        let dir = std::env::temp_dir().join(format!("cpio-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = std::process::Command::new("cpio")
            .args(["-idm", "--quiet"])
            .current_dir(&dir)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(&a.to_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(
            std::fs::read(dir.join("bin/hello")).unwrap(),
            b"#!/bin/sh\necho hi\n"
        );
        assert_eq!(
            std::fs::read_link(dir.join("bin/hi")).unwrap().to_str(),
            Some("hello")
        );
        assert!(dir.join("var/empty").is_dir());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
