//! The Slurm job scripts of `dyad sweep --emit-slurm N`: an array of N tasks, one shard each,
//! a merge job to run after them, and the script that submits both with the dependency.
//!
//! Every path in them is absolute (the binary, the sweep file, the output folder), so a task
//! runs the same wherever Slurm starts it; each task resumes its shard's JSONL, so a task that
//! is cancelled, requeued or resubmitted keeps the points it finished.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::SweepError;

/// What the scripts run, and where.
#[derive(Debug, Clone)]
pub struct SlurmJob {
    /// The `dyad` binary every task runs (absolute).
    pub dyad: PathBuf,
    /// The sweep file (absolute).
    pub sweep_file: PathBuf,
    /// The output folder: shards, merged outputs, scripts, and `logs/` (absolute).
    pub out: PathBuf,
    /// Tasks in the array: task T runs shard T + 1 of this many.
    pub shards: usize,
    /// CPUs each task asks for, and the worker threads it runs.
    pub cpus_per_task: usize,
    /// More `#SBATCH` options, written as given (`--partition=gpu`, `--time=02:00:00`).
    pub sbatch: Vec<String>,
}

/// The three scripts' texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmScripts {
    /// `sweep.slurm`: the array job.
    pub array: String,
    /// `merge.slurm`: `dyad merge` of every shard.
    pub merge: String,
    /// `submit.sh`: submits the array, then the merge with `afterok` on it.
    pub submit: String,
}

/// `s` quoted for the shell: in single quotes, each `'` written as `'\''`.
fn quote(s: &Path) -> String {
    format!("'{}'", s.display().to_string().replace('\'', r"'\''"))
}

/// A path for an `#SBATCH` line, which takes no quoting: absolute, and without blanks or quotes.
fn sbatch_path(p: &Path) -> Result<String, SweepError> {
    let s = p.display().to_string();
    let why = if !p.is_absolute() {
        Some("is not absolute")
    } else if s
        .chars()
        .any(|c| c.is_whitespace() || c == '"' || c == '\'')
    {
        Some("has a blank or a quote, which an #SBATCH line cannot carry")
    } else {
        None
    };
    match why {
        Some(why) => Err(SweepError::SlurmPath {
            path: p.to_path_buf(),
            why,
        }),
        None => Ok(s),
    }
}

impl SlurmJob {
    /// The scripts, or an error naming a path they cannot hold.
    pub fn scripts(&self) -> Result<SlurmScripts, SweepError> {
        for p in [&self.dyad, &self.sweep_file, &self.out] {
            if !p.is_absolute() {
                return Err(SweepError::SlurmPath {
                    path: p.clone(),
                    why: "is not absolute",
                });
            }
        }
        let n = self.shards;
        let logs = sbatch_path(&self.out.join("logs"))?;
        let (dyad, file, out) = (quote(&self.dyad), quote(&self.sweep_file), quote(&self.out));
        let extra: String = self.sbatch.iter().fold(String::new(), |mut s, o| {
            let _ = writeln!(s, "#SBATCH {o}");
            s
        });
        let o = self.out.display();
        let array = format!(
            "#!/bin/bash\n\
             # dyad sweep as a Slurm array of {n} tasks: task T (0 to {last}) runs shard T+1 of {n}\n\
             # of the sweep into {o}/shard-(T+1)-of-{n}.jsonl, resuming it, so a task cancelled or\n\
             # requeued keeps the points it finished. Submit the array alone with\n\
             #   sbatch {o}/sweep.slurm\n\
             # or with the merge after it: {o}/submit.sh. Rerun task T: sbatch --array=T {o}/sweep.slurm\n\
             #SBATCH --job-name=dyad-sweep\n\
             #SBATCH --array=0-{last}\n\
             #SBATCH --cpus-per-task={cpus}\n\
             #SBATCH --output={logs}/shard-%A_%a.log\n\
             {extra}\
             set -euo pipefail\n\
             shard=$((SLURM_ARRAY_TASK_ID + 1))\n\
             exec {dyad} sweep {file} --out {out} --shard \"$shard/{n}\" --resume --quiet \\\n    \
             --jobs \"${{SLURM_CPUS_PER_TASK:-{cpus}}}\"\n",
            last = n - 1,
            cpus = self.cpus_per_task,
        );
        let merge = format!(
            "#!/bin/bash\n\
             # Joins the {n} shards of the sweep into {o} (points.jsonl, points.csv, pareto.md, …).\n\
             # submit.sh submits it to start once every task of the array has succeeded.\n\
             #SBATCH --job-name=dyad-merge\n\
             #SBATCH --cpus-per-task=1\n\
             #SBATCH --output={logs}/merge-%j.log\n\
             #SBATCH --kill-on-invalid-dep=yes\n\
             {extra}\
             set -euo pipefail\n\
             exec {dyad} merge {file} --out {out} {out}/shard-{{1..{n}}}-of-{n}.jsonl\n"
        );
        let submit = format!(
            "#!/bin/bash\n\
             # Submits the array ({n} tasks), then the merge to start once every task has\n\
             # succeeded (afterok; if a task fails the merge is cancelled). Arguments go to the\n\
             # merge's sbatch: `--wait` returns when the merge has run, with its status.\n\
             set -euo pipefail\n\
             array=$(sbatch --parsable {out}/sweep.slurm)\n\
             array=${{array%%;*}}\n\
             echo \"array job $array: {n} tasks\"\n\
             echo \"merge job after it (afterok:$array)\"\n\
             sbatch --parsable --dependency=\"afterok:$array\" \"$@\" {out}/merge.slurm\n"
        );
        Ok(SlurmScripts {
            array,
            merge,
            submit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> SlurmJob {
        SlurmJob {
            dyad: "/opt/dyad bin/dyad".into(),
            sweep_file: "/s/it's.toml".into(),
            out: "/o".into(),
            shards: 4,
            cpus_per_task: 2,
            sbatch: vec!["--time=01:00:00".into()],
        }
    }

    #[test]
    fn scripts_quote_paths_and_count_tasks_from_zero() {
        let s = job().scripts().unwrap();
        assert!(s.array.contains("#SBATCH --array=0-3\n"), "{}", s.array);
        assert!(s.array.contains("#SBATCH --cpus-per-task=2\n"));
        assert!(
            s.array
                .contains("#SBATCH --output=/o/logs/shard-%A_%a.log\n")
        );
        assert!(s.array.contains("#SBATCH --time=01:00:00\n"));
        assert!(
            s.array
                .contains(r"exec '/opt/dyad bin/dyad' sweep '/s/it'\''s.toml' --out '/o'")
        );
        assert!(s.merge.contains("'/o'/shard-{1..4}-of-4.jsonl\n"));
        assert!(s.submit.contains("--dependency=\"afterok:$array\""));
        for t in [&s.array, &s.merge, &s.submit] {
            assert!(t.starts_with("#!/bin/bash\n") && t.ends_with('\n'));
            // Slurm reads #SBATCH lines only before the first command.
            let first_cmd = t.find("\nset -euo").unwrap();
            assert!(!t[first_cmd..].contains("#SBATCH"));
        }
    }

    #[test]
    fn a_path_an_sbatch_line_cannot_hold_is_refused() {
        let mut j = job();
        j.out = "/my runs/a".into();
        let e = j.scripts().unwrap_err().to_string();
        assert!(e.contains("/my runs/a/logs") && e.contains("blank"), "{e}");
        j.out = "runs/a".into();
        let e = j.scripts().unwrap_err().to_string();
        assert!(e.contains("runs/a: is not absolute"), "{e}");
    }
}
