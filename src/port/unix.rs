//! Socket paths for the ports that listen on Unix sockets.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;

/// Makes way for a socket at `path`: a socket file nobody serves (left by a switch that was
/// killed) is removed; a live socket or a file that is not a socket is an error.
pub fn clear_stale_socket(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        ));
    }
    let live = stream_listener_at(path)?
        || UnixDatagram::unbound()
            .and_then(|d| d.connect(path))
            .is_ok();
    if live {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{} is in use by another process", path.display()),
        ));
    }
    std::fs::remove_file(path)
}

/// Whether a stream listener serves `path`. The connect does not block (the switch's loop
/// calls this on `port add` and reload): a listener whose backlog is full answers EAGAIN,
/// which still means someone is there.
fn stream_listener_at(path: &Path) -> io::Result<bool> {
    use nix::errno::Errno;
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
    let sock = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let addr = UnixAddr::new(path)?;
    match connect(sock.as_raw_fd(), &addr) {
        Ok(()) | Err(Errno::EAGAIN | Errno::EINPROGRESS) => Ok(true),
        Err(_) => Ok(false),
    }
}

/// The next connection a one-VM socket port takes from `accept`; `None` once none waits, or
/// when accepting failed (ECONNABORTED, fd exhaustion: the next readiness tries again). While
/// `attached`, each waiting connection is closed at once with a log line, so a second VM learns
/// it is refused instead of sitting in the backlog thinking it is connected.
pub fn next_vm<S>(
    name: &str,
    path: &Path,
    attached: bool,
    mut accept: impl FnMut() -> io::Result<S>,
) -> Option<S> {
    loop {
        let stream = match accept() {
            Ok(stream) => stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::warn!("port {name}: accept: {e}");
                return None;
            }
        };
        if !attached {
            return Some(stream);
        }
        log::warn!(
            "port {name}: another VM connected to {} while one is attached; refused",
            socket_name(path)
        );
    }
}

/// The file name of a socket path, for logs.
pub fn socket_name(path: &Path) -> String {
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connected (queued) socket, or the error of a non-blocking connect (EAGAIN once the
    /// listener's backlog is full).
    fn nonblocking_connect(path: &Path) -> nix::Result<std::os::fd::OwnedFd> {
        use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
        let sock = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK,
            None,
        )?;
        connect(sock.as_raw_fd(), &UnixAddr::new(path)?)?;
        Ok(sock)
    }

    #[test]
    fn stale_sockets_go_and_live_ones_stay() {
        let dir = std::env::temp_dir().join(format!("vswitch-unix-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        assert!(clear_stale_socket(&path).is_ok(), "nothing there");
        let live = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert_eq!(
            clear_stale_socket(&path).unwrap_err().kind(),
            io::ErrorKind::AddrInUse
        );
        // A listener whose backlog is full is live too, and the probe does not wait for it.
        let mut queued = Vec::new();
        while queued.len() < 10_000 {
            match nonblocking_connect(&path) {
                Ok(sock) => queued.push(sock),
                Err(_) => break,
            }
        }
        assert!(queued.len() < 10_000, "the backlog never filled");
        let started = std::time::Instant::now();
        assert_eq!(
            clear_stale_socket(&path).unwrap_err().kind(),
            io::ErrorKind::AddrInUse
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        drop(queued);
        drop(live);
        clear_stale_socket(&path).unwrap();
        assert!(!path.exists());
        let dgram = UnixDatagram::bind(&path).unwrap();
        assert!(
            clear_stale_socket(&path).is_err(),
            "a bound datagram socket is live"
        );
        drop(dgram);
        clear_stale_socket(&path).unwrap();
        std::fs::write(&path, b"x").unwrap();
        assert_eq!(
            clear_stale_socket(&path).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
