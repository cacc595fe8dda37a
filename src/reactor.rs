//! The event loop: one mio `Poll` for every port, the control socket, the ageing timer and the
//! signals.
//!
//! mio is edge-triggered, so a port reported readable is read until `WouldBlock`, but at most
//! [`READ_BUDGET`] frames per turn: a port with frames left goes back on the ready list and the
//! next poll does not wait, so one busy port cannot starve the others. Each frame is read into
//! the one reusable buffer, handed to the [`Bridge`] for a verdict, and written to the chosen
//! ports straight from that buffer, virtio-net header included.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::{Events, Poll, Token, Waker};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use crate::bridge::{
    Bridge, BridgeConfig, DropReason, Egress, GuardEvent, PortConfig, PortId, Verdict, VlanMode,
};
use crate::config::{ArpBinding, Config, OwnAddress, PortSpec, Target};
use crate::control::server::{ControlServer, Incoming};
use crate::control::{Reply, commands};
use crate::port::internal::InternalPort;
use crate::port::{self, Port};
use crate::wire::vlan::{self as tag, VLAN_TAG_LEN};
use crate::wire::{FRAME_BUF_LEN, VNET_HDR_LEN, VnetHeader, offload};

/// Frames read from one port per turn before the others get theirs, unless set otherwise with
/// [`Reactor::set_read_budget`].
pub const READ_BUDGET: usize = 64;

/// How long the loop keeps polling without sleeping after the last frame, unless set otherwise
/// with [`Reactor::set_busy_poll`]. A frame that arrives within it is read at once instead of
/// after a wake-up; an idle switch still sleeps.
pub const BUSY_POLL: Duration = Duration::from_micros(50);

/// How often the learning table is swept for expired entries.
const TICK: Duration = Duration::from_secs(1);

/// Shortest interval between two warnings about the same port's send errors.
const WARN_INTERVAL: Duration = Duration::from_secs(1);

const SIGNAL_TOKEN: Token = Token(usize::MAX - 1);
const WAKE_TOKEN: Token = Token(usize::MAX - 2);

/// Stops a running [`Reactor`] from another thread.
#[derive(Clone)]
pub struct StopHandle {
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl StopHandle {
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        // A failed wake leaves the loop asleep until its next timer tick, at most a second.
        let _ = self.waker.wake();
    }
}

struct Slot {
    port: Box<dyn Port>,
    last_warning: Option<Instant>,
    last_guard_log: Option<Instant>,
    /// The last send found the link down (EIO); cleared by the next successful send.
    link_down: bool,
    /// What the port was opened on, when it came from a spec (`--port`, the file, `port add`).
    target: Option<Target>,
}

/// Re-reads the configuration for `reload` and SIGHUP.
pub type ConfigLoader = Box<dyn FnMut() -> Result<Config, String> + Send>;

/// Where the configuration came from, so it can be re-read.
struct ConfigSource {
    path: PathBuf,
    load: ConfigLoader,
    /// The configuration applied last; its ports are the ones a reload manages (attached from
    /// the file and not since taken over by `port-add`/`port-del`).
    applied: Config,
}

/// The switch's event loop and everything it owns.
pub struct Reactor {
    name: String,
    poll: Poll,
    events: Events,
    bridge: Bridge,
    slots: Vec<Option<Slot>>,
    ready: ReadyList,
    /// Scratch lists kept to avoid allocating on the datapath.
    batch: Vec<PortId>,
    targets: Vec<PortId>,
    /// Ports found dead while sending, removed once the current frame is done.
    dead: Vec<(PortId, String)>,
    buf: FrameBuf,
    busy_poll: Duration,
    /// When the last frame was read.
    last_frame: Instant,
    /// Where frames finished in software (checksums, segments) are built.
    scratch: Vec<u8>,
    read_budget: usize,
    start: Instant,
    next_tick: Instant,
    signals: Option<Signals>,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    control: Option<ControlServer>,
    /// Ports without a file descriptor, ticked every turn (the switch's own port).
    polled: Vec<PortId>,
    /// The earliest time a polled port asked to be ticked again.
    next_port_tick: Option<Instant>,
    /// Control requests read this turn, with the client each came from.
    incoming: Vec<(usize, Incoming)>,
    config: Option<ConfigSource>,
}

