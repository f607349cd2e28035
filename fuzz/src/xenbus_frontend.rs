//! A whole backend reading a frontend's xenstore keys and states from the input.
//!
//! What a frontend writes in its xenstore directory, read by a whole backend on
//! `minios::host`: ring references, event channels, ring orders, queue counts, protocol and
//! feature values, then any sequence of xenbus states (XSA-178, XSA-350). The input: a flags
//! byte (netback or blkback), one value choice per key the backend reads (absent, a real
//! grant or port, a decimal, a small number, or raw bytes), then the states to write.
//!
//! Asserts: no panic; the backend's state is always a xenbus state; and once the frontend
//! closes (Closing, then Closed) everything of the device is released: the driver domain
//! holds exactly the grant mappings and event channels it held before the device came.

use crate::harness::{blk, net};
use crate::input::Input;
use minios::host::{HostChannel, HostDomain, HostGranted, World};
use minios::platform::{Access, DomId, EventChannel, Events, GrantedPage, Grants};
use minios::xenbus::backend::state_limit::STATE_REFILL_NS;
use minios::xenstore::Store;

/// The keys blkback reads from a frontend.
const BLK_KEYS: &[&str] = &[
    "ring-ref",
    "ring-page-order",
    "ring-ref0",
    "ring-ref1",
    "event-channel",
    "protocol",
    "feature-persistent",
    "multi-queue-num-queues",
    "queue-0/ring-ref",
    "queue-0/event-channel",
    "queue-1/ring-ref",
    "queue-1/event-channel",
];

/// The keys netback reads from a frontend.
const NET_KEYS: &[&str] = &[
    "tx-ring-ref",
    "rx-ring-ref",
    "event-channel",
    "event-channel-tx",
    "event-channel-rx",
    "request-rx-copy",
    "feature-rx-notify",
    "feature-sg",
    "feature-gso-tcpv4",
    "feature-gso-tcpv6",
    "feature-ipv6-csum-offload",
    "feature-no-csum-offload",
    "multi-queue-num-queues",
    "queue-0/tx-ring-ref",
    "queue-0/rx-ring-ref",
    "queue-0/event-channel",
];

/// What the guest has to hand out: granted pages and unbound ports.
struct Resources {
    pages: Vec<HostGranted>,
    ports: Vec<HostChannel>,
}

impl Resources {
    fn new(dom: &HostDomain, backend: DomId) -> Self {
        Self {
            pages: (0..4)
                .map(|_| dom.grant_page(backend, Access::ReadWrite).expect("grant"))
                .collect(),
            ports: (0..2)
                .map(|_| dom.alloc_unbound(backend).expect("port"))
                .collect(),
        }
    }

    /// The value the input chooses for `key`, or `None` to leave it out.
    fn value(&self, key: &str, input: &mut Input<'_>) -> Option<Vec<u8>> {
        let which = usize::from(input.u8());
        Some(match which % 5 {
            0 => return None,
            1 if key.contains("ring-ref") => {
                self.pages[which / 5 % 4].gref().to_string().into_bytes()
            }
            1 if key.contains("event-channel") => {
                self.ports[which / 5 % 2].port().to_string().into_bytes()
            }
            1 if key == "protocol" => b"x86_64-abi".to_vec(),
            1 => b"1".to_vec(),
            2 => input.u32().to_string().into_bytes(),
            3 => (which / 5 % 8).to_string().into_bytes(),
            _ => {
                let n = usize::from(input.u8()) % 24;
                input.bytes(n).to_vec()
            }
        })
    }
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    if input.u8() & 1 == 0 {
        run_blk(&mut input);
    } else {
        run_net(&mut input);
    }
}

/// One device as the guest sees it: where its keys are, where the backend's state is.
struct Device<'a> {
    /// The frontend's directory.
    dir: &'a str,
    /// The backend's `state` node.
    backend_state: &'a str,
    /// The keys the backend reads.
    keys: &'a [&'a str],
}

/// Writes the chosen keys, then the states; closes; checks what the driver domain holds.
fn drive(
    world: &World,
    xs: &mut impl Store,
    dev: &Device<'_>,
    res: &Resources,
    input: &mut Input<'_>,
    settle: &mut dyn FnMut(),
) {
    let dd = 1;
    let dir = dev.dir;
    let base = (world.live_mappings(dd), world.open_ports(dd));
    for key in dev.keys {
        if let Some(v) = res.value(key, input) {
            xs.write(&format!("{dir}/{key}"), &v)
                .expect("the guest writes its keys");
        }
    }
    let states: Vec<u8> = input.rest().iter().take(16).copied().collect();
    for s in states.iter().copied().chain([3, 4]) {
        let value = match s % 9 {
            7 => b"garbage".to_vec(),
            8 => b"".to_vec(),
            n => n.to_string().into_bytes(),
        };
        xs.write(&format!("{dir}/state"), &value)
            .expect("the guest writes its state");
        settle();
        if let Some(state) = world.read_str(dev.backend_state) {
            assert!(
                matches!(state.as_str(), "1" | "2" | "3" | "4" | "5" | "6"),
                "backend state {state:?}"
            );
        }
    }
    for s in ["5", "6"] {
        xs.write(&format!("{dir}/state"), s.as_bytes())
            .expect("the guest writes its state");
        settle();
    }
    // More state changes than the backend acts on at once are acted on later (the xenbus
    // framework's per-device state limit): give it the time to act on the last one.
    world.advance(STATE_REFILL_NS);
    settle();
    assert_eq!(
        (world.live_mappings(dd), world.open_ports(dd)),
        base,
        "a closed device leaves no mapping or event channel behind"
    );
}

fn run_blk(input: &mut Input<'_>) {
    let mut env = blk::Env::new(&[blk::Vol::new("victim", 1 << 20)]);
    let mut front = blk::Front::add(&mut env, 5, 51712, "victim", blk::FrontOpts::default());
    let res = Resources::new(&front.dom, blk::DD);
    let dir = front.dev.frontend_path();
    let state = format!("{}/state", front.dev.backend_path());
    let world = env.world.clone();
    let dev = Device {
        dir: &dir,
        backend_state: &state,
        keys: BLK_KEYS,
    };
    drive(&world, &mut front.xs, &dev, &res, input, &mut || {
        env.settle()
    });
}

fn run_net(input: &mut Input<'_>) {
    let mut h = net::Harness::new("netback.uplink=off");
    let mut front = net::TestFront::create(&h.world, 5, 0, &net::FrontOpts::linux(5));
    h.settle();
    let res = Resources::new(&front.dom, net::DD);
    let dir = front.spec.frontend_path();
    let state = format!("{}/state", front.spec.backend_path());
    let world = h.world.clone();
    let dev = Device {
        dir: &dir,
        backend_state: &state,
        keys: NET_KEYS,
    };
    drive(&world, &mut front.xs, &dev, &res, input, &mut || h.settle());
}
