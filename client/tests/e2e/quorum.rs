//! Quorum with a lying host.
