//! End to end: VXLAN between "machines" — switch namespaces joined by an underlay (veths on a
//! kernel bridge) — with vswitchd on both ends, with the Linux kernel's VXLAN device on the
//! other end, flooding to several remotes, and packets that are not for the port. Needs root
//! (see `common::root_or_skip`).

mod common;

use common::{Host, Lab, root_or_skip, sh, transfer_intact};

/// Inner frames fit a 1500-byte underlay with VXLAN over IPv4 (50 bytes) only this big.
const HOST_MTU: u32 = 1450;

/// Sites: one lab (its switch namespace, with an underlay address) per "machine", all on one
/// underlay segment, and the host addresses of the first lab's subnet.
struct Sites {
    labs: Vec<Lab>,
    /// The underlay prefix: `10.S.250.` + the site's number (1-based).
    underlay: String,
    /// The overlay prefix: hosts are `10.S.0.N`.
    overlay: String,
}

impl Sites {
    /// `n` sites with an IPv4 underlay up and no switch started yet.
    fn new(n: usize) -> Sites {
        Sites::with_underlay(n, false)
    }

    /// `n` sites with an IPv4 or IPv6 underlay.
    fn with_underlay(n: usize, v6: bool) -> Sites {
        let mut labs: Vec<Lab> = (0..n).map(|_| Lab::new()).collect();
        let s = labs[0].subnet();
        let underlay = if v6 {
            format!("fd00:{s}::")
        } else {
            format!("10.{s}.250.")
        };
        let mut ends = Vec::new();
        for (k, lab) in labs.iter().enumerate() {
            let peer = format!("{}u{k}", lab.prefix);
            sh(&[
                "ip", "-n", &lab.sw_ns, "link", "add", "ul", "type", "veth", "peer", "name", &peer,
            ]);
            if v6 {
                let on = "net.ipv6.conf.ul.disable_ipv6=0";
                sh(&["ip", "netns", "exec", &lab.sw_ns, "sysctl", "-qw", on]);
                let addr = format!("{underlay}{}/64", k + 1);
                sh(&[
                    "ip", "-n", &lab.sw_ns, "addr", "add", &addr, "dev", "ul", "nodad",
                ]);
            } else {
                let addr = format!("{underlay}{}/24", k + 1);
                sh(&["ip", "-n", &lab.sw_ns, "addr", "add", &addr, "dev", "ul"]);
            }
            sh(&["ip", "-n", &lab.sw_ns, "link", "set", "ul", "up"]);
            ends.push((lab.sw_ns.clone(), peer));
        }
        let ends: Vec<(&str, &str)> = ends.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        labs[0].wire("ux", &ends);
        Sites {
            labs,
            underlay,
            overlay: format!("10.{s}.0."),
        }
    }

    fn addr(&self, site: usize) -> String {
        format!("{}{}", self.underlay, site + 1)
    }

    /// Starts site `k`'s switch with `taps` TAPs and a VXLAN port to `remotes` (site numbers).
    fn start(&mut self, k: usize, taps: usize, remotes: &[usize], extra: &str) {
        let remotes: Vec<String> = remotes.iter().map(|&r| self.addr(r)).collect();
        let vxlan = format!(
            "vxlan:vx0,local={},remote={},vni=100{extra}",
            self.addr(k),
            remotes.join(",")
        );
        let lab = &mut self.labs[k];
        let mut args: Vec<String> = (1..=taps)
            .flat_map(|i| ["--port".into(), lab.tap(i)])
            .collect();
        args.extend(["--port".to_owned(), vxlan]);
        let numbers: Vec<usize> = (1..=taps).collect();
        lab.launch(args, &numbers);
    }

    /// Two sites, each a switch with one host and a VXLAN port to the other; with the hosts.
    fn pair() -> (Sites, Host, Host) {
        let mut sites = Sites::new(2);
        sites.start(0, 1, &[1], "");
        sites.start(1, 1, &[0], "");
        let h1 = sites.host(0, 1);
        let h2 = sites.host(1, 1);
        (sites, h1, h2)
    }

    /// Host `i` of site `k`, at `10.S.0.(10k + i)`.
    fn host(&mut self, k: usize, i: usize) -> Host {
        let ip = format!("{}{}", self.overlay, 10 * k + i);
        self.labs[k].add_host_at(i, HOST_MTU, Some(&ip))
    }
}

