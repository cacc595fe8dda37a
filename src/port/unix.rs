//! Socket paths for the ports that listen on Unix sockets.

use std::io;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixDatagram, UnixStream};
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
    let live = UnixStream::connect(path).is_ok()
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

/// The file name of a socket path, for logs.
pub fn socket_name(path: &Path) -> String {
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

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
