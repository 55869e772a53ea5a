//! Errors the broker's public API returns.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum BrokerError {
    #[error("invalid subject: {0:?}")]
    InvalidSubject(String),
    #[error("invalid queue group: {0:?}")]
    InvalidQueue(String),
    #[error("internal subscription capacity must be at least 1, got {0}")]
    InvalidCapacity(usize),
}