#[test]
fn two_vswitchds_over_vxlan_ping_transfer_and_learn_remotes() {
    if !root_or_skip("vxlan_pair") {
        return;
    }
    let (sites, h1, h2) = Sites::pair();
    assert!(h1.ping_eventually(&h2.ip), "{}", sites.labs[0].log());
    assert!(h2.ping(&h1.ip, 3));
    // TCP both ways: the hosts' TSO super-frames are cut to their MSS, then encapsulated.
    transfer_intact(&h1, &h2, 4 << 20, 1, "site 1 -> site 2");
    transfer_intact(&h2, &h1, 4 << 20, 2, "site 2 -> site 1");

    // Each side learned the other's host behind the other's VTEP.
    let row = sites.labs[0].fdb_row(&h2.mac);
    assert_eq!(row["port"], "vx0");
    assert_eq!(row["remote"], sites.addr(1).as_str(), "{row}");
    let text = sites.labs[0].ctl_ok(&["fdb", "show"]);
    assert!(text.contains(&format!("via {}", sites.addr(1))), "{text}");
    let stats = sites.labs[0].ctl_json(&["port", "stats", "vx0"]);
    assert_eq!(stats[0]["drops"]["too_big"], 0, "{stats}");
}

#[test]
fn an_ipv6_underlay_carries_frames_that_fit_its_larger_overhead() {
    if !root_or_skip("vxlan_ipv6") {
        return;
    }
    let mut sites = Sites::with_underlay(2, true);
    sites.start(0, 1, &[1], "");
    sites.start(1, 1, &[0], "");
    // 70 bytes of encapsulation over IPv6: hosts get 1430.
    let ip = |k: usize| format!("{}{}", sites.overlay, 10 * k + 1);
    let (a, b) = (ip(0), ip(1));
    let h1 = sites.labs[0].add_host_at(1, 1430, Some(&a));
    let h2 = sites.labs[1].add_host_at(1, 1430, Some(&b));
    assert!(h1.ping_eventually(&h2.ip), "{}", sites.labs[0].log());
    transfer_intact(&h1, &h2, 2 << 20, 5, "over IPv6");
    // A host that ignores the MTU is told off in the counters and the log, not fragmented.
    sh(&["ip", "-n", &h1.ns, "link", "set", &h1.ifname, "mtu", "1500"]);
    let big = h1.run(&[
        "ping", "-c", "1", "-W", "1", "-M", "do", "-s", "1450", &h2.ip,
    ]);
    assert!(
        !big.status.success(),
        "a frame too big for the underlay crossed"
    );
    let stats = sites.labs[0].ctl_json(&["port", "stats", "vx0"]);
    assert!(
        stats[0]["drops"]["too_big"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    assert!(
        sites.labs[0]
            .log()
            .contains("give the hosts an MTU of at most 1430"),
        "{}",
        sites.labs[0].log()
    );
}

#[test]
fn a_vni_map_carries_each_vlan_in_its_own_vni() {
    if !root_or_skip("vxlan_map") {
        return;
    }
    let mut sites = Sites::new(2);
    for k in 0..2 {
        let remote = sites.addr(1 - k);
        let local = sites.addr(k);
        let lab = &mut sites.labs[k];
        let args = vec![
            "--port".to_owned(),
            format!("{},vlan=10", lab.tap(1)),
            "--port".to_owned(),
            format!("{},vlan=20", lab.tap(2)),
            "--port".to_owned(),
            format!("vxlan:vx0,local={local},remote={remote},vni=5010:10,5020:20"),
        ];
        lab.launch(args, &[1, 2]);
    }
    let (a10, a20) = (sites.host(0, 1), sites.host(0, 2));
    let (b10, b20) = (sites.host(1, 1), sites.host(1, 2));
    assert!(a10.ping_eventually(&b10.ip), "{}", sites.labs[0].log());
    assert!(a20.ping_eventually(&b20.ip));
    assert!(
        !a10.ping(&b20.ip, 2),
        "VLAN 10 reached VLAN 20 across the tunnel"
    );
    let fdb = sites.labs[0].ctl_json(&["fdb", "show"]);
    let vlan_of = |mac: &str| {
        fdb.as_array()
            .unwrap()
            .iter()
            .find(|r| r["mac"] == mac && r["port"] == "vx0")
            .map(|r| r["vlan"].as_u64().unwrap())
    };
    assert_eq!(
        (vlan_of(&b10.mac), vlan_of(&b20.mac)),
        (Some(10), Some(20)),
        "{fdb}"
    );
}

#[test]
fn floods_reach_hosts_behind_every_remote_and_unicast_only_its_own() {
    if !root_or_skip("vxlan_flood") {
        return;
    }
    let mut sites = Sites::new(3);
    sites.start(0, 1, &[1, 2], "");
    sites.start(1, 2, &[0, 2], "");
    sites.start(2, 1, &[0, 1], "");
    let h1 = sites.host(0, 1);
    let behind = [sites.host(1, 1), sites.host(1, 2), sites.host(2, 1)];
    // Each first ping needs an ARP request flooded to both remotes.
    for h in &behind {
        assert!(
            h1.ping_eventually(&h.ip),
            "to {}: {}",
            h.ip,
            sites.labs[0].log()
        );
    }
    for (h, site) in behind.iter().zip([1, 1, 2]) {
        let row = sites.labs[0].fdb_row(&h.mac);
        assert_eq!(row["remote"], sites.addr(site).as_str(), "{row}");
    }
    // A known unicast goes to its one remote: site 3 sees none of a ping between sites 1 and 2.
    let before = sites.labs[2].ctl_json(&["port", "stats", "vx0"])[0]["rx_frames"]
        .as_u64()
        .unwrap();
    assert!(h1.ping(&behind[0].ip, 5));
    let after = sites.labs[2].ctl_json(&["port", "stats", "vx0"])[0]["rx_frames"]
        .as_u64()
        .unwrap();
    assert_eq!(after, before, "site 3 got unicast between sites 1 and 2");
}

#[test]
fn vswitchd_and_the_kernels_vxlan_interoperate() {
    if !root_or_skip("vxlan_kernel") {
        return;
    }
    let mut sites = Sites::new(2);
    sites.start(0, 1, &[1], "");
    let h1 = sites.host(0, 1);
    // Site 2 is the kernel: a VXLAN device addressed directly, with head-end replication to
    // site 1 and no learning, as containerlab and hand-made setups do.
    let ns = sites.labs[1].sw_ns.clone();
    let (local, remote) = (sites.addr(1), sites.addr(0));
    sh(&[
        "ip",
        "-n",
        &ns,
        "link",
        "add",
        "vx0",
        "type",
        "vxlan",
        "id",
        "100",
        "dstport",
        "4789",
        "local",
        &local,
        "dev",
        "ul",
        "nolearning",
    ]);
    sh(&[
        "ip",
        "netns",
        "exec",
        &ns,
        "bridge",
        "fdb",
        "append",
        "00:00:00:00:00:00",
        "dev",
        "vx0",
        "dst",
        &remote,
    ]);
    let ip = format!("{}20", sites.overlay);
    sh(&[
        "ip",
        "-n",
        &ns,
        "addr",
        "add",
        &format!("{ip}/24"),
        "dev",
        "vx0",
    ]);
    sh(&["ip", "-n", &ns, "link", "set", "vx0", "up"]);
    // Over a veth, the kernel hands the packet to the other namespace with the inner TCP
    // checksum still to be done (a NIC would do it on the wire); a userspace VTEP needs it done.
    sh(&[
        "ip", "netns", "exec", &ns, "ethtool", "-K", "vx0", "tx", "off",
    ]);
    let mac = sh(&["ip", "-n", &ns, "-br", "link", "show", "dev", "vx0"])
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_owned();
    let kernel = Host {
        ns,
        ifname: "vx0".into(),
        ip,
        mac,
    };
    assert!(h1.ping_eventually(&kernel.ip), "{}", sites.labs[0].log());
    assert!(kernel.ping(&h1.ip, 3));
    transfer_intact(&h1, &kernel, 4 << 20, 3, "vswitchd -> kernel VXLAN");
    transfer_intact(&kernel, &h1, 4 << 20, 4, "kernel VXLAN -> vswitchd");
}

#[test]
fn packets_that_are_not_for_the_port_are_dropped_and_counted() {
    if !root_or_skip("vxlan_bad") {
        return;
    }
    let (mut sites, h1, h2) = Sites::pair();
    assert!(h1.ping_eventually(&h2.ip));
    // From site 2's address: garbage, a header cut short, another VNI. From an address that is
    // not a remote: a good packet.
    let ns = &sites.labs[1].sw_ns;
    let stranger = format!("{}9", sites.underlay);
    sh(&[
        "ip",
        "-n",
        ns,
        "addr",
        "add",
        &format!("{stranger}/24"),
        "dev",
        "ul",
    ]);
    let script = format!(
        r#"
import socket
to = ("{to}", 4789)
frame = bytes.fromhex("ffffffffffff020000000001" "0800") + bytes(46)
def vxlan(vni):
    return bytes([8, 0, 0, 0]) + vni.to_bytes(3, "big") + bytes(1) + frame
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("{me}", 0))
s.sendto(b"not vxlan at all, just bytes", to)
s.sendto(bytes([8, 0, 0]), to)
s.sendto(vxlan(101), to)
t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
t.bind(("{stranger}", 0))
t.sendto(vxlan(100), to)
"#,
        to = sites.addr(0),
        me = sites.addr(1),
    );
    sh(&["ip", "netns", "exec", ns, "/usr/bin/python3", "-c", &script]);
    let lab = &sites.labs[0];
    let dropped = common::wait_until(std::time::Duration::from_secs(5), || {
        lab.ctl_json(&["port", "stats", "vx0"])[0]["drops"]["tunnel"] == 4
    });
    assert!(dropped, "{}", lab.ctl_ok(&["port", "stats", "vx0"]));
    let list = lab.ctl_ok(&["port", "list"]);
    assert!(
        list.contains("2 not VXLAN, 1 other VNIs, 1 from unknown addresses"),
        "{list}"
    );
    // Nothing else was touched.
    assert!(h1.ping(&h2.ip, 3));
    assert!(sites.labs[0].switch_running());
}
