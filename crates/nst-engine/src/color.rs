//! Colour spaces for `original_colors`: the result's luminance with the content's chrominance, in YIQ
//! (`preserve_colors`' space), YCbCr, YUV, CIE L\*a\*b\* or CIE L\*u\*v\* (sRGB, D65).
//!
//! Every conversion takes and gives RGB in 0–255 (`f32`, unclipped); `to_space` returns
//! `[luminance, chroma1, chroma2]` and `from_space` inverts it.
//! - YIQ (NTSC 1953): `Y = 0.299R + 0.587G + 0.114B`, `I = 0.596R − 0.274G − 0.322B`,
//!   `Q = 0.211R − 0.523G + 0.312B`.
//! - YCbCr (ITU-R BT.601, full range, JPEG's): `Cb = 0.564(B − Y)`, `Cr = 0.713(R − Y)`.
//! - YUV (BT.601 analog): `U = 0.492(B − Y)`, `V = 0.877(R − Y)`.
//! - Lab and Luv: sRGB → linear (the sRGB transfer curve) → XYZ (D65) → CIE 1976, white `Yn = 1`.

use serde::{Deserialize, Serialize};

/// The colour space in which chrominance is taken from the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColorSpace {
    /// YIQ (NTSC).
    Yiq,
    /// YCbCr (BT.601, full range).
    Ycbcr,
    /// YUV (BT.601 analog).
    Yuv,
    /// CIE L\*a\*b\* (D65).
    Lab,
    /// CIE L\*u\*v\* (D65).
    Luv,
}

impl ColorSpace {
    /// Every accepted name.
    pub const NAMES: &'static [&'static str] = &["yiq", "ycbcr", "yuv", "lab", "luv"];
}

impl std::str::FromStr for ColorSpace {
    type Err = String;
    fn from_str(s: &str) -> Result<ColorSpace, String> {
        match s {
            "yiq" => Ok(ColorSpace::Yiq),
            "ycbcr" => Ok(ColorSpace::Ycbcr),
            "yuv" => Ok(ColorSpace::Yuv),
            "lab" => Ok(ColorSpace::Lab),
            "luv" => Ok(ColorSpace::Luv),
            _ => Err(format!("`{s}` is not one of {}", Self::NAMES.join(", "))),
        }
    }
}

impl std::fmt::Display for ColorSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = *self as usize;
        f.write_str(Self::NAMES[i])
    }
}

/// `rgb` (0–255) as `[luminance, chroma1, chroma2]` in `space`.
///
/// # Examples
/// ```
/// use nst_engine::color::{ColorSpace, from_space, to_space};
/// let rgb = [200.0_f32, 120.0, 40.0];
/// let lab = to_space(ColorSpace::Lab, rgb);
/// let back = from_space(ColorSpace::Lab, lab);
/// assert!(rgb.iter().zip(back).all(|(a, b)| (a - b).abs() < 1e-2));
/// ```
pub fn to_space(space: ColorSpace, [r, g, b]: [f32; 3]) -> [f32; 3] {
    let y = 0.299 * r + 0.587 * g + 0.114 * b;
    match space {
        ColorSpace::Yiq => [
            y,
            0.596 * r - 0.274 * g - 0.322 * b,
            0.211 * r - 0.523 * g + 0.312 * b,
        ],
        ColorSpace::Ycbcr => [y, 0.564 * (b - y), 0.713 * (r - y)],
        ColorSpace::Yuv => [y, 0.492 * (b - y), 0.877 * (r - y)],
        ColorSpace::Lab => xyz_to_lab(rgb_to_xyz([r, g, b])),
        ColorSpace::Luv => xyz_to_luv(rgb_to_xyz([r, g, b])),
    }
}

/// The inverse of [`to_space`]: RGB in 0–255, unclipped.
pub fn from_space(space: ColorSpace, [l, c1, c2]: [f32; 3]) -> [f32; 3] {
    match space {
        ColorSpace::Yiq => [
            l + 0.956 * c1 + 0.621 * c2,
            l - 0.272 * c1 - 0.647 * c2,
            l - 1.106 * c1 + 1.703 * c2,
        ],
        ColorSpace::Ycbcr | ColorSpace::Yuv => {
            let (kb, kr) = if space == ColorSpace::Ycbcr {
                (0.564, 0.713)
            } else {
                (0.492, 0.877)
            };
            let b = l + c1 / kb;
            let r = l + c2 / kr;
            let g = (l - 0.299 * r - 0.114 * b) / 0.587;
            [r, g, b]
        }
        ColorSpace::Lab => xyz_to_rgb(lab_to_xyz([l, c1, c2])),
        ColorSpace::Luv => xyz_to_rgb(luv_to_xyz([l, c1, c2])),
    }
}

