//! Boots Xen and dom0 under QEMU (TCG), streams the serial console to a log, enforces a timeout.

use crate::fileserver;
use crate::images::Boot;
use crate::util::{self, Result};
use crate::watchdog::Watchdog;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use testbed_agent::scenario::QemuDevice;
use testbed_agent::wav::WavSource;

/// The audio timer of the `sound-stall` device, in µs (QEMU's default is 10 ms).
const STALL_TIMER_US: u32 = 2_000_000;

/// How a QEMU run ended.
pub struct Outcome {
    /// Every serial line.
    pub lines: Vec<String>,
    /// True when the run hit its timeout (or the watchdog fired) and QEMU was killed.
    pub timed_out: bool,
    /// Why the watchdog ended the run, if it did.
    pub stalled: Option<String>,
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
    /// Kill QEMU earlier when the agent's lines stop coming as they should (`watchdog.rs`):
    /// the first scenario must start within this ...
    pub boot_allowance: Duration,
    /// ... and each scenario end within its limit of starting.
    pub limits: BTreeMap<String, Duration>,
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
        // Media devices on USB2 ports (QEMU numbers the 4 USB3 ports first): a full-speed
        // usb-audio (48 kHz stereo S16, isochronous OUT) on QEMU port 5, xHCI root port 9
        // (bus path 1-9), whose output goes to a wav file on the host as the HDA's does; a
        // full-speed usb-tablet on QEMU port 6 (1-10), fed by `TabletInput` through QMP.
        QemuDevice::XhciMedia => vec![
            "-audiodev".into(),
            wav_audiodev("usbsnd", &fresh_file(scratch, WavSource::UsbAudio.file())?),
            "-device".into(),
            format!("qemu-xhci,id=xhcim,p2=8,p3=4,bus=pcie.0,{addr}"),
            "-device".into(),
            // debug=1: QEMU prints the alternate settings the guest selects (stderr, into
            // the serial log), e.g. `usb-audio: set interface 1` when playing starts, and
            // its control requests (the `failed control transaction` lines are Linux trying
            // SET_RES on the volume, which QEMU does not offer and Linux does without).
            "usb-audio,bus=xhcim.0,port=5,audiodev=usbsnd,debug=1".into(),
            "-device".into(),
            "usb-tablet,usb_version=1,bus=xhcim.0,port=6".into(),
        ],
        QemuDevice::Sound => vec![
            // Codec 0 (hda-output): what the card plays lands in the scratch directory
            // (48 kHz stereo S16, no resampling by QEMU); scenarios check it on the host
            // ([[wav_check]]). QEMU's wav driver has no input, so codec 1 (hda-duplex, on
            // the `none` driver: silence in at the real rate, output discarded) is what
            // the card records.
            "-audiodev".into(),
            wav_audiodev("snd0", &fresh_file(scratch, WavSource::Hda.file())?),
            "-audiodev".into(),
            "none,id=snd1".into(),
            "-device".into(),
            format!("ich9-intel-hda,id=hda,bus=pcie.0,{addr}"),
            "-device".into(),
            "hda-output,bus=hda.0,audiodev=snd0".into(),
            "-device".into(),
            "hda-duplex,bus=hda.0,audiodev=snd1".into(),
        ],
        // A capture device that stalls (`sounddd-capture-stall`): the duplex codec on QEMU's
        // `none` driver with a 2-s audio timer: the codec gets no input in time, so the
        // HDA's input position stands still while the stream runs (in the testbed's runs,
        // for a whole 3-s recording).
        QemuDevice::SoundStall => vec![
            "-audiodev".into(),
            format!("none,id=sndstall,timer-period={STALL_TIMER_US}"),
            "-device".into(),
            format!("ich9-intel-hda,id=hdastall,bus=pcie.0,{addr}"),
            "-device".into(),
            "hda-duplex,bus=hdastall.0,audiodev=sndstall".into(),
        ],
        // `bench snd`'s direct side: the same controller and output codec as `sound`'s codec
        // 0 (its output to a wav file of its own, so the two cards do the same work in
        // QEMU), without the duplex codec.
        QemuDevice::Sound2 => vec![
            "-audiodev".into(),
            wav_audiodev("snd2", &fresh_file(scratch, "hda-2-out.wav")?),
            "-device".into(),
            format!("ich9-intel-hda,id=hda2,bus=pcie.0,{addr}"),
            "-device".into(),
            "hda-output,bus=hda2.0,audiodev=snd2".into(),
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

/// A `-audiodev` value: the `wav` driver writing what the card plays to `path` as 48 kHz
/// stereo S16 (QEMU resamples nothing; the host's `[[wav_check]]`s read it).
fn wav_audiodev(id: &str, path: &Path) -> String {
    format!(
        "wav,id={id},path={},out.frequency=48000,out.channels=2,out.format=s16",
        path.display()
    )
}

/// `name` in the scratch directory, removed if it exists (each run writes its own: a sound
/// output file, the QMP socket); Err if QEMU could not take the path in an option.
fn fresh_file(dir: &Path, name: &str) -> Result<PathBuf> {
    util::mkdirs(dir)?;
    let p = dir.join(name);
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
    // QMP only where the testbed injects input (QEMU's monitor stays off otherwise).
    let qmp = if m.devices.contains(&QemuDevice::XhciMedia) {
        let path = qmp_socket(&m.scratch)?;
        cmd.arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", path.display()));
        Some(path)
    } else {
        None
    };
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
    let tablet = qmp.map(|path| TabletInput::start(path, tx.clone()));
    std::thread::spawn(move || forward(stdout, tx));
    std::thread::spawn(move || forward(stderr, tx2));

    util::mkdirs(m.log.parent().unwrap_or(Path::new(".")))?;
    let mut log = std::fs::File::create(&m.log)
        .map_err(|e| format!("cannot create {}: {e}", m.log.display()))?;
    let mut lines = Vec::new();
    let mut timed_out = false;
    let mut stalled = None;
    let mut done_at: Option<Instant> = None;
    let mut watchdog = Watchdog::new(start, m.boot_allowance, m.limits.clone());
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
                watchdog.see(&line, Instant::now());
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
        stalled = watchdog.overdue(Instant::now());
        if let Some(why) = &stalled {
            let _ = writeln!(log, "[{:7.2}] {why}", start.elapsed().as_secs_f64());
        }
        if start.elapsed() > m.timeout || grace_over || stalled.is_some() {
            timed_out = !grace_over;
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    if let Some(t) = tablet {
        let summary = t.stop();
        let _ = writeln!(log, "[{:7.2}] {summary}", start.elapsed().as_secs_f64());
        eprintln!("  {summary}");
    }
    Ok(Outcome {
        lines,
        timed_out,
        stalled,
        elapsed: start.elapsed(),
        pid,
    })
}

/// QEMU's QMP socket in the scratch directory (a stale one removed); Err if the path is too
/// long for a Unix socket.
fn qmp_socket(scratch: &Path) -> Result<PathBuf> {
    let p = fresh_file(scratch, "qmp.sock")?;
    // sun_path holds 108 bytes with the terminating NUL.
    if p.as_os_str().len() > 107 {
        return Err(format!("{}: too long for a Unix socket path", p.display()));
    }
    Ok(p)
}

/// Pointer input for the `xhci-media` usb-tablet, injected through QEMU's QMP socket by a
/// host thread while QEMU runs: it connects (retrying until QEMU listens), negotiates
/// (`qmp_capabilities`), then every [`TabletInput::PERIOD`] sends one `input-send-event`:
/// the left button down at (0x1111, 0x3333), then up at (0x2222, 0x4444), and so on. Each
/// event is a change, so the tablet queues a report for each (a guest reads
/// `?? 11 11 33 33 00` or `?? 22 22 44 44 00` from its hidraw device: buttons, x, y
/// little-endian, wheel). No `device` argument: absolute moves go to QEMU's only absolute
/// pointer, the tablet (with `xhci` in the same boot, to whichever tablet a guest polled last).
/// The thread ends when told to or when QEMU closes the connection.
struct TabletInput {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<String>,
}

impl TabletInput {
    /// Time between two injected events.
    const PERIOD: Duration = Duration::from_millis(250);
    /// Longest wait for an answer from QEMU (its main loop is slow under TCG, not stuck).
    const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

    /// Starts the thread; `log` gets a line (into the serial log) once it is connected.
    fn start(socket: PathBuf, log: mpsc::Sender<String>) -> TabletInput {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || Self::run(&socket, &flag, &log));
        TabletInput { stop, thread }
    }

    /// Stops the thread (QEMU has exited) and returns what it did, for the log.
    fn stop(self) -> String {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .unwrap_or_else(|_| "testbed-host: tablet input: the thread panicked".into())
    }

    fn run(socket: &Path, stop: &AtomicBool, log: &mpsc::Sender<String>) -> String {
        let stream = loop {
            if stop.load(Ordering::Relaxed) {
                return format!(
                    "testbed-host: tablet input: never connected to {}",
                    socket.display()
                );
            }
            match UnixStream::connect(socket) {
                Ok(s) => break s,
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        let mut sent = 0u64;
        let end = Self::session(stream, stop, log, &mut sent);
        // QEMU's exit usually shows as the end of the connection, before `stop` is set.
        let how = match end {
            Ok(()) => "until QEMU exited".to_string(),
            Err(e) => format!("ended by: {e}"),
        };
        format!("testbed-host: tablet input: {sent} events injected through QMP, {how}")
    }

    fn session(
        stream: UnixStream,
        stop: &AtomicBool,
        log: &mpsc::Sender<String>,
        sent: &mut u64,
    ) -> std::result::Result<(), String> {
        stream
            .set_read_timeout(Some(Self::ANSWER_TIMEOUT))
            .map_err(|e| format!("QMP socket: {e}"))?;
        let mut writer = stream.try_clone().map_err(|e| format!("QMP socket: {e}"))?;
        let mut reader = BufReader::new(stream);
        let greeting = qmp_line(&mut reader)?;
        if !greeting.contains("\"QMP\"") {
            return Err(format!("not a QMP greeting: {}", greeting.trim()));
        }
        qmp_command(
            &mut writer,
            &mut reader,
            r#"{"execute":"qmp_capabilities"}"#,
        )?;
        let _ = log.send(format!(
            "testbed-host: tablet input: QMP connected, an event every {} ms",
            Self::PERIOD.as_millis()
        ));
        while !stop.load(Ordering::Relaxed) {
            qmp_command(&mut writer, &mut reader, &tablet_event(*sent))?;
            *sent += 1;
            std::thread::sleep(Self::PERIOD);
        }
        Ok(())
    }
}

/// The `n`th injected event (see [`TabletInput`]).
fn tablet_event(n: u64) -> String {
    let (down, x, y) = if n % 2 == 0 {
        (true, 0x1111, 0x3333)
    } else {
        (false, 0x2222, 0x4444)
    };
    format!(
        r#"{{"execute":"input-send-event","arguments":{{"events":[{{"type":"btn","data":{{"down":{down},"button":"left"}}}},{{"type":"abs","data":{{"axis":"x","value":{x}}}}},{{"type":"abs","data":{{"axis":"y","value":{y}}}}}]}}}}"#
    )
}

/// Sends one QMP command and waits for its answer, skipping asynchronous events; Err when
/// QEMU refused it, closed the connection or did not answer in time.
fn qmp_command(
    w: &mut UnixStream,
    r: &mut BufReader<UnixStream>,
    cmd: &str,
) -> std::result::Result<(), String> {
    writeln!(w, "{cmd}").map_err(|e| format!("QMP write: {e}"))?;
    loop {
        let line = qmp_line(r)?;
        if line.starts_with("{\"return\"") {
            return Ok(());
        }
        if line.starts_with("{\"error\"") {
            return Err(format!("QEMU refused {cmd}: {}", line.trim()));
        }
    }
}

/// One line from QMP; Err at the end of the connection or on a read error (timeout).
fn qmp_line(r: &mut BufReader<UnixStream>) -> std::result::Result<String, String> {
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(0) => Err("QEMU closed the QMP connection".into()),
        Ok(_) => Ok(line),
        Err(e) => Err(format!("QMP read: {e}")),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A fake QEMU: greets, answers `count` commands, then closes; returns what it got.
    fn fake_qmp(listener: UnixListener, count: usize) -> Vec<String> {
        let (mut s, _) = listener.accept().unwrap();
        writeln!(s, r#"{{"QMP": {{"version": {{}}, "capabilities": []}}}}"#).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut got = Vec::new();
        for _ in 0..count {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            // An asynchronous event before the answer is skipped.
            writeln!(s, r#"{{"event": "X", "data": {{}}}}"#).unwrap();
            writeln!(s, r#"{{"return": {{}}}}"#).unwrap();
            got.push(line.trim().to_string());
        }
        got
    }

    #[test]
    fn tablet_input_negotiates_alternates_and_ends_with_qemu() {
        let dir = std::env::temp_dir().join(format!("xtask-qmp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = qmp_socket(&dir).unwrap();
        let (tx, rx) = mpsc::channel();
        // Started before QEMU listens: it retries.
        let input = TabletInput::start(socket.clone(), tx);
        std::thread::sleep(Duration::from_millis(300));
        let listener = UnixListener::bind(&socket).unwrap();
        let got = fake_qmp(listener, 3);
        // It ends by itself once QEMU has closed the connection.
        let t = Instant::now();
        while !input.thread.is_finished() && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            input.thread.is_finished(),
            "still running after QEMU closed QMP"
        );
        let summary = input.stop();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(got[0], r#"{"execute":"qmp_capabilities"}"#);
        assert_eq!(got[1], tablet_event(0));
        assert_eq!(got[2], tablet_event(1));
        assert!(got[1].contains(r#""down":true"#) && got[1].contains(r#""value":4369"#));
        assert!(got[2].contains(r#""down":false"#) && got[2].contains(r#""value":8738"#));
        assert!(rx.recv().unwrap().contains("QMP connected"));
        assert!(
            summary.contains("2 events injected") && summary.contains("ended by: "),
            "{summary}"
        );
    }

    #[test]
    fn tablet_input_that_never_connects_stops_when_told() {
        let (tx, _rx) = mpsc::channel();
        let input = TabletInput::start(PathBuf::from("/nonexistent/qmp.sock"), tx);
        std::thread::sleep(Duration::from_millis(100));
        assert!(input.stop().contains("never connected"));
    }
}
