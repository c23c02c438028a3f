//! The Redis side: streams driven with the `redis` crate on the same tokio
//! runtime as the broker's side. Each worker owns one connection (the
//! crate's multiplexed connection, with one command or pipeline in flight at
//! a time, as the broker's client has one request in flight), and each run
//! its own stream key with one consumer group.
//!
//! - W1: `XADD key * p <body>`, one a round trip.
//! - W2: a pipeline of `batch` `XADD`s: one write, one answer of all the
//!   ids. Redis reads the whole pipeline in one event-loop turn and fsyncs
//!   once before answering, as the broker writes a batch in one record
//!   group; but a pipeline is not atomic, where the broker's batch is
//!   stored whole or not at all. `--w2-redis-multi` wraps it in
//!   `MULTI`/`EXEC` for that.
//! - W3: a prefill of pipelines of 1000 `XADD`s (untimed), then
//!   `XREADGROUP GROUP g <consumer> COUNT <batch> STREAMS key >` and one
//!   `XACK key g <ids>` per batch, until a read comes back empty.
//! - W4: the producer's `XADD`s on the schedule (those that fell due
//!   together in one pipeline); consumers in `XREADGROUP ... BLOCK 1000`.
//!
//! `XACK` only takes an entry out of the group's pending list: the entry
//! stays in the stream (and in memory) until it is trimmed or deleted,
//! where the broker's ack deletes the event. By default no `XDEL` follows,
//! since a consumer group is used that way (streams are trimmed in bulk with
//! `MAXLEN` or `XTRIM`), which spares Redis the deletions; `--redis-xdel`
//! sends `XDEL` of the same ids in the `XACK`'s pipeline (Redis 7.0 has no
//! `XACKDEL`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use event_broker_bench::payload::Stamp;
use event_broker_bench::schedule::Schedule;
use event_broker_bench::worker::{histogram, merged, record};
use event_broker_clock::{monotonic_now, unix_nanos};
use hdrhistogram::Histogram;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Cmd, Pipeline};
use tokio::task::JoinSet;

use crate::cpu::Meter;
use crate::redis_group::{create_group, drain, receive, Group, Reader};
use crate::workload::{
    body, Finish, Measured, Params, Publish, Workload, W4_READ_MAX, W4_SEND_MAX,
};
use crate::PeerError;

/// The field that holds an entry's body.
pub const FIELD: &str = "p";
/// How often the cleanup asks whether the AOF rewrite is done.
const REWRITE_POLL: Duration = Duration::from_millis(50);

/// A running Redis and the meter of its process.
pub struct RedisSide {
    client: Client,
    config: AsyncConnectionConfig,
    meter: Meter,
}

impl RedisSide {
    /// Checks that `url` (`redis://host:port`) answers `PING`.
    pub async fn connect(url: &str, meter: Meter) -> Result<RedisSide, PeerError> {
        // The crate's default of 500 ms per answer is shorter than a W4
        // long poll.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(60)));
        let side = RedisSide {
            client: Client::open(url)?,
            config,
            meter,
        };
        let mut conn = side.conn().await?;
        redis::cmd("PING").query_async::<()>(&mut conn).await?;
        Ok(side)
    }

    async fn conn(&self) -> Result<MultiplexedConnection, PeerError> {
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        Ok(conn)
    }

    /// Runs `workload` on the stream `key`.
    pub async fn run(
        &self,
        workload: Workload,
        key: &str,
        p: &Params,
    ) -> Result<Measured, PeerError> {
        match workload {
            Workload::W1 | Workload::W2 => self.publish(key, p, workload).await,
            Workload::W3 => self.consume(key, p).await,
            Workload::W4 => self.e2e(key, p).await,
        }
    }

    /// Deletes the run's stream and rewrites the AOF, untimed, so that the
    /// log does not grow from run to run (the broker's cleanup acks what a
    /// run left, and its reaper deletes the segments).
    pub async fn clean(&self, key: &str) -> Result<(), PeerError> {
        let mut conn = self.conn().await?;
        redis::cmd("DEL")
            .arg(key)
            .query_async::<()>(&mut conn)
            .await?;
        wait_for_rewrite(&mut conn).await?;
        redis::cmd("BGREWRITEAOF")
            .query_async::<()>(&mut conn)
            .await?;
        wait_for_rewrite(&mut conn).await
    }

