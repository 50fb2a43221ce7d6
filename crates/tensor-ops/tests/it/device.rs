//! The device-resident backend's kernels and network walk, run by the CPU emulator (`device-emu`),
//! against the CPU layers. The same test bodies take any [`Device`]; GPU runs live in `gpu.rs`.

use approx::assert_relative_eq;
use device_emu::Emulator;
use ndarray::{Array3, ArrayView3};
use tensor_ops::device::{
    BLOCK, ConvDims, Device, DeviceNetwork, GemmCall, Kernel, MAX_REDUCTION_BLOCKS,
};
use tensor_ops::{AvgPool2d, Conv2d, Error, Layer, MaxPool2d, Network, Padding, Relu, Shape};

use crate::{arr1, arr3, arr4};

/// Launch shapes the emulator runs every test with: one thread; odd blocks and grids that make every
/// grid-stride loop go round; one block per 64 work items up to 1000 blocks.
fn emulators() -> [Emulator; 4] {
    [
        Emulator::new(1, 1),
        Emulator::new(37, 3),
        Emulator::default(),
        Emulator::new(64, 1000),
    ]
}

/// conv (3×3 pad 1) → relu → max 2×2/2 → conv (2×3, stride [2, 1], uneven padding) → relu →
/// max 3×3/2 pad 1 (overlapping windows, ties at ReLU zeros) → conv 1×1 → avg 3×3/1 pad 1 → avg 2×2/2.
fn net() -> Network {
    let pad = Padding {
        top: 1,
        bottom: 0,
        left: 2,
        right: 1,
    };
    let layers: Vec<Box<dyn Layer>> = vec![
        Box::new(
            Conv2d::new(
                "conv1",
                arr4(1, (5, 3, 3, 3), -0.5, 0.5),
                arr1(2, 5, -0.2, 0.2),
                [1, 1],
                Padding::uniform(1),
            )
            .unwrap(),
        ),
        Box::new(Relu::new("relu1")),
        Box::new(MaxPool2d::new("pool1", [2, 2], [2, 2], Padding::ZERO).unwrap()),
        Box::new(
            Conv2d::new(
                "conv2",
                arr4(3, (4, 5, 2, 3), -0.5, 0.5),
                arr1(4, 4, -0.2, 0.2),
                [2, 1],
                pad,
            )
            .unwrap(),
        ),
        Box::new(Relu::new("relu2")),
        Box::new(MaxPool2d::new("pool2", [3, 3], [2, 2], Padding::uniform(1)).unwrap()),
        Box::new(
            Conv2d::new(
                "conv3",
                arr4(5, (6, 4, 1, 1), -0.5, 0.5),
                arr1(6, 6, -0.2, 0.2),
                [1, 1],
                Padding::ZERO,
            )
            .unwrap(),
        ),
        Box::new(AvgPool2d::new("pool3", [3, 3], [1, 1], Padding::uniform(1)).unwrap()),
        Box::new(AvgPool2d::new("pool4", [2, 2], [2, 2], Padding::ZERO).unwrap()),
    ];
    Network::new(layers)
}

fn host<D: Device>(dev: &D, buf: &D::Buf, shape: Shape) -> Array3<f32> {
    let mut out = Array3::from_elem(shape.dim(), f32::NAN);
    dev.download(buf, out.as_slice_mut().unwrap()).unwrap();
    out
}

#[track_caller]
fn assert_close(what: &str, device: &Array3<f32>, cpu: &Array3<f32>) {
    assert_eq!(device.dim(), cpu.dim(), "{what}");
    let scale = cpu.iter().fold(0.0_f32, |m, v| m.max(v.abs())).max(1e-3);
    for (i, (d, c)) in device.iter().zip(cpu).enumerate() {
        assert!(
            (d - c).abs() <= 2e-5 * scale,
            "{what}: element {i}: device {d}, cpu {c} (scale {scale})"
        );
    }
}

