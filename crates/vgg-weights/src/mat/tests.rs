//! Unit tests of the MAT reader's low-level pieces: tags, small elements, headers, Level-4 detection.

use super::*;

/// A 128-byte Level-5 header for `endian`.
fn header(endian: Endian) -> Vec<u8> {
    let mut h = vec![b' '; 116];
    h[..10].copy_from_slice(b"MATLAB 5.0");
    h.extend_from_slice(&[0; 8]);
    match endian {
        Endian::Little => {
            h.extend_from_slice(&0x0100u16.to_le_bytes());
            h.extend_from_slice(b"IM");
        }
        Endian::Big => {
            h.extend_from_slice(&0x0100u16.to_be_bytes());
            h.extend_from_slice(b"MI");
        }
    }
    h
}

/// Appends a u32 in `endian`.
fn put(out: &mut Vec<u8>, endian: Endian, v: u32) {
    out.extend_from_slice(&match endian {
        Endian::Little => v.to_le_bytes(),
        Endian::Big => v.to_be_bytes(),
    });
}

/// A 1×2 int16 variable `v` = [-2, 300], data as a small element packed into its tag.
fn small_element_file(endian: Endian) -> Vec<u8> {
    let mut m = Vec::new();
    put(&mut m, endian, 6); // array flags: miUINT32, 8 bytes
    put(&mut m, endian, 8);
    put(&mut m, endian, 10); // class int16
    put(&mut m, endian, 0);
    put(&mut m, endian, 5); // dims: miINT32, 8 bytes
    put(&mut m, endian, 8);
    put(&mut m, endian, 1);
    put(&mut m, endian, 2);
    put(&mut m, endian, (1 << 16) | 1); // name: small miINT8 of 1 byte
    m.extend_from_slice(b"v\0\0\0");
    put(&mut m, endian, (4 << 16) | 3); // data: small miINT16 of 4 bytes
    for x in [-2i16, 300] {
        m.extend_from_slice(&match endian {
            Endian::Little => x.to_le_bytes(),
            Endian::Big => x.to_be_bytes(),
        });
    }
    let mut f = header(endian);
    put(&mut f, endian, 14);
    put(&mut f, endian, u32::try_from(m.len()).unwrap());
    f.extend_from_slice(&m);
    f
}

#[test]
fn small_elements_in_both_byte_orders() {
    for endian in [Endian::Little, Endian::Big] {
        let file = MatFile::from_bytes(small_element_file(endian)).unwrap();
        assert_eq!(file.endian(), endian);
        assert_eq!(file.header_text(), "MATLAB 5.0");
        let info = &file.variables()[0];
        assert_eq!(
            (info.name.as_str(), info.class, &info.dims[..]),
            ("v", Some(Class::Int16), &[1usize, 2][..])
        );
        let v = file.decode("v").unwrap();
        let n = v.as_numeric().unwrap();
        assert_eq!(n.real().mi_type(), MiType::Int16);
        assert_eq!(n.to_f64_vec(), [-2.0, 300.0]);
        assert_eq!(n.to_f32_vec(), [-2.0, 300.0]);
    }
}

#[test]
fn a_small_element_larger_than_four_bytes_is_malformed() {
    let mut f = small_element_file(Endian::Little);
    let at = f.len() - 8;
    f[at..at + 4].copy_from_slice(&((5u32 << 16) | 3).to_le_bytes());
    let file = MatFile::from_bytes(f).unwrap();
    assert!(matches!(file.decode("v"), Err(Error::Malformed { .. })));
}

#[test]
fn element_count_must_match_dimensions() {
    let mut f = small_element_file(Endian::Little);
    // dims [1 2] → [1 3]: 3 elements wanted, 2 stored.
    let at = 128 + 8 + 16 + 12;
    f[at..at + 4].copy_from_slice(&3u32.to_le_bytes());
    let file = MatFile::from_bytes(f).unwrap();
    let err = file.decode("v").unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err}");
}

#[test]
fn level4_detection() {
    let mut l4 = Vec::new();
    for w in [1000u32, 2, 3, 0, 4] {
        l4.extend_from_slice(&w.to_be_bytes());
    }
    assert!(looks_like_level4(&l4));
    assert!(!looks_like_level4(&header(Endian::Little)));
    assert!(!looks_like_level4(b"short"));
    assert!(matches!(MatFile::from_bytes(l4), Err(Error::Level4 { .. })));
}

#[test]
fn empty_and_headerless_input() {
    assert!(matches!(
        MatFile::from_bytes(Vec::new()),
        Err(Error::Truncated { .. })
    ));
    assert!(matches!(
        MatFile::from_bytes(vec![b'x'; 200]),
        Err(Error::BadHeader { .. })
    ));
    let only_header = MatFile::from_bytes(header(Endian::Big)).unwrap();
    assert!(only_header.variables().is_empty());
    let err = only_header.decode("x").unwrap_err();
    assert!(
        matches!(&err, Error::MissingVariable { name, .. } if name == "x"),
        "{err}"
    );
}

#[test]
fn pad8_rounds_up() {
    assert_eq!([0, 1, 7, 8, 9].map(pad8), [0, 8, 8, 8, 16]);
}
