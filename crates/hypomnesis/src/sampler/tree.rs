//! Which processes of a process table descend from a tree's members: the pure part of tree
//! discovery where the OS hands out a table of (pid, parent pid) rows rather than `/proc`
//! (Windows' Toolhelp32 snapshot, macOS's `proc_listchildpids` + `proc_pidinfo`).
//!
//! A parent pid is only a number, and numbers are reused. Windows does not re-parent a child
//! whose parent exits: the child keeps naming its parent's pid, and once that pid is handed to
//! a new process the child seems to be *its* child. So a parent link counts only when the
//! process holding the parent pid started no later than the child (a parent is older than its
//! children), and a table row counts as a member only when its start time is the member's.
//! Where a start time is unknown (`None`, a process that refused to say) the link is taken on
//! trust. A table in which parent links form a cycle (possible once pids are reused, or in a
//! table read while processes come and go) ends the walk up at the repeat: a cycle adopts
//! nothing.
//!
//! The walk is linear in the rows (each row is resolved once; a sorted index finds parents),
//! and its buffers are kept between polls.

#![cfg_attr(target_os = "linux", allow(dead_code))]

/// One process of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcRow {
    /// The process.
    pub pid: u32,
    /// Its parent, as the OS recorded it when the process was created.
    pub ppid: u32,
    /// When it started, in the platform's unit (Windows: 100 ns since 1601; macOS: µs since
    /// 1970); `None` when it could not be read. Only compared with other start times.
    pub start: Option<u64>,
}

/// A process already in the tree: its pid, and its start time when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Known {
    /// The process.
    pub pid: u32,
    /// When it started (the unit of [`ProcRow::start`]).
    pub start: Option<u64>,
}

/// Whether two start times can be those of one process (unknown ones can).
fn same_process(a: Option<u64>, b: Option<u64>) -> bool {
    !matches!((a, b), (Some(a), Some(b)) if a != b)
}

/// Whether a process started at `parent` can be the parent of one started at `child`.
fn may_be_parent(parent: Option<u64>, child: Option<u64>) -> bool {
    !matches!((parent, child), (Some(p), Some(c)) if c < p)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Unknown,
    /// On the path being walked up: meeting it again is a cycle.
    Visiting,
    In,
    Out,
}

/// What [`Walk::discover`] found.
#[derive(Debug, Default)]
pub(crate) struct Found {
    /// Descendants of the members that are not members yet, in table order.
    pub new: Vec<ProcRow>,
    /// Members whose pid now belongs to another process (its start time differs): they have
    /// exited, and reading "their" pid would read a stranger.
    pub reused: Vec<u32>,
}

/// The buffers of a walk, kept between polls.
#[derive(Debug, Default)]
pub(crate) struct Walk {
    /// (pid, row index), sorted by pid: the parent lookup.
    by_pid: Vec<(u32, usize)>,
    marks: Vec<Mark>,
    path: Vec<usize>,
    wanted: Vec<u32>,
}

impl Walk {
    /// The rows of `table` that descend from `members`, and the members whose pid was reused.
    ///
    /// Start times are needed only to judge the rows that may be in the tree. `start_of` is
    /// asked for the start time of a row whose `start` is `None` only when that row is a
    /// member's or a candidate descendant's (so a platform that must open each process to read
    /// its start time opens a handful, not the whole table); `table` is updated with what it
    /// returns.
    pub(crate) fn discover(
        &mut self,
        table: &mut [ProcRow],
        members: &[Known],
        mut start_of: impl FnMut(u32) -> Option<u64>,
        found: &mut Found,
    ) {
        found.new.clear();
        found.reused.clear();
        self.index(table);
        self.resolve_all(table, members);
        // The candidates and the members' own rows: their start times decide.
        self.wanted.clear();
        self.wanted.extend(
            table
                .iter()
                .zip(&self.marks)
                .filter(|(_, mark)| **mark == Mark::In)
                .map(|(row, _)| row.pid),
        );
        self.wanted.extend(members.iter().map(|m| m.pid));
        self.wanted.sort_unstable();
        let mut filled = false;
        for row in table.iter_mut() {
            if row.start.is_none() && self.wanted.binary_search(&row.pid).is_ok() {
                row.start = start_of(row.pid);
                filled |= row.start.is_some();
            }
        }
        if filled {
            self.resolve_all(table, members);
        }
        for (row, mark) in table.iter().zip(&self.marks) {
            if *mark == Mark::In && !is_member(members, row) {
                found.new.push(*row);
            }
        }
        for member in members {
            let reused = self
                .row_of(table, member.pid)
                .is_some_and(|row| !same_process(row.start, member.start));
            if reused {
                found.reused.push(member.pid);
            }
        }
    }

