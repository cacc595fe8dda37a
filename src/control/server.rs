//! The control socket's server side, driven by the reactor's mio loop (no thread of its own).
//!
//! No client can stall forwarding or grow the switch's memory without bound:
//! - sockets are non-blocking; a request line may be at most [`MAX_REQUEST_LEN`] bytes;
//! - a client's next request is not read until its last reply is written (the bytes wait in the
//!   kernel, which pushes back on the client), and each client gets at most one request answered
//!   per turn of the loop, so ports are serviced between any two requests;
//! - a client that reads nothing of its reply for [`WRITE_DEADLINE`], a half-sent line, or a
//!   connection idle for [`IDLE_TIMEOUT`] gets the client dropped; replies waiting for clients
//!   are capped at [`MAX_QUEUED_REPLIES`] bytes in all;
//! - at most [`MAX_CLIENTS`] are served at once.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use log::{debug, warn};
use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use nix::fcntl::{Flock, FlockArg};

use super::{MAX_REQUEST_LEN, Reply, Request};

/// Clients served at once; more are told so and disconnected.
pub const MAX_CLIENTS: usize = 256;

/// How long a client may read nothing of its reply.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(30);

/// How long a connection may stay open without a request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// How long a request line may take to arrive once its first byte has (a client trickling a
/// byte at a time cannot hold its slot longer).
const LINE_DEADLINE: Duration = Duration::from_secs(30);

/// How long a client being disconnected may take to close its side.
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// Bytes discarded from a client being disconnected before it is dropped regardless.
const DRAIN_LIMIT: usize = 1 << 20;

/// Reply bytes waiting in all clients' buffers at most; a reply that would exceed it is
/// replaced by an error asking to retry.
pub const MAX_QUEUED_REPLIES: usize = 256 << 20;

/// First token of the control socket; ports use tokens below it.
pub const TOKEN_BASE: usize = 1 << 20;
const LISTENER: Token = Token(TOKEN_BASE);

/// The control socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error(
        "another vswitchd is serving {0} (stop it, or give this one another --name or --ctl-socket)"
    )]
    InUse(PathBuf),
    #[error("{0} exists and is not a socket; remove it or choose another --ctl-socket")]
    NotASocket(PathBuf),
    #[error("cannot create the control socket {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What a client sent: a request to execute, or a line that is not one.
#[derive(Debug)]
pub enum Incoming {
    Request(Request),
    /// Not a request: reply with the message. `fatal` lines (not JSON at all, or too long)
    /// also end the connection.
    Invalid {
        message: String,
        fatal: bool,
    },
}

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Open,
    /// The last reply is queued; once it is written, the connection shuts down.
    Closing,
    /// Our side is shut down; what the client still sends is read and thrown away (up to
    /// [`DRAIN_LIMIT`]), so closing does not reset the connection before it read that reply.
    Draining {
        discarded: usize,
        until: Instant,
    },
}

struct Client {
    stream: UnixStream,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    written: usize,
    phase: Phase,
    /// The client half-closed its side.
    eof: bool,
    /// A request was handed out and its reply has not been queued yet.
    in_flight: bool,
    /// Set while a reply waits for the client to read it.
    write_deadline: Option<Instant>,
    /// When the client last sent something (or the connection opened).
    last_input: Instant,
    /// When the unfinished line at the end of `inbuf` started (None when there is none).
    line_started: Option<Instant>,
    writable_interest: bool,
}

impl Client {
    /// Starts the line deadline when `inbuf` ends in an unfinished line, and stops it when it
    /// does not: complete requests waiting their turn are not half requests.
    fn note_partial_line(&mut self) {
        if self.inbuf.is_empty() || self.inbuf.contains(&b'\n') {
            self.line_started = None;
        } else if self.line_started.is_none() {
            self.line_started = Some(Instant::now());
        }
    }
}

/// The listening socket and its clients.
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    lock_path: PathBuf,
    /// Held for the server's life: the proof that no other daemon serves this socket.
    _lock: Flock<File>,
    clients: Vec<Option<Client>>,
    /// Clients that may have requests left without a new readiness event (buffered lines, or
    /// input not read while a reply was pending); served one request each next turn.
    resume: Vec<usize>,
    /// The listener hit a resource limit (EMFILE); accepting resumes on the next tick.
    accept_stalled: bool,
}

