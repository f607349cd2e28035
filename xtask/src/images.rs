//! Image assembly for the testbed: Xen, the dom0 initramfs (toolstack, guest kernels and
//! initramfs images, our unikernels, scenarios), the Linux guest and driver-domain initramfs.

use crate::fetch::{Cache, Manifest};
use crate::rootfs::RootFs;
use crate::unikernels;
use crate::util::{self, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use testbed_agent::scenario::Scenario;

/// Kernel modules every Linux guest loads at boot.
const GUEST_MODULES: &[&str] = &["xen-netfront", "xen-blkfront"];
/// Modules a guest may load on request (`xdd.modules=a,b` on its command line).
const GUEST_OPTIONAL_MODULES: &[&str] = &[
    "snd_xen_front",
    "xen-hcd",
    "usb-storage",
    "sd_mod",
    "usbhid",
    "hid-generic",
    "xen-pcifront",
    "virtio_net",
    "virtio_blk",
    "virtio_pci",
    "xhci-pci",
    "snd-hda-intel",
    // The codec driver QEMU's hda-output binds to (not a dependency of snd-hda-intel, which
    // asks the kernel's modprobe for it): loaded before it by `bench snd`'s direct guest.
    "snd-hda-codec-generic",
    // A USB audio device over PVUSB (QEMU's usb-audio on `xhci-media`).
    "snd-usb-audio",
    // USB traffic as the guest's USB core sees it (/sys/kernel/debug/usb/usbmon).
    "usbmon",
    "crc32c_generic",
    "ext4",
    // The hostile frontend (`testbed-agent hostile`) grants pages and binds event channels.
    "xen-gntalloc",
    "xen-evtchn",
];
/// Modules of a Linux driver domain.
const LINUXDD_MODULES: &[&str] = &[
    "xen-netfront",
    "xen-blkfront",
    "xen-netback",
    "xen-blkback",
    "bridge",
    "loop",
    "xen-gntdev",
    "xen-evtchn",
    "xenfs",
];
/// Modules a Linux driver domain may load on request (`xdd.modules=a,b`): those to own a
/// passed-through virtio-net (bridged to its vifs with `xdd.uplink=eth0`) or NVMe controller
/// (its namespace served by blkback, `bench blk`).
const LINUXDD_OPTIONAL_MODULES: &[&str] = &["xen-pcifront", "virtio_pci", "virtio_net", "nvme"];
/// Modules of dom0. virtio_pci comes after xen-pciback, which has by then taken the devices
/// hidden from dom0, so it binds only the NIC dom0 keeps (QEMU device `virtio-net-dom0`).
const DOM0_MODULES: &[&str] = &[
    "xen-evtchn",
    "xen-gntdev",
    "xen-gntalloc",
    "xen-privcmd",
    "xenfs",
    "xen-netback",
    "xen-blkback",
    "xen-pciback",
    "bridge",
    "loop",
    "virtio_pci",
    "virtio_net",
];
/// Modules in dom0's initramfs that it loads only when a scenario asks (`modprobe nvme`: the
/// NVMe controller dom0 keeps, QEMU device `nvme-dom0`; pciback holds the hidden ones).
const DOM0_OPTIONAL_MODULES: &[&str] = &["nvme"];
/// Toolstack programs dom0 needs (in the Xen bin directory).
const DOM0_XEN_PROGRAMS: &[&str] = &[
    "xl",
    "xenstored",
    "xenconsoled",
    "xen-init-dom0",
    "libxl-save-helper",
    "xenconsole",
    // Samples a driver domain's registers and stack (poor man's profiler of a unikernel).
    "xenctx",
];

/// The files QEMU boots.
pub struct Boot {
    /// Xen as a multiboot ELF.
    pub xen: PathBuf,
    /// dom0's kernel (bzImage).
    pub dom0_kernel: PathBuf,
    /// dom0's initramfs (base + this run's overlay).
    pub dom0_initrd: PathBuf,
}

fn templates() -> PathBuf {
    util::workspace_root().join("images/testbed")
}

/// Builds everything for a run of `scenarios` and returns the boot files.
pub fn build(cache: &Cache, m: &Manifest, scenarios: &[(Scenario, String)]) -> Result<Boot> {
    let out = cache.images();
    util::mkdirs(&out)?;
    let xen = xen_elf(cache)?;
    let vmlinux = guest_vmlinux(cache, m)?;
    xen_hcd(cache, m)?;
    let agent = build_agent()?;

    let guest = guest_initramfs(cache, m, &agent)?;
    let linuxdd = linuxdd_initramfs(cache, m, &agent)?;
    let base = dom0_base(cache, m, &agent, &vmlinux, &guest, &linuxdd)?;
    let overlay = dom0_overlay(scenarios)?;
    let dom0_initrd = out.join("dom0.cpio");
    let mut bytes = base;
    bytes.extend_from_slice(&overlay.to_bytes());
    write_if_changed(&dom0_initrd, &bytes)?;
    // Xen would spend seconds decompressing the bzImage under TCG: give it the ELF.
    let dom0_kernel = vmlinux.clone();
    Ok(Boot {
        xen,
        dom0_kernel,
        dom0_initrd,
    })
}

fn write_if_changed(p: &Path, data: &[u8]) -> Result {
    if std::fs::read(p).ok().as_deref() == Some(data) {
        return Ok(());
    }
    util::write(p, data)
}

/// Xen's multiboot ELF, gunzipped from the hypervisor package.
fn xen_elf(cache: &Cache) -> Result<PathBuf> {
    let out = cache.images().join("xen");
    if !out.is_file() {
        let gz = cache
            .sysroot()
            .join(format!("boot/xen-{}-amd64.gz", cache.release.xen));
        let data = util::output(Command::new("sh").arg("-c").arg(format!(
            "gzip -dc '{}' > '{}' && echo ok",
            gz.display(),
            out.display()
        )))?;
        if data.trim() != "ok" {
            return Err(format!("cannot unpack {}", gz.display()));
        }
    }
    Ok(out)
}

/// The guest kernel as an ELF vmlinux: libxc would otherwise decompress the bzImage on every
/// `xl create` (seconds under TCG).
fn guest_vmlinux(cache: &Cache, m: &Manifest) -> Result<PathBuf> {
    let out = cache.images().join("vmlinux");
    if out.is_file() {
        return Ok(out);
    }
    let bz = cache.sysroot().join(format!("boot/vmlinuz-{}", m.kernel));
    let data = util::read(&bz)?;
    // Debian 12 compresses the kernel with xz, Debian 13 with zstd.
    let formats: [(&[u8], &str); 2] = [
        (b"\xfd7zXZ\x00", "xz -dcq --single-stream"),
        (b"\x28\xb5\x2f\xfd", "zstd -dcq"),
    ];
    let (at, tool) = formats
        .iter()
        .find_map(|(magic, tool)| {
            data.windows(magic.len())
                .position(|w| w == *magic)
                .map(|at| (at, *tool))
        })
        .ok_or_else(|| format!("{}: no xz or zstd payload found", bz.display()))?;
    let tmp = cache.images().join("vmlinux.payload");
    util::write(&tmp, &data[at..])?;
    // Trailing bytes after the compressed stream make the tools complain; the stream is whole.
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!("{tool} '{}' > '{}'", tmp.display(), out.display()))
        .status();
    let elf = util::read(&out)?;
    let _ = std::fs::remove_file(&tmp);
    if elf.len() < 1 << 20 || &elf[..4] != b"\x7fELF" {
        let _ = std::fs::remove_file(&out);
        return Err(format!("extracting vmlinux from {} failed", bz.display()));
    }
    Ok(out)
}

