//! Pipeline tests: layer specs, network building, and the whole objective's gradient against finite
//! differences on a tiny random VGG-shaped network.

use ndarray::{Array1, Array3, Array4};
use tensor_ops::Backend;
use test_utils::{GradCheck, check_grad, uniform_vec};
use vgg_weights::{Conv, Layer, LayerKind, Layout, Pad, Pool, PoolMethod, VggModel};

use super::*;
use crate::network::{LayerWeight, build_network, last_vgg_layer, parse_layers, random_vgg19};

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
        ..ObjectiveSpec::course()
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
    assert_eq!(ObjectiveSpec::course().style_layers.len(), 5);
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
        &[StyleImage::new(image(2, 6, 6).view(), 1.0)],
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
        &[StyleImage::new(style.view(), 1.0)],
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
    let mut styles = vec![StyleImage::new(style_a.view(), 1.0)];
    if blend {
        styles.push(StyleImage::new(style_b.view(), 3.0));
    }
    // The average-pooling check also covers the other normalizations (Mean, Johnson).
    let (content_norm, style_norm) = match pool {
        PoolMethod::Avg => (ContentNormKind::Mean, StyleNormKind::Johnson),
        _ => (ContentNormKind::Course, StyleNormKind::Gatys),
    };
    let s = ObjectiveSpec {
        content_norm,
        style_norm,
        ..spec(
            "relu2_1:0.7,relu2_2",
            "relu1_1:0.4,relu2_1:0.3,relu2_2:0.3",
            20.0,
            2.0e3,
            0.05,
        )
    };
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

/// The device path (run by the CPU emulator of `device-emu`) against the CPU path: the same costs term by
/// term and the same gradient, with content and style terms sharing taps, blended styles of another
/// size, TV, and both pooling methods; over several evaluations, so that stale device buffers would show.
fn device_matches_cpu<D: tensor_ops::device::Device + 'static>(
    pool: PoolMethod,
    tv: f32,
    dev_impl: D,
) {
    let m = tiny_model(21, 4, pool);
    let (h, w) = (13, 11);
    let content = image(22, h, w);
    let (style_a, style_b) = (image(23, 10, 15), image(24, h, w));
    let styles = [
        StyleImage::new(style_a.view(), 1.0),
        StyleImage::new(style_b.view(), 2.5),
    ];
    // The average-pooling case also uses other normalizations, which the device must apply too.
    let (content_norm, style_norm) = match pool {
        PoolMethod::Avg => (ContentNormKind::Half, StyleNormKind::MeanGram),
        _ => (ContentNormKind::Course, StyleNormKind::Gatys),
    };
    let s = ObjectiveSpec {
        content_norm,
        style_norm,
        ..spec(
            "relu2_1:0.7,relu2_2",
            "relu1_1:0.4,relu2_1:0.3,conv2_2:0.3",
            20.0,
            2.0e3,
            tv,
        )
    };
    let build = || {
        StyleObjective::new(
            build_network(&m, None).unwrap(),
            Backend::Cpu,
            &s,
            content.view(),
            &styles,
        )
        .unwrap()
    };
    let mut cpu = build();
    let name = dev_impl.name();
    let mut dev = build().on_device(dev_impl).unwrap();
    assert_eq!((cpu.device_name(), dev.device_name()), ("cpu", name));
    for seed in [25, 26, 27] {
        let x = image(seed, h, w);
        let (mut g_cpu, mut g_dev) = (
            Array3::zeros((3, h, w)),
            Array3::from_elem((3, h, w), f32::NAN),
        );
        let b_cpu = cpu.evaluate(x.view(), g_cpu.view_mut()).unwrap();
        let b_dev = dev.evaluate(x.view(), g_dev.view_mut()).unwrap();
        let close = |what: &str, d: f64, c: f64| {
            assert!(
                (d - c).abs() <= 1e-5 * c.abs().max(1e-9),
                "{what}: device {d}, cpu {c}"
            );
        };
        close("total", b_dev.total, b_cpu.total);
        close("content", b_dev.content, b_cpu.content);
        close("style", b_dev.style, b_cpu.style);
        close("tv", b_dev.tv, b_cpu.tv);
        assert_eq!(b_dev.style_layers.len(), 3);
        for ((nd, vd), (nc, vc)) in b_dev.style_layers.iter().zip(&b_cpu.style_layers) {
            assert_eq!(nd, nc);
            close(nd, *vd, *vc);
        }
        assert!(
            b_cpu.content > 0.0 && b_cpu.style > 0.0,
            "the terms are not trivially 0"
        );
        assert_eq!(tv > 0.0, b_cpu.tv > 0.0);
        let scale = g_cpu.iter().fold(0.0_f32, |a, g| a.max(g.abs()));
        assert!(scale > 0.1, "gradient scale {scale}");
        for (i, (d, c)) in g_dev.iter().zip(&g_cpu).enumerate() {
            assert!(
                (d - c).abs() <= 1e-4 * scale,
                "gradient element {i}: device {d}, cpu {c}"
            );
        }
    }
    assert_eq!(dev.evaluations(), 3);
}

