//! Data push ([0095]–[0098]): buffering pushed fragments within the
//! budget and forwarding each at once to the closest server left.

use super::*;

impl<S: ChunkStore> ChunkserverActor<S> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_push(
        &self,
        id: Id,
        state: &mut Cow<ChunkserverState<S>>,
        data: DataId,
        chunk: ChunkHandle,
        fragment: u32,
        last: bool,
        bytes: S::Payload,
        chain: Vec<Id>,
        client: Id,
        o: &mut O<S>,
    ) {
        if let Some(e) = state.store_failure(chunk) {
            if self.cfg.bug != Bug::FailedReplicaBuffersPush {
                // FAULT-2: this replica applies nothing to the chunk any
                // more, so the data would only take room. The refusal goes
                // once, for the first fragment; the rest are out of
                // sequence here.
                if fragment == 0 {
                    let reason = Failure::Store(e.clone());
                    o.send(client, Msg::PushRefused { data, reason });
                }
                return;
            }
        }
        let existing = state.buffer.iter().position(|b| b.data == data);
        // Only a fragment that would be kept counts against the budget: a
        // stale or out-of-sequence one is ignored below, and must neither
        // drop a complete push nor answer Busy once per fragment.
        let kept = match (existing, fragment) {
            (_, 0) => true,
            (Some(i), n) => {
                state.buffer[i].fragments.len() as u32 == n && !state.buffer[i].complete
            }
            (None, _) => false,
        };
        if kept && self.over_push_budget(state, data, fragment, bytes.len()) {
            // Drop the whole push, not just this fragment: its later
            // fragments are then out of sequence and ignored, and the
            // client pushes again.
            let s = state.to_mut();
            if s.buffer.iter().any(|b| b.data == data) {
                s.buffer.retain(|b| b.data != data);
                o.cancel_timer(Timer::AgeOut(data));
            }
            o.send(client, push_busy(data));
            return;
        }
        let s = state.to_mut();
        match (existing, fragment) {
            (Some(i), 0) => {
                // A retry pushes the data again from the start.
                s.buffer[i] = Buffered {
                    data,
                    chunk,
                    fragments: vec![bytes.clone()],
                    complete: last,
                };
            }
            (None, 0) => {
                if s.buffer.len() as u32 >= self.cfg.push_buffers_max {
                    o.send(client, push_busy(data));
                    return;
                }
                s.buffer.push(Buffered {
                    data,
                    chunk,
                    fragments: vec![bytes.clone()],
                    complete: last,
                });
                s.buffer.sort_by_key(|b| b.data);
                if self.cfg.age_out {
                    o.set_timer(
                        Timer::AgeOut(data),
                        Durations::range(self.cfg.durations.age_out_ms),
                    );
                }
            }
            (Some(i), n) if s.buffer[i].fragments.len() as u32 == n && !s.buffer[i].complete => {
                s.buffer[i].fragments.push(bytes.clone());
                s.buffer[i].complete = last;
            }
            _ => return, // a fragment out of sequence: the push will be retried
        }
        // PUSH-1: forward at once, before the rest arrives: pipelining ([0098]).
        let next = match self.cfg.bug {
            Bug::PushSkipsClosest => chain.iter().copied().min(),
            _ => self.cfg.closest(id, &chain),
        };
        match next {
            Some(next) => {
                let rest: Vec<Id> = chain.iter().copied().filter(|r| *r != next).collect();
                o.send(
                    next,
                    Msg::PushData {
                        data,
                        chunk,
                        fragment,
                        last,
                        bytes,
                        chain: rest,
                        client,
                    },
                );
            }
            None if last => o.send(client, Msg::DataPushed { data }),
            None => {}
        }
    }

    /// Whether keeping this fragment would take the buffered push bytes past
    /// `push_buffer_bytes_max`. Fragment 0 restarts its push, so that
    /// push's earlier fragments do not count then.
    pub(super) fn over_push_budget(
        &self,
        s: &ChunkserverState<S>,
        data: DataId,
        fragment: u32,
        bytes: u64,
    ) -> bool {
        let max = self.cfg.push_buffer_bytes_max;
        if max == u64::MAX {
            return false;
        }
        let held: u64 = s
            .buffer
            .iter()
            .filter(|b| b.data != data || fragment > 0)
            .flat_map(|b| &b.fragments)
            .map(Payload::len)
            .sum();
        held.saturating_add(bytes) > max
    }
}

/// The answer to a push this server has no room for.
pub(super) fn push_busy<P>(data: DataId) -> Msg<P> {
    Msg::PushRefused {
        data,
        reason: Failure::Busy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memstore::{MemStore, RecordToken};
    use crate::system::ModelCfg;
    use stateright::actor::Out;

    fn push(units: u8, seq: u32, client: Id) -> Msg<RecordToken> {
        let data = DataId { client: 0, seq };
        Msg::PushData {
            data,
            chunk: 0,
            fragment: 0,
            last: true,
            bytes: RecordToken { id: data, units },
            chain: vec![],
            client,
        }
    }

    #[test]
    fn a_push_past_the_byte_budget_is_busy_and_not_buffered() {
        let model = ModelCfg::named("tiny").expect("tiny exists");
        let mut cfg = model.protocol();
        cfg.push_buffer_bytes_max = 5;
        let actor = ChunkserverActor {
            cfg: Arc::new(cfg),
            initial_store: MemStore::new(model.chunk_units),
        };
        let client = Id::from(9);
        let mut o = Out::new();
        let mut state = Cow::Owned(actor.on_start(&None, &mut o));
        let deliver = |state: &mut Cow<ChunkserverState<MemStore>>, msg| {
            deliver_to(&actor, state, client, msg)
        };
        let buffered = |state: &ChunkserverState<MemStore>| {
            state.buffer.iter().map(|b| b.data.seq).collect::<Vec<_>>()
        };
        assert_eq!(
            deliver(&mut state, push(3, 1, client)),
            [Msg::DataPushed {
                data: DataId { client: 0, seq: 1 }
            }]
        );
        let refused = deliver(&mut state, push(3, 2, client));
        assert!(
            matches!(
                refused[..],
                [Msg::PushRefused {
                    reason: Failure::Busy,
                    ..
                }]
            ),
            "{refused:?}"
        );
        assert_eq!(buffered(&state), [1]);
        // A retry of the buffered push replaces it: its old bytes don't count.
        assert_eq!(deliver(&mut state, push(4, 1, client)).len(), 1);
        assert_eq!(buffered(&state), [1]);
        // Within the budget, a second push is kept beside the first.
        assert_eq!(deliver(&mut state, push(1, 3, client)).len(), 1);
        assert_eq!(buffered(&state), [1, 3]);
        // A stale later fragment of a complete push is ignored, even over
        // the budget: no Busy, and the buffered push stays.
        let Msg::PushData {
            data,
            bytes,
            chain,
            client: c,
            ..
        } = push(5, 1, client)
        else {
            unreachable!()
        };
        let stale = Msg::PushData {
            data,
            chunk: 0,
            fragment: 1,
            last: true,
            bytes,
            chain,
            client: c,
        };
        assert!(deliver(&mut state, stale).is_empty());
        assert_eq!(buffered(&state), [1, 3]);
    }
}
