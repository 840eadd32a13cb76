//! Check runner for the Leasehold model.
