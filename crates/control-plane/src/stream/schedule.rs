//! Message schedules (ADR-51) at commit: which subjects hold a schedule, when each is
//! due, and the fence that makes every firing happen once.
//!
//! - A message with `Nats-Schedule` is checked in nats-server's order
//!   ([`ScheduleHeaders::check_publish`]) and, stored, becomes its subject's schedule:
//!   it replaces the subject's earlier messages (nats-server adds `Nats-Rollup: sub`)
//!   and its next firing time is kept in its record's metadata (`schedule_next`), so
//!   schedules survive a restart or a leader change with the index.
//! - A later message on that subject without `Nats-Scheduler` ends the schedule, as
//!   does deleting, purging or expiring the schedule message.
//! - The jobs role asks for due schedules (`DueSchedules`), builds the produced message
//!   and commits it with a [`v1::ScheduleFiring`]: the commit is refused unless the
//!   subject's schedule is still the same message and still due at the time jobs read,
//!   so two jobs agents (or one retrying after a lost answer) store one firing. The
//!   stored firing purges the schedule (`@at`) or moves its next time (repeating), in
//!   the same metadata write.
//! - A client's `Nats-Schedule-Next: purge` with `Nats-Scheduler: <subject>` purges that
//!   schedule when stored; the scheduler subject must hold a schedule (or nothing).

use infinistream_proto::domain::{Record, Rollup};
use infinistream_proto::v1::JsError;
use infinistream_protocol::jsapi::ApiError;
use infinistream_protocol::jsapi::headers;
use infinistream_protocol::jsapi::schedule::{ScheduleAction, StreamRules};

use super::Stream;

/// The `Nats-Rollup` value a record was published with, as nats-server reads it.
fn rollup_value(r: &Rollup) -> Option<&str> {
    match r {
        Rollup::None => None,
        Rollup::Subject => Some(headers::ROLLUP_SUBJECT),
        Rollup::All => Some(headers::ROLLUP_ALL),
        Rollup::Invalid(v) => Some(v.as_str()),
    }
}

/// A firing refused by the fence: the schedule fired already, or changed.
fn stale_firing(scheduler: &str) -> JsError {
    let mut e = ApiError::message_schedules_scheduler_invalid();
    e.description =
        format!("message schedules invalid scheduler: `{scheduler}` already fired or changed");
    e.into()
}

impl Stream {
    /// Schedules due at `now`: (subject, schedule seq, due time), oldest first.
    pub fn due_schedules(&self, now: i64) -> Vec<(String, u64, i64)> {
        let mut due: Vec<(String, u64, i64)> = self
            .schedules
            .iter()
            .filter(|(_, (_, next))| *next <= now)
            .map(|(subj, (seq, next))| (subj.clone(), *seq, *next))
            .collect();
        due.sort_by_key(|(_, seq, next)| (*next, *seq));
        due
    }

    /// Whether the stream holds a message schedule.
    pub fn has_schedules(&self) -> bool {
        !self.schedules.is_empty()
    }

    /// Schedules due at `now` and the earliest due time among them (`None`: none due).
    pub fn schedule_backlog(&self, now: i64) -> (u64, Option<i64>) {
        self.schedules
            .values()
            .filter(|(_, next)| *next <= now)
            .fold((0, None), |(n, oldest), (_, next)| {
                (n + 1, Some(oldest.map_or(*next, |o: i64| o.min(*next))))
            })
    }

    /// The fence of a firing: the schedule must still be the message and due time jobs
    /// read.
    pub(super) fn check_firing(&self, r: &Record) -> Result<(), JsError> {
        let Some(f) = &r.firing else {
            return Ok(());
        };
        match self.schedules.get(&f.scheduler) {
            Some((seq, next)) if *seq == f.schedule_seq && *next == f.due_unix_nanos => Ok(()),
            _ => Err(stale_firing(&f.scheduler)),
        }
    }

    /// A client's schedule headers, checked at nats-server's point (after the
    /// expected-sequence checks).
    pub(super) fn check_schedule(&self, r: &Record, now: i64) -> Result<(), JsError> {
        if r.firing.is_some() {
            return Ok(());
        }
        match self.schedule_action(r, now)? {
            ScheduleAction::Purge { scheduler } => {
                // The scheduler subject must hold a schedule, or nothing.
                let last = self.last_seq_for(&scheduler);
                let is_schedule = self
                    .schedules
                    .get(&scheduler)
                    .is_some_and(|(s, _)| *s == last);
                if last != 0 && !is_schedule {
                    return Err(ApiError::message_schedules_scheduler_invalid().into());
                }
                Ok(())
            }
            ScheduleAction::None | ScheduleAction::Schedule { .. } => Ok(()),
        }
    }

