//! What a lab looks like right now: its nodes (namespaces, processes, switches answering) and
//! links (each end up, the switch port's state and keys), as a table.

use std::fmt::Write as _;

use super::LabError;
use super::build::{link_up, namespace_exists, process_name, show};
use super::file::Topology;
use super::plan::{EdgeEnd, Plan};
use super::state::{State, alive};

/// The status table, and whether everything is as the plan says.
pub fn report(topo: &Topology, plan: &Plan) -> Result<(String, bool), LabError> {
    let Some(state) = State::load(&plan.dir)? else {
        return Ok((
            format!("lab {}: not up (no state record)\n", plan.lab),
            false,
        ));
    };
    let mut healthy = state.complete;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "lab {}{} (record {})",
        plan.lab,
        if state.complete {
            ""
        } else {
            ": up did not finish"
        },
        state.path().display()
    );
    let mut rows = vec![[
        "node".to_owned(),
        "kind".to_owned(),
        "namespace".to_owned(),
        "pid".to_owned(),
        "state".to_owned(),
    ]];
    let pid_of = |what: &str| {
        state
            .processes()
            .find(|(w, _, _)| *w == what)
            .map(|(_, pid, start)| (pid, alive(pid, start)))
    };
    for s in &plan.switches {
        let (pid, running) = pid_of(&process_name("vswitchd", &s.node)).unwrap_or((0, false));
        let state = match (running, show(&s.ctl)) {
            (true, Some(reply)) => format!("answers, {} ports (-n {})", reply.ports.len(), s.name),
            (true, None) => "not answering".to_owned(),
            (false, _) => "not running".to_owned(),
        };
        healthy &= state.starts_with("answers");
        rows.push([
            s.node.clone(),
            "switch".into(),
            s.ns.clone(),
            pid.to_string(),
            state,
        ]);
    }
    for h in &plan.hosts {
        let exists = namespace_exists(&h.ns);
        healthy &= exists;
        let host = topo.hosts.iter().find(|x| x.name == h.node);
        let started = host.map_or(0, |x| x.start.len());
        let running = (0..started)
            .filter(|i| {
                pid_of(&process_name("start", &format!("{}#{i}", h.node))).is_some_and(|(_, r)| r)
            })
            .count();
        let state = match (exists, started) {
            (false, _) => "namespace missing".to_owned(),
            (true, 0) => "ok".to_owned(),
            (true, n) => format!("ok, {running} of {n} start commands running"),
        };
        rows.push([
            h.node.clone(),
            "host".into(),
            h.ns.clone(),
            "-".into(),
            state,
        ]);
    }
    for v in &plan.vms {
        let (pid, running) = pid_of(&process_name("qemu", &v.node)).unwrap_or((0, false));
        healthy &= running;
        rows.push([
            v.node.clone(),
            "vm".into(),
            "-".into(),
            pid.to_string(),
            if running { "running" } else { "not running" }.into(),
        ]);
    }
    out.push_str(&table(&rows));
    out.push('\n');

    let mut rows = vec![[
        "link".to_owned(),
        "ends".to_owned(),
        "switch ports".to_owned(),
        "file keys".to_owned(),
        "state".to_owned(),
    ]];
    for link in &plan.links {
        let source = topo.links.iter().find(|l| l.name == link.name);
        let mut ends: Vec<String> = Vec::new();
        let mut up = true;
        for p in &link.ports {
            let sw = plan.switch(&p.switch).expect("planned switch");
            let vm_link = matches!(link.edge, Some(EdgeEnd::Vm { .. }));
            up &= vm_link || link_up(&sw.ns, &p.port);
            ends.push(format!("{}:{}", p.switch, p.port));
        }
        let edge = match &link.edge {
            Some(EdgeEnd::Host { node, ns, ifname }) => {
                up &= link_up(ns, ifname);
                format!("{node}:{ifname}")
            }
            Some(EdgeEnd::Vm { node }) => format!("{node}:eth0"),
            None => String::new(),
        };
        // The switch's own view: `link=down` at runtime shows here.
        let admin: Vec<String> = link
            .ports
            .iter()
            .filter_map(|p| {
                let reply = show(&plan.switch(&p.switch)?.ctl)?;
                let info = reply.ports.into_iter().find(|i| i.name == p.port)?;
                Some(info.state)
            })
            .collect();
        let state = if !up {
            "DOWN".to_owned()
        } else if admin.len() < link.ports.len() {
            "no switch answer".to_owned()
        } else if let Some(s) = admin.iter().find(|s| *s != "up") {
            s.clone()
        } else {
            "up".to_owned()
        };
        healthy &= state == "up";
        let keys = source
            .map(|l| {
                l.keys
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let ends_text = if edge.is_empty() {
            link.ports
                .iter()
                .map(|p| p.switch.clone())
                .collect::<Vec<_>>()
                .join(" - ")
        } else {
            format!("{edge} - {}", link.ports[0].switch)
        };
        rows.push([link.name.clone(), ends_text, ends.join(" "), keys, state]);
    }
    out.push_str(&table(&rows));
    Ok((out, healthy))
}

/// Left-aligned columns two spaces apart.
pub fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, (w, cell)) in widths.iter().zip(row).enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::table;

    #[test]
    fn columns_line_up() {
        let rows = [
            ["a".to_owned(), "bbb".to_owned(), "c".to_owned()],
            ["dddd".to_owned(), "e".to_owned(), "".to_owned()],
        ];
        assert_eq!(table(&rows), "a     bbb  c\ndddd  e\n");
    }
}
