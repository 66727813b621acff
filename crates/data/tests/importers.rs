//! Importers, each fed small files written here in the real formats and checked image by image,
//! plus the real Fashion-MNIST when the Debian package is installed.

use flate2::write::GzEncoder;
use flate2::Compression;
use image::{Rgb, RgbImage};
use rekindle_data::import::{import_cifar10, import_cifar100, import_folder, import_idx, ImportSummary, Split};
use rekindle_data::{DataError, Shard, ShardSpec};
use std::cell::RefCell;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A fresh, empty directory for one test.
fn dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rekindle-import-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// The error's text, after checking that it names `file` and that no output was written.
fn refusal(result: Result<ImportSummary, DataError>, file: &str, out: &Path) -> String {
    let err = result.err().unwrap_or_else(|| panic!("accepted; expected a refusal naming {file}")).to_string();
    assert!(err.contains(file), "the error does not name {file}: {err}");
    assert!(!out.exists(), "{} was written despite: {err}", out.display());
    err
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

// ---- idx ----

/// An idx file: magic for unsigned bytes in `dims.len()` dimensions, big-endian sizes, data.
fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = (0x0800 | dims.len() as u32).to_be_bytes().to_vec();
    for d in dims {
        out.extend(d.to_be_bytes());
    }
    out.extend(data);
    out
}

const IDX_LABELS: [u8; 7] = [9, 0, 3, 3, 7, 1, 5];

fn idx_pixel(i: usize, y: usize, x: usize) -> u8 {
    (i * 37 + y * 3 + x * 5 + x * y) as u8
}

fn idx_images() -> Vec<u8> {
    let data: Vec<u8> = (0..7).flat_map(|i| (0..28 * 28).map(move |p| idx_pixel(i, p / 28, p % 28))).collect();
    idx(&[7, 28, 28], &data)
}

fn check_idx_shard(summary: &ImportSummary, expected_names: &[String]) {
    let shard = Shard::open(&summary.path).unwrap();
    assert_eq!(shard.spec(), ShardSpec { height: 28, width: 28, channels: 1, classes: 10 });
    assert_eq!((summary.images, summary.classes, summary.height, summary.width, summary.channels), (7, 10, 28, 28, 1));
    assert_eq!(shard.labels(), IDX_LABELS.map(u32::from));
    for i in 0..7 {
        let expected: Vec<u8> = (0..28 * 28).map(|p| idx_pixel(i, p / 28, p % 28)).collect();
        assert_eq!(shard.image(i), expected, "image {i}");
    }
    assert_eq!(shard.class_names(), expected_names);
    assert!(shard.timestamps().is_none() && shard.coarse_labels().is_none());
}

