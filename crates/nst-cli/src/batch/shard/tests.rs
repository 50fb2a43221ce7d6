//! Shards: parsing, the environment of Slurm and Kubernetes, and an assignment that gives every job to
//! exactly one shard.

use std::collections::HashMap;

use super::*;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k| m.get(k).cloned()
}

#[track_caller]
fn check(
    flag: Option<&str>,
    count: Option<usize>,
    env: &[(&str, &str)],
    want: Result<(usize, usize), &str>,
) {
    let flag = flag.map(|f| f.parse::<Shard>().unwrap());
    let got = resolve(flag, count, &env_of(env));
    match (got, want) {
        (Ok((s, _)), Ok((i, n))) => assert_eq!((s.index, s.count), (i, n)),
        (Err(e), Err(part)) => assert!(e.contains(part), "{e} lacks {part}"),
        (got, want) => panic!("got {got:?}, want {want:?}"),
    }
}

#[test]
fn shard_flags_are_one_based_and_checked() {
    assert_eq!("2/8".parse::<Shard>(), Ok(Shard { index: 1, count: 8 }));
    assert_eq!(" 1/1 ".parse::<Shard>().unwrap().to_string(), "1/1");
    for bad in ["0/3", "4/3", "1/0", "3", "a/b", "1/2/3", ""] {
        let e = bad.parse::<Shard>().unwrap_err();
        assert!(e.contains("expected I/N"), "{bad}: {e}");
    }
}

#[test]
fn the_environment_gives_the_shard_when_no_flag_does() {
    let slurm = [
        ("SLURM_ARRAY_TASK_ID", "7"),
        ("SLURM_ARRAY_TASK_MIN", "5"),
        ("SLURM_ARRAY_TASK_MAX", "8"),
        ("SLURM_ARRAY_TASK_COUNT", "4"),
    ];
    check(None, None, &slurm, Ok((2, 4)));
    check(Some("1/2"), None, &slurm, Ok((0, 2)));
    // A resubmitted element keeps its index with an explicit count.
    check(
        None,
        Some(3),
        &[
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "1"),
        ],
        Ok((1, 3)),
    );
    check(
        None,
        Some(3),
        &[("SLURM_ARRAY_TASK_ID", "3")],
        Err("not below the shard count 3"),
    );
    let stepped = [
        ("SLURM_ARRAY_TASK_ID", "3"),
        ("SLURM_ARRAY_TASK_MIN", "1"),
        ("SLURM_ARRAY_TASK_MAX", "7"),
        ("SLURM_ARRAY_TASK_COUNT", "4"),
    ];
    check(None, None, &stepped, Err("stepped or a list"));
    check(
        None,
        None,
        &[("SLURM_ARRAY_TASK_ID", "x")],
        Err("SLURM_ARRAY_TASK_ID=x is not a whole number"),
    );
    check(None, Some(4), &[("JOB_COMPLETION_INDEX", "3")], Ok((3, 4)));
    check(
        None,
        None,
        &[("JOB_COMPLETION_INDEX", "3")],
        Err("--shard-count"),
    );
    check(None, None, &[], Ok((0, 1)));
    check(None, Some(2), &[], Err("without a shard index"));
    check(Some("1/2"), Some(3), &[], Err("disagree"));
}

/// Units like a plan's: still jobs by hash, and videos of a few segments.
fn units() -> Vec<Unit> {
    let mut v: Vec<Unit> = (0..40_u64)
        .map(|i| Unit::Hash(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x1234))
        .collect();
    for (group, count) in [(11_u64, 1_usize), (12, 3), (13, 8), (14, 17)] {
        v.extend((0..count).map(|index| Unit::Range {
            group,
            index,
            count,
        }));
    }
    v
}

#[test]
fn every_unit_goes_to_exactly_one_shard_for_one_to_eight_shards() {
    let units = units();
    for n in 1..=8 {
        let mut taken = vec![0_usize; units.len()];
        for index in 0..n {
            let s = Shard { index, count: n };
            for (k, u) in units.iter().enumerate() {
                if s.selects(u) {
                    taken[k] += 1;
                }
            }
        }
        assert!(taken.iter().all(|&t| t == 1), "n = {n}: {taken:?}");
    }
}

#[test]
fn a_video_s_segments_go_to_contiguous_ranges_of_shards() {
    let n = 4;
    let shards: Vec<usize> = (0..8)
        .map(|index| {
            assign(
                &Unit::Range {
                    group: 4,
                    index,
                    count: 8,
                },
                n,
            )
        })
        .collect();
    assert_eq!(shards, [0, 0, 1, 1, 2, 2, 3, 3]);
    // The group turns the ranges without breaking them.
    let turned: Vec<usize> = (0..8)
        .map(|index| {
            assign(
                &Unit::Range {
                    group: 5,
                    index,
                    count: 8,
                },
                n,
            )
        })
        .collect();
    assert_eq!(turned, [1, 1, 2, 2, 3, 3, 0, 0]);
}
