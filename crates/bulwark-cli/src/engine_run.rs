//! `bulwark engine run`: replay a JSON-lines transaction file through one engine.
//!
//! Input: one JSON object per line, either a command (see `docs/engine-input.md`) or a batch
//! marker `{"batch": {"time_ms": N}}` that closes the current batch and starts the next at time N.
//! Output (stdout): one JSON event per line, a `batch_end` line with the state root after each
//! batch, and last one `summary` line. Bad lines are reported on stderr with their line number and
//! skipped; they never stop the run.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use bulwark_engine::command::{ClientCommand, SystemCommand};
use bulwark_engine::{AccountId, Command, Engine, EngineConfig, Event};
use serde::Deserialize;
use serde_json::{json, Value};

/// Longest accepted input line, bytes.
const LINE_BYTES_MAX: usize = 64 * 1024;
/// Most commands in one batch; a longer batch is closed early.
const BATCH_COMMANDS_MAX: usize = 100_000;

/// Arguments of `bulwark engine run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// JSON-lines file of transactions (`-` for standard input).
    #[arg(long)]
    input: PathBuf,
    /// Write the final engine snapshot to this file.
    #[arg(long)]
    snapshot: Option<PathBuf>,
    /// Start from this snapshot instead of a fresh venue.
    #[arg(long)]
    restore: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
struct ClientLine {
    account: AccountId,
    #[serde(default)]
    nonce: u64,
    #[serde(flatten)]
    command: ClientCommand,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchMarker {
    time_ms: u64,
}

enum Line {
    Command(Command),
    Batch(u64),
}

/// Parses one input line: a batch marker, or any command the engine has — a client command
/// (tagged by `type`, with `account` and an optional `nonce`) or a system command. Which
/// commands exist is the engine's enums' business: a new variant is accepted here without a
/// change.
fn parse_line(text: &str) -> Result<Line, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let obj = value.as_object().ok_or("expected a JSON object")?;
    if let Some(b) = obj.get("batch") {
        let m: BatchMarker =
            serde_json::from_value(b.clone()).map_err(|e| format!("bad batch marker: {e}"))?;
        return Ok(Line::Batch(m.time_ms));
    }
    let ty = obj.get("type").and_then(Value::as_str).ok_or_else(|| {
        format!(
            "missing \"type\" (one of {}, {})",
            ClientCommand::TYPES.join(", "),
            SystemCommand::TYPES.join(", ")
        )
    })?;
    let client = serde_json::from_str::<ClientLine>(text);
    let client_error = match client {
        Ok(c) => {
            return Ok(Line::Command(Command::Client {
                account: c.account,
                nonce: c.nonce,
                command: c.command,
            }))
        }
        Err(e) => e,
    };
    let system_error = match serde_json::from_str::<SystemCommand>(text) {
        Ok(s) => return Ok(Line::Command(Command::System(s))),
        Err(e) => e,
    };
    if ClientCommand::TYPES.contains(&ty) {
        Err(format!("bad {ty} command: {client_error}"))
    } else if SystemCommand::TYPES.contains(&ty) {
        Err(format!("bad {ty} command: {system_error}"))
    } else {
        Err(format!("unknown type {ty:?}"))
    }
}

struct Runner<W: Write> {
    engine: Engine,
    out: W,
    events: Vec<Event>,
    batch: Vec<Command>,
    time_ms: u64,
    batches: u64,
    commands: u64,
    rejected: u64,
}

impl<W: Write> Runner<W> {
    fn flush(&mut self) -> std::io::Result<()> {
        self.events.clear();
        self.engine
            .execute(self.time_ms, &self.batch, &mut self.events);
        self.commands += self.batch.len() as u64;
        self.batch.clear();
        self.batches += 1;
        for e in &self.events {
            if matches!(e, Event::Rejected { .. }) {
                self.rejected += 1;
            }
            serde_json::to_writer(&mut self.out, e)?;
            self.out.write_all(b"\n")?;
        }
        let line = json!({
            "event": "batch_end",
            "time_ms": self.engine.time_ms(),
            "state_root": hex::encode(self.engine.state_root()),
        });
        writeln!(self.out, "{line}")
    }

    fn summary(&self, bad_lines: u64) -> Value {
        let e = &self.engine;
        let symbols: Vec<&str> = e
            .config()
            .instruments
            .iter()
            .map(|i| i.symbol.as_str())
            .collect();
        let balances: Vec<Value> = e
            .accounts()
            .map(|(id, a)| {
                let st = e.standing(*id).and_then(Result::ok);
                json!({
                    "account": id.0,
                    "cash": a.cash.to_string(),
                    "equity": st.map(|s| s.equity.to_string()),
                })
            })
            .collect();
        let positions: Vec<Value> = e
            .accounts()
            .flat_map(|(id, a)| {
                a.positions.iter().map(|(inst, p)| {
                    json!({"account": id.0, "instrument": symbols[inst.0 as usize], "qty": p.qty})
                })
            })
            .collect();
        let oi: Vec<Value> = e
            .open_interest()
            .iter()
            .enumerate()
            .filter(|(_, q)| **q > 0)
            .map(|(i, q)| json!({"instrument": symbols[i], "lots": q}))
            .collect();
        let marks: Vec<Value> = e
            .config()
            .instruments
            .iter()
            .filter_map(|inst| {
                let mark = e.mark(inst.id)?;
                let mut v = json!({"instrument": inst.symbol, "mark": mark});
                if let Some(r) = e.option_risk(inst.id) {
                    v["vol"] = json!(r.vol);
                    v["delta"] = json!(r.greeks.delta);
                    v["gamma_per_usd"] = json!(r.greeks.gamma * 1e6);
                    v["vega_usd"] = json!(r.greeks.vega / 1e6);
                    v["theta_usd_per_day"] = json!(r.greeks.theta / 1e6 / 365.0);
                }
                Some(v)
            })
            .collect();
        let t = e.totals();
        json!({
            "summary": {
                "state_root": hex::encode(e.state_root()),
                "batches": self.batches,
                "commands": self.commands,
                "rejected": self.rejected,
                "bad_lines": bad_lines,
                "balances": balances,
                "positions": positions,
                "open_interest": oi,
                "marks": marks,
                "fee_pool": t.fee_pool.to_string(),
                "insurance_fund": t.insurance_fund.to_string(),
                "money_conserved": t.conserved(),
            }
        })
    }
}

