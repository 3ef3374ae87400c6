//! The spanwatch binary: the command line (DESIGN.md §3), configuration, and the wiring of the
//! capture sources, the analyzer pipeline and the metrics/event outputs. Library crates know no
//! command line; this file knows no protocol.

mod privilege;
mod report;

use analyzer::pipeline::{self, Options, Report};
use analyzer::protocols::Config;
use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use metrics::events::EventWriter;
use metrics::expo::Info;
use metrics::{
    slot, Counters, DecodeError, DropReason, EvictReason, Hub, LoginOutcome, Proto, Source,
    StreamIssue, Tunnel,
};
use serde::Deserialize;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Sessions, reassembly buffers and parser scratch are small allocations made on the packet path
/// (one or two per new TLS/HTTP/FTP flow); mimalloc serves them for a fraction of glibc's cost
/// (bench/RESULTS.md). Its large allocations, the flow tables above all, are asked to sit on huge
/// pages (`xdp::huge`).
#[global_allocator]
static ALLOC: xdp::huge::HugePages<mimalloc::MiMalloc> = xdp::huge::HugePages(mimalloc::MiMalloc);

/// The capture the project made itself (in its lab) that `spanwatch read` analyzes by default.
const DEFAULT_CAPTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/lab-default.pcap");

#[derive(Parser)]
#[command(
    name = "spanwatch",
    version,
    about = "Network analyzer for a SPAN port: protocol sessions, cleartext FTP logins, capture timestamp anomalies"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Analyze pcap/pcapng files (gzip too) and print a summary.
    Read(ReadArgs),
    /// Capture with AF_XDP until SIGINT/SIGTERM, serving /metrics.
    Live(LiveArgs),
    /// Configuration files.
    #[command(subcommand)]
    Config(ConfigCmd),
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Check a TOML config file (the long options' names as keys) and print what `read` and
    /// `live` would use with it.
    Check {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Args)]
struct LiveArgs {
    /// The interface to capture on (the SPAN port).
    #[arg(long, value_name = "IF")]
    iface: Option<String>,
    /// RX queues to bind: all, or a list such as 0,1,2 [default: all].
    #[arg(long, value_name = "all|LIST")]
    queues: Option<String>,
    /// XDP attach mode: auto tries native (driver) mode, then skb (generic) [default: auto].
    #[arg(long, value_enum)]
    xdp_mode: Option<CliXdpMode>,
    /// Zero-copy: auto uses it where the driver offers it [default: auto].
    #[arg(long, value_enum)]
    zero_copy: Option<CliZeroCopy>,
    /// CPUs to pin the rx threads to, such as 2,3.
    #[arg(long, value_name = "LIST")]
    cpus: Option<String>,
    /// Entries in each RX and fill ring [default: 8192].
    #[arg(long)]
    ring_size: Option<u32>,
    /// Print a one-line status to stderr every N seconds (0: never) [default: 0].
    #[arg(long, value_name = "N")]
    status_every: Option<u64>,
    /// After setup (program attached, sockets bound, files open) switch to this user, which drops
    /// every capability in every thread.
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Clone, Copy, ValueEnum, Deserialize, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum CliXdpMode {
    Auto,
    Native,
    Skb,
}

#[derive(Clone, Copy, ValueEnum, Deserialize, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum CliZeroCopy {
    Auto,
    On,
    Off,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Format {
    Text,
    Json,
}

#[derive(Args)]
struct Common {
    /// Analyzer threads (default: cores - 1, at least 1).
    #[arg(long)]
    workers: Option<usize>,
    /// Speed of the capture link for timestamp checks: 1G, 10G, 25G …
    #[arg(long, value_name = "SPEED")]
    link_speed: Option<String>,
    /// At the end, write the final metrics in Prometheus text format (- for stdout).
    #[arg(long, value_name = "PATH|-")]
    metrics_out: Option<String>,
    /// Credential and anomaly events as NDJSON (- for stdout).
    #[arg(long, value_name = "PATH|-")]
    events: Option<String>,
    /// Also send each event to a syslog collector as RFC 5424: udp://HOST:PORT or tcp://HOST:PORT.
    #[arg(long, value_name = "udp|tcp://HOST:PORT")]
    syslog: Option<String>,
    /// Serve /metrics on this address while running.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Flow-table cap across workers; at the cap the oldest idle flows are evicted.
    #[arg(long, value_name = "N")]
    max_flows: Option<usize>,
    /// Show FTP user names in events in clear (default: a keyed hash).
    #[arg(long)]
    log_usernames: bool,
    /// File holding the key for user-name pseudonyms (default: a random key per run).
    #[arg(long, value_name = "FILE")]
    pseudonym_key: Option<PathBuf>,
    /// TOML file with the same keys as the long options.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct ReadArgs {
    /// Capture files; none: the built-in sample capture.
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
    #[command(flatten)]
    common: Common,
    /// Summary format on stdout.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Write a self-contained HTML page of plots: sessions over time, logins, timestamp anomalies.
    #[arg(long, value_name = "FILE.html")]
    report: Option<String>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    workers: Option<usize>,
    link_speed: Option<String>,
    metrics_out: Option<String>,
    events: Option<String>,
    syslog: Option<String>,
    listen: Option<String>,
    max_flows: Option<usize>,
    log_usernames: Option<bool>,
    pseudonym_key: Option<PathBuf>,
    format: Option<Format>,
    report: Option<String>,
    // live only
    iface: Option<String>,
    queues: Option<String>,
    xdp_mode: Option<CliXdpMode>,
    zero_copy: Option<CliZeroCopy>,
    cpus: Option<String>,
    ring_size: Option<u32>,
    status_every: Option<u64>,
    user: Option<String>,
}

/// A usage or input error: exit status 2 with one line.
#[derive(Debug)]
struct Usage(String);
impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Usage {}

fn main() -> ExitCode {
    // Huge pages under the flow tables: SPANWATCH_HUGE_PAGES=0 or 1 says; unset, they are asked
    // for unless this is a VM whose balloon takes freed huge pages back (xdp::huge::worth_asking).
    xdp::huge::set_enabled(match std::env::var_os("SPANWATCH_HUGE_PAGES") {
        Some(v) => v != "0",
        None => xdp::huge::worth_asking(),
    });
    // The workers' flow slabs mapped ahead of new flows by a thread of their own, unless
    // SPANWATCH_PREFAULT=0 (for comparing the two).
    if std::env::var_os("SPANWATCH_PREFAULT").is_none_or(|v| v != "0") {
        analyzer::prefault::install(xdp::prefault::populate_write);
    }
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Read(a) => read(a),
        Cmd::Live(a) => live(a),
        Cmd::Config(ConfigCmd::Check { file }) => config_check(&file),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let usage = e.downcast_ref::<Usage>().is_some();
            eprintln!("spanwatch: {e:#}");
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    Usage(msg.into()).into()
}

/// The options `read` and `live` share, from the command line over the config file.
struct Settings {
    workers: usize,
    link_bps: u64,
    metrics_out: Option<String>,
    events_path: Option<String>,
    syslog: Option<metrics::syslog::Target>,
    listen: Option<String>,
    max_flows: usize,
    format: Format,
    report: Option<String>,
    user: Option<String>,
    cfg: Config,
    /// The config file as read (live takes its own keys from it).
    file: FileConfig,
}

/// Reads a TOML config file; unknown keys and wrong types are errors with the line they are on.
fn load_config(p: &std::path::Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(p).map_err(|e| usage(format!("{}: {e}", p.display())))?;
    toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|r| text[..r.start.min(text.len())].matches('\n').count() + 1);
        usage(match line {
            Some(l) => format!("{}: line {l}: {}", p.display(), e.message()),
            None => format!("{}: {}", p.display(), e.message()),
        })
    })
}

