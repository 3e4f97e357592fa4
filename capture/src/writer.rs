//! Classic pcap writing: the file header (magic for microsecond or nanosecond timestamps,
//! version 2.4, link type, snaplen) and one record per packet, little-endian. The one pcap
//! writer of the project: evidence files, benchmark captures and test fixtures all come
//! from it, and [`crate::reader`] reads them back.

use std::io::{self, Write};

use crate::reader::Format;

/// Size of the pcap file header.
pub const FILE_HEADER_LEN: u64 = 24;
/// Size of a pcap record header.
pub const RECORD_HEADER_LEN: u64 = 16;

/// Timestamp resolution of a classic pcap file (the magic number says which).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Microseconds: magic `0xa1b2c3d4`.
    Micro,
    /// Nanoseconds: magic `0xa1b23c4d`.
    Nano,
}

impl Resolution {
    /// The magic number of files of this resolution.
    pub fn magic(self) -> u32 {
        match self {
            Resolution::Micro => 0xa1b2_c3d4,
            Resolution::Nano => 0xa1b2_3c4d,
        }
    }

    /// The format [`crate::reader`] reports for files of this resolution.
    pub fn format(self) -> Format {
        match self {
            Resolution::Micro => Format::Pcap,
            Resolution::Nano => Format::PcapNs,
        }
    }
}