#[test]
fn device_path_matches_cpu_max_pool_with_tv() {
    device_matches_cpu(PoolMethod::Max, 0.05, device_emu::Emulator::default());
}

#[test]
fn device_path_matches_cpu_avg_pool_one_thread_launches() {
    device_matches_cpu(PoolMethod::Avg, 0.0, device_emu::Emulator::new(1, 1));
}

#[test]
fn random_vgg19_has_the_real_layers_and_shapes() {
    let m = random_vgg19("relu5_1", 1);
    assert_eq!(m.layers.len(), 13 + 13 + 4);
    assert_eq!(m.layers.last().unwrap().name, "relu5_1");
    let names: Vec<&str> = m.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        &names[..5],
        ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    );
    let net = build_network(&m, None).unwrap();
    let shapes = net.shapes(Shape::new(3, 300, 400), net.len() - 1).unwrap();
    assert_eq!(*shapes.last().unwrap(), Shape::new(512, 18, 25));
    let conv4_2 = net.index_of("conv4_2").unwrap();
    assert_eq!(shapes[conv4_2 + 1], Shape::new(512, 37, 50));
    // Same seed, same weights; the weights are not all alike.
    let again = random_vgg19("relu5_1", 1);
    let (LayerKind::Conv(a), LayerKind::Conv(b)) = (&m.layers[0].kind, &again.layers[0].kind)
    else {
        panic!("conv1_1 is a convolution");
    };
    assert_eq!(a.weights, b.weights);
    assert!(a.weights.iter().any(|&v| v != a.weights[[0, 0, 0, 0]]));
    // A pool as the last layer ends the network there.
    assert_eq!(random_vgg19("pool2", 1).layers.len(), 10);
}

/// The same test body on the GPU (feature `cuda`, only with `NST_TEST_GPU=1`).
#[cfg(feature = "cuda")]
#[test]
#[allow(
    clippy::print_stderr,
    reason = "the skip must be visible in the test output"
)]
fn device_path_matches_cpu_on_cuda() {
    if std::env::var("NST_TEST_GPU").as_deref() != Ok("1") {
        eprintln!("SKIPPED device_path_matches_cpu_on_cuda: NST_TEST_GPU is not 1");
        return;
    }
    let dev = || {
        tensor_ops::device::cuda::CudaDevice::new()
            .unwrap_or_else(|e| panic!("NST_TEST_GPU=1 but the GPU is unusable: {e}"))
    };
    device_matches_cpu(PoolMethod::Max, 0.05, dev());
    device_matches_cpu(PoolMethod::Avg, 0.0, dev());
}

