//! Unit tests of `dyad validate`'s scaling.

use super::*;

#[test]
fn scaling_keeps_grouping_and_experts() {
    let m = config::load_model("mixtral-8x7b".as_ref()).unwrap();
    let s = scaled(&m, 16, 1).unwrap();
    assert_eq!((s.heads, s.kv_heads, s.head_dim, s.hidden), (32, 8, 8, 256));
    assert_eq!(
        s.moe.map(|x| (x.experts, x.top_k, x.intermediate)),
        Some((8, 2, 896))
    );
    assert_eq!(s.vocab, 2048);
    assert!(scaled(&m, 3, 1).is_err());
    assert!(scaled(&m, 128, 1).is_err());
}
