//! The plan: every name, address, port spec and command line a topology turns into, computed
//! without touching the system (so it is unit-tested, and `up --dry-run` prints it).

use std::path::{Path, PathBuf};

use super::file::{Link, NodeKind, SocketKind, Topology, port_options};
use crate::config::default_ctl_socket;

/// Where labs keep their state records and switch logs.
pub const STATE_ROOT: &str = "/run/vswitch-lab";

/// A topology with every name decided.
#[derive(Debug, Clone)]
pub struct Plan {
    pub lab: String,
    pub dir: PathBuf,
    pub switches: Vec<SwitchPlan>,
    pub hosts: Vec<HostPlan>,
    pub vms: Vec<VmPlan>,
    pub links: Vec<LinkPlan>,
}

#[derive(Debug, Clone)]
pub struct SwitchPlan {
    pub node: String,
    pub ns: String,
    /// vswitchd's `--name`: `vswitchctl -n NAME` reaches it.
    pub name: String,
    pub ctl: PathBuf,
    /// vswitchd's arguments.
    pub args: Vec<String>,
    /// The ports it must list before the lab is up.
    pub ports: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct HostPlan {
    pub node: String,
    pub ns: String,
}

#[derive(Debug, Clone)]
pub struct VmPlan {
    pub node: String,
    pub sockets: VmSockets,
    pub console: PathBuf,
}

/// The unix sockets between a VM and its switch: the switch serves `switch` (stream), or the
/// two exchange datagrams between `switch` and `vm` (dgram).
#[derive(Debug, Clone)]
pub struct VmSockets {
    pub switch: PathBuf,
    pub vm: Option<PathBuf>,
}

impl VmSockets {
    /// The switch's `--port` target for this VM.
    pub fn switch_port(&self, port: &str) -> String {
        match &self.vm {
            None => format!("stream:{},name={port}", self.switch.display()),
            Some(vm) => format!(
                "dgram:{},peer={},name={port}",
                self.switch.display(),
                vm.display()
            ),
        }
    }

    /// QEMU's `-netdev` argument for this VM.
    pub fn netdev(&self) -> String {
        match &self.vm {
            None => format!(
                "stream,id=n0,server=off,addr.type=unix,addr.path={}",
                self.switch.display()
            ),
            Some(vm) => format!(
                "dgram,id=n0,local.type=unix,local.path={},remote.type=unix,remote.path={}",
                vm.display(),
                self.switch.display()
            ),
        }
    }
}

fn vm_sockets(dir: &Path, vm: &str, dgram: bool) -> VmSockets {
    if dgram {
        VmSockets {
            switch: dir.join(format!("{vm}.sw.sock")),
            vm: Some(dir.join(format!("{vm}.vm.sock"))),
        }
    } else {
        VmSockets {
            switch: dir.join(format!("{vm}.sock")),
            vm: None,
        }
    }
}

/// One end of a link on a switch: the switch's port.
#[derive(Debug, Clone)]
pub struct PortEnd {
    pub switch: String,
    pub port: String,
    /// The port's options (`vlan=10`, `tx-delay=40`, ...) as `--port` and `port set` take them.
    pub options: Vec<(String, String)>,
}

/// The other end of a link: a host's interface or a VM's socket.
#[derive(Debug, Clone)]
pub enum EdgeEnd {
    /// A veth end in the host's namespace.
    Host {
        node: String,
        ns: String,
        ifname: String,
    },
    Vm {
        node: String,
    },
}

#[derive(Debug, Clone)]
pub struct LinkPlan {
    pub name: String,
    /// One switch end (host and VM links) or two (switch to switch).
    pub ports: Vec<PortEnd>,
    pub edge: Option<EdgeEnd>,
    pub ips: Vec<String>,
}

impl LinkPlan {
    /// The port options `KEY=VALUE` stands for on this link's switch ends (one list per end):
    /// impairment keys apply to both directions of a host's or VM's port, and to what each
    /// switch sends into a switch-to-switch link; other keys go to every end as they are.
    pub fn options(&self, key: &str, value: &str) -> Vec<(String, String)> {
        port_options(key, value, self.edge.is_some())
    }
}

/// The namespace of node `node` in lab `lab`.
pub fn namespace(lab: &str, node: &str) -> String {
    format!("{lab}-{node}")
}

/// The directory of lab `lab`'s state record and logs.
pub fn state_dir(lab: &str) -> PathBuf {
    Path::new(STATE_ROOT).join(lab)
}

impl Plan {
    pub fn new(topo: &Topology, lab: &str) -> Plan {
        let dir = state_dir(lab);
        let mut links = Vec::new();
        // Host interfaces are eth0, eth1, ... in the order of the host's links, skipping the
        // names given with `ifname`.
        let mut host_ifs: Vec<(String, String)> = topo
            .links
            .iter()
            .filter_map(|l| {
                let host = l
                    .ends
                    .iter()
                    .find(|e| topo.kind(e) == Some(NodeKind::Host))?;
                Some((host.clone(), l.ifname.clone()?))
            })
            .collect();
        for link in &topo.links {
            links.push(link_plan(topo, lab, link, &mut host_ifs));
        }
        let switches = topo
            .switches
            .iter()
            .map(|s| {
                let name = namespace(lab, &s.name);
                let mut args = vec!["--name".to_owned(), name.clone()];
                let mut ports = Vec::new();
                for link in &links {
                    for end in link.ports.iter().filter(|p| p.switch == s.name) {
                        let mut spec = match &link.edge {
                            Some(EdgeEnd::Vm { node }) => {
                                let dgram = topo
                                    .vms
                                    .iter()
                                    .any(|v| &v.name == node && v.socket == SocketKind::Dgram);
                                vm_sockets(&dir, node, dgram).switch_port(&end.port)
                            }
                            _ => format!("netdev:{}", end.port),
                        };
                        for (k, v) in &end.options {
                            spec.push_str(&format!(",{k}={v}"));
                        }
                        args.push("--port".to_owned());
                        args.push(spec);
                        ports.push(end.port.clone());
                    }
                }
                if s.arp_suppress {
                    args.push("--arp-suppress".to_owned());
                }
                for ip in &s.ips {
                    args.push("--ip".to_owned());
                    args.push(ip.clone());
                }
                if let Some(vid) = s.ip_vlan {
                    args.push("--ip-vlan".to_owned());
                    args.push(vid.to_string());
                }
                if let Some(secs) = s.mac_ageing {
                    args.push("--mac-ageing".to_owned());
                    args.push(secs.to_string());
                }
                if let Some(seed) = s.seed {
                    args.push("--seed".to_owned());
                    args.push(seed.to_string());
                }
                SwitchPlan {
                    node: s.name.clone(),
                    ns: name.clone(),
                    ctl: default_ctl_socket(&name),
                    name,
                    args,
                    ports,
                }
            })
            .collect();
        let hosts = topo
            .hosts
            .iter()
            .map(|h| HostPlan {
                node: h.name.clone(),
                ns: namespace(lab, &h.name),
            })
            .collect();
        let vms = topo
            .vms
            .iter()
            .map(|v| VmPlan {
                node: v.name.clone(),
                sockets: vm_sockets(&dir, &v.name, v.socket == SocketKind::Dgram),
                console: dir.join(format!("{}.console", v.name)),
            })
            .collect();
        Plan {
            lab: lab.to_owned(),
            dir,
            switches,
            hosts,
            vms,
            links,
        }
    }