/// Builds xen-hcd (PVUSB frontend; not enabled in Debian's kernels) as an out-of-tree module
/// from Debian's kernel source against the matching headers, and puts it into the sysroot's
/// module tree so module resolution finds it.
fn xen_hcd(cache: &Cache, m: &Manifest) -> Result {
    let sys = cache.sysroot();
    let installed = crate::rootfs::module_dir(&sys, &m.kernel).join("extra/xen-hcd.ko");
    if installed.is_file() {
        return Ok(());
    }
    // Out-of-tree modules must be built with the kernel's own compiler.
    let config =
        String::from_utf8_lossy(&util::read(&sys.join(format!("boot/config-{}", m.kernel)))?)
            .into_owned();
    let cc = config
        .lines()
        .find_map(|l| l.strip_prefix("CONFIG_CC_VERSION_TEXT=\""))
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or("gcc")
        .to_string();
    if util::which(&cc).is_none() {
        eprintln!(
            "testbed: warning: xen-hcd (PVUSB frontend) not built: the {} kernel was built with \
             {cc}, which this host lacks; guests of this release have no PVUSB frontend",
            cache.release.suite
        );
        return Ok(());
    }
    let work = cache.base.join("xen-hcd");
    util::mkdirs(&work)?;
    let src_name = cache.release.linux_source;
    let tarball = sys.join(format!("usr/src/{src_name}.tar.xz"));
    let member = format!("{src_name}/drivers/usb/host/xen-hcd.c");
    eprintln!("testbed: building xen-hcd.ko from {}", tarball.display());
    util::run(
        Command::new("tar")
            .arg("-xJf")
            .arg(&tarball)
            .arg("--strip-components=4")
            .arg("-C")
            .arg(&work)
            .arg(&member),
    )?;
    util::write(&work.join("Kbuild"), "obj-m := xen-hcd.o\n")?;
    // The headers' Makefile includes the common headers by absolute path: point it at ours.
    let headers = sys.join(format!("usr/src/linux-headers-{}", m.kernel));
    let mk = headers.join("Makefile");
    let text = String::from_utf8_lossy(&util::read(&mk)?).into_owned();
    let fixed = text.replace(
        "include /usr/src/",
        &format!("include {}/usr/src/", sys.display()),
    );
    util::write(&mk, fixed)?;
    util::run(
        Command::new("make")
            .arg("-s")
            .arg("-C")
            .arg(&headers)
            .arg(format!("M={}", work.display()))
            .arg(format!("CC={cc}"))
            .arg("modules"),
    )?;
    let ko = util::read(&work.join("xen-hcd.ko"))?;
    util::write(&installed, ko)
}

