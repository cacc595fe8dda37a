//! The keys of tunnel ports in the `--port` grammar:
//! `vxlan:NAME,local=ADDR,remote=ADDR[,ADDR...],vni=N|VNI:VLAN[,...][,dstport=P][,mtu=M]
//! [,gso=off]` and
//! `udp:NAME,local=ADDR:PORT,remote=ADDR:PORT`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use super::spec::SpecError;
use crate::port::{PortKind, Target, Vnis, VxlanTarget};
use crate::wire::vlan::MAX_VID;

/// Keys only tunnel ports take.
pub const TUNNEL_KEYS: [&str; 6] = ["local", "remote", "vni", "dstport", "mtu", "gso"];

/// The IANA port for VXLAN, which Linux and Open vSwitch use.
pub const VXLAN_PORT: u16 = 4789;

/// VNIs are 24 bits.
const MAX_VNI: u32 = (1 << 24) - 1;

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: reason.into(),
    }
}

/// The value of `key` among the tunnel keys given, if any.
fn get<'a>(keys: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
    keys.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

fn need<'a>(
    keys: &[(&str, &'a str)],
    kind: PortKind,
    key: &'static str,
) -> Result<&'a str, SpecError> {
    get(keys, key).ok_or(SpecError::NeedsKey { kind, key })
}

/// A list value: items separated by `,` (the grammar keeps a list's commas) or `+`.
fn items(value: &str) -> impl Iterator<Item = &str> {
    value.split([',', '+']).map(str::trim)
}

/// The keys of a `vxlan:` port.
pub fn vxlan_target(keys: &[(&str, &str)]) -> Result<VxlanTarget, SpecError> {
    let kind = PortKind::Vxlan;
    let local_text = need(keys, kind, "local")?;
    let local: IpAddr = local_text.parse().map_err(|_| {
        invalid(
            "local",
            local_text,
            "expected this host's IPv4 or IPv6 address",
        )
    })?;
    if local.is_unspecified() || local.is_multicast() {
        return Err(invalid(
            "local",
            local_text,
            "expected an address of this host",
        ));
    }
    let remote_text = need(keys, kind, "remote")?;
    let mut remotes = Vec::new();
    for item in items(remote_text) {
        let addr: IpAddr = item.parse().map_err(|_| {
            invalid(
                "remote",
                remote_text,
                format!("{item:?} is not an IP address"),
            )
        })?;
        if addr.is_ipv4() != local.is_ipv4() {
            return Err(invalid(
                "remote",
                remote_text,
                "local and remote addresses must be of one family",
            ));
        }
        if addr == local || addr.is_unspecified() || addr.is_multicast() {
            return Err(invalid(
                "remote",
                remote_text,
                format!("{addr} cannot be a remote VTEP"),
            ));
        }
        if remotes.contains(&addr) {
            return Err(invalid(
                "remote",
                remote_text,
                format!("{addr} is listed twice"),
            ));
        }
        remotes.push(addr);
    }
    let vni_text = need(keys, kind, "vni")?;
    let vnis = parse_vnis(vni_text)?;
    let dstport = match get(keys, "dstport") {
        None => VXLAN_PORT,
        Some(text) => text
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| invalid("dstport", text, "expected a UDP port, 1 to 65535"))?,
    };
    let floor = if local.is_ipv4() { 576 } else { 1280 };
    let mtu = match get(keys, "mtu") {
        None => 1500,
        Some(text) => text
            .parse::<u16>()
            .ok()
            .filter(|&m| m >= floor)
            .ok_or_else(|| {
                invalid(
                    "mtu",
                    text,
                    format!("expected the underlay's MTU, {floor} to 65535"),
                )
            })?,
    };
    let gso = match get(keys, "gso") {
        None => true,
        Some(text) => super::settings::parse_switch(text)
            .ok_or_else(|| invalid("gso", text, "expected on or off"))?,
    };
    Ok(VxlanTarget {
        local,
        remotes,
        vnis,
        dstport,
        mtu,
        gso,
    })
}

/// `N`, or `VNI:VLAN[,VNI:VLAN...]`.
fn parse_vnis(text: &str) -> Result<Vnis, SpecError> {
    let vni = |item: &str| {
        item.parse::<u32>()
            .ok()
            .filter(|&v| v <= MAX_VNI)
            .ok_or_else(|| {
                invalid(
                    "vni",
                    text,
                    format!("{item:?}: expected a VNI, 0 to {MAX_VNI}"),
                )
            })
    };
    if !text.contains(':') {
        return Ok(Vnis::One(vni(text)?));
    }
    let mut map: Vec<(u32, u16)> = Vec::new();
    for item in items(text) {
        let (v, vlan) = item
            .split_once(':')
            .ok_or_else(|| invalid("vni", text, format!("{item:?}: expected VNI:VLAN")))?;
        let v = vni(v)?;
        let vlan = vlan
            .parse::<u16>()
            .ok()
            .filter(|&id| (1..=MAX_VID).contains(&id))
            .ok_or_else(|| {
                invalid(
                    "vni",
                    text,
                    format!("{item:?}: expected a VLAN, 1 to {MAX_VID}"),
                )
            })?;
        if map.iter().any(|&(ov, ol)| ov == v || ol == vlan) {
            return Err(invalid(
                "vni",
                text,
                format!("{item:?}: each VNI and each VLAN once"),
            ));
        }
        map.push((v, vlan));
    }
    Ok(Vnis::Map(map))
}

