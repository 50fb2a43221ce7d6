//! Neural style transfer losses with exact gradients. Under construction: see issue 4.
