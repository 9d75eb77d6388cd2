//! Runs `bulwark_oracle::run_bench` (what `bulwark bench oracle` will call):
//! `cargo run --release -p bulwark-oracle --example oracle_bench`.

fn main() {
    bulwark_oracle::run_bench();
}
