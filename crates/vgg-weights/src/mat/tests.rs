//! Unit tests of the MAT reader.
