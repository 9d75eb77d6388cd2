//! A blocking client for a node's endpoint ([`crate::server`]), one request at a time.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use bulwark_engine::codec::SignedTx;
use bulwark_engine::{AccountId, InstrumentId};

use bulwark_api::answers::{AccountAnswer, BookAnswer, NodeStatus};
use bulwark_api::wire::{
    decode_response, encode_request, encode_submit, read_frame, write_frame, ErrorCode, PeerAuth,
    PeerOp, Request, Response, SubmitOutcome, WireError, WireLimits,
};

/// A committee member's node key, which signs its requests to peers' TPMs.
pub type PeerKey = ed25519_dalek::SigningKey;

/// Why a request did not get its answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The TCP connection could not be made or configured: is the node up at that address?
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The node's address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// Sending, receiving or decoding failed (including timeouts and a request refused locally
    /// for exceeding the limits). After an I/O or decode failure the connection is unusable.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The node answered with an error frame. After [`ErrorCode::TooLarge`] or
    /// [`ErrorCode::Busy`] the node has closed the connection.
    #[error("node refused the request ({code:?}): {message}")]
    Node {
        /// What kind of failure.
        code: ErrorCode,
        /// The node's explanation.
        message: String,
    },
    /// The node answered with a frame of the wrong kind for the request.
    #[error("node answered a {request} request with {got}")]
    UnexpectedResponse {
        /// The request sent.
        request: &'static str,
        /// What came back.
        got: &'static str,
    },
    /// An earlier failure left the connection out of step; connect again.
    #[error("connection unusable after an earlier error; reconnect")]
    Broken,
}

/// A connection to one node. Not thread-safe by design: one request, then its answer.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    limits: WireLimits,
    broken: bool,
}

