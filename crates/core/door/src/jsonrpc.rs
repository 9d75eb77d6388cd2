//! JSON-RPC 2.0 in the manner of Deribit's API: the request decoder, the typed parameters of
//! each method, and the answers. Pure: no I/O, so every byte a client can send is checked here
//! (and fuzzed, by a test and by `fuzz/fuzz_targets/jsonrpc.rs`) before the connection
//! (`bulwark-gateway`'s `ws.rs`) acts on it.
//!
//! A request is one JSON object `{"jsonrpc":"2.0","id":ID,"method":M,"params":{...}}` of at
//! most [`REQUEST_BYTES_MAX`] bytes ([`PREAUTH_BYTES_MAX`] before `public/auth`); ID is a number
//! or a string of at most [`ID_BYTES_MAX`] bytes (a number must be whole and fit 64 bits, so
//! that the answer names exactly the id sent). Prices and amounts are decimals, given as
//! JSON numbers (read by their shortest decimal form) or strings, and must be exact multiples
//! of the instrument's tick and lot; nothing is rounded.

use bulwark_api::answers::InstrumentAnswer;
use bulwark_engine::command::TimeInForce;
use bulwark_engine::Side;
use serde_json::{json, Map, Value};

use crate::orders::{price_text, OrderState};

/// Longest request after `public/auth`.
pub const REQUEST_BYTES_MAX: usize = 16 * 1024;
/// Longest request before it (the first message a stranger may send).
pub const PREAUTH_BYTES_MAX: usize = 4 * 1024;
/// Longest request id, label or instrument name taken (and echoed).
pub const ID_BYTES_MAX: usize = 64;
/// Channels one connection may subscribe to.
pub const CHANNELS_MAX: usize = 32;
/// Book depths a `book.*` channel or `public/get_order_book` may ask for.
pub const BOOK_DEPTH_MAX: u32 = 20;

/// A JSON-RPC error: its code and what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    /// The code (JSON-RPC's own below zero, this gateway's in the 10000s; docs/gateway.md).
    pub code: i64,
    /// What went wrong, for humans.
    pub message: String,
}

/// The error codes.
pub mod code {
    /// Not JSON, or not one object.
    pub const PARSE: i64 = -32700;
    /// JSON, but not a JSON-RPC 2.0 request.
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// A parameter is missing or malformed.
    pub const INVALID_PARAMS: i64 = -32602;
    /// A private method before `public/auth` succeeded.
    pub const UNAUTHORIZED: i64 = 13009;
    /// The logon was refused (signature, budget, committee).
    pub const AUTH_REFUSED: i64 = 13004;
    /// Refused for credit: the class's rate is spent (cancels never are).
    pub const TOO_MANY_REQUESTS: i64 = 10028;
    /// The committee refused the transaction, or the engine rejected it.
    pub const REJECTED: i64 = 10001;
    /// The committee gave no outcome in time: the transaction's fate is unknown.
    pub const UNKNOWN_OUTCOME: i64 = 10002;
    /// The kill switch covers the account.
    pub const KILLED: i64 = 10003;
    /// Unknown, not yet acknowledged or already finished order.
    pub const ORDER_NOT_FOUND: i64 = 10004;
    /// The gateway is shedding load or the nodes do not agree on an answer now.
    pub const UNAVAILABLE: i64 = 10005;
}

fn invalid(message: impl Into<String>) -> RpcError {
    RpcError {
        code: code::INVALID_PARAMS,
        message: message.into(),
    }
}

impl RpcError {
    /// An error with `code`.
    pub fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
        }
    }
}

/// The methods served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `public/auth`.
    Auth,
    /// `private/buy`.
    Buy,
    /// `private/sell`.
    Sell,
    /// `private/edit`.
    Edit,
    /// `private/cancel`.
    Cancel,
    /// `private/cancel_all`.
    CancelAll,
    /// `private/cancel_all_by_instrument`.
    CancelAllByInstrument,
    /// `private/get_open_orders`.
    GetOpenOrders,
    /// `private/get_position`.
    GetPosition,
    /// `public/get_order_book`.
    GetOrderBook,
    /// `public/subscribe` (and `private/subscribe`).
    Subscribe,
    /// `public/unsubscribe` (and `private/unsubscribe`).
    Unsubscribe,
    /// `private/enable_cancel_on_disconnect`.
    EnableCancelOnDisconnect,
    /// `private/disable_cancel_on_disconnect`.
    DisableCancelOnDisconnect,
    /// `public/set_heartbeat`.
    SetHeartbeat,
    /// `public/disable_heartbeat`.
    DisableHeartbeat,
    /// `public/test`.
    Test,
    /// `public/get_time`.
    GetTime,
}

