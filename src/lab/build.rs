//! Building a lab from its plan and taking it down: namespaces, veth pairs, vswitchd and QEMU
//! processes, host settings. Every resource enters the state record before it is created.

use std::fmt::Write as _;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::file::Topology;
use super::plan::{EdgeEnd, Plan, state_dir};
use super::run::{find_tool, need_tools, sh, sibling};
use super::state::{Resource, State, alive, start_time};
use super::{LabError, need_root};
use crate::control::client::Client;
use crate::control::{Request, ShowReply};

/// How long `up` waits for the switches to answer with every port, and links to come up.
const SWITCH_WAIT: Duration = Duration::from_secs(15);
/// How long `up` waits for a VM's `ready` line (guests boot slowly under TCG).
const VM_BOOT_WAIT: Duration = Duration::from_secs(180);
/// How long a process gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// The console line of the guest scripts/qemu-lab.sh builds once its address is set.
pub const GUEST_READY: &str = "VSWITCH-READY";

/// Whether the namespace `name` exists.
pub fn namespace_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// Polls `f` every 50 ms until it holds or `limit` passes.
fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The directory holding a VM's `vmlinux` and `initrd.img`: its `guest` key or the cache of
/// scripts/qemu-lab.sh.
pub fn guest_dir(vm: &super::file::Vm) -> PathBuf {
    if let Some(dir) = &vm.guest {
        return dir.clone();
    }
    let cache = std::env::var_os("VSWITCH_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/vswitch"));
    cache.join("guest")
}

/// The switch's reply to `show`, if it answers within a second.
pub fn show(ctl: &Path) -> Option<ShowReply> {
    let value = Client::connect(ctl, Duration::from_secs(1))
        .ok()?
        .call(&Request::Show {})
        .ok()?;
    serde_json::from_value(value).ok()
}

/// Whether interface `ifname` in namespace `ns` is up with a carrier.
pub fn link_up(ns: &str, ifname: &str) -> bool {
    sh(&["ip", "-n", ns, "-o", "link", "show", "dev", ifname])
        .is_ok_and(|out| out.contains("LOWER_UP") && out.contains(",UP"))
}

/// Builds the lab. On failure, takes down what it built and returns the error.
pub fn up(topo: &Topology, plan: &Plan, file: &Path) -> Result<(), LabError> {
    need_root("up")?;
    let mut tools = vec!["ip", "sysctl"];
    if !topo.vms.is_empty() {
        tools.push("qemu-system-x86_64");
    }
    need_tools(&tools)?;
    let vswitchd = sibling("vswitchd", "VSWITCHD")?;
    for vm in &topo.vms {
        let dir = guest_dir(vm);
        if !dir.join("vmlinux").exists() || !dir.join("initrd.img").exists() {
            return Err(LabError::Failed(format!(
                "vm {}: no guest in {} (vmlinux and initrd.img): build it with \
                 scripts/qemu-lab.sh prepare, or give the vm a `guest` directory",
                vm.name,
                dir.display()
            )));
        }
    }
    if State::load(&plan.dir)?.is_some() {
        return Err(LabError::Failed(format!(
            "lab {} is up, or an earlier up stopped half-way ({} exists): run \
             `vswitch-lab down {}` first",
            plan.lab,
            plan.dir.join("state.json").display(),
            file.display()
        )));
    }
    for ns in plan
        .switches
        .iter()
        .map(|s| &s.ns)
        .chain(plan.hosts.iter().map(|h| &h.ns))
    {
        if namespace_exists(ns) {
            return Err(LabError::Failed(format!(
                "namespace {ns} exists but is not in lab {}'s record: another lab or program \
                 uses the name (run this lab with --name OTHER)",
                plan.lab
            )));
        }
    }
    for s in &plan.switches {
        if show(&s.ctl).is_some() {
            return Err(LabError::Failed(format!(
                "a vswitchd named {} already runs ({}): run this lab with --name OTHER",
                s.name,
                s.ctl.display()
            )));
        }
    }
    std::fs::create_dir_all(&plan.dir)
        .map_err(|e| LabError::Failed(format!("cannot create {}: {e}", plan.dir.display())))?;
    let mut state = State::create(&plan.dir, &plan.lab, file)?;
    match build(topo, plan, &vswitchd, &mut state) {
        Ok(()) => state.set_complete(),
        Err(e) => {
            let problems = teardown(&state);
            let mut message = format!("{e}\nup failed; took down what it had built");
            for p in problems {
                let _ = write!(message, "\n  (and: {p})");
            }
            Err(LabError::Failed(message))
        }
    }
}

