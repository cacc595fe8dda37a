//! A Unix stream socket for QEMU's `-netdev stream,server=off,addr.type=unix,addr.path=PATH`
//! (`stream:PATH`). No root needed.
//!
//! The switch listens; QEMU connects. Each frame on the stream is a 4-byte big-endian length and
//! the Ethernet frame (no FCS, no padding). QEMU 7.2's client does not retry, so the switch must
//! listen before the VM starts. When the VM goes, the port waits for the next connection (the
//! VM restarted) and carries on. One VM at a time: a second connection is closed at once while
//! one is up.

use std::io::{self, IoSlice, Read, Write};
use std::path::{Path, PathBuf};

use log::{info, warn};
use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

use super::unix::{clear_stale_socket, next_vm, socket_name};
use super::{Caps, Port, PortKind};
use crate::wire::{ETHERNET_HEADER_LEN, MAX_FRAME_LEN, VNET_HDR_LEN};

/// Bytes of unsent frames kept for a slow VM before new frames are dropped.
const TX_LIMIT: usize = 256 * 1024;

/// Room for reading: a whole largest frame with its length, and a read's worth more.
const RX_BUF: usize = 4 + MAX_FRAME_LEN + 64 * 1024;

/// The connected VM.
struct Conn {
    stream: UnixStream,
    /// Bytes read; `rx[start..end]` are not yet handed out as frames.
    rx: Box<[u8]>,
    start: usize,
    end: usize,
    /// Bytes not yet written.
    tx: Vec<u8>,
}

impl Conn {
    fn pending(&self) -> &[u8] {
        &self.rx[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads what the socket has into the free end of `rx` (moving pending bytes to the front
    /// first if the end is full).
    fn fill(&mut self) -> io::Result<usize> {
        if self.end == self.rx.len() {
            self.rx.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = self.stream.read(&mut self.rx[self.end..])?;
        self.end += n;
        Ok(n)
    }
}

/// A port serving one QEMU stream connection at a time.
pub struct StreamPort {
    name: String,
    path: PathBuf,
    listener: UnixListener,
    conn: Option<Conn>,
    registry: Option<(Registry, Token)>,
}

impl StreamPort {
    /// Listens at `path` (a stale socket file is replaced; a live one is an error).
    pub fn open(name: &str, path: &Path) -> io::Result<StreamPort> {
        clear_stale_socket(path)?;
        let listener = UnixListener::bind(path)?;
        Ok(StreamPort {
            name: name.to_owned(),
            path: path.to_owned(),
            listener,
            conn: None,
            registry: None,
        })
    }

    /// Accepts every waiting connection: the first becomes the port's VM if it has none, the
    /// others are closed at once, so a second VM learns it is refused instead of sitting in the
    /// backlog thinking it is connected.
    fn accept(&mut self) {
        loop {
            let listener = &self.listener;
            let attached = self.conn.is_some();
            let Some(mut stream) = next_vm(&self.name, &self.path, attached, || {
                listener.accept().map(|(stream, _)| stream)
            }) else {
                return;
            };
            if let Some((registry, token)) = &self.registry {
                // Registration reports data that is already waiting, so nothing is missed.
                if let Err(e) =
                    registry.register(&mut stream, *token, Interest::READABLE | Interest::WRITABLE)
                {
                    warn!("port {}: cannot watch the new connection: {e}", self.name);
                    continue;
                }
            }
            info!(
                "port {}: a VM connected to {}",
                self.name,
                socket_name(&self.path)
            );
            self.conn = Some(Conn {
                stream,
                rx: vec![0; RX_BUF].into_boxed_slice(),
                start: 0,
                end: 0,
                tx: Vec::new(),
            });
        }
    }

    fn disconnect(&mut self, why: &str) {
        if let Some(mut conn) = self.conn.take() {
            if let Some((registry, _)) = &self.registry {
                let _ = registry.deregister(&mut conn.stream);
            }
            info!(
                "port {}: the VM disconnected ({why}); waiting for it",
                self.name
            );
        }
    }

    /// Writes what is pending; whether it all went.
    fn flush(&mut self) -> io::Result<bool> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(true);
        };
        while !conn.tx.is_empty() {
            match conn.stream.write(&conn.tx) {
                Ok(n) => {
                    conn.tx.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// A complete frame at the front of the connection's input, moved into `buf`.
    fn take_frame(&mut self, buf: &mut [u8]) -> Result<Option<usize>, String> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(None);
        };
        let Some(frame) = split_frame(conn.pending())? else {
            return Ok(None);
        };
        let len = frame.len();
        buf[..VNET_HDR_LEN].fill(0);
        buf[VNET_HDR_LEN..VNET_HDR_LEN + len].copy_from_slice(frame);
        conn.consume(4 + len);
        Ok(Some(VNET_HDR_LEN + len))
    }
}

/// The first frame of `data`, bytes read from a stream connection: `Ok(Some(frame))`, the
/// Ethernet frame, which with its length takes `4 + frame.len()` bytes of `data`; `Ok(None)`
/// while `data` does not hold the whole frame yet; an error if the length is out of range (no
/// frame boundary can be trusted after it).
pub fn split_frame(data: &[u8]) -> Result<Option<&[u8]>, String> {
    let Some(&[a, b, c, d]) = data.first_chunk::<4>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([a, b, c, d]) as usize;
    if !(ETHERNET_HEADER_LEN..=MAX_FRAME_LEN).contains(&len) {
        return Err(format!("frame length {len} out of range"));
    }
    Ok(data.get(4..4 + len))
}

impl Port for StreamPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        PortKind::Stream
    }

    fn caps(&self) -> Caps {
        Caps {
            offloads: false,
            polled: false,
        }
    }

    fn state(&self) -> &'static str {
        if self.conn.is_some() { "up" } else { "waiting" }
    }

    fn carrier(&self) -> Result<(), &'static str> {
        Err("QEMU's socket netdevs carry no link state; link=down drops frames only")
    }