impl Method {
    fn of(name: &str) -> Option<Method> {
        Some(match name {
            "public/auth" => Method::Auth,
            "private/buy" => Method::Buy,
            "private/sell" => Method::Sell,
            "private/edit" => Method::Edit,
            "private/cancel" => Method::Cancel,
            "private/cancel_all" => Method::CancelAll,
            "private/cancel_all_by_instrument" => Method::CancelAllByInstrument,
            "private/get_open_orders" => Method::GetOpenOrders,
            "private/get_position" => Method::GetPosition,
            "public/get_order_book" => Method::GetOrderBook,
            "public/subscribe" | "private/subscribe" => Method::Subscribe,
            "public/unsubscribe" | "private/unsubscribe" => Method::Unsubscribe,
            "private/enable_cancel_on_disconnect" => Method::EnableCancelOnDisconnect,
            "private/disable_cancel_on_disconnect" => Method::DisableCancelOnDisconnect,
            "public/set_heartbeat" => Method::SetHeartbeat,
            "public/disable_heartbeat" => Method::DisableHeartbeat,
            "public/test" => Method::Test,
            "public/get_time" => Method::GetTime,
            _ => return None,
        })
    }

    /// Whether the method needs a logged-on session.
    pub fn private(self) -> bool {
        !matches!(
            self,
            Method::Auth
                | Method::GetOrderBook
                | Method::SetHeartbeat
                | Method::DisableHeartbeat
                | Method::Test
                | Method::GetTime
                | Method::Subscribe
                | Method::Unsubscribe
        )
    }
}

/// One decoded request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Its id (a whole number that fits 64 bits, or a string of at most [`ID_BYTES_MAX`]
    /// bytes).
    pub id: Value,
    /// The method.
    pub method: Method,
    /// Its parameters (an empty object when absent).
    pub params: Map<String, Value>,
}

/// Decodes one request. The error carries the request's id when it could be read, so the
/// answer can name it.
pub fn parse(text: &str) -> Result<Request, (Value, RpcError)> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        (
            Value::Null,
            RpcError::new(code::PARSE, format!("not JSON: {e}")),
        )
    })?;
    let Value::Object(mut object) = value else {
        let e = RpcError::new(code::INVALID_REQUEST, "a request is one JSON object");
        return Err((Value::Null, e));
    };
    let id = match object.remove("id") {
        // Only a whole number that fits 64 bits comes back exactly as it was sent: a larger
        // one or a fraction is read as a float and would be echoed as another number.
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Value::Number(n),
        Some(Value::String(s)) if s.len() <= ID_BYTES_MAX => Value::String(s),
        _ => {
            let e = RpcError::new(
                code::INVALID_REQUEST,
                format!(
                    "id must be a whole number of at most 64 bits or a string of at most {ID_BYTES_MAX} bytes"
                ),
            );
            return Err((Value::Null, e));
        }
    };
    let fail = |code, message: &str| Err((id.clone(), RpcError::new(code, message)));
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return fail(code::INVALID_REQUEST, "jsonrpc must be \"2.0\"");
    }
    let Some(name) = object.get("method").and_then(Value::as_str) else {
        return fail(code::INVALID_REQUEST, "method must be a string");
    };
    let Some(method) = Method::of(name) else {
        return fail(code::METHOD_NOT_FOUND, "no such method");
    };
    let params = match object.remove("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(params)) => params,
        Some(_) => return fail(code::INVALID_PARAMS, "params must be an object"),
    };
    Ok(Request { id, method, params })
}

fn text<'a>(params: &'a Map<String, Value>, name: &str) -> Result<&'a str, RpcError> {
    params
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= ID_BYTES_MAX)
        .ok_or_else(|| {
            invalid(format!(
                "{name} must be a string of 1 to {ID_BYTES_MAX} bytes"
            ))
        })
}