/// Device-resident Adam (iterate, moments and last good image on the device) takes exactly the steps
/// of the host's `Adam::step` fed by the same device evaluations, for both update forms; the images and
/// moments it hands back are the ones the host run holds.
#[test]
fn device_adam_takes_the_host_adam_steps() {
    use nst_optim::{Adam, AdamConfig, AdamForm, Optimizer};
    let m = tiny_model(31, 3, PoolMethod::Avg);
    let (h, w) = (12, 10);
    let content = image(32, h, w);
    let style = image(33, h, w);
    let styles = [StyleImage::new(style.view(), 1.0)];
    let s = spec("relu2_1", "relu1_1:0.5,relu2_2:0.5", 10.0, 40.0, 0.01);
    let build = || {
        StyleObjective::new(
            build_network(&m, None).unwrap(),
            Backend::Cpu,
            &s,
            content.view(),
            &styles,
        )
        .unwrap()
        .on_device(device_emu::Emulator::new(64, 1)) // one block per launch: fewer emulated threads
        .unwrap()
    };
    for form in [AdamForm::EpsilonHat, AdamForm::Algorithm1] {
        let config = AdamConfig {
            learning_rate: 0.5,
            form,
            ..AdamConfig::tensorflow_v1(2.0)
        };
        let x0 = image(34, h, w).into_raw_vec_and_offset().0;
        let n = x0.len();

        let mut host_obj = build();
        let mut host = Adam::new(config).unwrap();
        let mut x_host = x0.clone();
        let mut host_costs = Vec::new();
        for _ in 0..4 {
            host_costs.push(host.step(&mut x_host, &mut host_obj).unwrap().value);
        }
        let x_before_last = {
            let mut again = Adam::new(config).unwrap();
            let mut x = x0.clone();
            for _ in 0..3 {
                again.step(&mut x, &mut build()).unwrap();
            }
            x
        };

        let mut dev_obj = build();
        let mut dev = Adam::new(config).unwrap();
        {
            let (mm, vv) = dev.moments_mut::<Error>(n).unwrap();
            dev_obj.device_adam_load(&x0, mm, vv).unwrap();
        }
        let mut dev_costs = Vec::new();
        for _ in 0..4 {
            let r = dev
                .step_external(n, |sc| {
                    let total = dev_obj.device_adam_step(sc)?.total;
                    Ok::<_, Error>((total, dev_obj.last_non_finite_grad()))
                })
                .unwrap();
            dev_costs.push(r.value);
        }
        let mut x_dev = vec![f32::NAN; n];
        dev_obj
            .device_image(ResidentImage::Current, &mut x_dev)
            .unwrap();
        assert_eq!(x_dev, x_host, "{form:?}: the iterates are bit-identical");
        let mut good = vec![f32::NAN; n];
        dev_obj
            .device_image(ResidentImage::LastGood, &mut good)
            .unwrap();
        assert_eq!(
            good, x_before_last,
            "{form:?}: the last good image is the one the last step evaluated"
        );
        for (d, c) in dev_costs.iter().zip(&host_costs) {
            assert!((d - c).abs() <= 1e-9 * c.abs(), "{form:?}: cost {d} vs {c}");
        }
        assert!(
            host_costs[3] < host_costs[0],
            "the steps descend: {host_costs:?}"
        );
        let (mut mm, mut vv) = (vec![f32::NAN; n], vec![f32::NAN; n]);
        dev_obj.device_moments(&mut mm, &mut vv).unwrap();
        let state = host.state();
        let mut dev_synced = dev;
        {
            let (m2, v2) = dev_synced.moments_mut::<Error>(n).unwrap();
            m2.copy_from_slice(&mm);
            v2.copy_from_slice(&vv);
        }
        assert_eq!(
            dev_synced.state(),
            state,
            "{form:?}: the synced state is the host's, step count included"
        );
    }
}

#[test]
fn device_adam_needs_a_device_and_a_loaded_iterate() {
    let m = tiny_model(31, 3, PoolMethod::Avg);
    let content = image(32, 8, 8);
    let styles = [StyleImage::new(content.view(), 1.0)];
    let s = spec("relu2_1", "relu1_1", 1.0, 1.0, 0.0);
    let mut cpu = StyleObjective::new(
        build_network(&m, None).unwrap(),
        Backend::Cpu,
        &s,
        content.view(),
        &styles,
    )
    .unwrap();
    let x = vec![0.0; 3 * 8 * 8];
    assert!(
        cpu.device_adam_load(&x, &x, &x)
            .unwrap_err()
            .to_string()
            .contains("not on a device")
    );
    let mut dev = cpu.on_device(device_emu::Emulator::default()).unwrap();
    let scalars = nst_optim::Adam::new(nst_optim::AdamConfig::tensorflow_v1(2.0))
        .unwrap()
        .next_step_scalars();
    assert!(
        dev.device_adam_step(&scalars)
            .unwrap_err()
            .to_string()
            .contains("before the iterate was loaded")
    );
    assert!(
        dev.device_adam_load(&x[1..], &x, &x)
            .unwrap_err()
            .to_string()
            .contains("device Adam")
    );
}