    pub fn link(&self, name: &str) -> Option<&LinkPlan> {
        self.links.iter().find(|l| l.name == name)
    }

    pub fn switch(&self, node: &str) -> Option<&SwitchPlan> {
        self.switches.iter().find(|s| s.node == node)
    }

    pub fn host(&self, node: &str) -> Option<&HostPlan> {
        self.hosts.iter().find(|h| h.node == node)
    }

    /// The namespace a node's commands run in (hosts and switches; VMs have none).
    pub fn namespace_of(&self, node: &str) -> Option<&str> {
        self.host(node)
            .map(|h| h.ns.as_str())
            .or_else(|| self.switch(node).map(|s| s.ns.as_str()))
    }

    /// The addresses of a node: its links' `ip`s (hosts and VMs) or its `--ip`s (switches).
    pub fn addresses(&self, topo: &Topology, node: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .links
            .iter()
            .filter(|l| match &l.edge {
                Some(EdgeEnd::Host { node: n, .. }) | Some(EdgeEnd::Vm { node: n }) => n == node,
                None => false,
            })
            .flat_map(|l| l.ips.iter().cloned())
            .collect();
        if let Some(s) = topo.switches.iter().find(|s| s.name == node) {
            out.extend(s.ips.iter().cloned());
        }
        out
    }
}

fn link_plan(
    topo: &Topology,
    lab: &str,
    link: &Link,
    host_ifs: &mut Vec<(String, String)>,
) -> LinkPlan {
    let edge = link.ends.iter().find_map(|end| match topo.kind(end) {
        Some(NodeKind::Host) => {
            let ifname = link.ifname.clone().unwrap_or_else(|| {
                let taken = |name: &str| host_ifs.iter().any(|(h, i)| h == end && i == name);
                let name = (0..)
                    .map(|n| format!("eth{n}"))
                    .find(|name| !taken(name))
                    .expect("a free interface name");
                host_ifs.push((end.clone(), name.clone()));
                name
            });
            Some(EdgeEnd::Host {
                node: end.clone(),
                ns: namespace(lab, end),
                ifname,
            })
        }
        Some(NodeKind::Vm) => Some(EdgeEnd::Vm { node: end.clone() }),
        _ => None,
    });
    let both = edge.is_some();
    let options: Vec<(String, String)> = link
        .keys
        .iter()
        .flat_map(|(k, v)| port_options(k, v, both))
        .collect();
    let ports = link
        .ends
        .iter()
        .filter(|end| topo.kind(end) == Some(NodeKind::Switch))
        .map(|sw| PortEnd {
            switch: sw.clone(),
            port: link.name.clone(),
            options: options.clone(),
        })
        .collect();
    LinkPlan {
        name: link.name.clone(),
        ports,
        edge,
        ips: link.ips.clone(),
    }
}

impl Plan {
    /// What `up` would create, for `up --dry-run`.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "lab {} (record and logs in {})\n",
            self.lab,
            self.dir.display()
        );
        for s in &self.switches {
            out.push_str(&format!(
                "switch {:<8} namespace {}: vswitchd {}\n",
                s.node,
                s.ns,
                s.args.join(" ")
            ));
        }
        for h in &self.hosts {
            out.push_str(&format!("host   {:<8} namespace {}\n", h.node, h.ns));
        }
        for v in &self.vms {
            out.push_str(&format!(
                "vm     {:<8} qemu -netdev {}\n",
                v.node,
                v.sockets.netdev()
            ));
        }
        for l in &self.links {
            let ports: Vec<String> = l
                .ports
                .iter()
                .map(|p| format!("{}:{}", p.switch, p.port))
                .collect();
            let edge = match &l.edge {
                Some(EdgeEnd::Host { node, ifname, .. }) => format!("veth {node}:{ifname} <-> "),
                Some(EdgeEnd::Vm { node }) => format!("socket {node} <-> "),
                None => "veth ".to_owned(),
            };
            let line = format!(
                "link   {:<8} {edge}{} {}",
                l.name,
                ports.join(" <-> "),
                l.ips.join(" ")
            );
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str, lab: &str) -> Plan {
        let topo = Topology::parse(Path::new("t.toml"), text).unwrap();
        Plan::new(&topo, lab)
    }

