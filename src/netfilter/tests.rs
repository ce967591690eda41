//! The socket code on captured ctnetlink bytes ([`super::captures`]),
//! on scripted kernels (restarts, overruns, deadlines) and on a real
//! socket that is never answered.

use std::time::{Duration, Instant};

use netlink_packet_core::{NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST};
use netlink_packet_netfilter::conntrack::ConntrackMessage;
use netlink_packet_netfilter::NetfilterProtoFamily;

use super::captures::*;
use super::dump::{dump_with, exchange, next_wait, Deadline, DumpSummary, Received, Transport};
use super::reply::{Expect, Progress, ReplyCollector};
use super::*;

fn stats_cpu_request() -> ConntrackMessage {
    // IPCTNL_MSG_CT_GET_STATS_CPU (4).
    ConntrackMessage::Other { message_type: 4, attributes: vec![] }
}

#[test]
fn request_encodes_like_the_capture() {
    let bytes = encode_request(
        NetfilterProtoFamily::Unspec,
        stats_cpu_request(),
        NLM_F_REQUEST | NLM_F_DUMP,
        CPU_DUMP_SEQUENCE,
    );
    assert_eq!(bytes, CPU_DUMP_REQUEST);
}

#[test]
fn dump_spanning_two_datagrams_completes_at_done() {
    let mut collector = ReplyCollector::new("test", CPU_DUMP_SEQUENCE, CPU_DUMP_PORT, Expect::Done);
    assert_eq!(collector.feed(&CPU_DUMP_DATAGRAM).unwrap(), Progress::More);
    // Both messages of the one datagram were taken.
    assert_eq!(collector.replies.len(), 2);
    assert_eq!(collector.replies[0].message.header.res_id, 0);
    assert_eq!(collector.replies[1].message.header.res_id, 1);
    assert_eq!(collector.feed(&CPU_DUMP_DONE).unwrap(), Progress::Complete);
    assert_eq!(collector.replies.len(), 2);
    assert!(!collector.interrupted);
    assert!(!collector.overrun);
}

#[test]
fn messages_and_done_in_one_datagram() {
    let mut datagram = CPU_DUMP_DATAGRAM.to_vec();
    datagram.extend_from_slice(&CPU_DUMP_DONE);
    let mut collector = ReplyCollector::new("test", CPU_DUMP_SEQUENCE, CPU_DUMP_PORT, Expect::Done);
    assert_eq!(collector.feed(&datagram).unwrap(), Progress::Complete);
    assert_eq!(collector.replies.len(), 2);
}

#[test]
fn dump_intr_on_any_message_is_detected() {
    // Derived from the capture: NLM_F_DUMP_INTR (0x10) set on message 2.
    let mut datagram = CPU_DUMP_DATAGRAM;
    datagram[CPU_DUMP_MESSAGE2_FLAGS] |= NLM_F_DUMP_INTR as u8;
    let mut collector = ReplyCollector::new("test", CPU_DUMP_SEQUENCE, CPU_DUMP_PORT, Expect::Done);
    collector.feed(&datagram).unwrap();
    assert_eq!(collector.feed(&CPU_DUMP_DONE).unwrap(), Progress::Complete);
    assert!(collector.interrupted);

    // ... and on the NLMSG_DONE alone.
    let mut done = CPU_DUMP_DONE;
    done[6] |= NLM_F_DUMP_INTR as u8;
    let mut collector = ReplyCollector::new("test", CPU_DUMP_SEQUENCE, CPU_DUMP_PORT, Expect::Done);
    collector.feed(&CPU_DUMP_DATAGRAM).unwrap();
    collector.feed(&done).unwrap();
    assert!(collector.interrupted);
}

#[test]
fn eperm_is_permission_denied() {
    let mut collector = ReplyCollector::new("test", CPU_DUMP_SEQUENCE, EPERM_PORT, Expect::Done);
    let error = collector.feed(&EPERM_DATAGRAM).unwrap_err();
    assert!(matches!(error, NetfilterError::PermissionDenied { .. }), "{error:?}");
    assert!(error.to_string().contains("CAP_NET_ADMIN"));
}

