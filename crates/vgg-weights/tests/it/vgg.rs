//! VGG extraction: Octave-written files, the format variants MatConvNet used over the years, and the
//! error paths, on files made with our writer.

use ndarray::{Array1, Array4};
use vgg_weights::mat::{self, Class};
use vgg_weights::write::{Array, Compression, to_bytes};
use vgg_weights::{Error, LayerKind, Layout, LoadOptions, Pad, PoolMethod, load, load_bytes};

use crate::data;

#[test]
fn octave_files_load_with_exact_axis_order() {
    // mk.m: W = single(reshape(0:71, [3 3 2 4])), so W(y, x, c, k) = y + 3x + 9c + 18k (0-based).
    for file in ["octave_v6.mat", "octave_v7.mat"] {
        let model = load(data(file), &LoadOptions::default()).unwrap();
        assert_eq!(model.layout, Layout::Beta16);
        assert_eq!(model.mean_rgb, Some([123.68, 116.779, 103.939]));
        assert_eq!(model.layers.len(), 2);
        assert_eq!(model.layers[1].kind, LayerKind::Relu);
        let LayerKind::Conv(conv) = &model.layers[0].kind else {
            panic!("conv1_1")
        };
        assert_eq!(conv.weights.shape(), &[4, 2, 3, 3]);
        for ((k, c, y, x), &w) in conv.weights.indexed_iter() {
            assert_eq!(w, (y + 3 * x + 9 * c + 18 * k) as f32, "W[{k},{c},{y},{x}]");
        }
        assert_eq!(conv.bias.to_vec(), [0.5, 1.5, 2.5, 3.5]);
        assert_eq!((conv.stride, conv.pad), ([1, 1], Pad::uniform(1)));
    }
}

/// Column-major `[kh kw c_in c_out]` filters with `W(y,x,c,k) = y + 10x + 100c + 1000k`.
fn filters(kh: usize, kw: usize, c_in: usize, c_out: usize) -> Array {
    let mut data = Vec::new();
    for k in 0..c_out {
        for c in 0..c_in {
            for x in 0..kw {
                for y in 0..kh {
                    data.push((y + 10 * x + 100 * c + 1000 * k) as f32);
                }
            }
        }
    }
    Array::Single {
        dims: vec![kh, kw, c_in, c_out],
        data,
    }
}

fn single(dims: &[usize], data: Vec<f32>) -> Array {
    Array::Single {
        dims: dims.to_vec(),
        data,
    }
}

fn layer(fields: Vec<(&str, Array)>) -> Array {
    Array::struct1(fields)
}

fn conv(name: &str, extra: Vec<(&str, Array)>) -> Array {
    let mut f = vec![
        ("name", Array::string(name)),
        ("type", Array::string("conv")),
    ];
    f.extend(extra);
    layer(f)
}

fn file(layers: Vec<Array>, extra: Vec<(&str, Array)>) -> Vec<u8> {
    let layers = Array::cell_row(layers);
    let mut vars: Vec<(&str, &Array)> = vec![("layers", &layers)];
    for (n, a) in &extra {
        vars.push((n, a));
    }
    to_bytes(&vars, Compression::None).unwrap()
}

fn weights(w: Array, b: Array) -> (&'static str, Array) {
    ("weights", Array::cell_row(vec![w, b]))
}

