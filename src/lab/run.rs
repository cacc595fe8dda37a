//! External commands (`ip`, `ping`, `sysctl`), each bounded in time, and the tools a lab needs
//! named with the Debian package that has them.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::LabError;

/// The longest any one command may take before it is killed.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(30);

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `args` with no input, killing it after `limit`.
pub fn output(args: &[&str], limit: Duration) -> Result<Output, LabError> {
    let (program, rest) = args
        .split_first()
        .ok_or_else(|| LabError::Failed("an empty command".into()))?;
    let mut child = Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            LabError::Failed(format!(
                "cannot run {program}: {e}{}",
                package_hint(program)
            ))
        })?;
    // Both pipes are read on threads so a chatty command cannot block on a full pipe.
    let mut out = child.stdout.take().map(reader);
    let mut err = child.stderr.take().map(reader);
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(LabError::Failed(format!("waiting for {program}: {e}"))),
        }
    };
    let stdout = out
        .take()
        .map(|t| t.join().unwrap_or_default())
        .unwrap_or_default();
    let stderr = err
        .take()
        .map(|t| t.join().unwrap_or_default())
        .unwrap_or_default();
    match status {
        Some(status) => Ok(Output {
            success: status.success(),
            stdout,
            stderr,
        }),
        None => Err(LabError::Failed(format!(
            "`{}` did not finish within {} s",
            args.join(" "),
            limit.as_secs()
        ))),
    }
}

fn reader(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Runs `args`, which must succeed; the error quotes the command and what it said.
pub fn sh(args: &[&str]) -> Result<String, LabError> {
    let out = output(args, COMMAND_LIMIT)?;
    if out.success {
        Ok(out.stdout)
    } else {
        Err(LabError::Failed(format!(
            "`{}` failed: {}",
            args.join(" "),
            out.stderr.trim()
        )))
    }
}

/// The Debian package of a tool the lab runs.
pub fn package(tool: &str) -> Option<&'static str> {
    Some(match tool {
        "ip" => "iproute2",
        "ping" => "iputils-ping",
        "sysctl" => "procps",
        "qemu-system-x86_64" => "qemu-system-x86",
        _ => return None,
    })
}

fn package_hint(tool: &str) -> String {
    package(tool)
        .map(|p| format!(" (install it: apt-get install {p})"))
        .unwrap_or_default()
}

/// Where `tool` is on PATH.
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Fails naming the first missing tool and its package.
pub fn need_tools(tools: &[&str]) -> Result<(), LabError> {
    for tool in tools {
        if find_tool(tool).is_none() {
            return Err(LabError::Failed(format!(
                "{tool} is not installed{}",
                package_hint(tool)
            )));
        }
    }
    Ok(())
}

/// A program shipped with this crate: next to the running executable, or `$ENV` when set.
pub fn sibling(program: &str, env: &str) -> Result<PathBuf, LabError> {
    if let Some(path) = std::env::var_os(env) {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()
        .map_err(|e| LabError::Failed(format!("cannot find this program's directory: {e}")))?;
    let path = exe.with_file_name(program);
    if is_executable(&path) {
        Ok(path)
    } else {
        Err(LabError::Failed(format!(
            "{program} is not next to {} (cargo build --release builds both; or set {env})",
            exe.display()
        )))
    }
}