#[test]
fn ack_completes_a_request() {
    let mut collector = ReplyCollector::new("test", GLOBAL_SEQUENCE, GLOBAL_PORT, Expect::Ack);
    assert_eq!(collector.feed(&GLOBAL_DATAGRAM).unwrap(), Progress::More);
    assert_eq!(collector.feed(&GLOBAL_ACK).unwrap(), Progress::Complete);
    assert_eq!(collector.replies.len(), 1);
    assert_eq!(collector.replies[0].header.message_type, 0x0105);
}

#[test]
fn ack_inside_a_dump_is_malformed() {
    let mut collector = ReplyCollector::new("test", GLOBAL_SEQUENCE, GLOBAL_PORT, Expect::Done);
    let error = collector.feed(&GLOBAL_ACK).unwrap_err();
    assert!(matches!(error, NetfilterError::Malformed { .. }), "{error:?}");
}

#[test]
fn enoent_is_a_distinct_kernel_error() {
    let mut collector = ReplyCollector::new("delete", DELETE_SEQUENCE, DELETE_PORT, Expect::Ack);
    let error = collector.feed(&DELETE_ENOENT_DATAGRAM).unwrap_err();
    assert!(
        matches!(error, NetfilterError::Kernel { errno: libc::ENOENT, request: "delete", .. }),
        "{error:?}"
    );
}

#[test]
fn other_sequence_numbers_are_skipped_as_stale() {
    let mut collector =
        ReplyCollector::new("test", CPU_DUMP_SEQUENCE + 1, CPU_DUMP_PORT, Expect::Done);
    assert_eq!(collector.feed(&CPU_DUMP_DATAGRAM).unwrap(), Progress::More);
    assert_eq!(collector.feed(&CPU_DUMP_DONE).unwrap(), Progress::More);
    assert!(collector.replies.is_empty());
    assert_eq!(collector.stale, 3);
}

#[test]
fn another_port_is_malformed() {
    let mut collector =
        ReplyCollector::new("test", CPU_DUMP_SEQUENCE, CPU_DUMP_PORT + 1, Expect::Done);
    let error = collector.feed(&CPU_DUMP_DATAGRAM).unwrap_err();
    assert!(matches!(error, NetfilterError::Malformed { .. }), "{error:?}");
}

#[test]
fn truncated_datagrams_are_errors_not_panics() {
    let mut datagram = CPU_DUMP_DATAGRAM.to_vec();
    datagram.extend_from_slice(&CPU_DUMP_DONE);
    for cut in 1..datagram.len() {
        let mut collector =
            ReplyCollector::new("test", CPU_DUMP_SEQUENCE, CPU_DUMP_PORT, Expect::Done);
        // Cut inside a message: that message's length field points past
        // the end, which must be an error. Cuts at a message boundary
        // leave whole messages and an unfinished dump.
        match collector.feed(&datagram[..cut]) {
            Err(NetfilterError::Malformed { .. }) => assert!(cut % 100 != 0),
            Ok(Progress::More) => assert!(cut == 100 || cut == 200, "cut {cut}"),
            other => panic!("cut {cut}: {other:?}"),
        }
    }
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    // A deterministic byte soup (xorshift), plus hand-picked nasties:
    // a zero length, a length below the header size, a huge length.
    let mut state = 0x2545_f491_u32;
    for round in 0..2000 {
        let size = (round % 97) + 1;
        let bytes = crate::testutil::pseudo_random_bytes(&mut state, size as usize);
        let mut collector = ReplyCollector::new("test", 0, 0, Expect::Done);
        let _ = collector.feed(&bytes);
    }
    for length in [0u32, 4, 15, 0xffff_ffff] {
        let mut bytes = CPU_DUMP_DONE;
        bytes[..4].copy_from_slice(&length.to_ne_bytes());
        let mut collector =
            ReplyCollector::new("test", CPU_DUMP_SEQUENCE, CPU_DUMP_PORT, Expect::Done);
        assert!(collector.feed(&bytes).is_err(), "length {length}");
    }
}

