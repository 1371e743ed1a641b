//! Applying an entry: each command in order, on the leader's clock.

use dsync_api::events::Event;
use dsync_api::ErrorCode;

use super::{locks, CmdError, CmdOutput, CmdValue, Command, Request, Response, StateData};

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
        if let Command::Once { key, cmd } = cmd {
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
        match cmd {
            Command::KvPut {
                key,
                value,
                if_version,
                fence,
            } => {
                if let Some((lock, token)) = &fence {
                    if !l.is_current_grant(lock, *token) {
                        return Err(CmdError::new(
                            ErrorCode::StaleToken,
                            format!(
                                "fencing token {token} is not the current grant of lock {lock:?}"
                            ),
                        ));
                    }
                }
                self.kv.put(key, value, if_version, rev)
            }
            Command::QueueEnqueue { topic, msgs } => self
                .queues
                .enqueue(&topic, msgs, self.now_ms)
                .map(CmdValue::Ids),
            Command::KvDelete { key, if_version } => self.kv.delete(&key, if_version),
            Command::LockAcquire {
                name,
                owner,
                mode,
                ttl_ms,
                wait_ms,
            } => l
                .acquire(&name, &owner, mode, ttl_ms, wait_ms, &mut ctx)
                .map(|a| match a {
                    locks::Acquired::Granted(h) => CmdValue::Granted(h),
                    locks::Acquired::Queued { seq } => CmdValue::Queued { seq },
                }),
            Command::LockRelease { name, owner, token } => l
                .release(&name, &owner, token, &mut ctx)
                .map(|_| CmdValue::Done),
            Command::LockKeepalive {
                name,
                owner,
                token,
                ttl_ms,
            } => l
                .keepalive(&name, &owner, token, ttl_ms, &mut ctx)
                .map(CmdValue::Granted),
            Command::LockCancel {
                name,
                owner,
                since_seq,
            } => {
                l.cancel(&name, &owner, since_seq, &mut ctx);
                Ok(CmdValue::Done)
            }
            Command::Tick => {
                l.tick(&mut ctx);
                self.queue_tick();
                Ok(CmdValue::Done)
            }
            Command::LockExtendLeases { by_ms } => {
                l.extend_leases(by_ms);
                Ok(CmdValue::Done)
            }
            Command::QueueConsume {
                topic,
                consumer,
                max,
                visibility_ms,
            } => Ok(CmdValue::Delivered(self.queues.consume(
                &topic,
                &consumer,
                max,
                visibility_ms,
                self.now_ms,
                &mut self.revision,
            ))),
            Command::QueueAck { topic, receipts } => self
                .queues
                .ack(&topic, &receipts)
                .map(|n| CmdValue::Count(n as u64)),
            Command::QueueNack {
                topic,
                receipts,
                delay_ms,
            } => self
                .queues
                .nack(&topic, &receipts, delay_ms, self.now_ms)
                .map(|n| CmdValue::Count(n as u64)),
            Command::QueueExtend {
                topic,
                receipts,
                visibility_ms,
            } => self
                .queues
                .extend(&topic, &receipts, visibility_ms, self.now_ms)
                .map(|n| CmdValue::Count(n as u64)),
            Command::QueueRedrive { topic } => Ok(CmdValue::Count(self.queues.redrive(&topic))),
            Command::QueueConfigure {
                topic,
                max_attempts,
                visibility_ms,
                max_message_bytes,
                retention_ms,
            } => {
                let s = dsync_api::queue::TopicSettings {
                    max_attempts,
                    visibility_ms,
                    max_message_bytes,
                    retention_ms,
                };
                self.queues.configure(&topic, &s);
                Ok(CmdValue::Done)
            }
            Command::LockForceRelease { name } => {
                Ok(CmdValue::Released(l.force_release(&name, &mut ctx)))
            }
            Command::SetClusterId { id } => {
                self.cluster_id.get_or_insert(id);
                Ok(CmdValue::Done)
            }
            // Unwrapped above.
            Command::Once { cmd, .. } => self.apply_one(*cmd),
            Command::SetShards { map } => self.set_shards(map),
            Command::ShardJob { step } => self.shard_job(step),
            Command::Handoff { step } => self.handoff(step),
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
