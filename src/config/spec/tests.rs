use super::*;
use crate::bridge::vlan::VlanMode;

fn spec(s: &str) -> Result<PortSpec, SpecError> {
    s.parse()
}

pub(in crate::config) fn tap(name: &str) -> PortSpec {
    PortSpec {
        name: name.to_owned(),
        target: Target::Tap(IfName::new(name).unwrap()),
        settings: PortSettings::default(),
    }
}

pub(in crate::config) fn with_vlan(name: &str, vlan: VlanMode) -> PortSpec {
    let mut spec = tap(name);
    spec.settings.port.vlan = vlan;
    spec
}

pub(in crate::config) fn trunk(list: &str, native: Option<u16>) -> VlanMode {
    VlanMode::Trunk {
        vlans: Box::new(list.parse().unwrap()),
        native,
    }
}

#[test]
fn bare_name_and_tap_prefix_are_taps() {
    assert_eq!(spec("tap0"), Ok(tap("tap0")));
    assert_eq!(spec("tap:tap0"), Ok(tap("tap0")));
    assert_eq!(tap("tap0").to_string(), "tap:tap0");
}

#[test]
fn spec_rejections_name_the_problem() {
    assert_eq!(spec(""), Err(SpecError::Empty));
    let e = spec("geneve:v0").unwrap_err().to_string();
    assert!(
        e.contains("\"geneve\"") && e.contains("known kinds: tap") && e.contains("vxlan, udp"),
        "{e}"
    );
    // The switch's own port has a kind, but no spec can name it.
    assert_eq!(
        spec("internal:x").unwrap_err().to_string(),
        "unknown port kind \"internal\" (known kinds: tap, netdev, stream, dgram, vxlan, udp, vhost-user, vhost-user-client)"
    );
    let e = spec("tap:").unwrap_err().to_string();
    assert!(e.contains("empty"), "{e}");
    let e = spec("averyveryverylongname").unwrap_err().to_string();
    assert!(e.contains("longer than 15"), "{e}");
    let e = spec("tap0,colour=red").unwrap_err().to_string();
    assert!(
        e.contains("\"colour\"") && e.contains("vlan, trunk, native"),
        "{e}"
    );
    let e = spec("tap0,junk").unwrap_err().to_string();
    assert!(e.contains("\"junk\"") && e.contains("key=value"), "{e}");
    let e = spec("ta/p").unwrap_err().to_string();
    assert!(e.contains("'/'"), "{e}");
}

#[test]
fn vlan_keys_make_access_and_trunk_ports() {
    assert_eq!(
        spec("tap0,vlan=10"),
        Ok(with_vlan("tap0", VlanMode::Access(10)))
    );
    assert_eq!(
        spec("tap0,trunk=10,20,30-40"),
        Ok(with_vlan("tap0", trunk("10,20,30-40", None)))
    );
    assert_eq!(
        spec("tap:tap0,trunk=10,20,native=5"),
        Ok(with_vlan("tap0", trunk("10,20", Some(5))))
    );
    assert_eq!(
        spec("tap0,native=5,trunk=7").unwrap().to_string(),
        "tap:tap0,trunk=7,native=5"
    );
    // Printing and parsing round-trip.
    let s = spec("tap0,trunk=1-3,9,native=4").unwrap();
    assert_eq!(spec(&s.to_string()), Ok(s));
}

#[test]
fn arp_keys_set_suppression_and_guard() {
    let s = spec("tap0,arp-suppress=off,arp-guard=on").unwrap();
    assert_eq!(
        (s.settings.port.arp_suppress, s.settings.port.arp_guard),
        (Some(false), true)
    );
    assert_eq!(s.to_string(), "tap:tap0,arp-suppress=off,arp-guard=on");
    let s = spec("tap0,vlan=5,arp-suppress=yes").unwrap();
    assert_eq!(
        (s.settings.port.arp_suppress, s.settings.port.arp_guard),
        (Some(true), false)
    );
    assert_eq!(spec(&s.to_string()), Ok(s));
}

#[test]
fn bad_vlan_keys_are_named() {
    let cases = [
        ("tap0,vlan=0", "vlan=0"),
        ("tap0,vlan=5000", "vlan=5000"),
        ("tap0,vlan=ten", "vlan=ten"),
        ("tap0,trunk=", "trunk="),
        ("tap0,trunk=10,4095", "trunk=10,4095"),
        ("tap0,trunk=30-20", "trunk=30-20"),
        ("tap0,native=0,trunk=5", "native=0"),
        ("tap0,vlan=10,trunk=20", "vlan="),
        ("tap0,vlan=10,native=20", "vlan="),
        ("tap0,native=20", "native= needs trunk="),
        ("tap0,vlan=10,vlan=11", "vlan= is given twice"),
        ("tap0,trunk=1,trunk=2", "trunk= is given twice"),
        ("tap0,vlan=10,20", "\"20\" is not key=value"),
        (
            "tap0,arp-guard=maybe",
            "arp-guard=maybe: expected on or off",
        ),
        (
            "tap0,arp-suppress=on,arp-suppress=off",
            "arp-suppress= is given twice",
        ),
    ];
    for (bad, needle) in cases {
        let e = spec(bad).unwrap_err().to_string();
        assert!(e.contains(needle), "{bad}: {e}");
    }
}

