//! Adam and L-BFGS over a flat f32 parameter vector. Under construction: see issue 4.
