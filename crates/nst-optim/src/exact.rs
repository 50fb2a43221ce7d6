//! Serde helpers that round-trip floats bit for bit through any format, serde_json included.
//!
//! serde_json's default float parser (without its `float_roundtrip` feature) is not correctly
//! rounded: in a probe with serde_json 1.0.154 of 6 million `f64` values (random bit patterns, and
//! uniform in ±1000), 1.2 million came back one ulp off after `to_string` → `from_str`. A resumed optimizer must see
//! exactly the numbers it saved, so the state writes scalars as decimal strings (Rust's shortest
//! round-trip `{:?}` form, parsed back with the correctly rounded `str::parse`) and float vectors as
//! their IEEE-754 bit patterns. Scalars also deserialize from plain numbers, so hand-written configs
//! (TOML, JSON) may use numbers. Every non-NaN scalar round-trips exactly; a NaN scalar stays NaN
//! but loses its payload (the optimizer states hold no NaN scalars). Vectors keep every bit.

#[cfg(test)]
mod tests;

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serializer};

/// `f64` as a decimal string; reads a string or a number.
pub(crate) mod f64_exact {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:?}"))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        d.deserialize_any(FloatVisitor)
    }
}

/// `f32` as a decimal string; reads a string or a number.
pub(crate) mod f32_exact {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:?}"))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
        struct V32;
        impl Visitor<'_> for V32 {
            type Value = f32;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an f32 as a number or a decimal string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<f32, E> {
                v.parse::<f32>()
                    .map_err(|e| E::custom(format!("invalid f32 {v:?}: {e}")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<f32, E> {
                Ok(v as f32)
            }
            fn visit_f32<E: de::Error>(self, v: f32) -> Result<f32, E> {
                Ok(v)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<f32, E> {
                Ok(v as f32)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<f32, E> {
                Ok(v as f32)
            }
        }
        d.deserialize_any(V32)
    }
}

/// `Vec<f32>` as a `Vec<u32>` of bit patterns.
pub(crate) mod vec_f32_bits {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &[f32], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|x| x.to_bits()))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
        let bits = Vec::<u32>::deserialize(d)?;
        Ok(bits.into_iter().map(f32::from_bits).collect())
    }
}

struct FloatVisitor;

impl Visitor<'_> for FloatVisitor {
    type Value = f64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an f64 as a number or a decimal string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        v.parse::<f64>()
            .map_err(|e| E::custom(format!("invalid f64 {v:?}: {e}")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }
}
