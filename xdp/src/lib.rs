//! The AF_XDP receive path: one AF_XDP socket per NIC RX queue, each with its own UMEM, fill and
//! RX rings (`xdpilone`), and the XDP program (`bpf/spanwatch.bpf.c`, loaded and attached through
//! a BPF link by `aya`, so it goes away with the process) that stamps every frame with the kernel
//! clock and redirects it to its queue's socket. Each queue's rx thread hands frames to a `Sink`
//! the caller provides; this crate never sees a flow and never imports the analyzer. It is the only
//! crate with `unsafe` code: mapping the UMEM and reading the frames the kernel hands over, pinning
//! a thread to a CPU, (`huge`) the global allocator's advice to back large allocations with huge
//! pages, and (`prefault`) faulting in pages ahead of their first write.

use std::ffi::CString;
use std::num::NonZeroU32;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use xdpilone::{BufIdx, IfInfo, Socket, SocketConfig, Umem, UmemConfig};

pub mod blast;
pub mod huge;
pub mod prefault;

static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/spanwatch.bpf.o"));
const PROGRAM_NAME: &str = "spanwatch_xsk";
const MAP_NAME: &str = "spanwatch_xsks";
/// Entries in the program's XSKMAP (queues spanwatch can bind).
pub const MAX_QUEUES: u32 = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    Auto,
    Native,
    Skb,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZeroCopy {
    Auto,
    On,
    Off,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub iface: String,
    /// RX queues to bind; None: all of the interface's.
    pub queues: Option<Vec<u32>>,
    pub mode: XdpMode,
    pub zero_copy: ZeroCopy,
    /// Entries in each RX and fill ring (a power of two).
    pub ring_size: u32,
    /// UMEM frame size: a power of two from 2048 to 4096.
    pub frame_size: u32,
    /// Descriptors taken from the RX ring at a time.
    pub batch: u32,
    /// CPUs to pin the rx threads to, in queue order (cycled).
    pub cpus: Option<Vec<usize>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            iface: String::new(),
            queues: None,
            mode: XdpMode::Auto,
            zero_copy: ZeroCopy::Auto,
            ring_size: 8192,
            frame_size: 4096,
            batch: 64,
            cpus: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}: no such interface")]
    NoSuchInterface(String),
    #[error("{0}: permission denied: live capture needs CAP_NET_ADMIN, CAP_BPF, CAP_NET_RAW and CAP_IPC_LOCK (or root)")]
    Privilege(String),
    #[error("this kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS)")]
    NoAfXdp,
    #[error("{0}: another XDP program is already attached; spanwatch does not replace it (detach it first)")]
    Busy(String),
    #[error("{iface}: MTU {mtu} is too large for the XDP program in {mode} mode (at most {max} with {frame}-byte frames)")]
    Mtu {
        iface: String,
        mode: &'static str,
        mtu: u32,
        max: u32,
        frame: u32,
    },
    #[error("{iface}: cannot attach the XDP program in {mode} mode: {reason}")]
    Attach {
        iface: String,
        mode: &'static str,
        reason: String,
    },
    #[error("{0}")]
    Other(String),
}

/// The clock a frame's timestamp came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// Stamped by the XDP program (`bpf_ktime_get_ns`), converted to wall time.
    Xdp,
    /// The program could not stamp it: read on the rx thread when the frame was taken.
    Fallback,
}

/// One received frame, borrowed from the UMEM until the handler returns.
pub struct Frame<'a> {
    pub data: &'a [u8],
    pub ts_ns: i64,
    pub clock: Clock,
    pub queue: u32,
}

/// Kernel counters of one socket (`XDP_STATISTICS`), cumulative, each lost frame under one cause.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Frames dropped for a cause other than the ones below (e.g. longer than a UMEM frame).
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub rx_ring_full: u64,
    /// Frames lost because the fill ring was empty (copy mode; in zero-copy mode the kernel's
    /// count of failed buffer allocations, the driver's own counters show the frames).
    pub rx_fill_ring_empty_descs: u64,
}

