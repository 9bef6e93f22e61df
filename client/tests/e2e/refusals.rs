//! Tampered and rolled-back modules.
