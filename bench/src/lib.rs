//! bench: not implemented yet (see README state table).
