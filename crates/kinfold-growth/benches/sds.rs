//! SDS computations per second on one core.
//!
//!   cargo bench -p kinfold-growth --bench sds
//!
//! Scores a fixed set of 1,000,000 measurements (all measures, both sexes, ages from 2 weeks to
//! 20 years, so every table and both interpolations are exercised) seven times on one thread
//! and prints the median rate as a Markdown row for BENCHMARKS.md.

use std::hint::black_box;
use std::time::Instant;

use kinfold_growth::{Measure, Sex, sds, value_for_sds};

fn main() {
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 11) as f64 / (1u64 << 53) as f64
    };
    let cases: Vec<(Measure, Sex, f64, f64)> = (0..1_000_000)
        .map(|_| {
            let measure = Measure::ALL[(next() * 4.0) as usize % 4];
            let sex = if next() < 0.5 { Sex::Male } else { Sex::Female };
            let age = 0.04 + next() * 16.9;
            let value = value_for_sds(measure, sex, age, next() * 6.0 - 3.0).unwrap_or(10.0);
            (measure, sex, age, value)
        })
        .collect();
    let mut rates = Vec::new();
    for _ in 0..7 {
        let start = Instant::now();
        let mut total = 0.0;
        for (measure, sex, age, value) in &cases {
            total += sds(*measure, *sex, *age, *value).unwrap_or(0.0);
        }
        black_box(total);
        rates.push(cases.len() as f64 / start.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "| SDS computations per second, one core (1,000,000 mixed cases, median of 7) | {:.1} million | min {:.1}, max {:.1} million |",
        rates[3] / 1e6,
        rates[0] / 1e6,
        rates[6] / 1e6
    );
}