/// Every layer's output and the input gradient (from tap gradients at two layers) match the CPU network.
fn check_network<D: Device>(dev: D, input: Shape, seed: u64) {
    let mut cpu = net();
    let last = cpu.len() - 1;
    let x = arr3(seed, input.dim(), -1.0, 1.0);
    let taps: Vec<usize> = (0..=last).collect();
    let cpu_out = cpu.forward(x.view(), &taps).unwrap();

    let mut gpu = DeviceNetwork::new(dev, &cpu, input, last).unwrap();
    gpu.set_input(x.as_slice().unwrap()).unwrap();
    gpu.forward().unwrap();
    for (i, want) in cpu_out.iter().enumerate() {
        let got = host(gpu.device(), gpu.output(i), gpu.output_shape(i));
        assert_close(&format!("{} output on {input}", gpu.name(i)), &got, want);
    }

    // ∂/∂x of ⟨r1, relu2⟩ + ⟨r2, pool4⟩.
    let (t1, t2) = (4, last);
    let r1 = arr3(seed + 1, cpu_out[t1].dim(), -1.0, 1.0);
    let r2 = arr3(seed + 2, cpu_out[t2].dim(), -1.0, 1.0);
    cpu.forward(x.view(), &[t1, t2]).unwrap();
    let want = cpu.backward(&[r1.view(), r2.view()]).unwrap();
    let dev = gpu.device();
    let mut g1 = dev.alloc(r1.len()).unwrap();
    dev.upload(r1.as_slice().unwrap(), &mut g1).unwrap();
    let mut g2 = dev.alloc(r2.len()).unwrap();
    dev.upload(r2.as_slice().unwrap(), &mut g2).unwrap();
    gpu.backward(&[(t2, &g2), (t1, &g1)]).unwrap();
    let got = host(gpu.device(), gpu.input_grad(), input);
    assert_close(&format!("input gradient on {input}"), &got, &want);
}

#[test]
fn device_network_matches_cpu_for_every_launch_shape() {
    for (k, emu) in emulators().into_iter().enumerate() {
        check_network(emu, Shape::new(3, 23, 19), 10 + k as u64);
    }
}

#[test]
fn device_network_matches_cpu_on_other_sizes() {
    for (k, input) in [
        Shape::new(3, 16, 16),
        Shape::new(3, 31, 12),
        Shape::new(3, 12, 40),
    ]
    .into_iter()
    .enumerate()
    {
        check_network(Emulator::default(), input, 20 + k as u64);
    }
}

#[test]
fn backward_walks_only_to_the_deepest_tap() {
    let cpu = net();
    let input = Shape::new(3, 16, 16);
    let mut gpu = DeviceNetwork::new(Emulator::default(), &cpu, input, cpu.len() - 1).unwrap();
    let x = arr3(5, input.dim(), -1.0, 1.0);
    gpu.set_input(x.as_slice().unwrap()).unwrap();
    gpu.forward().unwrap();
    let mut cpu = net();
    cpu.forward(x.view(), &[1]).unwrap();
    let r = arr3(6, gpu.output_shape(1).dim(), -1.0, 1.0);
    let want = cpu.backward(&[r.view()]).unwrap();
    let mut g = gpu.device().alloc(r.len()).unwrap();
    gpu.device().upload(r.as_slice().unwrap(), &mut g).unwrap();
    gpu.backward(&[(1, &g)]).unwrap();
    let got = host(gpu.device(), gpu.input_grad(), input);
    assert_close("gradient from relu1", &got, &want);
    assert_eq!(gpu.backward(&[]).unwrap_err(), Error::NoTaps);
    assert!(matches!(
        gpu.backward(&[(99, &g)]),
        Err(Error::TapOutOfRange { tap: 99, .. })
    ));
}

