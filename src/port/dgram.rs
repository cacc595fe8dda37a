//! A Unix datagram socket for QEMU's `-netdev dgram,local.type=unix,local.path=VMSOCK,
//! remote.type=unix,remote.path=PATH` (`dgram:PATH[,peer=VMSOCK]`). No root needed.
//!
//! One bare Ethernet frame per datagram. The switch binds PATH and sends to the VM's socket:
//! `peer=` names it, or it is learned from where datagrams come from (so a restarted VM that
//! binds a new socket is followed). A named peer is fixed: datagrams from any other socket are
//! ignored and counted, so another local process cannot take the port over. While the VM's
//! socket is gone, frames for it are dropped (`link_down`) and the port waits.

use std::io;
use std::path::{Path, PathBuf};

use log::{info, warn};
use mio::net::UnixDatagram;
use mio::{Interest, Registry, Token};

use super::unix::clear_stale_socket;
use super::{Caps, Port, PortKind};
use crate::wire::VNET_HDR_LEN;

/// A port exchanging datagrams with one VM.
pub struct DgramPort {
    name: String,
    path: PathBuf,
    socket: UnixDatagram,
    peer: Option<PathBuf>,
    /// `peer=` was given: the peer is not learned.
    fixed_peer: bool,
    /// Datagrams ignored because they came from another socket than the fixed peer.
    foreign: u64,
    /// The last send found the peer's socket gone.
    peer_gone: bool,
}

impl DgramPort {
    /// Binds `path` (a stale socket file is replaced; a live one is an error); sends to `peer`
    /// until a datagram says where the VM is.
    pub fn open(name: &str, path: &Path, peer: Option<&Path>) -> io::Result<DgramPort> {
        clear_stale_socket(path)?;
        Ok(DgramPort {
            name: name.to_owned(),
            path: path.to_owned(),
            socket: UnixDatagram::bind(path)?,
            peer: peer.map(Path::to_owned),
            fixed_peer: peer.is_some(),
            foreign: 0,
            peer_gone: false,
        })
    }
}

impl Port for DgramPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        PortKind::Dgram
    }

    fn caps(&self) -> Caps {
        Caps {
            offloads: false,
            polled: false,
        }
    }

    fn state(&self) -> &'static str {
        match (&self.peer, self.peer_gone) {
            (Some(_), false) => "up",
            _ => "waiting",
        }
    }

    fn carrier(&self) -> Result<(), &'static str> {
        Err("QEMU's socket netdevs carry no link state; link=down drops frames only")
    }

    fn detail(&self) -> String {
        let mut detail = match &self.peer {
            Some(peer) => format!(
                "QEMU -netdev dgram on {}, VM at {}",
                self.path.display(),
                peer.display()
            ),
            None => format!(
                "QEMU -netdev dgram on {}, VM not seen yet",
                self.path.display()
            ),
        };
        if self.foreign > 0 {
            detail += &format!(", {} datagrams from other sockets ignored", self.foreign);
        }
        detail
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (n, from) = self.socket.recv_from(&mut buf[VNET_HDR_LEN..])?;
        let from = from.as_pathname();
        if self.fixed_peer {
            if from != self.peer.as_deref() {
                if self.foreign == 0 {
                    warn!(
                        "port {}: ignoring datagrams from {} (the port's peer is {})",
                        self.name,
                        from.map_or_else(
                            || "an unnamed socket".into(),
                            |p| p.display().to_string()
                        ),
                        self.peer.as_deref().unwrap_or(Path::new("")).display()
                    );
                }
                self.foreign += 1;
                // Not a frame, but it counts against the port's read budget, so a
                // flood of them cannot hold the reactor.
                return Err(io::ErrorKind::Interrupted.into());
            }
        } else if let Some(from) = from
            && self.peer.as_deref() != Some(from)
        {
            info!("port {}: VM at {}", self.name, from.display());
            self.peer = Some(from.to_owned());
        }
        self.peer_gone = false;
        buf[..VNET_HDR_LEN].fill(0);
        if n == 0 {
            // An empty datagram carries no frame.
            return Err(io::ErrorKind::Interrupted.into());
        }
        Ok(VNET_HDR_LEN + n)
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        let Some(peer) = &self.peer else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        match self.socket.send_to(&frame[VNET_HDR_LEN..], peer) {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ECONNREFUSED | libc::ENOENT | libc::ENOTCONN)
                ) =>
            {
                // The VM's socket is gone (it exited, or is restarting).
                self.peer_gone = true;
                Err(io::ErrorKind::NotConnected.into())
            }
            Err(e) => Err(e),
        }
    }

    fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(&mut self.socket, token, Interest::READABLE)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        registry.deregister(&mut self.socket)
    }
}

impl Drop for DgramPort {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