impl ControlServer {
    /// Binds the socket at `path` (mode 0660, parent directories created). The daemon holding
    /// the lock file `PATH.lock` owns the path: if another holds it, this is an error; if none
    /// does, a socket file left at the path by a dead daemon is replaced.
    pub fn bind(path: &Path) -> Result<ControlServer, BindError> {
        let io_err = |source| BindError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err)?;
        }
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".lock");
        let lock_path = PathBuf::from(lock_path);
        let lock = lock_owner(&lock_path)
            .map_err(io_err)?
            .ok_or_else(|| BindError::InUse(path.to_owned()))?;
        match std::fs::symlink_metadata(path) {
            Ok(meta) if !meta.file_type().is_socket() => {
                return Err(BindError::NotASocket(path.to_owned()));
            }
            Ok(_) => {
                debug!("replacing the stale control socket {}", path.display());
                std::fs::remove_file(path).map_err(io_err)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(e)),
        }
        let listener = UnixListener::bind(path).map_err(io_err)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(io_err)?;
        Ok(ControlServer {
            listener,
            path: path.to_owned(),
            lock_path,
            _lock: lock,
            clients: Vec::new(),
            resume: Vec::new(),
            accept_stalled: false,
        })
    }

    pub fn register(&mut self, registry: &Registry) -> io::Result<()> {
        registry.register(&mut self.listener, LISTENER, Interest::READABLE)
    }

    /// Whether `token` belongs to the control socket.
    pub fn owns(token: Token) -> bool {
        token.0 >= TOKEN_BASE && token.0 <= TOKEN_BASE + MAX_CLIENTS
    }

    /// Whether some client has requests waiting without a readiness event: the loop should
    /// come back without sleeping and call [`ControlServer::resume`].
    pub fn has_pending(&self) -> bool {
        !self.resume.is_empty()
    }

    /// Handles readiness of `token`; a complete request is appended to `incoming` with the
    /// client it came from, to be answered with [`ControlServer::reply`].
    pub fn ready(
        &mut self,
        registry: &Registry,
        token: Token,
        incoming: &mut Vec<(usize, Incoming)>,
    ) {
        if token == LISTENER {
            self.accept(registry);
            return;
        }
        self.service(registry, token.0 - TOKEN_BASE - 1, incoming);
    }

    /// Gives each client that may have more requests one more (see
    /// [`ControlServer::has_pending`]).
    pub fn resume(&mut self, registry: &Registry, incoming: &mut Vec<(usize, Incoming)>) {
        let ids = std::mem::take(&mut self.resume);
        for id in ids {
            self.service(registry, id, incoming);
        }
    }

    /// Queues the reply to client `id`'s request and writes what the socket takes now; with
    /// `close`, the connection ends once the reply is out.
    pub fn reply(&mut self, registry: &Registry, id: usize, reply: &Reply, close: bool) {
        let queued: usize = self.queued_bytes();
        let Some(client) = self.clients.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        let before = client.outbuf.len();
        // Serialising a Reply (strings, numbers, maps with string keys) cannot fail.
        let _ = serde_json::to_writer(&mut client.outbuf, reply);
        let len = client.outbuf.len() - before;
        if queued + len > MAX_QUEUED_REPLIES {
            client.outbuf.truncate(before);
            let error = if len > MAX_QUEUED_REPLIES {
                format!(
                    "the reply would be {} MiB, more than the control socket sends ({} MiB)",
                    len >> 20,
                    MAX_QUEUED_REPLIES >> 20
                )
            } else {
                "the switch is busy sending large replies to other clients; try again".into()
            };
            let _ = serde_json::to_writer(&mut client.outbuf, &Reply::Error(error));
        }
        client.outbuf.push(b'\n');
        client.in_flight = false;
        if close {
            client.phase = Phase::Closing;
        }
        self.flush(registry, id);
        self.finish_if_done(registry, id);
        self.resume_if_open(id);
    }

    /// Starts a reply to client `id` that is written in pieces ([`ControlServer::stream`]),
    /// beginning with `head`; the client's request stays in flight until the last piece.
    pub fn begin_stream(&mut self, registry: &Registry, id: usize, head: &[u8]) {
        if let Some(client) = self.clients.get_mut(id).and_then(Option::as_mut) {
            client.outbuf.extend_from_slice(head);
            self.flush(registry, id);
        }
    }

    /// Bytes queued for client `id` and not yet written; `None` once the client is gone.
    pub fn backlog(&self, id: usize) -> Option<usize> {
        let c = self.clients.get(id)?.as_ref()?;
        matches!(c.phase, Phase::Open).then(|| c.outbuf.len() - c.written)
    }

    /// Appends a piece of a streamed reply; `last` ends it (a newline follows) and lets the
    /// client's next request in.
    pub fn stream(&mut self, registry: &Registry, id: usize, piece: &[u8], last: bool) {
        let Some(client) = self.clients.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        client.outbuf.extend_from_slice(piece);
        if last {
            client.outbuf.push(b'\n');
            client.in_flight = false;
        }
        self.flush(registry, id);
        if last {
            self.finish_if_done(registry, id);
            self.resume_if_open(id);
        }
    }

    /// Ends a streamed reply that is not a JSON line (a capture): the connection closes once
    /// what is queued is written.
    pub fn end_stream(&mut self, registry: &Registry, id: usize) {
        let Some(client) = self.clients.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        client.in_flight = false;
        client.phase = Phase::Closing;
        self.flush(registry, id);
        self.finish_if_done(registry, id);
    }

    /// Drops clients past a deadline, and retries a stalled accept.
    pub fn tick(&mut self, registry: &Registry, now: Instant) {
        for id in 0..self.clients.len() {
            let Some(c) = self.clients[id].as_ref() else {
                continue;
            };
            let why = if c.write_deadline.is_some_and(|d| now >= d) {
                Some("did not read its reply in time")
            } else if matches!(c.phase, Phase::Draining { until, .. } if now >= until) {
                Some("did not hang up after its last reply")
            } else if c.line_started.is_some_and(|t| now >= t + LINE_DEADLINE) {
                Some("sent half a request and stopped")
            } else if !c.in_flight && c.outbuf.is_empty() && now >= c.last_input + IDLE_TIMEOUT {
                Some("was idle too long")
            } else {
                None
            };
            if let Some(why) = why {
                debug!("control client {id} dropped: it {why}");
                self.drop_client(registry, id);
            }
        }
        if self.accept_stalled {
            self.accept(registry);
        }
    }

    fn queued_bytes(&self) -> usize {
        self.clients
            .iter()
            .flatten()
            .map(|c| c.outbuf.len() - c.written)
            .sum()
    }

    fn accept(&mut self, registry: &Registry) {
        self.accept_stalled = false;
        loop {
            let mut stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of file descriptors, most likely: the pending connections stay
                    // queued, and edge-triggered readiness will not report them again.
                    warn!("control socket: accept: {e}; retrying in a second");
                    self.accept_stalled = true;
                    return;
                }
            };
            let Some(id) = self.free_slot().or_else(|| self.shed_idle(registry)) else {
                refuse(&mut stream);
                continue;
            };
            let token = Token(TOKEN_BASE + 1 + id);
            if let Err(e) = registry.register(&mut stream, token, Interest::READABLE) {
                warn!("control socket: cannot watch a client: {e}");
                continue;
            }
            self.clients[id] = Some(Client {
                stream,
                inbuf: Vec::new(),
                outbuf: Vec::new(),
                written: 0,
                phase: Phase::Open,
                eof: false,
                in_flight: false,
                write_deadline: None,
                last_input: Instant::now(),
                line_started: None,
                writable_interest: false,
            });
        }
    }

    fn free_slot(&mut self) -> Option<usize> {
        if let Some(i) = self.clients.iter().position(Option::is_none) {
            return Some(i);
        }
        if self.clients.len() < MAX_CLIENTS {
            self.clients.push(None);
            return Some(self.clients.len() - 1);
        }
        None
    }

    /// Makes room for a new client when every slot is taken: the one idle longest (no request
    /// in flight, nothing to send, no half line) goes, so idle connections can never lock an
    /// operator out. `None` if every client is busy.
    fn shed_idle(&mut self, registry: &Registry) -> Option<usize> {
        let id = self
            .clients
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((i, c.as_ref()?)))
            .filter(|(_, c)| {
                matches!(c.phase, Phase::Open)
                    && !c.in_flight
                    && c.outbuf.len() == c.written
                    && c.line_started.is_none()
            })
            .min_by_key(|(_, c)| c.last_input)
            .map(|(i, _)| i)?;
        debug!("control client {id} dropped: it was the longest idle and the clients were full");
        self.drop_client(registry, id);
        Some(id)
    }

    /// One step for a client: write what is pending, read at most one request, close if done.
    fn service(&mut self, registry: &Registry, id: usize, incoming: &mut Vec<(usize, Incoming)>) {
        self.flush(registry, id);
        self.read_request(id, incoming);
        self.finish_if_done(registry, id);
    }

    /// If the client can take another request, looks for it next turn.
    fn resume_if_open(&mut self, id: usize) {
        let open = self
            .clients
            .get(id)
            .and_then(Option::as_ref)
            .is_some_and(|c| c.phase == Phase::Open && !c.in_flight && c.outbuf.is_empty());
        if open && !self.resume.contains(&id) {
            self.resume.push(id);
        }
    }

    /// Reads until one complete request is buffered and hands it out, unless the client is
    /// not ready for one (a request in flight, a reply pending, the connection closing).
    fn read_request(&mut self, id: usize, incoming: &mut Vec<(usize, Incoming)>) {
        let Some(client) = self.clients.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        if client.in_flight || !client.outbuf.is_empty() || client.phase != Phase::Open {
            return;
        }
        let mut chunk = [0u8; 4096];
        loop {
            let line = take_line(&mut client.inbuf, client.eof);
            client.note_partial_line();
            if let Some(line) = line.as_ref().filter(|l| l.len() <= MAX_REQUEST_LEN) {
                client.in_flight = true;
                incoming.push((id, parse(line)));
                return;
            }
            if line.is_some() || client.inbuf.len() > MAX_REQUEST_LEN {
                client.inbuf.clear();
                client.line_started = None;
                client.in_flight = true;
                incoming.push((
                    id,
                    Incoming::Invalid {
                        message: format!("request longer than {MAX_REQUEST_LEN} bytes"),
                        fatal: true,
                    },
                ));
                return;
            }
            if client.eof {
                return;
            }
            match client.stream.read(&mut chunk) {
                Ok(0) => client.eof = true,
                Ok(n) => {
                    client.inbuf.extend_from_slice(&chunk[..n]);
                    client.last_input = Instant::now();
                    client.note_partial_line();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!("control client {id}: {e}");
                    client.eof = true;
                    client.inbuf.clear();
                }
            }
        }
    }

    fn flush(&mut self, registry: &Registry, id: usize) {
        let Some(client) = self.clients.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        if client.outbuf.is_empty() {
            return;
        }
        let mut progressed = false;
        while client.written < client.outbuf.len() {
            match client.stream.write(&client.outbuf[client.written..]) {
                Ok(n) => {
                    client.written += n;
                    progressed |= n > 0;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // The client is gone: nothing more can reach it.
                    debug!("control client {id}: {e}");
                    client.outbuf.clear();
                    client.written = 0;
                    client.write_deadline = None;
                    client.eof = true;
                    client.phase = Phase::Closing;
                    return;
                }
            }
        }
        let pending = client.written < client.outbuf.len();
        if pending {
            // A client that reads, however slowly, keeps its connection (a stream's reader
            // that falls behind loses data instead); one that stops reading does not.
            let deadline = Instant::now() + WRITE_DEADLINE;
            if progressed {
                client.write_deadline = Some(deadline);
            } else {
                client.write_deadline.get_or_insert(deadline);
            }
        } else {
            client.outbuf.clear();
            client.written = 0;
            client.write_deadline = None;
        }
        if pending != client.writable_interest {
            let interest = if pending {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let token = Token(TOKEN_BASE + 1 + id);
            if registry
                .reregister(&mut client.stream, token, interest)
                .is_ok()
            {
                client.writable_interest = pending;
            }
        }
        if !pending {
            // Input may have waited in the kernel while the reply was pending.
            self.resume_if_open(id);
        }
    }

    /// Drops a client that has nothing left to say or hear; one being disconnected first has
    /// its unread input drained (bounded), so it gets to read the reply that explains why.
    fn finish_if_done(&mut self, registry: &Registry, id: usize) {
        let Some(c) = self.clients.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        if c.in_flight || !c.outbuf.is_empty() {
            return;
        }
        let done = match c.phase {
            Phase::Open => c.eof && c.inbuf.is_empty(),
            Phase::Closing if c.eof => true,
            Phase::Closing => {
                let _ = c.stream.shutdown(std::net::Shutdown::Write);
                c.inbuf.clear();
                c.phase = Phase::Draining {
                    discarded: 0,
                    until: Instant::now() + DRAIN_DEADLINE,
                };
                drain(c)
            }
            Phase::Draining { .. } => drain(c),
        };
        if done {
            self.drop_client(registry, id);
        }
    }

    fn drop_client(&mut self, registry: &Registry, id: usize) {
        if let Some(mut client) = self.clients.get_mut(id).and_then(Option::take) {
            let _ = registry.deregister(&mut client.stream);
        }
        self.resume.retain(|&r| r != id);
    }
}

