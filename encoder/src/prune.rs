//! Block-guided pruning (ECNR, DESIGN step 6): in rounds during training,
//! the least important values of each prunable tensor are set to zero for
//! good. A value's importance is its magnitude, min–max normalized over the
//! tensor across all MLPs of the scale, plus `BLOCK_WEIGHT` × its MLP's
//! loss, min–max normalized over the MLPs: networks whose blocks are still
//! fitted badly keep more of their parameters. The ranking is global over
//! the scale, so the training threads (each owning a group of MLPs) meet at
//! every round and take the same decision whatever their number.

use std::sync::{Condvar, Mutex, MutexGuard};

/// λ_b: the weight of the block-loss term (ECNR's).
pub const BLOCK_WEIGHT: f32 = 0.1;

/// The tensors that may be pruned, as (layer, is_bias): the weights of all
/// but the last layer and the biases of all but the first and the last.
/// The output layer's weights and the outer biases are few and carry the
/// value offset and scale, so they are always kept.
pub fn prunable(layers: usize) -> Vec<(usize, bool)> {
    let last = layers.saturating_sub(1);
    let weights = (0..last).map(|l| (l, false));
    let biases = (1..last).map(|l| (l, true));
    weights.chain(biases).collect()
}

/// One training group at a pruning round.
#[derive(Clone, Debug)]
pub struct GroupState {
    /// Current values of each prunable tensor, MLP after MLP.
    pub values: Vec<Vec<f32>>,
    /// Per prunable tensor, which values are still kept.
    pub kept: Vec<Vec<bool>>,
    /// Each MLP's current loss (mean squared error of its blocks).
    pub losses: Vec<f32>,
}

/// New masks (`[group][tensor][value]`, true = kept) pruning `sparsity` of
/// every prunable tensor across all groups; values pruned before stay
/// pruned.
pub fn masks(groups: &[GroupState], sparsity: f32) -> Vec<Vec<Vec<bool>>> {
    let tensors = groups.first().map_or(0, |g| g.values.len());
    let (lmin, lmax) = min_max(groups.iter().flat_map(|g| g.losses.iter().copied()));
    let mut out: Vec<Vec<Vec<bool>>> = vec![Vec::with_capacity(tensors); groups.len()];
    for t in 0..tensors {
        let (amin, amax) = min_max(
            groups
                .iter()
                .flat_map(|g| g.values[t].iter().map(|v| v.abs())),
        );
        let scores: Vec<Vec<f32>> = groups
            .iter()
            .map(|g| {
                let per_mlp = g.values[t].len() / g.losses.len().max(1);
                g.values[t]
                    .iter()
                    .zip(&g.kept[t])
                    .enumerate()
                    .map(|(j, (v, &kept))| {
                        if !kept {
                            return f32::NEG_INFINITY;
                        }
                        let loss = g.losses[j / per_mlp.max(1)];
                        normalize(v.abs(), amin, amax) + BLOCK_WEIGHT * normalize(loss, lmin, lmax)
                    })
                    .collect()
            })
            .collect();
        let mut all: Vec<f32> = scores.iter().flatten().copied().collect();
        let prune = ((sparsity.clamp(0.0, 1.0) as f64) * all.len() as f64).round() as usize;
        // The prune-th smallest score: it and everything below go.
        let threshold = if prune == 0 {
            f32::NEG_INFINITY
        } else {
            *all.select_nth_unstable_by(prune - 1, f32::total_cmp).1
        };
        for (g, s) in scores.iter().enumerate() {
            out[g].push(
                s.iter()
                    .map(|&x| x > threshold && x != f32::NEG_INFINITY)
                    .collect(),
            );
        }
    }
    out
}

fn min_max(values: impl Iterator<Item = f32>) -> (f32, f32) {
    values.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    })
}

/// (x − lo) / (hi − lo), 0 when the range is empty.
fn normalize(x: f32, lo: f32, hi: f32) -> f32 {
    if hi > lo {
        (x - lo) / (hi - lo)
    } else {
        0.0
    }
}

