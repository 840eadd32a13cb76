//! TCP host for the Leasehold actors.
