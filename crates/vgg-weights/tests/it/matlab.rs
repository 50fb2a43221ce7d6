//! The MAT-files MATLAB itself wrote (from scipy's test data): values as scipy's `loadmat` reads them.

use std::f64::consts::PI;

use vgg_weights::mat::{Class, Endian, Error, MatFile, Value};

use crate::data;

fn open(name: &str) -> MatFile {
    MatFile::open(data(&format!("matlab-written/{name}"))).unwrap()
}

fn var(file: &str, name: &str) -> Value {
    open(file).decode(name).unwrap()
}

#[track_caller]
fn check_numeric(v: &Value, class: Class, dims: &[usize], values: &[f64]) {
    let n = v
        .as_numeric()
        .unwrap_or_else(|| panic!("not numeric: {v:?}"));
    assert_eq!(n.class(), class);
    assert_eq!(n.dims(), dims);
    let got = n.to_f64_vec();
    assert_eq!(got.len(), values.len());
    for (g, w) in got.iter().zip(values) {
        assert!(
            (g - w).abs() <= 1e-12 * w.abs().max(1.0),
            "{got:?} != {values:?}"
        );
    }
}

#[track_caller]
fn text(v: &Value) -> String {
    v.as_char()
        .unwrap_or_else(|| panic!("not char: {v:?}"))
        .text()
}

/// MATLAB versions that wrote each kind of Level-5 file.
const VERSIONS: [&str; 4] = ["6.1_SOL2", "6.5.1_GLNX86", "7.1_GLNX86", "7.4_GLNX86"];

#[test]
fn byte_orders() {
    for (file, endian) in [
        ("big_endian.mat", Endian::Big),
        ("little_endian.mat", Endian::Little),
    ] {
        let f = open(file);
        assert_eq!(f.endian(), endian);
        check_numeric(
            &f.decode("floats").unwrap(),
            Class::Single,
            &[2, 2],
            &[2.0, 3.0, 3.0, 4.0],
        );
        let strings = f.decode("strings").unwrap();
        let cell = strings.as_cell().unwrap();
        assert_eq!(cell.dims(), &[2, 1]);
        assert_eq!(text(&cell.elems()[0]), "hello");
        assert_eq!(text(&cell.elems()[1]), "world");
    }
    assert!(open("testdouble_6.1_SOL2.mat").endian() == Endian::Big);
}

#[test]
fn doubles_matrices_and_smaller_storage_types() {
    let theta: Vec<f64> = (0..9).map(|i| f64::from(i) * PI / 4.0).collect();
    for v in VERSIONS {
        check_numeric(
            &var(&format!("testdouble_{v}.mat"), "testdouble"),
            Class::Double,
            &[1, 9],
            &theta,
        );
        // MATLAB stores these integer-valued doubles as miUINT8; the class stays double.
        let m = var(&format!("testmatrix_{v}.mat"), "testmatrix");
        check_numeric(
            &m,
            Class::Double,
            &[3, 5],
            &[1., 2., 3., 2., 0., 0., 3., 0., 0., 4., 0., 0., 5., 0., 0.],
        );
        check_numeric(
            &var(&format!("testminus_{v}.mat"), "testminus"),
            Class::Double,
            &[1, 1],
            &[-1.0],
        );
        let m3: Vec<f64> = (1..=24).map(f64::from).collect();
        let v3 = var(&format!("test3dmatrix_{v}.mat"), "test3dmatrix");
        check_numeric(&v3, Class::Double, &[2, 3, 4], &m3);
        let complex = var(&format!("testcomplex_{v}.mat"), "testcomplex");
        let n = complex.as_numeric().unwrap();
        assert!(n.is_complex());
        let re = n.to_f64_vec();
        let im = n.imag_to_f64_vec().unwrap();
        for (i, t) in theta.iter().enumerate() {
            assert!((re[i] - t.cos()).abs() < 1e-12 && (im[i] - t.sin()).abs() < 1e-12);
        }
    }
    // A stored type smaller than the class, and miUINT32 data for an int32 array.
    check_numeric(
        &var("testminus_6.5.1_GLNX86.mat", "testminus"),
        Class::Double,
        &[1, 1],
        &[-1.0],
    );
    let a = var("miuint32_for_miint32.mat", "an_array");
    check_numeric(
        &a,
        Class::Int64,
        &[1, 10],
        &(0..10).map(f64::from).collect::<Vec<_>>(),
    );
    let multi = open("testmulti_7.4_GLNX86.mat");
    let names: Vec<_> = multi.variables().iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["a", "theta"]);
}