    /// W1 and W2: closed loops of one `XADD` or a pipeline of them.
    async fn publish(
        &self,
        key: &str,
        p: &Params,
        workload: Workload,
    ) -> Result<Measured, PeerError> {
        let shape = p.publish(workload);
        let multi = workload == Workload::W2 && p.w2_redis_multi;
        let mut conns = Vec::new();
        for _ in 0..shape.producers {
            conns.push(self.conn().await?);
        }
        let next = Arc::new(AtomicU64::new(0));
        let phase = self.meter.start()?;
        let mut tasks = JoinSet::new();
        for conn in conns {
            let lane = Lane {
                key: key.to_string(),
                size: p.size,
                next: next.clone(),
                shape,
                multi,
            };
            tasks.spawn(closed_loop(conn, lane));
        }
        let (stored, latency) = join_publishers(tasks).await?;
        let usage = phase.finish()?;
        expect("stored", stored, shape.count)?;
        Ok(Measured {
            events: stored,
            usage,
            latency,
        })
    }

    /// W3: prefill, then consumers read and ack until the stream is drained.
    async fn consume(&self, key: &str, p: &Params) -> Result<Measured, PeerError> {
        let n = p.w3_count;
        let mut conn = self.conn().await?;
        create_group(&mut conn, key, "0").await?;
        let shape = p.prefill();
        let next = Arc::new(AtomicU64::new(0));
        let mut tasks = JoinSet::new();
        for _ in 0..shape.producers {
            let lane = Lane {
                key: key.to_string(),
                size: p.size,
                next: next.clone(),
                shape,
                multi: false,
            };
            tasks.spawn(closed_loop(self.conn().await?, lane));
        }
        let (stored, _) = join_publishers(tasks).await?;
        expect("prefilled", stored, n)?;

        let mut conns = Vec::new();
        for _ in 0..p.w3_consumers {
            conns.push(self.conn().await?);
        }
        let group = Group {
            key: key.to_string(),
            count: p.w3_batch,
            xdel: p.redis_xdel,
        };
        let phase = self.meter.start()?;
        let mut tasks = JoinSet::new();
        for (i, conn) in conns.into_iter().enumerate() {
            let reader = Reader::new(conn, &group, i);
            tasks.spawn(drain(reader));
        }
        let mut acked = 0;
        while let Some(task) = tasks.join_next().await {
            acked += task??;
        }
        let usage = phase.finish()?;
        expect("acked", acked, n)?;
        Ok(Measured {
            events: acked,
            usage,
            latency: histogram(),
        })
    }

    /// W4: one producer on the schedule, consumers blocked in `XREADGROUP`.
    async fn e2e(&self, key: &str, p: &Params) -> Result<Measured, PeerError> {
        let n = p.w4_count();
        let mut conn = self.conn().await?;
        create_group(&mut conn, key, "$").await?;
        let finish = Arc::new(Finish::default());
        let group = Group {
            key: key.to_string(),
            count: W4_READ_MAX,
            xdel: p.redis_xdel,
        };
        let mut consumers = JoinSet::new();
        for i in 0..p.w4_consumers as usize {
            let reader = Reader::new(self.conn().await?, &group, i);
            consumers.spawn(receive(reader, finish.clone()));
        }
        let phase = self.meter.start()?;
        let produced = produce(&mut conn, key, p, &finish).await;
        finish.producer_done();
        if produced.is_ok() {
            finish.wait().await;
        } else {
            finish.done.cancel();
        }
        let mut parts = Vec::new();
        while let Some(task) = consumers.join_next().await {
            parts.push(task??);
        }
        let usage = phase.finish()?;
        produced?;
        let (sent, acked) = finish.counts();
        expect("sent", sent, n)?;
        expect("received", acked, n)?;
        Ok(Measured {
            events: n,
            usage,
            latency: merged(parts),
        })
    }
}

/// What one publisher needs: the events are numbered from the counter all
/// of them share.
struct Lane {
    key: String,
    size: usize,
    next: Arc<AtomicU64>,
    shape: Publish,
    /// `MULTI`/`EXEC` around each pipeline.
    multi: bool,
}

