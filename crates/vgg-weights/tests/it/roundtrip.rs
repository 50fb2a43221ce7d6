//! The writer: write → load gives back the same model, in both layouts, plain and compressed; the
//! generic writer's arrays read back through the reader.

use ndarray::{Array1, Array4};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use vgg_weights::mat::{Class, MatFile};
use vgg_weights::write::{Array, Compression, to_bytes, write_mat, write_simplenn};
use vgg_weights::{
    Conv, Layer, LayerKind, Layout, LoadOptions, Pad, Pool, PoolMethod, VggModel, load,
};

/// A per-test temporary directory, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("vgg-weights-it-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A random VGG-shaped model: conv/relu blocks with pools, odd kernel sizes, every padding form.
fn random_model(rng: &mut SmallRng, layout: Layout) -> VggModel {
    let mut layers = Vec::new();
    let mut c_in = 3;
    for block in 1..=3 {
        for i in 1..=2 {
            let (c_out, kh, kw) = (
                rng.random_range(1..5),
                rng.random_range(1..4),
                rng.random_range(1..4),
            );
            let weights =
                Array4::from_shape_fn((c_out, c_in, kh, kw), |_| rng.random_range(-1.0f32..1.0));
            let bias = Array1::from_shape_fn(c_out, |_| rng.random_range(-1.0f32..1.0));
            let pad = Pad {
                top: rng.random_range(0..3),
                bottom: rng.random_range(0..3),
                left: rng.random_range(0..3),
                right: rng.random_range(0..3),
            };
            let stride = [rng.random_range(1..3), rng.random_range(1..3)];
            layers.push(Layer {
                name: format!("conv{block}_{i}"),
                kind: LayerKind::Conv(Conv {
                    weights,
                    bias,
                    stride,
                    pad,
                }),
            });
            layers.push(Layer {
                name: format!("relu{block}_{i}"),
                kind: LayerKind::Relu,
            });
            c_in = c_out;
        }
        let method = if block == 2 {
            PoolMethod::Avg
        } else {
            PoolMethod::Max
        };
        layers.push(Layer {
            name: format!("pool{block}"),
            kind: LayerKind::Pool(Pool {
                method,
                size: [2, 3],
                stride: [2, 1],
                pad: Pad {
                    top: 0,
                    bottom: 1,
                    left: 0,
                    right: 1,
                },
            }),
        });
    }
    layers.push(Layer {
        name: "prob".into(),
        kind: LayerKind::Other {
            type_name: "softmax".into(),
        },
    });
    VggModel {
        layout,
        mean_rgb: Some([rng.random(), rng.random(), rng.random()]),
        layers,
    }
}

#[test]
fn write_then_load_gives_the_same_model_in_every_layout() {
    let dir = TempDir::new("roundtrip");
    let mut rng = SmallRng::seed_from_u64(7);
    for layout in [Layout::Beta16, Layout::Current] {
        for compression in [Compression::None, Compression::Zlib] {
            let model = random_model(&mut rng, layout);
            let path = dir.0.join(format!("{layout:?}-{compression:?}.mat"));
            write_simplenn(&path, &model, layout, compression).unwrap();
            let loaded = load(&path, &LoadOptions::default()).unwrap();
            assert_eq!(loaded, model, "{layout:?} {compression:?}");
            let partial = load(&path, &LoadOptions::up_to("relu2_1")).unwrap();
            assert_eq!(
                partial.layers[..],
                model.layers[..=model.index_of("relu2_1").unwrap()]
            );
            // The file's variables are the layout's, compressed as asked.
            let file = MatFile::open(&path).unwrap();
            let names: Vec<_> = file.variables().iter().map(|v| v.name.as_str()).collect();
            assert_eq!(
                names,
                if layout == Layout::Beta16 {
                    ["layers", "normalization"]
                } else {
                    ["layers", "meta"]
                }
            );
            assert!(
                file.variables()
                    .iter()
                    .all(|v| v.compressed == (compression == Compression::Zlib))
            );
        }
    }
    // Overwriting is atomic and leaves no temporary file behind.
    let entries = std::fs::read_dir(&dir.0).unwrap().count();
    assert_eq!(entries, 4);
}

