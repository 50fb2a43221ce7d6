//! The F(4×4) convolution with every GEMM microkernel of this CPU (panel sizes differ between them, so
//! the packed layouts of `U` and `V`, groups of eight tiles split across panels and the zero padding
//! are checked for each) against im2col, forward, backward and added.

use super::{F4, conv3x3_tiles};
use crate::winograd::tests::{COMMON_CASES, Case, check_every_kernel};

/// Besides the common cases (odd sizes, channel counts that are no multiple of a panel's rows, tile
/// counts that are no multiple of a panel's columns or of 8, padding 0–2): one block (phased),
/// several phased blocks (4 → 5 channels, 500 × 21: three blocks of 43 tile rows of 6 tiles) and
/// several blocks run whole (5 → 7 channels, 1400 × 9: five blocks of 86 tile rows of 3 tiles).
const CASES: [Case; 3] = [
    (130, 6, 30, 37, [0, 1, 1, 2]),
    (4, 5, 500, 21, [1, 1, 1, 1]),
    (5, 7, 1400, 9, [1, 1, 1, 1]),
];

#[test]
fn every_kernel_matches_the_direct_convolution_both_ways() {
    // F(4×4) rounds several times worse than F(2×2) (transform entries up to 8, weights scaled by 1/24).
    check_every_kernel(
        conv3x3_tiles::<F4>,
        &[&COMMON_CASES[..], &CASES].concat(),
        4e-5,
    );
}
