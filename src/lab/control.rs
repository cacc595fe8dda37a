//! Changing a running lab through its switches' control sockets: `set` (a link's keys at
//! runtime, as `vswitchctl port set`) and the switch port `capture` reads.

use std::time::Duration;

use super::LabError;
use super::plan::{Plan, PortEnd};
use crate::control::Request;
use crate::control::client::{Client, ClientError};

/// Applies `KEY=VALUE` pairs to every switch port of link `link`; returns one line per port.
pub fn set(plan: &Plan, link: &str, pairs: &[String]) -> Result<Vec<String>, LabError> {
    let lp = plan.link(link).ok_or_else(|| unknown_link(plan, link))?;
    let mut parsed = Vec::new();
    for pair in pairs {
        let (k, v) = pair
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| LabError::Usage(format!("{pair:?} is not KEY=VALUE")))?;
        parsed.push((k, v));
    }
    let mut lines = Vec::new();
    for end in &lp.ports {
        let settings: Vec<String> = parsed
            .iter()
            .flat_map(|(k, v)| lp.options(k, v))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let sw = plan.switch(&end.switch).expect("planned switch");
        let request = Request::PortSet {
            name: end.port.clone(),
            settings: settings.clone(),
        };
        Client::connect(&sw.ctl, Duration::from_secs(5))
            .and_then(|mut c| c.call(&request))
            .map_err(|e| match e {
                ClientError::Refused(m) => LabError::Failed(format!(
                    "switch {} refused {} on port {}: {m}",
                    end.switch,
                    settings.join(" "),
                    end.port
                )),
                other => {
                    LabError::Failed(format!("switch {}: {other} (is the lab up?)", end.switch))
                }
            })?;
        lines.push(format!(
            "{} port {}: {}",
            end.switch,
            end.port,
            settings.join(" ")
        ));
    }
    Ok(lines)
}

/// The switch port a capture of link `link` reads: the end on switch `at`, or the first.
pub fn capture_port<'a>(
    plan: &'a Plan,
    link: &str,
    at: Option<&str>,
) -> Result<&'a PortEnd, LabError> {
    let lp = plan.link(link).ok_or_else(|| unknown_link(plan, link))?;
    match at {
        None => Ok(&lp.ports[0]),
        Some(sw) => lp.ports.iter().find(|p| p.switch == sw).ok_or_else(|| {
            LabError::Usage(format!(
                "link {link} has no end on switch {sw:?} (its switches: {})",
                lp.ports
                    .iter()
                    .map(|p| p.switch.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }),
    }
}

fn unknown_link(plan: &Plan, link: &str) -> LabError {
    LabError::Usage(format!(
        "no link named {link:?} (links: {})",
        plan.links
            .iter()
            .map(|l| l.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}
