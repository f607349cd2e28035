//! Config space and pcifront operations against an emulated pciback and device.

use alloc::format;
use alloc::vec::Vec;
use core::cell::RefCell;

use xen_abi::pciif::{
    XenPciOp, XEN_PCI_ERR_ACCESS_DENIED, XEN_PCI_ERR_DEV_NOT_FOUND, XEN_PCI_OP_CONF_READ,
    XEN_PCI_OP_CONF_WRITE, XEN_PCI_OP_ENABLE_MSIX,
};

use super::config::{self, capabilities, msix_info, read_bars, region_in_bar, Bar};
use super::front::{OpChannel, PciFront, SharedPage};
use super::{ConfigSpace, PciAddress, PciError};

/// A device behind an emulated pciback: 256 bytes of config space, BARs that answer the
/// sizing dance as pciback does, and a log of every operation.
struct FakePciback {
    addr: PciAddress,
    space: RefCell<[u8; 256]>,
    /// Size of each BAR slot (0: unimplemented); a 64-bit BAR's upper slot holds 0.
    bar_sizes: [u64; 6],
    sizing: RefCell<[bool; 6]>,
    ops: RefCell<Vec<XenPciOp>>,
    deny_writes_at: Option<i32>,
}

impl FakePciback {
    fn new(addr: PciAddress) -> Self {
        Self {
            addr,
            space: RefCell::new([0; 256]),
            bar_sizes: [0; 6],
            sizing: RefCell::new([false; 6]),
            ops: RefCell::new(Vec::new()),
            deny_writes_at: None,
        }
    }

    fn put(&self, off: usize, bytes: &[u8]) {
        self.space.borrow_mut()[off..off + bytes.len()].copy_from_slice(bytes);
    }

    fn put32(&self, off: usize, v: u32) {
        self.put(off, &v.to_le_bytes());
    }

    /// A virtio-net-like function: ids, capability list MSI-X -> vendor -> vendor, a 4 KiB
    /// 32-bit BAR 1 and a 16 KiB 64-bit prefetchable BAR 4.
    fn virtio_like(addr: PciAddress) -> Self {
        let mut f = Self::new(addr);
        f.put32(0x00, 0x1041_1af4);
        f.put32(0x08, 0x0200_0001);
        f.put(0x06, &config::STATUS_CAP_LIST.to_le_bytes());
        f.put(0x34, &[0x98]);
        // MSI-X: 3 entries, table in BAR 1 at 0, PBA in BAR 1 at 0x800.
        f.put(0x98, &[config::CAP_MSIX, 0x84, 2, 0]);
        f.put32(0x9c, 1);
        f.put32(0xa0, 0x801);
        f.put(0x84, &[config::CAP_VENDOR, 0x70, 0x10, 1]);
        f.put(0x70, &[config::CAP_VENDOR, 0x00, 0x10, 2]);
        f.put32(0x14, 0xfebd_1000);
        f.put32(0x20, 0xfe00_000c);
        f.put32(0x24, 0);
        f.bar_sizes = [0, 0x1000, 0, 0, 0x4000, 0];
        f
    }

    fn read(&self, off: usize, size: usize) -> u32 {
        if (0x10..0x28).contains(&off) && self.sizing.borrow()[(off - 0x10) / 4] {
            let i = (off - 0x10) / 4;
            let size = self.bar_sizes[i];
            if size > 0 {
                return (!(size - 1) as u32 & !0xf) | (self.raw32(off) & 0xf);
            }
            // The upper half of a 64-bit BAR answers the high bits of its size mask.
            if i > 0 && self.is_wide(i - 1) {
                return (!(self.bar_sizes[i - 1] - 1) >> 32) as u32;
            }
            return 0;
        }
        let s = self.space.borrow();
        (0..size).fold(0, |v, i| v | u32::from(s[off + i]) << (8 * i))
    }

    fn raw32(&self, off: usize) -> u32 {
        let s = self.space.borrow();
        u32::from_le_bytes([s[off], s[off + 1], s[off + 2], s[off + 3]])
    }

    fn is_wide(&self, i: usize) -> bool {
        (self.raw32(0x10 + 4 * i) >> 1) & 3 == 2
    }