#[test]
fn logical_and_array_name_in_utf8() {
    let b = var("testbool_8_WIN64.mat", "testbools");
    let n = b.as_numeric().unwrap();
    assert!(n.is_logical());
    check_numeric(&b, Class::UInt8, &[2, 1], &[1.0, 0.0]);
    check_numeric(
        &var("miutf8_array_name.mat", "array_name"),
        Class::Int64,
        &[1, 1],
        &[1.0],
    );
}

#[test]
fn char_arrays_in_every_encoding() {
    for v in VERSIONS {
        assert_eq!(
            text(&var(&format!("teststring_{v}.mat"), "teststring")),
            "\"Do nine men interpret?\" \"Nine men,\" I nod."
        );
        assert_eq!(
            text(&var(&format!("testonechar_{v}.mat"), "testonechar")),
            "r"
        );
        let arr = var(&format!("teststringarray_{v}.mat"), "teststringarray");
        let c = arr.as_char().unwrap();
        assert_eq!(c.dims(), &[3, 5]);
        assert_eq!(c.rows().unwrap(), ["one  ", "two  ", "three"]);
    }
    for v in ["7.1_GLNX86", "7.4_GLNX86"] {
        let t = text(&var(&format!("testunicode_{v}.mat"), "testunicode"));
        assert!(
            t.starts_with("Japanese: \nすべての人間は、生まれながらにして自由であり、\n"),
            "{t}"
        );
        assert!(
            t.ends_with("互いに同胞の精神をもって行動しなければならない。"),
            "{t}"
        );
        assert_eq!(t.chars().count(), 100);
    }
    assert_eq!(text(&var("one_by_zero_char.mat", "var")), "");
    assert_eq!(text(&var("single_empty_string.mat", "a")), "");
    // Invalid UTF-8 is replaced, as scipy does.
    assert_eq!(
        text(&var("broken_utf8.mat", "bad_string")),
        "\u{fffd} am broken"
    );
}

#[test]
fn cells_nested_and_empty() {
    for v in VERSIONS {
        let cell = var(&format!("testcell_{v}.mat"), "testcell");
        let c = cell.as_cell().unwrap();
        assert_eq!(c.dims(), &[1, 4]);
        assert_eq!(
            text(&c.elems()[0]),
            "This cell contains this string and 3 arrays of increasing length"
        );
        check_numeric(&c.elems()[1], Class::Double, &[1, 1], &[1.0]);
        check_numeric(&c.elems()[2], Class::Double, &[1, 2], &[1.0, 2.0]);
        check_numeric(&c.elems()[3], Class::Double, &[1, 3], &[1.0, 2.0, 3.0]);

        let nest = var(&format!("testcellnest_{v}.mat"), "testcellnest");
        let outer = nest.as_cell().unwrap().elems();
        check_numeric(&outer[0], Class::Double, &[1, 1], &[1.0]);
        let inner = outer[1].as_cell().unwrap().elems();
        check_numeric(&inner[0], Class::Double, &[1, 1], &[2.0]);
        check_numeric(&inner[1], Class::Double, &[1, 1], &[3.0]);
        let innermost = inner[2].as_cell().unwrap().elems();
        check_numeric(&innermost[0], Class::Double, &[1, 1], &[4.0]);
        check_numeric(&innermost[1], Class::Double, &[1, 1], &[5.0]);
    }
    for v in ["5.3_SOL2", "6.5.1_GLNX86", "7.1_GLNX86", "7.4_GLNX86"] {
        let cell = var(&format!("testemptycell_{v}.mat"), "testemptycell");
        let e = cell.as_cell().unwrap().elems();
        assert_eq!(e.len(), 5);
        check_numeric(&e[0], Class::Double, &[1, 1], &[1.0]);
        check_numeric(&e[1], Class::Double, &[1, 1], &[2.0]);
        assert_eq!(e[2].dims(), &[0, 0]);
        assert_eq!(e[3].numel(), 0);
        check_numeric(&e[4], Class::Double, &[1, 1], &[3.0]);
    }
    let scalar = var("testscalarcell_7.4_GLNX86.mat", "testscalarcell");
    check_numeric(
        &scalar.as_cell().unwrap().elems()[0],
        Class::Double,
        &[1, 1],
        &[1.0],
    );
    let s = var("testsimplecell.mat", "s");
    let mycell = s.field("mycell").unwrap().as_cell().unwrap();
    let letters: Vec<String> = mycell.elems().iter().map(text).collect();
    assert_eq!(letters, ["a", "b", "c"]);
}