    fn schedule_action(&self, r: &Record, now: i64) -> Result<ScheduleAction, JsError> {
        let Some(h) = &r.schedule else {
            return Ok(ScheduleAction::None);
        };
        let l = &self.spec.limits;
        let rules = StreamRules {
            allow_schedules: l.allow_msg_schedules,
            allow_ttl: l.allow_msg_ttl,
            subjects: &l.subjects,
        };
        Ok(h.check_publish(&r.subject, rollup_value(&r.rollup), rules, now)?)
    }

    /// What a stored record does to the schedules (`now` = its commit time).
    pub(super) fn after_append_schedule(&mut self, seq: u64, r: &Record, now: i64) {
        if let Some(f) = &r.firing {
            if f.next_unix_nanos == 0 {
                self.purge(&f.scheduler, None, None);
            } else {
                self.set_schedule_next(f.schedule_seq, f.next_unix_nanos);
                if let Some(entry) = self.schedules.get_mut(&f.scheduler) {
                    entry.1 = f.next_unix_nanos;
                }
            }
            return;
        }
        let action = self.schedule_action(r, now).unwrap_or(ScheduleAction::None);
        match action {
            ScheduleAction::Schedule { next, .. } => {
                if r.rollup != Rollup::Subject {
                    // nats-server stores a schedule with `Nats-Rollup: sub`.
                    let older: Vec<u64> = self
                        .subjects
                        .get(&r.subject)
                        .map(|d| d.iter().copied().filter(|s| *s < seq).collect())
                        .unwrap_or_default();
                    for s in older {
                        self.remove_seq(s);
                    }
                }
                self.set_schedule_next(seq, next);
                self.schedules.insert(r.subject.clone(), (seq, next));
            }
            ScheduleAction::Purge { scheduler } => {
                self.purge(&scheduler, None, None);
            }
            ScheduleAction::None => {
                let has_scheduler = r
                    .schedule
                    .as_ref()
                    .is_some_and(|h| h.scheduler.as_deref().is_some_and(|s| !s.is_empty()));
                if !has_scheduler && let Some((old, _)) = self.schedules.remove(&r.subject) {
                    self.set_schedule_next(old, 0);
                }
            }
        }
    }

