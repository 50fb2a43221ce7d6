//! Integration tests of nst-optim: test functions, hand-computed Adam steps, exact resume.

mod adam;
mod lbfgs;
mod problems;
mod resume;
