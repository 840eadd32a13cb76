//! The named configurations: what each adds to the last, and why its
//! bounds are what they are (docs/model.md has the table of their sizes).

use super::*;
use crate::config::Bug;

impl ModelCfg {
    /// The configurations tests, README and benchmarks refer to by name.
    pub fn named(name: &str) -> Option<ModelCfg> {
        let base = ModelCfg {
            name: "tiny",
            chunkservers: 3,
            appends: vec![1],
            writes: vec![],
            reads: vec![],
            chunk_units: 4,
            record_units: 1,
            prefill_units: 0,
            lease_grants_max: 1,
            extensions_max: 0,
            revocations_max: 0,
            client_retries_max: 0,
            retry_backoff: false,
            lease_expiries: 0,
            delays: false,
            lossy: false,
            apply_losses: 0,
            clone_losses: 0,
            announce_losses: 0,
            duplicating: false,
            duplications: 0,
            early_grant_timeouts: 0,
            chunkserver_crashes: 0,
            barrier_crashes: 0,
            torn_syncs: false,
            master_crashes: 0,
            store_faults: 0,
            read_faults: 0,
            age_out: false,
            push_buffers_max: 4,
            push_buffer_units_max: u64::MAX,
            mutations_in_flight_max: 4,
            replicas: 0,
            re_replication: false,
            clone_part_units: u64::MAX,
            apply_batch_max: 1,
            prompt_network: false,
            replication_goal: false,
            renamers: vec![],
            snapshotters: vec![],
            snapshot_appends: false,
            silent_servers: false,
            crashes_permanent: false,
            prefill_as_placed: false,
            opens_and_stats: false,
            two_files: false,
            drop_ignored: false,
            bug: Bug::None,
        };
        let cfg = match name {
            // One append, no faults: the protocol's happy path.
            "tiny" => base,
            // Two clients appending concurrently, no faults; liveness is
            // checked here.
            "small" => ModelCfg {
                name: "small",
                appends: vec![1, 1],
                ..base
            },
            // A chunk that fills up: padding and the next chunk ([00105]),
            // with a lease extension.
            "pad" => ModelCfg {
                name: "pad",
                chunk_units: 8,
                record_units: 2,
                prefill_units: 7,
                extensions_max: 1,
                ..base
            },
            // The default configuration README runs: two concurrent appends,
            // a lease that runs out and is granted to another replica, and
            // one client retry.
            "default" => ModelCfg {
                name: "default",
                appends: vec![1, 1],
                lease_grants_max: 2,
                client_retries_max: 1,
                lease_expiries: 1,
                ..base
            },
            // Liveness: like "default", but the client retries without
            // bound (a fair scheduler lets the lease run out and a new one be
            // granted, so success must stay reachable from every state).
            "live" => ModelCfg {
                name: "live",
                appends: vec![1, 1],
                lease_grants_max: 2,
                client_retries_max: u32::MAX,
                lease_expiries: 1,
                ..base
            },
            // Three interchangeable clients: the symmetry benchmark.
            "three-clients" => ModelCfg {
                name: "three-clients",
                appends: vec![1, 1, 1],
                ..base
            },
            // Faults: messages delayed past timeouts (for safety this
            // subsumes loss), one chunkserver crash-restart, one lease expiry
            // and re-grant, one client retry. The crash configurations
            // search with the reduction `drop_ignored` (4,568,688 states
            // without it, 1,830,482 with it).
            "faults" => ModelCfg {
                name: "faults",
                lease_grants_max: 2,
                client_retries_max: 1,
                lease_expiries: 1,
                delays: true,
                chunkserver_crashes: 1,
                drop_ignored: true,
                ..base
            },
            // Stateright's lossy network: any message may be dropped.
            "lossy" => ModelCfg {
                name: "lossy",
                lease_grants_max: 2,
                client_retries_max: 1,
                lossy: true,
                ..base
            },
            // A master crash-restart while a lease is held.
            "master-restart" => ModelCfg {
                name: "master-restart",
                lease_grants_max: 2,
                client_retries_max: 1,
                lease_expiries: 1,
                master_crashes: 1,
                drop_ignored: true,
                ..base
            },
            // Serial writes by one client, with replies delayed past timeouts so
            // a write can fail part-way and be retried.
            "writes" => ModelCfg {
                name: "writes",
                appends: vec![],
                writes: vec![vec![0, 1]],
                client_retries_max: 1,
                delays: true,
                ..base
            },
            // Pushed data ages out of a buffer before its mutation ([0095]):
            // the mutation fails and the client pushes again.
            "age-out" => ModelCfg {
                name: "age-out",
                age_out: true,
                client_retries_max: 1,
                ..base
            },
            // An early revocation ([0091]), the client's retry, and a
            // re-grant under which the append succeeds.
            "revoke" => ModelCfg {
                name: "revoke",
                lease_grants_max: 2,
                revocations_max: 1,
                client_retries_max: 1,
                ..base
            },
            // One client appending twice into a chunk with room for one
            // record: the first fits, the second pads the chunk and goes to
            // the next (APPEND-2 across chunks, APPEND-4 both ways).
            "pad-two" => ModelCfg {
                name: "pad-two",
                appends: vec![2],
                chunk_units: 8,
                record_units: 2,
                prefill_units: 5,
                ..base
            },
            // The TCP nodes' limits scaled down until they bite: one pushed
            // record buffered per server, one mutation in flight at a
            // primary, extensions past the first; two clients race into
            // each `Busy` and retry after a backoff, as the TCP client
            // does. (Age-out has its own configuration: with it on as well
            // the space does not close.)
            "limits" => ModelCfg {
                name: "limits",
                appends: vec![1, 1],
                client_retries_max: 1,
                retry_backoff: true,
                extensions_max: 2,
                push_buffers_max: 1,
                push_buffer_units_max: 2,
                mutations_in_flight_max: 1,
                ..base
            },
            // `limits` with a lease that runs out and is granted again: a
            // primary at its in-flight limit of one loses its lease, and
            // must fail the mutation it holds (LEASE-6) or it refuses
            // `Busy` to everyone for good; the TCP nodes' limit with their
            // leases' expiry.
            "limits-expiry" => ModelCfg {
                name: "limits-expiry",
                lease_expiries: 1,
                lease_grants_max: 2,
                ..ModelCfg::named("limits").expect("limits is named")
            },
            // The push buffer's byte (unit) budget, rather than its record
            // count, refusing the second client's push.
            "push-budget" => ModelCfg {
                name: "push-budget",
                appends: vec![1, 1],
                client_retries_max: 1,
                push_buffer_units_max: 1,
                ..base
            },
            // A record over the quarter-chunk limit ([00104]): refused.
            "too-large" => ModelCfg {
                name: "too-large",
                record_units: 2,
                ..base
            },
            // One chunkserver crash-restart with reply timeouts and one
            // retry, small enough for every test run (FAULT-1, VERSION-1).
            "crash" => ModelCfg {
                name: "crash",
                lease_grants_max: 2,
                client_retries_max: 1,
                chunkserver_crashes: 1,
                ..base
            },
            // `crash`, but the crash may come before the server's barrier
            // (issue #13): a primary's `Apply` leaves before its own write
            // is durable, so the crash can lose that write while a
            // secondary holds it. The lease then ends with the primary and
            // the retry goes to a second grant.
            "barrier-crash" => ModelCfg {
                name: "barrier-crash",
                lease_grants_max: 2,
                client_retries_max: 1,
                barrier_crashes: 1,
                torn_syncs: true,
                ..base
            },
            // One master crash-restart, possibly while the lease is held,
            // and one retry (LEASE-3): 9,600,542 states without the
            // reduction `drop_ignored`, 3,539,612 with it.
            "master-crash" => ModelCfg {
                name: "master-crash",
                lease_grants_max: 2,
                client_retries_max: 1,
                master_crashes: 1,
                drop_ignored: true,
                ..base
            },
            // LIVE-2: liveness after a fault. One chunkserver crash-restart
            // while one client appends (retrying without bound, as the TCP
            // client does); the lease never runs out and is never extended,
            // so only the protocol itself can get a stalled chunk moving
            // again: a new epoch would hide a secondary that waits for a
            // serial it lost.
            "live-crash" => ModelCfg {
                name: "live-crash",
                // Two servers and two clients: the smallest shape in which
                // a secondary holds back one client's Apply behind the
                // other's (three servers: 1.77 million states, 28 s).
                chunkservers: 2,
                appends: vec![1, 1],
                lease_grants_max: 2,
                client_retries_max: u32::MAX,
                // Each retry after a backoff, as over TCP: a client that
                // waits must not stall the chunk either.
                retry_backoff: true,
                chunkserver_crashes: 1,
                prompt_network: true,
                ..base
            },
            // LIVE-2 with one lost message instead of a crash: a lost
            // Apply leaves a secondary holding back the client's retry.
            "live-lossy" => ModelCfg {
                name: "live-lossy",
                lease_grants_max: 2,
                client_retries_max: u32::MAX,
                apply_losses: 1,
                prompt_network: true,
                ..base
            },
            // LIVE-2 when offers are answered late: two grant timeouts
            // fire while the chosen replica's request is on its way (the
            // fault campaign's restarted master, whose connections came
            // back slower than its grant timeout, seed 11). Each drops the
            // replica it offered to from the up-to-date set; with two
            // chunkservers none is left, though each stored the version
            // it was offered.
            "live-slow-offer" => ModelCfg {
                name: "live-slow-offer",
                chunkservers: 2,
                lease_grants_max: 3,
                client_retries_max: u32::MAX,
                early_grant_timeouts: 2,
                prompt_network: true,
                ..base
            },
            // LIVE-2 when the master crashes after making a version bump
            // durable but before any replica learned it (issue #12): the
            // network may lose two of its announcements (`LeaseOffer`,
            // `NewVersion`), which with two chunkservers can be all of
            // them, as a kill between the master's barrier and its sends
            // loses them over TCP. A restarted master adopts the replicas
            // of the last grant that hold its version (`ChunkMeta::granted`),
            // and a master that counts no replica asks the placed ones to
            // report. Four grants: each lost offer and the restart may take
            // one before the append's own (with three, some states are
            // doomed by that bound alone). Seeded bug
            // `unannounced-version-strands-chunk` (the old behaviour)
            // leaves the chunk with no lease for good.
            "live-unannounced" => ModelCfg {
                name: "live-unannounced",
                chunkservers: 2,
                lease_grants_max: 4,
                client_retries_max: u32::MAX,
                master_crashes: 1,
                announce_losses: 2,
                prompt_network: true,
                ..base
            },
            // LIVE-2 after a master crash-restart, at any point of one
            // append retried without bound: the restarted master must
            // rebuild which replicas are up to date from their reports
            // while the dead incarnation's version announcements and
            // offers may still arrive, and wait out any lease it granted.
            // (`pad` with the same faults and a lease expiry needs a third
            // grant: the crash and the expiry may each waste one; with
            // three, this shape holds at 811,046 states.)
            "live-master-crash" => ModelCfg {
                name: "live-master-crash",
                lease_grants_max: 2,
                client_retries_max: u32::MAX,
                master_crashes: 1,
                prompt_network: true,
                ..base
            },
            // FAULT-2: a chunkserver's disk fills up, at any point, while
            // a client appends: its replica fails every later change,
            // reports it, and the master moves the chunk on without it.
            // (Two clients: over 22 million states, not closed in 5 min.)
            "store-faults" => ModelCfg {
                name: "store-faults",
                appends: vec![1],
                lease_grants_max: 2,
                client_retries_max: 1,
                store_faults: 1,
                ..base
            },
            // `store-faults` with age-out on, as over TCP, and two appends
            // without retries: the first can fail (its reply timed out, or
            // its data aged out at one replica) while its data stays
            // buffered at another beside the second's, so the disk filling
            // there fails a chunk while the replica holds data the failed
            // write did not use (the checker's path: a primary with no
            // secondaries, the first reply timed out). It drops
            // that data and exactly that data's age-out timers (PUSH-2; a
            // mutant cancelling the other chunks' timers instead passed
            // every configuration). (With a retry: over 15 million
            // states, not closed in 5 min.)
            "store-age-out" => ModelCfg {
                name: "store-age-out",
                appends: vec![2],
                client_retries_max: 0,
                age_out: true,
                ..Self::named("store-faults")?
            },
            // Writes and record appends on one file ([00106], [00107]):
            // one client appends while another writes the chunk's last
            // unit, so the write may leave no room for the record (padded
            // past, appended to the next chunk); one lease runs out and is
            // granted to another replica, one retry each. The write stays
            // clear of where the append can land: a write over an acked
            // record is the application's to avoid (APPEND-1 holds only
            // where no write overwrote the record). With replies delayed
            // past timeouts as well: 30.9 million states, 219 s.
            "mixed" => ModelCfg {
                name: "mixed",
                appends: vec![1, 0],
                writes: vec![vec![], vec![3]],
                lease_grants_max: 2,
                client_retries_max: 1,
                lease_expiries: 1,
                ..base
            },
            // LIVE-2 after a disk fills up: one client retrying without
            // bound must get its record appended, which takes a new lease
            // without the failed replica.
            "live-store" => ModelCfg {
                name: "live-store",
                lease_grants_max: 2,
                client_retries_max: u32::MAX,
                store_faults: 1,
                prompt_network: true,
                ..base
            },
            // LIVE-2 after a disk fills and the master crashes (nemesis
            // seed 1 on a loaded machine): the restarted master must learn
            // the failure again, from the failed replica's answer to its
            // offer or version, or every lease includes that replica. Four
            // grants: each answer costs an epoch (the offer is withdrawn),
            // so with three some states are doomed by the bound alone.
            "live-store-master-crash" => ModelCfg {
                name: "live-store-master-crash",
                lease_grants_max: 4,
                client_retries_max: u32::MAX,
                store_faults: 1,
                master_crashes: 1,
                prompt_network: true,
                ..base
            },
            // LIVE-2 with the push buffer at one record (nemesis seed 20): a
            // disk fills while two clients append. A replica that kept
            // data pushed for a chunk it had failed (no mutation uses it
            // there) filled its buffer and refused every later push `Busy`,
            // for good here (no age-out), over TCP until it aged out.
            "live-buffers" => ModelCfg {
                name: "live-buffers",
                appends: vec![1, 1],
                push_buffers_max: 1,
                ..Self::named("live-store")?
            },
            // Concurrent record appends under faults (issue #10): two
            // clients append at once while the environment injects one
            // fault. A retry multiplies every interleaving by the fault's
            // timing (`crash` with two clients and one retry passes 3.5
            // million states unclosed), so these clients do not retry:
            // a failed append stays failed, and every property must still
            // hold of what the other acknowledged. Checked with client
            // symmetry (the two clients are interchangeable).
            //
            // A chunkserver crash-restart at any point of two appends,
            // through a second lease grant: 1,377,646 states with symmetry.
            "concurrent-crash" => ModelCfg {
                name: "concurrent-crash",
                appends: vec![1, 1],
                lease_grants_max: 2,
                client_retries_max: 0,
                chunkserver_crashes: 1,
                ..base
            },
            // `concurrent-crash` with the crash before the server's barrier
            // instead (issue #13): a primary's write lost while the other
            // client's append goes on, and the lost one's secondaries
            // overwritten under the next lease.
            "concurrent-barrier-crash" => ModelCfg {
                name: "concurrent-barrier-crash",
                chunkserver_crashes: 0,
                barrier_crashes: 1,
                torn_syncs: true,
                ..ModelCfg::named("concurrent-crash").expect("concurrent-crash is named")
            },
            // Batched serials (issue #13): two clients' appends ordered
            // while the first one's Apply waits, so the primary sends both
            // to each secondary in one `ApplyBatch`, or each alone.
            "batched" => ModelCfg {
                name: "batched",
                appends: vec![1, 1],
                apply_batch_max: 2,
                ..base
            },
            // `default` with batched serials: a lease that ends at a
            // primary while an `Apply` waits for its batch, and the retry
            // under the next lease at another replica. The end of a lease
            // sends what waits (`fail_in_flight`): kept past it, the old
            // lease's `Apply` would leave after its primary took the next
            // lease's mutations as a secondary (mutant `lease.rs` 2 of the
            // forty-third session, `PrimaryKeepsBatchAfterLease`).
            "batched-expiry" => ModelCfg {
                name: "batched-expiry",
                apply_batch_max: 2,
                ..ModelCfg::named("default").expect("default is named")
            },
            // `batched-expiry` on two servers with a third grant: the
            // re-grant rotates back to the first primary, which may order
            // a mutation under its new lease while an `Apply` of its first
            // one is still on its way. Kept waiting past the first lease's
            // end (`PrimaryKeepsBatchAfterLease`), that `Apply` and the new
            // mutation would leave in one `ApplyBatch` of two leases.
            "batched-regrant" => ModelCfg {
                name: "batched-regrant",
                chunkservers: 2,
                lease_grants_max: 3,
                lease_expiries: 2,
                ..ModelCfg::named("batched-expiry").expect("batched-expiry is named")
            },
            // `concurrent-barrier-crash` with batches: a secondary's
            // crash before the barrier of the step that took a batch, or
            // tearing its sync, loses or damages both mutations at once.
            "batched-crash" => ModelCfg {
                name: "batched-crash",
                apply_batch_max: 2,
                ..ModelCfg::named("concurrent-barrier-crash")
                    .expect("concurrent-barrier-crash is named")
            },
            // `concurrent-lossy` with batches: a lost batch leaves a gap
            // the secondary reports, and the primary sends its serials
            // again one `Apply` at a time.
            "batched-lossy" => ModelCfg {
                name: "batched-lossy",
                apply_batch_max: 2,
                ..ModelCfg::named("concurrent-lossy").expect("concurrent-lossy is named")
            },
            // Issue #10's target one addition at a time: `concurrent-crash`
            // with its replies delayed past timeouts, or with one lease
            // expiry (and the re-grant its second grant allows). Each
            // closes: with symmetry and the reduction `drop_ignored`, at
            // 471,618 and 2,542,545 states (1.25 and 6.51 million without
            // it). The third addition, one retry per client, did not close
            // alone before the reduction (17.2 million states unclosed in
            // 500 s at depth 73, 2026-12-06).
            "concurrent-crash-delays" => ModelCfg {
                name: "concurrent-crash-delays",
                delays: true,
                drop_ignored: true,
                ..ModelCfg::named("concurrent-crash").expect("concurrent-crash is named")
            },
            "concurrent-crash-expiry" => ModelCfg {
                name: "concurrent-crash-expiry",
                lease_expiries: 1,
                drop_ignored: true,
                ..ModelCfg::named("concurrent-crash").expect("concurrent-crash is named")
            },
            // Issue #10's target: two clients appending concurrently to
            // three replicas, one chunkserver crash-restart, replies
            // delayed past timeouts (loss, as the actors see it), one
            // lease expiry with a re-grant to another replica, one retry
            // each. It does not close, even with the reduction
            // `drop_ignored` (over 179 million states with symmetry in
            // 66 minutes, docs/performance.md): checked by swarm
            // random walks (checks/tests/swarm.rs), never instead of the
            // exhaustive configurations around it.
            "concurrent-faults" => ModelCfg {
                name: "concurrent-faults",
                appends: vec![1, 1],
                lease_grants_max: 2,
                client_retries_max: 1,
                lease_expiries: 1,
                chunkserver_crashes: 1,
                delays: true,
                drop_ignored: true,
                ..base
            },
            // Any message lost, two appends at once (one grant: with two,
            // and a lease expiry, 1.4 million states unclosed at 100 s).
            "concurrent-lossy" => ModelCfg {
                name: "concurrent-lossy",
                appends: vec![1, 1],
                lease_grants_max: 1,
                client_retries_max: 0,
                lossy: true,
                ..base
            },
            // A master crash-restart at any point of two appends (LEASE-3
            // with two clients waiting): 12,193,187 states with symmetry,
            // 4,367,044 with the reduction `drop_ignored` too, over a
            // minute, so `#[ignore]`d in the test suite.
            "concurrent-master-crash" => ModelCfg {
                name: "concurrent-master-crash",
                appends: vec![1, 1],
                lease_grants_max: 2,
                client_retries_max: 0,
                master_crashes: 1,
                drop_ignored: true,
                ..base
            },
            // CLIENT-1: the client opens the file by its path, appends a
            // record, and asks for a stat of its chunk, as TCP clients and
            // `leasehold stat` do, with replies delayed past timeouts and
            // one retry: an answer to an open that timed out comes while a
            // later operation is under way, and only the operation it
            // answers may take it. (A network that delivers a message
            // twice instead does not close in 300 s: 4 million states.)
            "open-stat" => ModelCfg {
                name: "open-stat",
                opens_and_stats: true,
                delays: true,
                client_retries_max: 1,
                ..base
            },
            // Reads (READ-1): one client appends a record, then reads it
            // back, while a chunkserver's blocks may go bad at any point:
            // the bad replica fails the read, reports itself (FAULT-2, the
            // read path), and the client reads another.
            "reads" => ModelCfg {
                name: "reads",
                reads: vec![1],
                read_faults: 1,
                ..base
            },
            // Reads around a crash: two chunkservers, one crash and restart
            // at any point, one retry. A replica that lost or never had the
            // chunk's version refuses the read; the client reads the other.
            // (With two grants: 1,645,506 states.)
            "reads-crash" => ModelCfg {
                name: "reads-crash",
                chunkservers: 2,
                reads: vec![1],
                client_retries_max: 1,
                chunkserver_crashes: 1,
                ..base
            },
            // REPL-1: re-replication after a fault. One chunkserver
            // crash-restart at any point of one append retried without
            // bound: a replica that missed a lease's version (or whose
            // primary's lease ran out while it was down) is stale when it
            // comes back. The master clones the chunk onto it from the
            // next lease's primary (revoking a lease it holds) and counts
            // it again. The chunk holds two units already and a clone
            // carries one per part, so clones of several parts are
            // checked; three grants: the crash and the re-replication may
            // each take one.
            "live-repl" => ModelCfg {
                name: "live-repl",
                prefill_units: 2,
                lease_grants_max: 3,
                client_retries_max: u32::MAX,
                chunkserver_crashes: 1,
                prompt_network: true,
                re_replication: true,
                clone_part_units: 1,
                replication_goal: true,
                ..base
            },
            // Re-replication beside two concurrent appends, one crash:
            // a clone's source refuses the old lease's Applies still in
            // flight once it holds the new version, so what it copies out
            // is final. The chunk holds three units already, so the
            // second record goes to the next chunk. No retries, three
            // grants, as in `live-repl` (with one retry each and two
            // grants: over 2.3 million states, unclosed at 8 million).
            // Checked with client symmetry.
            "repl-concurrent" => ModelCfg {
                name: "repl-concurrent",
                appends: vec![1, 1],
                prefill_units: 3,
                lease_grants_max: 3,
                client_retries_max: 0,
                chunkserver_crashes: 1,
                prompt_network: true,
                re_replication: true,
                clone_part_units: 1,
                ..base
            },
            // Re-replication onto a spare (REPL-1): four chunkservers,
            // three replicas a chunk, one crash-restart at any point of one
            // append retried without bound, a prompt network, and one
            // `CloneChunk` the network may lose: to the master its target
            // is then as good as dead, so after the grant timeout the
            // replica moves to the server that held none and the next
            // lease clones onto that. Four grants: the crash, the lost
            // clone and the clone onto the spare may each take one (with
            // three, 34,232 of 814,525 states are doomed by the bound).
            "repl-spare" => ModelCfg {
                name: "repl-spare",
                chunkservers: 4,
                replicas: 3,
                lease_grants_max: 4,
                client_retries_max: u32::MAX,
                chunkserver_crashes: 1,
                clone_losses: 1,
                prompt_network: true,
                re_replication: true,
                replication_goal: true,
                ..base
            },
            // REPL-1 for a chunk nobody mutates: the chunk holds data and
            // no client touches it; a chunkserver holding a replica
            // crashes for good. No lease bump can show it, only its
            // silence: the master then clones the chunk onto the dead
            // server (which times out), moves the replica to the spare
            // and clones there (four servers, three replicas).
            "repl-silent" => ModelCfg {
                name: "repl-silent",
                appends: vec![],
                prefill_units: 2,
                prefill_as_placed: true,
                chunkservers: 4,
                replicas: 3,
                lease_grants_max: 3,
                chunkserver_crashes: 1,
                crashes_permanent: true,
                prompt_network: true,
                re_replication: true,
                replication_goal: true,
                silent_servers: true,
                ..base
            },
            // `repl-silent` with a master crash: the restarted master counts
            // the never-granted chunk's placed replicas at once, the dead
            // server's too, finds it silent (in its waiting period, or
            // after), and moves its replica to the spare, which may have
            // reported the chunk missing to the restarted master before
            // the move (`ChunkView::behind`).
            "repl-silent-master-crash" => ModelCfg {
                name: "repl-silent-master-crash",
                master_crashes: 1,
                ..ModelCfg::named("repl-silent").expect("repl-silent is named")
            },
            // RENAME-1, LEASE-5 ([0091]): one client appends twice while
            // another renames the file; the rename revokes the lease, the
            // append it cuts off retries and goes on into the renamed file
            // (by id) under a second grant.
            "rename" => ModelCfg {
                name: "rename",
                appends: vec![2],
                renamers: vec![1],
                lease_grants_max: 2,
                client_retries_max: 1,
                ..base
            },
            // RENAME-1's refusals: two clients rename the file while a
            // third appends; the later rename is refused `Busy` while the
            // first is pending (and retried), or finds no file once it is
            // made.
            "rename-two" => ModelCfg {
                name: "rename-two",
                appends: vec![1],
                renamers: vec![1, 2],
                lease_grants_max: 2,
                client_retries_max: 1,
                ..base
            },
            // RENAME-1 across a master crash: renames are volatile, so a
            // rename the master took before it crashed is asked again by
            // its client, possibly while a replica still holds a lease the
            // previous master granted, which the restarted one cannot know
            // of until its waiting period is over (LEASE-3). Two servers
            // and one grant keep it small (three servers and two grants:
            // over 7 million states, not closed in 2.5 min).
            "rename-master-crash" => ModelCfg {
                name: "rename-master-crash",
                chunkservers: 2,
                appends: vec![1],
                renamers: vec![1],
                lease_grants_max: 1,
                client_retries_max: 1,
                master_crashes: 1,
                ..base
            },
            // SNAP-1 (GFS §3.4): one client appends twice while another
            // takes a snapshot of the file. The snapshot revokes the lease
            // and waits for it to end; the append it cuts off retries, and
            // the first append after the snapshot has the chunk copied on
            // each replica and leased anew under its new handle.
            "snapshot" => ModelCfg {
                name: "snapshot",
                appends: vec![2],
                snapshotters: vec![1],
                client_retries_max: 1,
                lease_grants_max: 2,
                ..base
            },
            // SNAP-1 under faults: every message may be delayed past any
            // timeout, so a lease ends by expiry as well as by revocation,
            // and a copy times out with one replica's copy or with none
            // (the new chunk is then given up, and the client asks again).
            // Two servers and one append keep it under three million states.
            "snapshot-delays" => ModelCfg {
                name: "snapshot-delays",
                chunkservers: 2,
                appends: vec![1],
                snapshotters: vec![1],
                client_retries_max: 1,
                lease_grants_max: 2,
                delays: true,
                ..base
            },
            // Both files written after a snapshot: one client appends to
            // the file; the other takes the snapshot, appends to the file
            // (its chunk is copied for it, leaving the shared one to the
            // snapshot) and then to the snapshot (which leases the shared
            // chunk anew). The first client's mutation, sent under the
            // lease the snapshot revoked and still in flight, must not be
            // taken under the snapshot's new lease (SNAP-1). One
            // chunkserver: the master rotates a new lease past the last
            // primary, so with more replicas the snapshot's lease goes to
            // another server than the one the stale mutation is sent to
            // unless the others are down; one server is that case.
            "snapshot-writes" => ModelCfg {
                name: "snapshot-writes",
                chunkservers: 1,
                appends: vec![1],
                snapshotters: vec![1],
                snapshot_appends: true,
                client_retries_max: 1,
                lease_grants_max: 3,
                ..base
            },
            // A network that delivers messages twice (issue #10): duplication
            // as a bounded fault, like crashes and losses, so the space
            // closes (stateright's duplicating network, where every message
            // stays deliverable for ever, does not: each second copy of a
            // push and of its mutation may append the record again). Two
            // second copies are enough for a record appended twice with
            // no client retry (APPEND-5's companion); a reused serial is
            // caught here with one client (ORDER-1).
            "duplicating" => ModelCfg {
                name: "duplicating",
                duplications: 2,
                ..base
            },
            // `duplicating` with one client retry: the retry's serial comes
            // after the duplicated `Mutate`'s, so a replica that lacks the
            // first asks for the gap, and its primary, which failed the
            // duplicate (the data was used up at another replica), answers
            // `Skip` while the real `Apply` of that serial is on its way: a
            // `Skip` held beside the real `Apply` of its stamp, one of
            // which the replica applies and the other it must drop
            // (ORDER-3; seeded bug `secondary-keeps-held-copy-of-applied`).
            "duplicating-retry" => ModelCfg {
                name: "duplicating-retry",
                client_retries_max: 1,
                ..Self::named("duplicating")?
            },
            // Two clients appending at once while one message is delivered
            // twice (two second copies: 9.1 million states, 102 s).
            "concurrent-duplicating" => ModelCfg {
                name: "concurrent-duplicating",
                appends: vec![1, 1],
                duplications: 1,
                ..base
            },
            // A record that does not fit while one message is delivered a
            // second time: a duplicated `Mutate` of the attempt that padded
            // the chunk, delivered after the client moved on and pushed the
            // record again, pads the chunk once more and reports it full
            // (APPEND-4: the client must not take that report for the
            // chunk it now appends to).
            "pad-duplicating" => ModelCfg {
                name: "pad-duplicating",
                duplications: 1,
                ..Self::named("pad-two")?
            },
            // `pad`'s extension while one message is delivered a second
            // time: a duplicated grant of the lease, delivered while the
            // primary's extension request is pending, must not pass for
            // its answer (the primary's clock would run past the master's,
            // LEASE-4; a grant names the request it answers, LEASE-2).
            "extension-duplicating" => ModelCfg {
                name: "extension-duplicating",
                duplications: 1,
                ..Self::named("pad")?
            },
            // FILE-1: one client appends to the file and then to a second
            // one, every reply delayable past its timeout, one retry: the
            // answer to the first file's lookup, late, meets the lookup for
            // the second's. One chunkserver: the chain adds nothing here
            // (three: 9.9 million states).
            "two-files" => ModelCfg {
                name: "two-files",
                chunkservers: 1,
                appends: vec![2],
                two_files: true,
                delays: true,
                client_retries_max: 1,
                ..base
            },
            _ => return None,
        };
        Some(cfg)
    }

