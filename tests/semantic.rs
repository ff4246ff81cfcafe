//! The semantic layer's model and guard against fixed data: the embeddings equal the reference
//! implementation's (sentence-transformers), and the labelled pairs of
//! tests/fixtures/semantic/pairs.jsonl meet the targets at the recommended threshold and at the
//! product brief's 0.90. Needs the model (`bash scripts/fetch-embedding-model.sh`; the test
//! command runs it).
#![cfg(feature = "semantic")]

use nomyo_router::cache::semantic::embedder::Embedder;
use nomyo_router::cache::semantic::vectors::Quantized;
use nomyo_router::cache::semantic::{default_model_dir, guard, RECOMMENDED_SIMILARITY};
use serde::Deserialize;

fn embedder() -> Embedder {
    let dir = std::env::var_os("NOMYO_EMBEDDING_MODEL")
        .map(Into::into)
        .unwrap_or_else(default_model_dir);
    Embedder::load(&dir).unwrap_or_else(|e| panic!("{e}"))
}

#[derive(Deserialize)]
struct Reference {
    sentences: Vec<String>,
    vectors: Vec<Vec<f32>>,
}

#[test]
fn embeddings_equal_the_reference_implementation() {
    let r: Reference =
        serde_json::from_str(include_str!("fixtures/semantic/reference_embeddings.json")).unwrap();
    let e = embedder();
    let texts: Vec<&str> = r.sentences.iter().map(String::as_str).collect();
    // In one padded batch and one by one: padding must not change a vector.
    let batch = e.embed(&texts).unwrap();
    for (i, (text, want)) in texts.iter().zip(&r.vectors).enumerate() {
        let alone = e.embed(&[text]).unwrap().remove(0);
        for got in [&batch[i], &alone] {
            let worst = got
                .iter()
                .zip(want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-4, "sentence {i} ({text:.40}) differs by {worst}");
        }
    }
}

#[derive(Deserialize)]
struct Pair {
    a: String,
    b: String,
    expect: String,
    kind: String,
}

struct Scored {
    pair: Pair,
    similarity: f32,
    guard_ok: bool,
    why: Option<guard::Mismatch>,
}

const TUNING: &str = include_str!("fixtures/semantic/pairs.jsonl");
/// Written apart from the tuning set and never used to adjust the guard.
const HELD_OUT: &str = include_str!("fixtures/semantic/held_out.jsonl");
/// Near-misses an attacker found that passed an earlier guard at 0.88–0.99.
const ADVERSARIAL: &str = include_str!("fixtures/semantic/adversarial.jsonl");

fn scored(set: &str) -> Vec<Scored> {
    let e = embedder();
    let pairs: Vec<Pair> = set
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let texts: Vec<&str> = pairs
        .iter()
        .flat_map(|p| [p.a.as_str(), p.b.as_str()])
        .collect();
    let mut vectors = Vec::new();
    for chunk in texts.chunks(32) {
        vectors.extend(e.embed(chunk).unwrap());
    }
    pairs
        .into_iter()
        .enumerate()
        .map(|(i, pair)| {
            // As a lookup sees it: the entry (a) stored in one byte per part, the query (b) not.
            let stored = Quantized::new(&vectors[2 * i]);
            let similarity = stored.cosine(&vectors[2 * i + 1]);
            let why = guard::agrees(&pair.b, &pair.a).err();
            Scored {
                pair,
                similarity,
                guard_ok: why.is_none(),
                why,
            }
        })
        .collect()
}

/// (recall of paraphrases, false hits among near-misses) at `threshold`.
fn rates(all: &[Scored], threshold: f32, guarded: bool) -> (f64, f64) {
    let hit = |s: &Scored| s.similarity >= threshold && (!guarded || s.guard_ok);
    let share = |want: &str| {
        let group: Vec<&Scored> = all.iter().filter(|s| s.pair.expect == want).collect();
        group.iter().filter(|s| hit(s)).count() as f64 / group.len() as f64
    };
    (share("hit"), share("miss"))
}

#[test]
fn the_evaluation_set_meets_the_targets() {
    let all = scored(TUNING);
    assert!(
        all.len() >= 200,
        "the evaluation set has {} pairs",
        all.len()
    );
    check(&all);
}

#[test]
fn the_held_out_set_keeps_false_hits_under_the_target() {
    // Its paraphrases are terser rewordings than the tuning set's: the model itself puts only
    // about half of them above 0.88 (docs/cache.md). What the guard must show here is that it
    // lets no near-miss through and keeps most of what the model finds.
    let all = scored(HELD_OUT);
    assert!(all.len() >= 140, "the held-out set has {} pairs", all.len());
    report(&all);
    for t in [RECOMMENDED_SIMILARITY, 0.90] {
        let (recall, false_hits) = rates(&all, t, true);
        let (model_recall, _) = rates(&all, t, false);
        assert!(false_hits <= 0.01, "false hits {false_hits:.3} at {t}");
        assert!(
            recall >= 0.8 * model_recall,
            "the guard keeps {recall:.3} of {model_recall:.3} at {t}"
        );
    }
}

#[test]
fn the_attack_pairs_are_refused() {
    let all = scored(ADVERSARIAL);
    report(&all);
    let passed: Vec<&Scored> = all
        .iter()
        .filter(|s| s.similarity >= RECOMMENDED_SIMILARITY && s.guard_ok)
        .collect();
    // What is still let through is written down in docs/cache.md; no more may join it.
    assert!(passed.len() <= 3, "{} of {} pass", passed.len(), all.len());
}

fn check(all: &[Scored]) {
    report(all);
    for t in [RECOMMENDED_SIMILARITY, 0.90] {
        let (recall, false_hits) = rates(all, t, true);
        assert!(false_hits <= 0.01, "false hits {false_hits:.3} at {t}");
        assert!(recall >= 0.70, "recall {recall:.3} at {t}");
    }
}

/// Prints the curve and the pairs the guarded match gets wrong (`--nocapture`).
fn report(all: &[Scored]) {
    let mut report =
        String::from("threshold  recall(plain)  false(plain)  recall(guard)  false(guard)\n");
    for t in [0.70f32, 0.75, 0.80, 0.82, 0.85, 0.88, 0.90, 0.92, 0.95] {
        let (pr, pf) = rates(all, t, false);
        let (gr, gf) = rates(all, t, true);
        report +=
            &format!("{t:.2}       {pr:.3}          {pf:.3}         {gr:.3}          {gf:.3}\n");
    }
    println!("{report}");
    for s in all
        .iter()
        .filter(|s| s.pair.expect == "miss" && s.guard_ok && s.similarity >= 0.80)
    {
        println!(
            "false hit at {:.3} [{}]: {:?} / {:?}",
            s.similarity, s.pair.kind, s.pair.a, s.pair.b
        );
    }
    for s in all.iter().filter(|s| {
        s.pair.expect == "hit" && !(s.guard_ok && s.similarity >= RECOMMENDED_SIMILARITY)
    }) {
        println!(
            "missed at {:.3} (guard {:?}): {:?} / {:?}",
            s.similarity, s.why, s.pair.a, s.pair.b
        );
    }
}

#[test]
fn plain_cosine_alone_cannot_meet_the_targets() {
    // Why the guard exists: without it, the threshold that keeps false hits under 1 % leaves
    // almost no paraphrase.
    let all = scored(TUNING);
    let (recall, false_hits) = rates(&all, 0.90, false);
    assert!(false_hits > 0.05, "{false_hits}");
    assert!(recall > 0.7, "{recall}");
}
