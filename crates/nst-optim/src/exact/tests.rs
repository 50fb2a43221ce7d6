//! The exact serde helpers round-trip every float bit for bit through serde_json.

use serde::{Deserialize, Serialize};

use super::*;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Probe {
    #[serde(with = "f64_exact")]
    a: f64,
    #[serde(with = "f32_exact")]
    b: f32,
    #[serde(with = "vec_f32_bits")]
    v: Vec<f32>,
}

/// SplitMix64: a seeded stream of 64-bit patterns, no dependency needed.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[test]
fn random_bit_patterns_round_trip_exactly_through_serde_json() {
    let mut seed = 42_u64;
    for k in 0..50_000 {
        let bits = splitmix(&mut seed);
        // Half random bit patterns (all magnitudes, subnormals included), half ordinary values.
        let a = if k % 2 == 0 {
            f64::from_bits(bits)
        } else {
            (bits >> 11) as f64 / (1u64 << 53) as f64 * 2000.0 - 1000.0
        };
        let b = f32::from_bits((bits >> 32) as u32);
        let v: Vec<f32> = vec![
            f32::from_bits(bits as u32),
            b,
            f32::NAN,
            -0.0,
            f32::INFINITY,
        ];
        let p = Probe { a, b, v };
        let json = serde_json::to_string(&p).unwrap();
        let q: Probe = serde_json::from_str(&json).unwrap();
        // NaN scalars stay NaN (payload not kept, as documented); everything else keeps its bits.
        if p.a.is_nan() {
            assert!(q.a.is_nan(), "{json}");
        } else {
            assert_eq!(p.a.to_bits(), q.a.to_bits(), "{json}");
        }
        if p.b.is_nan() {
            assert!(q.b.is_nan(), "{json}");
        } else {
            assert_eq!(p.b.to_bits(), q.b.to_bits(), "{json}");
        }
        assert_eq!(
            p.v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            q.v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }
}

#[test]
fn scalars_also_read_plain_numbers_and_reject_garbage() {
    let q: Probe = serde_json::from_str(r#"{"a": 1.5, "b": 2, "v": []}"#).unwrap();
    assert_eq!((q.a, q.b), (1.5, 2.0));
    let err = serde_json::from_str::<Probe>(r#"{"a": "one", "b": 2, "v": []}"#).unwrap_err();
    assert!(err.to_string().contains("invalid f64"), "{err}");
}