/// The keys of a `udp:` port.
pub fn udp_target(keys: &[(&str, &str)]) -> Result<Target, SpecError> {
    let kind = PortKind::Udp;
    let addr = |key: &'static str| -> Result<SocketAddr, SpecError> {
        let text = need(keys, kind, key)?;
        text.parse()
            .map_err(|_| invalid(key, text, "expected ADDRESS:PORT ([ADDRESS]:PORT for IPv6)"))
    };
    let (local, remote) = (addr("local")?, addr("remote")?);
    if local.is_ipv4() != remote.is_ipv4() {
        return Err(invalid(
            "remote",
            &remote.to_string(),
            "local and remote addresses must be of one family",
        ));
    }
    if remote.port() == 0 || remote.ip().is_unspecified() {
        return Err(invalid(
            "remote",
            &remote.to_string(),
            "expected the peer's address and port",
        ));
    }
    Ok(Target::Udp { local, remote })
}

/// The keys for `vlan`/`trunk` a VNI map implies: a trunk of its VLANs.
pub fn map_trunk(vnis: &Vnis) -> Option<String> {
    match vnis {
        Vnis::One(_) => None,
        Vnis::Map(map) => Some(
            map.iter()
                .map(|(_, vlan)| vlan.to_string())
                .collect::<Vec<_>>()
                .join(","),
        ),
    }
}

/// A tunnel target's keys as the grammar writes them (after the port's name).
pub fn write_keys(f: &mut fmt::Formatter<'_>, target: &Target) -> fmt::Result {
    match target {
        Target::Vxlan(v) => {
            let remotes: Vec<String> = v.remotes.iter().map(IpAddr::to_string).collect();
            write!(f, ",local={},remote={}", v.local, remotes.join(","))?;
            match &v.vnis {
                Vnis::One(n) => write!(f, ",vni={n}")?,
                Vnis::Map(map) => {
                    let items: Vec<String> =
                        map.iter().map(|(n, vlan)| format!("{n}:{vlan}")).collect();
                    write!(f, ",vni={}", items.join(","))?;
                }
            }
            if v.dstport != VXLAN_PORT {
                write!(f, ",dstport={}", v.dstport)?;
            }
            if v.mtu != 1500 {
                write!(f, ",mtu={}", v.mtu)?;
            }
            if !v.gso {
                write!(f, ",gso=off")?;
            }
            Ok(())
        }
        Target::Udp { local, remote } => write!(f, ",local={local},remote={remote}"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vxlan_keys_parse_with_defaults_and_refuse_nonsense() {
        let t = vxlan_target(&[
            ("local", "10.0.0.1"),
            ("remote", "10.0.0.2,10.0.0.3"),
            ("vni", "100"),
        ])
        .unwrap();
        assert_eq!(t.remotes.len(), 2);
        assert_eq!(
            (t.vnis.clone(), t.dstport, t.mtu),
            (Vnis::One(100), 4789, 1500)
        );
        assert_eq!(t.overhead(), 36);
        let m = vxlan_target(&[
            ("local", "fd00::1"),
            ("remote", "fd00::2"),
            ("vni", "100:10+200:20"),
        ])
        .unwrap();
        assert_eq!(m.vnis, Vnis::Map(vec![(100, 10), (200, 20)]));
        assert_eq!(map_trunk(&m.vnis).as_deref(), Some("10,20"));
        assert_eq!(m.overhead(), 56);
        for (keys, word) in [
            (vec![("remote", "10.0.0.2"), ("vni", "1")], "local="),
            (
                vec![("local", "10.0.0.1"), ("remote", "fd00::2"), ("vni", "1")],
                "one family",
            ),
            (
                vec![("local", "10.0.0.1"), ("remote", "10.0.0.1"), ("vni", "1")],
                "cannot be a remote",
            ),
            (
                vec![
                    ("local", "10.0.0.1"),
                    ("remote", "10.0.0.2"),
                    ("vni", "16777216"),
                ],
                "VNI",
            ),
            (
                vec![
                    ("local", "10.0.0.1"),
                    ("remote", "10.0.0.2"),
                    ("vni", "1:10,2:10"),
                ],
                "once",
            ),
            (
                vec![
                    ("local", "10.0.0.1"),
                    ("remote", "10.0.0.2"),
                    ("vni", "1"),
                    ("mtu", "100"),
                ],
                "MTU",
            ),
        ] {
            let e = vxlan_target(&keys).unwrap_err().to_string();
            assert!(e.contains(word), "{keys:?}: {e}");
        }
    }

    #[test]
    fn udp_keys_are_socket_addresses() {
        let t = udp_target(&[("local", "[fd00::1]:5000"), ("remote", "[fd00::2]:5001")]).unwrap();
        assert!(matches!(t, Target::Udp { local, .. } if local.port() == 5000));
        let e = udp_target(&[("local", "10.0.0.1:5000"), ("remote", "10.0.0.2")]).unwrap_err();
        assert!(e.to_string().contains("ADDRESS:PORT"), "{e}");
    }
}
