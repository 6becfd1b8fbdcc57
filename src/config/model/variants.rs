//! The variant keys of a model (issue 13), top-level keys so that a sweep's `model.KEY` axis
//! varies them: MatryoshkaKV ranks, FinerCut's pruned sublayers, MASFormer's mixed spans,
//! DELTA's selection and sparse layers, DeepSeek-V3.2's indexer, and skipped layers. Each is
//! applied to the family's plans; a key at its neutral value (a budget of 1, an empty list)
//! leaves them as they are.

use super::doc::Doc;
use crate::config::error::ConfigError;
use crate::model::{Attention, KvRanks, LayerPlan, Scorer, Sparse};

/// The variant keys a dyad model TOML may set.
pub(super) const KEYS: &[&str] = &[
    "kv_budget",
    "key_rank",
    "value_rank",
    "key_ranks",
    "value_ranks",
    "pruned_attention_layers",
    "pruned_ffn_layers",
    "local_attention_window",
    "local_attention_kind",
    "full_attention_layers",
    "sparse_topk",
    "sparse_page",
    "sparse_select_layers",
    "sparse_layers",
    "index_topk",
    "index_n_heads",
    "index_head_dim",
    "skip_layers",
];

/// Applies every variant key of `doc` to `plans` of a model of `heads` query heads of
/// `head_dim` elements.
pub(super) fn apply(
    doc: &Doc,
    plans: &mut [LayerPlan],
    (heads, head_dim): (u64, u64),
) -> Result<(), ConfigError> {
    ranks(doc, plans, head_dim)?;
    for l in layers(doc, "pruned_attention_layers", plans.len())? {
        plans[l].variant.attention_pruned = true;
    }
    for l in layers(doc, "pruned_ffn_layers", plans.len())? {
        plans[l].variant.ffn_pruned = true;
    }
    for l in layers(doc, "skip_layers", plans.len())? {
        plans[l].variant.skipped = true;
    }
    spans(doc, plans)?;
    delta(doc, plans, (heads, head_dim))?;
    indexer(doc, plans)
}

/// The layer indices `key` lists, each checked against the `n` layers.
fn layers(doc: &Doc, key: &str, n: usize) -> Result<Vec<usize>, ConfigError> {
    doc.uint_list(key)?
        .into_iter()
        .map(|l| match usize::try_from(l) {
            Ok(i) if i < n => Ok(i),
            _ => Err(doc.err(
                key,
                format!(
                    "`{key}` names layer {l}; the model has layers 0 to {}",
                    n - 1
                ),
            )),
        })
        .collect()
}

/// MatryoshkaKV's ranks: `kv_budget` (the fraction of each head's key and value elements
/// kept, in (0, 1]), `key_rank` and `value_rank` (elements per head in every layer), or
/// `key_ranks` and `value_ranks` (one per layer). Full rank is the plain layer.
fn ranks(doc: &Doc, plans: &mut [LayerPlan], d: u64) -> Result<(), ConfigError> {
    let n = plans.len();
    let uniform = match doc.opt_real("kv_budget")? {
        Some(b) if b > 1.0 => {
            return Err(doc.err("kv_budget", format!("`kv_budget` = {b} is more than 1")));
        }
        Some(b) => Some(((b * d as f64).round() as u64).max(1)),
        None => None,
    };
    let per_layer = |key: &str, one: &str| -> Result<Vec<u64>, ConfigError> {
        let list = doc.uint_list(key)?;
        let one = doc.opt_uint(one)?.or(uniform).unwrap_or(d);
        match list.len() {
            0 => Ok(vec![one; n]),
            len if len == n => Ok(list),
            len => Err(doc.err(
                key,
                format!("`{key}` lists {len} layers; the model has {n}"),
            )),
        }
    };
    let (keys, values) = (
        per_layer("key_ranks", "key_rank")?,
        per_layer("value_ranks", "value_rank")?,
    );
    for (l, (&k, &v)) in keys.iter().zip(&values).enumerate() {
        for (key, r) in [("key_rank", k), ("value_rank", v)] {
            if r == 0 || r > d {
                let msg = format!("`{key}` of layer {l} is {r}: a rank is 1 to head_dim ({d})");
                return Err(doc.err(rank_key(doc, key), msg));
            }
        }
        if (k, v) == (d, d) {
            continue;
        }
        if plans[l].mla.is_some() {
            let msg = "MatryoshkaKV ranks apply to query/KV heads; this layer has latent attention";
            return Err(doc.err(rank_key(doc, "key_rank"), msg));
        }
        plans[l].variant.ranks = Some(KvRanks { key: k, value: v });
    }
    Ok(())
}

