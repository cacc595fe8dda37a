//! Live capture: a tap on one or more ports that writes pcapng into a bounded buffer, which the
//! loop streams to a `vswitchctl capture` client over the control socket. The switch never
//! waits for the reader: when the buffer is full, frames are dropped from the capture (and
//! counted in its statistics blocks), never from the switch.

pub mod pcapng;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::bridge::PortId;
use crate::datapath::taps::{Direction, Tap};
use crate::switch::Switch;
use crate::wire::vlan::MAX_VID;
use crate::wire::{MacAddr, VNET_HDR_LEN};

/// Most bytes of pcapng a capture holds for its reader.
pub const BUFFER_BYTES: usize = 4 << 20;
/// The snap length when none is asked for (tcpdump's): a TSO super-frame whole.
pub const DEFAULT_SNAPLEN: u32 = 262_144;

/// One captured port: its number and name (to notice when it goes) and its interface number
/// in the capture.
#[derive(Clone, Debug)]
pub struct CapturedPort {
    pub id: PortId,
    pub name: String,
}

/// What a capture asks for.
#[derive(Clone, Debug)]
pub struct CaptureSpec {
    pub ports: Vec<CapturedPort>,
    /// `None`: both directions.
    pub direction: Option<Direction>,
    /// Stop after this many frames.
    pub count: Option<u64>,
    pub snaplen: u32,
    pub filter: CaptureFilter,
}

/// Which frames a capture keeps; every field set must match.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureFilter {
    /// Classified into this VLAN by the switch.
    pub vlan: Option<u16>,
    /// From or to this MAC.
    pub mac: Option<MacAddr>,
    /// Of this EtherType, after any 802.1Q/802.1ad tags.
    pub ethertype: Option<u16>,
}

impl CaptureFilter {
    pub fn parse(
        vlan: Option<u16>,
        mac: Option<&str>,
        ethertype: Option<u16>,
    ) -> Result<CaptureFilter, String> {
        if let Some(v) = vlan
            && v > MAX_VID
        {
            return Err(format!("capture: vlan {v}: expected 0 to {MAX_VID}"));
        }
        let mac = mac
            .map(|m| {
                m.parse::<MacAddr>()
                    .map_err(|e| format!("capture: mac {m:?}: {e}"))
            })
            .transpose()?;
        Ok(CaptureFilter {
            vlan,
            mac,
            ethertype,
        })
    }

    /// Whether an Ethernet frame (from its destination address on) passes the MAC and
    /// EtherType parts.
    fn accepts(&self, eth: &[u8]) -> bool {
        if let Some(mac) = self.mac
            && eth.get(..6) != Some(&mac.0[..])
            && eth.get(6..12) != Some(&mac.0[..])
        {
            return false;
        }
        if let Some(want) = self.ethertype {
            let mut at = 12;
            let mut ethertype = None;
            while let Some(b) = eth.get(at..at + 2) {
                let t = u16::from_be_bytes([b[0], b[1]]);
                if matches!(t, 0x8100 | 0x88a8 | 0x9100) {
                    at += 4;
                    continue;
                }
                ethertype = Some(t);
                break;
            }
            return ethertype == Some(want);
        }
        true
    }
}

impl CaptureSpec {
    /// The spec of a `capture` request: every port must be attached; `direction` is `rx`,
    /// `tx` or `both`; `count` at least 1; `snaplen` 64 to 262144.
    pub fn parse(
        switch: &Switch,
        ports: &[String],
        direction: Option<&str>,
        count: Option<u64>,
        snaplen: Option<u32>,
        filter: CaptureFilter,
    ) -> Result<CaptureSpec, String> {
        if ports.is_empty() {
            return Err("capture: name at least one port".to_owned());
        }
        let mut captured = Vec::new();
        for name in ports {
            let id = switch
                .port_id(name)
                .ok_or_else(|| format!("capture: no port named {name:?}"))?;
            if !captured.iter().any(|p: &CapturedPort| p.id == id) {
                captured.push(CapturedPort {
                    id,
                    name: name.clone(),
                });
            }
        }
        let direction = match direction {
            None | Some("both") => None,
            Some("rx") => Some(Direction::Rx),
            Some("tx") => Some(Direction::Tx),
            Some(other) => {
                return Err(format!(
                    "capture: direction {other:?}: expected rx, tx or both"
                ));
            }
        };
        if count == Some(0) {
            return Err("capture: count must be at least 1".to_owned());
        }
        let snaplen = snaplen.unwrap_or(DEFAULT_SNAPLEN);
        if !(64..=DEFAULT_SNAPLEN).contains(&snaplen) {
            return Err(format!(
                "capture: snaplen {snaplen}: expected 64 to {DEFAULT_SNAPLEN}"
            ));
        }
        Ok(CaptureSpec {
            ports: captured,
            direction,
            count,
            snaplen,
            filter,
        })
    }
}

/// Per captured port: frames seen, and frames dropped because the buffer was full.
#[derive(Clone, Copy, Debug, Default)]
pub struct PortCounts {
    pub seen: u64,
    pub dropped: u64,
}

/// What the tap (in the datapath) and the loop (streaming it) share.
#[derive(Debug, Default)]
pub struct Shared {
    /// pcapng not yet handed to the client.
    pub pending: Vec<u8>,
    pub counts: Vec<PortCounts>,
    /// Frames written.
    pub captured: u64,
    /// The count was reached: the capture ends once `pending` is out.
    pub done: bool,
}