/// Runs the command; exit 0 when every line was used, 1 when some were skipped, 2 on errors.
pub fn run(args: RunArgs) -> ExitCode {
    match run_inner(&args) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("bulwark engine run: {e}");
            ExitCode::from(2)
        }
    }
}

fn run_inner(args: &RunArgs) -> Result<u64, String> {
    let reader: Box<dyn BufRead> = if args.input.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let f = File::open(&args.input).map_err(|e| {
            format!(
                "cannot open --input {}: {e} (pass a JSON-lines file, or - for stdin)",
                args.input.display()
            )
        })?;
        Box::new(BufReader::new(f))
    };
    let engine = match &args.restore {
        None => Engine::new(EngineConfig::default()),
        Some(path) => {
            let bytes = std::fs::read(path)
                .map_err(|e| format!("cannot read --restore {}: {e}", path.display()))?;
            Engine::restore(&bytes).map_err(|e| format!("--restore {}: {e}", path.display()))?
        }
    };
    let time_ms = engine.time_ms();
    let stdout = std::io::stdout();
    let mut r = Runner {
        engine,
        out: BufWriter::new(stdout.lock()),
        events: Vec::new(),
        batch: Vec::new(),
        time_ms,
        batches: 0,
        commands: 0,
        rejected: 0,
    };
    let io = |e: std::io::Error| format!("writing output: {e}");
    let mut bad = 0u64;
    let mut buf = Vec::new();
    let mut reader = reader;
    let mut number = 0u64;
    loop {
        buf.clear();
        let n =
            read_bounded_line(&mut reader, &mut buf).map_err(|e| format!("reading input: {e}"))?;
        if n == 0 {
            break;
        }
        number += 1;
        if buf.len() > LINE_BYTES_MAX {
            eprintln!("line {number}: longer than {LINE_BYTES_MAX} bytes, skipped");
            bad += 1;
            continue;
        }
        let Ok(text) = std::str::from_utf8(&buf) else {
            eprintln!("line {number}: not UTF-8, skipped");
            bad += 1;
            continue;
        };
        let text = text.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        match parse_line(text) {
            Ok(Line::Command(c)) => {
                r.batch.push(c);
                if r.batch.len() >= BATCH_COMMANDS_MAX {
                    r.flush().map_err(io)?;
                }
            }
            Ok(Line::Batch(t)) => {
                if !r.batch.is_empty() {
                    r.flush().map_err(io)?;
                }
                r.time_ms = t;
            }
            Err(e) => {
                eprintln!("line {number}: {e}; skipped");
                bad += 1;
            }
        }
    }
    if !r.batch.is_empty() || r.batches == 0 {
        r.flush().map_err(io)?;
    }
    let summary = r.summary(bad);
    writeln!(r.out, "{summary}").map_err(io)?;
    r.out.flush().map_err(io)?;
    if let Some(path) = &args.snapshot {
        std::fs::write(path, r.engine.snapshot())
            .map_err(|e| format!("cannot write --snapshot {}: {e}", path.display()))?;
    }
    Ok(bad)
}

/// Reads one line, keeping at most `LINE_BYTES_MAX + 1` bytes of it (the rest is discarded), so a
/// huge line cannot exhaust memory. Returns the number of bytes consumed.
fn read_bounded_line<R: BufRead>(r: &mut R, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut consumed = 0;
    loop {
        let chunk = r.fill_buf()?;
        if chunk.is_empty() {
            return Ok(consumed);
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let room = (LINE_BYTES_MAX + 1).saturating_sub(buf.len());
        let body = if done {
            &chunk[..take - 1]
        } else {
            &chunk[..take]
        };
        buf.extend_from_slice(&body[..body.len().min(room)]);
        r.consume(take);
        consumed += take;
        if done {
            return Ok(consumed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_or_explain() {
        assert!(matches!(
            parse_line(
                r#"{"type":"limit","account":1,"instrument":0,"side":"buy","price":5,"qty":1}"#
            ),
            Ok(Line::Command(Command::Client { .. }))
        ));
        assert!(matches!(
            parse_line(r#"{"type":"deposit","account":1,"amount":5}"#),
            Ok(Line::Command(Command::System(_)))
        ));
        assert!(matches!(
            parse_line(r#"{"batch":{"time_ms":7}}"#),
            Ok(Line::Batch(7))
        ));
        for bad in [
            "[1]",
            "{",
            r#"{"type":"nope"}"#,
            r#"{"type":"limit","account":1}"#,
            r#"{"x":1}"#,
        ] {
            assert!(parse_line(bad).is_err(), "{bad}");
        }
    }
}
