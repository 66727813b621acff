//! Shard round trips and refusals of corrupt files.

use rekindle_data::shard::{encode, HEADER_LEN};
use rekindle_data::{Record, Shard, ShardSpec, ShardWriter};
use std::path::PathBuf;

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("rekindle-shard-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

const SPEC: ShardSpec = ShardSpec { height: 3, width: 2, channels: 3, classes: 4 };

fn write_sample(path: &PathBuf, timed: bool) {
    let mut w = ShardWriter::create(path, SPEC).unwrap();
    w.set_class_names(vec!["a".into(), "b".into(), "c c".into(), "d".into()]);
    for i in 0..5u32 {
        let pixels: Vec<u8> = (0..18).map(|p| (i * 18 + p) as u8).collect();
        let record = Record { pixels: &pixels, label: i % 4, timestamp: timed.then_some(100 - i as i64), coarse_label: None };
        w.push(record).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn round_trip_keeps_every_field() {
    let path = dir().join("rt.shard");
    write_sample(&path, true);
    let s = Shard::open(&path).unwrap();
    assert_eq!((s.len(), s.spec()), (5, SPEC));
    assert_eq!(s.labels(), &[0, 1, 2, 3, 0]);
    assert_eq!(s.timestamps().unwrap(), &[100, 99, 98, 97, 96]);
    assert_eq!(s.image(2)[0], 36);
    assert_eq!(s.image(4)[17], 89);
    assert_eq!(s.class_names()[2], "c c");
    assert!(s.coarse_labels().is_none());
    // The in-memory encoder writes the same bytes as the streaming writer.
    let pixels: Vec<u8> = (0..5 * 18).map(|p| p as u8).collect();
    let names: Vec<String> = ["a", "b", "c c", "d"].iter().map(|s| s.to_string()).collect();
    let mem = encode(SPEC, &pixels, &[0, 1, 2, 3, 0], Some(&[100, 99, 98, 97, 96]), &names);
    assert_eq!(mem, std::fs::read(&path).unwrap());
    assert_eq!(Shard::from_bytes("memory", &mem).unwrap().labels(), s.labels());
}

#[test]
fn corrupt_shards_are_refused_with_the_file_and_the_problem() {
    let d = dir();
    let good = d.join("good.shard");
    write_sample(&good, false);
    let bytes = std::fs::read(&good).unwrap();
    let check = |name: &str, data: &[u8], needle: &str| {
        let p = d.join(name);
        std::fs::write(&p, data).unwrap();
        let err = Shard::open(&p).err().unwrap_or_else(|| panic!("{name} was accepted")).to_string();
        assert!(err.contains(name) && err.contains(needle), "{name}: {err}");
    };
    check("truncated.shard", &bytes[..bytes.len() - 7], "truncated");
    check("tiny.shard", &bytes[..20], "truncated");
    let mut magic = bytes.clone();
    magic[0] = b'X';
    check("magic.shard", &magic, "not a rekindle shard");
    let mut label = bytes.clone();
    let labels_at = u64::from_le_bytes(bytes[56..64].try_into().unwrap()) as usize;
    label[labels_at + 4..labels_at + 8].copy_from_slice(&9u32.to_le_bytes());
    check("label.shard", &label, "label 9 of image 1 is out of range: the shard has 4 classes");
    let mut count = bytes.clone();
    count[16..24].copy_from_slice(&6u64.to_le_bytes());
    check("count.shard", &count, "corrupt header");
    assert!(bytes.len() > HEADER_LEN);
}

#[test]
fn writer_refuses_bad_records_and_leaves_no_partial_file() {
    let d = dir();
    let path = d.join("partial.shard");
    {
        let mut w = ShardWriter::create(&path, SPEC).unwrap();
        w.push(Record::new(&[0; 18], 1)).unwrap();
        let err = w.push(Record::new(&[0; 18], 4)).unwrap_err().to_string();
        assert!(err.contains("partial.shard") && err.contains("label 4"), "{err}");
        assert!(w.push(Record::new(&[0; 17], 0)).is_err());
    } // dropped unfinished
    let leftovers: Vec<_> = std::fs::read_dir(&d).unwrap().filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().starts_with("partial")).collect();
    assert!(leftovers.is_empty(), "left behind: {:?}", leftovers.iter().map(|e| e.file_name()).collect::<Vec<_>>());
}
