//! Ports on 127.0.0.1 for the servers a test starts.

use std::net::TcpListener;

/// A port free at the time of asking.
pub fn free_port() -> u16 {
    let [port] = free_ports();
    port
}

/// `N` free ports, all different: each listener stays bound until every port is chosen.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port on 127.0.0.1"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("a bound address").port())
}
