//! The event loop: one mio `Poll` for every port, the control socket, the timers and the
//! signals. It only loops: which port is ready, whose turn it is, what time it is. What happens
//! to a frame is the [`Datapath`](crate::datapath::Datapath)'s business, what a command does
//! is [`control::commands`]'s, both acting on the [`Switch`] this loop owns.
//!
//! mio is edge-triggered, so a port reported readable is read until `WouldBlock`, but at most
//! [`READ_BUDGET`] frames per turn: a port with frames left goes back on the ready list and the
//! next poll does not wait, so one busy port cannot starve the others.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::{Events, Poll, Token, Waker};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use crate::bridge::{BridgeConfig, PortId};
use crate::capture::{self, Capture, CaptureFilter, CaptureSpec};
use crate::control::commands::{self, Dump};
use crate::control::server::{ControlServer, Incoming};
use crate::control::{Reply, Request};
use crate::datapath::taps::TapId;
use crate::monitor::{Event, Kind, What};
use crate::switch::Switch;

/// Frames read from one port per turn before the others get theirs, unless set otherwise with
/// [`Reactor::set_read_budget`].
pub const READ_BUDGET: usize = 64;

/// How long the loop keeps polling without sleeping after the last frame, unless set otherwise
/// with [`Switch::set_busy_poll`]. A frame that arrives within it is read at once instead of
/// after a wake-up; an idle switch still sleeps.
pub const BUSY_POLL: Duration = Duration::from_micros(50);

/// How often the learning table is swept for expired entries.
const TICK: Duration = Duration::from_secs(1);

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

/// The switch's event loop.
pub struct Reactor {
    poll: Poll,
    events: Events,
    switch: Switch,
    ready: ReadyList,
    /// Scratch list kept to avoid allocating per turn.
    batch: Vec<PortId>,
    read_budget: usize,
    /// When the last frame was read.
    last_frame: Instant,
    next_tick: Instant,
    /// The earliest time a polled port asked to be ticked again.
    next_port_tick: Option<Instant>,
    signals: Option<Signals>,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    control: Option<ControlServer>,
    /// Control requests read this turn, with the client each came from.
    incoming: Vec<(usize, Incoming)>,
    /// Table dumps being written, a piece per turn.
    dumps: Vec<Dumping>,
    /// The piece being written, kept to avoid allocating per piece.
    piece: Vec<u8>,
    /// Live captures being streamed.
    captures: Vec<Capturing>,
    /// Clients watching events (`vswitchctl monitor`).
    monitors: Vec<Monitoring>,
    /// A monitor event as a JSON line, kept to avoid allocating per event.
    line: Vec<u8>,
}

/// A control client watching events.
struct Monitoring {
    client: usize,
    kinds: Vec<Kind>,
    /// Events it did not get because it fell behind, not reported to it yet.
    lost: u64,
}

/// Bytes a monitor client may leave unread before it loses events.
const MONITOR_BACKLOG: usize = 1 << 20;

/// A live capture streamed to one control client.
struct Capturing {
    client: usize,
    tap: TapId,
    capture: Capture,
    /// When the next statistics blocks are due (switch time).
    next_stats: Duration,
    /// Per captured port, what the port's counters were told so far.
    reported: Vec<capture::PortCounts>,
}

impl Capturing {
    /// Adds what the capture did since the last call to its ports' counters.
    fn report_counts(&mut self, switch: &mut Switch) {
        let shared = capture::lock(&self.capture.shared);
        let ports = self.capture.spec.ports.iter();
        for ((port, now), was) in ports.zip(&shared.counts).zip(&mut self.reported) {
            let dropped = now.dropped - was.dropped;
            let captured = (now.seen - was.seen) - dropped;
            switch
                .datapath_mut()
                .count_capture(port.id, captured, dropped);
            *was = *now;
        }
    }
}

/// How often a capture's stream carries statistics blocks (drop counts), so that even a
/// capture cut short by its reader ends with recent ones.
const CAPTURE_STATS: Duration = Duration::from_secs(1);

/// A table dump in progress for one control client.
struct Dumping {
    client: usize,
    kind: Dump,
    /// Where the next piece starts in the table.
    cursor: usize,
    /// No row written yet (no comma before the next).
    first: bool,
}

