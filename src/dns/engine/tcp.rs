//! `options use-vc`: both queries length-prefixed on one TCP connection.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use nix::poll::PollFlags;

use super::lookup::{failure_of_network, Conn, Failure, Lookup, QueryState};
use super::EngineResult;

#[derive(Debug)]
pub(super) struct TcpConn {
    pub(super) stream: TcpStream,
    pub(super) connected: bool,
    pub(super) out: Vec<u8>,
    pub(super) written: usize,
    pub(super) inbuf: Vec<u8>,
}

/// Drives one TCP lookup: finish the connect, write both queries, read
/// length-prefixed answers.
pub(super) fn service_tcp(
    lookup: &mut Lookup,
    revents: PollFlags,
    server: SocketAddr,
    now: Instant,
    result: &mut EngineResult,
) {
    let Some(Conn::Tcp(tcp)) = lookup.conn.as_mut() else { return };
    if !tcp.connected {
        match tcp.stream.take_error() {
            Ok(None) if revents.intersects(PollFlags::POLLOUT) => tcp.connected = true,
            Ok(None) => return,
            Ok(Some(e)) | Err(e) => {
                let failure = failure_of_network(e.raw_os_error());
                lookup.fail_open_queries(failure);
                return;
            }
        }
    }
    if tcp.written < tcp.out.len() {
        match tcp.stream.write(&tcp.out[tcp.written..]) {
            Ok(n) => {
                let was = tcp.written;
                tcp.written += n;
                let at = Instant::now();
                // A query counts as sent once all its bytes are written.
                let mut end = 0;
                for slot in &mut lookup.queries {
                    end += 2 + slot.bytes.len();
                    if was < end && tcp.written >= end && slot.state == QueryState::Unsent {
                        slot.state = QueryState::Pending { sent_at: at };
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => {
                lookup.fail_open_queries(failure_of_network(e.raw_os_error()));
                return;
            }
        }
    }
    let Some(Conn::Tcp(tcp)) = lookup.conn.as_mut() else { return };
    let mut chunk = [0u8; 4096];
    let mut closed = false;
    loop {
        match tcp.stream.read(&mut chunk) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => tcp.inbuf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                lookup.fail_open_queries(failure_of_network(e.raw_os_error()));
                return;
            }
        }
    }
    let mut frames = Vec::new();
    loop {
        let Some(Conn::Tcp(tcp)) = lookup.conn.as_mut() else { return };
        if tcp.inbuf.len() < 2 {
            break;
        }
        let len = usize::from(u16::from_be_bytes([tcp.inbuf[0], tcp.inbuf[1]]));
        if tcp.inbuf.len() < 2 + len {
            break;
        }
        frames.push(tcp.inbuf[2..2 + len].to_vec());
        tcp.inbuf.drain(..2 + len);
    }
    for frame in frames {
        // On a TCP connection the peer is the server by construction.
        lookup.on_packet(&frame, server, server, now, result);
    }
    if closed {
        lookup.fail_open_queries(Failure::SendFailed);
    }
}
