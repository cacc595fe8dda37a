//! The control socket's server side, driven by the reactor's mio loop (no thread of its own).
//!
//! Every client is non-blocking with bounded buffers: a request line may be at most
//! [`MAX_REQUEST_LEN`] bytes, a client reads no new request until its last reply is written,
//! a reply that cannot be delivered within [`WRITE_DEADLINE`] gets the client dropped, and at
//! most [`MAX_CLIENTS`] are served at once. So no client can stall forwarding or grow the
//! switch's memory without bound.

use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use log::{debug, warn};
use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

use super::{MAX_REQUEST_LEN, Reply, Request};

/// Clients served at once; more are told so and disconnected.
pub const MAX_CLIENTS: usize = 256;

/// How long a reply may wait for a client to read it.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(30);

/// How long a client being disconnected may take to close its side.
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

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

struct Client {
    stream: UnixStream,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    written: usize,
    /// Set when the reply being written must wait for the client.
    deadline: Option<Instant>,
    /// The client half-closed; finish replying, then drop it.
    eof: bool,
    /// Drop the client once the reply is out.
    close_after_reply: bool,
    /// A request was handed out and its reply has not been queued yet.
    in_flight: bool,
    /// Bytes discarded since the last reply went out and our side was shut down: what the
    /// client still sends is read and thrown away (up to [`DRAIN_LIMIT`]), so that closing
    /// does not reset the connection before the client has read that reply.
    draining: usize,
    writable_interest: bool,
}

/// Bytes discarded from a client being disconnected before it is dropped regardless.
const DRAIN_LIMIT: usize = 1 << 20;

/// The listening socket and its clients.
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    clients: Vec<Option<Client>>,
}

