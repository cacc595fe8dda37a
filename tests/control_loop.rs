//! The control socket served by the real reactor, without root: fake socketpair ports carry the
//! traffic, a Unix socket in a temporary directory carries the control protocol.

mod fake;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use fake::{BCAST, Host, PairPort, Switch, eth, hosts, mac};
use serde_json::Value;
use vswitch::bridge::BridgeConfig;
use vswitch::control::client::{Client, ClientError};
use vswitch::control::server::{BindError, ControlServer, MAX_CLIENTS};
use vswitch::control::{FdbRow, PortInfo, PortStatsRow, Request};
use vswitch::reactor::READ_BUDGET;
use vswitch::wire::MacAddr;

static N: AtomicU32 = AtomicU32::new(0);

/// A private directory for one test's socket, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("vswitch-ctl-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        TempDir(dir)
    }

    fn socket(&self) -> PathBuf {
        self.0.join("ctl.sock")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn start(ports: Vec<PairPort>, config: BridgeConfig, dir: &TempDir) -> Switch {
    let control = ControlServer::bind(&dir.socket()).unwrap();
    Switch::start_with(ports, config, READ_BUDGET, Some(control))
}

fn client(dir: &TempDir) -> Client {
    Client::connect(&dir.socket(), Duration::from_secs(5)).unwrap()
}

fn call(dir: &TempDir, request: Request) -> Result<Value, ClientError> {
    client(dir).call(&request)
}

fn ok(dir: &TempDir, request: Request) -> Value {
    call(dir, request.clone()).unwrap_or_else(|e| panic!("{request:?}: {e}"))
}

fn refused(dir: &TempDir, request: Request) -> String {
    match call(dir, request.clone()) {
        Err(ClientError::Refused(message)) => message,
        other => panic!("{request:?} should be refused, got {other:?}"),
    }
}

fn fdb(dir: &TempDir) -> Vec<FdbRow> {
    serde_json::from_value(ok(dir, Request::FdbShow {})).unwrap()
}

/// Sends a broadcast from `from` so the switch learns `src` there; drains the others.
fn teach(h: &mut [Host], from: usize, src: [u8; 6]) {
    h[from].send(&eth(BCAST, src, 60));
    for (i, host) in h.iter_mut().enumerate() {
        if i != from {
            host.recv(Duration::from_secs(5))
                .expect("flooded broadcast");
        }
    }
}

#[test]
fn the_table_ports_and_counters_are_visible_and_editable() {
    let dir = TempDir::new();
    let (ports, mut h) = hosts(3, false);
    let sw = start(ports, BridgeConfig::default(), &dir);
    teach(&mut h, 0, mac(1));
    teach(&mut h, 1, mac(2));

    let rows = fdb(&dir);
    let find = |rows: &[FdbRow], m: u8| rows.iter().find(|r| r.mac == MacAddr(mac(m))).cloned();
    assert_eq!(find(&rows, 1).unwrap().port, "p0");
    assert_eq!(find(&rows, 2).unwrap().port, "p1");
    assert!(rows.iter().all(|r| r.age.is_some() && !r.is_static));

    let ports: Vec<PortInfo> = serde_json::from_value(ok(&dir, Request::PortList {})).unwrap();
    let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["p0", "p1", "p2"]);
    assert_eq!(ports[0].macs, 1);
    assert_eq!(ports[0].kind, "dgram");

    let stats: Vec<PortStatsRow> = serde_json::from_value(ok(
        &dir,
        Request::PortStats {
            name: Some("p0".into()),
        },
    ))
    .unwrap();
    assert_eq!((stats[0].rx_frames, stats[0].tx_frames), (1, 1));
    assert_eq!(stats[0].rx_bytes, 60);
    assert_eq!(stats[0].drops["malformed"], 0);

    // A static entry steers frames for its MAC to its port, flooding no more.
    let x: MacAddr = "02:00:00:00:00:99".parse().unwrap();
    ok(
        &dir,
        Request::FdbAdd {
            port: "p2".into(),
            mac: x,
            vlan: 0,
            remote: None,
        },
    );
    let f = eth(x.octets(), mac(1), 60);
    h[0].send(&f);
    h[2].expect(&f);
    h[1].expect_silence();

    // Flush forgets learned entries only.
    let flushed = ok(&dir, Request::FdbFlush { port: None });
    assert_eq!(flushed["removed"], 2);
    let rows = fdb(&dir);
    assert_eq!(rows.len(), 1);
    assert!(rows[0].is_static && rows[0].age.is_none() && rows[0].port == "p2");

    // Deleting a port takes its entries with it; the rest keep forwarding.
    teach(&mut h, 1, mac(2));
    let del = ok(&dir, Request::PortDel { name: "p1".into() });
    assert_eq!(del["macs_removed"], 1);
    assert!(find(&fdb(&dir), 2).is_none());
    let ports: Vec<PortInfo> = serde_json::from_value(ok(&dir, Request::PortList {})).unwrap();
    assert_eq!(ports.len(), 2);
    h[0].send(&f);
    h[2].expect(&f);

    // Refusals say why and change nothing.
    let entries = |rows: Vec<FdbRow>| -> Vec<(String, MacAddr, bool)> {
        rows.into_iter()
            .map(|r| (r.port, r.mac, r.is_static))
            .collect()
    };
    let before = entries(fdb(&dir));
    let m = refused(
        &dir,
        Request::FdbAdd {
            port: "nope".into(),
            mac: x,
            vlan: 0,
            remote: None,
        },
    );
    assert!(m.contains("nope"), "{m}");
    let m = refused(
        &dir,
        Request::FdbAdd {
            port: "p0".into(),
            mac: MacAddr::BROADCAST,
            vlan: 0,
            remote: None,
        },
    );
    assert!(m.contains("not an individual"), "{m}");
    let m = refused(
        &dir,
        Request::FdbDel {
            mac: mac(7).into(),
            vlan: 0,
        },
    );
    assert!(m.contains("no entry"), "{m}");
    let m = refused(&dir, Request::FdbDel { mac: x, vlan: 4095 });
    assert!(m.contains("out of range"), "{m}");
    let m = refused(
        &dir,
        Request::PortAdd {
            spec: "bogus:x".into(),
        },
    );
    assert!(m.contains("bogus"), "{m}");
    let m = refused(&dir, Request::PortDel { name: "p1".into() });
    assert!(m.contains("p1"), "{m}");
    let m = refused(&dir, Request::Reload {});
    assert!(m.contains("without --config"), "{m}");
    assert_eq!(entries(fdb(&dir)), before);
    let show = ok(&dir, Request::Show {});
    assert_eq!(show["name"], "test");
    assert_eq!(show["fdb"]["static"], 1);
    drop(sw);
}