/// `SubSumSq` over several full blocks and a ragged end: the differences, and the f64 sum in its slot.
fn check_sub_sumsq<D: Device>(dev: &D) {
    let n = 3 * BLOCK as usize + 17;
    let a = test_utils::uniform_vec(1, n, -3.0, 3.0);
    let b = test_utils::uniform_vec(2, n, -3.0, 3.0);
    let want: f64 = a
        .iter()
        .zip(&b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    let (mut da, mut db, mut out) = (
        dev.alloc(n).unwrap(),
        dev.alloc(n).unwrap(),
        dev.alloc(n).unwrap(),
    );
    dev.upload(&a, &mut da).unwrap();
    dev.upload(&b, &mut db).unwrap();
    let mut acc = dev.alloc_acc(3).unwrap();
    let mut partials = dev.alloc_acc(MAX_REDUCTION_BLOCKS as usize).unwrap();
    dev.launch(Kernel::SubSumSq {
        partials: &mut partials,
        a: &da,
        b: &db,
        out: &mut out,
        acc: &mut acc,
        slot: 1,
        n: n as i64,
    })
    .unwrap();
    let mut sums = [f64::NAN; 3];
    dev.download_acc(&acc, &mut sums).unwrap();
    assert_relative_eq!(sums[1], want, max_relative = 1e-12);
    assert_eq!([sums[0], sums[2]], [0.0, 0.0], "other slots untouched");
    let mut diff = vec![f32::NAN; n];
    dev.download(&out, &mut diff).unwrap();
    for i in 0..n {
        assert_eq!(diff[i], a[i] - b[i]);
    }
}

/// `CountNonFinite` counts NaN and both infinities, not large or subnormal values, and adds into its slot.
fn check_count_nonfinite<D: Device>(dev: &D) {
    let n = 2 * BLOCK as usize + 5;
    let mut v = test_utils::uniform_vec(5, n, -1.0, 1.0);
    for (i, bad) in [
        (0, f32::NAN),
        (7, f32::INFINITY),
        (300, f32::NEG_INFINITY),
        (n - 1, f32::NAN),
    ] {
        v[i] = bad;
    }
    v[3] = f32::MAX;
    v[4] = f32::from_bits(1); // the smallest subnormal
    let mut x = dev.alloc(n).unwrap();
    dev.upload(&v, &mut x).unwrap();
    let mut acc = dev.alloc_acc(2).unwrap();
    let mut partials = dev.alloc_acc(MAX_REDUCTION_BLOCKS as usize).unwrap();
    for _ in 0..2 {
        dev.launch(Kernel::CountNonFinite {
            x: &x,
            acc: &mut acc,
            slot: 1,
            partials: &mut partials,
            n: n as i64,
        })
        .unwrap();
    }
    let mut counts = [f64::NAN; 2];
    dev.download_acc(&acc, &mut counts).unwrap();
    assert_eq!(counts, [0.0, 8.0], "twice 4 non-finite values, into slot 1");
}

#[test]
fn count_nonfinite_counts_nan_and_infinities() {
    for emu in [Emulator::new(64, 1), Emulator::new(64, 1000)] {
        check_count_nonfinite(&emu);
    }
}

/// A reduction over `n` values gives the same bits every time (no atomics, a fixed order). On a GPU
/// with enough work for every block this is what atomics would break; on the emulator, whose blocks run
/// in turn, it guards the finish step's fixed order.
fn check_reproducible<D: Device>(dev: &D, n: usize) {
    let a = test_utils::uniform_vec(11, n, -1e3, 1e3);
    let b = test_utils::uniform_vec(12, n, -1e-3, 1e-3);
    let (mut da, mut db, mut out) = (
        dev.alloc(n).unwrap(),
        dev.alloc(n).unwrap(),
        dev.alloc(n).unwrap(),
    );
    dev.upload(&a, &mut da).unwrap();
    dev.upload(&b, &mut db).unwrap();
    let mut partials = dev.alloc_acc(MAX_REDUCTION_BLOCKS as usize).unwrap();
    let mut run = || {
        let mut acc = dev.alloc_acc(1).unwrap();
        dev.launch(Kernel::SubSumSq {
            a: &da,
            b: &db,
            out: &mut out,
            acc: &mut acc,
            slot: 0,
            partials: &mut partials,
            n: n as i64,
        })
        .unwrap();
        let mut v = [0.0];
        dev.download_acc(&acc, &mut v).unwrap();
        v[0].to_bits()
    };
    let first = run();
    for _ in 0..5 {
        assert_eq!(run(), first);
    }
}

#[test]
fn reductions_are_reproducible() {
    let emu = Emulator::new(64, 3);
    check_reproducible(&emu, 5 * BLOCK as usize + 3);
    let n = 100;
    let mut short = emu.alloc_acc(2).unwrap();
    let (x, mut acc) = (emu.alloc(n).unwrap(), emu.alloc_acc(1).unwrap());
    let err = emu
        .launch(Kernel::CountNonFinite {
            x: &x,
            acc: &mut acc,
            slot: 0,
            partials: &mut short,
            n: n as i64,
        })
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Device {
                op: "nst_count_nonfinite",
                ..
            }
        ),
        "partials shorter than the grid: {err}"
    );
}

