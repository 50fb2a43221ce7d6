//! The scipy-written fake VGG-19 files (both layouts, plain and compressed) and the Octave files:
//! every weight encodes its own index, so axis order is checked exactly.

use vgg_weights::{LayerKind, Layout, LoadOptions, Pad, PoolMethod, VggModel, load};

use crate::data;

/// The 43 layers of VGG-19, in file order.
fn vgg19_layers() -> Vec<(String, &'static str)> {
    let mut v = Vec::new();
    for (block, n) in [(1, 2), (2, 2), (3, 4), (4, 4), (5, 4)] {
        for i in 1..=n {
            v.push((format!("conv{block}_{i}"), "conv"));
            v.push((format!("relu{block}_{i}"), "relu"));
        }
        v.push((format!("pool{block}"), "pool"));
    }
    for (name, ty) in [
        ("fc6", "conv"),
        ("relu6", "relu"),
        ("fc7", "conv"),
        ("relu7", "relu"),
        ("fc8", "conv"),
        ("prob", "softmax"),
    ] {
        v.push((name.to_owned(), ty));
    }
    v
}

/// Checks a model against `make_fake_vgg_mat.py`: `W[y,x,c,k] = idx·1e4 + y + 10x + 100c + 1000k` and
/// `b[k] = idx·1e4 + k + 0.5`, where `idx` counts layers from 0 (the script's `enumerate`).
#[track_caller]
fn check_fake(model: &VggModel, layout: Layout, n_layers: usize) {
    assert_eq!(model.layout, layout);
    let mean = model.mean_rgb.expect("both layouts have a mean");
    for (m, want) in mean.iter().zip([123.68f32, 116.779, 103.939]) {
        assert!((m - want).abs() < 1e-4, "mean {mean:?}");
    }
    let expected = vgg19_layers();
    assert_eq!(model.layers.len(), n_layers);
    for (idx, (layer, (name, ty))) in model.layers.iter().zip(&expected).enumerate() {
        assert_eq!(&layer.name, name);
        match (&layer.kind, *ty) {
            (LayerKind::Conv(conv), "conv") => {
                let fc = name.starts_with("fc");
                let &[c_out, ci, kh, kw] = conv.weights.shape() else {
                    unreachable!()
                };
                // The script's channel plan: block b has CH[b] + 1 outputs; fc6 is 7×7×6×8 (its 6
                // inputs do not match conv5_4's 7 outputs), fc7 1×1×8×8, fc8 1×1×8×10.
                let want = match name.as_str() {
                    "fc6" => [8, 6, 7, 7],
                    "fc7" => [8, 8, 1, 1],
                    "fc8" => [10, 8, 1, 1],
                    _ => {
                        let block = name.as_bytes()[4] - b'0';
                        let c_out = [4, 5, 6, 7, 7][usize::from(block - 1)];
                        let first_of_block = name.ends_with("_1");
                        let c_in = if block == 1 && first_of_block {
                            3
                        } else if first_of_block {
                            [4, 5, 6, 7, 7][usize::from(block - 2)]
                        } else {
                            c_out
                        };
                        [c_out, c_in, 3, 3]
                    }
                };
                assert_eq!([c_out, ci, kh, kw], want, "{name}");
                assert_eq!(conv.stride, [1, 1]);
                assert_eq!(conv.pad, if fc { Pad::default() } else { Pad::uniform(1) });
                let base = idx as f32 * 1e4;
                for ((k, c, y, x), &w) in conv.weights.indexed_iter() {
                    let want =
                        base + y as f32 + 10.0 * x as f32 + 100.0 * c as f32 + 1000.0 * k as f32;
                    assert_eq!(w, want, "{name} W[k={k}, c={c}, y={y}, x={x}]");
                }
                for (k, &b) in conv.bias.iter().enumerate() {
                    assert_eq!(b, base + k as f32 + 0.5, "{name} b[{k}]");
                }
            }
            (LayerKind::Relu, "relu") => {}
            (LayerKind::Pool(pool), "pool") => {
                assert_eq!(pool.method, PoolMethod::Max);
                assert_eq!(pool.size, [2, 2]);
                assert_eq!(pool.stride, [2, 2]);
                assert_eq!(pool.pad, Pad::default());
            }
            (LayerKind::Other { type_name }, "softmax") => assert_eq!(type_name, "softmax"),
            (kind, ty) => panic!("{name}: expected {ty}, got {kind:?}"),
        }
    }
}

#[test]
fn four_fake_layouts_load_with_exact_axis_order() {
    for (file, layout) in [
        ("fake_vgg19_beta16_plain.mat", Layout::Beta16),
        ("fake_vgg19_beta16_zlib.mat", Layout::Beta16),
        ("fake_vgg19_meta_plain.mat", Layout::Current),
        ("fake_vgg19_meta_zlib.mat", Layout::Current),
    ] {
        let model = load(data(file), &LoadOptions::default()).unwrap();
        check_fake(&model, layout, 43);
        let upto = load(data(file), &LoadOptions::up_to("conv5_1")).unwrap();
        check_fake(&upto, layout, 29);
        assert_eq!(upto.layers.last().unwrap().name, "conv5_1");
    }
}