/// Where the training threads meet at each pruning round. A thread that
/// leaves training early — an error, a panic — abandons the exchange (see
/// [`Attendance`]), so the others stop waiting for it instead of hanging.
pub struct Exchange {
    groups: usize,
    meeting: Mutex<Meeting>,
    arrived: Condvar,
    states: Mutex<Vec<Option<GroupState>>>,
    /// Per round, every group's new masks (written by group 0).
    decided: Mutex<Vec<Vec<Vec<Vec<bool>>>>>,
}

#[derive(Default)]
struct Meeting {
    waiting: usize,
    /// Counts completed meetings, so a thread knows when its own is over.
    generation: usize,
    abandoned: bool,
}

/// The other training threads stopped: one of them failed.
#[derive(Debug)]
pub struct Abandoned;

impl Exchange {
    pub fn new(groups: usize) -> Exchange {
        Exchange {
            groups,
            meeting: Mutex::new(Meeting::default()),
            arrived: Condvar::new(),
            states: Mutex::new(vec![None; groups]),
            decided: Mutex::new(Vec::new()),
        }
    }

    /// Waits until every group has arrived (a barrier that can be abandoned).
    fn meet(&self) -> Result<(), Abandoned> {
        let mut m = self.meeting.lock().unwrap_or_else(|e| e.into_inner());
        if m.abandoned {
            return Err(Abandoned);
        }
        m.waiting += 1;
        if m.waiting == self.groups {
            m.waiting = 0;
            m.generation += 1;
            self.arrived.notify_all();
            return Ok(());
        }
        let generation = m.generation;
        while m.generation == generation && !m.abandoned {
            m = self.arrived.wait(m).unwrap_or_else(|e| e.into_inner());
        }
        if m.generation == generation {
            Err(Abandoned)
        } else {
            Ok(())
        }
    }

    /// Releases everyone waiting, now and later.
    pub fn abandon(&self) {
        let mut m = self.meeting.lock().unwrap_or_else(|e| e.into_inner());
        m.abandoned = true;
        self.arrived.notify_all();
    }

    /// Called by every group at round `round`: hands in its state, waits
    /// for the others, and returns its new masks.
    pub fn round(
        &self,
        group: usize,
        round: usize,
        state: GroupState,
        sparsity: f32,
    ) -> Result<Vec<Vec<bool>>, Abandoned> {
        lock(&self.states)?[group] = Some(state);
        self.meet()?;
        if group == 0 {
            let states: Vec<GroupState> = lock(&self.states)?
                .iter_mut()
                .map(|s| s.take().ok_or(Abandoned))
                .collect::<Result<_, _>>()?;
            let decided = masks(&states, sparsity);
            let mut rounds = lock(&self.decided)?;
            debug_assert_eq!(rounds.len(), round);
            rounds.push(decided);
        }
        self.meet()?;
        Ok(lock(&self.decided)?[round][group].clone())
    }
}

/// A lock whose holder panicked means a failed group.
fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>, Abandoned> {
    m.lock().map_err(|_| Abandoned)
}

/// A training group's attendance: when it ends — the group finished,
/// returned an error or panicked — the exchange is abandoned. After a
/// group's last round nobody waits for it any more, so this only releases
/// groups stuck waiting in a round it will never reach.
pub struct Attendance<'a>(pub &'a Exchange);

