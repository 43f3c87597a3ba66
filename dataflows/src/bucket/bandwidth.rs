//! A bandwidth limit for the whole process: token buckets over the bytes that copies read from
//! the source and write to the target, shared by every copy in flight. Each byte a copy reads is
//! written once, so both buckets are charged as it is read.
//!
//! Fairness: bytes are granted in pieces of at most [`PIECE`] bytes, first come first served (a
//! tokio mutex queues its waiters in order), so a large object cannot hold the line while small
//! ones wait, and every copy in flight gets an even share of the rate.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// The largest grant at once: 64 KiB.
pub(crate) const PIECE: u64 = 64 * 1024;

/// A rate in bytes per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate(pub u64);

/// A rate or `--bwlimit` value that could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid rate {input:?}: expected a number of bytes per second such as 50MiB/s, 10M or 800KB/s")]
pub struct RateError {
    input: String,
}

impl FromStr for Rate {
    type Err = RateError;

    /// `50MiB/s`, `50MiB`, `10M` (binary, as rclone reads it), `800KB/s` (decimal), `1.5GiB/s`,
    /// `1048576`. The `/s` is optional; zero is refused.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = || RateError { input: input.to_string() };
        let text = input.trim();
        let text = text.strip_suffix("/s").unwrap_or(text);
        let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: f64 = number.parse().map_err(|_| err())?;
        let multiplier: f64 = match unit.trim() {
            "" | "B" => 1.0,
            "K" | "KiB" | "k" => 1024.0,
            "M" | "MiB" => 1024.0 * 1024.0,
            "G" | "GiB" => 1024.0 * 1024.0 * 1024.0,
            "KB" | "kB" => 1e3,
            "MB" => 1e6,
            "GB" => 1e9,
            _ => return Err(err()),
        };
        let bytes = (number * multiplier).round();
        if !(bytes >= 1.0 && bytes.is_finite()) {
            return Err(err());
        }
        Ok(Rate(bytes as u64))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} B/s", self.0)
    }
}

/// `--bwlimit`: one rate for reads and writes alike, or `READ:WRITE`, either side `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BandwidthLimit {
    /// The limit on bytes read from the source, across the process; `None` for no limit.
    pub read: Option<Rate>,
    /// The limit on bytes written to the target, across the process; `None` for no limit.
    pub write: Option<Rate>,
}

impl FromStr for BandwidthLimit {
    type Err = RateError;
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let side = |s: &str| if s.trim() == "off" { Ok(None) } else { s.parse::<Rate>().map(Some) };
        match input.split_once(':') {
            Some((read, write)) => Ok(BandwidthLimit { read: side(read)?, write: side(write)? }),
            None => {
                let rate = side(input)?;
                Ok(BandwidthLimit { read: rate, write: rate })
            }
        }
    }
}

/// A token bucket: `rate` bytes a second, with at most one piece of burst.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    /// When the bucket is next empty: grants move it forward by their size over the rate.
    next_free: Mutex<Instant>,
}

impl TokenBucket {
    pub(crate) fn new(rate: Rate) -> Self {
        TokenBucket { rate: rate.0.max(1) as f64, next_free: Mutex::new(Instant::now()) }
    }

    /// Waits until `bytes` may pass, a piece at a time, behind the grants asked for earlier.
    #[cfg(test)]
    pub(crate) async fn take(&self, bytes: u64) {
        let mut left = bytes;
        while left > 0 {
            let piece = left.min(PIECE);
            left -= piece;
            self.take_piece(piece).await;
        }
    }

    /// Waits until one piece (at most [`PIECE`] bytes) may pass.
    async fn take_piece(&self, piece: u64) {
        // Holding the lock while waiting is the point: it keeps the waiters in order.
        let mut next_free = self.next_free.lock().await;
        let now = Instant::now();
        // An idle bucket may grant at most one piece at once (the burst), not a backlog.
        let burst = now.checked_sub(Duration::from_secs_f64(PIECE as f64 / self.rate)).unwrap_or(now);
        let start = (*next_free).max(burst);
        let done = start + Duration::from_secs_f64(piece as f64 / self.rate);
        *next_free = done;
        if done > now {
            tokio::time::sleep_until(done).await;
        }
    }
}

/// The process's limits, for the copier to draw from; cloning shares them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Bandwidth {
    read: Option<Arc<TokenBucket>>,
    write: Option<Arc<TokenBucket>>,
}

impl Bandwidth {
    pub(crate) fn new(limit: BandwidthLimit) -> Self {
        // Every byte a copy reads is written once: one bucket serves an equal limit on both sides.
        let write = if limit.write == limit.read { None } else { limit.write };
        Bandwidth {
            read: limit.read.map(|r| Arc::new(TokenBucket::new(r))),
            write: write.map(|r| Arc::new(TokenBucket::new(r))),
        }
    }

    /// Waits until `bytes` just read from the source may go on: within the read limit, and within
    /// the write limit for when they are written. Both are charged as the bytes come in, a piece
    /// at a time from one and then the other: charging a whole chunk to one and then to the
    /// other would let the copies fall into step, all reading and then all writing, each limit
    /// idle while the other works (measured: half the rate).
    pub(crate) async fn admit(&self, bytes: usize) {
        let mut left = bytes as u64;
        while left > 0 {
            let piece = left.min(PIECE);
            left -= piece;
            for bucket in [&self.read, &self.write].into_iter().flatten() {
                bucket.take_piece(piece).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_as_operators_write_them() {
        let mib = 1024 * 1024;
        assert_eq!("50MiB/s".parse(), Ok(Rate(50 * mib)));
        assert_eq!("10M".parse(), Ok(Rate(10 * mib)));
        assert_eq!("800KB/s".parse(), Ok(Rate(800_000)));
        assert_eq!("1.5GiB".parse(), Ok(Rate(3 * 512 * mib)));
        assert_eq!("4096".parse(), Ok(Rate(4096)));
        for bad in ["", "fast", "0", "-5M", "5 parsecs", "MiB/s", "1e9"] {
            let err = bad.parse::<Rate>().unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
        let limit: BandwidthLimit = "100M:off".parse().unwrap();
        assert_eq!(limit, BandwidthLimit { read: Some(Rate(100 * mib)), write: None });
        let both: BandwidthLimit = "1M".parse().unwrap();
        assert_eq!(both.read, both.write);
    }

    /// On tokio's paused clock, so that the figures are exact and no test waits.
    #[tokio::test(start_paused = true)]
    async fn a_bucket_grants_its_rate_shared_among_takers_in_order() {
        let bucket = Arc::new(TokenBucket::new(Rate(1024 * 1024)));
        let started = Instant::now();
        // Eight copies of 2 MiB each, at 1 MiB/s together: 16 s, less the one-piece burst.
        let takers: Vec<_> = (0..8)
            .map(|_| {
                let bucket = bucket.clone();
                tokio::spawn(async move {
                    bucket.take(2 * 1024 * 1024).await;
                    started.elapsed()
                })
            })
            .collect();
        let mut finished = Vec::new();
        for t in takers {
            finished.push(t.await.unwrap().as_secs_f64());
        }
        let last = finished.iter().cloned().fold(0.0, f64::max);
        let first = finished.iter().cloned().fold(f64::MAX, f64::min);
        assert!((15.9..=16.0).contains(&last), "16 MiB at 1 MiB/s: {last}");
        // Fair shares: every copy finishes near the end, none far ahead of the others.
        assert!(first > 15.0, "a copy finished at {first}s while others waited: {finished:?}");
    }
}
