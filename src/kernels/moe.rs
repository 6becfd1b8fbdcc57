//! Mixture of experts: the router (softmax, group-limited top-k, renormalised weights), dispatch of tokens to
//! experts, the SwiGLU expert FFN, and the weighted combine; and a whole MoE layer run with its
//! experts split between units.

use super::elementwise::{act_mul, softmax_rows};
use super::gemm::{gemm, sgemm};
use super::{Count, Elem, elems, load, load_stored, store};
use crate::model::{Activation, GroupLimit, Router};
use crate::work::Dtype;

/// Each token's `top_k` (expert, weight) choices, weights summing to one.
#[derive(Debug, Clone, PartialEq)]
pub struct Routing {
    /// Experts in the layer.
    pub experts: usize,
    /// Experts each token is routed to.
    pub top_k: usize,
    /// [tokens × top_k], each token's choices by decreasing weight.
    pub choice: Vec<(usize, f32)>,
}

impl Routing {
    /// Tokens routed.
    pub fn tokens(&self) -> usize {
        self.choice.len() / self.top_k.max(1)
    }

    /// Tokens routed to each expert.
    pub fn counts(&self) -> Vec<u64> {
        let mut n = vec![0u64; self.experts];
        for &(e, _) in &self.choice {
            n[e] += 1;
        }
        n
    }

    /// Dispatch: the tokens routed to `expert`, in token order.
    pub fn tokens_of(&self, expert: usize) -> Vec<usize> {
        self.choice
            .iter()
            .enumerate()
            .filter(|(_, (e, _))| *e == expert)
            .map(|(i, _)| i / self.top_k)
            .collect()
    }
}

/// Routes tokens from router logits [tokens, experts] as Mixtral does: softmax over all experts
/// (4 FLOPs per logit), the `top_k` largest (comparisons only; ties to the lower expert id), then
/// their weights renormalised to sum to one (an add and a multiply per choice).
pub fn route<E: Elem>(logits: &[E], experts: usize, top_k: usize, c: &mut Count) -> Routing {
    route_with(logits, (experts, top_k), Router::default(), &[], c)
}

/// Routes tokens from router logits [tokens, experts] as `router` says, counting what
/// [`Router::gate_flops`] charges per token: the softmax scores (4 FLOPs per logit; a sigmoid,
/// DeepSeek-V3's, costs the same); under group-limited routing the per-expert `bias` added to
/// each score (1 per logit; `bias` is a per-channel constant, like a norm's gain, and not a
/// stream; missing entries are 0), each group's two best biased scores summed (1 per group of
/// two or more), its best `top_groups` groups kept and the top-k chosen among their experts by
/// biased score (comparisons only; ties to the lower id), weighted by the unbiased score; and,
/// when `router.norm_topk`, the chosen weights renormalised to sum to one (2 per choice).
pub fn route_with<E: Elem>(
    logits: &[E],
    (experts, top_k): (usize, usize),
    router: Router,
    bias: &[f32],
    c: &mut Count,
) -> Routing {
    let l = load(logits, &mut c.act_in);
    let p = softmax_rows(&l, experts, &mut c.flops);
    let mut choice = Vec::with_capacity(elems(&[p.len() / experts.max(1), top_k]));
    for row in p.chunks(experts) {
        let candidates: Vec<usize> = match router.groups {
            Some(g) => {
                let biased: Vec<f32> = (0..experts)
                    .map(|e| row[e] + bias.get(e).copied().unwrap_or(0.0))
                    .collect();
                c.flops += experts as u64;
                let kept = best_groups(&biased, g, c);
                let mut idx: Vec<usize> = kept.into_iter().flatten().collect();
                sort_desc(&mut idx, &biased);
                idx
            }
            None => {
                let mut idx: Vec<usize> = (0..experts).collect();
                sort_desc(&mut idx, row);
                idx
            }
        };
        let top = &candidates[..top_k.min(candidates.len())];
        let inv = if router.norm_topk {
            c.flops += 2 * top.len() as u64;
            1.0 / top.iter().map(|&e| row[e]).sum::<f32>()
        } else {
            1.0
        };
        choice.extend(top.iter().map(|&e| (e, row[e] * inv)));
    }
    Routing {
        experts,
        top_k,
        choice,
    }
}

