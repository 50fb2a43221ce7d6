//! Unit tests of the window arithmetic.

use super::*;

#[test]
fn out_len_follows_matconvnet() {
    assert_eq!(out_len(300, 0, 0, 2, 2), Some(150));
    assert_eq!(out_len(75, 0, 0, 2, 2), Some(37)); // odd: the last row is dropped
    assert_eq!(out_len(5, 1, 1, 3, 1), Some(5));
    assert_eq!(out_len(5, 1, 0, 3, 2), Some(2));
    assert_eq!(out_len(2, 0, 0, 3, 1), None);
    assert_eq!(out_len(0, 1, 1, 1, 1), None);
}

#[test]
fn shapes_and_padding_print_readably() {
    assert_eq!(Shape::new(64, 300, 400).to_string(), "[64, 300, 400]");
    assert_eq!(Shape::new(64, 300, 400).plane(), 120_000);
    assert_eq!(Padding::uniform(1).to_array(), [1, 1, 1, 1]);
    assert_eq!(
        Padding::ZERO.to_string(),
        "[top 0, bottom 0, left 0, right 0]"
    );
}
