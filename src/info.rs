//! `rekindle info`: the presets with their parameter counts and compute per image.

use anyhow::Result;
use rekindle_model::{Flops, ModelConfig, ParamTable, Part, PRESETS};
use serde::Serialize;

#[derive(clap::Args)]
pub struct InfoArgs {
    /// Print one JSON object per preset (a JSON array) instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct PresetInfo {
    preset: &'static str,
    config: ModelConfig,
    encoder_params: usize,
    decoder_params: usize,
    head_params: usize,
    /// Encoder plus head: what a classifier trains (timm's count minus its learned position table).
    classifier_params: usize,
    classify_gflops: f64,
    mae_gflops: f64,
}

fn describe(preset: &'static str) -> Result<PresetInfo> {
    let config = ModelConfig::preset(preset)?;
    let table = ParamTable::new(&config);
    let flops = Flops::of(&config);
    let (encoder, head) = (table.count(Part::Encoder), table.count(Part::Head));
    Ok(PresetInfo {
        preset,
        encoder_params: encoder,
        decoder_params: table.count(Part::Decoder),
        head_params: head,
        classifier_params: encoder + head,
        classify_gflops: flops.classify_forward / 1e9,
        mae_gflops: flops.mae_forward / 1e9,
        config,
    })
}

pub fn run(args: &InfoArgs) -> Result<()> {
    let infos = PRESETS.iter().map(|p| describe(p)).collect::<Result<Vec<_>>>()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&infos)?);
        return Ok(());
    }
    println!(
        "{:<15} {:>6} {:>5} {:>12} {:>11} {:>12} {:>11} {:>10} {:>14} {:>14} {:>12}",
        "preset", "image", "patch", "enc d/L/h", "dec d/L/h", "encoder", "decoder", "head", "encoder+head", "classify GF", "MAE@75% GF"
    );
    for i in &infos {
        let c = &i.config;
        println!(
            "{:<15} {:>6} {:>5} {:>12} {:>11} {:>12} {:>11} {:>10} {:>14} {:>14.3} {:>12.3}",
            i.preset,
            format!("{}x{}", c.image_size, c.channels),
            c.patch,
            format!("{}/{}/{}", c.dim, c.depth, c.heads),
            format!("{}/{}/{}", c.decoder_dim, c.decoder_depth, c.decoder_heads),
            group(i.encoder_params),
            group(i.decoder_params),
            group(i.head_params),
            group(i.classifier_params),
            i.classify_gflops,
            i.mae_gflops,
        );
    }
    println!(
        "\nParameters are trainable values (position tables are fixed sin-cos); the head has `classes` rows \
         (1000 for the 224-pixel presets, 10 for the small ones). GF: forward GFLOPs per image \
         (2 per multiply-add of every matrix product); MAE encodes 25% of the patches and decodes all."
    );
    Ok(())
}

/// 86416360 -> "86,416,360".
fn group(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
