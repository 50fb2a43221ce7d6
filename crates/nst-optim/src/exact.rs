//! Serde helpers that round-trip floats bit for bit through any format, serde_json included.
//!
//! serde_json's default float parser (without its `float_roundtrip` feature) is not correctly
//! rounded: in a probe with serde_json 1.0.154 of 6 million `f64` values (random bit patterns, and
//! uniform in ±1000), 1.2 million came back one ulp off after `to_string` → `from_str`. A resumed
//! optimizer must see exactly the numbers it saved, so the state writes scalars as decimal strings
//! (Rust's shortest round-trip `{:?}` form, parsed back with the correctly rounded `str::parse`)
//! and float vectors as their IEEE-754 little-endian bytes (base64 in JSON and other
//! human-readable formats, raw bytes in binary ones). Scalars also deserialize from plain numbers,
//! so hand-written configs (TOML, JSON) may use numbers. Every non-NaN scalar round-trips exactly;
//! a NaN scalar stays NaN but loses its payload (the optimizer states hold no NaN scalars).
//! Vectors keep every bit.

#[cfg(test)]
mod tests;

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

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

/// `Vec<f32>` as its little-endian IEEE-754 bytes: a base64 string (RFC 4648 §4, standard alphabet,
/// padded) in human-readable formats such as JSON, raw bytes in binary ones.
///
/// Base64 takes 16 characters per 3 values (≈ 5.33 bytes per `f32`), against about 11 for the
/// decimal `u32` bit patterns this crate wrote before; both keep every bit. Reading also accepts that older form (a
/// sequence of `u32`), so states saved by earlier versions still load.
pub(crate) mod vec_f32_bits {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &[f32], s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::with_capacity(4 * v.len());
        for x in v {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        if s.is_human_readable() {
            s.serialize_str(&base64::encode(&bytes))
        } else {
            s.serialize_bytes(&bytes)
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
        if d.is_human_readable() {
            d.deserialize_any(VecVisitor)
        } else {
            d.deserialize_byte_buf(VecVisitor)
        }
    }

    struct VecVisitor;

    impl<'de> Visitor<'de> for VecVisitor {
        type Value = Vec<f32>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(
                "f32 values as base64 of their little-endian bytes, raw bytes, or u32 bit patterns",
            )
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<f32>, E> {
            let bytes = base64::decode(v).map_err(E::custom)?;
            self.visit_bytes(&bytes)
        }

        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<f32>, E> {
            if !v.len().is_multiple_of(4) {
                return Err(E::custom(format!(
                    "{} bytes is not a whole number of f32 values",
                    v.len()
                )));
            }
            Ok(v.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        }

        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<f32>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
            while let Some(bits) = seq.next_element::<u32>()? {
                out.push(f32::from_bits(bits));
            }
            Ok(out)
        }
    }
}

/// Base64 (RFC 4648 §4: alphabet `A–Z a–z 0–9 + /`, `=` padding), strict on input.
pub(crate) mod base64 {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    /// The padded encoding of `bytes`.
    pub(crate) fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            let symbols = chunk.len() + 1; // 1 byte → 2 symbols, 2 → 3, 3 → 4
            for k in 0..4 {
                if k < symbols {
                    let index = (n >> (18 - 6 * k)) & 0x3f;
                    out.push(char::from(ALPHABET[index as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    /// Decodes a padded base64 string. Rejects a length that is not a multiple of 4, symbols outside
    /// the alphabet, misplaced padding and non-zero trailing bits (so every byte string has exactly
    /// one accepted encoding).
    pub(crate) fn decode(text: &str) -> Result<Vec<u8>, String> {
        let text = text.as_bytes();
        if !text.len().is_multiple_of(4) {
            return Err(format!(
                "base64 length {} is not a multiple of 4",
                text.len()
            ));
        }
        let mut out = Vec::with_capacity(text.len() / 4 * 3);
        let Some(last_start) = text.len().checked_sub(4) else {
            return Ok(out);
        };
        let (body, last) = text.split_at(last_start);
        // Every group but the last holds 4 symbols and no padding: one table look-up per symbol.
        for (g, group) in body.chunks_exact(4).enumerate() {
            let v = lookup(group);
            if (v[0] | v[1] | v[2] | v[3]) & INVALID != 0 {
                return Err(group_error(group, g));
            }
            let n = (u32::from(v[0]) << 18)
                | (u32::from(v[1]) << 12)
                | (u32::from(v[2]) << 6)
                | u32::from(v[3]);
            out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]);
        }
        let g = body.len() / 4;
        let padding = last.iter().rev().take_while(|&&c| c == b'=').count();
        if padding > 2 {
            return Err(format!("misplaced base64 padding in group {g}"));
        }
        let mut n = 0_u32;
        for (k, &c) in last[..4 - padding].iter().enumerate() {
            let v = DECODE[usize::from(c)];
            if v & INVALID != 0 {
                return Err(group_error(last, g));
            }
            n |= u32::from(v) << (18 - 6 * k);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let kept = 3 - padding;
        if bytes[kept..].iter().any(|&b| b != 0) {
            return Err(format!("non-zero trailing bits in base64 group {g}"));
        }
        out.extend_from_slice(&bytes[..kept]);
        Ok(out)
    }

    /// Marks a byte that is not a symbol of the alphabet in [`DECODE`].
    const INVALID: u8 = 0x80;

    /// Symbol value of every byte, or [`INVALID`].
    const DECODE: [u8; 256] = {
        let mut table = [INVALID; 256];
        let mut i = 0;
        while i < 64 {
            table[ALPHABET[i] as usize] = i as u8;
            i += 1;
        }
        table
    };

    /// Table look-up of the 4 symbols of `group`.
    fn lookup(group: &[u8]) -> [u8; 4] {
        [
            DECODE[usize::from(group[0])],
            DECODE[usize::from(group[1])],
            DECODE[usize::from(group[2])],
            DECODE[usize::from(group[3])],
        ]
    }

    /// The error for group `g`, which holds padding or a byte outside the alphabet.
    fn group_error(group: &[u8], g: usize) -> String {
        let (k, &c) = group
            .iter()
            .enumerate()
            .find(|&(_, &c)| DECODE[usize::from(c)] & INVALID != 0)
            .expect("the group holds an invalid byte");
        if c == b'=' {
            format!("misplaced base64 padding in group {g}")
        } else {
            format!(
                "invalid base64 symbol {:?} at offset {}",
                char::from(c),
                4 * g + k
            )
        }
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
