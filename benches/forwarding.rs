//! Placeholder replaced by the benchmark work (criterion benches of the forwarding core).
fn main() {}
