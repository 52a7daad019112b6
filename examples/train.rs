//! Trains an ARFPN detector on a Pascal VOC dataset, with checkpoints that resume.
//!
//! ```text
//! cargo run --release --example train -- --data ../shared/data/bccd --preset cpu-small --out runs/bccd --steps 3000 --crop 384x384
//! cargo run --release --example train -- --data ../shared/data/bccd --out runs/bccd --resume --steps 5000
//! ```
//!
//! `RUN_DIR` receives `checkpoints/` (the last two), `best.safetensors` (best validation
//! mAP, when the dataset has a `val` split), `log.jsonl`, `config.json` and `train.json`.
//! Ctrl-C writes a final checkpoint and exits; `--resume` continues bit for bit.

mod cli;

fn main() -> std::process::ExitCode {
    // Keep freed feature maps in the process (see arfpn_kernels::keep_freed_memory): it halves a
    // training step's time by sparing the kernel from clearing pages again and again.
    arfpn_kernels::keep_freed_memory();
    cli::exit_with(cli::train_cmd::run(std::env::args_os()))
}