/// The rank key `doc` writes (its per-layer list, its uniform rank, or the budget).
fn rank_key(doc: &Doc, key: &'static str) -> &'static str {
    let list = if key == "key_rank" {
        "key_ranks"
    } else {
        "value_ranks"
    };
    [list, key, "kv_budget"]
        .into_iter()
        .find(|k| doc.writes(k))
        .unwrap_or(key)
}

/// MASFormer's mixed spans: with `local_attention_window` = w, every layer not in
/// `full_attention_layers` attends locally, a sliding window of w (`local_attention_kind` =
/// "window", the default) or blocks of w ("chunk"); the listed layers attend fully.
fn spans(doc: &Doc, plans: &mut [LayerPlan]) -> Result<(), ConfigError> {
    let full = layers(doc, "full_attention_layers", plans.len())?;
    let Some(w) = doc.opt_uint("local_attention_window")? else {
        if doc.obj.contains_key("full_attention_layers") {
            let msg = "`full_attention_layers` is set and `local_attention_window` is not";
            return Err(doc.err("full_attention_layers", msg));
        }
        return Ok(());
    };
    let local = match doc.str_field("local_attention_kind")? {
        None | Some("window") => Attention::Window { tokens: w },
        Some("chunk") => Attention::Chunk { tokens: w },
        Some(k) => {
            let msg = format!("`local_attention_kind` = \"{k}\": \"window\" or \"chunk\"");
            return Err(doc.err("local_attention_kind", msg));
        }
    };
    for (l, p) in plans.iter_mut().enumerate() {
        p.attention = if full.contains(&l) {
            Attention::Full
        } else {
            local
        };
    }
    Ok(())
}

/// DELTA: with `sparse_topk` = k, the `sparse_select_layers` score the context with their own
/// heads and keys, and the `sparse_layers` read only the k tokens the latest selection layer at
/// or before them chose, in pages of `sparse_page` tokens (default 1).
fn delta(doc: &Doc, plans: &mut [LayerPlan], (heads, dim): (u64, u64)) -> Result<(), ConfigError> {
    let n = plans.len();
    let (select, sparse) = (
        layers(doc, "sparse_select_layers", n)?,
        layers(doc, "sparse_layers", n)?,
    );
    let Some(kept) = doc.opt_uint("sparse_topk")? else {
        if let Some(k) = ["sparse_select_layers", "sparse_layers", "sparse_page"]
            .into_iter()
            .find(|k| doc.obj.contains_key(*k))
        {
            return Err(doc.err(k, format!("`{k}` is set and `sparse_topk` is not")));
        }
        return Ok(());
    };
    let page = doc.opt_uint("sparse_page")?.unwrap_or(1);
    let first = select.iter().min().copied();
    for &l in &select {
        plans[l].variant.select = Some(Scorer {
            heads,
            dim,
            own_keys: false,
            kept,
        });
    }
    for &l in &sparse {
        if first.is_none_or(|f| f > l) {
            let msg = format!("`sparse_layers` names layer {l}, before any `sparse_select_layers`");
            return Err(doc.err("sparse_layers", msg));
        }
        set_sparse(doc, &mut plans[l], Sparse { kept, page }, "sparse_layers")?;
    }
    Ok(())
}

/// DeepSeek-V3.2's sparse attention (its config's `index_topk`, `index_n_heads`,
/// `index_head_dim`): in every layer a lightning indexer of its own keys scores the context and
/// the attention reads the top `index_topk` tokens.
fn indexer(doc: &Doc, plans: &mut [LayerPlan]) -> Result<(), ConfigError> {
    let Some(kept) = doc.opt_uint("index_topk")? else {
        return Ok(());
    };
    if doc.obj.contains_key("sparse_topk") {
        return Err(doc.err("index_topk", "`index_topk` and `sparse_topk` are both set"));
    }
    let scorer = Scorer {
        heads: doc.uint("index_n_heads")?,
        dim: doc.uint("index_head_dim")?,
        own_keys: true,
        kept,
    };
    for p in plans.iter_mut().filter(|p| p.has_attention()) {
        p.variant.select = Some(scorer);
        set_sparse(doc, p, Sparse { kept, page: 1 }, "index_topk")?;
    }
    Ok(())
}

/// Makes `p` read sparsely; refused over chunked attention (a query's chunk already bounds it).
fn set_sparse(doc: &Doc, p: &mut LayerPlan, s: Sparse, key: &str) -> Result<(), ConfigError> {
    if matches!(p.attention, Attention::Chunk { .. }) {
        let msg = format!("`{key}`: a sparse read over chunked attention is not modeled");
        return Err(doc.err(key, msg));
    }
    p.variant.sparse = Some(s);
    Ok(())
}
