//! What a call of the real `tilt` costs before it answers (its start-up: ~70 ms wall, ~80 ms
//! CPU), paid by every invocation when the scenario has a `call_cost`.

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use sync_tests::scenario::CallCost;

/// Burns `cpu_ms` of this thread's CPU time (wall time where the CPU time cannot be read),
/// then sleeps until `wall_ms` have passed since `started`.
pub fn pay(cost: CallCost, started: Instant) {
    let cpu = Duration::from_millis(cost.cpu_ms);
    let burning = Instant::now();
    let cpu_start = cpu_time();
    let burnt = || match (cpu_start, cpu_time()) {
        (Some(start), Some(now)) => now.saturating_sub(start),
        _ => burning.elapsed(),
    };
    let mut work = 0u64;
    while burnt() < cpu {
        for _ in 0..10_000 {
            work = black_box(work.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
    }
    let rest = Duration::from_millis(cost.wall_ms).saturating_sub(started.elapsed());
    thread::sleep(rest);
}

/// The CPU time of the calling thread (the whole stand-in: it has one) so far: the first field
/// of `/proc/thread-self/schedstat`, in nanoseconds.
fn cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burns_then_sleeps_the_rest() {
        let started = Instant::now();
        pay(CallCost { wall_ms: 120, cpu_ms: 30 }, started);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(120) && took < Duration::from_secs(2), "{took:?}");
        let started = Instant::now();
        let before = cpu_time();
        pay(CallCost { wall_ms: 0, cpu_ms: 40 }, started);
        if let (Some(before), Some(after)) = (before, cpu_time()) {
            assert!(after - before >= Duration::from_millis(40));
        }
    }
}