impl Drop for Attendance<'_> {
    fn drop(&mut self) {
        self.0.abandon();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outer_layers_are_never_pruned() {
        assert_eq!(
            prunable(4),
            vec![(0, false), (1, false), (2, false), (1, true), (2, true)]
        );
        assert_eq!(prunable(1), vec![]);
    }

    #[test]
    fn small_values_go_first_and_a_badly_fitted_mlp_keeps_more() {
        // Two groups, one tensor, two MLPs each with 10 values 0.1..1.0.
        let values: Vec<f32> = (0..20).map(|i| ((i % 10) + 1) as f32 / 10.0).collect();
        let group = |losses: Vec<f32>| GroupState {
            values: vec![values.clone()],
            kept: vec![vec![true; 20]],
            losses,
        };
        let groups = vec![group(vec![0.0, 0.0]), group(vec![0.0, 1.0])];
        // Scores: 0, 0.11, 0.22, … in three MLPs, 0.1, 0.21, … in the one
        // with the highest loss; the 7 lowest go.
        let m = masks(&groups, 0.175);
        let pruned: usize = m.iter().flatten().flatten().filter(|k| !**k).count();
        assert_eq!(pruned, 7, "17.5% of 40");
        // The MLP with the highest loss loses less than the others.
        let lost = |g: usize, mlp: usize| {
            m[g][0][mlp * 10..(mlp + 1) * 10]
                .iter()
                .filter(|k| !**k)
                .count()
        };
        assert!(lost(1, 1) < lost(0, 0), "{m:?}");
        // Within an MLP, the smallest values go.
        assert!(!m[0][0][0] && m[0][0][9]);
        // A second round keeps what was pruned pruned and prunes more.
        let mut again = groups.clone();
        for (g, s) in again.iter_mut().enumerate() {
            s.kept = m[g].clone();
            // Pruned values are zero; kept ones may have grown.
            for (v, k) in s.values[0].iter_mut().zip(&s.kept[0]) {
                if !*k {
                    *v = 0.0;
                }
            }
        }
        let m2 = masks(&again, 0.5);
        let pruned2: usize = m2.iter().flatten().flatten().filter(|k| !**k).count();
        // Equal scores at the threshold all go: at least half, a few more.
        assert!((20..=24).contains(&pruned2), "{pruned2}");
        for g in 0..2 {
            for j in 0..20 {
                assert!(
                    m[g][0][j] || !m2[g][0][j],
                    "value {j} of group {g} came back"
                );
            }
        }
    }

    #[test]
    fn the_decision_does_not_depend_on_the_grouping() {
        let values: Vec<f32> = (0..24).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
        let losses: Vec<f32> = vec![0.3, 0.1, 0.9, 0.5];
        let one = vec![GroupState {
            values: vec![values.clone()],
            kept: vec![vec![true; 24]],
            losses: losses.clone(),
        }];
        let two: Vec<GroupState> = (0..2)
            .map(|g| GroupState {
                values: vec![values[g * 12..(g + 1) * 12].to_vec()],
                kept: vec![vec![true; 12]],
                losses: losses[g * 2..(g + 1) * 2].to_vec(),
            })
            .collect();
        let a = masks(&one, 0.3);
        let b = masks(&two, 0.3);
        let joined: Vec<bool> = b.iter().flat_map(|g| g[0].clone()).collect();
        assert_eq!(a[0][0], joined);
        // The same through the exchange, one thread per group.
        let exchange = Exchange::new(2);
        let through: Vec<Vec<bool>> = std::thread::scope(|scope| {
            let handles: Vec<_> = two
                .iter()
                .enumerate()
                .map(|(g, state)| {
                    let exchange = &exchange;
                    scope.spawn(move || exchange.round(g, 0, state.clone(), 0.3).unwrap())
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap()[0].clone())
                .collect()
        });
        assert_eq!(through.concat(), joined);
    }

    #[test]
    fn a_thread_that_fails_releases_the_others() {
        let exchange = Exchange::new(2);
        let state = GroupState {
            values: vec![vec![1.0, 2.0]],
            kept: vec![vec![true; 2]],
            losses: vec![0.0],
        };
        let waiting = std::thread::scope(|scope| {
            let waiter = scope.spawn(|| exchange.round(0, 0, state.clone(), 0.5));
            let failing = scope.spawn(|| {
                let _attending = Attendance(&exchange);
                panic!("training failed");
            });
            assert!(failing.join().is_err());
            waiter.join().unwrap()
        });
        assert!(waiting.is_err(), "the waiting group was not released");
    }
}