#[test]
fn weights_are_stored_in_matconvnet_order() {
    // The writer must store [kh kw c_in c_out] column-major: check it through the raw reader.
    let dir = TempDir::new("order");
    let weights = Array4::from_shape_fn((2, 3, 4, 5), |(k, c, y, x)| {
        (1000 * k + 100 * c + 10 * x + y) as f32
    });
    let model = VggModel {
        layout: Layout::Beta16,
        mean_rgb: None,
        layers: vec![Layer {
            name: "c".into(),
            kind: LayerKind::Conv(Conv {
                weights,
                bias: Array1::zeros(2),
                stride: [1, 1],
                pad: Pad::default(),
            }),
        }],
    };
    let path = dir.0.join("w.mat");
    write_simplenn(&path, &model, Layout::Beta16, Compression::None).unwrap();
    let file = MatFile::open(&path).unwrap();
    let layers = file.decode("layers").unwrap();
    let w = &layers.as_cell().unwrap().elems()[0]
        .field("weights")
        .unwrap()
        .as_cell()
        .unwrap()
        .elems()[0];
    let n = w.as_numeric().unwrap();
    assert_eq!(
        (n.class(), n.dims()),
        (Class::Single, &[4usize, 5, 3, 2][..])
    );
    let data = n.to_f32_vec();
    let (kh, kw, c_in) = (4, 5, 3);
    for (i, &v) in data.iter().enumerate() {
        let (y, x, c, k) = (
            i % kh,
            (i / kh) % kw,
            (i / (kh * kw)) % c_in,
            i / (kh * kw * c_in),
        );
        assert_eq!(v, (1000 * k + 100 * c + 10 * x + y) as f32);
    }
    assert_eq!(load(&path, &LoadOptions::default()).unwrap().mean_rgb, None);
}

#[test]
fn generic_arrays_round_trip() {
    let dir = TempDir::new("arrays");
    let s = Array::Struct {
        dims: vec![2, 1],
        fields: vec!["a".into(), "bb".into()],
        values: vec![
            Array::scalar(1.0),
            Array::string("x"),
            Array::string("héllo"),
            Array::cell_row(vec![]),
        ],
    };
    let vars = [
        (
            "d",
            Array::Double {
                dims: vec![2, 3],
                data: vec![1., 2., 3., 4., 5., 6.],
            },
        ),
        (
            "f",
            Array::Single {
                dims: vec![1, 1, 2],
                data: vec![0.5, -0.5],
            },
        ),
        (
            "l",
            Array::Logical {
                dims: vec![1, 3],
                data: vec![true, false, true],
            },
        ),
        (
            "e",
            Array::Double {
                dims: vec![0, 0],
                data: vec![],
            },
        ),
        ("s", s),
    ];
    let refs: Vec<(&str, &Array)> = vars.iter().map(|(n, a)| (*n, a)).collect();
    for compression in [Compression::None, Compression::Zlib] {
        let path = dir.0.join("a.mat");
        write_mat(&path, &refs, compression).unwrap();
        let f = MatFile::open(&path).unwrap();
        assert_eq!(
            f.decode("d").unwrap().as_numeric().unwrap().to_f64_vec(),
            [1., 2., 3., 4., 5., 6.]
        );
        assert_eq!(f.decode("d").unwrap().dims(), &[2, 3]);
        assert_eq!(
            f.decode("f").unwrap().as_numeric().unwrap().to_f32_vec(),
            [0.5, -0.5]
        );
        let l = f.decode("l").unwrap();
        assert!(l.as_numeric().unwrap().is_logical());
        assert_eq!(l.as_numeric().unwrap().to_f64_vec(), [1., 0., 1.]);
        assert_eq!(f.decode("e").unwrap().numel(), 0);
        let s = f.decode("s").unwrap();
        let st = s.as_struct().unwrap();
        assert_eq!(
            (st.dims(), st.field_names()),
            (&[2usize, 1][..], &["a".to_owned(), "bb".to_owned()][..])
        );
        assert_eq!(st.field(1, "a").unwrap().as_char().unwrap().text(), "héllo");
        assert_eq!(st.field(0, "bb").unwrap().as_char().unwrap().text(), "x");
        assert!(st.field(1, "bb").unwrap().as_cell().unwrap().is_empty());
    }
    // Inconsistent arrays are refused.
    let bad = Array::Double {
        dims: vec![2, 2],
        data: vec![1.0],
    };
    assert!(matches!(
        to_bytes(&[("x", &bad)], Compression::None),
        Err(vgg_weights::Error::InvalidModel { .. })
    ));
    let long = Array::struct1(vec![(&"f".repeat(64), Array::scalar(1.0))]);
    assert!(matches!(
        to_bytes(&[("x", &long)], Compression::None),
        Err(vgg_weights::Error::InvalidModel { .. })
    ));
}

