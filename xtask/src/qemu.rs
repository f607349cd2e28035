//! Boots Xen and dom0 under QEMU (TCG), streams the serial console to a log, enforces a timeout.

use crate::fileserver;
use crate::images::Boot;
use crate::util::{self, Result};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use testbed_agent::scenario::QemuDevice;

/// How a QEMU run ended.
pub struct Outcome {
    /// Every serial line.
    pub lines: Vec<String>,
    /// True when the run hit its timeout and QEMU was killed.
    pub timed_out: bool,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// QEMU's process id.
    pub pid: u32,
}

/// Options of one boot.
pub struct Machine<'a> {
    /// Files to boot.
    pub boot: &'a Boot,
    /// Passed-through devices to add.
    pub devices: Vec<QemuDevice>,
    /// Kill QEMU after this long.
    pub timeout: Duration,
    /// Serial log destination.
    pub log: PathBuf,
    /// Scratch directory for device backing files.
    pub scratch: PathBuf,
    /// The program slirp runs as `<it> serve-file` per connection to the file server.
    pub file_server: PathBuf,
}

/// A virtio-net on a user network of its own (`netdev` names it) with the file server.
fn virtio_net(netdev: &str, mac: &str, addr: &str, file_server: &Path) -> Vec<String> {
    vec![
        "-netdev".into(),
        format!("user,id={netdev},{}", fileserver::guestfwd(file_server)),
        "-device".into(),
        format!("virtio-net-pci,netdev={netdev},mac={mac},bus=pcie.0,{addr}"),
    ]
}

fn device_args(d: QemuDevice, m: &Machine) -> Result<Vec<String>> {
    let addr = format!("addr=0x{:02x}", d.slot());
    let scratch = &m.scratch;
    // A disk device's image file (what `[[disk_check]]` reads after the boot).
    let image = |d: QemuDevice| d.disk_image().unwrap_or("disk.img");
    Ok(match d {
        QemuDevice::VirtioNet => virtio_net("usernet", "52:54:00:12:34:56", &addr, &m.file_server),
        QemuDevice::VirtioNet2 => {
            virtio_net("usernet2", "52:54:00:12:34:57", &addr, &m.file_server)
        }
        QemuDevice::VirtioNetDom0 => {
            virtio_net("usernet3", "52:54:00:12:34:58", &addr, &m.file_server)
        }
        QemuDevice::VirtioBlk => {
            let img = scratch_image(scratch, image(d), 64)?;
            vec![
                "-drive".into(),
                // discard=unmap: a guest's discard punches a hole in the image (reads
                // back as zeros), so a scenario can tell that it reached the device.
                format!(
                    "file={},if=none,id=vblk,format=raw,discard=unmap",
                    img.display()
                ),
                "-device".into(),
                format!("virtio-blk-pci,drive=vblk,bus=pcie.0,{addr}"),
            ]
        }
        QemuDevice::Nvme => {
            let img = scratch_image(scratch, image(d), 96)?;
            vec![
                "-drive".into(),
                // discard=unmap: Dataset Management (deallocate) punches a hole in the image.
                format!(
                    "file={},if=none,id=nvm,format=raw,discard=unmap",
                    img.display()
                ),
                "-device".into(),
                format!("nvme,serial=xdd-nvme-1,drive=nvm,bus=pcie.0,{addr}"),
            ]
        }
        QemuDevice::Nvme4k => {
            let img = scratch_image(scratch, image(d), 32)?;
            vec![
                "-drive".into(),
                format!(
                    "file={},if=none,id=nvm4k,format=raw,discard=unmap",
                    img.display()
                ),
                "-device".into(),
                format!(
                    "nvme,serial=xdd-nvme-2,drive=nvm4k,logical_block_size=4096,\
                     physical_block_size=4096,mdts=2,bus=pcie.0,{addr}"
                ),
            ]
        }
        // Identical to `nvme` (96 MiB, 512-byte blocks, discard=unmap) but for the serial:
        // the bench's side-by-side controllers (`nvme-dom0` stays with dom0).
        QemuDevice::Nvme2 => {
            let img = scratch_image(scratch, image(d), 96)?;
            twin_nvme("nvm2", "xdd-nvme-3", &img, &addr)
        }
        QemuDevice::NvmeDom0 => {
            let img = scratch_image(scratch, image(d), 96)?;
            twin_nvme("nvm3", "xdd-nvme-4", &img, &addr)
        }
        QemuDevice::Xhci => {
            let img = scratch_image(scratch, "usb-stick.img", 16)?;
            fill_usb_stick(&img)?;
            vec![
                "-device".into(),
                // 8 USB2 and 4 USB3 ports: QEMU port 5 is USB2 only, so the stick (which
                // offers SuperSpeed, unsayable in usbif) comes up at high speed, on xHCI
                // root port 9 (QEMU numbers the 4 USB3 ports first: bus path 1-9).
                format!("qemu-xhci,id=xhci,p2=8,p3=4,bus=pcie.0,{addr}"),
                "-drive".into(),
                format!("file={},if=none,id=ustick,format=raw", img.display()),
                "-device".into(),
                "usb-storage,bus=xhci.0,port=5,drive=ustick".into(),
                // A full-speed interrupt device beside it (xHCI root port 10, bus path 1-10).
                "-device".into(),
                "usb-tablet,usb_version=1,bus=xhci.0,port=6".into(),
            ]
        }
        // As `xhci` (same ports, a stick of the same size and content on the same port), with
        // an image of its own and no tablet: `bench usb`'s direct-passthrough side.
        QemuDevice::Xhci2 => {
            let img = scratch_image(scratch, "usb-stick-2.img", 16)?;
            fill_usb_stick(&img)?;
            vec![
                "-device".into(),
                format!("qemu-xhci,id=xhci2,p2=8,p3=4,bus=pcie.0,{addr}"),
                "-drive".into(),
                format!("file={},if=none,id=ustick2,format=raw", img.display()),
                "-device".into(),
                "usb-storage,bus=xhci2.0,port=5,drive=ustick2".into(),
            ]
        }
        QemuDevice::Sound => vec![
            // Codec 0 (hda-output): what the card plays lands in the scratch directory
            // (48 kHz stereo S16, no resampling by QEMU); scenarios check it on the host
            // ([[wav_check]]). QEMU's wav driver has no input, so codec 1 (hda-duplex, on
            // the `none` driver: silence in at the real rate, output discarded) is what
            // the card records.
            "-audiodev".into(),
            format!(
                "wav,id=snd0,path={},out.frequency=48000,out.channels=2,out.format=s16",
                sound_wav(scratch)?.display()
            ),
            "-audiodev".into(),
            "none,id=snd1".into(),
            "-device".into(),
            format!("ich9-intel-hda,id=hda,bus=pcie.0,{addr}"),
            "-device".into(),
            "hda-output,bus=hda.0,audiodev=snd0".into(),
            "-device".into(),
            "hda-duplex,bus=hda.0,audiodev=snd1".into(),
        ],
    })
}

