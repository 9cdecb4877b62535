//! A linearizability checker for recorded histories: Wing & Gong's search with Lowe's
//! memoization (the algorithm behind Porcupine and Knossos' WGL), over any sequential
//! [`Model`]. A history is a list of operations with the time each was invoked and the
//! time it returned, or no return at all when its outcome is unknown (a timeout, a lost
//! connection): such an operation may have taken effect at any point after its
//! invocation, or never.
//!
//! The search walks the history in time order and tries to linearize, at each step, one
//! operation invoked before the earliest pending return; a return reached with its
//! operation not yet linearized means backtracking. Lowe's cache of (set of operations
//! linearized, model state) prunes every configuration already explored, which keeps
//! real histories (thousands of operations per key, a few dozen concurrent) fast.
//!
//! Histories of different keys are independent (a register per key): check each key's
//! history on its own (P-compositionality).

use std::collections::HashSet;
use std::hash::Hash;

/// A sequential specification.
pub trait Model {
    type State: Clone + Eq + Hash;
    type Input;
    type Output;
    fn init(&self) -> Self::State;
    /// The state after `input` answered with `output` from `state`, or `None` when the
    /// model could not have answered so. An unknown output should accept every
    /// outcome the operation could have had.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: &Self::Output,
    ) -> Option<Self::State>;
}

/// One operation of a history.
#[derive(Debug, Clone)]
pub struct Operation<I, O> {
    pub input: I,
    pub output: O,
    /// When it was invoked (any monotonic unit).
    pub call: u64,
    /// When it returned; `None` for an unknown outcome.
    pub ret: Option<u64>,
}

#[derive(Clone, Copy)]
struct Entry {
    op: usize,
    is_call: bool,
    prev: usize,
    next: usize,
    /// For a call: the index of its return entry.
    matching: usize,
}

/// Whether `history` is linearizable with respect to `model`.
pub fn check<M: Model>(model: &M, history: &[Operation<M::Input, M::Output>]) -> bool {
    let n = history.len();
    // Entries sorted by time; at equal times calls come first (the operations overlap).
    // An unknown outcome returns after everything else.
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, op) in history.iter().enumerate() {
        events.push((op.call, true, i));
        events.push((op.ret.unwrap_or(u64::MAX), false, i));
    }
    events.sort_by_key(|&(t, is_call, i)| (t, !is_call, i));
    // A doubly linked list with a head sentinel at 0.
    let mut list: Vec<Entry> = Vec::with_capacity(events.len() + 1);
    list.push(Entry {
        op: usize::MAX,
        is_call: false,
        prev: 0,
        next: 1,
        matching: 0,
    });
    let mut ret_of = vec![0usize; n];
    for (k, &(_, is_call, op)) in events.iter().enumerate() {
        let idx = k + 1;
        list.push(Entry {
            op,
            is_call,
            prev: idx - 1,
            next: if k + 1 < events.len() {
                idx + 1
            } else {
                usize::MAX
            },
            matching: 0,
        });
        if !is_call {
            ret_of[op] = idx;
        }
    }
    for idx in 1..list.len() {
        if list[idx].is_call {
            list[idx].matching = ret_of[list[idx].op];
        }
    }
    if events.is_empty() {
        return true;
    }

    fn unlink(list: &mut [Entry], idx: usize) {
        let (p, nx) = (list[idx].prev, list[idx].next);
        list[p].next = nx;
        if nx != usize::MAX {
            list[nx].prev = p;
        }
    }
    fn relink(list: &mut [Entry], idx: usize) {
        let (p, nx) = (list[idx].prev, list[idx].next);
        list[p].next = idx;
        if nx != usize::MAX {
            list[nx].prev = idx;
        }
    }
    // Lifting an operation takes its call and its return out of the list.
    fn lift(list: &mut [Entry], call: usize) {
        unlink(list, call);
        unlink(list, list[call].matching);
    }
    fn unlift(list: &mut [Entry], call: usize) {
        relink(list, list[call].matching);
        relink(list, call);
    }

    let words = n.div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, M::State)> = HashSet::new();
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut state = model.init();
    let mut entry = list[0].next;
    while list[0].next != usize::MAX {
        let e = list[entry];
        if e.is_call {
            let op = &history[e.op];
            let next_state = model.step(&state, &op.input, &op.output);
            let mut tried = false;
            if let Some(s) = next_state {
                linearized[e.op / 64] |= 1 << (e.op % 64);
                if cache.insert((linearized.clone(), s.clone())) {
                    stack.push((entry, state));
                    state = s;
                    lift(&mut list, entry);
                    entry = list[0].next;
                    tried = true;
                } else {
                    linearized[e.op / 64] &= !(1 << (e.op % 64));
                }
            }
            if !tried {
                entry = e.next;
            }
        } else {
            // A return whose operation is not linearized yet: undo the last choice.
            let Some((call, previous)) = stack.pop() else {
                return false;
            };
            let op = list[call].op;
            linearized[op / 64] &= !(1 << (op % 64));
            state = previous;
            unlift(&mut list, call);
            entry = list[call].next;
        }
        // The last entry is always a return, so the walk backtracks before it could
        // run off the end. (An unknown-outcome operation that "never happened" is
        // linearized after everything else, where it changes nothing observed.)
        if entry == usize::MAX && list[0].next != usize::MAX {
            return false;
        }
    }
    true
}

/// A key/value register as Rostra's KV offers it: put, compare-and-swap on the value
/// the client last read (values are unique per write, so that is CAS on the index),
/// get, delete.
pub struct Register;

#[derive(Debug, Clone)]
pub enum RegisterInput {
    Put(u64),
    /// Replace `expect` (None: absent) with the value.
    Cas {
        expect: Option<u64>,
        new: u64,
    },
    Get,
    Delete,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RegisterOutput {
    Done,
    CasResult(bool),
    Value(Option<u64>),
    /// The call failed in a way that leaves its effect unknown (only with `ret: None`).
    Unknown,
}

impl Model for Register {
    type State = Option<u64>;
    type Input = RegisterInput;
    type Output = RegisterOutput;

    fn init(&self) -> Option<u64> {
        None
    }

    fn step(&self, s: &Option<u64>, i: &RegisterInput, o: &RegisterOutput) -> Option<Option<u64>> {
        use RegisterInput as I;
        use RegisterOutput as O;
        match (i, o) {
            (I::Put(v), O::Done | O::Unknown) => Some(Some(*v)),
            (I::Delete, O::Done | O::Unknown) => Some(None),
            (I::Get, O::Value(v)) => (v == s).then_some(*s),
            (I::Get, O::Unknown) => Some(*s),
            (I::Cas { expect, new }, O::CasResult(true)) => (expect == s).then_some(Some(*new)),
            (I::Cas { expect, .. }, O::CasResult(false)) => (expect != s).then_some(*s),
            // Unknown: it succeeded if it could have; a failure changes nothing, and an
            // unknown operation may also never happen (the checker allows that).
            (I::Cas { expect, new }, O::Unknown) => Some(if expect == s { Some(*new) } else { *s }),
            _ => None,
        }
    }
}
