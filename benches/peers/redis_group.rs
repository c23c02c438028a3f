//! The Redis side's consumers: one member of the stream's consumer group
//! each, on a connection of its own, reading with `XREADGROUP` and acking
//! each batch with one `XACK` (and `XDEL` of the same ids with
//! `--redis-xdel`, in the same pipeline).

use std::sync::Arc;
use std::time::Duration;

use event_broker_bench::payload::Stamp;
use event_broker_bench::worker::{histogram, record};
use event_broker_clock::unix_nanos;
use hdrhistogram::Histogram;
use redis::aio::MultiplexedConnection;
use redis::streams::StreamReadReply;

use crate::redis_streams::FIELD;
use crate::workload::{Finish, LONG_POLL_MS};
use crate::PeerError;

/// The consumer group of every run.
const GROUP: &str = "g";

/// `XGROUP CREATE key g <from> MKSTREAM`: `0` reads the stream from its
/// start, `$` only what comes after.
pub async fn create_group(
    conn: &mut MultiplexedConnection,
    key: &str,
    from: &str,
) -> Result<(), PeerError> {
    redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(key)
        .arg(GROUP)
        .arg(from)
        .arg("MKSTREAM")
        .query_async::<()>(conn)
        .await?;
    Ok(())
}

/// What every consumer of one run reads.
#[derive(Debug, Clone)]
pub struct Group {
    /// The stream.
    pub key: String,
    /// Most entries per read.
    pub count: u64,
    /// `XDEL` what is acked.
    pub xdel: bool,
}

/// One consumer of the group, on its own connection.
pub struct Reader {
    conn: MultiplexedConnection,
    group: Group,
    name: String,
}

impl Reader {
    /// Member `c<i>` of the group.
    pub fn new(conn: MultiplexedConnection, group: &Group, i: usize) -> Reader {
        Reader {
            conn,
            group: group.clone(),
            name: format!("c{i}"),
        }
    }

    /// `XREADGROUP` of up to `count` new entries, waiting up to `block_ms`
    /// for the first when given; `None` when there were none.
    async fn read(&mut self, block_ms: Option<u64>) -> Result<Option<StreamReadReply>, PeerError> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(&self.name)
            .arg("COUNT")
            .arg(self.group.count);
        if let Some(ms) = block_ms {
            cmd.arg("BLOCK").arg(ms);
        }
        cmd.arg("STREAMS").arg(&self.group.key).arg(">");
        Ok(cmd.query_async(&mut self.conn).await?)
    }

    /// `XACK` of `ids` (and `XDEL`, when asked for, in the same pipeline):
    /// how many were acked.
    async fn ack(&mut self, ids: &[&str]) -> Result<u64, PeerError> {
        let mut ack = redis::cmd("XACK");
        ack.arg(&self.group.key).arg(GROUP).arg(ids);
        if !self.group.xdel {
            return Ok(ack.query_async::<u64>(&mut self.conn).await?);
        }
        let mut del = redis::cmd("XDEL");
        del.arg(&self.group.key).arg(ids);
        let mut pipe = redis::pipe();
        pipe.add_command(ack).add_command(del).ignore();
        let (acked,): (u64,) = pipe.query_async(&mut self.conn).await?;
        Ok(acked)
    }
}

/// The ids of a read's entries.
fn ids(reply: &StreamReadReply) -> Vec<&str> {
    let entries = reply.keys.iter().flat_map(|k| &k.ids);
    entries.map(|entry| entry.id.as_str()).collect()
}

/// Reads and acks until a read finds nothing new: events acked.
pub async fn drain(mut reader: Reader) -> Result<u64, PeerError> {
    let mut acked = 0;
    while let Some(reply) = reader.read(None).await? {
        let ids = ids(&reply);
        if ids.is_empty() {
            break;
        }
        acked += reader.ack(&ids).await?;
    }
    Ok(acked)
}

/// Blocks in `XREADGROUP` and acks until the run is over; the time from each
/// entry's due time to its arrival.
pub async fn receive(mut reader: Reader, finish: Arc<Finish>) -> Result<Histogram<u64>, PeerError> {
    let mut latency = histogram();
    loop {
        let reply = tokio::select! {
            biased;
            () = finish.done.cancelled() => break,
            reply = reader.read(Some(LONG_POLL_MS)) => reply?,
        };
        let Some(reply) = reply else { continue };
        let now = unix_nanos();
        for entry in reply.keys.iter().flat_map(|k| &k.ids) {
            let text: Vec<u8> = entry.get(FIELD).ok_or(PeerError::NoBody)?;
            let stamp: Stamp = serde_json::from_slice(&text).map_err(PeerError::Payload)?;
            record(
                &mut latency,
                Duration::from_nanos(now.saturating_sub(stamp.t)),
            );
        }
        let ids = ids(&reply);
        if !ids.is_empty() {
            finish.acked(reader.ack(&ids).await?);
        }
    }
    Ok(latency)
}
