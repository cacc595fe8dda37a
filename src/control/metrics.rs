//! `vswitchctl metrics`: the switch's counters in the Prometheus text exposition format
//! (version 0.0.4), for node_exporter's textfile collector or a one-line HTTP wrapper.

use std::fmt::Write as _;

use crate::bridge::DropReason;
use crate::datapath::mirror::MirrorCounts;
use crate::datapath::taps::CaptureCounts;
use crate::switch::Switch;

/// A per-port counter: name, type, help, and where in a port's stats it is.
type PerPort = (
    &'static str,
    &'static str,
    &'static str,
    fn(&crate::bridge::PortStats) -> u64,
);

/// A counter of something other than a port's stats: name, help, and where in a `T` it is.
type Counter<T> = (&'static str, &'static str, fn(&T) -> u64);

/// A label value with `\`, `"` and newlines escaped, as the format wants.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Every metric family of the switch, with its HELP and TYPE lines.
pub fn render(switch: &Switch) -> String {
    let mut out = String::new();
    let sw = label(switch.name());
    let family = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    family(
        &mut out,
        "vswitch_uptime_seconds",
        "gauge",
        "Seconds since vswitchd started.",
    );
    let _ = writeln!(
        out,
        "vswitch_uptime_seconds{{switch=\"{sw}\"}} {}",
        switch.now().as_secs_f64()
    );
    let ports: Vec<_> = switch
        .bridge()
        .ports()
        .filter_map(|id| {
            let port = switch.port(id)?;
            let stats = switch.port_stats(id)?;
            let labels = format!(
                "switch=\"{sw}\",port=\"{}\",kind=\"{}\"",
                label(port.name()),
                port.kind()
            );
            let capture = switch.datapath().capture_counts(id)?;
            Some((labels, stats, switch.port_state(id) == "up", capture))
        })
        .collect();
    let per_port: [PerPort; 4] = [
        (
            "vswitch_port_rx_frames_total",
            "counter",
            "Frames received from the port's host.",
            |s| s.rx_frames,
        ),
        (
            "vswitch_port_rx_bytes_total",
            "counter",
            "Bytes received (Ethernet, without the virtio-net header).",
            |s| s.rx_bytes,
        ),
        (
            "vswitch_port_tx_frames_total",
            "counter",
            "Frames sent to the port's host.",
            |s| s.tx_frames,
        ),
        (
            "vswitch_port_tx_bytes_total",
            "counter",
            "Bytes sent (Ethernet, without the virtio-net header).",
            |s| s.tx_bytes,
        ),
    ];
    for (name, kind, help, value) in per_port {
        family(&mut out, name, kind, help);
        for (labels, stats, _, _) in &ports {
            let _ = writeln!(out, "{name}{{{labels}}} {}", value(stats));
        }
    }
    family(
        &mut out,
        "vswitch_port_drops_total",
        "counter",
        "Frames dropped, by reason (docs/control.md lists the reasons).",
    );
    for (labels, stats, _, _) in &ports {
        for reason in DropReason::ALL {
            let _ = writeln!(
                out,
                "vswitch_port_drops_total{{{labels},reason=\"{reason}\"}} {}",
                stats.drops(reason)
            );
        }
    }
    family(
        &mut out,
        "vswitch_port_up",
        "gauge",
        "1 while the port is up, else 0.",
    );
    for (labels, _, up, _) in &ports {
        let _ = writeln!(out, "vswitch_port_up{{{labels}}} {}", u8::from(*up));
    }
    let per_capture: [Counter<CaptureCounts>; 2] = [
        (
            "vswitch_port_captured_frames_total",
            "Frames of the port live captures wrote to their streams.",
            |c| c.captured,
        ),
        (
            "vswitch_port_capture_dropped_frames_total",
            "Frames of the port live captures lost to slow readers (forwarded all the same).",
            |c| c.dropped,
        ),
    ];
    for (name, help, value) in per_capture {
        family(&mut out, name, "counter", help);
        for (labels, _, _, capture) in &ports {
            let _ = writeln!(out, "{name}{{{labels}}} {}", value(capture));
        }
    }
    let mirrors: Vec<_> = switch
        .datapath()
        .mirrors()
        .map(|(spec, counts)| {
            let labels = format!(
                "switch=\"{sw}\",mirror=\"{}\",to=\"{}\"",
                label(&spec.name),
                label(&switch.port_name(spec.to))
            );
            (labels, counts)
        })
        .collect();
    let per_mirror: [Counter<MirrorCounts>; 2] = [
        (
            "vswitch_mirror_frames_total",
            "Copies a mirror sent out of its output port.",
            |c| c.frames,
        ),
        (
            "vswitch_mirror_dropped_frames_total",
            "Copies a mirror lost (its queue was full, or the output could not take them).",
            |c| c.dropped,
        ),
    ];
    for (name, help, value) in per_mirror {
        family(&mut out, name, "counter", help);
        for (labels, counts) in &mirrors {
            let _ = writeln!(out, "{name}{{{labels}}} {}", value(counts));
        }
    }
    let fdb = switch.bridge().fdb();
    let c = fdb.counters();
    let arp = switch.bridge().arp();
    let a = arp.counters();
    let table: [(&str, &str, &str, u64); 11] = [
        (
            "vswitch_fdb_entries",
            "gauge",
            "MAC table entries.",
            fdb.len() as u64,
        ),
        (
            "vswitch_fdb_static_entries",
            "gauge",
            "Static and sticky MAC entries.",
            fdb.static_len() as u64,
        ),
        (
            "vswitch_fdb_capacity",
            "gauge",
            "Most MAC entries held at once.",
            fdb.capacity() as u64,
        ),
        (
            "vswitch_fdb_learned_total",
            "counter",
            "MACs learned.",
            c.learned,
        ),
        (
            "vswitch_fdb_moved_total",
            "counter",
            "MACs seen moving to another port.",
            c.moved,
        ),
        (
            "vswitch_fdb_expired_total",
            "counter",
            "MAC entries aged out.",
            c.expired,
        ),
        (
            "vswitch_fdb_evicted_total",
            "counter",
            "MAC entries evicted from a full table.",
            c.evicted,
        ),
        (
            "vswitch_arp_entries",
            "gauge",
            "ARP bindings.",
            arp.len() as u64,
        ),
        (
            "vswitch_arp_suppressed_total",
            "counter",
            "ARP requests the switch answered itself.",
            a.suppressed,
        ),
        (
            "vswitch_arp_guarded_total",
            "counter",
            "ARP dropped by the guard.",
            a.guarded,
        ),
        (
            "vswitch_arp_malformed_total",
            "counter",
            "ARP frames that did not parse.",
            a.malformed,
        ),
    ];
    for (name, kind, help, value) in table {
        family(&mut out, name, kind, help);
        let _ = writeln!(out, "{name}{{switch=\"{sw}\"}} {value}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(label("x\ny"), "x\\ny");
    }
}
