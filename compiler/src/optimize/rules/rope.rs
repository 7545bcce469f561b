//! RoPE on load: a fused attention whose q and k are both rotary embeddings
//! with the same parameters rotates them itself as it loads them, so rotated q
//! and k never go through memory. In a training graph, the gradients of such a
//! node fold the same way, and dq, dk take the transposed rotation (autodiff's
//! rope rule, a rope with the position scale negated) on their way out.
//!
//! Rope's position is the index on axis 2 of its `[B, H, N, D]` operand, and a
//! fused attention reads q and k on that axis too, so the identities hold
//! without conditions on the layout. Between the rope and the attention, only
//! grouped-query attention's `repeat_kv` of k (broadcast along a new axis 2,
//! then a reshape merging it into the heads) is looked through: it copies whole
//! rows and keeps their positions. Other reshapes and permutes are not matched,
//! and their rope stays a kernel of its own.

use egg::Subst;

use super::{WeftRewrite, data, guarded, shape};
use crate::optimize::analysis::WeftGraph;

/// The names of this file's rules (`OptimizeOptions::rope_on_load` turns them on).
pub const RULES: [&str; 4] =
    ["fuse-rope-on-load", "fuse-rope-on-load-repeat-kv", "fuse-rope-on-load-dv", "fuse-rope-on-load-dq-dk"];

pub fn rules() -> Result<Vec<WeftRewrite>, String> {
    Ok(vec![
        // fused-attention(rope(q), rope(k), v) = fused-attention[rope](q, k, v).
        guarded(
            "fuse-rope-on-load",
            "(fused-attention ?s ?ms (rope ?t ?p ?f ?q) (rope ?t ?p ?f ?k) ?v)",
            "(fused-attention-rope ?s ?t ?p ?f ?ms ?q ?k ?v)",
            always,
        )?,
        // fused-attention(rope(q), repeat_kv(rope(k)), v) = fused-attention[rope](q, repeat_kv(k), v),
        // repeat_kv = reshape [B, H, N, D] of broadcast along axis 2: rope turns every copy alike.
        guarded(
            "fuse-rope-on-load-repeat-kv",
            "(fused-attention ?s ?ms (rope ?t ?p ?f ?q) (reshape ?sh (broadcast 2 ?r (rope ?t ?p ?f ?k))) ?v)",
            "(fused-attention-rope ?s ?t ?p ?f ?ms ?q (reshape ?sh (broadcast 2 ?r ?k)) ?v)",
            repeat_kv,
        )?,
        // dv(rope(q), rope(k), v, do) = dv[rope](q, k, v, do).
        guarded(
            "fuse-rope-on-load-dv",
            "(fused-attention-grad 2 ?s ?ms (rope ?t ?p ?f ?q) (rope ?t ?p ?f ?k) ?v ?do)",
            "(fused-attention-grad-rope 2 ?s ?t ?p ?f ?ms ?q ?k ?v ?do)",
            always,
        )?,
        // rope_{-p}(dq/dk(rope_p(q), rope_p(k), v, do)) = dq/dk[rope_p](q, k, v, do): the
        // chain rule through the rotation, which a [rope] gradient applies before storing.
        guarded(
            "fuse-rope-on-load-dq-dk",
            "(rope ?t ?back ?f (fused-attention-grad ?g ?s ?ms (rope ?t ?p ?f ?q) (rope ?t ?p ?f ?k) ?v ?do))",
            "(fused-attention-grad-rope ?g ?s ?t ?p ?f ?ms ?q ?k ?v ?do)",
            transposed,
        )?,
    ])
}

fn always(_: &mut WeftGraph, subst: &Subst) -> Option<Subst> {
    Some(subst.clone())
}

/// The repeat keeps k's batch, positions and head dimension: `[B, KVH, N, D]`
/// becomes `[B, KVH·r, N, D]`.
fn repeat_kv(egraph: &mut WeftGraph, subst: &Subst) -> Option<Subst> {
    let (&[b, kv, n, d], &[b2, h, n2, d2]) =
        (shape(egraph, subst, "?k")?, data(egraph, subst, "?sh")?.list()?)
    else {
        return None;
    };
    let r = data(egraph, subst, "?r")?.int()?;
    let same = |x: usize, y: i64| i64::try_from(x).is_ok_and(|x| x == y);
    let heads = i64::try_from(kv).ok()?.checked_mul(r)?;
    (same(b, b2) && same(n, n2) && same(d, d2) && heads == h).then(|| subst.clone())
}

