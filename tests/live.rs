//! `spanwatch live` on AF_XDP, end to end, in network namespaces this test creates and removes:
//! a sender namespace floods a veth with a bounded number of UDP datagrams of mixed sizes (and
//! real TCP connections), spanwatch captures the far end in skb and in native mode, and the
//! counts must equal what was sent and what an offline read of tcpdump's copy gives. Also: after
//! `kill -9` no XDP program stays attached; a second capture never replaces the first's program;
//! bad interfaces fail with one line; frames the kernel drops (kernel-transmitted frames against
//! the smallest rings) are counted once each. Needs root (CAP_NET_ADMIN, CAP_BPF); skips with a notice
//! otherwise. Addresses: 198.18.0.0/15 only.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The live tests share two CPUs: run them one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The turn of one live test (None, with a notice, where these tests cannot run: not root, no
/// iproute2): held for the whole test, so the live tests run one at a time.
fn turn() -> Option<std::sync::MutexGuard<'static, ()>> {
    // The effective uid, from /proc.
    if !(common::is_root() && Command::new("ip").arg("-V").output().is_ok()) {
        eprintln!("NOTICE: not root or no iproute2: live AF_XDP tests skipped");
        return None;
    }
    Some(SERIAL.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Two namespaces joined by a veth; removed on drop.
struct Lab {
    snd: String,
    cap: String,
}

fn sh(args: &[&str]) {
    let o = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

impl Lab {
    fn new(tag: &str) -> Lab {
        let id = std::process::id() % 100_000;
        let lab = Lab {
            snd: format!("swl-s{tag}{id}"),
            cap: format!("swl-c{tag}{id}"),
        };
        sh(&["ip", "netns", "add", &lab.snd]);
        sh(&["ip", "netns", "add", &lab.cap]);
        sh(&[
            "ip", "link", "add", "swl0", "netns", &lab.snd, "type", "veth", "peer", "name", "swl1",
            "netns", &lab.cap,
        ]);
        for (ns, dev, addr) in [
            (&lab.snd, "swl0", "198.18.7.1/24"),
            (&lab.cap, "swl1", "198.18.7.2/24"),
        ] {
            sh(&[
                "ip",
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
            ]);
            sh(&["ip", "-n", ns, "addr", "add", addr, "dev", dev]);
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
            // GSO/GRO super-packets are dropped in skb mode: the capture path runs without them.
            let _ = Command::new("ip")
                .args([
                    "netns", "exec", ns, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro",
                    "off",
                ])
                .output();
        }
        // The capture side never answers ARP (AF_XDP takes its frames): give the sender its MAC.
        let mac = mac_text(&lab.cap, "swl1");
        sh(&[
            "ip",
            "-n",
            &lab.snd,
            "neigh",
            "replace",
            "198.18.7.2",
            "lladdr",
            &mac,
            "dev",
            "swl0",
            "nud",
            "permanent",
        ]);
        lab
    }

    fn spanwatch(&self, extra: &[&str], metrics: &std::path::Path) -> Child {
        let m = metrics.to_str().unwrap();
        let mut args = vec!["--listen", "off", "--workers", "2", "--metrics-out", m];
        args.extend_from_slice(extra);
        self.start(&args, &[])
    }

    /// Starts `spanwatch live --iface swl1 ARGS` in the capture namespace with `env` set, and
    /// waits until it says it is capturing.
    fn start(&self, args: &[&str], env: &[(&str, &str)]) -> Child {
        let mut c = self
            .live()
            .args(args)
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let err = c.stderr.take().unwrap();
        let mut lines = BufReader::new(err).lines();
        let first = lines.next().and_then(|l| l.ok()).unwrap_or_default();
        assert!(
            first.contains("capturing on swl1"),
            "spanwatch live did not start: {first}"
        );
        std::thread::spawn(move || for _ in lines {});
        c
    }

    /// Sends `n` UDP datagrams of sizes cycling from 18 to 1400 bytes, at a bounded, moderate rate
    /// (at most 50 per millisecond).
    fn flood(&self, n: usize) {
        let py = format!(
            "import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('198.18.7.1',40000))\n\
             for i in range({n}):\n    s.sendto(bytes(18+(i*131)%1382),('198.18.7.2',9000+i%7))\n    \
             (i%50==49) and time.sleep(0.001)\n"
        );
        sh(&["ip", "netns", "exec", &self.snd, "python3", "-c", &py]);
    }
}

impl Lab {
    /// `spanwatch live --iface swl1` in the capture namespace.
    fn live(&self) -> Command {
        let mut c = Command::new("ip");
        c.args([
            "netns",
            "exec",
            &self.cap,
            env!("CARGO_BIN_EXE_spanwatch"),
            "live",
            "--iface",
            "swl1",
        ]);
        c
    }

    /// Runs `spanwatch live ARGS` once in the capture namespace (for runs expected to fail).
    fn run_once(&self, args: &[&str]) -> std::process::Output {
        self.live()
            .args(["--listen", "off"])
            .args(args)
            .output()
            .unwrap()
    }
}

/// The MAC address of `dev` in namespace `ns`, as `ip` prints it.
fn mac_text(ns: &str, dev: &str) -> String {
    let o = Command::new("ip")
        .args(["-n", ns, "-o", "link", "show", dev])
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&o.stdout).to_string();
    t.split("link/ether ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.snd])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.cap])
            .output();
    }
}

fn stop(mut c: Child) {
    // SIGINT, as Ctrl-C would.
    let _ = Command::new("kill")
        .args(["-INT", &c.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = c.try_wait().unwrap() {
            assert!(s.success(), "spanwatch live exited with {s}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "spanwatch live did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn metric(text: &str, name_and_labels: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

fn tmp(name: &str) -> PathBuf {
    common::tmp("live", name)
}

#[test]
fn live_counts_what_was_sent_in_both_modes() {
    let Some(_one) = turn() else {
        return;
    };
    for mode in ["skb", "native"] {
        let lab = Lab::new(&mode[..1]);
        let m = tmp(&format!("{mode}.prom"));
        let pcap = tmp(&format!("{mode}.pcap"));
        let mut dump = Command::new("ip")
            .args(["netns", "exec", &lab.snd, "tcpdump", "-i", "swl0", "-w"])
            .arg(&pcap)
            .args(["-U", "-s", "0", "-Q", "out", "udp"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let sw = lab.spanwatch(&["--xdp-mode", mode], &m);
        std::thread::sleep(Duration::from_millis(500));
        const N: usize = 20_000;
        lab.flood(N);
        std::thread::sleep(Duration::from_millis(700));
        stop(sw);
        let _ = Command::new("kill")
            .args(["-INT", &dump.id().to_string()])
            .status();
        let _ = dump.wait();
        let text = std::fs::read_to_string(&m).unwrap();
        assert!(text.contains(&format!("xdp_mode=\"{mode}\"")), "{text}");
        let udp = metric(
            &text,
            "spanwatch_sessions_total{protocol=\"other_udp\",ip_version=\"4\"}",
        );
        assert_eq!(
            metric(&text, "spanwatch_packets_total{source=\"xdp\"}"),
            N as u64,
            "{mode}: packets"
        );
        assert_eq!(udp, 7, "{mode}: 7 UDP flows");
        for r in ["xdp_rx_dropped", "xdp_rx_ring_full", "queue_full"] {
            let lost: u64 = text
                .lines()
                .filter(|l| {
                    l.starts_with(&format!("spanwatch_capture_dropped_total{{reason=\"{r}\""))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .map(|v| v as u64)
                .sum();
            assert_eq!(lost, 0, "{mode}: {r}");
        }
        // Every packet carried its own XDP timestamp: deltas are never all zero.
        assert!(
            metric(
                &text,
                "spanwatch_packet_interarrival_seconds_count{source=\"xdp\"}"
            ) >= N as u64 - 1
        );
        // The offline read of tcpdump's copy counts the same.
        let out = Command::new(env!("CARGO_BIN_EXE_spanwatch"))
            .args(["read", "--format", "json"])
            .arg(&pcap)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["packets"], N as u64, "{mode}: tcpdump copy");
        assert_eq!(
            v["sessions"]["other_udp"]["ipv4"], udp,
            "{mode}: offline = live"
        );
    }
}

#[test]
fn no_program_survives_kill_9_and_none_is_replaced() {
    let Some(_one) = turn() else {
        return;
    };
    let lab = Lab::new("k");
    let m = tmp("k.prom");
    let mut first = lab.spanwatch(&["--xdp-mode", "skb"], &m);
    // A second capture on the same interface must refuse, not replace the first's program.
    let out = lab.run_once(&["--xdp-mode", "skb"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("already attached"), "{err}");
    // kill -9: the BPF link dies with the process, so the program goes too.
    let _ = Command::new("kill")
        .args(["-9", &first.id().to_string()])
        .status();
    let _ = first.wait();
    let mut attached = true;
    for _ in 0..50 {
        let o = Command::new("ip")
            .args(["-n", &lab.cap, "link", "show", "swl1"])
            .output()
            .unwrap();
        attached = String::from_utf8_lossy(&o.stdout).contains("xdp");
        if !attached {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!attached, "an XDP program stayed attached after kill -9");
    // And a new capture attaches again.
    let again = lab.spanwatch(&["--xdp-mode", "skb"], &m);
    stop(again);
}

#[test]
fn bad_interface_is_one_line_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_spanwatch"))
        .args(["live", "--iface", "nonexistent0", "--listen", "off"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("nonexistent0: no such interface"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn missing_privilege_and_oversized_mtu_are_one_line_exit_2() {
    let Some(_one) = turn() else {
        return;
    };
    // As an unprivileged user: the capabilities it needs are named.
    if let Ok(out) = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            env!("CARGO_BIN_EXE_spanwatch"),
            "live",
            "--iface",
            "lo",
            "--listen",
            "off",
        ])
        .output()
    {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("CAP_NET_ADMIN") && err.contains("CAP_BPF"),
            "{err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    // Jumbo frames do not fit native XDP with 4096-byte frames.
    let lab = Lab::new("m");
    sh(&["ip", "-n", &lab.cap, "link", "set", "swl1", "mtu", "9000"]);
    sh(&["ip", "-n", &lab.snd, "link", "set", "swl0", "mtu", "9000"]);
    let out = lab.run_once(&["--xdp-mode", "native"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("MTU 9000 is too large"), "{err}");
}

#[test]
fn sighup_reopens_the_event_file_for_log_rotation() {
    let Some(_one) = turn() else {
        return;
    };
    let lab = Lab::new("h");
    let m = tmp("h.prom");
    let ev = tmp("h.ndjson");
    let rotated = tmp("h.ndjson.1");
    let mut sw = lab.spanwatch(&["--xdp-mode", "skb", "--events", ev.to_str().unwrap()], &m);
    assert!(ev.exists(), "the event file is opened at start");
    // What logrotate does: move the file, then SIGHUP.
    std::fs::rename(&ev, &rotated).unwrap();
    let _ = Command::new("kill")
        .args(["-HUP", &sw.id().to_string()])
        .status();
    let t0 = Instant::now();
    while !ev.exists() && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ev.exists(), "not reopened after SIGHUP");
    assert!(sw.try_wait().unwrap().is_none(), "SIGHUP ended the capture");
    stop(sw);
}

/// Uid and effective/permitted capability masks of every thread of a process.
fn thread_privileges(pid: u32) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status = std::fs::read_to_string(t.unwrap().path().join("status")).unwrap();
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .unwrap_or("")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        out.push((field("Uid:"), field("CapEff:"), field("CapPrm:")));
    }
    out
}

#[test]
fn user_drops_every_privilege_in_every_thread_and_capture_goes_on() {
    let Some(_one) = turn() else {
        return;
    };
    let lab = Lab::new("u");
    let m = tmp("u.prom");
    let sw = lab.spanwatch(&["--xdp-mode", "skb", "--user", "nobody"], &m);
    let threads = thread_privileges(sw.id());
    // The rx thread, 2 workers, the event-less main thread and the metrics server: all nobody.
    assert!(threads.len() >= 4, "{threads:?}");
    for (uid, eff, prm) in &threads {
        assert_eq!(uid, "65534 65534 65534 65534", "{threads:?}");
        assert_eq!(eff, "0000000000000000", "{threads:?}");
        assert_eq!(prm, "0000000000000000", "{threads:?}");
    }
    const N: usize = 2_000;
    lab.flood(N);
    std::thread::sleep(Duration::from_millis(500));
    stop(sw);
    // --metrics-out was opened before the drop, so nobody could still write it.
    let text = std::fs::read_to_string(&m).unwrap();
    assert_eq!(
        metric(&text, "spanwatch_packets_total{source=\"xdp\"}"),
        N as u64
    );
    // And the program went away with the unprivileged process.
    let o = Command::new("ip")
        .args(["-n", &lab.cap, "link", "show", "swl1"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&o.stdout).contains("xdp"));
}

/// Every sample of every counter series in a scrape (gauges and build_info left out).
fn counter_samples(text: &str) -> std::collections::BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter(|l| {
            !l.starts_with("spanwatch_flows_active") && !l.starts_with("spanwatch_build_info")
        })
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

#[test]
fn a_slow_worker_never_blocks_rx_and_every_drop_is_counted() {
    let Some(_one) = turn() else {
        return;
    };
    let lab = Lab::new("b");
    sh(&["ip", "-n", &lab.cap, "link", "set", "lo", "up"]);
    let m = tmp("b.prom");
    // One worker that takes 20 ms per batch of up to 256 packets: at most ~13 000 packets/s,
    // against a sender at up to 50 000/s.
    let sw = lab.start(
        &[
            "--xdp-mode",
            "skb",
            "--workers",
            "1",
            "--listen",
            "127.0.0.1:9899",
            "--metrics-out",
            m.to_str().unwrap(),
        ],
        &[("SPANWATCH_FAULT_SLOW_WORKER_US", "20000")],
    );
    // Scrape /metrics (inside the capture namespace) while the flood runs.
    let cap = lab.cap.clone();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d2 = done.clone();
    let scraper = std::thread::spawn(move || {
        let mut scrapes = Vec::new();
        while !d2.load(std::sync::atomic::Ordering::Relaxed) {
            let o = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &cap,
                    "curl",
                    "-sf",
                    "http://127.0.0.1:9899/metrics",
                ])
                .output()
                .unwrap();
            if o.status.success() {
                scrapes.push(String::from_utf8_lossy(&o.stdout).to_string());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        scrapes
    });
    const N: usize = 20_000;
    lab.flood(N);
    std::thread::sleep(Duration::from_millis(300));
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let scrapes = scraper.join().unwrap();
    stop(sw);
    let text = std::fs::read_to_string(&m).unwrap();
    let sum = |prefix: &str| -> u64 {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum()
    };
    // rx took in every packet and kept the kernel ring drained...
    assert_eq!(
        metric(&text, "spanwatch_packets_total{source=\"xdp\"}"),
        N as u64
    );
    assert_eq!(
        sum("spanwatch_capture_dropped_total{reason=\"xdp_rx_ring_full\""),
        0
    );
    assert_eq!(
        sum("spanwatch_capture_dropped_total{reason=\"xdp_rx_dropped\""),
        0
    );
    // ...while what the worker could not take was dropped and counted: analyzed + dropped = sent.
    let queue_full = sum("spanwatch_capture_dropped_total{reason=\"queue_full\"");
    let analyzed = sum("spanwatch_protocol_packets_total");
    assert!(queue_full > 0, "the slow worker never fell behind");
    assert_eq!(
        analyzed + queue_full,
        N as u64,
        "analyzed {analyzed} + dropped {queue_full}"
    );
    // No counter ever went down between scrapes.
    assert!(scrapes.len() >= 3, "{} scrapes", scrapes.len());
    let series: Vec<_> = scrapes.iter().map(|s| counter_samples(s)).collect();
    for pair in series.windows(2) {
        for (k, v) in &pair[0] {
            let later = pair[1].get(k).copied().unwrap_or(f64::NAN);
            assert!(later >= *v, "{k} went from {v} to {later}");
        }
    }
    // The final file is the last word: nothing in it below the last scrape.
    let last = series.last().unwrap();
    let fin = counter_samples(&text);
    for (k, v) in last {
        assert!(fin.get(k).copied().unwrap_or(f64::NAN) >= *v, "{k}");
    }
}

#[test]
fn frames_the_kernel_drops_are_counted_once() {
    let Some(_one) = turn() else {
        return;
    };
    let lab = Lab::new("k");
    let m = tmp("k.prom");
    // The smallest rings, against frames the kernel itself sends as fast as it can: the fill ring
    // runs dry and the kernel drops frames before spanwatch sees them.
    let sw = lab.spanwatch(&["--xdp-mode", "native", "--ring-size", "64"], &m);
    let mac: Vec<u8> = mac_text(&lab.cap, "swl1")
        .split(':')
        .map(|x| u8::from_str_radix(x, 16).unwrap())
        .collect();
    let frame = spanwatch_bench::udp_frame(
        [2, 0, 0, 0, 0, 1],
        mac.try_into().unwrap(),
        ("198.18.7.1".parse().unwrap(), 40000),
        ("198.18.7.2".parse().unwrap(), 9000),
        64,
    );
    const N: u32 = 300_000;
    let snd = lab.snd.clone();
    let sent = std::thread::spawn(move || -> Result<(), xdp::Error> {
        xdp::blast::enter_netns(&snd)?;
        xdp::blast::Blaster::new("swl0", 0)?.send(&frame, N, 0)
    })
    .join()
    .unwrap();
    if let Err(e) = sent {
        // Kernels before 5.18 cannot transmit test frames: nothing to measure with.
        assert!(e.to_string().contains("BPF_PROG_TEST_RUN"), "{e}");
        eprintln!("NOTICE: {e}: kernel-drop accounting test skipped");
        stop(sw);
        return;
    }
    std::thread::sleep(Duration::from_millis(500));
    // What reached the XDP hook (the veth may have dropped some before it, if its ring filled).
    let o = Command::new("ip")
        .args(["netns", "exec", &lab.cap, "ethtool", "-S", "swl1"])
        .output()
        .unwrap();
    let at_hook: u64 = String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("rx_queue_0_xdp_packets: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("ethtool -S swl1: rx_queue_0_xdp_packets");
    stop(sw);
    let text = std::fs::read_to_string(&m).unwrap();
    let lost = |r: &str| {
        metric(
            &text,
            &format!("spanwatch_capture_dropped_total{{reason=\"{r}\",queue=\"0\"}}"),
        )
    };
    let taken = metric(&text, "spanwatch_packets_total{source=\"xdp\"}");
    let fill = lost("xdp_fill_ring_empty");
    let kernel =
        lost("xdp_rx_dropped") + lost("xdp_rx_invalid_descs") + lost("xdp_rx_ring_full") + fill;
    assert!(
        fill > 0,
        "the fill ring never ran dry ({taken} taken of {at_hook})"
    );
    assert!(
        at_hook > N as u64 / 2 && at_hook <= N as u64,
        "{at_hook} of {N} reached the hook"
    );
    // Every frame at the hook was taken in or is counted under exactly one cause.
    assert_eq!(
        taken + kernel,
        at_hook,
        "taken {taken} + lost in the kernel {kernel}"
    );
}
