//! Whether two local processes hold an established TCP connection to each other's listening
//! port, read from `/proc` (Linux): the moment a cut-off closes a connection, as the kernel
//! sees it, for the tamper→cut-off figure.

use std::collections::HashSet;

/// One established IPv4 TCP socket: its inode and both ports.
struct Socket {
    inode: u64,
    local_port: u16,
    remote_port: u16,
}

fn established() -> Vec<Socket> {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return Vec::new();
    };
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl, local, remote, st, tx:rx, tr:when, retrnsmt, uid, timeout, inode
            if fields.len() < 10 || fields[3] != "01" {
                return None;
            }
            let port = |address: &str| {
                address
                    .rsplit(':')
                    .next()
                    .and_then(|hex| u16::from_str_radix(hex, 16).ok())
            };
            Some(Socket {
                inode: fields[9].parse().ok()?,
                local_port: port(fields[1])?,
                remote_port: port(fields[2])?,
            })
        })
        .collect()
}

/// The socket inodes `pid` holds open.
fn sockets_of(pid: u32) -> HashSet<u64> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| std::fs::read_link(entry.path()).ok())
        .filter_map(|target| {
            target
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// Whether process `a` (listening on `a_port`) and process `b` (on `b_port`) hold an
/// established connection: one of them has a socket whose far end is the other's listening
/// port.
pub fn connected((a, a_port): (u32, u16), (b, b_port): (u32, u16)) -> bool {
    let sockets = established();
    let (of_a, of_b) = (sockets_of(a), sockets_of(b));
    sockets.iter().any(|socket| {
        (of_a.contains(&socket.inode)
            && socket.remote_port == b_port
            && socket.local_port != a_port)
            || (of_b.contains(&socket.inode)
                && socket.remote_port == a_port
                && socket.local_port != b_port)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sees_a_connection_to_this_process_and_its_close() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let me = std::process::id();
        // One process plays both ends: the dialer's far end is the listening port.
        let dialer = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(connected((me, 1), (me, port)));
        drop(dialer);
        drop(accepted);
        // The kernel keeps the dialer's side in TIME_WAIT or FIN states, not ESTABLISHED.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while connected((me, 1), (me, port)) {
            assert!(std::time::Instant::now() < deadline, "never closed");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