/// The tap: writes the frames it wants as Enhanced Packet Blocks.
pub struct CaptureTap {
    spec: CaptureSpec,
    /// The switch's start in nanoseconds since the epoch: frame times are relative to it.
    epoch_ns: u64,
    shared: Arc<Mutex<Shared>>,
}

/// Locks the shared state; a poisoned lock (a panic elsewhere) still holds good data.
pub fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

impl Tap for CaptureTap {
    fn wants(&self, port: PortId, direction: Direction, vlan: Option<u16>) -> bool {
        self.spec.direction.is_none_or(|d| d == direction)
            && self.spec.filter.vlan.is_none_or(|v| vlan == Some(v))
            && self.spec.ports.iter().any(|p| p.id == port)
    }

    fn frame(&mut self, port: PortId, direction: Direction, frame: &[u8], now: Duration) {
        let Some(interface) = self.spec.ports.iter().position(|p| p.id == port) else {
            return;
        };
        let mut shared = lock(&self.shared);
        if shared.done {
            return;
        }
        let eth = frame.get(VNET_HDR_LEN..).unwrap_or_default();
        if !self.spec.filter.accepts(eth) {
            return;
        }
        let data = &eth[..eth.len().min(self.spec.snaplen as usize)];
        shared.counts[interface].seen += 1;
        if shared.pending.len() + pcapng::packet_len(data.len()) > BUFFER_BYTES {
            shared.counts[interface].dropped += 1;
            return;
        }
        let flags = match direction {
            Direction::Rx => pcapng::INBOUND,
            Direction::Tx => pcapng::OUTBOUND,
        };
        let ns = self.epoch_ns + now.as_nanos() as u64;
        pcapng::packet(
            &mut shared.pending,
            interface as u32,
            ns,
            data,
            eth.len(),
            flags,
        );
        shared.captured += 1;
        if self.spec.count.is_some_and(|c| shared.captured >= c) {
            shared.done = true;
        }
    }
}

/// A capture attached to the switch: its tap's shared state and what it watches.
pub struct Capture {
    pub spec: CaptureSpec,
    pub shared: Arc<Mutex<Shared>>,
    epoch_ns: u64,
}

impl Capture {
    /// Makes the tap for `spec` on `switch`, and the capture's first bytes: the Section
    /// Header and one Interface Description per port.
    pub fn new(switch: &Switch, spec: CaptureSpec) -> (Capture, CaptureTap, Vec<u8>) {
        let started = SystemTime::now() - switch.now();
        let epoch_ns = started
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut head = Vec::new();
        let app = format!("vswitchd {}", env!("CARGO_PKG_VERSION"));
        pcapng::section_header(&mut head, &app);
        for p in &spec.ports {
            let kind = switch
                .port(p.id)
                .map_or_else(String::new, |port| format!("vswitchd {} port", port.kind()));
            pcapng::interface(&mut head, &p.name, &kind, spec.snaplen);
        }
        let shared = Arc::new(Mutex::new(Shared {
            counts: vec![PortCounts::default(); spec.ports.len()],
            ..Shared::default()
        }));
        let tap = CaptureTap {
            spec: spec.clone(),
            epoch_ns,
            shared: Arc::clone(&shared),
        };
        (
            Capture {
                spec,
                shared,
                epoch_ns,
            },
            tap,
            head,
        )
    }

    /// Appends an Interface Statistics Block per port (frames seen and dropped so far) to the
    /// capture's pending bytes.
    pub fn statistics(&self, now: Duration) {
        let mut shared = lock(&self.shared);
        let ns = self.epoch_ns + now.as_nanos() as u64;
        let counts = shared.counts.clone();
        for (i, c) in counts.iter().enumerate() {
            pcapng::statistics(&mut shared.pending, i as u32, ns, c.seen, c.dropped);
        }
    }

    /// Whether a captured port was removed (or replaced by another of the same number).
    pub fn port_gone(&self, switch: &Switch) -> bool {
        self.spec
            .ports
            .iter()
            .any(|p| switch.port(p.id).is_none_or(|port| port.name() != p.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(dst: u8, src: u8, tags: &[u16], ethertype: u16) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, dst, 2, 0, 0, 0, 0, src];
        for &tpid in tags {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&[0, 10]);
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.resize(f.len() + 46, 0);
        f
    }

    #[test]
    fn filters_match_macs_either_way_and_ethertypes_behind_tags() {
        let arp = CaptureFilter::parse(None, None, Some(0x0806)).unwrap();
        assert!(arp.accepts(&frame(1, 2, &[], 0x0806)));
        assert!(arp.accepts(&frame(1, 2, &[0x88a8, 0x8100], 0x0806)));
        assert!(!arp.accepts(&frame(1, 2, &[0x8100], 0x0800)));
        assert!(
            !arp.accepts(&frame(1, 2, &[0x8100], 0x0800)[..14]),
            "cut short"
        );

        let mac = CaptureFilter::parse(None, Some("02:00:00:00:00:02"), None).unwrap();
        assert!(mac.accepts(&frame(1, 2, &[], 0x0800)));
        assert!(mac.accepts(&frame(2, 1, &[], 0x0800)));
        assert!(!mac.accepts(&frame(1, 3, &[], 0x0800)));

        assert!(CaptureFilter::parse(Some(4095), None, None).is_err());
        let err = CaptureFilter::parse(None, Some("02:00"), None).unwrap_err();
        assert!(err.contains("mac \"02:00\""), "{err}");
    }
}