    fn write(&self, off: usize, size: usize, v: u32) {
        if (0x10..0x28).contains(&off) && size == 4 {
            let i = (off - 0x10) / 4;
            if v == u32::MAX {
                self.sizing.borrow_mut()[i] = true;
                return;
            }
            self.sizing.borrow_mut()[i] = false;
        }
        let mut s = self.space.borrow_mut();
        for i in 0..size {
            s[off + i] = (v >> (8 * i)) as u8;
        }
    }
}

impl OpChannel for FakePciback {
    fn call(&self, op: &XenPciOp, _name: &'static str) -> Result<XenPciOp, PciError> {
        self.ops.borrow_mut().push(*op);
        let mut out = *op;
        let here = PciAddress::new(
            op.domain as u16,
            op.bus as u8,
            (op.devfn >> 3) as u8,
            op.devfn as u8,
        );
        if here != self.addr {
            out.err = XEN_PCI_ERR_DEV_NOT_FOUND;
            return Ok(out);
        }
        match op.cmd {
            XEN_PCI_OP_CONF_READ => out.value = self.read(op.offset as usize, op.size as usize),
            XEN_PCI_OP_CONF_WRITE if Some(op.offset) == self.deny_writes_at => {
                out.err = XEN_PCI_ERR_ACCESS_DENIED
            }
            XEN_PCI_OP_CONF_WRITE => self.write(op.offset as usize, op.size as usize, op.value),
            XEN_PCI_OP_ENABLE_MSIX => {
                for (i, e) in out.msix_entries[..op.value as usize].iter_mut().enumerate() {
                    e.vector = 40 + i as u16;
                }
            }
            _ => out.err = -4,
        }
        Ok(out)
    }
}

const DEV: PciAddress = PciAddress::new(0, 0, 0, 0);

fn front(fake: FakePciback) -> PciFront<FakePciback> {
    let addr = fake.addr;
    PciFront::from_channel(fake, &[(addr, PciAddress::new(0, 0, 0x10, 0))])
}

#[test]
fn addresses_parse_and_print_like_xl() {
    let a: PciAddress = "0000:00:10.0".parse().unwrap();
    assert_eq!(a, PciAddress::new(0, 0, 0x10, 0));
    assert_eq!(a.devfn(), 0x80);
    assert_eq!(format!("{a}"), "0000:00:10.0");
    let v: PciAddress = "0000:00:00.00".parse().unwrap();
    assert_eq!(v, PciAddress::new(0, 0, 0, 0), "pciback's vdev-N form");
    let b: PciAddress = "03:1f.7".parse().unwrap();
    assert_eq!(b, PciAddress::new(0, 3, 0x1f, 7));
    for bad in [
        "",
        "00:20.0",
        "0000:00:10.8",
        "0000:100:00.0",
        "x0:00.0",
        "00:00",
        "1:2:3:4.0",
    ] {
        assert!(bad.parse::<PciAddress>().is_err(), "{bad:?} parsed");
    }
}

#[test]
fn identify_reads_ids_through_operations() {
    let f = front(FakePciback::virtio_like(DEV));
    let info = f.functions()[0];
    assert_eq!(
        (info.vendor, info.device, info.class),
        (0x1af4, 0x1041, 0x020000)
    );
    let ops = f.channel().ops.take();
    assert!(ops
        .iter()
        .all(|o| o.cmd == XEN_PCI_OP_CONF_READ && o.devfn == 0));
}

