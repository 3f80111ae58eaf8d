//! Durations as people write them on the command line and in the protocol file: `500ms`, `30s`,
//! `2.5s`, `5m`, `5min`, `1m30s`, `1h`.

use std::{fmt, str::FromStr, time};

use serde::{de, Deserialize, Deserializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub time::Duration);

/// Milliseconds per unit, for each way of writing it.
const UNITS: [(&[&str], u64); 4] = [
    (&["ms", "msec", "millisecond", "milliseconds"], 1),
    (&["s", "sec", "secs", "second", "seconds"], 1_000),
    (&["m", "min", "mins", "minute", "minutes"], 60_000),
    (&["h", "hr", "hrs", "hour", "hours"], 3_600_000),
];

impl FromStr for Duration {
    type Err = String;

    fn from_str(text: &str) -> Result<Duration, String> {
        let invalid =
            || format!("invalid duration `{text}`: write a number and a unit, e.g. 500ms, 2.5s, 90s, 1m30s, 5min");
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(invalid());
        }
        // A bare number: zero is zero in any unit; any other needs one.
        let bare = rest.chars().all(|c| c.is_ascii_digit() || c == '.');
        if let (true, Ok(number)) = (bare, rest.parse::<f64>()) {
            return match number == 0.0 {
                true => Ok(Duration(time::Duration::ZERO)),
                false => Err(format!(
                    "invalid duration `{text}`: a number needs a unit: {rest}s for seconds, {rest}m for minutes (or \
                     ms, h)"
                )),
            };
        }
        let mut millis: f64 = 0.0;
        while !rest.is_empty() {
            let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
            let (number, after) = rest.split_at(number_end);
            let number: f64 = number.parse().map_err(|_| invalid())?;
            let after = after.trim_start();
            let unit_end = after.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(after.len());
            let (unit, after) = after.split_at(unit_end);
            let per_unit = UNITS.iter().find(|(names, _)| names.contains(&unit)).map(|(_, millis)| *millis);
            millis += number * per_unit.ok_or_else(invalid)? as f64;
            rest = after.trim_start();
        }
        if !millis.is_finite() || millis > u64::MAX as f64 / 2.0 {
            return Err(invalid());
        }
        Ok(Duration(time::Duration::from_millis(millis.round() as u64)))
    }
}

impl Duration {
    /// `--timeout`: zero would fail every step before its build began.
    pub fn timeout(text: &str) -> Result<Duration, String> {
        Duration::not_zero(text, "a timeout: every step would fail before its build began", "90s or 5m")
    }

    /// `--poll`: zero would call Tilt without a pause.
    pub fn poll_interval(text: &str) -> Result<Duration, String> {
        Duration::not_zero(text, "a poll interval: Tilt would be called without a pause", "2s or 10s")
    }

    fn not_zero(text: &str, what_zero_is_not: &str, examples: &str) -> Result<Duration, String> {
        let duration: Duration = text.parse()?;
        if duration.0.is_zero() {
            return Err(format!("`{text}` is zero, and zero is not {what_zero_is_not}. Give one such as {examples}"));
        }
        Ok(duration)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        match millis {
            0 => write!(f, "0s"),
            m if m % 60_000 == 0 => write!(f, "{}m", m / 60_000),
            m if m % 1_000 == 0 => write!(f, "{}s", m / 1_000),
            m => write!(f, "{m}ms"),
        }
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        let cases = [
            ("500ms", 500),
            ("30s", 30_000),
            ("2.5s", 2_500),
            ("5m", 300_000),
            ("5min", 300_000),
            ("1m30s", 90_000),
            ("1m 30s", 90_000),
            ("90 seconds", 90_000),
            ("1h", 3_600_000),
            ("0s", 0),
            ("0", 0),
        ];
        for (text, millis) in cases {
            assert_eq!(text.parse::<Duration>().unwrap().0.as_millis(), millis, "{text}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for text in ["", "5", "m", "-1s", "5 minuets", "1.2.3s", "99999999999999999999999h"] {
            assert!(text.parse::<Duration>().is_err(), "{text}");
        }
        assert_eq!(
            "90".parse::<Duration>().unwrap_err(),
            "invalid duration `90`: a number needs a unit: 90s for seconds, 90m for minutes (or ms, h)"
        );
    }

    #[test]
    fn zero_is_no_timeout_and_no_poll_interval() {
        assert_eq!(
            Duration::timeout("0").unwrap_err(),
            "`0` is zero, and zero is not a timeout: every step would fail before its build began. Give one such as \
             90s or 5m"
        );
        assert!(Duration::timeout("0s").unwrap_err().starts_with("`0s` is zero, and zero is not a timeout"));
        assert!(Duration::poll_interval("0ms").unwrap_err().contains("zero is not a poll interval"));
        assert!(Duration::timeout("1m30s").is_ok());
        assert!(Duration::timeout("5").unwrap_err().contains("needs a unit"));
    }

    #[test]
    fn displays_in_the_largest_whole_unit() {
        for text in ["500ms", "30s", "5m", "0s", "90s"] {
            assert_eq!(text.parse::<Duration>().unwrap().to_string(), text);
        }
    }
}
