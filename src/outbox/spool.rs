//! What the spool keeps about each message. The spool itself is the
//! [`super::store`] (SQLite, format 2); [`super::journal`] reads the
//! format-1 journal of library 1.0 to migrate it.

use serde::{Deserialize, Serialize};

use crate::status::Status;

/// Everything the library keeps about a message besides its bytes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub status: Status,
    pub user: Option<String>,
    pub envelope_from: String,
    pub envelope_to: Vec<String>,
    pub idempotency_key: Option<String>,
    /// The host asked for an archived copy.
    pub archive: bool,
    /// Set once the spool no longer holds the message's bytes.
    #[serde(default)]
    pub body_dropped: bool,
}