/// Turns a connection away when every client is busy: says why, reads what it already sent
/// (so closing does not reset the connection before it reads the message), and hangs up.
fn refuse(stream: &mut UnixStream) {
    let mut line = serde_json::to_vec(&Reply::Error(format!(
        "too many busy control clients (at most {MAX_CLIENTS}); try again"
    )))
    .unwrap_or_default();
    line.push(b'\n');
    let _ = stream.write(&line);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut chunk = [0u8; 4096];
    for _ in 0..16 {
        match stream.read(&mut chunk) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
}

/// Reads and discards a closing client's input; whether it is done (hung up, failed, or sent
/// more than [`DRAIN_LIMIT`]).
fn drain(c: &mut Client) -> bool {
    let Phase::Draining { discarded, until } = c.phase else {
        return true;
    };
    let mut total = discarded;
    let mut chunk = [0u8; 4096];
    let done = loop {
        match c.stream.read(&mut chunk) {
            Ok(0) => break true,
            Ok(n) => {
                total += n;
                if total >= DRAIN_LIMIT {
                    break true;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    c.phase = Phase::Draining {
        discarded: total,
        until,
    };
    done
}

impl Drop for ControlServer {
    /// Removes the socket, then the lock file while the lock is still held (a daemon that
    /// opened the old file and locks it after us sees it is no longer at the path and tries
    /// again; see [`lock_owner`]); the lock goes with the descriptor after that.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

/// Takes the lock file at `path` (created if missing): `None` if another daemon holds it. A
/// lock taken on a file that was unlinked meanwhile (its daemon exited) is worthless, so the
/// file locked must still be the one at the path.
fn lock_owner(path: &Path) -> io::Result<Option<Flock<File>>> {
    use std::os::unix::fs::MetadataExt;
    for _ in 0..8 {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Ok(None),
            Err((_, e)) => return Err(e.into()),
        };
        let held = lock.metadata()?;
        match std::fs::metadata(path) {
            Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => return Ok(Some(lock)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "{} keeps changing under us; is another daemon starting and stopping?",
        path.display()
    )))
}

/// Takes the first complete line out of `buf` (at end of stream, whatever is left counts as one).
fn take_line(buf: &mut Vec<u8>, eof: bool) -> Option<Vec<u8>> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(i) => {
            let mut line: Vec<u8> = buf.drain(..=i).collect();
            line.pop();
            Some(line)
        }
        None if eof && !buf.is_empty() => Some(std::mem::take(buf)),
        None => None,
    }
}

/// Reads a request line. Lines that are not JSON objects with a `cmd` are garbage and end the
/// connection; a well-formed request with a bad command or arguments gets an error and the
/// connection stays.
fn parse(line: &[u8]) -> Incoming {
    let value: serde_json::Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => {
            return Incoming::Invalid {
                message: format!("not a JSON request: {e}"),
                fatal: true,
            };
        }
    };
    if !value.get("cmd").is_some_and(serde_json::Value::is_string) {
        return Incoming::Invalid {
            message: "a request is a JSON object with a \"cmd\" string".to_owned(),
            fatal: true,
        };
    }
    match serde_json::from_value::<Request>(value) {
        Ok(request) => Incoming::Request(request),
        Err(e) => Incoming::Invalid {
            message: format!("bad request: {e}"),
            fatal: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A server on a fresh socket with one connected client (client id 0).
    fn server_with_client(
        dir: &Path,
    ) -> (ControlServer, mio::Poll, std::os::unix::net::UnixStream) {
        let mut server = ControlServer::bind(&dir.join("ctl.sock")).unwrap();
        let poll = mio::Poll::new().unwrap();
        server.register(poll.registry()).unwrap();
        let client = std::os::unix::net::UnixStream::connect(dir.join("ctl.sock")).unwrap();
        server.ready(poll.registry(), LISTENER, &mut Vec::new());
        assert!(server.clients[0].is_some());
        (server, poll, client)
    }

    #[test]
    fn the_line_deadline_counts_from_the_first_byte_of_an_unfinished_line() {
        let dir = std::env::temp_dir().join(format!("vswitch-srv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (mut server, poll, mut client) = server_with_client(&dir);
        let token = Token(TOKEN_BASE + 1);
        let mut incoming = Vec::new();

        // Two whole requests in one write: the second waits its turn while the first is in
        // flight, and it is not a half request however long that takes.
        client
            .write_all(b"{\"cmd\":\"show\"}\n{\"cmd\":\"show\"}\n")
            .unwrap();
        server.ready(poll.registry(), token, &mut incoming);
        assert_eq!(incoming.len(), 1);
        let later = Instant::now() + LINE_DEADLINE + Duration::from_secs(1);
        server.tick(poll.registry(), later);
        assert!(
            server.clients[0].is_some(),
            "a waiting request is not a half one"
        );
        server.reply(
            poll.registry(),
            0,
            &Reply::Ok(serde_json::Value::Null),
            false,
        );
        server.resume(poll.registry(), &mut incoming);
        assert_eq!(incoming.len(), 2);
        server.reply(
            poll.registry(),
            0,
            &Reply::Ok(serde_json::Value::Null),
            false,
        );

        // A line trickled in: more bytes do not restart its deadline.
        client.write_all(b"{\"cmd\"").unwrap();
        server.ready(poll.registry(), token, &mut incoming);
        let started = server.clients[0].as_ref().unwrap().line_started.unwrap();
        client.write_all(b":").unwrap();
        server.ready(poll.registry(), token, &mut incoming);
        assert_eq!(
            server.clients[0].as_ref().unwrap().line_started,
            Some(started)
        );
        server.tick(poll.registry(), started + LINE_DEADLINE);
        assert!(server.clients[0].is_none(), "dropped at the line deadline");
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn lines_are_split_at_newlines_and_at_end_of_stream() {
        let mut buf = b"one\ntwo\nthr".to_vec();
        assert_eq!(take_line(&mut buf, false).as_deref(), Some(&b"one"[..]));
        assert_eq!(take_line(&mut buf, false).as_deref(), Some(&b"two"[..]));
        assert_eq!(take_line(&mut buf, false), None);
        assert_eq!(take_line(&mut buf, true).as_deref(), Some(&b"thr"[..]));
        assert_eq!(take_line(&mut buf, true), None);
    }

    #[test]
    fn garbage_is_fatal_but_a_bad_argument_is_not() {
        assert!(matches!(
            parse(b"{\"cmd\":\"show\"}"),
            Incoming::Request(Request::Show {})
        ));
        for garbage in [
            &b"hello"[..],
            b"[1,2]",
            b"{\"command\":\"show\"}",
            b"\xff\xfe",
        ] {
            assert!(
                matches!(parse(garbage), Incoming::Invalid { fatal: true, .. }),
                "{garbage:?}"
            );
        }
        let bad = parse(b"{\"cmd\":\"fdb-add\",\"port\":\"t\",\"mac\":\"nope\"}");
        match bad {
            Incoming::Invalid { message, fatal } => {
                assert!(!fatal);
                assert!(message.contains("invalid MAC"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(b"{\"cmd\":\"no-such-command\"}"),
            Incoming::Invalid { fatal: false, .. }
        ));
    }
}
