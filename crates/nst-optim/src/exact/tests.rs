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

/// RFC 4648 §10 test vectors.
#[test]
fn base64_matches_the_rfc_test_vectors() {
    for (plain, coded) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64::encode(plain.as_bytes()), coded);
        assert_eq!(base64::decode(coded).unwrap(), plain.as_bytes());
    }
    // Every byte value, at every alignment.
    let all: Vec<u8> = (0..=255).collect();
    for start in 0..3 {
        let bytes = &all[start..];
        assert_eq!(base64::decode(&base64::encode(bytes)).unwrap(), bytes);
    }
}

#[test]
fn base64_rejects_malformed_input() {
    for bad in [
        "Zg=",      // length not a multiple of 4
        "Zg==Zg==", // padding before the end
        "Z===",     // too much padding
        "Zm9*",     // symbol outside the alphabet
        "Zm=v",     // '=' inside a group
        "Zh==",     // non-zero trailing bits ("Zg==" is the canonical form)
        "Zm9w YQ==",
        "Zm9=Zm9v", // padding inside an inner group
        "Zm*vZm9v", // invalid symbol in an inner group
        "Zm9vZ*==", // invalid symbol in the last group
    ] {
        assert!(base64::decode(bad).is_err(), "{bad:?} was accepted");
    }
}

#[test]
fn vectors_are_base64_of_little_endian_bytes() {
    let p = Probe {
        a: 0.0,
        b: 0.0,
        v: vec![1.0, -2.0],
    };
    let json = serde_json::to_value(&p).unwrap();
    // 1.0 = 0x3f800000, −2.0 = 0xc0000000, little-endian: 00 00 80 3f 00 00 00 c0.
    assert_eq!(json["v"], "AACAPwAAAMA=");
}

#[test]
fn vectors_also_read_the_older_u32_form_and_raw_bytes() {
    let q: Probe =
        serde_json::from_str(r#"{"a": 0, "b": 0, "v": [1065353216, 3221225472]}"#).unwrap();
    assert_eq!(q.v, [1.0, -2.0]);

    let bytes = [0_u8, 0, 0x80, 0x3f];
    let d = serde::de::value::BytesDeserializer::<serde::de::value::Error>::new(&bytes);
    assert_eq!(vec_f32_bits::deserialize(d).unwrap(), [1.0]);
}

#[test]
fn vectors_reject_a_partial_f32() {
    // "AACA" is the 3 bytes 00 00 80.
    let err = serde_json::from_str::<Probe>(r#"{"a": 0, "b": 0, "v": "AACA"}"#).unwrap_err();
    assert!(err.to_string().contains("whole number of f32"), "{err}");
    let err = serde_json::from_str::<Probe>(r#"{"a": 0, "b": 0, "v": "AAC*"}"#).unwrap_err();
    assert!(err.to_string().contains("invalid base64 symbol"), "{err}");
}

#[test]
fn vectors_round_trip_through_a_reader_too() {
    // `from_reader` hands the visitor a transient string, `from_str` a borrowed one.
    let p = Probe {
        a: 1.0,
        b: 2.0,
        v: (0..1000).map(|k| (k as f32 * 0.37).sin() * 1e3).collect(),
    };
    let json = serde_json::to_vec(&p).unwrap();
    let q: Probe = serde_json::from_reader(json.as_slice()).unwrap();
    assert_eq!(
        p.v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        q.v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
}
