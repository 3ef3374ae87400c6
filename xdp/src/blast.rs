//! The benchmark sender's transmit path (never used by capture): frames sent out of an interface
//! by the kernel itself, with `BPF_PROG_TEST_RUN` in live-frames mode (Linux 5.18+) running
//! `bpf/blast.bpf.c`, which answers XDP_TX for each (paced, when asked, by a spin on the kernel
//! clock). No socket buffer is allocated per frame, so one core offers a veth several times the
//! rate a socket's send loop reaches — enough to find where a receiver starts to lose frames.
//! Frames go only where the caller sends them.

use crate::{ifindex, Error};
use std::os::fd::{AsFd, AsRawFd};

static BLAST: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/blast.bpf.o"));
const TX_PROGRAM: &str = "spanwatch_tx";
/// `bpf(2)` command and flag numbers from include/uapi/linux/bpf.h.
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;

/// The `test` member of `union bpf_attr` (the kernel takes a prefix of the union).
#[repr(C)]
#[derive(Default)]
struct TestRun {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

/// `struct xdp_md` as the test run's context: the frame's bounds and the device it goes out of.
#[repr(C)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}

/// Moves the calling thread (only it) into the network namespace `name` (as `ip netns` names
/// it, /run/netns/NAME), so that a `Blaster` made on it sends from there.
pub fn enter_netns(name: &str) -> Result<(), Error> {
    let f = std::fs::File::open(format!("/run/netns/{name}"))
        .map_err(|e| Error::Other(format!("network namespace {name}: {e}")))?;
    // SAFETY: setns only reads the descriptor, which `f` keeps open for the call; CLONE_NEWNET
    // changes the calling thread's namespace and nothing in this process's memory.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        return Err(Error::Other(format!("network namespace {name}: {e}")));
    }
    Ok(())
}

/// A loaded transmit program bound to one interface.
pub struct Blaster {
    /// Owns the program (its fd closes with it).
    ebpf: aya::Ebpf,
    ifindex: u32,
}

impl Blaster {
    /// A sender out of `iface`, one frame every `interval_ns` (0: as fast as the kernel goes).
    pub fn new(iface: &str, interval_ns: u64) -> Result<Blaster, Error> {
        let ifindex = ifindex(iface)?;
        let mut ebpf = aya::EbpfLoader::new()
            .set_global("interval_ns", &interval_ns, true)
            .load(BLAST)
            .map_err(|e| Error::Other(format!("cannot load the XDP object: {e}")))?;
        let prog: &mut aya::programs::Xdp = ebpf
            .program_mut(TX_PROGRAM)
            .ok_or_else(|| Error::Other("transmit program missing from the object".into()))?
            .try_into()
            .map_err(|e| Error::Other(format!("{e}")))?;
        prog.load()
            .map_err(|e| Error::Other(format!("the kernel refused the transmit program: {e}")))?;
        Ok(Blaster { ebpf, ifindex })
    }

    /// Sends `frame` `count` times, `batch` frames per kernel batch (at most 256; 0: the kernel's
    /// 64). Returns when the kernel has handed all of them to the device (a device that cannot
    /// take a frame drops it and counts it in its own statistics).
    pub fn send(&mut self, frame: &[u8], count: u32, batch: u32) -> Result<(), Error> {
        let prog: &aya::programs::Xdp = self
            .ebpf
            .program(TX_PROGRAM)
            .ok_or_else(|| Error::Other("transmit program missing".into()))?
            .try_into()
            .map_err(|e| Error::Other(format!("{e}")))?;
        let fd = prog
            .fd()
            .map_err(|e| Error::Other(format!("{e}")))?
            .as_fd()
            .as_raw_fd();
        let ctx = XdpMd {
            data: 0,
            data_end: frame.len() as u32,
            data_meta: 0,
            ingress_ifindex: self.ifindex,
            rx_queue_index: 0,
            egress_ifindex: 0,
        };
        let mut attr = TestRun {
            prog_fd: fd as u32,
            data_size_in: frame.len() as u32,
            data_in: frame.as_ptr() as u64,
            repeat: count,
            ctx_size_in: std::mem::size_of::<XdpMd>() as u32,
            ctx_in: &ctx as *const XdpMd as u64,
            flags: BPF_F_TEST_XDP_LIVE_FRAMES,
            batch_size: batch,
            ..TestRun::default()
        };
        // SAFETY: `attr` is a valid, initialised `bpf_attr.test` prefix whose pointers name `frame`
        // and `ctx`, both alive and unmodified for the call; the kernel writes only `attr` itself
        // (retval, duration), which we own mutably, and is told its exact size.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_TEST_RUN,
                &mut attr as *mut TestRun,
                std::mem::size_of::<TestRun>() as u32,
            )
        };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            return Err(Error::Other(format!(
                "BPF_PROG_TEST_RUN in live-frames mode failed (Linux 5.18 or later needed): {e}"
            )));
        }
        Ok(())
    }
}
