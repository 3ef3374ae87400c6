//! Least privilege for `spanwatch live`: once the XDP program is attached, the AF_XDP sockets are
//! bound, the /metrics port is listening and the output files are open, nothing more needs a
//! capability. `drop_after_setup` then switches to `--user`: glibc applies setuid/setgid to every
//! thread, and the kernel clears a thread's capabilities when its uids leave 0, so the rx and
//! worker threads that parse what the SPAN port carries keep no privilege at all. (Capabilities
//! are per thread: clearing them with capset would reach only the calling thread, which is why
//! the drop goes through a uid change.) Uses the nix and caps crates (no unsafe here).

use caps::CapSet;
use nix::unistd::{setgid, setgroups, setuid, Uid, User};

/// Who the process runs as now, and what capabilities it still has (for the start-up line).
pub fn describe() -> String {
    let uid = Uid::current();
    let name = User::from_uid(uid)
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name);
    let eff = caps::read(None, CapSet::Effective)
        .map(|s| s.len())
        .unwrap_or(0);
    format!("running as {name}, {eff} capabilities")
}

/// Switches to `user` (when given) and clears all capabilities.
pub fn drop_after_setup(user: Option<&str>) -> anyhow::Result<()> {
    if let Some(name) = user {
        let u = User::from_name(name)
            .map_err(|e| anyhow::anyhow!("--user {name}: {e}"))?
            .ok_or_else(|| anyhow::anyhow!("--user {name}: no such user"))?;
        if Uid::current() != u.uid {
            setgroups(&[u.gid]).map_err(|e| anyhow::anyhow!("--user {name}: setgroups: {e}"))?;
            setgid(u.gid).map_err(|e| anyhow::anyhow!("--user {name}: setgid: {e}"))?;
            setuid(u.uid).map_err(|e| anyhow::anyhow!("--user {name}: setuid: {e}"))?;
        }
    }
    // This thread's sets too (a no-op after a switch away from root), ambient first.
    for set in [
        CapSet::Ambient,
        CapSet::Inheritable,
        CapSet::Effective,
        CapSet::Permitted,
    ] {
        caps::clear(None, set).map_err(|e| anyhow::anyhow!("dropping capabilities: {e}"))?;
    }
    Ok(())
}
