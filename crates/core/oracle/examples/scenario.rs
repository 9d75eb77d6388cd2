//! Prints one scenario's outcome JSON (what `bulwark sim --scenario NAME --seed N` will print):
//! `cargo run -p bulwark-oracle --example scenario -- feed-blackout 1`.

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "oracle-collusion".to_owned());
    let seed = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let outcome = bulwark_oracle::scenario::run(&name, seed);
    match serde_json::to_string_pretty(&outcome) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("cannot print the outcome: {e}"),
    }
}