#[test]
fn capabilities_bars_and_msix_are_decoded() {
    let f = front(FakePciback::virtio_like(DEV));
    let cfg = f.config(DEV).unwrap();
    let caps: Vec<(u8, u16)> = capabilities(&cfg)
        .unwrap()
        .iter()
        .map(|c| (c.id, c.offset))
        .collect();
    assert_eq!(
        caps,
        [
            (config::CAP_MSIX, 0x98),
            (config::CAP_VENDOR, 0x84),
            (config::CAP_VENDOR, 0x70)
        ]
    );
    let bars = read_bars(&cfg).unwrap();
    assert_eq!(
        bars,
        [
            (
                1,
                Bar::Memory {
                    base: 0xfebd_1000,
                    size: 0x1000,
                    prefetchable: false,
                    wide: false
                }
            ),
            (
                4,
                Bar::Memory {
                    base: 0xfe00_0000,
                    size: 0x4000,
                    prefetchable: true,
                    wide: true
                }
            ),
        ]
    );
    // The sizing dance restored every BAR.
    assert_eq!(cfg.read32(0x14).unwrap(), 0xfebd_1000);
    assert_eq!(cfg.read32(0x20).unwrap(), 0xfe00_000c);
    let msix = msix_info(&cfg).unwrap().unwrap();
    assert_eq!(
        (msix.table_size, msix.table, msix.pba),
        (3, (1, 0), (1, 0x800))
    );
    assert_eq!(region_in_bar(&bars, 4, 0x3000, 0x1000), Ok(0xfe00_3000));
    assert!(region_in_bar(&bars, 4, 0x3000, 0x1001).is_err());
    assert!(region_in_bar(&bars, 0, 0, 4).is_err());
    assert!(region_in_bar(&bars, 4, u64::MAX, 2).is_err());
}

#[test]
fn hostile_capability_chains_are_refused() {
    // A loop.
    let f = FakePciback::virtio_like(DEV);
    f.put(0x70, &[config::CAP_VENDOR, 0x98, 0, 0]);
    let f = front(f);
    let err = capabilities(&f.config(DEV).unwrap()).unwrap_err();
    assert!(
        matches!(err, PciError::BadDevice(ref s) if s.contains("loops")),
        "{err}"
    );
    // A pointer into the header.
    let f = FakePciback::virtio_like(DEV);
    f.put(0x84, &[config::CAP_VENDOR, 0x10, 0, 0]);
    let f = front(f);
    assert!(capabilities(&f.config(DEV).unwrap()).is_err());
    // No capability list bit: nothing is walked, whatever the pointer says.
    let f = FakePciback::virtio_like(DEV);
    f.put(0x06, &[0, 0]);
    let f = front(f);
    assert_eq!(capabilities(&f.config(DEV).unwrap()).unwrap(), []);
}

#[test]
fn impossible_bars_are_refused() {
    let f = FakePciback::virtio_like(DEV);
    // Base not aligned to the 16 KiB size.
    f.put32(0x20, 0xfe00_100c);
    let f = front(f);
    let err = read_bars(&f.config(DEV).unwrap()).unwrap_err();
    assert!(matches!(err, PciError::BadDevice(_)), "{err}");
}

#[test]
fn refusals_and_unknown_functions_are_errors() {
    let mut fake = FakePciback::virtio_like(DEV);
    fake.deny_writes_at = Some(config::COMMAND as i32);
    let f = front(fake);
    let cfg = f.config(DEV).unwrap();
    let err = cfg.write16(config::COMMAND, 6).unwrap_err();
    assert!(
        matches!(
            err,
            PciError::Backend {
                op: "conf_write",
                code: XEN_PCI_ERR_ACCESS_DENIED
            }
        ),
        "{err}"
    );
    assert!(format!("{err}").contains("access denied"));
    assert!(cfg.read(0x3, 2).is_err(), "misaligned access");
    assert!(cfg.read(0x4, 3).is_err(), "odd size");
    let other = PciAddress::new(0, 0, 1, 0);
    assert_eq!(f.config(other).err(), Some(PciError::NoSuchDevice(other)));
    assert_eq!(f.enable_msix(DEV, &[0, 1]).unwrap(), [40, 41]);
    assert!(f.enable_msix(DEV, &[]).is_err());
}

#[test]
fn an_unanswered_operation_times_out_and_keeps_failing_while_busy() {
    use crate::host::World;
    let world = World::new();
    let dd = world.create_domain(5, "dd");
    let _dom0 = world.domain(0);
    let mut chan = SharedPage::new(dd.clone(), 0).unwrap();
    chan.set_timeout(1_000_000);
    let op = XenPciOp {
        cmd: XEN_PCI_OP_CONF_READ,
        size: 4,
        ..XenPciOp::default()
    };
    let start = world.now_ns();
    let err = chan.call(&op, "conf_read").unwrap_err();
    assert_eq!(err, PciError::Timeout { op: "conf_read" });
    assert!(
        world.now_ns() - start >= 1_000_000,
        "waited for the deadline"
    );
    // pciback never cleared the flag: the page is still its own, the next op fails at once.
    let t = world.now_ns();
    assert!(chan.call(&op, "conf_read").is_err());
    assert_eq!(world.now_ns(), t);
}

