//! Killing clients and the server mid-batch.