    fn index(&mut self, table: &[ProcRow]) {
        self.by_pid.clear();
        self.by_pid
            .extend(table.iter().enumerate().map(|(i, row)| (row.pid, i)));
        // A pid listed twice (a table read while it changed) keeps its first row.
        self.by_pid.sort_by_key(|&(pid, i)| (pid, i));
        self.by_pid.dedup_by_key(|entry| entry.0);
    }

    fn lookup(&self, pid: u32) -> Option<usize> {
        self.by_pid
            .binary_search_by_key(&pid, |&(p, _)| p)
            .ok()
            .and_then(|at| self.by_pid.get(at))
            .map(|&(_, i)| i)
    }

    fn row_of<'t>(&self, table: &'t [ProcRow], pid: u32) -> Option<&'t ProcRow> {
        self.lookup(pid).and_then(|i| table.get(i))
    }

    /// Marks every row `In` (a member or a descendant of one) or `Out`.
    fn resolve_all(&mut self, table: &[ProcRow], members: &[Known]) {
        self.marks.clear();
        self.marks.resize(table.len(), Mark::Unknown);
        for i in 0..table.len() {
            self.resolve(table, members, i);
        }
    }

    /// Walks up from row `i` until a row whose answer is known, then gives that answer to
    /// every row on the way.
    fn resolve(&mut self, table: &[ProcRow], members: &[Known], i: usize) {
        self.path.clear();
        let mut at = i;
        let answer = loop {
            let (Some(&mark), Some(row)) = (self.marks.get(at), table.get(at)) else {
                break Mark::Out;
            };
            match mark {
                Mark::In | Mark::Out => break mark,
                Mark::Visiting => break Mark::Out,
                Mark::Unknown => {}
            }
            if is_member(members, row) {
                if let Some(m) = self.marks.get_mut(at) {
                    *m = Mark::In;
                }
                break Mark::In;
            }
            if let Some(m) = self.marks.get_mut(at) {
                *m = Mark::Visiting;
            }
            self.path.push(at);
            if row.ppid == row.pid {
                break Mark::Out;
            }
            match self.lookup(row.ppid).and_then(|p| Some((p, table.get(p)?))) {
                Some((p, parent)) if may_be_parent(parent.start, row.start) => at = p,
                // The process now holding the parent pid is younger than this one: the real
                // parent has exited. It was in the tree if it was a member that is now gone.
                Some((_, stranger)) => {
                    let gone_member = members.iter().any(|m| {
                        m.pid == row.ppid
                            && m.start.is_some()
                            && !same_process(m.start, stranger.start)
                            && may_be_parent(m.start, row.start)
                    });
                    break if gone_member { Mark::In } else { Mark::Out };
                }
                // The parent is not in the table: it has exited (or the table holds only part
                // of the system). It was in the tree if it was a member.
                None => {
                    let member = members
                        .iter()
                        .any(|m| m.pid == row.ppid && may_be_parent(m.start, row.start));
                    break if member { Mark::In } else { Mark::Out };
                }
            }
        };
        for &p in &self.path {
            if let Some(m) = self.marks.get_mut(p) {
                *m = answer;
            }
        }
    }
}

