//! `hmn serve --job-mapping-dir DIR`: which batch job holds a GPU, as a scheduler writes it.
//!
//! On an HPC cluster the question is "what did job 4242 use?", and only the scheduler knows
//! which job runs on which GPU. dcgm-exporter's HPC job mapping is the convention sites have
//! already scripted (a Slurm prolog writes the files, the epilog removes them): a directory
//! with one file per GPU, named by its index (`0`, `1`; `2.1` for GPU instance 1 of MIG GPU 2),
//! holding the ids of the jobs on it, one per line. Each id becomes an `hpc_job` label — the
//! name dcgm-exporter uses; `job` is the label Prometheus itself gives every target — on the
//! series of that GPU and its processes (of that GPU instance, for a `N.G` file). A GPU with
//! two jobs keeps one series, labelled `hpc_job="7,8"`: dcgm-exporter repeats the series once
//! per job, which counts the GPU twice in every sum, and `hmn serve` never exports a figure
//! twice.
//!
//! The directory is read again for every frame (the files change with every job), on the
//! thread that encodes frames, never by a scrape.

use std::collections::BTreeMap;
use std::path::Path;

/// What a mapping file is named after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum JobKey {
    /// A whole GPU, by index (`0`).
    Gpu(u32),
    /// A MIG GPU instance: GPU index and GPU instance id (`2.1`).
    Instance(u32, u32),
}

/// The key a mapping file's name stands for: `<gpu>` or `<gpu>.<gpu instance>`, decimal, as
/// dcgm-exporter accepts (`^\d+(\.\d+)?$`). Other files are not mapping files.
pub fn parse_file_name(name: &str) -> Option<JobKey> {
    let number = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    match name.split_once('.') {
        None => Some(JobKey::Gpu(number(name)?)),
        Some((gpu, instance)) => Some(JobKey::Instance(number(gpu)?, number(instance)?)),
    }
}

/// The job ids of a mapping file: one per line, surrounding white space trimmed, blank lines
/// skipped (a label with an empty value is no label), each once.
pub fn parse_jobs(text: &str) -> Vec<String> {
    let mut jobs: Vec<String> = Vec::new();
    for job in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !jobs.iter().any(|j| j == job) {
            jobs.push(job.to_owned());
        }
    }
    jobs
}

/// Job ids by GPU (or GPU instance).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobMap(BTreeMap<JobKey, Vec<String>>);

impl JobMap {
    /// The jobs of `key`; empty when it has no file.
    pub fn jobs(&self, key: JobKey) -> &[String] {
        self.0.get(&key).map_or(&[], Vec::as_slice)
    }

    /// The jobs on GPU `gpu` as a whole.
    pub fn of_gpu(&self, gpu: u32) -> Vec<String> {
        self.jobs(JobKey::Gpu(gpu)).to_vec()
    }

    /// The jobs of a process on GPU `gpu`, in GPU instance `instance` when MIG is on: the
    /// whole GPU's, then its instance's.
    pub fn of_process(&self, gpu: u32, instance: Option<u32>) -> Vec<String> {
        let mut jobs = self.of_gpu(gpu);
        if let Some(instance) = instance {
            for job in self.jobs(JobKey::Instance(gpu, instance)) {
                if !jobs.contains(job) {
                    jobs.push(job.clone());
                }
            }
        }
        jobs
    }
}

/// Reads the mapping files of `dir`. A file that vanishes between listing and reading (a job
/// ended) is skipped; directories and other names are not mapping files.
///
/// # Errors
/// When `dir` cannot be listed, or a mapping file exists but cannot be read; the error names
/// the path.
pub fn read_job_map(dir: &Path) -> Result<JobMap, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        format!(
            "cannot list the job mapping directory {}: {e}",
            dir.display()
        )
    })?;
    let mut map = BTreeMap::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(key) = name.to_str().and_then(parse_file_name) else {
            continue;
        };
        let path = entry.path();
        if path.is_dir() {
            continue;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let jobs = parse_jobs(&text);
        if !jobs.is_empty() {
            map.insert(key, jobs);
        }
    }
    Ok(JobMap(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_named_by_gpu_index_or_gpu_and_mig_instance_and_nothing_else() {
        assert_eq!(parse_file_name("0"), Some(JobKey::Gpu(0)));
        assert_eq!(parse_file_name("17"), Some(JobKey::Gpu(17)));
        assert_eq!(parse_file_name("2.1"), Some(JobKey::Instance(2, 1)));
        assert_eq!(parse_file_name("3.10"), Some(JobKey::Instance(3, 10)));
        for not_a_mapping in [
            "", ".", "0.", ".1", "a", "0.1.2", "-1", "+1", "1 ", "0.tmp", "README",
        ] {
            assert_eq!(parse_file_name(not_a_mapping), None, "{not_a_mapping:?}");
        }
    }

    #[test]
    fn job_ids_are_one_per_line_trimmed_blank_lines_skipped_and_each_once() {
        assert_eq!(parse_jobs("4242\n"), ["4242"]);
        assert_eq!(parse_jobs("4242\r\n\n  4243 \n4242\n"), ["4242", "4243"]);
        assert!(parse_jobs("\n \n").is_empty());
    }

    #[test]
    fn a_directory_is_read_into_jobs_by_gpu_skipping_other_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("0"), "4242\n").unwrap();
        std::fs::write(dir.path().join("1"), "4243\n4244\n").unwrap();
        std::fs::write(dir.path().join("2.1"), "4245\n").unwrap();
        std::fs::write(dir.path().join("3"), "").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "4999\n").unwrap();
        std::fs::create_dir(dir.path().join("4")).unwrap();
        let map = read_job_map(dir.path()).unwrap();
        assert_eq!(map.0.len(), 3);
        assert_eq!(map.of_gpu(0), ["4242"]);
        assert_eq!(map.of_gpu(1), ["4243", "4244"]);
        assert!(map.of_gpu(2).is_empty());
        assert!(map.of_gpu(3).is_empty());
        assert!(map.of_gpu(4).is_empty());
        assert_eq!(map.of_process(2, Some(1)), ["4245"]);
        assert!(map.of_process(2, Some(0)).is_empty());
        assert_eq!(map.of_process(0, Some(1)), ["4242"]);
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent");
        let error = read_job_map(&missing).unwrap_err();
        assert!(error.contains(&missing.display().to_string()), "{error}");
    }
}