/// Where an rx thread delivers. Called on that thread only.
pub trait Sink: Send + 'static {
    fn frame(&mut self, f: &Frame<'_>);
    /// The RX ring ran dry: a moment to hand on what is buffered.
    fn idle(&mut self);
    /// The socket's kernel counters, now and then.
    fn stats(&mut self, s: &QueueStats);
    /// The capture is stopping: last chance to hand everything on.
    fn finish(self: Box<Self>);
}

/// What `start` settled on.
#[derive(Clone, Debug)]
pub struct Chosen {
    pub mode: &'static str,
    pub zero_copy: bool,
    pub queues: Vec<u32>,
    /// Something the user should know (frames that will not fit, say).
    pub warning: Option<String>,
}

/// A running capture. Dropping it (or `stop`) detaches the program and ends the rx threads.
pub struct Capture {
    ebpf: Option<aya::Ebpf>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    pub chosen: Chosen,
}

/// How long the rx thread lets frames gather after a quiet spell before it takes them: 50 µs,
/// or less where a quarter of the RX ring would fill sooner at 10 Gbit/s line rate (64-byte
/// frames, 67.2 ns apart on the wire), so a burst arriving meanwhile never fills the ring.
fn coalesce_wait(ring_size: u32) -> Duration {
    const LINE_RATE_FRAME_NS: u64 = 68;
    Duration::from_nanos((ring_size as u64 / 4 * LINE_RATE_FRAME_NS).min(50_000))
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn ifindex(name: &str) -> Result<u32, Error> {
    let c = CString::new(name).map_err(|_| Error::NoSuchInterface(name.to_string()))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(Error::NoSuchInterface(name.to_string()))
    } else {
        Ok(idx)
    }
}

/// The interface's RX queues, from sysfs.
pub fn rx_queues(iface: &str) -> Result<Vec<u32>, Error> {
    let dir = format!("/sys/class/net/{iface}/queues");
    let mut q: Vec<u32> = std::fs::read_dir(&dir)
        .map_err(|_| Error::NoSuchInterface(iface.to_string()))?
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_prefix("rx-")?
                .parse()
                .ok()
        })
        .collect();
    q.sort_unstable();
    if q.is_empty() {
        q.push(0);
    }
    Ok(q)
}

fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// The interface's MTU, from sysfs.
pub fn mtu(iface: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/sys/class/net/{iface}/mtu"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Confines the calling thread to CPU `cpu`; false where the kernel refused (no such CPU, or
/// one outside the process's cpuset).
pub fn pin_this_thread(cpu: usize) -> bool {
    if cpu >= libc::CPU_SETSIZE as usize {
        return false;
    }
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET (given a CPU below CPU_SETSIZE, checked above)
    // and sched_setaffinity only touch it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// The largest MTU whose frames fit a UMEM frame after the kernel's XDP headroom and tailroom.
fn max_mtu(frame_size: u32) -> u32 {
    frame_size - 512
}

/// Whether an error from aya means the kernel said EPERM/EACCES.
fn denied(e: &impl std::fmt::Debug) -> bool {
    let s = format!("{e:?}").to_lowercase();
    s.contains("permission") || s.contains("not permitted")
}

fn attach_error(e: aya::programs::ProgramError, opts: &Options, mode: &'static str) -> Error {
    let text = e.to_string();
    let lower = format!("{e:?}").to_lowercase();
    let max = max_mtu(opts.frame_size);
    if lower.contains("busy") || lower.contains("os { code: 16") || lower.contains("file exists") {
        Error::Busy(opts.iface.clone())
    } else if denied(&e) {
        Error::Privilege(opts.iface.clone())
    } else if let Some(m) = mtu(&opts.iface).filter(|&m| m > max) {
        Error::Mtu {
            iface: opts.iface.clone(),
            mode,
            mtu: m,
            max,
            frame: opts.frame_size,
        }
    } else {
        Error::Attach {
            iface: opts.iface.clone(),
            mode,
            reason: text,
        }
    }
}

impl Capture {
    /// Loads and attaches the program, opens one socket per queue, and starts the rx threads;
    /// `sink(queue)` makes each queue's sink.
    pub fn start(
        opts: &Options,
        mut sink: impl FnMut(u32) -> Box<dyn Sink>,
    ) -> Result<Capture, Error> {
        let idx = ifindex(&opts.iface)?;
        if !opts.frame_size.is_power_of_two() || !(2048..=4096).contains(&opts.frame_size) {
            return Err(Error::Other("frame size must be 2048 or 4096".into()));
        }
        if !opts.ring_size.is_power_of_two() {
            return Err(Error::Other("ring size must be a power of two".into()));
        }
        let queues = match &opts.queues {
            Some(q) => q.clone(),
            None => rx_queues(&opts.iface)?,
        };
        if let Some(q) = queues.iter().find(|&&q| q >= MAX_QUEUES) {
            return Err(Error::Other(format!(
                "queue {q} is beyond the {MAX_QUEUES} spanwatch can bind"
            )));
        }
        let mut ebpf = aya::Ebpf::load(PROGRAM).map_err(|e| {
            if denied(&e) {
                Error::Privilege(opts.iface.clone())
            } else {
                Error::Other(format!("cannot load the XDP program: {e}"))
            }
        })?;
        let prog: &mut aya::programs::Xdp = ebpf
            .program_mut(PROGRAM_NAME)
            .ok_or_else(|| Error::Other("XDP program missing from the object".into()))?
            .try_into()
            .map_err(|e| Error::Other(format!("{e}")))?;
        prog.load().map_err(|e| {
            if denied(&e) {
                Error::Privilege(opts.iface.clone())
            } else {
                Error::Other(format!("the kernel refused the XDP program: {e}"))
            }
        })?;
        use aya::programs::XdpFlags;
        let mode = match opts.mode {
            XdpMode::Native => {
                prog.attach_to_if_index(idx, XdpFlags::DRV_MODE)
                    .map_err(|e| attach_error(e, opts, "native"))?;
                "native"
            }
            XdpMode::Skb => {
                prog.attach_to_if_index(idx, XdpFlags::SKB_MODE)
                    .map_err(|e| attach_error(e, opts, "skb"))?;
                "skb"
            }
            XdpMode::Auto => match prog.attach_to_if_index(idx, XdpFlags::DRV_MODE) {
                Ok(_) => "native",
                Err(e) => {
                    let first = attach_error(e, opts, "native");
                    if matches!(first, Error::Busy(_) | Error::Privilege(_)) {
                        return Err(first);
                    }
                    prog.attach_to_if_index(idx, XdpFlags::SKB_MODE)
                        .map_err(|e| attach_error(e, opts, "skb"))?;
                    "skb"
                }
            },
        };
        let want_zc = match opts.zero_copy {
            ZeroCopy::Off => false,
            ZeroCopy::On => true,
            ZeroCopy::Auto => mode == "native",
        };

        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let mut zero_copy = want_zc;
        let mut fds = Vec::new();
        for (i, &q) in queues.iter().enumerate() {
            let (tx, rx) = mpsc::channel::<Result<(i32, bool), Error>>();
            let (go_tx, go_rx) = mpsc::channel::<bool>();
            let o = opts.clone();
            let s = sink(q);
            let stop2 = stop.clone();
            let cpu = opts
                .cpus
                .as_ref()
                .filter(|c| !c.is_empty())
                .map(|c| c[i % c.len()]);
            let t = std::thread::Builder::new()
                .name(format!("rx-{q}"))
                .spawn(move || rx_thread(o, q, want_zc, cpu, tx, go_rx, stop2, s))
                .map_err(|e| Error::Other(e.to_string()))?;
            match rx.recv() {
                Ok(Ok((fd, zc))) => {
                    zero_copy &= zc;
                    fds.push((q, fd, go_tx));
                    threads.push(t);
                }
                Ok(Err(e)) => {
                    stop.store(true, Ordering::Relaxed);
                    for (_, _, g) in &fds {
                        let _ = g.send(false);
                    }
                    let _ = t.join();
                    return Err(e);
                }
                Err(_) => return Err(Error::Other(format!("rx thread for queue {q} failed"))),
            }
        }
        {
            let mut map: aya::maps::XskMap<_> = aya::maps::XskMap::try_from(
                ebpf.map_mut(MAP_NAME)
                    .ok_or_else(|| Error::Other("XSKMAP missing".into()))?,
            )
            .map_err(|e| Error::Other(e.to_string()))?;
            for (q, fd, _) in &fds {
                // SAFETY: the descriptor belongs to a socket its rx thread keeps open until it is
                // told to stop, which happens after this map (and the program) are gone.
                let bfd = unsafe { std::os::fd::BorrowedFd::borrow_raw(*fd) };
                map.set(*q, bfd, 0)
                    .map_err(|e| Error::Other(format!("queue {q}: {e}")))?;
            }
        }
        for (_, _, go) in &fds {
            let _ = go.send(true);
        }
        let max = max_mtu(opts.frame_size);
        let warning = mtu(&opts.iface).filter(|&m| m > max).map(|m| {
            format!(
                "{}: MTU {m} is above {max}: longer frames do not fit a {}-byte UMEM frame and are dropped (counted as xdp_rx_dropped)",
                opts.iface, opts.frame_size
            )
        });
        Ok(Capture {
            ebpf: Some(ebpf),
            stop,
            threads,
            chosen: Chosen {
                mode,
                zero_copy,
                queues,
                warning,
            },
        })
    }

    /// Detaches the program, then lets every rx thread drain and finish its sink.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        // Detach first: frames stop arriving; what is in the rings is still read.
        drop(self.ebpf.take());
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// An anonymous, page-aligned mapping for one UMEM.
struct Area {
    ptr: NonNull<u8>,
    len: usize,
}

impl Area {
    fn new(len: usize) -> Result<Area, Error> {
        // SAFETY: an anonymous private mapping with no address hint; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Error::Other(format!(
                "cannot map {len} bytes of UMEM: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(Area {
            ptr: NonNull::new(p as *mut u8)
                .ok_or_else(|| Error::Other("mmap returned NULL".into()))?,
            len,
        })
    }
    fn slice(&self) -> NonNull<[u8]> {
        NonNull::slice_from_raw_parts(self.ptr, self.len)
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in `new`; the rx thread drops the UMEM and
        // the socket that used it before the area.
        unsafe { libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.len) };
    }
}

