//! firmware-sim: not implemented yet (see README state table).
