//! A Unix datagram socket for QEMU's `-netdev dgram,local.type=unix,local.path=VMSOCK,
//! remote.type=unix,remote.path=PATH` (`dgram:PATH[,peer=VMSOCK]`). No root needed.
//!
//! One bare Ethernet frame per datagram. The switch binds PATH and sends to the VM's socket:
//! `peer=` names it, or it is learned from where datagrams come from (so a restarted VM that
//! binds a new socket is followed). While the VM's socket is gone, frames for it are dropped
//! (`link_down`) and the port waits.

use std::io;
use std::path::{Path, PathBuf};

use log::info;
use mio::net::UnixDatagram;
use mio::{Interest, Registry, Token};

use super::unix::clear_stale_socket;
use super::{Caps, Port};
use crate::wire::VNET_HDR_LEN;

/// A port exchanging datagrams with one VM.
pub struct DgramPort {
    name: String,
    path: PathBuf,
    socket: UnixDatagram,
    peer: Option<PathBuf>,
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
            peer_gone: false,
        })
    }
}

impl Port for DgramPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "dgram"
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

    fn detail(&self) -> String {
        match &self.peer {
            Some(peer) => format!(
                "QEMU -netdev dgram on {}, VM at {}",
                self.path.display(),
                peer.display()
            ),
            None => format!(
                "QEMU -netdev dgram on {}, VM not seen yet",
                self.path.display()
            ),
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let (n, from) = self.socket.recv_from(&mut buf[VNET_HDR_LEN..])?;
            buf[..VNET_HDR_LEN].fill(0);
            if let Some(from) = from.as_pathname()
                && self.peer.as_deref() != Some(from)
            {
                info!("port {}: VM at {}", self.name, from.display());
                self.peer = Some(from.to_owned());
            }
            self.peer_gone = false;
            if n > 0 {
                return Ok(VNET_HDR_LEN + n);
            }
        }
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
