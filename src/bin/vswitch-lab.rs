//! `vswitch-lab`: build, check, change and remove a lab described by one TOML topology file.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, ExitCode};

use clap::{Parser, Subcommand};

use vswitch::lab::file::{Topology, check_lab_name};
use vswitch::lab::plan::{Plan, state_dir};
use vswitch::lab::run::sibling;
use vswitch::lab::state::State;
use vswitch::lab::{LabError, build, check, control, need_root, status};

const AFTER_HELP: &str = "\
Examples (docs/labs/ has them; docs/labs.md explains every key):
  sudo vswitch-lab up docs/labs/wan.toml          build it; prints what runs
  sudo vswitch-lab check docs/labs/wan.toml       run its [check] pings: pass/fail table
  sudo vswitch-lab exec docs/labs/wan.toml h1 -- ping 10.0.2.1
  sudo vswitch-lab set docs/labs/chain.toml s1-s2 link=down
  sudo vswitch-lab set docs/labs/wan.toml wan delay=100 loss=0
  sudo vswitch-lab capture docs/labs/wan.toml h1-s1 -w - | wireshark -k -i -
  sudo vswitch-lab down docs/labs/wan.toml        remove everything up created, and only that
  vswitch-lab up --dry-run docs/labs/wan.toml     check the file and show the plan (no root)

