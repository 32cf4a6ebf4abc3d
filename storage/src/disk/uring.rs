//! io_uring disk (to be written).
