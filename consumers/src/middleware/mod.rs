//! Failure handling, one module per concern (helper to implement).