/// The steps of `up`, in order; each records what it creates first.
fn build(topo: &Topology, plan: &Plan, vswitchd: &Path, state: &mut State) -> Result<(), LabError> {
    make_namespaces(plan, state)?;
    for link in &plan.links {
        wire(plan, topo, link, state)?;
    }
    configure_hosts(topo, plan)?;
    start_switches(plan, vswitchd, state)?;
    for s in &plan.switches {
        wait_switch(plan, s, state)?;
    }
    start_vms(topo, plan, state)?;
    for vm in &topo.vms {
        wait_vm(plan, vm, state)?;
    }
    start_commands(topo, plan, state)?;
    wait_links(plan)
}

/// The name a process is recorded under: `status` finds it by the same name.
pub fn process_name(kind: &str, node: &str) -> String {
    format!("{kind} {node}")
}

fn make_namespaces(plan: &Plan, state: &mut State) -> Result<(), LabError> {
    for s in &plan.switches {
        add_namespace(state, &s.ns)?;
        // The switch's side of each veth must stay quiet: no router solicitations or DAD of
        // the switch namespace's own stack going out of its ports.
        sh(&[
            "ip",
            "netns",
            "exec",
            &s.ns,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ])?;
    }
    for h in &plan.hosts {
        add_namespace(state, &h.ns)?;
    }
    Ok(())
}

/// Host sysctls, then routes (their gateways need the addresses `wire` set).
fn configure_hosts(topo: &Topology, plan: &Plan) -> Result<(), LabError> {
    for h in &topo.hosts {
        let ns = &plan.host(&h.name).expect("planned host").ns;
        for (key, value) in &h.sysctls {
            let setting = format!("{key}={value}");
            sh(&["ip", "netns", "exec", ns, "sysctl", "-qw", &setting])?;
        }
        for route in &h.routes {
            let mut args = vec!["ip", "-n", ns.as_str(), "route", "add"];
            args.extend(route.iter().map(String::as_str));
            sh(&args)?;
        }
    }
    Ok(())
}

fn start_switches(plan: &Plan, vswitchd: &Path, state: &mut State) -> Result<(), LabError> {
    for s in &plan.switches {
        state.record(Resource::File {
            path: s.ctl.clone(),
        })?;
        for vm in plan.vms.iter().filter(|vm| {
            plan.links.iter().any(|l| {
                matches!(&l.edge, Some(EdgeEnd::Vm { node }) if *node == vm.node)
                    && l.ports.iter().any(|p| p.switch == s.node)
            })
        }) {
            state.record(Resource::File {
                path: vm.sockets.switch.clone(),
            })?;
            if let Some(path) = &vm.sockets.vm {
                state.record(Resource::File { path: path.clone() })?;
            }
        }
        let log = plan.dir.join(format!("{}.log", s.node));
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &s.ns])
            .arg(vswitchd)
            .args(&s.args)
            .env_remove("RUST_LOG");
        spawn(state, &process_name("vswitchd", &s.node), cmd, &log)?;
    }
    Ok(())
}