#[test]
fn a_silent_kernel_is_a_timeout() {
    // Nothing was sent, so nothing will come: the receive must give up
    // instead of hanging.
    let mut socket = NfnetlinkSocket::open().unwrap();
    let started = Instant::now();
    assert!(matches!(socket.recv(Duration::from_millis(20)).unwrap(), Received::TimedOut));
    assert!(started.elapsed() < Duration::from_secs(2));
    // Through an exchange: the receive timeout names itself ...
    socket.set_recv_timeout(Duration::from_millis(20)).unwrap();
    let error = exchange::<_, NetfilterError>(
        &mut Silent(&mut socket),
        "silence",
        1,
        &[],
        Expect::Done,
        Deadline::after(Duration::from_secs(5)),
        Duration::from_millis(20),
        &mut |_| Ok(()),
    )
    .unwrap_err();
    assert!(matches!(error, NetfilterError::Timeout { request: "silence", .. }), "{error:?}");
    assert!(error.to_string().contains("20ms"), "{error}");
    // ... and a deadline shorter than the receive timeout cuts the wait.
    let started = Instant::now();
    let error = exchange::<_, NetfilterError>(
        &mut Silent(&mut socket),
        "silence",
        1,
        &[],
        Expect::Done,
        Deadline::after(Duration::from_millis(50)),
        Duration::from_secs(5),
        &mut |_| Ok(()),
    )
    .unwrap_err();
    assert!(matches!(error, NetfilterError::Deadline { request: "silence", .. }), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

/// The real socket, but sending nothing.
struct Silent<'a>(&'a mut NfnetlinkSocket);

impl Transport for Silent<'_> {
    fn port(&self) -> u32 {
        self.0.port()
    }
    fn send(&mut self, _: &[u8]) -> Result<(), NetfilterError> {
        Ok(())
    }
    fn recv(&mut self, wait: Duration) -> Result<Received<'_>, NetfilterError> {
        self.0.recv_datagram(wait)
    }
    fn drain(&mut self) {}
}

#[test]
fn kernel_error_mapping() {
    assert!(matches!(kernel_error("x", -libc::EACCES), NetfilterError::PermissionDenied { .. }));
    assert!(matches!(
        kernel_error("x", -libc::EOPNOTSUPP),
        NetfilterError::NotSupported { request: "x" }
    ));
    let busy = kernel_error("x", -libc::EBUSY);
    assert!(matches!(busy, NetfilterError::Kernel { errno: libc::EBUSY, .. }), "{busy:?}");
}

#[test]
fn next_wait_is_capped_by_the_deadline() {
    let now = Instant::now();
    let second = Duration::from_secs(1);
    assert_eq!(next_wait(now, now + 10 * second, second), Some(second));
    assert_eq!(next_wait(now, now + second / 4, second), Some(second / 4));
    assert_eq!(next_wait(now, now, second), None);
    assert_eq!(next_wait(now + second, now, second), None);
}

/// One scripted receive.
#[derive(Clone)]
enum Step {
    Datagram(Vec<u8>),
    Overrun,
}

/// A kernel stand-in that answers each request with the next script,
/// rewriting the sequence numbers of captured datagrams to the
/// request's (as the kernel echoes them); after the scripts run out it
/// trickles `trickle` forever, one datagram per `pace`.
struct Scripted {
    port: u32,
    scripts: std::collections::VecDeque<Vec<Step>>,
    current: std::collections::VecDeque<Step>,
    sequence: u32,
    buffer: Vec<u8>,
    requests: usize,
    drained: usize,
    trickle: Option<(Vec<u8>, Duration)>,
}

impl Scripted {
    fn new(port: u32, scripts: Vec<Vec<Step>>) -> Self {
        Scripted {
            port,
            scripts: scripts.into(),
            current: Default::default(),
            sequence: 0,
            buffer: Vec::new(),
            requests: 0,
            drained: 0,
            trickle: None,
        }
    }
}