fn sock_error(e: xdpilone::Errno, iface: &str, what: &str) -> Error {
    match e.get_raw() {
        libc::EPERM | libc::EACCES => Error::Privilege(iface.to_string()),
        libc::EAFNOSUPPORT => Error::NoAfXdp,
        _ => Error::Other(format!("{iface}: {what}: {e}")),
    }
}

/// Hands the socket's kernel counters (XDP_STATISTICS) to the sink, each lost frame counted once.
fn report_stats(user: &xdpilone::User, zero_copy: bool, sink: &mut dyn Sink) {
    if let Ok(s) = user.statistics_v2() {
        sink.stats(&queue_stats(
            s.rx_dropped,
            s.rx_invalid_descs,
            s.rx_ring_full,
            s.rx_fill_ring_empty_descs,
            zero_copy,
        ));
    }
}

/// In copy mode the kernel counts a frame that found the fill ring empty twice, in rx_dropped
/// and in the fill ring's empty count (net/xdp/xsk.c: the buffer allocation fails, both go up by
/// one): it is reported once, as fill ring empty, so the causes add up to the frames lost. In
/// zero-copy mode the driver takes buffers ahead and rx_dropped never counts that case.
fn queue_stats(
    rx_dropped: u64,
    rx_invalid_descs: u64,
    rx_ring_full: u64,
    fill_ring_empty: u64,
    zero_copy: bool,
) -> QueueStats {
    QueueStats {
        rx_dropped: if zero_copy {
            rx_dropped
        } else {
            rx_dropped.saturating_sub(fill_ring_empty)
        },
        rx_invalid_descs,
        rx_ring_full,
        rx_fill_ring_empty_descs: fill_ring_empty,
    }
}

