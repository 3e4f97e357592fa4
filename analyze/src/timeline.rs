//! Traffic over time, for the charts: bytes by protocol class and packet sizes in at most
//! [`MAX_BUCKETS`] time buckets (the bucket width doubles as the capture grows), and the
//! packet-size histogram.

use serde::Serialize;

/// Most buckets kept; the width doubles (merging neighbours) when more would be needed.
pub const MAX_BUCKETS: usize = 512;
/// Width of the first buckets: 1 ms.
const FIRST_WIDTH_NS: u64 = 1_000_000;

/// Protocol classes of the bytes-over-time chart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// TCP.
    Tcp = 0,
    /// UDP.
    Udp = 1,
    /// ICMP and ICMPv6.
    Icmp = 2,
    /// Everything else (other IP protocols, fragments, non-IP, unparsed).
    Other = 3,
}

/// One time bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Bucket {
    /// Start, seconds after the first packet.
    pub t_s: f64,
    /// Packets.
    pub packets: u64,
    /// Wire bytes by class: TCP, UDP, ICMP, other.
    pub bytes: [u64; 4],
    /// Smallest packet (wire bytes; 0 when the bucket is empty).
    pub size_min: u64,
    /// Largest packet.
    pub size_max: u64,
}

impl Bucket {
    fn add(&mut self, class: Class, size: u64) {
        self.size_min = if self.packets == 0 {
            size
        } else {
            self.size_min.min(size)
        };
        self.size_max = self.size_max.max(size);
        self.packets += 1;
        self.bytes[class as usize] += size;
    }

    fn merge(&mut self, o: &Bucket) {
        if o.packets == 0 {
            return;
        }
        self.size_min = if self.packets == 0 {
            o.size_min
        } else {
            self.size_min.min(o.size_min)
        };
        self.size_max = self.size_max.max(o.size_max);
        self.packets += o.packets;
        for (a, b) in self.bytes.iter_mut().zip(o.bytes) {
            *a += b;
        }
    }

    /// All wire bytes.
    pub fn total_bytes(&self) -> u64 {
        self.bytes.iter().sum()
    }
}

/// The chart data of the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TimelineReport {
    /// Width of each bucket in seconds.
    pub bucket_s: f64,
    /// Buckets in time order, empty ones included.
    pub buckets: Vec<Bucket>,
}

/// Accumulates the timeline.
#[derive(Debug)]
pub struct Timeline {
    start_ns: Option<u64>,
    width_ns: u64,
    buckets: Vec<Bucket>,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline {
            start_ns: None,
            width_ns: FIRST_WIDTH_NS,
            buckets: Vec::new(),
        }
    }
}

impl Timeline {
    /// Adds a packet of `size` wire bytes at `ts_ns` (times before the first packet count in
    /// the first bucket).
    pub fn add(&mut self, ts_ns: u64, class: Class, size: u64) {
        let start = *self.start_ns.get_or_insert(ts_ns);
        let off = ts_ns.saturating_sub(start);
        while off / self.width_ns >= MAX_BUCKETS as u64 {
            self.buckets = self
                .buckets
                .chunks(2)
                .map(|pair| {
                    let mut b = pair[0];
                    if let Some(o) = pair.get(1) {
                        b.merge(o);
                    }
                    b
                })
                .collect();
            self.width_ns *= 2;
        }
        let idx = (off / self.width_ns) as usize;
        if self.buckets.len() <= idx {
            self.buckets.resize(idx + 1, Bucket::default());
        }
        self.buckets[idx].add(class, size);
    }

    /// The buckets with their start times.
    pub fn finish(mut self) -> TimelineReport {
        let w = self.width_ns as f64 / 1e9;
        for (i, b) in self.buckets.iter_mut().enumerate() {
            b.t_s = i as f64 * w;
        }
        TimelineReport {
            bucket_s: w,
            buckets: self.buckets,
        }
    }
}

/// Upper bounds (inclusive) of the packet-size histogram bins, as in Wireshark's "Packet
/// Lengths" statistics; the last bin is open-ended.
pub const SIZE_BINS: [u64; 9] = [19, 39, 79, 159, 319, 639, 1279, 2559, 5119];

/// One histogram bin.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SizeBin {
    /// "40-79", …, "5120+".
    pub range: String,
    /// Packets whose wire length falls in the bin.
    pub packets: u64,
}

/// Packet-size histogram.
#[derive(Clone, Debug, Default)]
pub struct SizeHistogram {
    counts: [u64; SIZE_BINS.len() + 1],
}

impl SizeHistogram {
    /// Counts a packet of `size` wire bytes.
    pub fn add(&mut self, size: u64) {
        let i = SIZE_BINS
            .iter()
            .position(|hi| size <= *hi)
            .unwrap_or(SIZE_BINS.len());
        self.counts[i] += 1;
    }

    /// The bins, all of them.
    pub fn finish(&self) -> Vec<SizeBin> {
        let mut lo = 0;
        self.counts
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let range = match SIZE_BINS.get(i) {
                    Some(hi) => format!("{lo}-{hi}"),
                    None => format!("{lo}+"),
                };
                lo = SIZE_BINS.get(i).map_or(lo, |hi| hi + 1);
                SizeBin { range, packets: *n }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_double_and_keep_totals() {
        let mut t = Timeline::default();
        for i in 0..10_000u64 {
            t.add(
                1_000_000_000 + i * 7_000_000,
                if i % 2 == 0 { Class::Tcp } else { Class::Udp },
                100 + i % 50,
            );
        }
        t.add(0, Class::Other, 1); // earlier than the first packet: first bucket
        let r = t.finish();
        assert!(r.buckets.len() <= MAX_BUCKETS);
        assert_eq!(r.buckets.iter().map(|b| b.packets).sum::<u64>(), 10_001);
        assert_eq!(r.buckets[0].size_min, 1);
        assert!(r.bucket_s * r.buckets.len() as f64 >= 70.0);
        assert_eq!(r.buckets[1].t_s, r.bucket_s);
    }

    #[test]
    fn histogram_bins() {
        let mut h = SizeHistogram::default();
        for s in [0, 19, 20, 60, 1514, 9000] {
            h.add(s);
        }
        let bins = h.finish();
        assert_eq!(bins.len(), 10);
        assert_eq!((bins[0].range.as_str(), bins[0].packets), ("0-19", 2));
        assert_eq!((bins[2].range.as_str(), bins[2].packets), ("40-79", 1));
        assert_eq!((bins[9].range.as_str(), bins[9].packets), ("5120+", 1));
        assert_eq!(bins[7].packets, 1);
    }
}