#[test]
fn pciback_notifying_outside_an_operation_does_not_keep_the_domain_awake() {
    use crate::host::World;
    use crate::platform::{EventChannel, Events};
    let world = World::new();
    let dd = world.create_domain(5, "dd");
    let dom0 = world.domain(0);
    let mut chan = SharedPage::new(dd.clone(), 0).unwrap();
    chan.set_timeout(1_000_000);
    let pciback = dom0.bind_interdomain(5, chan.port()).unwrap();
    // The notification of an answer the front already saw in the flag arrives after the
    // operation ended (or pciback notifies for nothing): nobody will take it, so it must not
    // make every wait return at once (on Xen the driver domain span for good).
    pciback.notify().unwrap();
    assert!(
        !dd.has_wakeup(),
        "a notification outside an operation wakes the domain"
    );
    // An operation still waits on the port: unanswered, it runs to its deadline.
    let op = XenPciOp {
        cmd: XEN_PCI_OP_CONF_READ,
        size: 4,
        ..XenPciOp::default()
    };
    let start = world.now_ns();
    assert_eq!(
        chan.call(&op, "conf_read").unwrap_err(),
        PciError::Timeout { op: "conf_read" }
    );
    assert!(world.now_ns() - start >= 1_000_000);
    pciback.notify().unwrap();
    assert!(!dd.has_wakeup(), "a late notification wakes the domain");
}

#[test]
fn the_toolstack_taking_a_function_away_is_followed_like_linux_pcifront() {
    use super::PciFrontTask;
    use crate::executor::Executor;
    use crate::host::{DeviceSpec, World};
    use crate::xenbus::{Frontend, XenbusState};
    use alloc::rc::Rc;

    let world = World::new();
    let dd = world.create_domain(5, "dd");
    let spec = DeviceSpec::new("pci", 0, 5, 0)
        .backend_key("num_devs", "1")
        .backend_key("dev-0", "0000:00:10.0")
        .backend_key("vdev-0", "0000:00:00.00")
        .backend_key("state-0", "3")
        .backend_key("state", "4");
    world.add_device(&spec);
    let be = spec.backend_path();
    let mut xs = dd.xenstore();
    let fe = Frontend::open(&mut xs, 5, "pci", 0).unwrap();
    fe.set_state(&mut xs, XenbusState::Connected).unwrap();
    let mut front = PciFront::from_channel(
        FakePciback::virtio_like(DEV),
        &[(DEV, PciAddress::new(0, 0, 0x10, 0))],
    );
    front.set_frontend(fe.clone());
    let front = Rc::new(front);
    let mut exec = Executor::new(dd.clone(), xs);
    exec.spawn(PciFrontTask::new(front.clone())).unwrap();
    let run = |exec: &mut Executor<_>| {
        for _ in 0..5 {
            exec.run_once();
        }
    };
    run(&mut exec);
    assert!(!front.is_removed(DEV));
    // `xl pci-detach` / `xl destroy`: the function's substate Closing, backend Reconfiguring.
    world.write_as(0, &format!("{be}/state-0"), b"5").unwrap();
    world.write_as(0, &format!("{be}/state"), b"7").unwrap();
    run(&mut exec);
    assert!(front.is_removed(DEV), "the driver is told to stop");
    assert_eq!(world.read_str(&fe.key("state")).as_deref(), Some("7"));
    // pciback removed it and says Reconfigured: we are Connected again (libxl waits for it).
    world.write_as(0, &format!("{be}/state"), b"8").unwrap();
    run(&mut exec);
    assert_eq!(world.read_str(&fe.key("state")).as_deref(), Some("4"));
    // The backend going away takes everything.
    world.write_as(0, &format!("{be}/state"), b"6").unwrap();
    run(&mut exec);
    assert_eq!(world.read_str(&fe.key("state")).as_deref(), Some("6"));
}
