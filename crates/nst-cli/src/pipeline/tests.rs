//! Pipeline tests: layer specs, network building, and the whole objective's gradient against finite
//! differences on a tiny random VGG-shaped network.

use ndarray::{Array1, Array3, Array4};
use tensor_ops::Backend;
use test_utils::{GradCheck, check_grad, uniform_vec};
use vgg_weights::{Conv, Layer, LayerKind, Layout, Pad, Pool, PoolMethod, VggModel};

use super::*;

/// A tiny VGG-shaped model: conv1_1 relu1_1 pool1 conv2_1 relu2_1 conv2_2 relu2_2, `c` channels.
pub(crate) fn tiny_model(seed: u64, c: usize, pool: PoolMethod) -> VggModel {
    let conv = |name: &str, c_in: usize, c_out: usize, s: u64| Layer {
        name: name.into(),
        kind: LayerKind::Conv(Conv {
            weights: Array4::from_shape_vec(
                (c_out, c_in, 3, 3),
                uniform_vec(s, c_out * c_in * 9, -0.4, 0.4),
            )
            .unwrap(),
            bias: Array1::from(uniform_vec(s + 1, c_out, -0.1, 0.1)),
            stride: [1, 1],
            pad: Pad::uniform(1),
        }),
    };
    let relu = |name: &str| Layer {
        name: name.into(),
        kind: LayerKind::Relu,
    };
    VggModel {
        layout: Layout::Beta16,
        mean_rgb: Some([1.0, 2.0, 3.0]),
        layers: vec![
            conv("conv1_1", 3, c, seed),
            relu("relu1_1"),
            Layer {
                name: "pool1".into(),
                kind: LayerKind::Pool(Pool {
                    method: pool,
                    size: [2, 2],
                    stride: [2, 2],
                    pad: Pad::default(),
                }),
            },
            conv("conv2_1", c, c, seed + 10),
            relu("relu2_1"),
            conv("conv2_2", c, c, seed + 20),
            relu("relu2_2"),
        ],
    }
}

fn spec(content: &str, style: &str, alpha: f32, beta: f32, tv: f32) -> ObjectiveSpec {
    ObjectiveSpec {
        content_layers: parse_layers("--content-layers", content).unwrap(),
        style_layers: parse_layers("--style-layers", style).unwrap(),
        alpha,
        beta,
        tv_weight: tv,
    }
}

fn image(seed: u64, h: usize, w: usize) -> Array3<f32> {
    Array3::from_shape_vec((3, h, w), uniform_vec(seed, 3 * h * w, -1.0, 1.0)).unwrap()
}

#[test]
fn layer_specs() {
    let l = parse_layers("--style-layers", "relu1_1:0.2, relu2_1").unwrap();
    assert_eq!(
        l,
        vec![
            LayerWeight {
                name: "relu1_1".into(),
                weight: 0.2
            },
            LayerWeight {
                name: "relu2_1".into(),
                weight: 1.0
            }
        ]
    );
    for bad in ["", "relu1_1:x", "relu1_1:-1", ":0.5", "a,a", "relu1_1:inf"] {
        let err = parse_layers("--style-layers", bad).unwrap_err();
        assert!(
            err.to_string().starts_with("--style-layers"),
            "{bad}: {err}"
        );
    }
    assert_eq!(ObjectiveSpec::seed().style_layers.len(), 5);
    assert_eq!(
        last_vgg_layer(["relu4_2", "relu1_1", "relu5_1", "relu3_1"]).as_deref(),
        Some("relu5_1")
    );
    assert_eq!(
        last_vgg_layer(["conv4_2", "relu4_2", "relu4_1"]).as_deref(),
        Some("relu4_2")
    );
    assert_eq!(
        last_vgg_layer(["relu4_2", "pool4"]).as_deref(),
        Some("pool4")
    );
    assert_eq!(last_vgg_layer(["relu4_2", "fc6"]), None);
}