fn unhex<const N: usize>(params: &Map<String, Value>, name: &str) -> Result<[u8; N], RpcError> {
    let bad = || invalid(format!("{name} must be {} lowercase hex digits", 2 * N));
    let text = params.get(name).and_then(Value::as_str).ok_or_else(bad)?;
    if text.len() != 2 * N || text.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(bad());
    }
    let bytes = hex::decode(text).map_err(|_| bad())?;
    <[u8; N]>::try_from(bytes).map_err(|_| bad())
}

/// A whole number given as a JSON number or a decimal string (at most 18 digits).
fn whole(params: &Map<String, Value>, name: &str) -> Result<u64, RpcError> {
    let bad = || invalid(format!("{name} must be a whole number"));
    match params.get(name) {
        Some(Value::Number(n)) => n.as_u64().ok_or_else(bad),
        Some(Value::String(s))
            if !s.is_empty() && s.len() <= 18 && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            s.parse().map_err(|_| bad())
        }
        _ => Err(bad()),
    }
}

/// A decimal given as a JSON number (read by its shortest decimal form) or a string; checked
/// against the tick or the lot by the caller.
fn decimal(params: &Map<String, Value>, name: &str) -> Result<String, RpcError> {
    match params.get(name) {
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::String(s)) if s.len() <= 40 => Ok(s.clone()),
        _ => Err(invalid(format!("{name} must be a decimal number"))),
    }
}

fn flag(params: &Map<String, Value>, name: &str) -> Result<bool, RpcError> {
    match params.get(name) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(invalid(format!("{name} must be true or false"))),
    }
}

/// `public/auth`'s parameters: the same logon the FIX Logon carries (docs/gateway.md), with
/// `grant_type` `"client_signature"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthParams {
    /// The account.
    pub account: u64,
    /// The client's name for the session (its SenderCompID in the signed payload).
    pub client_id: String,
    /// When the client signed, Unix milliseconds.
    pub timestamp_ms: u64,
    /// 16 random bytes, new for every logon.
    pub nonce: [u8; 16],
    /// The session key's secret seed (the gateway signs the session's orders with it).
    pub session_seed: [u8; 32],
    /// The account key's signature over the logon payload.
    pub signature: [u8; 64],
}

/// Reads `public/auth`'s parameters.
pub fn auth_params(params: &Map<String, Value>) -> Result<AuthParams, RpcError> {
    if params.get("grant_type").and_then(Value::as_str) != Some("client_signature") {
        return Err(invalid("grant_type must be \"client_signature\""));
    }
    let client_id = text(params, "client_id")?;
    if client_id.len() > 32 || !bulwark_engine::session::valid_comp_id(client_id) {
        return Err(invalid("client_id must be 1 to 32 printable ASCII bytes"));
    }
    Ok(AuthParams {
        account: whole(params, "account")?,
        client_id: client_id.to_string(),
        timestamp_ms: whole(params, "timestamp")?,
        nonce: unhex(params, "nonce")?,
        session_seed: unhex(params, "session_seed")?,
        signature: unhex(params, "signature")?,
    })
}

/// The instrument a request names by `instrument_name`.
pub fn instrument<'a>(
    instruments: &'a [InstrumentAnswer],
    params: &Map<String, Value>,
) -> Result<&'a InstrumentAnswer, RpcError> {
    let name = text(params, "instrument_name")?;
    instruments
        .iter()
        .find(|i| i.symbol == name)
        .ok_or_else(|| invalid(format!("unknown instrument_name {name:?}")))
}

/// An order's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderKind {
    /// At `price` or better.
    Limit,
    /// At the book's prices.
    Market,
}

/// `private/buy` and `private/sell`'s parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderParams {
    /// The instrument.
    pub instrument: InstrumentAnswer,
    /// Lots.
    pub qty: i64,
    /// Limit or market.
    pub kind: OrderKind,
    /// Limit price, ticks (0 for market).
    pub price: i64,
    /// The client's label, echoed.
    pub label: String,
    /// Time in force.
    pub tif: TimeInForce,
    /// Refused if it would trade at once.
    pub post_only: bool,
    /// May only reduce the position.
    pub reduce_only: bool,
}