fn xadd(key: &str, stamp: Stamp, size: usize) -> Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(key).arg("*").arg(FIELD).arg(body(stamp, size));
    cmd
}

fn pipeline(key: &str, stamps: impl Iterator<Item = Stamp>, size: usize, multi: bool) -> Pipeline {
    let mut pipe = redis::pipe();
    if multi {
        pipe.atomic();
    }
    for stamp in stamps {
        pipe.add_command(xadd(key, stamp, size));
    }
    pipe
}

/// Sends until the shared counter passes the count: events stored, and the
/// latency of each command or pipeline from its send to its answer.
async fn closed_loop(
    mut conn: MultiplexedConnection,
    lane: Lane,
) -> Result<(u64, Histogram<u64>), PeerError> {
    let Publish { batch, count, .. } = lane.shape;
    let mut latency = histogram();
    let mut stored = 0;
    loop {
        let first = lane.next.fetch_add(batch, Ordering::Relaxed);
        if first >= count {
            break;
        }
        let t = unix_nanos();
        let stamps = (first..count.min(first + batch)).map(|seq| Stamp { seq, t });
        let sent;
        if batch == 1 {
            let cmd = xadd(&lane.key, Stamp { seq: first, t }, lane.size);
            sent = monotonic_now();
            cmd.query_async::<String>(&mut conn).await?;
            stored += 1;
        } else {
            let pipe = pipeline(&lane.key, stamps, lane.size, lane.multi);
            sent = monotonic_now();
            stored += pipe.query_async::<Vec<String>>(&mut conn).await?.len() as u64;
        }
        record(&mut latency, monotonic_now() - sent);
    }
    Ok((stored, latency))
}

async fn join_publishers(
    mut tasks: JoinSet<Result<(u64, Histogram<u64>), PeerError>>,
) -> Result<(u64, Histogram<u64>), PeerError> {
    let mut stored = 0;
    let mut parts = Vec::new();
    while let Some(task) = tasks.join_next().await {
        let (n, latency) = task??;
        stored += n;
        parts.push(latency);
    }
    Ok((stored, merged(parts)))
}

/// Sends W4's events on its schedule, those due together in one
/// pipeline, each stamped with the time it was due.
async fn produce(
    conn: &mut MultiplexedConnection,
    key: &str,
    p: &Params,
    finish: &Finish,
) -> Result<(), PeerError> {
    let (n, size) = (p.w4_count(), p.size);
    let schedule = Schedule::new(p.w4_rate as f64);
    let mut next = 0;
    while next < n {
        schedule.wait_for(next).await;
        let due = schedule
            .due_by(monotonic_now())
            .clamp(next + 1, n)
            .min(next + W4_SEND_MAX);
        let stamp = |seq| Stamp {
            seq,
            t: schedule.due_unix_nanos(seq),
        };
        let stored = if due == next + 1 {
            xadd(key, stamp(next), size)
                .query_async::<String>(conn)
                .await?;
            1
        } else {
            let stamps = (next..due).map(stamp);
            let pipe = pipeline(key, stamps, size, false);
            pipe.query_async::<Vec<String>>(conn).await?.len() as u64
        };
        finish.sent(stored);
        next = due;
    }
    Ok(())
}

/// Waits until Redis runs no AOF rewrite and has none scheduled.
async fn wait_for_rewrite(conn: &mut MultiplexedConnection) -> Result<(), PeerError> {
    loop {
        let info: String = redis::cmd("INFO")
            .arg("persistence")
            .query_async(conn)
            .await?;
        let busy = info.lines().any(|line| {
            matches!(
                line.trim(),
                "aof_rewrite_in_progress:1" | "aof_rewrite_scheduled:1"
            )
        });
        if !busy {
            return Ok(());
        }
        tokio::time::sleep(REWRITE_POLL).await;
    }
}

/// Fails a run in which `got` events were `what`, not `expected`.
fn expect(what: &str, got: u64, expected: u64) -> Result<(), PeerError> {
    if got == expected {
        return Ok(());
    }
    Err(PeerError::Failed {
        what: format!("{got} of {expected} events {what}"),
    })
}