#[test]
fn netdev_stream_and_dgram_specs() {
    let n = spec("netdev:qtap0").unwrap();
    assert_eq!(n.target, Target::Netdev(IfName::new("qtap0").unwrap()));
    assert_eq!((n.name.as_str(), n.kind()), ("qtap0", PortKind::Netdev));
    assert_eq!(n.to_string(), "netdev:qtap0");
    assert!(spec("netdev:a/b").is_err());

    let s = spec("stream:/run/vm/vm1.sock,vlan=10").unwrap();
    assert_eq!(s.target, Target::Stream("/run/vm/vm1.sock".into()));
    assert_eq!(s.name, "vm1.sock", "named after the socket file");
    assert_eq!(s.settings.port.vlan, VlanMode::Access(10));
    assert_eq!(spec(&s.to_string()), Ok(s));
    let s = spec("stream:/tmp/x.sock,name=web").unwrap();
    assert_eq!(s.name, "web");
    assert_eq!(s.to_string(), "stream:/tmp/x.sock,name=web");

    let v = spec("vhost-user:/run/vm/vm2.sock,trunk=10-20").unwrap();
    assert_eq!(v.target, Target::VhostUser("/run/vm/vm2.sock".into()));
    assert_eq!(
        (v.name.as_str(), v.kind()),
        ("vm2.sock", PortKind::VhostUser)
    );
    assert_eq!(spec(&v.to_string()), Ok(v));
    let v = spec("vhost-user:/tmp/v.sock,name=db,vlan=5").unwrap();
    assert_eq!(v.to_string(), "vhost-user:/tmp/v.sock,name=db,vlan=5");
    let c = spec("vhost-user-client:/run/qemu/vm3.sock").unwrap();
    assert_eq!(
        c.target,
        Target::VhostUserClient("/run/qemu/vm3.sock".into())
    );
    assert_eq!(c.name, "vm3.sock");
    assert_eq!(spec(&c.to_string()), Ok(c));

    let d = spec("dgram:/tmp/sw.sock,peer=/tmp/vm.sock").unwrap();
    assert_eq!(
        d.target,
        Target::Dgram {
            path: "/tmp/sw.sock".into(),
            peer: Some("/tmp/vm.sock".into())
        }
    );
    assert_eq!(spec(&d.to_string()), Ok(d));

    for (bad, needle) in [
        ("stream:", "need a socket path"),
        ("tap0,name=x", "only for stream, dgram and vhost-user"),
        ("stream:/tmp/a,peer=/tmp/b", "only for dgram"),
        ("stream:/tmp/a,name=has space", "bad port name"),
        ("stream:/tmp/a,name=x,name=y", "given twice"),
    ] {
        let e = spec(bad).unwrap_err().to_string();
        assert!(e.contains(needle), "{bad}: {e}");
    }
}

#[test]
fn tunnel_ports_take_their_keys_and_print_back() {
    let v = spec("vxlan:vx0,local=10.9.0.1,remote=10.9.0.2,10.9.0.3,vni=100,vlan=5").unwrap();
    assert_eq!(v.name, "vx0");
    assert!(matches!(&v.target, Target::Vxlan(t) if t.remotes.len() == 2 && t.dstport == 4789));
    assert_eq!(v.settings.port.vlan, VlanMode::Access(5));
    assert_eq!(
        v.to_string(),
        "vxlan:vx0,local=10.9.0.1,remote=10.9.0.2,10.9.0.3,vni=100,vlan=5"
    );
    assert_eq!(spec(&v.to_string()), Ok(v));

    // A VNI map makes a trunk of its VLANs, and prints as the map alone.
    let m = spec("vxlan:vx1,local=fd00::1,remote=fd00::2,vni=100:10,200:20,dstport=4790").unwrap();
    assert_eq!(m.settings.port.vlan.to_string(), "trunk 10,20");
    assert_eq!(
        m.to_string(),
        "vxlan:vx1,local=fd00::1,remote=fd00::2,vni=100:10,200:20,dstport=4790"
    );
    assert_eq!(spec(&m.to_string()), Ok(m));

    let g = spec("vxlan:vx2,local=10.9.0.1,remote=10.9.0.2,vni=7,gso=off").unwrap();
    assert!(matches!(&g.target, Target::Vxlan(t) if !t.gso));
    assert_eq!(spec(&g.to_string()), Ok(g));

    let u = spec("udp:r1,local=10.9.0.1:10001,remote=10.9.0.2:10002,vlan=3").unwrap();
    assert_eq!(spec(&u.to_string()), Ok(u));

    for (bad, needle) in [
        ("vxlan:vx0,remote=10.9.0.2,vni=1", "need local="),
        ("vxlan:vx0,local=10.9.0.1,remote=10.9.0.2", "need vni="),
        (
            "vxlan:vx0,local=10.9.0.1,remote=10.9.0.2,vni=1:10,trunk=10",
            "VNI map",
        ),
        ("tap0,remote=10.9.0.2", "only for vxlan and udp"),
        (
            "udp:u,local=10.9.0.1:1,remote=10.9.0.2:2,vni=3",
            "only for vxlan",
        ),
        ("udp:u,local=10.9.0.1:1", "need remote="),
    ] {
        let e = spec(bad).unwrap_err().to_string();
        assert!(e.contains(needle), "{bad}: {e}");
    }
}
