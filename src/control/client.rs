//! The control socket's client side: one blocking connection with timeouts, as `vswitchctl`
//! and scripts use it.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Reply, Request};

/// Why a call did not return a result.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon could not be reached at all.
    #[error("cannot reach vswitchd at {path}: {reason}")]
    Unreachable { path: PathBuf, reason: String },
    /// The daemon answered with an error.
    #[error("{0}")]
    Refused(String),
    /// The connection broke or timed out mid-call, or the reply made no sense.
    #[error("lost vswitchd at {path}: {reason}")]
    Broken { path: PathBuf, reason: String },
}

/// A connection to a running `vswitchd`.
pub struct Client {
    reader: BufReader<UnixStream>,
    path: PathBuf,
}

impl Client {
    /// Connects to the control socket at `path`; every later read and write waits at most
    /// `timeout`.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Client, ClientError> {
        let unreachable = |reason: String| ClientError::Unreachable {
            path: path.to_owned(),
            reason,
        };
        let stream = UnixStream::connect(path).map_err(|e| {
            unreachable(match e.raw_os_error() {
                Some(libc::ENOENT) => {
                    "no such socket: is vswitchd running? (give -n NAME or -s PATH if it was \
                     started with --name or --ctl-socket)"
                        .to_owned()
                }
                Some(libc::ECONNREFUSED) => {
                    "nothing listens there: vswitchd is not running (the socket is stale)"
                        .to_owned()
                }
                Some(libc::EACCES | libc::EPERM) => {
                    "permission denied: run as root or as a member of the socket's group".to_owned()
                }
                _ => e.to_string(),
            })
        })?;
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(Client {
            reader: BufReader::new(stream),
            path: path.to_owned(),
        })
    }

    /// Sends one request and waits for its reply.
    pub fn call(&mut self, request: &Request) -> Result<serde_json::Value, ClientError> {
        let mut line = serde_json::to_vec(request).map_err(|e| self.broken(e.to_string()))?;
        line.push(b'\n');
        // A daemon that refuses the connection (too many clients) says why and hangs up,
        // perhaps before the request is written: its message is read all the same.
        let sent = self.reader.get_mut().write_all(&line);
        let mut reply = String::new();
        let read = self.reader.read_line(&mut reply);
        let n = match (sent, read) {
            (_, Ok(n)) if n > 0 => n,
            (Err(e), _) => return Err(self.broken(describe(&e))),
            (Ok(()), Err(e)) => return Err(self.broken(describe(&e))),
            (Ok(()), Ok(n)) => n,
        };
        if n == 0 {
            return Err(self.broken("vswitchd closed the connection".to_owned()));
        }
        match serde_json::from_str::<Reply>(&reply) {
            Ok(Reply::Ok(value)) => Ok(value),
            Ok(Reply::Error(message)) => Err(ClientError::Refused(message)),
            Err(e) => Err(self.broken(format!("unreadable reply ({e}): {}", reply.trim()))),
        }
    }

    fn broken(&self, reason: String) -> ClientError {
        ClientError::Broken {
            path: self.path.clone(),
            reason,
        }
    }
}

fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            "no reply in time (is vswitchd stuck or overloaded?)".to_owned()
        }
        _ => e.to_string(),
    }
}
