//! CPU time of the processes a scenario runs, read from /proc, so a benchmark can say where the
//! machine's cores went (the operator, etcd, kube-apiserver, the bench with its simulator).

use std::time::Duration;

use anyhow::Context;

/// User + system CPU time of process `pid` so far (its threads included, its children not).
pub fn of_process(pid: u32) -> anyhow::Result<Duration> {
    let fields = stat_fields(pid)?;
    // utime and stime are fields 14 and 15 of stat; `fields` starts at field 3.
    let ticks: u64 = fields
        .get(11..13)
        .context("short /proc/<pid>/stat")?
        .iter()
        .map(|v| v.parse::<u64>().unwrap_or(0))
        .sum();
    // USER_HZ is 100 on Linux.
    Ok(Duration::from_millis(ticks * 10))
}

/// The fields of /proc/<pid>/stat after the command name (which may hold spaces).
fn stat_fields(pid: u32) -> anyhow::Result<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("unexpected /proc/<pid>/stat")?;
    Ok(rest.split_whitespace().map(str::to_owned).collect())
}

/// The running children of `pid`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| {
            stat_fields(child)
                .ok()
                .and_then(|f| f.get(1).and_then(|ppid| ppid.parse::<u32>().ok()))
                == Some(pid)
        })
        .collect()
}

/// CPU time so far of the operator, the control plane's two halves and this process.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub operator: Duration,
    pub etcd: Duration,
    pub apiserver: Duration,
    pub bench: Duration,
}

impl Sample {
    /// `control_plane` is the launcher's pid: etcd runs in it, kube-apiserver as its child.
    pub fn take(operator: Option<u32>, control_plane: Option<u32>) -> anyhow::Result<Self> {
        let (etcd, apiserver) = match control_plane {
            Some(pid) => (
                of_process(pid)?,
                children(pid)
                    .into_iter()
                    .filter_map(|child| of_process(child).ok())
                    .sum(),
            ),
            None => Default::default(),
        };
        Ok(Self {
            operator: operator.map(of_process).transpose()?.unwrap_or_default(),
            etcd,
            apiserver,
            bench: of_process(std::process::id())?,
        })
    }

    /// One line: each part's share of the cores over `wall` since `before`.
    pub fn summary_since(&self, before: &Self, wall: Duration) -> String {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pct = |now: Duration, then: Duration| {
            100.0 * now.saturating_sub(then).as_secs_f64() / wall.as_secs_f64()
        };
        let parts = [
            ("kube-apiserver", pct(self.apiserver, before.apiserver)),
            ("etcd", pct(self.etcd, before.etcd)),
            ("operator", pct(self.operator, before.operator)),
            ("bench+simulator", pct(self.bench, before.bench)),
        ];
        let total: f64 = parts.iter().map(|(_, p)| p).sum();
        let each = parts
            .iter()
            .map(|(name, p)| format!("{name} {p:.0}%"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "CPU, in % of one core: {each}; together {total:.0}% of the {cores} cores' {}%",
            cores * 100
        )
    }
}
