//! Split properties of the three scenarios and the label rule.

use rekindle_data::{Scenario, Stream, StreamConfig};
use std::collections::BTreeSet;

/// 10 classes × 20 images, labels interleaved; timestamps run backwards so time order ≠ index order.
fn data() -> (Vec<u32>, Vec<i64>) {
    let labels: Vec<u32> = (0..200).map(|i| (i * 7 % 10) as u32).collect();
    let times: Vec<i64> = (0..200).map(|i| 1000 - 3 * i as i64).collect();
    (labels, times)
}

fn config(scenario: Scenario, seed: u64) -> StreamConfig {
    StreamConfig { scenario, steps: 5, label_rate: 0.1, seed }
}

fn assert_disjoint_and_complete(s: &Stream, n: usize) {
    let mut seen = BTreeSet::new();
    for step in &s.steps {
        for &i in &step.images {
            assert!(seen.insert(i), "image {i} in two steps");
        }
        assert!(step.labelled.iter().all(|i| step.images.binary_search(i).is_ok()), "labelled ⊂ images");
    }
    assert_eq!(seen.len(), n, "every image in some step");
}

/// `max(1, round(rate · n))` labelled per class per step.
fn assert_label_rule(s: &Stream, labels: &[u32], rate: f32) {
    for step in &s.steps {
        for &c in &step.classes {
            let n = step.images.iter().filter(|&&i| labels[i as usize] == c).count();
            let k = step.labelled.iter().filter(|&&i| labels[i as usize] == c).count();
            assert_eq!(k, ((rate * n as f32).round() as usize).max(1), "class {c}: {k} of {n} labelled");
        }
    }
}

#[test]
fn class_incremental_splits_classes() {
    let (labels, _) = data();
    let s = Stream::build(&labels, None, 10, &config(Scenario::ClassIncremental, 1)).unwrap();
    assert_disjoint_and_complete(&s, 200);
    let mut all_classes = BTreeSet::new();
    for step in &s.steps {
        assert_eq!(step.classes.len(), 2);
        for &c in &step.classes {
            assert!(all_classes.insert(c), "class {c} in two steps");
            assert_eq!(step.images.iter().filter(|&&i| labels[i as usize] == c).count(), 20, "all of class {c} in its step");
        }
        assert!(step.images.iter().all(|&i| step.classes.contains(&labels[i as usize])));
    }
    assert_label_rule(&s, &labels, 0.1);
    assert_eq!(s.classes_seen(1).len(), 4);
    // Test images of step t are exactly those of its classes.
    let test_labels: Vec<u32> = (0..50).map(|i| i % 10).collect();
    let t2 = s.test_images(2, &test_labels, None);
    assert_eq!(t2.len(), 10);
    assert!(t2.iter().all(|&i| s.steps[2].classes.contains(&test_labels[i as usize])));
}

#[test]
fn data_incremental_keeps_every_class_in_every_step() {
    let (labels, _) = data();
    let s = Stream::build(&labels, None, 10, &config(Scenario::DataIncremental, 1)).unwrap();
    assert_disjoint_and_complete(&s, 200);
    for step in &s.steps {
        assert_eq!(step.classes, (0..10).collect::<Vec<_>>());
        assert_eq!(step.images.len(), 40);
    }
    assert_label_rule(&s, &labels, 0.1);
    assert_eq!(s.test_images(0, &[0, 1, 2], None), vec![0, 1, 2]);
}