#[test]
fn sub_sumsq_reduces_across_blocks_in_f64() {
    for emu in [
        Emulator::new(64, 1),
        Emulator::new(64, 2),
        Emulator::new(64, 1000),
    ] {
        check_sub_sumsq(&emu);
    }
}

/// `TvSquared` against its definition, accumulating into a gradient that already holds 0.5.
fn check_tv<D: Device>(dev: &D) {
    let (c, h, w) = (3, 9, 14);
    let x = arr3(7, (c, h, w), -2.0, 2.0);
    let mut want_value = 0.0_f64;
    let mut want_grad = Array3::<f32>::from_elem((c, h, w), 0.5); // accumulated into
    // Differences in f64 and each term 2d rounded to f32, as `nst_costs::total_variation`.
    let at = |k: usize, i: usize, j: usize| f64::from(x[[k, i, j]]);
    for ((k, i, j), &v) in x.indexed_iter() {
        let v = f64::from(v);
        let mut g = 0.0_f32;
        if i + 1 < h {
            let d = at(k, i + 1, j) - v;
            want_value += d * d;
            g -= (2.0 * d) as f32;
        }
        if j + 1 < w {
            let d = at(k, i, j + 1) - v;
            want_value += d * d;
            g -= (2.0 * d) as f32;
        }
        if i > 0 {
            g += (2.0 * (v - at(k, i - 1, j))) as f32;
        }
        if j > 0 {
            g += (2.0 * (v - at(k, i, j - 1))) as f32;
        }
        want_grad[[k, i, j]] += 0.25 * g;
    }
    {
        let mut dx = dev.alloc(x.len()).unwrap();
        dev.upload(x.as_slice().unwrap(), &mut dx).unwrap();
        let mut grad = dev.alloc(x.len()).unwrap();
        dev.upload(&vec![0.5; x.len()], &mut grad).unwrap();
        let mut acc = dev.alloc_acc(1).unwrap();
        let mut partials = dev.alloc_acc(MAX_REDUCTION_BLOCKS as usize).unwrap();
        dev.launch(Kernel::TvSquared {
            partials: &mut partials,
            x: &dx,
            grad: &mut grad,
            acc: &mut acc,
            slot: 0,
            weight: 0.25,
            shape: [c as i32, h as i32, w as i32],
        })
        .unwrap();
        let mut value = [0.0];
        dev.download_acc(&acc, &mut value).unwrap();
        assert_relative_eq!(value[0], want_value, max_relative = 1e-12);
        let got = host(dev, &grad, Shape::new(c, h, w));
        assert_close("tv gradient", &got, &want_grad);
    }
}

#[test]
fn tv_squared_matches_its_definition() {
    for emu in [Emulator::new(64, 1), Emulator::new(64, 1000)] {
        check_tv(&emu);
    }
}

/// Both forms of the Adam kernel against the update written out here in the same expression order.
fn check_adam<D: Device>(dev: &D) {
    use tensor_ops::device::AdamScalars;
    let n = 1000;
    let (x0, g) = (
        test_utils::uniform_vec(1, n, -5.0, 5.0),
        test_utils::uniform_vec(2, n, -1.0, 1.0),
    );
    let (m0, v0) = (
        test_utils::uniform_vec(3, n, -0.1, 0.1),
        test_utils::uniform_vec(4, n, 0.0, 0.1),
    );
    let up = |v: &[f32]| {
        let mut b = dev.alloc(n).unwrap();
        dev.upload(v, &mut b).unwrap();
        b
    };
    let down = |b: &D::Buf| {
        let mut v = vec![f32::NAN; n];
        dev.download(b, &mut v).unwrap();
        v
    };
    for form in [0, 1] {
        let s = AdamScalars {
            beta1: 0.9,
            beta2: 0.999,
            learning_rate: 2.0,
            epsilon: 1e-8,
            c1: 0.271,
            c2: 0.00299,
            alpha_t: 0.4,
            form,
        };
        let (mut x, dg, mut m, mut v) = (up(&x0), up(&g), up(&m0), up(&v0));
        dev.launch(Kernel::Adam {
            x: &mut x,
            g: &dg,
            m: &mut m,
            v: &mut v,
            s,
            n: n as i64,
        })
        .unwrap();
        let (x, m, v) = (down(&x), down(&m), down(&v));
        for i in 0..n {
            let (mut me, mut ve, mut xe) = (m0[i], v0[i], x0[i]);
            if form == 0 {
                me = s.beta1 * me + (1.0 - s.beta1) * g[i];
                ve = s.beta2 * ve + (1.0 - s.beta2) * g[i] * g[i];
                xe -= s.learning_rate * (me / s.c1) / ((ve / s.c2).sqrt() + s.epsilon);
            } else {
                me += (g[i] - me) * (1.0 - s.beta1);
                ve += (g[i] * g[i] - ve) * (1.0 - s.beta2);
                xe -= (me * s.alpha_t) / (ve.sqrt() + s.epsilon);
            }
            assert_eq!((m[i], v[i], x[i]), (me, ve, xe), "form {form}, element {i}");
        }
    }
}

