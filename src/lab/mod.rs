//! `vswitch-lab`: whole labs from one TOML topology file — switches (each a vswitchd in a
//! namespace of its own), hosts (namespaces), QEMU VMs, links with VLAN and impairment keys,
//! and the reachability they should have. See docs/labs.md.
//!
//! [`file`] reads and checks the topology, [`plan`] decides every name and command line,
//! [`build`] creates and removes it (recording each resource in [`state`] first), [`check`]
//! runs the expected pings, [`run`] bounds every external command.

pub mod build;
pub mod check;
pub mod control;
pub mod file;
pub mod plan;
pub mod run;
pub mod state;
pub mod status;

use std::path::PathBuf;

/// Why a lab command failed; [`LabError::exit_code`] is the process's exit status.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The topology file is wrong: the line and the key are named.
    #[error("{}:{line}: {message}", path.display())]
    File {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// The command line is wrong (an unknown link or node, a missing file).
    #[error("{0}")]
    Usage(String),
    /// Building, checking or changing the lab failed.
    #[error("{0}")]
    Failed(String),
}

impl LabError {
    /// 2 for a bad file or usage, 1 for a failed operation.
    pub fn exit_code(&self) -> u8 {
        match self {
            LabError::File { .. } | LabError::Usage(_) => 2,
            LabError::Failed(_) => 1,
        }
    }
}

/// Fails unless running as root, saying what `command` needs root for.
pub fn need_root(command: &str) -> Result<(), LabError> {
    if nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    Err(LabError::Failed(format!(
        "vswitch-lab {command} needs root: labs live in network namespaces (creating them, \
         wiring veth pairs into them and running commands inside needs CAP_SYS_ADMIN and \
         CAP_NET_ADMIN). Run it with sudo. Without root, `vswitch-lab up --dry-run FILE` \
         checks the file and prints what up would create."
    )))
}
