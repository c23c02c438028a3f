//! Whatever is appended reads back identical after close and reopen, across
//! segment rotations, by position and by replay.

mod common;

use common::{body, options, replay_all};
use event_broker_wal::{Batch, FsyncPolicy, Position, Wal};
use proptest::prelude::*;

/// A record body described by its length and seed, so shrinking works on
/// sizes instead of on megabytes of bytes.
fn record_spec() -> impl Strategy<Value = (usize, u64)> {
    let len = prop_oneof![
        6 => 0usize..512,
        3 => 512usize..64 * 1024,
        1 => 64 * 1024usize..=1 << 20,
    ];
    (len, any::<u64>())
}

/// Batches of records, with a reopen of the log after some of them.
fn plan() -> impl Strategy<Value = Vec<(Vec<(usize, u64)>, bool)>> {
    prop::collection::vec(
        (
            prop::collection::vec(record_spec(), 1..6),
            prop::bool::weighted(0.2),
        ),
        1..12,
    )
}

fn check_plan(plan: &[(Vec<(usize, u64)>, bool)], segment_bytes: u64, fsync: FsyncPolicy) {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        let mut opts = options(dir.path(), segment_bytes);
        opts.fsync = fsync;
        Wal::open(opts).unwrap().0
    };
    let mut wal = open();
    let mut written: Vec<(Position, Vec<u8>)> = Vec::new();
    for (records, reopen_after) in plan {
        let bodies: Vec<Vec<u8>> = records.iter().map(|&(len, seed)| body(seed, len)).collect();
        let mut batch = Batch::new();
        for b in &bodies {
            batch.push(b).unwrap();
        }
        let positions = wal.append(batch).unwrap();
        assert_eq!(positions.len(), bodies.len());
        for (pos, b) in positions.iter().zip(&bodies) {
            assert_eq!(&*wal.read(pos).unwrap(), &b[..], "read back before reopen");
        }
        written.extend(positions.into_iter().zip(bodies));
        if *reopen_after {
            wal.close().unwrap();
            drop(wal);
            wal = open();
        }
    }
    wal.close().unwrap();
    drop(wal);

    let wal = open();
    let replayed = replay_all(&wal);
    assert_eq!(replayed.len(), written.len(), "record count after reopen");
    for ((rpos, rbody), (wpos, wbody)) in replayed.iter().zip(&written) {
        assert_eq!(rpos, wpos, "position of seq {}", wpos.seq);
        assert_eq!(rbody, wbody, "body of seq {}", wpos.seq);
        assert_eq!(
            &*wal.read(wpos).unwrap(),
            &wbody[..],
            "read by position after reopen"
        );
    }
    let seqs: Vec<u64> = replayed.iter().map(|(p, _)| p.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "sequence numbers are consecutive"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn appended_records_read_back_identical_after_reopen(plan in plan(), segment_kib in 64u64..2048) {
        check_plan(&plan, segment_kib * 1024, FsyncPolicy::Never);
    }
}

#[test]
fn records_read_back_under_always_across_many_rotations() {
    let plan: Vec<(Vec<(usize, u64)>, bool)> = (0..40u64)
        .map(|i| {
            (
                vec![(((i * 7919) % 3000) as usize, i), (100, i + 1000)],
                i % 13 == 0,
            )
        })
        .collect();
    check_plan(&plan, 65_536, FsyncPolicy::Always);
}

#[test]
fn a_batch_larger_than_a_segment_gets_a_segment_of_its_own() {
    let plan = vec![
        (vec![(10, 1)], false),
        (vec![(300_000, 2), (300_000, 3)], false),
        (vec![(10, 4)], false),
    ];
    check_plan(&plan, 65_536, FsyncPolicy::Always);
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(options(dir.path(), 65_536)).unwrap();
    let mut big = Batch::new();
    big.push(&body(1, 300_000)).unwrap();
    big.push(&body(2, 300_000)).unwrap();
    let pos = wal.append(big).unwrap();
    assert_eq!(
        pos[0].segment, pos[1].segment,
        "a batch is never split across segments"
    );
    let after = wal.append(Batch::of(b"small").unwrap()).unwrap();
    assert_ne!(
        after[0].segment, pos[0].segment,
        "the next batch starts a new segment"
    );
}

#[test]
fn empty_log_reopens_empty_and_starts_at_sequence_zero() {
    let dir = tempfile::tempdir().unwrap();
    drop(Wal::open(options(dir.path(), 65_536)).unwrap());
    let (wal, report) = Wal::open(options(dir.path(), 65_536)).unwrap();
    assert_eq!(report.records, 0);
    assert!(replay_all(&wal).is_empty());
    let pos = wal.append(Batch::of(b"first").unwrap()).unwrap();
    assert_eq!(pos[0].seq, 0);
}
