//! Activation shapes and padding.

use std::fmt;

use ndarray::ArrayBase;

/// Shape `[C, H, W]` of an activation (batch 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Shape {
    /// Number of channels `C`.
    pub channels: usize,
    /// Height `H` (rows).
    pub height: usize,
    /// Width `W` (columns).
    pub width: usize,
}

impl Shape {
    /// `[channels, height, width]`.
    pub const fn new(channels: usize, height: usize, width: usize) -> Self {
        Shape {
            channels,
            height,
            width,
        }
    }

    /// The shape of an array (`[C, H, W]`).
    pub fn of<S: ndarray::RawData>(a: &ArrayBase<S, ndarray::Ix3>) -> Self {
        let d = a.dim();
        Shape::new(d.0, d.1, d.2)
    }

    /// `C·H·W`.
    pub const fn len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Whether the shape holds no element.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `H·W`, the size of one channel plane.
    pub const fn plane(&self) -> usize {
        self.height * self.width
    }

    /// As an ndarray dimension tuple.
    pub const fn dim(&self) -> (usize, usize, usize) {
        (self.channels, self.height, self.width)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {}, {}]", self.channels, self.height, self.width)
    }
}

/// Zero padding (convolution) or ignored padding (pooling) on each side, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Padding {
    /// Rows added above.
    pub top: usize,
    /// Rows added below.
    pub bottom: usize,
    /// Columns added on the left.
    pub left: usize,
    /// Columns added on the right.
    pub right: usize,
}

impl Padding {
    /// No padding.
    pub const ZERO: Padding = Padding {
        top: 0,
        bottom: 0,
        left: 0,
        right: 0,
    };

    /// The same padding `p` on all four sides.
    pub const fn uniform(p: usize) -> Self {
        Padding {
            top: p,
            bottom: p,
            left: p,
            right: p,
        }
    }

    /// `[top, bottom, left, right]`, the order MatConvNet uses.
    pub const fn to_array(self) -> [usize; 4] {
        [self.top, self.bottom, self.left, self.right]
    }
}

impl fmt::Display for Padding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[top {}, bottom {}, left {}, right {}]",
            self.top, self.bottom, self.left, self.right
        )
    }
}

/// Output length of a sliding window along one axis: `floor((n + pad_lo + pad_hi − k) / s) + 1`,
/// or `None` when the padded input is shorter than the window.
pub(crate) fn out_len(n: usize, pad_lo: usize, pad_hi: usize, k: usize, s: usize) -> Option<usize> {
    let padded = n + pad_lo + pad_hi;
    (padded >= k && n > 0).then(|| (padded - k) / s + 1)
}

#[cfg(test)]
mod tests;
