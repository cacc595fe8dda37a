//! A vhost-user port (`vhost-user:PATH`): the switch serves a Unix socket, QEMU connects to it
//! (`-chardev socket,path=PATH -netdev vhost-user,chardev=...`) and shares the VM's memory, and
//! frames move through the virtio-net device's rings in that memory: no syscall per frame, one
//! copy between the VM and the switch's buffer. No root needed.
//!
//! Everything runs in the switch's one loop, under the port's one token: the listening socket,
//! the connection (vhost-user messages, handled one per turn of [`Port::recv`] by the vhost
//! crate's [`BackendReqHandler`]) and the VM's kick eventfds. A message goes to the crate only
//! once all of it has arrived and its reply can be written at once (see [`framing`]), so a
//! frontend that stops in the middle of a message or never reads its replies cannot hold the
//! loop.
//!
//! A VM that breaks the protocol or its rings (addresses outside its memory, chains that loop,
//! garbage on the socket) loses its connection, with one log line; the port waits for the next
//! one, as it does when the VM stops or restarts. One VM at a time: a second connection is
//! closed at once while one is up.
//!
//! `vhost-user-client:PATH` is the same port the other way round: QEMU serves the socket and
//! the switch connects to it, and reconnects after losing it, so a VM outlives a switch restart.

mod device;
mod early;
mod framing;
mod ring;

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use log::{debug, info, warn};
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use vhost::vhost_user::{BackendReqHandler, Error as ProtocolError, VhostUserBackendReqHandlerMut};

use super::unix::{clear_stale_socket, next_vm, socket_name};
use super::{Caps, Port, PortKind, PortTick};
use device::{Device, PROTOCOL_FEATURES};
use framing::Waiting;
use ring::{Put, RingError, Taken};

/// A backstop on the connection's reads and writes, which [`framing`] makes sure never wait.
const SOCKET_TIMEOUT: Duration = Duration::from_millis(200);

/// The connected VM: the vhost crate's handler of its messages, and the same socket for the
/// switch's own looks at it (readiness, what waits).
struct Conn {
    handler: BackendReqHandler<Mutex<Device>>,
    sock: UnixStream,
}

/// A port serving one vhost-user frontend (a VM) at a time.
pub struct VhostUserPort {
    name: String,
    path: PathBuf,
    side: Side,
    conn: Option<Conn>,
    /// Shared with the connection's handler, which changes it message by message.
    device: Arc<Mutex<Device>>,
    registry: Option<(Registry, Token)>,
    /// The VM was asked to kick for the frames it sends (the ring was found empty).
    armed: bool,
    /// Where waiting messages are peeked at.
    scratch: Vec<u8>,
}

/// What the connection had to say.
enum Control {
    /// A message was handled.
    Handled,
    /// Nothing is waiting.
    Idle,
    /// The connection is over.
    Gone(End),
}

/// How the port reaches its VM.
enum Side {
    /// The switch listens and QEMU connects (`vhost-user:PATH`).
    Server(UnixListener),
    /// QEMU listens (`-chardev socket,server=on`) and the switch connects, again every
    /// [`RETRY`] while it cannot (`vhost-user-client:PATH`): a VM survives a switch restart.
    Client { last_try: Option<Duration> },
}

/// How often a client port tries to reach its VM.
const RETRY: Duration = Duration::from_secs(1);

/// Why a connection ended.
enum End {
    /// The VM closed it.
    Left(String),
    /// The VM broke the protocol or its rings.
    Fault(String),
}

impl VhostUserPort {
    /// Listens at `path` (a stale socket file is replaced; a live one is an error).
    pub fn open(name: &str, path: &Path) -> io::Result<VhostUserPort> {
        clear_stale_socket(path)?;
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        Ok(VhostUserPort::with(name, path, Side::Server(listener)))
    }

    /// Connects to the VM's socket at `path` from the loop's next turn on, and whenever the
    /// connection is lost; nothing need listen there yet.
    pub fn client(name: &str, path: &Path) -> VhostUserPort {
        VhostUserPort::with(name, path, Side::Client { last_try: None })
    }

    fn with(name: &str, path: &Path, side: Side) -> VhostUserPort {
        VhostUserPort {
            name: name.to_owned(),
            path: path.to_owned(),
            side,
            conn: None,
            device: Arc::new(Mutex::new(Device::new())),
            registry: None,
            armed: false,
            scratch: Vec::new(),
        }
    }