#[test]
fn non_chain_layers_and_unknown_names_are_errors() {
    let mut m = tiny_model(1, 2, PoolMethod::Avg);
    m.layers.push(vgg_weights::Layer {
        name: "drop".into(),
        kind: LayerKind::Other {
            type_name: "dropout".into(),
        },
    });
    let err = build_network(&m, None).unwrap_err();
    assert!(
        matches!(err, Error::NotAChain { .. }) && err.to_string().contains("dropout"),
        "{err}"
    );
    let m = tiny_model(1, 2, PoolMethod::Avg);
    let net = build_network(&m, None).unwrap();
    let err = StyleObjective::new(
        net,
        Backend::Cpu,
        &spec("relu9_9", "relu1_1", 1.0, 1.0, 0.0),
        image(1, 6, 6).view(),
        &[StyleImage {
            image: image(2, 6, 6).view(),
            weight: 1.0,
        }],
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("relu9_9") && err.to_string().contains("conv2_2"),
        "{err}"
    );
}

/// Content at 0 at its own target: J(content) has zero content cost.
#[test]
fn content_cost_is_zero_at_the_content_image() {
    let m = tiny_model(3, 3, PoolMethod::Avg);
    let content = image(4, 8, 8);
    let style = image(5, 8, 8);
    let mut obj = StyleObjective::new(
        build_network(&m, None).unwrap(),
        Backend::Cpu,
        &spec("relu2_1", "relu1_1,relu2_2", 1.0, 1.0, 0.0),
        content.view(),
        &[StyleImage {
            image: style.view(),
            weight: 1.0,
        }],
    )
    .unwrap();
    let mut grad = Array3::zeros((3, 8, 8));
    let b = obj.evaluate(content.view(), grad.view_mut()).unwrap();
    assert_eq!(b.content, 0.0);
    assert!(b.style > 0.0);
    assert_eq!(b.style_layers.len(), 2);
    let b2 = obj.evaluate(style.view(), grad.view_mut()).unwrap();
    assert!(b2.content > 0.0);
    assert!(
        b2.style < b.style,
        "the style image matches its own Grams better: {} vs {}",
        b2.style,
        b.style
    );
}

#[track_caller]
fn fd_check(pool: PoolMethod, style_size: (usize, usize), blend: bool) {
    let m = tiny_model(7, 3, pool);
    let content = image(8, 8, 8);
    let style_a = image(9, style_size.0, style_size.1);
    let style_b = image(10, 8, 8);
    let mut styles = vec![StyleImage {
        image: style_a.view(),
        weight: 1.0,
    }];
    if blend {
        styles.push(StyleImage {
            image: style_b.view(),
            weight: 3.0,
        });
    }
    let s = spec(
        "relu2_1:0.7,relu2_2",
        "relu1_1:0.4,relu2_1:0.3,relu2_2:0.3",
        20.0,
        2.0e3,
        0.05,
    );
    let mut obj = StyleObjective::new(
        build_network(&m, None).unwrap(),
        Backend::Cpu,
        &s,
        content.view(),
        &styles,
    )
    .unwrap();
    let x = image(11, 8, 8);
    let mut grad = Array3::zeros((3, 8, 8));
    obj.evaluate(x.view(), grad.view_mut()).unwrap();
    let max = grad.iter().fold(0.0_f32, |a, g| a.max(g.abs()));
    // The check below must not pass merely because every gradient is tiny.
    assert!(max > 0.3, "gradient scale {max}");
    let xs = x.as_slice().unwrap().to_vec();
    let mut scratch = vec![0.0_f32; xs.len()];
    let r = check_grad(
        &xs,
        grad.as_slice().unwrap(),
        |p| nst_optim::Objective::value_and_grad(&mut obj, p, &mut scratch).unwrap(),
        // h = 1e-3, not the house 1e-2: through three random ReLU layers some pre-activations lie within
        // 1e-2 of their kink for a few pixels, and a step across a kink is not a derivative. With O(1)
        // pixels and f64-accumulated costs, f32 rounding stays far below the tolerance at this step.
        GradCheck {
            h: 1e-3,
            max_coords: 192,
            ..GradCheck::default()
        },
    );
    r.unwrap();
}

#[test]
fn fd_whole_objective_avg_pool() {
    fd_check(PoolMethod::Avg, (8, 8), false);
}

#[test]
fn fd_whole_objective_max_pool_blended_styles_of_another_size() {
    fd_check(PoolMethod::Max, (12, 10), true);
}