/// Builds a dom0/guest tool as a static binary (glibc, crt-static): no libraries needed.
fn build_static(package: &str, bin: &str) -> Result<PathBuf> {
    let root = util::workspace_root();
    util::run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(&root)
            .args(["rustc", "--quiet", "-p", package, "--bin", bin])
            .args([
                "--profile",
                "guest-tools",
                "--",
                "-C",
                "target-feature=+crt-static",
            ]),
    )?;
    Ok(root.join("target/guest-tools").join(bin))
}

/// The testbed agent (dom0 and guests).
fn build_agent() -> Result<PathBuf> {
    build_static("testbed-agent", "testbed-agent")
}

fn common_files(fs: &mut RootFs, agent: &Path) -> Result {
    fs.busybox()?;
    fs.host_file(agent, "usr/bin/testbed-agent", 0o755)?;
    let t = templates();
    fs.host_file(&t.join("check"), "usr/bin/check", 0o755)?;
    fs.host_file(&t.join("refused"), "usr/bin/refused", 0o755)?;
    fs.host_file(&t.join("log-lacks"), "usr/bin/log-lacks", 0o755)?;
    for d in ["proc", "sys", "dev", "run", "tmp", "var/log", "mnt", "root"] {
        fs.archive.dir(d);
    }
    fs.archive
        .file("etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\n");
    fs.archive.file("etc/group", 0o644, "root:x:0:\n");
    fs.archive
        .file("etc/xen/xl.conf", 0o644, "# testbed: xl defaults\n");
    Ok(())
}

fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut child = Command::new("gzip")
        .arg("-6")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run gzip: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped");
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().map_err(|e| format!("gzip: {e}"))?;
    writer
        .join()
        .map_err(|_| "gzip writer panicked".to_string())?
        .map_err(|e| format!("gzip: {e}"))?;
    if !out.status.success() {
        return Err("gzip failed".into());
    }
    Ok(out.stdout)
}

/// What every Linux domU initramfs has: busybox init running the guest init script.
fn linux_domain_base(cache: &Cache, agent: &Path) -> Result<RootFs> {
    let mut fs = RootFs::new(&cache.sysroot());
    common_files(&mut fs, agent)?;
    let t = templates();
    fs.archive.symlink("init", "/bin/busybox");
    fs.host_file(&t.join("guest-inittab"), "etc/inittab", 0o644)?;
    fs.host_file(&t.join("guest-init.sh"), "etc/testbed/init.sh", 0o755)?;
    Ok(fs)
}

/// The Linux guest initramfs: busybox, frontends, test tools, the agent.
fn guest_initramfs(cache: &Cache, m: &Manifest, agent: &Path) -> Result<Vec<u8>> {
    let mut fs = linux_domain_base(cache, agent)?;
    let t = templates();
    fs.host_file(&t.join("udhcpc.script"), "etc/testbed/udhcpc.script", 0o755)?;
    fs.modules(&m.kernel, GUEST_MODULES)?;
    for optional in GUEST_OPTIONAL_MODULES {
        if let Err(e) = fs.modules(&m.kernel, &[optional]) {
            eprintln!("testbed: warning: guests will lack {optional}: {e}");
        }
    }
    let boot = fs.modules(&m.kernel, GUEST_MODULES)?;
    write_module_order(&mut fs, &boot)?;
    fs.program("usr/bin/iperf3", "usr/bin/iperf3")?;
    fs.program("sbin/ethtool", "usr/sbin/ethtool")?;
    fs.program("sbin/mke2fs", "usr/sbin/mke2fs")?;
    fs.program("sbin/e2fsck", "usr/sbin/e2fsck")?;
    let bytes = fs.archive.to_bytes();
    let gz = gzip(&bytes)?;
    util::write(&cache.images().join("guest.cpio.gz"), &gz)?;
    Ok(gz)
}

