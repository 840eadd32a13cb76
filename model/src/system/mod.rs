//! The checked system: a named configuration of actors, the timed fault
//! model, and the properties.
//!
//! # Time
//! Stateright's `ActorModel` fires any armed timer at any moment. That is
//! right for most timers (it models arbitrary delays), but not for the lease
//! rule of [0091], which is safe only under a clock assumption: the master
//! waits out a lease on its own clock, which runs for longer than the
//! primary's lease and starts later (the primary starts its clock when it
//! *requests* the lease, the master when it *grants* it). With drift between
//! the two clocks bounded (`Durations::satisfy_clock_bound`), the primary's
//! lease therefore always ends before the master's.
//!
//! [`LeaseholdModel`] wraps the `ActorModel` (same state and action types, so
//! the Explorer and every checker work unchanged) and encodes exactly that:
//! the master's `LeaseExpiry(chunk)` timeout is withheld while a live
//! chunkserver still runs a lease clock (`LeaseClock` timer) for that chunk
//! and epoch *that was already running when the master last armed its
//! expiry* (it granted or extended the lease): only those clocks started
//! before the master's, so only those are sure to end first in real time.
//! A clock started later (an extension's request the master has not seen)
//! does not hold the master back, so a master that forgets to restart its
//! own clock on an extension is caught. A restarted master's
//! `StartupQuiet` timeout is withheld while any live chunkserver runs any
//! lease clock. The seeded bug `MasterIgnoresClockBound` removes the first
//! guard.
//!
//! The wrapper also bounds faults in total (stateright's `max_crashes` only
//! bounds crashes at one moment) and, in configurations without faults,
//! withholds timeouts that only lost messages or slow peers would trigger
//! (the environment answers in time).
//!
//! # Map
//! - [`configs`]: the named configurations ([`ModelCfg`]) and `--set`.
//! - [`history`]: the auxiliary history the properties read.
//! - [`timed`]: the wrapper ([`LeaseholdModel`]) that enforces the time
//!   rule above and bounds faults; [`step_rules`]: what it checks of each
//!   step itself (`History::broken`).
//! - [`properties`]: the always-properties; [`companions`]: their
//!   `sometimes` companions; [`queries`]: what both read of a checker
//!   state directly. This file attaches both to a configuration.

pub mod append_order;
mod companions;
mod configs;
mod history;
mod named;
mod properties;
mod queries;
mod step_rules;
mod timed;
pub mod view;

pub use configs::*;
pub use history::*;
pub use properties::{always as always_properties, read_1};
pub use queries::{
    acked, all_succeeded, fully_replicated, liveness_goal, master_counts_every_replica,
    moved_to_spare, reads,
};
pub use step_rules::{
    age_out_unmatched, awaits_replica, batch_break, failed_replica_still_counted,
    grant_taken_unasked, held_drop_misanswered, held_passed, held_with_meta, holds_push,
    holds_whole_push, in_flight_without_lease, keeps_in_flight, push_for_failed_chunk,
    read_not_closest, rearmed_lease_clock, result_answers, skipped_chunk, skips_in_flight,
};
pub use timed::master;
pub use timed::{LeaseholdModel, StoreFault};
pub use view::{Acked, GlobalView, ModelView, ReadDone, Region, StampedStore};

use crate::master::LeaseView;
use crate::memstore::*;
use crate::msg::*;
use crate::types::*;
use crate::{Node, NodeState};
use companions::*;
use properties::*;
use queries::*;
use stateright::actor::{ActorModelAction, ActorModelState};
use stateright::{Expectation, Property};
use view::*;

pub type ModelNode = Node<MemStore>;
pub type State = ActorModelState<ModelNode, History>;
pub type Action = ActorModelAction<Msg<RecordToken>, Timer, ()>;

