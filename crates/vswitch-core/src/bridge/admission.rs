//! Stage 2 of a frame's path, ingress admission: what the ingress port's settings let in, and
//! into which VLAN. A frame refused here is dropped and counted on its ingress port with the
//! reason returned; storm control and port security belong here too.

use super::stats::DropReason;
use super::{LinkLocal, PortConfig, PortFlags, PortId, Security, VlanMode};
use crate::wire::EthernetProtocol;
use crate::wire::vlan as tag;

/// What the ingress port's settings make of a frame, copied out so the tables can be borrowed.
pub(super) struct Ingress {
    pub port: PortId,
    pub vlan: u16,
    pub guarded: bool,
    pub suppress: bool,
    pub flags: PortFlags,
    pub link_local: LinkLocal,
    pub security: Security,
    /// Where the frame's payload starts, past any 802.1Q tag, and its EtherType.
    pub l3: usize,
    pub ethertype: EthernetProtocol,
}

impl Ingress {
    /// What `config`, the settings of `port`, make of `frame` (`arp_suppress` is the
    /// switch-wide default), or why the frame is dropped: [`DropReason::AdminDown`] when the
    /// port's link is down for frames from its host, [`DropReason::Malformed`] when it is
    /// shorter than its Ethernet header and tag, [`DropReason::VlanFiltered`] when its VLAN is
    /// not the port's, or when it is put into an access or native VLAN as untagged (or
    /// priority-tagged) yet carries another VLAN tag behind: popped on a native trunk, that tag
    /// would carry it into another VLAN at the next switch (VLAN hopping by double tagging).
    pub fn admit(
        port: PortId,
        config: &PortConfig,
        arp_suppress: bool,
        frame: &[u8],
    ) -> Result<Ingress, DropReason> {
        if !config.link.rx() {
            return Err(DropReason::AdminDown);
        }
        if config.mirror_dest {
            return Err(DropReason::MirrorPort);
        }
        let (l3, ethertype) = tag::l3(frame).ok_or(DropReason::Malformed)?;
        let outer = tag::tci(frame).map(tag::vid);
        let vlan = config.vlan.ingress(outer).ok_or(DropReason::VlanFiltered)?;
        if outer.is_none_or(|vid| vid == 0)
            && config.vlan != VlanMode::All
            && tag::is_tpid(u16::from(ethertype))
        {
            return Err(DropReason::VlanFiltered);
        }
        Ok(Ingress {
            port,
            vlan,
            guarded: config.arp_guard,
            suppress: config.arp_suppress.unwrap_or(arp_suppress),
            flags: config.flags,
            link_local: config.link_local,
            security: config.security,
            l3,
            ethertype,
        })
    }
}
