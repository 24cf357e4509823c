//! Benchmarks of crm (filled by the performance work).
