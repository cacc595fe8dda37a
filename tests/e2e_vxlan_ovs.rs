//! End to end: VXLAN between vswitchd and Open vSwitch (issue 15). Two "machines" — switch
//! namespaces joined by an underlay (veths on a kernel bridge) — one running vswitchd, the other
//! an ovsdb-server and ovs-vswitchd that this test starts in its namespace with the userspace
//! datapath and OVS's native tunneling. Needs root (see `common::root_or_skip`) and Open vSwitch
//! (Debian's `openvswitch-switch`; `scripts/deps.sh install`): skipped without it, unless
//! `VSWITCH_E2E=require`.
//!
//! Nothing of the system's OVS is used: the database, sockets and logs live in the test's
//! temporary directory (the `OVS_*DIR` variables point there), both daemons run inside the
//! test's namespace, and a guard stops them by pid, also when the test fails.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{Lab, root_or_skip, sh, stop_child, transfer_intact, wait_until};

/// Inner frames fit a 1500-byte underlay with VXLAN over IPv4 (50 bytes) only this big.
const HOST_MTU: u32 = 1450;

/// The VNI both ends use (OVS's `options:key`).
const VNI: &str = "100";

/// The programs of Open vSwitch the test runs.
const OVS_PROGRAMS: [&str; 5] = [
    "ovsdb-tool",
    "ovsdb-server",
    "ovs-vswitchd",
    "ovs-vsctl",
    "ovs-appctl",
];

/// Whether `program` is an executable file in a directory of `PATH`.
fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(program))
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    })
}

/// The OVS database schema that `ovsdb-tool create` needs.
fn ovs_schema() -> PathBuf {
    let dir = std::env::var_os("OVS_PKGDATADIR").unwrap_or_else(|| "/usr/share/openvswitch".into());
    Path::new(&dir).join("vswitch.ovsschema")
}

/// Whether Open vSwitch is installed; if not, the test is skipped with a message, or fails
/// under `VSWITCH_E2E=require` (CI installs it with `scripts/deps.sh install`).
fn ovs_or_skip(test: &str) -> bool {
    let missing: Vec<&str> = OVS_PROGRAMS.into_iter().filter(|p| !on_path(p)).collect();
    let schema = ovs_schema();
    let why = if !missing.is_empty() {
        format!("Open vSwitch is not installed (no {})", missing.join(", "))
    } else if !schema.is_file() {
        format!(
            "the OVS schema {} is missing (set OVS_PKGDATADIR)",
            schema.display()
        )
    } else {
        return true;
    };
    if std::env::var("VSWITCH_E2E").as_deref() == Ok("require") {
        panic!("{test}: {why} (VSWITCH_E2E=require; install it: sudo scripts/deps.sh install)");
    }
    eprintln!(
        "{test}: skipped, {why}; install the package openvswitch-switch (sudo scripts/deps.sh install)"
    );
    false
}

/// An Open vSwitch of the test's own: ovsdb-server and ovs-vswitchd running in namespace `ns`,
/// with every file they read or write in `dir`. `Drop` stops both by pid.
struct Ovs {
    ns: String,
    dir: PathBuf,
    db: Option<Child>,
    switch: Option<Child>,
}

impl Ovs {
    /// Creates a database and starts both daemons, waiting (bounded) until they serve.
    fn start(ns: &str, dir: PathBuf) -> Ovs {
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        // The guard exists before the first daemon does: a failure from here on stops what
        // was started.
        let mut ovs = Ovs {
            ns: ns.to_owned(),
            dir,
            db: None,
            switch: None,
        };
        let db = ovs.path("conf.db");
        let schema = ovs_schema();
        ovs.run(&["ovsdb-tool", "create", &db, schema.to_str().unwrap()]);
        let remote = format!("--remote=punix:{}", ovs.path("db.sock"));
        let unixctl = format!("--unixctl={}", ovs.path("ovsdb-server.ctl"));
        let log = format!("--log-file={}", ovs.path("ovsdb-server.log"));
        ovs.db = Some(ovs.spawn(
            "ovsdb-server",
            &[&db, &remote, &unixctl, &log, "--no-chdir"],
        ));
        let sock = ovs.dir.join("db.sock");
        let up = wait_until(Duration::from_secs(10), || {
            ovs.assert_running();
            sock.exists()
        });
        assert!(up, "ovsdb-server did not serve within 10 s");
        ovs.vsctl(&["--no-wait", "init"]);
        let db = format!("unix:{}", ovs.path("db.sock"));
        let unixctl = format!("--unixctl={}", ovs.path("ovs-vswitchd.ctl"));
        let log = format!("--log-file={}", ovs.path("ovs-vswitchd.log"));
        ovs.switch = Some(ovs.spawn("ovs-vswitchd", &[&db, &unixctl, &log, "--no-chdir"]));
        let ctl = ovs.dir.join("ovs-vswitchd.ctl");
        let up = wait_until(Duration::from_secs(10), || {
            ovs.assert_running();
            ctl.exists()
        });
        assert!(up, "ovs-vswitchd did not serve within 10 s");
        ovs
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_owned()
    }