/// Sorts expert ids by decreasing `score`, ties to the lower id.
fn sort_desc(idx: &mut [usize], score: &[f32]) {
    idx.sort_by(|&a, &b| score[b].total_cmp(&score[a]).then(a.cmp(&b)));
}

/// The experts of the `g.top_groups` best of `g.groups` equal groups of `biased` scores, each
/// group scored by the sum of its two best scores (one add per group of two or more; a group of
/// one is scored by its one score), best group first (ties to the lower group).
fn best_groups(biased: &[f32], g: GroupLimit, c: &mut Count) -> Vec<Vec<usize>> {
    let (ng, keep) = (elems(&[g.groups]), elems(&[g.top_groups]));
    let n = biased.len() / ng.max(1);
    let mut groups: Vec<(f32, Vec<usize>)> = (0..ng)
        .map(|j| {
            let mut members: Vec<usize> = (j * n..(j + 1) * n).collect();
            sort_desc(&mut members, biased);
            let score = members.iter().take(2).map(|&e| biased[e]).sum::<f32>();
            c.flops += members.len().min(2).saturating_sub(1) as u64;
            (score, members)
        })
        .collect();
    // A stable sort keeps the lower group first on ties.
    groups.sort_by(|a, b| b.0.total_cmp(&a.0));
    groups.into_iter().take(keep).map(|(_, m)| m).collect()
}

/// One expert's weights: gate and up [hidden, inner], down [inner, hidden]; a two-matrix
/// (ungated) expert has an empty `gate`.
#[derive(Debug, Clone)]
pub struct Expert<E> {
    /// Gate projection [hidden, inner].
    pub gate: Vec<E>,
    /// Up projection [hidden, inner].
    pub up: Vec<E>,
    /// Down projection [inner, hidden].
    pub down: Vec<E>,
}

/// A fused SwiGLU expert on the rows `rows` of x [tokens, h], over the inner columns `cols` (all
/// of them, or a tensor-parallel share whose output is a partial sum). Activations enter and
/// leave once; the intermediate stays on chip. FLOPs: 2·n·h per inner column for each of gate,
/// up and down, and 5 per intermediate element for silu(gate)·up.
pub fn expert_ffn<E: Elem>(
    x: &[E],
    rows: &[usize],
    w: &Expert<E>,
    (h, inner): (usize, usize),
    cols: &[usize],
    c: &mut Count,
) -> Vec<E> {
    let silu = (h, inner, Activation::Silu);
    expert_ffn_act(x, rows, w, silu, cols, E::DTYPE, c)
}

/// [`expert_ffn`] with activation `a` and the expert's weights stored in `stored` (gpt-oss's
/// MXFP4 experts; `E::DTYPE` for weights stored as they compute): act(x·gate)·(x·up) when
/// `w.gate` is not empty, else the two-matrix act(x·up); FLOPs 2·n·h per inner column for each
/// matrix, and [`Activation::ffn_flops`] per intermediate element. The weight bytes are counted
/// at `stored`'s size ([`load_stored`]); the arithmetic runs on the values as `E` holds them
/// (dequantized weights).
pub fn expert_ffn_act<E: Elem>(
    x: &[E],
    rows: &[usize],
    w: &Expert<E>,
    (h, inner, a): (usize, usize, Activation),
    cols: &[usize],
    stored: Dtype,
    c: &mut Count,
) -> Vec<E> {
    let n = rows.len();
    let xs: Vec<E> = rows
        .iter()
        .flat_map(|&r| x[r * h..(r + 1) * h].iter().copied())
        .collect();
    let xs = load(&xs, &mut c.act_in);
    let pick = |m: &[E]| -> Vec<E> {
        (0..h)
            .flat_map(|r| cols.iter().map(move |&j| m[r * inner + j]))
            .collect()
    };
    let gated = !w.gate.is_empty();
    let g = gated.then(|| load_stored(&pick(&w.gate), stored, &mut c.weights));
    let u = load_stored(&pick(&w.up), stored, &mut c.weights);
    let d: Vec<E> = cols
        .iter()
        .flat_map(|&j| w.down[j * h..(j + 1) * h].iter().copied())
        .collect();
    let d = load_stored(&d, stored, &mut c.weights);
    let ni = cols.len();
    let ux = sgemm(n, h, ni, &xs, &u, &mut c.flops);
    let act = match g {
        Some(g) => {
            let gx = sgemm(n, h, ni, &xs, &g, &mut c.flops);
            act_mul(a, &gx, Some(&ux), &mut c.flops)
        }
        None => act_mul(a, &ux, None, &mut c.flops),
    };
    let y = sgemm(n, ni, h, &act, &d, &mut c.flops);
    store(&y, &mut c.act_out)
}

