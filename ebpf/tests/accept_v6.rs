//! An IPv6 accept reports its peer's whole address (root only; with CI=true a non-root
//! run fails, otherwise it skips with a reason).

use std::ffi::CString;
use std::time::{Duration, Instant};

use ritma_ebpf::{Sensor, SensorConfig};
use ritma_sources::raw::{RawBody, RawEvent, SockAddr};

mod common;
use common::live_allowed;

const MISSING: &str = "/ritma-accept-v6-scratch-filler-path";

fn sockaddr_v6_loopback(port: u16) -> libc::sockaddr_in6 {
    // SAFETY: sockaddr_in6 is plain data; all-zero is a valid value.
    let mut a: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    a.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    a.sin6_port = port.to_be();
    a.sin6_addr.s6_addr[15] = 1;
    a
}

fn port_of(fd: i32) -> Option<u16> {
    let mut a = sockaddr_v6_loopback(0);
    let mut len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    // SAFETY: a and len are valid out-pointers of the right size.
    let rc = unsafe { libc::getsockname(fd, (&mut a as *mut libc::sockaddr_in6).cast(), &mut len) };
    (rc == 0).then(|| u16::from_be(a.sin6_port))
}

/// In a child pinned to CPU 0: listen on [::1], connect to it, open a missing path (so
/// the per-CPU record scratch holds other bytes where the address goes), then accept.
/// Writes the client's port to `out` and exits 0.
fn connect_and_accept(out: i32, path: &CString) -> i32 {
    let len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    // SAFETY: raw socket calls on descriptors this child owns and on live local buffers.
    unsafe {
        let mut cpu0: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut cpu0);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &cpu0) != 0 {
            return 10;
        }
        let server = libc::socket(libc::AF_INET6, libc::SOCK_STREAM, 0);
        let any = sockaddr_v6_loopback(0);
        if libc::bind(server, (&any as *const libc::sockaddr_in6).cast(), len) != 0
            || libc::listen(server, 4) != 0
        {
            return 11;
        }
        let Some(port) = port_of(server) else {
            return 12;
        };
        let client = libc::socket(libc::AF_INET6, libc::SOCK_STREAM, 0);
        let to = sockaddr_v6_loopback(port);
        if libc::connect(client, (&to as *const libc::sockaddr_in6).cast(), len) != 0 {
            return 13;
        }
        libc::open(path.as_ptr(), libc::O_RDONLY);
        if libc::accept(server, std::ptr::null_mut(), std::ptr::null_mut()) < 0 {
            return 14;
        }
        let Some(client_port) = port_of(client) else {
            return 15;
        };
        if libc::write(out, (&client_port as *const u16).cast(), 2) != 2 {
            return 16;
        }
    }
    0
}

#[test]
fn ipv6_accept_reports_the_whole_peer_address() {
    if !live_allowed("ipv6_accept_reports_the_whole_peer_address") {
        return;
    }
    let path = CString::new(MISSING).unwrap();
    let mut sensor = Sensor::start(SensorConfig::default()).expect("sensor starts");
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the child makes raw libc calls on data prepared before the fork, then _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let code = connect_and_accept(fds[1], &path);
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    let mut client_port = 0u16;
    // SAFETY: waitpid on our child; a 2-byte read into a u16.
    unsafe {
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        assert_eq!(status, 0, "child failed with status {status:#x}");
        assert_eq!(
            libc::read(fds[0], (&mut client_port as *mut u16).cast(), 2),
            2
        );
    }

    let end = Instant::now() + Duration::from_secs(5);
    let mut events: Vec<RawEvent> = Vec::new();
    let accepted = |events: &[RawEvent]| {
        events
            .iter()
            .find(|e| e.task.pid == pid as u32 && matches!(e.body, RawBody::Accept { .. }))
            .cloned()
    };
    while accepted(&events).is_none() && Instant::now() < end {
        sensor
            .poll(Duration::from_millis(100), &mut events)
            .expect("poll");
    }
    let accept = accepted(&events).expect("an accept event from the child");
    let mut loopback = [0u8; 16];
    loopback[15] = 1;
    let RawBody::Accept { addr, result } = accept.body else {
        unreachable!()
    };
    assert!(result >= 0);
    assert_eq!(
        addr,
        SockAddr::V6 {
            addr: loopback,
            port: client_port
        }
    );
    // The filler open happened, on the same CPU, just before.
    assert!(events.iter().any(|e| e.task.pid == pid as u32
        && matches!(&e.body, RawBody::Open { path, .. } if path == MISSING.as_bytes())));
}