fn start_vms(topo: &Topology, plan: &Plan, state: &mut State) -> Result<(), LabError> {
    let qemu = find_tool("qemu-system-x86_64");
    for vm in &topo.vms {
        let vp = plan
            .vms
            .iter()
            .find(|v| v.node == vm.name)
            .expect("planned vm");
        let ip = plan
            .addresses(topo, &vm.name)
            .into_iter()
            .next()
            .unwrap_or_default();
        let mac = vm
            .mac
            .map(|m| m.to_string())
            .unwrap_or_else(|| vm_mac(&plan.lab, &vm.name));
        state.record(Resource::File {
            path: vp.console.clone(),
        })?;
        let dir = guest_dir(vm);
        let mut cmd = Command::new(qemu.as_deref().unwrap_or(Path::new("qemu-system-x86_64")));
        // TCG, as the QEMU tests: KVM is often missing or half-working in CI machines.
        cmd.args(["-accel", "tcg", "-cpu", "max", "-machine", "q35"])
            .args(["-m", &vm.memory.to_string()])
            .args(["-nodefaults", "-display", "none", "-no-reboot"])
            .arg("-kernel")
            .arg(dir.join("vmlinux"))
            .arg("-initrd")
            .arg(dir.join("initrd.img"))
            .arg("-append")
            .arg(format!(
                "console=ttyS0 panic=-1 quiet vs.name={} vs.ip={ip} {}",
                vm.name, vm.append
            ))
            .arg("-netdev")
            .arg(vp.sockets.netdev())
            .arg("-device")
            .arg(format!("virtio-net-pci,netdev=n0,mac={mac}"))
            .arg("-serial")
            .arg(format!("file:{}", vp.console.display()));
        let log = plan.dir.join(format!("{}.qemu.log", vm.name));
        spawn(state, &process_name("qemu", &vm.name), cmd, &log)?;
    }
    Ok(())
}

/// Waits for a VM's ready line on its console (if it has one), failing early if QEMU exits.
fn wait_vm(plan: &Plan, vm: &super::file::Vm, state: &State) -> Result<(), LabError> {
    let ready = match (&vm.ready, &vm.guest) {
        (Some(line), _) => line.clone(),
        (None, None) => GUEST_READY.to_owned(),
        (None, Some(_)) => return Ok(()),
    };
    let vp = plan
        .vms
        .iter()
        .find(|v| v.node == vm.name)
        .expect("planned vm");
    let what = process_name("qemu", &vm.name);
    let running = || {
        state
            .processes()
            .any(|(w, pid, start)| w == what && alive(pid, start))
    };
    let booted = wait_until(VM_BOOT_WAIT, || {
        std::fs::read_to_string(&vp.console).is_ok_and(|c| c.contains(&ready)) || !running()
    });
    if !running() {
        let log = plan.dir.join(format!("{}.qemu.log", vm.name));
        return Err(LabError::Failed(format!(
            "vm {}: qemu exited: {}",
            vm.name,
            std::fs::read_to_string(&log).unwrap_or_default().trim()
        )));
    }
    if !booted {
        return Err(LabError::Failed(format!(
            "vm {}: no {ready:?} on its console ({}) within {} s",
            vm.name,
            vp.console.display(),
            VM_BOOT_WAIT.as_secs()
        )));
    }
    Ok(())
}

/// The hosts' `start` commands, each recorded as `start HOST#N`.
fn start_commands(topo: &Topology, plan: &Plan, state: &mut State) -> Result<(), LabError> {
    for h in &topo.hosts {
        let ns = &plan.host(&h.name).expect("planned host").ns;
        for (i, command) in h.start.iter().enumerate() {
            let log = plan.dir.join(format!("{}.start{i}.log", h.name));
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", ns, "sh", "-c"])
                .arg(format!("exec {command}"));
            spawn(
                state,
                &process_name("start", &format!("{}#{i}", h.name)),
                cmd,
                &log,
            )?;
        }
    }
    Ok(())
}

/// Waits until both ends of every veth are up with a carrier.
fn wait_links(plan: &Plan) -> Result<(), LabError> {
    let mut ends: Vec<(&str, &str)> = Vec::new();
    for link in plan
        .links
        .iter()
        .filter(|l| !matches!(l.edge, Some(EdgeEnd::Vm { .. })))
    {
        for p in &link.ports {
            let ns = &plan.switch(&p.switch).expect("planned switch").ns;
            ends.push((ns, &p.port));
        }
        if let Some(EdgeEnd::Host { ns, ifname, .. }) = &link.edge {
            ends.push((ns, ifname));
        }
    }
    if !wait_until(SWITCH_WAIT, || ends.iter().all(|(ns, i)| link_up(ns, i))) {
        let down: Vec<String> = ends
            .iter()
            .filter(|(ns, i)| !link_up(ns, i))
            .map(|(ns, i)| format!("{i} in {ns}"))
            .collect();
        return Err(LabError::Failed(format!(
            "links not up within {} s: {}",
            SWITCH_WAIT.as_secs(),
            down.join(", ")
        )));
    }
    Ok(())
}