    fn device(&self) -> MutexGuard<'_, Device> {
        // Nothing panics while holding it; if something did, the state is still consistent
        // enough to be reset.
        self.device.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Accepts every waiting connection: the first becomes the port's VM if it has none, the
    /// others are closed at once.
    fn accept(&mut self) {
        loop {
            let Side::Server(listener) = &self.side else {
                return;
            };
            let attached = self.conn.is_some();
            let Some(stream) = next_vm(&self.name, &self.path, attached, || {
                listener.accept().map(|(stream, _)| stream)
            }) else {
                return;
            };
            if let Err(e) = self.attach(stream) {
                warn!("port {}: cannot serve the new connection: {e}", self.name);
                continue;
            }
            info!(
                "port {}: a VM connected to {}",
                self.name,
                socket_name(&self.path)
            );
        }
    }

    fn attach(&mut self, stream: UnixStream) -> io::Result<()> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(SOCKET_TIMEOUT))?;
        stream.set_write_timeout(Some(SOCKET_TIMEOUT))?;
        if let Some((registry, token)) = &self.registry {
            // Registration reports data that is already waiting, so nothing is missed.
            let fd = stream.as_raw_fd();
            registry.register(&mut SourceFd(&fd), *token, Interest::READABLE)?;
        }
        let sock = stream.try_clone()?;
        self.conn = Some(Conn {
            handler: BackendReqHandler::from_stream(stream, Arc::clone(&self.device)),
            sock,
        });
        self.armed = false;
        Ok(())
    }

    /// Ends the connection and forgets what it set up, with one log line; the port waits for
    /// the next one.
    fn disconnect(&mut self, end: End) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if let Some((registry, _)) = &self.registry {
            let _ = registry.deregister(&mut SourceFd(&conn.handler.as_raw_fd()));
        }
        drop(conn);
        self.device().reset();
        match end {
            End::Left(why) => info!(
                "port {}: the VM disconnected ({why}); waiting for it",
                self.name
            ),
            End::Fault(why) => warn!(
                "port {}: dropped the VM: {why}; waiting for it to reconnect",
                self.name
            ),
        }
    }

    /// Handles the next vhost-user message, if one is waiting whole.
    fn control(&mut self) -> Control {
        let Some(conn) = self.conn.as_mut() else {
            return Control::Idle;
        };
        let request = match framing::peek(&conn.sock, &mut self.scratch) {
            Waiting::Message(request) => request,
            Waiting::NotYet | Waiting::Nothing => return Control::Idle,
            Waiting::Closed(why) => return Control::Gone(End::Left(why)),
            Waiting::Oversized(size) => {
                let why = format!("vhost-user protocol: a {size}-byte message");
                return Control::Gone(End::Fault(why));
            }
        };
        let mut device = self.device.lock().unwrap_or_else(PoisonError::into_inner);
        let result = if request == early::SET_VRING_ENABLE && !device.acked(PROTOCOL_FEATURES) {
            let Some(e) = early::take(&mut conn.sock) else {
                let why = "vhost-user protocol: bad SET_VRING_ENABLE".into();
                return Control::Gone(End::Fault(why));
            };
            device.set_vring_enable(e.index, e.enable)
        } else {
            // The handler locks the device itself.
            drop(device);
            conn.handler.handle_request()
        };
        match result {
            Ok(()) => Control::Handled,
            Err(ProtocolError::Disconnected) => Control::Gone(End::Left("end of stream".into())),
            Err(e) => Control::Gone(End::Fault(format!("vhost-user protocol: {e}"))),
        }
    }

    /// The next frame the VM sent, or why there is none.
    fn take(&mut self, buf: &mut [u8]) -> Result<Option<Taken>, RingError> {
        let armed = self.armed;
        let mut device = self.device();
        let taken = device.take_frame(buf)?;
        if taken.is_some() && armed {
            device.quiet()?;
        }
        drop(device);
        if taken.is_some() {
            self.armed = false;
        }
        Ok(taken)
    }
}

fn broke(e: &RingError) -> End {
    End::Fault(format!("it broke its rings: {e}"))
}