    /// Sets the `schedule_next` of the record at `seq` (marks its index key dirty).
    fn set_schedule_next(&mut self, seq: u64, next: i64) {
        let Some((key, idx)) = self.locate(seq) else {
            return;
        };
        let Some(e) = self.entries.get_mut(&key) else {
            return;
        };
        if let Some(m) = e.rec.records.get_mut(idx)
            && m.schedule_next != next
        {
            m.schedule_next = next;
            self.dirty.insert(e.key);
            self.needs_fold = true;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use infinistream_proto::domain::{Chunk, StreamSpec};
    use infinistream_proto::v1::{self, record_result};
    use infinistream_protocol::jsapi::schedule::ScheduleHeaders;

    use super::*;

    const SEC: i64 = 1_000_000_000;

    fn firing(scheduler: &str, schedule_seq: u64, due: i64, next: i64) -> v1::ScheduleFiring {
        v1::ScheduleFiring {
            scheduler: scheduler.to_owned(),
            schedule_seq,
            due_unix_nanos: due,
            next_unix_nanos: next,
        }
    }

    const T0: i64 = 1_800_000_000 * SEC;

    fn stream() -> Stream {
        let mut spec = StreamSpec {
            name: "S".into(),
            config_json: Vec::new(),
            limits: Default::default(),
        };
        spec.limits.subjects = vec!["s.>".into()];
        spec.limits.allow_msg_schedules = true;
        spec.limits.allow_rollup = true;
        spec.limits.allow_msg_ttl = true;
        Stream::new(spec, 0)
    }

    fn rec(subject: &str) -> Record {
        Record {
            subject: subject.into(),
            size: 10,
            timestamp_unix_nanos: T0,
            ..Default::default()
        }
    }

    fn schedule(subject: &str, pattern: &str, target: &str) -> Record {
        Record {
            schedule: Some(ScheduleHeaders {
                pattern: Some(pattern.into()),
                target: Some(target.into()),
                ..Default::default()
            }),
            ..rec(subject)
        }
    }

    fn commit(s: &mut Stream, r: Record, now: i64) -> Result<u64, u16> {
        let chunk = Chunk {
            stream: "S".into(),
            chunk_index: 0,
            byte_size: 10,
            records: vec![r],
        };
        let out = s.commit_chunk(&chunk, "obj", now);
        match out[0].result.clone().unwrap() {
            record_result::Result::Seq(seq) => Ok(seq),
            record_result::Result::Error(e) => Err(e.err_code as u16),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn fired(target: &str, f: v1::ScheduleFiring) -> Record {
        Record {
            firing: Some(f),
            ..rec(target)
        }
    }

    #[test]
    fn at_schedule_fires_once_and_is_purged() {
        let mut s = stream();
        commit(&mut s, rec("s.sched"), T0).unwrap();
        let seq = commit(
            &mut s,
            schedule("s.sched", "@at 2027-01-15T08:00:05Z", "s.t"),
            T0,
        )
        .unwrap();
        assert_eq!(
            s.subjects.get("s.sched").map(|d| d.len()),
            Some(1),
            "rollup sub"
        );
        assert!(s.due_schedules(T0).is_empty());
        let at = s.schedules["s.sched"].1;
        assert_eq!(at, T0 + 5 * SEC);
        assert_eq!(s.due_schedules(at), vec![("s.sched".to_owned(), seq, at)]);
        // The firing is stored once; a second try (another agent) is fenced.
        commit(&mut s, fired("s.t", firing("s.sched", seq, at, 0)), at).unwrap();
        assert_eq!(
            commit(&mut s, fired("s.t", firing("s.sched", seq, at, 0)), at),
            Err(10212)
        );
        assert!(s.due_schedules(i64::MAX).is_empty());
        assert!(!s.subjects.contains_key("s.sched"), "schedule purged");
        assert_eq!(s.subjects.get("s.t").map(|d| d.len()), Some(1));
    }

    #[test]
    fn repeating_schedule_moves_on_and_survives_a_reload() {
        let mut s = stream();
        let seq = commit(&mut s, schedule("s.sched", "@every 5s", "s.t"), T0).unwrap();
        let due = s.schedules["s.sched"].1;
        assert_eq!(due, T0 + 5 * SEC);
        commit(
            &mut s,
            fired("s.t", firing("s.sched", seq, due, due + 5 * SEC)),
            due,
        )
        .unwrap();
        // A stale firing of the same due time is fenced.
        assert_eq!(
            commit(
                &mut s,
                fired("s.t", firing("s.sched", seq, due, due + 5 * SEC)),
                due
            ),
            Err(10212)
        );
        assert_eq!(s.due_schedules(due + 5 * SEC)[0].2, due + 5 * SEC);
        // The next time is in the index metadata: a reload finds it.
        let entries: Vec<_> = s.entries.values().map(|e| (e.key, e.rec.clone())).collect();
        let loaded = Stream::load(s.spec.clone(), 0, s.state.clone(), entries, due);
        assert_eq!(loaded.schedules["s.sched"], (seq, due + 5 * SEC));
        // A plain message on the schedule subject ends the schedule.
        commit(&mut s, rec("s.sched"), due).unwrap();
        assert!(s.due_schedules(i64::MAX).is_empty());
    }

    #[test]
    fn publish_errors_and_client_purge() {
        let mut s = stream();
        assert_eq!(
            commit(&mut s, schedule("s.sched", "@every 1s", "elsewhere"), T0),
            Err(10190)
        );
        assert_eq!(
            commit(&mut s, schedule("s.sched", "bad", "s.t"), T0),
            Err(10189)
        );
        let mut off = stream();
        off.spec.limits.allow_msg_schedules = false;
        assert_eq!(
            commit(&mut off, schedule("s.sched", "@every 1s", "s.t"), T0),
            Err(10188)
        );
        commit(&mut s, schedule("s.sched", "@every 1s", "s.t"), T0).unwrap();
        commit(&mut s, rec("s.plain"), T0).unwrap();
        let purge = |scheduler: &str| Record {
            schedule: Some(ScheduleHeaders {
                next: Some("purge".into()),
                scheduler: Some(scheduler.into()),
                ..Default::default()
            }),
            ..rec("s.other")
        };
        assert_eq!(commit(&mut s, purge("s.plain"), T0), Err(10212));
        commit(&mut s, purge("s.sched"), T0).unwrap();
        assert!(s.due_schedules(i64::MAX).is_empty());
        assert!(!s.subjects.contains_key("s.sched"));
    }
}