#[test]
fn static_entries_outlive_ageing() {
    let dir = TempDir::new();
    let config = BridgeConfig {
        mac_ageing: 1,
        ..BridgeConfig::default()
    };
    let (ports, mut h) = hosts(2, false);
    let sw = start(ports, config, &dir);
    teach(&mut h, 0, mac(1));
    ok(
        &dir,
        Request::FdbAdd {
            port: "p1".into(),
            mac: mac(2).into(),
            vlan: 0,
            remote: None,
        },
    );
    let deadline = Instant::now() + Duration::from_secs(8);
    while fdb(&dir).len() > 1 {
        assert!(
            Instant::now() < deadline,
            "the learned entry never aged out"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let rows = fdb(&dir);
    assert_eq!(rows[0].mac, MacAddr(mac(2)));
    assert!(rows[0].is_static);
    let stats = ok(&dir, Request::FdbStats {});
    assert!(stats["expired"].as_u64().unwrap() >= 1);
    assert_eq!(stats["static"], 1);
    drop(sw);
}

fn read_line(reader: &mut BufReader<UnixStream>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    line
}

fn raw(dir: &TempDir) -> (UnixStream, BufReader<UnixStream>) {
    let stream = UnixStream::connect(dir.socket()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let reader = BufReader::new(stream.try_clone().unwrap());
    (stream, reader)
}

#[test]
fn garbage_is_answered_and_disconnected_but_a_bad_request_is_not() {
    let dir = TempDir::new();
    let (ports, _h) = hosts(1, false);
    let sw = start(ports, BridgeConfig::default(), &dir);

    let (mut w, mut r) = raw(&dir);
    w.write_all(b"hello, switch\n").unwrap();
    let reply: Value = serde_json::from_str(&read_line(&mut r)).unwrap();
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("not a JSON request")
    );
    assert_eq!(read_line(&mut r), "", "the connection should be closed");

    // A well-formed request with a bad argument is refused; the connection stays usable, and
    // pipelined requests are answered in order.
    let (mut w, mut r) = raw(&dir);
    w.write_all(
        b"{\"cmd\":\"fdb-del\",\"mac\":\"zz\"}\n{\"cmd\":\"version\"}\n{\"cmd\":\"nope\"}\n",
    )
    .unwrap();
    let first: Value = serde_json::from_str(&read_line(&mut r)).unwrap();
    assert!(
        first["error"].as_str().unwrap().contains("invalid MAC"),
        "{first}"
    );
    let second: Value = serde_json::from_str(&read_line(&mut r)).unwrap();
    assert_eq!(second["ok"]["version"], env!("CARGO_PKG_VERSION"));
    let third: Value = serde_json::from_str(&read_line(&mut r)).unwrap();
    assert!(
        third["error"].as_str().unwrap().contains("unknown variant"),
        "{third}"
    );
    w.write_all(b"{\"cmd\":\"show\"}\n").unwrap();
    let fourth: Value = serde_json::from_str(&read_line(&mut r)).unwrap();
    assert_eq!(fourth["ok"]["name"], "test");

    // A line longer than the limit is refused and the client dropped.
    let (mut w, mut r) = raw(&dir);
    let _ = w.write_all(&vec![b'x'; 70 * 1024]);
    let reply: Value = serde_json::from_str(&read_line(&mut r)).unwrap();
    assert!(reply["error"].as_str().unwrap().contains("longer than"));
    assert_eq!(read_line(&mut r), "");

    // A request without a newline before the client half-closes is still answered.
    let (mut w, mut r) = raw(&dir);
    w.write_all(b"{\"cmd\":\"version\"}").unwrap();
    w.shutdown(std::net::Shutdown::Write).unwrap();
    let reply: Value = serde_json::from_str(&read_line(&mut r)).unwrap();
    assert!(reply["ok"]["version"].is_string());
    drop(sw);
}

/// Sends `n` frames from host 0 to host 1 one at a time, each checked on arrival.
fn lockstep(h: &mut [Host], n: usize) {
    let f = eth(mac(2), mac(1), 100);
    for _ in 0..n {
        h[0].send(&f);
        h[1].expect(&f);
    }
}

#[test]
fn fifty_clients_at_once_while_frames_flow() {
    let dir = TempDir::new();
    let (ports, mut h) = hosts(2, false);
    let sw = start(ports, BridgeConfig::default(), &dir);
    teach(&mut h, 1, mac(2));
    let socket = dir.socket();
    let clients: Vec<_> = (0..50)
        .map(|i| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(&socket, Duration::from_secs(10)).unwrap();
                for j in 0..20 {
                    let request = match (i + j) % 4 {
                        0 => Request::Show {},
                        1 => Request::FdbShow {},
                        2 => Request::PortStats { name: None },
                        _ => Request::FdbStats {},
                    };
                    c.call(&request)
                        .unwrap_or_else(|e| panic!("client {i}: {e}"));
                }
            })
        })
        .collect();
    lockstep(&mut h, 2000);
    for c in clients {
        c.join().unwrap();
    }
    let stats: Vec<PortStatsRow> = serde_json::from_value(ok(
        &dir,
        Request::PortStats {
            name: Some("p1".into()),
        },
    ))
    .unwrap();
    assert_eq!(stats[0].tx_frames, 2000);
    drop(sw);
}

