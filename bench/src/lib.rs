//! Benchmark helpers: `gen`, the seeded traffic generator behind `bench/scripts/*` and the flood
//! tests.

pub mod gen;
