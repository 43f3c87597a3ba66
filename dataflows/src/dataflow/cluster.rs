//! Cluster mode: one replication dataflow across several processes, on timely's own cluster
//! allocator. Every process runs the same graph; timely connects them over TCP.
//!
//! What is where: process 0's first worker feeds the runs, lists the source and collects the run
//! report; meta reads, target checks, copies and commits are spread over every worker of every
//! process by the same fixed hash ([`crate::dataflow::route`]), so each compaction group has one committing
//! worker in the whole cluster and its order holds cluster-wide. timely does not recover a lost
//! peer: when a process dies, the others' workers stop, and their run fails without committing
//! anything more than what was complete.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// This process's place in a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// This process's index, 0-based; process 0 leads.
    pub process: usize,
    /// Every process's `host:port`, in process order, the same list in every process.
    pub addresses: Vec<String>,
    /// Settings of the embedding program that every process must share, by name (such as where
    /// its buckets are). The engine adds its own (workers, strategy, layout, filters, ...), and
    /// a process whose settings differ from process 0's refuses to run.
    pub settings: BTreeMap<String, String>,
}

/// Why a cluster could not be set up from the process count, process index and hostfile.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClusterError {
    /// The process index is not below the number of processes.
    #[error("process {process} is out of range: a cluster of {processes} processes numbers them 0 to {}", processes - 1)]
    ProcessOutOfRange {
        /// The process index given.
        process: usize,
        /// The number of processes in the cluster.
        processes: usize,
    },
    /// The number of processes is zero.
    #[error("a cluster needs at least 1 process")]
    NoProcesses,
    /// The hostfile could not be read.
    #[error("reading hostfile {}: {reason}", path.display())]
    Hostfile {
        /// The hostfile.
        path: PathBuf,
        /// Why it could not be read.
        reason: String,
    },
    /// The hostfile lists a number of addresses other than the number of processes.
    #[error("hostfile {} lists {listed} addresses for a cluster of {processes} processes", path.display())]
    HostfileCount {
        /// The hostfile.
        path: PathBuf,
        /// The addresses it lists.
        listed: usize,
        /// The number of processes in the cluster.
        processes: usize,
    },
    /// A line of the hostfile is not a `host:port` address.
    #[error("hostfile {} line {line}: {text:?} is not host:port", path.display())]
    HostfileLine {
        /// The hostfile.
        path: PathBuf,
        /// The line's number, from 1.
        line: usize,
        /// The line, without its comment and surrounding whitespace.
        text: String,
    },
}

/// The first port of the default addresses, as timely's own examples number them.
pub(crate) const DEFAULT_BASE_PORT: u16 = 2101;

impl ClusterConfig {
    /// The cluster of `processes` processes of which this is `process`, at the addresses of
    /// `hostfile` (one `host:port` a line; blank lines and `#` comments ignored), or without one
    /// at 127.0.0.1 from port 2101 up. One process is no cluster: `None`.
    pub fn new(processes: usize, process: usize, hostfile: Option<&Path>) -> Result<Option<Self>, ClusterError> {
        if processes == 0 {
            return Err(ClusterError::NoProcesses);
        }
        if process >= processes {
            return Err(ClusterError::ProcessOutOfRange { process, processes });
        }
        let addresses = match hostfile {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ClusterError::Hostfile { path: path.to_path_buf(), reason: e.to_string() })?;
                let addresses = parse_hostfile(path, &text)?;
                if addresses.len() != processes {
                    return Err(ClusterError::HostfileCount {
                        path: path.to_path_buf(),
                        listed: addresses.len(),
                        processes,
                    });
                }
                addresses
            }
            None => (0..processes).map(|i| format!("127.0.0.1:{}", usize::from(DEFAULT_BASE_PORT) + i)).collect(),
        };
        Ok((processes > 1).then_some(ClusterConfig { process, addresses, settings: BTreeMap::new() }))
    }

    /// Whether this is process 0, which starts the runs and receives their reports.
    pub fn is_leader(&self) -> bool {
        self.process == 0
    }
}

fn parse_hostfile(path: &Path, text: &str) -> Result<Vec<String>, ClusterError> {
    let mut addresses = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let valid = line.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !valid {
            return Err(ClusterError::HostfileLine { path: path.to_path_buf(), line: i + 1, text: line.to_string() });
        }
        addresses.push(line.to_string());
    }
    Ok(addresses)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hostfile(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn one_process_is_no_cluster_and_defaults_count_up_from_2101() {
        assert_eq!(ClusterConfig::new(1, 0, None), Ok(None));
        let cluster = ClusterConfig::new(3, 2, None).unwrap().unwrap();
        assert_eq!(cluster.addresses, ["127.0.0.1:2101", "127.0.0.1:2102", "127.0.0.1:2103"]);
        assert!(!cluster.is_leader());
    }

    #[test]
    fn a_hostfile_gives_the_addresses_in_order() {
        let file = hostfile("# the cluster\nhost-a:7000\n\n  host-b:7001  # second\n");
        let cluster = ClusterConfig::new(2, 0, Some(file.path())).unwrap().unwrap();
        assert_eq!(cluster.addresses, ["host-a:7000", "host-b:7001"]);
        assert!(cluster.is_leader());
    }

    #[test]
    fn bad_cluster_flags_are_named() {
        let err = |r: Result<Option<ClusterConfig>, ClusterError>| r.unwrap_err().to_string();
        assert!(err(ClusterConfig::new(2, 2, None)).contains("process 2 is out of range"));
        assert!(err(ClusterConfig::new(0, 0, None)).contains("at least 1 process"));
        let file = hostfile("a:1\n");
        let text = err(ClusterConfig::new(2, 0, Some(file.path())));
        assert!(text.contains("lists 1 addresses for a cluster of 2 processes"), "{text}");
        let file = hostfile("a:1\nnot-an-address\n");
        let text = err(ClusterConfig::new(2, 0, Some(file.path())));
        assert!(text.contains("line 2: \"not-an-address\" is not host:port"), "{text}");
        let text = err(ClusterConfig::new(2, 0, Some(Path::new("/nonexistent/hosts"))));
        assert!(text.contains("reading hostfile /nonexistent/hosts"), "{text}");
    }
}