/// Writes /etc/testbed/modules: module files (relative to /lib/modules/<kver>) in load order.
fn write_module_order(fs: &mut RootFs, order: &[String]) -> Result {
    let paths = fs.module_files(order)?;
    fs.archive
        .file("etc/testbed/modules", 0o644, paths.join("\n") + "\n");
    Ok(())
}

/// A Linux driver domain's initramfs: guest tools plus netback/blkback, xl and `xl devd`.
fn linuxdd_initramfs(cache: &Cache, m: &Manifest, agent: &Path) -> Result<Vec<u8>> {
    let mut fs = linux_domain_base(cache, agent)?;
    let t = templates();
    fs.host_file(&t.join("linuxdd-role.sh"), "etc/testbed/role", 0o755)?;
    fs.host_file(&t.join("vif-bridge"), "etc/xen/scripts/vif-bridge", 0o755)?;
    fs.host_file(&t.join("block"), "etc/xen/scripts/block", 0o755)?;
    fs.modules(&m.kernel, LINUXDD_OPTIONAL_MODULES)?;
    let order = fs.modules(&m.kernel, LINUXDD_MODULES)?;
    write_module_order(&mut fs, &order)?;
    let bin = cache.release.xen_bin_dir();
    fs.program(&format!("{bin}/xl"), "usr/sbin/xl")?;
    fs.library("libgcc_s.so.1")?;
    let gz = gzip(&fs.archive.to_bytes())?;
    util::write(&cache.images().join("linuxdd.cpio.gz"), &gz)?;
    Ok(gz)
}

/// dom0's initramfs without the per-run overlay (uncompressed: faster to unpack under TCG).
fn dom0_base(
    cache: &Cache,
    m: &Manifest,
    agent: &Path,
    vmlinux: &Path,
    guest: &[u8],
    linuxdd: &[u8],
) -> Result<Vec<u8>> {
    let mut fs = RootFs::new(&cache.sysroot());
    common_files(&mut fs, agent)?;
    let t = templates();
    fs.host_file(&t.join("dom0-init.sh"), "init", 0o755)?;
    fs.host_file(&t.join("vif-bridge"), "etc/xen/scripts/vif-bridge", 0o755)?;
    fs.host_file(&t.join("block"), "etc/xen/scripts/block", 0o755)?;
    fs.modules(&m.kernel, DOM0_OPTIONAL_MODULES)?;
    let order = fs.modules(&m.kernel, DOM0_MODULES)?;
    write_module_order(&mut fs, &order)?;
    let bin = cache.release.xen_bin_dir();
    for p in DOM0_XEN_PROGRAMS {
        fs.program(&format!("{bin}/{p}"), &format!("{bin}/{p}"))?;
    }
    fs.archive.symlink(
        "usr/lib/xen",
        &format!("/usr/lib/xen-{}", cache.release.xen),
    );
    for p in [
        "xl",
        "xenstored",
        "xenconsoled",
        "xen-init-dom0",
        "xenconsole",
    ] {
        fs.archive
            .symlink(&format!("usr/sbin/{p}"), &format!("/{bin}/{p}"));
    }
    fs.library("libgcc_s.so.1")?;
    let xddctl = build_static("xdd-control", "xddctl")?;
    fs.host_file(&xddctl, "usr/sbin/xddctl", 0o755)?;
    fs.host_file(vmlinux, "boot/testbed/vmlinux", 0o644)?;
    fs.archive
        .file("boot/testbed/guest.cpio.gz", 0o644, guest.to_vec());
    fs.archive
        .file("boot/testbed/linuxdd.cpio.gz", 0o644, linuxdd.to_vec());
    Ok(fs.archive.to_bytes())
}

/// Per-run files: the scenarios, the plan, the host's settings for scenarios (the file
/// server's URL and hashes) and our unikernel images in /boot/xdd.
fn dom0_overlay(scenarios: &[(Scenario, String)]) -> Result<testbed_agent::cpio::Archive> {
    let mut a = testbed_agent::cpio::Archive::new();
    a.file(
        testbed_agent::hostenv::PATH.trim_start_matches('/'),
        0o644,
        crate::fileserver::scenario_env()?,
    );
    let mut plan = String::new();
    for (s, text) in scenarios {
        a.file(
            &format!("testbed/scenarios/{}.toml", s.name),
            0o644,
            text.as_bytes().to_vec(),
        );
        plan.push_str(&format!("/testbed/scenarios/{}.toml\n", s.name));
    }
    a.file("testbed/plan", 0o644, plan);
    for (name, path) in unikernels::build_for(scenarios)? {
        let data = util::read(&path)?;
        a.file(&format!("boot/xdd/{name}.elf"), 0o644, data);
    }
    Ok(a)
}
