//! Speed check for `phone::normalize` on a mixed-country list.
//!
//! `cargo run --release --example normalize_speed -- /work/shared/data/numbers-200k.csv [rows]`
//!
//! Normalizes the first `rows` rows (default 20,000; header `phone`) twice: the first pass includes compiling
//! each region's patterns on first use, the second is steady state.

use std::error::Error;
use std::time::Instant;

use phonevault::phone::normalize;

const DEFAULT_ROWS: usize = 20_000;

fn main() -> Result<(), Box<dyn Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: normalize_speed <numbers.csv>")?;
    let count = match std::env::args().nth(2) {
        Some(n) => n.parse()?,
        None => DEFAULT_ROWS,
    };
    let text = std::fs::read_to_string(path)?;
    let rows: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.trim().trim_matches('"'))
        .filter(|l| !l.is_empty())
        .take(count)
        .collect();
    if rows.is_empty() {
        return Err("no rows".into());
    }
    for pass in [
        "first pass (includes lazy regex compilation)",
        "second pass (warm)",
    ] {
        let start = Instant::now();
        let mut valid = 0usize;
        for row in &rows {
            if normalize(row, None).is_ok() {
                valid += 1;
            }
        }
        let elapsed = start.elapsed();
        println!(
            "{pass}: {} numbers, {valid} valid, {:.2} µs/number",
            rows.len(),
            elapsed.as_secs_f64() * 1e6 / rows.len() as f64
        );
    }
    Ok(())
}