impl Client {
    /// Connects with the default [`WireLimits`]; `timeout` bounds the connect and each read and
    /// write.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<Client, ClientError> {
        Client::connect_with_limits(addr, timeout, WireLimits::default())
    }

    /// Connects with explicit limits (they should match the node's).
    pub fn connect_with_limits(
        addr: SocketAddr,
        timeout: Duration,
        limits: WireLimits,
    ) -> Result<Client, ClientError> {
        let connect_error = |source| ClientError::Connect { addr, source };
        let stream = TcpStream::connect_timeout(&addr, timeout).map_err(connect_error)?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(connect_error)?;
        stream
            .set_write_timeout(Some(timeout))
            .map_err(connect_error)?;
        stream.set_nodelay(true).map_err(connect_error)?;
        Ok(Client {
            stream,
            limits,
            broken: false,
        })
    }

    /// Offers signed transactions to the node's mempool. At most
    /// [`WireLimits::submit_txs_max`]; more are refused here without sending anything.
    pub fn submit(&mut self, txs: &[SignedTx]) -> Result<SubmitOutcome, ClientError> {
        let bytes = encode_submit(txs, &self.limits)?;
        match self.exchange(&bytes)? {
            Response::Submitted(outcome) => Ok(outcome),
            other => Err(unexpected("submit", &other)),
        }
    }

    /// The node's status.
    pub fn status(&mut self) -> Result<NodeStatus, ClientError> {
        match self.request(&Request::Status)? {
            Response::Status(value) => Ok(*value),
            other => Err(unexpected("status", &other)),
        }
    }

    /// One account's committed state.
    pub fn account(&mut self, account: AccountId) -> Result<AccountAnswer, ClientError> {
        match self.request(&Request::Account(account))? {
            Response::Account(value) => Ok(*value),
            other => Err(unexpected("account", &other)),
        }
    }

    /// Receipts of finalized blocks from (`height`, `index`) on (one page); the node waits up to
    /// `wait_ms` for a new block when it has nothing there yet.
    pub fn receipts(
        &mut self,
        height: u64,
        index: u32,
        wait_ms: u32,
    ) -> Result<bulwark_api::answers::ReceiptsAnswer, ClientError> {
        match self.request(&Request::Receipts {
            height,
            index,
            wait_ms,
        })? {
            Response::Receipts(value) => Ok(*value),
            other => Err(unexpected("receipts", &other)),
        }
    }

    /// The ledger's withdrawals from id `from` on (one page), with what the vault did with each.
    pub fn withdrawals(
        &mut self,
        from: u64,
    ) -> Result<bulwark_api::answers::WithdrawalsAnswer, ClientError> {
        match self.request(&Request::Withdrawals { from })? {
            Response::Withdrawals(value) => Ok(*value),
            other => Err(unexpected("withdrawals", &other)),
        }
    }

    /// Up to `depth` levels per side of one instrument's book.
    pub fn book(
        &mut self,
        instrument: InstrumentId,
        depth: u32,
    ) -> Result<BookAnswer, ClientError> {
        match self.request(&Request::Book { instrument, depth })? {
            Response::Book(value) => Ok(value),
            other => Err(unexpected("book", &other)),
        }
    }

    /// Asks, as the committee peer holding `key`, for attestation evidence over `nonce` from
    /// `target` (`bulwark_api::wire::peer_target` of the committee and the node's key).
    pub fn attest(
        &mut self,
        key: &PeerKey,
        target: &[u8; 32],
        nonce: [u8; 32],
    ) -> Result<Vec<u8>, ClientError> {
        match self.peer_request(key, target, PeerOp::Attest { nonce })? {
            Response::Evidence(bytes) => Ok(bytes),
            other => Err(unexpected("attest", &other)),
        }
    }

    /// Asks, as a committee peer, for the node's TPM attestation key (marshalled
    /// `TPMT_PUBLIC`).
    pub fn attest_key(&mut self, key: &PeerKey, target: &[u8; 32]) -> Result<Vec<u8>, ClientError> {
        match self.peer_request(key, target, PeerOp::AttestKey)? {
            Response::AttestKey(bytes) => Ok(bytes),
            other => Err(unexpected("attest-key", &other)),
        }
    }

    /// Asks, as a committee peer, the node's TPM to activate a credential; returns the
    /// recovered credential.
    pub fn activate(
        &mut self,
        key: &PeerKey,
        target: &[u8; 32],
        credential_blob: Vec<u8>,
        encrypted_secret: Vec<u8>,
    ) -> Result<Vec<u8>, ClientError> {
        let op = PeerOp::Activate {
            credential_blob,
            encrypted_secret,
        };
        match self.peer_request(key, target, op)? {
            Response::Activated(bytes) => Ok(bytes),
            other => Err(unexpected("activate", &other)),
        }
    }

    /// Asks, as a committee peer, for the node's newest signed audit report (its JSON
    /// envelope, to check with `bulwark_audit::sign::verify_report`).
    pub fn audit_report(
        &mut self,
        key: &PeerKey,
        target: &[u8; 32],
    ) -> Result<Vec<u8>, ClientError> {
        match self.peer_request(key, target, PeerOp::AuditReport)? {
            Response::AuditReport(bytes) => Ok(bytes),
            other => Err(unexpected("audit-report", &other)),
        }
    }

    /// Asks the node to affirm `candidate` (a removed member) for re-admission; the node
    /// refuses, saying why, unless it holds a fresh affirming appraisal and a clean report.
    pub fn affirm(
        &mut self,
        candidate: [u8; 32],
    ) -> Result<bulwark_sentinel::Affirmation, ClientError> {
        match self.request(&Request::Affirm { candidate })? {
            Response::Affirmed(affirmation) => Ok(affirmation),
            other => Err(unexpected("affirm", &other)),
        }
    }

    /// Offers an admission; the node checks it by the one rule against its committed state and
    /// holds it for its proposals, or refuses it saying why.
    pub fn admit(&mut self, admit: bulwark_sentinel::Admit) -> Result<(), ClientError> {
        match self.request(&Request::Admit(Box::new(admit)))? {
            Response::AdmitHeld => Ok(()),
            other => Err(unexpected("admit", &other)),
        }
    }

    /// Sends `op` signed by `key` for `target`, stamped with this machine's clock.
    fn peer_request(
        &mut self,
        key: &PeerKey,
        target: &[u8; 32],
        op: PeerOp,
    ) -> Result<Response, ClientError> {
        let auth = PeerAuth::sign(key, target, crate::node::attest::now_ms(), &op);
        self.request(&Request::Peer { auth, op })
    }

    /// A handle on the connection's socket with which another thread can cut it (a caller's
    /// overall deadline: the per-read timeout restarts whenever a slow node sends a byte).
    pub fn cutter(&self) -> std::io::Result<TcpStream> {
        self.stream.try_clone()
    }

    /// Closes the connection.
    pub fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    fn request(&mut self, request: &Request) -> Result<Response, ClientError> {
        let bytes = encode_request(request, &self.limits)?;
        self.exchange(&bytes)
    }

    /// Sends one encoded request and reads its answer; error frames become
    /// [`ClientError::Node`].
    fn exchange(&mut self, bytes: &[u8]) -> Result<Response, ClientError> {
        if self.broken {
            return Err(ClientError::Broken);
        }
        // Anything that fails from here on may leave half a frame on the stream.
        self.broken = true;
        write_frame(&mut self.stream, bytes)?;
        let frame = read_frame(&mut self.stream, self.limits.frame_bytes_max)?;
        let response = decode_response(&frame)?;
        self.broken = false;
        match response {
            Response::Error { code, message } => {
                self.broken = matches!(code, ErrorCode::TooLarge | ErrorCode::Busy);
                Err(ClientError::Node { code, message })
            }
            response => Ok(response),
        }
    }
}

fn unexpected(request: &'static str, got: &Response) -> ClientError {
    let got = match got {
        Response::Submitted(_) => "a submit outcome",
        Response::Status(_) => "a status",
        Response::Account(_) => "an account",
        Response::Book(_) => "a book",
        Response::Evidence(_) => "evidence",
        Response::AttestKey(_) => "an attestation key",
        Response::Activated(_) => "an activated credential",
        Response::AuditReport(_) => "an audit report",
        Response::Affirmed(_) => "an affirmation",
        Response::AdmitHeld => "an admission held",
        Response::Withdrawals(_) => "withdrawals",
        Response::Receipts(_) => "receipts",
        Response::Error { .. } => "an error",
    };
    ClientError::UnexpectedResponse { request, got }
}