fn refusal(r: crate::orders::Refusal) -> RpcError {
    invalid(
        r.text
            .replace("OrderQty", "amount")
            .replace("Price", "price"),
    )
}

/// Reads `private/buy` and `private/sell`'s parameters against the venue's instruments.
pub fn order_params(
    instruments: &[InstrumentAnswer],
    params: &Map<String, Value>,
) -> Result<OrderParams, RpcError> {
    let instrument = instrument(instruments, params)?.clone();
    let qty = crate::orders::lots(&decimal(params, "amount")?).map_err(refusal)?;
    let kind = match params.get("type").and_then(Value::as_str) {
        None | Some("limit") => OrderKind::Limit,
        Some("market") => OrderKind::Market,
        Some(_) => return Err(invalid("type must be \"limit\" or \"market\"")),
    };
    let price = match kind {
        OrderKind::Limit => {
            crate::orders::ticks(&instrument, &decimal(params, "price")?).map_err(refusal)?
        }
        OrderKind::Market => 0,
    };
    let tif = match params.get("time_in_force").and_then(Value::as_str) {
        None | Some("good_til_cancelled") => TimeInForce::Gtc,
        Some("immediate_or_cancel") => TimeInForce::Ioc,
        Some("fill_or_kill") => TimeInForce::Fok,
        Some(_) => {
            return Err(invalid(
                "time_in_force must be good_til_cancelled, immediate_or_cancel or fill_or_kill",
            ))
        }
    };
    let label = match params.get("label") {
        None => String::new(),
        Some(_) => text(params, "label")?.to_string(),
    };
    Ok(OrderParams {
        instrument,
        qty,
        kind,
        price,
        label,
        tif,
        post_only: flag(params, "post_only")?,
        reduce_only: flag(params, "reduce_only")?,
    })
}

/// The order a request names by `order_id` (Deribit sends it as a string).
pub fn order_id(params: &Map<String, Value>) -> Result<u64, RpcError> {
    whole(params, "order_id")
}

/// `private/edit`'s new amount (lots, in all, fills included) and price (ticks).
pub fn edit_params(
    instrument: &InstrumentAnswer,
    params: &Map<String, Value>,
) -> Result<(i64, i64), RpcError> {
    let qty = crate::orders::lots(&decimal(params, "amount")?).map_err(refusal)?;
    let price = crate::orders::ticks(instrument, &decimal(params, "price")?).map_err(refusal)?;
    Ok((qty, price))
}

/// `public/set_heartbeat`'s interval, seconds (10 to 3600).
pub fn heartbeat_interval(params: &Map<String, Value>) -> Result<u64, RpcError> {
    let interval = whole(params, "interval")?;
    if !(10..=3600).contains(&interval) {
        return Err(invalid("interval must be 10 to 3600 seconds"));
    }
    Ok(interval)
}

/// `public/get_order_book`'s depth (1 to [`BOOK_DEPTH_MAX`], 5 when absent).
pub fn depth(params: &Map<String, Value>) -> Result<u32, RpcError> {
    if params.get("depth").is_none() {
        return Ok(5);
    }
    let depth = whole(params, "depth")?;
    u32::try_from(depth)
        .ok()
        .filter(|d| (1..=BOOK_DEPTH_MAX).contains(d))
        .ok_or_else(|| invalid(format!("depth must be 1 to {BOOK_DEPTH_MAX}")))
}

/// A subscription channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Channel {
    /// `book.{instrument}.none.{depth}.100ms`: the book as `quorum` nodes give it alike.
    Book {
        /// The instrument's name.
        instrument: String,
        /// Levels per side.
        depth: u32,
    },
    /// `user.orders.{instrument|any}.raw`: this session's orders as they change.
    UserOrders {
        /// One instrument, or every one.
        instrument: Option<String>,
    },
    /// `trades.{instrument}.100ms`: the instrument's trades as `quorum` nodes report them.
    Trades {
        /// The instrument's name.
        instrument: String,
    },
}

