//! Replay-buffer balance, inclusion of the current step, and capacity truncation.

use rekindle_data::{Balance, ReplayBuffer};
use std::collections::HashMap;

/// Labels: image i has class i % 3. Steps hold 5, 50 and 20 labelled images.
fn filled(balance: Balance, capacity: Option<usize>) -> (ReplayBuffer, HashMap<u32, u32>) {
    let labels: Vec<u32> = (0..100).map(|i| i % 3).collect();
    let mut buffer = ReplayBuffer::new(balance, capacity, 11);
    let mut step_of = HashMap::new();
    for (step, range) in [(0u32, 0..5u32), (1, 5..55), (2, 55..75)] {
        let images: Vec<u32> = range.collect();
        images.iter().for_each(|&i| {
            step_of.insert(i, step);
        });
        buffer.add_step(step, &images, &labels);
    }
    (buffer, step_of)
}

#[test]
fn task_balanced_draws_equal_counts_per_step_including_the_current_one() {
    let (buffer, step_of) = filled(Balance::Task, None);
    let draw = buffer.sample(300, 0);
    let mut counts = [0; 3];
    draw.iter().for_each(|i| counts[step_of[i] as usize] += 1);
    assert_eq!(counts, [100, 100, 100], "the newest step (2) is in the buffer and drawn equally");
    let draw = buffer.sample(301, 1);
    let mut counts = [0; 3];
    draw.iter().for_each(|i| counts[step_of[i] as usize] += 1);
    assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() == 1 && counts.iter().sum::<i32>() == 301);
    assert_eq!(buffer.sample(64, 5), buffer.sample(64, 5), "deterministic in the draw number");
    assert_ne!(buffer.sample(64, 5), buffer.sample(64, 6));
}

#[test]
fn class_balanced_draws_equal_counts_per_class() {
    let (buffer, _) = filled(Balance::Class, None);
    let mut counts = [0; 3];
    buffer.sample(150, 2).iter().for_each(|&i| counts[(i % 3) as usize] += 1);
    assert_eq!(counts, [50, 50, 50]);
}

#[test]
fn capacity_truncates_each_class_at_random_to_an_equal_share() {
    // 75 images: classes 0, 1, 2 hold 25 each. Capacity 30 → 10 each.
    let (buffer, _) = filled(Balance::Task, Some(30));
    assert_eq!(buffer.len(), 30);
    assert_eq!(buffer.per_class(), vec![(0, 10), (1, 10), (2, 10)]);
    // Uneven classes: keep small classes whole and share the rest.
    let labels: Vec<u32> = (0..100).map(|i| if i < 5 { 0 } else if i < 55 { 1 } else { 2 }).collect();
    let mut b = ReplayBuffer::new(Balance::Task, Some(30), 1);
    b.add_step(0, &(0..75).collect::<Vec<_>>(), &labels);
    assert_eq!(b.per_class(), vec![(0, 5), (1, 13), (2, 12)]);
    // Random, not the tail: the kept images of class 1 are not simply its first 13.
    let kept1: Vec<u32> = b.images().into_iter().filter(|&i| labels[i as usize] == 1).collect();
    assert_ne!(kept1, (5..18).collect::<Vec<_>>());
}

#[test]
fn equal_steps_cut_keeps_the_smallest_steps_count_in_every_step() {
    let labels: Vec<u32> = (0..100).map(|i| i % 3).collect();
    let mut buffer = ReplayBuffer::new(Balance::Task, None, 4).with_equal_steps();
    let mut seen = Vec::new();
    // Steps of 30, 12 and 20 labelled images: after each, every step holds min so far.
    for (step, range, expect) in [(0u32, 0..30u32, 30usize), (1, 30..42, 12), (2, 42..62, 12)] {
        let images: Vec<u32> = range.clone().collect();
        buffer.add_step(step, &images, &labels);
        seen.push(range);
        let kept = buffer.images();
        for (s, r) in seen.iter().enumerate() {
            let count = kept.iter().filter(|i| r.contains(i)).count();
            assert_eq!(count, expect, "after step {step}, step {s} keeps {count}, not {expect}");
        }
        assert_eq!(kept.len(), expect * seen.len());
    }
    // The cut is a random subset, not the first images of the step.
    let step0: Vec<u32> = buffer.images().into_iter().filter(|&i| i < 30).collect();
    assert_ne!(step0, (0..12).collect::<Vec<u32>>());
}
