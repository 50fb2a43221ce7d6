//! The style-transfer pipeline behind the `nst` binary. Under construction: see issue 5.
