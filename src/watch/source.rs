//! Where packets come from: a capture file (pcap or pcapng, `--read`) or
//! the live capture ([`super::capture`]), behind one interface.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgReader};

use super::packet::{self, DnsPacket, LinkType};

/// Why packets could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: String,
    },
    /// The file is not a capture this reader knows.
    #[error("{path}: not a pcap or pcapng capture ({cause})")]
    Format {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: String,
    },
    /// The live capture could not be set up or failed.
    #[error("capture: {0}")]
    Capture(String),
}

/// What the source has next.
#[derive(Debug)]
pub enum Next {
    /// A DNS packet.
    Packet(DnsPacket),
    /// Nothing for a while (live capture): time moved on to this.
    Idle(Duration),
    /// No more packets (end of file).
    End,
}

/// A source of DNS packets.
pub trait PacketSource {
    /// The next DNS packet (frames that carry none are skipped).
    fn next(&mut self) -> Result<Next, SourceError>;
    /// Frames the capture dropped so far (cumulative).
    fn drops(&mut self) -> u64;
}

/// Frames (DNS or not) read and how many decoded as DNS.
#[derive(Debug, Default, Clone, Copy)]
pub struct FrameCounts {
    /// Frames read.
    pub frames: u64,
    /// Frames of a link type not decoded.
    pub unknown_link: u64,
}

enum Reader {
    Pcap(PcapReader<BufReader<File>>, Option<LinkType>),
    PcapNg(PcapNgReader<BufReader<File>>),
}

/// A pcap or pcapng file.
pub struct FileSource {
    path: PathBuf,
    reader: Reader,
    /// Per pcapng interface: its link type and timestamp units per second.
    interfaces: Vec<(Option<LinkType>, u64)>,
    /// What was read.
    pub counts: FrameCounts,
}

impl std::fmt::Debug for FileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSource").field("path", &self.path).finish()
    }
}

const PCAP_MAGICS: [[u8; 4]; 4] = [
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0x4d, 0x3c, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
];
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

impl FileSource {
    /// Opens `path`, pcap or pcapng by its first four bytes.
    pub fn open(path: &Path) -> Result<FileSource, SourceError> {
        let read_error =
            |e: std::io::Error| SourceError::Read { path: path.into(), cause: e.to_string() };
        let format_error = |e: pcap_file::PcapError| SourceError::Format {
            path: path.into(),
            cause: e.to_string(),
        };
        let mut magic = [0u8; 4];
        File::open(path).and_then(|mut f| f.read_exact(&mut magic)).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                SourceError::Format { path: path.into(), cause: "shorter than a header".into() }
            } else {
                read_error(e)
            }
        })?;
        let file = BufReader::with_capacity(256 * 1024, File::open(path).map_err(read_error)?);
        let reader = if PCAP_MAGICS.contains(&magic) {
            let reader = PcapReader::new(file).map_err(format_error)?;
            let link = LinkType::from_linktype(u32::from(reader.header().datalink));
            Reader::Pcap(reader, link)
        } else if magic == PCAPNG_MAGIC {
            Reader::PcapNg(PcapNgReader::new(file).map_err(format_error)?)
        } else {
            return Err(SourceError::Format {
                path: path.into(),
                cause: format!("magic {:02x?}", magic),
            });
        };
        Ok(FileSource {
            path: path.into(),
            reader,
            interfaces: Vec::new(),
            counts: FrameCounts::default(),
        })
    }

    fn format_error(&self, e: pcap_file::PcapError) -> SourceError {
        SourceError::Format { path: self.path.clone(), cause: e.to_string() }
    }
}

/// Timestamp units per second of a pcapng `if_tsresol` value (default
/// microseconds): a negative power of 10, or of 2 with the high bit set.
fn units_per_second(tsresol: Option<u8>) -> u64 {
    match tsresol {
        None => 1_000_000,
        Some(r) if r & 0x80 != 0 => 1u64.checked_shl(u32::from(r & 0x7f)).unwrap_or(0),
        Some(r) => 10u64.checked_pow(u32::from(r)).unwrap_or(0),
    }
}

impl PacketSource for FileSource {
    fn next(&mut self) -> Result<Next, SourceError> {
        loop {
            let decoded = match &mut self.reader {
                Reader::Pcap(reader, link) => match reader.next_packet() {
                    None => return Ok(Next::End),
                    Some(Err(e)) => {
                        return Err(SourceError::Format {
                            path: self.path.clone(),
                            cause: e.to_string(),
                        })
                    }
                    Some(Ok(p)) => {
                        self.counts.frames += 1;
                        match link {
                            Some(link) => packet::decode(*link, p.timestamp, &p.data),
                            None => {
                                self.counts.unknown_link += 1;
                                None
                            }
                        }
                    }
                },
                Reader::PcapNg(reader) => match reader.next_block() {
                    None => return Ok(Next::End),
                    Some(Err(e)) => {
                        let e = self.format_error(e);
                        return Err(e);
                    }
                    Some(Ok(Block::InterfaceDescription(idb))) => {
                        let tsresol = idb.options.iter().find_map(|o| match o {
                            InterfaceDescriptionOption::IfTsResol(r) => Some(*r),
                            _ => None,
                        });
                        let link = LinkType::from_linktype(u32::from(idb.linktype));
                        self.interfaces.push((link, units_per_second(tsresol)));
                        None
                    }
                    Some(Ok(Block::SectionHeader(_))) => {
                        // A new section: its interfaces are numbered anew.
                        self.interfaces.clear();
                        None
                    }
                    Some(Ok(Block::EnhancedPacket(epb))) => {
                        self.counts.frames += 1;
                        let interface = usize::try_from(epb.interface_id).ok();
                        match interface.and_then(|i| self.interfaces.get(i)) {
                            Some((Some(link), units)) if *units > 0 => {
                                // Why: the crate reads the 64-bit timestamp
                                // as nanoseconds whatever if_tsresol says.
                                let raw = epb.timestamp.as_nanos();
                                let nanos = raw * 1_000_000_000 / u128::from(*units);
                                let ts =
                                    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
                                packet::decode(*link, ts, &epb.data)
                            }
                            _ => {
                                self.counts.unknown_link += 1;
                                None
                            }
                        }
                    }
                    Some(Ok(_)) => None,
                },
            };
            if let Some(packet) = decoded {
                return Ok(Next::Packet(packet));
            }
        }
    }

    fn drops(&mut self) -> u64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcapng_timestamp_units() {
        assert_eq!(units_per_second(None), 1_000_000);
        assert_eq!(units_per_second(Some(9)), 1_000_000_000);
        assert_eq!(units_per_second(Some(0x80 | 10)), 1024);
        assert_eq!(units_per_second(Some(40)), 0);
    }
}