impl Port for VhostUserPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        match self.side {
            Side::Server(_) => PortKind::VhostUser,
            Side::Client { .. } => PortKind::VhostUserClient,
        }
    }

    fn caps(&self) -> Caps {
        Caps {
            offloads: self.device().offloads(),
            // A client port without a connection has no fd to wait on: ticks reconnect it.
            polled: matches!(self.side, Side::Client { .. }),
        }
    }

    fn tick(&mut self, now: Duration) -> PortTick {
        let Side::Client { last_try } = &mut self.side else {
            return PortTick::default();
        };
        if self.conn.is_some() {
            return PortTick::default();
        }
        if last_try.is_some_and(|t| now < t + RETRY) {
            return PortTick {
                ready: false,
                next: Some(RETRY),
            };
        }
        *last_try = Some(now);
        let connected = connect(&self.path).and_then(|stream| self.attach(stream));
        match connected {
            Ok(()) => {
                info!(
                    "port {}: connected to the VM at {}",
                    self.name,
                    self.path.display()
                );
                PortTick {
                    ready: true,
                    next: None,
                }
            }
            Err(e) => {
                debug!("port {}: cannot reach the VM: {e}", self.name);
                PortTick {
                    ready: false,
                    next: Some(RETRY),
                }
            }
        }
    }

    fn state(&self) -> &'static str {
        if self.conn.is_some() { "up" } else { "waiting" }
    }

    fn carrier(&self) -> Result<(), &'static str> {
        Err("vhost-user ports carry no link state yet; link=down drops frames only")
    }

    fn detail(&self) -> String {
        let vm = if self.conn.is_some() {
            format!("VM connected, {}", self.device().describe())
        } else {
            "no VM connected".to_owned()
        };
        match self.side {
            Side::Server(_) => format!("vhost-user on {}: {vm}", self.path.display()),
            Side::Client { .. } => format!("vhost-user client of {}: {vm}", self.path.display()),
        }
    }

    fn queues_when_full(&self) -> bool {
        true
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.take(buf) {
                Ok(Some(Taken::Frame(n))) => return Ok(n),
                Ok(Some(Taken::Refused(why))) => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, why));
                }
                Ok(None) => {}
                Err(e) => self.disconnect(broke(&e)),
            }
            // The ring is empty: the sockets' turn, one message at a time.
            match self.control() {
                Control::Handled => return Err(io::ErrorKind::Interrupted.into()),
                Control::Gone(end) => self.disconnect(end),
                Control::Idle => {}
            }
            self.accept();
            let rearmed = self.device().rearm();
            match rearmed {
                Ok(true) => continue,
                Ok(false) => {
                    self.armed = true;
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Err(e) => {
                    self.disconnect(broke(&e));
                    return Err(io::ErrorKind::WouldBlock.into());
                }
            }
        }
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        let put = self.device().put_frame(frame);
        match put {
            Ok(Some(Put::Done { .. })) => Ok(()),
            Ok(Some(Put::Full)) => Err(io::ErrorKind::WouldBlock.into()),
            Ok(Some(Put::TooBig)) => Err(io::Error::from_raw_os_error(libc::EMSGSIZE)),
            Ok(None) => Err(io::ErrorKind::NotConnected.into()),
            Err(e) => {
                self.disconnect(broke(&e));
                Err(io::ErrorKind::NotConnected.into())
            }
        }
    }

    fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        if let Side::Server(listener) = &self.side {
            let fd = listener.as_raw_fd();
            registry.register(&mut SourceFd(&fd), token, Interest::READABLE)?;
        }
        if let Some(conn) = &self.conn {
            let fd = conn.handler.as_raw_fd();
            registry.register(&mut SourceFd(&fd), token, Interest::READABLE)?;
        }
        self.device().watch(Some((registry.try_clone()?, token)));
        self.registry = Some((registry.try_clone()?, token));
        Ok(())
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        if let Side::Server(listener) = &self.side {
            registry.deregister(&mut SourceFd(&listener.as_raw_fd()))?;
        }
        if let Some(conn) = &self.conn {
            registry.deregister(&mut SourceFd(&conn.handler.as_raw_fd()))?;
        }
        self.device().watch(None);
        self.registry = None;
        Ok(())
    }
}

impl Drop for VhostUserPort {
    fn drop(&mut self) {
        // The server's own socket goes; a client leaves QEMU's alone.
        if let Side::Server(_) = self.side {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Connects to a listening socket at `path` without waiting: a listener whose backlog is
/// full is tried again later rather than waited for.
fn connect(path: &Path) -> io::Result<UnixStream> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
    let sock = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    connect(sock.as_raw_fd(), &UnixAddr::new(path)?)?;
    Ok(UnixStream::from(sock))
}

#[cfg(test)]
mod tests;