impl Channel {
    /// Reads one channel name.
    pub fn parse(name: &str) -> Result<Channel, RpcError> {
        let parts: Vec<&str> = name.split('.').collect();
        let known_name = |s: &str| !s.is_empty() && s.len() <= ID_BYTES_MAX;
        match parts.as_slice() {
            ["book", instrument, "none", depth, "100ms"] if known_name(instrument) => {
                let depth = depth
                    .parse::<u32>()
                    .ok()
                    .filter(|d| (1..=BOOK_DEPTH_MAX).contains(d))
                    .ok_or_else(|| invalid(format!("a book channel's depth is 1 to {BOOK_DEPTH_MAX}")))?;
                Ok(Channel::Book {
                    instrument: (*instrument).to_string(),
                    depth,
                })
            }
            ["user", "orders", instrument, "raw"] if known_name(instrument) => {
                Ok(Channel::UserOrders {
                    instrument: (*instrument != "any").then(|| (*instrument).to_string()),
                })
            }
                        ["trades", instrument, "100ms"] if known_name(instrument) => Ok(Channel::Trades {
                instrument: (*instrument).to_string(),
            }),
            _ => Err(invalid(format!(
                                "unknown channel {name:?}: book.{{instrument}}.none.{{depth}}.100ms, trades.{{instrument}}.100ms or user.orders.{{instrument|any}}.raw"
            ))),
        }
    }

    /// Its name.
    pub fn name(&self) -> String {
        match self {
            Channel::Book { instrument, depth } => format!("book.{instrument}.none.{depth}.100ms"),
            Channel::UserOrders { instrument } => {
                format!("user.orders.{}.raw", instrument.as_deref().unwrap_or("any"))
            }
            Channel::Trades { instrument } => format!("trades.{instrument}.100ms"),
        }
    }
}

/// `public/subscribe`'s channels (1 to [`CHANNELS_MAX`], each checked).
pub fn channels(params: &Map<String, Value>) -> Result<Vec<Channel>, RpcError> {
    let list = params
        .get("channels")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty() && l.len() <= CHANNELS_MAX)
        .ok_or_else(|| invalid(format!("channels must list 1 to {CHANNELS_MAX} names")))?;
    list.iter()
        .map(|c| {
            c.as_str()
                .filter(|s| s.len() <= 2 * ID_BYTES_MAX)
                .ok_or_else(|| invalid("a channel is a string"))
                .and_then(Channel::parse)
        })
        .collect()
}

/// A result.
pub fn result(id: &Value, result: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string()
}

/// An error answer.
pub fn error(id: &Value, error: &RpcError) -> String {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": error.code, "message": error.message}})
        .to_string()
}

