//! pwrite disk (to be written).
