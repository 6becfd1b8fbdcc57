//! The input of `results/validation/fit/e2e.py`: every row of
//! `data/validation/splitwise_llama2-70b_e2e.csv` beside dyad's kernel-only prices, one prompt per
//! prefill iteration. Run from the repository root:
//! `cargo run --release --example e2e_points > points.csv`.

use std::collections::HashMap;
use std::error::Error;
use std::path::Path;

use dyad::app::accuracy::{E2E_DEVICES, E2eConfig, E2eCoster};

fn main() -> Result<(), Box<dyn Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("data/validation/splitwise_llama2-70b_e2e.csv"))?;
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let head: Vec<&str> = lines.next().ok_or("no header")?.split(',').collect();
    println!("hw,tp,prompt,batch,output,prefill_ms,decode_ms,kp,kd,ops_p,ops_d,coll,floor");
    for (hw, _, arch, _) in E2E_DEVICES {
        let mut coster = E2eCoster::new(root, arch)?;
        for line in lines.clone() {
            let row: HashMap<&str, &str> = head.iter().copied().zip(line.split(',')).collect();
            if row.get("hardware") != Some(&hw) {
                continue;
            }
            let num = |c: &str| -> Result<f64, Box<dyn Error>> {
                Ok(row.get(c).ok_or(format!("no column {c}"))?.parse::<f64>()?)
            };
            let k = E2eConfig {
                tp: num("tensor_parallel")? as u64,
                prompt: num("prompt_size")? as u64,
                batch: num("batch_size")? as u64,
                output: num("token_size")? as u64,
            };
            let p = coster.point(k, 1)?;
            let (one, d) = (p.prefill[0].0, p.decode);
            println!(
                "{hw},{},{},{},{},{},{},{},{},{},{},{},{}",
                k.tp,
                k.prompt,
                k.batch,
                k.output,
                num("prompt_time_ms")?,
                num("token_time_ms")?,
                one.kernel * 1e3,
                d.kernel * 1e3,
                one.shape.ops,
                d.shape.ops,
                d.shape.collectives,
                p.prefill_floor * 1e3
            );
        }
    }
    Ok(())
}
