//! Applying an entry: each command in order, on the leader's clock.

use dsync_api::events::Event;
use dsync_api::ErrorCode;

use super::{locks, CmdError, CmdOutput, CmdValue, Command, Once, Request, Response, StateData};

impl StateData {
    pub fn apply(&mut self, req: Request) -> Response {
        // A new leader's clock may lag the old one's: time never goes back.
        self.now_ms = self.now_ms.max(req.now_ms);
        let out = req.cmds.into_iter().map(|c| self.apply_one(c)).collect();
        for (topic, id, attempt) in self.queues.take_dead_lettered() {
            self.outbox.push(Event::DeadLetter {
                topic,
                id,
                attempt,
                at_ms: self.now_ms,
            });
        }
        Response(out)
    }

    fn apply_one(&mut self, cmd: Command) -> CmdOutput {
        if let Command::Once(Once { key, cmd }) = cmd {
            if let Some(out) = self.recent.repeat(key) {
                return out;
            }
            let out = self.apply_one(*cmd);
            self.recent.remember(key, self.now_ms, out.clone());
            return out;
        }
        if let Some(topic) = cmd.queue_topic() {
            // Deterministic on every replica: once the map has queue groups,
            // no topic is served here (a node routing by an older map
            // retries with the new one).
            if let Some(group) = self.moved_to(topic) {
                return Err(CmdError::new(
                    ErrorCode::Unavailable,
                    format!("topic {topic:?} lives in queue group {group}; retry"),
                ));
            }
            if let Some(refused) = self.handoff_refusal(topic, &cmd) {
                return Err(refused);
            }
        }
        self.revision += 1;
        let rev = self.revision;
        let mut ctx = locks::Ctx {
            now_ms: self.now_ms,
            revision: &mut self.revision,
            events: &mut self.outbox,
        };
        let l = &mut self.locks;
        // Commands are taken by value so payloads move into the state
        // instead of being copied.
        let (now, q) = (self.now_ms, &mut self.queues);
        match cmd {
            Command::KvPut(c) => c.apply(&mut self.kv, l, rev),
            Command::KvDelete(c) => c.apply(&mut self.kv),
            Command::LockAcquire(c) => c.apply(l, &mut ctx),
            Command::LockRelease(c) => c.apply(l, &mut ctx),
            Command::LockKeepalive(c) => c.apply(l, &mut ctx),
            Command::LockCancel(c) => c.apply(l, &mut ctx),
            Command::LockExtendLeases(c) => c.apply(l),
            Command::LockForceRelease(c) => c.apply(l, &mut ctx),
            Command::Tick => {
                l.tick(&mut ctx);
                self.queue_tick();
                Ok(CmdValue::Done)
            }
            Command::QueueEnqueue(c) => c.apply(q, now),
            Command::QueueConsume(c) => c.apply(q, now, &mut self.revision),
            Command::QueueAck(c) => c.apply(q),
            Command::QueueNack(c) => c.apply(q, now),
            Command::QueueExtend(c) => c.apply(q, now),
            Command::QueueRedrive(c) => c.apply(q),
            Command::QueueConfigure(c) => c.apply(q),
            Command::SetClusterId(c) => {
                self.cluster_id.get_or_insert(c.id);
                Ok(CmdValue::Done)
            }
            // Unwrapped above.
            Command::Once(c) => self.apply_one(*c.cmd),
            Command::SetShards(c) => self.set_shards(c.map),
            Command::ShardJob(c) => self.shard_job(c.step),
            Command::Handoff(c) => self.handoff(c.step),
        }
    }

    /// The queue group a topic belongs to, if the map has queue groups.
    fn moved_to(&self, topic: &str) -> Option<u64> {
        (!self.shards.groups.is_empty()).then(|| self.shards.group_of(topic))
    }

    fn set_shards(&mut self, map: dsync_api::shards::ShardMap) -> Result<CmdValue, CmdError> {
        if !self.shards.groups.is_empty() {
            if self.shards.groups == map.groups {
                return Ok(CmdValue::Done);
            }
            return Err(CmdError::new(
                ErrorCode::Conflict,
                format!(
                    "the cluster already has {} queue groups (epoch {}); change them with `dsync shard reshard`",
                    self.shards.groups.len(),
                    self.shards.epoch
                ),
            ));
        }
        let held = self.queues.held();
        if held > 0 {
            return Err(CmdError::new(
                ErrorCode::Conflict,
                format!(
                    "the control group still holds {held} unacked messages; consume and ack \
                     them (dead letters too) before creating queue groups"
                ),
            ));
        }
        if let Err(e) = map.validate() {
            return Err(CmdError::new(ErrorCode::InvalidArgument, e.to_string()));
        }
        let top = map.groups.iter().map(|g| g.id).max().unwrap_or(0);
        self.jobs.last_group = self.jobs.last_group.max(top);
        self.shards = map;
        Ok(CmdValue::Done)
    }
}