impl Reactor {
    /// A switch called `name` with no ports yet.
    pub fn new(name: &str, config: BridgeConfig) -> io::Result<Reactor> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE_TOKEN)?);
        let start = Instant::now();
        Ok(Reactor {
            name: name.to_owned(),
            poll,
            events: Events::with_capacity(256),
            bridge: Bridge::new(config),
            slots: Vec::new(),
            ready: ReadyList::default(),
            batch: Vec::new(),
            targets: Vec::new(),
            dead: Vec::new(),
            buf: FrameBuf::new(),
            busy_poll: BUSY_POLL,
            last_frame: start,
            scratch: Vec::with_capacity(FRAME_BUF_LEN),
            read_budget: READ_BUDGET,
            start,
            next_tick: start + TICK,
            signals: None,
            stop: Arc::new(AtomicBool::new(false)),
            waker,
            control: None,
            polled: Vec::new(),
            next_port_tick: None,
            incoming: Vec::new(),
            config: None,
        })
    }

    /// Stops the loop on SIGINT or SIGTERM; reloads the configuration on SIGHUP.
    pub fn handle_signals(&mut self) -> io::Result<()> {
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
        self.poll
            .registry()
            .register(&mut signals, SIGNAL_TOKEN, mio::Interest::READABLE)?;
        self.signals = Some(signals);
        Ok(())
    }

    /// Sets how long the loop keeps polling after the last frame before it sleeps (zero: never
    /// busy-poll).
    pub fn set_busy_poll(&mut self, busy_poll: Duration) {
        self.busy_poll = busy_poll;
    }

    /// Sets how many frames one port may deliver per turn (at least 1).
    pub fn set_read_budget(&mut self, frames: usize) {
        self.read_budget = frames.max(1);
    }

    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            stop: Arc::clone(&self.stop),
            waker: Arc::clone(&self.waker),
        }
    }

    /// Serves control clients on `server` from this loop.
    pub fn serve_control(&mut self, mut server: ControlServer) -> io::Result<()> {
        server.register(self.poll.registry())?;
        self.control = Some(server);
        Ok(())
    }

    /// Makes `reload` and SIGHUP re-read the config file at `path` with `load`; `applied` is
    /// the configuration the switch started with.
    pub fn set_config_source(&mut self, path: &Path, load: ConfigLoader, applied: Config) {
        self.config = Some(ConfigSource {
            path: path.to_owned(),
            load,
            applied,
        });
    }

    /// The config file reloads read, if there is one.
    pub fn config_path(&self) -> Option<&Path> {
        self.config.as_ref().map(|c| c.path.as_path())
    }

    /// Reads the config file again (without applying it).
    pub fn load_config(&mut self) -> Result<Config, String> {
        match self.config.as_mut() {
            Some(source) => (source.load)(),
            None => Err("vswitchd was started without --config; there is nothing to reload".into()),
        }
    }

    /// The configuration applied last (at start or by the last reload).
    pub fn applied_config(&self) -> Option<&Config> {
        self.config.as_ref().map(|c| &c.applied)
    }

    pub fn set_applied_config(&mut self, config: Config) {
        if let Some(source) = self.config.as_mut() {
            source.applied = config;
        }
    }

    /// Takes the port `name` out of the config file's management (an operator attached or
    /// detached it by hand): a reload will not stop it because the file no longer lists it.
    pub fn release_from_config(&mut self, name: &str) {
        if let Some(source) = self.config.as_mut() {
            source.applied.ports.retain(|p| p.name.as_str() != name);
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn bridge(&self) -> &Bridge {
        &self.bridge
    }

    pub fn bridge_mut(&mut self) -> &mut Bridge {
        &mut self.bridge
    }

    /// The port's state: `up`, `link-down` (its last send found the link down), or the
    /// port's own word when it waits for a peer (`down`, `waiting`).
    pub fn port_state(&self, id: PortId) -> &'static str {
        match self.slot(id) {
            Some(slot) if slot.port.state() != "up" => slot.port.state(),
            Some(slot) if slot.link_down => "link-down",
            Some(_) => "up",
            None => "gone",
        }
    }

    /// Time since the switch started: the clock the bridge runs on.
    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// The attached port with this number.
    pub fn port(&self, id: PortId) -> Option<&dyn Port> {
        self.slot(id).map(|s| &*s.port)
    }

    /// The number of the attached port called `name`.
    pub fn port_id(&self, name: &str) -> Option<PortId> {
        self.bridge
            .ports()
            .find(|&id| self.port(id).is_some_and(|p| p.name() == name))
    }

    /// Attaches a port; it forwards from the next turn of the loop.
    pub fn add_port(&mut self, port: Box<dyn Port>) -> io::Result<PortId> {
        self.add_port_with(port, VlanMode::All)
    }

    /// Attaches a port with `config` (a [`PortConfig`], or just a [`VlanMode`]).
    pub fn add_port_with(
        &mut self,
        mut port: Box<dyn Port>,
        config: impl Into<PortConfig>,
    ) -> io::Result<PortId> {
        let config = config.into();
        let mode = config.vlan.to_string();
        let polled = port.caps().polled;
        let id = self.bridge.add_port_with(config);
        if let Err(e) = port.register(self.poll.registry(), Token(id.index())) {
            self.bridge.remove_port(id);
            return Err(e);
        }
        if self.slots.len() <= id.index() {
            self.slots.resize_with(id.index() + 1, || None);
        }
        info!(
            "port {} ({}, VLANs: {mode}) attached as {id}",
            port.name(),
            port.kind()
        );
        self.slots[id.index()] = Some(Slot {
            port,
            last_warning: None,
            last_guard_log: None,
            link_down: false,
            target: None,
        });
        if polled {
            self.polled.push(id);
        }
        // Frames may have queued before registration; look once.
        self.ready.push(id);
        Ok(id)
    }

    /// Opens the port `spec` describes and attaches it.
    pub fn attach(&mut self, spec: &PortSpec) -> Result<PortId, String> {
        if self.port_id(spec.name.as_str()).is_some() {
            return Err(format!("port {} is already attached", spec.name));
        }
        let port = port::open(&spec.name, &spec.target).map_err(|e| e.to_string())?;
        self.attach_opened(spec, port)
    }

    /// Attaches a port opened from `spec`, remembering its target.
    pub fn attach_opened(
        &mut self,
        spec: &PortSpec,
        port: Box<dyn Port>,
    ) -> Result<PortId, String> {
        let id = self
            .add_port_with(port, spec.port_config())
            .map_err(|e| format!("cannot watch port {}: {e}", spec.name))?;
        if let Some(slot) = self.slots[id.index()].as_mut() {
            slot.target = Some(spec.target.clone());
        }
        Ok(id)
    }

    /// The port's name, or its number if it is gone.
    pub fn port_name(&self, id: PortId) -> String {
        self.port(id)
            .map_or_else(|| id.to_string(), |p| p.name().to_owned())
    }

    /// What the port was opened on, if it came from a spec.
    pub fn port_target(&self, id: PortId) -> Option<&Target> {
        self.slot(id)?.target.as_ref()
    }

    /// Attaches the switch's own port (`--ip`): an internal port with the switch's name, in
    /// the VLAN `own` names.
    pub fn attach_own_address(&mut self, own: &OwnAddress) -> io::Result<PortId> {
        if self.port_id(&self.name).is_some() {
            return Err(io::Error::other(format!(
                "a port is already named {}, the name of the switch's own port",
                self.name
            )));
        }
        if own.ips.len() > port::internal::MAX_ADDRS {
            return Err(io::Error::other(format!(
                "at most {} addresses for the switch's own port",
                port::internal::MAX_ADDRS
            )));
        }
        let internal = InternalPort::new(&self.name, own.mac, &own.ips);
        self.add_port_with(Box::new(internal), VlanMode::Access(own.vlan))
    }

    /// Adds a static ARP binding from the config file.
    pub fn add_arp_binding(&mut self, binding: &ArpBinding) -> Result<(), String> {
        let port = self.port_id(binding.port.as_str()).ok_or_else(|| {
            format!(
                "static ARP binding for {}: no port {}",
                binding.ip, binding.port
            )
        })?;
        self.bridge
            .add_arp_static(port, binding.vlan, binding.ip, binding.mac)
            .map_err(|e| format!("static ARP binding for {}: {e}", binding.ip))
    }

    /// Detaches a port: its MAC entries are forgotten, and the port is returned to the caller
    /// (dropping it closes it).
    pub fn remove_port(&mut self, id: PortId) -> Option<Box<dyn Port>> {
        let mut slot = self.slots.get_mut(id.index())?.take()?;
        self.detach(id, &mut *slot.port);
        Some(slot.port)
    }

    fn detach(&mut self, id: PortId, port: &mut dyn Port) {
        if let Err(e) = port.deregister(self.poll.registry()) {
            debug!("port {}: deregister: {e}", port.name());
        }
        self.ready.forget(id);
        self.polled.retain(|&p| p != id);
        self.bridge.remove_port(id);
    }

    fn slot(&self, id: PortId) -> Option<&Slot> {
        self.slots.get(id.index())?.as_ref()
    }

    /// Runs until [`StopHandle::stop`] or a handled signal; then returns, leaving the ports
    /// attached (dropping the reactor closes them).
    pub fn run(&mut self) -> io::Result<()> {
        while !self.stop.load(Ordering::SeqCst) {
            let now = Instant::now();
            let control_pending = self
                .control
                .as_ref()
                .is_some_and(ControlServer::has_pending);
            let wake = self
                .next_port_tick
                .map_or(self.next_tick, |t| t.min(self.next_tick));
            let busy = now.saturating_duration_since(self.last_frame) < self.busy_poll;
            let timeout = if self.ready.is_empty() && !control_pending && !busy {
                wake.saturating_duration_since(now)
            } else {
                Duration::ZERO
            };
            match self.poll.poll(&mut self.events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let mut signalled = false;
            for event in self.events.iter() {
                match event.token() {
                    SIGNAL_TOKEN => signalled = true,
                    WAKE_TOKEN => {}
                    token if ControlServer::owns(token) => {
                        if let Some(control) = self.control.as_mut() {
                            control.ready(self.poll.registry(), token, &mut self.incoming);
                        }
                    }
                    Token(t) => {
                        if let Ok(id) = u16::try_from(t) {
                            self.ready.push(PortId(id));
                        }
                    }
                }
            }
            if signalled {
                self.take_signals();
            }
            self.service_ready();
            if let Some(control) = self.control.as_mut() {
                control.resume(self.poll.registry(), &mut self.incoming);
            }
            self.answer_control();
            self.tick_polled();
            let now = Instant::now();
            if now >= self.next_tick {
                let expired = self.bridge.tick(self.now());
                if expired > 0 {
                    debug!("{expired} MAC entries aged out");
                }
                if let Some(control) = self.control.as_mut() {
                    control.tick(self.poll.registry(), now);
                }
                self.next_tick = now + TICK;
            }
        }
        Ok(())
    }

    /// Lets the ports without a file descriptor work; those with frames to deliver go on the
    /// ready list.
    fn tick_polled(&mut self) {
        if self.polled.is_empty() {
            self.next_port_tick = None;
            return;
        }
        let now = self.now();
        let mut next: Option<Duration> = None;
        for i in 0..self.polled.len() {
            let id = self.polled[i];
            let Some(slot) = self.slots.get_mut(id.index()).and_then(Option::as_mut) else {
                continue;
            };
            let tick = slot.port.tick(now);
            if tick.ready {
                self.ready.push(id);
            }
            next = match (next, tick.next) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        self.next_port_tick = next.map(|d| self.start + now + d);
    }

    fn take_signals(&mut self) {
        let Some(signals) = self.signals.as_mut() else {
            return;
        };
        let mut reload = false;
        for signal in signals.pending() {
            let name = match signal {
                SIGINT => "SIGINT",
                SIGTERM => "SIGTERM",
                SIGHUP => {
                    reload = true;
                    continue;
                }
                _ => continue,
            };
            info!("{name} received, shutting down");
            self.stop.store(true, Ordering::SeqCst);
        }
        if reload {
            match commands::reload(self) {
                Ok(_) => {}
                Err(e) => warn!("SIGHUP: {e}"),
            }
        }
    }

    /// Executes the control requests read this turn and queues their replies.
    fn answer_control(&mut self) {
        while let Some((client, incoming)) = self.incoming.pop() {
            let (reply, close) = match incoming {
                Incoming::Request(request) => match commands::execute(self, request) {
                    Ok(value) => (Reply::Ok(value), false),
                    Err(message) => (Reply::Error(message), false),
                },
                Incoming::Invalid { message, fatal } => (Reply::Error(message), fatal),
            };
            if let Some(control) = self.control.as_mut() {
                control.reply(self.poll.registry(), client, &reply, close);
            }
        }
    }

    /// Gives every ready port one turn of at most a read budget of frames.
    fn service_ready(&mut self) {
        self.ready.take_into(&mut self.batch);
        for i in 0..self.batch.len() {
            let id = self.batch[i];
            if self.service(id) {
                self.ready.push(id);
            }
            self.reap_dead();
        }
        self.batch.clear();
    }

    /// Reads up to a budget of frames from one port; returns whether it may have more.
    fn service(&mut self, id: PortId) -> bool {
        // The port is taken out of its slot while its frames are handled, so the loop can
        // borrow the others; it never sends to itself.
        let Some(mut slot) = self.slots.get_mut(id.index()).and_then(Option::take) else {
            return false;
        };
        let now = self.now();
        let mut more = true;
        let mut got_frames = false;
        for _ in 0..self.read_budget {
            match slot.port.recv(self.buf.recv_area()) {
                Ok(n) => {
                    self.handle_frame(id, &mut slot, n, now);
                    got_frames = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    more = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    warn!("port {} removed: {}", slot.port.name(), describe_gone(&e));
                    self.detach(id, &mut *slot.port);
                    return false;
                }
            }
        }
        self.slots[id.index()] = Some(slot);
        if got_frames {
            self.last_frame = Instant::now();
        }
        more
    }

    fn handle_frame(&mut self, ingress: PortId, slot: &mut Slot, len: usize, now: Duration) {
        self.buf.received(len);
        match self.bridge.ingress(ingress, self.buf.eth(), now) {
            Verdict::Forward { port, vlan } => self.transmit(port, vlan),
            Verdict::Flood { vlan } => {
                let mut targets = std::mem::take(&mut self.targets);
                targets.extend(self.bridge.flood_targets(ingress, vlan));
                for &out in &targets {
                    self.transmit(out, vlan);
                }
                targets.clear();
                self.targets = targets;
            }
            Verdict::Reply { vlan } => {
                // The ingress port is out of its slot while its frames are handled: answer
                // through the slot in hand.
                self.buf.load(self.bridge.reply());
                send(
                    &mut self.bridge,
                    &mut self.buf,
                    &mut self.dead,
                    &mut self.scratch,
                    slot,
                    ingress,
                    vlan,
                );
            }
            Verdict::Drop(DropReason::ArpGuard) => {
                if let Some(event) = self.bridge.take_guard_event() {
                    self.log_guard(slot, &event);
                }
            }
            Verdict::Drop(_) => {}
        }
    }

    /// Logs an ARP the guard dropped, at most once per second per port.
    fn log_guard(&self, slot: &mut Slot, event: &GuardEvent) {
        let now = Instant::now();
        if slot
            .last_guard_log
            .is_some_and(|t| now.duration_since(t) < WARN_INTERVAL)
        {
            return;
        }
        slot.last_guard_log = Some(now);
        let (mac, port) = event.holder;
        let port = self.port_name(port);
        let binding = if event.is_static {
            "is statically bound to"
        } else {
            "belongs to"
        };
        warn!(
            "port {}: ARP guard dropped ARP from {} claiming {}, which {binding} {mac} on {port}",
            slot.port.name(),
            event.arp.sender_mac,
            event.arp.sender_ip
        );
    }

    /// Sends the frame in the buffer to `out`, shaped for its VLAN mode.
    fn transmit(&mut self, out: PortId, vlan: u16) {
        let Some(slot) = self.slots.get_mut(out.index()).and_then(Option::as_mut) else {
            return;
        };
        send(
            &mut self.bridge,
            &mut self.buf,
            &mut self.dead,
            &mut self.scratch,
            slot,
            out,
            vlan,
        );
    }

    fn reap_dead(&mut self) {
        while let Some((id, why)) = self.dead.pop() {
            if let Some(port) = self.remove_port(id) {
                warn!("port {} removed: {why}", port.name());
            }
        }
    }
}

/// The one frame buffer. A frame is read in after [`VLAN_TAG_LEN`] bytes of headroom, so a tag
/// can be pushed by moving the 24 bytes in front of it (virtio-net header and MACs) instead of
/// the whole frame; between two egress ports the frame is only re-shaped if their tagging
/// differs.
struct FrameBuf {
    bytes: Box<[u8]>,
    /// Where the frame (its virtio-net header) starts now.
    start: usize,
    len: usize,
    /// Priority and DEI bits of the tag the frame arrived with, kept when a tag is pushed.
    prio: u16,
    /// The frame carries its (outer) 802.1Q tag now. Kept as state rather than read from the
    /// bytes: a frame with two tags must lose only one on its way to an access port.
    tagged: bool,
}

impl FrameBuf {
    fn new() -> FrameBuf {
        FrameBuf {
            bytes: vec![0; VLAN_TAG_LEN + FRAME_BUF_LEN].into_boxed_slice(),
            start: VLAN_TAG_LEN,
            len: 0,
            prio: 0,
            tagged: false,
        }
    }

    /// Where a port reads the next frame to.
    fn recv_area(&mut self) -> &mut [u8] {
        &mut self.bytes[VLAN_TAG_LEN..]
    }

    /// Puts a frame the switch made itself (an Ethernet frame, complete) in the buffer.
    fn load(&mut self, eth: &[u8]) {
        let start = VLAN_TAG_LEN;
        self.bytes[start..start + VNET_HDR_LEN].fill(0);
        self.bytes[start + VNET_HDR_LEN..start + VNET_HDR_LEN + eth.len()].copy_from_slice(eth);
        self.received(VNET_HDR_LEN + eth.len());
    }

    /// Takes note of a frame of `len` bytes just read into [`FrameBuf::recv_area`].
    fn received(&mut self, len: usize) {
        self.start = VLAN_TAG_LEN;
        self.len = len;
        let tci = tag::tci(self.eth());
        self.prio = tci.map_or(0, |tci| tci & 0xf000);
        self.tagged = tci.is_some();
    }

    fn frame(&self) -> &[u8] {
        &self.bytes[self.start..self.start + self.len]
    }

    /// The Ethernet frame, after the virtio-net header (empty if the frame is shorter).
    fn eth(&self) -> &[u8] {
        self.frame().get(VNET_HDR_LEN..).unwrap_or(&[])
    }

    /// Tags or untags the frame as a port that sends `vlan` frames `egress` wants it.
    fn shape(&mut self, egress: Egress, vlan: u16) {
        match (egress, self.tagged) {
            (Egress::Untagged, true) => {
                self.start = tag::pop(&mut self.bytes, self.start, self.len);
                self.len -= VLAN_TAG_LEN;
                self.tagged = false;
            }
            (Egress::Tagged, false) => {
                self.start = tag::push(&mut self.bytes, self.start, self.len, self.prio | vlan);
                self.len += VLAN_TAG_LEN;
                self.tagged = true;
            }
            // A priority-tagged frame (VID 0) joining a VLAN keeps its priority.
            (Egress::Tagged, true) => {
                if let Some(tci) = tag::tci(self.eth())
                    && tag::vid(tci) != vlan
                {
                    tag::set_tci(&mut self.bytes, self.start, (tci & 0xf000) | vlan);
                }
            }
            (Egress::Untagged, false) => {}
        }
    }
}

/// Ports to read this turn: signalled by epoll, or left with frames by the last turn. Each port
/// is on the list at most once.
#[derive(Default)]
struct ReadyList {
    list: Vec<PortId>,
    queued: Vec<bool>,
}

impl ReadyList {
    fn push(&mut self, id: PortId) {
        if self.queued.len() <= id.index() {
            self.queued.resize(id.index() + 1, false);
        }
        if !self.queued[id.index()] {
            self.queued[id.index()] = true;
            self.list.push(id);
        }
    }

    /// Removes a port that left the switch.
    fn forget(&mut self, id: PortId) {
        if self.queued.get(id.index()).copied().unwrap_or(false) {
            self.queued[id.index()] = false;
            self.list.retain(|&p| p != id);
        }
    }

    fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Moves the whole list into `out` (which must be empty) and empties it.
    fn take_into(&mut self, out: &mut Vec<PortId>) {
        for &id in &self.list {
            self.queued[id.index()] = false;
        }
        std::mem::swap(&mut self.list, out);
    }
}

/// Sends the frame in `buf`, shaped for `vlan` on port `out` (whose slot is `slot`), counting
/// the outcome; a port found gone is put on `dead`. A port that cannot take offloaded frames
/// gets them finished in software first (built in `scratch`): the checksum completed or the
/// super-frame cut into segments.
fn send(
    bridge: &mut Bridge,
    buf: &mut FrameBuf,
    dead: &mut Vec<(PortId, String)>,
    scratch: &mut Vec<u8>,
    slot: &mut Slot,
    out: PortId,
    vlan: u16,
) {
    if dead.iter().any(|(id, _)| *id == out) {
        return;
    }
    let Some(egress) = bridge.egress(out, vlan) else {
        return;
    };
    buf.shape(egress, vlan);
    let frame = buf.frame();
    if !slot.port.caps().offloads && !VnetHeader::new_unchecked(frame).is_complete() {
        let finished = offload::finish(frame, scratch, |segment| {
            send_one(bridge, dead, slot, out, segment);
        });
        if let Err(e) = finished {
            bridge.count_drop(out, DropReason::NoOffload);
            debug!(
                "port {}: cannot finish an offloaded frame: {e}",
                slot.port.name()
            );
        }
        return;
    }
    send_one(bridge, dead, slot, out, frame);
}

/// Writes one frame (header + Ethernet) to a port and counts the outcome.
fn send_one(
    bridge: &mut Bridge,
    dead: &mut Vec<(PortId, String)>,
    slot: &mut Slot,
    out: PortId,
    frame: &[u8],
) {
    if dead.iter().any(|(id, _)| *id == out) {
        return;
    }
    let bytes = frame.len() - VNET_HDR_LEN;
    let err = match slot.port.send(frame) {
        Ok(()) => {
            slot.link_down = false;
            bridge.count_tx(out, bytes);
            return;
        }
        Err(e) => e,
    };
    let reason = match classify_send_error(&err) {
        SendFailure::Gone => {
            bridge.count_drop(out, DropReason::TxError);
            dead.push((out, describe_gone(&err)));
            return;
        }
        SendFailure::Drop(reason) => reason,
    };
    bridge.count_drop(out, reason);
    if reason == DropReason::LinkDown {
        slot.link_down = true;
        // A link that is down (a host that has not brought its side up) is a state, not a
        // fault: counted, logged only when asked for.
        debug!("port {}: link down, frame dropped", slot.port.name());
        return;
    }
    let now = Instant::now();
    if slot
        .last_warning
        .is_none_or(|t| now.duration_since(t) >= WARN_INTERVAL)
    {
        slot.last_warning = Some(now);
        warn!(
            "port {}: dropping frames ({reason}): {err}",
            slot.port.name()
        );
    }
}

enum SendFailure {
    /// The port's device or peer is gone for good.
    Gone,
    Drop(DropReason),
}

fn classify_send_error(e: &io::Error) -> SendFailure {
    match e.kind() {
        io::ErrorKind::WouldBlock => return SendFailure::Drop(DropReason::TxFull),
        // A port waiting for its peer (a VM not connected, an interface not there yet).
        io::ErrorKind::NotConnected => return SendFailure::Drop(DropReason::LinkDown),
        _ => {}
    }
    match e.raw_os_error() {
        Some(libc::ENOBUFS | libc::ENOMEM) => SendFailure::Drop(DropReason::TxFull),
        Some(libc::EIO) => SendFailure::Drop(DropReason::LinkDown),
        Some(libc::EBADFD | libc::ENODEV | libc::ENXIO | libc::EPIPE | libc::ECONNRESET) => {
            SendFailure::Gone
        }
        _ => SendFailure::Drop(DropReason::TxError),
    }
}

fn describe_gone(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EBADFD) => format!("its device was deleted ({e})"),
        _ => e.to_string(),
    }
}