#[test]
fn adam_kernel_is_the_elementwise_update() {
    check_adam(&Emulator::new(37, 3));
}

#[test]
fn gemm_honours_both_transpositions() {
    check_gemm(&Emulator::default());
}

/// The four storage orders of `C ← α·op(A)·op(B) + β·C` against the definition, and a short C refused.
fn check_gemm<D: Device>(dev: &D) {
    let (m, n, k) = (5, 7, 4);
    let a = test_utils::uniform_vec(1, m * k, -1.0, 1.0); // op(A) m×k
    let b = test_utils::uniform_vec(2, k * n, -1.0, 1.0); // op(B) k×n
    let c0 = test_utils::uniform_vec(3, m * n, -1.0, 1.0);
    let opa = |i: usize, l: usize| a[i * k + l];
    let opb = |l: usize, j: usize| b[l * n + j];
    let up = |v: &[f32]| {
        let mut buf = dev.alloc(v.len()).unwrap();
        dev.upload(v, &mut buf).unwrap();
        buf
    };
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        // Store A and B transposed where asked.
        let sa: Vec<f32> = if ta {
            (0..k * m).map(|e| opa(e % m, e / m)).collect()
        } else {
            a.clone()
        };
        let sb: Vec<f32> = if tb {
            (0..n * k).map(|e| opb(e % k, e / k)).collect()
        } else {
            b.clone()
        };
        let (da, db, mut dc) = (up(&sa), up(&sb), up(&c0));
        dev.gemm(GemmCall {
            trans_a: ta,
            trans_b: tb,
            m,
            n,
            k,
            alpha: 0.5,
            a: &da,
            b: &db,
            beta: 2.0,
            c: &mut dc,
        })
        .unwrap();
        let mut c = vec![f32::NAN; m * n];
        dev.download(&dc, &mut c).unwrap();
        for i in 0..m {
            for j in 0..n {
                let want =
                    0.5 * (0..k).map(|l| opa(i, l) * opb(l, j)).sum::<f32>() + 2.0 * c0[i * n + j];
                assert_relative_eq!(c[i * n + j], want, max_relative = 1e-5);
            }
        }
    }
    // β = 0 does not read C: NaNs there do not survive.
    let (da, db, mut dc) = (up(&a), up(&b), up(&vec![f32::NAN; m * n]));
    dev.gemm(GemmCall {
        trans_a: false,
        trans_b: false,
        m,
        n,
        k,
        alpha: 1.0,
        a: &da,
        b: &db,
        beta: 0.0,
        c: &mut dc,
    })
    .unwrap();
    let mut c = vec![f32::NAN; m * n];
    dev.download(&dc, &mut c).unwrap();
    assert!(c.iter().all(|v| v.is_finite()));
    let mut short = dev.alloc(m * n - 1).unwrap();
    let err = dev
        .gemm(GemmCall {
            trans_a: false,
            trans_b: false,
            m,
            n,
            k,
            alpha: 1.0,
            a: &da,
            b: &db,
            beta: 0.0,
            c: &mut short,
        })
        .unwrap_err();
    assert!(matches!(err, Error::Device { .. }), "{err}");
}