/// A notification on a subscribed channel.
pub fn notification(channel: &str, data: Value) -> String {
    json!({"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}})
        .to_string()
}

/// The heartbeat's test request (answer it with `public/test`).
pub fn test_request() -> String {
    json!({"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "test_request"}}).to_string()
}

/// A price as a JSON number (exact for the ticks the venue's instruments have).
pub fn price_json(instrument: &InstrumentAnswer, ticks: i64) -> Value {
    let text = price_text(instrument, ticks);
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

/// An order as Deribit's order object. `status` is the FIX OrdStatus the gateway keeps.
pub fn order_json(order: &OrderState, kind: OrderKind, now_ms: u64) -> Value {
    let state = match order.status {
        "2" => "filled",
        "4" => "cancelled",
        "8" => "rejected",
        "A" => "pending",
        _ => "open",
    };
    let average = if order.filled > 0 {
        let avg = order.filled_value / i128::from(order.filled);
        price_json(&order.instrument, i64::try_from(avg).unwrap_or(0))
    } else {
        json!(0)
    };
    json!({
        "order_id": order.order_id.map(|id| id.to_string()),
        "instrument_name": order.instrument.symbol,
        "direction": match order.side { Side::Buy => "buy", Side::Sell => "sell" },
        "order_type": match kind { OrderKind::Limit => "limit", OrderKind::Market => "market" },
        "price": if kind == OrderKind::Market { json!("market_price") } else { price_json(&order.instrument, order.price) },
        "amount": order.qty,
        "filled_amount": order.filled,
        "average_price": average,
        "order_state": state,
        "label": order.cl_ord_id,
        "last_update_timestamp": now_ms,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    use crate::orders::tests::btc;

    fn params(text: &str) -> Map<String, Value> {
        parse(text).unwrap().params
    }

    #[test]
    fn requests_decode_or_are_refused_with_the_right_code() {
        let ok = parse(r#"{"jsonrpc":"2.0","id":7,"method":"public/test"}"#).unwrap();
        assert_eq!((ok.id, ok.method), (json!(7), Method::Test));
        let code_of = |t: &str| parse(t).unwrap_err().1.code;
        assert_eq!(code_of("{"), code::PARSE);
        assert_eq!(code_of("[1]"), code::INVALID_REQUEST);
        assert_eq!(
            code_of(r#"{"jsonrpc":"2.0","method":"public/test"}"#),
            code::INVALID_REQUEST
        );
        assert_eq!(
            code_of(r#"{"jsonrpc":"1.0","id":1,"method":"public/test"}"#),
            code::INVALID_REQUEST
        );
        assert_eq!(
            code_of(r#"{"jsonrpc":"2.0","id":1,"method":"private/withdraw"}"#),
            code::METHOD_NOT_FOUND
        );
        assert_eq!(
            code_of(r#"{"jsonrpc":"2.0","id":1,"method":"public/test","params":[1]}"#),
            code::INVALID_PARAMS
        );
        let long_id = format!(
            r#"{{"jsonrpc":"2.0","id":"{}","method":"public/test"}}"#,
            "x".repeat(65)
        );
        assert_eq!(code_of(&long_id), code::INVALID_REQUEST);
        // Found by the fuzz target: an id past 64 bits, or a fraction, is read as a float and
        // would come back as another number, so it is refused; the widest whole ids pass.
        for id in ["222222222222222222222222", "1.5", "1e3", "-0.0"] {
            let t = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"public/test"}}"#);
            assert_eq!(code_of(&t), code::INVALID_REQUEST, "{id}");
        }
        for id in ["18446744073709551615", "-9223372036854775808", "0"] {
            let t = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"public/test"}}"#);
            assert_eq!(parse(&t).unwrap().id.to_string(), id);
        }
        // The id comes back with a later error.
        let (id, _) = parse(r#"{"jsonrpc":"2.0","id":"a","method":"nope"}"#).unwrap_err();
        assert_eq!(id, json!("a"));
    }

    #[test]
    fn orders_map_exactly_or_are_refused() {
        let instruments = [btc()];
        let p = params(
            r#"{"jsonrpc":"2.0","id":1,"method":"private/buy","params":{"instrument_name":"BTC-PERP","amount":3,"price":60000.1,"label":"a"}}"#,
        );
        let o = order_params(&instruments, &p).unwrap();
        assert_eq!(
            (o.qty, o.price, o.kind, o.label.as_str()),
            (3, 600_001, OrderKind::Limit, "a")
        );
        let p = params(
            r#"{"jsonrpc":"2.0","id":1,"method":"private/buy","params":{"instrument_name":"BTC-PERP","amount":"2","type":"market"}}"#,
        );
        assert_eq!(
            order_params(&instruments, &p).unwrap().kind,
            OrderKind::Market
        );
        for bad in [
            r#"{"instrument_name":"ETH-PERP","amount":1,"price":1}"#,
            r#"{"instrument_name":"BTC-PERP","amount":1.5,"price":1}"#,
            r#"{"instrument_name":"BTC-PERP","amount":1,"price":60000.05}"#,
            r#"{"instrument_name":"BTC-PERP","amount":1,"price":-1}"#,
            r#"{"instrument_name":"BTC-PERP","amount":1,"price":1e30}"#,
            r#"{"instrument_name":"BTC-PERP","amount":1}"#,
            r#"{"instrument_name":"BTC-PERP","amount":1,"price":1,"type":"stop"}"#,
            r#"{"instrument_name":"BTC-PERP","amount":1,"price":1,"post_only":"yes"}"#,
        ] {
            let p: Map<String, Value> = serde_json::from_str(bad).unwrap();
            assert_eq!(
                order_params(&instruments, &p).unwrap_err().code,
                code::INVALID_PARAMS,
                "{bad}"
            );
        }
    }

    #[test]
    fn auth_params_are_checked_field_by_field() {
        let good = json!({"grant_type":"client_signature","account":6,"client_id":"ALICE","timestamp":1,
            "nonce":"00".repeat(16),"session_seed":"11".repeat(32),"signature":"22".repeat(64)});
        let Value::Object(good) = good else {
            unreachable!()
        };
        assert_eq!(auth_params(&good).unwrap().account, 6);
        for (field, value) in [
            ("grant_type", json!("client_credentials")),
            ("client_id", json!("a b\u{1}")),
            ("nonce", json!("AA".repeat(16))),
            ("session_seed", json!("11")),
            ("signature", json!(12)),
            ("account", json!(-1)),
        ] {
            let mut bad = good.clone();
            bad.insert(field.into(), value);
            assert!(auth_params(&bad).is_err(), "{field}");
        }
    }

    #[test]
    fn channels_are_named_exactly() {
        let c = Channel::parse("book.BTC-PERP.none.10.100ms").unwrap();
        assert_eq!(c.name(), "book.BTC-PERP.none.10.100ms");
        assert_eq!(
            Channel::parse("user.orders.any.raw").unwrap(),
            Channel::UserOrders { instrument: None }
        );
        assert_eq!(
            Channel::parse("trades.BTC-PERP.100ms").unwrap().name(),
            "trades.BTC-PERP.100ms"
        );
        for bad in [
            "book.BTC-PERP.none.0.100ms",
            "book.BTC-PERP.none.99.100ms",
            "book..none.1.100ms",
            "x",
            "",
        ] {
            assert!(Channel::parse(bad).is_err(), "{bad}");
        }
    }

    /// A seeded fuzzer run as a test (cargo-fuzz runs `fuzz_targets/jsonrpc.rs`): mutations of valid
    /// requests and random bytes never panic the decoder or the parameter readers, and every
    /// refusal is a typed error.
    #[test]
    fn the_decoder_survives_mutated_and_random_input() {
        let seeds = [
            r#"{"jsonrpc":"2.0","id":1,"method":"private/buy","params":{"instrument_name":"BTC-PERP","amount":3,"price":60000.1,"label":"a","time_in_force":"fill_or_kill"}}"#,
            r#"{"jsonrpc":"2.0","id":"x","method":"public/auth","params":{"grant_type":"client_signature","account":6,"client_id":"A","timestamp":1,"nonce":"00000000000000000000000000000000"}}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"public/subscribe","params":{"channels":["book.BTC-PERP.none.10.100ms","user.orders.any.raw"]}}"#,
            r#"{"jsonrpc":"2.0","id":3,"method":"private/edit","params":{"order_id":"12","amount":"2","price":"1.5"}}"#,
        ];
        let instruments = [btc()];
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"{}[]\":,.-+0123456789eE \\u00ffabcnulltruefalse\x00\x7f";
        for round in 0..20_000u32 {
            let mut bytes: Vec<u8> = if round % 4 == 0 {
                (0..next() % 300)
                    .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                    .collect()
            } else {
                seeds[(next() % seeds.len() as u64) as usize]
                    .as_bytes()
                    .to_vec()
            };
            for _ in 0..(1 + next() % 6) {
                if bytes.is_empty() {
                    break;
                }
                let at = (next() % bytes.len() as u64) as usize;
                match next() % 4 {
                    0 => bytes[at] = alphabet[(next() % alphabet.len() as u64) as usize],
                    1 => {
                        bytes.remove(at);
                    }
                    2 => bytes.insert(at, alphabet[(next() % alphabet.len() as u64) as usize]),
                    _ => {
                        let piece = bytes[at..].to_vec();
                        bytes.extend_from_slice(&piece[..piece.len().min(40)]);
                    }
                }
            }
            let Ok(text) = std::str::from_utf8(&bytes) else {
                continue;
            };
            if let Ok(request) = parse(text) {
                let p = &request.params;
                let _ = order_params(&instruments, p);
                let _ = auth_params(p);
                let _ = channels(p);
                let _ = order_id(p);
                let _ = edit_params(&instruments[0], p);
                let _ = heartbeat_interval(p);
                let _ = depth(p);
            }
        }
    }
}
