//! The serving framework's own time per iteration (a software-stack profile): what a framework's
//! wall time per step adds to the kernels it runs.
//!
//! `host = step + per_sequence·seqs + per_prompt_token·prompt tokens + dispatch + sync·collectives`,
//! where `dispatch` is `launch` per op when ops are launched one by one (eager) and
//! `graph_launch` once per iteration when a captured CUDA graph is replayed. The host time adds
//! to the kernel time: an eager framework's device waits on its host between ops.

use serde::Serialize;

use crate::units::Seconds;

/// Which iterations replay a captured CUDA graph instead of launching their ops one by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Graphs {
    /// None: every op is launched eagerly.
    None,
    /// Iterations with no prefill (decode batches), as vLLM captures them.
    Decode,
    /// Every iteration.
    All,
}

impl Graphs {
    /// The names in a profile file, in declaration order.
    pub const NAMES: [&'static str; 3] = ["none", "decode", "all"];
}

/// A serving framework's time per iteration beyond its kernels, with physical parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Software {
    /// The profile's name (its file stem), said in reports that use it.
    pub name: String,
    /// Host time per iteration: scheduling, input preparation, the sampler's launch and the
    /// results' return to the host.
    pub step: Seconds,
    /// Host time per sequence in the iteration (sampling, detokenising, output bookkeeping).
    pub per_sequence: Seconds,
    /// Host and device time per prompt token of a prefill (input tensors, token and position
    /// copies, slot mapping).
    pub per_prompt_token: Seconds,
    /// Host dispatch per op launched eagerly (the framework's Python and the launch call).
    pub launch: Seconds,
    /// Launch of one captured CUDA graph (replaces every op's `launch`).
    pub graph_launch: Seconds,
    /// Which iterations run as CUDA graphs.
    pub graphs: Graphs,
    /// Most prompts one iteration prefills (the framework runs a batch's prompts in separate
    /// forward passes of this many).
    pub max_prefills: u64,
    /// Per collective and per tensor-parallel rank beyond the first: the wait for the slowest
    /// rank (skew of the ranks' host work) before the collective can start.
    pub sync: Seconds,
}

/// What one iteration is, as the profile counts it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct IterShape {
    /// Ops launched on one device (collectives included).
    pub ops: u64,
    /// Collectives among them.
    pub collectives: u64,
    /// Sequences in the batch.
    pub seqs: u64,
    /// Prompt tokens prefilled.
    pub prompt_tokens: u64,
    /// Whether every sequence decodes (no prefill).
    pub decode_only: bool,
    /// Tensor-parallel degree.
    pub tp: u64,
}

impl Software {
    /// Whether the iteration `it` replays a CUDA graph.
    pub fn graphed(&self, it: &IterShape) -> bool {
        match self.graphs {
            Graphs::None => false,
            Graphs::Decode => it.decode_only,
            Graphs::All => true,
        }
    }

    /// The framework's time for iteration `it`, added to its kernel time.
    pub fn host(&self, it: &IterShape) -> Seconds {
        let dispatch = if self.graphed(it) {
            self.graph_launch
        } else {
            self.launch * it.ops as f64
        };
        let ranks = it.tp.saturating_sub(1) as f64;
        self.step
            + self.per_sequence * it.seqs as f64
            + self.per_prompt_token * it.prompt_tokens as f64
            + dispatch
            + self.sync * (it.collectives as f64 * ranks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(graphs: Graphs) -> Software {
        Software {
            name: "t".into(),
            step: Seconds(1e-3),
            per_sequence: Seconds(1e-4),
            per_prompt_token: Seconds(1e-6),
            launch: Seconds(1e-5),
            graph_launch: Seconds(2e-5),
            graphs,
            max_prefills: 1,
            sync: Seconds(1e-6),
        }
    }

    fn close(a: Seconds, b: f64) -> bool {
        (a.value() - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn host_time_is_the_sum_of_its_parts() {
        let it = IterShape {
            ops: 100,
            collectives: 10,
            seqs: 4,
            prompt_tokens: 512,
            decode_only: false,
            tp: 8,
        };
        // 1 ms + 4·0.1 ms + 512·1 us + 100·10 us + 10·7·1 us.
        let want = 1e-3 + 4e-4 + 512e-6 + 100.0 * 1e-5 + 70e-6;
        assert!(close(profile(Graphs::Decode).host(&it), want));
    }

    #[test]
    fn a_graph_replaces_every_launch_by_one() {
        let it = IterShape {
            ops: 1000,
            seqs: 1,
            decode_only: true,
            tp: 1,
            ..IterShape::default()
        };
        let eager = profile(Graphs::None).host(&it);
        let graphed = profile(Graphs::Decode).host(&it);
        assert!(close(eager - graphed, 1000.0 * 1e-5 - 2e-5));
        // A prefill iteration is not captured under `decode`.
        let prefill = IterShape {
            decode_only: false,
            ..it
        };
        assert_eq!(profile(Graphs::Decode).host(&prefill), eager);
        assert!(close(profile(Graphs::All).host(&prefill), graphed.value()));
    }

    #[test]
    fn one_rank_waits_for_no_other() {
        let one = IterShape {
            collectives: 160,
            tp: 1,
            ..IterShape::default()
        };
        let p = profile(Graphs::None);
        assert_eq!(p.host(&one), p.step);
        let more = |tp| p.host(&IterShape { tp, ..one });
        assert!(more(2) < more(4) && more(4) < more(8));
    }
}
