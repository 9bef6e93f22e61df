//! Paths of the built task modules.