#[test]
fn time_incremental_follows_timestamps() {
    let (labels, times) = data();
    let s = Stream::build(&labels, Some(&times), 10, &config(Scenario::TimeIncremental, 1)).unwrap();
    assert_disjoint_and_complete(&s, 200);
    for pair in s.steps.windows(2) {
        let latest = pair[0].images.iter().map(|&i| times[i as usize]).max().unwrap();
        let earliest = pair[1].images.iter().map(|&i| times[i as usize]).min().unwrap();
        assert!(latest <= earliest, "step boundaries respect time");
        assert_eq!(pair[0].end_time, Some(latest));
    }
    assert!(s.steps.iter().all(|st| st.images.len() == 40));
    assert_label_rule(&s, &labels, 0.1);
    let test_times = [0i64, 500, 700, 1000];
    let end0 = s.steps[0].end_time.unwrap();
    let expect: Vec<u32> = (0..4).filter(|&i| test_times[i as usize] <= end0).collect();
    assert_eq!(s.test_images(0, &[0; 4], Some(&test_times)), expect);
    assert_eq!(s.test_images(4, &[0; 4], Some(&test_times)).len(), 4);
    let err = Stream::build(&labels, None, 10, &config(Scenario::TimeIncremental, 1)).unwrap_err().to_string();
    assert!(err.contains("stream.scenario") && err.contains("timestamps"), "{err}");
}

#[test]
fn label_rule_gives_every_class_at_least_one_label() {
    let (labels, _) = data();
    for rate in [0.01, 0.26, 1.0] {
        let cfg = StreamConfig { label_rate: rate, ..config(Scenario::DataIncremental, 3) };
        let s = Stream::build(&labels, None, 10, &cfg).unwrap();
        assert_label_rule(&s, &labels, rate);
    }
}

#[test]
fn seeds_decide_the_split() {
    let (labels, _) = data();
    for scenario in [Scenario::ClassIncremental, Scenario::DataIncremental] {
        let a = Stream::build(&labels, None, 10, &config(scenario, 7)).unwrap();
        let b = Stream::build(&labels, None, 10, &config(scenario, 7)).unwrap();
        let c = Stream::build(&labels, None, 10, &config(scenario, 8)).unwrap();
        assert_eq!(a, b, "{scenario:?}: same seed, same split");
        assert_ne!(a.steps, c.steps, "{scenario:?}: another seed, another split");
    }
}

#[test]
fn impossible_configs_name_the_key() {
    let (labels, _) = data();
    for (cfg, needle) in [
        (StreamConfig { label_rate: 0.0, ..config(Scenario::DataIncremental, 0) }, "stream.label_rate"),
        (StreamConfig { label_rate: 1.5, ..config(Scenario::DataIncremental, 0) }, "stream.label_rate"),
        (StreamConfig { steps: 0, ..config(Scenario::DataIncremental, 0) }, "stream.steps"),
        (StreamConfig { steps: 11, ..config(Scenario::ClassIncremental, 0) }, "stream.steps"),
        (StreamConfig { steps: 21, ..config(Scenario::DataIncremental, 0) }, "stream.steps"),
    ] {
        let err = Stream::build(&labels, None, 10, &cfg).unwrap_err().to_string();
        assert!(err.contains(needle), "{err}");
    }
}

#[test]
fn holdout_is_stratified_disjoint_and_the_same_for_every_seed() {
    let labels: Vec<u32> = (0..1000).map(|i| (i * 7 % 10) as u32).collect();
    let (held, rest) = rekindle_data::holdout(&labels, 10, 0.2);
    assert_eq!(held.len(), 200);
    assert_eq!(held.len() + rest.len(), labels.len());
    assert!(held.iter().all(|i| rest.binary_search(i).is_err()), "disjoint");
    for c in 0..10 {
        assert_eq!(held.iter().filter(|&&i| labels[i as usize] == c).count(), 20, "class {c}");
    }
    assert_ne!(held, (0..200).collect::<Vec<u32>>(), "a random draw, not a prefix");
    // A stream over the rest never reveals a held-out image, whatever its seed.
    for seed in [0, 1, 2] {
        let s = Stream::build_over(&rest, &labels, None, 10, &config(Scenario::ClassIncremental, seed)).unwrap();
        let streamed: usize = s.steps.iter().map(|st| st.images.len()).sum();
        assert_eq!(streamed, rest.len());
        assert!(s.steps.iter().flat_map(|st| &st.images).all(|i| held.binary_search(i).is_err()));
    }
    assert_eq!(rekindle_data::holdout(&labels, 10, 0.2).0, held, "deterministic");
    assert!(rekindle_data::holdout(&labels, 10, 0.0).0.is_empty());
}
