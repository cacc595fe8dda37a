//! The topology's `[check] ping` entries, run with `ping` inside the source host's namespace,
//! reported as a pass/fail table.

use std::time::Duration;

use super::LabError;
use super::file::{Check, Target, Topology};
use super::plan::Plan;
use super::run::{need_tools, output};
use super::status::table;

/// Pings sent for a check that expects replies; one reply is enough (a lossy link may lose
/// some), and the RTT bound is checked on the median.
const OK_COUNT: &str = "5";
/// Pings sent for a check that expects none, and the seconds allowed for a reply.
const FAILS_COUNT: &str = "3";
const FAILS_DEADLINE: &str = "3";

/// What one ping run saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Pings {
    pub sent: u32,
    pub received: u32,
    pub rtts: Vec<f64>,
}

impl Pings {
    /// The median round trip in milliseconds.
    pub fn median(&self) -> Option<f64> {
        let mut rtts = self.rtts.clone();
        rtts.sort_by(f64::total_cmp);
        match rtts.len() {
            0 => None,
            n if n % 2 == 1 => Some(rtts[n / 2]),
            n => Some((rtts[n / 2 - 1] + rtts[n / 2]) / 2.0),
        }
    }
}

/// Reads iputils ping's output: `time=X ms` of each reply and the summary's counts.
pub fn parse_ping(text: &str) -> Pings {
    let rtts = text
        .lines()
        .filter_map(|l| {
            l.split_once("time=")?
                .1
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    let mut sent = 0;
    let mut received = 0;
    if let Some(summary) = text.lines().find(|l| l.contains("packets transmitted")) {
        for part in summary.split(',') {
            let mut words = part.split_whitespace();
            let n = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            match words.next() {
                Some("packets") => sent = n,
                Some("received") => received = n,
                _ => {}
            }
        }
    }
    Pings {
        sent,
        received,
        rtts,
    }
}

/// The address a check pings: the target node's first IPv4 address (else its first address),
/// or the address written.
fn target_address(topo: &Topology, plan: &Plan, check: &Check) -> Option<String> {
    match &check.to {
        Target::Addr(addr) => Some(addr.to_string()),
        Target::Node(node) => {
            let all = plan.addresses(topo, node);
            let pick = all.iter().find(|a| !a.contains(':')).or(all.first())?;
            Some(pick.split('/').next().unwrap_or(pick).to_owned())
        }
    }
}

/// Runs one check; `(address, what ping saw, passed)`.
fn run_one(topo: &Topology, plan: &Plan, check: &Check) -> Result<(String, Pings, bool), LabError> {
    let ns = plan
        .namespace_of(&check.from)
        .ok_or_else(|| LabError::Usage(format!("no host {:?}", check.from)))?;
    let addr = target_address(topo, plan, check)
        .ok_or_else(|| LabError::Usage(format!("{}: the target has no address", check.text)))?;
    let mut args = vec!["ip", "netns", "exec", ns, "ping", "-n", "-i", "0.2"];
    if check.expect_ok {
        args.extend(["-c", OK_COUNT, "-W", "2", "-w", "6"]);
    } else {
        args.extend(["-c", FAILS_COUNT, "-w", FAILS_DEADLINE]);
    }
    args.push(&addr);
    let out = output(&args, Duration::from_secs(20))?;
    if out.stdout.is_empty() && !out.stderr.is_empty() && !out.success {
        // ping could not even start (no route, a bad address): no replies, but say why.
        eprintln!("vswitch-lab: {}: {}", check.text, out.stderr.trim());
    }
    let pings = parse_ping(&out.stdout);
    let replied = pings.received > 0;
    let passed = if check.expect_ok {
        replied
            && check
                .rtt
                .is_none_or(|bound| pings.median().is_some_and(|m| bound.holds(m)))
    } else {
        !replied
    };
    Ok((addr, pings, passed))
}

/// Runs every check and returns the report table and whether all passed.
pub fn run_checks(topo: &Topology, plan: &Plan) -> Result<(String, bool), LabError> {
    need_tools(&["ip", "ping"])?;
    let mut rows = vec![[
        "check".to_owned(),
        "address".to_owned(),
        "replies".to_owned(),
        "rtt (median)".to_owned(),
        "result".to_owned(),
    ]];
    let mut passed_all = true;
    let mut passed = 0;
    for check in &topo.checks {
        let (addr, pings, pass) = run_one(topo, plan, check)?;
        passed_all &= pass;
        passed += usize::from(pass);
        let mut text = format!(
            "ping {} -> {} {}",
            check.from,
            match &check.to {
                Target::Node(n) => n.clone(),
                Target::Addr(a) => a.to_string(),
            },
            if check.expect_ok { "ok" } else { "fails" }
        );
        if let Some(bound) = check.rtt {
            text.push_str(&format!(" {bound}"));
        }
        rows.push([
            text,
            addr,
            format!("{}/{}", pings.received, pings.sent),
            pings
                .median()
                .map(|m| format!("{m:.1} ms"))
                .unwrap_or_else(|| "-".into()),
            if pass { "pass" } else { "FAIL" }.to_owned(),
        ]);
    }
    let mut out = table(&rows);
    out.push_str(&format!(
        "{passed} of {} checks passed\n",
        topo.checks.len()
    ));
    Ok((out, passed_all))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_output_is_read() {
        let text = "PING 10.0.0.2 (10.0.0.2) 56(84) bytes of data.
64 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=81.2 ms
64 bytes from 10.0.0.2: icmp_seq=3 ttl=64 time=80.4 ms
64 bytes from 10.0.0.2: icmp_seq=4 ttl=64 time=80.9 ms

--- 10.0.0.2 ping statistics ---
5 packets transmitted, 3 received, 40% packet loss, time 812ms
rtt min/avg/max/mdev = 80.4/80.8/81.2/0.3 ms
";
        let p = parse_ping(text);
        assert_eq!((p.sent, p.received), (5, 3));
        assert_eq!(p.median(), Some(80.9));
    }

    #[test]
    fn no_reply_is_zero_received() {
        let text = "PING 10.0.0.9 (10.0.0.9) 56(84) bytes of data.
From 10.0.0.1 icmp_seq=1 Destination Host Unreachable

--- 10.0.0.9 ping statistics ---
3 packets transmitted, 0 received, +1 errors, 100% packet loss, time 2040ms
";
        let p = parse_ping(text);
        assert_eq!((p.sent, p.received), (3, 0));
        assert_eq!(p.median(), None);
    }

    #[test]
    fn median_of_an_even_count_is_the_middle_pair_mean() {
        let p = Pings {
            sent: 4,
            received: 4,
            rtts: vec![4.0, 1.0, 3.0, 2.0],
        };
        assert_eq!(p.median(), Some(2.5));
    }
}
