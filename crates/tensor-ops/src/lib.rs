//! Convolution, ReLU and pooling with backprop for `[C, H, W]` f32 activations. Under construction: see issue 3.
