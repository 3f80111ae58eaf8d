//! Tilt's log limit, imitated from tilt-dev/tilt `pkg/model/logstore/logstore.go`: Tilt keeps
//! `defaultMaxLogLengthInBytes` (2 * 1000 * 1000) of log for all resources together. Each time
//! a line takes the total past the limit (`ensureMaxLength`), it cuts down to half the limit:
//! it takes the "heaviest" resource (bytes × its rank by recency, the resource whose oldest
//! kept line is newest ranking 1), cuts its budget by half, again until enough is cut, then
//! keeps each resource's newest lines within its budget. A line cut is gone for every later
//! reader: `tilt logs`, and `tilt logs -f` if it had not sent it yet.

use std::collections::BTreeMap;

use crate::timeline::LogLine;

/// The lines Tilt still holds after writing `lines` (in the order written) with `limit`
/// bytes of room.
pub fn kept(lines: Vec<LogLine<'_>>, limit: u64) -> Vec<LogLine<'_>> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut keep = vec![true; lines.len()];
    let mut total = 0;
    for written in 0..lines.len() {
        total += size(&lines[written]);
        if total > limit {
            total = cut(&lines[..=written], &mut keep[..=written], total - limit / 2);
        }
    }
    lines.into_iter().zip(keep).filter_map(|(line, keep)| keep.then_some(line)).collect()
}

/// A line's bytes in Tilt's store: its text and newline.
fn size(line: &LogLine) -> usize {
    line.text.len() + 1
}

/// Cuts at least `to_cut` bytes from the lines still kept; the bytes left.
fn cut(lines: &[LogLine], keep: &mut [bool], mut to_cut: usize) -> usize {
    // Per resource: bytes kept and when its oldest kept line was written.
    let mut weights: BTreeMap<&str, (usize, i64)> = BTreeMap::new();
    for line in lines.iter().zip(keep.iter()).filter_map(|(line, keep)| keep.then_some(line)) {
        weights.entry(line.resource).or_insert((0, line.due_ms)).0 += size(line);
    }
    while to_cut > 0 {
        let Some(heaviest) = heaviest(&weights) else { break };
        let Some(bytes) = weights.get_mut(heaviest).map(|(bytes, _)| bytes) else { break };
        let amount = (*bytes - *bytes / 2).min(to_cut).max(1);
        *bytes -= amount.min(*bytes);
        to_cut = to_cut.saturating_sub(amount);
    }
    // Newest first: each resource keeps what fits in what is left of its budget.
    let mut budget: BTreeMap<&str, i64> =
        weights.iter().map(|(name, (bytes, _))| (*name, i64::try_from(*bytes).unwrap_or(i64::MAX))).collect();
    let mut total = 0;
    for (line, keep) in lines.iter().zip(keep.iter_mut()).rev().filter(|(_, keep)| **keep) {
        let left = budget.entry(line.resource).or_insert(0);
        *left -= i64::try_from(size(line)).unwrap_or(i64::MAX);
        if *left < 0 {
            *keep = false;
        } else {
            total += size(line);
        }
    }
    total
}

/// Tilt's `manifestWeightMap.heaviest`: resources ranked most recent start first, rank × bytes,
/// the first of the largest (ties in start broken by name, for a stable answer).
fn heaviest<'a>(weights: &BTreeMap<&'a str, (usize, i64)>) -> Option<&'a str> {
    let mut by_recency: Vec<(&str, usize, i64)> =
        weights.iter().map(|(n, (bytes, start))| (*n, *bytes, *start)).collect();
    by_recency.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(b.0)));
    let mut best: Option<(&str, usize)> = None;
    for (rank, (name, bytes, _)) in by_recency.into_iter().enumerate() {
        let weight = (rank + 1).saturating_mul(bytes);
        if best.is_none_or(|(_, heaviest)| weight > heaviest) {
            best = Some((name, weight));
        }
    }
    best.map(|(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(resource: &'static str, due_ms: i64, text: &str) -> LogLine<'static> {
        let id = (1, u32::try_from(due_ms).unwrap());
        LogLine { id, due_ms, resource, span_id: "build:1".to_owned(), init: false, text: text.to_owned() }
    }

    #[test]
    fn under_the_limit_everything_stays() {
        let lines = vec![line("a", 0, "123456789"), line("b", 1, "123456789")];
        assert_eq!(kept(lines.clone(), 20), lines);
    }

    #[test]
    fn past_the_limit_the_heaviest_resource_loses_its_oldest_half() {
        // `a` writes 10 lines of 10 bytes, then `b` one: 110 bytes > 100. Cut to 50: `b`
        // started last (rank 1, 10 bytes), `a` ranks 2 with 100 bytes: weight 200; its budget
        // is halved to 50, then cut by 10 more to reach the 60 to cut.
        let mut lines: Vec<LogLine> = (0..10).map(|n| line("a", n, "abcdefghi")).collect();
        lines.push(line("b", 10, "bcdefghij"));
        let kept = kept(lines, 100);
        let a: Vec<i64> = kept.iter().filter(|l| l.resource == "a").map(|l| l.due_ms).collect();
        assert_eq!(a, [6, 7, 8, 9], "a's newest 40 bytes");
        assert!(kept.iter().any(|l| l.resource == "b"), "b keeps its line");
    }

    #[test]
    fn a_cut_line_never_comes_back() {
        // Cut once at the 11th line, the store keeps going: what was cut stays cut.
        let lines: Vec<LogLine> = (0..30).map(|n| line("a", n, "abcdefghi")).collect();
        let kept = kept(lines, 100);
        let first = kept.first().map(|l| l.due_ms).unwrap_or_default();
        assert!(first > 10, "{first}");
        assert!(kept.windows(2).all(|w| w[1].due_ms == w[0].due_ms + 1), "no hole in what is kept");
        assert!(kept.iter().map(size).sum::<usize>() <= 100);
    }
}