/// Writes `sequence` into every message of `datagram`.
fn with_sequence(datagram: &[u8], sequence: u32) -> Vec<u8> {
    let mut bytes = datagram.to_vec();
    let mut offset = 0;
    while offset + 16 <= bytes.len() {
        let length = u32::from_ne_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
        bytes[offset + 8..offset + 12].copy_from_slice(&sequence.to_ne_bytes());
        offset += (length + 3) & !3;
        if length == 0 {
            break;
        }
    }
    bytes
}

impl Transport for Scripted {
    fn port(&self) -> u32 {
        self.port
    }
    fn send(&mut self, bytes: &[u8]) -> Result<(), NetfilterError> {
        self.sequence = u32::from_ne_bytes(bytes[8..12].try_into().unwrap());
        self.requests += 1;
        self.current = self.scripts.pop_front().unwrap_or_default().into();
        Ok(())
    }
    fn recv(&mut self, wait: Duration) -> Result<Received<'_>, NetfilterError> {
        match self.current.pop_front() {
            Some(Step::Datagram(bytes)) => {
                self.buffer = with_sequence(&bytes, self.sequence);
                Ok(Received::Datagram(&self.buffer))
            }
            Some(Step::Overrun) => Ok(Received::Overrun),
            None => match &self.trickle {
                Some((bytes, pace)) if *pace <= wait => {
                    std::thread::sleep(*pace);
                    self.buffer = with_sequence(bytes, self.sequence);
                    Ok(Received::Datagram(&self.buffer))
                }
                _ => {
                    std::thread::sleep(wait);
                    Ok(Received::TimedOut)
                }
            },
        }
    }
    fn drain(&mut self) {
        self.drained += 1;
        self.current.clear();
    }
}

fn entries_dump() -> Vec<Step> {
    vec![
        Step::Datagram(ENTRIES_FILTERED_DATAGRAM.to_vec()),
        Step::Datagram(ENTRIES_FILTERED_DONE.to_vec()),
    ]
}

fn interrupted_dump() -> Vec<Step> {
    // Derived from the capture: NLM_F_DUMP_INTR on entry 2.
    let mut datagram = ENTRIES_FILTERED_DATAGRAM;
    datagram[ENTRIES_FILTERED_MESSAGE2_FLAGS] |= NLM_F_DUMP_INTR as u8;
    vec![Step::Datagram(datagram.to_vec()), Step::Datagram(ENTRIES_FILTERED_DONE.to_vec())]
}

/// Runs a streaming dump over `transport`, recording what the consumer
/// saw: `M` per message, `R<attempt>` per restart.
fn stream(
    transport: &mut Scripted,
    deadline: Duration,
) -> (Result<DumpSummary, NetfilterError>, Vec<String>) {
    let mut seen = Vec::new();
    let mut sequence = 7;
    let result = dump_with(
        transport,
        &mut sequence,
        "test dump",
        NetfilterProtoFamily::IPv4,
        &ConntrackMessage::Get(vec![]),
        Deadline::after(deadline),
        Duration::from_secs(1),
        |event| {
            seen.push(match event {
                DumpEvent::Restart { attempt, .. } => format!("R{attempt}"),
                DumpEvent::Message(raw) => {
                    assert_eq!(raw.family, 2);
                    "M".to_string()
                }
            });
            Ok(())
        },
    );
    (result, seen)
}

#[test]
fn a_clean_streamed_dump_hands_over_each_entry_once() {
    let mut transport = Scripted::new(ENTRIES_FILTERED_PORT, vec![entries_dump()]);
    let (result, seen) = stream(&mut transport, Duration::from_secs(5));
    assert_eq!(result.unwrap(), DumpSummary { attempts: 1, messages: 2 });
    assert_eq!(seen, ["M", "M"]);
}

#[test]
fn an_interrupted_dump_restarts_and_the_consumer_is_told_to_reset() {
    let mut transport =
        Scripted::new(ENTRIES_FILTERED_PORT, vec![interrupted_dump(), entries_dump()]);
    let (result, seen) = stream(&mut transport, Duration::from_secs(5));
    assert_eq!(result.unwrap(), DumpSummary { attempts: 2, messages: 2 });
    // The first attempt's two entries, then the reset, then the new ones.
    assert_eq!(seen, ["M", "M", "R2", "M", "M"]);
    assert_eq!(transport.requests, 2);
}

