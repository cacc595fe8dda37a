//! The control socket's client side: one blocking connection with timeouts, as `vswitchctl`
//! and scripts use it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
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

    /// Sends `request` and, once its one-line reply accepts it, hands every byte that follows
    /// to `each` until the daemon ends the stream or `stop` is raised (checked at least every
    /// 200 ms). `each` failing (its reader went away) ends the stream too.
    pub fn stream(
        &mut self,
        request: &Request,
        stop: &AtomicBool,
        mut each: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> Result<(), ClientError> {
        let mut line = serde_json::to_vec(request).map_err(|e| self.broken(e.to_string()))?;
        line.push(b'\n');
        let sent = self.reader.get_mut().write_all(&line);
        let mut reply = String::new();
        match (sent, self.reader.read_line(&mut reply)) {
            (_, Ok(n)) if n > 0 => {}
            (Err(e), _) | (Ok(()), Err(e)) => return Err(self.broken(describe(&e))),
            (Ok(()), Ok(_)) => return Err(self.broken("vswitchd closed the connection".into())),
        }
        match serde_json::from_str::<Reply>(&reply) {
            Ok(Reply::Ok(_)) => {}
            Ok(Reply::Error(message)) => return Err(ClientError::Refused(message)),
            Err(e) => return Err(self.broken(format!("unreadable reply ({e}): {}", reply.trim()))),
        }
        let buffered = self.reader.buffer().to_vec();
        self.reader.consume(buffered.len());
        let fail = |e: io::Error| ClientError::Broken {
            path: self.path.clone(),
            reason: format!("cannot write the stream: {e}"),
        };
        if !buffered.is_empty() {
            each(&buffered).map_err(fail)?;
        }
        let stream = self.reader.get_mut();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|e| ClientError::Broken {
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
        let mut chunk = vec![0u8; 64 << 10];
        while !stop.load(Ordering::SeqCst) {
            match stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => each(&chunk[..n]).map_err(fail)?,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    return Err(ClientError::Broken {
                        path: self.path.clone(),
                        reason: describe(&e),
                    });
                }
            }
        }
        Ok(())
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