/// `spanwatch config check FILE`: the file goes through exactly the path the subcommands take,
/// then what each would use is printed as TOML.
fn config_check(file: &std::path::Path) -> anyhow::Result<()> {
    let f = file.to_string_lossy().to_string();
    let parse = |sub: &str| {
        Cli::try_parse_from(["spanwatch", sub, "--config", &f]).map_err(|e| usage(e.to_string()))
    };
    let Cmd::Read(r) = parse("read")?.cmd else {
        unreachable!("parsed as read")
    };
    let rs = settings(&r.common, Only::default(), false)?;
    let Cmd::Live(l) = parse("live")?.cmd else {
        unreachable!("parsed as live")
    };
    let ls = settings(&l.common, Only::default(), true)?;
    let mut warnings = Vec::new();
    let lo = match live_options(&l, &ls.file) {
        Ok(lo) => Some(lo),
        Err(e) if ls.file.iface.is_none() => {
            warnings.push(format!("{e} (fine for read only)"));
            None
        }
        Err(e) => return Err(e),
    };
    if let Some(a) = &ls.listen {
        a.parse::<std::net::SocketAddr>()
            .map_err(|e| usage(format!("{f}: listen = {a:?}: {e}")))?;
    }
    if let Some(u) = &ls.user {
        if nix::unistd::User::from_name(u).ok().flatten().is_none() {
            warnings.push(format!("user {u:?} does not exist on this host"));
        }
    }
    if let Some(lo) = &lo {
        if !std::path::Path::new("/sys/class/net")
            .join(&lo.iface)
            .exists()
        {
            warnings.push(format!("interface {:?} is not on this host", lo.iface));
        }
    }
    let common = |s: &Settings| {
        let mut t = toml::Table::new();
        t.insert("workers".into(), (s.workers as i64).into());
        t.insert("link-speed-bps".into(), (s.link_bps as i64).into());
        t.insert("max-flows".into(), (s.max_flows as i64).into());
        t.insert(
            "listen".into(),
            s.listen.clone().unwrap_or_else(|| "off".into()).into(),
        );
        for (k, v) in [("metrics-out", &s.metrics_out), ("events", &s.events_path)] {
            if let Some(v) = v {
                t.insert(k.into(), v.clone().into());
            }
        }
        if let Some(sy) = &s.syslog {
            let url = match sy {
                metrics::syslog::Target::Udp(a) => format!("udp://{a}"),
                metrics::syslog::Target::Tcp(a) => format!("tcp://{a}"),
            };
            t.insert("syslog".into(), url.into());
        }
        t.insert("log-usernames".into(), s.cfg.log_usernames.into());
        t
    };
    let mut read_t = common(&rs);
    if let Some(r) = &rs.report {
        read_t.insert("report".into(), r.clone().into());
    }
    let mut live_t = common(&ls);
    if let Some(lo) = &lo {
        live_t.insert("iface".into(), lo.iface.clone().into());
        let queues = match &lo.queues {
            None => "all".to_string(),
            Some(q) => q.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
        };
        live_t.insert("queues".into(), queues.into());
        live_t.insert(
            "xdp-mode".into(),
            format!("{:?}", lo.xdp_mode).to_lowercase().into(),
        );
        live_t.insert(
            "zero-copy".into(),
            format!("{:?}", lo.zero_copy).to_lowercase().into(),
        );
        live_t.insert("ring-size".into(), (lo.ring_size as i64).into());
    }
    if let Some(u) = &ls.user {
        live_t.insert("user".into(), u.clone().into());
    }
    let mut all = toml::Table::new();
    all.insert("read".into(), read_t.into());
    all.insert("live".into(), live_t.into());
    println!("# {f}: ok");
    for w in &warnings {
        println!("# warning: {w}");
    }
    print!("{}", toml::to_string(&all)?);
    Ok(())
}