#[test]
fn idx_gzipped_and_plain_files_import_exactly() {
    let d = dir("idx");
    let digits: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    let fashion = names(&["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]);

    // Gzipped, found in a directory by split; "fashion" in the directory name picks the names.
    let gz_dir = d.join("fashion-small");
    write(&gz_dir.join("train-images-idx3-ubyte.gz"), &gzip(&idx_images()));
    write(&gz_dir.join("train-labels-idx1-ubyte.gz"), &gzip(&idx(&[7], &IDX_LABELS)));
    let summary = import_idx(&gz_dir, Split::Train, &d.join("gz.shard"), None).unwrap();
    assert_eq!(summary.path, d.join("gz.shard"));
    check_idx_shard(&summary, &fashion);
    let err = import_idx(&gz_dir, Split::Test, &d.join("none.shard"), None).unwrap_err().to_string();
    assert!(err.contains("t10k-images-idx3-ubyte"), "{err}");

    // Uncompressed, named by the images file.
    let plain_dir = d.join("digits");
    write(&plain_dir.join("t10k-images-idx3-ubyte"), &idx_images());
    write(&plain_dir.join("t10k-labels-idx1-ubyte"), &idx(&[7], &IDX_LABELS));
    check_idx_shard(&import_idx(&plain_dir.join("t10k-images-idx3-ubyte"), Split::Train, &d.join("plain.shard"), None).unwrap(), &digits);

    // Gzip is recognised by its bytes, not by the name.
    write(&plain_dir.join("x-images-idx3-ubyte"), &gzip(&idx_images()));
    write(&plain_dir.join("x-labels-idx1-ubyte"), &idx(&[7], &IDX_LABELS));
    check_idx_shard(&import_idx(&plain_dir.join("x-images-idx3-ubyte"), Split::Test, &d.join("sniffed.shard"), None).unwrap(), &digits);
}

#[test]
fn idx_inconsistent_files_are_refused_naming_the_file() {
    let d = dir("idx-bad");
    let out = d.join("out.shard");
    write(&d.join("train-images-idx3-ubyte.gz"), &gzip(&idx_images()));
    write(&d.join("train-labels-idx1-ubyte.gz"), &gzip(&idx(&[6], &IDX_LABELS[..6])));
    let err = refusal(import_idx(&d, Split::Train, &out, None), "train-labels-idx1-ubyte.gz", &out);
    assert!(err.contains("6 labels") && err.contains("7 images"), "{err}");

    // Ten classes declared: a label of 10 is corrupt.
    write(&d.join("train-labels-idx1-ubyte.gz"), &gzip(&idx(&[7], &[0, 1, 2, 10, 4, 5, 6])));
    let err = refusal(import_idx(&d, Split::Train, &out, Some(10)), "train-labels-idx1-ubyte.gz", &out);
    assert!(err.contains("label 10 of item 3"), "{err}");

    // The header promises 7 images; the data holds one byte less.
    let mut short = idx_images();
    short.pop();
    write(&d.join("train-images-idx3-ubyte.gz"), &gzip(&short));
    write(&d.join("train-labels-idx1-ubyte.gz"), &gzip(&idx(&[7], &IDX_LABELS)));
    let err = refusal(import_idx(&d, Split::Train, &out, None), "train-images-idx3-ubyte.gz", &out);
    assert!(err.contains("5488 bytes") && err.contains("5487"), "{err}");

    // A labels file where images are expected.
    write(&d.join("train-images-idx3-ubyte.gz"), &idx(&[20], &[0; 20]));
    let err = refusal(import_idx(&d, Split::Train, &out, None), "train-images-idx3-ubyte.gz", &out);
    assert!(err.contains("magic"), "{err}");
}

// ---- CIFAR ----

fn cifar_pixel(record: usize, p: usize, channel: usize) -> u8 {
    (record * 50 + p * 7 + channel * 85) as u8
}

/// One CIFAR record: the label byte(s), then the red, green and blue planes.
fn cifar_record(labels: &[u8], record: usize) -> Vec<u8> {
    let mut out = labels.to_vec();
    for channel in 0..3 {
        out.extend((0..1024).map(|p| cifar_pixel(record, p, channel)));
    }
    out
}

/// Checks image `i` against record `record`, in HWC order.
fn check_cifar_image(shard: &Shard, i: usize, record: usize) {
    let image = shard.image(i);
    // Pixel (row 0, column 1) is byte 1 of each plane; pixel (row 1, column 0) is byte 32.
    assert_eq!(image[3..6], [cifar_pixel(record, 1, 0), cifar_pixel(record, 1, 1), cifar_pixel(record, 1, 2)]);
    assert_eq!(image[32 * 3 + 2], cifar_pixel(record, 32, 2));
    let expected: Vec<u8> = (0..1024).flat_map(|p| (0..3).map(move |c| cifar_pixel(record, p, c))).collect();
    assert_eq!(image, expected, "image {i}");
}

#[test]
fn cifar10_batches_import_in_order_as_hwc() {
    let d = dir("cifar10");
    let src = d.join("cifar-10-batches-bin");
    // Records per training batch, and their labels in order.
    let batches: [&[u8]; 5] = [&[6, 9], &[], &[4], &[1, 1], &[0]];
    let mut record = 0..;
    for (b, labels) in batches.iter().enumerate() {
        let bytes: Vec<u8> = labels.iter().zip(&mut record).flat_map(|(&l, r)| cifar_record(&[l], r)).collect();
        write(&src.join(format!("data_batch_{}.bin", b + 1)), &bytes);
    }
    let custom = names(&["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "lorry"]);
    write(&src.join("batches.meta.txt"), format!("{}\n\n", custom.join("\n")).as_bytes());
    let summary = import_cifar10(&src, Split::Train, &d.join("train.shard")).unwrap();
    assert_eq!((summary.images, summary.classes, summary.height, summary.width, summary.channels), (6, 10, 32, 32, 3));
    let shard = Shard::open(&summary.path).unwrap();
    assert_eq!(shard.spec(), ShardSpec { height: 32, width: 32, channels: 3, classes: 10 });
    assert_eq!(shard.labels(), &[6, 9, 4, 1, 1, 0]);
    for i in 0..6 {
        check_cifar_image(&shard, i, i);
    }
    assert_eq!(shard.class_names(), custom);
    assert!(shard.coarse_labels().is_none());

    // Without batches.meta.txt the standard names are used.
    let bare = d.join("bare");
    write(&bare.join("test_batch.bin"), &[cifar_record(&[3], 7), cifar_record(&[8], 8)].concat());
    let shard = Shard::open(&import_cifar10(&bare, Split::Test, &d.join("test.shard")).unwrap().path).unwrap();
    assert_eq!(shard.labels(), &[3, 8]);
    check_cifar_image(&shard, 1, 8);
    assert_eq!(shard.class_names()[0], "airplane");
    assert_eq!(shard.class_names()[9], "truck");

    // A file that is not a whole number of records, and a label past the classes.
    let out = d.join("bad.shard");
    write(&bare.join("test_batch.bin"), &[cifar_record(&[3], 0), vec![0; 5]].concat());
    let err = refusal(import_cifar10(&bare, Split::Test, &out), "test_batch.bin", &out);
    assert!(err.contains("3078 bytes") && err.contains("3073-byte records"), "{err}");
    write(&bare.join("test_batch.bin"), &[cifar_record(&[3], 0), cifar_record(&[10], 1)].concat());
    let err = refusal(import_cifar10(&bare, Split::Test, &out), "test_batch.bin", &out);
    assert!(err.contains("record 1: label 10"), "{err}");
}

#[test]
fn cifar100_keeps_fine_and_coarse_labels() {
    let d = dir("cifar100");
    let src = d.join("cifar-100-binary");
    let labels: [(u8, u8); 4] = [(19, 99), (0, 0), (7, 42), (7, 43)];
    let bytes: Vec<u8> = labels.iter().enumerate().flat_map(|(i, &(coarse, fine))| cifar_record(&[coarse, fine], i)).collect();
    write(&src.join("train.bin"), &bytes);
    let fine_names: Vec<String> = (0..100).map(|i| format!("fine {i}")).collect();
    write(&src.join("fine_label_names.txt"), fine_names.join("\n").as_bytes());
    let summary = import_cifar100(&src, Split::Train, &d.join("train.shard")).unwrap();
    assert_eq!((summary.images, summary.classes), (4, 100));
    let shard = Shard::open(&summary.path).unwrap();
    assert_eq!(shard.spec(), ShardSpec { height: 32, width: 32, channels: 3, classes: 100 });
    assert_eq!(shard.labels(), &[99, 0, 42, 43]);
    assert_eq!(shard.coarse_labels().unwrap(), &[19, 0, 7, 7]);
    assert_eq!(shard.class_names(), fine_names);
    for i in 0..4 {
        check_cifar_image(&shard, i, i);
    }

    // CIFAR-10-sized records in a CIFAR-100 file; a names file with the wrong count.
    let out = d.join("bad.shard");
    write(&src.join("test.bin"), &[cifar_record(&[1], 0), cifar_record(&[2], 1)].concat());
    let err = refusal(import_cifar100(&src, Split::Test, &out), "test.bin", &out);
    assert!(err.contains("3074-byte records"), "{err}");
    write(&src.join("test.bin"), &cifar_record(&[20, 1], 0));
    let err = refusal(import_cifar100(&src, Split::Test, &out), "test.bin", &out);
    assert!(err.contains("coarse label 20"), "{err}");
    write(&src.join("fine_label_names.txt"), b"just\nthree\nnames\n");
    write(&src.join("test.bin"), &cifar_record(&[2, 1], 0));
    let err = refusal(import_cifar100(&src, Split::Test, &out), "fine_label_names.txt", &out);
    assert!(err.contains("3 names"), "{err}");
}

// ---- folders ----

const SIZE: u32 = 16;
const RED: [u8; 3] = [255, 0, 0];
const BLUE: [u8; 3] = [0, 0, 255];
const GREEN: [u8; 3] = [0, 200, 0];
const WHITE: [u8; 3] = [255, 255, 255];

fn solid(width: u32, height: u32, colour: [u8; 3]) -> RgbImage {
    RgbImage::from_pixel(width, height, Rgb(colour))
}

/// A 60x20 (or 20x60, `tall`) image: `first` over the first 25 pixels of the long side, then
/// `second`. Off centre, so squashing or cropping anywhere but the middle moves the edge.
fn two_tone(tall: bool, first: [u8; 3], second: [u8; 3]) -> RgbImage {
    let (width, height) = if tall { (20, 60) } else { (60, 20) };
    RgbImage::from_fn(width, height, |x, y| Rgb(if (if tall { y } else { x }) < 25 { first } else { second }))
}

/// What a test expects of an imported image.
enum Expect {
    Exactly([u8; 3]),
    Near([u8; 3]),
    /// A `two_tone` image: `first` then `second` across the columns (or the rows).
    Split { first: [u8; 3], second: [u8; 3], across_rows: bool },
}

/// Writes two classes of PNG and JPEG images of assorted sizes, a stray file at the root and one
/// in a class, and returns each image's `class/file` and expectation, in the order of import.
fn write_folder(root: &Path) -> Vec<(&'static str, Expect)> {
    let save = |rel: &str, image: RgbImage| {
        std::fs::create_dir_all(root.join(rel).parent().unwrap()).unwrap();
        let format = if rel.to_lowercase().ends_with(".png") { image::ImageFormat::Png } else { image::ImageFormat::Jpeg };
        image.save_with_format(root.join(rel), format).unwrap();
    };
    save("cat/a.png", solid(40, 30, [200, 10, 30]));
    save("cat/b.PNG", solid(30, 50, [5, 100, 250]));
    save("cat/c.jpg", solid(40, 30, [120, 130, 140]));
    save("dog/tall.png", two_tone(true, GREEN, WHITE));
    save("dog/wide.png", two_tone(false, RED, BLUE));
    save("dog/x.JPEG", solid(30, 50, [30, 180, 90]));
    write(&root.join("notes.txt"), b"not a class");
    write(&root.join("dog/readme.md"), b"not an image");
    vec![
        ("cat/a.png", Expect::Exactly([200, 10, 30])),
        ("cat/b.PNG", Expect::Exactly([5, 100, 250])),
        ("cat/c.jpg", Expect::Near([120, 130, 140])),
        ("dog/tall.png", Expect::Split { first: GREEN, second: WHITE, across_rows: true }),
        ("dog/wide.png", Expect::Split { first: RED, second: BLUE, across_rows: false }),
        ("dog/x.JPEG", Expect::Near([30, 180, 90])),
    ]
}

fn check_image(image: &[u8], what: &str, expect: &Expect) {
    let s = SIZE as usize;
    assert_eq!(image.len(), s * s * 3, "{what}");
    let pixel = |x: usize, y: usize| -> [u8; 3] { image[(y * s + x) * 3..][..3].try_into().unwrap() };
    match *expect {
        Expect::Exactly(colour) => assert!(image.chunks(3).all(|p| p == colour), "{what}: not all {colour:?}: {image:?}"),
        Expect::Near(colour) => assert!(image.chunks(3).all(|p| p.iter().zip(colour).all(|(&a, b)| a.abs_diff(b) <= 6)), "{what}: not near {colour:?}: {image:?}"),
        Expect::Split { first, second, across_rows } => {
            // 60x20 scales to 48x16 and the middle 16 columns, 16..32, are kept: the edge at 25
            // lands at 20 and so between columns 3 and 4 of the crop, which the filter blurs.
            for along in 0..s {
                for across in 0..s {
                    let p = if across_rows { pixel(along, across) } else { pixel(across, along) };
                    let expected = match across {
                        0..=2 => first,
                        5.. => second,
                        _ => continue,
                    };
                    assert_eq!(p, expected, "{what} at {across} across, {along} along");
                }
            }
        }
    }
}

#[test]
fn folder_images_are_resized_centre_cropped_and_labelled_by_directory() {
    let d = dir("folder");
    let root = d.join("images");
    let expected = write_folder(&root);
    let calls = RefCell::new(Vec::new());
    let summary = import_folder(&root, SIZE, None, &d.join("f.shard"), &|done, total| calls.borrow_mut().push((done, total))).unwrap();
    assert_eq!((summary.images, summary.classes, summary.height, summary.width, summary.channels), (6, 2, SIZE, SIZE, 3));
    assert_eq!(calls.into_inner().last(), Some(&(6, 6)));
    let shard = Shard::open(&summary.path).unwrap();
    assert_eq!(shard.spec(), ShardSpec { height: SIZE, width: SIZE, channels: 3, classes: 2 });
    assert_eq!(shard.class_names(), names(&["cat", "dog"]));
    assert_eq!(shard.labels(), &[0, 0, 0, 1, 1, 1]);
    assert!(shard.timestamps().is_none());
    for (i, (rel, expect)) in expected.iter().enumerate() {
        check_image(shard.image(i), rel, expect);
    }
}

#[test]
fn folder_timestamps_are_stored_per_image() {
    let d = dir("folder-time");
    let root = d.join("images");
    let expected = write_folder(&root);
    // Out of order, with a header, CRLF line ends, a blank line and an entry for no image.
    let times = [("dog/wide.png", -5), ("cat/a.png", 1_700_000_000_123), ("cat/c.jpg", 0), ("dog/x.JPEG", 42), ("gone/z.png", 9), ("cat/b.PNG", i64::MAX), ("dog/tall.png", 7)];
    let csv: String = times.iter().map(|(p, t)| format!("{p},{t}\r\n")).collect();
    write(&d.join("times.csv"), format!("path,timestamp\r\n{csv}\n").as_bytes());
    let summary = import_folder(&root, SIZE, Some(&d.join("times.csv")), &d.join("t.shard"), &|_, _| {}).unwrap();
    let shard = Shard::open(&summary.path).unwrap();
    let want: Vec<i64> = expected.iter().map(|(rel, _)| times.iter().find(|(p, _)| p == rel).unwrap().1).collect();
    assert_eq!(shard.timestamps().unwrap(), want);
    assert_eq!(shard.labels(), &[0, 0, 0, 1, 1, 1]);

    // Every image needs a timestamp; the first without one is named.
    let out = d.join("missing.shard");
    write(&d.join("partial.csv"), b"cat/a.png,1\ncat/c.jpg,3\n");
    let err = refusal(import_folder(&root, SIZE, Some(&d.join("partial.csv")), &out, &|_, _| {}), "partial.csv", &out);
    assert!(err.contains("no timestamp for cat/b.PNG"), "{err}");
    write(&d.join("garbled.csv"), b"cat/a.png,1\ncat/b.PNG,soon\n");
    let err = refusal(import_folder(&root, SIZE, Some(&d.join("garbled.csv")), &out, &|_, _| {}), "garbled.csv", &out);
    assert!(err.contains("line 2") && err.contains("soon"), "{err}");
}

#[test]
fn folder_with_an_undecodable_image_is_refused_and_leaves_no_file() {
    let d = dir("folder-bad");
    let root = d.join("images");
    write_folder(&root);
    write(&root.join("dog/bad.jpg"), b"this is text, not a JPEG\n");
    let out_dir = d.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join("f.shard");
    let err = refusal(import_folder(&root, SIZE, None, &out, &|_, _| {}), "bad.jpg", &out);
    assert!(err.contains("not a decodable image"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&out_dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");

    let empty = d.join("empty");
    std::fs::create_dir_all(empty.join("class")).unwrap();
    refusal(import_folder(&empty, SIZE, None, &out, &|_, _| {}), "empty", &out);
}

#[test]
fn split_parses_from_the_command_line_words() {
    assert_eq!("train".parse::<Split>().unwrap(), Split::Train);
    assert_eq!("test".parse::<Split>().unwrap(), Split::Test);
    let err = "val".parse::<Split>().unwrap_err().to_string();
    assert!(err.contains("val"), "{err}");
}

// ---- the real Fashion-MNIST ----

const FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

/// The gunzipped bytes of one of the dataset's files, read independently of the importer.
fn gunzip(path: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()).read_to_end(&mut bytes).unwrap();
    bytes
}

#[test]
fn real_fashion_mnist_imports_both_splits() {
    let src = Path::new(FASHION_MNIST);
    if !src.is_dir() {
        println!("skipped: {FASHION_MNIST} is missing (the Debian package `dataset-fashion-mnist` is not installed)");
        return;
    }
    let d = dir("fashion-mnist");
    for (split, count, prefix) in [(Split::Train, 60_000, "train"), (Split::Test, 10_000, "t10k")] {
        let out = d.join(format!("{prefix}.shard"));
        let start = Instant::now();
        let summary = import_idx(src, split, &out, None).unwrap();
        println!("Fashion-MNIST {prefix}: {} images imported in {:.2?}", summary.images, start.elapsed());
        assert_eq!((summary.images, summary.classes, summary.height, summary.width, summary.channels), (count, 10, 28, 28, 1));
        let shard = Shard::open(&out).unwrap();
        assert_eq!((shard.len(), shard.spec()), (count, ShardSpec { height: 28, width: 28, channels: 1, classes: 10 }));
        let mut histogram = [0usize; 10];
        for &label in shard.labels() {
            histogram[label as usize] += 1;
        }
        assert_eq!(histogram, [count / 10; 10]);
        assert_eq!(shard.class_names()[9], "Ankle boot");
        let raw = gunzip(&src.join(format!("{prefix}-images-idx3-ubyte.gz")));
        assert_eq!(shard.image(0), &raw[16..16 + 784]);
        assert_eq!(shard.image(count - 1), &raw[raw.len() - 784..]);
        if split == Split::Train {
            assert_eq!(shard.labels()[0], 9, "the first training image is an ankle boot");
        }
        std::fs::remove_file(&out).unwrap();
    }
}

#[test]
fn idx_class_count_comes_from_the_labels_or_the_flag() {
    let d = dir("idx-classes");
    // Labels 0..=6 only: seven classes, and no names, since this is neither MNIST nor Fashion-MNIST's ten.
    let labels: [u8; 7] = [6, 0, 3, 3, 2, 1, 5];
    write(&d.join("train-images-idx3-ubyte"), &idx_images());
    write(&d.join("train-labels-idx1-ubyte"), &idx(&[7], &labels));
    let summary = import_idx(&d, Split::Train, &d.join("seven.shard"), None).unwrap();
    let shard = Shard::open(&summary.path).unwrap();
    assert_eq!((summary.classes, shard.spec().classes), (7, 7));
    assert!(shard.class_names().is_empty(), "{:?}", shard.class_names());
    // A flag sets it (e.g. a test split without the top classes), and refuses labels beyond it.
    assert_eq!(import_idx(&d, Split::Train, &d.join("ten.shard"), Some(10)).unwrap().classes, 10);
    let err = import_idx(&d, Split::Train, &d.join("five.shard"), Some(5)).unwrap_err().to_string();
    assert!(err.contains("label 6") && err.contains("5 classes"), "{err}");
}
