//! The state record of a lab (`/run/vswitch-lab/LAB/state.json`): every resource `up` creates,
//! written before the resource exists, so `down` removes exactly what a (perhaps crashed) `up`
//! made, and nothing else.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::LabError;

/// One thing `up` created.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Resource {
    /// A network namespace (`ip netns add`).
    Namespace { name: String },
    /// A veth pair, by its end in namespace `ns` (the other end goes with it).
    Veth { ns: String, ifname: String },
    /// A process started by `up`: a switch, a VM, a host's start command. `start` is its start
    /// time in clock ticks since boot (/proc/PID/stat), so a recycled pid is never signalled.
    Process { what: String, pid: u32, start: u64 },
    /// A file `up` made or that a process it started makes (a control socket, a VM socket).
    File { path: PathBuf },
}

/// The record itself.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub lab: String,
    /// The topology file `up` read.
    pub file: PathBuf,
    pub resources: Vec<Resource>,
    /// Set once `up` finished.
    #[serde(default)]
    pub complete: bool,
    #[serde(skip)]
    path: PathBuf,
}

impl State {
    /// A new record at `dir/state.json`, written at once.
    /// Fails if there is a record already: two `up`s of one lab cannot both proceed.
    pub fn create(dir: &Path, lab: &str, file: &Path) -> Result<State, LabError> {
        let state = State {
            lab: lab.to_owned(),
            file: file.to_owned(),
            resources: Vec::new(),
            complete: false,
            path: dir.join("state.json"),
        };
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&state.path)
            .map_err(|e| {
                LabError::Failed(format!(
                    "cannot create {}: {e} (is lab {lab} being built or up?)",
                    state.path.display()
                ))
            })?;
        state.save()?;
        Ok(state)
    }

    /// The record in `dir`, if there is one.
    pub fn load(dir: &Path) -> Result<Option<State>, LabError> {
        let path = dir.join("state.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(LabError::Failed(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        };
        let mut state: State = serde_json::from_str(&text).map_err(|e| {
            LabError::Failed(format!(
                "{} is not a lab state record ({e}); remove the lab's namespaces by hand \
                 (ip netns list) and then the file",
                path.display()
            ))
        })?;
        state.path = path;
        Ok(Some(state))
    }

    /// Adds `resource` and writes the record (before the caller creates the resource).
    pub fn record(&mut self, resource: Resource) -> Result<(), LabError> {
        self.resources.push(resource);
        self.save()
    }

    /// Drops the newest resource from the record: its creation failed, so it is not ours
    /// (a namespace that already existed must not be removed by `down`).
    pub fn forget_last(&mut self) -> Result<(), LabError> {
        self.resources.pop();
        self.save()
    }

    pub fn set_complete(&mut self) -> Result<(), LabError> {
        self.complete = true;
        self.save()
    }

    /// Writes the record whole: to a temporary file, then renamed over the old one, so a crash
    /// leaves the old record or the new one, never half of one.
    fn save(&self) -> Result<(), LabError> {
        let tmp = self.path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| LabError::Failed(format!("cannot encode the state record: {e}")))?;
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|e| LabError::Failed(format!("cannot write {}: {e}", self.path.display())))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The processes in the record.
    pub fn processes(&self) -> impl Iterator<Item = (&str, u32, u64)> {
        self.resources.iter().filter_map(|r| match r {
            Resource::Process { what, pid, start } => Some((what.as_str(), *pid, *start)),
            _ => None,
        })
    }
}

/// A process's start time (clock ticks since boot, field 22 of /proc/PID/stat).
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&stat)
}

/// Field 22 of a /proc/PID/stat line; the command name (field 2) may hold spaces and ')'.
fn parse_start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process `pid` that started at `start` still runs (a zombie does not).
pub fn alive(pid: u32, start: u64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let zombie = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next())
        == Some("Z");
    !zombie && parse_start_time(&stat) == Some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_survives_odd_command_names() {
        let stat = "1234 (a b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 1000000 100 18446744073709551615";
        assert_eq!(parse_start_time(stat), Some(987654));
        assert_eq!(parse_start_time("garbage"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_wrong_start_is_not() {
        let pid = std::process::id();
        let start = start_time(pid).expect("own /proc entry");
        assert!(alive(pid, start));
        assert!(!alive(pid, start + 1));
    }

    #[test]
    fn the_record_round_trips_and_is_written_at_each_step() {
        let dir = std::env::temp_dir().join(format!("vswitch-lab-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut state = State::create(&dir, "t1", Path::new("/x.toml")).unwrap();
        state
            .record(Resource::Namespace {
                name: "t1-h1".into(),
            })
            .unwrap();
        let loaded = State::load(&dir).unwrap().unwrap();
        assert_eq!(loaded.resources, state.resources);
        assert!(!loaded.complete);
        assert!(State::create(&dir, "t1", Path::new("/x.toml")).is_err());
        state.forget_last().unwrap();
        assert!(State::load(&dir).unwrap().unwrap().resources.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(State::load(&dir).unwrap().is_none());
    }
}