/// Whether `row` is one of `members` (same pid, and not a later process under that pid).
fn is_member(members: &[Known], row: &ProcRow) -> bool {
    members
        .iter()
        .any(|m| m.pid == row.pid && same_process(m.start, row.start))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pid: u32, ppid: u32, start: u64) -> ProcRow {
        ProcRow {
            pid,
            ppid,
            start: Some(start),
        }
    }

    fn known(pid: u32, start: u64) -> Known {
        Known {
            pid,
            start: Some(start),
        }
    }

    fn discover(table: &mut [ProcRow], members: &[Known]) -> Found {
        let mut found = Found::default();
        Walk::default().discover(table, members, |_| None, &mut found);
        found
    }

    fn pids(rows: &[ProcRow]) -> Vec<u32> {
        rows.iter().map(|r| r.pid).collect()
    }

    #[test]
    fn descendants_are_found_through_every_generation_and_nothing_else() {
        // 4 (System) ─ 100 (explorer) ─ 200 (hmn) ─ 300 (cmd) ─ 400 (python) ─ 500 (worker)
        //                                                      └ 410 (conhost)
        //                              └ 600 (unrelated, a sibling of the root)
        let mut table = [
            row(500, 400, 50),
            row(4, 0, 1),
            row(100, 4, 10),
            row(200, 100, 20),
            row(300, 200, 30),
            row(400, 300, 40),
            row(410, 300, 41),
            row(600, 100, 60),
        ];
        let found = discover(&mut table, &[known(300, 30)]);
        assert_eq!(pids(&found.new), [500, 400, 410], "table order");
        assert!(found.reused.is_empty());
    }

    #[test]
    fn members_are_not_reported_again() {
        let mut table = [row(300, 200, 30), row(400, 300, 40), row(500, 400, 50)];
        let found = discover(&mut table, &[known(300, 30), known(400, 40)]);
        assert_eq!(pids(&found.new), [500]);
    }

    #[test]
    fn a_child_older_than_the_process_now_holding_its_parent_pid_is_not_adopted() {
        // 700 was started by a process 300 that exited before the tree's root got pid 300:
        // 700 still names 300 as its parent, but is older than the root.
        let mut table = [row(300, 200, 30), row(700, 300, 5), row(800, 700, 6)];
        let found = discover(&mut table, &[known(300, 30)]);
        assert!(found.new.is_empty(), "{:?}", found.new);
    }

    #[test]
    fn an_orphan_of_a_member_that_exited_stays_in_the_tree() {
        // Member 400 exited; its child 500 still names it, and no one has pid 400 now.
        let mut gone = [row(300, 200, 30), row(500, 400, 50)];
        let found = discover(&mut gone, &[known(300, 30), known(400, 40)]);
        assert_eq!(pids(&found.new), [500]);

        // Member 400 exited and pid 400 went to a stranger started after 500: 500 is still
        // the member's child, the stranger and its children are not in the tree.
        let mut reused = [
            row(300, 200, 30),
            row(500, 400, 50),
            row(400, 9, 70),
            row(900, 400, 80),
        ];
        let found = discover(&mut reused, &[known(300, 30), known(400, 40)]);
        assert_eq!(pids(&found.new), [500]);
        assert_eq!(found.reused, [400]);
    }

    #[test]
    fn a_member_whose_pid_now_names_another_process_is_reported_reused() {
        let mut table = [row(300, 200, 30), row(400, 12, 99), row(410, 400, 100)];
        let found = discover(&mut table, &[known(300, 30), known(400, 40)]);
        assert_eq!(found.reused, [400]);
        assert!(
            found.new.is_empty(),
            "the stranger's child is not adopted: {:?}",
            found.new
        );
    }

    #[test]
    fn cycles_and_self_parents_end_the_walk_without_adopting() {
        // pid 0 names itself; 10 → 20 → 30 → 10 is a loop no member is on; 40 hangs off it.
        let mut table = [
            row(0, 0, 0),
            row(10, 30, 1),
            row(20, 10, 1),
            row(30, 20, 1),
            row(40, 20, 2),
            row(300, 0, 3),
            row(310, 300, 4),
        ];
        let found = discover(&mut table, &[known(300, 3)]);
        assert_eq!(pids(&found.new), [310]);
        // A loop through a member adopts the rest of the loop (they descend from it).
        let mut looped = [row(1, 3, 1), row(2, 1, 1), row(3, 2, 1)];
        let found = discover(&mut looped, &[known(1, 1)]);
        assert_eq!(pids(&found.new), [2, 3]);
    }

    #[test]
    fn unknown_start_times_are_taken_on_trust() {
        let unknown = |pid, ppid| ProcRow {
            pid,
            ppid,
            start: None,
        };
        let mut table = [unknown(300, 1), unknown(400, 300), unknown(500, 400)];
        let found = discover(
            &mut table,
            &[Known {
                pid: 300,
                start: None,
            }],
        );
        assert_eq!(pids(&found.new), [400, 500]);
        assert!(found.reused.is_empty());
    }

    #[test]
    fn start_times_are_asked_only_for_members_and_candidates() {
        let unknown = |pid, ppid| ProcRow {
            pid,
            ppid,
            start: None,
        };
        // Member 300 (started at 30); 400 its child; 700 an old process naming pid 300 as
        // parent (pid reuse); 900 unrelated.
        let mut table = [
            unknown(300, 1),
            unknown(400, 300),
            unknown(700, 300),
            unknown(900, 1),
            unknown(1, 0),
        ];
        let starts = |pid| match pid {
            300 => Some(30),
            400 => Some(40),
            700 => Some(7),
            _ => None,
        };
        let mut asked = Vec::new();
        let mut found = Found::default();
        Walk::default().discover(
            &mut table,
            &[known(300, 30)],
            |pid| {
                asked.push(pid);
                starts(pid)
            },
            &mut found,
        );
        asked.sort_unstable();
        assert_eq!(asked, [300, 400, 700], "not 900 nor 1");
        assert_eq!(
            pids(&found.new),
            [400],
            "700 is older than its parent pid's holder"
        );
    }

    #[test]
    fn a_pid_listed_twice_keeps_its_first_row() {
        let mut table = [row(300, 1, 30), row(400, 300, 40), row(400, 77, 41)];
        let found = discover(&mut table, &[known(300, 30)]);
        assert_eq!(pids(&found.new), [400]);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// The descendants of `root` by following children: the reference answer for a
        /// table of unique pids whose parents are older than their children.
        fn reachable(table: &[ProcRow], root: u32) -> Vec<u32> {
            let mut tree = vec![root];
            let mut changed = true;
            while changed {
                changed = false;
                for r in table {
                    if !tree.contains(&r.pid) && tree.contains(&r.ppid) {
                        tree.push(r.pid);
                        changed = true;
                    }
                }
            }
            let mut out: Vec<u32> = tree.into_iter().filter(|&p| p != root).collect();
            out.sort_unstable();
            out
        }

        proptest! {
            /// Process k (pid k + 1, started at k) has a parent among the processes started
            /// before it, or none (ppid 0): a forest as an OS builds it.
            #[test]
            fn descendants_match_a_reachability_walk(
                parents in proptest::collection::vec(any::<prop::sample::Index>(), 1..60),
                orphan in proptest::collection::vec(any::<bool>(), 60),
                root in any::<prop::sample::Index>(),
            ) {
                let table: Vec<ProcRow> = parents
                    .iter()
                    .enumerate()
                    .map(|(k, parent)| {
                        let k32 = u32::try_from(k).unwrap();
                        let ppid = if k == 0 || orphan[k] {
                            0
                        } else {
                            u32::try_from(parent.index(k)).unwrap() + 1
                        };
                        row(k32 + 1, ppid, u64::from(k32))
                    })
                    .collect();
                let root_row = table[root.index(table.len())];
                let mut shuffled = table.clone();
                shuffled.reverse();
                let found = discover(&mut shuffled, &[known(root_row.pid, root_row.start.unwrap())]);
                let mut got = pids(&found.new);
                got.sort_unstable();
                prop_assert_eq!(got, reachable(&table, root_row.pid));
            }

            /// Any table at all, cycles and duplicates included: the walk ends, adopts only
            /// rows of the table, and never reports a member as new.
            #[test]
            fn any_table_is_walked_to_the_end(
                rows in proptest::collection::vec((0_u32..40, 0_u32..40, proptest::option::of(0_u64..10)), 0..80),
                members in proptest::collection::vec((0_u32..40, proptest::option::of(0_u64..10)), 0..5),
            ) {
                let mut table: Vec<ProcRow> = rows
                    .iter()
                    .map(|&(pid, ppid, start)| ProcRow { pid, ppid, start })
                    .collect();
                let members: Vec<Known> = members
                    .iter()
                    .map(|&(pid, start)| Known { pid, start })
                    .collect();
                let found = discover(&mut table, &members);
                for r in &found.new {
                    prop_assert!(table.contains(r));
                    prop_assert!(!is_member(&members, r));
                }
            }
        }
    }
}