    /// A command whose OVS directories are all the test's (so that nothing defaults to the
    /// system's /var/run/openvswitch or /etc/openvswitch).
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        for var in ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"] {
            cmd.env(var, &self.dir);
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Starts a daemon inside the namespace (`ip netns exec` execs it: the child is the daemon).
    fn spawn(&self, daemon: &str, args: &[&str]) -> Child {
        let stderr = File::create(self.dir.join(format!("{daemon}.stderr"))).unwrap();
        self.command("ip")
            .args(["netns", "exec", &self.ns, daemon])
            .args(args)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("start {daemon}: {e}"))
    }

    /// Panics if a daemon has exited (the guard then prints the logs).
    fn assert_running(&mut self) {
        let exited = [&mut self.db, &mut self.switch]
            .into_iter()
            .flatten()
            .find_map(|child| child.try_wait().ok().flatten());
        if let Some(status) = exited {
            panic!("an OVS daemon exited ({status}); its logs follow");
        }
    }

    /// Runs an OVS tool under `timeout`.
    fn output(&self, args: &[&str]) -> Output {
        self.command("timeout")
            .arg("30")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
    }

    /// Runs an OVS tool that must succeed; returns its stdout.
    fn run(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "{args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ovs-vsctl` against this database; it waits (at most 20 s) until ovs-vswitchd has
    /// applied a change.
    fn vsctl(&self, args: &[&str]) -> String {
        let db = format!("--db=unix:{}", self.path("db.sock"));
        let mut all = vec!["ovs-vsctl", &db, "--timeout=20"];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// `ovs-appctl` to this ovs-vswitchd, which may fail.
    fn appctl_output(&self, args: &[&str]) -> Output {
        let ctl = self.path("ovs-vswitchd.ctl");
        let mut all = vec!["ovs-appctl", "-t", &ctl, "--timeout=20"];
        all.extend_from_slice(args);
        self.output(&all)
    }

    /// `ovs-appctl` to this ovs-vswitchd, which must succeed; returns its stdout.
    fn appctl(&self, args: &[&str]) -> String {
        let ctl = self.path("ovs-vswitchd.ctl");
        let mut all = vec!["ovs-appctl", "-t", &ctl, "--timeout=20"];
        all.extend_from_slice(args);
        self.run(&all)
    }

    fn logs(&self) -> String {
        ["ovsdb-server", "ovs-vswitchd"]
            .iter()
            .map(|d| {
                let read =
                    |f: String| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
                format!(
                    "--- {d}.log:\n{}--- {d} stderr:\n{}",
                    read(format!("{d}.log")),
                    read(format!("{d}.stderr"))
                )
            })
            .collect()
    }
}

/// On a failure the logs of both daemons are printed (the labs print vswitchd's).
impl Drop for Ovs {
    fn drop(&mut self) {
        // ovs-vswitchd first: it deletes its ports (the TAPs of the netdev datapath) on SIGTERM.
        for child in [self.switch.take(), self.db.take()].iter_mut().flatten() {
            stop_child(child, Duration::from_secs(10));
        }
        if std::thread::panicking() {
            eprintln!(
                "Open vSwitch logs ({}):\n{}",
                self.dir.display(),
                self.logs()
            );
        }
    }
}

#[test]
fn vswitchd_and_open_vswitch_interoperate_over_vxlan() {
    let test = "vxlan_ovs";
    if !root_or_skip(test) || !ovs_or_skip(test) {
        return;
    }
    // Site 1 runs vswitchd, site 2 Open vSwitch; each switch namespace has an underlay veth
    // `ul`, and the other ends meet on a kernel bridge (site 1's lab owns that wire).
    let mut site1 = Lab::new();
    let mut site2 = Lab::new();
    let s = site1.subnet();
    let (addr1, addr2) = (format!("10.{s}.250.1"), format!("10.{s}.250.2"));
    let mut ends = Vec::new();
    for (k, lab) in [&site1, &site2].into_iter().enumerate() {
        let peer = format!("{}u{k}", lab.prefix);
        sh(&[
            "ip", "-n", &lab.sw_ns, "link", "add", "ul", "type", "veth", "peer", "name", &peer,
        ]);
        sh(&["ip", "-n", &lab.sw_ns, "link", "set", "ul", "up"]);
        ends.push((lab.sw_ns.clone(), peer));
    }
    let ends: Vec<(&str, &str)> = ends.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    site1.wire("ux", &ends);
    // A veth hands the other namespace packets as their sender made them. OVS reads its `ul`
    // port with AF_PACKET and takes the bytes as they come: a UDP GSO super-datagram is dropped
    // ("Dropped packet: Too big. GRO/TSO enabled?"), and so is a datagram whose UDP checksum
    // is still to be done. On a NIC neither happens; over a veth, vswitchd's `gso=off` sends
    // datagram by datagram, with a zero UDP checksum (IPv4), which OVS takes as it is.
    // Site 1: vswitchd with one TAP host and a VXLAN port to site 2, the underlay address on
    // the kernel's veth.
    let ns1 = site1.sw_ns.clone();
    sh(&[
        "ip",
        "-n",
        &ns1,
        "addr",
        "add",
        &format!("{addr1}/24"),
        "dev",
        "ul",
    ]);
    let args = vec![
        "--port".to_owned(),
        site1.tap(1),
        "--port".to_owned(),
        format!("vxlan:vx0,local={addr1},remote={addr2},vni={VNI},gso=off"),
    ];
    site1.launch(args, &[1]);
    let h1 = site1.add_host_at(1, HOST_MTU, Some(&format!("10.{s}.0.11")));

    // Site 2: Open vSwitch, userspace datapath, native tunneling as OVS's
    // Documentation/howto/userspace-tunneling.rst sets it up: the underlay veth is a port of
    // bridge br-phy and the underlay address is on br-phy's own (internal) port, so that the
    // kernel's routes and ARP there tell OVS how to reach the remote VTEP; the tunnel port is
    // on bridge br-int with the host. Declared after the labs, the guard stops OVS before their
    // namespaces and directories go.
    let ns2 = site2.sw_ns.clone();
    let ovs = Ovs::start(&ns2, site2.dir.join("ovs"));
    let add = "add-br br-phy -- set Bridge br-phy datapath_type=netdev fail-mode=standalone \
               -- add-port br-phy ul";
    ovs.vsctl(&add.split_whitespace().collect::<Vec<_>>());
    sh(&[
        "ip",
        "-n",
        &ns2,
        "addr",
        "add",
        &format!("{addr2}/24"),
        "dev",
        "br-phy",
    ]);
    sh(&["ip", "-n", &ns2, "link", "set", "br-phy", "up"]);
    // The host is a TAP of OVS's (`type=tap`, as a VM's would be), moved into the host's
    // namespace. A TAP without a vnet header gets frames with their checksums done and TSO
    // segmented by the kernel, so no offload needs turning off on this side (a veth into a
    // netdev bridge would: OVS's userspace datapath does not finish partial checksums of
    // frames it reads from a veth, so its host would need `ethtool -K IF tx off`).
    let tap2 = site2.tap(1);
    let add = [
        "add-br br-int -- set Bridge br-int datapath_type=netdev fail-mode=standalone",
        "-- add-port br-int vxlan0 -- set Interface vxlan0 type=vxlan",
        &format!("options:remote_ip={addr1} options:key={VNI}"),
        &format!("-- add-port br-int {tap2} -- set Interface {tap2} type=tap"),
    ]
    .join(" ");
    ovs.vsctl(&add.split_whitespace().collect::<Vec<_>>());
    let created = wait_until(Duration::from_secs(10), || site2.link_exists(&ns2, &tap2));
    assert!(created, "OVS did not create {tap2}");
    let h2 = site2.add_host_at(1, HOST_MTU, Some(&format!("10.{s}.0.21")));
    // OVS caches the kernel's routes; the connected route of br-phy is the tunnel's route.
    // Should the cache not have it yet, add it as the howto says.
    let routed = wait_until(Duration::from_secs(5), || {
        let out = ovs.appctl_output(&["ovs/route/lookup", &addr1]);
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("br-phy")
    });
    if !routed {
        ovs.appctl(&["ovs/route/add", &format!("{addr1}/32"), "br-phy"]);
    }

    // Pings both ways (the first waits for OVS to resolve site 1's MAC on the underlay), then
    // a checksummed TCP transfer each way: TSO super-frames of h1 are cut by vswitchd before
    // encapsulation, h2's are cut by the kernel before OVS reads them.
    assert!(h1.ping_eventually(&h2.ip), "vswitchd -> OVS ping");
    assert!(h2.ping(&h1.ip, 3), "OVS -> vswitchd ping");
    transfer_intact(&h1, &h2, 4 << 20, 1, "vswitchd -> Open vSwitch");
    transfer_intact(&h2, &h1, 4 << 20, 2, "Open vSwitch -> vswitchd");

    // Each side learned the other's host behind its VXLAN port: vswitchd with OVS's address
    // as the remote, OVS on its vxlan0 port.
    let row = site1.fdb_row(&h2.mac);
    assert_eq!(row["port"], "vx0", "{row}");
    assert_eq!(row["remote"], addr2.as_str(), "{row}");
    let ofport = ovs.vsctl(&["get", "Interface", "vxlan0", "ofport"]);
    let ovs_fdb = ovs.appctl(&["fdb/show", "br-int"]);
    let learned = ovs_fdb.lines().any(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        cols.len() >= 3 && cols[0] == ofport.trim() && cols[2] == h1.mac
    });
    assert!(
        learned,
        "OVS did not learn {} on vxlan0 (ofport {ofport}):\n{ovs_fdb}",
        h1.mac
    );
    // Every packet OVS sent was good VXLAN for the port, and nothing was too big.
    let stats = site1.ctl_json(&["port", "stats", "vx0"]);
    assert_eq!(stats[0]["drops"]["tunnel"], 0, "{stats}");
    assert_eq!(stats[0]["drops"]["too_big"], 0, "{stats}");
}
