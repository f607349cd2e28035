//! The Xen/Linux release the testbed is built from: one setting.

/// A Debian release providing Xen, Linux and dom0 userspace for the testbed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    /// Debian suite name (`bookworm`, `trixie`).
    pub suite: &'static str,
    /// Xen version as in Debian's package names (`4.17`).
    pub xen: &'static str,
    /// Package providing libxl and friends (`libxenmisc4.17`).
    pub libxenmisc: &'static str,
    /// Source package of the kernel (`linux-source-6.1`) used to build xen-hcd.
    pub linux_source: &'static str,
    /// kbuild package matching the kernel headers.
    pub linux_kbuild: &'static str,
}

/// Debian 12: Xen 4.17, Linux 6.1 (the default).
pub const BOOKWORM: Release = Release {
    suite: "bookworm",
    xen: "4.17",
    libxenmisc: "libxenmisc4.17",
    linux_source: "linux-source-6.1",
    linux_kbuild: "linux-kbuild-6.1",
};

/// Debian 13: Xen 4.20, Linux 6.12.
pub const TRIXIE: Release = Release {
    suite: "trixie",
    xen: "4.20",
    libxenmisc: "libxenmisc4.20",
    linux_source: "linux-source-6.12",
    linux_kbuild: "linux-kbuild-6.12",
};

impl Release {
    /// Selects a release by suite name or Xen version; `XDD_RELEASE` picks it on the command line.
    pub fn by_name(name: &str) -> Option<Release> {
        [BOOKWORM, TRIXIE]
            .into_iter()
            .find(|r| r.suite == name || r.xen == name || format!("xen-{}", r.xen) == name)
    }

    /// The release chosen by `XDD_RELEASE`, or bookworm.
    pub fn from_env() -> Result<Release, String> {
        match std::env::var("XDD_RELEASE") {
            Ok(name) if !name.is_empty() => Release::by_name(&name).ok_or_else(|| {
                format!("XDD_RELEASE={name}: unknown release (use bookworm/4.17 or trixie/4.20)")
            }),
            _ => Ok(BOOKWORM),
        }
    }

    /// Directory where the real Xen tools live inside the extracted packages.
    pub fn xen_bin_dir(&self) -> String {
        format!("usr/lib/xen-{}/bin", self.xen)
    }

    /// Packages for dom0: hypervisor, toolstack, its libraries, busybox.
    pub fn dom0_packages(&self) -> Vec<String> {
        let mut v: Vec<String> = [
            "xen-utils-{x}",
            "xen-hypervisor-{x}-amd64",
            "libxenstore4",
            "libxencall1",
            "libxendevicemodel1",
            "libxenevtchn1",
            "libxenforeignmemory1",
            "libxengnttab1",
            "libxenhypfs1",
            "libxentoolcore1",
            "libxentoollog1",
            "libyajl2",
            "libc6",
            "libuuid1",
            "zlib1g",
            "liblzma5",
            "libzstd1",
            "libgcc-s1",
            "busybox-static",
        ]
        .iter()
        .map(|p| p.replace("{x}", self.xen))
        .collect();
        v.push(self.libxenmisc.to_string());
        v
    }

    /// Packages whose programs the guests' test scenarios use.
    pub fn guest_tool_packages(&self) -> Vec<String> {
        let ssl = if self.suite == "bookworm" {
            "libssl3"
        } else {
            "libssl3t64"
        };
        // e2fsprogs (mke2fs, e2fsck) and its libraries: ext4 in the blkdd scenarios.
        let ext2fs = if self.suite == "bookworm" {
            "libext2fs2"
        } else {
            "libext2fs2t64"
        };
        [
            "iperf3",
            "libiperf0",
            "libsctp1",
            ssl,
            "ethtool",
            "libmnl0",
            "e2fsprogs",
            ext2fs,
            "libcom-err2",
            "libblkid1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}
