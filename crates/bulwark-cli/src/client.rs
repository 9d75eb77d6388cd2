//! `bulwark client`: talk to a node's client endpoint — status, account, book, or a signed
//! order, stop or cancel.

use crate::{ClientRequest, Signer};
use bulwark_engine::codec::SignedTx;
use bulwark_engine::command::{
    LimitOrder, SelfTradePrevention, StopDirection, StopOrder, TimeInForce,
};
use bulwark_engine::{AccountId, ClientCommand, InstrumentId, Side};
use bulwark_node::client::Client;
use bulwark_node::node::config::read_hex32;
use ed25519_dalek::SigningKey;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

/// A node's typed answer as the JSON `client` prints.
fn json<T: serde::Serialize>(
    answer: Result<T, bulwark_node::client::ClientError>,
) -> Result<serde_json::Value, String> {
    let answer = answer.map_err(|e| e.to_string())?;
    serde_json::to_value(answer).map_err(|e| e.to_string())
}

/// Sends `request` to the node at `node` and prints its JSON answer.
pub fn run(node: SocketAddr, request: ClientRequest) -> ExitCode {
    let result = (|| -> Result<serde_json::Value, String> {
        let mut client = Client::connect(node, Duration::from_secs(3))
            .map_err(|e| format!("cannot reach {node}: {e}"))?;
        match request {
            ClientRequest::Status => json(client.status()),
            ClientRequest::Account { id } => json(client.account(AccountId(id))),
            ClientRequest::Book { instrument, depth } => {
                json(client.book(InstrumentId(instrument), depth))
            }
            ClientRequest::Order {
                signer,
                instrument,
                side,
                price,
                qty,
            } => {
                let side = parse_side(&side)?;
                let command = ClientCommand::Limit(LimitOrder {
                    instrument: InstrumentId(instrument),
                    side,
                    price,
                    qty,
                    tif: TimeInForce::Gtc,
                    post_only: false,
                    reduce_only: false,
                    stp: SelfTradePrevention::CancelResting,
                    client_order_id: signer.nonce,
                });
                submit_signed(&mut client, &signer, command)
            }
            ClientRequest::Stop {
                signer,
                instrument,
                side,
                trigger,
                direction,
                limit,
                qty,
                reduce_only,
            } => {
                let side = parse_side(&side)?;
                let direction = match direction.as_deref() {
                    Some("rises") => StopDirection::Rises,
                    Some("falls") => StopDirection::Falls,
                    Some(other) => {
                        return Err(format!("--direction must be rises or falls, not {other:?}"))
                    }
                    // A buy stop protects a short against a rise; a sell stop a long against a fall.
                    None => match side {
                        Side::Buy => StopDirection::Rises,
                        Side::Sell => StopDirection::Falls,
                    },
                };
                let command = ClientCommand::Stop(StopOrder {
                    instrument: InstrumentId(instrument),
                    side,
                    direction,
                    trigger_price: trigger,
                    limit_price: limit,
                    qty,
                    reduce_only,
                    client_order_id: signer.nonce,
                });
                submit_signed(&mut client, &signer, command)
            }
            ClientRequest::Cancel {
                signer,
                instrument,
                order_id,
            } => {
                let command = ClientCommand::Cancel {
                    instrument: InstrumentId(instrument),
                    order_id: bulwark_engine::OrderId(order_id),
                };
                submit_signed(&mut client, &signer, command)
            }
        }
    })();
    match result {
        Ok(value) => {
            println!("{value}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("bulwark client: {error}");
            ExitCode::from(2)
        }
    }
}

fn submit_signed(
    client: &mut Client,
    signer: &Signer,
    command: ClientCommand,
) -> Result<serde_json::Value, String> {
    let seed = read_hex32(&signer.key).map_err(|e| format!("{}: {e}", signer.key.display()))?;
    let tx = SignedTx::sign(
        AccountId(signer.account),
        signer.nonce,
        command,
        &SigningKey::from_bytes(&seed),
    );
    let outcome = client.submit(&[tx]).map_err(|e| e.to_string())?;
    Ok(serde_json::json!({
        "accepted": outcome.accepted,
        "duplicates": outcome.duplicates,
        "refused": outcome
            .refused
            .iter()
            .map(|r| serde_json::json!({"index": r.index, "reason": r.reason}))
            .collect::<Vec<_>>(),
    }))
}

/// `--side` of `client order` and `client stop`.
fn parse_side(text: &str) -> Result<Side, String> {
    match text {
        "buy" => Ok(Side::Buy),
        "sell" => Ok(Side::Sell),
        other => Err(format!("--side must be buy or sell, not {other:?}")),
    }
}