/// Puts `chunks` back on the fill ring through `put` (which places as many of the chunks it is
/// given as the ring has room for, in order, and says how many), and keeps what did not fit for
/// the next call, so that no frame ever drops out of circulation. `put` is asked again while it
/// places any: xdpilone reckons the room from its cached view of the kernel's consumer and
/// refreshes that view only once the cached room is used up, so a first try can place fewer
/// chunks than fit. Dropping the rest, as this thread once did, lost 8 128 of 8 192 frames in
/// 1.4 s at 1.46 M frames/s, and then nearly every frame to an empty fill ring.
fn give_back(chunks: &mut Vec<u64>, mut put: impl FnMut(&[u64]) -> usize) {
    let mut placed = 0;
    while placed < chunks.len() {
        match put(&chunks[placed..]) {
            0 => break,
            n => placed += n,
        }
    }
    chunks.drain(..placed);
}

/// `give_back` to the fill ring of `device`.
fn refill(device: &mut xdpilone::DeviceQueue, returns: &mut Vec<u64>) {
    give_back(returns, |chunks| {
        let mut f = device.fill(chunks.len() as u32);
        let placed = f.insert(chunks.iter().copied());
        f.commit();
        placed as usize
    })
}

#[allow(clippy::too_many_arguments)]
fn rx_thread(
    o: Options,
    q: u32,
    want_zc: bool,
    cpu: Option<usize>,
    ready: mpsc::Sender<Result<(i32, bool), Error>>,
    go: mpsc::Receiver<bool>,
    stop: Arc<AtomicBool>,
    mut sink: Box<dyn Sink>,
) {
    if let Some(cpu) = cpu {
        pin_this_thread(cpu);
    }
    // As many frames as the fill ring holds: no more can circulate. A frame goes from the fill
    // ring to the RX ring, is copied out by this thread, and goes straight back to the fill ring,
    // so the fill ring, the RX ring and the batch in hand share the ring's worth between them.
    let frames = o.ring_size;
    let area = match Area::new(frames as usize * o.frame_size as usize) {
        Ok(a) => a,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let attempt = |zc: bool| -> Result<_, Error> {
        let cfg = UmemConfig {
            fill_size: o.ring_size,
            complete_size: o.ring_size,
            frame_size: o.frame_size,
            headroom: 0,
            flags: 0,
        };
        // SAFETY: `area` is a private page-aligned mapping that outlives the UMEM (dropped after it).
        let umem = unsafe { Umem::new(cfg, area.slice()) }
            .map_err(|e| sock_error(e, &o.iface, "cannot create the UMEM"))?;
        let mut info = IfInfo::invalid();
        let name =
            CString::new(o.iface.clone()).map_err(|_| Error::NoSuchInterface(o.iface.clone()))?;
        info.from_name(&name)
            .map_err(|_| Error::NoSuchInterface(o.iface.clone()))?;
        info.set_queue(q);
        let sock = Socket::with_shared(&info, &umem)
            .map_err(|e| sock_error(e, &o.iface, "cannot open an AF_XDP socket"))?;
        let device = umem
            .fq_cq(&sock)
            .map_err(|e| sock_error(e, &o.iface, "fill/completion rings"))?;
        let mode = if zc {
            SocketConfig::XDP_BIND_ZEROCOPY
        } else {
            SocketConfig::XDP_BIND_COPY
        };
        let cfg = SocketConfig {
            rx_size: NonZeroU32::new(o.ring_size),
            tx_size: None,
            bind_flags: mode | SocketConfig::XDP_BIND_NEED_WAKEUP,
        };
        let user = umem
            .rx_tx(&sock, &cfg)
            .map_err(|e| sock_error(e, &o.iface, "RX ring"))?;
        let rx = user
            .map_rx()
            .map_err(|e| sock_error(e, &o.iface, "RX ring mapping"))?;
        umem.bind(&user)
            .map_err(|e| sock_error(e, &o.iface, &format!("bind to queue {q}")))?;
        Ok((umem, device, user, rx))
    };
    let (zc, parts) = if want_zc {
        match attempt(true) {
            Ok(p) => (true, Ok(p)),
            Err(_) => (false, attempt(false)),
        }
    } else {
        (false, attempt(false))
    };
    let (umem, mut device, user, mut rx) = match parts {
        Ok(p) => p,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let fd = user.as_raw_fd();
    if ready.send(Ok((fd, zc))).is_err() || !go.recv().unwrap_or(false) {
        sink.finish();
        return;
    }
    // The chunks on their way back to the fill ring: every frame, to start with.
    let mut returns: Vec<u64> = Vec::with_capacity(frames as usize);
    returns.extend((0..frames).filter_map(|i| umem.frame(BufIdx(i)).map(|c| c.offset)));
    refill(&mut device, &mut returns);
    let base = area.ptr.as_ptr();
    let len = area.len;
    let fsz = o.frame_size as u64;
    // bpf_ktime_get_ns is CLOCK_MONOTONIC: convert with an offset sampled once at start.
    let offset = clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_MONOTONIC);
    let mut empty = 0u32;
    let coalesce = coalesce_wait(o.ring_size);
    let mut last_stats = Instant::now();
    let mut stopping_since: Option<Instant> = None;
    loop {
        let mut got = 0u32;
        {
            let mut r = rx.receive(o.batch);
            while let Some(desc) = r.read() {
                let (addr, n) = (desc.addr as usize, desc.len as usize);
                let chunk = desc.addr & !(fsz - 1);
                if addr.checked_add(n).is_some_and(|end| end <= len)
                    && addr >= 8
                    && (addr - 8) as u64 >= chunk
                {
                    // SAFETY: the kernel handed this descriptor to user space: [addr, addr+len) lies in
                    // our mapping (checked above) and the kernel will not write it until the chunk is
                    // back on the fill ring; the 8 metadata bytes before it are in the same chunk.
                    let (data, meta) = unsafe {
                        let p = base.add(addr);
                        (
                            std::slice::from_raw_parts(p, n),
                            std::ptr::read_unaligned(p.sub(8) as *const u64),
                        )
                    };
                    let (ts_ns, clock) = if meta != 0 {
                        (meta as i64 + offset, Clock::Xdp)
                    } else {
                        (clock_ns(libc::CLOCK_REALTIME), Clock::Fallback)
                    };
                    sink.frame(&Frame {
                        data,
                        ts_ns,
                        clock,
                        queue: q,
                    });
                    // SAFETY: same bytes as above; clearing the stamp so a failed adjust_meta on the
                    // chunk's next use cannot leave this one behind.
                    unsafe { std::ptr::write_unaligned(base.add(addr - 8) as *mut u64, 0) };
                }
                returns.push(chunk);
                got += 1;
            }
            r.release();
        }
        // Also when nothing came: chunks left waiting for room must not wait for frames that only
        // they could bring.
        if !returns.is_empty() {
            refill(&mut device, &mut returns);
        }
        if got > 0 {
            empty = 0;
        } else {
            empty += 1;
        }
        if device.needs_wakeup() {
            device.wake();
        }
        if last_stats.elapsed() >= Duration::from_millis(500) {
            last_stats = Instant::now();
            report_stats(&user, zc, sink.as_mut());
        }
        if got == 0 {
            if stop.load(Ordering::Relaxed) {
                // Detached: drain what is left for a short while, then end.
                let since = *stopping_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(100) {
                    break;
                }
            }
            if empty > 2 {
                // The ring stayed empty: hand on what is buffered, then sleep in poll() until
                // frames come (spinning longer only burnt CPU between frames at low rates; at
                // high rates the ring is rarely empty, and the wait below fills a batch anyway).
                sink.idle();
                let mut pfd = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd for the duration of the call.
                let r = unsafe { libc::poll(&mut pfd, 1, 50) };
                if r < 0 && errno() != libc::EINTR {
                    break;
                }
                if r > 0 {
                    // Frames are coming in after a quiet spell: let a batch gather rather than
                    // waking once per frame (at 200 kpps that kept this thread busy a whole core).
                    std::thread::sleep(coalesce);
                }
                empty = 0;
            } else {
                std::hint::spin_loop();
            }
        }
    }
    report_stats(&user, zc, sink.as_mut());
    sink.finish();
    drop(rx);
    drop(user);
    drop(device);
    drop(umem);
    drop(area);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_lost_to_an_empty_fill_ring_counts_once() {
        // Copy mode: the kernel counted 5 frames in rx_dropped, 3 of them for the empty fill ring.
        let s = queue_stats(5, 1, 2, 3, false);
        assert_eq!((s.rx_dropped, s.rx_fill_ring_empty_descs), (2, 3));
        assert_eq!((s.rx_invalid_descs, s.rx_ring_full), (1, 2));
        // Zero-copy: rx_dropped never includes them; a count read mid-update never goes negative.
        assert_eq!(queue_stats(5, 0, 0, 3, true).rx_dropped, 5);
        assert_eq!(queue_stats(2, 0, 0, 3, false).rx_dropped, 0);
    }

    /// A fill ring as xdpilone reserves room on it: from a cached count of free slots, refreshed
    /// from the kernel's (`free`) only when the cached count is used up.
    struct Ring {
        placed: Vec<u64>,
        cached: usize,
        free: usize,
    }

    impl Ring {
        fn put(&mut self, chunks: &[u64]) -> usize {
            if self.cached == 0 {
                self.cached = self.free;
            }
            let n = chunks.len().min(self.cached);
            self.placed.extend_from_slice(&chunks[..n]);
            (self.cached, self.free) = (self.cached - n, self.free - n);
            n
        }
    }

    #[test]
    fn every_chunk_goes_back_on_the_fill_ring_or_waits_for_room() {
        // The cached view says 3 slots are free where the kernel has since freed 10: all 8 chunks
        // are placed, in one call.
        let mut ring = Ring {
            placed: vec![],
            cached: 3,
            free: 10,
        };
        let mut chunks: Vec<u64> = (0..8).map(|i| i * 4096).collect();
        give_back(&mut chunks, |c| ring.put(c));
        assert_eq!(ring.placed, (0..8).map(|i| i * 4096).collect::<Vec<_>>());
        assert!(chunks.is_empty());
        // Room for 2 of 5: the other 3 wait, in order, and go first once there is room again.
        let mut chunks: Vec<u64> = (10..15).collect();
        give_back(&mut chunks, |c| ring.put(c));
        assert_eq!(chunks, [12, 13, 14]);
        ring.free = 4;
        chunks.push(15);
        give_back(&mut chunks, |c| ring.put(c));
        assert_eq!(&ring.placed[8..], [10, 11, 12, 13, 14, 15]);
        assert!(chunks.is_empty());
    }

    #[test]
    fn pinning_to_a_cpu_the_kernel_cannot_have_is_refused() {
        std::thread::spawn(|| {
            assert!(!pin_this_thread(libc::CPU_SETSIZE as usize));
            assert!(!pin_this_thread(usize::MAX));
            // A CPU this thread may run on is accepted: the one it runs on now.
            // SAFETY: sched_getcpu takes no arguments and touches no memory of ours.
            let cpu = unsafe { libc::sched_getcpu() };
            assert!(cpu >= 0 && pin_this_thread(cpu as usize));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn coalesce_wait_never_outlasts_a_quarter_ring_at_line_rate() {
        // The default ring: the full 50 µs (a quarter of it lasts 139 µs at line rate).
        assert_eq!(coalesce_wait(8192), Duration::from_micros(50));
        // Small rings: a quarter of the ring at one 64-byte frame per 68 ns.
        assert_eq!(coalesce_wait(512), Duration::from_nanos(128 * 68));
        assert_eq!(coalesce_wait(64), Duration::from_nanos(16 * 68));
        for r in [64u32, 128, 512, 1024, 2048, 4096, 8192, 16384] {
            assert!(coalesce_wait(r).as_nanos() <= (r as u128 / 4) * 68);
        }
    }
}