/// The targets' features computed on a device are the CPU network's, tap by tap (in the order asked).
#[test]
fn device_target_features_match_the_cpu() {
    let m = tiny_model(41, 4, PoolMethod::Max);
    let mut net = build_network(&m, None).unwrap();
    let img = image(42, 11, 14);
    let taps = [
        net.index_of("relu2_2").unwrap(),
        net.index_of("relu1_1").unwrap(),
    ];
    let want = net.forward_inference(img.view(), &taps).unwrap();
    let got = device::features(device_emu::Emulator::default(), &net, img.view(), &taps).unwrap();
    assert_eq!(got.len(), 2);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.dim(), w.dim());
        let scale = w.iter().fold(0.0_f32, |a, v| a.max(v.abs()));
        assert!(scale > 0.1);
        for (a, b) in g.iter().zip(w) {
            assert!((a - b).abs() <= 2e-5 * scale, "device {a}, cpu {b}");
        }
    }
    assert!(
        device::features(device_emu::Emulator::default(), &net, img.view(), &[])
            .unwrap()
            .is_empty()
    );
}

/// The temporal term: 0 at its target, `w·1/(3HW)·Σ m·(x − p)²` by hand, masked pixels ignored, and a
/// gradient that agrees with central differences.
#[test]
fn fd_temporal_term() {
    let m = tiny_model(7, 3, PoolMethod::Avg);
    let (content, style) = (image(8, 8, 8), image(9, 8, 8));
    let styles = [StyleImage::new(style.view(), 1.0)];
    let build = |alpha: f32, beta: f32| {
        let s = spec("relu2_1", "relu1_1,relu2_1", alpha, beta, 0.0);
        StyleObjective::new(
            build_network(&m, None).unwrap(),
            Backend::Cpu,
            &s,
            content.view(),
            &styles,
        )
        .unwrap()
    };
    let (mut obj, mut plain) = (build(20.0, 2.0e3), build(20.0, 2.0e3));
    let target = image(12, 8, 8).mapv(|v| v * 30.0);
    let mask = Array2::from_shape_fn((8, 8), |(y, x)| if (x + y) % 3 == 0 { 0.0 } else { 1.0 });
    let weight = 3.0_f32;
    obj.set_temporal(target.clone(), mask.clone(), weight)
        .unwrap();
    let x = image(11, 8, 8).mapv(|v| v * 30.0);
    let mut grad = Array3::zeros((3, 8, 8));
    let b = obj.evaluate(x.view(), grad.view_mut()).unwrap();
    let base = plain
        .evaluate(x.view(), Array3::zeros((3, 8, 8)).view_mut())
        .unwrap();
    let by_hand: f64 = x
        .indexed_iter()
        .map(|((c, y, xx), &v)| {
            f64::from(mask[[y, xx]]) * f64::from(v - target[[c, y, xx]]).powi(2)
        })
        .sum::<f64>()
        / 192.0;
    approx::assert_relative_eq!(b.temporal, by_hand, max_relative = 1e-9);
    approx::assert_relative_eq!(
        b.total,
        base.total + f64::from(weight) * by_hand,
        max_relative = 1e-9
    );
    assert_eq!(
        obj.evaluate(target.view(), grad.view_mut())
            .unwrap()
            .temporal,
        0.0
    );
    // The gradient of the term alone (α = β = 0), so that the check sees nothing else.
    let mut obj = build(0.0, 0.0);
    obj.set_temporal(target.clone(), mask.clone(), weight)
        .unwrap();
    obj.evaluate(x.view(), grad.view_mut()).unwrap();
    let mut masked = grad
        .indexed_iter()
        .filter(|((_, y, xx), _)| mask[[*y, *xx]] == 0.0);
    assert!(
        masked.all(|(_, g)| *g == 0.0),
        "masked pixels have no gradient"
    );
    let xs = x.as_slice().unwrap().to_vec();
    let mut scratch = vec![0.0_f32; xs.len()];
    let check = GradCheck {
        h: 1e-3,
        max_coords: 192,
        ..GradCheck::default()
    };
    check_grad(
        &xs,
        grad.as_slice().unwrap(),
        |p| nst_optim::Objective::value_and_grad(&mut obj, p, &mut scratch).unwrap(),
        check,
    )
    .unwrap();
    let e = obj
        .set_temporal(target, Array2::zeros((7, 8)), 1.0)
        .unwrap_err();
    assert!(e.to_string().contains("mask"), "{e}");
}
