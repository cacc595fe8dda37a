//! End to end: `netdev:` ports on veth ends, the way QEMU-owned taps or containers' veths are
//! attached. Needs root (see `common::root_or_skip`).

mod common;

use std::time::Duration;

use common::{Lab, root_or_skip, sh, transfer_intact, wait_until};

/// Makes veth pair `i`: `{prefix}s{i}` stays in the switch's namespace, `TAP(i)` becomes host
/// i's interface.
fn veth(lab: &Lab, i: usize) -> String {
    let switch_end = format!("{}s{i}", lab.prefix);
    sh(&[
        "ip",
        "-n",
        &lab.sw_ns,
        "link",
        "add",
        "name",
        &switch_end,
        "type",
        "veth",
        "peer",
        "name",
        &lab.tap(i),
    ]);
    switch_end
}

#[test]
fn veth_ends_on_netdev_ports_forward_tcp_with_offloads() {
    if !root_or_skip("netdev_veth") {
        return;
    }
    let mut lab = Lab::new();
    let ends: Vec<String> = (1..=2).map(|i| veth(&lab, i)).collect();
    let args = ends
        .iter()
        .flat_map(|e| ["--port".to_owned(), format!("netdev:{e}")])
        .collect();
    lab.launch(args, &[]);
    let h1 = lab.add_host(1, 1500);
    let h2 = lab.add_host(2, 1500);
    assert!(h1.ping_eventually(&h2.ip), "{}", lab.log());
    assert!(h2.ping(&h1.ip, 3));

    // veth hands over TSO super-frames; with PACKET_VNET_HDR they cross as such.
    let pcap = lab.dir.join("h2.pcap");
    let capture = h2.capture("tcp port 7001", &pcap);
    transfer_intact(&h1, &h2, 16 << 20, 21, "h1 -> h2");
    let sizes = capture.finish();
    let biggest = sizes.iter().copied().max().unwrap_or(0);
    assert!(biggest > 1514, "no super-frame crossed (largest {biggest})");
    let list = lab.ctl_json(&["port", "list"]);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|p| p["kind"] == "netdev" && p["state"] == "up"),
        "{list}"
    );
}

#[test]
fn a_netdev_port_comes_back_when_its_interface_returns() {
    if !root_or_skip("netdev_returns") {
        return;
    }
    let mut lab = Lab::new();
    let e1 = veth(&lab, 1);
    let e2 = veth(&lab, 2);
    lab.launch(
        vec![
            "--port".into(),
            format!("netdev:{e1}"),
            "--port".into(),
            format!("netdev:{e2}"),
        ],
        &[],
    );
    let h1 = lab.add_host(1, 1500);
    let h2 = lab.add_host(2, 1500);
    assert!(h1.ping_eventually(&h2.ip));

    // The interface goes (a VM shut down): the port goes down, the switch stays.
    sh(&["ip", "-n", &lab.sw_ns, "link", "del", &e2]);
    assert!(
        wait_until(Duration::from_secs(10), || lab
            .log()
            .contains("interface gone")),
        "{}",
        lab.log()
    );
    let state = |lab: &Lab| {
        let list = lab.ctl_json(&["port", "list"]);
        list.as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == e2.as_str())
            .map(|p| p["state"].as_str().unwrap_or("").to_owned())
    };
    assert_eq!(state(&lab).as_deref(), Some("down"));

    // An interface of that name appears again (the VM restarted): the port is back.
    lab.hosts.retain(|h| h.ns != h2.ns);
    lab.delete_namespace(&h2.ns);
    veth(&lab, 2);
    let h2 = lab.add_host(2, 1500);
    assert!(
        wait_until(Duration::from_secs(10), || state(&lab).as_deref()
            == Some("up")),
        "{}",
        lab.log()
    );
    // The new interface has a new MAC; h1 must ask again (a restarted VM's own gratuitous ARP
    // would tell it).
    h1.sh(&["ip", "neigh", "flush", "dev", &h1.ifname]);
    assert!(h1.ping_eventually(&h2.ip), "{}", lab.log());
    assert!(lab.log().contains("interface is back"));
    assert!(lab.switch_running());
}

#[test]
fn a_netdev_port_can_wait_for_an_interface_that_does_not_exist_yet() {
    if !root_or_skip("netdev_waits") {
        return;
    }
    let mut lab = Lab::new();
    let e1 = veth(&lab, 1);
    let later = format!("{}s2", lab.prefix);
    lab.launch(
        vec![
            "--port".into(),
            format!("netdev:{e1}"),
            "--port".into(),
            format!("netdev:{later}"),
        ],
        &[],
    );
    assert!(lab.log().contains("waiting for it"), "{}", lab.log());
    let h1 = lab.add_host(1, 1500);
    veth(&lab, 2);
    let h2 = lab.add_host(2, 1500);
    assert!(h1.ping_eventually(&h2.ip), "{}", lab.log());
}