#[test]
fn structs_nested_arrays_and_empty() {
    let root2 = 2f64.sqrt();
    let (e, pi) = (std::f64::consts::E, PI);
    for v in VERSIONS {
        let s = var(&format!("teststruct_{v}.mat"), "teststruct");
        assert_eq!(
            s.as_struct().unwrap().field_names(),
            ["stringfield", "doublefield", "complexfield"]
        );
        assert_eq!(
            text(s.field("stringfield").unwrap()),
            "Rats live on no evil star."
        );
        check_numeric(
            s.field("doublefield").unwrap(),
            Class::Double,
            &[1, 3],
            &[root2, e, pi],
        );
        let complex = s.field("complexfield").unwrap().as_numeric().unwrap();
        assert_eq!(complex.imag_to_f64_vec().unwrap().len(), 3);
        check_numeric(
            s.field("complexfield").unwrap(),
            Class::Double,
            &[1, 3],
            &[root2, e, pi],
        );

        // Struct arrays are stored element by element (column-major), each with every field.
        let arr = var(&format!("teststructarr_{v}.mat"), "teststructarr");
        let a = arr.as_struct().unwrap();
        assert_eq!(a.dims(), &[1, 2]);
        check_numeric(a.field(0, "one").unwrap(), Class::Double, &[1, 1], &[1.0]);
        check_numeric(a.field(0, "two").unwrap(), Class::Double, &[1, 1], &[2.0]);
        assert_eq!(text(a.field(1, "one").unwrap()), "number 1");
        assert_eq!(text(a.field(1, "two").unwrap()), "number 2");
    }
    for v in VERSIONS.iter().take(3) {
        let nest = var(&format!("teststructnest_{v}.mat"), "teststructnest");
        check_numeric(nest.field("one").unwrap(), Class::Double, &[1, 1], &[1.0]);
        assert_eq!(
            text(nest.field("two").unwrap().field("three").unwrap()),
            "number 3"
        );
    }
    let empty = var("test_empty_struct.mat", "a");
    let s = empty.as_struct().unwrap();
    assert!(s.field_names().is_empty());
    let nasty = var("nasty_duplicate_fieldnames.mat", "Summary");
    let names = nasty.as_struct().unwrap().field_names();
    assert_eq!(names.len(), 17);
    assert_eq!(names[0], "Top_Q");
    assert_eq!(names[16], "Units");
    // The file really repeats `Station_Q` four times (scipy renames the copies); we keep the names.
    assert!(names[11..15].iter().all(|n| n == "Station_Q"));
    // `Units` is a nested struct of chars; its `Cells` is a 1×1 char stored with no data.
    let units = nasty.field("Units").unwrap();
    assert_eq!(units.as_struct().unwrap().field_names().len(), 13);
    let cells = units.field("Cells").unwrap().as_char().unwrap();
    assert_eq!(
        (cells.dims(), cells.text().as_str()),
        (&[1usize, 1][..], "")
    );
    assert_eq!(text(units.field("Depth").unwrap()), "m");
}