#[test]
fn old_filters_biases_fields_column_biases_and_geometry_forms() {
    let bytes = file(
        vec![
            // Older MatConvNet: `filters` and `biases` fields, biases K×1, scalar pad and stride.
            conv(
                "c1",
                vec![
                    ("filters", filters(3, 2, 1, 2)),
                    ("biases", single(&[2, 1], vec![7.0, 8.0])),
                    ("pad", Array::scalar(2.0)),
                    ("stride", Array::scalar(3.0)),
                ],
            ),
            // A 2-vector pad is [vertical horizontal]; stride [y x]; a trailing singleton c_out
            // dimension dropped by MATLAB.
            conv(
                "c2",
                vec![
                    weights(
                        Array::Single {
                            dims: vec![1, 3, 2],
                            data: (0..6).map(|i| i as f32).collect(),
                        },
                        single(&[1, 1], vec![0.25]),
                    ),
                    ("pad", Array::row(&[1.0, 2.0])),
                    ("stride", Array::row(&[2.0, 1.0])),
                ],
            ),
            conv(
                "c3",
                vec![
                    weights(filters(1, 1, 1, 2), single(&[0, 0], vec![])),
                    ("pad", Array::row(&[0.0, 1.0, 2.0, 3.0])),
                ],
            ),
            layer(vec![
                ("name", Array::string("p")),
                ("type", Array::string("pool")),
                ("method", Array::string("avg")),
                ("pool", Array::scalar(3.0)),
                ("stride", Array::row(&[2.0, 1.0])),
            ]),
            layer(vec![
                ("name", Array::string("drop")),
                ("type", Array::string("dropout")),
            ]),
        ],
        vec![(
            "normalization",
            Array::struct1(vec![(
                "averageImage",
                Array::Double {
                    dims: vec![3, 1],
                    data: vec![1.0, 2.0, 3.0],
                },
            )]),
        )],
    );
    let model = load_bytes(bytes, &LoadOptions::default()).unwrap();
    assert_eq!(model.mean_rgb, Some([1.0, 2.0, 3.0]));
    let convs: Vec<_> = model
        .layers
        .iter()
        .filter_map(|l| {
            if let LayerKind::Conv(c) = &l.kind {
                Some(c)
            } else {
                None
            }
        })
        .collect();
    let c1 = convs[0];
    assert_eq!(c1.weights.shape(), &[2, 1, 3, 2]);
    assert_eq!(c1.weights[[1, 0, 2, 1]], 1012.0);
    assert_eq!(c1.bias.to_vec(), [7.0, 8.0]);
    assert_eq!((c1.pad, c1.stride), (Pad::uniform(2), [3, 3]));
    let c2 = convs[1];
    assert_eq!(c2.weights.shape(), &[1, 2, 1, 3]);
    // Column-major [1 3 2]: element (y=0, x, c) is at x + 3c.
    assert_eq!(
        c2.weights.iter().copied().collect::<Vec<_>>(),
        [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    );
    assert_eq!(
        c2.pad,
        Pad {
            top: 1,
            bottom: 1,
            left: 2,
            right: 2
        }
    );
    assert_eq!(c2.stride, [2, 1]);
    let c3 = convs[2];
    assert_eq!(c3.bias, Array1::<f32>::zeros(2));
    assert_eq!(
        c3.pad,
        Pad {
            top: 0,
            bottom: 1,
            left: 2,
            right: 3
        }
    );
    let LayerKind::Pool(p) = &model.layers[3].kind else {
        panic!("pool")
    };
    assert_eq!(
        (p.method, p.size, p.stride, p.pad),
        (PoolMethod::Avg, [3, 3], [2, 1], Pad::default())
    );
    assert_eq!(
        model.layers[4].kind,
        LayerKind::Other {
            type_name: "dropout".into()
        }
    );
}

#[test]
fn average_image_is_averaged_per_channel() {
    // A 2×2×3 image, column-major: channel c holds 4 values around 10(c+1).
    let data: Vec<f64> = (0..3)
        .flat_map(|c| [-1.0, 1.0, -2.0, 2.0].map(|d| 10.0 * f64::from(c + 1) + d))
        .collect();
    let meta = Array::struct1(vec![(
        "normalization",
        Array::struct1(vec![(
            "averageImage",
            Array::Double {
                dims: vec![2, 2, 3],
                data,
            },
        )]),
    )]);
    let bytes = file(
        vec![conv(
            "c",
            vec![weights(filters(1, 1, 3, 1), single(&[1, 1], vec![0.0]))],
        )],
        vec![("meta", meta)],
    );
    let model = load_bytes(bytes, &LoadOptions::default()).unwrap();
    assert_eq!(model.layout, Layout::Current);
    assert_eq!(model.mean_rgb, Some([10.0, 20.0, 30.0]));
}

#[track_caller]
fn load_err(bytes: Vec<u8>) -> Error {
    load_bytes(bytes, &LoadOptions::default()).unwrap_err()
}

#[test]
fn error_paths_give_specific_errors_naming_the_layer() {
    let good_w = || weights(filters(3, 3, 1, 2), single(&[1, 2], vec![0.0, 1.0]));
    // Missing weights.
    let e = load_err(file(vec![conv("conv1", vec![])], vec![]));
    assert!(
        matches!(&e, Error::MissingField { field, context, .. } if field == "weights" && context.contains("conv1")),
        "{e}"
    );
    assert!(e.to_string().contains("<memory>"), "{e}");
    // Missing type.
    let e = load_err(file(
        vec![layer(vec![("name", Array::string("x"))])],
        vec![],
    ));
    assert!(
        matches!(&e, Error::MissingField { field, .. } if field == "type"),
        "{e}"
    );
    // Wrong class: weights as a char array.
    let e = load_err(file(
        vec![conv("conv1", vec![("weights", Array::string("oops"))])],
        vec![],
    ));
    assert!(
        matches!(&e, Error::WrongClass { found: Class::Char, what, .. } if what.contains("conv1")),
        "{e}"
    );
    // Wrong shape: 3 biases for 2 filters.
    let e = load_err(file(
        vec![conv(
            "conv1",
            vec![weights(filters(3, 3, 1, 2), single(&[1, 3], vec![0.0; 3]))],
        )],
        vec![],
    ));
    assert!(
        matches!(&e, Error::WrongShape { what, .. } if what.contains("conv1")),
        "{e}"
    );
    // Wrong shape: a 3-element pad, a fractional stride.
    let e = load_err(file(
        vec![conv(
            "conv1",
            vec![good_w(), ("pad", Array::row(&[1.0, 1.0, 1.0]))],
        )],
        vec![],
    ));
    assert!(matches!(e, Error::WrongShape { .. }), "{e}");
    let e = load_err(file(
        vec![conv(
            "conv1",
            vec![good_w(), ("stride", Array::scalar(1.5))],
        )],
        vec![],
    ));
    assert!(matches!(e, Error::WrongShape { .. }), "{e}");
    // Not a chain: no layers, duplicate names, no convolution.
    let e = load_err(file(vec![], vec![]));
    assert!(matches!(e, Error::NotAChain { .. }), "{e}");
    let e = load_err(file(
        vec![conv("a", vec![good_w()]), conv("a", vec![good_w()])],
        vec![],
    ));
    assert!(
        matches!(&e, Error::NotAChain { layer, .. } if layer == "a"),
        "{e}"
    );
    let relu = layer(vec![
        ("name", Array::string("r")),
        ("type", Array::string("relu")),
    ]);
    let e = load_err(file(vec![relu.clone()], vec![]));
    assert!(matches!(e, Error::NotAChain { .. }), "{e}");
    // `layers` not a cell.
    let bytes = to_bytes(&[("layers", &Array::scalar(1.0))], Compression::None).unwrap();
    assert!(matches!(
        load_err(bytes),
        Error::WrongClass {
            found: Class::Double,
            ..
        }
    ));
    // No `layers` variable at all.
    let bytes = to_bytes(&[("other", &Array::scalar(1.0))], Compression::Zlib).unwrap();
    let e = load_err(bytes);
    assert!(
        matches!(&e, Error::Mat(mat::Error::MissingVariable { name, available, .. }) if name == "layers" && available == &["other"]),
        "{e}"
    );
    // Unsupported: dilation, leaky ReLU.
    let e = load_err(file(
        vec![conv(
            "conv1",
            vec![good_w(), ("dilate", Array::scalar(2.0))],
        )],
        vec![],
    ));
    assert!(
        matches!(&e, Error::UnsupportedLayer { layer, .. } if layer == "conv1"),
        "{e}"
    );
    let leaky = layer(vec![
        ("name", Array::string("r")),
        ("type", Array::string("relu")),
        ("leak", Array::scalar(0.1)),
    ]);
    let e = load_err(file(vec![conv("conv1", vec![good_w()]), leaky], vec![]));
    assert!(
        matches!(&e, Error::UnsupportedLayer { layer, .. } if layer == "r"),
        "{e}"
    );
    // An unknown last layer lists the available names.
    let bytes = file(vec![conv("conv1", vec![good_w()]), relu], vec![]);
    let e = load_bytes(bytes, &LoadOptions::up_to("conv9")).unwrap_err();
    assert!(
        matches!(&e, Error::UnknownLayer { name, available, .. } if name == "conv9" && available == &["conv1", "r"]),
        "{e}"
    );
    assert!(e.to_string().contains("conv1, r"), "{e}");
}

#[test]
fn v73_level4_truncated_and_bad_headers_are_refused() {
    let good = file(
        vec![conv(
            "c",
            vec![weights(filters(1, 1, 1, 1), single(&[1, 1], vec![0.0]))],
        )],
        vec![],
    );
    // MAT 7.3: version 0x0200 in a Level-5-style header (the rest is an HDF5 file).
    let mut v73 = good.clone();
    v73[124..126].copy_from_slice(&0x0200u16.to_le_bytes());
    let e = load_err(v73);
    assert!(matches!(e, Error::Mat(mat::Error::V73 { .. })), "{e}");
    assert!(
        e.to_string().contains("HDF5") && e.to_string().contains("-v7"),
        "{e}"
    );
    // A Level-4 file: header MOPT = 0000 (little-endian double), 1×1, real, name "x".
    let mut l4 = Vec::new();
    for w in [0u32, 1, 1, 0, 2] {
        l4.extend_from_slice(&w.to_le_bytes());
    }
    l4.extend_from_slice(b"x\0");
    l4.extend_from_slice(&1.0f64.to_le_bytes());
    assert!(matches!(
        load_err(l4),
        Error::Mat(mat::Error::Level4 { .. })
    ));
    // Truncated: inside the header, inside a tag, inside data.
    assert!(matches!(
        load_err(good[..100].to_vec()),
        Error::Mat(mat::Error::Truncated { .. })
    ));
    assert!(matches!(
        load_err(good[..132].to_vec()),
        Error::Mat(mat::Error::Truncated { .. })
    ));
    let e = load_err(good[..good.len() - 8].to_vec());
    assert!(
        matches!(e, Error::Mat(mat::Error::SizeTooLarge { .. })),
        "{e}"
    );
    // A size field far beyond the file: refused before allocating.
    let mut huge = good.clone();
    huge[132..136].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    let e = load_err(huge);
    assert!(
        matches!(&e, Error::Mat(mat::Error::SizeTooLarge { at, declared: 0xffff_fff0, .. }) if at.offset == 132),
        "{e}"
    );
    assert!(e.to_string().contains("byte 132"), "{e}");
    // Bad endian indicator.
    let mut bad = good;
    bad[126..128].copy_from_slice(b"XX");
    assert!(matches!(
        load_err(bad),
        Error::Mat(mat::Error::BadHeader { .. })
    ));
}

#[test]
fn a_zlib_bomb_is_refused_before_allocating() {
    // A compressed element declaring 4 GB of output from a few bytes of input.
    let mut bytes = to_bytes(&[("x", &Array::scalar(1.0))], Compression::None).unwrap();
    bytes.truncate(128);
    let mut inner = Vec::new();
    inner.extend_from_slice(&14u32.to_le_bytes());
    inner.extend_from_slice(&0xffff_0000u32.to_le_bytes());
    inner.extend_from_slice(&[0u8; 64]);
    let z = {
        use std::io::Write as _;
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&inner).unwrap();
        enc.finish().unwrap()
    };
    bytes.extend_from_slice(&15u32.to_le_bytes());
    bytes.extend_from_slice(&(z.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&z);
    let (result, largest) = crate::alloc::largest_allocation(|| {
        let file = mat::MatFile::from_bytes(bytes.clone());
        file.and_then(|f| f.decode_info(&f.variables()[0].clone()).map(|_| ()))
    });
    assert!(
        matches!(
            result,
            Err(mat::Error::Decompress { .. }) | Err(mat::Error::Malformed { .. })
        ),
        "{result:?}"
    );
    assert!(largest < 1 << 16, "allocated {largest} bytes");
}

#[test]
fn loading_up_to_a_layer_converts_nothing_after_it() {
    // The fake beta16 file: up to conv1_2 the largest allocation is far below the file size.
    let path = data("fake_vgg19_beta16_plain.mat");
    let size = std::fs::metadata(&path).unwrap().len() as usize;
    let (model, largest) =
        crate::alloc::largest_allocation(|| load(&path, &LoadOptions::up_to("conv1_2")).unwrap());
    assert_eq!(model.layers.len(), 3);
    assert!(
        largest < size / 8,
        "largest allocation {largest} for a {size}-byte file"
    );
    // And the weights are right.
    let LayerKind::Conv(c) = &model.layers[2].kind else {
        panic!()
    };
    assert_eq!(c.weights[[3, 2, 1, 0]], 2e4 + 1.0 + 200.0 + 3000.0);
    let _: &Array4<f32> = &c.weights;
}

#[test]
fn compressed_layers_are_inflated_only_up_to_the_last_layer() {
    // A small first layer followed by a 1 MB one, compressed: loading the first layer must not
    // decompress the second.
    let mut rng = 1u32;
    let mut noise = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                rng = rng.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (rng >> 8) as f32
            })
            .collect()
    };
    let big = Array::Single {
        dims: vec![2, 2, 256, 256],
        data: noise(2 * 2 * 256 * 256),
    };
    let layers = Array::cell_row(vec![
        conv(
            "conv1",
            vec![weights(
                filters(3, 3, 3, 2),
                single(&[1, 2], vec![0.0, 1.0]),
            )],
        ),
        layer(vec![
            ("name", Array::string("relu1")),
            ("type", Array::string("relu")),
        ]),
        conv("fc", vec![weights(big, single(&[1, 256], noise(256)))]),
    ]);
    let bytes = to_bytes(&[("layers", &layers)], Compression::Zlib).unwrap();
    assert!(bytes.len() > 1 << 19, "random weights do not compress");
    let file = mat::MatFile::from_bytes(bytes).unwrap();
    let (model, largest, total) = crate::alloc::allocation_stats(|| {
        vgg_weights::from_mat_file(&file, &LoadOptions::up_to("relu1")).unwrap()
    });
    assert_eq!(model.layers.len(), 2);
    assert!(
        total < 200_000 && largest < 100_000,
        "allocated {total} bytes in all, {largest} at most"
    );
    let (whole, largest, _) = crate::alloc::allocation_stats(|| file.decode("layers").unwrap());
    assert_eq!(whole.numel(), 3);
    assert!(
        largest > 1 << 20,
        "decoding the whole variable allocated at most {largest} bytes"
    );
    let all = vgg_weights::from_mat_file(&file, &LoadOptions::default()).unwrap();
    let LayerKind::Conv(fc) = &all.layers[2].kind else {
        panic!("fc")
    };
    assert_eq!(fc.weights.shape(), &[256, 256, 2, 2]);
}