/// A fused-MoE launch (vLLM's fused MoE, DeepGEMM's grouped GEMM): the experts `group` of a
/// layer in one kernel. The tokens routed to them are gathered, sorted by expert, into one
/// [Σ nₑ, h] block read once; each expert's matrices are read once and multiply its segment of
/// the block; the outputs leave as one block. Returns each expert's rows (in dispatch order,
/// as [`expert_ffn`] gives them), indexed like `group`. The work is the sum of the experts' own:
/// fusing saves launches, not FLOPs or bytes.
pub fn grouped_experts<E: Elem>(
    x: &[E],
    routing: &Routing,
    experts: &[Expert<E>],
    group: &[usize],
    (h, inner, a): (usize, usize, Activation),
    c: &mut Count,
) -> Vec<Vec<E>> {
    let rows: Vec<Vec<usize>> = group.iter().map(|&e| routing.tokens_of(e)).collect();
    let block: Vec<E> = rows
        .iter()
        .flatten()
        .flat_map(|&r| x[r * h..(r + 1) * h].iter().copied())
        .collect();
    let block = load(&block, &mut c.act_in);
    let mut out = Vec::with_capacity(group.len());
    let mut at = 0;
    for (&e, r) in group.iter().zip(&rows) {
        let seg = &block[at * h..(at + r.len()) * h];
        at += r.len();
        let w = &experts[e];
        let u = load(&w.up, &mut c.weights);
        let ux = sgemm(r.len(), h, inner, seg, &u, &mut c.flops);
        let act = if w.gate.is_empty() {
            act_mul(a, &ux, None, &mut c.flops)
        } else {
            let g = load(&w.gate, &mut c.weights);
            let gx = sgemm(r.len(), h, inner, seg, &g, &mut c.flops);
            act_mul(a, &gx, Some(&ux), &mut c.flops)
        };
        let d = load(&w.down, &mut c.weights);
        out.push(sgemm(r.len(), inner, h, &act, &d, &mut c.flops));
    }
    let flat: Vec<f32> = out.iter().flatten().copied().collect();
    let stored = store(&flat, &mut c.act_out);
    let mut at = 0;
    out.iter()
        .map(|o| {
            let v = stored[at..at + o.len()].to_vec();
            at += o.len();
            v
        })
        .collect()
}

/// Combine: each token's output is the weighted sum of its experts' outputs. `outputs[e]` holds
/// expert e's rows in dispatch order. 2 FLOPs (a multiply and an add) per element per choice.
pub fn combine<E: Elem>(r: &Routing, outputs: &[Vec<E>], h: usize, c: &mut Count) -> Vec<E> {
    let mut next = vec![0usize; r.experts];
    let mut y = vec![0f32; elems(&[r.tokens(), h])];
    for (i, &(e, w)) in r.choice.iter().enumerate() {
        let t = i / r.top_k;
        let slot = next[e];
        next[e] += 1;
        let row = load(&outputs[e][slot * h..(slot + 1) * h], &mut c.act_in);
        for (o, v) in y[t * h..(t + 1) * h].iter_mut().zip(row) {
            *o += w * v;
        }
    }
    c.flops += 2 * elems(&[r.choice.len(), h]) as u64;
    store(&y, &mut c.act_out)
}