#[test]
fn a_large_variable_is_skipped_and_the_next_one_read() {
    let f = open("test_skip_variable.mat");
    assert_eq!(text(&f.decode("second").unwrap()), "Hello, world");
    let first = f.decode("first").unwrap();
    assert_eq!(first.dims(), &[100, 100]);
}

#[test]
fn unsupported_classes_fail_for_their_variable_only() {
    for (file, name, class) in [
        ("testsparse_7.4_GLNX86.mat", "testsparse", Class::Sparse),
        (
            "testsparsecomplex_7.1_GLNX86.mat",
            "testsparsecomplex",
            Class::Sparse,
        ),
        (
            "testsparsefloat_7.4_GLNX86.mat",
            "testsparsefloat",
            Class::Sparse,
        ),
        ("logical_sparse.mat", "sp_log_5_4", Class::Sparse),
        ("testobject_7.4_GLNX86.mat", "testobject", Class::Object),
        ("testfunc_7.4_GLNX86.mat", "testfunc", Class::Function),
        ("parabola.mat", "parabola", Class::Function),
    ] {
        let err = open(file).decode(name).unwrap_err();
        assert!(
            matches!(&err, Error::Unsupported { name: n, class: c, .. } if n == name && *c == class),
            "{file}: {err}"
        );
        assert!(err.to_string().contains(file), "{err}");
    }
    for v in ["6.1_SOL2", "6.5.1_GLNX86", "7.1_GLNX86"] {
        let err = open(&format!("testsparse_{v}.mat"))
            .decode("testsparse")
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Unsupported {
                    class: Class::Sparse,
                    ..
                }
            ),
            "{err}"
        );
    }
    // Function handles next to ordinary variables: the ordinary ones still read.
    let f = open("some_functions.mat");
    check_numeric(&f.decode("a").unwrap(), Class::Double, &[1, 1], &[-3.9]);
    check_numeric(&f.decode("b").unwrap(), Class::Double, &[1, 1], &[52.0]);
    assert!(matches!(
        f.decode("sqr"),
        Err(Error::Unsupported {
            class: Class::Function,
            ..
        })
    ));
}

#[test]
fn level4_and_broken_files_are_refused_with_specific_errors() {
    for file in [
        "testdouble_4.2c_SOL2.mat",
        "testmatrix_4.2c_SOL2.mat",
        "testminus_4.2c_SOL2.mat",
        "testonechar_4.2c_SOL2.mat",
        "testcomplex_4.2c_SOL2.mat",
        "testsparse_4.2c_SOL2.mat",
        "teststring_4.2c_SOL2.mat",
        "testmulti_4.2c_SOL2.mat",
        "testvec_4_GLNX86.mat",
        "debigged_m4.mat",
    ] {
        let err = MatFile::open(data(&format!("matlab-written/{file}"))).unwrap_err();
        assert!(matches!(err, Error::Level4 { .. }), "{file}: {err}");
        assert!(err.to_string().contains("Level-4"), "{err}");
    }
    // The first variables are intact; a later one's zlib stream is cut short.
    let f = open("corrupted_zlib_data.mat");
    assert_eq!(var("corrupted_zlib_data.mat", "dates").dims(), &[0, 1]);
    let errors: Vec<Error> = f
        .variables()
        .iter()
        .filter_map(|v| f.decode_info(v).err())
        .collect();
    assert!(!errors.is_empty());
    assert!(
        errors.iter().all(|e| matches!(e, Error::Decompress { .. })),
        "{errors:?}"
    );
}