#[test]
fn a_short_buffer_is_an_error_not_a_write_past_its_end() {
    let emu = Emulator::default();
    let d = ConvDims {
        c: 2,
        h: 4,
        w: 4,
        kh: 3,
        kw: 3,
        sy: 1,
        sx: 1,
        pt: 1,
        pl: 1,
        oh: 4,
        ow: 4,
    };
    let x = vec![0.0; 32];
    let mut cols = vec![0.0; 2 * 9 * 16 - 1];
    let err = emu
        .launch(Kernel::Im2col {
            x: &x,
            cols: &mut cols,
            d,
        })
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Device {
                op: "nst_im2col",
                ..
            }
        ),
        "{err}"
    );
}

/// A layer type the device backend has no kernels for.
#[derive(Debug)]
struct Identity;

impl Layer for Identity {
    fn name(&self) -> &str {
        "identity"
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn output_shape(&self, input: Shape) -> tensor_ops::Result<Shape> {
        Ok(input)
    }
    fn forward(
        &self,
        input: ArrayView3<'_, f32>,
        mut output: ndarray::ArrayViewMut3<'_, f32>,
        _: Option<&mut tensor_ops::Saved>,
    ) -> tensor_ops::Result<()> {
        output.assign(&input);
        Ok(())
    }
    fn backward_input(
        &self,
        _: &tensor_ops::Saved,
        grad_output: ArrayView3<'_, f32>,
        mut grad_input: ndarray::ArrayViewMut3<'_, f32>,
    ) -> tensor_ops::Result<()> {
        grad_input.assign(&grad_output);
        Ok(())
    }
}

#[test]
fn a_layer_without_device_kernels_is_named() {
    let cpu = Network::new(vec![Box::new(Relu::new("relu")), Box::new(Identity)]);
    let err = DeviceNetwork::new(Emulator::default(), &cpu, Shape::new(1, 2, 2), 1).unwrap_err();
    assert_eq!(
        err,
        Error::NoDeviceKernel {
            layer: "identity".into()
        }
    );
    assert!(err.to_string().contains("`identity`"), "{err}");
    // Up to the last supported layer it builds.
    DeviceNetwork::new(Emulator::default(), &cpu, Shape::new(1, 2, 2), 0).unwrap();
}

/// Single layers with strides in both directions, uneven padding and inputs full of ties (values from
/// a set of five), forward and backward against the CPU layer.
#[test]
fn single_layers_match_cpu_with_ties_and_strides() {
    for emu in emulators() {
        check_single_layers(emu);
    }
}

fn check_single_layers<D: Device + Clone>(dev: D) {
    let pad = Padding {
        top: 0,
        bottom: 1,
        left: 1,
        right: 2,
    };
    let pool_pad = Padding { right: 0, ..pad };
    let layers: Vec<Box<dyn Layer>> = vec![
        Box::new(MaxPool2d::new("max", [3, 2], [2, 3], pool_pad).unwrap()),
        Box::new(MaxPool2d::new("max_overlap", [3, 3], [1, 2], Padding::uniform(1)).unwrap()),
        Box::new(
            AvgPool2d::new(
                "avg",
                [2, 3],
                [3, 2],
                Padding {
                    left: 2,
                    ..pool_pad
                },
            )
            .unwrap(),
        ),
        Box::new(
            Conv2d::new(
                "conv",
                arr4(8, (3, 2, 3, 2), -1.0, 1.0),
                arr1(9, 3, -1.0, 1.0),
                [2, 3],
                pad,
            )
            .unwrap(),
        ),
    ];
    let input = Shape::new(2, 11, 13);
    let ties = Array3::from_shape_vec(
        input.dim(),
        test_utils::uniform_vec(3, input.len(), 0.0, 5.0)
            .into_iter()
            .map(f32::floor)
            .collect(),
    )
    .unwrap();
    for layer in layers {
        let name = layer.name().to_owned();
        let mut cpu = Network::new(vec![layer]);
        let want_y = cpu.forward(ties.view(), &[0]).unwrap().remove(0);
        let r = arr3(4, want_y.dim(), -1.0, 1.0);
        let want_g = cpu.backward(&[r.view()]).unwrap();
        let mut gpu = DeviceNetwork::new(dev.clone(), &cpu, input, 0).unwrap();
        gpu.set_input(ties.as_slice().unwrap()).unwrap();
        gpu.forward().unwrap();
        assert_close(
            &format!("{name} output"),
            &host(&dev, gpu.output(0), gpu.output_shape(0)),
            &want_y,
        );
        let mut g = dev.alloc(r.len()).unwrap();
        dev.upload(r.as_slice().unwrap(), &mut g).unwrap();
        gpu.backward(&[(0, &g)]).unwrap();
        assert_close(
            &format!("{name} input gradient"),
            &host(&dev, gpu.input_grad(), input),
            &want_g,
        );
    }
}

/// The same test bodies on the GPU: with the `cuda` feature, and only when `NST_TEST_GPU=1` (which
/// `cargo xtask test` sets when it finds a GPU, and then a missing device is a failure, not a skip).
#[cfg(feature = "cuda")]
#[allow(
    clippy::print_stderr,
    reason = "the skip must be visible in the test output"
)]
mod gpu {
    use tensor_ops::Shape;
    use tensor_ops::device::cuda::CudaDevice;