/// The result's luminance with the content's chrominance, in `space`.
pub fn with_chrominance(space: ColorSpace, result: [f32; 3], content: [f32; 3]) -> [f32; 3] {
    let [l, _, _] = to_space(space, result);
    let [_, c1, c2] = to_space(space, content);
    from_space(space, [l, c1, c2])
}

/// D65 white in XYZ (`Y = 1`).
const WHITE: [f32; 3] = [0.950_47, 1.0, 1.088_83];

fn srgb_to_linear(v: f32) -> f32 {
    let v = v / 255.0;
    if v <= 0.040_45 {
        v / 12.92
    } else {
        ((v + 0.055) / 1.055).powf(2.4)
    }
}

fn linear_to_srgb(v: f32) -> f32 {
    let s = if v <= 0.003_130_8 {
        v * 12.92
    } else {
        1.055 * v.max(0.0).powf(1.0 / 2.4) - 0.055
    };
    s * 255.0
}

fn rgb_to_xyz(rgb: [f32; 3]) -> [f32; 3] {
    let [r, g, b] = rgb.map(srgb_to_linear);
    [
        0.412_456_4 * r + 0.357_576_1 * g + 0.180_437_5 * b,
        0.212_672_9 * r + 0.715_152_2 * g + 0.072_175 * b,
        0.019_333_9 * r + 0.119_192 * g + 0.950_304_1 * b,
    ]
}

fn xyz_to_rgb([x, y, z]: [f32; 3]) -> [f32; 3] {
    [
        3.240_454_2 * x - 1.537_138_5 * y - 0.498_531_4 * z,
        -0.969_266 * x + 1.876_010_8 * y + 0.041_556 * z,
        0.055_643_4 * x - 0.204_025_9 * y + 1.057_225_2 * z,
    ]
    .map(linear_to_srgb)
}

/// CIE's `f(t)` of L\*: the cube root above `(6/29)³`, linear below.
fn lab_f(t: f32) -> f32 {
    const D: f32 = 6.0 / 29.0;
    if t > D * D * D {
        t.cbrt()
    } else {
        t / (3.0 * D * D) + 4.0 / 29.0
    }
}

fn lab_f_inv(t: f32) -> f32 {
    const D: f32 = 6.0 / 29.0;
    if t > D {
        t * t * t
    } else {
        3.0 * D * D * (t - 4.0 / 29.0)
    }
}

fn xyz_to_lab([x, y, z]: [f32; 3]) -> [f32; 3] {
    let (fx, fy, fz) = (
        lab_f(x / WHITE[0]),
        lab_f(y / WHITE[1]),
        lab_f(z / WHITE[2]),
    );
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

fn lab_to_xyz([l, a, b]: [f32; 3]) -> [f32; 3] {
    let fy = (l + 16.0) / 116.0;
    [
        WHITE[0] * lab_f_inv(fy + a / 500.0),
        WHITE[1] * lab_f_inv(fy),
        WHITE[2] * lab_f_inv(fy - b / 200.0),
    ]
}

/// `(u', v')` of a colour.
fn uv_prime([x, y, z]: [f32; 3]) -> (f32, f32) {
    let d = x + 15.0 * y + 3.0 * z;
    if d <= 0.0 {
        (0.0, 0.0)
    } else {
        (4.0 * x / d, 9.0 * y / d)
    }
}

fn xyz_to_luv(xyz: [f32; 3]) -> [f32; 3] {
    let l = 116.0 * lab_f(xyz[1] / WHITE[1]) - 16.0;
    let (u, v) = uv_prime(xyz);
    let (un, vn) = uv_prime(WHITE);
    [l, 13.0 * l * (u - un), 13.0 * l * (v - vn)]
}

fn luv_to_xyz([l, u, v]: [f32; 3]) -> [f32; 3] {
    if l <= 0.0 {
        return [0.0; 3];
    }
    let (un, vn) = uv_prime(WHITE);
    let up = u / (13.0 * l) + un;
    let vp = v / (13.0 * l) + vn;
    let y = WHITE[1] * lab_f_inv((l + 16.0) / 116.0);
    if vp <= 0.0 {
        return [0.0, y, 0.0];
    }
    let x = y * 9.0 * up / (4.0 * vp);
    let z = y * (12.0 - 3.0 * up - 20.0 * vp) / (4.0 * vp);
    [x, y, z]
}

#[cfg(test)]
mod tests;