/// Options only one subcommand has (they may come from the config file too).
#[derive(Default)]
struct Only {
    format: Option<Format>,
    report: Option<String>,
    user: Option<String>,
}

fn settings(c: &Common, only: Only, live: bool) -> anyhow::Result<Settings> {
    let Only {
        format,
        report,
        user,
    } = only;
    let fc: FileConfig = match &c.config {
        Some(p) => load_config(p)?,
        None => FileConfig::default(),
    };
    let file = fc.clone();
    let workers = c.workers.or(fc.workers).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .saturating_sub(1)
            .max(1)
    });
    if workers == 0 || workers > 256 {
        return Err(usage("--workers must be between 1 and 256"));
    }
    let speed_s = c
        .link_speed
        .clone()
        .or(fc.link_speed)
        .unwrap_or_else(|| "10G".into());
    let link_bps = analyzer::timestamps::parse_link_speed(&speed_s).ok_or_else(|| {
        usage(format!(
            "--link-speed {speed_s}: expected a speed such as 1G, 10G, 25G"
        ))
    })?;
    let max_flows = c.max_flows.or(fc.max_flows).unwrap_or(1_000_000);
    if max_flows == 0 {
        return Err(usage("--max-flows must be at least 1"));
    }
    let mut cfg = Config {
        log_usernames: c.log_usernames || fc.log_usernames.unwrap_or(false),
        ..Config::default()
    };
    match c.pseudonym_key.clone().or(fc.pseudonym_key) {
        Some(p) => {
            let bytes = std::fs::read(&p).map_err(|e| usage(format!("{}: {e}", p.display())))?;
            cfg.pseudonym_key = *blake3::hash(&bytes).as_bytes();
        }
        None => {
            let mut seed = [0u8; 32];
            getrandom(&mut seed);
            cfg.pseudonym_key = seed;
        }
    }
    let listen = c
        .listen
        .clone()
        .or(fc.listen)
        .or_else(|| live.then(|| "127.0.0.1:9890".to_string()));
    Ok(Settings {
        workers,
        link_bps,
        metrics_out: c.metrics_out.clone().or(fc.metrics_out),
        events_path: c.events.clone().or(fc.events),
        syslog: match c.syslog.clone().or(fc.syslog) {
            Some(t) => Some(
                metrics::syslog::Target::parse(&t).map_err(|e| usage(format!("--syslog {e}")))?,
            ),
            None => None,
        },
        listen: listen.filter(|l| l != "off"),
        max_flows,
        format: format.or(fc.format).unwrap_or(Format::Text),
        report: if live { None } else { report.or(fc.report) },
        user: if live { user.or(fc.user.clone()) } else { None },
        cfg,
        file,
    })
}

