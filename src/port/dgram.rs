//! A Unix datagram socket for QEMU's `-netdev dgram,local.type=unix,local.path=VMSOCK,
//! remote.type=unix,remote.path=PATH` (`dgram:PATH[,peer=VMSOCK]`). No root needed.
//!
//! One bare Ethernet frame per datagram. The switch binds PATH and sends to the VM's socket:
//! `peer=` names it, or it is learned from where datagrams come from (so a restarted VM that
//! binds a new socket is followed). A named peer is fixed: datagrams from any other socket are
//! ignored and counted, so another local process cannot take the port over. While the VM's
//! socket is gone, frames for it are dropped (`link_down`) and the port waits.

use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use log::{info, warn};
use mio::net::UnixDatagram;
use mio::{Interest, Registry, Token};

use super::unix::clear_stale_socket;
use super::{Caps, Port, PortKind};
use crate::sys;
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
    /// Datagrams dropped because they were longer than the largest frame (cut short on receive).
    truncated: u64,
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
            truncated: 0,
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
        if self.truncated > 0 {
            detail += &format!(", {} oversized datagrams dropped", self.truncated);
        }
        detail
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let datagram = sys::dgram::recv(self.socket.as_fd(), &mut buf[VNET_HDR_LEN..])?;
        let (n, from, truncated) = (datagram.len, datagram.from, datagram.truncated);
        if truncated {
            if self.truncated == 0 {
                warn!(
                    "port {}: dropping datagrams longer than a frame can be ({} bytes)",
                    self.name,
                    buf.len() - VNET_HDR_LEN
                );
            }
            self.truncated += 1;
            return Err(io::ErrorKind::Interrupted.into());
        }
        let from = from.as_deref();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::FRAME_BUF_LEN;

    #[test]
    fn a_datagram_longer_than_a_frame_is_dropped_not_cut() {
        let dir = std::env::temp_dir().join(format!("vswitch-dgram-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sw.sock");
        let mut port = DgramPort::open("d", &path, None).unwrap();
        let vm = std::os::unix::net::UnixDatagram::bind(dir.join("vm.sock")).unwrap();
        let mut buf = vec![0u8; FRAME_BUF_LEN];
        let oversized = vec![0xab; FRAME_BUF_LEN + 100];
        vm.send_to(&oversized, &path).unwrap();
        let frame = vec![0xcd; 60];
        vm.send_to(&frame, &path).unwrap();
        let err = port.recv(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Interrupted);
        assert_eq!(port.recv(&mut buf).unwrap(), VNET_HDR_LEN + 60);
        assert_eq!(&buf[VNET_HDR_LEN..VNET_HDR_LEN + 60], &frame[..]);
        assert!(port.detail().contains("1 oversized datagrams dropped"));
        // An unnamed sender has no address at all: read, not learned as the peer.
        let unnamed = std::os::unix::net::UnixDatagram::unbound().unwrap();
        unnamed.send_to(&frame, &path).unwrap();
        assert_eq!(port.recv(&mut buf).unwrap(), VNET_HDR_LEN + 60);
        assert!(port.detail().contains("vm.sock"), "{}", port.detail());
        drop(port);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
