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
    if let ClientRequest::Withdrawals { account, json } = request {
        return match withdrawals(node, account) {
            Ok(answer) if json => {
                println!(
                    "{}",
                    serde_json::to_string(&answer).expect("an answer serializes")
                );
                ExitCode::SUCCESS
            }
            Ok(answer) => {
                print_withdrawals(&answer);
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("bulwark client: {error}");
                ExitCode::from(2)
            }
        };
    }
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
            ClientRequest::Withdraw {
                signer,
                amount,
                destination,
                chain,
            } => {
                let chain = match chain.as_str() {
                    "bitcoin" => bulwark_engine::PayoutChain::Bitcoin,
                    "ed25519" => bulwark_engine::PayoutChain::Ed25519,
                    other => {
                        return Err(format!("--chain must be bitcoin or ed25519, not {other:?}"))
                    }
                };
                let destination: [u8; 32] = hex::decode(destination.trim())
                    .ok()
                    .and_then(|bytes| bytes.try_into().ok())
                    .ok_or("--destination must be 64 hex characters (32 bytes)")?;
                if !chain.valid_destination(&destination) {
                    return Err(format!(
                        "--destination is not a key {} can pay (an x-only secp256k1 key for bitcoin, an Ed25519 key not of small order for ed25519)",
                        chain.name()
                    ));
                }
                if amount <= 0 {
                    return Err("--amount must be positive (micros)".into());
                }
                let command = ClientCommand::Withdraw {
                    amount,
                    destination,
                    chain,
                };
                submit_signed(&mut client, &signer, command)
            }
            ClientRequest::Withdrawals { .. } => unreachable!("answered above"),
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

/// Every page of the node's withdrawals, only `account`'s if given.
fn withdrawals(
    node: SocketAddr,
    account: Option<u64>,
) -> Result<bulwark_api::answers::WithdrawalsAnswer, String> {
    let mut client = Client::connect(node, Duration::from_secs(3))
        .map_err(|e| format!("cannot reach {node}: {e}"))?;
    let mut all = bulwark_api::answers::WithdrawalsAnswer::default();
    let mut from = 1;
    loop {
        let page = client.withdrawals(from).map_err(|e| e.to_string())?;
        all.vault = page.vault;
        all.withdrawals.extend(
            page.withdrawals
                .into_iter()
                .filter(|w| account.is_none_or(|a| w.account == a)),
        );
        match page.next {
            Some(next) if next > from => from = next,
            _ => break,
        }
    }
    Ok(all)
}

fn print_withdrawals(answer: &bulwark_api::answers::WithdrawalsAnswer) {
    match &answer.vault {
        Some(vault) => println!(
            "vault: {} of {} members; taproot output key {}; ed25519 key {}",
            vault.threshold, vault.members, vault.bitcoin_xonly, vault.ed25519
        ),
        None => println!("vault: this node holds no vault keys (yet)"),
    }
    println!(
        "{:>6} {:>8} {:>8} {:>14} {:>10}  txid or signature",
        "id", "chain", "account", "micros", "state"
    );
    for w in &answer.withdrawals {
        let proof = w
            .txid
            .clone()
            .or_else(|| w.signatures.first().cloned())
            .unwrap_or_default();
        println!(
            "{:>6} {:>8} {:>8} {:>14} {:>10}  {}",
            w.id, w.chain, w.account, w.amount_micros, w.state, proof
        );
    }
}

/// `--side` of `client order` and `client stop`.
fn parse_side(text: &str) -> Result<Side, String> {
    match text {
        "buy" => Ok(Side::Buy),
        "sell" => Ok(Side::Sell),
        other => Err(format!("--side must be buy or sell, not {other:?}")),
    }
}
