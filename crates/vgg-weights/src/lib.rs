//! Reads MatConvNet VGG models (`.mat`, MAT v5) into `ndarray` arrays. Under construction: see issue 2.
