//! A blocking FIX 4.4 initiator for tests, benches and the ack checker: it logs on to a
//! bulwark gateway with a signed logon ([`bulwark_fix::logon::logon_fields`]), sends
//! application messages, answers TestRequests, and hands back what the gateway sends. It keeps
//! no resend journal: a test that needs one uses QuickFIX.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bulwark_fix::time::format_utc_timestamp;
use bulwark_fix::{decode, encode, BeginString, Decoded, Field, Limits, Message};

/// Why the trader failed.
#[derive(Debug, thiserror::Error)]
pub enum TraderError {
    /// The socket failed.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// The gateway sent bytes that are not FIX.
    #[error("the gateway sent bytes that are not FIX: {0}")]
    Fix(#[from] bulwark_fix::FixError),
    /// The gateway refused the logon (its Logout text).
    #[error("logon refused: {0}")]
    Refused(String),
    /// No answer in time, or the connection closed.
    #[error("{0}")]
    Gone(String),
}

/// A logged-on FIX session.
pub struct Trader {
    stream: TcpStream,
    buf: Vec<u8>,
    next_out: u64,
    sender: String,
    target: String,
    inbox: VecDeque<Message>,
    closed: bool,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A TCP connection to `addr` from the local address `from` (on loopback, any 127.x.y.z: how
/// tests and benches play many source addresses).
pub fn connect_from(
    from: IpAddr,
    addr: SocketAddr,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.bind(&SocketAddr::new(from, 0).into())?;
    socket.connect_timeout(&addr.into(), timeout)?;
    let stream: TcpStream = socket.into();
    stream.set_nodelay(true)?;
    Ok(stream)
}

impl Trader {
    /// Connects to `addr` and logs on as `sender` to `target` for `account`, signed by `key`;
    /// waits up to `timeout` for the gateway's Logon.
    pub fn logon(
        addr: SocketAddr,
        sender: &str,
        target: &str,
        account: u64,
        key: &ed25519_dalek::SigningKey,
        timeout: Duration,
    ) -> Result<Trader, TraderError> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        Trader::logon_on(stream, sender, target, account, key, timeout)
    }

    /// Logs on over `stream` (see [`Trader::logon`]).
    pub fn logon_on(
        stream: TcpStream,
        sender: &str,
        target: &str,
        account: u64,
        key: &ed25519_dalek::SigningKey,
        timeout: Duration,
    ) -> Result<Trader, TraderError> {
        let mut trader = Trader {
            stream,
            buf: Vec::new(),
            next_out: 1,
            sender: sender.to_string(),
            target: target.to_string(),
            inbox: VecDeque::new(),
            closed: false,
        };
        let mut nonce = [0u8; 16];
        let entropy =
            blake3::hash(format!("{sender}{account}{:?}{}", Instant::now(), now_ms()).as_bytes());
        nonce.copy_from_slice(&entropy.as_bytes()[..16]);
        let sending_time = format_utc_timestamp(now_ms());
        let mut body = vec![Field::new(98, "0"), Field::new(108, "30")];
        body.extend(bulwark_fix::logon::logon_fields(
            key,
            &sending_time,
            &nonce,
            sender,
            target,
            account,
        ));
        trader.send_at("A", &sending_time, body)?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(message) = trader.read_one(left)? else {
                return Err(TraderError::Gone("no Logon answer in time".into()));
            };
            match message.msg_type() {
                b"A" => return Ok(trader),
                b"5" => {
                    let text = message.get_str(58).unwrap_or("").to_string();
                    return Err(TraderError::Refused(text));
                }
                _ => trader.inbox.push_back(message),
            }
        }
    }

    fn send_at(
        &mut self,
        msg_type: &str,
        sending_time: &str,
        body: Vec<Field>,
    ) -> Result<(), TraderError> {
        let mut fields = vec![
            Field::new(35, msg_type),
            Field::new(49, self.sender.as_str()),
            Field::new(56, self.target.as_str()),
            Field::new(34, self.next_out.to_string()),
            Field::new(52, sending_time),
        ];
        fields.extend(body);
        let bytes = encode(BeginString::Fix44, &fields)?;
        self.next_out += 1;
        self.stream.write_all(&bytes)?;
        Ok(())
    }

    /// Sends an application (or session) message with `body` after the header.
    pub fn send(&mut self, msg_type: &str, body: Vec<Field>) -> Result<(), TraderError> {
        let now = format_utc_timestamp(now_ms());
        self.send_at(msg_type, &now, body)
    }

    /// A limit NewOrderSingle: `side` "1" buy or "2" sell, `price` in FIX decimal, time in
    /// force "1" (good till cancel) or "3" (immediate or cancel).
    pub fn new_order(
        &mut self,
        cl_ord_id: &str,
        symbol: &str,
        side: &str,
        qty: u64,
        price: &str,
        time_in_force: &str,
    ) -> Result<(), TraderError> {
        self.send(
            "D",
            vec![
                Field::new(11, cl_ord_id),
                Field::new(55, symbol),
                Field::new(54, side),
                Field::new(60, format_utc_timestamp(now_ms())),
                Field::new(38, qty.to_string()),
                Field::new(40, "2"),
                Field::new(44, price),
                Field::new(59, time_in_force),
            ],
        )
    }

    /// The next message from the gateway within `timeout` (TestRequests are answered and
    /// Heartbeats skipped here). `Ok(None)` when nothing came in time.
    pub fn recv(&mut self, timeout: Duration) -> Result<Option<Message>, TraderError> {
        if let Some(message) = self.inbox.pop_front() {
            return Ok(Some(message));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(message) = self.read_one(left)? else {
                return Ok(None);
            };
            match message.msg_type() {
                b"0" => {}
                b"1" => {
                    let id = message.get(112).unwrap_or(b"?").to_vec();
                    self.send("0", vec![Field::new(112, id)])?;
                }
                _ => return Ok(Some(message)),
            }
            if left.is_zero() {
                return Ok(None);
            }
        }
    }

    /// Whether the gateway closed the connection.
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// The socket, for tests that misbehave on it.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// The next message within `timeout`; a zero timeout reads once without waiting (socket
    /// timeouts are rounded up to the kernel's tick, so a short wait is a poll here).
    fn read_one(&mut self, timeout: Duration) -> Result<Option<Message>, TraderError> {
        let deadline = Instant::now() + timeout;
        let mut polled = false;
        loop {
            match decode(&self.buf, &Limits::SESSION)? {
                Decoded::Message(message, used) => {
                    self.buf.drain(..used);
                    return Ok(Some(message));
                }
                Decoded::Incomplete => {}
            }
            if self.closed {
                return Err(TraderError::Gone(
                    "the gateway closed the connection".into(),
                ));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let poll = left < Duration::from_millis(2);
            if poll && polled {
                return Ok(None);
            }
            polled |= poll;
            self.stream.set_nonblocking(poll)?;
            if !poll {
                self.stream.set_read_timeout(Some(left))?;
            }
            let mut chunk = [0u8; 8192];
            let read = self.stream.read(&mut chunk);
            if poll {
                self.stream.set_nonblocking(false)?;
            }
            match read {
                Ok(0) => self.closed = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None)
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => self.closed = true,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Sends a Logout and waits briefly for the gateway's.
    pub fn logout(mut self) {
        let _ = self.send("5", Vec::new());
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            match self.recv(Duration::from_millis(100)) {
                Ok(Some(m)) if m.msg_type() == b"5" => return,
                Err(_) => return,
                _ => {}
            }
        }
    }
}