    #[test]
    fn names_carry_the_lab_and_interfaces_fit() {
        let p = plan(include_str!("../../docs/labs/wan.toml"), "w1x2y3z4");
        assert_eq!(p.switches[0].ns, "w1x2y3z4-s1");
        assert_eq!(p.switches[0].name, "w1x2y3z4-s1");
        assert_eq!(
            p.switches[0].ctl,
            PathBuf::from("/run/vswitchd/w1x2y3z4-s1.ctl")
        );
        assert_eq!(p.dir, PathBuf::from("/run/vswitch-lab/w1x2y3z4"));
        assert!(p.hosts.iter().all(|h| h.ns.starts_with("w1x2y3z4-")));
        for l in &p.links {
            for port in &l.ports {
                assert!(port.port.len() <= 15, "{}", port.port);
            }
        }
    }

    #[test]
    fn impairment_is_per_direction_on_host_links_and_per_sender_on_trunks() {
        let p = plan(include_str!("../../docs/labs/wan.toml"), "wan");
        let wan = p.link("wan").unwrap();
        assert_eq!(wan.ports.len(), 2);
        let s1 = p.switch("s1").unwrap();
        assert!(
            s1.args
                .contains(&"netdev:wan,tx-delay=40ms,tx-loss=1%,tx-rate=20mbit".to_owned())
        );
        let h = p.link("h1a-s1").unwrap();
        assert_eq!(
            h.options("delay", "5"),
            vec![
                ("tx-delay".into(), "5".into()),
                ("rx-delay".into(), "5".into())
            ]
        );
        assert_eq!(
            wan.options("delay", "5"),
            vec![("tx-delay".into(), "5".into())]
        );
        assert_eq!(
            wan.options("link", "down"),
            vec![("link".into(), "down".into())]
        );
    }

    #[test]
    fn host_interfaces_are_numbered_per_host() {
        let p = plan(include_str!("../../docs/labs/vlans.toml"), "v");
        let ifname = |link: &str| match &p.link(link).unwrap().edge {
            Some(EdgeEnd::Host { ifname, .. }) => ifname.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(ifname("r-v10"), "eth0");
        assert_eq!(ifname("r-v20"), "eth1");
        assert_eq!(ifname("h10a-s1"), "eth0");
        let text = "name = \"t\"\n[[switch]]\nname = \"s1\"\n[[host]]\nname = \"h1\"\n\
                    [[link]]\nname = \"a\"\nends = [\"h1\", \"s1\"]\n\
                    [[link]]\nname = \"b\"\nends = [\"h1\", \"s1\"]\nifname = \"eth0\"\n";
        let p = plan(text, "t");
        let ifname = |link: &str| match &p.link(link).unwrap().edge {
            Some(EdgeEnd::Host { ifname, .. }) => ifname.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!((ifname("a"), ifname("b")), ("eth1".into(), "eth0".into()));
    }

    #[test]
    fn vms_get_socket_ports() {
        let p = plan(include_str!("../../docs/labs/vms.toml"), "m");
        let args = &p.switch("s1").unwrap().args;
        assert!(args.contains(&"stream:/run/vswitch-lab/m/vm1.sock,name=vm1-s1".to_owned()));
        assert!(args.contains(
            &"dgram:/run/vswitch-lab/m/vm2.sw.sock,peer=/run/vswitch-lab/m/vm2.vm.sock,name=vm2-s1"
                .to_owned()
        ));
        assert_eq!(
            p.addresses(
                &Topology::parse(Path::new("t"), include_str!("../../docs/labs/vms.toml")).unwrap(),
                "vm2"
            ),
            vec!["10.4.0.12/24".to_owned()]
        );
    }
}
