//! What the sync itself costs: its CPU time (and for `bench`, its peak memory), from `getrusage`
//! (Linux and macOS).

use std::time::Duration;

/// This process's resource use so far.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// User and system CPU time, all threads.
    pub cpu: Duration,
}

pub fn own() -> Option<Usage> {
    let usage = rusage()?;
    let time = |tv: libc::timeval| {
        Duration::from_secs(u64::try_from(tv.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(tv.tv_usec).unwrap_or(0))
    };
    Some(Usage { cpu: time(usage.ru_utime) + time(usage.ru_stime) })
}

/// This process's peak resident set size, in bytes (`cargo xtask bench`).
#[cfg(feature = "repo-only")]
pub fn peak_rss() -> Option<u64> {
    let max_rss = u64::try_from(rusage()?.ru_maxrss).unwrap_or(0);
    // Linux counts ru_maxrss in KiB, macOS in bytes.
    let peak_rss = if cfg!(target_os = "macos") { max_rss } else { max_rss * 1024 };
    Some(own_peak_rss().unwrap_or(peak_rss))
}

fn rusage() -> Option<libc::rusage> {
    // SAFETY: getrusage fills the struct it is given and touches nothing else.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        (libc::getrusage(libc::RUSAGE_SELF, &mut usage) == 0).then_some(usage)
    }
}

/// Linux keeps ru_maxrss across exec: run by `cargo run`, it would be cargo's. The kernel's own
/// count of this program's peak starts at its exec.
#[cfg(all(target_os = "linux", feature = "repo-only"))]
fn own_peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib = status.lines().find_map(|line| line.strip_prefix("VmHWM:"))?.trim().strip_suffix("kB")?;
    Some(kib.trim().parse::<u64>().ok()? * 1024)
}

#[cfg(all(not(target_os = "linux"), feature = "repo-only"))]
fn own_peak_rss() -> Option<u64> {
    None
}

#[cfg(all(test, feature = "repo-only"))]
mod tests {
    #[test]
    fn the_process_uses_some_memory_and_time() {
        let mut spin = 0u64;
        for n in 0..2_000_000u64 {
            spin = spin.wrapping_add(n * n);
        }
        let (usage, peak) = (super::own().unwrap(), super::peak_rss().unwrap());
        assert!(peak > 1 << 20 && usage.cpu > std::time::Duration::ZERO, "{usage:?} {peak} {spin}");
    }
}