#[test]
fn visiting_a_cell_stops_early_and_checks_the_stream_when_it_does_not() {
    let cell = Array::cell_row((0..5).map(|i| Array::scalar(f64::from(i))).collect());
    for compression in [Compression::None, Compression::Zlib] {
        let bytes = to_bytes(&[("c", &cell), ("s", &Array::scalar(1.0))], compression).unwrap();
        let file = mat::MatFile::from_bytes(bytes).unwrap();
        let mut seen = Vec::new();
        let n = file
            .visit_cell("c", |i, v| {
                seen.push((i, v.as_numeric().unwrap().scalar().unwrap()));
                if i == 2 {
                    std::ops::ControlFlow::Break(())
                } else {
                    std::ops::ControlFlow::Continue(())
                }
            })
            .unwrap();
        assert_eq!((n, seen), (3, vec![(0, 0.0), (1, 1.0), (2, 2.0)]));
        assert_eq!(
            file.visit_cell("c", |_, _| std::ops::ControlFlow::Continue(()))
                .unwrap(),
            5
        );
        let e = file
            .visit_cell("s", |_, _| std::ops::ControlFlow::Continue(()))
            .unwrap_err();
        assert!(matches!(e, mat::Error::Malformed { .. }), "{e}");
    }
    // A compressed cell whose stream lacks its checksum: the first elements still read, a full visit
    // fails.
    let bytes = to_bytes(&[("c", &cell)], Compression::Zlib).unwrap();
    let mut cut = bytes[..bytes.len() - 4].to_vec();
    let len = u32::from_le_bytes(cut[132..136].try_into().unwrap()) - 4;
    cut[132..136].copy_from_slice(&len.to_le_bytes());
    let file = mat::MatFile::from_bytes(cut).unwrap();
    assert_eq!(
        file.visit_cell("c", |_, _| std::ops::ControlFlow::Break(()))
            .unwrap(),
        1
    );
    let e = file
        .visit_cell("c", |_, _| std::ops::ControlFlow::Continue(()))
        .unwrap_err();
    assert!(matches!(e, mat::Error::Decompress { .. }), "{e}");
}