fn read(a: ReadArgs) -> anyhow::Result<()> {
    let Settings {
        workers,
        link_bps,
        metrics_out,
        events_path,
        syslog,
        listen,
        max_flows,
        format,
        report: report_path,
        cfg,
        ..
    } = settings(
        &a.common,
        Only {
            format: a.format,
            report: a.report.clone(),
            user: None,
        },
        false,
    )?;
    let files = if a.files.is_empty() {
        vec![PathBuf::from(DEFAULT_CAPTURE)]
    } else {
        a.files.clone()
    };
    let opened = pipeline::open_all(&files).map_err(|e| usage(e.to_string()))?;
    let mout = open_metrics_out(metrics_out.as_deref())?;
    let total: u64 = opened.iter().map(|f| f.size).sum();

    let hub = Hub::new();
    let info = Info {
        labels: vec![
            ("mode".into(), "read".into()),
            ("clock".into(), "capture".into()),
        ],
    };
    let server = match &listen {
        Some(addr) => {
            let s = metrics::http::Server::start(addr, hub.clone(), info.clone())
                .map_err(|e| usage(e.to_string()))?;
            eprintln!("spanwatch: serving metrics on http://{}/metrics", s.addr);
            Some(s)
        }
        None => None,
    };
    let (writer, sink) = start_events(&events_path, &syslog, true, &hub)?;

    let bar = (std::io::stderr().is_terminal() && total > 32 << 20).then(|| {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {bytes}/{total_bytes} {wide_bar} {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let progress = |n: u64| {
        if let Some(b) = &bar {
            b.set_position(n);
        }
    };
    let timeline = report_path
        .as_ref()
        .map(|_| analyzer::timeline::Collector::new(report::slots()));
    let started = std::time::Instant::now();
    let report = pipeline::run(
        opened,
        Options {
            workers,
            link_bps,
            max_flows,
            cfg,
            events: sink,
            hub: hub.clone(),
            timeline: timeline.clone(),
            sequential: std::env::var_os("SPANWATCH_SEQUENTIAL_READ").is_some(),
        },
        &progress,
    );
    let elapsed = started.elapsed();
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let snap = finish_outputs(writer, &hub, mout, &info)?;
    if let (Some(path), Some(t)) = (&report_path, &timeline) {
        let files: Vec<String> = report.files.iter().map(|f| f.path.clone()).collect();
        let header = report::Header {
            files: &files,
            span: report.span(),
        };
        report::write(path, &header, &snap, &t.merged())?;
    }
    for f in &report.files {
        if f.truncated_records > 0 {
            eprintln!(
                "spanwatch: {}: last record truncated (counted in spanwatch_capture_dropped_total)",
                f.path
            );
        }
        if let Some((off, why)) = &f.corrupt {
            eprintln!(
                "spanwatch: {}: {why} at byte {off}; the rest of the file was skipped",
                f.path
            );
        }
    }
    if metrics_out.as_deref() != Some("-") && events_path.as_deref() != Some("-") {
        match format {
            Format::Text => print_text(&snap, &report, elapsed, workers),
            Format::Json => print_out(&format!(
                "{}\n",
                serde_json::to_string_pretty(&summary_json(&snap, &report, elapsed, workers))?
            )),
        }
    }
    if let Some(s) = server {
        s.stop();
    }
    Ok(())
}

/// Starts the event writer for `--events` and `--syslog` (None: neither given); SIGHUP reopens
/// the event file by name, for log rotation.
fn start_events(
    path: &Option<String>,
    syslog: &Option<metrics::syslog::Target>,
    block: bool,
    hub: &Hub,
) -> anyhow::Result<(Option<EventWriter>, metrics::events::EventSink)> {
    let out = metrics::events::Outputs {
        file: path.clone(),
        syslog: syslog.clone(),
    };
    match EventWriter::start(&out, block, hub) {
        Ok(Some((w, s))) => {
            signal_hook::flag::register(signal_hook::consts::SIGHUP, w.reopen.clone())?;
            Ok((Some(w), s))
        }
        Ok(None) => Ok((None, metrics::events::EventSink::disabled())),
        Err(e) => {
            let what = path.clone().unwrap_or_else(|| "--syslog".into());
            Err(usage(format!("{what}: {e}")))
        }
    }
}

/// `--metrics-out`, opened at start: a bad path fails before any work, and the file can still be
/// written after `--user` dropped the right to create it.
enum MetricsOut {
    Stdout,
    File(String, std::fs::File),
}

fn open_metrics_out(p: Option<&str>) -> anyhow::Result<Option<MetricsOut>> {
    Ok(match p {
        None => None,
        Some("-") => Some(MetricsOut::Stdout),
        Some(p) => Some(MetricsOut::File(
            p.to_string(),
            std::fs::File::create(p).map_err(|e| usage(format!("{p}: {e}")))?,
        )),
    })
}

/// Closes the event log and writes `--metrics-out`; returns the final merged counters.
fn finish_outputs(
    writer: Option<EventWriter>,
    hub: &Hub,
    metrics_out: Option<MetricsOut>,
    info: &Info,
) -> anyhow::Result<Counters> {
    if let Some(w) = writer {
        w.finish().context("writing events")?;
    }
    let snap = hub.snapshot();
    if let Some(out) = metrics_out {
        let text = metrics::expo::render(&snap, info);
        match out {
            MetricsOut::Stdout => std::io::stdout().write_all(text.as_bytes())?,
            MetricsOut::File(p, mut f) => f
                .write_all(text.as_bytes())
                .with_context(|| format!("writing {p}"))?,
        }
    }
    Ok(snap)
}

fn getrandom(buf: &mut [u8]) {
    // The pseudonym key only has to differ between runs; /dev/urandom is always there on Linux.
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        if f.read_exact(buf).is_ok() {
            return;
        }
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    buf.copy_from_slice(blake3::hash(&t.to_le_bytes()).as_bytes());
}

fn sessions(c: &Counters, p: Proto) -> (u64, u64) {
    (
        c.get(slot::sessions(p, false)),
        c.get(slot::sessions(p, true)),
    )
}

fn summary_json(
    c: &Counters,
    r: &Report,
    elapsed: std::time::Duration,
    workers: usize,
) -> serde_json::Value {
    let mut sess = serde_json::Map::new();
    for p in Proto::ALL {
        let (v4, v6) = sessions(c, p);
        sess.insert(
            p.as_str().into(),
            serde_json::json!({"ipv4": v4, "ipv6": v6, "total": v4 + v6}),
        );
    }
    let span = r.span();
    serde_json::json!({
        "files": r.files.iter().map(|f| serde_json::json!({
            "path": f.path, "packets": f.frames, "truncated_records": f.truncated_records,
            "corrupt": f.corrupt.as_ref().map(|(o, w)| serde_json::json!({"offset": o, "reason": w})),
        })).collect::<Vec<_>>(),
        "packets": c.get(slot::packets(Source::Pcap)),
        "bytes": c.get(slot::bytes(Source::Pcap)),
        "capture_start": span.map(|s| metrics::events::rfc3339(s.0)),
        "capture_end": span.map(|s| metrics::events::rfc3339(s.1)),
        "capture_seconds": span.map(|s| (s.1 - s.0) as f64 * 1e-9),
        "elapsed_seconds": elapsed.as_secs_f64(),
        "max_rss_bytes": max_rss_bytes(),
        "workers": workers,
        "sessions": sess,
        "ftp_logins": LoginOutcome::ALL.iter().map(|o| (o.as_str(), c.get(slot::ftp_login(*o)))).collect::<std::collections::BTreeMap<_,_>>(),
        "tls_handshakes": c.get(slot::TLS_HANDSHAKES),
        "tls_resumed": metrics::ResumeMethod::ALL.iter().map(|m| (m.as_str(), c.get(slot::tls_resumed(*m)))).collect::<std::collections::BTreeMap<_,_>>(),
        "ocsp_stapled": c.get(slot::OCSP_STAPLED),
        "http_requests": metrics::HttpKind::ALL.iter().map(|k| (k.as_str(), c.get(slot::http_request(*k)))).collect::<std::collections::BTreeMap<_,_>>(),
        "timestamps": {
            "negative_deltas": c.get(slot::ts_negative(Source::Pcap)),
            "zero_deltas": c.get(slot::ts_zero(Source::Pcap)),
            "impossible_spacing": c.get(slot::ts_impossible(Source::Pcap)),
            "causality_violations": c.get(slot::ts_causality(Source::Pcap)),
        },
        "flows_evicted": EvictReason::ALL.iter().map(|r| (r.as_str(), c.get(slot::flows_evicted(*r)))).collect::<std::collections::BTreeMap<_,_>>(),
        "not_analyzed": DecodeError::ALL.iter().map(|r| (r.as_str(), c.get(slot::decode_error(*r)))).collect::<std::collections::BTreeMap<_,_>>(),
        "truncated_records": c.get(slot::capture_dropped(DropReason::TruncatedRecord, None)),
        "tunnel_packets": Tunnel::ALL.iter().map(|t| (t.as_str(), c.get(slot::tunnel_packets(*t)))).collect::<std::collections::BTreeMap<_,_>>(),
        "stream_issues": StreamIssue::ALL.iter().map(|i| (i.as_str(), c.get(slot::stream_issue(*i)))).collect::<std::collections::BTreeMap<_,_>>(),
    })
}

/// Peak resident memory of this process, in bytes: VmHWM from /proc/self/status. (getrusage's
/// ru_maxrss would do, but Linux carries the parent's peak across fork and exec into it.)
fn max_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn print_text(c: &Counters, r: &Report, elapsed: std::time::Duration, workers: usize) {
    print_text_source(c, r, elapsed, workers, Source::Pcap)
}

fn print_text_source(
    c: &Counters,
    r: &Report,
    elapsed: std::time::Duration,
    workers: usize,
    src: Source,
) {
    let mut o = String::new();
    text_summary(&mut o, c, r, elapsed, workers, src);
    print_out(&o);
}

/// Writes to stdout; a reader that went away (`| head`) is not an error worth a panic.
fn print_out(s: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(s.as_bytes());
}

fn text_summary(
    o: &mut String,
    c: &Counters,
    r: &Report,
    elapsed: std::time::Duration,
    workers: usize,
    src: Source,
) {
    use std::fmt::Write;
    let packets = c.get(slot::packets(src));
    let bytes = c.get(slot::bytes(src));
    let names: Vec<&str> = r
        .files
        .iter()
        .map(|f| f.path.rsplit('/').next().unwrap_or(&f.path))
        .collect();
    if src == Source::Pcap {
        let _ = writeln!(o, "spanwatch read: {}", names.join(", "));
    } else {
        let _ = writeln!(o, "spanwatch live");
    }
    let _ = writeln!(o, "  packets   {packets}   bytes {bytes}");
    if let Some((s, e)) = r.span() {
        let _ = writeln!(
            o,
            "  capture   {} → {}  ({:.3} s)",
            metrics::events::rfc3339(s),
            metrics::events::rfc3339(e),
            (e - s) as f64 * 1e-9
        );
    }
    let secs = elapsed.as_secs_f64().max(1e-9);
    let _ =
        writeln!(o,
        "  analyzed  in {:.3} s with {workers} worker(s): {:.0} packets/s, peak memory {:.1} MiB",
        secs,
        packets as f64 / secs,
        max_rss_bytes() as f64 / (1 << 20) as f64
    );
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "  {:<10} {:>8} {:>8} {:>8}",
        "sessions", "IPv4", "IPv6", "total"
    );
    for p in Proto::ALL {
        let (v4, v6) = sessions(c, p);
        if v4 + v6 > 0 {
            let _ = writeln!(o, "  {:<10} {:>8} {:>8} {:>8}", p.as_str(), v4, v6, v4 + v6);
        }
    }
    let _ = writeln!(o);
    let logins: Vec<String> = LoginOutcome::ALL
        .iter()
        .map(|o| format!("{} {}", c.get(slot::ftp_login(*o)), o.as_str()))
        .collect();
    let _ = writeln!(o, "  cleartext FTP logins: {}", logins.join(", "));
    let resumed: u64 = metrics::ResumeMethod::ALL
        .iter()
        .map(|m| c.get(slot::tls_resumed(*m)))
        .sum();
    let _ = writeln!(
        o,
        "  TLS: {} ClientHellos, {} resumed, {} stapled OCSP",
        c.get(slot::TLS_HANDSHAKES),
        resumed,
        c.get(slot::OCSP_STAPLED)
    );
    let http: Vec<String> = metrics::HttpKind::ALL
        .iter()
        .map(|k| format!("{} {}", c.get(slot::http_request(*k)), k.as_str()))
        .collect();
    let _ = writeln!(o, "  HTTP requests: {}", http.join(", "));
    let _ = writeln!(o,
        "  timestamps: {} negative deltas, {} zero deltas, {} impossible spacing, {} causality violations",
        c.get(slot::ts_negative(src)),
        c.get(slot::ts_zero(src)),
        c.get(slot::ts_impossible(src)),
        c.get(slot::ts_causality(src))
    );
    let na: u64 = DecodeError::ALL
        .iter()
        .map(|e| c.get(slot::decode_error(*e)))
        .sum();
    if na > 0 {
        let parts: Vec<String> = DecodeError::ALL
            .iter()
            .filter(|e| c.get(slot::decode_error(**e)) > 0)
            .map(|e| format!("{} {}", c.get(slot::decode_error(*e)), e.as_str()))
            .collect();
        let _ = writeln!(o, "  not analyzed: {}", parts.join(", "));
    }
    let tunnels: Vec<String> = Tunnel::ALL
        .iter()
        .filter(|t| c.get(slot::tunnel_packets(**t)) > 0)
        .map(|t| format!("{} {}", c.get(slot::tunnel_packets(*t)), t.as_str()))
        .collect();
    if !tunnels.is_empty() {
        let _ = writeln!(o, "  packets that came in tunnels: {}", tunnels.join(", "));
    }
    let tf = c.get(slot::stream_issue(StreamIssue::TunnelFragmented));
    if tf > 0 {
        let _ = writeln!(
            o,
            "  tunnel packets that came in fragments (not opened): {tf}"
        );
    }
    let tr = c.get(slot::capture_dropped(DropReason::TruncatedRecord, None));
    if tr > 0 {
        let _ = writeln!(o, "  truncated records: {tr}");
    }
}

/// Feeds one queue's frames into the pipeline.
struct LiveSink {
    p: analyzer::pipeline::Producer,
    number: u64,
    queue: usize,
    fallback_stamps: u64,
    last_flush: std::time::Instant,
}

impl xdp::Sink for LiveSink {
    fn frame(&mut self, f: &xdp::Frame<'_>) {
        self.number += 1;
        if f.clock == xdp::Clock::Fallback {
            self.fallback_stamps += 1;
        }
        let frame = analyzer::source::Frame {
            ts_ns: f.ts_ns,
            wire_len: f.data.len() as u32,
            link: analyzer::decode::link::ETHERNET,
            iface: f.queue,
            data: f.data,
        };
        self.p.frame(&frame, self.number);
    }
    fn idle(&mut self) {
        // Hand quiet traffic on within a millisecond, without sending a trickle of tiny batches.
        if self.last_flush.elapsed() >= std::time::Duration::from_millis(1) {
            self.last_flush = std::time::Instant::now();
            self.p.flush();
        }
    }
    fn stats(&mut self, s: &xdp::QueueStats) {
        let q = Some(self.queue);
        let c = self.p.counters();
        // Kernel counters are cumulative per socket: this producer owns its queue's slots.
        c.set(
            slot::capture_dropped(DropReason::XdpRxDropped, q),
            s.rx_dropped,
        );
        c.set(
            slot::capture_dropped(DropReason::XdpRxInvalidDescs, q),
            s.rx_invalid_descs,
        );
        c.set(
            slot::capture_dropped(DropReason::XdpRxRingFull, q),
            s.rx_ring_full,
        );
        c.set(
            slot::capture_dropped(DropReason::XdpFillRingEmpty, q),
            s.rx_fill_ring_empty_descs,
        );
    }
    fn finish(self: Box<Self>) {
        if self.fallback_stamps > 0 {
            eprintln!(
                "spanwatch: queue {}: {} frames had no XDP timestamp and were stamped on the rx thread",
                self.queue, self.fallback_stamps
            );
        }
        self.p.finish();
    }
}

fn parse_list(s: &str, what: &str) -> anyhow::Result<Vec<u32>> {
    s.split(',')
        .map(|x| {
            x.trim()
                .parse::<u32>()
                .map_err(|_| usage(format!("{what} {s}: expected a list such as 0,1,2")))
        })
        .collect()
}

/// The live-only options, from the command line over the config file.
#[derive(Clone, Debug)]
struct LiveOpts {
    iface: String,
    queues: Option<Vec<u32>>,
    xdp_mode: CliXdpMode,
    zero_copy: CliZeroCopy,
    cpus: Option<Vec<usize>>,
    ring_size: u32,
    status_every: u64,
}

fn live_options(a: &LiveArgs, fc: &FileConfig) -> anyhow::Result<LiveOpts> {
    let iface = a
        .iface
        .clone()
        .or(fc.iface.clone())
        .ok_or_else(|| usage("live needs --iface IF (or iface = \"IF\" in the config file)"))?;
    let queues = match a.queues.clone().or(fc.queues.clone()).as_deref() {
        None | Some("all") => None,
        Some(list) => Some(parse_list(list, "--queues")?),
    };
    let cpus = match a.cpus.clone().or(fc.cpus.clone()) {
        Some(l) => Some(
            parse_list(&l, "--cpus")?
                .into_iter()
                .map(|c| c as usize)
                .collect(),
        ),
        None => None,
    };
    let ring_size = a.ring_size.or(fc.ring_size).unwrap_or(8192);
    if !ring_size.is_power_of_two() || !(64..=1 << 20).contains(&ring_size) {
        return Err(usage(format!(
            "--ring-size {ring_size}: expected a power of two from 64 to 1048576"
        )));
    }
    Ok(LiveOpts {
        iface,
        queues,
        xdp_mode: a.xdp_mode.or(fc.xdp_mode).unwrap_or(CliXdpMode::Auto),
        zero_copy: a.zero_copy.or(fc.zero_copy).unwrap_or(CliZeroCopy::Auto),
        cpus,
        ring_size,
        status_every: a.status_every.or(fc.status_every).unwrap_or(0),
    })
}

fn live(a: LiveArgs) -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let Settings {
        workers,
        link_bps,
        metrics_out,
        events_path,
        syslog,
        listen,
        max_flows,
        format,
        cfg,
        user,
        file,
        ..
    } = settings(
        &a.common,
        Only {
            user: a.user.clone(),
            ..Only::default()
        },
        true,
    )?;
    let lo = live_options(&a, &file)?;
    let LiveOpts {
        iface,
        queues,
        cpus,
        status_every,
        ..
    } = lo.clone();
    let xopts = xdp::Options {
        iface: iface.clone(),
        queues: queues.clone(),
        mode: match lo.xdp_mode {
            CliXdpMode::Auto => xdp::XdpMode::Auto,
            CliXdpMode::Native => xdp::XdpMode::Native,
            CliXdpMode::Skb => xdp::XdpMode::Skb,
        },
        zero_copy: match lo.zero_copy {
            CliZeroCopy::Auto => xdp::ZeroCopy::Auto,
            CliZeroCopy::On => xdp::ZeroCopy::On,
            CliZeroCopy::Off => xdp::ZeroCopy::Off,
        },
        ring_size: lo.ring_size,
        cpus,
        ..xdp::Options::default()
    };
    let nq = match &queues {
        Some(q) => q.len(),
        None => xdp::rx_queues(&iface)
            .map_err(|e| usage(e.to_string()))?
            .len(),
    };

    let term = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, term.clone())?;
    }
    let mout = open_metrics_out(metrics_out.as_deref())?;
    let hub = Hub::new();
    let (writer, sink) = start_events(&events_path, &syslog, false, &hub)?;
    let opts = Options {
        workers,
        link_bps,
        max_flows,
        cfg,
        events: sink,
        hub: hub.clone(),
        timeline: None,
        sequential: false,
    };
    let pool = analyzer::pipeline::Workers::start(&opts, Source::Xdp, nq);
    let capture = xdp::Capture::start(&xopts, |q| {
        Box::new(LiveSink {
            p: pool.producer(&opts, Source::Xdp, Some(q as usize), false),
            number: 0,
            queue: q as usize,
            fallback_stamps: 0,
            last_flush: std::time::Instant::now(),
        })
    });
    let capture = match capture {
        Ok(c) => c,
        Err(e) => {
            drop(opts);
            pool.finish();
            return Err(usage(e.to_string()));
        }
    };
    let ch = capture.chosen.clone();
    if let Some(w) = &ch.warning {
        eprintln!("spanwatch: warning: {w}");
    }
    let info = Info {
        labels: vec![
            ("mode".into(), "live".into()),
            ("clock".into(), "xdp".into()),
            ("xdp_mode".into(), ch.mode.into()),
            (
                "zero_copy".into(),
                if ch.zero_copy { "on" } else { "off" }.into(),
            ),
        ],
    };
    let server = match &listen {
        Some(addr) => match metrics::http::Server::start(addr, hub.clone(), info.clone()) {
            Ok(s) => Some(s),
            Err(e) => {
                shutdown(capture, opts, pool);
                return Err(usage(e.to_string()));
            }
        },
        None => None,
    };
    // Setup is done: nothing from here on needs a privilege.
    if let Err(e) = privilege::drop_after_setup(user.as_deref()) {
        shutdown(capture, opts, pool);
        return Err(usage(format!("{e:#}")));
    }
    eprintln!(
        "spanwatch: capturing on {} (queues {:?}, {} mode, zero-copy {}){}; {}",
        iface,
        ch.queues,
        ch.mode,
        if ch.zero_copy { "on" } else { "off" },
        server
            .as_ref()
            .map(|s| format!(", metrics at http://{}/metrics", s.addr))
            .unwrap_or_default(),
        privilege::describe()
    );
    if user.is_none() && nix::unistd::Uid::effective().is_root() {
        eprintln!("spanwatch: warning: still running as root; --user NAME drops every privilege after setup");
    }

    let started = std::time::Instant::now();
    let mut last_status = started;
    while !term.load(Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(100));
        if status_every > 0 && last_status.elapsed().as_secs() >= status_every {
            last_status = std::time::Instant::now();
            let c = hub.snapshot();
            eprintln!("{}", status_line(&c, started.elapsed()));
        }
    }
    shutdown(capture, opts, pool);
    let snap = finish_outputs(writer, &hub, mout, &info)?;
    if let Some(s) = server {
        s.stop();
    }
    if metrics_out.as_deref() != Some("-") && events_path.as_deref() != Some("-") {
        let report = Report::default();
        match format {
            Format::Text => {
                print_text_source(&snap, &report, started.elapsed(), workers, Source::Xdp)
            }
            Format::Json => println!(
                "{}",
                serde_json::to_string_pretty(&summary_json(
                    &snap,
                    &report,
                    started.elapsed(),
                    workers
                ))?
            ),
        }
    }
    Ok(())
}

/// Detaches the program, drains the rings, and lets the workers end every flow.
fn shutdown(capture: xdp::Capture, opts: Options, pool: analyzer::pipeline::Workers) {
    capture.stop();
    drop(opts);
    pool.finish();
}

fn status_line(c: &Counters, up: std::time::Duration) -> String {
    let pk = c.get(slot::packets(Source::Xdp));
    let sessions: u64 = Proto::ALL
        .iter()
        .map(|p| sessions(c, *p).0 + sessions(c, *p).1)
        .sum();
    let logins: u64 = LoginOutcome::ALL
        .iter()
        .map(|o| c.get(slot::ftp_login(*o)))
        .sum();
    let dropped: u64 = DropReason::ALL
        .iter()
        .map(|r| {
            (0..metrics::MAX_QUEUES)
                .map(|q| c.get(slot::capture_dropped(*r, Some(q))))
                .sum::<u64>()
        })
        .sum();
    format!(
        "spanwatch: {:>6.0}s  packets {pk}  sessions {sessions}  flows {}  FTP logins {logins}  dropped {dropped}",
        up.as_secs_f64(),
        c.get(slot::FLOWS_ACTIVE)
    )
}