fn add_namespace(state: &mut State, ns: &str) -> Result<(), LabError> {
    state.record(Resource::Namespace {
        name: ns.to_owned(),
    })?;
    if let Err(e) = sh(&["ip", "netns", "add", ns]) {
        state.forget_last()?;
        return Err(e);
    }
    sh(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
    Ok(())
}

/// Creates one link's veth pair (host and switch-to-switch links; a VM's link is the socket
/// its switch serves) and sets the host end's MAC and addresses.
fn wire(
    plan: &Plan,
    topo: &Topology,
    link: &super::plan::LinkPlan,
    state: &mut State,
) -> Result<(), LabError> {
    let ns_of = |sw: &str| plan.switch(sw).expect("planned switch").ns.clone();
    let (a_ns, a_if, b_ns, b_if) = match (&link.edge, link.ports.as_slice()) {
        (Some(EdgeEnd::Vm { .. }), _) => return Ok(()),
        (Some(EdgeEnd::Host { ns, ifname, .. }), [p]) => {
            (ns_of(&p.switch), p.port.clone(), ns.clone(), ifname.clone())
        }
        (None, [a, b]) => (
            ns_of(&a.switch),
            a.port.clone(),
            ns_of(&b.switch),
            b.port.clone(),
        ),
        _ => {
            return Err(LabError::Failed(format!(
                "link {}: a link joins a switch and a host, VM or switch",
                link.name
            )));
        }
    };
    state.record(Resource::Veth {
        ns: a_ns.clone(),
        ifname: a_if.clone(),
    })?;
    let created = sh(&[
        "ip", "-n", &a_ns, "link", "add", &a_if, "type", "veth", "peer", "name", &b_if, "netns",
        &b_ns,
    ]);
    if let Err(e) = created {
        state.forget_last()?;
        return Err(e);
    }
    let source = topo.links.iter().find(|l| l.name == link.name);
    if let Some(mac) = source.and_then(|l| l.mac) {
        sh(&[
            "ip",
            "-n",
            &b_ns,
            "link",
            "set",
            "dev",
            &b_if,
            "address",
            &mac.to_string(),
        ])?;
    }
    for ip in &link.ips {
        let mut args = vec!["ip", "-n", &b_ns, "addr", "add", ip, "dev", &b_if];
        if ip.contains(':') {
            // No duplicate address detection: the address is usable at once.
            args.push("nodad");
        }
        sh(&args)?;
    }
    sh(&["ip", "-n", &a_ns, "link", "set", &a_if, "up"])?;
    sh(&["ip", "-n", &b_ns, "link", "set", &b_if, "up"])?;
    Ok(())
}

/// Starts `cmd` in a process group of its own (a Ctrl-C for vswitch-lab does not reach it),
/// its output in `log`, and records it.
fn spawn(state: &mut State, what: &str, mut cmd: Command, log: &Path) -> Result<(), LabError> {
    let log_file = File::create(log)
        .map_err(|e| LabError::Failed(format!("cannot create {}: {e}", log.display())))?;
    let err_file = log_file
        .try_clone()
        .map_err(|e| LabError::Failed(format!("{}: {e}", log.display())))?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(err_file)
        .process_group(0)
        .spawn()
        .map_err(|e| LabError::Failed(format!("cannot start {what}: {e}")))?;
    let pid = child.id();
    // The child cannot have been reaped (we are its parent), so its /proc entry is there;
    // without its start time it could not be stopped safely later, so it is not kept.
    let Some(start) = start_time(pid) else {
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
        return Err(LabError::Failed(format!(
            "{what}: cannot read /proc/{pid}/stat"
        )));
    };
    state.record(Resource::Process {
        what: what.to_owned(),
        pid,
        start,
    })
}

/// Waits until switch `s` answers on its control socket with every planned port; fails
/// early, with the end of its log, if it exits.
fn wait_switch(plan: &Plan, s: &super::plan::SwitchPlan, state: &State) -> Result<(), LabError> {
    let log = plan.dir.join(format!("{}.log", s.node));
    let what = process_name("vswitchd", &s.node);
    let running = || {
        state
            .processes()
            .any(|(w, pid, start)| w == what && alive(pid, start))
    };
    let ready = wait_until(SWITCH_WAIT, || {
        !running()
            || show(&s.ctl).is_some_and(|reply| {
                s.ports
                    .iter()
                    .all(|p| reply.ports.iter().any(|info| &info.name == p))
            })
    });
    let exited = !running();
    if ready && !exited {
        return Ok(());
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(5).collect();
    let what = if exited {
        "exited".to_owned()
    } else {
        format!(
            "did not answer with all its ports within {} s ({})",
            SWITCH_WAIT.as_secs(),
            s.ctl.display()
        )
    };
    Err(LabError::Failed(format!(
        "switch {} {what}; its log says:\n  {}",
        s.node,
        tail.into_iter().rev().collect::<Vec<_>>().join("\n  ")
    )))
}

/// A VM's MAC when the file gives none: locally administered, the same for the same lab and
/// VM name.
fn vm_mac(lab: &str, vm: &str) -> String {
    let h = format!("{lab}/{vm}")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    let b = h.to_be_bytes();
    format!("52:54:00:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
}

/// Takes down the lab recorded in `lab`'s state directory; prints what it did. Safe to run
/// twice, and after a crashed `up`.
pub fn down(lab: &str) -> Result<(), LabError> {
    need_root("down")?;
    let dir = state_dir(lab);
    let Some(state) = State::load(&dir)? else {
        println!(
            "lab {lab}: nothing recorded ({} does not exist); nothing to do",
            dir.display()
        );
        return Ok(());
    };
    let counts = (
        state.processes().count(),
        state
            .resources
            .iter()
            .filter(|r| matches!(r, Resource::Namespace { .. }))
            .count(),
    );
    let problems = teardown(&state);
    if problems.is_empty() {
        println!(
            "lab {lab}: down (processes stopped: {}, namespaces removed: {})",
            counts.0, counts.1
        );
        Ok(())
    } else {
        Err(LabError::Failed(format!(
            "lab {lab}: down left things behind:\n  {}",
            problems.join("\n  ")
        )))
    }
}

/// Removes every recorded resource, newest first: processes (SIGTERM, then SIGKILL), veths,
/// namespaces, files; then the state directory. Returns what could not be removed.
fn teardown(state: &State) -> Vec<String> {
    let mut problems = Vec::new();
    let procs: Vec<(&str, u32, u64)> = state.processes().collect();
    for &(what, pid, start) in procs.iter().rev() {
        if alive(pid, start) {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
        let stopped = wait_until(STOP_GRACE, || !alive(pid, start));
        if !stopped {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            if !wait_until(Duration::from_secs(2), || !alive(pid, start)) {
                problems.push(format!("{what} (pid {pid}) does not stop"));
            }
        }
    }
    for r in state.resources.iter().rev() {
        if let Resource::Veth { ns, ifname } = r
            && namespace_exists(ns)
            && sh(&["ip", "-n", ns, "link", "show", "dev", ifname]).is_ok()
            && let Err(e) = sh(&["ip", "-n", ns, "link", "del", "dev", ifname])
        {
            problems.push(e.to_string());
        }
    }
    for r in state.resources.iter().rev() {
        if let Resource::Namespace { name } = r
            && namespace_exists(name)
            && let Err(e) = sh(&["ip", "netns", "del", name])
        {
            problems.push(e.to_string());
        }
    }
    for r in &state.resources {
        if let Resource::File { path } = r {
            // A control socket someone else's switch now listens on is not ours any more.
            let ours = path.extension().is_none_or(|e| e != "ctl") || show(path).is_none();
            if ours
                && let Err(e) = std::fs::remove_file(path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                problems.push(format!("cannot remove {}: {e}", path.display()));
            }
        }
    }
    if problems.is_empty()
        && let Some(dir) = state.path().parent()
        && let Err(e) = std::fs::remove_dir_all(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        problems.push(format!("cannot remove {}: {e}", dir.display()));
    }
    problems
}