/// QEMU arguments of an NVMe controller set up as `nvme` is, with its own drive id, serial
/// and image.
fn twin_nvme(id: &str, serial: &str, img: &Path, addr: &str) -> Vec<String> {
    vec![
        "-drive".into(),
        format!(
            "file={},if=none,id={id},format=raw,discard=unmap",
            img.display()
        ),
        "-device".into(),
        format!("nvme,serial={serial},drive={id},bus=pcie.0,{addr}"),
    ]
}

/// The USB stick's known content: its first 4 MiB, sector by sector, hold the line
/// `xdd usb stick sector <n>` padded with zeros; the rest is zeros. sha256 of the first
/// 4 MiB: 39c4e87d1009693a3c80861ac7c051ec6466a08d14607ac4223049e1cb7c6468 (the
/// usbdd scenarios check it in a guest).
fn fill_usb_stick(img: &Path) -> Result<()> {
    let mut data = vec![0u8; 4 << 20];
    for (n, sector) in data.chunks_mut(512).enumerate() {
        let line = format!("xdd usb stick sector {n}\n");
        sector[..line.len()].copy_from_slice(line.as_bytes());
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(img)
        .map_err(|e| format!("cannot open {}: {e}", img.display()))?;
    f.write_all(&data)
        .map_err(|e| format!("cannot fill {}: {e}", img.display()))
}

/// QEMU's sound card output file in the scratch directory.
pub const SOUND_WAV: &str = "hda-out.wav";

/// The sound output file, removed (each run writes its own).
fn sound_wav(dir: &Path) -> Result<PathBuf> {
    util::mkdirs(dir)?;
    let p = dir.join(SOUND_WAV);
    if p.exists() {
        std::fs::remove_file(&p).map_err(|e| format!("cannot remove {}: {e}", p.display()))?;
    }
    if p.to_string_lossy().contains(',') {
        return Err(format!("{}: QEMU options cannot hold a comma", p.display()));
    }
    Ok(p)
}

fn scratch_image(dir: &Path, name: &str, mib: u64) -> Result<PathBuf> {
    util::mkdirs(dir)?;
    let p = dir.join(name);
    let f = std::fs::File::create(&p).map_err(|e| format!("cannot create {}: {e}", p.display()))?;
    f.set_len(mib << 20)
        .map_err(|e| format!("cannot size {}: {e}", p.display()))?;
    Ok(p)
}

/// Boots the machine and returns the serial output; QEMU is gone when this returns.
pub fn run(m: &Machine) -> Result<Outcome> {
    let hide: String = m
        .devices
        .iter()
        .filter(|d| d.passed_through())
        .map(|d| format!("({})", d.bdf()))
        .collect();
    let mut dom0_args = String::from("console=hvc0 earlyprintk=xen");
    if !hide.is_empty() {
        dom0_args.push_str(&format!(" xen-pciback.hide={hide}"));
    }
    let initrd = format!(
        "{} {},{}",
        m.boot.dom0_kernel.display(),
        dom0_args,
        m.boot.dom0_initrd.display()
    );
    if dom0_args.contains(',') {
        return Err(
            "dom0's command line must not contain commas (QEMU splits -initrd on them)".into(),
        );
    }
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-machine", "q35", "-cpu", "qemu64,+svm,+npt,+rdrand"])
        .args(["-accel", "tcg,thread=single", "-m", "3072", "-smp", "2"])
        .args(["-nographic", "-no-reboot", "-monitor", "none", "-serial", "stdio", "-net", "none"])
        .args(["-device", "intel-iommu"])
        .arg("-kernel")
        .arg(&m.boot.xen)
        .args([
            "-append",
            "dom0_mem=1024M,max:1024M dom0_max_vcpus=2 loglvl=all guest_loglvl=all console=com1 iommu=1",
        ])
        .arg("-initrd")
        .arg(initrd);
    for d in &m.devices {
        cmd.args(device_args(*d, m)?);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot start QEMU: {e}"))?;
    let pid = child.id();
    let start = Instant::now();
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let tx2 = tx.clone();
    std::thread::spawn(move || forward(stdout, tx));
    std::thread::spawn(move || forward(stderr, tx2));

    util::mkdirs(m.log.parent().unwrap_or(Path::new(".")))?;
    let mut log = std::fs::File::create(&m.log)
        .map_err(|e| format!("cannot create {}: {e}", m.log.display()))?;
    let mut lines = Vec::new();
    let mut timed_out = false;
    let mut done_at: Option<Instant> = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let _ = writeln!(log, "[{:7.2}] {line}", start.elapsed().as_secs_f64());
                if line.contains("@@XDD ") {
                    eprintln!(
                        "  {:6.1}s {}",
                        start.elapsed().as_secs_f64(),
                        progress(&line)
                    );
                }
                if line.contains("@@XDD done") {
                    done_at = Some(Instant::now());
                }
                lines.push(line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Ok(Some(_)) = child.try_wait() {
            // Drain what is left in the pipes.
            while let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
                let _ = writeln!(log, "[{:7.2}] {line}", start.elapsed().as_secs_f64());
                lines.push(line);
            }
            break;
        }
        let grace_over = done_at.is_some_and(|t| t.elapsed() > Duration::from_secs(20));
        if start.elapsed() > m.timeout || grace_over {
            timed_out = !grace_over;
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok(Outcome {
        lines,
        timed_out,
        elapsed: start.elapsed(),
        pid,
    })
}

/// A readable form of an `@@XDD` line for live progress.
fn progress(line: &str) -> &str {
    line.split_once("@@XDD ")
        .map(|(_, rest)| rest)
        .unwrap_or(line)
}

fn forward(r: impl std::io::Read, tx: mpsc::Sender<String>) {
    let mut reader = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let s = String::from_utf8_lossy(&buf);
                let s = s.trim_end_matches(['\n', '\r']).replace('\r', "");
                if tx.send(s).is_err() {
                    return;
                }
            }
        }
    }
}