/// A MoE layer's tensors.
#[derive(Debug, Clone)]
pub struct MoeLayer<E> {
    /// Model width.
    pub hidden: usize,
    /// Each expert's FFN width.
    pub inner: usize,
    /// Experts each token is routed to.
    pub top_k: usize,
    /// Router weight [hidden, experts].
    pub router: Vec<E>,
    /// The experts' weights.
    pub experts: Vec<Expert<E>>,
}

/// Result of a MoE layer run with its experts split between units.
#[derive(Debug, Clone)]
pub struct MoeRun<E> {
    /// Output rows [tokens, hidden].
    pub out: Vec<E>,
    /// Each token's experts and gate weights.
    pub routing: Routing,
    /// Work of the experts each unit ran.
    pub per_unit: Vec<Count>,
    /// Work of the router, top-k and combine (on the unit that dispatches).
    pub shared: Count,
}

/// Runs a MoE layer on x [tokens, hidden]: route, dispatch each expert's tokens to the unit that
/// holds it (`units[u]` lists unit u's experts), run the experts there, combine.
pub fn moe_layer<E: Elem>(m: &MoeLayer<E>, x: &[E], units: &[Vec<usize>]) -> MoeRun<E> {
    let (h, ne) = (m.hidden, m.experts.len());
    let t = x.len() / h;
    let mut shared = Count::default();
    let logits = gemm(t, h, ne, x, &m.router, &mut shared);
    let routing = route(&logits, ne, m.top_k, &mut shared);
    let mut outputs = vec![Vec::new(); ne];
    let all: Vec<usize> = (0..m.inner).collect();
    let mut per_unit = vec![Count::default(); units.len()];
    for (u, experts) in units.iter().enumerate() {
        for &e in experts {
            let rows = routing.tokens_of(e);
            if !rows.is_empty() {
                outputs[e] = expert_ffn(
                    x,
                    &rows,
                    &m.experts[e],
                    (h, m.inner),
                    &all,
                    &mut per_unit[u],
                );
            }
        }
    }
    let out = combine(&routing, &outputs, h, &mut shared);
    MoeRun {
        out,
        routing,
        per_unit,
        shared,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top2_of_four_renormalises_the_chosen_probabilities() {
        // Logits ln 1, ln 2, ln 3, ln 4: softmax 0.1..0.4; top 2 are experts 3 and 2 with
        // weights 4/7 and 3/7.
        let l: Vec<f32> = [1f32, 2., 3., 4.].iter().map(|v| v.ln()).collect();
        let mut c = Count::default();
        let r = route(&l, 4, 2, &mut c);
        assert_eq!((r.choice[0].0, r.choice[1].0), (3, 2));
        assert!((r.choice[0].1 - 4.0 / 7.0).abs() < 1e-6);
        assert!((r.choice[1].1 - 3.0 / 7.0).abs() < 1e-6);
        assert_eq!(c.flops, 4 * 4 + 2 * 2);
        assert_eq!(r.counts(), vec![0, 0, 1, 1]);
    }

    #[test]
    fn an_unrenormalised_router_keeps_the_softmax_weights() {
        // OLMoE's and Qwen2-MoE's norm_topk_prob = false: experts 3 and 2 keep 0.4 and 0.3, and
        // only the softmax is counted (4 per logit).
        let l: Vec<f32> = [1f32, 2., 3., 4.].iter().map(|v| v.ln()).collect();
        let plain = Router {
            norm_topk: false,
            groups: None,
        };
        let mut c = Count::default();
        let r = route_with(&l, (4, 2), plain, &[], &mut c);
        assert_eq!((r.choice[0].0, r.choice[1].0), (3, 2));
        assert!((r.choice[0].1 - 0.4).abs() < 1e-6 && (r.choice[1].1 - 0.3).abs() < 1e-6);
        assert_eq!(c.flops, plain.gate_flops(4, 2));
        assert_eq!(c.flops, 16);
    }

    #[test]
    fn group_limited_routing_chooses_within_the_best_group_by_biased_score() {
        // Scores 0.1..0.4 in groups {0, 1} and {2, 3}; a bias of 0.45 on expert 0 makes the
        // first group's biased sum 0.55 + 0.2 = 0.75 beat 0.3 + 0.4 = 0.7. With one group kept
        // the top 2 are experts 0 and 1 (not 0 and 3, the best two overall), weighted by their
        // unbiased scores renormalised: 1/3 and 2/3, expert 0 first (by biased score).
        let l: Vec<f32> = [1f32, 2., 3., 4.].iter().map(|v| v.ln()).collect();
        let router = Router {
            norm_topk: true,
            groups: Some(GroupLimit {
                groups: 2,
                top_groups: 1,
            }),
        };
        let mut c = Count::default();
        let r = route_with(&l, (4, 2), router, &[0.45, 0.0, 0.0, 0.0], &mut c);
        assert_eq!((r.choice[0].0, r.choice[1].0), (0, 1));
        assert!((r.choice[0].1 - 1.0 / 3.0).abs() < 1e-6);
        assert!((r.choice[1].1 - 2.0 / 3.0).abs() < 1e-6);
        // Softmax 16, bias 4, one add per group 2, renormalisation 2·2.
        assert_eq!(c.flops, 16 + 4 + 2 + 4);
        assert_eq!(c.flops, router.gate_flops(4, 2));
    }

    #[test]
    fn mxfp4_expert_weights_are_counted_at_17_bytes_per_32() {
        // h = 32, inner = 1: three matrices of 32 elements, one MXFP4 block each (32 four-bit
        // values and an 8-bit scale: 17 bytes); the answer is the dequantized weights' own.
        let w = Expert {
            gate: vec![0.5f32; 32],
            up: vec![0.25; 32],
            down: vec![1.0; 32],
        };
        let x = vec![0.125f32; 32];
        let a = (32, 1, Activation::Silu);
        let (mut c4, mut c32) = (Count::default(), Count::default());
        let y4 = expert_ffn_act(&x, &[0], &w, a, &[0], Dtype::Mxfp4, &mut c4);
        let y32 = expert_ffn_act(&x, &[0], &w, a, &[0], Dtype::Fp32, &mut c32);
        assert_eq!(y4, y32);
        assert_eq!((c4.weights, c32.weights), (3 * 17, 3 * 32 * 4));
        assert_eq!((c4.flops, c4.act_in), (c32.flops, c32.act_in));
    }

    #[test]
    fn combine_weights_expert_rows() {
        let r = Routing {
            experts: 2,
            top_k: 2,
            choice: vec![(0, 0.25), (1, 0.75)],
        };
        let outs = vec![vec![4.0f32], vec![8.0f32]];
        let mut c = Count::default();
        assert_eq!(combine(&r, &outs, 1, &mut c), vec![7.0]);
        assert_eq!((c.flops, c.act_in, c.act_out), (4, 8, 4));
    }

    #[test]
    fn an_expert_with_unit_weights_by_hand() {
        // h = 1, inner = 1: gate = up = down = 1, x = 2: silu(2)·2 = 2·2/(1+e^-2).
        let w = Expert {
            gate: vec![1.0f32],
            up: vec![1.0],
            down: vec![1.0],
        };
        let mut c = Count::default();
        let y = expert_ffn(&[2.0f32], &[0], &w, (1, 1), &[0], &mut c);
        let want = 4.0 / (1.0 + (-2f32).exp());
        assert!((y[0] - want).abs() < 1e-6);
        assert_eq!(c.flops, 6 + 5);
        assert_eq!(c.weights, 12);
    }
}
