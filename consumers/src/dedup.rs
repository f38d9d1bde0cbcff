//! The durable dedup store (to be implemented).

/// Placeholder until the store lands.
#[derive(Debug)]
pub struct DedupStore;
