//! Fake ports for tests that run the real reactor without root: each is one end of a
//! `socketpair(AF_UNIX, SOCK_SEQPACKET)`, which keeps frame boundaries and is pollable by mio.
//! The test holds the other end as a [`Host`].

#![allow(dead_code)] // Each test binary uses a different part.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::thread::JoinHandle;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, setsockopt, socketpair, sockopt};
use nix::sys::time::TimeVal;

use vswitch::bridge::{BridgeConfig, PortConfig, VlanMode};
use vswitch::control::server::ControlServer;
use vswitch::port::{Caps, Port, PortKind};
use vswitch::reactor::{READ_BUDGET, Reactor, StopHandle};
use vswitch::wire::VNET_HDR_LEN;

/// The switch's end of a socketpair, as a port. With `offloads` the virtio-net header travels
/// in-band, like on a TAP; without, the wire carries bare Ethernet frames. It calls itself a
/// `dgram` port, the real kind it is closest to: a Unix socket, one frame per message.
pub struct PairPort {
    name: String,
    file: File,
    offloads: bool,
}

impl Port for PairPort {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> PortKind {
        PortKind::Dgram
    }
    fn caps(&self) -> Caps {
        Caps {
            offloads: self.offloads,
            polled: false,
        }
    }
    fn carrier(&self) -> Result<(), &'static str> {
        Err("a socketpair port has no carrier")
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = if self.offloads {
            self.file.read(buf)?
        } else {
            buf[..VNET_HDR_LEN].fill(0);
            self.file.read(&mut buf[VNET_HDR_LEN..])? + VNET_HDR_LEN
        };
        if n == 0 || (!self.offloads && n == VNET_HDR_LEN) {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        Ok(n)
    }
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        let bytes = if self.offloads {
            frame
        } else {
            &frame[VNET_HDR_LEN..]
        };
        self.file.write_all(bytes)
    }
    fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(
            &mut SourceFd(&self.file.as_raw_fd()),
            token,
            Interest::READABLE,
        )
    }
    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        registry.deregister(&mut SourceFd(&self.file.as_raw_fd()))
    }
}

/// The test's end of a socketpair: a host plugged into the switch.
pub struct Host {
    file: File,
}

impl Host {
    pub fn send(&mut self, frame: &[u8]) {
        self.file.write_all(frame).expect("send to switch");
    }

    /// The next frame within `wait`, or `None`.
    pub fn recv(&mut self, wait: Duration) -> Option<Vec<u8>> {
        let tv = TimeVal::new(wait.as_secs() as _, wait.subsec_micros() as _);
        setsockopt(&self.file.as_fd(), sockopt::ReceiveTimeout, &tv).unwrap();
        let mut buf = vec![0u8; 70_000];
        match self.file.read(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                Some(buf)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            Err(e) => panic!("recv: {e}"),
        }
    }

    /// Asserts that nothing arrives for a short while.
    pub fn expect_silence(&mut self) {
        if let Some(f) = self.recv(Duration::from_millis(150)) {
            panic!(
                "unexpected frame of {} bytes: {:02x?}",
                f.len(),
                &f[..f.len().min(32)]
            );
        }
    }

    pub fn expect(&mut self, want: &[u8]) {
        let got = self
            .recv(Duration::from_secs(5))
            .expect("a frame within 5 s");
        assert_eq!(got, want);
    }
}

pub fn pair(name: &str, offloads: bool) -> (PairPort, Host) {
    let (a, b): (OwnedFd, OwnedFd) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .unwrap();
    let switch_end = File::from(a);
    nix::fcntl::fcntl(
        &switch_end,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .unwrap();
    // A host never blocks for long: a full queue fails the send instead of hanging the test.
    setsockopt(&b, sockopt::SendTimeout, &TimeVal::new(5, 0)).unwrap();
    (
        PairPort {
            name: name.to_owned(),
            file: switch_end,
            offloads,
        },
        Host {
            file: File::from(b),
        },
    )
}

/// A running switch with plain (no offload) ports, stopped and returned by [`Switch::finish`].
pub struct Switch {
    stop: StopHandle,
    thread: Option<JoinHandle<vswitch::switch::Switch>>,
}

impl Switch {
    pub fn start(ports: Vec<PairPort>, config: BridgeConfig) -> Switch {
        Switch::start_with_budget(ports, config, vswitch::reactor::READ_BUDGET)
    }

    pub fn start_with_budget(ports: Vec<PairPort>, config: BridgeConfig, budget: usize) -> Switch {
        Switch::start_with(ports, config, budget, None)
    }

    /// Starts a switch whose loop also serves `control`.
    pub fn start_with(
        ports: Vec<PairPort>,
        config: BridgeConfig,
        budget: usize,
        control: Option<ControlServer>,
    ) -> Switch {
        let ports = ports
            .into_iter()
            .map(|p| (p, PortConfig::default()))
            .collect();
        Switch::start_full(ports, config, budget, control)
    }

    /// Starts a switch with each port in its own VLAN mode.
    pub fn start_vlans(ports: Vec<(PairPort, VlanMode)>) -> Switch {
        let ports = ports.into_iter().map(|(p, m)| (p, m.into())).collect();
        Switch::start_full(ports, BridgeConfig::default(), READ_BUDGET, None)
    }

    /// Starts a switch with per-port settings, after `setup` has had it.
    pub fn start_custom(
        ports: Vec<(PairPort, PortConfig)>,
        config: BridgeConfig,
        setup: impl FnOnce(&mut vswitch::switch::Switch),
    ) -> Switch {
        Switch::spawn(Switch::build(ports, config, READ_BUDGET, None), setup)
    }

    fn start_full(
        ports: Vec<(PairPort, PortConfig)>,
        config: BridgeConfig,
        budget: usize,
        control: Option<ControlServer>,
    ) -> Switch {
        Switch::spawn(Switch::build(ports, config, budget, control), |_| {})
    }

    fn build(
        ports: Vec<(PairPort, PortConfig)>,
        config: BridgeConfig,
        budget: usize,
        control: Option<ControlServer>,
    ) -> Reactor {
        let mut reactor = Reactor::new("test", config).unwrap();
        reactor.set_read_budget(budget);
        if let Some(control) = control {
            reactor.serve_control(control).unwrap();
        }
        for (p, config) in ports {
            reactor
                .switch_mut()
                .add_port_with(Box::new(p), config)
                .unwrap();
        }
        reactor
    }

    fn spawn(mut reactor: Reactor, setup: impl FnOnce(&mut vswitch::switch::Switch)) -> Switch {
        setup(reactor.switch_mut());
        let stop = reactor.stop_handle();
        let thread = std::thread::spawn(move || {
            reactor.run().unwrap();
            reactor.into_switch()
        });
        Switch {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the loop and returns the switch, to look at its tables and counters.
    pub fn finish(mut self) -> vswitch::switch::Switch {
        self.stop.stop();
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.stop.stop();
            let _ = t.join();
        }
    }
}

pub fn hosts(n: usize, offloads: bool) -> (Vec<PairPort>, Vec<Host>) {
    (0..n).map(|i| pair(&format!("p{i}"), offloads)).unzip()
}

pub fn mac(n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, n]
}

pub const BCAST: [u8; 6] = [0xff; 6];

pub fn eth(dst: [u8; 6], src: [u8; 6], len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut x = len as u32;
    while f.len() < len {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        f.push((x >> 16) as u8);
    }
    f
}