#[test]
fn a_vgg16_chain_loads_up_to_conv5_1() {
    let dir = TempDir::new("vgg16");
    let mut layers = Vec::new();
    let mut c_in = 3;
    for (block, n) in [(1, 2), (2, 2), (3, 3), (4, 3), (5, 3)] {
        for i in 1..=n {
            let c_out = block + 1;
            let weights = Array4::from_shape_fn((c_out, c_in, 3, 3), |(k, c, y, x)| {
                (1000 * k + 100 * c + 10 * x + y) as f32
            });
            let conv = Conv {
                weights,
                bias: Array1::zeros(c_out),
                stride: [1, 1],
                pad: Pad::uniform(1),
            };
            layers.push(Layer {
                name: format!("conv{block}_{i}"),
                kind: LayerKind::Conv(conv),
            });
            layers.push(Layer {
                name: format!("relu{block}_{i}"),
                kind: LayerKind::Relu,
            });
            c_in = c_out;
        }
        let pool = Pool {
            method: PoolMethod::Max,
            size: [2, 2],
            stride: [2, 2],
            pad: Pad::default(),
        };
        layers.push(Layer {
            name: format!("pool{block}"),
            kind: LayerKind::Pool(pool),
        });
    }
    let model = VggModel {
        layout: Layout::Current,
        mean_rgb: Some([1.0, 2.0, 3.0]),
        layers,
    };
    let path = dir.0.join("vgg16.mat");
    write_simplenn(&path, &model, Layout::Current, Compression::Zlib).unwrap();
    let loaded = load(&path, &LoadOptions::up_to("conv5_1")).unwrap();
    assert_eq!(loaded.layers.len(), 25);
    assert_eq!(loaded.layers[..], model.layers[..25]);
    // A missing file names its path.
    let missing = dir.0.join("missing.mat");
    let e = load(&missing, &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(
            e,
            vgg_weights::Error::Mat(vgg_weights::mat::Error::Io { .. })
        ),
        "{e}"
    );
    assert!(e.to_string().contains("missing.mat"), "{e}");
    // A directory is named as one, not reported as a failed memory map.
    let e = load(&dir.0, &LoadOptions::default()).unwrap_err();
    match &e {
        vgg_weights::Error::Mat(vgg_weights::mat::Error::Io { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::IsADirectory, "{e}");
            assert!(source.to_string().contains("is a directory"), "{source}");
        }
        other => panic!("expected an Io error for a directory, got {other:?}"),
    }
}

/// A random array tree: numeric, logical, char, cell and struct arrays, nested up to `depth`.
fn random_array(rng: &mut SmallRng, depth: u32) -> Array {
    let dims = |rng: &mut SmallRng| -> Vec<usize> {
        let n = rng.random_range(2..=4);
        (0..n).map(|_| rng.random_range(0..3)).collect()
    };
    let kind = if depth == 0 {
        rng.random_range(0..4)
    } else {
        rng.random_range(0..6)
    };
    match kind {
        0 => {
            let d = dims(rng);
            let data = (0..d.iter().product())
                .map(|_| rng.random_range(-1e6..1e6))
                .collect();
            Array::Double { dims: d, data }
        }
        1 => {
            let d = dims(rng);
            let data = (0..d.iter().product())
                .map(|_| rng.random::<f32>())
                .collect();
            Array::Single { dims: d, data }
        }
        2 => {
            let d = dims(rng);
            let data = (0..d.iter().product()).map(|_| rng.random()).collect();
            Array::Logical { dims: d, data }
        }
        3 => {
            let pool = ['a', 'Z', ' ', '0', 'é', 'ß', '漢', '\u{1F600}'];
            let n = rng.random_range(0..12);
            Array::Char(
                (0..n)
                    .map(|_| pool[rng.random_range(0..pool.len())])
                    .collect(),
            )
        }
        4 => {
            let d = dims(rng);
            let elems = (0..d.iter().product())
                .map(|_| random_array(rng, depth - 1))
                .collect();
            Array::Cell { dims: d, elems }
        }
        _ => {
            let d = dims(rng);
            let n_fields = rng.random_range(0..4);
            let fields: Vec<String> = (0..n_fields)
                .map(|i| format!("f{i}_{}", "x".repeat(rng.random_range(0..40))))
                .collect();
            let values = (0..d.iter().product::<usize>() * n_fields)
                .map(|_| random_array(rng, depth - 1))
                .collect();
            Array::Struct {
                dims: d,
                fields,
                values,
            }
        }
    }
}