Names: every namespace is LAB-NODE (LAB is the file's `name`, or --name), every switch is a
vswitchd named LAB-NODE (`vswitchctl -n LAB-NODE show`), a switch's port for a link is named
after the link. What up creates is recorded in /run/vswitch-lab/LAB/state.json before it is
created, so `down` works after a crashed up and is safe to run twice.

Root: up, down, status, check, exec, set and capture need root (network namespaces);
up --dry-run does not.

Exit status: 0 ok; 1 a check failed, a lab is unhealthy or an operation failed; 2 a bad
file (its line and key are named) or bad usage.";

#[derive(Parser, Debug)]
#[command(
    name = "vswitch-lab",
    version,
    about = "Build labs of vswitchd switches, namespace hosts and QEMU VMs from one TOML file",
    long_about = "Build labs of vswitchd switches, namespace hosts and QEMU VMs from one TOML \
                  topology file: links with VLANs, delay, loss, rate and link state, the \
                  reachability the lab should have, and one command each to bring it up, check \
                  it, change it at runtime, capture from it and take it down.",
    after_long_help = AFTER_HELP,
    disable_help_subcommand = true
)]
struct Args {
    /// The lab's name, instead of the file's `name` (1-10 of a-z0-9): run one file twice.
    #[arg(short = 'n', long, global = true, value_name = "LAB", value_parser = parse_lab)]
    name: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Build the lab: namespaces, veth pairs, a vswitchd per switch, VMs, host settings; wait
    /// until every switch answers with all its ports and every link is up; print the status.
    Up {
        file: PathBuf,
        /// Check the file and print what up would create, without creating anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Stop the processes and remove the namespaces that up recorded (nothing else). With
    /// --name, no file is needed.
    Down { file: Option<PathBuf> },
    /// Nodes and links and their state; exit 1 unless the lab is up and healthy.
    Status { file: PathBuf },
    /// Run the file's [check] pings; print a pass/fail table; exit 1 if any fails.
    Check { file: PathBuf },
    /// Run a command in a host's (or a switch's) namespace: exec FILE NODE -- CMD ARGS...
    Exec {
        file: PathBuf,
        node: String,
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Change a link at runtime: delay, jitter, loss, rate, duplicate, corrupt, reorder (both
    /// directions), link=up|down, vlan/trunk/native, impair=off, or any port key (tx-delay=...)
    /// as `vswitchctl port set` takes it, on each switch port of the link.
    Set {
        file: PathBuf,
        link: String,
        #[arg(required = true, value_name = "KEY=VALUE")]
        settings: Vec<String>,
    },
    /// Capture a link's frames as pcapng from its switch port (the first switch's, or --at's):
    /// `-w - | wireshark -k -i -`.
    Capture {
        file: PathBuf,
        link: String,
        /// Where to write: a file, or - for standard output.
        #[arg(short = 'w', value_name = "FILE|-", default_value = "-")]
        write: String,
        /// Stop after COUNT frames.
        #[arg(short = 'c', long, value_name = "COUNT")]
        count: Option<u64>,
        /// The switch whose port to capture on, for a link between two switches.
        #[arg(long, value_name = "SWITCH")]
        at: Option<String>,
    },
}

fn parse_lab(name: &str) -> Result<String, String> {
    check_lab_name(name).map(|()| name.to_owned())
}

/// The topology and its plan under the lab name in force.
fn load(file: &Path, name: Option<&str>) -> Result<(Topology, Plan), LabError> {
    let topo = Topology::read(file)?;
    let lab = name.unwrap_or(&topo.name).to_owned();
    let plan = Plan::new(&topo, &lab);
    Ok((topo, plan))
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vswitch-lab: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(args: Args) -> Result<ExitCode, LabError> {
    let name = args.name.as_deref();
    match args.command {
        Command::Up { file, dry_run } => {
            let (topo, plan) = load(&file, name)?;
            if dry_run {
                print!("{}", plan.describe());
                return Ok(ExitCode::SUCCESS);
            }
            let file = std::fs::canonicalize(&file).unwrap_or(file);
            build::up(&topo, &plan, &file)?;
            let (text, _) = status::report(&topo, &plan)?;
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Down { file } => {
            let lab = match (name, file) {
                (Some(lab), _) => lab.to_owned(),
                (None, Some(file)) => Topology::read(&file)?.name,
                (None, None) => {
                    return Err(LabError::Usage(
                        "down needs the topology FILE or --name LAB".into(),
                    ));
                }
            };
            build::down(&lab)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { file } => {
            need_root("status")?;
            let (topo, plan) = load(&file, name)?;
            let (text, healthy) = status::report(&topo, &plan)?;
            print!("{text}");
            Ok(if healthy {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Check { file } => {
            need_root("check")?;
            let (topo, plan) = load(&file, name)?;
            if topo.checks.is_empty() {
                println!("no [check] entries in {}", file.display());
                return Ok(ExitCode::SUCCESS);
            }
            need_up(&plan, &file)?;
            let (text, passed) = check::run_checks(&topo, &plan)?;
            print!("{text}");
            Ok(if passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Exec {
            file,
            node,
            command,
        } => {
            need_root("exec")?;
            let (_, plan) = load(&file, name)?;
            let ns = plan.namespace_of(&node).ok_or_else(|| {
                LabError::Usage(format!(
                    "no host or switch named {node:?} (a VM has no namespace: use its console, \
                     {})",
                    plan.dir.join(format!("{node}.console")).display()
                ))
            })?;
            need_up(&plan, &file)?;
            let e = Process::new("ip")
                .args(["netns", "exec", ns])
                .args(&command)
                .exec();
            Err(LabError::Failed(format!("cannot run ip netns exec: {e}")))
        }
        Command::Set {
            file,
            link,
            settings,
        } => {
            need_root("set")?;
            let (_, plan) = load(&file, name)?;
            need_up(&plan, &file)?;
            for line in control::set(&plan, &link, &settings)? {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Capture {
            file,
            link,
            write,
            count,
            at,
        } => {
            need_root("capture")?;
            let (_, plan) = load(&file, name)?;
            let end = control::capture_port(&plan, &link, at.as_deref())?;
            need_up(&plan, &file)?;
            let sw = plan.switch(&end.switch).expect("planned switch");
            let ctl = sibling("vswitchctl", "VSWITCHCTL")?;
            let mut cmd = Process::new(ctl);
            cmd.arg("-s")
                .arg(&sw.ctl)
                .args(["capture", &end.port, "-w", &write]);
            if let Some(n) = count {
                cmd.args(["-c", &n.to_string()]);
            }
            let e = cmd.exec();
            Err(LabError::Failed(format!("cannot run vswitchctl: {e}")))
        }
    }
}

/// Fails unless the lab has a state record.
fn need_up(plan: &Plan, file: &Path) -> Result<(), LabError> {
    match State::load(&state_dir(&plan.lab))? {
        Some(_) => Ok(()),
        None => Err(LabError::Failed(format!(
            "lab {} is not up (vswitch-lab up {})",
            plan.lab,
            file.display()
        ))),
    }
}