/// The pcap file header: version 2.4, zone and accuracy 0.
pub fn file_header(res: Resolution, linktype: u32, snaplen: u32) -> [u8; FILE_HEADER_LEN as usize] {
    let mut h = [0u8; FILE_HEADER_LEN as usize];
    h[0..4].copy_from_slice(&res.magic().to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    // thiszone and sigfigs: 0.
    h[16..20].copy_from_slice(&snaplen.to_le_bytes());
    h[20..24].copy_from_slice(&linktype.to_le_bytes());
    h
}

/// A record header for a packet captured at `ts_ns` (ns since the Unix epoch; seconds past
/// 2106 wrap), `incl_len` bytes kept of `orig_len` on the wire.
pub fn record_header(
    res: Resolution,
    ts_ns: u64,
    incl_len: u32,
    orig_len: u32,
) -> [u8; RECORD_HEADER_LEN as usize] {
    let frac = ts_ns % 1_000_000_000;
    let frac = match res {
        Resolution::Micro => frac / 1_000,
        Resolution::Nano => frac,
    };
    let mut h = [0u8; RECORD_HEADER_LEN as usize];
    h[0..4].copy_from_slice(&((ts_ns / 1_000_000_000) as u32).to_le_bytes());
    h[4..8].copy_from_slice(&(frac as u32).to_le_bytes());
    h[8..12].copy_from_slice(&incl_len.to_le_bytes());
    h[12..16].copy_from_slice(&orig_len.to_le_bytes());
    h
}

/// Writes a classic pcap file into `W`: the header when created, then one record per
/// [`PcapWriter::write`]. Buffering is the caller's (give it a `BufWriter` for files).
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
    res: Resolution,
    snaplen: u32,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header into `out`.
    pub fn new(mut out: W, res: Resolution, linktype: u32, snaplen: u32) -> io::Result<Self> {
        out.write_all(&file_header(res, linktype, snaplen))?;
        Ok(PcapWriter { out, res, snaplen })
    }

    /// Bytes the record of a `data_len`-byte packet takes (header, and the packet cut to
    /// the snaplen).
    pub fn record_len(&self, data_len: usize) -> u64 {
        RECORD_HEADER_LEN + data_len.min(self.snaplen as usize) as u64
    }

    /// Writes one packet captured at `ts_ns`: `data` cut to the snaplen, and as its wire
    /// length `orig_len` (never less than the bytes kept).
    pub fn write(&mut self, ts_ns: u64, orig_len: u32, data: &[u8]) -> io::Result<()> {
        let data = &data[..data.len().min(self.snaplen as usize)];
        let incl = data.len() as u32;
        self.out
            .write_all(&record_header(self.res, ts_ns, incl, orig_len.max(incl)))?;
        self.out.write_all(data)
    }

    /// Flushes the output.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The output.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// The output, back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{link, reader::read_capture};

    type Record = (Option<u64>, u32, Vec<u8>, u32);

    fn read_back(bytes: &[u8]) -> (Format, Vec<Record>) {
        let mut out = Vec::new();
        let info = read_capture("t", bytes, &mut |_| {}, &mut |f| {
            out.push((f.ts_ns, f.linktype, f.data.to_vec(), f.orig_len))
        })
        .unwrap();
        assert!(!info.truncated && info.warnings.is_empty(), "{info:?}");
        assert_eq!(info.bytes_read, bytes.len() as u64);
        (info.format, out)
    }

    /// Packets of distinct lengths (one longer than the snaplen below) and timestamps with
    /// every digit of the nanoseconds set.
    fn packets() -> Vec<(u64, u32, Vec<u8>)> {
        vec![
            (1_795_000_000_123_456_789, 60, (0..60).collect()),
            (1_795_000_001_000_000_001, 1514, vec![9u8; 300]),
            (1_795_000_001_999_999_999, 40, vec![7u8; 40]),
            (0, 0, Vec::new()),
        ]
    }

    #[test]
    fn round_trip_through_the_reader() {
        for res in [Resolution::Micro, Resolution::Nano] {
            for linktype in [
                link::LINKTYPE_ETHERNET,
                link::LINKTYPE_RAW,
                link::LINKTYPE_NULL,
            ] {
                let snaplen = 256;
                let mut w = PcapWriter::new(Vec::new(), res, linktype, snaplen).unwrap();
                let mut expect_len = FILE_HEADER_LEN;
                for (ts, orig, data) in packets() {
                    expect_len += w.record_len(data.len());
                    w.write(ts, orig, &data).unwrap();
                }
                let bytes = w.into_inner();
                assert_eq!(bytes.len() as u64, expect_len);
                assert_eq!(bytes[..24], file_header(res, linktype, snaplen));
                let (format, got) = read_back(&bytes);
                assert_eq!(format, res.format());
                let want: Vec<Record> = packets()
                    .into_iter()
                    .map(|(ts, orig, mut data)| {
                        let ts = match res {
                            Resolution::Micro => ts / 1_000 * 1_000,
                            Resolution::Nano => ts,
                        };
                        let orig = orig.max(data.len().min(256) as u32);
                        data.truncate(snaplen as usize);
                        (Some(ts), linktype, data, orig)
                    })
                    .collect();
                assert_eq!(got, want, "{res:?} link type {linktype}");
            }
        }
    }

    #[test]
    fn headers_as_libpcap_writes_them() {
        let h = file_header(Resolution::Nano, 1, 256);
        assert_eq!(h[..4], [0x4d, 0x3c, 0xb2, 0xa1]);
        assert_eq!(h[4..8], [2, 0, 4, 0]);
        assert_eq!(h[8..16], [0; 8]);
        assert_eq!(h[16..], [0, 1, 0, 0, 1, 0, 0, 0]);
        assert_eq!(
            file_header(Resolution::Micro, 113, 65535)[..4],
            [0xd4, 0xc3, 0xb2, 0xa1]
        );
        let r = record_header(Resolution::Micro, 3_000_004_999, 10, 20);
        assert_eq!(r, [3, 0, 0, 0, 4, 0, 0, 0, 10, 0, 0, 0, 20, 0, 0, 0]);
    }

    /// Wireshark's own readers agree with [`crate::reader`]: capinfos on the header, tshark
    /// on every record. Skipped (with a note) when they are not installed.
    #[test]
    fn wireshark_reads_what_is_written() {
        use std::process::Command;
        if Command::new("tshark").arg("--version").output().is_err()
            || Command::new("capinfos").arg("-h").output().is_err()
        {
            eprintln!("skipped: tshark and capinfos are not installed");
            return;
        }
        for res in [Resolution::Micro, Resolution::Nano] {
            let path = std::env::temp_dir()
                .join(format!("picket-writer-{}-{res:?}.pcap", std::process::id()));
            let mut w = PcapWriter::new(Vec::new(), res, link::LINKTYPE_ETHERNET, 256).unwrap();
            for (ts, orig, data) in packets() {
                w.write(ts, orig, &data).unwrap();
            }
            std::fs::write(&path, w.into_inner()).unwrap();
            let run = |cmd: &mut Command| {
                let out = cmd.output().unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                String::from_utf8(out.stdout).unwrap()
            };
            // Machine-readable capinfos: a line of column names, a line of values.
            let info = run(Command::new("capinfos")
                .args(["-T", "-m", "-t", "-c", "-E", "-l"])
                .arg(&path));
            let mut lines = info.lines().map(|l| l.split(','));
            let columns: std::collections::HashMap<&str, &str> =
                lines.next().unwrap().zip(lines.next().unwrap()).collect();
            let file_type = match res {
                Resolution::Micro => "pcap",
                Resolution::Nano => "nsecpcap",
            };
            assert_eq!(columns["File type"], file_type, "{info}");
            assert_eq!(columns["File encapsulation"], "ether", "{info}");
            assert_eq!(columns["Packet size limit"], "256", "{info}");
            assert_eq!(columns["Number of packets"], "4", "{info}");
            let fields = run(Command::new("tshark").args(["-r"]).arg(&path).args([
                "-T",
                "fields",
                "-e",
                "frame.time_epoch",
                "-e",
                "frame.cap_len",
                "-e",
                "frame.len",
            ]));
            // Seconds and a fraction of as many digits as the tshark version prints.
            let ns = |t: &str| {
                let (s, f) = t.split_once('.').unwrap_or((t, ""));
                let f = format!("{f:0<9}");
                s.parse::<u64>().unwrap() * 1_000_000_000 + f[..9].parse::<u64>().unwrap()
            };
            let got: Vec<(u64, usize, u32)> = fields
                .lines()
                .map(|l| {
                    let f: Vec<&str> = l.split('\t').collect();
                    (ns(f[0]), f[1].parse().unwrap(), f[2].parse().unwrap())
                })
                .collect();
            let want: Vec<(u64, usize, u32)> = packets()
                .into_iter()
                .map(|(ts, orig, data)| {
                    let ts = match res {
                        Resolution::Micro => ts / 1_000 * 1_000,
                        Resolution::Nano => ts,
                    };
                    let incl = data.len().min(256);
                    (ts, incl, orig.max(incl as u32))
                })
                .collect();
            assert_eq!(got, want, "{res:?}");
            std::fs::remove_file(&path).unwrap();
        }
    }
}