/// Checks that `read` is what `written` describes.
#[track_caller]
fn check_same(written: &Array, read: &vgg_weights::mat::Value) {
    use vgg_weights::mat::Value;
    match (written, read) {
        (Array::Double { dims, data }, Value::Numeric(n)) => {
            assert_eq!((n.class(), n.dims()), (Class::Double, &dims[..]));
            assert_eq!(&n.to_f64_vec(), data);
        }
        (Array::Single { dims, data }, Value::Numeric(n)) => {
            assert_eq!((n.class(), n.dims()), (Class::Single, &dims[..]));
            assert_eq!(&n.to_f32_vec(), data);
        }
        (Array::Logical { dims, data }, Value::Numeric(n)) => {
            assert!(n.is_logical());
            assert_eq!((n.class(), n.dims()), (Class::UInt8, &dims[..]));
            let want: Vec<f64> = data.iter().map(|&b| f64::from(u8::from(b))).collect();
            assert_eq!(n.to_f64_vec(), want);
        }
        (Array::Char(s), Value::Char(c)) => {
            assert_eq!(&c.text(), s);
            assert_eq!(c.dims(), &[1, s.chars().count()]);
        }
        (Array::Cell { dims, elems }, Value::Cell(c)) => {
            assert_eq!(c.dims(), &dims[..]);
            assert_eq!(c.len(), elems.len());
            elems
                .iter()
                .zip(c.elems())
                .for_each(|(w, r)| check_same(w, r));
        }
        (
            Array::Struct {
                dims,
                fields,
                values,
            },
            Value::Struct(s),
        ) => {
            assert_eq!((s.dims(), s.field_names()), (&dims[..], &fields[..]));
            assert_eq!(s.values().len(), values.len());
            values
                .iter()
                .zip(s.values())
                .for_each(|(w, r)| check_same(w, r));
        }
        (w, r) => panic!("wrote {w:?}, read {r:?}"),
    }
}

#[test]
fn random_array_trees_round_trip_through_writer_and_reader() {
    let mut rng = SmallRng::seed_from_u64(42);
    let mut n_checked = 0;
    for i in 0..300 {
        let arrays: Vec<Array> = (0..3).map(|_| random_array(&mut rng, 3)).collect();
        let names = ["first", "second", "third"];
        let vars: Vec<(&str, &Array)> = names.iter().copied().zip(&arrays).collect();
        let compression = if i % 2 == 0 {
            Compression::None
        } else {
            Compression::Zlib
        };
        let file = MatFile::from_bytes(to_bytes(&vars, compression).unwrap()).unwrap();
        let listed: Vec<_> = file.variables().iter().map(|v| v.name.as_str()).collect();
        assert_eq!(listed, names);
        for (name, array) in &vars {
            check_same(array, &file.decode(name).unwrap());
            n_checked += 1;
            // The streaming path gives the same elements.
            if let Array::Cell { elems, .. } = array {
                let mut k = 0;
                let visited = file
                    .visit_cell(name, |i, v| {
                        check_same(&elems[i], &v);
                        k += 1;
                        std::ops::ControlFlow::Continue(())
                    })
                    .unwrap();
                assert_eq!((visited, k), (elems.len(), elems.len()));
            }
        }
    }
    assert_eq!(n_checked, 900);
}