impl ControlServer {
    /// Binds the socket at `path` (mode 0660, parent directories created). A socket file left by
    /// a dead daemon is replaced; a live one is an error.
    pub fn bind(path: &Path) -> Result<ControlServer, BindError> {
        let io_err = |source| BindError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err)?;
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if !meta.file_type().is_socket() => {
                return Err(BindError::NotASocket(path.to_owned()));
            }
            Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => return Err(BindError::InUse(path.to_owned())),
                Err(e) => {
                    debug!("replacing stale control socket {} ({e})", path.display());
                    std::fs::remove_file(path).map_err(io_err)?;
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(e)),
        }
        let listener = UnixListener::bind(path).map_err(io_err)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(io_err)?;
        Ok(ControlServer {
            listener,
            path: path.to_owned(),
            clients: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn register(&mut self, registry: &Registry) -> io::Result<()> {
        registry.register(&mut self.listener, LISTENER, Interest::READABLE)
    }

    /// Whether `token` belongs to the control socket.
    pub fn owns(token: Token) -> bool {
        token.0 >= TOKEN_BASE && token.0 <= TOKEN_BASE + MAX_CLIENTS
    }

    /// Handles readiness of `token`; complete requests are appended to `incoming` with the
    /// client they came from, to be answered with [`ControlServer::reply`].
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
        let id = token.0 - TOKEN_BASE - 1;
        self.flush(registry, id);
        self.read(id, incoming);
        self.finish_if_done(registry, id);
    }

    /// Queues the reply to a request of client `id` and writes what the socket takes now. If
    /// the reply went out whole, the client's next buffered request (if any) is appended to
    /// `incoming`: edge-triggered readiness will not report bytes already read.
    pub fn reply(
        &mut self,
        registry: &Registry,
        id: usize,
        reply: &Reply,
        close: bool,
        incoming: &mut Vec<(usize, Incoming)>,
    ) {
        let Some(client) = self.clients.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        // Serialising a Reply (strings, numbers, maps with string keys) cannot fail.
        if serde_json::to_writer(&mut client.outbuf, reply).is_ok() {
            client.outbuf.push(b'\n');
        }
        client.close_after_reply |= close;
        client.in_flight = false;
        self.flush(registry, id);
        self.read(id, incoming);
        self.finish_if_done(registry, id);
    }

    /// Drops clients whose replies have waited past the deadline.
    pub fn tick(&mut self, registry: &Registry, now: Instant) {
        for id in 0..self.clients.len() {
            let late = self.clients[id]
                .as_ref()
                .and_then(|c| c.deadline)
                .is_some_and(|d| now >= d);
            if late {
                warn!("control client {id} dropped: it did not read its reply or hang up in time");
                self.drop_client(registry, id);
            }
        }
    }

    /// Clients connected now.
    pub fn client_count(&self) -> usize {
        self.clients.iter().filter(|c| c.is_some()).count()
    }

    fn accept(&mut self, registry: &Registry) {
        loop {
            let mut stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!("control socket: accept: {e}");
                    return;
                }
            };
            let Some(id) = self.free_slot() else {
                let mut line = serde_json::to_vec(&Reply::Error(format!(
                    "too many control clients (at most {MAX_CLIENTS}); try again"
                )))
                .unwrap_or_default();
                line.push(b'\n');
                let _ = stream.write(&line);
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
                deadline: None,
                eof: false,
                close_after_reply: false,
                in_flight: false,
                draining: 0,
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

    /// Reads what the client sent and splits it into requests, unless a reply is still being
    /// written (the unread bytes wait in the kernel: backpressure).
    fn read(&mut self, id: usize, incoming: &mut Vec<(usize, Incoming)>) {
        let Some(client) = self.clients.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        let mut chunk = [0u8; 4096];
        if client.in_flight {
            return;
        }
        while client.outbuf.is_empty() && !client.eof && !client.close_after_reply {
            match client.stream.read(&mut chunk) {
                Ok(0) => client.eof = true,
                Ok(n) => client.inbuf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!("control client {id}: {e}");
                    client.eof = true;
                    client.inbuf.clear();
                }
            }
            // Answer one request at a time; the rest stay buffered until the reply is out.
            if let Some(line) = take_line(&mut client.inbuf, client.eof) {
                client.in_flight = true;
                incoming.push((id, parse(&line)));
                return;
            }
            if client.inbuf.len() > MAX_REQUEST_LEN {
                client.inbuf.clear();
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
        }
        if client.outbuf.is_empty()
            && !client.close_after_reply
            && let Some(line) = take_line(&mut client.inbuf, client.eof)
        {
            client.in_flight = true;
            incoming.push((id, parse(&line)));
        }
    }

    fn flush(&mut self, registry: &Registry, id: usize) {
        let Some(client) = self.clients.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        while client.written < client.outbuf.len() {
            match client.stream.write(&client.outbuf[client.written..]) {
                Ok(n) => client.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!("control client {id}: {e}");
                    client.outbuf.clear();
                    client.written = 0;
                    client.eof = true;
                    client.close_after_reply = true;
                    return;
                }
            }
        }
        let pending = client.written < client.outbuf.len();
        if pending {
            client
                .deadline
                .get_or_insert_with(|| Instant::now() + WRITE_DEADLINE);
        } else {
            client.outbuf.clear();
            client.written = 0;
            client.deadline = None;
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
    }

    /// Drops a client that has nothing left to say or hear. One being disconnected first has
    /// its unread input drained, so it gets to read the reply that explains why.
    fn finish_if_done(&mut self, registry: &Registry, id: usize) {
        let Some(c) = self.clients.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        if c.in_flight || !c.outbuf.is_empty() {
            return;
        }
        if c.close_after_reply && !c.eof && c.draining < DRAIN_LIMIT {
            if c.draining == 0 {
                let _ = c.stream.shutdown(std::net::Shutdown::Write);
                c.deadline = Some(Instant::now() + DRAIN_DEADLINE);
                c.inbuf.clear();
            }
            let mut chunk = [0u8; 4096];
            while c.draining < DRAIN_LIMIT {
                match c.stream.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => c.draining += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        // Mark the drain as started even if nothing was read yet.
                        c.draining = c.draining.max(1);
                        return;
                    }
                    Err(_) => break,
                }
            }
        }
        if c.close_after_reply || (c.eof && c.inbuf.is_empty()) {
            self.drop_client(registry, id);
        }
    }

    fn drop_client(&mut self, registry: &Registry, id: usize) {
        if let Some(mut client) = self.clients.get_mut(id).and_then(Option::take) {
            let _ = registry.deregister(&mut client.stream);
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
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
