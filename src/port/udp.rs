//! A point-to-point UDP port (`udp:NAME,local=ADDR:PORT,remote=ADDR:PORT`): one bare Ethernet
//! frame per datagram, to and from one peer. It is the wire format of GNS3's NIO UDP, of
//! QEMU's `-netdev dgram` with inet addresses and of `-netdev socket,udp=`, so a VM or an
//! emulated router on another machine plugs straight into the switch.
//!
//! The socket is connected to the peer: the kernel keeps datagrams from anyone else out. While
//! the peer is not listening (ICMP port unreachable), frames for it are dropped (`link_down`)
//! and the port waits.

use std::io;
use std::net::SocketAddr;

use mio::net::UdpSocket;
use mio::{Interest, Registry, Token};

use super::{Caps, Port, PortKind};
use crate::wire::VNET_HDR_LEN;

pub struct UdpPort {
    name: String,
    local: SocketAddr,
    remote: SocketAddr,
    socket: UdpSocket,
    /// The last send or receive found the peer not listening.
    peer_gone: bool,
}

impl UdpPort {
    pub fn open(name: &str, local: SocketAddr, remote: SocketAddr) -> io::Result<UdpPort> {
        let socket = UdpSocket::bind(local)?;
        socket.connect(remote)?;
        Ok(UdpPort {
            name: name.to_owned(),
            local: socket.local_addr()?,
            remote,
            socket,
            peer_gone: false,
        })
    }
}

/// The peer's socket is not there (an ICMP port unreachable came back).
fn refused(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ECONNREFUSED)
}

impl Port for UdpPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        PortKind::Udp
    }

    fn caps(&self) -> Caps {
        Caps {
            offloads: false,
            polled: false,
        }
    }

    fn state(&self) -> &'static str {
        if self.peer_gone { "waiting" } else { "up" }
    }

    fn carrier(&self) -> Result<(), &'static str> {
        Err("a UDP link carries no link state; link=down drops frames only")
    }

    fn detail(&self) -> String {
        format!("UDP {} <-> {}", self.local, self.remote)
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.socket.recv(&mut buf[VNET_HDR_LEN..]) {
            Ok(0) => Err(io::ErrorKind::Interrupted.into()),
            Ok(n) => {
                self.peer_gone = false;
                buf[..VNET_HDR_LEN].fill(0);
                Ok(VNET_HDR_LEN + n)
            }
            // The error of an earlier send: not the port's end.
            Err(e) if refused(&e) => {
                self.peer_gone = true;
                Err(io::ErrorKind::Interrupted.into())
            }
            Err(e) => Err(e),
        }
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        match self.socket.send(&frame[VNET_HDR_LEN..]) {
            Ok(_) => Ok(()),
            Err(e) if refused(&e) => {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_cross_as_bare_datagrams_and_a_missing_peer_is_waited_for() {
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let remote = peer.local_addr().unwrap();
        let mut port = UdpPort::open("u", "127.0.0.1:0".parse().unwrap(), remote).unwrap();
        peer.connect(port.local).unwrap();
        let frame: Vec<u8> = (0..60).collect();
        peer.send(&frame).unwrap();
        let mut buf = vec![0u8; crate::wire::FRAME_BUF_LEN];
        let n = loop {
            match port.recv(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(&buf[VNET_HDR_LEN..n], &frame[..]);
        let mut out = vec![0u8; VNET_HDR_LEN];
        out.extend_from_slice(&frame);
        port.send(&out).unwrap();
        let mut got = [0u8; 128];
        assert_eq!(peer.recv(&mut got).unwrap(), 60);

        // The peer goes: sends find it gone, and the port says it waits, not that it died.
        drop(peer);
        for _ in 0..50 {
            let _ = port.send(&out);
            match port.recv(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => panic!("{other:?}"),
            }
            if port.state() == "waiting" {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the port never noticed its peer gone");
    }
}