#[test]
fn an_overrun_dump_is_drained_and_restarted() {
    // NLMSG_OVERRUN (type 4) from the kernel, derived from the DONE
    // capture by changing its type.
    let mut overrun_message = ENTRIES_FILTERED_DONE;
    overrun_message[4] = 4;
    let truncated = vec![Step::Datagram(ENTRIES_FILTERED_DATAGRAM.to_vec()), Step::Overrun];
    let overrun = vec![
        Step::Datagram(overrun_message.to_vec()),
        Step::Datagram(ENTRIES_FILTERED_DATAGRAM.to_vec()),
        Step::Datagram(ENTRIES_FILTERED_DONE.to_vec()),
    ];
    let mut transport =
        Scripted::new(ENTRIES_FILTERED_PORT, vec![truncated, overrun, entries_dump()]);
    let (result, seen) = stream(&mut transport, Duration::from_secs(5));
    assert_eq!(result.unwrap().attempts, 3);
    assert_eq!(seen, ["M", "M", "R2", "M", "M", "R3", "M", "M"]);
    assert_eq!(transport.drained, 2);
}

#[test]
fn a_dump_that_never_completes_gives_up_with_a_typed_error() {
    let mut transport = Scripted::new(
        ENTRIES_FILTERED_PORT,
        vec![interrupted_dump(), interrupted_dump(), interrupted_dump(), entries_dump()],
    );
    let (result, seen) = stream(&mut transport, Duration::from_secs(5));
    let error = result.unwrap_err();
    assert!(
        matches!(error, NetfilterError::DumpInconsistent { attempts: DUMP_ATTEMPTS, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("no partial result"), "{error}");
    assert_eq!(transport.requests, DUMP_ATTEMPTS as usize);
    // Every attempt's entries were announced void before the next one.
    assert_eq!(seen, ["M", "M", "R2", "M", "M", "R3", "M", "M"]);
}

#[test]
fn a_trickling_dump_ends_at_the_deadline() {
    // Entries keep coming, each well within the receive timeout, and
    // NLMSG_DONE never does.
    let mut transport = Scripted::new(ENTRIES_FILTERED_PORT, vec![vec![]]);
    transport.trickle = Some((ENTRIES_FILTERED_DATAGRAM.to_vec(), Duration::from_millis(10)));
    let started = Instant::now();
    let (result, seen) = stream(&mut transport, Duration::from_millis(200));
    let error = result.unwrap_err();
    assert!(matches!(error, NetfilterError::Deadline { request: "test dump", .. }), "{error:?}");
    assert!(error.to_string().contains("200ms"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert!(seen.len() > 2, "entries did trickle in: {seen:?}");
}

#[test]
fn a_consumer_error_stops_the_dump() {
    let mut transport = Scripted::new(ENTRIES_FILTERED_PORT, vec![entries_dump()]);
    let mut sequence = 1;
    let error = dump_with(
        &mut transport,
        &mut sequence,
        "test dump",
        NetfilterProtoFamily::IPv4,
        &ConntrackMessage::Get(vec![]),
        Deadline::after(Duration::from_secs(5)),
        Duration::from_secs(1),
        |_| Err(NetfilterError::Malformed { request: "test dump", detail: "stop".into() }),
    )
    .unwrap_err();
    assert!(matches!(error, NetfilterError::Malformed { .. }), "{error:?}");
    assert_eq!(transport.requests, 1);
}

#[test]
fn an_error_at_dump_start_is_the_kernels() {
    // The kernel refuses a dump request with NLMSG_ERROR (here EPERM,
    // the capture of an unprivileged dump).
    let mut transport =
        Scripted::new(EPERM_PORT, vec![vec![Step::Datagram(EPERM_DATAGRAM.to_vec())]]);
    let (result, seen) = stream(&mut transport, Duration::from_secs(5));
    assert!(matches!(result, Err(NetfilterError::PermissionDenied { .. })), "{result:?}");
    assert!(seen.is_empty());
}