    fn detail(&self) -> String {
        format!("QEMU -netdev stream on {}", self.path.display())
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // A writable event lands here too: send what waited.
        if let Err(e) = self.flush() {
            self.disconnect(&e.to_string());
        }
        // The connection is read to its end before new ones are accepted: a VM that restarted
        // has closed its old connection before it opens the new one, so the new one is not
        // refused as a second VM.
        while self.conn.is_some() {
            match self.take_frame(buf) {
                Ok(Some(n)) => return Ok(n),
                Ok(None) => {}
                Err(why) => {
                    self.disconnect(&why);
                    break;
                }
            }
            let Some(conn) = self.conn.as_mut() else {
                break;
            };
            match conn.fill() {
                Ok(0) => self.disconnect("end of stream"),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.disconnect(&e.to_string()),
            }
        }
        self.accept();
        Err(io::ErrorKind::WouldBlock.into())
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        let eth = &frame[VNET_HDR_LEN..];
        match self.flush() {
            Ok(true) => {}
            Ok(false) => {
                let conn = self.conn.as_ref().map_or(0, |c| c.tx.len());
                if conn + 4 + eth.len() > TX_LIMIT {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
            }
            Err(e) => {
                self.disconnect(&e.to_string());
                return Err(io::ErrorKind::NotConnected.into());
            }
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        let len = (eth.len() as u32).to_be_bytes();
        if conn.tx.is_empty() {
            // The usual case: straight out, without copying.
            let written = loop {
                match conn
                    .stream
                    .write_vectored(&[IoSlice::new(&len), IoSlice::new(eth)])
                {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break 0,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.disconnect(&e.to_string());
                        return Err(io::ErrorKind::NotConnected.into());
                    }
                }
            };
            if written < 4 {
                conn.tx.extend_from_slice(&len[written..]);
                conn.tx.extend_from_slice(eth);
            } else if written < 4 + eth.len() {
                conn.tx.extend_from_slice(&eth[written - 4..]);
            }
        } else {
            conn.tx.extend_from_slice(&len);
            conn.tx.extend_from_slice(eth);
        }
        Ok(())
    }

    fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(&mut self.listener, token, Interest::READABLE)?;
        if let Some(conn) = self.conn.as_mut() {
            registry.register(
                &mut conn.stream,
                token,
                Interest::READABLE | Interest::WRITABLE,
            )?;
        }
        self.registry = Some((registry.try_clone()?, token));
        Ok(())
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        registry.deregister(&mut self.listener)?;
        if let Some(conn) = self.conn.as_mut() {
            registry.deregister(&mut conn.stream)?;
        }
        self.registry = None;
        Ok(())
    }
}

impl Drop for StreamPort {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