#[test]
fn a_cell_whose_first_element_fills_the_variable_is_truncated_not_a_panic() {
    // A 1×2 cell whose first element takes all the declared bytes: the second element's tag is
    // missing. Both the whole decode and the streamed walk must report it.
    let cell = Array::cell_row(vec![Array::row(&[1.0; 8]), Array::scalar(2.0)]);
    let plain = to_bytes(&[("c", &cell)], Compression::None).unwrap();
    // Drop the second element: tag 8, flags 16, dims 16, empty name 8, one double 16 = 64 bytes.
    let second = 64;
    let mut element = plain[128..plain.len() - second].to_vec();
    let size = u32::from_le_bytes(element[4..8].try_into().unwrap()) - second as u32;
    element[4..8].copy_from_slice(&size.to_le_bytes());
    for compression in [Compression::None, Compression::Zlib] {
        let mut bytes = plain[..128].to_vec();
        match compression {
            Compression::None => bytes.extend_from_slice(&element),
            Compression::Zlib => {
                use std::io::Write as _;
                let mut enc =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                enc.write_all(&element).unwrap();
                let z = enc.finish().unwrap();
                bytes.extend_from_slice(&15u32.to_le_bytes());
                bytes.extend_from_slice(&(z.len() as u32).to_le_bytes());
                bytes.extend_from_slice(&z);
            }
        }
        let file = mat::MatFile::from_bytes(bytes).unwrap();
        let e = file.decode("c").unwrap_err();
        assert!(
            matches!(e, mat::Error::Truncated { .. }),
            "{compression:?}: {e}"
        );
        let mut seen = 0;
        let e = file
            .visit_cell("c", |_, _| {
                seen += 1;
                std::ops::ControlFlow::Continue(())
            })
            .unwrap_err();
        assert!(
            matches!(e, mat::Error::Truncated { .. }),
            "{compression:?}: {e}"
        );
        assert_eq!(seen, 1);
    }
}