/// Rows per piece of a table dump: well under a millisecond of work.
const DUMP_ROWS: usize = 512;
/// A dump waits while more than this is queued for its client (who reads too slowly).
const DUMP_BACKLOG: usize = 256 << 10;

impl Reactor {
    /// A switch called `name` with no ports yet, and its loop.
    pub fn new(name: &str, config: BridgeConfig) -> io::Result<Reactor> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE_TOKEN)?);
        let switch = Switch::new(name, config, poll.registry().try_clone()?, BUSY_POLL);
        let start = switch.started();
        Ok(Reactor {
            poll,
            events: Events::with_capacity(256),
            switch,
            ready: ReadyList::default(),
            batch: Vec::new(),
            read_budget: READ_BUDGET,
            last_frame: start,
            next_tick: start + TICK,
            next_port_tick: None,
            signals: None,
            stop: Arc::new(AtomicBool::new(false)),
            waker,
            control: None,
            incoming: Vec::new(),
            dumps: Vec::new(),
            piece: Vec::new(),
            captures: Vec::new(),
            monitors: Vec::new(),
            line: Vec::new(),
        })
    }

    pub fn switch(&self) -> &Switch {
        &self.switch
    }

    pub fn switch_mut(&mut self) -> &mut Switch {
        &mut self.switch
    }

    /// The switch, once the loop is done with it.
    pub fn into_switch(self) -> Switch {
        self.switch
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

    /// Runs until [`StopHandle::stop`] or a handled signal; then returns, leaving the ports
    /// attached (dropping the reactor closes them).
    pub fn run(&mut self) -> io::Result<()> {
        while !self.stop.load(Ordering::SeqCst) {
            self.note_attached();
            let now = Instant::now();
            let control_pending = self
                .control
                .as_ref()
                .is_some_and(ControlServer::has_pending)
                || self.dump_ready();
            let busy = now.saturating_duration_since(self.last_frame) < self.switch.busy_poll();
            let timeout = if self.ready.is_empty() && !control_pending && !busy {
                self.next_wake().saturating_duration_since(now)
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
            self.pump_dumps();
            self.pump_captures();
            self.tick_polled();
            self.release_held();
            let now = Instant::now();
            if now >= self.next_tick {
                let at = self.switch.now();
                let expired = self.switch.datapath_mut().expire(at);
                if expired > 0 {
                    debug!("{expired} MAC entries aged out");
                }
                if let Some(control) = self.control.as_mut() {
                    control.tick(self.poll.registry(), now);
                }
                self.next_tick = now + TICK;
            }
            self.pump_monitors();
        }
        Ok(())
    }

    /// The earliest timer: the table sweep, a polled port's tick, a held frame's release.
    fn next_wake(&self) -> Instant {
        let mut wake = self.next_tick;
        if let Some(t) = self.next_port_tick {
            wake = wake.min(t);
        }
        if let Some(release) = self.switch.datapath().next_release() {
            wake = wake.min(self.switch.started() + release);
        }
        wake
    }

    /// Ports attached since the last turn are read once: frames may have queued before their
    /// registration.
    fn note_attached(&mut self) {
        for id in self.switch.take_attached() {
            self.ready.push(id);
        }
    }

    /// Lets the ports without a file descriptor work; those with frames to deliver go on the
    /// ready list.
    fn tick_polled(&mut self) {
        if !self.switch.datapath().has_polled() {
            self.next_port_tick = None;
            return;
        }
        let now = self.switch.now();
        let next = self.switch.datapath_mut().tick_polled(now, &mut self.batch);
        for &id in &self.batch {
            self.ready.push(id);
        }
        self.batch.clear();
        self.next_port_tick = next.map(|t| self.switch.started() + t);
    }

    /// Sends the held frames that are due. Nothing held, no clock read.
    fn release_held(&mut self) {
        let Some(due) = self.switch.datapath().next_release() else {
            return;
        };
        let now = self.switch.now();
        if due <= now {
            self.switch.datapath_mut().release(now);
            self.switch.reap_dead();
        }
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
        if reload && let Err(e) = commands::reload(&mut self.switch) {
            warn!("SIGHUP: {e}");
        }
    }

    /// Executes the control requests read this turn and queues their replies.
    fn answer_control(&mut self) {
        while let Some((client, incoming)) = self.incoming.pop() {
            if let Incoming::Request(Request::Capture {
                ports,
                direction,
                count,
                snaplen,
                vlan,
                mac,
                ethertype,
            }) = &incoming
            {
                let spec = CaptureFilter::parse(*vlan, mac.as_deref(), *ethertype).and_then(|f| {
                    CaptureSpec::parse(
                        &self.switch,
                        ports,
                        direction.as_deref(),
                        *count,
                        *snaplen,
                        f,
                    )
                });
                self.start_capture(client, spec);
                continue;
            }
            if let Incoming::Request(Request::Monitor { kinds }) = &incoming {
                self.start_monitor(client, kinds);
                continue;
            }
            if let Incoming::Request(request) = &incoming
                && let Some(kind) = Dump::of(request)
                && let Some(control) = self.control.as_mut()
            {
                control.begin_stream(self.poll.registry(), client, b"{\"ok\":[");
                self.dumps.push(Dumping {
                    client,
                    kind,
                    cursor: 0,
                    first: true,
                });
                continue;
            }
            let (reply, close) = match incoming {
                Incoming::Request(request) => match commands::execute(&mut self.switch, request) {
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

    /// Writes the next piece of each table dump whose client has room for it: a big table is
    /// listed a few hundred rows per loop turn, between frames, with memory bounded by the
    /// client's backlog.
    fn pump_dumps(&mut self) {
        let Some(control) = self.control.as_mut() else {
            self.dumps.clear();
            return;
        };
        let registry = self.poll.registry();
        let switch = &self.switch;
        let piece = &mut self.piece;
        self.dumps.retain_mut(|d| match control.backlog(d.client) {
            None => false,
            Some(queued) if queued > DUMP_BACKLOG => true,
            Some(_) => {
                piece.clear();
                let next = d
                    .kind
                    .piece(switch, d.cursor, DUMP_ROWS, piece, &mut d.first);
                if next.is_none() {
                    piece.extend_from_slice(b"]}");
                }
                control.stream(registry, d.client, piece, next.is_none());
                d.cursor = next.unwrap_or_default();
                next.is_some()
            }
        });
    }

    /// Attaches a capture's tap and starts streaming to `client`: a one-line reply, then the
    /// pcapng section header and interface descriptions.
    fn start_capture(&mut self, client: usize, spec: Result<CaptureSpec, String>) {
        let Some(control) = self.control.as_mut() else {
            return;
        };
        let spec = match spec {
            Ok(spec) => spec,
            Err(message) => {
                control.reply(self.poll.registry(), client, &Reply::Error(message), false);
                return;
            }
        };
        let (capture, tap, head) = Capture::new(&self.switch, spec);
        let tap = self.switch.datapath_mut().taps_mut().attach(Box::new(tap));
        let mut first = b"{\"ok\":\"pcapng\"}\n".to_vec();
        first.extend_from_slice(&head);
        control.begin_stream(self.poll.registry(), client, &first);
        let names: Vec<&str> = capture.spec.ports.iter().map(|p| p.name.as_str()).collect();
        info!(
            "capture of {} started by a control client",
            names.join(", ")
        );
        let reported = vec![capture::PortCounts::default(); capture.spec.ports.len()];
        self.captures.push(Capturing {
            client,
            tap,
            capture,
            next_stats: self.switch.now() + CAPTURE_STATS,
            reported,
        });
    }

    /// Hands each capture's new bytes to its client (while the client keeps up), adds
    /// statistics blocks every [`CAPTURE_STATS`], and ends a capture whose count is reached,
    /// whose port went or whose client hung up.
    fn pump_captures(&mut self) {
        if self.captures.is_empty() {
            return;
        }
        let Some(control) = self.control.as_mut() else {
            return;
        };
        let registry = self.poll.registry();
        let switch = &mut self.switch;
        self.captures.retain_mut(|c| {
            c.report_counts(switch);
            let Some(queued) = control.backlog(c.client) else {
                switch.datapath_mut().taps_mut().detach(c.tap);
                return false;
            };
            let now = switch.now();
            let gone = c.capture.port_gone(switch);
            let done = gone || capture::lock(&c.capture.shared).done;
            if done || now >= c.next_stats {
                c.capture.statistics(now);
                c.next_stats = now + CAPTURE_STATS;
            }
            let bytes = {
                let mut shared = capture::lock(&c.capture.shared);
                if done || queued <= DUMP_BACKLOG {
                    std::mem::take(&mut shared.pending)
                } else {
                    Vec::new()
                }
            };
            if !bytes.is_empty() {
                control.stream(registry, c.client, &bytes, false);
            }
            if done {
                switch.datapath_mut().taps_mut().detach(c.tap);
                control.end_stream(registry, c.client);
            }
            !done
        });
    }

    /// Starts streaming events to `client`: a one-line reply, then one JSON line per event of
    /// the `kinds` asked for (all when none are named).
    fn start_monitor(&mut self, client: usize, names: &[String]) {
        let Some(control) = self.control.as_mut() else {
            return;
        };
        let mut kinds = Vec::new();
        for name in names {
            match name.as_str() {
                "all" => kinds.extend(Kind::NAMES.iter().filter_map(|n| Kind::parse(n))),
                other => match Kind::parse(other) {
                    Some(kind) => kinds.push(kind),
                    None => {
                        let message = format!(
                            "no event kind {other:?}: the kinds are {} and all",
                            Kind::NAMES.join(", ")
                        );
                        control.reply(self.poll.registry(), client, &Reply::Error(message), false);
                        return;
                    }
                },
            }
        }
        if kinds.is_empty() {
            kinds.extend(Kind::NAMES.iter().filter_map(|n| Kind::parse(n)));
        }
        control.begin_stream(self.poll.registry(), client, b"{\"ok\":\"monitor\"}\n");
        debug!("control client {client} monitors {kinds:?}");
        if self.monitors.is_empty() {
            self.switch.datapath_mut().set_monitoring(true);
        }
        self.monitors.push(Monitoring {
            client,
            kinds,
            lost: 0,
        });
    }

    /// Hands this turn's events to each monitor client that asked for their kind and keeps up;
    /// one that does not loses them, and hears how many once it catches up. When the last
    /// client goes, recording stops.
    fn pump_monitors(&mut self) {
        if self.monitors.is_empty() {
            return;
        }
        let Some(control) = self.control.as_mut() else {
            return;
        };
        let registry = self.poll.registry();
        self.monitors
            .retain(|m| control.backlog(m.client).is_some());
        if self.monitors.is_empty() {
            self.switch.datapath_mut().set_monitoring(false);
            return;
        }
        let datapath = self.switch.datapath_mut();
        datapath.collect_events();
        let monitors = &mut self.monitors;
        let line = &mut self.line;
        datapath.events_mut().drain(|event| {
            let kind = event.what.kind();
            line.clear();
            for m in monitors.iter_mut() {
                if kind.is_some_and(|k| !m.kinds.contains(&k)) {
                    continue;
                }
                if control
                    .backlog(m.client)
                    .is_none_or(|queued| queued > MONITOR_BACKLOG)
                {
                    m.lost += match event.what {
                        What::Lost { events } => events,
                        _ => 1,
                    };
                    continue;
                }
                if m.lost > 0 {
                    let lost = Event {
                        time: event.time,
                        what: What::Lost {
                            events: std::mem::take(&mut m.lost),
                        },
                    };
                    let mut bytes = serde_json::to_vec(&lost).unwrap_or_default();
                    bytes.push(b'\n');
                    control.stream(registry, m.client, &bytes, false);
                }
                if line.is_empty() {
                    // Serialising plain data to memory cannot fail.
                    let _ = serde_json::to_writer(&mut *line, event);
                    line.push(b'\n');
                }
                control.stream(registry, m.client, line, false);
            }
        });
    }

    /// Whether a dump can write its next piece now (the loop must not sleep then).
    fn dump_ready(&self) -> bool {
        let Some(control) = self.control.as_ref() else {
            return false;
        };
        self.dumps
            .iter()
            .any(|d| control.backlog(d.client).is_some_and(|q| q <= DUMP_BACKLOG))
    }

    /// Gives every ready port one turn of at most a read budget of frames.
    fn service_ready(&mut self) {
        self.ready.take_into(&mut self.batch);
        let now = self.switch.now();
        let mut got_frames = false;
        for i in 0..self.batch.len() {
            let id = self.batch[i];
            let done = self
                .switch
                .datapath_mut()
                .service(id, self.read_budget, now);
            got_frames |= done.frames > 0;
            if done.more {
                self.ready.push(id);
            }
            self.switch.reap_dead();
        }
        self.batch.clear();
        if got_frames {
            self.last_frame = Instant::now();
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