    fn device(test: &str) -> Option<CudaDevice> {
        if std::env::var("NST_TEST_GPU").as_deref() != Ok("1") {
            eprintln!("SKIPPED {test}: NST_TEST_GPU is not 1");
            return None;
        }
        Some(
            CudaDevice::new()
                .unwrap_or_else(|e| panic!("NST_TEST_GPU=1 but the GPU is unusable: {e}")),
        )
    }

    #[test]
    fn cuda_network_matches_cpu() {
        if let Some(dev) = device("cuda_network_matches_cpu") {
            for (k, input) in [Shape::new(3, 23, 19), Shape::new(3, 64, 80)]
                .into_iter()
                .enumerate()
            {
                super::check_network(dev.clone(), input, 30 + k as u64);
            }
        }
    }

    #[test]
    fn cuda_single_layers_match_cpu() {
        if let Some(dev) = device("cuda_single_layers_match_cpu") {
            super::check_single_layers(dev);
        }
    }

    #[test]
    fn cuda_reductions() {
        if let Some(dev) = device("cuda_reductions") {
            super::check_sub_sumsq(&dev);
            // Work for every one of the MAX_REDUCTION_BLOCKS blocks, several times over.
            super::check_reproducible(
                &dev,
                4 * super::MAX_REDUCTION_BLOCKS as usize * super::BLOCK as usize,
            );
            super::check_count_nonfinite(&dev);
            super::check_tv(&dev);
            super::check_adam(&dev);
            super::check_gemm(&dev);
        }
    }
}

/// The kernel source compiles with the real NVRTC, which needs no GPU: with `NST_TEST_NVRTC=1` (set by
/// `.ci/run`, which installs NVRTC from PyPI) a missing libnvrtc fails the test; without it the test says
/// SKIPPED. PTX for Turing (sm_75, the oldest CUDA 13 targets), Hopper (sm_90, the H200) and the newest
/// architecture NVRTC knows, checked to define every kernel and to use no atomics.
#[cfg(feature = "cuda")]
#[test]
#[allow(
    clippy::print_stderr,
    reason = "the skip must be visible in the test output"
)]
fn kernels_compile_with_nvrtc() {
    use tensor_ops::device::cuda::kernels_ptx;
    let required = std::env::var("NST_TEST_NVRTC").as_deref() == Ok("1");
    for cc in [75, 90, i32::MAX] {
        let (arch, ptx) = match kernels_ptx(cc) {
            Ok(r) => r,
            Err(Error::DeviceUnavailable { reason }) if !required => {
                eprintln!("SKIPPED kernels_compile_with_nvrtc: {reason} (NST_TEST_NVRTC is not 1)");
                return;
            }
            Err(e) => panic!("sm_{cc}: {e}"),
        };
        if cc <= 90 {
            assert_eq!(arch, cc, "NVRTC 13 targets sm_{cc}");
        }
        for f in Kernel::<(), ()>::FUNCTIONS {
            assert!(
                ptx.contains(&format!(".entry {f}(")),
                "compute_{arch}: no entry {f}"
            );
        }
        assert!(
            !ptx.contains("atom."),
            "compute_{arch}: the kernels use no atomics"
        );
    }
}
