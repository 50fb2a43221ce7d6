//! Stage planning: automatic and explicit scales, iterations per stage, and the errors for lists that
//! make no sense.

use super::*;

fn spec(scales: Scales) -> RunSpec {
    let mut s = RunSpec::new("c.png", vec!["s.png".into()], "w.mat");
    s.scales = scales;
    s.iterations = 100;
    s.scale_iterations = Some(30);
    s
}

const WORKING: Size = Size {
    width: 2048,
    height: 1536,
};

#[test]
fn single_scale_is_one_stage_at_the_working_size() {
    let p = plan(&spec(Scales::Single), WORKING).unwrap();
    assert_eq!(
        p,
        vec![Stage {
            size: WORKING,
            start: 0,
            end: 100
        }]
    );
}

#[test]
fn auto_steps_by_root_two_down_from_the_working_size() {
    assert_eq!(auto_sides(2048, 256), vec![256, 362, 512, 724, 1024, 1448]);
    assert_eq!(auto_sides(400, 256), vec![283]);
    assert_eq!(auto_sides(256, 256), Vec::<u32>::new());
    let p = plan(&spec(Scales::Auto { min: 256 }), WORKING).unwrap();
    let longs: Vec<u32> = p.iter().map(|s| s.size.width).collect();
    assert_eq!(longs, vec![256, 362, 512, 724, 1024, 1448, 2048]);
    assert_eq!(
        p[0].size,
        Size {
            width: 256,
            height: 192
        }
    );
    assert_eq!((p[0].start, p[0].end), (0, 100));
    assert_eq!((p[1].start, p[1].end), (100, 130));
    assert_eq!(p.last().unwrap().end, 100 + 6 * 30);
    assert_eq!(p.last().unwrap().size, WORKING);
}

#[test]
fn a_list_ends_at_the_working_size_whether_or_not_it_names_it() {
    for list in [vec![512, 1024], vec![512, 1024, 2048]] {
        let p = plan(&spec(Scales::List(list)), WORKING).unwrap();
        let longs: Vec<u32> = p.iter().map(|s| s.size.width).collect();
        assert_eq!(longs, vec![512, 1024, 2048]);
    }
}

#[test]
fn later_stages_default_to_a_quarter_of_the_first() {
    let mut s = spec(Scales::List(vec![512]));
    s.scale_iterations = None;
    s.iterations = 200;
    let p = plan(&s, WORKING).unwrap();
    assert_eq!((p[1].start, p[1].end), (200, 250));
}

#[test]
fn lists_that_make_no_sense_are_errors_naming_the_flag() {
    let cases: [(Vec<u32>, &str); 5] = [
        (vec![1024, 512], "comes after a larger scale"),
        (vec![512, 512], "given twice"),
        (vec![0, 512], "0 px is not a usable"),
        (vec![], "no scale given"),
        (vec![512, 4096], "larger than the working size"),
    ];
    for (list, needle) in cases {
        let err = plan(&spec(Scales::List(list.clone())), WORKING).unwrap_err();
        assert!(
            err.contains("--scales") && err.contains(needle),
            "{list:?}: {err}"
        );
    }
    let err = check_list(&[100, 20_000]).unwrap_err();
    assert!(err.contains("20000"), "{err}");
}

#[test]
fn scales_parse_and_print_back() {
    for text in ["single", "auto:256", "256,512,1024"] {
        let s: Scales = text.parse().unwrap();
        assert_eq!(s.to_string(), text);
    }
    assert_eq!("auto".parse::<Scales>().unwrap(), Scales::Auto { min: 256 });
    let err = "256,big".parse::<Scales>().unwrap_err();
    assert!(err.contains("big"), "{err}");
}