/// The outer rope turns back by exactly the inner one (position scale negated),
/// and the gradient is dq or dk, not dv.
fn transposed(egraph: &mut WeftGraph, subst: &Subst) -> Option<Subst> {
    let grad = data(egraph, subst, "?g")?.int()?;
    let (p, back) = (data(egraph, subst, "?p")?.float()?, data(egraph, subst, "?back")?.float()?);
    ((grad == 0 || grad == 1) && back == -p).then(|| subst.clone())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check, check_not};
    use super::*;

    const MS: &str = "(head-masks (entry 0 4 m-causal))";

    fn rope(p: &str, x: &str) -> String {
        format!("(rope 10000.0 {p} default {x})")
    }

    #[test]
    fn fuse_rope_on_load() {
        let rules = rules().unwrap();
        check(
            &rules,
            "fuse-rope-on-load",
            &format!("(fused-attention 0.25 {MS} {} {} V)", rope("2.0", "Q"), rope("2.0", "K")),
            &format!("(fused-attention-rope 0.25 10000.0 2.0 default {MS} Q K V)"),
        );
        // q and k must turn alike: the same scale and the same frequencies.
        check_not(
            &rules,
            "fuse-rope-on-load",
            &format!("(fused-attention 0.25 {MS} {} {} V)", rope("2.0", "Q"), rope("1.0", "K")),
            &format!("(fused-attention-rope 0.25 10000.0 2.0 default {MS} Q K V)"),
        );
        let llama3 = "(rope 10000.0 2.0 llama3:8.0:1.0:4.0:8192.0 K)";
        check_not(
            &rules,
            "fuse-rope-on-load",
            &format!("(fused-attention 0.25 {MS} {} {llama3} V)", rope("2.0", "Q")),
            &format!("(fused-attention-rope 0.25 10000.0 2.0 default {MS} Q K V)"),
        );
    }

    #[test]
    fn fuse_rope_on_load_repeat_kv() {
        let rules = rules().unwrap();
        // One key/value head repeated for 4 query heads, as transformers' repeat_kv.
        let k1 = "(input k f32 (list 1 1 16 8))";
        let repeat = |x: &str| format!("(reshape (list 1 4 16 8) (broadcast 2 4 {x}))");
        check(
            &rules,
            "fuse-rope-on-load-repeat-kv",
            &format!("(fused-attention 0.25 {MS} {} {} V)", rope("2.0", "Q"), repeat(&rope("2.0", k1))),
            &format!("(fused-attention-rope 0.25 10000.0 2.0 default {MS} Q {} V)", repeat(k1)),
        );
        // A reshape that moves positions is not a repeat.
        let k2 = "(input k f32 (list 1 2 32 8))";
        let fold = |x: &str| format!("(reshape (list 1 4 16 8) (broadcast 2 1 {x}))");
        check_not(
            &rules,
            "fuse-rope-on-load-repeat-kv",
            &format!("(fused-attention 0.25 {MS} {} {} V)", rope("2.0", "Q"), fold(&rope("2.0", k2))),
            &format!("(fused-attention-rope 0.25 10000.0 2.0 default {MS} Q {} V)", fold(k2)),
        );
    }

    #[test]
    fn fuse_rope_on_load_dv() {
        let rules = rules().unwrap();
        let (q, k) = (rope("2.0", "Q"), rope("2.0", "K"));
        check(
            &rules,
            "fuse-rope-on-load-dv",
            &format!("(fused-attention-grad 2 0.25 {MS} {q} {k} V (input do f32 (list 1 4 16 8)))"),
            &format!(
                "(fused-attention-grad-rope 2 0.25 10000.0 2.0 default {MS} Q K V (input do f32 (list 1 4 16 8)))"
            ),
        );
    }

    #[test]
    fn fuse_rope_on_load_dq_dk() {
        let rules = rules().unwrap();
        let (q, k) = (rope("2.0", "Q"), rope("2.0", "K"));
        let dout = "(input do f32 (list 1 4 16 8))";
        for g in [0, 1] {
            let grad = format!("(fused-attention-grad {g} 0.25 {MS} {q} {k} V {dout})");
            let folded =
                format!("(fused-attention-grad-rope {g} 0.25 10000.0 2.0 default {MS} Q K V {dout})");
            check(&rules, "fuse-rope-on-load-dq-dk", &rope("-2.0", &grad), &folded);
            // Only the transposed rotation brings the gradient back to q's space.
            check_not(&rules, "fuse-rope-on-load-dq-dk", &rope("2.0", &grad), &folded);
        }
        // dv has no rotation to undo.
        let grad = format!("(fused-attention-grad 2 0.25 {MS} {q} {k} V {dout})");
        check_not(
            &rules,
            "fuse-rope-on-load-dq-dk",
            &rope("-2.0", &grad),
            &format!("(fused-attention-grad-rope 2 0.25 10000.0 2.0 default {MS} Q K V {dout})"),
        );
    }
}
