//! Before a run: the broker at `--url` answers as an event-broker, shows
//! the limits the run must fit, and takes the queue's name. Each of these
//! is reported before any load is sent, rather than as a run of failures.

use serde_json::Value;

use super::client::{Answer, Conn, Target};
use super::BenchError;

/// The broker's settings that bound a run, when it shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// `QUEUE_MAX_SIZE`: events a queue holds before enqueues answer 429.
    pub queue_max_size: Option<u64>,
    /// `MAX_BATCH`: events per enqueue or lease, receipts per ack.
    pub max_batch: Option<u64>,
}

impl Limits {
    /// Most events per request the broker takes, up to `wanted`.
    pub fn batch(&self, wanted: u64) -> u64 {
        self.max_batch.map_or(wanted, |max| max.min(wanted)).max(1)
    }

    /// Refuses `asked` events for a queue nothing drains during the run.
    pub fn check_fits(&self, flag: &'static str, asked: u64) -> Result<(), BenchError> {
        match self.queue_max_size {
            Some(max) if asked > max => Err(BenchError::OverQueueMax { flag, asked, max }),
            _ => Ok(()),
        }
    }

    /// Refuses `asked` events spread over `queues` queues when one queue's
    /// share is more than it may hold ([`super::spread::shares`]).
    pub fn check_fits_each(
        &self,
        flag: &'static str,
        asked: u64,
        queues: u32,
    ) -> Result<(), BenchError> {
        if queues <= 1 {
            return self.check_fits(flag, asked);
        }
        let share = asked.div_ceil(u64::from(queues));
        match self.queue_max_size {
            Some(max) if share > max => Err(BenchError::OverQueueMaxEach {
                flag,
                asked,
                queues,
                share,
                max,
            }),
            _ => Ok(()),
        }
    }
}

/// Asks the broker for its status and for the run's queue.
pub async fn check(target: &Target, queue: &str) -> Result<Limits, BenchError> {
    check_all(target, std::slice::from_ref(&queue)).await
}

/// Asks the broker for its status and for each of the run's queues.
pub async fn check_all(target: &Target, queues: &[impl AsRef<str>]) -> Result<Limits, BenchError> {
    let mut conn = Conn::open(target).await?;
    let path = "/api/status";
    let status = conn.get(path).await?;
    let body: Option<Value> = serde_json::from_slice(&status.body).ok();
    let config = match body {
        Some(body) if status.status.is_success() => body["config"].clone(),
        _ => return Err(not_a_broker(target, path, &status)),
    };
    let setting = |name: &str| match &config[name] {
        Value::String(text) => text.parse().ok(),
        value => value.as_u64(),
    };
    let limits = Limits {
        queue_max_size: setting("QUEUE_MAX_SIZE"),
        max_batch: setting("MAX_BATCH"),
    };
    for queue in queues {
        let queue = queue.as_ref();
        let path = format!("/api/queues/{}", path_segment(queue));
        let answer = conn.get(&path).await?;
        match answer.status.as_u16() {
            // The queue exists, or comes into being with the run's first event.
            200 | 404 => {}
            400 => {
                return Err(BenchError::Queue {
                    queue: queue.to_string(),
                    body: String::from_utf8_lossy(&answer.body).into_owned(),
                })
            }
            _ => return Err(not_a_broker(target, &path, &answer)),
        }
    }
    Ok(limits)
}

fn not_a_broker(target: &Target, path: &str, answer: &Answer) -> BenchError {
    BenchError::NotABroker {
        url: target.url(),
        path: path.to_string(),
        status: answer.status.as_u16(),
        body: String::from_utf8_lossy(&answer.body).into_owned(),
    }
}

/// `name` as one segment of a URL path: any byte but a letter, a digit or
/// `-._~` percent-encoded, so that a name the broker refuses reaches it
/// (and gets its answer) rather than breaking the request line.
fn path_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_name_is_sent_as_one_path_segment() {
        assert_eq!(path_segment("bench-produce-17"), "bench-produce-17");
        assert_eq!(path_segment("bad name/x"), "bad%20name%2Fx");
        assert_eq!(path_segment("é"), "%C3%A9");
    }

    #[test]
    fn a_run_must_fit_the_queue_and_its_batches_the_broker() {
        let limits = Limits {
            queue_max_size: Some(100),
            max_batch: Some(10),
        };
        assert!(limits.check_fits("--count", 100).is_ok());
        let err = limits.check_fits("--count", 101).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--count 101 is more than the broker's QUEUE_MAX_SIZE of 100, and nothing consumes \
             the queue before the run ends: lower --count or raise QUEUE_MAX_SIZE"
        );
        assert_eq!((limits.batch(1000), limits.batch(4)), (10, 4));
        assert!(limits.check_fits_each("--count", 400, 4).is_ok());
        assert!(limits.check_fits_each("--count", 101, 1).is_err());
        let err = limits.check_fits_each("--prefill", 401, 4).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--prefill 401 over 4 queues puts 101 events in one, more than the broker's \
             QUEUE_MAX_SIZE of 100, and nothing consumes the queues before the run ends: \
             lower --prefill or raise QUEUE_MAX_SIZE"
        );
        let unknown = Limits::default();
        assert!(unknown.check_fits("--prefill", u64::MAX).is_ok());
        assert_eq!(unknown.batch(1000), 1000);
    }
}