fn attach(cfg: &ModelCfg) -> Vec<Property<LeaseholdModel>> {
    let appends = !cfg.appends.is_empty();
    let writes = !cfg.writes.is_empty();
    // Whether some mutation can succeed at all: a record over the
    // quarter-chunk limit is always refused.
    let mutates = writes || (appends && cfg.record_units as u64 <= cfg.chunk_units as u64 / 4);
    let mut p = vec![
        Property::always(
            "LEASE-1 at most one primary per chunk at any instant",
            |m, s| lease_1(&ModelView::new(m, s)),
        ),
        Property::always(
            "ORDER-1 replicas agree on the mutation at each (epoch, serial)",
            |m, s| order_1(&ModelView::new(m, s)),
        ),
        Property::always(
            "ORDER-2 each replica applies mutations in increasing (epoch, serial)",
            |m, s| order_2(&ModelView::new(m, s)),
        ),
        Property::always(
            "VERSION-1 the master counts as up to date only replicas holding every acked mutation",
            |m, s| version_1(&ModelView::new(m, s)),
        ),
        Property::always(
            "VERSION-2 the master names to clients only replicas holding every acked mutation",
            |m, s| version_2(&ModelView::new(m, s)),
        ),
        Property::always(
            "LEASE-2 a replica holds a lease only from a grant answering its own pending request and never re-arms a running lease clock",
            |m, s| lease_2(&ModelView::new(m, s)),
        ),
    ];
    if cfg.extensions_max > 0 || cfg.revocations_max > 0 {
        p.push(Property::always(
            "LEASE-4 a replica holds a lease only while the master grants it that epoch",
            |m, s| lease_4(&ModelView::new(m, s)),
        ));
    }
    let revokes = cfg.revocations_max > 0
        || cfg.re_replication
        || !cfg.renamers.is_empty()
        || !cfg.snapshotters.is_empty();
    if revokes {
        p.push(Property::always(
            "LEASE-5 a replica that acknowledged a revocation no longer holds or asks for that lease",
            |m, s| lease_5(&ModelView::new(m, s)),
        ));
        // Leased again after a revocation: a second grant.
        if cfg.lease_grants_max >= 2 {
            p.push(Property::sometimes(
                "LEASE-5 reached: a revocation acknowledged and the chunk leased again",
                revoked_then_granted,
            ));
        }
    }
    if cfg.renamers.len() > 1 {
        p.push(Property::sometimes(
            "RENAME-1 reached: a rename refused while another of the same file was pending",
            rename_refused_busy,
        ));
    }
    if !cfg.renamers.is_empty() {
        p.push(Property::always(
            "RENAME-1 a rename is made only when no replica holds a lease of the file",
            |m, s| rename_1(&ModelView::new(m, s)),
        ));
        if cfg.lease_grants_max >= 2 {
            p.push(Property::sometimes(
                "RENAME-1 reached: a file renamed after its lease was revoked and then appended to",
                renamed_after_revocation,
            ));
        }
    }
    if !cfg.snapshotters.is_empty() {
        p.push(Property::always(
            "SNAP-1 a snapshot holds every record acknowledged before it and no mutation ordered after it",
            |m, s| snap_1(&ModelView::new(m, s)),
        ));
        if cfg.appends.iter().any(|&n| n >= 2) {
            p.push(Property::sometimes(
                "SNAP-1 reached: a record appended after a snapshot into a copy of a chunk the snapshot holds a record in",
                appended_to_copy_after_snapshot,
            ));
        }
        if cfg.snapshot_appends {
            p.push(Property::sometimes(
                "SNAP-1 reached: a mutation sent under a lease the snapshot revoked meets the snapshot's new lease of the chunk",
                stale_mutate_meets_snapshot_lease,
            ));
        }
        if cfg.faulty() {
            p.push(Property::sometimes(
                "SNAP-1 reached: a copy for a snapshot timed out without one replica's copy and the file was appended to after it",
                copy_left_replica_out,
            ));
        }
    }
    if !cfg.renamers.is_empty() && cfg.master_crashes > 0 {
        p.push(Property::sometimes(
            "RENAME-1 reached: a restarted master asked again for a rename in its waiting period while a replica held a lease",
            rename_pending_in_quiet_period,
        ));
    }
    if appends || writes {
        p.push(Property::always(
            "PUSH-1 a mutation is sent only on the chain's acknowledgement, each hop to the closest server left",
            |m, s| push_1(&ModelView::new(m, s)),
        ));
        p.push(Property::always(
            "PUSH-2 a replica applies only buffered data, used up by the mutation; aged-out data, and data for a chunk it failed, leave the buffer",
            |m, s| push_2(&ModelView::new(m, s)),
        ));
    }
    if mutates {
        p.push(Property::always(
            "FILE-1 a mutation is acknowledged only in a chunk of the file it named",
            |m, s| file_1(&ModelView::new(m, s)),
        ));
        p.push(Property::sometimes(
            "PUSH-1 reached: a mutation acknowledged after its data went down the chain",
            |m: &LeaseholdModel, s: &State| acked(m, s).next().is_some(),
        ));
    }
    if cfg.two_files {
        p.push(Property::sometimes(
            "FILE-1 reached: records acknowledged in both files",
            acked_in_two_files,
        ));
        if cfg.delays {
            p.push(Property::sometimes(
                "FILE-1 reached: a late answer about one file's chunk on its way to a client finding the other's lease",
                other_files_holder_on_its_way,
            ));
        }
    }
    if appends {
        p.push(Property::always(
            "APPEND-5 a client reports a record append failed only with its retries used up",
            |m, s| append_5(&ModelView::new(m, s)),
        ));
    }
    if appends {
        p.push(Property::always(
            "APPEND-1 an acked record stays whole at its offset on every up-to-date replica",
            |m, s| append_1(&ModelView::new(m, s)),
        ));
        p.push(Property::always(
            "APPEND-2 a later acked append (higher stamp in the chunk, or started after the ack) gets a higher offset or a later chunk",
            |m, s| append_2(&ModelView::new(m, s)),
        ));
        p.push(Property::always(
            "APPEND-3 no acked record exceeds a quarter chunk or crosses a chunk boundary",
            |m, s| append_3(&ModelView::new(m, s)),
        ));
        p.push(Property::always(
            "APPEND-4 a chunk is padded exactly when the record did not fit, on every up-to-date replica, and the append moves on to the next chunk",
            |m, s| append_4(&ModelView::new(m, s)),
        ));
    }
    if appends && mutates {
        p.push(Property::sometimes(
            "APPEND-1 reached: a record append acknowledged",
            some_append_acked,
        ));
    }
    if writes {
        p.push(Property::always(
            "WRITE-1 a serial acked write leaves its region defined on every up-to-date replica",
            |m, s| write_1(&ModelView::new(m, s)),
        ));
        p.push(Property::sometimes(
            "WRITE-1 reached: a write acknowledged",
            some_write_acked,
        ));
        p.push(Property::always(
            "WRITE-2 a write failed at a replica is never acked, and is reported failed only with retries used up",
            |m, s| write_2(&ModelView::new(m, s)),
        ));
    }
    if cfg.appends.iter().any(|&n| n >= 2) && cfg.prefill_units > 0 {
        p.push(Property::sometimes(
            "APPEND-2 reached: an append started after another's ack acked in a later chunk",
            later_chunk_after_ack,
        ));
    }
    if appends && cfg.record_units as u64 > cfg.chunk_units as u64 / 4 {
        p.push(Property::sometimes(
            "APPEND-3 reached: a record over a quarter chunk refused",
            |m: &LeaseholdModel, s: &State| {
                (0..m.cfg.clients()).any(|c| {
                    match &**s.actor_states[usize::from(m.cfg.client_id(c))] {
                        NodeState::Client(cl) => {
                            cl.results.contains(&OpResult::Failed(Failure::TooLarge))
                        }
                        _ => false,
                    }
                })
            },
        ));
    }
    if cfg.master_crashes > 0 {
        p.push(Property::sometimes(
            "LEASE-3 reached: a restarted master granted a lease after its waiting period",
            |_, s: &State| {
                s.history.master_crashes > 0
                    && !s.crashed[0]
                    && master(s)
                        .views
                        .iter()
                        .any(|v| matches!(v.lease, LeaseView::Granted { .. }))
            },
        ));
    }
    // Reachability companions, each attached where the configuration can
    // produce the situation its safety property guards.
    if cfg.lease_grants_max >= 2 && cfg.lease_expiries > 0 {
        p.push(Property::sometimes(
            "LEASE-1 reached: a lease granted to a second server after expiry",
            second_server_led,
        ));
        p.push(Property::sometimes(
            "LEASE-2 reached: a lease expired and a new epoch was granted",
            lease_expired_and_regranted,
        ));
    }
    // One replica has no second to agree with.
    if mutates && cfg.chunkservers >= 2 {
        p.push(Property::sometimes(
            "ORDER-1 reached: two replicas applied the same (epoch, serial)",
            same_stamp_on_two_replicas,
        ));
    }
    // Two appends in one chunk need room for two records there.
    let room = cfg.chunk_units.saturating_sub(cfg.prefill_units);
    // With `two_files` each client's first append goes to the first file
    // and the rest to the second.
    let per_client = cfg.appends.iter().map(|&a| a as usize);
    let appends_in_one_file = if cfg.two_files {
        let first = per_client.clone().filter(|&a| a > 0).count();
        first.max(per_client.map(|a| a.saturating_sub(1)).sum())
    } else {
        per_client.sum::<usize>()
    };
    if appends_in_one_file >= 2 && room >= 2 * cfg.record_units {
        p.push(Property::sometimes(
            "APPEND-2 reached: two appends acked in the same chunk",
            two_acked_in_one_chunk,
        ));
    }
    if cfg.appends.iter().filter(|a| **a > 0).count() >= 2
        && cfg.chunkserver_crashes + cfg.master_crashes > 0
        && room >= 2 * cfg.record_units
    {
        p.push(Property::sometimes(
            "APPEND-1 reached: two clients' appends acked in one chunk in a run where a node crashed",
            |m: &LeaseholdModel, s: &State| {
                s.history.chunkserver_crashes + s.history.master_crashes > 0
                    && two_acked_in_one_chunk(m, s)
            },
        ));
    }
    if cfg.barrier_crashes > 0 && cfg.chunkservers > 1 && cfg.clients() > 0 {
        p.push(Property::sometimes(
            "FAULT-1 reached: a crash before the barrier lost a primary's write whose Apply had left",
            |_: &LeaseholdModel, s: &State| s.history.unsynced_apply_lost,
        ));
        if cfg.torn_syncs {
            p.push(Property::sometimes(
                "FAULT-1 reached: a crash tore a sync, and the master left the damaged replica out",
                damaged_replica_left_out,
            ));
        }
        if cfg.torn_syncs && cfg.clients() > 1 {
            p.push(Property::sometimes(
                "VERSION-2 reached: a crash tore a secondary's sync, and the lease naming it to clients is being revoked",
                |m: &LeaseholdModel, s: &State| {
                    version_2_excused_by_revocation(&ModelView::new(m, s))
                },
            ));
        }
        if cfg.torn_syncs && cfg.client_retries_max > 0 {
            p.push(Property::sometimes(
                "FAULT-1 reached: every client's operations succeeded after a crash tore a sync and left a replica damaged",
                |m: &LeaseholdModel, s: &State| s.history.sync_torn && all_succeeded(m, s),
            ));
        }
    }
    if cfg.reads.iter().any(|r| *r > 0) {
        p.push(Property::always(
            "READ-1 a read started after a record append's acknowledgement returns that record at its offset",
            |m, s| read_1(&ModelView::new(m, s)),
        ));
        p.push(Property::always(
            "READ-1 a read goes to the closest named replica it has not tried",
            |m, s| read_1_closest(&ModelView::new(m, s)),
        ));
        p.push(Property::sometimes(
            "READ-1 reached: a read returned a record acknowledged before it started",
            read_returned_acked,
        ));
        if cfg.read_faults + cfg.chunkserver_crashes > 0 {
            p.push(Property::sometimes(
                "READ-1 reached: a replica refused a read and another served it",
                |m: &LeaseholdModel, s: &State| {
                    s.history.read_refused && reads(m, s).next().is_some()
                },
            ));
        }
    }
    if appends && cfg.prefill_units > 0 {
        p.push(Property::sometimes(
            "APPEND-3 reached: a record that did not fit was acked in the next chunk",
            padded_and_next_chunk,
        ));
    }
    // Named to a client: some client must ask.
    if (cfg.chunkserver_crashes > 0 || cfg.lossy) && cfg.clients() > 0 {
        p.push(Property::sometimes(
            "VERSION-2 reached: a lease holder named to a client without a stale replica",
            named_without_stale,
        ));
    }
    if cfg.age_out && cfg.client_retries_max > 0 {
        p.push(Property::sometimes("PUSH-2 reached: data aged out, the mutation failed, the client pushed again and succeeded", |m: &LeaseholdModel, s: &State| {
            s.history.data_missing && all_succeeded(m, s)
        }));
    }
    if cfg.retry_backoff && cfg.client_retries_max > 0 {
        p.push(Property::sometimes(
            "APPEND-5 reached: a client waits out a backoff before it retries",
            client_backing_off,
        ));
    }
    if cfg.push_buffers_max < 4 || cfg.push_buffer_units_max < u64::MAX {
        p.push(Property::sometimes(
            "PUSH-2 reached: a push refused Busy (buffer full), pushed again, and every append acked",
            |m: &LeaseholdModel, s: &State| s.history.busy & BUSY_PUSH != 0 && all_succeeded(m, s),
        ));
    }
    if cfg.mutations_in_flight_max < 4 {
        p.push(Property::sometimes(
            "ORDER-1 reached: a mutation refused Busy at the primary (in-flight limit)",
            |_, s: &State| s.history.busy & BUSY_MUTATE != 0,
        ));
    }
    if cfg.extensions_max > 0 {
        p.push(Property::sometimes(
            "LEASE-4 reached: a lease extended while mutating",
            |_, s: &State| s.history.extended,
        ));
    }
    if cfg.revocations_max > 0 {
        p.push(Property::sometimes(
            "LEASE-4 reached: a lease revoked early",
            |_, s: &State| s.history.revoked > 0,
        ));
        if cfg.lease_grants_max > 1 && cfg.client_retries_max > 0 {
            p.push(Property::sometimes(
                "LEASE-4 reached: a lease granted again after a revocation, and every append acked",
                |m: &LeaseholdModel, s: &State| {
                    let h = &s.history;
                    h.revoked > 0 && h.grants.iter().any(|g| g.1 > h.revoked) && all_succeeded(m, s)
                },
            ));
        }
    }
    if cfg.chunkserver_crashes > 0 || cfg.lossy {
        p.push(Property::sometimes(
            "VERSION-1 reached: a stale replica detected",
            stale_replica_detected,
        ));
    }
    if appends
        && (cfg.chunkserver_crashes > 0 || cfg.lossy || cfg.duplicating)
        && cfg.client_retries_max > 0
    {
        p.push(Property::sometimes(
            "APPEND-5 reached: a record duplicated in some replica",
            duplicate_record,
        ));
    }
    if appends && cfg.duplications > 1 && cfg.client_retries_max == 0 {
        // No retry: only the network's second copies of a push and of its
        // mutation can write the record twice.
        p.push(Property::sometimes(
            "APPEND-5 reached: a record appended twice from a duplicated push and mutation",
            duplicate_record,
        ));
    }
    if appends && cfg.prefill_units > 0 {
        p.push(Property::sometimes(
            "APPEND-4 reached: a chunk padded and the append retried on the next chunk",
            padded_and_next_chunk,
        ));
    }
    if writes && cfg.client_retries_max > 0 && cfg.faulty() {
        p.push(Property::sometimes(
            "WRITE-2 reached: a failed write left replicas different",
            failed_write_replicas_differ,
        ));
    }
    // One client holds back only behind a fault: without one, a re-grant
    // completes after every secondary has the new version, and one mutation
    // is in flight at a time.
    // Two mutations in flight at once need room for both at the primary
    // and in the push buffers (`limits` and `push-budget` allow one).
    let two_in_flight = cfg.mutations_in_flight_max > 1
        && cfg.push_buffers_max > 1
        && cfg.push_buffer_units_max >= 2 * cfg.record_units as u64;
    // A disk filling up on a prompt network (`live-store`) leaves no
    // serial missing: the failed replica fails mutations at once instead
    // of holding them back, and nothing is delayed past another.
    let store_fault_only = cfg.prompt_network && cfg.store_faults > 0;
    // Two clients that mutate (a renaming client only renames).
    let mutating_clients = (0..cfg.clients())
        .filter(|&c| {
            cfg.appends.get(c).is_some_and(|&n| n > 0)
                || cfg.writes.get(c).is_some_and(|w| !w.is_empty())
        })
        .count();
    let holds_back = two_in_flight
        && (mutating_clients > 1
            || (cfg.client_retries_max > 0
                && cfg.lease_grants_max > 1
                && cfg.faulty()
                && !store_fault_only));
    if holds_back {
        p.push(Property::sometimes(
            "ORDER-2 reached: a secondary held back an early mutation",
            held_back,
        ));
    }
    if mutates {
        p.push(Property::always(
            "ORDER-3 a replica holds back only mutations that can still be in turn",
            |m, s| order_3(&ModelView::new(m, s)),
        ));
        // A held mutation is passed only by a later lease's version, and
        // one is held with a later lease on its way only behind a crash or
        // the other client's mutation, delayed (not on a prompt network).
        if holds_back
            && cfg.lease_grants_max > 1
            && !cfg.prompt_network
            && (mutating_clients > 1 || cfg.chunkserver_crashes > 0 || cfg.barrier_crashes > 0)
        {
            p.push(Property::sometimes(
                "ORDER-3 reached: a replica holds back a mutation while a newer version or a later lease's mutation is on its way to it",
                held_about_to_pass,
            ));
        }
        // A `Skip` held beside the real `Apply` of its stamp needs a gap
        // report answered while that `Apply` is on its way, for a serial
        // its primary failed: a duplicated `Mutate` whose data another
        // replica had used up, and a retry's serial after it.
        if cfg.duplications > 1 && cfg.client_retries_max > 0 && cfg.chunkservers > 2 {
            p.push(Property::sometimes(
                "ORDER-3 reached: a replica holds back a Skip and the real Apply of one stamp",
                held_skip_beside_apply,
            ));
        }
        p.push(Property::always(
            "ORDER-4 a primary answers a gap report with Skip only for a serial it no longer waits for",
            |m, s| order_4(&ModelView::new(m, s)),
        ));
        // A gap report naming a serial still in flight needs two record
        // appends ordered under one lease (two clients, an attempt and its
        // retry, or a `Mutate` delivered twice with a second copy left for
        // another message), the earlier `Apply` late at one secondary past
        // its gap timer while the primary waits: faults on a network that is
        // not prompt, and more than one replica. Not reached where a
        // snapshot revokes the lease (`snapshot-delays`), nor in the read,
        // open-stat and `writes` configurations (one operation). Nor under
        // `delays`: there a secondary's gap timer fires only once none of
        // its `Apply`s can still arrive, and no checked configuration with
        // delays reaches a primary still waiting then (`faults`, 4.6
        // million states; `concurrent-crash-delays`).
        if appends
            && cfg.faulty()
            && !cfg.prompt_network
            && !cfg.delays
            && cfg.chunkservers > 1
            && (mutating_clients > 1 || cfg.client_retries_max > 0 || cfg.duplications > 1)
            && cfg.snapshotters.is_empty()
            && !cfg.opens_and_stats
            && cfg.read_faults == 0
        {
            p.push(Property::sometimes(
                "ORDER-4 reached: a gap report on its way to a primary that still waits for a serial it names",
                gap_report_names_in_flight,
            ));
        }
        p.push(Property::always(
            "LEASE-6 a replica has a mutation in flight only under the lease it holds",
            |m, s| lease_6(&ModelView::new(m, s)),
        ));
        // A lone replica has no secondaries to wait for: nothing is ever
        // in flight.
        if (cfg.lease_expiries > 0 || revokes) && cfg.chunkservers > 1 {
            p.push(Property::sometimes(
                "LEASE-6 reached: a replica whose lease ended failed a mutation it had ordered under it",
                in_flight_failed_at_lease_end,
            ));
        }
    }
    if cfg.store_faults > 0 || cfg.read_faults > 0 {
        p.push(Property::always(
            "FAULT-2 the master no longer counts up to date a replica that reported a failed change of the chunk's current version",
            |m, s| fault_2(&ModelView::new(m, s)),
        ));
    }
    if appends && cfg.store_faults > 0 && cfg.client_retries_max > 0 {
        p.push(Property::sometimes(
            "FAULT-2 reached: an append acked without the replica whose disk filled",
            acked_without_failed_replica,
        ));
        p.push(Property::sometimes(
            "PUSH-2 reached: a replica that failed a chunk refused data pushed for it",
            push_refused_for_failed_chunk,
        ));
    }
    if appends && cfg.store_faults > 0 && cfg.age_out {
        p.push(Property::sometimes(
            "PUSH-2 reached: a replica failed a chunk while it held more data pushed for it than the failed write used, under age-out",
            failed_push_dropped,
        ));
    }
    if cfg.re_replication && cfg.replicas > 0 && cfg.replicas < cfg.chunkservers {
        p.push(Property::sometimes(
            "REPL-1 reached: a replica moved to a spare server and counted up to date after its clone",
            |m: &LeaseholdModel, s: &State| moved_to_spare(m, s) && fully_replicated(m, s),
        ));
    }
    p.push(Property::always(
        "CLIENT-1 every result a client reports answers the operation it had under way",
        |m, s| client_1(&ModelView::new(m, s)),
    ));
    if cfg.opens_and_stats {
        p.push(Property::sometimes(
            "CLIENT-1 reached: an answer to an open in flight after the open ended",
            late_file_opened,
        ));
        p.push(Property::sometimes(
            "CLIENT-1 reached: a stat answered after an open and an append",
            stat_answered,
        ));
    }
    if cfg.re_replication {
        p.push(Property::always(
            "GC-1 a replica is deleted only where the master no longer places it",
            |m, s| gc_1(&ModelView::new(m, s)),
        ));
    }
    // Deleted on its old server: one that comes back.
    if cfg.re_replication
        && cfg.replicas > 0
        && cfg.replicas < cfg.chunkservers
        && !cfg.crashes_permanent
    {
        p.push(Property::sometimes(
            "GC-1 reached: a replica moved to a spare server deleted on its old one",
            |_: &LeaseholdModel, s: &State| s.history.replica_deleted,
        ));
    }
    if cfg.re_replication && cfg.chunkserver_crashes > 0 {
        p.push(Property::sometimes(
            "REPL-1 reached: a stale replica cloned and counted up to date again",
            |m: &LeaseholdModel, s: &State| s.history.clone_served && fully_replicated(m, s),
        ));
    }
    // (Not where the master re-replicates: its revocation ends the lease
    // a secondary's gap would be reported under, and the next one starts
    // it afresh from the clone.)
    if appends
        && (cfg.chunkserver_crashes > 0 || cfg.apply_losses > 0)
        && cfg.prompt_network
        && !cfg.re_replication
    {
        p.push(Property::sometimes(
            "LIVE-2 reached: a secondary reported a gap, it closed, and every append was acked",
            gap_reported_and_closed,
        ));
    }
    if cfg.apply_batch_max > 1 {
        p.push(Property::always(
            "ORDER-2 an ApplyBatch holds consecutive serials of one lease, in order",
            batch_consecutive,
        ));
    }
    // A re-grant rotates past the last primary, so it comes back to one
    // only when there are more grants than servers.
    if cfg.apply_batch_max > 1
        && cfg.lease_grants_max > u32::from(cfg.chunkservers)
        && (cfg.lease_expiries > 0 || revokes)
    {
        p.push(Property::sometimes(
            "ORDER-2 reached: a primary ordered a mutation under a later lease while an Apply of its earlier lease was on its way",
            later_lease_beside_earlier_applies,
        ));
    }
    if cfg.apply_batch_max > 1 && two_in_flight && mutating_clients > 1 {
        p.push(Property::sometimes(
            "ORDER-2 reached: a primary sent two serials in one batch and every append was acked",
            |m: &LeaseholdModel, s: &State| s.history.batch_sent && all_succeeded(m, s),
        ));
    }
    p
}

pub fn properties(cfg: &ModelCfg) -> Vec<Property<LeaseholdModel>> {
    attach(cfg)
}

/// Cross-checks used by tests: the expectation of a property by name.
pub fn expectation(model: &LeaseholdModel, name: &str) -> Option<Expectation> {
    model
        .properties
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.expectation.clone())
}
