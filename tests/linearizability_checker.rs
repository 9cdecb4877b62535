//! The linearizability checker's own tests (`tests/common/linearizability.rs`): known
//! linearizable and non-linearizable register histories, unknown outcomes, and
//! randomized histories built from a real sequential run (accepted) with one read made
//! stale (rejected).

mod common;

use common::linearizability::{
    check, Operation, Register, RegisterInput as I, RegisterOutput as O,
};
use rand::{Rng, SeedableRng};

fn op(input: I, output: O, call: u64, ret: u64) -> Operation<I, O> {
    Operation {
        input,
        output,
        call,
        ret: Some(ret),
    }
}

fn unknown(input: I, call: u64) -> Operation<I, O> {
    Operation {
        input,
        output: O::Unknown,
        call,
        ret: None,
    }
}

#[test]
fn sequential_histories() {
    let h = vec![
        op(I::Get, O::Value(None), 0, 1),
        op(I::Put(1), O::Done, 2, 3),
        op(I::Get, O::Value(Some(1)), 4, 5),
        op(
            I::Cas {
                expect: Some(1),
                new: 2,
            },
            O::CasResult(true),
            6,
            7,
        ),
        op(
            I::Cas {
                expect: Some(1),
                new: 3,
            },
            O::CasResult(false),
            8,
            9,
        ),
        op(I::Delete, O::Done, 10, 11),
        op(I::Get, O::Value(None), 12, 13),
    ];
    assert!(check(&Register, &h));
    let mut bad = h.clone();
    bad[6] = op(I::Get, O::Value(Some(2)), 12, 13);
    assert!(
        !check(&Register, &bad),
        "a read after a completed delete sees the old value"
    );
    assert!(check(&Register, &[]));
}

#[test]
fn overlapping_operations_may_take_effect_in_either_order() {
    // A read overlapping a write may see either value.
    for seen in [None, Some(1)] {
        let h = vec![
            op(I::Put(1), O::Done, 0, 10),
            op(I::Get, O::Value(seen), 1, 5),
        ];
        assert!(check(&Register, &h), "{seen:?}");
    }
    // Two reads in real-time order cannot go back in time.
    let h = vec![
        op(I::Put(1), O::Done, 0, 10),
        op(I::Get, O::Value(Some(1)), 1, 2),
        op(I::Get, O::Value(None), 3, 4),
    ];
    assert!(!check(&Register, &h), "the second read goes back in time");
    // Two successful CAS from the same value cannot both have happened.
    let h = vec![
        op(I::Put(1), O::Done, 0, 1),
        op(
            I::Cas {
                expect: Some(1),
                new: 2,
            },
            O::CasResult(true),
            2,
            10,
        ),
        op(
            I::Cas {
                expect: Some(1),
                new: 3,
            },
            O::CasResult(true),
            3,
            9,
        ),
    ];
    assert!(!check(&Register, &h), "two CAS from 1 both succeeded");
}

#[test]
fn unknown_outcomes_may_or_may_not_have_happened() {
    // Seen later: it happened.
    let h = vec![unknown(I::Put(7), 0), op(I::Get, O::Value(Some(7)), 5, 6)];
    assert!(check(&Register, &h));
    // Never seen: it may never have happened.
    let h = vec![unknown(I::Put(7), 0), op(I::Get, O::Value(None), 5, 6)];
    assert!(check(&Register, &h));
    // But a value nobody wrote is never read.
    let h = vec![unknown(I::Put(7), 0), op(I::Get, O::Value(Some(8)), 5, 6)];
    assert!(!check(&Register, &h));
    // An acknowledged write, then reads: the write cannot vanish.
    let h = vec![
        op(I::Put(1), O::Done, 0, 1),
        unknown(I::Delete, 2),
        op(I::Get, O::Value(None), 3, 4),
        op(I::Get, O::Value(Some(1)), 5, 6),
    ];
    assert!(!check(&Register, &h), "a deleted value came back");
}

/// A random concurrent history that a real register produced: each operation takes
/// effect at one instant inside its interval, in a sequential run.
fn random_history(seed: u64, ops: usize) -> Vec<Operation<I, O>> {
    random_history_spread(seed, ops, 40)
}

/// Like `random_history`, each interval reaching up to `spread` either side of its
/// effect (effects are 10 apart: about spread / 5 operations overlap).
fn random_history_spread(seed: u64, ops: usize, spread: u64) -> Vec<Operation<I, O>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut value: Option<u64> = None;
    let mut history = Vec::new();
    let mut next = 1u64;
    for k in 0..ops {
        // Effect at time 10k; the interval around it overlaps its neighbours.
        let at = 10 * k as u64 + spread;
        let call = at - rng.random_range(0..spread);
        let ret = at + rng.random_range(0..spread);
        let (input, output) = match rng.random_range(0..4) {
            0 => {
                next += 1;
                value = Some(next);
                (I::Put(next), O::Done)
            }
            1 => {
                let expect = if rng.random_bool(0.5) { value } else { Some(0) };
                next += 1;
                let ok = expect == value;
                if ok {
                    value = Some(next);
                }
                (I::Cas { expect, new: next }, O::CasResult(ok))
            }
            2 => {
                value = None;
                (I::Delete, O::Done)
            }
            _ => (I::Get, O::Value(value)),
        };
        history.push(Operation {
            input,
            output,
            call,
            ret: Some(ret),
        });
    }
    history
}

#[test]
fn randomized_real_histories_pass_and_a_stale_read_is_caught() {
    let mut caught = 0;
    for seed in 0..20 {
        let h = random_history(seed, 300);
        assert!(
            check(&Register, &h),
            "seed {seed}: a real history is linearizable"
        );
        // Make one late read return a value long overwritten.
        let mut bad = h.clone();
        let first_put = bad
            .iter()
            .position(|o| matches!(o.input, I::Put(_)))
            .unwrap();
        let I::Put(old) = bad[first_put].input else {
            unreachable!()
        };
        let late = bad.len() - 1;
        bad[late] = op(
            I::Get,
            O::Value(Some(old)),
            bad[late].call,
            bad[late].ret.unwrap(),
        );
        // Only a violation if `old` was overwritten well before the read's interval.
        let overwritten = bad[first_put + 1..late]
            .iter()
            .any(|o| o.ret.unwrap() < bad[late].call && !matches!(o.input, I::Get | I::Cas { .. }));
        if overwritten {
            assert!(!check(&Register, &bad), "seed {seed}: a stale read passed");
            caught += 1;
        }
    }
    assert!(
        caught >= 15,
        "the mutation made a violation in {caught} of 20 histories"
    );
}

#[test]
fn a_concurrent_history_is_checked_quickly() {
    // About 10 operations in flight on the key at any moment, as with 64 clients
    // spread over 8 keys. (The search is exponential in the worst case: ~30 writes in
    // flight on one key took 96 s here, so a chaos test must spread its clients.)
    let h = random_history_spread(7, 2000, 50);
    let start = std::time::Instant::now();
    assert!(check(&Register, &h));
    println!(
        "2000 operations, ~10 concurrent: checked in {:?}",
        start.elapsed()
    );
}