#[test]
fn a_client_that_never_reads_stalls_nothing() {
    let dir = TempDir::new();
    let (ports, mut h) = hosts(2, false);
    let sw = start(ports, BridgeConfig::default(), &dir);
    // Many requests, never a reply read: the server stops reading from this client once the
    // socket is full, and keeps forwarding and serving others.
    let mut hog = UnixStream::connect(dir.socket()).unwrap();
    hog.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let line = b"{\"cmd\":\"show\"}\n";
    let mut sent = 0;
    while sent < 100_000 && hog.write_all(line).is_ok() {
        sent += 1;
    }
    lockstep(&mut h, 200);
    assert_eq!(
        ok(&dir, Request::Version {})["version"],
        env!("CARGO_PKG_VERSION")
    );
    // The hog still gets its replies, in order, when it reads.
    let mut r = BufReader::new(hog.try_clone().unwrap());
    hog.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let reply: Value = serde_json::from_str(&read_line(&mut r)).unwrap();
    assert_eq!(reply["ok"]["name"], "test");
    drop(sw);
}

#[test]
fn idle_clients_are_shed_and_only_busy_ones_turn_a_client_away() {
    let dir = TempDir::new();
    let (ports, _h) = hosts(1, false);
    let sw = start(ports, BridgeConfig::default(), &dir);
    // Idle connections cannot lock the operator out: the longest idle makes room.
    let idle: Vec<UnixStream> = (0..MAX_CLIENTS)
        .map(|_| UnixStream::connect(dir.socket()).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    call(&dir, Request::Version {}).expect("served although every slot was taken");
    let mut first = BufReader::new(idle[0].try_clone().unwrap());
    idle[0]
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(read_line(&mut first), "", "the longest idle was let go");
    drop(idle);
    // Clients in the middle of a request are busy, not idle: past the limit a new one is told
    // why, intact, even though it wrote its request first.
    let busy: Vec<UnixStream> = (0..MAX_CLIENTS)
        .map(|_| {
            let mut s = UnixStream::connect(dir.socket()).unwrap();
            s.write_all(b"{\"cmd\":").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let err = call(&dir, Request::Version {}).unwrap_err().to_string();
    assert!(err.contains("too many busy control clients"), "{err}");
    drop(busy);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match call(&dir, Request::Version {}) {
            Ok(_) => break,
            Err(e) => assert!(Instant::now() < deadline, "{e}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(sw);
}

#[test]
fn a_live_socket_is_kept_a_stale_one_replaced() {
    let dir = TempDir::new();
    let first = ControlServer::bind(&dir.socket()).unwrap();
    assert!(matches!(
        ControlServer::bind(&dir.socket()),
        Err(BindError::InUse(_))
    ));
    drop(first);
    assert!(
        !dir.socket().exists(),
        "a server removes its socket when it goes"
    );
    let mut lock = dir.socket().into_os_string();
    lock.push(".lock");
    assert!(!std::path::Path::new(&lock).exists(), "and its lock file");

    // A socket file nobody listens on (a daemon that was killed) is replaced.
    drop(std::os::unix::net::UnixListener::bind(dir.socket()).unwrap());
    assert!(dir.socket().exists());
    let second = ControlServer::bind(&dir.socket()).unwrap();
    drop(second);

    std::fs::write(dir.socket(), b"not a socket").unwrap();
    let e = ControlServer::bind(&dir.socket()).err().unwrap();
    assert!(matches!(e, BindError::NotASocket(_)), "{e}");
    assert!(e.to_string().contains("not a socket"));

    let nested = dir.0.join("a/b/ctl.sock");
    let third = ControlServer::bind(&nested).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&nested).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660);
    drop(third);
}

#[test]
fn unreachable_daemons_are_reported_as_such() {
    let dir = TempDir::new();
    match Client::connect(&dir.socket(), Duration::from_secs(1)) {
        Err(e @ ClientError::Unreachable { .. }) => {
            let m = e.to_string();
            assert!(
                m.contains("ctl.sock") && m.contains("is vswitchd running"),
                "{m}"
            );
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    drop(std::os::unix::net::UnixListener::bind(dir.socket()).unwrap());
    let e = Client::connect(&dir.socket(), Duration::from_secs(1))
        .err()
        .unwrap();
    assert!(e.to_string().contains("not running"), "{e}");
    // A peer that accepts but never answers times out instead of hanging.
    let listener = std::os::unix::net::UnixListener::bind(dir.0.join("mute.sock")).unwrap();
    let mut c = Client::connect(&dir.0.join("mute.sock"), Duration::from_millis(300)).unwrap();
    let e = c.call(&Request::Version {}).err().unwrap();
    assert!(e.to_string().contains("no reply in time"), "{e}");
    drop(listener);
}

#[test]
fn a_client_pipelining_requests_as_fast_as_it_can_does_not_starve_forwarding() {
    let dir = TempDir::new();
    let (ports, mut h) = hosts(2, false);
    let sw = start(ports, BridgeConfig::default(), &dir);
    teach(&mut h, 1, mac(2));
    // One thread writes requests without pause, another reads the replies: the switch always
    // has a request ready from this client.
    let stream = UnixStream::connect(dir.socket()).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writer = stream.try_clone().unwrap();
    writer
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let stop_w = stop.clone();
    let w = std::thread::spawn(move || {
        while !stop_w.load(Ordering::SeqCst) {
            let _ = writer.write_all(b"{\"cmd\":\"version\"}\n");
        }
    });
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let stop_r = stop.clone();
    let r = std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut replies = 0u64;
        let mut line = String::new();
        while !stop_r.load(Ordering::SeqCst) {
            line.clear();
            if reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                replies += 1;
            }
        }
        replies
    });
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    lockstep(&mut h, 200);
    let took = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    w.join().unwrap();
    let replies = r.join().unwrap();
    assert!(replies > 100, "the client was answered ({replies} replies)");
    assert!(took < Duration::from_secs(20), "200 frames took {took:?}");
    drop(sw);
}

#[test]
fn a_disconnected_client_that_keeps_talking_is_dropped_in_bounded_time() {
    let dir = TempDir::new();
    let (ports, _h) = hosts(1, false);
    let sw = start(ports, BridgeConfig::default(), &dir);
    let (mut w, mut r) = raw(&dir);
    w.write_all(b"garbage\n").unwrap();
    assert!(read_line(&mut r).contains("error"));
    assert_eq!(
        read_line(&mut r),
        "",
        "the switch shuts down its side after the error"
    );
    // The client keeps sending: the switch discards it, and drops the connection within its
    // drain deadline (5 s, checked every second) though this client never closes. Then
    // writes fail.
    let started = Instant::now();
    loop {
        if w.write_all(b"more").is_err() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(9),
            "the switch still holds the connection"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(sw);
}

#[test]
fn a_big_table_is_dumped_in_pieces_while_other_clients_are_served() {
    let dir = TempDir::new();
    let (ports, _h) = hosts(1, false);
    let config = BridgeConfig {
        mac_table_size: 100_000,
        ..BridgeConfig::default()
    };
    let sw = start(ports, config, &dir);
    let mut c = client(&dir);
    const N: u32 = 20_000;
    for n in 0..N {
        c.call(&Request::FdbAdd {
            port: "p0".into(),
            mac: MacAddr([0x02, 0, 0, (n >> 16) as u8, (n >> 8) as u8, n as u8]),
            vlan: (n % 7) as u16,
            remote: None,
        })
        .unwrap();
    }
    // A dump that nobody reads for a while: the switch answers others meanwhile.
    let (mut w, mut r) = raw(&dir);
    w.write_all(b"{\"cmd\":\"fdb-show\"}\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    ok(&dir, Request::Version {});
    assert!(started.elapsed() < Duration::from_secs(2));
    let reply: Value = serde_json::from_str(&read_line(&mut r)).unwrap();
    let rows: Vec<FdbRow> = serde_json::from_value(reply["ok"].clone()).unwrap();
    assert_eq!(rows.len(), N as usize);
    let mut macs: Vec<MacAddr> = rows.iter().map(|r| r.mac).collect();
    macs.sort();
    macs.dedup();
    assert_eq!(macs.len(), N as usize, "every entry once");
    // The same connection goes on with its next request.
    w.write_all(b"{\"cmd\":\"version\"}\n").unwrap();
    let next: Value = serde_json::from_str(&read_line(&mut r)).unwrap();
    assert!(next["ok"]["version"].is_string(), "{next}");
    drop(sw);
}
