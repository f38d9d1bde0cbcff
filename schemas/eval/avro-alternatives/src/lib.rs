//! Benchmarks only: see benches/decode.rs.