    pub const NAMES: [&'static str; 63] = [
        "tiny",
        "small",
        "pad",
        "default",
        "live",
        "three-clients",
        "faults",
        "lossy",
        "master-restart",
        "writes",
        "revoke",
        "age-out",
        "pad-two",
        "too-large",
        "crash",
        "barrier-crash",
        "master-crash",
        "limits",
        "limits-expiry",
        "push-budget",
        "live-crash",
        "live-lossy",
        "live-master-crash",
        "store-faults",
        "store-age-out",
        "live-store",
        "live-store-master-crash",
        "live-buffers",
        "mixed",
        "concurrent-crash",
        "concurrent-barrier-crash",
        "concurrent-crash-delays",
        "concurrent-crash-expiry",
        "concurrent-faults",
        "concurrent-lossy",
        "concurrent-master-crash",
        "open-stat",
        "reads",
        "reads-crash",
        "live-repl",
        "repl-concurrent",
        "repl-spare",
        "rename",
        "rename-two",
        "duplicating",
        "duplicating-retry",
        "concurrent-duplicating",
        "live-slow-offer",
        "live-unannounced",
        "rename-master-crash",
        "repl-silent",
        "snapshot",
        "snapshot-delays",
        "repl-silent-master-crash",
        "snapshot-writes",
        "pad-duplicating",
        "extension-duplicating",
        "two-files",
        "batched",
        "batched-expiry",
        "batched-regrant",
        "batched-crash",
        "batched-lossy",
    ];
}
